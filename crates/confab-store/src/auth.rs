use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError};

#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: String,
    pub created_ms: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

impl Store {
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        let row = sqlx::query("INSERT INTO users (username, password_hash, role, created_ms) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(username.to_string())
            .bind(password_hash.to_string())
            .bind(role.to_string())
            .bind(now_ms)
            .fetch_one(&mut *self.write_conn().await?)
            .await
            .map_err(|e| StoreError::from_unique(e, &format!("user {username}")))?;
        Ok(User {
            id: row.try_get("id")?,
            username: username.into(),
            password_hash: password_hash.into(),
            role: role.into(),
            created_ms: now_ms,
        })
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, password_hash, role, created_ms FROM users WHERE username = $1",
        )
        .bind(username.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(User {
                id: r.try_get("id")?,
                username: r.try_get("username")?,
                password_hash: r.try_get("password_hash")?,
                role: r.try_get("role")?,
                created_ms: r.try_get("created_ms")?,
            })
        })
        .transpose()
    }

    /// Stores an API key by the hash of its secret; the secret itself is
    /// never stored.
    pub async fn create_api_key(
        &self,
        name: &str,
        key_hash: &str,
        now_ms: i64,
    ) -> Result<ApiKey, StoreError> {
        let row = sqlx::query(
            "INSERT INTO api_keys (name, key_hash, created_ms) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name.to_string())
        .bind(key_hash.to_string())
        .bind(now_ms)
        .fetch_one(&mut *self.write_conn().await?)
        .await
        .map_err(|e| StoreError::from_unique(e, "api key"))?;
        Ok(ApiKey {
            id: row.try_get("id")?,
            name: name.into(),
            created_ms: now_ms,
            last_used_ms: None,
        })
    }

    /// The live key with this hash, marking it used.
    pub async fn use_api_key(
        &self,
        key_hash: &str,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(
            "UPDATE api_keys SET last_used_ms = $1 WHERE key_hash = $2 AND revoked_ms IS NULL RETURNING id, name, created_ms, last_used_ms",
        )
        .bind(now_ms)
        .bind(key_hash.to_string())
        .fetch_optional(&mut *self.write_conn().await?)
        .await?;
        row.map(|r| {
            Ok(ApiKey {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_ms: r.try_get("created_ms")?,
                last_used_ms: r.try_get("last_used_ms")?,
            })
        })
        .transpose()
    }
}
