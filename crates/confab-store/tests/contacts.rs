//! Contacts as an inbox lists them: who wrote last first, each with the
//! latest message in or out beside them; and the simulator's test
//! contacts, which no audience reaches.
mod common;

use common::{send, store, text};
use confab_store::{ContactCursor, ContactFilter, ContactOrder, DEFAULT_BOT, Store};

fn inbox(after: Option<ContactCursor>, limit: i64) -> ContactFilter {
    ContactFilter {
        bot_id: Some(DEFAULT_BOT),
        order: ContactOrder::Activity,
        after,
        limit,
        ..ContactFilter::default()
    }
}

async fn phones(s: &Store, f: &ContactFilter) -> Vec<String> {
    s.contacts(f)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.phone)
        .collect()
}

#[tokio::test]
async fn contacts_in_activity_order_are_who_wrote_last_with_their_latest_message_and_page_on() {
    let s = store().await;
    for (i, (phone, at)) in [
        ("+14155550001", 1_000),
        ("+14155550002", 1_001),
        ("+14155550003", 1_002),
        ("+14155550001", 1_500),
    ]
    .iter()
    .enumerate()
    {
        s.ingest(&[text(phone, &format!("SM{i}"))], *at)
            .await
            .unwrap();
    }
    // An answer shows as the latest message but does not move its contact:
    // a broadcast would bury those who wrote.
    send(&s, "+14155550002", "Your order is on its way.", 2_000).await;

    let all = s.contacts(&inbox(None, 10)).await.unwrap();
    let order: Vec<&str> = all.iter().map(|c| c.phone.as_str()).collect();
    assert_eq!(order, ["+14155550001", "+14155550003", "+14155550002"]);
    let last = all[2].last_message.as_ref().unwrap();
    assert_eq!(
        (
            last.direction.as_str(),
            last.text.as_deref(),
            last.created_ms
        ),
        ("outbound", Some("Your order is on its way."), 2_000)
    );
    assert_eq!(all[0].last_message.as_ref().unwrap().created_ms, 1_500);

    // Pages go on where the last one ended, in the same order.
    let first = s.contacts(&inbox(None, 2)).await.unwrap();
    let end = first.last().unwrap();
    let after = ContactCursor {
        last_seen_ms: end.last_seen_ms,
        id: end.id,
    };
    assert_eq!(phones(&s, &inbox(Some(after), 2)).await, ["+14155550002"]);

    // Contacts seen at the same moment page by id.
    let tied = s
        .ensure_contact(DEFAULT_BOT, "+14155550008", 3_000)
        .await
        .unwrap();
    let tie = s
        .ensure_contact(DEFAULT_BOT, "+14155550009", 3_000)
        .await
        .unwrap();
    let top = s.contacts(&inbox(None, 1)).await.unwrap();
    assert_eq!(top[0].id, tie);
    assert!(top[0].last_message.is_none());
    let after = ContactCursor {
        last_seen_ms: 3_000,
        id: tie,
    };
    let next = s.contacts(&inbox(Some(after), 1)).await.unwrap();
    assert_eq!(next[0].id, tied);
}

#[tokio::test]
async fn test_contacts_are_marked_and_left_out_of_audiences_and_the_inbox() {
    let s = store().await;
    s.ingest(&[text("+14155550001", "SM0")], 1_000)
        .await
        .unwrap();
    let test = s
        .ensure_test_contact(DEFAULT_BOT, "+15550000001", 2_000)
        .await
        .unwrap();
    assert!(s.contact(test).await.unwrap().test);
    // A contact who has written is a person, whatever a simulation says.
    let real = s
        .ensure_test_contact(DEFAULT_BOT, "+14155550001", 3_000)
        .await
        .unwrap();
    assert!(!s.contact(real).await.unwrap().test);

    let people = ContactFilter {
        test: Some(false),
        ..inbox(None, 10)
    };
    assert_eq!(phones(&s, &people).await, ["+14155550001"]);
    let tests = ContactFilter {
        test: Some(true),
        ..inbox(None, 10)
    };
    assert_eq!(phones(&s, &tests).await, ["+15550000001"]);
    assert_eq!(
        s.audience_page(DEFAULT_BOT, None, 0, 10).await.unwrap(),
        [real]
    );
}

#[tokio::test]
async fn contacts_from_before_test_contacts_are_people_with_their_latest_message() {
    // The migrations before the one that adds `test`.
    let (store, pool, _) = common::migrated_until(22, 23).await;
    let id = old_contact(&pool).await;
    for (text, at) in [("hello", 5), ("later", 6)] {
        old_message(&pool, id, "inbound", text, at).await;
    }
    pool.close().await;

    store.migrate().await.unwrap();
    let c = store.contact(id).await.unwrap();
    assert_eq!(c.last_message.unwrap().text.as_deref(), Some("later"));
    assert!(!c.test);
}

#[tokio::test]
async fn unread_messages_are_counted_as_they_come_and_no_more_once_read() {
    let s = store().await;
    let a = "+14155550001";
    let b = "+14155550002";
    // Two from one contact in one batch, a redelivery of one of them.
    s.ingest(&[text(a, "SM1"), text(a, "SM2"), text(b, "SM3")], 1_000)
        .await
        .unwrap();
    s.ingest(&[text(a, "SM2")], 1_100).await.unwrap();
    // An answer is not unread.
    send(&s, a, "Thanks!", 1_200).await;
    let unread = |s: &Store, phone: &'static str| {
        let s = s.clone();
        async move {
            s.contact_by_phone(DEFAULT_BOT, phone)
                .await
                .unwrap()
                .unwrap()
                .unread_count
        }
    };
    assert_eq!((unread(&s, a).await, unread(&s, b).await), (2, 1));

    let id = s
        .contact_by_phone(DEFAULT_BOT, a)
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(s.mark_read(id, 2_000).await.unwrap().unread_count, 0);
    s.ingest(&[text(a, "SM4")], 3_000).await.unwrap();
    assert_eq!(unread(&s, a).await, 1);
    // Read twice, nothing new between: still none.
    s.mark_read(id, 4_000).await.unwrap();
    assert_eq!(s.mark_read(id, 4_001).await.unwrap().unread_count, 0);
    assert_eq!(unread(&s, b).await, 1);
    // The inbox's list says the same.
    let listed = s.contacts(&inbox(None, 10)).await.unwrap();
    let counts: Vec<(&str, i64)> = listed
        .iter()
        .map(|c| (c.phone.as_str(), c.unread_count))
        .collect();
    assert_eq!(counts, [(a, 0), (b, 1)]);
}

#[tokio::test]
async fn contacts_from_before_the_unread_count_have_theirs_counted() {
    // The migrations before the one that adds `unread_count`.
    let (store, pool, _) = common::migrated_until(25, 26).await;
    let id = old_contact(&pool).await;
    let mut ids = Vec::new();
    for (direction, at) in [
        ("inbound", 5),
        ("inbound", 6),
        ("outbound", 7),
        ("inbound", 8),
    ] {
        ids.push(old_message(&pool, id, direction, "hi", at).await);
    }
    // The first was read.
    sqlx::query("UPDATE contacts SET read_up_to_id = $1 WHERE id = $2")
        .bind(ids[0])
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    store.migrate().await.unwrap();
    assert_eq!(store.contact(id).await.unwrap().unread_count, 2);
    assert_eq!(store.mark_read(id, 9).await.unwrap().unread_count, 0);
}

/// A contact written as the migrations before a test left the table.
async fn old_contact(pool: &sqlx::AnyPool) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO contacts (phone, first_seen_ms, last_seen_ms, created_ms, updated_ms) \
         VALUES ('+14155552671', 5, 6, 5, 6) RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A message of `contact` written as the migrations before a test left it.
async fn old_message(
    pool: &sqlx::AnyPool,
    contact: i64,
    direction: &str,
    text: &str,
    at: i64,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO messages (contact_id, channel, direction, kind, text, status, status_rank, created_ms, updated_ms) \
         VALUES ($1, 'twilio', $2, 'text', $3, 'received', 0, $4, $4) RETURNING id",
    )
    .bind(contact)
    .bind(direction.to_string())
    .bind(text.to_string())
    .bind(at)
    .fetch_one(pool)
    .await
    .unwrap()
}
