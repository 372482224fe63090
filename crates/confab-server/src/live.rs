//! Live updates for open consoles: the store's feed of changed
//! conversations (`confab_store::live`), read once per server and handed to
//! every console's event stream.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_store::Store;
use confab_store::live::{Changed, Heard};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};

/// Event streams served at once; past it a console is told to reload.
pub const MAX_STREAMS: usize = 256;
/// Moments a slow stream may fall behind by before it is told it missed some.
const BACKLOG: usize = 64;
/// How long changes are gathered into one moment: a burst of messages is
/// one reload, and each stream is handed a few moments a second, however
/// many messages arrive (each stream reading every change cost more than
/// the webhooks under fifty consoles).
const GATHER: Duration = Duration::from_millis(200);

/// The conversations changed in one moment, each once, as every stream
/// reads them: by bot, so that a stream looks up its own bot's (sorted
/// once here, not once a stream).
pub type Moment = Arc<Changes>;

/// Each bot's changed contacts, each once, ascending; or word that
/// anything may have changed (the feed missed some). Gathered as they come
/// (bounded by the contacts there are), then handed out as one moment.
#[derive(Debug, Default)]
pub struct Changes {
    by_bot: HashMap<i64, BTreeSet<i64>>,
    unknown: bool,
}

/// What `Changes::of` gives for a bot without changes.
static NONE: BTreeSet<i64> = BTreeSet::new();

impl Changes {
    /// Anything may have changed: the feed was cut, and what was
    /// committed meanwhile was not heard.
    pub fn unknown() -> Changes {
        Changes {
            unknown: true,
            ..Changes::default()
        }
    }

    pub fn is_unknown(&self) -> bool {
        self.unknown
    }

    pub fn is_empty(&self) -> bool {
        self.by_bot.is_empty() && !self.unknown
    }

    /// The bots with changes.
    pub fn bots(&self) -> impl Iterator<Item = i64> + '_ {
        self.by_bot.keys().copied()
    }

    /// Bot `bot`'s changed contacts; empty when none changed.
    pub fn of(&self, bot: i64) -> &BTreeSet<i64> {
        self.by_bot.get(&bot).unwrap_or(&NONE)
    }
}

impl Extend<Changed> for Changes {
    fn extend<I: IntoIterator<Item = Changed>>(&mut self, changes: I) {
        for c in changes {
            self.by_bot
                .entry(c.bot_id)
                .or_default()
                .insert(c.contact_id);
        }
    }
}

pub struct Live {
    changes: broadcast::Sender<Moment>,
    streams: Arc<Semaphore>,
    /// Turns true when the server begins to shut down: streams end, so the
    /// drain does not wait for them.
    closing: watch::Sender<bool>,
    /// True while the feed is open: a change committed from then on is heard.
    open: watch::Sender<bool>,
    /// When the streams were last handed a moment with changes of each
    /// bot's, and (`None`) when the feed last opened (what came before may
    /// not have been heard).
    told: std::sync::Mutex<HashMap<Option<i64>, Instant>>,
}

/// One console's stream: the moments of changes, while its slot is held.
pub struct Stream {
    pub changes: broadcast::Receiver<Moment>,
    pub closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            changes: broadcast::channel(BACKLOG).0,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            closing: watch::channel(false).0,
            open: watch::channel(false).0,
            told: Default::default(),
        }
    }
}

impl Live {
    /// Hands the changes of `feed` to the streams, a moment's at once,
    /// until `stop` turns true (`None`) or the feed fails.
    async fn forward(
        &self,
        feed: &mut confab_store::live::Feed,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<confab_store::StoreError> {
        let mut pending = Changes::default();
        let mut due = tokio::time::Instant::now();
        loop {
            let next = tokio::select! {
                n = feed.next() => Some(n),
                _ = tokio::time::sleep_until(due), if !pending.is_empty() => None,
                _ = stop.wait_for(|s| *s) => return None,
            };
            match next {
                Some(Ok(Heard::Gap)) => self.missed(),
                Some(Ok(Heard::Changes(changes))) => {
                    if pending.is_empty() {
                        due = tokio::time::Instant::now() + GATHER;
                    }
                    pending.extend(changes);
                }
                Some(Err(e)) => return Some(e),
                None => {
                    let moment = std::mem::take(&mut pending);
                    // Before any stream tells of it: a read begun from now
                    // on holds every change of the moment (each was
                    // committed before it was heard).
                    if let Ok(mut told) = self.told.lock() {
                        let now = Instant::now();
                        for bot in moment.bots() {
                            told.insert(Some(bot), now);
                        }
                    }
                    // Sent to no one while no console listens.
                    let _ = self.changes.send(Arc::new(moment));
                }
            }
        }
    }

    /// Tells every stream that anything may have changed, and makes what
    /// was read before stale: the feed missed what was committed while it
    /// was cut.
    fn missed(&self) {
        if let Ok(mut told) = self.told.lock() {
            told.insert(None, Instant::now());
        }
        let _ = self.changes.send(Arc::new(Changes::unknown()));
        tracing::warn!("the live feed was cut; open consoles are told to reload");
    }

    /// The moment after which what was read of bot `bot` is older than
    /// what the streams told of: the last moment with its changes was
    /// handed to them then, or the feed opened then if later (or now, when
    /// the feed is not open). A read begun after it shows every change a
    /// console has heard of; changes heard since are told in the next
    /// moment, which moves it on. Under a steady flow of messages, what
    /// was read stays good for a moment, not a millisecond.
    pub fn changed_at(&self, bot: i64) -> Instant {
        if !*self.open.borrow() {
            return Instant::now();
        }
        let told = match self.told.lock() {
            Ok(t) => t,
            Err(_) => return Instant::now(),
        };
        let opened = told.get(&None).copied();
        let changed = told.get(&Some(bot)).copied();
        opened.max(changed).unwrap_or_else(Instant::now)
    }

    /// Waits (at most `wait`) until the feed is open, so that a stream
    /// begun now hears every change committed after it; false if it is not.
    pub async fn opened(&self, wait: Duration) -> bool {
        let mut open = self.open.subscribe();
        tokio::time::timeout(wait, open.wait_for(|o| *o))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A stream of the changes from now on; none when every slot is taken.
    pub fn stream(&self) -> Option<Stream> {
        let slot = self.streams.clone().try_acquire_owned().ok()?;
        Some(Stream {
            changes: self.changes.subscribe(),
            closing: self.closing.subscribe(),
            _slot: slot,
        })
    }

    /// Reads the store's feed until `stop` turns true, then ends every
    /// stream. A feed that fails is opened again a second later.
    pub async fn run(self: Arc<Self>, store: Store, mut stop: watch::Receiver<bool>) {
        let mut failed_before = false;
        while !*stop.borrow() {
            let opened = tokio::select! {
                f = store.live_feed() => f,
                _ = stop.wait_for(|s| *s) => break,
            };
            let failed = match opened {
                Ok(mut feed) => {
                    if failed_before {
                        // Open again after a failure: what came meanwhile
                        // was not heard.
                        self.missed();
                    } else if let Ok(mut told) = self.told.lock() {
                        told.insert(None, Instant::now());
                    }
                    self.open.send_replace(true);
                    self.forward(&mut feed, &mut stop).await
                }
                Err(e) => Some(e),
            };
            self.open.send_replace(false);
            let Some(e) = failed else { break };
            failed_before = true;
            tracing::warn!(error = %e, "the live feed failed; opening it again in a second");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let _ = self.closing.send(true);
    }
}

#[cfg(test)]
mod tests {
    use confab_store::live::Changed;

    use super::Changes;

    #[test]
    fn a_moment_holds_each_bots_contacts_once_in_order() {
        let mut changes = Changes::default();
        changes.extend(
            [(1, 9), (2, 4), (1, 3), (1, 9), (1, 5)]
                .into_iter()
                .map(|(bot_id, contact_id)| Changed { bot_id, contact_id }),
        );
        let of = |bot| changes.of(bot).iter().copied().collect::<Vec<i64>>();
        assert_eq!(of(1), [3, 5, 9]);
        assert_eq!(of(2), [4]);
        assert!(of(3).is_empty());
    }
}
