//! Who may do what: every `/api/v1` route tried with every role, and
//! credentials that stop working the moment they are taken back.

mod common;

use common::*;
use confab_server::auth::Role;
use confab_server::auth::policy::{Access, rules};
use serde_json::json;

/// The README's table of roles, route by route: the least role each route
/// needs (`None`: anyone). Written out here, apart from the server's own
/// table, so that a route added, or a rule changed by mistake, fails this
/// test until the README's table says the same.
const EXPECTED: &[(&str, &str, Option<Role>)] = &[
    ("POST", "/api/v1/auth/login", None),
    ("POST", "/api/v1/auth/token", None),
    ("POST", "/api/v1/auth/register", None),
    ("GET", "/api/v1/auth/me", Some(Role::Viewer)),
    ("GET", "/api/v1/users", Some(Role::Admin)),
    ("POST", "/api/v1/users", Some(Role::Admin)),
    ("GET", "/api/v1/users/{id}", Some(Role::Admin)),
    ("PATCH", "/api/v1/users/{id}", Some(Role::Admin)),
    ("DELETE", "/api/v1/users/{id}", Some(Role::Admin)),
    ("GET", "/api/v1/keys", Some(Role::Admin)),
    ("POST", "/api/v1/keys", Some(Role::Admin)),
    ("DELETE", "/api/v1/keys/{id}", Some(Role::Admin)),
    ("GET", "/api/v1/audit", Some(Role::Admin)),
    ("GET", "/api/v1/bots", Some(Role::Viewer)),
    ("POST", "/api/v1/bots", Some(Role::Admin)),
    ("GET", "/api/v1/bots/{bot}", Some(Role::Viewer)),
    ("PATCH", "/api/v1/bots/{bot}", Some(Role::Admin)),
    ("DELETE", "/api/v1/bots/{bot}", Some(Role::Admin)),
    (
        "POST",
        "/api/v1/bots/{bot}/channels/{kind}/test",
        Some(Role::Editor),
    ),
    ("GET", "/api/v1/contacts", Some(Role::Viewer)),
    ("GET", "/api/v1/contacts/{id}", Some(Role::Viewer)),
    ("PATCH", "/api/v1/contacts/{id}", Some(Role::Agent)),
    ("POST", "/api/v1/contacts/{id}/read", Some(Role::Agent)),
    ("GET", "/api/v1/contacts/{id}/messages", Some(Role::Viewer)),
    ("GET", "/api/v1/messages", Some(Role::Viewer)),
    ("POST", "/api/v1/messages", Some(Role::Agent)),
    ("POST", "/api/v1/messages/bulk", Some(Role::Editor)),
    ("GET", "/api/v1/broadcasts", Some(Role::Viewer)),
    ("POST", "/api/v1/broadcasts", Some(Role::Editor)),
    ("GET", "/api/v1/broadcasts/{id}", Some(Role::Viewer)),
    ("GET", "/api/v1/messages/{id}", Some(Role::Viewer)),
    (
        "GET",
        "/api/v1/messages/{id}/media/{position}",
        Some(Role::Viewer),
    ),
    ("GET", "/api/v1/rejected", Some(Role::Viewer)),
    ("GET", "/api/v1/runs", Some(Role::Viewer)),
    ("POST", "/api/v1/runs", Some(Role::Agent)),
    ("GET", "/api/v1/runs/statistics", Some(Role::Viewer)),
    ("GET", "/api/v1/runs/{id}", Some(Role::Viewer)),
    ("POST", "/api/v1/runs/{id}/cancel", Some(Role::Agent)),
    ("POST", "/api/v1/runs/{id}/resume", Some(Role::Agent)),
    ("POST", "/api/v1/runs/{id}/input", Some(Role::Agent)),
    ("GET", "/api/v1/flows", Some(Role::Viewer)),
    ("POST", "/api/v1/flows", Some(Role::Editor)),
    ("POST", "/api/v1/flows/reload", Some(Role::Editor)),
    ("GET", "/api/v1/flow-templates", Some(Role::Viewer)),
    ("GET", "/api/v1/flows/{flow}", Some(Role::Viewer)),
    ("PUT", "/api/v1/flows/{flow}", Some(Role::Editor)),
    ("DELETE", "/api/v1/flows/{flow}", Some(Role::Editor)),
    ("GET", "/api/v1/flows/{flow}/stats", Some(Role::Viewer)),
    ("GET", "/api/v1/flows/{flow}/versions", Some(Role::Viewer)),
    (
        "GET",
        "/api/v1/flows/{flow}/versions/{version}",
        Some(Role::Viewer),
    ),
    (
        "POST",
        "/api/v1/flows/{flow}/versions/{version}/publish",
        Some(Role::Editor),
    ),
    ("POST", "/api/v1/flows/{flow}/nodes", Some(Role::Editor)),
    (
        "GET",
        "/api/v1/flows/{flow}/nodes/{node}",
        Some(Role::Viewer),
    ),
    (
        "PUT",
        "/api/v1/flows/{flow}/nodes/{node}",
        Some(Role::Editor),
    ),
    (
        "DELETE",
        "/api/v1/flows/{flow}/nodes/{node}",
        Some(Role::Editor),
    ),
    ("POST", "/api/v1/flows/{flow}/test", Some(Role::Editor)),
    ("GET", "/api/v1/collections", Some(Role::Viewer)),
    (
        "GET",
        "/api/v1/collections/{name}/records",
        Some(Role::Viewer),
    ),
    (
        "POST",
        "/api/v1/collections/{name}/records",
        Some(Role::Editor),
    ),
    (
        "GET",
        "/api/v1/collections/{name}/records/{id}",
        Some(Role::Viewer),
    ),
    (
        "PUT",
        "/api/v1/collections/{name}/records/{id}",
        Some(Role::Editor),
    ),
    (
        "PATCH",
        "/api/v1/collections/{name}/records/{id}",
        Some(Role::Editor),
    ),
    (
        "DELETE",
        "/api/v1/collections/{name}/records/{id}",
        Some(Role::Editor),
    ),
    ("GET", "/api/v1/triggers", Some(Role::Viewer)),
    ("POST", "/api/v1/triggers", Some(Role::Editor)),
    ("GET", "/api/v1/triggers/statistics", Some(Role::Viewer)),
    ("GET", "/api/v1/triggers/{id}", Some(Role::Viewer)),
    ("PUT", "/api/v1/triggers/{id}", Some(Role::Editor)),
    ("DELETE", "/api/v1/triggers/{id}", Some(Role::Editor)),
    ("POST", "/api/v1/triggers/{id}/activate", Some(Role::Editor)),
    (
        "POST",
        "/api/v1/triggers/{id}/deactivate",
        Some(Role::Editor),
    ),
    ("POST", "/api/v1/triggers/{id}/test", Some(Role::Viewer)),
    ("GET", "/api/v1/triggers/{id}/logs", Some(Role::Viewer)),
    ("GET", "/api/v1/templates", Some(Role::Viewer)),
    ("POST", "/api/v1/templates", Some(Role::Editor)),
    ("POST", "/api/v1/templates/sync", Some(Role::Editor)),
    ("GET", "/api/v1/templates/{id}", Some(Role::Viewer)),
    ("DELETE", "/api/v1/templates/{id}", Some(Role::Editor)),
    ("GET", "/api/v1/stats/ai", Some(Role::Viewer)),
    ("GET", "/api/v1/stats/messages", Some(Role::Viewer)),
    ("GET", "/api/v1/access", Some(Role::Viewer)),
    ("PUT", "/api/v1/access/allow-list", Some(Role::Admin)),
    ("PUT", "/api/v1/access/rate-limit", Some(Role::Admin)),
];

/// The routes of a bot's data: each is also under `/api/v1/bots/{bot}`,
/// with the same rule.
const OF_BOTS: &[&str] = &[
    "/api/v1/contacts",
    "/api/v1/messages",
    "/api/v1/runs",
    "/api/v1/flows",
    "/api/v1/collections",
    "/api/v1/access",
    "/api/v1/stats/ai",
    "/api/v1/stats/messages",
    "/api/v1/triggers",
    "/api/v1/templates",
    "/api/v1/broadcasts",
];

/// [`EXPECTED`], and its routes of a bot's data under `/api/v1/bots/{bot}`.
fn all_expected() -> Vec<(&'static str, String, Option<Role>)> {
    let mut all: Vec<_> = EXPECTED
        .iter()
        .map(|(m, p, r)| (*m, p.to_string(), *r))
        .collect();
    for (m, p, r) in EXPECTED {
        // Reading the flow files again is the default bot's alone.
        if *p != "/api/v1/flows/reload"
            && OF_BOTS
                .iter()
                .any(|b| p == b || p.starts_with(&format!("{b}/")))
        {
            let rest = p.strip_prefix("/api/v1").unwrap();
            all.push((*m, format!("/api/v1/bots/{{bot}}{rest}"), *r));
        }
    }
    all
}

fn expected(method: &str, path: &str) -> Option<Option<Role>> {
    all_expected()
        .into_iter()
        .find(|(m, p, _)| *m == method && p == path)
        .map(|(_, _, r)| r)
}

#[tokio::test]
async fn every_documented_route_has_the_rule_the_readme_gives() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let doc = app.public_json("/openapi.json").await;
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                documented.push((method, path.clone()));
            }
        }
    }
    for (m, p) in &documented {
        assert!(
            expected(m, p).is_some(),
            "{m} {p} is documented but has no expected role here"
        );
    }
    assert_eq!(
        documented.len(),
        all_expected().len(),
        "every route is documented"
    );
    // Every route the router has comes with a rule (they are one table):
    // a route added is a row here too, or this fails.
    assert_eq!(rules().len(), all_expected().len());
    for r in rules() {
        let (m, p) = (r.method.as_str(), r.path.as_str());
        let want = expected(m, p).unwrap_or_else(|| panic!("{m} {p} is not expected"));
        let got = match r.access {
            Access::Public => None,
            Access::Least(role) => Some(role),
        };
        assert_eq!(got, want, "{m} {p}");
    }
}

#[tokio::test]
async fn every_route_refuses_the_roles_below_its_rule_and_serves_the_rest() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let mut keys = Vec::new();
    for role in Role::ALL {
        keys.push((role, app.api_key_with(role).await));
    }
    for (method, path, least) in all_expected() {
        let Some(least) = least else { continue };
        // Ids no record has: a DELETE must not take the test's own keys.
        let url = path
            .replace("{id}", "424242")
            .replace("{name}", "reviews")
            .replace("{bot}", "default");
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method != "GET" && method != "DELETE").then(|| json!({}));
        let (status, _) = app.call(m.clone(), "", &url, body.clone()).await;
        assert_eq!(status, 401, "{method} {path} without credentials");
        for (role, key) in &keys {
            let (status, problem) = app.call(m.clone(), key, &url, body.clone()).await;
            if *role < least {
                assert_eq!(status, 403, "{method} {path} as {role}: {problem}");
                assert!(
                    problem["detail"].as_str().unwrap().contains(least.as_str()),
                    "{problem}"
                );
            } else {
                assert!(
                    status != 401 && status != 403,
                    "{method} {path} as {role}: {status} {problem}"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_agent_talks_to_contacts_but_changes_no_policy_flow_or_record() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let agent = app.api_key_with(Role::Agent).await;
    let (s, _) = app
        .call(
            reqwest::Method::PUT,
            &agent,
            "/api/v1/access/allow-list",
            Some(json!({"numbers": ["+14155552671"]})),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        app.post(&agent, "/api/v1/flows/reload", json!({})).await.0,
        403
    );
    let (s, _) = app
        .call(
            reqwest::Method::DELETE,
            &agent,
            "/api/v1/collections/reviews/records/1",
            None,
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        app.store.get_setting("allow_list").await.unwrap(),
        None,
        "nothing changed"
    );
}

async fn user_with_token(app: &TestApp, name: &str, role: Role) -> String {
    app.user(name, role).await;
    let (s, t) = app.login(name, "a-long-password").await;
    assert_eq!(s, 200, "{t}");
    t["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn tokens_stop_working_when_their_user_is_deleted_disabled_or_given_a_new_password() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let ok = |s: u16| s == 200;
    // Another admin, so that removing these users leaves one.
    app.api_key().await;

    let t = user_with_token(&app, "gone", Role::Admin).await;
    assert!(ok(app.get(&t, "/api/v1/contacts").await.0));
    app.store
        .delete_user("gone", &confab_store::Change::by("test", 0))
        .await
        .unwrap();
    assert_eq!(app.get(&t, "/api/v1/contacts").await.0, 401);
    // Someone new under the same name is not the one the token named.
    let hash = confab_server::auth::hash_password("x-long-password".into())
        .await
        .unwrap();
    app.store
        .create_user(
            "gone",
            &hash,
            Role::Admin,
            &confab_store::Change::by("test", 0),
        )
        .await
        .unwrap();
    assert_eq!(app.get(&t, "/api/v1/contacts").await.0, 401);

    let t = user_with_token(&app, "off", Role::Admin).await;
    app.store
        .disable_user("off", &confab_store::Change::by("test", 0))
        .await
        .unwrap();
    assert_eq!(app.get(&t, "/api/v1/contacts").await.0, 401);
    assert_eq!(app.login("off", "a-long-password").await.0, 401);
    app.store
        .enable_user("off", &confab_store::Change::by("test", 0))
        .await
        .unwrap();
    assert_eq!(
        app.get(&t, "/api/v1/contacts").await.0,
        401,
        "old tokens stay dead"
    );
    assert_eq!(app.login("off", "a-long-password").await.0, 200);

    let t = user_with_token(&app, "moved", Role::Admin).await;
    app.store
        .set_user_password("moved", &hash, &confab_store::Change::by("test", 0))
        .await
        .unwrap();
    assert_eq!(app.get(&t, "/api/v1/contacts").await.0, 401);
    assert_eq!(app.login("moved", "x-long-password").await.0, 200);
}

#[tokio::test]
async fn a_role_comes_from_the_database_on_every_request() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let t = user_with_token(&app, "ana", Role::Viewer).await;
    assert_eq!(app.post(&t, "/api/v1/flows/reload", json!({})).await.0, 403);
    app.store
        .set_user_role("ana", Role::Editor, &confab_store::Change::by("test", 0))
        .await
        .unwrap();
    assert_eq!(app.post(&t, "/api/v1/flows/reload", json!({})).await.0, 200);
    app.store
        .set_user_role("ana", Role::Agent, &confab_store::Change::by("test", 0))
        .await
        .unwrap();
    assert_eq!(app.post(&t, "/api/v1/flows/reload", json!({})).await.0, 403);
}

#[tokio::test]
async fn a_token_for_a_user_that_does_not_exist_is_refused() {
    let mut raw = settings(&fresh_database().await, None, None);
    let secret = "a-secret-that-is-long-enough-for-hs256-tokens";
    raw.jwt_secret = Some(secret.into());
    let app = spawn_app(raw).await;
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let exp = (app.clock_now() / 1000 + 3600) as u64;
    for claims in [
        json!({"sub": "ghost", "role": "root", "exp": exp, "iat": 0}),
        json!({"sub": "ghost", "uid": 999, "ver": 0, "exp": exp, "iat": 0}),
    ] {
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &key,
        )
        .unwrap();
        assert_eq!(
            app.get(&forged, "/api/v1/contacts").await.0,
            401,
            "{claims}"
        );
    }
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let key = app.api_key_with(Role::Viewer).await;
    assert_eq!(app.get(&key, "/api/v1/contacts").await.0, 200);
    let id = app.store.api_keys().await.unwrap()[0].id;
    app.store
        .revoke_api_key(id, &confab_store::Change::by("test", 1))
        .await
        .unwrap();
    assert_eq!(app.get(&key, "/api/v1/contacts").await.0, 401);
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_405_for_admins_and_refused_to_others() {
    let app = spawn_app(settings(&fresh_database().await, None, None)).await;
    let admin = app.api_key().await;
    let viewer = app.api_key_with(Role::Viewer).await;
    let trace = reqwest::Method::from_bytes(b"TRACE").unwrap();
    let (s, _) = app
        .call(trace.clone(), &admin, "/api/v1/auth/login", None)
        .await;
    assert_eq!(s, 405);
    let (s, _) = app
        .call(reqwest::Method::DELETE, &admin, "/api/v1/contacts", None)
        .await;
    assert_eq!(s, 405);
    let (s, _) = app
        .call(reqwest::Method::DELETE, &viewer, "/api/v1/contacts", None)
        .await;
    assert_eq!(s, 403, "a method with no rule is for admins only");
    let (s, _) = app
        .call(reqwest::Method::DELETE, "", "/api/v1/contacts", None)
        .await;
    assert_eq!(s, 401);
}
