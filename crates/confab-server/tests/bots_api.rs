//! Bots through the API: channels with sealed credentials, what is shown of
//! them, changes, the test of a channel, and the default bot.
mod common;

use common::fake::{FakeProvider, Kind, Reply};
use common::*;
use reqwest::Method;
use serde_json::json;

const SID_A: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN_A: &str = "token-of-bot-a-0001";
const META_TOKEN: &str = "EAAG-secret-access-token-9876";

async fn app(twilio: &FakeProvider, meta: &FakeProvider) -> TestApp {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.twilio_api_url = Some(twilio.url.clone());
    raw.whatsapp_api_url = Some(meta.url.clone());
    spawn_app(raw).await
}

fn shop() -> serde_json::Value {
    json!({
        "name": "Shop",
        "slug": "shop",
        "default_flow": "product_review",
        "channels": {
            "twilio": {"account_sid": SID_A, "auth_token": TOKEN_A, "number": "whatsapp:+14155550001"},
            "meta": {"phone_number_id": "5550001", "access_token": META_TOKEN, "app_secret": "shop-app-secret-1234"}
        }
    })
}

#[tokio::test]
async fn a_bot_keeps_its_credentials_sealed_and_shows_only_their_end() {
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let app = app(&twilio, &meta).await;
    let key = app.api_key().await;
    let (status, bot) = app.post(&key, "/api/v1/bots", shop()).await;
    assert_eq!(status, 201, "{bot}");
    assert_eq!(bot["slug"], "shop");
    assert_eq!(bot["default_flow"], "product_review");
    let channels = &bot["channels"];
    assert_eq!(channels["twilio"]["number"], "+14155550001");
    assert_eq!(channels["twilio"]["account_sid"], SID_A);
    assert_eq!(
        channels["twilio"]["auth_token"],
        json!({"set": true, "last4": "0001"})
    );
    assert_eq!(channels["meta"]["access_token"]["last4"], "9876");
    assert_eq!(channels["meta"]["source"], "api");

    // No secret in any answer, in the audit log or in the database's text.
    for path in ["/api/v1/bots", "/api/v1/bots/shop", "/api/v1/audit"] {
        let (_, body) = app.get(&key, path).await;
        let text = body.to_string();
        assert!(
            !text.contains(TOKEN_A) && !text.contains(META_TOKEN),
            "{path}: {text}"
        );
    }
    let (_, audit) = app.get(&key, "/api/v1/audit").await;
    assert_eq!(audit["items"][0]["action"], "bot.create");
    assert_eq!(audit["items"][0]["target"], "bot:shop");
    let sealed = app.store.all_secrets().await.unwrap();
    assert_eq!(sealed.len(), 2);
    assert!(
        sealed
            .iter()
            .all(|s| !s.sealed.contains(TOKEN_A) && s.owner == format!("bot:{}", bot["id"]))
    );

    // By id as by slug.
    let (_, by_id) = app.get(&key, &format!("/api/v1/bots/{}", bot["id"])).await;
    assert_eq!(by_id["slug"], "shop");
    let (status, _) = app.get(&key, "/api/v1/bots/nobody").await;
    assert_eq!(status, 404);

    // The credentials open again after a restart (the key file is kept).
    let raw = app.stop().await;
    let app = spawn_app(raw).await;
    let (status, probe) = app
        .post(&key, "/api/v1/bots/shop/channels/twilio/test", json!({}))
        .await;
    assert_eq!(status, 200, "{probe}");
    let asked = twilio.requests().pop().unwrap();
    assert_eq!(asked.method, "GET");
    assert_eq!(asked.path, format!("/2010-04-01/Accounts/{SID_A}.json"));
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID_A}:{TOKEN_A}"));
    assert_eq!(
        asked.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert!(probe["ok"].as_bool().unwrap());
}

#[tokio::test]
async fn a_channel_test_says_what_the_provider_answered() {
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let app = app(&twilio, &meta).await;
    let key = app.api_key().await;
    assert_eq!(app.post(&key, "/api/v1/bots", shop()).await.0, 201);
    meta.script([Reply::status(
        401,
        r#"{"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}"#,
    )]);
    let (status, probe) = app
        .post(&key, "/api/v1/bots/shop/channels/meta/test", json!({}))
        .await;
    assert_eq!(status, 200, "{probe}");
    assert_eq!(probe["ok"], false);
    assert_eq!(probe["status"], 401);
    assert_eq!(probe["detail"]["error"]["code"], 190);
    let asked = meta.requests().pop().unwrap();
    assert!(asked.path.ends_with("/5550001"), "{}", asked.path);
    assert_eq!(
        asked.header("authorization"),
        Some(format!("Bearer {META_TOKEN}").as_str())
    );

    // A bot without the channel, a kind there is not.
    assert_eq!(
        app.post(&key, "/api/v1/bots", json!({"name": "Bare"}))
            .await
            .0,
        201
    );
    let (status, _) = app
        .post(&key, "/api/v1/bots/bare/channels/twilio/test", json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(&key, "/api/v1/bots/shop/channels/telegram/test", json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_bots_are_refused_with_the_field_named_and_nothing_kept() {
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let app = app(&twilio, &meta).await;
    let key = app.api_key().await;
    let cases = [
        (
            json!({"name": "X", "channels": {"twilio": {"account_sid": "AC1", "auth_token": "t", "number": "+14155550009"}}}),
            422,
            "channels.twilio.account_sid",
        ),
        (
            json!({"name": "X", "channels": {"twilio": {"account_sid": SID_A, "number": "+14155550009"}}}),
            422,
            "channels.twilio.auth_token",
        ),
        (
            json!({"name": "X", "channels": {"telegram": {}}}),
            422,
            "channels.telegram",
        ),
        (
            json!({"name": "X", "channels": {"meta": {"phone_number_id": "12ab", "access_token": "t", "app_secret": "s"}}}),
            422,
            "channels.meta.phone_number_id",
        ),
        (json!({"name": "X", "slug": "9lives"}), 422, "slug"),
        (
            json!({"name": "X", "default_flow": "nope"}),
            422,
            "default_flow",
        ),
        (json!({"name": ""}), 422, "name"),
        (json!({"name": "X", "colour": "red"}), 422, "colour"),
    ];
    for (body, status, field) in cases {
        let (got, problem) = app.post(&key, "/api/v1/bots", body.clone()).await;
        assert_eq!(got, status, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{body}: {problem}"
        );
    }
    assert_eq!(app.post(&key, "/api/v1/bots", shop()).await.0, 201);
    // A slug or a number another bot has.
    let (status, problem) = app
        .post(&key, "/api/v1/bots", json!({"name": "Shop"}))
        .await;
    assert_eq!(status, 409, "{problem}");
    let mut other = shop();
    other["slug"] = json!("other");
    other["channels"]["meta"]["phone_number_id"] = json!("5550002");
    let (status, problem) = app.post(&key, "/api/v1/bots", other).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("bot shop"),
        "{problem}"
    );
    let (_, bots) = app.get(&key, "/api/v1/bots").await;
    assert_eq!(column(&bots, "slug"), ["default", "shop"]);
    assert_eq!(app.store.all_secrets().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_change_keeps_what_it_leaves_out() {
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let app = app(&twilio, &meta).await;
    let key = app.api_key().await;
    let (_, bot) = app.post(&key, "/api/v1/bots", shop()).await;
    let (status, changed) = app
        .patch(
            &key,
            "/api/v1/bots/shop",
            json!({"name": "Shop two", "channels": {"twilio": {"auth_token": "new-token-of-a-4321"}, "meta": null}}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Shop two");
    assert_eq!(changed["channels"]["twilio"]["number"], "+14155550001");
    assert_eq!(changed["channels"]["twilio"]["auth_token"]["last4"], "4321");
    assert!(changed["channels"].get("meta").is_none());
    assert_eq!(app.store.all_secrets().await.unwrap().len(), 1);
    let (status, cleared) = app
        .patch(
            &key,
            "/api/v1/bots/shop",
            json!({"default_flow": null, "slug": "shop-2"}),
        )
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["default_flow"], serde_json::Value::Null);
    assert_eq!(app.get(&key, "/api/v1/bots/shop-2").await.0, 200);
    let (_, audit) = app.get(&key, "/api/v1/audit").await;
    let first_change = &audit["items"][1];
    assert_eq!(first_change["action"], "bot.update");
    assert_eq!(first_change["before"]["name"], "Shop");
    assert_eq!(first_change["after"]["name"], "Shop two");

    let (status, deleted) = app
        .call(
            Method::DELETE,
            &key,
            &format!("/api/v1/bots/{}", bot["id"]),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(deleted["removed"]["contacts"], 0);
    assert_eq!(app.get(&key, "/api/v1/bots/shop-2").await.0, 404);
    assert!(app.store.all_secrets().await.unwrap().is_empty());
    // The number is free again.
    assert_eq!(app.post(&key, "/api/v1/bots", shop()).await.0, 201);
}

#[tokio::test]
async fn the_default_bot_is_the_environments() {
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let mut raw = settings(&fresh_database().await, Some(&twilio.url), Some(&meta.url));
    raw.default_flow = Some("product_review".into());
    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    let (status, bot) = app.get(&key, "/api/v1/bots/default").await;
    assert_eq!(status, 200);
    assert_eq!(bot["id"], 1);
    assert_eq!(bot["default_flow"], "product_review");
    assert_eq!(bot["channels"]["twilio"]["source"], "env");
    assert_eq!(bot["channels"]["twilio"]["number"], "+14155238886");
    assert_eq!(bot["channels"]["meta"]["phone_number_id"], PHONE_NUMBER_ID);
    assert_eq!(bot["channels"]["meta"]["can_send"], true);
    assert!(!bot.to_string().contains(AUTH_TOKEN));

    // What the environment sets is changed there; the bot stays.
    let (status, problem) = app
        .patch(
            &key,
            "/api/v1/bots/default",
            json!({"channels": {"twilio": {"auth_token": "x-other-token"}}}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("environment"));
    let (status, _) = app
        .patch(&key, "/api/v1/bots/default", json!({"slug": "main"}))
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .call(Method::DELETE, &key, "/api/v1/bots/default", None)
        .await;
    assert_eq!(status, 409);
    // Another bot may not take the environment's number.
    let mut taken = shop();
    taken["channels"]["twilio"]["number"] = json!("+14155238886");
    let (status, problem) = app.post(&key, "/api/v1/bots", taken).await;
    assert_eq!(status, 409, "{problem}");

    // The environment's default flow is the bot's again on the next start.
    let (status, _) = app
        .patch(
            &key,
            "/api/v1/bots/default",
            json!({"default_flow": "pms_menu", "name": "Main"}),
        )
        .await;
    assert_eq!(status, 200);
    let raw = app.stop().await;
    let app = spawn_app(raw).await;
    let (_, bot) = app.get(&key, "/api/v1/bots/default").await;
    assert_eq!(bot["default_flow"], "product_review");
    assert_eq!(bot["name"], "Main");
}

#[tokio::test]
async fn without_a_master_key_on_postgresql_no_credential_is_kept() {
    if !is_postgres() {
        return;
    }
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let mut raw = settings(&fresh_database().await, None, None);
    raw.twilio_api_url = Some(twilio.url.clone());
    raw.whatsapp_api_url = Some(meta.url.clone());
    raw.confab_master_key = None;
    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    let (status, problem) = app.post(&key, "/api/v1/bots", shop()).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("CONFAB_MASTER_KEY")
    );
    // A bot without credentials is fine.
    assert_eq!(
        app.post(&key, "/api/v1/bots", json!({"name": "Bare"}))
            .await
            .0,
        201
    );
}

#[tokio::test]
async fn a_user_or_key_limited_to_a_bot_sees_and_changes_only_that_bot() {
    let (twilio, meta) = (
        FakeProvider::start(Kind::Twilio).await,
        FakeProvider::start(Kind::Meta).await,
    );
    let app = app(&twilio, &meta).await;
    let admin = app.api_key().await;
    let (_, shop) = app.post(&admin, "/api/v1/bots", shop()).await;
    assert_eq!(
        app.post(&admin, "/api/v1/bots", json!({"name": "Other"}))
            .await
            .0,
        201
    );

    let (status, user) = app
        .post(
            &admin,
            "/api/v1/users",
            json!({"username": "sam", "password": "sams-password", "role": "admin", "bots": ["shop"]}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["bots"], json!([shop["id"]]));
    let (_, token) = app.login("sam", "sams-password").await;
    let sam = token["access_token"].as_str().unwrap().to_string();
    let (_, me) = app.get(&sam, "/api/v1/auth/me").await;
    assert_eq!(me["bots"], json!([shop["id"]]));

    let (_, bots) = app.get(&sam, "/api/v1/bots").await;
    assert_eq!(column(&bots, "slug"), ["shop"]);
    assert_eq!(app.get(&sam, "/api/v1/bots/shop").await.0, 200);
    // Another bot is as good as none; the default bot's data is another's.
    assert_eq!(app.get(&sam, "/api/v1/bots/other").await.0, 404);
    assert_eq!(app.get(&sam, "/api/v1/bots/1").await.0, 404);
    let (status, problem) = app.get(&sam, "/api/v1/contacts").await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("shop"),
        "{problem}"
    );
    let (status, _) = app
        .patch(&sam, "/api/v1/bots/other", json!({"name": "Mine"}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        app.patch(&sam, "/api/v1/bots/shop", json!({"name": "Shop!"}))
            .await
            .0,
        200
    );
    // Above the bots: users, keys, the audit log, new bots. And a limited
    // admin is not one of the admins a server keeps.
    for path in ["/api/v1/users", "/api/v1/keys", "/api/v1/audit"] {
        assert_eq!(app.get(&sam, path).await.0, 403, "{path}");
    }
    assert_eq!(
        app.post(&sam, "/api/v1/bots", json!({"name": "Mine"}))
            .await
            .0,
        403
    );

    // A key limited the same way; an unknown bot is named.
    let (status, key) = app
        .post(
            &admin,
            "/api/v1/keys",
            json!({"name": "shop-reports", "role": "viewer", "bots": [shop["id"]]}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let limited = key["key"].as_str().unwrap();
    let (_, bots) = app.get(limited, "/api/v1/bots").await;
    assert_eq!(column(&bots, "slug"), ["shop"]);
    assert_eq!(app.get(limited, "/api/v1/messages").await.0, 403);
    let (status, problem) = app
        .post(
            &admin,
            "/api/v1/keys",
            json!({"name": "x", "bots": ["nobody"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("bots[0]"),
        "{problem}"
    );

    // Lifted: every bot again, from the next request; audited.
    let path = format!("/api/v1/users/{}", user["id"]);
    let (status, lifted) = app.patch(&admin, &path, json!({"bots": null})).await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["bots"], serde_json::Value::Null);
    assert_eq!(app.get(&sam, "/api/v1/contacts").await.0, 200);
    assert_eq!(app.get(&sam, "/api/v1/bots/other").await.0, 200);
    let (_, audit) = app.get(&admin, "/api/v1/audit").await;
    assert_eq!(audit["items"][0]["action"], "user.bots");
    // Nobody limits themselves.
    let (status, _) = app.patch(&sam, &path, json!({"bots": ["shop"]})).await;
    assert_eq!(status, 409);
}
