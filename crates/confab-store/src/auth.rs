//! Users and API keys: who may manage Confab, and with which role. Every
//! request's credentials are looked up here, so that a deleted or disabled
//! user, a changed password or a revoked key takes effect at once.

use confab_model::Role;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, Change};
use crate::{Store, StoreError};

#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: Role,
    pub created_ms: i64,
    pub disabled_ms: Option<i64>,
    /// Tokens carry it; it moves on when the password changes or the user
    /// is disabled, and older tokens stop working.
    #[serde(skip)]
    pub token_version: i64,
    /// The bots the user may act on; `None`: every bot.
    pub bots: Option<Vec<i64>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// The bots the key may act on; `None`: every bot.
    pub bots: Option<Vec<i64>>,
}

/// A stored role that is not one of ours (written by hand) grants the
/// least: reading.
fn role(row: &AnyRow) -> Result<Role, StoreError> {
    let text: String = row.try_get("role")?;
    Ok(Role::parse(&text).unwrap_or(Role::Viewer))
}

// Macros rather than constants: statements must be static strings, and
// `concat!` takes only literals.
macro_rules! user_columns {
    () => {
        "id, username, password_hash, role, created_ms, disabled_ms, token_version, bots"
    };
}
macro_rules! key_columns {
    () => {
        "id, name, role, created_ms, last_used_ms, revoked_ms, bots"
    };
}

/// A stored list of bots (JSON), or `None` for every bot.
fn bots(row: &AnyRow) -> Result<Option<Vec<i64>>, StoreError> {
    let text: Option<String> = row.try_get("bots")?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("a list of bots: {e}")))
    })
    .transpose()
}

fn bots_text(bots: Option<&[i64]>) -> Option<String> {
    bots.map(|b| serde_json::to_string(b).expect("numbers serialize"))
}

fn user(r: AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        role: role(&r)?,
        created_ms: r.try_get("created_ms")?,
        disabled_ms: r.try_get("disabled_ms")?,
        token_version: r.try_get("token_version")?,
        bots: bots(&r)?,
    })
}

fn key(r: AnyRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: role(&r)?,
        created_ms: r.try_get("created_ms")?,
        last_used_ms: r.try_get("last_used_ms")?,
        revoked_ms: r.try_get("revoked_ms")?,
        bots: bots(&r)?,
    })
}

/// A key's last use is written at most this often: a write per API
/// request would compete with the inbound writer for nothing.
const LAST_USED_EVERY_MS: i64 = 60_000;

impl Store {
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        by: &Change<'_>,
    ) -> Result<User, StoreError> {
        self.create_limited_user(username, password_hash, role, None, by)
            .await
    }

    /// [`Store::create_user`] for a user limited to `bots` (`None`: every bot).
    pub async fn create_limited_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        bots: Option<&[i64]>,
        by: &Change<'_>,
    ) -> Result<User, StoreError> {
        // A random first version: SQLite may give a deleted user's id to
        // the next one, and that user's tokens must not fit the newcomer.
        let version = (uuid::Uuid::new_v4().as_u64_pair().0 >> 16) as i64;
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO users (username, password_hash, role, created_ms, token_version, bots) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            user_columns!()
        ))
        .bind(username.to_string())
        .bind(password_hash.to_string())
        .bind(role.as_str())
        .bind(by.now_ms)
        .bind(version)
        .bind(bots_text(bots))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_unique(e, &format!("user {username}")))?;
        let created = user(row)?;
        audit::record(
            &mut tx,
            by,
            "user.create",
            &user_target(&created),
            None::<&User>,
            Some(&created),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The first user of an empty database: created only if there is no
    /// user yet (two at once: one wins), else `Refused`.
    pub async fn create_first_user(
        &self,
        username: &str,
        password_hash: &str,
        by: &Change<'_>,
    ) -> Result<User, StoreError> {
        let version = (uuid::Uuid::new_v4().as_u64_pair().0 >> 16) as i64;
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO users (username, password_hash, role, created_ms, token_version) \
             SELECT $1, $2, 'admin', $3, $4 WHERE NOT EXISTS (SELECT 1 FROM users) RETURNING ",
            user_columns!()
        ))
        .bind(username.to_string())
        .bind(password_hash.to_string())
        .bind(by.now_ms)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Refused("registration is closed".into()))?;
        let created = user(row)?;
        audit::record(
            &mut tx,
            by,
            "user.register",
            &user_target(&created),
            None::<&User>,
            Some(&created),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(user)
        .transpose()
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(user)
        .transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(user)
        .collect()
    }

    /// Changes one user by name in one transaction with its audit entry:
    /// `sql` updates the user (`$1` the name, `$2` the value, when there is
    /// one) and returns it; `NotFound` when there is none. A change that
    /// would leave nobody (user or key) with the admin role is `Refused`.
    async fn change_user(
        &self,
        username: &str,
        sql: &'static str,
        value: Option<Bind>,
        action: &str,
        by: &Change<'_>,
    ) -> Result<User, StoreError> {
        let mut tx = self.write_tx().await?;
        let admins_before = admins(&mut tx).await?;
        let before = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .map(user)
        .transpose()?
        .ok_or(StoreError::NotFound)?;
        let mut q = sqlx::query(sql).bind(username.to_string());
        q = match value {
            Some(Bind::Text(t)) => q.bind(t),
            Some(Bind::Int(i)) => q.bind(i),
            Some(Bind::MaybeText(t)) => q.bind(t),
            None => q,
        };
        let after = q
            .fetch_optional(&mut *tx)
            .await?
            .map(user)
            .transpose()?
            .ok_or(StoreError::NotFound)?;
        keeps_an_admin(admins_before, admins(&mut tx).await?)?;
        audit::record(
            &mut tx,
            by,
            action,
            &user_target(&after),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Limits a user to `bots` (`None`: every bot), from their next request.
    pub async fn set_user_bots(
        &self,
        username: &str,
        bots: Option<&[i64]>,
        by: &Change<'_>,
    ) -> Result<User, StoreError> {
        self.change_user(
            username,
            concat!(
                "UPDATE users SET bots = $2 WHERE username = $1 RETURNING ",
                user_columns!()
            ),
            Some(Bind::MaybeText(bots_text(bots))),
            "user.bots",
            by,
        )
        .await
    }

    /// A role takes effect on the user's next request: roles are read from
    /// here, never from a token.
    pub async fn set_user_role(
        &self,
        username: &str,
        role: Role,
        by: &Change<'_>,
    ) -> Result<User, StoreError> {
        self.change_user(
            username,
            concat!(
                "UPDATE users SET role = $2 WHERE username = $1 RETURNING ",
                user_columns!()
            ),
            Some(Bind::Text(role.as_str().into())),
            "user.role",
            by,
        )
        .await
    }

    /// A new password; every token issued before stops working.
    pub async fn set_user_password(
        &self,
        username: &str,
        password_hash: &str,
        by: &Change<'_>,
    ) -> Result<User, StoreError> {
        self.change_user(
            username,
            concat!(
                "UPDATE users SET password_hash = $2, token_version = token_version + 1 WHERE username = $1 RETURNING ",
                user_columns!()
            ),
            Some(Bind::Text(password_hash.into())),
            "user.password",
            by,
        )
        .await
    }

    /// A disabled user cannot log in, and their tokens stop working at once.
    pub async fn disable_user(&self, username: &str, by: &Change<'_>) -> Result<User, StoreError> {
        self.change_user(
            username,
            concat!(
                "UPDATE users SET disabled_ms = COALESCE(disabled_ms, $2), token_version = token_version + 1 WHERE username = $1 RETURNING ",
                user_columns!()
            ),
            Some(Bind::Int(by.now_ms)),
            "user.disable",
            by,
        )
        .await
    }

    pub async fn enable_user(&self, username: &str, by: &Change<'_>) -> Result<User, StoreError> {
        self.change_user(
            username,
            concat!(
                "UPDATE users SET disabled_ms = NULL WHERE username = $1 RETURNING ",
                user_columns!()
            ),
            None,
            "user.enable",
            by,
        )
        .await
    }

    pub async fn delete_user(&self, username: &str, by: &Change<'_>) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let admins_before = admins(&mut tx).await?;
        let before = sqlx::query(concat!(
            "DELETE FROM users WHERE username = $1 RETURNING ",
            user_columns!()
        ))
        .bind(username.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .map(user)
        .transpose()?
        .ok_or(StoreError::NotFound)?;
        keeps_an_admin(admins_before, admins(&mut tx).await?)?;
        audit::record(
            &mut tx,
            by,
            "user.delete",
            &user_target(&before),
            Some(&before),
            None::<&User>,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores an API key by the hash of its secret; the secret itself is
    /// never stored.
    pub async fn create_api_key(
        &self,
        name: &str,
        key_hash: &str,
        role: Role,
        by: &Change<'_>,
    ) -> Result<ApiKey, StoreError> {
        self.create_limited_api_key(name, key_hash, role, None, by)
            .await
    }

    /// [`Store::create_api_key`] for a key limited to `bots` (`None`: every bot).
    pub async fn create_limited_api_key(
        &self,
        name: &str,
        key_hash: &str,
        role: Role,
        bots: Option<&[i64]>,
        by: &Change<'_>,
    ) -> Result<ApiKey, StoreError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO api_keys (name, key_hash, role, created_ms, bots) VALUES ($1, $2, $3, $4, $5) RETURNING ",
            key_columns!()
        ))
        .bind(name.to_string())
        .bind(key_hash.to_string())
        .bind(role.as_str())
        .bind(by.now_ms)
        .bind(bots_text(bots))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_unique(e, "api key"))?;
        let created = key(row)?;
        audit::record(
            &mut tx,
            by,
            "key.create",
            &key_target(&created),
            None::<&ApiKey>,
            Some(&created),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The live key with this hash. Its last use is recorded, to the minute.
    pub async fn use_api_key(
        &self,
        key_hash: &str,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, StoreError> {
        let found = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE key_hash = $1 AND revoked_ms IS NULL"
        ))
        .bind(key_hash.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(key)
        .transpose()?;
        let Some(mut k) = found else {
            return Ok(None);
        };
        if k.last_used_ms
            .is_none_or(|t| now_ms - t >= LAST_USED_EVERY_MS)
        {
            sqlx::query("UPDATE api_keys SET last_used_ms = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(k.id)
                .execute(&mut *self.write_conn().await?)
                .await?;
            k.last_used_ms = Some(now_ms);
        }
        Ok(Some(k))
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(key)
        .collect()
    }

    /// A revoked key stops working at once; revoking it again changes nothing.
    pub async fn revoke_api_key(&self, id: i64, by: &Change<'_>) -> Result<ApiKey, StoreError> {
        let mut tx = self.write_tx().await?;
        let admins_before = admins(&mut tx).await?;
        let before = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .map(key)
        .transpose()?
        .ok_or(StoreError::NotFound)?;
        let after = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2 RETURNING ",
            key_columns!()
        ))
        .bind(by.now_ms)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map(key)??;
        if before.revoked_ms.is_none() {
            keeps_an_admin(admins_before, admins(&mut tx).await?)?;
            audit::record(
                &mut tx,
                by,
                "key.revoke",
                &key_target(&after),
                Some(&before),
                Some(&after),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(after)
    }
}

/// A value a user change binds.
enum Bind {
    Text(String),
    Int(i64),
    MaybeText(Option<String>),
}

fn user_target(u: &User) -> String {
    format!("user:{}", u.username)
}

fn key_target(k: &ApiKey) -> String {
    format!("key:{}", k.id)
}

/// Enabled admin users and live admin keys.
async fn admins(conn: &mut sqlx::AnyConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_ms IS NULL AND bots IS NULL) \
              + (SELECT COUNT(*) FROM api_keys WHERE role = 'admin' AND revoked_ms IS NULL AND bots IS NULL)",
    )
    .fetch_one(conn)
    .await?)
}

/// Refuses a change that takes the last admin away (no enabled admin user
/// and no live admin key left: there is always the CLI, but an API that
/// locks its own admins out is a trap).
fn keeps_an_admin(before: i64, after: i64) -> Result<(), StoreError> {
    if after == 0 && before > 0 {
        return Err(StoreError::Refused(
            "this would leave no admin (no enabled admin user and no live admin key)".into(),
        ));
    }
    Ok(())
}
