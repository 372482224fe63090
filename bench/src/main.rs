//! Load generator for `confab serve`: fires signed Twilio inbound webhooks
//! at `<url>/webhooks/twilio` and reports throughput, latency and the
//! server's memory.
//!
//! Each contact's messages go out in order, one in flight per contact, as a
//! real phone would send them. Closed loop (default): `--concurrency` senders
//! as fast as the server answers. Open loop (`--rate`): messages are due at a
//! fixed rate whatever the server does, and latency counts from when each was
//! due, so a slow server shows up as latency rather than as a lower rate.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use tokio::sync::mpsc;

mod client;

#[derive(Parser, Debug)]
#[command(
    name = "confab-bench",
    version,
    about = "Signed Twilio webhook load against a local confab server"
)]
struct Args {
    /// Base URL of the server, http://; only loopback addresses are accepted.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Signs each request with X-Twilio-Signature; without it requests go unsigned.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Distinct senders (whatsapp:+1555 and seven digits).
    #[arg(long, default_value_t = 1000)]
    contacts: u64,
    /// Total messages to send.
    #[arg(long, default_value_t = 50_000)]
    messages: u64,
    /// Requests in flight in closed-loop mode.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Open loop: messages per second, fixed.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop sending after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Server process whose VmHWM / VmRSS to report.
    #[arg(long)]
    pid: Option<u32>,
    /// Message bodies, one per line; contact i sends line k on its k-th message.
    #[arg(long)]
    bodies: Option<PathBuf>,
    /// Our WhatsApp number, as Twilio would send it in `To`.
    #[arg(long, default_value = "whatsapp:+14155238886")]
    to: String,
    /// Spread the contacts over this many bots (`bench/run.sh` makes them):
    /// contact i writes to bot i mod N, whose number is +1444 and seven
    /// digits of its index and whose auth token is `--auth-token`, `-`
    /// and its index.
    #[arg(long)]
    bots: Option<u64>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Also print each second's requests, p99 and max, by when they were
    /// due: a tail from a few stalls shows as a few bad seconds.
    #[arg(long)]
    timeline: bool,
}

/// What every sender shares.
struct Ctx {
    client: client::Client,
    webhook_url: String,
    auth_token: Option<String>,
    to: String,
    bots: Option<u64>,
    bodies: Vec<String>,
    /// Makes MessageSids unique across runs against the same database.
    run_id: u64,
    seq: AtomicU64,
    /// When sending began: the timeline counts seconds from it.
    started: Instant,
}

#[derive(Default)]
struct Stats {
    /// Each request's second (from `Ctx::started`, by when it was due)
    /// and its latency in µs.
    samples: Vec<(u32, u64)>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.samples.extend(other.samples);
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

/// The body contact `contact` sends as its `k`-th message (from 0).
fn body_for(bodies: &[String], contact: u64, k: u64) -> String {
    if bodies.is_empty() {
        return format!("hello {k} from contact {contact}");
    }
    bodies[(k % bodies.len() as u64) as usize].clone()
}

fn contact_number(i: u64) -> String {
    format!("+1555{i:07}")
}

/// The number of bot `j` of `--bots`.
fn bot_number(j: u64) -> String {
    format!("+1444{j:07}")
}

/// Nearest-rank percentile of sorted values; `p` in 0..=100.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn load_bodies(path: &PathBuf) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return Err(format!("{} has no lines", path.display()));
    }
    Ok(lines)
}

/// Only loopback: this tool is for measuring our own server.
fn check_loopback(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("--url '{url}': {e}"))?;
    let host = parsed.host_str().unwrap_or("");
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>();
    if host == "localhost" || ip.is_ok_and(|ip| ip.is_loopback()) {
        Ok(())
    } else {
        Err(format!(
            "--url must point at a loopback address, not '{host}'"
        ))
    }
}

/// Sends message `k` of `contact` and records how it went; latency counts from `since`.
async fn fire(ctx: &Ctx, contact: u64, k: u64, since: Instant, stats: &mut Stats) {
    let seq = ctx.seq.fetch_add(1, Ordering::Relaxed);
    let number = contact_number(contact);
    // With bots, the contact writes to its bot's number, signed with its token.
    let bot = ctx.bots.map(|n| contact % n);
    let to = match bot {
        Some(j) => format!("whatsapp:{}", bot_number(j)),
        None => ctx.to.clone(),
    };
    let token = match (bot, &ctx.auth_token) {
        (Some(j), Some(t)) => Some(format!("{t}-{j}")),
        (_, t) => t.clone(),
    };
    let params: Vec<(String, String)> = [
        ("From", format!("whatsapp:{number}")),
        ("To", to),
        ("Body", body_for(&ctx.bodies, contact, k)),
        ("MessageSid", format!("SM{:016x}{seq:016x}", ctx.run_id)),
        ("ProfileName", format!("Bench Contact {contact}")),
        ("WaId", number[1..].to_string()),
        ("NumMedia", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let sig = token
        .as_ref()
        .map(|token| confab_channels::twilio::signature(token, &ctx.webhook_url, &params));
    let header = sig.as_deref().map(|s| ("X-Twilio-Signature", s));
    let outcome = match serde_urlencoded::to_string(&params) {
        Ok(body) => ctx
            .client
            .post(header.as_slice(), &body)
            .await
            .map_err(|e| e.key()),
        Err(_) => Err("encoding".to_string()),
    };
    let second = since.saturating_duration_since(ctx.started).as_secs() as u32;
    stats
        .samples
        .push((second, since.elapsed().as_micros() as u64));
    match outcome {
        Ok(()) => stats.ok += 1,
        Err(key) => *stats.errors.entry(key).or_default() += 1,
    }
}

/// `concurrency` senders, each owning every `concurrency`-th contact and
/// cycling through them, so no contact ever has two messages in flight.
async fn closed_loop(ctx: Arc<Ctx>, args: &Args, deadline: Option<Instant>) -> Stats {
    let senders = args.concurrency.min(args.contacts);
    let budget = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..senders {
        let (ctx, budget) = (ctx.clone(), budget.clone());
        let owned: Vec<u64> = (w..args.contacts).step_by(senders as usize).collect();
        let total = args.messages;
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut sent_per_contact = vec![0u64; owned.len()];
            for turn in 0.. {
                if deadline.is_some_and(|d| Instant::now() >= d)
                    || budget.fetch_add(1, Ordering::Relaxed) >= total
                {
                    break;
                }
                let i = turn % owned.len();
                fire(
                    &ctx,
                    owned[i],
                    sent_per_contact[i],
                    Instant::now(),
                    &mut stats,
                )
                .await;
                sent_per_contact[i] += 1;
            }
            stats
        }));
    }
    collect(tasks).await
}

/// Messages fall due at `rate` per second, round-robin over contacts; each
/// contact has its own queue and sender so its messages stay in order.
async fn open_loop(ctx: Arc<Ctx>, args: &Args, rate: f64, deadline: Option<Instant>) -> Stats {
    let active = args.contacts.min(args.messages);
    let mut queues = Vec::with_capacity(active as usize);
    let mut tasks = Vec::with_capacity(active as usize);
    for contact in 0..active {
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
        queues.push(tx);
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            while let Some((k, due)) = rx.recv().await {
                fire(&ctx, contact, k, due, &mut stats).await;
            }
            stats
        }));
    }
    let start = Instant::now();
    for n in 0..args.messages {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        if deadline.is_some_and(|d| due >= d) {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let contact = n % active;
        // A closed queue only means that sender is gone; nothing to do.
        let _ = queues[contact as usize].send((n / active, due));
    }
    drop(queues);
    collect(tasks).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Stats>>) -> Stats {
    let mut all = Stats::default();
    for t in tasks {
        match t.await {
            Ok(s) => all.merge(s),
            Err(e) => eprintln!("a sender failed: {e}"),
        }
    }
    all
}

/// The CPU time the process has used, user and system, in seconds
/// (`/proc/{pid}/stat`, in USER_HZ: 100 a second on Linux).
fn cpu_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime are the 14th and 15th fields; the 3rd is the first here.
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// (VmHWM, VmRSS) in KiB.
fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

fn validate(args: &Args) -> Result<(), String> {
    check_loopback(&args.url)?;
    if args.contacts == 0 || args.contacts > 10_000_000 {
        return Err("--contacts must be from 1 to 10000000".into());
    }
    if args.messages == 0 || args.concurrency == 0 {
        return Err("--messages and --concurrency must be at least 1".into());
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--rate must be a positive number".into());
    }
    if args.duration.is_some_and(|d| !(d.is_finite() && d > 0.0))
        || !(args.timeout.is_finite() && args.timeout > 0.0)
    {
        return Err("--duration and --timeout must be positive numbers of seconds".into());
    }
    Ok(())
}

// One thread: the load generator takes as little of the server's
// machine as it can.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    if let Err(e) = validate(&args) {
        eprintln!("confab-bench: {e}");
        std::process::exit(2);
    }
    let bodies = match args.bodies.as_ref().map(load_bodies).transpose() {
        Ok(b) => b.unwrap_or_default(),
        Err(e) => {
            eprintln!("confab-bench: {e}");
            std::process::exit(2);
        }
    };
    let webhook_url = format!("{}/webhooks/twilio", args.url.trim_end_matches('/'));
    let client = reqwest::Url::parse(&webhook_url)
        .map_err(|e| e.to_string())
        .and_then(|url| {
            client::Client::new(
                &url,
                confab_channels::USER_AGENT,
                Duration::from_secs_f64(args.timeout),
            )
        });
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            eprintln!("confab-bench: --url: {e}");
            std::process::exit(2);
        }
    };
    let ctx = Arc::new(Ctx {
        client,
        webhook_url,
        auth_token: args.auth_token.clone().filter(|t| !t.is_empty()),
        to: args.to.clone(),
        bots: args.bots.filter(|n| *n > 0),
        bodies,
        run_id: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        seq: AtomicU64::new(0),
        started: Instant::now(),
    });
    if ctx.auth_token.is_none() {
        eprintln!("confab-bench: no auth token; requests go unsigned");
    }

    // The server's memory every 5 s, to see whether it stays flat.
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    if let Some(pid) = args.pid {
        let samples = samples.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if let Some((_, rss)) = memory_of(pid) {
                    samples.lock().unwrap_or_else(|e| e.into_inner()).push(rss);
                }
            }
        });
    }
    let started = ctx.started;
    let cpu_before = args.pid.and_then(cpu_of);
    let deadline = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let stats = match args.rate {
        Some(rate) => open_loop(ctx, &args, rate, deadline).await,
        None => closed_loop(ctx, &args, deadline).await,
    };
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<u64> = stats.samples.iter().map(|&(_, l)| l).collect();
    latencies.sort_unstable();
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let cpu = match (cpu_before, args.pid.and_then(cpu_of)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    report(&args, &stats, &latencies, elapsed, &samples, cpu);
    if args.timeline {
        for (second, sorted) in by_second(&stats.samples) {
            println!(
                "second {second:>4}  requests {:>6}  p99 {:>8.2}  max {:>8.2} ms",
                sorted.len(),
                percentile(&sorted, 99.0) as f64 / 1000.0,
                sorted.last().copied().unwrap_or(0) as f64 / 1000.0
            );
        }
    }
}

/// The latencies of each second, sorted, seconds in order.
fn by_second(samples: &[(u32, u64)]) -> BTreeMap<u32, Vec<u64>> {
    let mut seconds: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for &(second, latency) in samples {
        seconds.entry(second).or_default().push(latency);
    }
    for sorted in seconds.values_mut() {
        sorted.sort_unstable();
    }
    seconds
}

/// `latencies` are every request's, sorted.
/// `cpu_s` is the CPU time the server used meanwhile.
fn report(
    args: &Args,
    stats: &Stats,
    latencies: &[u64],
    elapsed: f64,
    rss_samples_kib: &[u64],
    cpu_s: Option<f64>,
) {
    let sent = latencies.len() as u64;
    let errors: u64 = stats.errors.values().sum();
    let ms = |p: f64| percentile(latencies, p) as f64 / 1000.0;
    let max = latencies.last().copied().unwrap_or(0) as f64 / 1000.0;
    let rate = if elapsed > 0.0 {
        sent as f64 / elapsed
    } else {
        0.0
    };
    let memory = args.pid.and_then(memory_of);
    if args.json {
        let summary = serde_json::json!({
            "mode": if args.rate.is_some() { "open" } else { "closed" },
            "target_rate": args.rate,
            "concurrency": args.concurrency,
            "contacts": args.contacts,
            "sent": sent,
            "ok": stats.ok,
            "errors": errors,
            "errors_by_status": stats.errors,
            "elapsed_s": elapsed,
            "messages_per_s": rate,
            "latency_ms": { "p50": ms(50.0), "p90": ms(90.0), "p99": ms(99.0), "max": max },
            "server_pid": args.pid,
            "server_vm_hwm_kib": memory.map(|m| m.0),
            "server_vm_rss_kib": memory.map(|m| m.1),
            "server_rss_every_5s_kib": rss_samples_kib,
            "server_cpu_s": cpu_s,
        });
        println!("{summary}");
        return;
    }
    println!("messages sent   {sent}");
    let by_status: Vec<String> = stats
        .errors
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if by_status.is_empty() {
        println!("errors          0");
    } else {
        println!("errors          {errors} ({})", by_status.join(", "));
    }
    println!("elapsed         {elapsed:.2} s");
    println!("throughput      {rate:.1} msg/s");
    println!(
        "latency ms      p50 {:.2}  p90 {:.2}  p99 {:.2}  max {max:.2}",
        ms(50.0),
        ms(90.0),
        ms(99.0)
    );
    match (args.pid, memory) {
        (Some(pid), Some((hwm, rss))) => {
            println!(
                "server memory   peak {:.1} MiB, now {:.1} MiB (pid {pid})",
                hwm as f64 / 1024.0,
                rss as f64 / 1024.0
            )
        }
        (Some(pid), None) => {
            println!("server memory   unavailable (cannot read /proc/{pid}/status)")
        }
        (None, _) => {}
    }
    if let Some(cpu) = cpu_s
        && sent > 0
    {
        println!(
            "server CPU      {cpu:.2} s, {:.0} us per message",
            cpu * 1e6 / sent as f64
        );
    }
    if !rss_samples_kib.is_empty() {
        let mib: Vec<String> = rss_samples_kib
            .iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect();
        println!("server RSS MiB  every 5 s: {}", mib.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 51.0), 3);
    }

    #[test]
    fn bodies_cycle_per_contact() {
        let bodies: Vec<String> = ["hi", "1", "yes"].iter().map(|s| s.to_string()).collect();
        let walk: Vec<String> = (0..5).map(|k| body_for(&bodies, 42, k)).collect();
        assert_eq!(walk, ["hi", "1", "yes", "hi", "1"]);
        // Every contact starts at the first line.
        assert_eq!(body_for(&bodies, 0, 0), "hi");
        assert_eq!(body_for(&bodies, 999, 0), "hi");
        assert_eq!(body_for(&[], 3, 2), "hello 2 from contact 3");
    }

    #[test]
    fn the_timeline_groups_by_second_in_order() {
        let seconds = by_second(&[(1, 30), (0, 20), (1, 10), (0, 5)]);
        let got: Vec<(u32, Vec<u64>)> = seconds.into_iter().collect();
        assert_eq!(got, vec![(0, vec![5, 20]), (1, vec![10, 30])]);
    }

    #[test]
    fn contacts_are_distinct_numbers() {
        assert_eq!(contact_number(0), "+15550000000");
        assert_eq!(contact_number(1234), "+15550001234");
        assert_eq!(contact_number(9_999_999).len(), 12);
    }

    #[test]
    fn only_loopback_targets() {
        assert!(check_loopback("http://127.0.0.1:8000").is_ok());
        assert!(check_loopback("http://localhost:8000").is_ok());
        assert!(check_loopback("http://[::1]:8000").is_ok());
        assert!(check_loopback("http://example.com").is_err());
        assert!(check_loopback("http://10.0.0.1:8000").is_err());
        assert!(check_loopback("not a url").is_err());
    }

    #[test]
    fn arguments_parse() {
        let a = Args::try_parse_from([
            "confab-bench",
            "--rate",
            "1000",
            "--duration",
            "10",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.rate, Some(1000.0));
        assert_eq!(a.messages, 50_000);
        assert!(validate(&a).is_ok());
        let bad = Args::try_parse_from(["confab-bench", "--contacts", "0"]).unwrap();
        assert!(validate(&bad).is_err());
    }
}
