//! Which contacts' conversations changed, for live consoles. The database
//! says so itself (the `live` migration), whatever wrote the message: a
//! webhook, the outbox, a delivery status, the CLI, another server.
//!
//! - PostgreSQL: a trigger NOTIFYs `confab_live` with `bot:contact` when
//!   the transaction commits; the feed LISTENs, so every replica hears
//!   every replica's changes.
//! - SQLite: the trigger gives the contact's row in `live_changes` the next
//!   change number; the feed asks for what is newer than the last it saw.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgListener;

use crate::{Store, StoreError};

/// The notification channel on PostgreSQL.
const CHANNEL: &str = "confab_live";
/// How often SQLite's table is read.
const POLL: Duration = Duration::from_millis(250);
/// Changes read from SQLite at once.
const PAGE: i64 = 1000;

/// A conversation that changed: a message came or went, or its status moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Changed {
    pub bot_id: i64,
    pub contact_id: i64,
}

impl Changed {
    /// `bot:contact`, as the trigger notifies it.
    fn parse(payload: &str) -> Option<Changed> {
        let (bot, contact) = payload.split_once(':')?;
        Some(Changed {
            bot_id: bot.parse().ok()?,
            contact_id: contact.parse().ok()?,
        })
    }
}

/// What the feed heard next.
#[derive(Debug, PartialEq)]
pub enum Heard {
    /// Changes, as they were committed.
    Changes(Vec<Changed>),
    /// The feed's connection was lost and is being made again: what was
    /// committed meanwhile was not heard.
    Gap,
}

/// The changes as they are committed, from now on.
pub enum Feed {
    Listen(Box<PgListener>),
    Poll { store: Store, after: i64 },
}

impl Store {
    /// A feed of the changes committed from now on.
    pub async fn live_feed(&self) -> Result<Feed, StoreError> {
        match &self.listen_url {
            Some(url) => {
                let mut listener = PgListener::connect(url).await?;
                listener.listen(CHANNEL).await?;
                Ok(Feed::Listen(Box::new(listener)))
            }
            None => {
                let after: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM live_changes")
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
                Ok(Feed::Poll {
                    store: self.clone(),
                    after,
                })
            }
        }
    }
}

impl Feed {
    /// The next changes, waiting until there are some. A PostgreSQL feed
    /// whose connection dropped says so (`Heard::Gap`: what was committed
    /// in between is not heard) and connects again on the next call.
    pub async fn next(&mut self) -> Result<Heard, StoreError> {
        match self {
            Feed::Listen(listener) => loop {
                match listener.try_recv().await? {
                    Some(n) => {
                        if let Some(c) = Changed::parse(n.payload()) {
                            return Ok(Heard::Changes(vec![c]));
                        }
                    }
                    None => return Ok(Heard::Gap),
                }
            },
            Feed::Poll { store, after } => loop {
                let rows = sqlx::query(
                    "SELECT bot_id, contact_id, seq FROM live_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(*after)
                .bind(PAGE)
                .fetch_all(&store.pool)
                .await?;
                if let Some(last) = rows.last() {
                    *after = last.try_get("seq")?;
                    return rows
                        .iter()
                        .map(|r| {
                            Ok(Changed {
                                bot_id: r.try_get("bot_id")?,
                                contact_id: r.try_get("contact_id")?,
                            })
                        })
                        .collect::<Result<_, StoreError>>()
                        .map(Heard::Changes);
                }
                tokio::time::sleep(POLL).await;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_notification_names_the_bot_and_the_contact() {
        assert_eq!(
            super::Changed::parse("3:42"),
            Some(super::Changed {
                bot_id: 3,
                contact_id: 42
            })
        );
        assert_eq!(super::Changed::parse("3"), None);
        assert_eq!(super::Changed::parse("x:1"), None);
    }
}
