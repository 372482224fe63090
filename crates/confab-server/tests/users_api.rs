//! Users, keys and the audit log through the API: registering, OAuth2's
//! password form, who a token belongs to, and what admins may change.

mod common;

use common::*;
use serde_json::json;

async fn register(app: &TestApp, user: &str, password: &str) -> (u16, serde_json::Value) {
    let r = app
        .http
        .post(format!("{}/api/v1/auth/register", app.url))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_first_user_registers_as_admin_and_then_registration_is_closed() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let (s, u) = register(&app, "ana", "a-long-password").await;
    assert_eq!((s, u["role"].as_str()), (201, Some("admin")), "{u}");
    let (s, p) = register(&app, "bob", "a-long-password").await;
    assert_eq!(s, 403, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("ALLOW_REGISTRATION"));
    assert!(app.store.user_by_name("bob").await.unwrap().is_none());
    let (_, token) = app.login("ana", "a-long-password").await;
    let (s, me) = app
        .get(token["access_token"].as_str().unwrap(), "/api/v1/auth/me")
        .await;
    assert_eq!(s, 200);
    assert_eq!(me["kind"], "user");
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("ana"), Some("admin"))
    );
}

#[tokio::test]
async fn open_registration_makes_viewers_and_checks_what_it_is_given() {
    let mut raw = settings(&fresh_database().await, None, None);
    raw.allow_registration = Some("true".into());
    raw.trusted_proxies = None;
    let app = spawn_app(raw).await;
    assert_eq!(
        register(&app, "ana", "a-long-password").await.1["role"],
        "admin"
    );
    let (s, u) = register(&app, "bob", "a-long-password").await;
    assert_eq!((s, u["role"].as_str()), (201, Some("viewer")), "{u}");
    assert_eq!(register(&app, "bob", "another-password").await.0, 409);
    assert_eq!(register(&app, "carol", "short").await.0, 422);
    assert_eq!(register(&app, "  ", "a-long-password").await.0, 422);
    assert_eq!(register(&app, "x\u{7}", "a-long-password").await.0, 422);
    // Every attempt counts against the client, like a failed login.
    let mut codes = Vec::new();
    for i in 0..6 {
        codes.push(register(&app, &format!("u{i}"), "a-long-password").await.0);
    }
    assert_eq!(codes.last(), Some(&429), "{codes:?}");
}

#[tokio::test]
async fn the_oauth2_password_form_gives_the_same_token_as_login() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    register(&app, "ana", "a-long-password").await;
    let form = |pairs: &[(&str, &str)]| {
        app.http
            .post(format!("{}/api/v1/auth/token", app.url))
            .form(pairs)
            .send()
    };
    let r = form(&[
        ("username", "ana"),
        ("password", "a-long-password"),
        ("grant_type", "password"),
        ("scope", ""),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(
        app.get(t["access_token"].as_str().unwrap(), "/api/v1/contacts")
            .await
            .0,
        200
    );
    let r = form(&[("username", "ana"), ("password", "wrong-password")])
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = form(&[
        ("username", "ana"),
        ("password", "a-long-password"),
        ("grant_type", "client_credentials"),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .http
        .post(format!("{}/api/v1/auth/token", app.url))
        .json(&json!({"username": "ana", "password": "a-long-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415, "a form, as OAuth2 sends it");
}

#[tokio::test]
async fn admins_manage_users_and_every_change_is_audited() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    register(&app, "root", "a-long-password").await;
    let (_, t) = app.login("root", "a-long-password").await;
    let root = t["access_token"].as_str().unwrap().to_string();

    let (s, bob) = app
        .post(
            &root,
            "/api/v1/users",
            json!({"username": "bob", "password": "bobs-password", "role": "agent"}),
        )
        .await;
    assert_eq!((s, bob["role"].as_str()), (201, Some("agent")), "{bob}");
    let id = bob["id"].as_i64().unwrap();
    assert!(bob.get("password").is_none() && !bob.to_string().contains("argon2"));
    assert_eq!(
        app.post(
            &root,
            "/api/v1/users",
            json!({"username": "bob", "password": "bobs-password"})
        )
        .await
        .0,
        409
    );
    assert_eq!(
        app.post(
            &root,
            "/api/v1/users",
            json!({"username": "cy", "password": "x", "role": "agent"})
        )
        .await
        .0,
        422
    );
    assert_eq!(
        app.post(
            &root,
            "/api/v1/users",
            json!({"username": "cy", "password": "long-enough", "role": "root"})
        )
        .await
        .0,
        422
    );
    let (_, t) = app.login("bob", "bobs-password").await;
    let bobs = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        app.get(&bobs, "/api/v1/users").await.0,
        403,
        "an agent may not"
    );

    let (s, b) = app
        .patch(
            &root,
            &format!("/api/v1/users/{id}"),
            json!({"role": "editor", "password": "new-password-1"}),
        )
        .await;
    assert_eq!((s, b["role"].as_str()), (200, Some("editor")), "{b}");
    assert_eq!(
        app.get(&bobs, "/api/v1/contacts").await.0,
        401,
        "a new password ends old tokens"
    );
    let (s, b) = app
        .patch(
            &root,
            &format!("/api/v1/users/{id}"),
            json!({"disabled": true}),
        )
        .await;
    assert!(s == 200 && b["disabled_at"].is_string(), "{b}");
    assert_eq!(app.login("bob", "new-password-1").await.0, 401);
    let (_, list) = app.get(&root, "/api/v1/users").await;
    assert_eq!(column(&list, "username"), ["root", "bob"]);

    // Nobody takes themselves out.
    let root_id = list["items"][0]["id"].as_i64().unwrap();
    let (s, p) = app
        .patch(
            &root,
            &format!("/api/v1/users/{root_id}"),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(s, 409, "{p}");
    let (s, _) = app
        .call(
            reqwest::Method::DELETE,
            &root,
            &format!("/api/v1/users/{root_id}"),
            None,
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = app
        .call(
            reqwest::Method::DELETE,
            &root,
            &format!("/api/v1/users/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(app.get(&root, &format!("/api/v1/users/{id}")).await.0, 404);

    let (s, log) = app.get(&root, "/api/v1/audit").await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = column(&log, "action").into_iter().rev().collect();
    assert_eq!(
        actions,
        [
            "user.register",
            "user.create",
            "user.role",
            "user.password",
            "user.disable",
            "user.delete"
        ]
    );
    assert!(column(&log, "actor")[..5].iter().all(|a| *a == "user:root"));
    assert!(!log.to_string().contains("argon2"), "no secret in the log");
    let (_, page) = app.get(&root, "/api/v1/audit?limit=2").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secrets_and_revoked_by_others() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let admin = app.api_key().await;
    let (s, k) = app
        .post(
            &admin,
            "/api/v1/keys",
            json!({"name": "reports", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let secret = k["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("cfb_"));
    let (_, me) = app.get(&secret, "/api/v1/auth/me").await;
    assert_eq!(
        (me["kind"].as_str(), me["role"].as_str()),
        (Some("key"), Some("viewer"))
    );
    let (_, list) = app.get(&admin, "/api/v1/keys").await;
    assert!(
        !list.to_string().contains(&secret),
        "listed without the secret"
    );
    assert_eq!(column(&list, "name"), ["test admin", "reports"]);
    let admin_id = list["items"][0]["id"].as_i64().unwrap();
    let (s, p) = app
        .call(
            reqwest::Method::DELETE,
            &admin,
            &format!("/api/v1/keys/{admin_id}"),
            None,
        )
        .await;
    assert_eq!(s, 409, "{p}");
    let (s, r) = app
        .call(
            reqwest::Method::DELETE,
            &admin,
            &format!("/api/v1/keys/{}", k["id"]),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(r["revoked_at"].is_string());
    assert_eq!(app.get(&secret, "/api/v1/auth/me").await.0, 401);
    assert_eq!(
        app.call(reqwest::Method::DELETE, &admin, "/api/v1/keys/999", None)
            .await
            .0,
        404
    );
}
