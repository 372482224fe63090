//! Contacts belong to bots: the same number writing to two bots is two
//! contacts, and the contacts there were before bots are the default bot's.
mod common;

use confab_store::{BotWrite, Change, DEFAULT_BOT, Store};

async fn bot(store: &Store, slug: &str) -> i64 {
    let write = BotWrite {
        slug: slug.into(),
        name: slug.into(),
        default_flow: None,
        policy: serde_json::json!({}),
        ai: serde_json::json!({}),
        channels: vec![],
    };
    store
        .create_bot(&write, |_| vec![], &Change::by("test", 0))
        .await
        .unwrap()
        .id
}

fn to_bot(mut m: confab_model::InboundMessage, bot_id: i64) -> confab_model::InboundMessage {
    m.bot_id = bot_id;
    m
}

#[tokio::test]
async fn one_number_writing_to_two_bots_is_two_contacts() {
    let store = common::store().await;
    let shop = bot(&store, "shop").await;
    let batch = [
        common::text("+14155552671", "SM1"),
        to_bot(common::text("+14155552671", "SM2"), shop),
        to_bot(common::text("+14155552671", "SM3"), shop),
    ];
    let stored = store.ingest(&batch, 1_000).await.unwrap();
    assert_ne!(stored[0].contact_id, stored[1].contact_id);
    assert_eq!(stored[1].contact_id, stored[2].contact_id);
    let default = store
        .contact_by_phone(DEFAULT_BOT, "+14155552671")
        .await
        .unwrap()
        .unwrap();
    let of_shop = store
        .contact_by_phone(shop, "+14155552671")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (default.id, default.bot_id, of_shop.id, of_shop.bot_id),
        (
            stored[0].contact_id,
            DEFAULT_BOT,
            stored[1].contact_id,
            shop
        )
    );
    assert_eq!(
        store
            .ensure_contact(shop, "+14155552671", 2_000)
            .await
            .unwrap(),
        of_shop.id
    );
    let other = store
        .ensure_contact(shop, "+14155552672", 2_000)
        .await
        .unwrap();
    let found = store
        .contacts_by_phones(shop, &["+14155552671", "+14155552672"])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found["+14155552672"].id, other);
    assert!(
        store
            .contacts_by_phones(DEFAULT_BOT, &["+14155552672"])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn contacts_from_before_bots_are_the_default_bots_with_their_history() {
    // Every migration before contacts belonged to bots.
    let (store, pool, raw_url) = common::migrated_until(12, 13).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO contacts (phone, profile_name, first_seen_ms, last_seen_ms, created_ms, updated_ms, tags) \
         VALUES ('+14155552671', 'Ana', 5, 6, 5, 6, '[\"vip\"]') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (contact_id, channel, direction, kind, text, status, status_rank, created_ms, updated_ms) \
         VALUES ($1, 'twilio', 'inbound', 'text', 'hello', 'received', 0, 5, 5)",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    store.migrate().await.unwrap();
    let c = store.contact(id).await.unwrap();
    assert_eq!(
        (
            c.bot_id,
            c.phone.as_str(),
            c.profile_name.as_deref(),
            c.tags.clone()
        ),
        (
            DEFAULT_BOT,
            "+14155552671",
            Some("Ana"),
            vec!["vip".to_string()]
        )
    );
    let history = store
        .messages(&confab_store::MessageFilter {
            contact_id: Some(id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(history[0].text.as_deref(), Some("hello"));
    // References to contacts still hold.
    let orphan = sqlx::query(
        "INSERT INTO messages (contact_id, channel, direction, kind, status, status_rank, created_ms, updated_ms) \
         VALUES (424242, 'twilio', 'inbound', 'text', 'received', 0, 5, 5)",
    )
    .execute(&sqlx::AnyPool::connect(&raw_url).await.unwrap())
    .await;
    assert!(orphan.is_err(), "a message of no contact is refused");
    // The same number for another bot is another contact.
    let shop = bot(&store, "shop").await;
    assert_ne!(
        store
            .ensure_contact(shop, "+14155552671", 10)
            .await
            .unwrap(),
        id
    );
}

#[tokio::test]
async fn a_forced_delete_names_the_media_files_it_leaves_behind() {
    let store = common::store().await;
    let shop = bot(&store, "shop").await;
    let stored = store
        .ingest(&[to_bot(common::text("+14155552671", "SM1"), shop)], 1_000)
        .await
        .unwrap();
    let media = confab_store::NewMedia {
        message_id: stored[0].message_id,
        position: 0,
        content_type: "image/jpeg".into(),
        size: 3,
        sha256: "abc".into(),
        bytes: None,
        path: Some("/tmp/confab-media/shop-1-0".into()),
    };
    store.save_media(&media, 1_000).await.unwrap();
    let by = Change::by("test", 2_000);
    assert!(store.delete_bot(shop, false, &by).await.is_err());
    let (_, removed, files) = store.delete_bot(shop, true, &by).await.unwrap();
    assert_eq!(removed.messages, 1);
    assert_eq!(files, vec!["/tmp/confab-media/shop-1-0".to_string()]);
}
