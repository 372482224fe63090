mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn handshake_echoes_the_challenge_only_for_the_right_token() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let url = |token: &str| {
        format!(
            "{}/webhooks/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
            app.url
        )
    };
    let r = app.http.get(url(VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "1158201444");
    assert_eq!(
        app.http.get(url("wrong")).send().await.unwrap().status(),
        403
    );
    let r = app
        .http
        .get(format!(
            "{}/webhooks/meta?hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn signed_batches_are_stored_and_redeliveries_ignored() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let body = std::fs::read("tests/data/meta_text_message.json").unwrap();
    for _ in 0..3 {
        let r = app.meta(&body).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(app.count("messages").await, 1);
    let key = app.api_key().await;
    let (_, c) = app.get(&key, "/api/v1/contacts").await;
    assert_eq!(c["items"][0]["phone"], "+16505551234");
    assert_eq!(c["items"][0]["profile_name"], "Sheena Nelson");

    // Two entries, three messages of different kinds, and a status.
    let value = |messages: serde_json::Value| {
        json!({"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
               "contacts": [{"profile": {"name": "Kai"}, "wa_id": "27123456789"}], "messages": messages})
    };
    let batch = json!({"object": "whatsapp_business_account", "entry": [
        {"id": "1", "changes": [{"field": "messages", "value": value(json!([
            {"from": "27123456789", "id": "wamid.A", "timestamp": "1749416383", "type": "text", "text": {"body": "first"}},
            {"from": "27123456789", "id": "wamid.B", "timestamp": "1749416384", "type": "interactive",
             "interactive": {"type": "list_reply", "list_reply": {"id": "opt_2", "title": "Order status"}}}
        ]))}]},
        {"id": "2", "changes": [{"field": "messages", "value": value(json!([
            {"from": "27123456789", "id": "wamid.C", "timestamp": "1749416385", "type": "location",
             "location": {"latitude": -26.2041, "longitude": 28.0473, "name": "Factory"}}
        ]))}]}
    ]});
    assert_eq!(app.meta(batch.to_string().as_bytes()).await.status(), 200);
    let (_, m) = app.get(&key, "/api/v1/messages?limit=3").await;
    let items = m["items"].as_array().unwrap();
    assert_eq!(items[2]["text"], "first");
    assert_eq!(items[1]["kind"], "interactive");
    assert_eq!(items[1]["extra"]["reply_id"], "opt_2");
    assert_eq!(items[0]["kind"], "location");
    assert_eq!(items[0]["extra"]["location"]["name"], "Factory");
}

#[tokio::test]
async fn forged_unsigned_and_malformed_posts_store_nothing() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let body = std::fs::read("tests/data/meta_text_message.json").unwrap();
    let post = |sig: Option<String>, body: Vec<u8>| {
        let mut req = app
            .http
            .post(format!("{}/webhooks/meta", app.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = sig {
            req = req.header("X-Hub-Signature-256", s);
        }
        req.send()
    };
    assert_eq!(post(None, body.clone()).await.unwrap().status(), 403);
    let forged = confab_channels::meta::signature("another-secret", &body);
    assert_eq!(
        post(Some(forged), body.clone()).await.unwrap().status(),
        403
    );
    let mut tampered = body.clone();
    let sig = confab_channels::meta::signature(APP_SECRET, &body);
    tampered.extend_from_slice(b" ");
    assert_eq!(post(Some(sig), tampered).await.unwrap().status(), 403);
    let junk = b"{not json".to_vec();
    let r = post(
        Some(confab_channels::meta::signature(APP_SECRET, &junk)),
        junk,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn unusable_events_are_kept_with_their_reason_not_dropped() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let long_id = format!("wamid.{}", "x".repeat(300));
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "messages": [
            {"from": "27123456789", "id": "wamid.good", "timestamp": "1", "type": "text", "text": {"body": "fine"}},
            {"from": "+1555\n2026-12-03 INFO forged line", "id": "wamid.bad", "timestamp": "1", "type": "text", "text": {"body": "?"}},
            {"from": "27123456789", "id": long_id, "timestamp": "1", "type": "text", "text": {"body": "long"}}
        ],
        "statuses": [{"status": "read", "timestamp": "1"}]
    }}]}]})
    .to_string();
    for _ in 0..2 {
        assert_eq!(app.meta(body.as_bytes()).await.status(), 200);
    }
    assert_eq!(app.count("messages").await, 1, "the good message is stored");
    let key = app.api_key().await;
    let (s, page) = app.get(&key, "/api/v1/rejected?channel=meta").await;
    assert_eq!(s, 200);
    let items = page["items"].as_array().unwrap();
    // The bad sender once however often it came; the long id and the
    // status without one, once per delivery (they have no usable id).
    let reasons: Vec<&str> = items
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("`from` is not a phone number"))
            .count(),
        1,
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("longer than 256")),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"no `id`"), "{reasons:?}");
    let bad = items
        .iter()
        .find(|r| r["provider_message_id"] == "wamid.bad")
        .unwrap();
    assert_eq!(bad["event"], "message");
    assert_eq!(bad["payload"]["text"]["body"], "?");
    let metrics = app.text("/metrics").await;
    assert!(
        metrics.contains(r#"confab_webhooks_total{channel="meta",outcome="rejected"}"#),
        "counted in metrics"
    );
    assert_eq!(app.get(&key, "/api/v1/rejected?channel=sms").await.0, 400);
}

/// A photo a contact sent through Meta: the message holds only its media
/// id. `GET /messages/{id}/media/0` resolves the id through Graph with the
/// bot's token, downloads the file, keeps it, and gives it as it was sent;
/// asked again, it comes from the store.
#[tokio::test]
async fn a_photo_sent_through_meta_is_fetched_once_and_given_as_sent() {
    let meta = common::fake::FakeProvider::start(common::fake::Kind::Meta).await;
    let app = spawn_app(settings(&fresh_database().await, None, Some(&meta.url))).await;
    let key = app.api_key().await;
    let photo = b"\xff\xd8\xff\xe0 a photo of a receipt".to_vec();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&photo))
    };
    let file_url = meta.file("/whatsapp_business/attachments/photo", "image/jpeg", &photo);
    let lookup = json!({"messaging_product": "whatsapp", "url": file_url, "mime_type": "image/jpeg",
                        "sha256": sha, "file_size": photo.len(), "id": "1037543291543636"});
    meta.file(
        "/v23.0/1037543291543636",
        "application/json",
        lookup.to_string().as_bytes(),
    );
    let a_file = |id: &str, mime: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Kai"}, "wa_id": "27123456789"}],
            "messages": [{"from": "27123456789", "id": format!("wamid.{id}"), "timestamp": "1749416383", "type": "image",
                          "image": {"caption": "my receipt", "mime_type": mime, "sha256": "x", "id": id}}]}}]}]})
    };
    assert_eq!(
        app.meta(
            a_file("1037543291543636", "image/jpeg")
                .to_string()
                .as_bytes()
        )
        .await
        .status(),
        200
    );
    let (_, list) = app.get(&key, "/api/v1/messages?limit=1").await;
    let id = list["items"][0]["id"].as_i64().unwrap();

    let media = |path: String| {
        app.http
            .get(format!("{}{path}", app.url))
            .bearer_auth(&key)
            .send()
    };
    for _ in 0..2 {
        let r = media(format!("/api/v1/messages/{id}/media/0"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.bytes().await.unwrap().as_ref(), photo.as_slice());
    }
    // Graph was asked once, with the bot's token, then the file once.
    let asked: Vec<_> = meta
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0].path, "/v23.0/1037543291543636");
    assert_eq!(
        asked[0].header("authorization"),
        Some("Bearer meta-access-token")
    );
    let (_, m) = app.get(&key, &format!("/api/v1/messages/{id}")).await;
    assert_eq!(m["stored_media"][0]["sha256"], sha);

    // The same under the bot's own path; a file it has not, a message
    // that is not there, and one Graph no longer knows are 404s.
    let r = media(format!("/api/v1/bots/default/messages/{id}/media/0"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (path, status) in [
        (format!("/api/v1/messages/{id}/media/1"), 404),
        ("/api/v1/messages/999999/media/0".to_string(), 404),
        (format!("/api/v1/messages/{id}/media/x"), 400),
        (format!("/api/v1/messages/{id}/media/-1"), 400),
    ] {
        let r = media(path.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
    meta.script([common::fake::Reply::status(
        404,
        r#"{"error": {"message": "Unsupported get request", "type": "GraphMethodException", "code": 100, "error_subcode": 33}}"#,
    )]);
    assert_eq!(
        app.meta(a_file("555000111", "image/png").to_string().as_bytes())
            .await
            .status(),
        200
    );
    let (_, list) = app.get(&key, "/api/v1/messages?limit=1").await;
    let gone = list["items"][0]["id"].as_i64().unwrap();
    let r = media(format!("/api/v1/messages/{gone}/media/0"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["detail"], "the provider no longer has the file");

    // An SVG (it could carry a script) is given as a download.
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
    let svg_url = meta.file(
        "/whatsapp_business/attachments/drawing",
        "image/svg+xml",
        svg,
    );
    meta.file(
        "/v23.0/777",
        "application/json",
        json!({"url": svg_url, "mime_type": "image/svg+xml", "id": "777"})
            .to_string()
            .as_bytes(),
    );
    app.meta(a_file("777", "image/svg+xml").to_string().as_bytes())
        .await;
    let (_, list) = app.get(&key, "/api/v1/messages?limit=1").await;
    let drawing = list["items"][0]["id"].as_i64().unwrap();
    let r = media(format!("/api/v1/messages/{drawing}/media/0"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.headers()["content-disposition"], "attachment");
}
