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
