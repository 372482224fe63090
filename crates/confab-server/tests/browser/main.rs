//! The console in a real browser: headless Chromium driven through
//! chromedriver, against the server on a real port. They need both, so
//! they are ignored by `cargo test`; `bash .ci/browser` installs Chromium
//! and its driver, starts the driver and runs them (CI does). Each leaves
//! screenshots of the screens it passes, at desktop and phone widths, in
//! `$SCREENSHOTS` (`SCREENSHOTS=docs/console` renews the README's).

#[path = "../common/mod.rs"]
mod common;
mod webdriver;

use std::path::PathBuf;

use common::fake::{FakeProvider, Kind};
use common::*;
use confab_server::auth::Role;
use serde_json::json;
use webdriver::Browser;

async fn log_in(b: &Browser, app: &TestApp, user: &str) {
    b.goto(&format!("{}/console", app.url)).await;
    b.fill("#username", user).await;
    b.fill("#password", "a-long-password").await;
    b.click(".login button").await;
    b.find("nav[aria-label=Screens]").await;
}

/// Screenshots of the page as it is, at a desktop's width and a phone's,
/// named `{name}-desktop.png` and `{name}-phone.png`.
async fn screenshots(b: &Browser, name: &str) {
    let dir = std::env::var("SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("confab-console"));
    std::fs::create_dir_all(&dir).unwrap();
    for (width, height, label) in [(1280, 900, "desktop"), (390, 844, "phone")] {
        b.size(width, height).await;
        let png = b.screenshot(&dir.join(format!("{name}-{label}.png"))).await;
        assert!(png.starts_with(b"\x89PNG"), "{name} at {label}: a PNG");
    }
    b.size(1280, 900).await;
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver: bash .ci/browser"]
async fn an_agent_sees_a_message_arrive_live_answers_it_and_hands_the_contact_back() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    app.user("ana", Role::Agent).await;
    // A contact asks for a person: the run is handed off.
    app.twilio_text("+15550000001", "pms", "SM1").await;
    app.twilio_text("+15550000001", "6", "SM2").await;

    let b = Browser::open().await;
    b.goto(&format!("{}/console", app.url)).await;
    screenshots(&b, "login").await;
    log_in(&b, &app, "ana").await;
    b.click(".contact-list a").await;
    b.wait_text("#conversation-title", "Test User").await;
    b.wait_text(".facts", "handed off").await;

    // A signed webhook brings a message while the page is open: it shows
    // without a reload.
    let page = b.url().await;
    app.twilio_text("+15550000001", "Is anyone there?", "SM3")
        .await;
    b.wait_text("#live-messages", "Is anyone there?").await;
    assert_eq!(b.url().await, page);
    screenshots(&b, "inbox").await;

    // The agent answers: queued, then in the conversation.
    b.type_in("#reply-text", "Yes, Ana here. How can I help?")
        .await;
    b.click(".reply button[type=submit]").await;
    b.wait_text("p.done", "queued").await;
    b.wait_text("#live-messages", "Yes, Ana here.").await;
    // And hands the contact back to the bot.
    b.click("form[action*='/resume'] button").await;
    b.wait_text("p.done", "The bot has the conversation again.")
        .await;
    let (_, runs) = app
        .get(
            &app.api_key().await,
            "/api/v1/runs?contact=%2B15550000001&limit=1",
        )
        .await;
    assert_ne!(runs["items"][0]["status"], "handed_off", "{runs}");
    b.close().await;
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver: bash .ci/browser"]
async fn the_survey_finished_in_the_simulator_is_a_record_to_find_and_export() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    app.user("eda", Role::Editor).await;
    let b = Browser::open().await;
    log_in(&b, &app, "eda").await;
    b.click("nav a[href*='/console/simulator']").await;
    b.click("select#sim-flow option[value=product_review]")
        .await;
    b.click(".sim-start button").await;
    b.wait_text(".sim-screen", "What's your name?").await;
    b.wait_text("#sim-node", "ask_name").await;
    for (answer, next) in [
        ("Ana", "Which product"),
        ("Aurora Headphones", "What do you think"),
        ("Warm sound and a long battery.", "May we contact you"),
    ] {
        b.type_in("#sim-text", answer).await;
        b.click(".sim-say button").await;
        b.wait_text(".sim-screen", next).await;
    }
    screenshots(&b, "simulator").await;
    b.type_in("#sim-text", "no").await;
    b.click(".sim-say button").await;
    b.wait_text(".sim-screen", "All done, Ana!").await;
    b.wait_text("#sim-variables", "Aurora Headphones").await;

    b.click("nav a[href*='/console/records']").await;
    b.click("a[href*='/console/records/reviews']").await;
    b.wait_text("main table", "Aurora Headphones").await;
    screenshots(&b, "records").await;
    // The export link is the API's CSV of the same records.
    let source = b.source().await;
    assert!(source.contains("Export these records as CSV"), "{source}");
    let csv = reqwest::Client::new()
        .get(format!(
            "{}/console/records/reviews/export?bot=default",
            app.url
        ))
        .header(
            "cookie",
            format!("confab_session={}", b.cookie("confab_session").await),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let text = csv.text().await.unwrap();
    assert!(text.contains("Aurora Headphones"), "{text}");
    b.close().await;
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver: bash .ci/browser"]
async fn an_editor_sees_a_broken_flow_on_its_line_and_a_new_schedule_says_when_it_fires() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    app.user("eda", Role::Editor).await;
    let (s, f) = app
        .post(
            &key,
            "/api/v1/flows",
            json!({"id": "hello", "name": "Hello", "nodes": [
                {"id": "a", "type": "send", "text": "Hi", "next": "b"},
                {"id": "b", "type": "end", "text": "Bye"}]}),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    let b = Browser::open().await;
    log_in(&b, &app, "eda").await;
    b.click("nav a[href*='/console/flows']").await;
    b.wait_text("main table", "product_review").await;
    screenshots(&b, "flows").await;
    b.click("a[href*='/console/flows/hello']").await;
    b.click("a[href*='/edit']").await;
    let broken = "id: hello\nname: Hello\nnodes:\n  - id: a\n    type: send\n    text: Hi\n    next: nowhere\n  - id: b\n    type: end\n    text: Bye\n";
    b.set_value("#flow-yaml", broken).await;
    b.click("button[name=check]").await;
    let line = b.wait_text("#line-7.fault", "nowhere").await;
    assert!(line.contains("next: nowhere"), "{line}");
    screenshots(&b, "flow-editor").await;

    // A daily schedule: saved, it lists its next firing times.
    b.click("nav a[href*='/console/triggers']").await;
    b.fill("#t-name", "Morning check-in").await;
    b.click("select#t-flow option[value=hello]").await;
    b.click("input[name=trigger_type][value=schedule]").await;
    b.click("select#t-schedule option[value=daily]").await;
    b.fill("#t-time", "09:30").await;
    b.fill("#t-zone", "Europe/Berlin").await;
    b.click("button[name=preview]").await;
    let preview = b.wait_text("#preview ol.upcoming", "09:30").await;
    assert_eq!(preview.lines().count(), 5, "{preview}");
    screenshots(&b, "triggers").await;
    b.click(".trigger-form button[type=submit]:not([name])")
        .await;
    let upcoming = b.wait_text("ol.upcoming", "09:30").await;
    assert_eq!(upcoming.lines().count(), 5, "{upcoming}");
    b.close().await;
}

#[tokio::test]
#[ignore = "needs Chromium and chromedriver: bash .ci/browser"]
async fn every_other_screen_is_drawn_at_both_widths() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    app.user("root2", Role::Admin).await;
    // Some traffic for the dashboard and runs to list.
    for i in 1..=4 {
        let phone = format!("+1555000000{i}");
        app.twilio_text(&phone, "review", &format!("SMa{i}")).await;
        if i % 2 == 0 {
            app.twilio_text(&phone, "Ana", &format!("SMb{i}")).await;
        }
    }
    let b = Browser::open().await;
    log_in(&b, &app, "root2").await;
    for (screen, holds, name) in [
        ("runs", "Runs", "runs"),
        ("settings", "API keys", "settings"),
        ("broadcast", "Broadcast", "broadcast"),
        ("dashboard", "Messages per day", "dashboard"),
        ("flows/product_review", "The flow", "flow"),
    ] {
        b.goto(&format!("{}/console/{screen}", app.url)).await;
        b.wait_text("main", holds).await;
        screenshots(&b, name).await;
    }
    // The flow's graph: a box for each node.
    b.find("svg.graph g.node.start").await;
    assert_eq!(b.source().await.matches("<g class=\"node ").count(), 9);
    b.close().await;
}
