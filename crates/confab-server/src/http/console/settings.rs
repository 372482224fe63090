//! Settings: users (made, given a role, disabled and enabled again), API
//! keys (a new key shown once, revoking one), and the audit log. All of it
//! is an admin's, as in the API; anyone else is told so.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Refused, items};
use super::{Action, Console, NoFields, refused_page, see_other, view};

/// Audit entries shown.
const AUDIT: usize = 50;

#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
}

pub async fn page(
    console: Console,
    axum::extract::Query(q): axum::extract::Query<Done>,
) -> Response {
    let done = q.done.as_deref().map(|d| match d {
        "user" => "The user is made: they can log in now.",
        _ => "The user is changed.",
    });
    render(&console, (None, done), None, StatusCode::OK).await
}

async fn render(
    console: &Console,
    (new_key, done): (Option<&Value>, Option<&str>),
    refused: Option<&Refused>,
    status: StatusCode,
) -> Response {
    let paths = [
        "/api/v1/users".to_string(),
        "/api/v1/keys".to_string(),
        format!("/api/v1/audit?limit={AUDIT}"),
    ];
    let (users, keys, audit) = tokio::join!(
        console.api.get(&paths[0]),
        console.api.get(&paths[1]),
        console.api.get(&paths[2]),
    );
    // Settings are an admin's: the API says so to anyone else.
    if let Err(r) = &users
        && r.status == 403
    {
        return view::render_with(
            StatusCode::FORBIDDEN,
            "settings.html",
            console.page("settings", json!({"allowed": false, "why": r.detail})),
        );
    }
    let users: Vec<Value> = items(&users)
        .into_iter()
        .map(|mut u| {
            u["change_action"] =
                json!(console.link(&format!("/console/settings/users/{}", u["id"])));
            u
        })
        .collect();
    let keys: Vec<Value> = items(&keys)
        .into_iter()
        .map(|mut k| {
            k["revoke_action"] =
                json!(console.link(&format!("/console/settings/keys/{}/revoke", k["id"])));
            k
        })
        .collect();
    view::render_with(
        status,
        "settings.html",
        console.page(
            "settings",
            json!({
                "allowed": true,
                "users": users,
                "done": done,
                "user_action": console.link("/console/settings/users"),
                "keys": keys,
                "audit": items(&audit),
                "new_key": new_key,
                "error": refused.map(Refused::say),
                "key_action": console.link("/console/settings/keys"),
            }),
        ),
    )
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// Makes an API key; the page that answers shows it, once.
pub async fn create_key(Action { console, form }: Action<KeyForm>) -> Response {
    let body = json!({"name": form.name.trim(), "role": form.role.trim()});
    match console.api.post("/api/v1/keys", body).await {
        Ok(key) => render(&console, (Some(&key), None), None, StatusCode::CREATED).await,
        Err(r) if matches!(r.status, 400 | 409 | 422) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            render(&console, (None, None), Some(&r), status).await
        }
        Err(r) => refused_page(&r),
    }
}

/// Revokes an API key: it stops working at once.
pub async fn revoke_key(Path(id): Path<i64>, Action { console, .. }: Action<NoFields>) -> Response {
    match console
        .api
        .call(
            axum::http::Method::DELETE,
            &format!("/api/v1/keys/{id}"),
            None,
        )
        .await
    {
        Ok(_) => see_other(&console.link("/console/settings")),
        Err(r) => refused_page(&r),
    }
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

/// Makes a user with a role; they log in with the password given.
pub async fn create_user(Action { console, form }: Action<UserForm>) -> Response {
    let body = json!({"username": form.username.trim(), "password": form.password, "role": form.role.trim()});
    answer(
        &console,
        console.api.post("/api/v1/users", body).await,
        "user",
    )
    .await
}

#[derive(Deserialize)]
pub struct ChangeForm {
    role: Option<String>,
    /// `true` disables the user, `false` enables them again.
    disabled: Option<bool>,
}

/// Gives a user another role, or disables or enables them. The API
/// refuses what would leave nobody an admin, or take an admin's own role.
pub async fn change_user(
    Path(id): Path<i64>,
    Action { console, form }: Action<ChangeForm>,
) -> Response {
    let mut body = serde_json::Map::new();
    if let Some(r) = form.role.filter(|r| !r.is_empty()) {
        body.insert("role".into(), json!(r));
    }
    if let Some(d) = form.disabled {
        body.insert("disabled".into(), json!(d));
    }
    let done = console
        .api
        .call(
            axum::http::Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(Value::Object(body)),
        )
        .await;
    answer(&console, done, "changed").await
}

/// Back to the page saying what was done, or the page with the API's
/// objection.
async fn answer(console: &Console, done: Result<Value, Refused>, what: &str) -> Response {
    match done {
        Ok(_) => see_other(&console.link(&format!("/console/settings?done={what}"))),
        Err(r) if matches!(r.status, 400 | 409 | 422) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            render(console, (None, None), Some(&r), status).await
        }
        Err(r) => refused_page(&r),
    }
}
