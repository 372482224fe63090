mod common;

use confab_model::Role;
use confab_store::{Backend, Store};

#[tokio::test]
async fn the_old_operator_role_becomes_agent_and_keys_keep_full_access() {
    let url = common::fresh_url().await;
    let store = Store::connect(&url).await.unwrap();
    // Every migration before the one that defines the roles.
    let before = match store.backend() {
        Backend::Sqlite => 6,
        Backend::Postgres => 7,
    };
    store.migrate_until(before).await.unwrap();
    sqlx::any::install_default_drivers();
    let raw_url = match url.strip_prefix("sqlite://") {
        Some(path) => format!("sqlite://{path}?mode=rwc"),
        None => url.clone(),
    };
    let pool = sqlx::AnyPool::connect(&raw_url).await.unwrap();
    for (name, role) in [("olga", "operator"), ("ana", "admin"), ("odd", "root")] {
        sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_ms) VALUES ($1, 'x', $2, 0)",
        )
        .bind(name)
        .bind(role)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO api_keys (name, key_hash, created_ms) VALUES ('old', 'h', 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    store.migrate().await.unwrap();
    let role = |name: &'static str| {
        let store = store.clone();
        async move { store.user_by_name(name).await.unwrap().unwrap().role }
    };
    assert_eq!(role("olga").await, Role::Agent);
    assert_eq!(role("ana").await, Role::Admin);
    assert_eq!(
        role("odd").await,
        Role::Viewer,
        "an unknown role grants the least"
    );
    assert_eq!(store.api_keys().await.unwrap()[0].role, Role::Admin);
}

#[tokio::test]
async fn a_key_is_used_at_most_once_a_minute_in_writing() {
    let store = common::store().await;
    store
        .create_api_key("k", "hash", Role::Viewer, 0)
        .await
        .unwrap();
    let k = store.use_api_key("hash", 1_000).await.unwrap().unwrap();
    assert_eq!(k.last_used_ms, Some(1_000));
    let k = store.use_api_key("hash", 30_000).await.unwrap().unwrap();
    assert_eq!(
        k.last_used_ms,
        Some(1_000),
        "not written again within the minute"
    );
    let k = store.use_api_key("hash", 61_000).await.unwrap().unwrap();
    assert_eq!(k.last_used_ms, Some(61_000));
    store.revoke_api_key(k.id, 62_000).await.unwrap();
    assert!(store.use_api_key("hash", 63_000).await.unwrap().is_none());
}
