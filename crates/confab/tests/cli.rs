//! The binary as an operator runs it.

use std::io::Write;
use std::process::{Command, Stdio};

fn confab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_confab"));
    // Only what a test sets reaches the binary, not the developer's `.env`.
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c.current_dir(std::env::temp_dir());
    c
}

fn temp_db() -> String {
    let dir = std::env::temp_dir().join("confab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}/cli-{}.db", dir.display(), uuid::Uuid::new_v4())
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    for (var, value) in [
        ("PORT", "eighty"),
        ("TWILIO_ACCOUNT_SID", "nope"),
        ("DATABASE_URL", "mysql://x"),
        ("WHATSAPP_API_URL", "ftp://x"),
    ] {
        let out = confab()
            .arg("serve")
            .env(var, value)
            .env(
                "DATABASE_URL",
                if var == "DATABASE_URL" {
                    value.to_string()
                } else {
                    temp_db()
                },
            )
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{var}: {err}");
        assert!(lines[0].contains(var), "{var}: {err}");
    }
}

#[test]
fn migrate_user_and_key_make_the_first_credentials() {
    let db = temp_db();
    let out = confab()
        .args(["migrate"])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = confab()
        .args([
            "user",
            "add",
            "ana",
            "--role",
            "admin",
            "--database-url",
            &db,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-long-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("user ana created"));

    // The same name twice is refused.
    let again = confab()
        .args(["user", "add", "ana", "--database-url", &db])
        .stdin(Stdio::piped())
        .output_with(b"another-password\n");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let short = confab()
        .args(["user", "add", "bob", "--database-url", &db])
        .stdin(Stdio::piped())
        .output_with(b"short\n");
    assert!(!short.status.success());

    let out = confab()
        .args(["key", "create", "factory"])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout.lines().last().unwrap();
    assert!(key.starts_with("cfb_") && !key.contains(' '), "{stdout}");
}

/// Runs `confab ARGS` on `db`, returning whether it succeeded and what it printed.
fn run(db: &str, args: &[&str]) -> (bool, String) {
    let out = confab()
        .args(args)
        .env("DATABASE_URL", db)
        .stdin(Stdio::piped())
        .output_with(b"another-long-password\n");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn users_and_keys_are_listed_changed_and_taken_back() {
    let db = temp_db();
    assert!(run(&db, &["user", "add", "ana", "--role", "viewer"]).0);
    let (ok, err) = run(&db, &["user", "add", "olga", "--role", "operator"]);
    assert!(!ok && err.contains("'operator' is not a role"), "{err}");

    let (ok, out) = run(&db, &["user", "set-role", "ana", "editor"]);
    assert!(ok && out.contains("ana now has the role editor"), "{out}");
    let (ok, out) = run(&db, &["user", "set-password", "ana"]);
    assert!(ok && out.contains("earlier tokens no longer work"), "{out}");
    assert!(run(&db, &["user", "disable", "ana"]).0);
    let (ok, out) = run(&db, &["user", "list"]);
    assert!(ok, "{out}");
    let line = out.lines().find(|l| l.starts_with("ana ")).unwrap();
    assert!(line.contains("editor") && !line.ends_with(" no"), "{out}");
    assert!(run(&db, &["user", "enable", "ana"]).0);
    let (_, out) = run(&db, &["user", "list"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("ana ") && l.ends_with(" no")),
        "{out}"
    );
    assert!(run(&db, &["user", "delete", "ana"]).0);
    let (ok, err) = run(&db, &["user", "delete", "ana"]);
    assert!(!ok && err.contains("no user ana"), "{err}");

    let (ok, out) = run(
        &db,
        &["user", "add", "sam", "--role", "agent", "--bots", "default"],
    );
    assert!(ok && out.contains("limited to bots 1"), "{out}");
    let (ok, err) = run(&db, &["key", "create", "shop", "--bots", "default,nope"]);
    assert!(!ok && err.contains("no bot \"nope\""), "{err}");

    let (ok, out) = run(&db, &["key", "create", "reports", "--role", "viewer"]);
    assert!(ok && out.contains("role viewer"), "{out}");
    let (ok, out) = run(&db, &["key", "list"]);
    assert!(ok, "{out}");
    let line = out.lines().find(|l| l.contains("reports")).unwrap();
    let id = line.split_whitespace().next().unwrap().to_string();
    assert!(line.contains("viewer") && line.ends_with(" no"), "{out}");
    assert!(!out.contains("cfb_"), "a listed key never shows its secret");
    assert!(run(&db, &["key", "revoke", &id]).0);
    let (_, out) = run(&db, &["key", "list"]);
    let line = out.lines().find(|l| l.contains("reports")).unwrap();
    assert!(!line.ends_with(" no"), "{out}");
    let (ok, err) = run(&db, &["key", "revoke", "999"]);
    assert!(!ok && err.contains("no API key 999"), "{err}");
}

trait OutputWith {
    fn output_with(&mut self, input: &[u8]) -> std::process::Output;
}

impl OutputWith for Command {
    fn output_with(&mut self, input: &[u8]) -> std::process::Output {
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that does not read its input may have ended already:
        // its pipe is closed, which is no failure of the test's.
        if let Err(e) = child.stdin.take().unwrap().write_all(input) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        child.wait_with_output().unwrap()
    }
}

fn repo_flows() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../flows").to_string()
}

#[test]
fn flow_validate_names_file_node_and_problem() {
    let dir = std::env::temp_dir().join(format!("confab-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "id: bad\nnodes:\n  - { id: a, type: ask, text: \"?\", save_as: x, answer: { kind: text, pattern: \"([\" }, next: gone }\n").unwrap();
    let out = confab()
        .args(["flow", "validate"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{}: node a: next names unknown node \"gone\"",
            bad.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("pattern \"([\" is not a valid regular expression"),
        "{text}"
    );
    let out = confab()
        .args([
            "flow",
            "validate",
            &format!("{}/product_review.yaml", repo_flows()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn flow_test_runs_the_bundled_transcripts() {
    let out = confab()
        .args(["flow", "test", "--flows-dir", &repo_flows()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    let schema = confab().args(["flow", "schema"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert!(v["$defs"]["Node"].is_object());
}

#[test]
fn chat_talks_to_a_bot_from_the_terminal() {
    let db = temp_db();
    let out = confab()
        .args(["demo", "--database-url", &db])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("4 demo order(s) added"));
    let out = confab()
        .args([
            "chat",
            "--flow",
            "pms_menu",
            "--from",
            "+27123456789",
            "--database-url",
            &db,
        ])
        .stdin(Stdio::piped())
        .output_with(b"hi\n2\nORD-12345\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("bot> 🏭 Production assistant"), "{text}");
    assert!(
        text.contains("Status: In Progress") && text.contains("SLA: ✅ On track"),
        "{text}"
    );
}

/// Kills a server process when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two `confab serve` processes on one PostgreSQL database count a
/// contact's messages together: the rate limit lives in the database.
#[tokio::test]
async fn two_server_processes_share_one_rate_limit() {
    let Some(admin) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    else {
        return;
    };
    let store = confab_store::Store::connect(&admin).await.unwrap();
    let name = store.create_test_database().await.unwrap();
    store.close().await;
    let db = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    // Migrate once, so the two servers do not race to create the tables.
    assert!(
        confab()
            .arg("migrate")
            .env("DATABASE_URL", &db)
            .status()
            .unwrap()
            .success()
    );
    let ports = [free_port(), free_port()];
    let _servers: Vec<Server> = ports
        .iter()
        .map(|port| {
            Server(
                confab()
                    .arg("serve")
                    .env("DATABASE_URL", &db)
                    .env("HOST", "127.0.0.1")
                    .env("PORT", port.to_string())
                    .env("RATE_LIMIT_MESSAGES", "3")
                    .env("RATE_LIMIT_WINDOW_SECONDS", "600")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let http = reqwest::Client::new();
    for port in ports {
        let mut ready = false;
        for _ in 0..100 {
            if http
                .get(format!("http://127.0.0.1:{port}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ready, "the server on port {port} did not start");
    }
    let mut answers = Vec::new();
    for i in 0..6 {
        let r = http
            .post(format!("http://127.0.0.1:{}/webhooks/twilio", ports[i % 2]))
            .form(&[
                ("From", "whatsapp:+15550007070"),
                ("To", "whatsapp:+14155238886"),
                ("Body", "hi"),
                ("MessageSid", &format!("SMproc{i}")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        answers.push(r.text().await.unwrap());
    }
    let told: Vec<usize> = (0..6)
        .filter(|&i| answers[i].contains("faster than I can answer"))
        .collect();
    assert_eq!(told, [3], "{answers:#?}");
    assert!(
        answers[..3].iter().all(|a| a.contains("<Message>")),
        "{answers:#?}"
    );
    assert!(
        answers[4..].iter().all(|a| !a.contains("<Message>")),
        "{answers:#?}"
    );
}

/// Starts `confab serve` on a free port with `ulimit -n` set to `files`,
/// waiting until it is ready.
async fn serve_with_file_limit(files: u32, envs: &[(&str, &str)]) -> (Server, u16) {
    let port = free_port();
    let mut c = Command::new("bash");
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .args([
            "-c",
            &format!("ulimit -n {files} && exec \"$0\" serve"),
            env!("CARGO_BIN_EXE_confab"),
        ])
        .env("DATABASE_URL", temp_db())
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    let server = Server(c.spawn().unwrap());
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (server, port);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the server did not start");
}

/// Whether a fresh connection gets 200 from `path` within `secs`.
async fn answers_within(port: u16, path: &str, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        let fresh = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(1))
            .build()
            .unwrap();
        if fresh
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

/// With the file limit at 600, 700 idle connections once made `/health`
/// unreachable: the connection cap is taken from the limit, and a few
/// connections past it are kept for health checks.
#[tokio::test]
async fn health_answers_with_more_idle_connections_than_the_file_limit() {
    let (_server, port) = serve_with_file_limit(600, &[]).await;
    let mut idle = Vec::new();
    for _ in 0..700 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            idle.push(s);
        }
    }
    assert!(
        answers_within(port, "/health", 6).await,
        "/health is reachable"
    );
    assert!(
        answers_within(port, "/ready", 6).await,
        "/ready is reachable"
    );
    drop(idle);
}

/// SIGTERM with idle and half-sent requests open: the process exits at once
/// rather than refusing connections while it waits for them.
#[tokio::test]
async fn sigterm_exits_promptly_with_half_sent_requests_open() {
    use tokio::io::AsyncWriteExt;
    let (mut server, port) = serve_with_file_limit(1024, &[]).await;
    let mut open = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(b"POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        open.push(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(open);
}

#[test]
fn master_key_new_prints_a_key_and_rotate_replaces_the_key_file() {
    let out = confab().args(["master-key", "new"]).output().unwrap();
    assert!(out.status.success());
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(key.len(), 43, "32 bytes in base64: {key}");

    // A folder of its own: the key file lives beside the database.
    let dir = std::env::temp_dir().join(format!("confab-key-{}", uuid::Uuid::new_v4()));
    let db = format!("sqlite://{}/confab.db", dir.display());
    let (ok, out) = run(&db, &["master-key", "rotate"]);
    assert!(ok, "{out}");
    assert!(out.contains("0 credential(s) resealed"), "{out}");
    let file = dir.join("confab.key");
    let before = std::fs::read_to_string(&file).unwrap();
    let (ok, _) = run(&db, &["master-key", "rotate"]);
    assert!(ok);
    assert_ne!(std::fs::read_to_string(&file).unwrap(), before, "a new key");
    std::fs::remove_dir_all(dir).unwrap();
}
