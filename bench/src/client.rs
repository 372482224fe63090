//! A minimal HTTP/1.1 client for form POSTs to a loopback server, over
//! kept-alive connections. The load generator shares the server's machine,
//! and a general client (its pool, header maps and a task per connection)
//! spent 62-66 µs of CPU a request, where this one spends 22-27: in
//! closed-loop runs a quarter (flow steps) to a third (the core) of the
//! CPU the machine used, taken from the server under test.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a request failed.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// The server answered with a status other than 2xx.
    Status(u16),
    Timeout,
    /// Connecting, writing, reading, or an answer that is not HTTP/1.1.
    Transport,
}

impl Failure {
    /// What the summary counts it under: the status, `timeout` or
    /// `transport`.
    pub fn key(&self) -> String {
        match self {
            Failure::Status(s) => s.to_string(),
            Failure::Timeout => "timeout".to_string(),
            Failure::Transport => "transport".to_string(),
        }
    }
}

/// Connections to one server, each used by one request at a time.
pub struct Client {
    /// Resolved once: no lookup for each new connection.
    addr: SocketAddr,
    /// Request line and the headers every request carries.
    head: String,
    timeout: Duration,
    idle: Mutex<Vec<TcpStream>>,
}

impl Client {
    /// A client posting to `url`'s path.
    pub fn new(url: &reqwest::Url, user_agent: &str, timeout: Duration) -> Result<Client, String> {
        if url.scheme() != "http" {
            return Err(format!("{url}: only http:// is supported"));
        }
        let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
        let addr = url
            .socket_addrs(|| None)
            .map_err(|e| format!("{url}: {e}"))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{url}: no address"))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(Client {
            addr,
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
    /// answer, nothing after it, that does not close it.
    pub async fn post(&self, headers: &[(&str, &str)], body: &str) -> Result<(), Failure> {
        let mut request = String::with_capacity(self.head.len() + body.len() + 128);
        request.push_str(&self.head);
        for (name, value) in headers {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        let _ = write!(request, "Content-Length: {}\r\n\r\n", body.len());
        request.push_str(body);
        let (conn, answer) = tokio::time::timeout(self.timeout, self.exchange(&request))
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

    /// One request and its answer, on an idle connection the server has
    /// not closed, or a new one. Nothing is sent twice: a request that
    /// reached the server may have been acted on.
    async fn exchange(&self, request: &str) -> Result<(TcpStream, Answer), Failure> {
        let mut conn = match self.idle_conn() {
            Some(c) => c,
            None => {
                let c = TcpStream::connect(self.addr)
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

    /// An idle connection with nothing to read: one the server closed (or
    /// sent anything on unasked) is dropped.
    fn idle_conn(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(conn) = idle.pop() {
            let mut probe = [0u8; 1];
            if let Err(e) = conn.try_read(&mut probe)
                && e.kind() == std::io::ErrorKind::WouldBlock
            {
                return Some(conn);
            }
        }
        None
    }
}

/// What is kept of an answer.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    keep_alive: bool,
}

/// Reads one final answer: heads of interim (1xx) answers are skipped;
/// the body is framed by Content-Length or chunked.
async fn read_answer(conn: &mut TcpStream) -> Result<Answer, Failure> {
    let mut buf = Vec::with_capacity(1024);
    let head = loop {
        let head_end = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > 64 * 1024 || read_more(conn, &mut buf).await? == 0 {
                return Err(Failure::Transport);
            }
        };
        let head = parse_head(&buf[..head_end])?;
        buf.drain(..head_end);
        if !(100..200).contains(&head.answer.status) {
            break head;
        }
    };
    let end = match head.framing {
        Framing::Length(n) => {
            while buf.len() < n {
                if read_more(conn, &mut buf).await? == 0 {
                    return Err(Failure::Transport);
                }
            }
            n
        }
        Framing::Chunked => loop {
            match chunked_end(&buf) {
                Some(Ok(end)) => break end,
                Some(Err(())) => return Err(Failure::Transport),
                None if read_more(conn, &mut buf).await? == 0 => return Err(Failure::Transport),
                None => {}
            }
        },
    };
    let mut answer = head.answer;
    // Bytes past the answer: the two sides disagree on where it ended,
    // and the connection cannot be trusted with another.
    if buf.len() != end {
        answer.keep_alive = false;
    }
    Ok(answer)
}

/// Reads what has arrived onto the end of `buf`; 0 at the end of the stream.
async fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, Failure> {
    buf.reserve(4096);
    conn.read_buf(buf).await.map_err(|_| Failure::Transport)
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
    let mut length = None;
    let mut chunked = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(Failure::Transport)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| Failure::Transport)?;
            if length.is_some_and(|m| m != n) {
                return Err(Failure::Transport);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(Failure::Transport);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection")
            && value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
        {
            answer.keep_alive = false;
        }
    }
    let framing = if matches!(status, 100..=199 | 204 | 304) {
        // No body, whatever the headers say (RFC 9112, 6.3).
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else {
        // An answer framed by the connection's end cannot be kept alive,
        // and this client does not read one.
        Framing::Length(length.ok_or(Failure::Transport)?)
    };
    Ok(Head { answer, framing })
}

/// Where a chunked body ends (the byte after it), `None` while more is to
/// come, `Err` for a malformed one. Trailers are not expected.
fn chunked_end(body: &[u8]) -> Option<Result<usize, ()>> {
    let mut at = 0;
    loop {
        let line_end = at + find(&body[at..], b"\r\n")?;
        let size = std::str::from_utf8(&body[at..line_end])
            .ok()
            .map(|s| s.split(';').next().unwrap_or("").trim())
            .and_then(|s| usize::from_str_radix(s, 16).ok());
        let Some(data_end) = size.and_then(|n| (line_end + 2).checked_add(n)) else {
            return Some(Err(()));
        };
        if body.len() < data_end.saturating_add(2) {
            return None;
        }
        if &body[data_end..data_end + 2] != b"\r\n" {
            return Some(Err(()));
        }
        if data_end == line_end + 2 {
            return Some(Ok(data_end + 2));
        }
        at = data_end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
            b"HTTP/1.1 403 Forbidden\r\nconnection: keep-alive, close\r\ncontent-length: 9\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.answer.status, 403);
        assert!(!head.answer.keep_alive);
        // Chunked wins over a length.
        assert_eq!(head.framing, Framing::Chunked);
        // Interim answers, 204 and 304 have no body, whatever they say.
        for status in ["100 Continue", "204 No Content", "304 Not Modified"] {
            let head = format!("HTTP/1.1 {status}\r\ncontent-length: 12\r\n\r\n");
            assert_eq!(
                parse_head(head.as_bytes()).unwrap().framing,
                Framing::Length(0),
                "{status}"
            );
        }
    }

    #[test]
    fn heads_that_cannot_be_read_are_refused() {
        for bad in [
            &b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n",
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
        assert_eq!(chunked_end(b"ffffffffffffffff\r\nx"), Some(Err(())));
    }

    #[test]
    fn failures_are_counted_under_the_status_or_their_kind() {
        assert_eq!(Failure::Status(403).key(), "403");
        assert_eq!(Failure::Timeout.key(), "timeout");
        assert_eq!(Failure::Transport.key(), "transport");
    }

    fn client(addr: SocketAddr, timeout: Duration) -> Client {
        let url = reqwest::Url::parse(&format!("http://{addr}/hook")).unwrap();
        Client::new(&url, "test", timeout).unwrap()
    }

    fn idle(client: &Client) -> usize {
        client.idle.lock().unwrap().len()
    }

    /// Against a real server: answers come back over one kept-alive
    /// connection, also after a status other than 2xx, which is reported
    /// as such.
    #[tokio::test]
    async fn posts_to_a_real_server_over_one_connection() {
        use axum::routing::post;

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
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            let listener = tap::Counting {
                inner: listener,
                count: counted,
            };
            let _ = axum::serve(listener, app).await;
        });
        let client = client(addr, Duration::from_secs(5));
        for i in 0..3 {
            client
                .post(&[("X-Test", "1")], &format!("n={i}"))
                .await
                .unwrap();
        }
        assert_eq!(client.post(&[], "fail=1").await, Err(Failure::Status(403)));
        client.post(&[], "n=4").await.unwrap();
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert_eq!(idle(&client), 1);
    }

    /// What a raw server does with each connection's one request.
    enum Then {
        /// Writes these pieces, a few milliseconds apart, then closes.
        Answer(Vec<&'static [u8]>),
        /// Closes without answering.
        Close,
        /// Never answers.
        Hang,
    }

    /// A server that treats its i-th connection as `script[i]` says;
    /// counts the connections it accepts.
    async fn raw_server(script: Vec<Then>) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut script = script.into_iter();
            let mut held = Vec::new();
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = Vec::new();
                // The request's head, and its body (the test bodies are 3 bytes).
                while find(&buf, b"\r\n\r\n").is_none_or(|at| buf.len() < at + 4 + 3) {
                    if read_more(&mut conn, &mut buf).await.unwrap_or(0) == 0 {
                        break;
                    }
                }
                match script.next() {
                    Some(Then::Answer(pieces)) => {
                        for piece in pieces {
                            conn.write_all(piece).await.unwrap();
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    Some(Then::Hang) => held.push(conn),
                    Some(Then::Close) | None => {}
                }
            }
        });
        (addr, accepted)
    }

    /// An answer in pieces, after an interim one, with a chunked body:
    /// read whole, and the connection kept.
    #[tokio::test]
    async fn an_answer_in_pieces_is_read_whole() {
        let (addr, _) = raw_server(vec![Then::Answer(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 20",
            b"0 OK\r\ntransfer-encoding: chunked\r\n",
            b"\r\n2\r\nok\r",
            b"\n0\r\n\r\n",
        ])])
        .await;
        let client = client(addr, Duration::from_secs(5));
        client.post(&[], "n=1").await.unwrap();
        assert_eq!(idle(&client), 1);
    }

    /// An answer that says it closes, or is followed by bytes nobody
    /// asked for, leaves its connection out of the pool.
    #[tokio::test]
    async fn a_closing_or_overlong_answer_is_not_kept() {
        let (addr, _) = raw_server(vec![
            Then::Answer(vec![
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
            ]),
            Then::Answer(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok!"]),
        ])
        .await;
        let client = client(addr, Duration::from_secs(5));
        client.post(&[], "n=1").await.unwrap();
        assert_eq!(idle(&client), 0);
        client.post(&[], "n=2").await.unwrap();
        assert_eq!(idle(&client), 0);
    }

    /// A server that closes each connection after one answer, without
    /// saying so: the closed connection is noticed before the next request
    /// and a new one is used.
    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (addr, accepted) =
            raw_server(vec![Then::Answer(vec![ok]), Then::Answer(vec![ok])]).await;
        let client = client(addr, Duration::from_secs(5));
        client.post(&[], "n=1").await.unwrap();
        assert_eq!(idle(&client), 1);
        // Let the server's close arrive before the connection is reused.
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.post(&[], "n=2").await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// A request the server took and did not answer is not sent again: it
    /// may have been acted on. One that gets no answer in time is a
    /// timeout.
    #[tokio::test]
    async fn an_unanswered_request_fails_once() {
        let (addr, accepted) = raw_server(vec![Then::Close, Then::Hang]).await;
        let client = client(addr, Duration::from_millis(200));
        assert_eq!(client.post(&[], "n=1").await, Err(Failure::Transport));
        assert_eq!(client.post(&[], "n=2").await, Err(Failure::Timeout));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(idle(&client), 0);
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
