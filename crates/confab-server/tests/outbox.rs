mod common;

use std::time::Duration;

use common::fake::{FakeProvider, Kind, Reply};
use common::*;
use serde_json::json;

/// A contact who wrote a moment ago, so the service window is open.
async fn contact_writes(app: &TestApp, phone: &str, n: u32) {
    let r = app
        .twilio_text(phone, "hello", &format!("SM{n:032x}"))
        .await;
    assert_eq!(r.status(), 200);
}

async fn status_of(app: &TestApp, key: &str, id: i64) -> serde_json::Value {
    app.get(key, &format!("/api/v1/messages/{id}")).await.1
}

async fn wait_status(app: &TestApp, key: &str, id: i64, want: &str) -> serde_json::Value {
    app.eventually(15, &format!("message {id} becomes {want}"), || async {
        status_of(app, key, id).await["status"] == want
    })
    .await;
    status_of(app, key, id).await
}

#[tokio::test]
async fn twilio_send_follows_the_messages_api() {
    let fake = FakeProvider::start(Kind::Twilio).await;
    let mut raw = settings(&fresh_database().await, Some(&fake.url), None);
    raw.public_url = Some("https://bot.example.com".into());
    let app = spawn_app(raw).await;
    contact_writes(&app, "+14155552671", 1).await;
    let key = app.api_key().await;
    let (s, m) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+1 415 555 2671", "text": "Job 42 completed"}),
        )
        .await;
    assert_eq!(s, 202, "{m}");
    assert_eq!(m["status"], "queued");
    assert_eq!(m["direction"], "outbound");
    let m = wait_status(&app, &key, m["id"].as_i64().unwrap(), "accepted").await;
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    let basic = base64_basic(ACCOUNT_SID, AUTH_TOKEN);
    assert_eq!(r.header("authorization"), Some(basic.as_str()));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    assert!(r.header("user-agent").unwrap().starts_with("confab/"));
    assert_eq!(r.form_value("To").as_deref(), Some("whatsapp:+14155552671"));
    assert_eq!(
        r.form_value("From").as_deref(),
        Some("whatsapp:+14155238886")
    );
    assert_eq!(r.form_value("Body").as_deref(), Some("Job 42 completed"));
    assert_eq!(
        r.form_value("StatusCallback").as_deref(),
        Some("https://bot.example.com/webhooks/twilio/status")
    );
    assert!(m["provider_message_id"].as_str().unwrap().starts_with("SM"));
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[tokio::test]
async fn meta_send_follows_the_graph_api() {
    let fake = FakeProvider::start(Kind::Meta).await;
    let app = spawn_app(settings(&fresh_database().await, None, Some(&fake.url))).await;
    let body = std::fs::read("tests/data/meta_text_message.json").unwrap();
    assert_eq!(app.meta(&body).await.status(), 200);
    let key = app.api_key().await;
    let (s, m) = app
        .post(&key, "/api/v1/messages", json!({"to": "+16505551234", "text": "Pick one", "buttons": [{"id": "red", "title": "Red"}, {"id": "blue", "title": "Blue"}]}))
        .await;
    assert_eq!(s, 202, "{m}");
    assert_eq!(m["kind"], "interactive");
    let m = wait_status(&app, &key, m["id"].as_i64().unwrap(), "accepted").await;
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, format!("/v23.0/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(r.header("authorization"), Some("Bearer meta-access-token"));
    let j = r.json();
    assert_eq!(j["messaging_product"], "whatsapp");
    assert_eq!(j["recipient_type"], "individual");
    assert_eq!(j["to"], "16505551234");
    assert_eq!(j["type"], "interactive");
    assert_eq!(
        j["interactive"]["action"]["buttons"][1]["reply"]["id"],
        "blue"
    );
    let wamid = m["provider_message_id"].as_str().unwrap().to_string();

    // Delivery reports arrive out of order: read before delivered.
    for status in ["read", "delivered"] {
        let report = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [{"id": wamid, "status": status, "timestamp": "1749416400", "recipient_id": "16505551234"}]}}]}]});
        assert_eq!(app.meta(report.to_string().as_bytes()).await.status(), 200);
    }
    assert_eq!(
        status_of(&app, &key, m["id"].as_i64().unwrap()).await["status"],
        "read"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_sent_once() {
    let fake = FakeProvider::start(Kind::Twilio).await;
    fake.script([
        Reply::status(
            500,
            r#"{"code": 20500, "message": "Internal Server Error"}"#,
        ),
        Reply::status(503, r#"{"code": 20503, "message": "Service Unavailable"}"#),
        Reply {
            retry_after: Some(1),
            ..Reply::status(429, r#"{"code": 20429, "message": "Too Many Requests"}"#)
        },
    ]);
    let app = spawn_app(settings(&fresh_database().await, Some(&fake.url), None)).await;
    contact_writes(&app, "+14155552671", 1).await;
    let key = app.api_key().await;
    let (_, m) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+14155552671", "text": "retry me"}),
        )
        .await;
    let started = std::time::Instant::now();
    wait_status(&app, &key, m["id"].as_i64().unwrap(), "accepted").await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
    assert_eq!(fake.requests().len(), 4, "three failures, one success");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.requests().len(),
        4,
        "nothing is sent again once accepted"
    );
    assert_eq!(app.count("jobs").await, 0);
}

#[tokio::test]
async fn a_permanent_error_fails_the_message_without_retry() {
    let fake = FakeProvider::start(Kind::Twilio).await;
    fake.script([Reply::status(400, r#"{"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}"#)]);
    let app = spawn_app(settings(&fresh_database().await, Some(&fake.url), None)).await;
    contact_writes(&app, "+14155552671", 1).await;
    let key = app.api_key().await;
    let (_, m) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+14155552671", "text": "x"}),
        )
        .await;
    let m = wait_status(&app, &key, m["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(m["error"]["code"], "21211");
    assert!(
        m["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid phone number")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_send_that_keeps_failing_is_given_up() {
    let fake = FakeProvider::start(Kind::Meta).await;
    fake.script(
        (0..10).map(|_| Reply::status(500, r#"{"error": {"message": "try later", "code": 2}}"#)),
    );
    let app = spawn_app(settings(&fresh_database().await, None, Some(&fake.url))).await;
    assert_eq!(
        app.meta(&std::fs::read("tests/data/meta_text_message.json").unwrap())
            .await
            .status(),
        200
    );
    let key = app.api_key().await;
    let (_, m) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+16505551234", "text": "x"}),
        )
        .await;
    let m = wait_status(&app, &key, m["id"].as_i64().unwrap(), "failed").await;
    assert!(
        m["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gave up after 4 attempts"),
        "{m}"
    );
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn pending_sends_survive_a_restart() {
    let fake = FakeProvider::start(Kind::Twilio).await;
    let db = fresh_database().await;
    let mut raw = settings(&db, Some(&fake.url), None);
    // One message a second: most of the batch is still waiting when we stop.
    raw.twilio_send_rate = Some("0.5".into());
    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    let phones: Vec<String> = (0..6).map(|i| format!("+1415555{:04}", 2000 + i)).collect();
    for (i, p) in phones.iter().enumerate() {
        contact_writes(&app, p, i as u32 + 1).await;
    }
    let (s, bulk) = app
        .post(
            &key,
            "/api/v1/messages/bulk",
            json!({"to": phones, "text": "shift change"}),
        )
        .await;
    assert_eq!(s, 202, "{bulk}");
    assert_eq!(bulk["queued"], 6);
    app.eventually(5, "the first send", || async {
        !fake.requests().is_empty()
    })
    .await;
    let mut raw = app.stop().await;
    let sent_before = fake.requests().len();
    assert!(
        sent_before < 6,
        "work is pending at shutdown ({sent_before} sent)"
    );

    raw.twilio_send_rate = Some("1000".into());
    let app = spawn_app(raw).await;
    app.eventually(15, "every message is sent", || async {
        app.count("jobs").await == 0
    })
    .await;
    let mut to: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| r.form_value("To").unwrap())
        .collect();
    assert_eq!(to.len(), 6, "each message exactly once");
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 6);
}

#[tokio::test]
async fn a_crashed_workers_lease_runs_out_and_the_send_happens() {
    let fake = FakeProvider::start(Kind::Twilio).await;
    let db = fresh_database().await;
    let app = spawn_app(settings(&db, Some(&fake.url), None)).await;
    contact_writes(&app, "+14155552671", 1).await;
    let raw = app.stop().await;
    // A worker of another process claims the job and dies before sending.
    let store = confab_store::Store::connect(&db).await.unwrap();
    let now = confab_server::clock::Clock::now_ms(&confab_server::clock::SystemClock);
    let queued = store
        .enqueue_outbound(
            &[confab_store::NewOutbound {
                bot_id: confab_store::DEFAULT_BOT,
                to: confab_model::PhoneNumber::parse("+14155552671").unwrap(),
                channel: confab_model::Channel::Twilio,
                sender: "+14155238886".into(),
                content: confab_model::OutboundContent::Text {
                    body: "after the crash".into(),
                },
                reply_to: None,
                contact_id: None,
            }],
            now,
        )
        .await
        .unwrap();
    let claimed = store.claim_sends(now, now + 1500, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store.close().await;

    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(fake.requests().is_empty(), "the lease still holds");
    wait_status(&app, &key, queued[0].message_id, "accepted").await;
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn the_service_window_opted_out_and_blocked_contacts_are_respected() {
    let fake = FakeProvider::start(Kind::Meta).await;
    let app = spawn_app(settings(&fresh_database().await, None, Some(&fake.url))).await;
    let key = app.api_key().await;
    // Never wrote: only a template may go.
    let (s, p) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+16505551234", "text": "hi"}),
        )
        .await;
    assert_eq!(s, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("template"));
    assert_eq!(
        app.meta(&std::fs::read("tests/data/meta_text_message.json").unwrap())
            .await
            .status(),
        200
    );
    let (s, _) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+16505551234", "text": "hi"}),
        )
        .await;
    assert_eq!(s, 202);
    // 25 hours later the window is closed again.
    app.clock.advance_ms(25 * 3600 * 1000);
    let (s, p) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+16505551234", "text": "hi again"}),
        )
        .await;
    assert_eq!(s, 409);
    assert!(p["detail"].as_str().unwrap().contains("24-hour"), "{p}");
    let (s, t) = app
        .post(
            &key,
            "/api/v1/templates",
            json!({"name": "order_update", "language": "en_US", "category": "UTILITY", "body": "Your order has shipped."}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let template = json!({"to": "+16505551234", "template": {"name": "order_update", "language": "en_US", "components": []}});
    let (s, m) = app.post(&key, "/api/v1/messages", template.clone()).await;
    assert_eq!(s, 202, "{m}");
    assert_eq!(m["kind"], "template");

    let contact_id = m["contact_id"].as_i64().unwrap();
    let r = app
        .patch(
            &key,
            &format!("/api/v1/contacts/{contact_id}"),
            json!({"opted_out": true}),
        )
        .await;
    assert_eq!(r.0, 200);
    let (s, p) = app.post(&key, "/api/v1/messages", template.clone()).await;
    assert_eq!(s, 409);
    assert!(p["detail"].as_str().unwrap().contains("opted out"));
    let r = app
        .patch(
            &key,
            &format!("/api/v1/contacts/{contact_id}"),
            json!({"opted_out": false, "blocked": true}),
        )
        .await;
    assert_eq!(r.0, 200);
    let (s, p) = app.post(&key, "/api/v1/messages", template).await;
    assert_eq!(s, 409);
    assert!(p["detail"].as_str().unwrap().contains("blocked"));
}

#[tokio::test]
async fn bulk_gives_one_result_per_recipient() {
    let fake = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&fake.url), None)).await;
    contact_writes(&app, "+14155552671", 1).await;
    contact_writes(&app, "+27123456789", 2).await;
    let key = app.api_key().await;
    let (s, b) = app
        .post(&key, "/api/v1/messages/bulk", json!({"to": ["+14155552671", "not-a-number", "+27123456789", "+1 415 555 2671", "+4915112345678"], "text": "Maintenance alert"}))
        .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["queued"], 2);
    assert_eq!(b["rejected"], 3);
    let r = b["results"].as_array().unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(r[0]["status"], "queued");
    assert!(r[0]["id"].as_i64().is_some());
    assert_eq!(r[1]["status"], "rejected");
    assert!(
        r[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a phone number")
    );
    assert!(r[3]["error"].as_str().unwrap().contains("more than once"));
    assert!(r[4]["error"].as_str().unwrap().contains("window"));
    app.eventually(10, "both sent", || async { fake.requests().len() == 2 })
        .await;

    let too_many: Vec<String> = (0..10_001).map(|i| format!("+1415555{i:04}")).collect();
    let (s, _) = app
        .post(
            &key,
            "/api/v1/messages/bulk",
            json!({"to": too_many, "text": "x"}),
        )
        .await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn a_bulk_of_ten_thousand_is_queued_in_one_call() {
    let app = spawn_app(settings(
        &fresh_database().await,
        Some("http://127.0.0.1:9"),
        None,
    ))
    .await;
    let key = app.api_key().await;
    let to: Vec<String> = (0..10_000)
        .map(|i| format!("+1415{:07}", 2_000_000 + i))
        .collect();
    let sid = format!("HX{}", "0".repeat(32));
    let (s, t) = app
        .post(
            &key,
            "/api/v1/templates",
            json!({"name": "opening", "language": "en", "category": "MARKETING",
                "body": "We open on {{1}}.", "content_sid": sid}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let template = json!({"content_sid": sid, "variables": {"1": "Friday"}});
    let (s, b) = app
        .post(
            &key,
            "/api/v1/messages/bulk",
            json!({"to": to, "template": template}),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(b["queued"], 10_000);
    assert_eq!(app.count("contacts").await, 10_000);
    assert!(app.count("messages").await == 10_000);
}

#[tokio::test]
async fn a_provider_that_times_out_is_tried_again() {
    let fake = FakeProvider::start(Kind::Twilio).await;
    // Longer than the client's 2 s timeout in the test settings.
    fake.script([Reply {
        delay: Duration::from_secs(3),
        ..Reply::status(200, "")
    }]);
    let app = spawn_app(settings(&fresh_database().await, Some(&fake.url), None)).await;
    contact_writes(&app, "+14155552671", 1).await;
    let key = app.api_key().await;
    let (_, m) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+14155552671", "text": "slow"}),
        )
        .await;
    wait_status(&app, &key, m["id"].as_i64().unwrap(), "accepted").await;
    assert_eq!(
        fake.requests().len(),
        2,
        "the timed-out request, then the retry"
    );
}

#[tokio::test]
async fn a_contact_who_opts_out_while_a_send_waits_gets_nothing() {
    let fake = FakeProvider::start(Kind::Twilio).await;
    fake.script([Reply::status(503, r#"{"code": 20503, "message": "busy"}"#)]);
    let mut raw = settings(&fresh_database().await, Some(&fake.url), None);
    raw.send_retry_base_ms = Some("2000".into());
    let app = spawn_app(raw).await;
    contact_writes(&app, "+14155552671", 1).await;
    let key = app.api_key().await;
    let (_, m) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+14155552671", "text": "promo"}),
        )
        .await;
    app.eventually(5, "the first attempt", || async {
        fake.requests().len() == 1
    })
    .await;
    let r = app
        .patch(
            &key,
            "/api/v1/contacts/+14155552671",
            json!({"opted_out": true}),
        )
        .await;
    assert_eq!(r.0, 200);
    let m = wait_status(&app, &key, m["id"].as_i64().unwrap(), "failed").await;
    assert!(
        m["error"]["message"]
            .as_str()
            .unwrap()
            .contains("opted out"),
        "{m}"
    );
    assert_eq!(fake.requests().len(), 1, "the retry never went out");
}

#[tokio::test]
async fn a_provider_id_given_twice_is_recorded_not_retried_for_ever() {
    let fake = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&fake.url), None)).await;
    let same = r#"{"sid": "SMdup0000000000000000000000000000", "status": "queued"}"#;
    fake.script([Reply::status(201, same), Reply::status(201, same)]);
    contact_writes(&app, "+14155552671", 1).await;
    contact_writes(&app, "+14155552672", 2).await;
    let key = app.api_key().await;
    let mut ids = Vec::new();
    for to in ["+14155552671", "+14155552672"] {
        let (s, m) = app
            .post(&key, "/api/v1/messages", json!({"to": to, "text": "hi"}))
            .await;
        assert_eq!(s, 202, "{m}");
        ids.push(m["id"].as_i64().unwrap());
        // One after the other, so the first holds the id.
        wait_status(&app, &key, ids[0], "accepted").await;
    }
    let second = wait_status(&app, &key, ids[1], "accepted").await;
    assert!(second["provider_message_id"].is_null(), "{second}");
    assert!(
        second["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("SMdup0000000000000000000000000000"),
        "the conflict is noted: {second}"
    );
    let first = status_of(&app, &key, ids[0]).await;
    assert_eq!(
        first["provider_message_id"],
        "SMdup0000000000000000000000000000"
    );
    assert_eq!(app.count("jobs").await, 0, "no send left queued");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.requests().len(), 2, "never sent again");
    let metrics = app.text("/metrics").await;
    assert!(metrics.contains("confab_send_results_unstorable_total"));
}
