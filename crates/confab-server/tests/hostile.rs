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
        assert!(r.status().as_u16() < 500, "{method} /health: {}", r.status());
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
