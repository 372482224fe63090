//! What a hostile client can do to a running `confab serve`, measured:
//! memory under failed logins and under odd methods, how slow connections
//! are closed, whether `/health` answers with every connection taken, and
//! half-sent requests held open across a shutdown.
//! Prints what it saw; `bench/hostile.sh` runs each against a fresh server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(
    name = "hostile",
    about = "Measure what hostile clients cost a running confab serve"
)]
struct Args {
    /// host:port of the server.
    #[arg(long, default_value = "127.0.0.1:18081")]
    addr: String,
    /// The server's process id, to read its memory.
    #[arg(long)]
    pid: Option<u32>,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Failed logins, each from its own client (X-Forwarded-For; the server
    /// must trust 127.0.0.1 as a proxy), so that every one is hashed.
    Logins {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Seconds to watch memory after the burst.
        #[arg(long, default_value_t = 30)]
        after: u64,
    },
    /// Requests with made-up methods.
    Methods {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
    /// Connections that send half a request (headers, or a body) and stop,
    /// and connections left idle after a request.
    Slow {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Seconds to wait before counting the closed ones.
        #[arg(long, default_value_t = 40)]
        wait: u64,
    },
    /// Idle connections past the server's file limit, then `/health`.
    Flood {
        #[arg(long, default_value_t = 700)]
        connections: usize,
    },
    /// Rounds of connections opened together and dropped (a third after a
    /// request, a third mid-headers, a third silent): memory after each.
    Churn {
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
    },
    /// Half-sent requests held open for a while (to time a shutdown).
    Hold {
        #[arg(long, default_value_t = 100)]
        connections: usize,
        #[arg(long, default_value_t = 40)]
        seconds: u64,
    },
}

/// The server's resident memory in MiB.
fn rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn show(m: Option<f64>) -> String {
    m.map_or("?".into(), |m| format!("{m:.1} MiB"))
}

/// One HTTP/1.1 request on a fresh connection; the status code, if any
/// answer came.
async fn request(addr: &str, raw: &str) -> Option<u16> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    s.write_all(raw.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

async fn logins(addr: &str, pid: Option<u32>, count: usize, concurrency: usize, after: u64) {
    let before = rss_mib(pid);
    let started = Instant::now();
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let peak = std::sync::Arc::new(std::sync::Mutex::new(before.unwrap_or(0.0)));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(m) = rss_mib(pid) {
                    let mut p = peak.lock().unwrap();
                    *p = p.max(m);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, statuses, addr) = (next.clone(), statuses.clone(), addr.to_string());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let body = format!(r#"{{"username":"user{i}","password":"guess-{i}"}}"#);
                    let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
                    let raw = format!(
                        "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {ip}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let key = request(&addr, &raw)
                        .await
                        .map_or("no answer".to_string(), |s| s.to_string());
                    *statuses.lock().unwrap().entry(key).or_default() += 1;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let took = started.elapsed();
    let during = *peak.lock().unwrap();
    tokio::time::sleep(Duration::from_secs(after)).await;
    sampler.abort();
    let end = rss_mib(pid);
    println!(
        "logins: {count} failed logins at concurrency {concurrency} in {:.1} s ({:.0}/s); answers {:?}",
        took.as_secs_f64(),
        count as f64 / took.as_secs_f64(),
        statuses.lock().unwrap()
    );
    println!(
        "logins: RSS before {}, peak during {:.1} MiB, {after} s after {}",
        show(before),
        during,
        show(end)
    );
}

async fn methods(addr: &str, pid: Option<u32>, count: usize) {
    let metrics_len = |addr: String| async move {
        let raw = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let mut s = TcpStream::connect(&addr).await.ok()?;
        s.write_all(raw.as_bytes()).await.ok()?;
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.ok()?;
        Some(all.len())
    };
    let before_rss = rss_mib(pid);
    let before_len = metrics_len(addr.to_string()).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut statuses = BTreeMap::<u16, usize>::new();
    let started = Instant::now();
    let mut buf = vec![0u8; 8192];
    for i in 0..count {
        let raw = format!("XRANDOM{i:08} /health HTTP/1.1\r\nHost: x\r\n\r\n");
        if s.write_all(raw.as_bytes()).await.is_err() {
            s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(raw.as_bytes()).await.expect("write");
        }
        // Each answer is small and comes in one read: status line first.
        let n = s.read(&mut buf).await.unwrap_or(0);
        let status = String::from_utf8_lossy(&buf[..n])
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        *statuses.entry(status).or_default() += 1;
        if n == 0 {
            s = TcpStream::connect(addr).await.expect("connect");
        }
    }
    let took = started.elapsed();
    let after_len = metrics_len(addr.to_string()).await;
    println!(
        "methods: {count} requests with made-up methods in {:.1} s; answers {statuses:?}",
        took.as_secs_f64()
    );
    println!(
        "methods: /metrics {} bytes before, {} after; RSS {} before, {} after",
        before_len.map_or("?".into(), |n| n.to_string()),
        after_len.map_or("?".into(), |n| n.to_string()),
        show(before_rss),
        show(rss_mib(pid))
    );
}

async fn slow(addr: &str, pid: Option<u32>, connections: usize, wait: u64) {
    let kinds = [
        ("half-sent headers", "GET /health HTTP/1.1\r\nHost: x\r\n"),
        (
            "half-sent body",
            "POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nFrom=",
        ),
        (
            "idle after a request",
            "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        ("nothing sent", ""),
    ];
    let before = rss_mib(pid);
    let mut open = Vec::new();
    for i in 0..connections {
        let (kind, raw) = kinds[i % kinds.len()];
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let _ = s.write_all(raw.as_bytes()).await;
            open.push((kind, s));
        }
    }
    let opened = Instant::now();
    println!(
        "slow: {} connections open ({} of each kind); RSS {}",
        open.len(),
        connections / kinds.len(),
        show(rss_mib(pid))
    );
    let mut checkpoints = vec![5, 15, wait];
    checkpoints.dedup();
    let mut closed_at: Vec<Option<f64>> = vec![None; open.len()];
    let mut buf = vec![0u8; 4096];
    for until in checkpoints {
        while opened.elapsed() < Duration::from_secs(until) {
            for (i, (_, s)) in open.iter_mut().enumerate() {
                if closed_at[i].is_some() {
                    continue;
                }
                match s.try_read(&mut buf) {
                    Ok(0) => closed_at[i] = Some(opened.elapsed().as_secs_f64()),
                    Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                        closed_at[i] = Some(opened.elapsed().as_secs_f64())
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut by_kind = BTreeMap::<&str, (usize, usize)>::new();
        for (i, (kind, _)) in open.iter().enumerate() {
            let e = by_kind.entry(kind).or_default();
            e.1 += 1;
            if closed_at[i].is_some() {
                e.0 += 1;
            }
        }
        let line: Vec<String> = by_kind
            .iter()
            .map(|(k, (c, n))| format!("{k}: {c} of {n}"))
            .collect();
        println!(
            "slow: closed by the server after {until} s: {}",
            line.join("; ")
        );
    }
    println!(
        "slow: RSS {} before, {} with them all closed",
        show(before),
        show(rss_mib(pid))
    );
}

async fn flood(addr: &str, connections: usize) {
    let mut open = Vec::new();
    for _ in 0..connections {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => open.push(s),
            _ => break,
        }
    }
    println!("flood: {} idle connections opened", open.len());
    let started = Instant::now();
    let health = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let api = "GET /api/v1/contacts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    loop {
        if request(addr, health).await == Some(200) {
            println!(
                "flood: /health answered 200 after {:.1} s; /api/v1/contacts meanwhile: {:?}",
                started.elapsed().as_secs_f64(),
                request(addr, api).await
            );
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            println!("flood: /health did not answer within 30 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(open);
}

async fn churn(addr: &str, pid: Option<u32>, rounds: usize, connections: usize) {
    let before = rss_mib(pid);
    let mut after = Vec::new();
    for _ in 0..rounds {
        let mut open = Vec::new();
        for i in 0..connections {
            if let Ok(mut s) = TcpStream::connect(addr).await {
                let raw = match i % 3 {
                    0 => "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                    1 => "GET /health HTTP/1.1\r\nHost: x\r\n",
                    _ => "",
                };
                let _ = s.write_all(raw.as_bytes()).await;
                open.push(s);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(open);
        tokio::time::sleep(Duration::from_secs(1)).await;
        after.push(rss_mib(pid).unwrap_or(0.0));
    }
    let shown: Vec<String> = after.iter().map(|m| format!("{m:.1}")).collect();
    println!(
        "churn: RSS {} before; after each of {rounds} rounds of {connections} connections (MiB): {}",
        show(before),
        shown.join(" ")
    );
}

async fn hold(addr: &str, connections: usize, seconds: u64) {
    let mut open = Vec::new();
    for i in 0..connections {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let raw = if i % 2 == 0 {
                "GET /health HTTP/1.1\r\nHost: x\r\n"
            } else {
                "POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nFrom="
            };
            let _ = s.write_all(raw.as_bytes()).await;
            open.push(s);
        }
    }
    println!("hold: {} half-sent requests open", open.len());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match args.what {
        What::Logins {
            count,
            concurrency,
            after,
        } => logins(&args.addr, args.pid, count, concurrency, after).await,
        What::Methods { count } => methods(&args.addr, args.pid, count).await,
        What::Slow { connections, wait } => slow(&args.addr, args.pid, connections, wait).await,
        What::Flood { connections } => flood(&args.addr, connections).await,
        What::Hold {
            connections,
            seconds,
        } => hold(&args.addr, connections, seconds).await,
        What::Churn {
            rounds,
            connections,
        } => churn(&args.addr, args.pid, rounds, connections).await,
    }
}
