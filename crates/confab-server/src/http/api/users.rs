//! Users and API keys through the API (what `confab user` and `confab key`
//! do from the CLI), for admins; and the audit log of their changes.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use confab_store::{ApiKey, AuditEntry, Change, StoreError, User};
use serde::{Deserialize, Serialize};

use super::{Body, Page, cursor, limit};
use crate::app::AppState;
use crate::auth::{Passwords, Principal, Role, new_api_key};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub username: String,
    /// admin, editor, agent or viewer.
    pub role: String,
    pub created_at: String,
    /// When the user was disabled; null while enabled.
    pub disabled_at: Option<String>,
    /// The ids of the bots the user may act on; null: every bot.
    pub bots: Option<Vec<i64>>,
}

impl From<User> for UserOut {
    fn from(u: User) -> UserOut {
        UserOut {
            id: u.id,
            username: u.username,
            role: u.role.as_str().into(),
            created_at: rfc3339(u.created_ms),
            disabled_at: u.disabled_ms.map(rfc3339),
            bots: u.bots,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyOut {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The ids of the bots the key may act on; null: every bot.
    pub bots: Option<Vec<i64>>,
    /// The key itself: only in the answer that created it, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<ApiKey> for KeyOut {
    fn from(k: ApiKey) -> KeyOut {
        KeyOut {
            id: k.id,
            name: k.name,
            role: k.role.as_str().into(),
            created_at: rfc3339(k.created_ms),
            last_used_at: k.last_used_ms.map(rfc3339),
            revoked_at: k.revoked_ms.map(rfc3339),
            bots: k.bots,
            key: None,
        }
    }
}

/// A name a person or key goes by: 1 to 64 characters, none a control
/// character, not only spaces.
pub fn check_name(what: &str, name: &str) -> ApiResult<()> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::Unprocessable(format!(
            "{what} must be 1 to 64 characters, not only spaces, with no control characters"
        )));
    }
    Ok(())
}

pub fn check_username(name: &str) -> ApiResult<()> {
    check_name("username", name)
}

pub fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(ApiError::Unprocessable(
            "password must be at least 8 characters and at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// Bots named by id or slug, as ids; each must exist.
fn bot_ids(state: &AppState, names: &[serde_json::Value]) -> ApiResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let key = match name {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return Err(ApiError::Unprocessable(format!(
                    "bots[{i}]: a bot's id or slug"
                )));
            }
        };
        let bot = state
            .bots
            .find(&key)
            .ok_or_else(|| ApiError::Unprocessable(format!("bots[{i}]: no bot {key}")))?;
        if !ids.contains(&bot.id()) {
            ids.push(bot.id());
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn role(s: &str) -> ApiResult<Role> {
    Role::parse(s).map_err(|e| ApiError::Unprocessable(format!("role: {e}")))
}

/// Who a change is made by, for the audit log.
fn by<'a>(p: &'a str, state: &AppState) -> Change<'a> {
    Change::by(p, state.clock.now_ms())
}

async fn user(state: &AppState, id: i64) -> ApiResult<User> {
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))
}

/// Users, by id.
#[utoipa::path(get, path = "/api/v1/users", tag = "auth",
    responses((status = 200, body = Page<UserOut>)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Page<UserOut>>> {
    let users = state.store.users().await?;
    Ok(Json(Page::whole(users.into_iter().map(UserOut::from))))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    /// 8 characters at least.
    pub password: String,
    /// admin, editor, agent or viewer; viewer when left out.
    pub role: Option<String>,
    /// The bots (ids or slugs) the user may act on; every bot when left out.
    #[schema(value_type = Option<Vec<Object>>)]
    pub bots: Option<Vec<serde_json::Value>>,
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "auth", request_body = NewUser,
    responses((status = 201, body = UserOut), (status = 409, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Body(req): Body<NewUser>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    check_username(&req.username)?;
    check_password(&req.password)?;
    let role = req
        .role
        .as_deref()
        .map(role)
        .transpose()?
        .unwrap_or(Role::Viewer);
    let bots = req
        .bots
        .as_deref()
        .map(|b| bot_ids(&state, b))
        .transpose()?;
    let hash = Passwords::shared().hash(req.password).await?;
    let label = principal.label();
    let u = state
        .store
        .create_limited_user(
            &req.username,
            &hash,
            role,
            bots.as_deref(),
            &by(&label, &state),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(u.into())))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "auth", params(("id" = i64, Path)),
    responses((status = 200, body = UserOut)), security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<UserOut>> {
    Ok(Json(user(&state, id).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    pub role: Option<String>,
    /// A new password: the user's tokens stop working.
    pub password: Option<String>,
    /// True disables the user (their tokens stop working), false enables.
    pub disabled: Option<bool>,
    /// The bots (ids or slugs) the user may act on; null: every bot.
    #[serde(default, deserialize_with = "super::given")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub bots: Option<Option<Vec<serde_json::Value>>>,
}

/// Change a user's role, password or whether they are disabled. Nobody
/// may take their own admin role away or disable themselves, and the last
/// admin stays one.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "auth", params(("id" = i64, Path)), request_body = UserChange,
    responses((status = 200, body = UserOut), (status = 409, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Body(req): Body<UserChange>,
) -> ApiResult<Json<UserOut>> {
    let new_role = req.role.as_deref().map(role).transpose()?;
    if let Some(p) = &req.password {
        check_password(p)?;
    }
    let new_bots = req
        .bots
        .map(|b| b.map(|b| bot_ids(&state, &b)).transpose())
        .transpose()?;
    let target = user(&state, id).await?;
    let myself = matches!(principal, Principal::User { id: me, .. } if me == id);
    if myself
        && (req.disabled == Some(true)
            || new_role.is_some_and(|r| r != target.role)
            || new_bots.as_ref().is_some_and(|b| *b != target.bots))
    {
        return Err(ApiError::Conflict(
            "you may not change your own role or bots, or disable yourself".into(),
        ));
    }
    let hash = match req.password {
        Some(p) => Some(Passwords::shared().hash(p).await?),
        None => None,
    };
    let label = principal.label();
    let by = by(&label, &state);
    let name = target.username.clone();
    let mut now = target;
    if let Some(r) = new_role.filter(|r| *r != now.role) {
        now = state.store.set_user_role(&name, r, &by).await?;
    }
    if let Some(h) = hash {
        now = state.store.set_user_password(&name, &h, &by).await?;
    }
    if let Some(b) = new_bots.filter(|b| *b != now.bots) {
        now = state.store.set_user_bots(&name, b.as_deref(), &by).await?;
    }
    match req.disabled {
        Some(true) if now.disabled_ms.is_none() => {
            now = state.store.disable_user(&name, &by).await?
        }
        Some(false) if now.disabled_ms.is_some() => {
            now = state.store.enable_user(&name, &by).await?
        }
        _ => {}
    }
    Ok(Json(now.into()))
}

/// Remove a user; their tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "auth", params(("id" = i64, Path)),
    responses((status = 204), (status = 409, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if matches!(principal, Principal::User { id: me, .. } if me == id) {
        return Err(ApiError::Conflict("you may not remove yourself".into()));
    }
    let target = user(&state, id).await?;
    let label = principal.label();
    match state
        .store
        .delete_user(&target.username, &by(&label, &state))
        .await
    {
        Err(StoreError::NotFound) => Err(ApiError::NotFound(format!("no user {id}"))),
        other => other.map(|()| StatusCode::NO_CONTENT).map_err(Into::into),
    }
}

/// API keys (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/keys", tag = "auth",
    responses((status = 200, body = Page<KeyOut>)), security(("bearer" = [])))]
pub async fn list_keys(State(state): State<AppState>) -> ApiResult<Json<Page<KeyOut>>> {
    let keys = state.store.api_keys().await?;
    Ok(Json(Page::whole(keys.into_iter().map(KeyOut::from))))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    /// admin, editor, agent or viewer; viewer when left out.
    pub role: Option<String>,
    /// The bots (ids or slugs) the key may act on; every bot when left out.
    #[schema(value_type = Option<Vec<Object>>)]
    pub bots: Option<Vec<serde_json::Value>>,
}

/// Create an API key; the answer carries the key, shown only this once.
#[utoipa::path(post, path = "/api/v1/keys", tag = "auth", request_body = NewKey,
    responses((status = 201, body = KeyOut)), security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    Body(req): Body<NewKey>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    check_name("name", &req.name)?;
    let role = req
        .role
        .as_deref()
        .map(role)
        .transpose()?
        .unwrap_or(Role::Viewer);
    let bots = req
        .bots
        .as_deref()
        .map(|b| bot_ids(&state, b))
        .transpose()?;
    let (key, hash) = new_api_key();
    let label = principal.label();
    let created = state
        .store
        .create_limited_api_key(
            req.name.trim(),
            &hash,
            role,
            bots.as_deref(),
            &by(&label, &state),
        )
        .await?;
    let mut out = KeyOut::from(created);
    out.key = Some(key);
    Ok((StatusCode::CREATED, Json(out)))
}

/// Revoke a key: it stops working at once. The key making the request
/// cannot revoke itself, and the last admin key of a server with no admin
/// user stays.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "auth", params(("id" = i64, Path)),
    responses((status = 200, body = KeyOut), (status = 409, body = crate::error::Problem)), security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<KeyOut>> {
    if matches!(principal, Principal::ApiKey { id: me, .. } if me == id) {
        return Err(ApiError::Conflict(
            "a key may not revoke itself; revoke it with another".into(),
        ));
    }
    let label = principal.label();
    match state.store.revoke_api_key(id, &by(&label, &state)).await {
        Err(StoreError::NotFound) => Err(ApiError::NotFound(format!("no API key {id}"))),
        other => Ok(Json(other?.into())),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditOut {
    pub id: i64,
    pub at: String,
    /// Who: `user:ana`, `key:3`, `cli`, `registration`.
    pub actor: String,
    /// What: `user.create`, `user.role`, `key.revoke`...
    pub action: String,
    /// To what: `user:ana`, `key:3`...
    pub target: String,
    /// The record before the change (null when it was created).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The record after the change (null when it was removed).
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl From<AuditEntry> for AuditOut {
    fn from(e: AuditEntry) -> AuditOut {
        AuditOut {
            id: e.id,
            at: rfc3339(e.at_ms),
            actor: e.actor,
            action: e.action,
            target: e.target,
            before: e.before,
            after: e.after,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Every change to users and keys, newest first: who, what, when, and the
/// record before and after (never a secret).
#[utoipa::path(get, path = "/api/v1/audit", tag = "auth", params(AuditQuery),
    responses((status = 200, body = Page<AuditOut>)), security(("bearer" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditOut>>> {
    let limit = limit(q.limit)?;
    let rows = state
        .store
        .audit_log(cursor(q.cursor.as_deref())?, limit + 1)
        .await?;
    Ok(Json(Page::new(rows, limit, |e| e.id, AuditOut::from)))
}
