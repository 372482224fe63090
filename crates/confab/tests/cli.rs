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
        child.stdin.take().unwrap().write_all(input).unwrap();
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
