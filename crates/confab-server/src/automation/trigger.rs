//! A trigger as the API takes and gives it (the seed's flat field names),
//! and what checking one makes of it: keyword matchers, an event with its
//! conditions, or a schedule with its audience.

use confab_flow::definition::{Trigger as Keyword, TriggerKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::schedule::{Every, Schedule};
use crate::error::Invalid;

/// A trigger's definition: what it starts (`flow`, with `variables` the
/// flow reads as `input.*`) and when. Only the fields of its
/// `trigger_type` are kept.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerDef {
    pub name: String,
    /// The flow it starts (`flow_id` as earlier clients spell it).
    #[serde(
        alias = "flow_id",
        deserialize_with = "crate::http::api::text_or_number"
    )]
    #[schema(value_type = String)]
    pub flow: String,
    /// `keyword`, `event` or `schedule`.
    #[serde(alias = "type")]
    pub trigger_type: String,
    /// A new trigger is active unless this says otherwise.
    #[serde(default, alias = "is_active", skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Among keyword (or event) triggers that match, the highest wins.
    #[serde(default)]
    pub priority: i64,
    /// What the flow reads as `input.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Map<String, Value>>,
    /// The bot, as earlier clients send it: it must be the route's.
    #[serde(default, skip_serializing)]
    #[schema(value_type = Option<String>)]
    pub bot_id: Option<Value>,

    /// keyword: the words or patterns, any of which matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    /// keyword: exact (the default), contains, starts_with, ends_with or regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,

    /// event: new_contact, message_received, opt_in, opt_out,
    /// flow_completed or flow_failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// event: fields the event must have (`{"source": "meta"}`, `{"flow":
    /// "product_review"}`); a list matches any of its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub event_conditions: Option<Map<String, Value>>,

    /// schedule: once, daily, weekly, monthly or cron.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_type: Option<String>,
    /// schedule: `HH:MM`, local to the time zone (daily, weekly, monthly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_time: Option<String>,
    /// schedule once: a local date and time, `2026-12-24T09:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_at: Option<String>,
    /// schedule weekly: weekdays, `["mon", "thu"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_days: Option<Vec<String>>,
    /// schedule monthly: the day of the month, 1-31 (a short month's last
    /// day stands in for a day it lacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_day: Option<u32>,
    /// schedule cron: 5 fields, minute hour day-of-month month day-of-week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// schedule: an IANA time zone; UTC when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timezone: Option<String>,
    /// schedule: what a server that was down over a due time does when it
    /// is back: `fire_once` (the default; once, however many were missed)
    /// or `skip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire: Option<String>,
    /// schedule: who the flow starts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
}

/// Who a schedule starts its flow for: give exactly one. Contacts who have
/// opted out or are blocked are always left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// Phone numbers in international form (up to 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
    /// The bot's contacts with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Every contact of the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

/// The events a trigger can start a flow on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    NewContact,
    MessageReceived,
    OptIn,
    OptOut,
    FlowCompleted,
    FlowFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::NewContact,
        EventKind::MessageReceived,
        EventKind::OptIn,
        EventKind::OptOut,
        EventKind::FlowCompleted,
        EventKind::FlowFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NewContact => "new_contact",
            EventKind::MessageReceived => "message_received",
            EventKind::OptIn => "opt_in",
            EventKind::OptOut => "opt_out",
            EventKind::FlowCompleted => "flow_completed",
            EventKind::FlowFailed => "flow_failed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The fields a condition may name.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            EventKind::NewContact | EventKind::OptIn | EventKind::OptOut => &["source", "phone"],
            EventKind::MessageReceived => &["source", "phone", "type", "text"],
            EventKind::FlowCompleted | EventKind::FlowFailed => &["source", "phone", "flow"],
        }
    }
}

/// Something that happened to a contact, with the fields conditions test.
#[derive(Clone, Debug)]
pub struct BotEvent {
    pub kind: EventKind,
    pub fields: Vec<(&'static str, String)>,
}

impl BotEvent {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A one-line account of the event, for the trigger's log.
    pub fn describe(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .filter(|(k, _)| *k != "text")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} {}", self.kind.as_str(), fields.join(" "))
            .trim()
            .to_string()
    }
}

/// Whether one condition's expected value admits the event's value. Text
/// compares without regard to case; `whatsapp` is any WhatsApp channel.
fn admits(expected: &Value, field: &str, actual: Option<&str>) -> bool {
    let Some(actual) = actual else {
        return false;
    };
    match expected {
        Value::Array(any) => any.iter().any(|v| admits(v, field, Some(actual))),
        Value::String(s) => {
            s.eq_ignore_ascii_case(actual)
                || field == "source"
                    && s.eq_ignore_ascii_case("whatsapp")
                    && matches!(actual, "twilio" | "meta")
        }
        Value::Number(n) => n.to_string() == actual,
        Value::Bool(b) => b.to_string() == actual,
        _ => false,
    }
}

/// How a checked trigger fires.
#[derive(Clone, Debug)]
pub enum How {
    Keyword(Vec<Keyword>),
    Event {
        kind: EventKind,
        conditions: Map<String, Value>,
    },
    Schedule {
        schedule: Box<Schedule>,
        skip_missed: bool,
        audience: Audience,
    },
}

impl How {
    /// Whether `event` sets this trigger off.
    pub fn fires_on(&self, event: &BotEvent) -> bool {
        match self {
            How::Event { kind, conditions } => {
                *kind == event.kind && conditions.iter().all(|(k, v)| admits(v, k, event.field(k)))
            }
            _ => false,
        }
    }

    /// The keyword of this trigger that `text` matches, if any.
    pub fn keyword_for(&self, text: &str) -> Option<&Keyword> {
        match self {
            How::Keyword(ks) => ks.iter().find(|k| confab_flow::routing::matches(k, text)),
            _ => None,
        }
    }
}

/// The most listed contacts one schedule may name.
pub const MAX_AUDIENCE_LIST: usize = 10_000;

fn problem(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        node: None,
        field: Some(field.into()),
        message: message.into(),
        line: None,
    }
}

/// The fields of the other kinds, which must be left out.
fn stray(def: &TriggerDef, kind: &str) -> Vec<&'static str> {
    let keyword = [
        ("keywords", def.keywords.is_some()),
        ("match_type", def.match_type.is_some()),
        ("case_sensitive", def.case_sensitive.is_some()),
    ];
    let event = [
        ("event_type", def.event_type.is_some()),
        ("event_conditions", def.event_conditions.is_some()),
    ];
    let schedule = [
        ("schedule_type", def.schedule_type.is_some()),
        ("schedule_time", def.schedule_time.is_some()),
        ("schedule_at", def.schedule_at.is_some()),
        ("schedule_days", def.schedule_days.is_some()),
        ("schedule_day", def.schedule_day.is_some()),
        ("cron", def.cron.is_some()),
        ("schedule_timezone", def.schedule_timezone.is_some()),
        ("misfire", def.misfire.is_some()),
        ("audience", def.audience.is_some()),
    ];
    let others: Vec<&[(&'static str, bool)]> = match kind {
        "keyword" => vec![&event, &schedule],
        "event" => vec![&keyword, &schedule],
        _ => vec![&keyword, &event],
    };
    others
        .into_iter()
        .flatten()
        .filter(|(_, given)| *given)
        .map(|(name, _)| *name)
        .collect()
}

impl TriggerDef {
    /// Checks the definition against the bot's flows (`has_flow`): every
    /// problem, each naming its field, or how the trigger fires.
    pub fn check(&self, has_flow: &dyn Fn(&str) -> bool) -> Result<How, Vec<Invalid>> {
        let mut problems = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            problems.push(problem("name", "give a name of 1 to 200 characters"));
        }
        if !has_flow(&self.flow) {
            problems.push(problem(
                "flow",
                format!("the bot has no flow {:?}", self.flow),
            ));
        }
        if let Some(v) = &self.variables
            && serde_json::to_string(v).map_or(0, |s| s.len()) > 64 * 1024
        {
            problems.push(problem("variables", "at most 64 KiB of variables"));
        }
        let kind = self.trigger_type.as_str();
        if !matches!(kind, "keyword" | "event" | "schedule") {
            problems.push(problem(
                "trigger_type",
                format!("{kind:?} is not keyword, event or schedule"),
            ));
            return Err(problems);
        }
        for field in stray(self, kind) {
            problems.push(problem(
                field,
                format!("{field} is not a field of a {kind} trigger"),
            ));
        }
        let how = match kind {
            "keyword" => self.keyword(&mut problems),
            "event" => self.event(&mut problems),
            _ => self.schedule(&mut problems),
        };
        match how {
            Some(how) if problems.is_empty() => Ok(how),
            _ => Err(problems),
        }
    }

    fn keyword(&self, problems: &mut Vec<Invalid>) -> Option<How> {
        let kind = match self.match_type.as_deref().unwrap_or("exact") {
            "exact" => TriggerKind::Exact,
            "contains" => TriggerKind::Contains,
            "starts_with" => TriggerKind::StartsWith,
            "ends_with" => TriggerKind::EndsWith,
            "regex" => TriggerKind::Regex,
            other => {
                problems.push(problem(
                    "match_type",
                    format!("{other:?} is not exact, contains, starts_with, ends_with or regex"),
                ));
                return None;
            }
        };
        let words = self.keywords.as_deref().unwrap_or_default();
        if words.is_empty() || words.len() > 100 {
            problems.push(problem("keywords", "give 1 to 100 keywords"));
            return None;
        }
        let priority = i32::try_from(self.priority).unwrap_or(if self.priority < 0 {
            i32::MIN
        } else {
            i32::MAX
        });
        let mut out = Vec::new();
        for w in words {
            if w.trim().is_empty() || w.chars().count() > 500 {
                problems.push(problem("keywords", "each keyword has 1 to 500 characters"));
                continue;
            }
            if kind == TriggerKind::Regex
                && let Err(e) = confab_flow::pattern::compiled(w)
            {
                problems.push(problem("keywords", format!("{w:?} is not a regex: {e}")));
                continue;
            }
            out.push(Keyword {
                kind,
                value: w.clone(),
                case_sensitive: self.case_sensitive.unwrap_or(false),
                priority,
            });
        }
        Some(How::Keyword(out))
    }

    fn event(&self, problems: &mut Vec<Invalid>) -> Option<How> {
        let Some(name) = self.event_type.as_deref() else {
            problems.push(problem("event_type", "give the event: one of new_contact, message_received, opt_in, opt_out, flow_completed, flow_failed"));
            return None;
        };
        let Some(kind) = EventKind::parse(name) else {
            problems.push(problem("event_type", format!("{name:?} is not one of new_contact, message_received, opt_in, opt_out, flow_completed, flow_failed")));
            return None;
        };
        let conditions = self.event_conditions.clone().unwrap_or_default();
        for (k, v) in &conditions {
            if !kind.fields().contains(&k.as_str()) {
                problems.push(problem(
                    "event_conditions",
                    format!(
                        "{name} has no field {k:?}; it has {}",
                        kind.fields().join(", ")
                    ),
                ));
            }
            let scalar =
                |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
            let fine = match v {
                Value::Array(a) => !a.is_empty() && a.iter().all(scalar),
                v => scalar(v),
            };
            if !fine {
                problems.push(problem(
                    "event_conditions",
                    format!("{k}: give a value, or a list of values"),
                ));
            }
        }
        Some(How::Event { kind, conditions })
    }

    fn schedule(&self, problems: &mut Vec<Invalid>) -> Option<How> {
        let time = || self.schedule_time.clone().unwrap_or_default();
        let every = match self.schedule_type.as_deref() {
            Some("once") => Every::Once {
                schedule_at: self.schedule_at.clone().unwrap_or_default(),
            },
            Some("daily") => Every::Daily {
                schedule_time: time(),
            },
            Some("weekly") => Every::Weekly {
                schedule_days: self.schedule_days.clone().unwrap_or_default(),
                schedule_time: time(),
            },
            Some("monthly") => Every::Monthly {
                schedule_day: self.schedule_day.unwrap_or(0),
                schedule_time: time(),
            },
            Some("cron") => Every::Cron {
                cron: self.cron.clone().unwrap_or_default(),
            },
            other => {
                problems.push(problem(
                    "schedule_type",
                    format!(
                        "{} is not once, daily, weekly, monthly or cron",
                        other.map_or("nothing".into(), |o| format!("{o:?}"))
                    ),
                ));
                return None;
            }
        };
        let skip_missed = match self.misfire.as_deref() {
            None | Some("fire_once") => false,
            Some("skip") => true,
            Some(other) => {
                problems.push(problem(
                    "misfire",
                    format!("{other:?} is not fire_once or skip"),
                ));
                false
            }
        };
        let audience = self.audience.clone().unwrap_or_default();
        let given = [
            audience.contacts.is_some(),
            audience.tag.is_some(),
            audience.all.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 || audience.all == Some(false) {
            problems.push(problem(
                "audience",
                "give one of {\"contacts\": [...]}, {\"tag\": \"...\"} or {\"all\": true}",
            ));
        }
        if let Some(list) = &audience.contacts {
            if list.is_empty() || list.len() > MAX_AUDIENCE_LIST {
                problems.push(problem(
                    "audience",
                    format!("contacts lists 1 to {MAX_AUDIENCE_LIST} phone numbers"),
                ));
            }
            for p in list {
                if let Err(e) = confab_model::PhoneNumber::parse(p) {
                    problems.push(problem("audience", format!("contacts: {p:?}: {e}")));
                    break;
                }
            }
        }
        if audience
            .tag
            .as_deref()
            .is_some_and(|t| t.trim().is_empty() || t.len() > 100)
        {
            problems.push(problem("audience", "tag has 1 to 100 characters"));
        }
        let zone = self.schedule_timezone.as_deref().unwrap_or("UTC");
        match Schedule::parse(&every, zone) {
            Ok(schedule) => Some(How::Schedule {
                schedule: Box::new(schedule),
                skip_missed,
                audience,
            }),
            Err(e) => {
                problems.push(problem(e.field, e.message));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: Value) -> TriggerDef {
        serde_json::from_value(json).unwrap()
    }

    fn fields(r: Result<How, Vec<Invalid>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.field)
            .collect()
    }

    #[test]
    fn the_seeds_shapes_check_and_bad_fields_are_named() {
        let flows = |f: &str| f == "welcome";
        let keyword = def(serde_json::json!({
            "name": "Welcome Trigger", "bot_id": 1, "flow_id": "welcome", "trigger_type": "keyword",
            "keywords": ["hi", "hello", "hey"], "match_type": "exact", "case_sensitive": false, "priority": 10
        }));
        let How::Keyword(ks) = keyword.check(&flows).unwrap() else {
            panic!("a keyword trigger")
        };
        assert_eq!(ks.len(), 3);
        assert_eq!(ks[0].priority, 10);
        let event = def(serde_json::json!({
            "name": "New Contact Welcome", "flow_id": "welcome", "trigger_type": "event",
            "event_type": "new_contact", "event_conditions": {"source": "whatsapp"}
        }));
        let how = event.check(&flows).unwrap();
        let new = |source: &str| BotEvent {
            kind: EventKind::NewContact,
            fields: vec![("source", source.into()), ("phone", "+1555".into())],
        };
        assert!(how.fires_on(&new("meta")));
        assert!(how.fires_on(&new("twilio")));
        assert!(!how.fires_on(&new("simulator")));
        let schedule = def(serde_json::json!({
            "name": "Daily Reminder", "flow_id": "welcome", "trigger_type": "schedule",
            "schedule_type": "daily", "schedule_time": "09:00", "schedule_timezone": "UTC",
            "audience": {"all": true}
        }));
        assert!(matches!(schedule.check(&flows), Ok(How::Schedule { .. })));

        let bad = def(serde_json::json!({
            "name": "x", "flow": "nope", "trigger_type": "schedule", "schedule_type": "cron",
            "cron": "99 * * * *", "schedule_timezone": "Nowhere/Land", "keywords": ["hi"]
        }));
        let named = fields(bad.check(&flows));
        for f in ["flow", "keywords", "audience", "schedule_timezone"] {
            assert!(named.contains(&f.to_string()), "{f} in {named:?}");
        }
        let bad_cron = def(serde_json::json!({
            "name": "x", "flow": "welcome", "trigger_type": "schedule", "schedule_type": "cron",
            "cron": "99 * * * *", "audience": {"tag": "vip"}
        }));
        assert_eq!(fields(bad_cron.check(&flows)), ["cron"]);
        let bad_event = def(serde_json::json!({
            "name": "x", "flow": "welcome", "trigger_type": "event", "event_type": "flow_completed",
            "event_conditions": {"colour": "red"}
        }));
        assert_eq!(fields(bad_event.check(&flows)), ["event_conditions"]);
        let bad_regex = def(serde_json::json!({
            "name": "x", "flow": "welcome", "trigger_type": "keyword", "keywords": ["("], "match_type": "regex"
        }));
        assert_eq!(fields(bad_regex.check(&flows)), ["keywords"]);
        let bad_type =
            def(serde_json::json!({"name": "x", "flow": "welcome", "trigger_type": "sometimes"}));
        assert_eq!(fields(bad_type.check(&flows)), ["trigger_type"]);
    }

    #[test]
    fn conditions_take_lists_and_compare_without_case() {
        let how = How::Event {
            kind: EventKind::FlowCompleted,
            conditions: serde_json::from_value(
                serde_json::json!({"flow": ["product_review", "pms_menu"]}),
            )
            .unwrap(),
        };
        let done = |flow: &str| BotEvent {
            kind: EventKind::FlowCompleted,
            fields: vec![("flow", flow.into())],
        };
        assert!(how.fires_on(&done("Product_Review")));
        assert!(how.fires_on(&done("pms_menu")));
        assert!(!how.fires_on(&done("other")));
        let failed = BotEvent {
            kind: EventKind::FlowFailed,
            fields: vec![("flow", "pms_menu".into())],
        };
        assert!(!how.fires_on(&failed), "another event");
    }
}
