//! Runs, flows and collections through the API.
mod common;

use common::fake::{FakeProvider, Kind};
use common::*;
use serde_json::json;

async fn app_with(flow: &str, flows_dir: Option<String>, twilio: Option<&str>) -> TestApp {
    let mut raw = settings(&fresh_database().await, twilio, None);
    raw.default_flow = Some(flow.into());
    raw.flows_dir = flows_dir;
    spawn_app(raw).await
}

#[tokio::test]
async fn runs_show_where_each_contact_is_with_events_and_stats() {
    let app = app_with("product_review", None, None).await;
    let key = app.api_key().await;
    app.twilio_text("+15551234567", "hi", "SM1").await;
    app.twilio_text("+15551234567", "Ana", "SM2").await;
    let (_, flows) = app.get(&key, "/api/v1/flows").await;
    assert!(flows["next_cursor"].is_null(), "a list like every other");
    let flows = &flows["items"];
    let ids: Vec<&str> = flows
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ai_assistant", "pms_menu", "product_review"]);
    assert_eq!(flows[2]["version"], 1);
    // Runs by the contact's phone as well as its id.
    for contact in ["%2B15551234567", "1"] {
        let (s, runs) = app
            .get(&key, &format!("/api/v1/runs?contact={contact}"))
            .await;
        assert_eq!(s, 200);
        assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{contact}");
    }
    let (_, none) = app.get(&key, "/api/v1/runs?contact=%2B15550000000").await;
    assert!(none["items"].as_array().unwrap().is_empty());
    assert_eq!(app.get(&key, "/api/v1/runs?contact=nobody").await.0, 400);
    let (_, runs) = app.get(&key, "/api/v1/runs?flow=product_review").await;
    let run = &runs["items"][0];
    assert_eq!(run["status"], "waiting_input");
    assert_eq!(run["node"], "ask_product");
    assert_eq!(run["variables"]["user_name"], "Ana");
    let (_, one) = app.get(&key, &format!("/api/v1/runs/{}", run["id"])).await;
    let kinds: Vec<&str> = one["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["started", "entered", "input", "entered"], "{one}");
    app.twilio_text("+15551234567", "restart", "SM3").await;
    let (_, stats) = app.get(&key, "/api/v1/flows/product_review/stats").await;
    assert_eq!(stats["started"], 2);
    assert_eq!(stats["in_progress"], 1, "the restart ended the first run");
    assert_eq!(stats["interrupted"], 1);
    assert_eq!(stats["dropped_at"]["ask_product"], 1);
    assert_eq!(app.get(&key, "/api/v1/flows/nope/stats").await.0, 404);
    assert_eq!(app.get(&key, "/api/v1/runs?status=dancing").await.0, 400);
}

#[tokio::test]
async fn records_are_checked_listed_changed_and_exported() {
    let app = app_with("product_review", None, None).await;
    let key = app.api_key().await;
    let review = json!({"contact_number": "+15551234567", "user_name": "Ana", "product_name": "Kettle", "product_review": "Boils, fast!", "preferred_contact_again": false});
    let (s, p) = app
        .post(
            &key,
            "/api/v1/collections/reviews/records",
            json!({"user_name": "Ana"}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        p["detail"].as_str().unwrap().starts_with("contact_number"),
        "{p}"
    );
    let (s, p) = app.post(&key, "/api/v1/collections/reviews/records", json!({"user_name": "x".repeat(200), "contact_number": "1", "product_name": "p", "product_review": "r", "preferred_contact_again": true})).await;
    assert_eq!(s, 422);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .starts_with("user_name: is longer than 128"),
        "{p}"
    );
    let (s, r) = app
        .post(&key, "/api/v1/collections/reviews/records", review.clone())
        .await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_i64().unwrap();
    let mut other = review.clone();
    other["user_name"] = json!("=cmd|' /C calc'!A0");
    other["product_name"] = json!("Toaster");
    other["product_review"] = json!("\t=1+1");
    other["contact_number"] = json!("  @SUM(A1:A9)");
    assert_eq!(
        app.post(&key, "/api/v1/collections/reviews/records", other)
            .await
            .0,
        201
    );

    let (_, page) = app
        .get(
            &key,
            "/api/v1/collections/reviews/records?product_name=Kettle",
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["user_name"], "Ana");
    assert_eq!(
        app.get(&key, "/api/v1/collections/reviews/records?colour=red")
            .await
            .0,
        400
    );
    assert_eq!(
        app.get(&key, "/api/v1/collections/nothing/records").await.0,
        404
    );

    let (s, r) = app
        .patch(
            &key,
            &format!("/api/v1/collections/reviews/records/{id}"),
            json!({"preferred_contact_method": "Email"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["preferred_contact_method"], "Email");
    assert_eq!(r["user_name"], "Ana");
    let (s, _) = app
        .patch(
            &key,
            &format!("/api/v1/collections/reviews/records/{id}"),
            json!({"preferred_contact_again": "maybe"}),
        )
        .await;
    assert_eq!(s, 422);
    let r = app
        .http
        .put(format!(
            "{}/api/v1/collections/reviews/records/{id}",
            app.url
        ))
        .bearer_auth(&key)
        .json(&review)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: serde_json::Value = r.json().await.unwrap();
    assert!(
        r.get("preferred_contact_method").is_none(),
        "PUT replaces: {r}"
    );

    let csv = app
        .http
        .get(format!(
            "{}/api/v1/collections/reviews/records?format=csv",
            app.url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,contact_id,created_at,updated_at,contact_number,preferred_contact_again,preferred_contact_method,product_name,product_review,user_name"
    );
    assert_eq!(lines.len(), 3);
    for defused in ["'=cmd|' /C calc'!A0", "'\t=1+1", "'  @SUM(A1:A9)"] {
        assert!(
            lines[1].contains(defused),
            "formulas are defused ({defused:?}): {}",
            lines[1]
        );
    }
    assert!(lines[2].contains("\"Boils, fast!\""), "{}", lines[2]);

    let r = app
        .http
        .delete(format!(
            "{}/api/v1/collections/reviews/records/{id}",
            app.url
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        app.get(&key, &format!("/api/v1/collections/reviews/records/{id}"))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn operators_start_cancel_and_resume_runs() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/flows").to_string();
    let app = app_with("desk", Some(dir), Some(&twilio.url)).await;
    let key = app.api_key().await;
    // A contact talks to the desk flow and is handed to a person.
    app.twilio_text("+14155552671", "hi", "SM1").await;
    let (_, runs) = app.get(&key, "/api/v1/runs").await;
    let run = runs["items"][0].clone();
    assert_eq!(run["status"], "handed_off");
    // The bot stays silent while a person has the conversation.
    let r = app.twilio_text("+14155552671", "hello?", "SM2").await;
    assert!(!r.text().await.unwrap().contains("<Message>"));
    let (s, resumed) = app
        .post(
            &key,
            &format!("/api/v1/runs/{}/resume", run["id"]),
            json!(null),
        )
        .await;
    assert_eq!(s, 200, "{resumed}");
    assert_eq!(resumed["status"], "completed");
    app.eventually(10, "the bot's return message", || async {
        !twilio.requests().is_empty()
    })
    .await;
    assert_eq!(
        twilio.requests()[0].form_value("Body").unwrap(),
        "The bot is back. Anything else, send hi."
    );
    let (s, _) = app
        .post(
            &key,
            &format!("/api/v1/runs/{}/resume", run["id"]),
            json!(null),
        )
        .await;
    assert_eq!(s, 409);

    // Start a flow for a new number, then cancel it.
    let (s, started) = app
        .post(
            &key,
            "/api/v1/runs",
            json!({"contact": "+27123456789", "flow": "desk"}),
        )
        .await;
    assert_eq!(s, 201, "{started}");
    assert_eq!(started["status"], "handed_off");
    let first = started["id"].clone();
    let (s, started) = app
        .post(
            &key,
            "/api/v1/runs",
            json!({"contact": "+27123456789", "flow": "counter"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(started["status"], "waiting_input");
    // A contact has one run in progress: the one replaced says so.
    let (_, replaced) = app.get(&key, &format!("/api/v1/runs/{first}")).await;
    assert_eq!(replaced["status"], "interrupted");
    let last = replaced["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["type"], "interrupted");
    assert_eq!(last["reason"], "another run was started through the API");
    assert_eq!(last["run"], started["id"]);
    let (s, cancelled) = app
        .post(
            &key,
            &format!("/api/v1/runs/{}/cancel", started["id"]),
            json!(null),
        )
        .await;
    assert_eq!((s, cancelled["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(
        app.post(
            &key,
            &format!("/api/v1/runs/{}/cancel", started["id"]),
            json!(null)
        )
        .await
        .0,
        409
    );
    assert_eq!(
        app.post(
            &key,
            "/api/v1/runs",
            json!({"contact": "+27123456789", "flow": "nope"})
        )
        .await
        .0,
        422
    );
    assert_eq!(
        app.post(&key, "/api/v1/runs/424242/cancel", json!(null))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_reload_takes_new_flows_and_keeps_the_last_good_version_of_a_broken_one() {
    let dir = std::env::temp_dir().join(format!("confab-flows-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hello.yaml"),
        "id: hello\nnodes:\n  - { id: a, type: end, text: Hello v1 }\n",
    )
    .unwrap();
    let app = app_with("hello", Some(dir.display().to_string()), None).await;
    let key = app.api_key().await;
    assert!(
        app.twilio_text("+14155552671", "hi", "SM1")
            .await
            .text()
            .await
            .unwrap()
            .contains("Hello v1")
    );
    std::fs::write(
        dir.join("hello.yaml"),
        "id: hello\nnodes:\n  - { id: a, type: end, text: Hello v2 }\n",
    )
    .unwrap();
    let (s, report) = app.post(&key, "/api/v1/flows/reload", json!(null)).await;
    assert_eq!(s, 200);
    assert!(
        report["flows"]
            .as_array()
            .unwrap()
            .contains(&json!("hello v2")),
        "{report}"
    );
    assert!(
        app.twilio_text("+14155552671", "hi", "SM2")
            .await
            .text()
            .await
            .unwrap()
            .contains("Hello v2")
    );
    std::fs::write(
        dir.join("hello.yaml"),
        "id: hello\nnodes:\n  - { id: a, type: send, text: Broken, next: nowhere }\n",
    )
    .unwrap();
    let (_, report) = app.post(&key, "/api/v1/flows/reload", json!(null)).await;
    assert!(
        report["problems"].to_string().contains("unknown node"),
        "{report}"
    );
    assert!(
        report["flows"]
            .as_array()
            .unwrap()
            .contains(&json!("hello v2"))
    );
    assert!(
        app.twilio_text("+14155552671", "hi", "SM3")
            .await
            .text()
            .await
            .unwrap()
            .contains("Hello v2")
    );

    // A file's flow naming a template the catalogue lacks is reported and
    // stays live: the catalogue may be synced after.
    std::fs::write(
        dir.join("notify.yaml"),
        "id: notify\nnodes:\n  - { id: shipped, type: send, template: { name: order_shipped, language: en_US }, next: done }\n  - { id: done, type: end }\n",
    )
    .unwrap();
    let (_, report) = app.post(&key, "/api/v1/flows/reload", json!(null)).await;
    assert!(
        report["problems"].to_string().contains(
            r#"flow notify, node shipped: template \"order_shipped\" is not in the bot's catalogue"#
        ),
        "{report}"
    );
    assert!(
        report["flows"].to_string().contains("notify v1"),
        "{report}"
    );
    let (s, t) = app
        .post(
            &key,
            "/api/v1/templates",
            json!({"name": "order_shipped", "language": "en_US", "category": "UTILITY",
                   "body": "Your order is on its way.", "channel": "meta"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let (_, report) = app.post(&key, "/api/v1/flows/reload", json!(null)).await;
    assert!(
        !report["problems"].to_string().contains("order_shipped"),
        "{report}"
    );
}

#[tokio::test]
async fn a_restart_ends_the_run_it_replaces() {
    let app = app_with("product_review", None, None).await;
    let key = app.api_key().await;
    app.twilio_text("+14155552671", "hi", "SM1").await;
    app.twilio_text("+14155552671", "Ana", "SM2").await;
    app.twilio_text("+14155552671", "restart", "SM3").await;
    let (_, runs) = app.get(&key, "/api/v1/runs?flow=product_review").await;
    let statuses = column(&runs, "status");
    assert_eq!(statuses, ["waiting_input", "interrupted"], "newest first");
    let old = &runs["items"][1];
    let (_, old) = app.get(&key, &format!("/api/v1/runs/{}", old["id"])).await;
    let last = old["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "the contact sent restart", "{old}");
    let (_, stats) = app.get(&key, "/api/v1/flows/product_review/stats").await;
    assert_eq!(stats["interrupted"], 1);
    assert_eq!(stats["in_progress"], 1, "not two sessions");
    let (s, _) = app.get(&key, "/api/v1/runs?status=interrupted").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn starting_a_run_with_no_channel_to_send_is_refused_like_a_send() {
    let app = app_with("product_review", None, None).await;
    let key = app.api_key().await;
    let (s, p) = app
        .post(
            &key,
            "/api/v1/runs",
            json!({"contact": "+14155552671", "flow": "product_review"}),
        )
        .await;
    assert_eq!(s, 409, "{p}");
    let (s2, p2) = app
        .post(
            &key,
            "/api/v1/messages",
            json!({"to": "+14155552671", "text": "hi"}),
        )
        .await;
    assert_eq!((s2, &p2["detail"]), (409, &p["detail"]), "the same refusal");
    assert_eq!(app.count("runs").await, 0, "nothing started");
}

#[tokio::test]
async fn a_run_starts_in_the_shape_earlier_clients_send_with_the_variables_given() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = app_with("product_review", None, Some(&twilio.url)).await;
    let key = app.api_key().await;
    let (s, f) = app
        .post(&key, "/api/v1/flows", json!({"id": "remind", "nodes": [
            {"id": "a", "type": "ask", "text": "Order {{ input.order }} is ready. Collect it today?", "save_as": "ok", "next": "b"},
            {"id": "b", "type": "end", "text": "See you"}
        ]}))
        .await;
    assert_eq!(s, 201, "{f}");
    let (s, run) = app
        .post(
            &key,
            "/api/v1/runs",
            json!({"flow_id": "remind", "contact_phone": "27123456789",
                   "initial_state": {"order": "ORD-7"}, "bot_id": 1}),
        )
        .await;
    assert_eq!(s, 201, "{run}");
    assert_eq!(run["variables"]["input"]["order"], "ORD-7");
    let (_, listed) = app.get(&key, "/api/v1/runs?contact=%2B27123456789").await;
    assert_eq!(listed["items"][0]["id"], run["id"]);
    app.eventually(10, "the reminder is sent", || async {
        twilio.requests().iter().any(|r| {
            r.form_value("Body").as_deref() == Some("Order ORD-7 is ready. Collect it today?")
        })
    })
    .await;
    // Bad shapes name their field and start nothing.
    for (body, field) in [
        (json!({"flow": "nope", "contact": "+27123456780"}), "flow"),
        (json!({"flow": "remind"}), "contact"),
        (
            json!({"flow": "remind", "contact": "+27123456780", "bot_id": "99"}),
            "bot_id",
        ),
        (
            json!({"flow": "remind", "contact": "not a phone"}),
            "contact",
        ),
    ] {
        let (s, p) = app.post(&key, "/api/v1/runs", body.clone()).await;
        assert!([400, 404, 422].contains(&s), "{body}: {s} {p}");
        if s == 422 {
            assert!(
                p["detail"].as_str().unwrap().starts_with(field),
                "{body}: {p}"
            );
        }
    }
    assert_eq!(app.count("runs").await, 1);
}

#[tokio::test]
async fn another_system_drives_a_run_with_input_and_skips_its_wait() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = app_with("product_review", None, Some(&twilio.url)).await;
    let key = app.api_key().await;
    let (s, f) = app
        .post(&key, "/api/v1/flows", json!({"id": "pickup", "nodes": [
            {"id": "a", "type": "ask", "text": "Collect today?", "answer": {"kind": "yes_no"}, "save_as": "ok", "next": "w"},
            {"id": "w", "type": "wait", "seconds": 3600, "next": "b"},
            {"id": "b", "type": "end", "text": "See you at the counter."}
        ]}))
        .await;
    assert_eq!(s, 201, "{f}");
    let (_, run) = app
        .post(
            &key,
            "/api/v1/runs",
            json!({"flow": "pickup", "contact": "+27123456789"}),
        )
        .await;
    let id = run["id"].as_i64().unwrap();
    let input = format!("/api/v1/runs/{id}/input");
    // The seed's shape; the answer moves the run as the contact's would.
    let (s, after) = app
        .post(
            &key,
            &input,
            json!({"execution_id": id, "message": "yes", "message_type": "text"}),
        )
        .await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(
        (after["id"].as_i64(), after["status"].as_str()),
        (Some(id), Some("waiting_timer"))
    );
    assert_eq!(after["variables"]["ok"], true);
    let (_, inbound) = app.get(&key, "/api/v1/messages?direction=inbound").await;
    assert_eq!(inbound["items"][0]["text"], "yes");
    assert_eq!(inbound["items"][0]["extra"]["simulated"], true);
    // Waiting for the timer, the run is resumed at once.
    let (s, done) = app
        .post(&key, &format!("/api/v1/runs/{id}/resume"), json!(null))
        .await;
    assert_eq!(
        (s, done["status"].as_str()),
        (200, Some("completed")),
        "{done}"
    );
    app.eventually(10, "both bot messages went out through Twilio", || async {
        let bodies: Vec<String> = twilio
            .requests()
            .iter()
            .filter_map(|r| r.form_value("Body"))
            .collect();
        bodies.contains(&"Collect today?".to_string())
            && bodies.contains(&"See you at the counter.".to_string())
    })
    .await;
    // A finished run takes no input; a bad body changes nothing.
    assert_eq!(
        app.post(&key, &input, json!({"text": "again"})).await.0,
        409
    );
    assert_eq!(
        app.post(&key, &input, json!({"execution_id": 999, "text": "x"}))
            .await
            .0,
        422
    );
    assert_eq!(app.post(&key, &input, json!({})).await.0, 422);
    assert_eq!(
        app.post(&key, "/api/v1/runs/999999/input", json!({"text": "x"}))
            .await
            .0,
        404
    );
    assert_eq!(app.count("messages").await, 3);
}

#[tokio::test]
async fn run_statistics_count_every_flow_by_day_with_the_median_time_to_complete() {
    // The flow is made through the API, then made DEFAULT_FLOW on a restart.
    let app = app_with("product_review", None, None).await;
    let key = app.api_key().await;
    let (s, f) = app
        .post(
            &key,
            "/api/v1/flows",
            json!({"id": "quick", "nodes": [
                {"id": "a", "type": "ask", "text": "Name?", "save_as": "name", "next": "b"},
                {"id": "b", "type": "end", "text": "Bye {{ name }}"}
            ]}),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let mut raw = app.stop().await;
    raw.default_flow = Some("quick".into());
    let app = spawn_app(raw).await;
    app.twilio_text("+14155552671", "hi", "SM1").await;
    app.twilio_text("+14155552672", "hi", "SM2").await;
    app.clock.advance_ms(90_000);
    app.twilio_text("+14155552671", "Ana", "SM3").await;
    let (s, stats) = app.get(&key, "/api/v1/runs/statistics").await;
    assert_eq!(s, 200, "{stats}");
    let total = &stats["total"];
    assert_eq!(
        (
            total["started"].as_i64(),
            total["completed"].as_i64(),
            total["in_progress"].as_i64()
        ),
        (Some(2), Some(1), Some(1)),
        "{stats}"
    );
    // 90 s on the test's clock, plus the real time the requests took.
    let median = total["median_seconds"].as_f64().unwrap();
    assert!((90.0..95.0).contains(&median), "{median}");
    assert_eq!(stats["flows"]["quick"]["started"], 2);
    assert_eq!(stats["days"][0]["flow"], "quick");
    // The day the runs began: today, or yesterday when the test's clock
    // crossed midnight (UTC) meanwhile.
    let day = stats["days"][0]["date"].as_str().unwrap();
    assert!(
        stats["from"].as_str().unwrap() <= day && day <= stats["to"].as_str().unwrap(),
        "{stats}"
    );
    // Another bot's runs are not these.
    let (_, other) = app
        .post(
            &key,
            "/api/v1/bots",
            json!({"name": "Other", "slug": "other"}),
        )
        .await;
    assert_eq!(other["slug"], "other");
    let (_, none) = app.get(&key, "/api/v1/bots/other/runs/statistics").await;
    assert_eq!(none["total"]["started"], 0);
    assert_eq!(none["total"]["median_seconds"], serde_json::Value::Null);
    let (s, bad) = app
        .get(&key, "/api/v1/runs/statistics?from=yesterday")
        .await;
    assert_eq!(s, 400);
    assert!(bad["detail"].as_str().unwrap().starts_with("from"), "{bad}");
    // A year at most: an earlier start is moved up.
    let (s, year) = app
        .get(
            &key,
            "/api/v1/runs/statistics?from=2020-01-01&to=2026-01-01",
        )
        .await;
    assert_eq!(
        (s, year["from"].as_str()),
        (200, Some("2025-01-01")),
        "{year}"
    );
}
