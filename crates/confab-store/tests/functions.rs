//! PostgreSQL runs a batch's closing writes as one function call.

mod common;

use confab_store::{Backend, Closing, NewRun, Store};
use sqlx::Connection;

/// Receives one message and closes the batch with a run begun and an
/// event: a closing script of several statements.
async fn batch(s: &Store, id: &str, now: i64) -> Result<i64, confab_store::StoreError> {
    let (mut tx, arrival) = s
        .receive(&[common::text("+14155552671", id)], now, "none")
        .await?;
    let contact_id = arrival.stored[0].contact_id;
    let run = tx.next_run_id().await?;
    let closing = Closing {
        new_runs: vec![(
            run,
            NewRun {
                contact_id,
                flow_id: "f".into(),
                flow_version: 1,
                status: "waiting_input".into(),
                node: Some(id.into()),
                state: "{}".into(),
            },
        )],
        events: vec![(run, "[]".into())],
        ..Default::default()
    };
    tx.commit_with(&closing, now).await?;
    Ok(run)
}

async fn functions(url: &str) -> i64 {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM pg_proc WHERE proname LIKE 'confab_script_%'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    n
}

#[tokio::test]
async fn closing_writes_go_as_a_function_made_again_when_dropped() {
    let (s, url) = common::store_at().await;
    if s.backend() != Backend::Postgres {
        return;
    }
    let first = batch(&s, "SM1", 1).await.unwrap();
    assert_eq!(
        functions(&url).await,
        1,
        "the closing script became a function"
    );
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.run(first).await.unwrap().node.as_deref(), Some("SM1"));
    tx.commit().await.unwrap();

    // The same shape again: the same function, no other made.
    batch(&s, "SM2", 2).await.unwrap();
    assert_eq!(functions(&url).await, 1);

    // Dropped behind the store's back: the batch that finds it gone fails
    // and keeps nothing; the next makes it again.
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let (name,): (String,) =
        sqlx::query_as("SELECT proname::text FROM pg_proc WHERE proname LIKE 'confab_script_%'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP FUNCTION {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(batch(&s, "SM3", 3).await.is_err());
    let (stored,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM messages WHERE provider_message_id = 'SM3'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(stored, 0, "the failed batch kept nothing");
    let again = batch(&s, "SM3", 4).await.unwrap();
    assert_eq!(functions(&url).await, 1);
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.run(again).await.unwrap().node.as_deref(), Some("SM3"));
    tx.commit().await.unwrap();
}
