//! Who may call `/api/v1`: users with a password (JWT after login) and API
//! keys for other systems. Webhooks are authenticated by signatures instead.

mod jwt;
mod login_guard;
mod password;
pub mod policy;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use confab_model::Role;
pub use jwt::Jwt;
pub use login_guard::{ClientKey, LoginGuard};
pub use password::{PasswordError, Passwords};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;

/// API keys start with this, so a key and a JWT are told apart at a glance.
pub const KEY_PREFIX: &str = "cfb_";

/// Hashes a new password on the shared hashing threads.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    Ok(Passwords::shared().hash(password).await?)
}

/// Checks a password against a stored hash on the shared hashing threads.
pub async fn verify_password(password: String, hash: String) -> Result<bool, PasswordError> {
    Passwords::shared().verify(password, hash).await
}

/// A new API key and the hash to store; the key is shown once.
pub fn new_api_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_api_key(&key);
    (key, hash)
}

/// Keys carry 256 random bits, so a fast hash is as safe as a slow one.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub fn random_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The caller of an `/api/v1` route, proven by a bearer token and found
/// in the database: a deleted or disabled user, a token issued before a
/// password change, or a revoked key is refused at once.
#[derive(Clone, Debug)]
pub enum Principal {
    User {
        id: i64,
        username: String,
        role: Role,
        /// The bots it may act on; `None`: every bot.
        bots: Option<Vec<i64>>,
    },
    ApiKey {
        id: i64,
        name: String,
        role: Role,
        bots: Option<Vec<i64>>,
    },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Principal::User { role, .. } | Principal::ApiKey { role, .. } => *role,
        }
    }

    /// The bots it may act on; `None`: every bot.
    pub fn bots(&self) -> Option<&[i64]> {
        match self {
            Principal::User { bots, .. } | Principal::ApiKey { bots, .. } => bots.as_deref(),
        }
    }

    pub fn may_act_on(&self, bot: i64) -> bool {
        self.bots().is_none_or(|b| b.contains(&bot))
    }

    /// Who, for logs and the audit trail: `user:ana` or `key:3`.
    pub fn label(&self) -> String {
        match self {
            Principal::User { username, .. } => format!("user:{username}"),
            Principal::ApiKey { id, .. } => format!("key:{id}"),
        }
    }

    /// The principal behind an `Authorization: Bearer` header.
    pub async fn authenticate(
        headers: &HeaderMap,
        state: &AppState,
    ) -> Result<Principal, ApiError> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer header".into()))?;
        let token = header
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            .map(|_| header[7..].trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be 'Bearer <token or API key>'".into())
            })?;
        if token.starts_with(KEY_PREFIX) {
            let key = state
                .store
                .use_api_key(&hash_api_key(token), state.clock.now_ms())
                .await?
                .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key".into()))?;
            return Ok(Principal::ApiKey {
                id: key.id,
                name: key.name,
                role: key.role,
                bots: key.bots,
            });
        }
        let claims = state
            .jwt
            .check(token)
            .ok_or_else(|| ApiError::Unauthorized("invalid or expired token".into()))?;
        let user = state
            .store
            .user_by_id(claims.uid)
            .await?
            .filter(|u| u.disabled_ms.is_none() && u.token_version == claims.ver)
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "this token is no longer valid (user removed or disabled, or password changed); log in again".into(),
                )
            })?;
        Ok(Principal::User {
            id: user.id,
            username: user.username,
            role: user.role,
            bots: user.bots,
        })
    }
}

/// Handlers that need the caller take it from here: the access layer
/// (`policy`) has authenticated it already.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        Principal::authenticate(&parts.headers, state).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let (k1, h1) = new_api_key();
        let (k2, _) = new_api_key();
        assert!(k1.starts_with(KEY_PREFIX) && k1 != k2);
        assert_eq!(hash_api_key(&k1), h1);
        assert!(!h1.contains(&k1));
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), h.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong".into(), h).await.unwrap());
    }
}
