use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::Body;
use crate::app::AppState;
use crate::auth::{ClientKey, PasswordError, Passwords, random_secret, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::origin::Origin;

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
async fn dummy_hash() -> Result<String, PasswordError> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| Passwords::shared().hash(random_secret()))
        .await
        .cloned()
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => {
                ApiError::Overloaded("too many logins at once; try again shortly".into())
            }
            PasswordError::Failed(detail) => ApiError::Internal(detail),
        }
    }
}

/// Exchange a username and password for a JWT.
///
/// Failed logins slow down the client that makes them (longer after each),
/// and, once an account has many, the clients that failed on it; a client
/// that has not failed still logs in with the right password (429 with
/// `Retry-After` while a client must wait).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = Token), (status = 401, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    origin: Origin,
    Body(req): Body<Login>,
) -> ApiResult<Json<Token>> {
    if req.username.chars().count() > 256 || req.password.len() > 1024 {
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    }
    let client = ClientKey::of(origin.client);
    let guard = &state.login_guard;
    // The attempt counts before the password is checked, so guesses sent
    // all at once are limited like guesses sent one after another.
    if let Err(wait) = guard.attempt(client, &req.username) {
        metrics::counter!("confab_logins_total", "outcome" => "refused").increment(1);
        return Err(ApiError::TooManyRequests(
            wait.as_secs_f64().ceil().max(1.0) as u64,
        ));
    }
    let checked = async {
        let user = state.store.user_by_name(&req.username).await?;
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => dummy_hash().await?,
        };
        let ok = verify_password(req.password, hash).await? && user.is_some();
        Ok::<_, ApiError>(user.filter(|_| ok))
    }
    .await;
    let user = checked.inspect_err(|_| guard.abandoned(client, &req.username))?;
    // A disabled user is refused like a wrong password: the answer does
    // not tell a guesser which accounts exist.
    let Some(user) = user.filter(|u| u.disabled_ms.is_none()) else {
        metrics::counter!("confab_logins_total", "outcome" => "failed").increment(1);
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    guard.succeeded(client, &req.username);
    metrics::counter!("confab_logins_total", "outcome" => "ok").increment(1);
    let token = state.jwt.issue(&user, state.clock.now_ms())?;
    Ok(Json(Token {
        access_token: token,
        token_type: "bearer".into(),
        expires_in: state.jwt.ttl.as_secs(),
    }))
}
