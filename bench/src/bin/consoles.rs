//! Open consoles: N logged-in inboxes, each holding the live stream
//! (`/console/live`) open and, like the page's script, drawing the contact
//! list again (`GET /console/inbox`) when a `changed` event comes (the
//! server tells a stream of changes at most once every 2 s). Runs for `--duration` seconds, or until SIGTERM, and
//! prints what they got.
//!
//! Plain HTTP/1.1 over loopback, one connection for the stream and one
//! kept for the page loads, as a browser keeps them; its own cost stays
//! small beside the server's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// host:port of the server (loopback).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// The consoles' session cookies (API access tokens), separated by
    /// commas: console i uses the i-th (round the list), as agents each
    /// logged in as themselves.
    #[arg(long, env = "CONSOLE_SESSION", hide_env_values = true)]
    session: String,
    /// Open consoles.
    #[arg(long, default_value_t = 50)]
    consoles: usize,
    /// Seconds to keep them open.
    #[arg(long, default_value_t = 30)]
    duration: u64,
}

#[derive(Default)]
struct Counts {
    opened: AtomicU64,
    changed: AtomicU64,
    reloads: AtomicU64,
    failed: AtomicU64,
}

/// A request as the page's script makes it (htmx says so in `HX-Request`).
fn request(addr: &str, path: &str, session: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: confab_session={session}\r\n\
         HX-Request: true\r\nHX-Trigger: contact-list\r\nHX-Target: contact-list\r\n\
         Accept: text/html, text/event-stream\r\n\r\n"
    )
}

/// A console's connection for its page loads, kept open between them as
/// a browser keeps it.
type Conn = BufReader<TcpStream>;

/// Loads the inbox page on `conn` (a new connection when there is none
/// or the last one closed) and reads the answer; whether it was a 200.
/// The connection stays for the next load only if the answer said how
/// long it was.
async fn reload(addr: &str, session: &str, conn: &mut Option<Conn>) -> bool {
    for fresh in [false, true] {
        if fresh || conn.is_none() {
            match TcpStream::connect(addr).await {
                Ok(s) => *conn = Some(BufReader::new(s)),
                Err(_) => return false,
            }
        }
        let Some(c) = conn.as_mut() else { return false };
        match load(c, &request(addr, "/console/inbox", session)).await {
            Some((ok, keep)) => {
                if !keep {
                    *conn = None;
                }
                return ok;
            }
            // The server closed a connection it had kept: once more on a new one.
            None => *conn = None,
        }
    }
    false
}

/// One request and its answer: (a 200, the connection may be used again);
/// none when the connection was closed before an answer.
async fn load(c: &mut Conn, req: &str) -> Option<(bool, bool)> {
    c.get_mut().write_all(req.as_bytes()).await.ok()?;
    let mut line = String::new();
    if c.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let ok = line.starts_with("HTTP/1.1 200");
    let (mut length, mut close) = (None, false);
    loop {
        line.clear();
        if c.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        close |= l == "connection: close";
    }
    match length {
        Some(n) => {
            let mut body = vec![0; n];
            c.read_exact(&mut body).await.ok()?;
            Some((ok, !close))
        }
        None => {
            let mut body = Vec::new();
            c.read_to_end(&mut body).await.ok()?;
            Some((ok, false))
        }
    }
}

async fn console(args: Arc<Args>, session: String, counts: Arc<Counts>, until: Instant) {
    let Ok(mut s) = TcpStream::connect(&args.addr).await else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // As the inbox's list does, with no conversation open.
    let req = request(&args.addr, "/console/live?contact=0", &session);
    if s.write_all(req.as_bytes()).await.is_err() {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut lines = BufReader::new(s).lines();
    let mut page: Option<Conn> = None;
    match lines.next_line().await {
        Ok(Some(status)) if status.starts_with("HTTP/1.1 200") => {
            counts.opened.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    // The server tells of changes at most every 2 s a stream; the page
    // reloads on each.
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = tokio::time::sleep_until(until.into()) => return,
        };
        match line {
            Ok(Some(l)) if l == "event: changed" => {
                counts.changed.fetch_add(1, Ordering::Relaxed);
                let ok = reload(&args.addr, &session, &mut page).await;
                let c = if ok { &counts.reloads } else { &counts.failed };
                c.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(_)) => continue,
            _ => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Arc::new(Args::parse());
    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs(args.duration);
    let sessions: Vec<String> = args.session.split(',').map(str::to_string).collect();
    let tasks: Vec<_> = (0..args.consoles)
        .map(|i| {
            let session = sessions[i % sessions.len()].clone();
            tokio::spawn(console(args.clone(), session, counts.clone(), until))
        })
        .collect();
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = all => {}
        _ = term.recv() => {}
    }
    println!(
        "consoles: {} opened, {} changed events, {} inbox reloads, {} failures",
        counts.opened.load(Ordering::Relaxed),
        counts.changed.load(Ordering::Relaxed),
        counts.reloads.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
}
