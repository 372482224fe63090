//! The files contacts send. A message holds only where its file is (a
//! Twilio URL, a Meta media id); the file is fetched through the bot's
//! channel the first time something needs it (the assistant reading it,
//! a person looking at it) and kept until `MEDIA_RETENTION_DAYS` have
//! passed, so that it is fetched from the provider once.

use std::sync::Arc;

use confab_channels::media::{Fetched, MediaError, MediaLimits};
use confab_store::{Message, NewMedia, Store, StoreError, StoredMedia};

use crate::clock::Clock;
use crate::config::Settings;

/// Fetches and keeps the files of messages.
pub struct Files {
    store: Store,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    /// The bots' channels, which fetch what contacts send.
    bots: Arc<crate::bots::Directory>,
}

/// Why a message's file cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the message has no file at position {0}")]
    NoSuchFile(usize),
    #[error("{0} media needs the bot's {0} credentials")]
    NoChannel(String),
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("files of type {0}")]
    WrongType(String),
    #[error("the provider no longer has the file")]
    Gone,
    #[error("fetching the media: {0}")]
    Failed(String),
    #[error("the media could not be stored")]
    NotKept,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Files {
    pub fn new(
        store: Store,
        bots: Arc<crate::bots::Directory>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
    ) -> Files {
        Files {
            store,
            settings,
            clock,
            bots,
        }
    }

    /// The message's file at `position` (from 0) of the types `accept`
    /// (prefixes, as `image/`; none: any), from the store when it was
    /// fetched before, else from the provider (then kept).
    pub async fn get(
        &self,
        m: &Message,
        position: usize,
        accept: &[&str],
    ) -> Result<(Fetched, StoredMedia), FileError> {
        let media = m
            .media
            .get(position)
            .ok_or(FileError::NoSuchFile(position))?;
        let limits = MediaLimits {
            max_bytes: self.settings.assistant.media.max_bytes,
            accept: accept.iter().map(|s| s.to_string()).collect(),
        };
        if let Some(stored) = self
            .store
            .media_of(m.id)
            .await?
            .into_iter()
            .find(|s| s.position == position as i64)
            && let Some(bytes) = self.stored_bytes(&stored).await
        {
            if !limits.accepts(&stored.content_type) {
                return Err(FileError::WrongType(stored.content_type));
            }
            let file = Fetched {
                size: bytes.len() as u64,
                bytes,
                content_type: stored.content_type.clone(),
                sha256: stored.sha256.clone(),
            };
            return Ok((file, stored));
        }
        // The bot whose channel the contact wrote to fetches it.
        let bot_id = self.store.contact(m.contact_id).await?.bot_id;
        let Some(client) = self.bots.client(bot_id, m.channel) else {
            return Err(FileError::NoChannel(m.channel.to_string()));
        };
        let file = client
            .fetch_media(media, &limits)
            .await
            .map_err(|e| match e {
                MediaError::TooLarge { limit } => FileError::TooLarge { limit },
                MediaError::WrongType(t) => FileError::WrongType(t),
                MediaError::NotFound => FileError::Gone,
                other => FileError::Failed(other.to_string()),
            })?;
        let stored = self.keep(m.id, position, &file).await?;
        Ok((file, stored))
    }

    /// Stores a fetched file in the database or on disk, as configured.
    async fn keep(
        &self,
        message_id: i64,
        position: usize,
        file: &Fetched,
    ) -> Result<StoredMedia, FileError> {
        let cfg = &self.settings.assistant.media;
        let path = if cfg.on_disk {
            let path = cfg.dir.join(format!("{message_id}-{position}"));
            let written = async {
                tokio::fs::create_dir_all(&cfg.dir).await?;
                tokio::fs::write(&path, &file.bytes).await
            }
            .await;
            if let Err(e) = written {
                tracing::error!(path = %path.display(), error = %e, "storing media on disk failed");
                return Err(FileError::NotKept);
            }
            Some(path.to_string_lossy().into_owned())
        } else {
            None
        };
        let new = NewMedia {
            message_id,
            position: position as i64,
            content_type: file.content_type.clone(),
            size: file.size as i64,
            sha256: file.sha256.clone(),
            bytes: (!cfg.on_disk).then(|| file.bytes.clone()),
            path,
        };
        Ok(self.store.save_media(&new, self.clock.now_ms()).await?)
    }

    async fn stored_bytes(&self, m: &StoredMedia) -> Option<Vec<u8>> {
        match &m.path {
            Some(p) => tokio::fs::read(p).await.ok(),
            None => self.store.media_bytes(m.id).await.ok().flatten(),
        }
    }
}
