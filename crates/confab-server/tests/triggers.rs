//! Keyword, event and schedule triggers through the API: what they start,
//! their logs and statistics, exactly once also across restarts and servers.
mod common;

use common::fake::{FakeProvider, Kind};
use common::*;
use confab_server::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

const T: &str = "/api/v1/triggers";

async fn flow(app: &TestApp, key: &str, id: &str, text: &str) {
    let (s, f) = app
        .post(
            key,
            "/api/v1/flows",
            json!({"id": id, "nodes": [{"id": "a", "type": "end", "text": text}]}),
        )
        .await;
    assert_eq!(s, 201, "{f}");
}

async fn trigger(app: &TestApp, key: &str, body: Value) -> Value {
    let (s, t) = app.post(key, T, body).await;
    assert_eq!(s, 201, "{t}");
    t
}

async fn says(app: &TestApp, from: &str, text: &str, sid: &str) -> String {
    app.twilio_text(from, text, sid).await.text().await.unwrap()
}

async fn logs(app: &TestApp, key: &str, id: &Value) -> Vec<Value> {
    let (s, page) = app.get(key, &format!("{T}/{id}/logs")).await;
    assert_eq!(s, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn app_now() -> i64 {
    use confab_server::clock::Clock;
    confab_server::clock::SystemClock.now_ms()
}

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn keywords_and_events_start_their_flows_once_and_are_logged() {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.default_flow = Some("product_review".into());
    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    flow(&app, &key, "welcome", "Welcome aboard!").await;
    flow(&app, &key, "thanks", "Thanks for coming by.").await;
    flow(&app, &key, "hello_new", "Nice to meet you.").await;
    // The seed's shapes.
    let hi = trigger(
        &app,
        &key,
        json!({"name": "Welcome Trigger", "bot_id": 1, "flow_id": "welcome", "trigger_type": "keyword",
               "keywords": ["hi", "hello", "hey"], "match_type": "exact", "case_sensitive": false, "priority": 10}),
    )
    .await;
    assert_eq!(hi["active"], true);
    let done = trigger(
        &app,
        &key,
        json!({"name": "After welcome", "flow": "thanks", "trigger_type": "event",
               "event_type": "flow_completed", "event_conditions": {"flow": "welcome"}}),
    )
    .await;
    let new = trigger(
        &app,
        &key,
        json!({"name": "New Contact Welcome", "flow": "hello_new", "trigger_type": "event",
               "event_type": "new_contact", "event_conditions": {"source": "whatsapp"}}),
    )
    .await;

    // Would "Hello" set it off, and which trigger wins?
    let (s, test) = app
        .post(
            &key,
            &format!("{T}/{}/test", hi["id"]),
            json!({"test_message": "Hello"}),
        )
        .await;
    assert_eq!(s, 200, "{test}");
    assert_eq!(test["matches"], true);
    assert_eq!(test["matched_keyword"], "hello");
    assert_eq!(test["winner"], format!("trigger:{}", hi["id"]));
    assert_eq!(test["flow"], "welcome");

    // A new contact's first message starts the new_contact flow, once,
    // however often the provider delivers it.
    let first = says(&app, "+15550000001", "good morning", "SM1").await;
    assert!(first.contains("Nice to meet you."), "{first}");
    assert_eq!(
        says(&app, "+15550000001", "good morning", "SM1").await,
        first
    );
    let again = says(&app, "+15550000001", "good morning again", "SM2").await;
    assert!(!again.contains("Nice to meet you."), "{again}");
    assert_eq!(logs(&app, &key, &new["id"]).await.len(), 1);

    // A keyword starts its flow; its completion starts the next, in the
    // same step: both answers go back in the one reply.
    let answer = says(&app, "+15550000001", "HEY", "SM3").await;
    assert!(answer.contains("Welcome aboard!"), "{answer}");
    assert!(answer.contains("Thanks for coming by."), "{answer}");
    let hi_log = logs(&app, &key, &hi["id"]).await;
    assert_eq!(hi_log.len(), 1);
    assert_eq!(hi_log[0]["matched"], "keyword \"hey\"");
    assert!(hi_log[0]["run_id"].is_i64(), "{hi_log:?}");
    let done_log = logs(&app, &key, &done["id"]).await;
    assert_eq!(done_log.len(), 1);
    assert!(
        done_log[0]["matched"]
            .as_str()
            .unwrap()
            .contains("flow=welcome"),
        "{done_log:?}"
    );
    let (_, runs) = app.get(&key, "/api/v1/runs?contact=%2B15550000001").await;
    let flows: Vec<&str> = column(&runs, "flow");
    assert_eq!(flows[..2], ["thanks", "welcome"], "newest first");
    // The keyword's log names the run it started, not the one that followed.
    assert_eq!(hi_log[0]["run_id"], runs["items"][1]["id"], "{runs}");
    assert_eq!(done_log[0]["run_id"], runs["items"][0]["id"], "{runs}");
    // Delivered again, the keyword's message fires neither trigger again.
    assert_eq!(says(&app, "+15550000001", "HEY", "SM3").await, answer);
    assert_eq!(logs(&app, &key, &hi["id"]).await.len(), 1);
    assert_eq!(logs(&app, &key, &done["id"]).await.len(), 1);

    // A new contact whose first messages arrive at once: new_contact
    // fires once, and one answer says so.
    let answers = futures::future::join_all((0..5).map(|i| {
        let app = &app;
        async move {
            says(
                app,
                "+15550000002",
                &format!("hello there {i}"),
                &format!("SMc{i}"),
            )
            .await
        }
    }))
    .await;
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.contains("Nice to meet you."))
            .count(),
        1,
        "{answers:?}"
    );
    assert_eq!(logs(&app, &key, &new["id"]).await.len(), 2);

    // Statistics count firings and runs by trigger and day.
    let (s, stats) = app.get(&key, &format!("{T}/statistics")).await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["total"]["firings"], 4);
    assert_eq!(stats["total"]["runs_started"], 4);
    assert_eq!(stats["triggers"][hi["id"].to_string()]["firings"], 1);
    assert_eq!(stats["days"].as_array().unwrap().len(), 3);

    // Deactivated, it no longer fires; its test says so.
    let (s, off) = app
        .post(&key, &format!("{T}/{}/deactivate", hi["id"]), json!(null))
        .await;
    assert_eq!((s, &off["active"]), (200, &json!(false)));
    let (_, test) = app
        .post(
            &key,
            &format!("{T}/{}/test", hi["id"]),
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(test["matches"], true);
    assert!(test["winner"].is_null(), "{test}");
    assert!(test["why"].as_str().unwrap().contains("inactive"), "{test}");
    let answer = says(&app, "+15550000001", "hi", "SM4").await;
    assert!(!answer.contains("Welcome aboard!"), "{answer}");
    assert_eq!(logs(&app, &key, &hi["id"]).await.len(), 1);
    let (s, on) = app
        .post(&key, &format!("{T}/{}/activate", hi["id"]), json!(null))
        .await;
    assert_eq!((s, &on["active"]), (200, &json!(true)));
    assert!(
        says(&app, "+15550000001", "hi", "SM5")
            .await
            .contains("Welcome aboard!")
    );
}

#[tokio::test]
async fn bad_triggers_name_their_field_and_change_nothing() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    let bad = [
        (
            json!({"name": "x", "flow": "pms_menu", "trigger_type": "schedule", "schedule_type": "cron",
                   "cron": "61 * * * *", "audience": {"all": true}}),
            "cron",
        ),
        (
            json!({"name": "x", "flow": "pms_menu", "trigger_type": "schedule", "schedule_type": "daily",
                   "schedule_time": "09:00", "schedule_timezone": "Mars/Olympus", "audience": {"all": true}}),
            "schedule_timezone",
        ),
        (
            json!({"name": "x", "flow": "no_such_flow", "trigger_type": "keyword", "keywords": ["a"]}),
            "flow",
        ),
        (
            json!({"name": "x", "flow": "pms_menu", "trigger_type": "event", "event_type": "birthday"}),
            "event_type",
        ),
        (
            json!({"name": "x", "flow": "pms_menu", "trigger_type": "schedule", "schedule_type": "weekly",
                   "schedule_days": ["mon"], "schedule_time": "09:00"}),
            "audience",
        ),
    ];
    for (body, field) in bad {
        let (s, p) = app.post(&key, T, body.clone()).await;
        assert_eq!(s, 422, "{body} -> {p}");
        let named: Vec<&str> = p["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["field"].as_str())
            .collect();
        assert!(named.contains(&field), "{field} in {p}");
    }
    let (s, _) = app.post(&key, T, json!({"name": 5})).await;
    assert!((400..500).contains(&s));
    assert_eq!(app.count("triggers").await, 0);
    assert_eq!(app.get(&key, &format!("{T}/99")).await.0, 404);
    assert_eq!(
        app.post(&key, &format!("{T}/99/test"), json!({"text": "hi"}))
            .await
            .0,
        404
    );
    let viewer = app.api_key_with(Role::Viewer).await;
    let ok =
        json!({"name": "x", "flow": "pms_menu", "trigger_type": "keyword", "keywords": ["menu"]});
    assert_eq!(app.post(&viewer, T, ok.clone()).await.0, 403);
    let t = trigger(&app, &key, ok).await;
    let path = format!("{T}/{}", t["id"]);
    let (s, _) = app
        .call(
            Method::PUT,
            &key,
            &path,
            Some(
                json!({"name": "x", "flow": "pms_menu", "trigger_type": "keyword", "keywords": []}),
            ),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(app.get(&key, &path).await.1["keywords"], json!(["menu"]));
    assert_eq!(app.call(Method::DELETE, &viewer, &path, None).await.0, 403);
    assert_eq!(app.call(Method::DELETE, &key, &path, None).await.0, 200);
    assert_eq!(app.get(&key, &path).await.0, 404);
}

#[tokio::test]
async fn a_schedule_fires_once_per_due_time_for_its_audience_and_a_missed_one_once() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let mut raw = settings(&fresh_database().await, Some(&twilio.url), None);
    raw.default_flow = Some("product_review".into());
    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    flow(&app, &key, "reminder", "Time for your check-in.").await;
    // Two contacts wrote (their windows are open); one of them opts out.
    says(&app, "+15550000001", "hi", "SM1").await;
    says(&app, "+15550000002", "hi", "SM2").await;
    says(&app, "+15550000003", "hi", "SM3").await;
    says(&app, "+15550000003", "stop", "SM4").await;
    let daily = trigger(
        &app,
        &key,
        json!({"name": "Daily check-in", "flow": "reminder", "trigger_type": "schedule",
               "schedule_type": "cron", "cron": "*/30 * * * *", "schedule_timezone": "Europe/Berlin",
               "audience": {"all": true}}),
    )
    .await;
    assert_eq!(daily["upcoming"].as_array().unwrap().len(), 5, "{daily}");
    // One who never wrote is listed: outside the window, skipped and logged.
    let listed = trigger(
        &app,
        &key,
        json!({"name": "Listed", "flow": "reminder", "trigger_type": "schedule",
               "schedule_type": "cron", "cron": "*/30 * * * *", "misfire": "skip",
               "audience": {"contacts": ["+15550000001", "+15550000009"]}}),
    )
    .await;
    let due = ms(daily["next_due_at"].as_str().unwrap());
    app.clock.advance_ms(due - app.clock_now() + 1_000);
    app.eventually(10, "the due time fired for both audiences", || async {
        logs(&app, &key, &daily["id"]).await.len() == 2
            && logs(&app, &key, &listed["id"]).await.len() == 2
    })
    .await;
    let mut daily_log = logs(&app, &key, &daily["id"]).await;
    daily_log.sort_by_key(|l| l["contact_id"].as_i64());
    assert!(
        daily_log
            .iter()
            .all(|l| l["run_id"].is_i64() && l["error"].is_null()),
        "{daily_log:?}"
    );
    let listed_log = logs(&app, &key, &listed["id"]).await;
    let errors: Vec<&str> = listed_log
        .iter()
        .filter_map(|l| l["error"].as_str())
        .collect();
    assert_eq!(errors.len(), 1, "{listed_log:?}");
    assert!(errors[0].contains("24-hour window"), "{errors:?}");
    app.eventually(10, "three check-ins went out", || async {
        twilio
            .requests()
            .iter()
            .filter(|r| r.form_value("Body").as_deref() == Some("Time for your check-in."))
            .count()
            == 3
    })
    .await;
    // Moved on by exactly one due time.
    let (_, after) = app.get(&key, &format!("{T}/{}", daily["id"])).await;
    assert_eq!(
        ms(after["next_due_at"].as_str().unwrap()),
        due + 30 * 60_000
    );

    // Down over many due times: back, the schedule fires once (or, with
    // misfire: skip, logs the skip), never a burst.
    let raw = app.stop().await;
    let clock = confab_server::clock::ShiftedClock::default();
    clock.advance_ms(due - app_now() + 5 * 3_600_000);
    let app = spawn_app_with_clock(raw, clock).await;
    // The listed contact who never wrote is one of all contacts now.
    app.eventually(10, "the missed due time fired once", || async {
        logs(&app, &key, &daily["id"]).await.len() == 5
            && logs(&app, &key, &listed["id"]).await.len() == 3
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(logs(&app, &key, &daily["id"]).await.len(), 5, "no burst");
    let skipped = logs(&app, &key, &listed["id"]).await;
    assert!(
        skipped[0]["error"]
            .as_str()
            .unwrap()
            .contains("misfire: skip"),
        "{skipped:?}"
    );
    let (_, after) = app.get(&key, &format!("{T}/{}", daily["id"])).await;
    assert!(ms(after["next_due_at"].as_str().unwrap()) > app.clock_now());
    assert_eq!(app.count("schedule_firings").await, 3);
}

#[tokio::test]
async fn two_servers_fire_each_due_time_once() {
    let db = fresh_database().await;
    let clock = confab_server::clock::ShiftedClock::default();
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let mut raw = settings(&db, Some(&twilio.url), None);
    raw.default_flow = Some("product_review".into());
    let one = spawn_app_with_clock(raw.clone(), clock.clone()).await;
    let two = spawn_app_with_clock(raw, clock.clone()).await;
    let key = one.api_key().await;
    flow(&one, &key, "reminder", "Time for your check-in.").await;
    for i in 0..30 {
        says(&one, &format!("+1555000{i:04}"), "hi", &format!("SM{i}")).await;
    }
    let t = trigger(
        &one,
        &key,
        // Hourly, and the clock moved to each due time: were the schedule
        // every minute, a slow run of the test (it waits up to a minute)
        // would see a due time come by itself.
        json!({"name": "Every hour", "flow": "reminder", "trigger_type": "schedule",
               "schedule_type": "cron", "cron": "0 * * * *", "audience": {"all": true}}),
    )
    .await;
    for _ in 0..3 {
        let (_, now) = one.get(&key, &format!("{T}/{}", t["id"])).await;
        let due = ms(now["next_due_at"].as_str().unwrap());
        clock.advance_ms(due - one.clock_now() + 500);
        // Waits, not timings: what is checked is that each fires once.
        one.eventually(60, "the due time fired", || async {
            let (_, t) = one.get(&key, &format!("{T}/{}", t["id"])).await;
            ms(t["next_due_at"].as_str().unwrap()) > due
        })
        .await;
    }
    one.eventually(60, "each contact started once per due time", || async {
        let (_, stats) = two.get(&key, &format!("{T}/statistics")).await;
        stats["total"]["runs_started"] == 90
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, stats) = two.get(&key, &format!("{T}/statistics")).await;
    assert_eq!(stats["total"]["firings"], 90, "{stats}");
    assert_eq!(one.count("schedule_firings").await, 3);
    assert_eq!(one.count("runs").await, 120);
}

#[tokio::test]
async fn without_a_default_flow_a_scheduled_flow_does_not_start_again_at_a_reply() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    // DEFAULT_FLOW=none: messages are stored; only triggers start flows.
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    let key = app.api_key().await;
    flow(&app, &key, "announce", "We open at 9 on Monday.").await;
    assert!(
        !says(&app, "+15550000001", "hi", "SM1")
            .await
            .contains("<Message>")
    );
    let t = trigger(
        &app,
        &key,
        json!({"name": "Opening", "flow_id": "announce", "trigger_type": "schedule",
               "schedule_type": "cron", "cron": "*/30 * * * *", "audience": {"all": true}}),
    )
    .await;
    let due = ms(t["next_due_at"].as_str().unwrap());
    app.clock.advance_ms(due - app.clock_now() + 1_000);
    app.eventually(10, "the announcement went out", || async {
        twilio.requests().len() == 1
    })
    .await;
    assert_eq!(app.count("runs").await, 1);
    // The contact answers the announcement: stored, not answered again.
    let twiml = says(&app, "+15550000001", "thanks!", "SM2").await;
    assert!(!twiml.contains("<Message>"), "{twiml}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.count("runs").await, 1);
    assert_eq!(twilio.requests().len(), 1);
    // The commands still reach the finished run.
    let twiml = says(&app, "+15550000001", "STOP", "SM3").await;
    assert!(twiml.contains("<Message>"), "{twiml}");
    let (_, contacts) = app.get(&key, "/api/v1/contacts").await;
    assert_eq!(contacts["items"][0]["opted_out"], true, "{contacts}");
}

#[tokio::test]
async fn opting_out_or_in_fires_its_trigger_once_per_change_also_without_a_run_or_through_the_api()
{
    let twilio = FakeProvider::start(Kind::Twilio).await;
    // DEFAULT_FLOW=none: no flow answers a number the bot has not heard from.
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    let key = app.api_key().await;
    flow(&app, &key, "goodbye", "Sorry to see you go.").await;
    flow(&app, &key, "welcome_back", "Good to have you back.").await;
    let gone = trigger(
        &app,
        &key,
        json!({"name": "Goodbye", "flow": "goodbye", "trigger_type": "event",
               "event_type": "opt_out", "event_conditions": {"source": "whatsapp"}}),
    )
    .await;
    let back = trigger(
        &app,
        &key,
        json!({"name": "Back", "flow": "welcome_back", "trigger_type": "event",
               "event_type": "opt_in", "event_conditions": {"source": "api"}}),
    )
    .await;
    // A STOP with no run to answer it: honoured, confirmed, and the
    // opt_out flow starts in the same answer.
    let twiml = says(&app, "+15550000001", "STOP", "SM1").await;
    assert!(
        twiml.contains("You will not get any more messages"),
        "{twiml}"
    );
    assert!(twiml.contains("Sorry to see you go."), "{twiml}");
    let (_, c) = app.get(&key, "/api/v1/contacts/%2B15550000001").await;
    assert_eq!(c["opted_out"], true, "{c}");
    let log = logs(&app, &key, &gone["id"]).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0]["run_id"].is_i64(), "{log:?}");
    // Delivered again: the same answer, nothing fired again.
    assert_eq!(says(&app, "+15550000001", "STOP", "SM1").await, twiml);
    // A second STOP (now to the goodbye run) is confirmed; nothing changed,
    // so nothing fires.
    let twiml = says(&app, "+15550000001", "unsubscribe", "SM2").await;
    assert!(
        twiml.contains("You will not get any more messages"),
        "{twiml}"
    );
    assert!(!twiml.contains("Sorry to see you go."), "{twiml}");
    assert_eq!(logs(&app, &key, &gone["id"]).await.len(), 1);

    // An operator opts the contact back in: the flag and the opt_in flow
    // (source "api") commit together; its message goes through the outbox.
    let (s, c) = app
        .patch(
            &key,
            "/api/v1/contacts/%2B15550000001",
            json!({"opted_out": false, "tags": ["returning"]}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(
        (&c["opted_out"], &c["tags"]),
        (&json!(false), &json!(["returning"]))
    );
    let log = logs(&app, &key, &back["id"]).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["matched"], "opt_in source=api phone=+15550000001");
    app.eventually(10, "the opt_in flow's message went out", || async {
        twilio
            .requests()
            .iter()
            .any(|r| r.form_value("Body").as_deref() == Some("Good to have you back."))
    })
    .await;
    // The same again changes nothing and fires nothing.
    let (s, _) = app
        .patch(
            &key,
            "/api/v1/contacts/%2B15550000001",
            json!({"opted_out": false}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(logs(&app, &key, &back["id"]).await.len(), 1);
    // Opting out through the API is not "whatsapp": the goodbye trigger
    // stays quiet, and the flag is set.
    let (s, c) = app
        .patch(
            &key,
            "/api/v1/contacts/%2B15550000001",
            json!({"opted_out": true}),
        )
        .await;
    assert_eq!((s, &c["opted_out"]), (200, &json!(true)));
    assert_eq!(logs(&app, &key, &gone["id"]).await.len(), 1);
    // An unknown contact: 404, nothing fired.
    let (s, _) = app
        .patch(
            &key,
            "/api/v1/contacts/%2B15550009999",
            json!({"opted_out": false}),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(logs(&app, &key, &back["id"]).await.len(), 1);
}
