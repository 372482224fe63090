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
    let text = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
        .create_user("ana", &hash, "admin", 0)
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
