//! The inbox's live updates: a server-sent event stream of the bot's
//! changed conversations. For each batch (changes gathered over a moment),
//! one `changed` event with the contacts' ids, and a `contact-{id}` event
//! for each, so an open conversation reloads only when it changed.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{Console, problem};
use crate::app::AppState;
use crate::live::{Moment, Stream};

/// How long a new stream waits for the server's feed to open.
const OPEN_WAIT: Duration = Duration::from_secs(5);
/// The offsets at which streams tell of a moment spread over this long.
const SPREAD_MS: u128 = 1000;
/// How often a stream tells of changes at most: the list alone (the page
/// draws it again on each), and beside an open conversation. What comes
/// meanwhile is told together at the end, never dropped.
const LIST_PACE: Duration = Duration::from_secs(2);
const CONVERSATION_PACE: Duration = Duration::from_millis(500);
/// A comment this often keeps the stream from looking idle.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Which conversation's own events a stream carries: `contact` (the one
/// open beside the list; 0 for none), or every changed one when absent.
#[derive(serde::Deserialize)]
pub struct Watching {
    contact: Option<i64>,
}

pub async fn events(
    State(state): State<AppState>,
    console: Console,
    Query(watching): Query<Watching>,
) -> Response {
    // A stream opened while the server's feed is not (it is starting, or
    // the database is away) would miss changes without saying so.
    if !state.live.opened(OPEN_WAIT).await {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Live updates are not available",
            "This server cannot hear of new messages just now. Reload the page to see what is new.",
        );
    }
    let Some(stream) = state.live.stream() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many open consoles",
            "This server has as many live consoles open as it serves. Reload the page to see what is new.",
        );
    };
    let bot = console.bot.id;
    let only = watching.contact;
    // Each stream tells of a moment at its own offset within a second:
    // the open consoles, all told at once, would all reload at once, a
    // burst the webhooks wait behind.
    let offset = Duration::from_millis((uuid::Uuid::new_v4().as_u128() % SPREAD_MS) as u64);
    let pace = match only {
        Some(0) => LIST_PACE,
        _ => CONVERSATION_PACE,
    };
    let batches = futures::stream::unfold((stream, None), move |(mut s, told)| async move {
        let mut batch = batch(&mut s, bot).await?;
        let at = tokio::time::Instant::now() + offset;
        tokio::time::sleep_until(told.map_or(at, |t: tokio::time::Instant| at.max(t + pace))).await;
        more(&mut s, bot, &mut batch);
        Some((
            events_of(batch, bot, only),
            (s, Some(tokio::time::Instant::now())),
        ))
    })
    .flat_map(futures::stream::iter);
    Sse::new(batches)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// The moments with changes of the bot's since the stream last told of
/// some, and whether some were missed (the stream fell behind: anything
/// may have changed).
struct Batch {
    moments: Vec<Moment>,
    missed: bool,
}

/// The contacts a `changed` event lists at most; past it, it says `*`.
const LISTED: usize = 100;

/// The next moment with changes of the bot's (the server gathers them);
/// none when the stream is to end.
async fn batch(s: &mut Stream, bot: i64) -> Option<Batch> {
    loop {
        tokio::select! {
            r = s.changes.recv() => match r {
                Ok(moment) if !moment.is_unknown() => {
                    if !moment.of(bot).is_empty() {
                        return Some(Batch { moments: vec![moment], missed: false });
                    }
                }
                Err(RecvError::Closed) => return None,
                // The feed or this stream fell behind.
                _ => return Some(Batch { moments: Vec::new(), missed: true }),
            },
            _ = s.closing.wait_for(|c| *c) => return None,
        }
    }
}

/// Adds to `b` the bot's changes of the moments that came while it waited.
fn more(s: &mut Stream, bot: i64, b: &mut Batch) {
    loop {
        match s.changes.try_recv() {
            Ok(moment) if moment.is_unknown() => b.missed = true,
            Ok(moment) if !moment.of(bot).is_empty() => b.moments.push(moment),
            Ok(_) => {}
            Err(TryRecvError::Lagged(_)) => b.missed = true,
            Err(_) => return,
        }
    }
}

/// A batch as events: `contact-{id}` for each changed contact (only the
/// watched one, when one is), then `changed` with their ids (`*` when
/// more than `LISTED` changed, or some were missed, with a `missed` event
/// first: an open conversation reloads too).
fn events_of(b: Batch, bot: i64, only: Option<i64>) -> Vec<Result<Event, Infallible>> {
    let contact = |id: i64| {
        Ok(Event::default()
            .event(format!("contact-{id}"))
            .data(id.to_string()))
    };
    let changed = || b.moments.iter().flat_map(|m| m.of(bot).iter().copied());
    let mut out: Vec<Result<Event, Infallible>> = match only {
        // One look in each moment's set, however many changed.
        Some(watched) => b
            .moments
            .iter()
            .any(|m| m.of(bot).contains(&watched))
            .then(|| contact(watched))
            .into_iter()
            .collect(),
        None => changed()
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .map(contact)
            .collect(),
    };
    let listed: usize = b.moments.iter().map(|m| m.of(bot).len()).sum();
    let all = if b.missed {
        out.push(Ok(Event::default().event("missed").data("*")));
        "*".to_string()
    } else if listed > LISTED {
        "*".to_string()
    } else {
        let ids: Vec<String> = changed()
            .collect::<BTreeSet<i64>>()
            .iter()
            .map(i64::to_string)
            .collect();
        ids.join(",")
    };
    out.push(Ok(Event::default().event("changed").data(all)));
    out
}
