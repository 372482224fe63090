//! Who may call `/api/v1`: users with a password (JWT after login) and API
//! keys for other systems. Webhooks are authenticated by signatures instead.

mod login_guard;
mod password;

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
pub use login_guard::{ClientKey, LoginGuard};
pub use password::{PasswordError, Passwords};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;

/// API keys start with this, so a key and a JWT are told apart at a glance.
pub const KEY_PREFIX: &str = "cfb_";
pub const ROLES: [&str; 2] = ["admin", "operator"];

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

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    exp: u64,
    iat: u64,
}

pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub ttl: Duration,
}

impl Jwt {
    pub fn new(secret: &str, ttl: Duration) -> Jwt {
        Jwt {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl,
        }
    }

    pub fn issue(&self, username: &str, role: &str, now_ms: i64) -> Result<String, ApiError> {
        let iat = (now_ms / 1000) as u64;
        let claims = Claims {
            sub: username.into(),
            role: role.into(),
            iat,
            exp: iat + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a token failed: {e}")))
    }

    fn check(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}

/// The caller of an `/api/v1` route, proven by a bearer token.
#[derive(Clone, Debug)]
pub enum Principal {
    User { username: String, role: String },
    ApiKey { id: i64, name: String },
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer header".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
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
            });
        }
        let claims = state
            .jwt
            .check(token)
            .ok_or_else(|| ApiError::Unauthorized("invalid or expired token".into()))?;
        Ok(Principal::User {
            username: claims.sub,
            role: claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_expire() {
        let jwt = Jwt::new(
            "a-secret-that-is-long-enough-for-hs256",
            Duration::from_secs(60),
        );
        let now = 1_700_000_000_000;
        let t = jwt
            .issue(
                "ana",
                "admin",
                crate::clock::Clock::now_ms(&crate::clock::SystemClock),
            )
            .unwrap();
        assert_eq!(jwt.check(&t).unwrap().sub, "ana");
        let old = jwt.issue("ana", "admin", now).unwrap();
        assert!(jwt.check(&old).is_none(), "a token from 2023 has expired");
        let other = Jwt::new(
            "another-secret-that-is-long-enough!!",
            Duration::from_secs(60),
        );
        assert!(other.check(&t).is_none());
    }

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
