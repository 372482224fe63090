mod common;

use common::*;

fn sid(n: u32) -> String {
    format!("SM{n:032x}")
}

#[tokio::test]
async fn signed_message_is_stored_and_answered_with_twiml() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let r = app
        .twilio_text("+14155552671", "hello there", &sid(1))
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("<?xml") && body.contains("<Response>"),
        "{body}"
    );

    let key = app.api_key().await;
    let (s, msgs) = app.get(&key, "/api/v1/messages").await;
    assert_eq!(s, 200);
    let m = &msgs["items"][0];
    assert_eq!(m["text"], "hello there");
    assert_eq!(m["direction"], "inbound");
    assert_eq!(m["channel"], "twilio");
    assert_eq!(m["status"], "received");
    assert_eq!(m["provider_message_id"], sid(1));
    let (_, c) = app
        .get(&key, &format!("/api/v1/contacts/{}", m["contact_id"]))
        .await;
    assert_eq!(c["phone"], "+14155552671");
    assert_eq!(c["profile_name"], "Test User");
    assert_eq!(c["unread_count"], 1);
    assert_eq!(c["service_window_open"], true);
}

#[tokio::test]
async fn forged_or_missing_signature_is_refused_and_stores_nothing() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let form = [
        ("From", "whatsapp:+14155552671"),
        ("Body", "hi"),
        ("MessageSid", "SM00000000000000000000000000000001"),
    ];
    let missing = app
        .http
        .post(format!("{}/webhooks/twilio", app.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    // Signed over other parameters: a replayed signature on a changed body.
    let other: Vec<(String, String)> = vec![("Body".into(), "something else".into())];
    let forged_sig = confab_channels::twilio::signature(
        AUTH_TOKEN,
        &format!("{}/webhooks/twilio", app.url),
        &other,
    );
    let forged = app
        .http
        .post(format!("{}/webhooks/twilio", app.url))
        .header("X-Twilio-Signature", forged_sig)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // Signed with another auth token.
    let params: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let wrong_key = confab_channels::twilio::signature(
        "not-the-token",
        &format!("{}/webhooks/twilio", app.url),
        &params,
    );
    let r = app
        .http
        .post(format!("{}/webhooks/twilio", app.url))
        .header("X-Twilio-Signature", wrong_key)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    assert_eq!(app.count("messages").await, 0);
    assert_eq!(app.count("contacts").await, 0);
}

#[tokio::test]
async fn signature_uses_public_url_behind_a_proxy() {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.public_url = Some("https://bot.example.com".into());
    let app = spawn_app(raw).await;
    let params: Vec<(String, String)> = vec![
        ("From".into(), "whatsapp:+14155552671".into()),
        ("Body".into(), "hi".into()),
        ("MessageSid".into(), sid(7)),
    ];
    let sig = confab_channels::twilio::signature(
        AUTH_TOKEN,
        "https://bot.example.com/webhooks/twilio?tenant=a",
        &params,
    );
    let r = app
        .http
        .post(format!("{}/webhooks/twilio?tenant=a", app.url))
        .header("X-Twilio-Signature", sig.clone())
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The same signature without the query string Twilio signed is forged.
    let r = app
        .http
        .post(format!("{}/webhooks/twilio", app.url))
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// A request signed for another deployment's URL, replayed here with
/// forwarded headers naming that URL.
async fn replayed_with_forwarded_headers(app: &TestApp) -> u16 {
    let params: Vec<(String, String)> = vec![
        ("From".into(), "whatsapp:+14155552671".into()),
        ("Body".into(), "hi".into()),
        ("MessageSid".into(), sid(8)),
    ];
    let sig = confab_channels::twilio::signature(
        AUTH_TOKEN,
        "https://edge.example.org/webhooks/twilio",
        &params,
    );
    app.http
        .post(format!("{}/webhooks/twilio", app.url))
        .header("X-Twilio-Signature", sig)
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "edge.example.org")
        .form(&params)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    assert_eq!(replayed_with_forwarded_headers(&app).await, 403);
    assert_eq!(app.count("messages").await, 0);

    let mut raw = settings(&fresh_database().await, None, None);
    raw.trusted_proxies = Some("10.0.0.0/8, 127.0.0.1".into());
    let app = spawn_app(raw).await;
    assert_eq!(replayed_with_forwarded_headers(&app).await, 200);
}

#[tokio::test]
async fn unsigned_webhooks_are_accepted_only_without_an_auth_token() {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.twilio_auth_token = None;
    let app = spawn_app(raw).await;
    let r = app
        .http
        .post(format!("{}/webhooks/twilio", app.url))
        .form(&[
            ("From", "whatsapp:+14155552671"),
            ("Body", "hi"),
            ("MessageSid", "SM1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let health: serde_json::Value = app
        .http
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["twilio"]["webhooks_signed"], false);
    assert!(health["warnings"].to_string().contains("TWILIO_AUTH_TOKEN"));
}

#[tokio::test]
async fn concurrent_redeliveries_store_one_message() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let id = sid(42);
    let sends = (0..25).map(|_| app.twilio_text("+14155552671", "once", &id));
    let responses = futures::future::join_all(sends).await;
    let mut bodies = Vec::new();
    for r in responses {
        assert_eq!(r.status(), 200);
        bodies.push(r.text().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every delivery is answered alike"
    );
    assert_eq!(app.count("messages").await, 1);
    assert_eq!(app.count("contacts").await, 1);
    // And again, later, one by one.
    for _ in 0..3 {
        assert_eq!(
            app.twilio_text("+14155552671", "once", &id).await.status(),
            200
        );
    }
    assert_eq!(app.count("messages").await, 1);
    let key = app.api_key().await;
    let (_, c) = app.get(&key, "/api/v1/contacts").await;
    assert_eq!(c["items"][0]["unread_count"], 1);
}

#[tokio::test]
async fn media_location_and_buttons_are_parsed() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let r = app
        .twilio(
            "/webhooks/twilio",
            &[
                ("From", "whatsapp:+14155552671"),
                ("MessageSid", &sid(2)),
                ("NumMedia", "1"),
                (
                    "MediaUrl0",
                    "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                ),
                ("MediaContentType0", "image/jpeg"),
                ("Body", "my receipt"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .twilio(
            "/webhooks/twilio",
            &[
                ("From", "whatsapp:+14155552671"),
                ("MessageSid", &sid(3)),
                ("Latitude", "-33.9249"),
                ("Longitude", "18.4241"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .twilio(
            "/webhooks/twilio",
            &[
                ("From", "whatsapp:+14155552671"),
                ("MessageSid", &sid(4)),
                ("ButtonPayload", "confirm_yes"),
                ("ButtonText", "Yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let key = app.api_key().await;
    let (_, msgs) = app.get(&key, "/api/v1/messages").await;
    let items = msgs["items"].as_array().unwrap();
    assert_eq!(items[2]["kind"], "image");
    assert_eq!(items[2]["media"][0]["content_type"], "image/jpeg");
    assert_eq!(items[2]["text"], "my receipt");
    assert_eq!(items[1]["kind"], "location");
    assert_eq!(items[1]["extra"]["location"]["latitude"], -33.9249);
    assert_eq!(items[0]["kind"], "button");
    assert_eq!(items[0]["extra"]["reply_id"], "confirm_yes");
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    // Missing MessageSid.
    let r = app
        .twilio(
            "/webhooks/twilio",
            &[("From", "whatsapp:+14155552671"), ("Body", "x")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let p: serde_json::Value = r.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("MessageSid"), "{p}");
    // Signed by Twilio but unusable (a sender that is not a phone number):
    // kept with the reason, and answered 200, since Twilio would not send
    // it again; a redelivery is kept once.
    for _ in 0..2 {
        let r = app
            .twilio(
                "/webhooks/twilio",
                &[
                    ("From", "whatsapp:hello"),
                    ("Body", "x"),
                    ("MessageSid", &sid(9)),
                ],
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let key = app.api_key().await;
    let (_, rejected) = app.get(&key, "/api/v1/rejected?channel=twilio").await;
    let items = rejected["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{rejected}");
    assert_eq!(items[0]["provider_message_id"], sid(9));
    assert_eq!(items[0]["payload"]["From"], "whatsapp:hello");
    assert!(
        items[0]["reason"].as_str().unwrap().contains("hello"),
        "{rejected}"
    );
    // Wrong content type.
    let r = app
        .http
        .post(format!("{}/webhooks/twilio", app.url))
        .json(&serde_json::json!({"From": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // A body far over the limit.
    let huge = "Body=".to_string() + &"x".repeat(2 * 1024 * 1024);
    let r = app
        .http
        .post(format!("{}/webhooks/twilio", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn status_callbacks_only_move_forward() {
    let fake = fake::FakeProvider::start(fake::Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&fake.url), None)).await;
    app.twilio_text("+14155552671", "hi", &sid(1)).await;
    let key = app.api_key().await;
    let (s, m) = app
        .post(
            &key,
            "/api/v1/messages",
            serde_json::json!({"to": "+14155552671", "text": "hello back"}),
        )
        .await;
    assert_eq!(s, 202, "{m}");
    let id = m["id"].as_i64().unwrap();
    app.eventually(10, "the message is accepted", || async {
        app.get(&key, &format!("/api/v1/messages/{id}")).await.1["status"] == "accepted"
    })
    .await;
    let (_, m) = app.get(&key, &format!("/api/v1/messages/{id}")).await;
    let provider_id = m["provider_message_id"].as_str().unwrap().to_string();
    for status in ["read", "sent", "delivered", "sent"] {
        let r = app
            .twilio(
                "/webhooks/twilio/status",
                &[("MessageSid", &provider_id), ("MessageStatus", status)],
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let (_, m) = app.get(&key, &format!("/api/v1/messages/{id}")).await;
    assert_eq!(m["status"], "read");
    let r = app
        .twilio(
            "/webhooks/twilio/status",
            &[
                ("MessageSid", &provider_id),
                ("MessageStatus", "failed"),
                ("ErrorCode", "63016"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, m) = app.get(&key, &format!("/api/v1/messages/{id}")).await;
    assert_eq!(m["status"], "failed");
    assert_eq!(m["error"]["code"], "63016");
    let r = app
        .twilio(
            "/webhooks/twilio/status",
            &[("MessageSid", &provider_id), ("MessageStatus", "delivered")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, m) = app.get(&key, &format!("/api/v1/messages/{id}")).await;
    assert_eq!(m["status"], "failed", "failed is final");
    assert_eq!(app.count("message_statuses").await, 6);
}

#[tokio::test]
async fn a_late_redelivery_does_not_reopen_the_service_window() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    app.twilio_text("+14155552671", "hello", &sid(1)).await;
    let key = app.api_key().await;
    let (_, before) = app.get(&key, "/api/v1/contacts/+14155552671").await;
    app.clock.advance_ms(25 * 3600 * 1000);
    assert_eq!(
        app.twilio_text("+14155552671", "hello", &sid(1))
            .await
            .status(),
        200
    );
    let (_, after) = app.get(&key, "/api/v1/contacts/+14155552671").await;
    assert_eq!(after["last_inbound_at"], before["last_inbound_at"]);
    assert_eq!(after["service_window_open"], false);
    // A new message does open it.
    app.twilio_text("+14155552671", "again", &sid(2)).await;
    let (_, now) = app.get(&key, "/api/v1/contacts/+14155552671").await;
    assert_eq!(now["service_window_open"], true);
}

#[tokio::test]
async fn an_absurdly_long_message_id_is_refused() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let long = format!("SM{}", "x".repeat(3000));
    let r = app.twilio_text("+14155552671", "hi", &long).await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.count("messages").await, 0);
    let r = app
        .twilio(
            "/webhooks/twilio/status",
            &[("MessageSid", &long), ("MessageStatus", "delivered")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.count("message_statuses").await, 0);
}
