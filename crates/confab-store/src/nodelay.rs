//! Nagle's algorithm off on PostgreSQL connections.
//!
//! sqlx 0.9.0 no longer sets TCP_NODELAY on its sockets (its issue 4335;
//! the fix is merged but not released). With Nagle's algorithm on, a
//! query longer than one TCP segment sends all its full segments and holds
//! the rest until the server acknowledges them, which the server, waiting
//! for the rest, delays by 40 ms: a flow batch's writes of a few dozen
//! runs stalled that long on every run, and over a network, where a
//! segment is 1.5 KB, most queries would. sqlx does not hand its socket
//! out, so a connection just made finds it among the process's sockets, by
//! the server's port, and sets the option there; setting it twice, or on
//! another connection to the same port, does no harm.

/// Sets TCP_NODELAY on every TCP socket of this process connected to a
/// server at `port`. Sockets it cannot look at are left as they are.
#[cfg(target_os = "linux")]
pub(crate) fn to_port(port: u16) {
    use std::os::fd::{BorrowedFd, RawFd};

    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in fds.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|target| {
            target
                .as_os_str()
                .as_encoded_bytes()
                .starts_with(b"socket:")
        });
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only read from and given an option for
        // the two calls below, and not kept. Were it closed and its number
        // reused in between, the calls would fail, or set TCP_NODELAY on
        // another socket to the same port, which is harmless.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let to_server = socket
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        if to_server && let Err(e) = socket.set_tcp_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set on a database connection");
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn to_port(_port: u16) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn connections_to_the_port_get_tcp_nodelay_and_others_do_not() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_server = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let to_other = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_server.nodelay().unwrap());
        super::to_port(server.local_addr().unwrap().port());
        assert!(to_server.nodelay().unwrap());
        assert!(!to_other.nodelay().unwrap());
    }
}
