//! The bots a server serves, kept in memory: a bot is found by id, slug or
//! the address of one of its channels without a database round trip. The
//! cache is read again when this server changes a bot, and when the
//! database says another server did (checked every second).
//!
//! The bot `default` is the environment's: its channels come from the
//! `TWILIO_*` and `WHATSAPP_*` settings where those are given.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use confab_channels::client::Client;
use confab_channels::settings::{self, Config, Kind, Values};
use confab_model::Channel;
use confab_store::{Bot, DEFAULT_BOT, Store};
use serde_json::Value;

use crate::config::Settings;
use crate::secrets::{Keyring, SecretError};

/// Where a channel's settings come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Set through the API, kept sealed in the database.
    Api,
    /// The environment's settings (the default bot only); the API cannot
    /// change them.
    Env,
}

/// One channel of a bot, opened.
#[derive(Clone, Debug)]
pub struct BotChannel {
    pub kind: &'static Kind,
    pub values: Values,
    pub source: Source,
    /// Ready to verify and send; `None` while settings are missing (the
    /// environment may give only a webhook secret).
    pub config: Option<Config>,
    /// Why the channel cannot be used (its secrets do not open).
    pub problem: Option<String>,
    /// What sends and fetches media through it, when it can.
    pub client: Option<Arc<Client>>,
}

impl BotChannel {
    pub fn channel(&self) -> Channel {
        self.kind.channel
    }

    pub fn value(&self, field: &str) -> Option<&str> {
        self.values.get(field).map(String::as_str)
    }

    /// The address routing webhooks here, if one is set.
    pub fn address(&self) -> Option<&str> {
        Some(self.kind.address(&self.values)).filter(|a| !a.is_empty())
    }
}

/// A bot as the server uses it.
#[derive(Clone, Debug)]
pub struct BotEntry {
    pub record: Bot,
    pub channels: Vec<BotChannel>,
    /// Who it answers (the default bot's allow-list is kept apart: see
    /// `access`).
    pub policy: crate::access::Policy,
    pub ai: crate::assistant::BotAi,
}

impl BotEntry {
    pub fn id(&self) -> i64 {
        self.record.id
    }

    pub fn slug(&self) -> &str {
        &self.record.slug
    }

    pub fn channel(&self, channel: Channel) -> Option<&BotChannel> {
        self.channels.iter().find(|c| c.channel() == channel)
    }

    /// Receives a channel's webhooks whatever address they name: the
    /// default bot, while it has no address of that kind of its own (as
    /// before there were bots).
    fn catches_all(&self, channel: Channel) -> bool {
        self.id() == DEFAULT_BOT && self.channel(channel).and_then(|c| c.address()).is_none()
    }

    /// The secret `field` of its `channel`, if set.
    pub fn secret(&self, channel: Channel, field: &str) -> Option<&str> {
        self.channel(channel).and_then(|c| c.value(field))
    }
}

#[derive(Default)]
struct Snapshot {
    generation: String,
    bots: Vec<Arc<BotEntry>>,
    // Indexes into `bots`: the webhook path looks a bot up per message.
    by_id: HashMap<i64, usize>,
    by_slug: HashMap<String, usize>,
    by_address: HashMap<Channel, HashMap<String, usize>>,
}

impl Snapshot {
    fn at(&self, i: Option<&usize>) -> Option<Arc<BotEntry>> {
        i.map(|&i| self.bots[i].clone())
    }

    /// The bot whose `channel` has this address.
    fn with_address(&self, channel: Channel, address: &str) -> Option<Arc<BotEntry>> {
        self.at(self.by_address.get(&channel)?.get(address))
    }
}

/// The cache of bots.
pub struct Directory {
    store: Store,
    settings: Arc<Settings>,
    keyring: Result<Keyring, String>,
    snapshot: RwLock<Arc<Snapshot>>,
    http: Http,
}

/// The HTTP clients every channel shares: one for the providers' APIs, one
/// for media downloads. (A client holds its own pool and TLS roots: one a
/// channel made a hundred bots cost 33 MiB.)
#[derive(Clone)]
struct Http {
    api: reqwest::Client,
    media: reqwest::Client,
}

/// The client of a channel's settings, when they are complete.
fn client_of(config: &Option<Config>, http: &Http) -> Option<Arc<Client>> {
    config
        .clone()
        .map(|c| Arc::new(Client::new(c, http.api.clone(), http.media.clone())))
}

/// The default bot's channels as the environment gives them.
fn env_channels(s: &Settings, http: &Http) -> Vec<BotChannel> {
    let mut out = Vec::new();
    let mut twilio = Values::new();
    if let Some(t) = &s.twilio {
        twilio.insert("account_sid".into(), t.account_sid.clone());
        twilio.insert("number".into(), t.from.as_str().to_string());
    }
    if let Some(token) = &s.twilio_auth_token {
        twilio.insert("auth_token".into(), token.clone());
    }
    let mut meta = Values::new();
    if let Some(m) = &s.meta {
        meta.insert("access_token".into(), m.access_token.clone());
        meta.insert("phone_number_id".into(), m.phone_number_id.clone());
    }
    for (field, v) in [
        ("app_secret", &s.meta_app_secret),
        ("verify_token", &s.meta_verify_token),
        ("business_account_id", &s.meta_business_account_id),
    ] {
        if let Some(v) = v {
            meta.insert(field.into(), v.clone());
        }
    }
    for (channel, values) in [(Channel::Twilio, twilio), (Channel::Meta, meta)] {
        if values.is_empty() {
            continue;
        }
        let kind = settings::kind(channel.as_str()).expect("a kind of channel");
        let config = Config::build(channel, &values, &s.endpoints);
        out.push(BotChannel {
            kind,
            client: client_of(&config, http),
            config,
            values,
            source: Source::Env,
            problem: None,
        });
    }
    out
}

impl Directory {
    pub async fn load(store: Store, settings: Arc<Settings>) -> anyhow::Result<Arc<Directory>> {
        let keyring = Keyring::load(settings.master_key.as_deref(), &settings.database_url)
            .map_err(|e| e.to_string());
        if let Err(e) = &keyring {
            // Bots without credentials work; none can be given one.
            tracing::warn!("{e}");
        }
        let directory = Arc::new(Directory {
            http: Http {
                api: confab_channels::http_client(settings.provider_timeout),
                media: confab_channels::media::client(),
            },
            store,
            settings,
            keyring,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
        });
        directory.reload().await?;
        Ok(directory)
    }

    /// The key that seals channel credentials, or why there is none.
    pub fn keyring(&self) -> Result<&Keyring, String> {
        self.keyring.as_ref().map_err(String::clone)
    }

    fn open(&self, bot: &Bot, c: &confab_store::BotChannel) -> BotChannel {
        let kind = settings::kind(&c.kind);
        let mut values: Values = c
            .config
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        let mut problem = None;
        if let Some(sealed) = &c.sealed {
            let opened = self.keyring().and_then(|ring| {
                let text = ring
                    .open(&format!("bot:{}", bot.id), &c.kind, sealed)
                    .map_err(|e| e.to_string())?;
                serde_json::from_str::<Values>(&text)
                    .map_err(|e| SecretError::Corrupt(e.to_string()).to_string())
            });
            match opened {
                Ok(secrets) => values.extend(secrets),
                Err(e) => problem = Some(e.to_string()),
            }
        }
        let kind = kind.unwrap_or_else(|| {
            problem = Some(format!("`{}` is not a kind of channel", c.kind));
            &settings::KINDS[0]
        });
        let config = if problem.is_none() {
            Config::build(kind.channel, &values, &self.settings.endpoints)
        } else {
            None
        };
        if let Some(p) = &problem {
            tracing::error!(bot = %bot.slug, channel = %c.kind, "the channel cannot be used: {p}");
        }
        BotChannel {
            kind,
            values,
            source: Source::Api,
            client: client_of(&config, &self.http),
            config,
            problem,
        }
    }

    /// Reads every bot from the database again.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let generation = self.store.bots_generation().await?;
        let mut snapshot = Snapshot {
            generation,
            ..Snapshot::default()
        };
        for bot in self.store.bots().await? {
            let mut channels: Vec<BotChannel> =
                bot.channels.iter().map(|c| self.open(&bot, c)).collect();
            if bot.id == DEFAULT_BOT {
                for env in env_channels(&self.settings, &self.http) {
                    channels.retain(|c| c.channel() != env.channel());
                    channels.push(env);
                }
            }
            let index = snapshot.bots.len();
            for c in &channels {
                if let Some(address) = c.address() {
                    snapshot
                        .by_address
                        .entry(c.channel())
                        .or_default()
                        .entry(address.to_string())
                        .or_insert(index);
                }
            }
            snapshot.by_id.insert(bot.id, index);
            snapshot.by_slug.insert(bot.slug.clone(), index);
            snapshot.bots.push(Arc::new(BotEntry {
                policy: crate::access::StoredPolicy::of(&bot.policy).policy(),
                ai: crate::assistant::BotAi::of(&bot.ai),
                record: bot,
                channels,
            }));
        }
        *self.snapshot.write().expect("bots lock") = Arc::new(snapshot);
        Ok(())
    }

    /// Reads the bots again when another server changed them; true when
    /// it did.
    pub async fn refresh(&self) -> anyhow::Result<bool> {
        let now = self.store.bots_generation().await?;
        let seen = self.snapshot().generation.clone();
        if now == seen {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().expect("bots lock").clone()
    }

    pub fn all(&self) -> Vec<Arc<BotEntry>> {
        self.snapshot().bots.clone()
    }

    pub fn by_id(&self, id: i64) -> Option<Arc<BotEntry>> {
        let snapshot = self.snapshot();
        snapshot.at(snapshot.by_id.get(&id))
    }

    /// A bot by id, or by slug when `key` is not a number.
    pub fn find(&self, key: &str) -> Option<Arc<BotEntry>> {
        match key.parse::<i64>() {
            Ok(id) => self.by_id(id),
            Err(_) => {
                let snapshot = self.snapshot();
                snapshot.at(snapshot.by_slug.get(key))
            }
        }
    }

    /// The bot a webhook of `channel` addressed to `address` is for: the
    /// bot with that address, else the default bot while it has no address
    /// of that kind; `None`: no bot.
    pub fn route(&self, channel: Channel, address: Option<&str>) -> Option<Arc<BotEntry>> {
        let snapshot = self.snapshot();
        if let Some(bot) = address.and_then(|a| snapshot.with_address(channel, a)) {
            return Some(bot);
        }
        snapshot
            .bots
            .iter()
            .find(|b| b.catches_all(channel))
            .cloned()
    }

    /// What sends for bot `bot_id` through `channel`, if it can.
    pub fn client(&self, bot_id: i64, channel: Channel) -> Option<Arc<Client>> {
        self.by_id(bot_id)?.channel(channel)?.client.clone()
    }

    /// The bot, other than `except`, whose `channel` has this address.
    pub fn address_owner(
        &self,
        channel: Channel,
        address: &str,
        except: i64,
    ) -> Option<Arc<BotEntry>> {
        self.snapshot()
            .with_address(channel, address)
            .filter(|b| b.id() != except)
    }
}

/// A bot's channel as the API shows it: what is not secret, each secret's
/// last characters, where it comes from, and whether it can send (a
/// channel with only its webhook's secret receives).
pub fn channel_view(c: &BotChannel) -> Value {
    let mut shown = c.kind.public(&c.values);
    shown.insert("source".into(), serde_json::json!(c.source));
    shown.insert("can_send".into(), Value::Bool(c.client.is_some()));
    if let Some(p) = &c.problem {
        shown.insert("problem".into(), Value::String(p.clone()));
    }
    Value::Object(shown)
}
