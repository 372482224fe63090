//! Two bots on one server: each webhook goes to the bot of the number it
//! was sent to, is checked with that bot's secret, and is answered by that
//! bot's flow; each bot's contacts and history are its own.
mod common;

use std::time::Duration;

use common::fake::{FakeProvider, Kind};
use common::*;
use serde_json::json;

const SHOP_SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHOP_TOKEN: &str = "shop-twilio-token-0001";
const SHOP_META_TOKEN: &str = "EAAG-shop-access-token";
const SHOP_APP_SECRET: &str = "shop-app-secret-0001";
const CLINIC_SID: &str = "ACbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const CLINIC_TOKEN: &str = "clinic-twilio-token-0002";
const SHOP_NUMBER: &str = "+14155550001";
const CLINIC_NUMBER: &str = "+14155550002";
const SHOP_PHONE_ID: &str = "5550001";

struct Setup {
    app: TestApp,
    key: String,
    twilio: FakeProvider,
    meta: FakeProvider,
    shop: i64,
    clinic: i64,
}

/// A server whose default bot has the environment's Twilio and Meta
/// numbers, and two bots made through the API.
async fn setup() -> Setup {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let meta = FakeProvider::start(Kind::Meta).await;
    let app = spawn_app(settings(
        &fresh_database().await,
        Some(&twilio.url),
        Some(&meta.url),
    ))
    .await;
    let key = app.api_key().await;
    let (status, shop) = app
        .post(
            &key,
            "/api/v1/bots",
            json!({"name": "Shop", "default_flow": "product_review", "channels": {
                "twilio": {"account_sid": SHOP_SID, "auth_token": SHOP_TOKEN, "number": SHOP_NUMBER},
                "meta": {"phone_number_id": SHOP_PHONE_ID, "access_token": SHOP_META_TOKEN, "app_secret": SHOP_APP_SECRET}
            }}),
        )
        .await;
    assert_eq!(status, 201, "{shop}");
    let (status, clinic) = app
        .post(
            &key,
            "/api/v1/bots",
            json!({"name": "Clinic", "default_flow": "pms_menu", "channels": {
                "twilio": {"account_sid": CLINIC_SID, "auth_token": CLINIC_TOKEN, "number": CLINIC_NUMBER}
            }}),
        )
        .await;
    assert_eq!(status, 201, "{clinic}");
    Setup {
        app,
        key,
        twilio,
        meta,
        shop: shop["id"].as_i64().unwrap(),
        clinic: clinic["id"].as_i64().unwrap(),
    }
}

/// A Twilio message "hi" to `to`, posted to `path` and signed with `token`
/// as Twilio signs it.
async fn twilio(
    app: &TestApp,
    path: &str,
    token: &str,
    to: &str,
    from: &str,
    sid: &str,
) -> reqwest::Response {
    twilio_says(app, (path, token), to, from, "hi", sid).await
}

/// A Twilio message `text` to `to`, posted to `path`, signed with `token`.
async fn twilio_says(
    app: &TestApp,
    (path, token): (&str, &str),
    to: &str,
    from: &str,
    text: &str,
    sid: &str,
) -> reqwest::Response {
    let (from, to) = (format!("whatsapp:{from}"), format!("whatsapp:{to}"));
    let params = [
        ("From", from.as_str()),
        ("To", to.as_str()),
        ("Body", text),
        ("MessageSid", sid),
        ("NumMedia", "0"),
    ];
    app.twilio_signed(path, token, &params).await
}

fn sid(n: u32) -> String {
    format!("SM{n:032x}")
}

#[tokio::test]
async fn each_twilio_number_is_its_bots_and_signed_with_its_token() {
    let s = setup().await;
    let app = &s.app;
    let ana = "+27123456789";
    let r = twilio(
        app,
        "/webhooks/twilio",
        SHOP_TOKEN,
        SHOP_NUMBER,
        ana,
        &sid(1),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("review one of our products")
    );
    let r = twilio(
        app,
        "/webhooks/twilio",
        CLINIC_TOKEN,
        CLINIC_NUMBER,
        ana,
        &sid(2),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Production assistant"));

    // One number, two bots: two contacts, each with its own history.
    let of_shop = app
        .store
        .contact_by_phone(s.shop, ana)
        .await
        .unwrap()
        .unwrap();
    let of_clinic = app
        .store
        .contact_by_phone(s.clinic, ana)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(of_shop.id, of_clinic.id);
    let texts = |history: serde_json::Value| -> Vec<String> {
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_string))
            .collect()
    };
    let (status, history) = app
        .get(
            &s.key,
            &format!("/api/v1/bots/shop/contacts/{ana}/messages"),
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let shop_texts = texts(history);
    assert_eq!(shop_texts.len(), 2, "{shop_texts:?}");
    assert!(
        shop_texts.iter().all(|t| !t.contains("Production")),
        "{shop_texts:?}"
    );
    let (_, history) = app
        .get(
            &s.key,
            &format!("/api/v1/bots/clinic/contacts/{}/messages", of_clinic.id),
        )
        .await;
    assert!(texts(history).iter().any(|t| t.contains("Production")));
    // The unscoped routes are the default bot's: the shop's contact is not there.
    let (status, _) = app
        .get(&s.key, &format!("/api/v1/contacts/{}", of_shop.id))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get(
            &s.key,
            &format!("/api/v1/bots/clinic/contacts/{}", of_shop.id),
        )
        .await;
    assert_eq!(status, 404, "a contact of another bot");

    // Signed with the other bot's token: refused, nothing kept.
    let before = app.count("messages").await;
    let r = twilio(
        app,
        "/webhooks/twilio",
        SHOP_TOKEN,
        CLINIC_NUMBER,
        ana,
        &sid(3),
    )
    .await;
    assert_eq!(r.status(), 403);
    // A number no bot has: 404, nothing kept.
    let r = twilio(
        app,
        "/webhooks/twilio",
        SHOP_TOKEN,
        "+14155550099",
        ana,
        &sid(4),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(app.count("messages").await, before);

    // A URL of the bot's own: its token, whatever the number says.
    let r = twilio(
        app,
        "/webhooks/twilio/clinic",
        CLINIC_TOKEN,
        "+14155550099",
        "+27111111111",
        &sid(5),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Production assistant"));
    let r = twilio(
        app,
        "/webhooks/twilio/clinic",
        SHOP_TOKEN,
        CLINIC_NUMBER,
        ana,
        &sid(6),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = twilio(
        app,
        "/webhooks/twilio/nobody",
        SHOP_TOKEN,
        CLINIC_NUMBER,
        ana,
        &sid(7),
    )
    .await;
    assert_eq!(r.status(), 404);
    // A delivery report: the bot that sent it (`From`), or the one its URL names.
    let (status_sid, ana_to) = (sid(99), format!("whatsapp:{ana}"));
    let report = |from: &str| {
        [
            ("MessageSid", status_sid.clone()),
            ("MessageStatus", "delivered".to_string()),
            ("From", format!("whatsapp:{from}")),
            ("To", ana_to.clone()),
        ]
    };
    let post_signed =
        |path: &'static str, token: &'static str, params: [(&'static str, String); 4]| async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.twilio_signed(path, token, &params).await
        };
    let ok = post_signed(
        "/webhooks/twilio/status",
        CLINIC_TOKEN,
        report(CLINIC_NUMBER),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let forged = post_signed("/webhooks/twilio/status", SHOP_TOKEN, report(CLINIC_NUMBER)).await;
    assert_eq!(forged.status(), 403);
    let own = post_signed(
        "/webhooks/twilio/clinic/status",
        CLINIC_TOKEN,
        report("+14155550099"),
    )
    .await;
    assert_eq!(own.status(), 200);
    let other = post_signed(
        "/webhooks/twilio/clinic/status",
        SHOP_TOKEN,
        report(CLINIC_NUMBER),
    )
    .await;
    assert_eq!(other.status(), 403);
    let unknown = post_signed(
        "/webhooks/twilio/status",
        SHOP_TOKEN,
        report("+14155550099"),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    // The environment's number is still the default bot's.
    let r = app.twilio_text(ana, "hi", &sid(8)).await;
    assert_eq!(r.status(), 200);
    assert!(
        app.store
            .contact_by_phone(confab_store::DEFAULT_BOT, ana)
            .await
            .unwrap()
            .is_some()
    );
}

/// A Meta webhook with one text message to `phone_number_id`.
fn meta_body(phone_number_id: &str, from: &str, id: &str) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": from}],
            "messages": [{"from": from, "id": id, "timestamp": "1700000000", "type": "text", "text": {"body": "hi"}}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

async fn meta_post(app: &TestApp, path: &str, secret: &str, body: &[u8]) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.url))
        .header(
            "X-Hub-Signature-256",
            confab_channels::meta::signature(secret, body),
        )
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_meta_number_is_its_bots_and_its_answers_go_out_with_its_token() {
    let s = setup().await;
    let app = &s.app;
    let body = meta_body(SHOP_PHONE_ID, "27123456789", "wamid.shop1");
    // The default bot's app secret does not sign for the shop.
    let r = meta_post(app, "/webhooks/meta", APP_SECRET, &body).await;
    assert_eq!(r.status(), 403);
    let r = meta_post(app, "/webhooks/meta", SHOP_APP_SECRET, &body).await;
    assert_eq!(r.status(), 200);
    let contact = app
        .store
        .contact_by_phone(s.shop, "+27123456789")
        .await
        .unwrap()
        .expect("a contact of the shop");
    assert_eq!(contact.profile_name.as_deref(), Some("Ana"));
    // The survey's first question goes out from the shop's number, with its token.
    app.eventually(10, "the shop's answer", || async {
        !s.meta.requests().is_empty()
    })
    .await;
    let sent = &s.meta.requests()[0];
    assert!(
        sent.path.ends_with(&format!("/{SHOP_PHONE_ID}/messages")),
        "{}",
        sent.path
    );
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {SHOP_META_TOKEN}").as_str())
    );
    assert_eq!(sent.json()["to"], "27123456789");

    // A phone number id no bot has: 404, nothing kept.
    let before = app.count("messages").await;
    let other = meta_body("5559999", "27123456789", "wamid.nobody");
    assert_eq!(
        meta_post(app, "/webhooks/meta", SHOP_APP_SECRET, &other)
            .await
            .status(),
        404
    );
    // The bot's own URL: its secret, whatever number the body names.
    assert_eq!(
        meta_post(app, "/webhooks/meta/shop", APP_SECRET, &other)
            .await
            .status(),
        403
    );
    assert_eq!(app.count("messages").await, before);
    assert_eq!(
        meta_post(app, "/webhooks/meta/shop", SHOP_APP_SECRET, &other)
            .await
            .status(),
        200
    );
    // The environment's number is still the default bot's.
    let default = meta_body(PHONE_NUMBER_ID, "27123456789", "wamid.default1");
    assert_eq!(app.meta(&default).await.status(), 200);
    assert!(
        app.store
            .contact_by_phone(confab_store::DEFAULT_BOT, "+27123456789")
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn each_bot_answers_meta_handshakes_with_its_own_verify_token() {
    let s = setup().await;
    let app = &s.app;
    let (status, _) = app
        .patch(
            &s.key,
            "/api/v1/bots/shop",
            json!({"channels": {"meta": {"verify_token": "shop-verify"}}}),
        )
        .await;
    assert_eq!(status, 200);
    let handshake = |path: &str, token: &str| {
        let url = format!(
            "{}{path}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42",
            app.url
        );
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(handshake("/webhooks/meta", "shop-verify").await, 200);
    assert_eq!(handshake("/webhooks/meta", VERIFY_TOKEN).await, 200);
    assert_eq!(handshake("/webhooks/meta/shop", "shop-verify").await, 200);
    assert_eq!(handshake("/webhooks/meta/shop", VERIFY_TOKEN).await, 403);
    assert_eq!(handshake("/webhooks/meta/nobody", "shop-verify").await, 404);
}

#[tokio::test]
async fn each_bots_data_is_under_its_own_path() {
    let s = setup().await;
    let app = &s.app;
    let ana = "+27123456789";
    assert_eq!(
        twilio(
            app,
            "/webhooks/twilio",
            SHOP_TOKEN,
            SHOP_NUMBER,
            ana,
            &sid(1)
        )
        .await
        .status(),
        200
    );
    // Answers of the survey, up to the saved review.
    for (n, text) in [
        (2, "Ana"),
        (3, "Kettle"),
        (4, "5"),
        (5, "Great kettle"),
        (6, "no"),
    ] {
        let r = twilio_says(
            app,
            ("/webhooks/twilio", SHOP_TOKEN),
            SHOP_NUMBER,
            ana,
            text,
            &sid(n),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let (status, contacts) = app.get(&s.key, "/api/v1/bots/shop/contacts").await;
    assert_eq!(status, 200);
    assert_eq!(column(&contacts, "phone"), [ana]);
    let (_, contacts) = app.get(&s.key, "/api/v1/contacts").await;
    assert!(contacts["items"].as_array().unwrap().is_empty());
    let (_, runs) = app.get(&s.key, "/api/v1/bots/shop/runs").await;
    assert_eq!(column(&runs, "flow"), ["product_review"]);
    let run_id = runs["items"][0]["id"].as_i64().unwrap();
    assert_eq!(
        app.get(&s.key, &format!("/api/v1/runs/{run_id}")).await.0,
        404
    );
    assert_eq!(
        app.get(&s.key, &format!("/api/v1/bots/shop/runs/{run_id}"))
            .await
            .0,
        200
    );
    let (_, messages) = app.get(&s.key, "/api/v1/bots/clinic/messages").await;
    assert!(messages["items"].as_array().unwrap().is_empty());
    let (_, messages) = app
        .get(&s.key, "/api/v1/bots/shop/messages?direction=inbound")
        .await;
    assert_eq!(messages["items"].as_array().unwrap().len(), 6);

    // Records: a bot's collection holds its own.
    let (status, created) = app
        .post(
            &s.key,
            "/api/v1/bots/clinic/collections/orders/records",
            json!({"order_number": "ORD-77777", "customer": "Clinic", "status": "Open", "progress": 10}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (_, mine) = app
        .get(&s.key, "/api/v1/bots/clinic/collections/orders/records")
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (_, theirs) = app
        .get(
            &s.key,
            "/api/v1/collections/orders/records?order_number=ORD-77777",
        )
        .await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    let path = format!("/api/v1/collections/orders/records/{id}");
    assert_eq!(app.get(&s.key, &path).await.0, 404);
    assert_eq!(
        app.call(reqwest::Method::DELETE, &s.key, &path, None)
            .await
            .0,
        404,
        "nothing of another bot is changed"
    );
    assert_eq!(
        app.get(
            &s.key,
            &format!("/api/v1/bots/clinic/collections/orders/records/{id}")
        )
        .await
        .0,
        200
    );

    // Sending for a bot goes out through its channel, inside the window
    // the contact opened with that bot.
    let (status, refused) = app
        .post(
            &s.key,
            "/api/v1/bots/clinic/messages",
            json!({"to": ana, "text": "Your order is ready"}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    twilio(
        app,
        "/webhooks/twilio",
        CLINIC_TOKEN,
        CLINIC_NUMBER,
        ana,
        &sid(20),
    )
    .await;
    let (status, sent) = app
        .post(
            &s.key,
            "/api/v1/bots/clinic/messages",
            json!({"to": ana, "text": "Your order is ready"}),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    app.eventually(10, "the clinic's message", || async {
        !s.twilio.requests().is_empty()
    })
    .await;
    let out = &s.twilio.requests()[0];
    assert!(out.path.contains(CLINIC_SID), "{}", out.path);
    assert_eq!(
        out.form_value("From").as_deref(),
        Some(format!("whatsapp:{CLINIC_NUMBER}").as_str())
    );
    assert_eq!(
        out.form_value("Body").as_deref(),
        Some("Your order is ready")
    );
    assert_eq!(app.get(&s.key, "/api/v1/bots/nobody/contacts").await.0, 404);

    // A bot with conversations goes only when told to take them with it.
    let (status, problem) = app
        .call(reqwest::Method::DELETE, &s.key, "/api/v1/bots/shop", None)
        .await;
    assert_eq!(status, 409, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("1 contacts") && detail.contains("force=true"),
        "{detail}"
    );
    assert_eq!(app.get(&s.key, "/api/v1/bots/shop/contacts").await.0, 200);
    let before = app.count("messages").await;
    let (status, deleted) = app
        .call(
            reqwest::Method::DELETE,
            &s.key,
            "/api/v1/bots/shop?force=true",
            None,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["removed"]["contacts"], 1);
    assert_eq!(deleted["removed"]["runs"], 1);
    let removed = deleted["removed"]["messages"].as_i64().unwrap();
    assert_eq!(app.count("messages").await, before - removed);
    assert_eq!(deleted["removed"]["records"], 1, "the saved review");
    assert!(
        app.store
            .contact_by_phone(s.shop, ana)
            .await
            .unwrap()
            .is_none()
    );
    // The clinic keeps its own; the shop's number now belongs to no bot.
    assert!(
        app.store
            .contact_by_phone(s.clinic, ana)
            .await
            .unwrap()
            .is_some()
    );
    let r = twilio(
        app,
        "/webhooks/twilio",
        SHOP_TOKEN,
        SHOP_NUMBER,
        ana,
        &sid(30),
    )
    .await;
    assert_eq!(r.status(), 404);
}
