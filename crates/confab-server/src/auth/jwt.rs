//! Login tokens. A token names its user by id and carries the user's token
//! version; what the user may do is read from the database on every
//! request, never from the token, so a token says only who, not what.

use std::time::Duration;

use confab_store::User;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Claims {
    /// The username, for people reading a token.
    pub sub: String,
    /// The user's id: a user made later under the same name is someone else.
    pub uid: i64,
    /// The user's token version when the token was issued.
    pub ver: i64,
    pub exp: u64,
    pub iat: u64,
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

    pub fn issue(&self, user: &User, now_ms: i64) -> Result<String, ApiError> {
        let iat = (now_ms / 1000) as u64;
        let claims = Claims {
            sub: user.username.clone(),
            uid: user.id,
            ver: user.token_version,
            iat,
            exp: iat + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a token failed: {e}")))
    }

    /// The claims of a token this server signed and that has not expired.
    pub(super) fn check(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_model::Role;

    fn ana() -> User {
        User {
            id: 7,
            username: "ana".into(),
            password_hash: String::new(),
            role: Role::Admin,
            created_ms: 0,
            disabled_ms: None,
            token_version: 3,
            bots: None,
        }
    }

    #[test]
    fn tokens_verify_and_expire() {
        let jwt = Jwt::new(
            "a-secret-that-is-long-enough-for-hs256",
            Duration::from_secs(60),
        );
        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let t = jwt.issue(&ana(), now).unwrap();
        let c = jwt.check(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.uid, c.ver), ("ana", 7, 3));
        let old = jwt.issue(&ana(), 1_700_000_000_000).unwrap();
        assert!(jwt.check(&old).is_none(), "a token from 2023 has expired");
        let other = Jwt::new(
            "another-secret-that-is-long-enough!!",
            Duration::from_secs(60),
        );
        assert!(other.check(&t).is_none());
    }
}
