use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::Body;
use crate::app::AppState;
use crate::auth::{hash_password, random_secret, verify_password};
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Token {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// A stand-in hash, so that an unknown username costs as much time as a
/// wrong password and does not reveal which usernames exist.
async fn dummy_hash() -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async { hash_password(random_secret()).await.unwrap_or_default() })
        .await
        .clone()
}

/// Exchange a username and password for a JWT.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = Token), (status = 401, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    Body(req): Body<Login>,
) -> ApiResult<Json<Token>> {
    if req.username.chars().count() > 256 || req.password.len() > 1024 {
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    }
    // The attempt counts before the password is checked, so guesses sent
    // all at once are limited like guesses sent one after another.
    state
        .login_limiter
        .attempt(&req.username)
        .map_err(ApiError::TooManyRequests)?;
    let user = state.store.user_by_name(&req.username).await?;
    let hash = match &user {
        Some(u) => u.password_hash.clone(),
        None => dummy_hash().await,
    };
    // Each check takes Argon2's memory; only a few run at once.
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        state.login_limiter.verifying.acquire(),
    )
    .await
    .map_err(|_| ApiError::Unavailable("too many logins at once; try again shortly".into()))?
    .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    let ok = verify_password(req.password, hash).await && user.is_some();
    drop(permit);
    let Some(user) = user.filter(|_| ok) else {
        metrics::counter!("confab_logins_total", "outcome" => "failed").increment(1);
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    state.login_limiter.succeeded(&req.username);
    metrics::counter!("confab_logins_total", "outcome" => "ok").increment(1);
    let token = state
        .jwt
        .issue(&user.username, &user.role, state.clock.now_ms())?;
    Ok(Json(Token {
        access_token: token,
        token_type: "bearer".into(),
        expires_in: state.jwt.ttl.as_secs(),
    }))
}
