//! Credentials sealed at rest, and a rotation of the master key that
//! reseals them all, on both databases.

mod common;

use common::*;
use confab_server::secrets::{Keyring, MasterKey, SecretError, rotate};
use confab_store::{SealedSecret, Store};

/// A database of its own, in a folder of its own on SQLite: the key file
/// lives beside the database.
async fn database() -> String {
    if is_postgres() {
        return fresh_database().await;
    }
    let dir = std::env::temp_dir().join(format!("confab-secrets-{}", uuid::Uuid::new_v4()));
    format!("sqlite://{}/confab.db", dir.display())
}

async fn store_with_secrets(url: &str, setting: Option<&str>) -> (Store, Keyring) {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let ring = Keyring::load(setting, url).unwrap();
    for (owner, name, plain) in [
        ("bot:1", "twilio.auth_token", "token-of-bot-one"),
        ("bot:1", "meta.access_token", "EAAG-meta-token"),
        ("bot:2", "twilio.auth_token", "token-of-bot-two"),
    ] {
        let s = SealedSecret {
            owner: owner.into(),
            name: name.into(),
            sealed: ring.seal(owner, name, plain),
        };
        store.put_secret(&s, 1).await.unwrap();
    }
    (store, ring)
}

async fn opened(store: &Store, ring: &Keyring) -> Result<Vec<String>, SecretError> {
    let mut out = Vec::new();
    for s in store.all_secrets().await.unwrap() {
        out.push(ring.open(&s.owner, &s.name, &s.sealed)?);
    }
    Ok(out)
}

#[tokio::test]
async fn a_rotation_reseals_every_credential_under_the_new_key() {
    let url = database().await;
    // PostgreSQL's replicas share no disk: the key is a setting there.
    let first = MasterKey::generate().encoded();
    let setting = is_postgres().then_some(first.as_str());
    let (store, old) = store_with_secrets(&url, setting).await;
    assert_eq!(
        opened(&store, &old).await.unwrap(),
        ["EAAG-meta-token", "token-of-bot-one", "token-of-bot-two"]
    );
    let stored = store.all_secrets().await.unwrap();
    assert!(stored.iter().all(|s| !s.sealed.contains("token")));

    let done = rotate(&store, setting, &url, None, 2).await.unwrap();
    assert_eq!(done.resealed, 3);
    let new_setting = done.new_key.encoded();
    let ring = Keyring::load(is_postgres().then_some(new_setting.as_str()), &url).unwrap();
    assert_eq!(ring.current().id(), done.new_key.id());
    assert_eq!(
        opened(&store, &ring).await.unwrap(),
        ["EAAG-meta-token", "token-of-bot-one", "token-of-bot-two"]
    );
    assert!(
        matches!(opened(&store, &old).await, Err(SecretError::WrongKey(_))),
        "the old key opens nothing"
    );
}

#[tokio::test]
async fn a_rotation_cut_short_leaves_both_keys_readable() {
    if is_postgres() {
        return; // key files are SQLite's
    }
    let url = database().await;
    let (store, _) = store_with_secrets(&url, None).await;
    let db = confab_store::sqlite_file(&url).unwrap();
    let file = confab_server::secrets::key_file(&db);
    // As if the new key was written and one secret resealed before a crash.
    let next = MasterKey::generate();
    std::fs::write(file.with_extension("key.new"), next.encoded()).unwrap();
    let s = SealedSecret {
        owner: "bot:3".into(),
        name: "twilio.auth_token".into(),
        sealed: next.seal("bot:3", "twilio.auth_token", "token-of-bot-three"),
    };
    store.put_secret(&s, 3).await.unwrap();
    let ring = Keyring::load(None, &url).unwrap();
    assert_eq!(opened(&store, &ring).await.unwrap().len(), 4);
    // Finishing the rotation puts everything under one key again.
    let done = rotate(&store, None, &url, None, 4).await.unwrap();
    assert_eq!(done.resealed, 4);
    let ring = Keyring::load(None, &url).unwrap();
    assert_eq!(opened(&store, &ring).await.unwrap().len(), 4);
    assert!(!file.with_extension("key.new").exists());
}
