//! Credentials at rest: sealed with XChaCha20-Poly1305 under a master key,
//! each bound to its owner and name (the AEAD's associated data), so that
//! a sealed value copied to another row does not open there.
//!
//! The master key comes from `CONFAB_MASTER_KEY`; without it, on SQLite, a
//! key file beside the database (`confab.key`, mode 0600) made on first
//! start; on PostgreSQL, whose replicas share no disk, not having one is an
//! error the moment a secret is to be sealed or opened. A sealed value
//! names the key that sealed it (the first 8 hex digits of the key's
//! SHA-256), so that a wrong key is said plainly, and a rotation can keep
//! the old and the new key side by side until it is done.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use confab_store::{SealedSecret, Store, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: &str = "v1";
const KEY_FILE: &str = "confab.key";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "CONFAB_MASTER_KEY is not set: on PostgreSQL every replica needs the same key to read the credentials it stores (make one with `confab master-key new`)"
    )]
    NoKey,
    #[error("CONFAB_MASTER_KEY: {0}")]
    BadKey(String),
    #[error("the master key file {path}: {problem}")]
    KeyFile { path: String, problem: String },
    #[error("a secret was sealed with master key {0}, which is not the one configured")]
    WrongKey(String),
    #[error("a secret cannot be opened: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A 256-bit key and its id.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    fn from_bytes(key: [u8; 32]) -> MasterKey {
        let id = hex::encode(&Sha256::digest(key)[..4]);
        MasterKey { key, id }
    }

    pub fn generate() -> MasterKey {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        MasterKey::from_bytes(key)
    }

    /// 32 bytes in base64 (standard or URL-safe, padded or not) or in hex.
    pub fn parse(text: &str) -> Result<MasterKey, SecretError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            let unpadded = text.trim_end_matches('=');
            URL_SAFE_NO_PAD
                .decode(unpadded)
                .or_else(|_| STANDARD.decode(text))
                .ok()
        };
        let key: [u8; 32] = bytes
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SecretError::BadKey("must be 32 bytes in base64 or hex".into()))?;
        Ok(MasterKey::from_bytes(key))
    }

    /// The key as `CONFAB_MASTER_KEY` takes it.
    pub fn encoded(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&self.key).expect("a 32-byte key")
    }

    /// `plain` sealed for `owner`'s `name`: `v1.<key id>.<base64 of nonce
    /// and ciphertext>`.
    pub fn seal(&self, owner: &str, name: &str, plain: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let aad = format!("{owner}\n{name}");
        let ct = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("encryption of a message in memory");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{VERSION}.{}.{}", self.id, URL_SAFE_NO_PAD.encode(out))
    }
}

/// The key that sealed a value.
fn key_id(sealed: &str) -> Option<&str> {
    let mut parts = sealed.splitn(3, '.');
    (parts.next()? == VERSION).then_some(())?;
    parts.next()
}

/// The keys a server opens secrets with: the configured one (which seals),
/// and, while a rotation of a key file is unfinished, the other.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: MasterKey,
    others: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(current: MasterKey) -> Keyring {
        Keyring {
            current,
            others: Vec::new(),
        }
    }

    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    pub fn seal(&self, owner: &str, name: &str, plain: &str) -> String {
        self.current.seal(owner, name, plain)
    }

    pub fn open(&self, owner: &str, name: &str, sealed: &str) -> Result<String, SecretError> {
        let id = key_id(sealed)
            .ok_or_else(|| SecretError::Corrupt("not a sealed value of this version".into()))?;
        let key = std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::WrongKey(id.to_string()))?;
        let body = sealed.rsplit('.').next().unwrap_or("");
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| SecretError::Corrupt(e.to_string()))?;
        if raw.len() < 24 {
            return Err(SecretError::Corrupt("too short".into()));
        }
        let (nonce, ct) = raw.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().expect("24 bytes");
        let aad = format!("{owner}\n{name}");
        let plain = key
            .cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                SecretError::Corrupt(format!(
                    "{owner}'s {name} does not open (altered, or sealed for another owner)"
                ))
            })?;
        String::from_utf8(plain).map_err(|e| SecretError::Corrupt(e.to_string()))
    }

    /// The keyring of a server: `CONFAB_MASTER_KEY`, or on SQLite the key
    /// file beside the database (made with mode 0600 if there is none, and
    /// with the unfinished rotation's new key beside it, if any).
    pub fn load(setting: Option<&str>, database_url: &str) -> Result<Keyring, SecretError> {
        if let Some(text) = setting {
            return Ok(Keyring::new(MasterKey::parse(text)?));
        }
        let Some(db) = confab_store::sqlite_file(database_url) else {
            return Err(SecretError::NoKey);
        };
        let path = key_file(&db);
        let current = match read_key(&path)? {
            Some(k) => k,
            None => {
                let k = MasterKey::generate();
                if write_key(&path, &k, false)? {
                    tracing::info!(file = %path.display(), key = k.id(), "made a master key for the credentials Confab keeps; back it up with the database");
                    k
                } else {
                    // Another process made one first: that one is the key.
                    read_key(&path)?.ok_or_else(|| SecretError::KeyFile {
                        path: path.display().to_string(),
                        problem: "vanished as it was made".into(),
                    })?
                }
            }
        };
        let mut ring = Keyring::new(current);
        if let Some(next) = read_key(&pending(&path))? {
            ring.others.push(next);
        }
        Ok(ring)
    }
}

/// The key file of a SQLite database: beside it.
pub fn key_file(db: &Path) -> PathBuf {
    db.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(KEY_FILE)
}

/// Where a rotation writes its new key before the secrets are resealed.
fn pending(path: &Path) -> PathBuf {
    path.with_extension("key.new")
}

fn read_key(path: &Path) -> Result<Option<MasterKey>, SecretError> {
    let bad = |problem: String| SecretError::KeyFile {
        path: path.display().to_string(),
        problem,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text)
            .map(Some)
            .map_err(|e| bad(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Writes a key readable by its owner only, whole or not at all; unless
/// `replace`, only where there is none yet (false: there was one).
fn write_key(path: &Path, key: &MasterKey, replace: bool) -> Result<bool, SecretError> {
    use std::io::Write;
    let bad = |e: std::io::Error| SecretError::KeyFile {
        path: path.display().to_string(),
        problem: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(bad)?;
    }
    // A name of its own: two processes making a key at once do not mix.
    let tmp = path.with_extension(format!("key.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp).map_err(bad)?;
    f.write_all(format!("{}\n", key.encoded()).as_bytes())
        .map_err(bad)?;
    f.sync_all().map_err(bad)?;
    if replace {
        return std::fs::rename(&tmp, path).map(|()| true).map_err(bad);
    }
    // A link is made only where no file is: the first key made stays.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(bad(e)),
    }
}

/// What a rotation did.
pub struct Rotated {
    pub new_key: MasterKey,
    pub resealed: usize,
    /// The key file now holding the new key, when the key is kept in one.
    pub file: Option<PathBuf>,
}

/// Reseals every stored secret under a new key. With a key file, the new
/// key is written beside it first and takes its place once the secrets are
/// resealed (a crash in between leaves both, and both are read); with
/// `CONFAB_MASTER_KEY`, the new key is given (or made) and the caller must
/// set it before the next start.
pub async fn rotate(
    store: &Store,
    setting: Option<&str>,
    database_url: &str,
    new_key: Option<MasterKey>,
    now_ms: i64,
) -> Result<Rotated, SecretError> {
    let ring = Keyring::load(setting, database_url)?;
    let new_key = new_key.unwrap_or_else(MasterKey::generate);
    let file = match (setting, confab_store::sqlite_file(database_url)) {
        (None, Some(db)) => {
            let path = key_file(&db);
            write_key(&pending(&path), &new_key, true)?;
            Some(path)
        }
        _ => None,
    };
    let mut resealed = Vec::new();
    for s in store.all_secrets().await? {
        let plain = ring.open(&s.owner, &s.name, &s.sealed)?;
        resealed.push(SealedSecret {
            sealed: new_key.seal(&s.owner, &s.name, &plain),
            ..s
        });
    }
    store.reseal_secrets(&resealed, now_ms).await?;
    if let Some(path) = &file {
        std::fs::rename(pending(path), path).map_err(|e| SecretError::KeyFile {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
    }
    Ok(Rotated {
        new_key,
        resealed: resealed.len(),
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_owner_name_and_key() {
        let ring = Keyring::new(MasterKey::generate());
        let sealed = ring.seal("bot:1", "twilio.auth_token", "s3cr3t-token");
        assert!(sealed.starts_with(&format!("v1.{}.", ring.current().id())));
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(
            ring.open("bot:1", "twilio.auth_token", &sealed).unwrap(),
            "s3cr3t-token"
        );
        assert_ne!(
            sealed,
            ring.seal("bot:1", "twilio.auth_token", "s3cr3t-token"),
            "a fresh nonce each time"
        );
        assert!(matches!(
            ring.open("bot:2", "twilio.auth_token", &sealed),
            Err(SecretError::Corrupt(_))
        ));
        assert!(matches!(
            ring.open("bot:1", "meta.app_secret", &sealed),
            Err(SecretError::Corrupt(_))
        ));
        let other = Keyring::new(MasterKey::generate());
        assert!(matches!(
            other.open("bot:1", "twilio.auth_token", &sealed),
            Err(SecretError::WrongKey(_))
        ));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.open("bot:1", "twilio.auth_token", &tampered).is_err());
    }

    #[test]
    fn keys_parse_from_base64_and_hex() {
        let k = MasterKey::generate();
        assert_eq!(MasterKey::parse(&k.encoded()).unwrap().id(), k.id());
        assert_eq!(
            MasterKey::parse(&STANDARD.encode(k.key)).unwrap().id(),
            k.id()
        );
        assert_eq!(MasterKey::parse(&hex::encode(k.key)).unwrap().id(), k.id());
        for bad in ["", "short", &STANDARD.encode([0u8; 16])] {
            assert!(MasterKey::parse(bad).is_err(), "{bad}");
        }
        assert!(
            !format!("{k:?}").contains(&k.encoded()),
            "Debug hides the key"
        );
    }

    #[test]
    fn a_key_file_is_made_once_owner_readable_beside_the_database() {
        let dir = std::env::temp_dir().join(format!("confab-key-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/db.sqlite", dir.display());
        let first = Keyring::load(None, &url).unwrap();
        let again = Keyring::load(None, &url).unwrap();
        assert_eq!(first.current().id(), again.current().id());
        let path = dir.join("confab.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            Keyring::load(None, "postgres://x@localhost/db"),
            Err(SecretError::NoKey)
        ));
        let k = MasterKey::generate();
        assert_eq!(
            Keyring::load(Some(&k.encoded()), "postgres://x@localhost/db")
                .unwrap()
                .current()
                .id(),
            k.id()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
