//! A bot's flows through the API: posted as YAML or JSON, checked whole,
//! published in versions that runs in progress stay pinned to, rolled
//! back, edited node by node, copied from templates with their collections,
//! tested against transcripts, and deleted.
mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const SHOP_SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHOP_TOKEN: &str = "shop-twilio-token-0001";
const SHOP_NUMBER: &str = "+14155550001";
const SHOP: (&str, &str) = (SHOP_NUMBER, SHOP_TOKEN);

/// A greeting flow whose question and goodbye say which version they are.
fn greet(v: u32) -> String {
    format!(
        "id: greet\nname: Greeting\nnodes:\n  - id: ask_name\n    type: ask\n    text: \"v{v}: what is your name?\"\n    save_as: who\n    next: bye\n  - id: bye\n    type: end\n    text: \"v{v}: goodbye {{{{ who }}}}\"\n"
    )
}

async fn setup() -> (TestApp, String) {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key().await;
    let (status, shop) = app
        .post(
            &key,
            "/api/v1/bots",
            json!({"name": "Shop", "slug": "shop", "channels": {
                "twilio": {"account_sid": SHOP_SID, "auth_token": SHOP_TOKEN, "number": SHOP_NUMBER}
            }}),
        )
        .await;
    assert_eq!(status, 201, "{shop}");
    (app, key)
}

/// Posts or puts a YAML document.
async fn yaml(app: &TestApp, key: &str, method: Method, path: &str, doc: &str) -> (u16, Value) {
    let r = app
        .http
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(key)
        .header("content-type", "application/yaml")
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn says(app: &TestApp, from: &str, text: &str, sid: u32) -> String {
    let r = app
        .twilio_to(SHOP, from, text, &format!("SM{sid:032x}"))
        .await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn flow_events(app: &TestApp) -> i64 {
    app.store
        .audit_log(None, 500)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action.starts_with("flow."))
        .count() as i64
}

#[tokio::test]
async fn a_flow_posted_as_yaml_answers_its_bot_and_runs_keep_their_version() {
    let (app, key) = setup().await;
    let (status, v1) = yaml(
        &app,
        &key,
        Method::POST,
        "/api/v1/bots/shop/flows",
        &greet(1),
    )
    .await;
    assert_eq!(status, 201, "{v1}");
    assert_eq!(
        (v1["version"].as_i64(), v1["source"].as_str()),
        (Some(1), Some("api"))
    );
    // Another bot does not have it.
    assert_eq!(app.get(&key, "/api/v1/flows/greet").await.0, 404);
    let (status, bot) = app
        .patch(&key, "/api/v1/bots/shop", json!({"default_flow": "greet"}))
        .await;
    assert_eq!(status, 200, "{bot}");

    let (ana, ben, cy) = ("+27123450001", "+27123450002", "+27123450003");
    assert!(
        says(&app, ana, "hi", 1)
            .await
            .contains("v1: what is your name?")
    );
    let (status, v2) = yaml(
        &app,
        &key,
        Method::PUT,
        "/api/v1/bots/shop/flows/greet",
        &greet(2),
    )
    .await;
    assert_eq!((status, v2["version"].as_i64()), (200, Some(2)), "{v2}");
    // The same document again publishes nothing.
    let (_, same) = yaml(
        &app,
        &key,
        Method::PUT,
        "/api/v1/bots/shop/flows/greet",
        &greet(2),
    )
    .await;
    assert_eq!(same["version"], 2);
    // Ana began on version 1 and finishes on it; Ben begins on version 2.
    assert!(says(&app, ana, "Ana", 2).await.contains("v1: goodbye Ana"));
    assert!(
        says(&app, ben, "hi", 3)
            .await
            .contains("v2: what is your name?")
    );

    let (_, versions) = app
        .get(&key, "/api/v1/bots/shop/flows/greet/versions")
        .await;
    let listed: Vec<(i64, bool)> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["live"].as_bool().unwrap()))
        .collect();
    assert_eq!(listed, vec![(2, true), (1, false)]);
    let (_, old) = app
        .get(&key, "/api/v1/bots/shop/flows/greet/versions/1")
        .await;
    assert!(
        old["definition"]
            .to_string()
            .contains("v1: what is your name?")
    );
    assert_eq!(
        app.get(&key, "/api/v1/bots/shop/flows/greet/versions/9")
            .await
            .0,
        404
    );

    // Roll back: new runs start on version 1 again, Ben stays on 2.
    let (status, back) = app
        .post(
            &key,
            "/api/v1/bots/shop/flows/greet/versions/1/publish",
            json!(null),
        )
        .await;
    assert_eq!((status, back["version"].as_i64()), (200, Some(1)), "{back}");
    assert!(
        says(&app, cy, "hi", 4)
            .await
            .contains("v1: what is your name?")
    );
    assert!(says(&app, ben, "Ben", 5).await.contains("v2: goodbye Ben"));
    let (_, runs) = app.get(&key, "/api/v1/bots/shop/runs?flow=greet").await;
    let mut pinned: Vec<i64> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["flow_version"].as_i64().unwrap())
        .collect();
    pinned.sort();
    assert_eq!(pinned, vec![1, 1, 2]);
    // Read back as YAML, it is the document as live now.
    let r = app
        .http
        .get(format!("{}/api/v1/bots/shop/flows/greet", app.url))
        .bearer_auth(&key)
        .header("accept", "application/yaml")
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("v1: goodbye"));
    // Each change is in the audit log: made, a new version, rolled back.
    assert_eq!(flow_events(&app).await, 3);
}

#[tokio::test]
async fn a_broken_or_forbidden_flow_is_refused_with_its_problems_named_and_nothing_stored() {
    let (app, key) = setup().await;
    let broken = "id: broken\nnodes:\n  - id: a\n    type: ask\n    text: hi\n    save_as: x\n    answer: { kind: text, pattern: \"([\" }\n    next: nowhere\n";
    let (status, problem) = yaml(&app, &key, Method::POST, "/api/v1/bots/shop/flows", broken).await;
    assert_eq!(status, 422, "{problem}");
    let problems = problem["problems"].as_array().unwrap();
    let has = |field: &str, text: &str| {
        problems.iter().any(|p| {
            p["node"] == "a" && p["field"] == field && p["message"].as_str().unwrap().contains(text)
        })
    };
    assert!(has("next", "unknown node \"nowhere\""), "{problem}");
    assert!(
        has("pattern", "not a valid regular expression"),
        "{problem}"
    );
    assert_eq!(app.get(&key, "/api/v1/bots/shop/flows/broken").await.0, 404);

    let (status, p) = yaml(
        &app,
        &key,
        Method::POST,
        "/api/v1/bots/shop/flows",
        "id: [unclosed",
    )
    .await;
    assert_eq!(status, 422, "{p}");
    let (status, p) = app
        .post(
            &key,
            "/api/v1/bots/shop/flows",
            json!({"id": "x", "nodes": [{"id": "a", "type": "teleport"}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(p["detail"].as_str().unwrap().contains("teleport"), "{p}");
    // A save to a collection nobody declared.
    let (status, p) = app
        .post(
            &key,
            "/api/v1/bots/shop/flows",
            json!({"id": "saver", "nodes": [
                {"id": "s", "type": "save_record", "collection": "nope", "fields": {"a": "1"}}
            ]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(p["problems"][0]["field"], "collection", "{p}");

    // Bundled flows are copied, not changed; the default bot's files are
    // changed where they live.
    let (status, p) = yaml(
        &app,
        &key,
        Method::PUT,
        "/api/v1/flows/product_review",
        &greet(1).replace("greet", "product_review"),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        p["detail"].as_str().unwrap().contains("from_template"),
        "{p}"
    );
    let (status, _) = yaml(
        &app,
        &key,
        Method::POST,
        "/api/v1/bots/shop/flows",
        &greet(1).replace("greet", "pms_menu"),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        app.call(Method::DELETE, &key, "/api/v1/flows/product_review", None)
            .await
            .0,
        409
    );
    // Made once; a second POST of it is a conflict, a PUT of another id a 422.
    assert_eq!(
        yaml(
            &app,
            &key,
            Method::POST,
            "/api/v1/bots/shop/flows",
            &greet(1)
        )
        .await
        .0,
        201
    );
    assert_eq!(
        yaml(
            &app,
            &key,
            Method::POST,
            "/api/v1/bots/shop/flows",
            &greet(1)
        )
        .await
        .0,
        409
    );
    let (status, p) = yaml(
        &app,
        &key,
        Method::PUT,
        "/api/v1/bots/shop/flows/greet",
        &greet(1).replace("id: greet", "id: other"),
    )
    .await;
    assert_eq!(status, 422, "{p}");
    // Roles and unknown names.
    let viewer = app.api_key_with(confab_server::auth::Role::Viewer).await;
    assert_eq!(
        yaml(
            &app,
            &viewer,
            Method::PUT,
            "/api/v1/bots/shop/flows/greet",
            &greet(5)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        app.get(&viewer, "/api/v1/bots/shop/flows/greet").await.0,
        200
    );
    assert_eq!(
        yaml(
            &app,
            &key,
            Method::POST,
            "/api/v1/bots/nobody/flows",
            &greet(1)
        )
        .await
        .0,
        404
    );
    assert_eq!(
        yaml(
            &app,
            &key,
            Method::PUT,
            "/api/v1/bots/shop/flows/absent",
            &greet(1)
        )
        .await
        .0,
        404
    );
    // Only the one good flow was written.
    assert_eq!(flow_events(&app).await, 1);
    let (_, versions) = app
        .get(&key, "/api/v1/bots/shop/flows/greet/versions")
        .await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn templates_are_copied_with_their_collections_and_nodes_are_edited_as_versions() {
    let (app, key) = setup().await;
    let (_, templates) = app.get(&key, "/api/v1/flow-templates").await;
    let ids = column(&templates, "id");
    for t in ["ai_assistant", "pms_menu", "product_review"] {
        assert!(ids.contains(&t), "{templates}");
    }
    let (status, factory) = app
        .post(
            &key,
            "/api/v1/bots/shop/flows",
            json!({"from_template": "pms_menu", "id": "factory"}),
        )
        .await;
    assert_eq!(status, 201, "{factory}");
    let declared: Vec<&str> = factory["definition"]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for c in ["orders", "defects", "tickets"] {
        assert!(declared.contains(&c), "{declared:?}");
    }
    let (_, collections) = app.get(&key, "/api/v1/bots/shop/collections").await;
    assert!(collections.to_string().contains("\"orders\""));
    assert_eq!(
        app.post(
            &key,
            "/api/v1/bots/shop/flows",
            json!({"from_template": "nope"})
        )
        .await
        .0,
        422
    );

    // Node by node: each change is a version, checked whole.
    yaml(
        &app,
        &key,
        Method::POST,
        "/api/v1/bots/shop/flows",
        &greet(1),
    )
    .await;
    let (status, node) = app
        .get(&key, "/api/v1/bots/shop/flows/greet/nodes/bye")
        .await;
    assert_eq!((status, node["type"].as_str()), (200, Some("end")));
    let (status, v2) = app
        .call(
            Method::PUT,
            &key,
            "/api/v1/bots/shop/flows/greet/nodes/bye",
            Some(json!({"type": "end", "text": "see you, {{ who }}"})),
        )
        .await;
    assert_eq!((status, v2["version"].as_i64()), (200, Some(2)), "{v2}");
    // A node nothing leads to is unreachable; removing one that is led to
    // leaves a `next` naming nothing.
    let (status, p) = app
        .post(
            &key,
            "/api/v1/bots/shop/flows/greet/nodes",
            json!({"id": "lost", "type": "end", "text": "?"}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(p["detail"].as_str().unwrap().contains("unreachable"), "{p}");
    let (status, p) = app
        .call(
            Method::DELETE,
            &key,
            "/api/v1/bots/shop/flows/greet/nodes/bye",
            None,
        )
        .await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(
        app.post(
            &key,
            "/api/v1/bots/shop/flows/greet/nodes",
            json!({"id": "bye", "type": "end", "text": "x"})
        )
        .await
        .0,
        409
    );
    // A new branch: the ask leads to it, then the node is added.
    let (status, v3) = app
        .call(
            Method::PUT,
            &key,
            "/api/v1/bots/shop/flows/greet/nodes/ask_name",
            Some(json!({"type": "ask", "text": "name?", "save_as": "who", "next": "bye"})),
        )
        .await;
    assert_eq!((status, v3["version"].as_i64()), (200, Some(3)), "{v3}");
    assert_eq!(
        app.get(&key, "/api/v1/bots/shop/flows/greet/nodes/nope")
            .await
            .0,
        404
    );
    let (_, versions) = app
        .get(&key, "/api/v1/bots/shop/flows/greet/versions")
        .await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn transcripts_try_a_version_without_touching_contacts_and_a_delete_waits_for_runs() {
    let (app, key) = setup().await;
    yaml(
        &app,
        &key,
        Method::POST,
        "/api/v1/bots/shop/flows",
        &greet(1),
    )
    .await;
    yaml(
        &app,
        &key,
        Method::PUT,
        "/api/v1/bots/shop/flows/greet",
        &greet(2),
    )
    .await;
    let transcript = "transcripts:\n  - name: greets\n    steps:\n      - user: hi\n        bot: [{ contains: \"v2: what\" }]\n      - user: Ana\n        bot: [\"v2: goodbye Ana\"]\n  - name: expects the old words\n    steps:\n      - user: hi\n        bot: [{ contains: \"v1: what\" }]\n";
    let (status, out) = yaml(
        &app,
        &key,
        Method::POST,
        "/api/v1/bots/shop/flows/greet/test",
        transcript,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["passed"].as_bool(), out["version"].as_i64()),
        (Some(false), Some(2))
    );
    assert_eq!(out["results"][0]["passed"], true);
    assert_eq!(out["results"][1]["passed"], false);
    assert!(
        out["results"][1]["difference"]
            .as_str()
            .unwrap()
            .contains("v2: what"),
        "{out}"
    );
    // Against version 1 the second passes.
    let (_, old) = yaml(
        &app,
        &key,
        Method::POST,
        "/api/v1/bots/shop/flows/greet/test?version=1",
        transcript,
    )
    .await;
    assert_eq!(old["results"][1]["passed"], true, "{old}");
    assert_eq!(app.count("contacts").await, 0);
    assert_eq!(
        yaml(
            &app,
            &key,
            Method::POST,
            "/api/v1/bots/shop/flows/greet/test",
            "steps: 3"
        )
        .await
        .0,
        422
    );

    // A run in progress holds the flow until it is forced.
    app.patch(&key, "/api/v1/bots/shop", json!({"default_flow": "greet"}))
        .await;
    says(&app, "+27123450009", "hi", 1).await;
    let (status, p) = app
        .call(Method::DELETE, &key, "/api/v1/bots/shop/flows/greet", None)
        .await;
    assert_eq!(status, 409, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("1 runs in progress"),
        "{p}"
    );
    let (status, gone) = app
        .call(
            Method::DELETE,
            &key,
            "/api/v1/bots/shop/flows/greet?force=true",
            None,
        )
        .await;
    assert_eq!(
        (status, gone["cancelled_runs"].as_i64()),
        (200, Some(1)),
        "{gone}"
    );
    assert_eq!(app.get(&key, "/api/v1/bots/shop/flows/greet").await.0, 404);
    let (_, runs) = app.get(&key, "/api/v1/bots/shop/runs").await;
    assert_eq!(runs["items"][0]["status"], "cancelled");
}

#[tokio::test]
async fn a_flow_published_on_one_server_is_live_on_another_within_seconds() {
    let db = fresh_database().await;
    let one = spawn_app(settings(&db, None, None)).await;
    let two = spawn_app(settings(&db, None, None)).await;
    let key = one.api_key().await;
    assert_eq!(
        yaml(&one, &key, Method::POST, "/api/v1/flows", &greet(1))
            .await
            .0,
        201
    );
    two.eventually(5, "the other server has version 1", || async {
        two.get(&key, "/api/v1/flows/greet").await.1["version"] == 1
    })
    .await;
    yaml(&one, &key, Method::PUT, "/api/v1/flows/greet", &greet(2)).await;
    two.eventually(5, "the other server has version 2", || async {
        two.get(&key, "/api/v1/flows/greet").await.1["version"] == 2
    })
    .await;
}
