//! Signing in (JSON, or OAuth2's password form), registering, and who a
//! token belongs to.

use axum::Json;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use confab_store::{Change, StoreError};
use serde::{Deserialize, Serialize};

use super::Body;
use crate::app::AppState;
use crate::auth::{
    ClientKey, PasswordError, Passwords, Principal, Role, random_secret, verify_password,
};
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

/// Checks a username and password against the login limits and the
/// stored hash, and issues a token: what both login routes (and the
/// console's login) do.
pub(crate) async fn sign_in(
    state: &AppState,
    origin: &Origin,
    username: String,
    password: String,
) -> ApiResult<Token> {
    if username.chars().count() > 256 || password.len() > 1024 {
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    }
    let client = ClientKey::of(origin.client);
    let guard = &state.login_guard;
    // The attempt counts before the password is checked, so guesses sent
    // all at once are limited like guesses sent one after another.
    if let Err(wait) = guard.attempt(client, &username) {
        metrics::counter!("confab_logins_total", "outcome" => "refused").increment(1);
        return Err(ApiError::TooManyRequests(
            wait.as_secs_f64().ceil().max(1.0) as u64,
        ));
    }
    let checked = async {
        let user = state.store.user_by_name(&username).await?;
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => dummy_hash().await?,
        };
        let ok = verify_password(password, hash).await? && user.is_some();
        Ok::<_, ApiError>(user.filter(|_| ok))
    }
    .await;
    let user = checked.inspect_err(|_| guard.abandoned(client, &username))?;
    // A disabled user is refused like a wrong password: the answer does
    // not tell a guesser which accounts exist.
    let Some(user) = user.filter(|u| u.disabled_ms.is_none()) else {
        metrics::counter!("confab_logins_total", "outcome" => "failed").increment(1);
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    guard.succeeded(client, &username);
    metrics::counter!("confab_logins_total", "outcome" => "ok").increment(1);
    Ok(Token {
        access_token: state.jwt.issue(&user, state.clock.now_ms())?,
        token_type: "bearer".into(),
        expires_in: state.jwt.ttl.as_secs(),
    })
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
    Ok(Json(
        sign_in(&state, &origin, req.username, req.password).await?,
    ))
}

/// OAuth2's password grant: the form a client library sends. Its other
/// fields (`scope`, `client_id`) are ignored: a token is the user's, with
/// the user's role.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    pub username: String,
    pub password: String,
    /// `password` when given.
    pub grant_type: Option<String>,
}

/// Exchange a username and password for a JWT, as OAuth2's password flow
/// sends them (form-encoded); the same limits as `/auth/login`.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth",
    request_body(content_type = "application/x-www-form-urlencoded", content = TokenForm),
    responses((status = 200, body = Token), (status = 401, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn token(
    State(state): State<AppState>,
    origin: Origin,
    form: Form<TokenForm>,
) -> ApiResult<Json<Token>> {
    let Form(f) = form;
    if f.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(ApiError::BadRequest(
            "grant_type must be password (or left out)".into(),
        ));
    }
    Ok(Json(
        sign_in(&state, &origin, f.username, f.password).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// 1 to 64 characters, no control characters.
    pub username: String,
    /// 8 characters at least, 1024 bytes at most.
    pub password: String,
}

/// Create an account. The first user of an empty database may always
/// register and becomes admin; after that only with
/// `ALLOW_REGISTRATION=true`, as a viewer (an admin gives more). Each
/// attempt counts against the client like a failed login.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = Register,
    responses((status = 201, body = super::users::UserOut), (status = 403, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn register(
    State(state): State<AppState>,
    origin: Origin,
    Body(req): Body<Register>,
) -> ApiResult<(StatusCode, Json<super::users::UserOut>)> {
    super::users::check_username(&req.username)?;
    super::users::check_password(&req.password)?;
    let client = ClientKey::of(origin.client);
    state
        .login_guard
        .attempt(client, "(registration)")
        .map_err(|wait| ApiError::TooManyRequests(wait.as_secs_f64().ceil().max(1.0) as u64))?;
    let hash = Passwords::shared().hash(req.password).await?;
    let by = Change::by("registration", state.clock.now_ms());
    let user = match state
        .store
        .create_first_user(&req.username, &hash, &by)
        .await
    {
        Ok(u) => u,
        Err(StoreError::Refused(_)) if state.settings.allow_registration => {
            state
                .store
                .create_user(&req.username, &hash, Role::Viewer, &by)
                .await?
        }
        Err(StoreError::Refused(_)) => {
            return Err(ApiError::Forbidden(
                "registration is closed: an admin creates users (ALLOW_REGISTRATION is off)".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    /// `user` or `key`.
    pub kind: String,
    pub id: i64,
    /// The username, or the key's name.
    pub name: String,
    /// admin, editor, agent or viewer.
    pub role: String,
    /// The ids of the bots they may act on; null: every bot.
    pub bots: Option<Vec<i64>>,
}

/// Who the credentials belong to, and their role now.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = Me)), security(("bearer" = [])))]
pub async fn me(principal: Principal) -> Json<Me> {
    let role = principal.role().as_str().to_string();
    let bots = principal.bots().map(<[i64]>::to_vec);
    Json(match principal {
        Principal::User { id, username, .. } => Me {
            kind: "user".into(),
            id,
            name: username,
            role,
            bots,
        },
        Principal::ApiKey { id, name, .. } => Me {
            kind: "key".into(),
            id,
            name,
            role,
            bots,
        },
    })
}
