//! Bots through the real server: flows answering webhooks.
mod common;

use std::time::Duration;

use common::fake::{FakeProvider, Kind};
use common::*;
use confab_server::config::RawSettings;
use serde_json::json;

fn sid(n: u32) -> String {
    format!("SM{n:032x}")
}

async fn bot(flow: &str, twilio: Option<&str>, meta: Option<&str>) -> TestApp {
    spawn_app(bot_settings(flow, twilio, meta).await).await
}

/// Settings of a bot running `flow` on a database of its own.
async fn bot_settings(flow: &str, twilio: Option<&str>, meta: Option<&str>) -> RawSettings {
    let mut raw = settings(&fresh_database().await, twilio, meta);
    raw.default_flow = Some(flow.into());
    raw.flows_dir = None;
    if flow != "product_review" {
        raw.flows_dir = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/flows").into());
    }
    raw
}

/// The texts of the inbound messages stored, in the order they were stored.
async fn stored_texts(app: &TestApp) -> Vec<String> {
    let key = app.api_key().await;
    let (_, msgs) = app
        .get(&key, "/api/v1/messages?direction=inbound&limit=100")
        .await;
    let mut stored: Vec<(i64, String)> = msgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_i64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    stored.sort();
    stored.into_iter().map(|(_, text)| text).collect()
}

/// The texts of a TwiML answer, in order.
fn said(twiml: &str) -> Vec<String> {
    twiml
        .split("<Body>")
        .skip(1)
        .map(|p| {
            p.split("</Body>")
                .next()
                .unwrap_or("")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
        })
        .collect()
}

async fn talk(app: &TestApp, from: &str, text: &str, n: u32) -> Vec<String> {
    let r = app.twilio_text(from, text, &sid(n)).await;
    assert_eq!(r.status(), 200);
    said(&r.text().await.unwrap())
}

#[tokio::test]
async fn the_review_bot_runs_over_signed_twilio_webhooks() {
    let app = bot("product_review", None, None).await;
    let ana = "+15551234567";
    assert!(talk(&app, ana, "hi", 1).await[0].contains("What's your name?"));
    assert_eq!(
        talk(&app, ana, "A", 2).await[0],
        "Your name needs at least 2 characters. What should we call you?"
    );
    assert_eq!(
        talk(&app, ana, "Ana", 3).await,
        ["Nice to meet you, Ana! Which product would you like to review?"]
    );
    // A redelivery is answered as before and does not move the flow.
    let again = app
        .twilio_text(ana, "Ana", &sid(3))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        said(&again),
        ["Nice to meet you, Ana! Which product would you like to review?"]
    );
    assert!(talk(&app, ana, "Kettle", 4).await[0].starts_with("What do you think of Kettle?"));
    assert!(talk(&app, ana, "Boils fast and quietly.", 5).await[0].contains("May we contact you"));
    assert!(talk(&app, ana, "yes", 6).await[0].contains("How would you like us to reach you?"));
    let done = talk(&app, ana, "email", 7).await;
    assert!(done[0].contains("we'll reach you by Email."), "{done:?}");

    let records = app
        .store
        .records(
            "reviews",
            &confab_store::RecordFilter {
                limit: 10,
                bot_id: confab_store::DEFAULT_BOT,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0].data;
    assert_eq!(r["contact_number"], ana);
    assert_eq!(r["user_name"], "Ana");
    assert_eq!(r["product_name"], "Kettle");
    assert_eq!(r["product_review"], "Boils fast and quietly.");
    assert_eq!(r["preferred_contact_again"], true);
    assert_eq!(r["preferred_contact_method"], "Email");
    assert!(talk(&app, ana, "thanks", 8).await[0].contains("You have already reviewed Kettle"));

    // The history holds both sides of the conversation.
    let key = app.api_key().await;
    let (_, h) = app
        .get(&key, "/api/v1/contacts/+15551234567/messages?limit=100")
        .await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(
        items.iter().filter(|m| m["direction"] == "inbound").count(),
        8
    );
    assert!(
        items
            .iter()
            .filter(|m| m["direction"] == "outbound")
            .count()
            >= 9
    );
}

#[tokio::test]
async fn a_conversation_resumes_where_it_stopped_after_a_restart() {
    let app = bot("product_review", None, None).await;
    let ana = "+15551234567";
    talk(&app, ana, "hi", 1).await;
    talk(&app, ana, "Ana", 2).await;
    let raw = app.stop().await;
    let app = spawn_app(raw).await;
    assert!(talk(&app, ana, "Kettle", 3).await[0].starts_with("What do you think of Kettle?"));
}

#[tokio::test]
async fn one_contacts_messages_are_processed_one_at_a_time_in_arrival_order() {
    let app = bot("counter", None, None).await;
    let from = "+14155552671";
    let app = &app;
    let sends = (1..=50).map(|n| async move {
        (
            n,
            app.twilio_text(from, &format!("m{n}"), &sid(n))
                .await
                .text()
                .await
                .unwrap(),
        )
    });
    let answers = futures::future::join_all(sends).await;
    let mut numbers: Vec<u32> = answers
        .iter()
        .map(|(_, t)| said(t)[0].parse().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=50).collect::<Vec<_>>(),
        "every message got its own step"
    );
    // Arrival order: the message stored k-th got answer k.
    for (k, text) in stored_texts(app).await.iter().enumerate() {
        let n: u32 = text[1..].parse().unwrap();
        let answer = &answers.iter().find(|(m, _)| *m == n).unwrap().1;
        assert_eq!(
            said(answer)[0],
            (k + 1).to_string(),
            "message {text} arrived {}th",
            k + 1
        );
    }
}

#[tokio::test]
async fn several_writers_keep_each_contacts_messages_in_arrival_order() {
    // PostgreSQL commits with four writers here; SQLite has one anyway.
    let mut raw = bot_settings("counter", None, None).await;
    raw.ingest_writers = Some("4".into());
    let app = spawn_app(raw).await;
    let app = &app;
    let sends = (0..4u32).flat_map(|c| {
        (1..=15u32).map(move |n| async move {
            let from = format!("+1415555{:04}", 2671 + c);
            let text = format!("c{c}m{n}");
            let answer = app
                .twilio_text(&from, &text, &sid(c * 100 + n))
                .await
                .text()
                .await
                .unwrap();
            (text, said(&answer)[0].clone())
        })
    });
    let answers: std::collections::HashMap<String, String> =
        futures::future::join_all(sends).await.into_iter().collect();
    let stored = stored_texts(app).await;
    assert_eq!(stored.len(), 60);
    for c in 0..4 {
        let mine: Vec<&String> = stored
            .iter()
            .filter(|t| t.starts_with(&format!("c{c}m")))
            .collect();
        for (k, text) in mine.iter().enumerate() {
            assert_eq!(
                answers[*text],
                (k + 1).to_string(),
                "contact {c}: message {text} arrived {}th",
                k + 1
            );
        }
    }
}

#[tokio::test]
async fn meta_contacts_get_their_replies_through_the_outbox() {
    let fake = FakeProvider::start(Kind::Meta).await;
    let app = bot("product_review", None, Some(&fake.url)).await;
    assert_eq!(
        app.meta(&std::fs::read("tests/data/meta_text_message.json").unwrap())
            .await
            .status(),
        200
    );
    app.eventually(10, "the greeting is sent", || async {
        !fake.requests().is_empty()
    })
    .await;
    let body = fake.requests()[0].json();
    assert_eq!(body["to"], "16505551234");
    assert!(
        body["text"]["body"]
            .as_str()
            .unwrap()
            .contains("What's your name?")
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn stop_opts_the_contact_out_and_start_back_in() {
    let app = bot("product_review", None, None).await;
    let key = app.api_key().await;
    talk(&app, "+15551234567", "hi", 1).await;
    let r = talk(&app, "+15551234567", "stop", 2).await;
    assert!(r[0].contains("You will not get any more messages"));
    assert_eq!(
        app.get(&key, "/api/v1/contacts/+15551234567").await.1["opted_out"],
        true
    );
    talk(&app, "+15551234567", "START", 3).await;
    assert_eq!(
        app.get(&key, "/api/v1/contacts/+15551234567").await.1["opted_out"],
        false
    );
}

#[tokio::test]
async fn blocked_contacts_are_stored_and_never_answered() {
    let app = bot("product_review", None, None).await;
    let key = app.api_key().await;
    talk(&app, "+15551234567", "hi", 1).await;
    app.patch(
        &key,
        "/api/v1/contacts/+15551234567",
        json!({"blocked": true}),
    )
    .await;
    assert_eq!(
        talk(&app, "+15551234567", "Ana", 2).await,
        Vec::<String>::new()
    );
    let (_, m) = app.get(&key, "/api/v1/messages?direction=inbound").await;
    assert_eq!(m["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn timers_and_web_calls_move_runs_on_their_own() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let service = FakeProvider::start(Kind::Meta).await;
    let app = bot("later", Some(&twilio.url), None).await;
    // The flow calls `{{ contact.name }}/hook`: the profile name is the service's URL.
    let r = app
        .twilio(
            "/webhooks/twilio",
            &[
                ("From", "whatsapp:+14155552671"),
                ("Body", "hi"),
                ("MessageSid", &sid(1)),
                ("ProfileName", &service.url),
            ],
        )
        .await;
    assert_eq!(said(&r.text().await.unwrap()), ["Back in a second."]);
    app.eventually(15, "the report after the wait and the call", || async {
        !twilio.requests().is_empty()
    })
    .await;
    let call = &service.requests()[0];
    assert_eq!(call.path, "/hook");
    assert_eq!(call.json()["phone"], "+14155552671");
    let sent = twilio.requests()[0].form_value("Body").unwrap();
    assert!(sent.starts_with("The service says "), "{sent}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(twilio.requests().len(), 1);
}

#[tokio::test]
async fn an_idle_run_expires_and_the_next_message_starts_afresh() {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.default_flow = Some("product_review".into());
    raw.flows_dir = None;
    raw.run_timeout_minutes = Some("30".into());
    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    talk(&app, "+15551234567", "hi", 1).await;
    talk(&app, "+15551234567", "Ana", 2).await;
    app.clock.advance_ms(31 * 60 * 1000);
    app.eventually(10, "the run expires", || async {
        app.get(&key, "/api/v1/runs").await.1["items"][0]["status"] == "expired"
    })
    .await;
    let r = talk(&app, "+15551234567", "Kettle", 3).await;
    assert_eq!(
        r[0],
        "It has been a while since we last spoke, so let's start again."
    );
    assert!(r[1].contains("What's your name?"), "{r:?}");
    let (_, stats) = app.get(&key, "/api/v1/flows/product_review/stats").await;
    assert_eq!(stats["expired"], 1);
    assert_eq!(stats["dropped_at"]["ask_product"], 1);
}

#[tokio::test]
async fn keyword_triggers_start_another_flow() {
    let app = bot("product_review", None, None).await;
    assert!(talk(&app, "+15551234567", "hi", 1).await[0].contains("What's your name?"));
    assert!(talk(&app, "+15551234567", "factory", 2).await[0].contains("Production assistant"));
    assert!(talk(&app, "+15551234567", "Review", 3).await[0].contains("What's your name?"));
    let key = app.api_key().await;
    let (_, runs) = app.get(&key, "/api/v1/runs").await;
    let statuses = column(&runs, "status");
    assert_eq!(statuses, ["waiting_input", "interrupted", "interrupted"]);
    let (_, old) = app
        .get(&key, &format!("/api/v1/runs/{}", runs["items"][2]["id"]))
        .await;
    let last = old["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "a trigger started another flow");
    assert_eq!(last["flow"], "pms_menu");
}

#[tokio::test]
async fn a_record_that_does_not_fit_fails_the_run_politely_and_stores_nothing() {
    let app = bot("bad_record", None, None).await;
    talk(&app, "+15551234567", "hi", 1).await;
    let r = talk(&app, "+15551234567", "great", 2).await;
    assert_eq!(r, [confab_flow::engine::ERROR_TEXT]);
    let records = app
        .store
        .records(
            "reviews",
            &confab_store::RecordFilter {
                limit: 10,
                bot_id: confab_store::DEFAULT_BOT,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(records.is_empty());
    let key = app.api_key().await;
    let (_, runs) = app.get(&key, "/api/v1/runs").await;
    let run = &runs["items"][0];
    assert_eq!(run["status"], "failed");
    let (_, one) = app.get(&key, &format!("/api/v1/runs/{}", run["id"])).await;
    assert!(
        one["events"]
            .to_string()
            .contains("contact_number: is required"),
        "{one}"
    );
}

#[tokio::test]
async fn without_a_default_flow_only_triggers_start_conversations() {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.default_flow = Some("none".into());
    let app = spawn_app(raw).await;
    assert_eq!(
        talk(&app, "+15551234567", "hello", 1).await,
        Vec::<String>::new()
    );
    assert!(talk(&app, "+15551234567", "factory", 2).await[0].contains("Production assistant"));
    let key = app.api_key().await;
    let (_, runs) = app.get(&key, "/api/v1/runs").await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 1);
}
