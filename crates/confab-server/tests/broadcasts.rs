//! Broadcasts through the API: a tag's contacts or a list, checked first
//! with a dry run, queued at once through the outbox, followed to the end.
mod common;

use common::fake::{FakeProvider, Kind};
use common::*;
use confab_server::auth::Role;
use serde_json::json;

#[tokio::test]
async fn a_broadcast_to_a_tag_says_whom_it_reaches_then_goes_out_once_to_each() {
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let app = spawn_app(settings(&fresh_database().await, Some(&twilio.url), None)).await;
    let key = app.api_key().await;
    for (i, phone) in ["+15550000001", "+15550000002", "+15550000003"]
        .iter()
        .enumerate()
    {
        app.twilio_text(phone, "hi", &format!("SM{i}")).await;
        let (s, c) = app
            .patch(
                &key,
                &format!("/api/v1/contacts/{phone}"),
                json!({"tags": ["vip"]}),
            )
            .await;
        assert_eq!(s, 200, "{c}");
    }
    let (s, _) = app
        .patch(
            &key,
            "/api/v1/contacts/+15550000003",
            json!({"opted_out": true}),
        )
        .await;
    assert_eq!(s, 200);

    // The dry run queues nothing.
    let (s, review) = app
        .post(
            &key,
            "/api/v1/broadcasts?dry_run=true",
            json!({"to": {"tag": "vip"}, "text": "We open at 9 tomorrow."}),
        )
        .await;
    assert_eq!(s, 200, "{review}");
    assert_eq!(
        (
            &review["id"],
            &review["queued"],
            &review["rejected"],
            &review["outside_window"]
        ),
        (&json!(null), &json!(2), &json!(0), &json!(0)),
        "{review}"
    );
    assert_eq!(app.count("broadcasts").await, 0);

    // A list: an unknown number (its window closed) and a bad one.
    let (s, list) = app
        .post(
            &key,
            "/api/v1/broadcasts?dry_run=true",
            json!({"to": ["+15550000001", "+14155550199", "12"], "text": "Hello"}),
        )
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(
        (&list["queued"], &list["rejected"], &list["outside_window"]),
        (&json!(1), &json!(2), &json!(1)),
        "{list}"
    );
    assert!(
        list["rejections"][0]["error"]
            .as_str()
            .unwrap()
            .contains("window"),
        "{list}"
    );

    let (s, sent) = app
        .post(
            &key,
            "/api/v1/broadcasts",
            json!({"to": {"tag": "vip"}, "text": "We open at 9 tomorrow."}),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    let id = sent["id"].as_i64().unwrap();
    assert_eq!(sent["queued"], 2, "{sent}");
    app.eventually(10, "the outbox sent both", || async {
        let (_, b) = app.get(&key, &format!("/api/v1/broadcasts/{id}")).await;
        b["done"] == 2
    })
    .await;
    assert_eq!(twilio.requests().len(), 2);
    let (_, all) = app.get(&key, "/api/v1/broadcasts").await;
    assert_eq!(all["items"][0]["id"], id, "{all}");
    assert_eq!(all["items"][0]["audience"], json!({"tag": "vip"}));

    // Bad input changes nothing; roles and ids as everywhere.
    for (body, says) in [
        (json!({"to": {"tag": "nobody"}, "text": "x"}), "no contact"),
        (json!({"to": [], "text": "x"}), "to must list"),
        (json!({"to": {"tag": "vip"}}), ""),
        (
            json!({"to": ["+15550000099"], "text": "x"}),
            "reaches nobody",
        ),
    ] {
        let (s, p) = app.post(&key, "/api/v1/broadcasts", body.clone()).await;
        assert_eq!(s, 422, "{body}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(says), "{body}: {p}");
    }
    assert_eq!(app.count("broadcasts").await, 1);
    let (s, _) = app.get(&key, "/api/v1/broadcasts/999").await;
    assert_eq!(s, 404);
    let viewer = app.api_key_with(Role::Viewer).await;
    let (s, _) = app
        .post(
            &viewer,
            "/api/v1/broadcasts",
            json!({"to": {"tag": "vip"}, "text": "x"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = app.get(&viewer, &format!("/api/v1/broadcasts/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(twilio.requests().len(), 2, "nothing sent twice");
}
