//! What an anonymous client can do to the server: nothing it sends may grow
//! memory without bound, hold a connection for ever, or lock a user out.

mod common;

use common::*;

#[tokio::test]
async fn metrics_labels_never_take_a_value_the_client_chose() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let mut sent = Vec::new();
    for i in 0..50 {
        let method = format!("XRANDOM{i}Q");
        let path = format!("/made-up-{i}-path");
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app
            .http
            .request(m.clone(), format!("{}/health", app.url))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().as_u16() < 500,
            "{method} /health: {}",
            r.status()
        );
        let r = app
            .http
            .request(m, format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        sent.push(method);
        sent.push(path);
    }
    let text = app.text("/metrics").await;
    for value in &sent {
        assert!(!text.contains(value.as_str()), "{value} became a label");
    }
    assert!(
        text.contains(r#"method="other""#),
        "odd methods are counted as other"
    );
    assert!(text.contains(r#"route="unmatched""#));
}

/// A login from the client at `ip` (the server trusts 127.0.0.1 as a proxy,
/// so `X-Forwarded-For` names the client).
async fn login_from(app: &TestApp, ip: &str, user: &str, password: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/auth/login", app.url))
        .header("X-Forwarded-For", ip)
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn wrong_passwords_slow_the_guesser_and_do_not_lock_the_user_out() {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.trusted_proxies = Some("127.0.0.1".into());
    let app = spawn_app(raw).await;
    let hash = confab_server::auth::hash_password("correct horse battery".into())
        .await
        .unwrap();
    app.store
        .create_user(
            "ana",
            &hash,
            confab_server::auth::Role::Admin,
            &confab_store::Change::by("test", 0),
        )
        .await
        .unwrap();
    let attacker = "203.0.113.66";
    for _ in 0..5 {
        let r = login_from(&app, attacker, "ana", "guess").await;
        assert_eq!(r.status(), 401);
    }
    let r = login_from(&app, attacker, "ana", "guess").await;
    assert_eq!(r.status(), 429, "the guesser waits");
    assert_eq!(r.headers()["retry-after"], "1");
    // The guesser may not try other accounts either.
    assert_eq!(login_from(&app, attacker, "bob", "x").await.status(), 429);
    // Ana, from her own address, gets in at once with her password.
    let r = login_from(&app, "198.51.100.7", "ana", "correct horse battery").await;
    assert_eq!(r.status(), 200, "the user is not locked out");
    // The wait grows with each failure after it is served.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        login_from(&app, attacker, "ana", "guess").await.status(),
        401
    );
    let r = login_from(&app, attacker, "ana", "guess").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
}

/// A raw connection to the server, for clients no HTTP library would be.
async fn connect(app: &TestApp) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(app.addr).await.unwrap()
}

/// Whether the server closes `stream` within `secs`, reading (and
/// discarding) whatever it answers first.
async fn closed_within(stream: &mut tokio::net::TcpStream, secs: f64) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn send(stream: &mut tokio::net::TcpStream, bytes: &str) {
    use tokio::io::AsyncWriteExt;
    stream.write_all(bytes.as_bytes()).await.unwrap();
}

fn quick_timeouts(raw: &mut confab_server::RawSettings) {
    raw.http_header_timeout_seconds = Some("1".into());
    raw.http_body_timeout_seconds = Some("1".into());
    raw.http_idle_timeout_seconds = Some("1".into());
}

#[tokio::test]
async fn slow_headers_slow_bodies_and_idle_connections_are_closed() {
    let mut raw = settings(&fresh_database().await, None, None);
    quick_timeouts(&mut raw);
    let app = spawn_app(raw).await;

    let mut silent = connect(&app).await;
    let mut slow_headers = connect(&app).await;
    send(&mut slow_headers, "GET /health HTTP/1.1\r\nHost: x\r\n").await;
    let mut slow_body = connect(&app).await;
    send(
        &mut slow_body,
        "POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nFrom=whatsapp",
    )
    .await;
    let mut idle = connect(&app).await;
    send(&mut idle, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;

    for (what, stream) in [
        ("a connection that sends nothing", &mut silent),
        ("headers that never end", &mut slow_headers),
        ("a body that never ends", &mut slow_body),
        ("a kept-alive connection left idle", &mut idle),
    ] {
        assert!(closed_within(stream, 4.0).await, "{what} is closed");
    }
    assert_eq!(app.count("messages").await, 0);
    // A client that keeps its pace is served as before.
    let r = app
        .http
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn health_and_ready_answer_when_clients_hold_every_connection() {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.max_connections = Some("16".into());
    let app = spawn_app(raw).await;
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(connect(&app).await);
    }
    // Let the server accept them before the probes arrive.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let fresh = || reqwest::Client::builder().build().unwrap();
    for path in ["/health", "/ready"] {
        let r = fresh()
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} over the cap");
    }
    let r = fresh()
        .get(format!("{}/api/v1/contacts", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "other routes wait for a free connection");
    assert_eq!(r.headers()["retry-after"], "1");
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = fresh()
        .get(format!("{}/api/v1/contacts", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "served again once connections are free");
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_or_half_sent_requests() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let mut half_sent = connect(&app).await;
    send(&mut half_sent, "GET /health HTTP/1.1\r\nHost: x\r\n").await;
    let mut idle = connect(&app).await;
    send(&mut idle, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "stopped in {:?}",
        started.elapsed()
    );
    assert!(closed_within(&mut half_sent, 1.0).await);
    assert!(closed_within(&mut idle, 1.0).await);
}

#[tokio::test]
async fn shutdown_drains_requests_in_progress_within_its_deadline() {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.shutdown_timeout_seconds = Some("2".into());
    let app = spawn_app(raw).await;
    let url = app.url.clone();
    // Headers in, body coming slowly: a request in progress.
    let mut slow = connect(&app).await;
    send(
        &mut slow,
        "POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nFrom=",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = reqwest::get(format!("{url}/ready")).await.unwrap();
    assert_eq!(r.status(), 503, "not ready from the moment draining starts");
    assert!(
        !stopping.is_finished(),
        "the request in progress is waited for"
    );
    stopping.await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(1800) && took < std::time::Duration::from_secs(5),
        "the deadline ends the drain: {took:?}"
    );
    assert!(closed_within(&mut slow, 1.0).await);
}
