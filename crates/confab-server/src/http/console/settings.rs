//! Settings: the bots the user may see with their channels (what is not
//! secret of their settings) and a test of each channel's connection to
//! its provider; and users (made, given a role, disabled and enabled
//! again), API keys (a new key shown once, revoking one), and the audit
//! log, which are an admin's, as in the API (anyone else is told so).

use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Refused, enc, items, may};
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

/// A channel's test, as the page shows it beside the channel.
struct Probed {
    bot: String,
    kind: String,
    ok: bool,
    said: String,
}

async fn render(
    console: &Console,
    (new_key, done): (Option<&Value>, Option<&str>),
    refused: Option<&Refused>,
    status: StatusCode,
) -> Response {
    render_probed(console, (new_key, done), refused, None, status).await
}

async fn render_probed(
    console: &Console,
    (new_key, done): (Option<&Value>, Option<&str>),
    refused: Option<&Refused>,
    probed: Option<&Probed>,
    status: StatusCode,
) -> Response {
    let paths = [
        "/api/v1/users".to_string(),
        "/api/v1/keys".to_string(),
        format!("/api/v1/audit?limit={AUDIT}"),
        "/api/v1/bots".to_string(),
    ];
    let (users, keys, audit, bots) = tokio::join!(
        console.api.get(&paths[0]),
        console.api.get(&paths[1]),
        console.api.get(&paths[2]),
        console.api.get(&paths[3]),
    );
    let bots = match bots {
        Ok(b) => bots_shown(console, &b, probed),
        Err(r) => return refused_page(&r),
    };
    // Users, keys and the audit log are an admin's: the API says so to
    // anyone else, who sees the bots.
    if let Err(r) = &users
        && r.status == 403
    {
        return view::render_with(
            status,
            "settings.html",
            console.page(
                "settings",
                json!({"allowed": false, "why": r.detail, "bots_shown": bots}),
            ),
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
                "bots_shown": bots,
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

/// The bots a `/bots` answer lists, each with its channels: the settings
/// the API shows of them (of a secret, whether it is set and its last
/// characters), whether it can send, and the action that tests it.
fn bots_shown(console: &Console, listed: &Value, probed: Option<&Probed>) -> Vec<Value> {
    let may_test = may(
        &console.user,
        &Method::POST,
        "/api/v1/bots/{bot}/channels/{kind}/test",
    );
    listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let slug = b["slug"].as_str().unwrap_or_default();
            let channels: Vec<Value> = b["channels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(kind, c)| {
                    let settings: Vec<Value> = c
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| !["source", "can_send", "problem"].contains(&k.as_str()))
                        .map(|(k, v)| json!({"name": k.replace('_', " "), "value": setting(v)}))
                        .collect();
                    let anchor = format!("channel-{slug}-{kind}");
                    let probe = probed
                        .filter(|p| p.bot == slug && &p.kind == kind)
                        .map(|p| json!({"ok": p.ok, "said": p.said}));
                    json!({
                        "kind": kind,
                        "source": c["source"],
                        "can_send": c["can_send"],
                        "problem": c["problem"],
                        "settings": settings,
                        "anchor": anchor,
                        "probe": probe,
                        "test_action": may_test.then(|| format!(
                            "{}#{anchor}",
                            console.link(&format!(
                                "/console/settings/bots/{}/channels/{}/test",
                                enc(slug),
                                enc(kind)
                            ))
                        )),
                    })
                })
                .collect();
            json!({
                "slug": slug,
                "name": b["name"],
                "default_flow": b["default_flow"],
                "channels": channels,
            })
        })
        .collect()
}

/// A channel's setting as the API shows it: its text, or of a secret
/// whether it is set and its last characters.
fn setting(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(secret) if secret.contains_key("set") => {
            match (secret["set"].as_bool(), secret["last4"].as_str()) {
                (Some(true), Some(last)) => format!("set, ending in {last}"),
                (Some(true), None) => "set".into(),
                _ => "not set".into(),
            }
        }
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What a provider answered, as text: its fields, nested ones flattened
/// (`{"error": {"message": "Invalid token", "code": 190}}` is
/// `message: Invalid token, code: 190`).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::Object(_) => plain(v),
                _ => format!("{}: {}", k.replace('_', " "), plain(v)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Tests a bot's channel through the API, which asks the provider the
/// cheapest question its credentials allow (nothing is sent), and shows
/// the answer beside the channel: connected, or the provider's error, or
/// why the channel cannot ask.
pub async fn test_channel(
    Path((bot, kind)): Path<(String, String)>,
    Action { console, .. }: Action<NoFields>,
) -> Response {
    let path = format!("/api/v1/bots/{}/channels/{}/test", enc(&bot), enc(&kind));
    let (ok, said, status) = match console.api.call(Method::POST, &path, None).await {
        Ok(p) => {
            let detail = plain(&p["detail"]);
            let said = match (p["ok"].as_bool(), p["status"].as_u64()) {
                (Some(true), _) => format!("Connected. The provider says: {detail}"),
                (_, Some(code)) => format!("The provider refused (HTTP {code}): {detail}"),
                (_, None) => format!("The provider could not be reached: {detail}"),
            };
            (p["ok"] == json!(true), said, StatusCode::OK)
        }
        // The channel cannot ask (its settings are missing or broken).
        Err(r) if r.status == 409 => (false, r.say(), StatusCode::CONFLICT),
        Err(r) => return refused_page(&r),
    };
    let probed = Probed {
        bot,
        kind,
        ok,
        said,
    };
    render_probed(&console, (None, None), None, Some(&probed), status).await
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
