use confab_model::{
    Channel, DeliveryStatus, Direction, Extra, Media, MessageKind, OutboundContent, PhoneNumber,
    ProviderError,
};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{Bind, Filter, json_col, json_rows, opt_json_col, query, to_json};
use crate::{JOB_SEND, Store, StoreError};

/// A stored message, inbound or outbound.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    pub id: i64,
    pub contact_id: i64,
    pub channel: Channel,
    pub direction: Direction,
    pub kind: MessageKind,
    pub text: Option<String>,
    pub media: Vec<Media>,
    pub extra: Extra,
    /// What we send, for outbound messages.
    pub content: Option<OutboundContent>,
    /// Our number the message goes out from.
    pub sender: Option<String>,
    pub status: DeliveryStatus,
    pub provider_message_id: Option<String>,
    pub error: Option<ProviderError>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    /// The messages of the bot's contacts only.
    pub bot_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub direction: Option<Direction>,
    pub status: Option<DeliveryStatus>,
    pub channel: Option<Channel>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Messages with an id below this one (the next page, newest first).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One message to queue for sending.
#[derive(Clone, Debug)]
pub struct NewOutbound {
    /// The bot that sends it: `to` is a contact of this bot.
    pub bot_id: i64,
    pub to: PhoneNumber,
    pub channel: Channel,
    pub sender: String,
    pub content: OutboundContent,
    /// The provider id of the inbound message this answers, if it does.
    pub reply_to: Option<String>,
    /// The contact, when the caller knows it (a flow's reply): its row is
    /// then left alone, so the reply does not lock it against the
    /// contact's next inbound message.
    pub contact_id: Option<i64>,
}

/// What queuing one outbound message produced.
#[derive(Clone, Debug)]
pub struct SendOutcome {
    pub message_id: i64,
    pub contact_id: i64,
}

pub(crate) const COLUMNS: &str = "id, contact_id, channel, direction, kind, text, media, extra, content, sender, \
     status, provider_message_id, error, created_ms, updated_ms";

fn enum_col<T>(row: &AnyRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let s: String = row.try_get(col)?;
    parse(&s).ok_or_else(|| StoreError::Corrupt(format!("{col}: unknown value {s:?}")))
}

pub(crate) fn from_row(row: &AnyRow) -> Result<Message, StoreError> {
    Ok(Message {
        id: row.try_get("id")?,
        contact_id: row.try_get("contact_id")?,
        channel: enum_col(row, "channel", Channel::parse)?,
        direction: enum_col(row, "direction", Direction::parse)?,
        kind: enum_col(row, "kind", MessageKind::parse)?,
        text: row.try_get("text")?,
        media: json_col(row, "media")?,
        extra: json_col(row, "extra")?,
        content: opt_json_col(row, "content")?,
        sender: row.try_get("sender")?,
        status: enum_col(row, "status", DeliveryStatus::parse)?,
        provider_message_id: row.try_get("provider_message_id")?,
        error: opt_json_col(row, "error")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

impl Store {
    pub async fn message(&self, id: i64) -> Result<Message, StoreError> {
        let row = query(format!("SELECT {COLUMNS} FROM messages WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    /// Newest first; pass the last id of a page as `before_id`.
    pub async fn messages(&self, f: &MessageFilter) -> Result<Vec<Message>, StoreError> {
        let mut filter = Filter::default();
        if let Some(b) = f.bot_id {
            filter.push(
                "contact_id IN (SELECT id FROM contacts WHERE bot_id = {})",
                Bind::I64(b),
            );
        }
        if let Some(c) = f.contact_id {
            filter.push("contact_id = {}", Bind::I64(c));
        }
        if let Some(d) = f.direction {
            filter.push("direction = {}", Bind::Text(d.as_str().into()));
        }
        if let Some(s) = f.status {
            filter.push("status = {}", Bind::Text(s.as_str().into()));
        }
        if let Some(c) = f.channel {
            filter.push("channel = {}", Bind::Text(c.as_str().into()));
        }
        if let Some(t) = f.since_ms {
            filter.push("created_ms >= {}", Bind::I64(t));
        }
        if let Some(t) = f.until_ms {
            filter.push("created_ms < {}", Bind::I64(t));
        }
        if let Some(b) = f.before_id {
            filter.push("id < {}", Bind::I64(b));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM messages{} ORDER BY id DESC LIMIT {}",
            filter.where_sql(),
            f.limit
        );
        let rows = filter.bind_all(query(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Queues outbound messages: each gets its contact (created when new), a
    /// message row with status `queued` and a send job, all in one
    /// transaction. Recipients must be distinct.
    pub async fn enqueue_outbound(
        &self,
        items: &[NewOutbound],
        now_ms: i64,
    ) -> Result<Vec<SendOutcome>, StoreError> {
        crate::retry_conflicts(|| async {
            let mut tx = self.write_tx().await?;
            let queued = enqueue_in(&mut tx, items, now_ms).await?;
            tx.commit().await?;
            Ok(queued)
        })
        .await
    }
}

/// An outbound message row as [`insert_outbound`] writes it: contact,
/// channel, kind, text, media, extra, content and sender.
#[derive(Serialize)]
pub(crate) struct OutboundRow<'a>(
    i64,
    &'a str,
    &'a str,
    Option<String>,
    String,
    String,
    String,
    Option<&'a str>,
);

impl<'a> OutboundRow<'a> {
    pub(crate) fn new(
        contact_id: i64,
        channel: Channel,
        content: &'a OutboundContent,
        sender: Option<&'a str>,
        reply_to: Option<String>,
    ) -> Self {
        let media: Vec<Media> = content
            .media_url()
            .map(|u| {
                vec![Media {
                    url: Some(u.to_string()),
                    ..Default::default()
                }]
            })
            .unwrap_or_default();
        let extra = Extra {
            context_id: reply_to,
            ..Default::default()
        };
        OutboundRow(
            contact_id,
            channel.as_str(),
            content.kind().as_str(),
            content.text(),
            to_json(&media),
            to_json(&extra),
            to_json(content),
            sender,
        )
    }
}

/// Inserts messages in order from a JSON array of rows (`$1`): `columns`
/// names the columns `select` reads from each row; direction `$2`, status
/// `$3`, its rank `$4` and the time `$5` are the same for all. `tail`
/// follows (a conflict clause, `RETURNING`).
pub(crate) fn insert_messages_sql(
    backend: crate::Backend,
    columns: &str,
    select: &str,
    tail: &str,
) -> String {
    format!(
        "INSERT INTO messages ({columns}, direction, status, status_rank, created_ms, updated_ms) \
         SELECT {select}, $2, $3, $4, $5, $5 FROM {} WHERE true ORDER BY j.key{tail}",
        json_rows(backend, 1)
    )
}

/// Inserts outbound messages (`$1`, [`OutboundRow`]s) at a status (`$3`,
/// rank `$4`), in order, in one statement; with `returning`, the rows'
/// `id` and `contact_id`.
pub(crate) fn outbound_sql(backend: crate::Backend, returning: bool) -> String {
    use crate::sql::Col::{Int, Text};
    insert_messages_sql(
        backend,
        "contact_id, channel, kind, text, media, extra, content, sender",
        &crate::sql::columns(0, &[Int, Text, Text, Text, Text, Text, Text, Text]),
        if returning {
            " RETURNING id, contact_id"
        } else {
            ""
        },
    )
}

/// Binds what [`outbound_sql`] asks for, in its order.
pub(crate) fn outbound_values(
    rows: &[OutboundRow<'_>],
    status: DeliveryStatus,
    now_ms: i64,
) -> (String, &'static str, &'static str, i64, i64) {
    (
        to_json(&rows),
        Direction::Outbound.as_str(),
        status.as_str(),
        status.rank(),
        now_ms,
    )
}

/// Inserts queued outbound messages; their `id` and `contact_id`.
async fn insert_queued(
    conn: &mut sqlx::AnyConnection,
    rows: &[OutboundRow<'_>],
    now_ms: i64,
) -> Result<Vec<AnyRow>, StoreError> {
    let sql = outbound_sql(crate::Backend::of(conn), true);
    let (rows, direction, status, rank, now) =
        outbound_values(rows, DeliveryStatus::Queued, now_ms);
    Ok(query(sql)
        .bind(rows)
        .bind(direction)
        .bind(status)
        .bind(rank)
        .bind(now)
        .fetch_all(conn)
        .await?)
}

/// Queues outbound messages within `tx` (see [`Store::enqueue_outbound`]).
pub(crate) async fn enqueue_in(
    tx: &mut crate::writer::WriteTx,
    items: &[NewOutbound],
    now_ms: i64,
) -> Result<Vec<SendOutcome>, StoreError> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in crate::sql::shaped_chunks(items) {
        let unknown: Vec<crate::inbound::ContactKey> = chunk
            .iter()
            .filter(|i| i.contact_id.is_none())
            .map(|i| (i.bot_id, i.to.as_str(), None))
            .collect();
        let mut contact_ids = if unknown.is_empty() {
            std::collections::HashMap::new()
        } else {
            crate::inbound::upsert_contacts(tx, &unknown, now_ms, false).await?
        };
        for i in chunk {
            if let Some(id) = i.contact_id {
                contact_ids.insert((i.bot_id, i.to.as_str().to_string()), id);
            }
        }
        let contact_of =
            |item: &NewOutbound| contact_ids[&(item.bot_id, item.to.as_str().to_string())];
        let rows: Vec<OutboundRow> = chunk
            .iter()
            .map(|item| {
                OutboundRow::new(
                    contact_of(item),
                    item.channel,
                    &item.content,
                    Some(&item.sender),
                    item.reply_to.clone(),
                )
            })
            .collect();
        let rows = insert_queued(tx, &rows, now_ms).await?;
        let mut by_contact = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            by_contact.insert(
                r.try_get::<i64, _>("contact_id")?,
                r.try_get::<i64, _>("id")?,
            );
        }
        let mut ids = Vec::with_capacity(chunk.len());
        for item in chunk {
            let contact_id = contact_of(item);
            let message_id = *by_contact
                .get(&contact_id)
                .ok_or_else(|| StoreError::Corrupt("queued message has no id".into()))?;
            ids.push(message_id);
            out.push(SendOutcome {
                message_id,
                contact_id,
            });
        }
        crate::jobs::insert_jobs(tx, JOB_SEND, &ids, now_ms).await?;
    }
    Ok(out)
}

/// Messages of one day (UTC), direction and status.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageDay {
    /// Days since 1970-01-01.
    pub day: i64,
    pub direction: String,
    pub status: String,
    pub count: i64,
}

impl Store {
    /// The bot's messages per day (UTC) of the days from the one of
    /// `since_ms` to the one before `until_ms`, by direction and status,
    /// days in order.
    pub async fn message_stats(
        &self,
        bot_id: i64,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<MessageDay>, StoreError> {
        // Kept per day by the messages' triggers: whole days only.
        let day = |ms: i64| ms.div_euclid(crate::ai::DAY_MS);
        let rows = sqlx::query(
            "SELECT day, direction, status, CAST(SUM(n) AS BIGINT) AS n FROM message_days \
             WHERE bot_id = $1 AND day >= $2 AND day < $3 \
             GROUP BY day, direction, status HAVING SUM(n) <> 0 ORDER BY day, direction, status",
        )
        .bind(bot_id)
        .bind(day(since_ms))
        .bind(day(until_ms + crate::ai::DAY_MS - 1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MessageDay {
                    day: r.try_get("day")?,
                    direction: r.try_get("direction")?,
                    status: r.try_get("status")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }
}
