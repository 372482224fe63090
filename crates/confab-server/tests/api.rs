mod common;

use common::fake::{FakeProvider, Kind};
use common::*;
use serde_json::json;

#[tokio::test]
async fn every_api_route_needs_a_valid_bearer() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    for path in [
        "/api/v1/contacts",
        "/api/v1/messages",
        "/api/v1/contacts/1",
        "/api/v1/contacts/1/messages",
        "/api/v1/messages/1",
    ] {
        let r = app
            .http
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let (s, _) = app.get("cfb_not-a-real-key", path).await;
        assert_eq!(s, 401, "{path}");
        let (s, _) = app
            .get("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bad", path)
            .await;
        assert_eq!(s, 401, "{path}");
    }
    let r = app
        .http
        .post(format!("{}/api/v1/messages", app.url))
        .json(&json!({"to": "+14155552671", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let key = app.api_key().await;
    assert_eq!(app.get(&key, "/api/v1/contacts").await.0, 200);
}

#[tokio::test]
async fn login_issues_a_token_and_slows_guessing() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
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
    let login = |pw: &str| {
        app.http
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({"username": "ana", "password": pw}))
            .send()
    };
    let r = login("correct horse battery").await.unwrap();
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 3600);
    let token = t["access_token"].as_str().unwrap();
    assert_eq!(app.get(token, "/api/v1/messages").await.0, 200);

    let r = app
        .http
        .post(format!("{}/api/v1/auth/login", app.url))
        .json(&json!({"username": "nobody", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for _ in 0..4 {
        assert_eq!(login("wrong").await.unwrap().status(), 401);
    }
    let r = login("correct horse battery").await.unwrap();
    assert_eq!(
        r.status(),
        429,
        "a client that keeps failing waits, even with the right password"
    );
    assert!(r.headers().contains_key("retry-after"));
    let r = app
        .http
        .post(format!("{}/api/v1/auth/login", app.url))
        .json(&json!({"username": "ana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn contacts_search_page_update_and_read() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let phones = [
        "+14155552671",
        "+14155552672",
        "+27123456789",
        "+27987654321",
        "+4915112345678",
    ];
    for (i, p) in phones.iter().enumerate() {
        assert_eq!(
            app.twilio_text(p, &format!("message {i}"), &format!("SM{i:032x}"))
                .await
                .status(),
            200
        );
    }
    app.twilio_text("+27123456789", "second", &format!("SM{:032x}", 99))
        .await;
    let key = app.api_key().await;

    let (_, page1) = app.get(&key, "/api/v1/contacts?limit=2").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .get(&key, &format!("/api/v1/contacts?limit=2&cursor={cursor}"))
        .await;
    let (_, page3) = app
        .get(
            &key,
            &format!(
                "/api/v1/contacts?limit=2&cursor={}",
                page2["next_cursor"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(page3["items"].as_array().unwrap().len(), 1);
    assert!(page3["next_cursor"].is_null());
    let all: Vec<_> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().clone())
        .map(|c| c["phone"].clone())
        .collect();
    assert_eq!(all.len(), 5);

    let (_, found) = app.get(&key, "/api/v1/contacts?search=%2B2712").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let c = &found["items"][0];
    assert_eq!(c["unread_count"], 2);
    let id = c["id"].as_i64().unwrap();
    let (_, found) = app.get(&key, "/api/v1/contacts?search=test%20USER").await;
    assert_eq!(
        found["items"].as_array().unwrap().len(),
        5,
        "profile names match in any case"
    );

    let r = app.patch(&key, &format!("/api/v1/contacts/{id}"), json!({"tags": ["operator", "night"], "attributes": {"shift": "B"}, "profile_name": "Thandi"})).await;
    assert_eq!(r.0, 200);
    let c = r.1;
    assert_eq!(c["tags"], json!(["operator", "night"]));
    assert_eq!(c["attributes"]["shift"], "B");
    assert_eq!(c["profile_name"], "Thandi");
    let (_, tagged) = app.get(&key, "/api/v1/contacts?tag=night").await;
    assert_eq!(tagged["items"].as_array().unwrap().len(), 1);

    let r = app
        .patch(
            &key,
            &format!("/api/v1/contacts/{id}"),
            json!({"nickname": "x"}),
        )
        .await;
    assert_eq!(r.0, 422, "unknown fields are refused");
    let r = app
        .patch(&key, "/api/v1/contacts/999999", json!({"blocked": true}))
        .await;
    assert_eq!(r.0, 404);

    let (s, c) = app
        .post(&key, &format!("/api/v1/contacts/{id}/read"), json!(null))
        .await;
    assert_eq!(s, 200);
    assert_eq!(c["unread_count"], 0);
    app.twilio_text("+27123456789", "third", &format!("SM{:032x}", 100))
        .await;
    assert_eq!(
        app.get(&key, &format!("/api/v1/contacts/{id}")).await.1["unread_count"],
        1
    );

    let (_, h) = app
        .get(&key, &format!("/api/v1/contacts/{id}/messages?limit=2"))
        .await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["text"], "third");
    let before = h["next_cursor"].as_str().unwrap();
    let (_, h2) = app
        .get(
            &key,
            &format!("/api/v1/contacts/{id}/messages?before={before}"),
        )
        .await;
    assert_eq!(h2["items"][0]["text"], "message 2");
    assert!(h2["next_cursor"].is_null());
    assert_eq!(
        app.get(&key, "/api/v1/contacts/424242/messages").await.0,
        404
    );
}

#[tokio::test]
async fn messages_filter_and_bad_queries_are_400() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    for i in 0..3 {
        app.twilio_text("+14155552671", &format!("m{i}"), &format!("SM{i:032x}"))
            .await;
    }
    let key = app.api_key().await;
    let (_, r) = app
        .get(
            &key,
            "/api/v1/messages?direction=inbound&status=received&channel=twilio",
        )
        .await;
    assert_eq!(r["items"].as_array().unwrap().len(), 3);
    let (_, r) = app.get(&key, "/api/v1/messages?direction=outbound").await;
    assert_eq!(r["items"].as_array().unwrap().len(), 0);
    let (_, r) = app
        .get(&key, "/api/v1/messages?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(r["items"].as_array().unwrap().len(), 0);
    let (_, r) = app
        .get(&key, "/api/v1/messages?until=2999-01-01T00:00:00Z&since=0")
        .await;
    assert_eq!(r["items"].as_array().unwrap().len(), 3);
    let contact = r["items"][0]["contact_id"].as_i64().unwrap();
    let (_, r) = app
        .get(
            &key,
            &format!("/api/v1/messages?contact_id={contact}&limit=1"),
        )
        .await;
    assert_eq!(r["items"][0]["text"], "m2");

    for bad in [
        "direction=sideways",
        "status=lost",
        "since=yesterday",
        "limit=0",
        "limit=100000",
        "cursor=abc",
        "colour=red",
    ] {
        let (s, p) = app.get(&key, &format!("/api/v1/messages?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {p}");
        assert!(p["detail"].is_string());
    }
    assert_eq!(app.get(&key, "/api/v1/messages/999999").await.0, 404);
    assert_eq!(app.get(&key, "/api/v1/messages/abc").await.0, 400);
}

#[tokio::test]
async fn send_requests_are_checked_before_anything_is_queued() {
    let app = spawn_app(settings(
        &fresh_database().await,
        Some("http://127.0.0.1:9"),
        None,
    ))
    .await;
    app.twilio_text("+14155552671", "hi", "SM1").await;
    let key = app.api_key().await;
    let cases = [
        (json!({"to": "hello", "text": "x"}), 422, "to:"),
        (json!({"to": "+14155552671"}), 422, "nothing to send"),
        (json!({"to": "+14155552671", "text": ""}), 422, "empty"),
        (
            json!({"to": "+14155552671", "text": "x", "channel": "sms"}),
            422,
            "twilio or meta",
        ),
        (
            json!({"to": "+14155552671", "text": "x", "channel": "meta"}),
            409,
            "not configured",
        ),
        (
            json!({"to": "+14155552671", "media_url": "ftp://x/y.png"}),
            422,
            "http",
        ),
        (
            json!({"to": "+14155552671", "template": {"name": "x", "language": "en"}}),
            422,
            "content_sid",
        ),
        (
            json!({"to": "+14155552671", "text": "x", "buttons": []}),
            422,
            "1 to 3",
        ),
        (
            json!({"to": "+14155552671", "text": "x", "colour": "red"}),
            422,
            "colour",
        ),
    ];
    for (body, status, needle) in cases {
        let (s, p) = app.post(&key, "/api/v1/messages", body.clone()).await;
        assert_eq!(s, status, "{body}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains(needle),
            "{body}: {p}"
        );
    }
    let r = app
        .http
        .post(format!("{}/api/v1/messages", app.url))
        .bearer_auth(&key)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .http
        .post(format!("{}/api/v1/messages", app.url))
        .bearer_auth(&key)
        .body(r#"{"to":"+1","text":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(app.count("jobs").await, 0);
    assert_eq!(app.count("messages").await, 1, "only the inbound message");
}

#[tokio::test]
async fn docs_health_and_metrics_are_served() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    app.twilio_text("+14155552671", "hi", "SM1").await;
    let spec: serde_json::Value = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/contacts",
        "/api/v1/contacts/{id}",
        "/api/v1/contacts/{id}/read",
        "/api/v1/contacts/{id}/messages",
        "/api/v1/messages",
        "/api/v1/messages/bulk",
        "/api/v1/messages/{id}",
        "/webhooks/twilio",
        "/webhooks/twilio/status",
        "/webhooks/meta",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
    let docs = app
        .http
        .get(format!("{}/docs/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let redoc = app
        .http
        .get(format!("{}/redoc", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(redoc.contains("/openapi.json"));

    let health: serde_json::Value = app
        .http
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database_ok"], true);
    assert_eq!(health["twilio"]["webhooks_signed"], true);
    assert!(!health.to_string().contains(AUTH_TOKEN) && !health.to_string().contains(APP_SECRET));
    assert_eq!(
        app.http
            .get(format!("{}/ready", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("confab_webhooks_total"), "{metrics}");
    assert!(metrics.contains("confab_http_requests_total"));
    assert!(metrics.contains("confab_outbox_depth"));
    let r = app
        .http
        .get(format!("{}/nowhere", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn contacts_can_be_named_by_phone_as_well_as_id() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    app.twilio_text("+27123456789", "hi", "SM1").await;
    app.twilio_text("+14155552671", "other", "SM2").await;
    let key = app.api_key().await;
    let (s, c) = app.get(&key, "/api/v1/contacts/+27123456789").await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["phone"], "+27123456789");
    assert_eq!(c["unread_count"], 1);
    let (s, c) = app
        .post(&key, "/api/v1/contacts/+27123456789/read", json!(null))
        .await;
    assert_eq!(s, 200);
    assert_eq!(c["unread_count"], 0);
    let (_, h) = app
        .get(&key, "/api/v1/contacts/+27123456789/messages")
        .await;
    assert_eq!(h["items"][0]["text"], "hi");
    let (_, m) = app.get(&key, "/api/v1/messages?phone=%2B27123456789").await;
    assert_eq!(m["items"].as_array().unwrap().len(), 1);
    let (_, m) = app
        .get(&key, "/api/v1/messages?phone=%2B4915112345678")
        .await;
    assert_eq!(m["items"].as_array().unwrap().len(), 0);
    assert_eq!(app.get(&key, "/api/v1/messages?phone=abc").await.0, 400);
    assert_eq!(
        app.get(&key, "/api/v1/contacts/+4915112345678").await.0,
        404
    );
    assert_eq!(app.get(&key, "/api/v1/contacts/nobody").await.0, 400);
}

#[tokio::test]
async fn nul_characters_are_refused_by_the_api_and_dropped_from_webhooks() {
    let app = spawn_app(settings(
        &fresh_database().await,
        Some("http://127.0.0.1:9"),
        None,
    ))
    .await;
    let r = app
        .twilio_text("+14155552671", "bad\0byte", "SM\u{0}1")
        .await;
    assert_eq!(r.status(), 200);
    let key = app.api_key().await;
    let (_, m) = app.get(&key, "/api/v1/messages").await;
    assert_eq!(m["items"][0]["text"], "badbyte");
    assert_eq!(m["items"][0]["provider_message_id"], "SM1");
    let (s, p) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+14155552671", "text": "a\u{0}b"}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    let r = app
        .patch(
            &key,
            "/api/v1/contacts/+14155552671",
            json!({"profile_name": "x\u{0}"}),
        )
        .await;
    assert_eq!(r.0, 422);
}

#[tokio::test]
async fn guesses_sent_at_once_are_limited_like_guesses_in_a_row() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
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
    let guesses = (0..20).map(|i| {
        app.http
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({"username": "ana", "password": format!("guess-{i}")}))
            .send()
    });
    let codes: Vec<u16> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 401).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 15, "{codes:?}");
}

#[tokio::test]
async fn nul_characters_in_bodies_and_queries_are_refused() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    let r = app
        .http
        .post(format!("{}/api/v1/auth/login", app.url))
        .json(&json!({"username": "a\u{0}", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(app.get(&key, "/api/v1/contacts?search=%00").await.0, 400);
    let (s, _) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+14155552671", "template": {"name": "x\u{0}", "language": "en"}}),
        )
        .await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn search_and_tags_match_alike_on_both_databases_and_wildcards_are_literal() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    for (i, p) in ["+14155552671", "+27123456789", "+4915112345678"]
        .iter()
        .enumerate()
    {
        app.twilio_text(p, "hi", &format!("SM{i:032x}")).await;
    }
    let id = |phone: &str| format!("/api/v1/contacts/{}", phone.replace('+', "%2B"));
    app.patch(
        &key,
        &id("+14155552671"),
        json!({"profile_name": "Ana 100%", "tags": ["Night"]}),
    )
    .await;
    app.patch(
        &key,
        &id("+27123456789"),
        json!({"profile_name": "Bo_b", "tags": ["day"]}),
    )
    .await;
    let count = |q: &'static str| {
        let app = &app;
        let key = &key;
        async move {
            let (s, page) = app.get(key, &format!("/api/v1/contacts?{q}")).await;
            assert_eq!(s, 200, "{q}");
            page["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("search=%25").await, 1, "% is itself: only Ana 100%");
    assert_eq!(count("search=100%25").await, 1);
    assert_eq!(count("search=_").await, 1, "_ is itself: only Bo_b");
    assert_eq!(count("search=o_b").await, 1);
    assert_eq!(count("search=ob").await, 0);
    assert_eq!(count("search=ana").await, 1, "A-Z in either case");
    assert_eq!(count("search=+2712").await, 1, "a + read as a space");
    assert_eq!(count("search=%2B2712").await, 1);
    assert_eq!(count("tag=night").await, 1, "tags in either case, on both");
    assert_eq!(count("tag=NIGHT").await, 1);
    assert_eq!(count("tag=nigh").await, 0, "a whole tag, not part of one");
    assert_eq!(count("tag=%25").await, 0);
}

#[tokio::test]
async fn an_inbox_lists_who_wrote_last_first_with_their_last_message_and_no_test_contacts() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let mut raw = settings(&fresh_database().await, Some(&twilio.url), None);
    raw.default_flow = Some("none".into());
    let app = spawn_app(raw).await;
    for (i, (phone, body)) in [
        ("+14155550001", "first"),
        ("+14155550002", "second"),
        ("+14155550003", "third"),
        ("+14155550001", "first again"),
    ]
    .iter()
    .enumerate()
    {
        app.twilio_text(phone, body, &format!("SM{i:032x}")).await;
    }
    let key = app.api_key().await;
    // A test contact of the simulator, in a flow.
    let (s, run) = app
        .post(
            &key,
            "/api/v1/runs",
            json!({"flow": "product_review", "channel": "simulator"}),
        )
        .await;
    assert_eq!(s, 201, "{run}");
    let tester = run["contact_id"].as_i64().unwrap();
    let (_, t) = app.get(&key, &format!("/api/v1/contacts/{tester}")).await;
    assert_eq!(t["test"], true);
    assert_eq!(t["last_run"]["flow"], "product_review");
    assert_eq!(t["last_run"]["status"], "waiting_input");
    assert_eq!(t["last_message"]["direction"], "outbound");

    let inbox = "/api/v1/contacts?order=activity&test=false&limit=2";
    let (s, page1) = app.get(&key, inbox).await;
    assert_eq!(s, 200, "{page1}");
    assert_eq!(column(&page1, "phone"), ["+14155550001", "+14155550003"]);
    assert_eq!(page1["items"][0]["last_message"]["text"], "first again");
    assert_eq!(page1["items"][0]["unread_count"], 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app.get(&key, &format!("{inbox}&cursor={cursor}")).await;
    assert_eq!(column(&page2, "phone"), ["+14155550002"]);
    assert!(page2["next_cursor"].is_null());

    let (_, all) = app.get(&key, "/api/v1/contacts?order=activity").await;
    assert_eq!(all["items"][0]["id"], tester, "the newest conversation");
    let (_, tests) = app.get(&key, "/api/v1/contacts?test=true").await;
    assert_eq!(column(&tests, "phone").len(), 1);

    // A broadcast to a tag leaves the test contact out.
    for id in [tester.to_string(), "+14155550002".into()] {
        let (s, _) = app
            .patch(
                &key,
                &format!("/api/v1/contacts/{id}"),
                json!({"tags": ["vip"]}),
            )
            .await;
        assert_eq!(s, 200);
    }
    let (s, review) = app
        .post(
            &key,
            "/api/v1/broadcasts?dry_run=true",
            json!({"to": {"tag": "vip"}, "text": "Hello"}),
        )
        .await;
    assert_eq!(s, 200, "{review}");
    assert_eq!(
        (&review["queued"], &review["rejected"]),
        (&json!(1), &json!(0)),
        "{review}"
    );

    // Either form reads in either order; anything else is refused.
    let (s, top) = app
        .get(&key, "/api/v1/contacts?order=activity&limit=1&cursor=1")
        .await;
    assert_eq!(
        (s, column(&top, "phone")),
        (200, vec![t["phone"].as_str().unwrap()])
    );
    let (s, _) = app
        .get(&key, &format!("/api/v1/contacts?cursor={cursor}"))
        .await;
    assert_eq!(s, 200);
    for bad in ["x.1", "1.y", "1.2.3", "abc"] {
        let (s, body) = app
            .get(
                &key,
                &format!("/api/v1/contacts?order=activity&cursor={bad}"),
            )
            .await;
        assert_eq!(s, 400, "{bad}: {body}");
    }
    let (s, _) = app.get(&key, "/api/v1/contacts?order=recent").await;
    assert_eq!(s, 400);
}
