//! The live feed: each new message and each status change of one is heard,
//! once committed, by whoever reads the feed (on PostgreSQL, every server).
mod common;
use std::time::Duration;

use common::{send, store, store_at, text};
use confab_model::ProviderError;
use confab_store::DEFAULT_BOT;
use confab_store::live::{Changed, Feed, Heard};

async fn next(feed: &mut Feed) -> Vec<Changed> {
    let heard = tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .expect("a change within 5 s")
        .unwrap();
    match heard {
        Heard::Changes(c) => c,
        Heard::Gap => panic!("a gap, not a change"),
    }
}

/// On PostgreSQL a feed listens on a connection of its own. When that
/// connection is cut (a restart of the database, a network cut), the feed
/// says what it may have missed, then listens again.
#[tokio::test]
async fn a_feed_whose_connection_is_cut_says_so_and_hears_again() {
    let (s, url) = store_at().await;
    if !url.starts_with("postgres") {
        return;
    }
    let mut feed = s.live_feed().await.unwrap();
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(cut, [true]);
    let heard = tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .expect("told within 5 s");
    // Told as a gap, or as the error the server then reopens the feed on.
    assert!(matches!(heard, Ok(Heard::Gap) | Err(_)), "{heard:?}");
    if heard.is_err() {
        feed = s.live_feed().await.unwrap();
    }
    // The next call listens again (given a moment to), then hears the
    // change after the cut.
    let again = feed.next();
    tokio::pin!(again);
    tokio::select! {
        r = &mut again => panic!("heard before any change: {r:?}"),
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    let stored = s
        .ingest(&[text("+14155550009", "SM9")], 2_000)
        .await
        .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(5), again)
        .await
        .expect("heard within 5 s")
        .unwrap();
    let Heard::Changes(again) = again else {
        panic!("{again:?}");
    };
    assert_eq!(again[0].contact_id, stored[0].contact_id);
}

#[tokio::test]
async fn new_messages_and_status_changes_are_heard_and_nothing_before_the_feed_began() {
    let s = store().await;
    s.ingest(&[text("+14155550001", "SM0")], 1_000)
        .await
        .unwrap();
    let mut feed = s.live_feed().await.unwrap();
    let stored = s
        .ingest(&[text("+14155550002", "SM1")], 2_000)
        .await
        .unwrap();
    let contact = stored[0].contact_id;
    assert_eq!(
        next(&mut feed).await,
        vec![Changed {
            bot_id: DEFAULT_BOT,
            contact_id: contact
        }]
    );
    send(&s, "+14155550002", "x", 3_000).await;
    assert_eq!(next(&mut feed).await[0].contact_id, contact);
    let job = s.claim_sends(4_000, 9_000, 10).await.unwrap().remove(0);
    let error = ProviderError {
        code: Some("21211".into()),
        message: "invalid number".into(),
    };
    assert!(
        s.send_failed(job.job_id, job.lease, job.message.id, &error, 5_000)
            .await
            .unwrap()
    );
    assert_eq!(next(&mut feed).await[0].contact_id, contact);
    // Nothing else was heard.
    assert!(
        tokio::time::timeout(Duration::from_millis(600), feed.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn messages_per_day_are_counted_as_written_and_move_with_their_status() {
    let s = store().await;
    let day: i64 = 86_400_000;
    s.ingest(&[text("+14155550002", "SM1")], 2 * day + 5)
        .await
        .unwrap();
    send(&s, "+14155550002", "x", 3 * day + 1).await;
    let counts = |rows: Vec<confab_store::MessageDay>| -> Vec<(i64, String, String, i64)> {
        rows.into_iter()
            .map(|r| (r.day, r.direction, r.status, r.count))
            .collect()
    };
    let got = counts(s.message_stats(DEFAULT_BOT, 0, 10 * day).await.unwrap());
    assert_eq!(
        got,
        [
            (2, "inbound".into(), "received".into(), 1),
            (3, "outbound".into(), "queued".into(), 1)
        ]
    );
    let job = s
        .claim_sends(4 * day, 4 * day + 9_000, 10)
        .await
        .unwrap()
        .remove(0);
    let error = ProviderError {
        code: Some("21211".into()),
        message: "invalid number".into(),
    };
    s.send_failed(job.job_id, job.lease, job.message.id, &error, 4 * day + 1)
        .await
        .unwrap();
    // The message moved from queued to failed on the day it was made.
    let got = counts(
        s.message_stats(DEFAULT_BOT, 3 * day, 4 * day)
            .await
            .unwrap(),
    );
    assert_eq!(got, [(3, "outbound".into(), "failed".into(), 1)]);
}
