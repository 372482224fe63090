//! A minimal HTTP/1.1 client for form POSTs to a loopback server, over
//! kept-alive connections. The load generator shares the server's machine,
//! and a general client (its pool, header maps and a task per connection)
//! spent 62-66 µs of CPU a request, where this one spends 22-27: in a
//! closed-loop run that was a quarter of the CPU the machine used, taken
//! from the server under test.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a request failed: what the summary counts it under.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// The server answered with a status other than 2xx.
    Status(u16),
    Timeout,
    /// Connecting, writing, reading, or an answer that is not HTTP/1.1.
    Transport,
}

/// Connections to one server, each used by one request at a time.
pub struct Client {
    addr: String,
    /// Request line and the headers every request carries.
    head: String,
    timeout: Duration,
    idle: Mutex<Vec<TcpStream>>,
}

impl Client {
    /// A client posting to `url`'s path.
    pub fn new(url: &reqwest::Url, user_agent: &str, timeout: Duration) -> Result<Client, String> {
        let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("{url} has no port"))?;
        if url.scheme() != "http" {
            return Err(format!("{url}: only http:// is supported"));
        }
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(Client {
            addr: format!(
                "{}:{port}",
                host.trim_start_matches('[').trim_end_matches(']')
            ),
            head: format!(
                "POST {} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n",
                url.path()
            ),
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Posts `body` with the extra `headers`; the answer's body is read
    /// and dropped. A connection goes back to the pool only after a whole
    /// answer that does not close it.
    pub async fn post(&self, headers: &[(&str, &str)], body: &str) -> Result<(), Failure> {
        let mut request = String::with_capacity(self.head.len() + body.len() + 128);
        request.push_str(&self.head);
        for (name, value) in headers {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        let _ = write!(request, "Content-Length: {}\r\n\r\n", body.len());
        request.push_str(body);
        let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let exchange = async {
            let was_reused = reused.is_some();
            match self.exchange(reused, &request).await {
                // A kept-alive connection the server has since closed:
                // once more on a new one (a webhook is idempotent by its
                // MessageSid).
                Err(Failure::Transport) if was_reused => self.exchange(None, &request).await,
                done => done,
            }
        };
        let (conn, answer) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Failure::Timeout)??;
        if answer.keep_alive {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
        match answer.status {
            200..=299 => Ok(()),
            s => Err(Failure::Status(s)),
        }
    }

    /// One request and its answer, on `conn` or a new connection.
    async fn exchange(
        &self,
        conn: Option<TcpStream>,
        request: &str,
    ) -> Result<(TcpStream, Answer), Failure> {
        let mut conn = match conn {
            Some(c) => c,
            None => {
                let c = TcpStream::connect(&self.addr)
                    .await
                    .map_err(|_| Failure::Transport)?;
                c.set_nodelay(true).map_err(|_| Failure::Transport)?;
                c
            }
        };
        conn.write_all(request.as_bytes())
            .await
            .map_err(|_| Failure::Transport)?;
        let answer = read_answer(&mut conn).await?;
        Ok((conn, answer))
    }
}

/// What is kept of an answer.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    keep_alive: bool,
}

/// Reads one answer: its head, then a body framed by Content-Length or
/// chunked.
async fn read_answer(conn: &mut TcpStream) -> Result<Answer, Failure> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 64 * 1024 || read_more(conn, &mut buf).await? == 0 {
            return Err(Failure::Transport);
        }
    };
    let head = parse_head(&buf[..head_end])?;
    let mut body = buf.split_off(head_end);
    match head.framing {
        Framing::Length(n) => {
            while body.len() < n {
                if read_more(conn, &mut body).await? == 0 {
                    return Err(Failure::Transport);
                }
            }
        }
        Framing::Chunked => loop {
            match chunked_end(&body) {
                Some(Ok(_)) => break,
                Some(Err(())) => return Err(Failure::Transport),
                None if read_more(conn, &mut body).await? == 0 => return Err(Failure::Transport),
                None => {}
            }
        },
    }
    Ok(head.answer)
}

async fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, Failure> {
    let mut chunk = [0u8; 4096];
    let n = conn
        .read(&mut chunk)
        .await
        .map_err(|_| Failure::Transport)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
}

#[derive(Debug, PartialEq)]
struct Head {
    answer: Answer,
    framing: Framing,
}

/// The status line and the headers that matter here, of a head ending in
/// an empty line.
fn parse_head(head: &[u8]) -> Result<Head, Failure> {
    let text = std::str::from_utf8(head).map_err(|_| Failure::Transport)?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(Failure::Transport)?;
    let mut answer = Answer {
        status,
        keep_alive: true,
    };
    let mut framing = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(Failure::Transport)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            framing = Some(Framing::Length(
                value.parse().map_err(|_| Failure::Transport)?,
            ));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(Failure::Transport);
            }
            framing = Some(Framing::Chunked);
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            answer.keep_alive = false;
        }
    }
    // An answer framed by the connection's end cannot be kept alive, and
    // this client does not read one.
    let framing = framing.ok_or(Failure::Transport)?;
    Ok(Head { answer, framing })
}

/// Where a chunked body ends (the byte after it), `None` while more is to
/// come, `Err` for a malformed one. Trailers are not expected.
fn chunked_end(body: &[u8]) -> Option<Result<usize, ()>> {
    let mut at = 0;
    loop {
        let line_end = at + find(&body[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&body[at..line_end]).ok();
        let size = size_text
            .map(|s| s.split(';').next().unwrap_or("").trim())
            .and_then(|s| usize::from_str_radix(s, 16).ok());
        let Some(size) = size else {
            return Some(Err(()));
        };
        let data_end = line_end + 2 + size;
        if body.len() < data_end + 2 {
            return None;
        }
        if &body[data_end..data_end + 2] != b"\r\n" {
            return Some(Err(()));
        }
        if size == 0 {
            return Some(Ok(data_end + 2));
        }
        at = data_end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_gives_status_framing_and_keep_alive() {
        let head =
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\nContent-Length: 42\r\n\r\n")
                .unwrap();
        assert_eq!(
            head,
            Head {
                answer: Answer {
                    status: 200,
                    keep_alive: true
                },
                framing: Framing::Length(42)
            }
        );
        let head = parse_head(
            b"HTTP/1.1 403 Forbidden\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.answer.status, 403);
        assert!(!head.answer.keep_alive);
        assert_eq!(head.framing, Framing::Chunked);
    }

    #[test]
    fn heads_that_cannot_be_read_are_refused() {
        for bad in [
            &b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad), Err(Failure::Transport), "{bad:?}");
        }
    }

    #[test]
    fn a_chunked_body_ends_at_its_empty_chunk() {
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n\r\n"), Some(Ok(15)));
        assert_eq!(chunked_end(b"5;x=1\r\nhello\r\n0\r\n\r\n"), Some(Ok(19)));
        assert_eq!(chunked_end(b"5\r\nhello\r\n"), None);
        assert_eq!(chunked_end(b"5\r\nhel"), None);
        assert_eq!(chunked_end(b"zz\r\n"), Some(Err(())));
        assert_eq!(chunked_end(b"2\r\nhello\r\n"), Some(Err(())));
    }

    /// Against a real server: answers come back over one kept-alive
    /// connection, and a status other than 2xx is reported as such.
    #[tokio::test]
    async fn posts_to_a_real_server_over_one_connection() {
        use axum::routing::post;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let connections = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/hook",
            post(|body: String| async move {
                if body == "fail=1" {
                    (axum::http::StatusCode::FORBIDDEN, "no".to_string())
                } else {
                    (axum::http::StatusCode::OK, format!("got {body}"))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counted = connections.clone();
        tokio::spawn(async move {
            let listener = tap::Counting {
                inner: listener,
                count: counted,
            };
            let _ = axum::serve(listener, app).await;
        });
        let url = reqwest::Url::parse(&format!("http://{addr}/hook")).unwrap();
        let client = Client::new(&url, "test", Duration::from_secs(5)).unwrap();
        for i in 0..3 {
            client
                .post(&[("X-Test", "1")], &format!("n={i}"))
                .await
                .unwrap();
        }
        assert_eq!(client.post(&[], "fail=1").await, Err(Failure::Status(403)));
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    /// A server that closes each connection after one answer, without
    /// saying so: the next request goes out again on a new connection.
    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut accepted = 0;
            while accepted < 2 {
                let (mut conn, _) = listener.accept().await.unwrap();
                accepted += 1;
                let mut buf = Vec::new();
                while find(&buf, b"n=").is_none() {
                    if read_more(&mut conn, &mut buf).await.unwrap() == 0 {
                        break;
                    }
                }
                conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            accepted
        });
        let url = reqwest::Url::parse(&format!("http://{addr}/hook")).unwrap();
        let client = Client::new(&url, "test", Duration::from_secs(5)).unwrap();
        client.post(&[], "n=1").await.unwrap();
        // Let the server's close arrive before the connection is reused.
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.post(&[], "n=2").await.unwrap();
        assert_eq!(server.await.unwrap(), 2);
    }

    /// A listener that counts the connections it accepts.
    mod tap {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub struct Counting {
            pub inner: tokio::net::TcpListener,
            pub count: Arc<AtomicUsize>,
        }

        impl axum::serve::Listener for Counting {
            type Io = tokio::net::TcpStream;
            type Addr = std::net::SocketAddr;
            async fn accept(&mut self) -> (Self::Io, Self::Addr) {
                let accepted = self.inner.accept().await;
                self.count.fetch_add(1, Ordering::SeqCst);
                match accepted {
                    Ok(pair) => pair,
                    Err(e) => panic!("accept failed: {e}"),
                }
            }
            fn local_addr(&self) -> std::io::Result<Self::Addr> {
                self.inner.local_addr()
            }
        }
    }
}
