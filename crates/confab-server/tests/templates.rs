//! Each bot's catalogue of WhatsApp templates: synced from Meta's business
//! account, declared for Twilio and Meta, and every send and flow naming a
//! template checked against it before anything is queued.
mod common;

use common::fake::{FakeProvider, Kind, Reply};
use common::*;
use confab_server::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

const WABA: &str = "102290129340398";
const SHOP: &str = "/api/v1/bots/shop";
const SID: &str = "HXb5b62575e6e4ff6129ad7c8efe1f983e";

async fn app_with(twilio: &FakeProvider, meta: &FakeProvider) -> (TestApp, String) {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.twilio_api_url = Some(twilio.url.clone());
    raw.whatsapp_api_url = Some(meta.url.clone());
    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    let (s, b) = app
        .post(
            &key,
            "/api/v1/bots",
            json!({"name": "Shop", "slug": "shop", "channels": {
                "twilio": {"account_sid": ACCOUNT_SID, "auth_token": "shop-twilio-token", "number": "+14155550001"},
                "meta": {"phone_number_id": "5550001", "access_token": "shop-meta-token",
                         "app_secret": "shop-app-secret", "business_account_id": WABA}}}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    (app, key)
}

/// A page of Meta's `message_templates` answer.
fn page(templates: Value, after: Option<&str>) -> Reply {
    let mut paging = json!({"cursors": {"before": "MAZDZD", "after": after.unwrap_or("MjQZD")}});
    if let Some(a) = after {
        paging["next"] = json!(format!(
            "https://graph.facebook.com/v23.0/{WABA}/message_templates?after={a}"
        ));
    }
    Reply::status(
        200,
        &json!({"data": templates, "paging": paging}).to_string(),
    )
}

fn meta_template(name: &str, language: &str, status: &str, body: &str) -> Value {
    json!({"id": format!("{}", name.len() * 1000 + language.len()), "name": name,
        "language": language, "category": "UTILITY", "status": status,
        "components": [{"type": "HEADER", "format": "TEXT", "text": "Update"},
                       {"type": "BODY", "text": body}]})
}

fn meta_send(name: &str, language: &str, params: &[&str]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({"type": "text", "text": p}))
        .collect();
    json!({"to": "+16505551234", "channel": "meta", "template": {"name": name, "language": language,
        "components": [{"type": "body", "parameters": parameters}]}})
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .or(page["templates"].as_array())
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}/{}/{}",
                t["channel"].as_str().unwrap(),
                t["name"].as_str().unwrap(),
                t["language"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_meta_catalogue_is_synced_page_by_page_and_sends_are_checked_against_it() {
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let (app, key) = app_with(&twilio, &meta).await;
    // A declared one stays through syncs; one Meta also lists becomes synced.
    for body in [
        json!({"name": "welcome", "language": "en", "category": "MARKETING", "body": "Hello!", "channel": "meta"}),
        json!({"name": "order_update", "language": "en_US", "category": "UTILITY", "body": "Old text {{1}}", "channel": "meta"}),
    ] {
        let (s, t) = app.post(&key, &format!("{SHOP}/templates"), body).await;
        assert_eq!(s, 201, "{t}");
        assert_eq!(t["source"], "declared");
    }
    meta.script([
        page(
            json!([
                meta_template(
                    "order_update",
                    "en_US",
                    "APPROVED",
                    "Order {{1}} ships on {{2}}."
                ),
                meta_template(
                    "order_update",
                    "pt_BR",
                    "APPROVED",
                    "Pedido {{1}} sai em {{2}}."
                ),
            ]),
            Some("QVFIU"),
        ),
        page(
            json!([meta_template("spring_sale", "en_US", "PENDING", "Sale!")]),
            None,
        ),
    ]);
    let (s, sync) = app
        .post(&key, &format!("{SHOP}/templates/sync"), json!({}))
        .await;
    assert_eq!(s, 200, "{sync}");
    assert_eq!(
        (
            &sync["channel"],
            &sync["fetched"],
            &sync["added"],
            &sync["updated"],
            &sync["removed"]
        ),
        (&json!("meta"), &json!(3), &json!(2), &json!(1), &json!(0)),
        "{sync}"
    );
    assert_eq!(
        names(&sync),
        [
            "meta/order_update/en_US",
            "meta/order_update/pt_BR",
            "meta/spring_sale/en_US",
            "meta/welcome/en"
        ]
    );
    // Exactly as Graph documents it: the account's edge, the bearer token,
    // the next page by the `after` cursor on the same URL.
    let asked = meta.requests();
    assert_eq!(asked.len(), 2);
    for r in &asked {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, format!("/v23.0/{WABA}/message_templates"));
        assert_eq!(r.header("authorization"), Some("Bearer shop-meta-token"));
        assert!(r.query.contains("limit=100"), "{}", r.query);
    }
    assert!(!asked[0].query.contains("after="));
    assert!(asked[1].query.contains("after=QVFIU"), "{}", asked[1].query);

    let (_, list) = app
        .get(&key, &format!("{SHOP}/templates?name=order_update"))
        .await;
    let update = &list["items"][0];
    assert_eq!(update["source"], "synced");
    assert_eq!(update["parameters"], json!(["1", "2"]));
    assert_eq!(update["body"], "Order {{1}} ships on {{2}}.");
    assert_eq!(update["header"], json!({"format": "TEXT"}));
    let mut with_image = meta_send("order_update", "en_US", &["1", "Friday"]);
    with_image["template"]["components"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "header", "parameters": [
            {"type": "image", "image": {"link": "https://example.com/a.png"}}]}));

    // Every mistake is a 422 naming the template, and nothing is queued.
    let sends = format!("{SHOP}/messages");
    for (send, says) in [
        (
            meta_send("order_updates", "en_US", &["1", "Friday"]),
            "\"order_updates\" is not in the bot's catalogue",
        ),
        (
            meta_send("order_update", "fr", &["1", "Friday"]),
            "no language \"fr\"; it has en_US, pt_BR",
        ),
        (
            meta_send("order_update", "en_US", &["1"]),
            "takes 2 body parameters; the send gives 1",
        ),
        (meta_send("spring_sale", "en_US", &[]), "PENDING"),
        (
            with_image,
            "takes 0 text header parameters; the send gives 1 (image)",
        ),
    ] {
        let (s, p) = app.post(&key, &sends, send).await;
        assert_eq!(s, 422, "{p}");
        assert!(p["detail"].as_str().unwrap().contains(says), "{p}");
    }
    let mut bulk = meta_send("order_update", "pt_BR", &["7"]);
    bulk["to"] = json!(["+16505551234", "+16505551235"]);
    let (s, p) = app.post(&key, &format!("{sends}/bulk"), bulk.clone()).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(app.count("messages").await, 0);

    let (s, m) = app
        .post(
            &key,
            &sends,
            meta_send("order_update", "pt_BR", &["7", "sexta"]),
        )
        .await;
    assert_eq!(s, 202, "{m}");
    bulk["template"]["components"][0]["parameters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "text", "text": "sexta"}));
    let (s, b) = app.post(&key, &format!("{sends}/bulk"), bulk).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["queued"], 2);
    let (s, _) = app
        .post(&key, &sends, meta_send("welcome", "en", &[]))
        .await;
    assert_eq!(s, 202);

    // The fake answers in order: the four sends go out before the next sync.
    app.eventually(10, "the four sends", || async {
        meta.requests().len() == 2 + 4
    })
    .await;
    // Meta drops one and approves another: the catalogue follows; the
    // declared one stays.
    meta.script([page(
        json!([
            meta_template(
                "order_update",
                "en_US",
                "APPROVED",
                "Order {{1}} ships on {{2}}."
            ),
            meta_template("spring_sale", "en_US", "APPROVED", "Sale!"),
        ]),
        None,
    )]);
    let (s, sync) = app
        .post(&key, &format!("{SHOP}/templates/sync"), json!({}))
        .await;
    assert_eq!(s, 200, "{sync}");
    assert_eq!(
        (
            &sync["fetched"],
            &sync["added"],
            &sync["updated"],
            &sync["removed"]
        ),
        (&json!(2), &json!(0), &json!(1), &json!(1)),
        "{sync}"
    );
    assert_eq!(
        names(&sync),
        [
            "meta/order_update/en_US",
            "meta/spring_sale/en_US",
            "meta/welcome/en"
        ]
    );
    let (s, p) = app
        .post(
            &key,
            &sends,
            meta_send("order_update", "pt_BR", &["7", "sexta"]),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    let (_, audit) = app.get(&key, "/api/v1/audit").await;
    let actions: Vec<&str> = column(&audit, "action");
    assert_eq!(
        actions.iter().filter(|a| **a == "template.sync").count(),
        2,
        "{audit}"
    );
}

#[tokio::test]
async fn a_sync_says_what_meta_answered_and_what_the_bot_lacks() {
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let (app, key) = app_with(&twilio, &meta).await;
    meta.script([Reply::status(
        401,
        r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"fbtrace_id":"AbC"}}"#,
    )]);
    let (s, p) = app
        .post(&key, &format!("{SHOP}/templates/sync"), json!({}))
        .await;
    assert_eq!(s, 502, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("Session has expired (code 190)"),
        "{p}"
    );
    // An answer that is not Meta's shape changes nothing either.
    meta.script([Reply::status(200, r#"{"data": "nope"}"#)]);
    let (s, _) = app
        .post(&key, &format!("{SHOP}/templates/sync"), json!({}))
        .await;
    assert_eq!(s, 502);
    assert_eq!(app.count("message_templates").await, 0);

    // The default bot has no business account: 409 saying how to give it one.
    let (s, p) = app.post(&key, "/api/v1/templates/sync", json!({})).await;
    assert_eq!(s, 409, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("WHATSAPP_BUSINESS_ACCOUNT_ID"), "{p}");

    // A bot with only Twilio keeps its declared templates; nothing is read.
    let (s, _) = app
        .post(
            &key,
            "/api/v1/bots",
            json!({"name": "Desk", "slug": "desk", "channels": {"twilio":
                {"account_sid": ACCOUNT_SID, "auth_token": "desk-token", "number": "+14155550002"}}}),
        )
        .await;
    assert_eq!(s, 201);
    let before = meta.requests().len();
    let (s, sync) = app
        .post(&key, "/api/v1/bots/desk/templates/sync", json!({}))
        .await;
    assert_eq!(s, 200, "{sync}");
    assert_eq!(sync["channel"], "twilio");
    assert_eq!(sync["fetched"], 0);
    assert_eq!(meta.requests().len(), before);
}

#[tokio::test]
async fn the_default_bot_syncs_the_account_its_settings_name() {
    let meta = FakeProvider::start(Kind::Meta).await;
    let mut raw = settings(&fresh_database().await, None, Some(&meta.url));
    raw.whatsapp_business_account_id = Some(WABA.into());
    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    meta.script([page(
        json!([meta_template(
            "hello_world",
            "en_US",
            "APPROVED",
            "Welcome!"
        )]),
        None,
    )]);
    let (s, sync) = app.post(&key, "/api/v1/templates/sync", json!({})).await;
    assert_eq!(s, 200, "{sync}");
    assert_eq!(names(&sync), ["meta/hello_world/en_US"]);
    assert_eq!(
        meta.requests()[0].path,
        format!("/v23.0/{WABA}/message_templates")
    );
    let (s, m) = app
        .post(
            &key,
            "/api/v1/messages",
            meta_send("hello_world", "en_US", &[]),
        )
        .await;
    assert_eq!(s, 202, "{m}");
}

#[tokio::test]
async fn declared_templates_check_twilio_sends_and_flows() {
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let (app, key) = app_with(&twilio, &meta).await;
    let templates = format!("{SHOP}/templates");
    let reminder = json!({"name": "appointment_reminder", "language": "en", "category": "utility",
        "body": "Hi {{1}}, see you on {{2}}.", "channel": "twilio", "content_sid": SID});

    // Bad bodies name their field and add nothing.
    for (body, field) in [
        (
            json!({"name": "x", "language": "en", "category": "UTILITY", "body": "Hi"}),
            "channel",
        ),
        (
            json!({"name": "x", "language": "en", "category": "UTILITY", "body": "Hi", "channel": "twilio"}),
            "content_sid",
        ),
        (
            json!({"name": "x", "language": "en", "category": "UTILITY", "body": "Hi", "channel": "twilio", "content_sid": "HX12"}),
            "content_sid",
        ),
        (
            json!({"name": "x", "language": "en", "category": "UTILITY", "body": "Hi {{2}}", "channel": "meta"}),
            "body",
        ),
        (
            json!({"name": "x", "language": "en", "category": "PROMO", "body": "Hi", "channel": "meta"}),
            "category",
        ),
        (
            json!({"name": "X Y", "language": "en", "category": "UTILITY", "body": "Hi", "channel": "meta"}),
            "name",
        ),
        (
            json!({"name": "x", "language": "English", "category": "UTILITY", "body": "Hi", "channel": "meta"}),
            "language",
        ),
        (
            json!({"name": "x", "language": "en", "category": "UTILITY", "body": "", "channel": "meta"}),
            "body",
        ),
        (
            json!({"name": "x", "language": "en", "category": "UTILITY", "body": "Hi", "channel": "fax"}),
            "channel",
        ),
    ] {
        let (s, p) = app.post(&key, &templates, body.clone()).await;
        assert_eq!(s, 422, "{body} {p}");
        assert_eq!(p["problems"][0]["field"], field, "{body} {p}");
    }
    let (s, p) = app
        .post(&key, &templates, json!({"name": "x", "language": "en", "category": "UTILITY", "body": "Hi", "channel": "meta", "colour": "red"}))
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(app.count("message_templates").await, 0);

    let (s, t) = app.post(&key, &templates, reminder.clone()).await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["category"], "UTILITY");
    assert_eq!(t["status"], "APPROVED");
    assert_eq!(t["parameters"], json!(["1", "2"]));
    let (s, p) = app.post(&key, &templates, reminder).await;
    assert_eq!(s, 409, "{p}");
    let id = t["id"].as_i64().unwrap();
    assert_eq!(
        app.get(&key, &format!("{templates}/{id}")).await.1["name"],
        "appointment_reminder"
    );
    assert_eq!(app.get(&key, &format!("{templates}/999999")).await.0, 404);
    assert_eq!(
        app.get(&key, &format!("{templates}?channel=fax")).await.0,
        400
    );
    let (_, twilio_only) = app.get(&key, &format!("{templates}?channel=twilio")).await;
    assert_eq!(names(&twilio_only), ["twilio/appointment_reminder/en"]);
    // Another bot's template is not this one's.
    assert_eq!(
        app.get(&key, &format!("/api/v1/templates/{id}")).await.0,
        404
    );

    // A Twilio send gives the Content SID and exactly its variables.
    let sends = format!("{SHOP}/messages");
    let twilio_send = |vars: Value| json!({"to": "+16505551234", "channel": "twilio", "template": {"content_sid": SID, "variables": vars}});
    let (s, p) = app
        .post(&key, &sends, twilio_send(json!({"1": "Ana"})))
        .await;
    assert_eq!(s, 422, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains(
            "template appointment_reminder (HXb5b62575e6e4ff6129ad7c8efe1f983e) takes 2 variables ({{1}}, {{2}}); the send gives 1 ({{1}})"
        ),
        "{p}"
    );
    let mut unknown = twilio_send(json!({}));
    unknown["template"]["content_sid"] = json!(format!("HX{}", "c".repeat(32)));
    let (s, p) = app.post(&key, &sends, unknown).await;
    assert_eq!(s, 422, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("not in the bot's catalogue")
    );
    assert_eq!(app.count("messages").await, 0);
    let (s, m) = app
        .post(
            &key,
            &sends,
            twilio_send(json!({"1": "Ana", "2": "Friday"})),
        )
        .await;
    assert_eq!(s, 202, "{m}");

    // A flow naming a template is checked when it is published: each node
    // at fault is named, and nothing is stored.
    let flow = |sid: &str, vars: Value| {
        json!({"id": "reminders", "nodes": [
            {"id": "remind", "type": "send", "template": {"content_sid": sid, "variables": vars}, "next": "ask"},
            {"id": "ask", "type": "ask", "template": {"name": "confirm", "language": "en"}, "save_as": "answer", "next": "done"},
            {"id": "done", "type": "end"}]})
    };
    let (s, p) = app
        .post(
            &key,
            &format!("{SHOP}/flows"),
            flow(SID, json!({"1": "Ana"})),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    let problems = p["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{p}");
    assert_eq!(problems[0]["node"], "remind");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("takes 2 variables")
    );
    assert_eq!(problems[1]["node"], "ask");
    assert!(
        problems[1]["message"]
            .as_str()
            .unwrap()
            .contains("\"confirm\" is not in the bot's catalogue")
    );
    assert_eq!(
        app.get(&key, &format!("{SHOP}/flows/reminders")).await.0,
        404
    );

    let (s, t) = app
        .post(
            &key,
            &templates,
            json!({"name": "confirm", "language": "en", "category": "UTILITY",
            "body": "Reply YES to confirm.", "channel": "meta"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let (s, f) = app
        .post(
            &key,
            &format!("{SHOP}/flows"),
            flow(SID, json!({"1": "Ana", "2": "Friday"})),
        )
        .await;
    assert_eq!(s, 201, "{f}");

    // Roles: a viewer reads, an editor declares and deletes.
    let viewer = app.api_key_with(Role::Viewer).await;
    assert_eq!(app.get(&viewer, &templates).await.0, 200);
    let (s, _) = app
        .post(&viewer, &templates, json!({"name": "y", "language": "en", "category": "UTILITY", "body": "Hi", "channel": "meta"}))
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        app.call(Method::DELETE, &viewer, &format!("{templates}/{id}"), None)
            .await
            .0,
        403
    );
    let (s, gone) = app
        .call(Method::DELETE, &key, &format!("{templates}/{id}"), None)
        .await;
    assert_eq!(s, 200, "{gone}");
    assert_eq!(
        app.call(Method::DELETE, &key, &format!("{templates}/{id}"), None)
            .await
            .0,
        404
    );
    let (s, _) = app
        .post(
            &key,
            &sends,
            twilio_send(json!({"1": "Ana", "2": "Friday"})),
        )
        .await;
    assert_eq!(s, 422);
    // Rolling back to a version naming a template the catalogue has lost
    // is refused, naming the node; the live version stays.
    let (s, v2) = app
        .call(
            Method::PUT,
            &key,
            &format!("{SHOP}/flows/reminders"),
            Some(json!({"id": "reminders", "nodes": [{"id": "done", "type": "end", "text": "No reminders."}]})),
        )
        .await;
    assert_eq!((s, &v2["version"]), (200, &json!(2)), "{v2}");
    let (s, p) = app
        .post(
            &key,
            &format!("{SHOP}/flows/reminders/versions/1/publish"),
            json!(null),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["problems"][0]["node"], "remind", "{p}");
    assert!(
        p["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not in the bot's catalogue"),
        "{p}"
    );
    assert_eq!(
        app.get(&key, &format!("{SHOP}/flows/reminders")).await.1["version"],
        2
    );

    // Deleting the bot takes its catalogue and triggers with it.
    let (s, t) = app
        .post(
            &key,
            &format!("{SHOP}/triggers"),
            json!({"name": "remind me", "flow_id": "reminders",
            "trigger_type": "keyword", "keywords": ["remind"]}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let (s, p) = app
        .call(Method::DELETE, &key, "/api/v1/bots/shop?force=true", None)
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(app.count("message_templates").await, 0);
    assert_eq!(app.count("triggers").await, 0);
}
