//! The listener: accepts connections and serves HTTP/1 on them, within
//! limits no client can stretch.
//!
//! - A request's headers must arrive within `header_timeout` of its first
//!   byte (of the connection's start, for the first request); its body
//!   within `body_timeout` (a layer of the router, see `http::router`).
//! - A kept-alive connection with nothing in progress is closed after
//!   `idle_timeout`, and so is one whose client stops reading a response.
//! - At most `max_connections` connections are served. Past it, a few more
//!   (`RESERVE`) are kept for `/health` and `/ready`, one request each, so
//!   orchestrators can still see the server when clients have taken every
//!   connection; anything else there is answered 503, and beyond them a
//!   connection is closed at once.
//! - On shutdown `/ready` answers 503 at once (the state's `draining`),
//!   connections with nothing in progress are closed, requests in progress
//!   finish, and after `shutdown_timeout` whatever is left is cut.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::IntoResponse;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::error::ApiError;

/// Connections past the cap kept for `/health` and `/ready`.
pub const RESERVE: usize = 32;
/// A reserved connection must send its request this quickly.
const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// File descriptors left to the database pool, media files and logs when
/// the connection cap is taken from the process's file limit.
const FDS_KEPT: u64 = 128;
/// The cap when the file limit allows more.
const MAX_DEFAULT_CONNECTIONS: u64 = 10_000;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

/// The cap on connections the file limit allows: the soft limit is raised
/// to the hard one first (as most servers do), then room is kept for the
/// database, files and the reserved connections.
pub fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024 - FDS_KEPT as usize - RESERVE;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    soft.saturating_sub(FDS_KEPT + RESERVE as u64)
        .clamp(16, MAX_DEFAULT_CONNECTIONS) as usize
}

/// Requests in progress on every connection, and a wake-up when there are
/// none left (what a shutdown waits for).
#[derive(Default)]
struct Work {
    in_flight: AtomicUsize,
    none_left: Notify,
}

/// What one connection is doing, for its watchdog. Times are milliseconds
/// since the listener started.
struct ConnState {
    base: Instant,
    in_flight: AtomicUsize,
    responding: AtomicBool,
    /// When the headers now awaited began (their first byte, or the
    /// connection's start); `NONE` while no request is being read.
    header_since: AtomicU64,
    idle_since: AtomicU64,
    last_write: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl ConnState {
    fn new(base: Instant) -> ConnState {
        let s = ConnState {
            base,
            in_flight: AtomicUsize::new(0),
            responding: AtomicBool::new(false),
            header_since: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
        };
        s.header_since.store(s.now(), Ordering::SeqCst);
        s
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// When this connection is to be closed unless something happens first;
    /// `None` while a handler works on a request (its body has a deadline
    /// of its own).
    fn deadline(&self, header: Duration, idle: Duration) -> Option<u64> {
        let ms = |d: Duration| d.as_millis() as u64;
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return self
                .responding
                .load(Ordering::SeqCst)
                .then(|| self.last_write.load(Ordering::SeqCst) + ms(idle));
        }
        match self.header_since.load(Ordering::SeqCst) {
            NONE => Some(self.idle_since.load(Ordering::SeqCst) + ms(idle)),
            since => Some(since + ms(header)),
        }
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            let _ = self.header_since.compare_exchange(
                NONE,
                self.now(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    fn wrote_some(&self) {
        self.last_write.store(self.now(), Ordering::SeqCst);
    }
}

/// A request in progress: counted from its headers until its response has
/// been written (or abandoned), wherever this guard is dropped.
struct InFlight {
    conn: Arc<ConnState>,
    work: Arc<Work>,
}

impl InFlight {
    fn start(conn: &Arc<ConnState>, work: &Arc<Work>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        conn.header_since.store(NONE, Ordering::SeqCst);
        conn.responding.store(false, Ordering::SeqCst);
        work.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            conn: conn.clone(),
            work: work.clone(),
        }
    }

    fn responding(&self) {
        self.conn.wrote_some();
        self.conn.responding.store(true, Ordering::SeqCst);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.conn.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.conn.responding.store(false, Ordering::SeqCst);
            self.conn
                .idle_since
                .store(self.conn.now(), Ordering::SeqCst);
        }
        if self.work.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.work.none_left.notify_waiters();
        }
    }
}

/// A response body that keeps its request counted until it is written.
struct Tracked {
    body: Body,
    _guard: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling its connection's state when bytes move.
struct Watched {
    stream: TcpStream,
    conn: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.read_some();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.wrote_some();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.wrote_some();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Paths a reserved connection may ask for.
fn reserved_path(path: &str) -> bool {
    matches!(path, "/health" | "/ready")
}

#[derive(Clone)]
struct Shared {
    router: Router,
    limits: Limits,
    work: Arc<Work>,
    base: Instant,
    /// Turns true when the shutdown begins.
    drain: watch::Receiver<bool>,
}

/// Serves one connection until it ends, its watchdog closes it, or the
/// shutdown cuts it.
async fn connection(shared: Shared, stream: TcpStream, peer: SocketAddr, reserved: bool) {
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(ConnState::new(shared.base));
    let draining = *shared.drain.borrow();
    let service = {
        let conn = conn.clone();
        let work = shared.work.clone();
        let router = shared.router.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = InFlight::start(&conn, &work);
            let mut req: Request = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let resp = if reserved && !reserved_path(req.uri().path()) {
                    ApiError::Overloaded(
                        "the server has as many connections as it serves; try again shortly".into(),
                    )
                    .into_response()
                } else {
                    match router.oneshot(req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    }
                };
                guard.responding();
                Ok::<_, Infallible>(resp.map(|body| Tracked {
                    body,
                    _guard: guard,
                }))
            }
        })
    };
    let io = TokioIo::new(Watched {
        stream,
        conn: conn.clone(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog below keeps the time; hyper's own header timer
        // would also run while a kept-alive connection waits.
        .header_read_timeout(None)
        .keep_alive(!reserved && !draining);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let header_timeout = if reserved {
        RESERVE_HEADER_TIMEOUT.min(shared.limits.header_timeout)
    } else {
        shared.limits.header_timeout
    };
    let idle_timeout = shared.limits.idle_timeout;
    let mut drain = shared.drain.clone();
    let mut draining = draining;
    loop {
        let deadline = conn.deadline(header_timeout, idle_timeout);
        let wake = match deadline {
            Some(at) => shared.base + Duration::from_millis(at),
            // A handler is at work: look again in a while.
            None => Instant::now() + idle_timeout,
        };
        tokio::select! {
            _ = &mut served => return,
            _ = tokio::time::sleep_until(wake) => {
                if conn.deadline(header_timeout, idle_timeout).is_some_and(|at| at <= conn.now()) {
                    // Dropping the connection closes the socket.
                    return;
                }
            }
            closed = async { drain.wait_for(|d| *d).await.is_err() }, if !draining => {
                draining = true;
                if closed || conn.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                // The request in progress finishes; the connection closes
                // after its response.
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// True for accept errors that mean the process is out of file descriptors
/// (or the system out of memory for sockets): waiting lets others close.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Serves `router` on `listener` until `shutdown` turns true, then drains
/// as the module says. `draining` is set the moment the shutdown begins.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    draining: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (start_drain, drain) = watch::channel(false);
    let shared = Shared {
        router,
        limits,
        work: Arc::new(Work::default()),
        base: Instant::now(),
        drain,
    };
    let mut served: JoinSet<()> = JoinSet::new();
    let mut reserved: JoinSet<()> = JoinSet::new();
    let accept = |served: &mut JoinSet<()>,
                  reserved: &mut JoinSet<()>,
                  accepted: io::Result<(TcpStream, SocketAddr)>| {
        while served.try_join_next().is_some() {}
        while reserved.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) => {
                if served.len() < limits.max_connections {
                    served.spawn(connection(shared.clone(), stream, peer, false));
                } else if reserved.len() < RESERVE {
                    metrics::counter!("confab_connections_over_cap_total", "outcome" => "reserved")
                        .increment(1);
                    reserved.spawn(connection(shared.clone(), stream, peer, true));
                } else {
                    metrics::counter!("confab_connections_over_cap_total", "outcome" => "closed")
                        .increment(1);
                    drop(stream);
                }
                false
            }
            Err(e) => out_of_resources(&e),
        }
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if accept(&mut served, &mut reserved, accepted) {
                    tracing::warn!("out of file descriptors: not accepting for 100 ms (lower MAX_CONNECTIONS or raise the file limit)");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            _ = async { shutdown.wait_for(|s| *s).await.is_err() } => break,
        }
    }
    draining.store(true, Ordering::SeqCst);
    let _ = start_drain.send(true);
    let deadline = Instant::now() + limits.shutdown_timeout;
    // New connections are still served while requests are in progress
    // (with `/ready` saying 503), until there are none or time is up.
    loop {
        let none_left = shared.work.none_left.notified();
        tokio::pin!(none_left);
        none_left.as_mut().enable();
        if shared.work.in_flight.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::select! {
            accepted = listener.accept() => {
                if accept(&mut served, &mut reserved, accepted) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            _ = &mut none_left => {}
            _ = tokio::time::sleep_until(deadline) => {
                let left = shared.work.in_flight.load(Ordering::SeqCst);
                tracing::warn!(requests = left, "shutdown deadline reached: cutting requests still in progress");
                break;
            }
        }
    }
    drop(listener);
    served.shutdown().await;
    reserved.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_phase_of_the_connection() {
        let base = Instant::now();
        let c = Arc::new(ConnState::new(base));
        let work = Arc::new(Work::default());
        let h = Duration::from_secs(10);
        let i = Duration::from_secs(60);
        let start = c.header_since.load(Ordering::SeqCst);
        assert_eq!(
            c.deadline(h, i),
            Some(start + 10_000),
            "a new connection awaits headers"
        );
        let guard = InFlight::start(&c, &work);
        assert_eq!(
            c.deadline(h, i),
            None,
            "a handler at work is not timed here"
        );
        guard.responding();
        let wrote = c.last_write.load(Ordering::SeqCst);
        assert_eq!(
            c.deadline(h, i),
            Some(wrote + 60_000),
            "a response must be read"
        );
        drop(guard);
        assert_eq!(work.in_flight.load(Ordering::SeqCst), 0);
        let idle = c.idle_since.load(Ordering::SeqCst);
        assert_eq!(c.deadline(h, i), Some(idle + 60_000), "kept alive");
        c.read_some();
        let since = c.header_since.load(Ordering::SeqCst);
        assert_eq!(
            c.deadline(h, i),
            Some(since + 10_000),
            "the next request's headers"
        );
    }

    #[test]
    fn the_default_cap_leaves_room_under_the_file_limit() {
        let cap = default_max_connections();
        assert!((16..=MAX_DEFAULT_CONNECTIONS as usize).contains(&cap));
    }
}
