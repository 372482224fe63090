mod common;

/// The default bot, whose records these are.
const D: i64 = confab_store::DEFAULT_BOT;

use common::store;
use confab_store::{Store, StoreError};
use serde_json::{Map, Value, json};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn records_are_found_by_field_alike_on_both_backends() {
    let s = store().await;
    let mut tx = s.begin().await.unwrap();
    for (n, status, progress, urgent) in [
        ("ORD-1", "In Progress", 75, true),
        ("ORD-2", "ON HOLD", 10, false),
        ("ORD-3", "In Progress", 75, false),
    ] {
        tx.insert_record(D, "orders", None, &obj(json!({"order_number": n, "status": status, "progress": progress, "urgent": urgent})), 1_000).await.unwrap();
    }
    tx.insert_record(
        D,
        "tickets",
        None,
        &obj(json!({"order_number": "ORD-1"})),
        1_000,
    )
    .await
    .unwrap();
    let find = |fields: Vec<(&str, Value)>| confab_store::RecordFilter {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        limit: 10,
        bot_id: D,
        ..Default::default()
    };
    let ids = |rs: Vec<confab_store::Record>| {
        rs.into_iter()
            .map(|r| r.data["order_number"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(tx
            .find_records("orders", &find(vec![("order_number", json!("ORD-2"))]))
            .await
            .unwrap()),
        [json!("ORD-2")]
    );
    assert_eq!(
        ids(tx
            .find_records("orders", &find(vec![("progress", json!(75))]))
            .await
            .unwrap()),
        [json!("ORD-3"), json!("ORD-1")]
    );
    assert_eq!(
        ids(tx
            .find_records("orders", &find(vec![("urgent", json!(true))]))
            .await
            .unwrap()),
        [json!("ORD-1")]
    );
    assert_eq!(
        ids(tx
            .find_records(
                "orders",
                &find(vec![
                    ("status", json!("In Progress")),
                    ("urgent", json!(false))
                ])
            )
            .await
            .unwrap()),
        [json!("ORD-3")]
    );
    assert_eq!(
        tx.find_records("orders", &find(vec![("missing_field", Value::Null)]))
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        tx.find_records("orders", &find(vec![("bad name'", json!(1))]))
            .await
            .is_err()
    );
    let changed = tx
        .update_record(
            D,
            "orders",
            2,
            &obj(json!({"status": "Done", "progress": null})),
            2_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        changed.data,
        obj(json!({"order_number": "ORD-2", "status": "Done", "urgent": false}))
    );
    assert!(
        tx.update_record(D, "tickets", 2, &obj(json!({"x": 1})), 2_000)
            .await
            .unwrap()
            .is_none(),
        "the id is of another collection"
    );
    tx.commit().await.unwrap();
    assert_eq!(s.record(D, "orders", 2).await.unwrap().updated_ms, 2_000);
}

#[tokio::test]
async fn flow_versions_change_only_with_the_definition() {
    let s = store().await;
    let w = |bot_id, id, hash, definition| confab_store::FlowWrite {
        bot_id,
        id,
        definition,
        hash,
    };
    assert_eq!(
        s.publish_flow(&w(D, "f", "h1", "{\"a\":1}"), 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.publish_flow(&w(D, "f", "h1", "{\"a\":1}"), 2)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.publish_flow(&w(D, "f", "h2", "{\"a\":2}"), 3)
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.publish_flow(&w(D, "g", "h2", "{}"), 3).await.unwrap(), 1);
    assert_eq!(
        s.flow_definition(D, "f", 1).await.unwrap().as_deref(),
        Some("{\"a\":1}")
    );
    assert_eq!(s.flow_definition(D, "f", 3).await.unwrap(), None);
}

#[tokio::test]
async fn api_flows_are_numbered_per_bot_rolled_back_and_deleted_with_their_versions() {
    let s = store().await;
    let by = confab_store::Change::by("test", 10);
    let w = |id, definition| confab_store::FlowWrite {
        bot_id: D,
        id,
        definition,
        hash: "",
    };
    assert_eq!(
        s.save_flow(&w("f", "{\"v\":1}"), true, &by).await.unwrap(),
        (1, true)
    );
    assert!(matches!(
        s.save_flow(&w("f", "{\"v\":1}"), true, &by).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.save_flow(&w("g", "{}"), false, &by).await,
        Err(StoreError::NotFound)
    ));
    // The same definition again is no new version.
    assert_eq!(
        s.save_flow(&w("f", "{\"v\":1}"), false, &by).await.unwrap(),
        (1, false)
    );
    assert_eq!(
        s.save_flow(&w("f", "{\"v\":2}"), false, &by).await.unwrap(),
        (2, true)
    );
    let versions: Vec<i64> = s
        .flow_versions(D, "f")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, vec![2, 1]);
    s.publish_flow_version(D, "f", 1, &by).await.unwrap();
    let live = s.api_flow(D, "f").await.unwrap().unwrap();
    assert_eq!((live.version, live.definition.as_str()), (1, "{\"v\":1}"));
    assert!(matches!(
        s.publish_flow_version(D, "f", 7, &by).await,
        Err(StoreError::NotFound)
    ));
    // After a roll back, the next version still follows the latest.
    assert_eq!(
        s.save_flow(&w("f", "{\"v\":3}"), false, &by).await.unwrap(),
        (3, true)
    );
    assert_eq!(s.api_flows().await.unwrap().len(), 1);
    let actions: Vec<String> = s
        .audit_log(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        vec!["flow.update", "flow.publish", "flow.update", "flow.create"]
    );
    s.delete_flow(D, "f", &by).await.unwrap();
    assert!(s.api_flow(D, "f").await.unwrap().is_none());
    assert!(s.flow_versions(D, "f").await.unwrap().is_empty());
    // A flow made again begins at version 1.
    assert_eq!(
        s.save_flow(&w("f", "{}"), true, &by).await.unwrap(),
        (1, true)
    );
}

#[tokio::test]
async fn the_current_run_is_a_contacts_latest() {
    let s = store().await;
    let mut tx = s.begin().await.unwrap();
    let msg = common::text;
    let stored = tx
        .ingest(&[msg("+14155552671", "SM1"), msg("+14155552672", "SM2")], 1)
        .await
        .unwrap();
    let (a, b) = (stored[0].contact_id, stored[1].contact_id);
    tx.lock_contacts(&[b, a]).await.unwrap();
    let run = |status: &str, node: Option<&str>| confab_store::NewRun {
        contact_id: a,
        flow_id: "f".into(),
        flow_version: 1,
        status: status.into(),
        node: node.map(str::to_string),
        state: "{}".into(),
    };
    let r1 = tx.insert_run(&run("completed", None), 1).await.unwrap();
    let r2 = tx
        .insert_run(&run("waiting_input", Some("q")), 2)
        .await
        .unwrap();
    tx.update_run(r2, "waiting_input", Some("q2"), "{\"x\":1}", 3)
        .await
        .unwrap();
    tx.insert_events(
        &[(r1, "{\"type\":\"entered\"}".into()), (r2, "{}".into())],
        3,
    )
    .await
    .unwrap();
    let current = tx.current_runs(&[a, b]).await.unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(current[&a].id, r2);
    assert_eq!(current[&a].node.as_deref(), Some("q2"));
    tx.commit().await.unwrap();
    assert_eq!(s.run_events(r1, 10).await.unwrap().len(), 1);
    let stats = s.flow_stats(D, "f").await.unwrap();
    assert_eq!(stats.by_status["completed"], 1);
    assert_eq!(stats.by_status["waiting_input"], 1);
}

#[tokio::test]
async fn runs_begun_together_get_their_ids_at_once_and_are_written_at_commit() {
    let s = store().await;
    let mut tx = s.begin().await.unwrap();
    let msg = common::text;
    let stored = tx
        .ingest(&[msg("+14155552671", "SM1"), msg("+14155552672", "SM2")], 1)
        .await
        .unwrap();
    let (a, b) = (stored[0].contact_id, stored[1].contact_id);
    let run = |contact_id: i64, node: &str| confab_store::NewRun {
        contact_id,
        flow_id: "f".into(),
        flow_version: 1,
        status: "waiting_input".into(),
        node: Some(node.into()),
        state: format!("{{\"node\":\"{node}\"}}"),
    };
    // Contact a begins three runs in one batch (restarts), b one.
    let runs = [run(a, "a1"), run(b, "b1"), run(a, "a2"), run(a, "a3")];
    let mut begun = Vec::new();
    for r in &runs {
        begun.push((tx.next_run_id().await.unwrap(), r.clone()));
    }
    let ids: Vec<i64> = begun.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let closing = confab_store::Closing {
        new_runs: begun,
        ..Default::default()
    };
    tx.commit_with(&closing, 5).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    for (id, r) in ids.iter().zip(&runs) {
        let stored = tx.run(*id).await.unwrap();
        assert_eq!(
            (stored.contact_id, stored.node.clone(), stored.created_ms),
            (r.contact_id, r.node.clone(), 5)
        );
    }
    let current = tx.current_runs(&[a, b]).await.unwrap();
    assert_eq!(
        current[&a].node.as_deref(),
        Some("a3"),
        "the last begun is the current one"
    );
    assert_eq!(current[&b].id, ids[1]);
    // Ids go on from there in a later transaction.
    let next = tx.next_run_id().await.unwrap();
    assert!(next > ids[3], "{next} after {ids:?}");
}

#[tokio::test]
async fn replicas_publishing_the_same_flow_at_once_agree_on_one_version() {
    let s = store().await;
    let w = |hash, definition| confab_store::FlowWrite {
        bot_id: D,
        id: "f",
        definition,
        hash,
    };
    let publish = |s: Store| async move { s.publish_flow(&w("h1", "{}"), 1).await };
    let (a, b, c) = tokio::join!(publish(s.clone()), publish(s.clone()), publish(s.clone()));
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (1, 1, 1));
    assert_eq!(s.publish_flow(&w("h2", "{\"x\":1}"), 2).await.unwrap(), 2);
}

#[tokio::test]
async fn records_saved_in_a_transaction_get_their_ids_at_once_and_are_written_at_commit() {
    let s = store().await;
    let before = s
        .insert_record(D, "orders", None, &obj(json!({"n": 0})), 1_000)
        .await
        .unwrap();
    let mut tx = s.begin().await.unwrap();
    let a = tx
        .insert_record(D, "orders", None, &obj(json!({"n": 1})), 2_000)
        .await
        .unwrap();
    let b = tx
        .insert_record(D, "tickets", None, &obj(json!({"n": 2})), 2_000)
        .await
        .unwrap();
    assert!(before.id < a.id && a.id < b.id, "{before:?} {a:?} {b:?}");
    // Not written yet: other connections see nothing of them.
    assert!(matches!(
        s.record(D, "orders", a.id).await,
        Err(confab_store::StoreError::NotFound)
    ));
    tx.commit().await.unwrap();
    assert_eq!(s.record(D, "orders", a.id).await.unwrap(), a);
    assert_eq!(s.record(D, "tickets", b.id).await.unwrap(), b);
    // Ids given ahead (PostgreSQL takes a block) never collide with later ones.
    let after = s
        .insert_record(D, "orders", None, &obj(json!({"n": 3})), 3_000)
        .await
        .unwrap();
    assert!(after.id > b.id);
}

#[tokio::test]
async fn a_transaction_dropped_uncommitted_keeps_nothing_and_the_next_write_goes_ahead() {
    let s = store().await;
    {
        let mut tx = s.begin().await.unwrap();
        let r = tx
            .insert_record(D, "orders", None, &obj(json!({"n": 1})), 1_000)
            .await
            .unwrap();
        // Reading records writes the staged ones inside the transaction.
        let found = tx.find_records("orders", &first_ten()).await.unwrap();
        assert_eq!(found, [r]);
    }
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.insert_record(D, "orders", None, &obj(json!({"n": 2})), 2_000),
    )
    .await
    .expect("the write lock was given back")
    .unwrap();
    let all = s.records("orders", &first_ten()).await.unwrap();
    assert_eq!(all, [next]);
}

fn first_ten() -> confab_store::RecordFilter {
    confab_store::RecordFilter {
        limit: 10,
        bot_id: D,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_received_batch_comes_with_its_contacts_their_latest_runs_and_the_setting() {
    let s = store().await;
    s.put_setting("allow", "+14155552671").await.unwrap();
    let msg = |from: &str, id: &str, name: Option<&str>| confab_model::InboundMessage {
        bot_id: confab_model::DEFAULT_BOT,
        profile_name: name.map(str::to_string),
        ..common::text(from, id)
    };
    let (mut tx, first) = s
        .receive(&[msg("+14155552671", "SM1", Some("Ana"))], 1, "allow")
        .await
        .unwrap();
    let a = first.stored[0].contact_id;
    assert!(first.runs.is_empty());
    assert_eq!(first.contacts[&a].phone, "+14155552671");
    assert_eq!(first.setting.as_deref(), Some("+14155552671"));
    let run = tx.next_run_id().await.unwrap();
    let closing = confab_store::Closing {
        new_runs: vec![(
            run,
            confab_store::NewRun {
                contact_id: a,
                flow_id: "f".into(),
                flow_version: 1,
                status: "waiting_input".into(),
                node: Some("q".into()),
                state: "{}".into(),
            },
        )],
        ..Default::default()
    };
    tx.commit_with(&closing, 1).await.unwrap();

    // A redelivery, a second message of the same contact, a new contact.
    let batch = [
        msg("+14155552671", "SM1", Some("Ana")),
        msg("+14155552671", "SM2", Some("Ana B")),
        msg("+14155552672", "SM3", None),
    ];
    let (tx, second) = s.receive(&batch, 2, "allow").await.unwrap();
    let dup: Vec<bool> = second.stored.iter().map(|x| x.duplicate).collect();
    assert_eq!(dup, [true, false, false]);
    assert_eq!(second.stored[0].message_id, first.stored[0].message_id);
    assert_eq!(second.stored[1].contact_id, a);
    let b = second.stored[2].contact_id;
    assert_ne!(a, b);
    assert_eq!(second.runs[&a].id, run);
    assert_eq!(second.runs[&a].node.as_deref(), Some("q"));
    assert!(!second.runs.contains_key(&b));
    assert_eq!(second.contacts[&b].phone, "+14155552672");
    assert_eq!(second.setting.as_deref(), Some("+14155552671"));
    tx.commit().await.unwrap();
    // The profile name is refreshed with the commit.
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        tx.contact_states(&[a]).await.unwrap()[&a].name.as_deref(),
        Some("Ana B")
    );
}

/// One step at a time per contact: a batch does not read a contact that
/// another transaction holds (a flow started through the API, a run moved
/// on by a timer) until that transaction has committed. On PostgreSQL the
/// batch's arrival and `lock_contacts` must take the same locks; on SQLite
/// the one writer waits its turn.
#[tokio::test]
async fn a_batch_reads_a_contact_held_elsewhere_only_once_it_is_committed() {
    let s = store().await;
    let (tx, first) = s
        .receive(&[common::text("+14155552671", "SM1")], 1, "k")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let a = first.stored[0].contact_id;
    assert!(!first.contacts[&a].opted_out);

    let mut holder = s.begin().await.unwrap();
    holder.lock_contacts(&[a]).await.unwrap();
    let batch = {
        let s = s.clone();
        tokio::spawn(async move {
            let (tx, arrival) = s
                .receive(&[common::text("+14155552671", "SM2")], 2, "k")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            arrival
        })
    };
    // Time for the batch to read the contact, were it not held back.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    holder.set_opted_out(a, true, 2).await.unwrap();
    holder.commit().await.unwrap();
    let second = batch.await.unwrap();
    assert!(
        second.contacts[&a].opted_out,
        "the batch read the contact before it was committed"
    );
}

#[tokio::test]
async fn runs_from_before_run_days_belong_to_their_bot_and_are_counted_per_day() {
    // The migrations before the one that gives runs their bot.
    let (store, pool, _) = common::migrated_until(24, 25).await;
    let contact: i64 = sqlx::query_scalar(
        "INSERT INTO contacts (phone, first_seen_ms, last_seen_ms, created_ms, updated_ms) \
         VALUES ('+14155552671', 5, 6, 5, 6) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    const DAY: i64 = 86_400_000;
    for (status, at) in [
        ("completed", DAY + 1),
        ("expired", DAY + 2),
        ("completed", 3 * DAY),
    ] {
        sqlx::query(
            "INSERT INTO runs (contact_id, flow_id, flow_version, status, node, state, created_ms, updated_ms) \
             VALUES ($1, 'survey', 1, $2, 'ask', '{}', $3, $3 + 1000)",
        )
        .bind(contact)
        .bind(status)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    store.migrate().await.unwrap();

    let bot = confab_store::DEFAULT_BOT;
    let runs = store
        .runs(&confab_store::RunFilter {
            bot_id: Some(bot),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 3);
    let stats = store.flow_stats(bot, "survey").await.unwrap();
    assert_eq!(stats.by_status.get("completed"), Some(&2));
    assert_eq!(stats.dropped_at.get("ask"), Some(&1), "the expired one");
    let days = store.run_days(bot, DAY, 2 * DAY).await.unwrap();
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0].day, 1);
    assert_eq!(days[0].by_status.get("expired"), Some(&1));
    assert_eq!(days[0].completed_ms, [(1000, 1)]);
}
