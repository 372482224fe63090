use confab_store::Store;

#[allow(dead_code)]
pub async fn store() -> Store {
    store_at().await.0
}

/// A store of its own, and the URL of its database.
#[allow(dead_code)]
pub async fn store_at() -> (Store, String) {
    let url = fresh_url().await;
    let s = Store::connect(&url).await.unwrap();
    s.migrate().await.unwrap();
    (s, url)
}

/// The URL of a new, empty database.
#[allow(dead_code)]
pub async fn fresh_url() -> String {
    match std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    {
        Some(admin) => {
            let s = Store::connect(&admin).await.unwrap();
            let name = s.create_test_database().await.unwrap();
            s.close().await;
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
        None => {
            let dir = std::env::temp_dir().join("confab-tests");
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}/{}.db", dir.display(), uuid::Uuid::new_v4())
        }
    }
}

/// A text message, "hi", from `from` with the provider id `id`.
#[allow(dead_code)]
pub fn text(from: &str, id: &str) -> confab_model::InboundMessage {
    confab_model::InboundMessage {
        bot_id: confab_model::DEFAULT_BOT,
        channel: confab_model::Channel::Twilio,
        provider_message_id: id.into(),
        from: confab_model::PhoneNumber::parse(from).unwrap(),
        to: None,
        profile_name: None,
        kind: confab_model::MessageKind::Text,
        text: Some("hi".into()),
        media: vec![],
        extra: Default::default(),
    }
}

/// A store migrated up to the migration before the one a test is about
/// (`sqlite`/`postgres`: how many come before it on each backend), and a
/// pool of its own to write rows as they were before it.
#[allow(dead_code)]
pub async fn migrated_until(sqlite: i64, postgres: i64) -> (Store, sqlx::AnyPool, String) {
    let url = fresh_url().await;
    let store = Store::connect(&url).await.unwrap();
    let before = match store.backend() {
        confab_store::Backend::Sqlite => sqlite,
        confab_store::Backend::Postgres => postgres,
    };
    store.migrate_until(before).await.unwrap();
    sqlx::any::install_default_drivers();
    let raw_url = match url.strip_prefix("sqlite://") {
        Some(path) => format!("sqlite://{path}?mode=rwc"),
        None => url.clone(),
    };
    let pool = sqlx::AnyPool::connect(&raw_url).await.unwrap();
    (store, pool, raw_url)
}

/// Queues a text to `to` from the default bot over Twilio.
#[allow(dead_code)]
pub async fn send(s: &Store, to: &str, body: &str, now_ms: i64) {
    s.enqueue_outbound(
        &[confab_store::NewOutbound {
            bot_id: confab_model::DEFAULT_BOT,
            to: confab_model::PhoneNumber::parse(to).unwrap(),
            channel: confab_model::Channel::Twilio,
            sender: "+14155238886".into(),
            content: confab_model::OutboundContent::Text { body: body.into() },
            reply_to: None,
            contact_id: None,
        }],
        now_ms,
    )
    .await
    .unwrap();
}
