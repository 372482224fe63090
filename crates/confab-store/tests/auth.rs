mod common;

use confab_model::Role;
use confab_store::Change;

#[tokio::test]
async fn the_old_operator_role_becomes_agent_and_keys_keep_full_access() {
    // Every migration before the one that defines the roles.
    let (store, pool, _) = common::migrated_until(6, 7).await;
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
        .create_api_key("k", "hash", Role::Viewer, &Change::by("test", 0))
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
    store
        .revoke_api_key(k.id, &Change::by("test", 62_000))
        .await
        .unwrap();
    assert!(store.use_api_key("hash", 63_000).await.unwrap().is_none());
}

#[tokio::test]
async fn every_change_to_users_and_keys_is_audited_without_secrets() {
    let store = common::store().await;
    let by = Change::by("user:root", 1_000);
    store
        .create_user("ana", "$argon2id$secret-hash", Role::Admin, &by)
        .await
        .unwrap();
    store
        .set_user_role("ana", Role::Editor, &by)
        .await
        .unwrap_err();
    let k = store
        .create_api_key("ops", "hash-of-secret", Role::Admin, &by)
        .await
        .unwrap();
    // With an admin key alive, ana may stop being an admin.
    store.set_user_role("ana", Role::Editor, &by).await.unwrap();
    store
        .set_user_password("ana", "$argon2id$other-hash", &by)
        .await
        .unwrap();
    store.disable_user("ana", &by).await.unwrap();
    store.delete_user("ana", &by).await.unwrap();
    let err = store.revoke_api_key(k.id, &by).await.unwrap_err();
    assert!(
        matches!(err, confab_store::StoreError::Refused(_)),
        "the last admin key stays: {err}"
    );
    let log = store.audit_log(None, 50).await.unwrap();
    let actions: Vec<&str> = log.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "user.create",
            "key.create",
            "user.role",
            "user.password",
            "user.disable",
            "user.delete"
        ],
        "refused changes leave no entry"
    );
    let role = log.iter().find(|e| e.action == "user.role").unwrap();
    assert_eq!(role.target, "user:ana");
    assert_eq!(role.actor, "user:root");
    assert_eq!(role.before.as_ref().unwrap()["role"], "admin");
    assert_eq!(role.after.as_ref().unwrap()["role"], "editor");
    let all = serde_json::to_string(&log).unwrap();
    assert!(!all.contains("secret") && !all.contains("hash-of"), "{all}");
    assert!(
        log.iter()
            .find(|e| e.action == "user.delete")
            .unwrap()
            .after
            .is_none()
    );
}
