//! Automation: triggers that start a bot's flows on a keyword, on an
//! event, or on a schedule.
//!
//! Here: what a trigger is (`trigger`), when a schedule is due
//! (`schedule`), and the [`Book`] every server keeps of the bots' active
//! triggers, so that matching a message costs no database round trip. The
//! book is read again whenever the bots' generation moves (any trigger
//! change on any server). Where triggers fire: messages and events in the
//! runtime's step (`runtime::fired`), schedules in `worker::schedules`.

pub mod schedule;
pub mod trigger;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use confab_flow::definition::Trigger as Keyword;
use confab_store::{Store, StoredTrigger};
use serde_json::{Map, Value};

pub use trigger::{Audience, BotEvent, EventKind, How, TriggerDef};

/// An active trigger, checked.
#[derive(Clone, Debug)]
pub struct Active {
    pub id: i64,
    pub bot_id: i64,
    pub name: String,
    pub flow: String,
    pub priority: i64,
    pub variables: Map<String, Value>,
    pub how: How,
}

impl Active {
    /// A stored trigger as it fires, or why it cannot.
    pub fn of(t: &StoredTrigger) -> Result<Active, String> {
        let (def, how) = read(&t.spec)?;
        Ok(Active {
            id: t.id,
            bot_id: t.bot_id,
            name: t.name.clone(),
            flow: t.flow_id.clone(),
            priority: def.priority,
            variables: def.variables.unwrap_or_default(),
            how,
        })
    }
}

/// A stored definition and how it fires. The flow is looked up when it
/// fires: one deleted since makes an error in the log, not a trigger that
/// vanishes.
pub fn read(spec: &str) -> Result<(TriggerDef, How), String> {
    let def: TriggerDef = serde_json::from_str(spec).map_err(|e| e.to_string())?;
    let how = def.check(&|_| true).map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok((def, how))
}

/// One bot's active triggers, highest priority first (then oldest).
#[derive(Default, Debug)]
pub struct BotTriggers {
    pub list: Vec<Active>,
}

impl BotTriggers {
    fn new(mut list: Vec<Active>) -> BotTriggers {
        list.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        BotTriggers { list }
    }

    /// The keyword trigger `text` sets off, with the keyword it matched.
    pub fn keyword(&self, text: &str) -> Option<(&Active, &Keyword)> {
        self.list
            .iter()
            .find_map(|a| a.how.keyword_for(text).map(|k| (a, k)))
    }

    /// The event trigger `event` sets off.
    pub fn on(&self, event: &BotEvent) -> Option<&Active> {
        self.list.iter().find(|a| a.how.fires_on(event))
    }

    /// Whether any trigger waits for events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.list
            .iter()
            .any(|a| matches!(&a.how, How::Event { kind: k, .. } if *k == kind))
    }
}

/// Every bot's active triggers, swapped whole on a change.
#[derive(Default)]
pub struct Book {
    by_bot: RwLock<Arc<HashMap<i64, Arc<BotTriggers>>>>,
}

impl Book {
    pub fn of(&self, bot_id: i64) -> Arc<BotTriggers> {
        self.by_bot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&bot_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Reads the active triggers again.
    pub async fn reload(&self, store: &Store) -> anyhow::Result<()> {
        let mut by_bot: HashMap<i64, Vec<Active>> = HashMap::new();
        for t in store.triggers(None).await? {
            if !t.active {
                continue;
            }
            match Active::of(&t) {
                Ok(a) => by_bot.entry(t.bot_id).or_default().push(a),
                Err(e) => {
                    tracing::warn!(trigger = t.id, error = %e, "a stored trigger cannot be used")
                }
            }
        }
        let built = by_bot
            .into_iter()
            .map(|(bot, list)| (bot, Arc::new(BotTriggers::new(list))))
            .collect();
        *self.by_bot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(built);
        Ok(())
    }
}
