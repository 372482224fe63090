//! Sealed credentials: the store keeps them as the server sealed them and
//! never sees them open.

use sqlx::Row;

use crate::{Store, StoreError};

/// One sealed value and where it belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    pub owner: String,
    pub name: String,
    pub sealed: String,
}

impl Store {
    /// Keeps `sealed` as the secret `name` of `owner`, replacing any.
    pub async fn put_secret(&self, s: &SealedSecret, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets (owner, name, sealed, updated_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner, name) DO UPDATE SET sealed = $3, updated_ms = $4",
        )
        .bind(s.owner.clone())
        .bind(s.name.clone())
        .bind(s.sealed.clone())
        .bind(now_ms)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(())
    }

    pub async fn secret(&self, owner: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM secrets WHERE owner = $1 AND name = $2")
                .bind(owner.to_string())
                .bind(name.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn delete_secret(&self, owner: &str, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM secrets WHERE owner = $1 AND name = $2")
            .bind(owner.to_string())
            .bind(name.to_string())
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(())
    }

    /// Every sealed value, for a rotation of the master key.
    pub async fn all_secrets(&self) -> Result<Vec<SealedSecret>, StoreError> {
        sqlx::query("SELECT owner, name, sealed FROM secrets ORDER BY owner, name")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| {
                Ok(SealedSecret {
                    owner: r.try_get("owner")?,
                    name: r.try_get("name")?,
                    sealed: r.try_get("sealed")?,
                })
            })
            .collect()
    }

    /// Replaces every sealed value at once (a rotation): all or nothing.
    pub async fn reseal_secrets(
        &self,
        resealed: &[SealedSecret],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for s in resealed {
            let done = sqlx::query(
                "UPDATE secrets SET sealed = $1, updated_ms = $2 WHERE owner = $3 AND name = $4",
            )
            .bind(s.sealed.clone())
            .bind(now_ms)
            .bind(s.owner.clone())
            .bind(s.name.clone())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
        }
        tx.commit().await
    }
}
