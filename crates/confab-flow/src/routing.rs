//! Which flow a message goes to: the contact's run, or a flow it starts
//! (a keyword trigger, or the default flow for a contact with no run).

use crate::answer::normalise;
use crate::definition::{Flow, Trigger, TriggerKind};
use crate::engine::{Flows, is_command};
use crate::run::{Run, RunStatus};

/// Whether `text` (trimmed) matches a keyword trigger.
pub fn matches(t: &Trigger, text: &str) -> bool {
    let text = text.trim();
    if t.kind == TriggerKind::Regex {
        let src = if t.case_sensitive {
            t.value.clone()
        } else {
            format!("(?i){}", t.value)
        };
        return crate::pattern::compiled(&src).is_ok_and(|re| re.is_match(text));
    }
    let (text, value) = if t.case_sensitive {
        (text.to_string(), t.value.clone())
    } else {
        (text.to_lowercase(), t.value.to_lowercase())
    };
    match t.kind {
        TriggerKind::Exact => text == value,
        TriggerKind::Contains => text.contains(&value),
        TriggerKind::StartsWith => text.starts_with(&value),
        TriggerKind::EndsWith => text.ends_with(&value),
        TriggerKind::Regex => false,
    }
}

/// The flow whose trigger matches `text`, with that trigger's priority:
/// highest priority first, then by flow id, so the choice never depends
/// on load order.
pub fn triggered_by<'a>(flows: &[&'a Flow], text: &str) -> Option<(i32, &'a Flow)> {
    flows
        .iter()
        .flat_map(|f| {
            f.triggers
                .iter()
                .filter(|t| matches(t, text))
                .map(move |t| (t.priority, *f))
        })
        .max_by(|(pa, fa), (pb, fb)| pa.cmp(pb).then_with(|| fb.id.cmp(&fa.id)))
}

/// [`triggered_by`] without the priority.
pub fn triggered<'a>(flows: &[&'a Flow], text: &str) -> Option<&'a Flow> {
    triggered_by(flows, text).map(|(_, f)| f)
}

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Start this flow afresh.
    Start(String),
    /// The contact's current run takes it.
    Current,
    /// Nobody: the message is only stored.
    Nobody,
}

/// Where a message goes, given the flow a trigger chose for it (if any).
/// A run that has finished answers again (its flow restarts, or says its
/// `when_completed`) only where it is the default flow: with no default
/// flow, a flow a keyword, an event or a schedule started does not start
/// again at any later message; the commands (stop, start, restart) and its
/// menu keywords still reach it.
pub fn choose(
    flows: &dyn Flows,
    triggered: Option<&str>,
    default_flow: Option<&str>,
    current: Option<&Run>,
    text: &str,
) -> Destination {
    use Destination::{Current, Nobody, Start};
    if current.is_some_and(|r| r.status == RunStatus::HandedOff) {
        return Current;
    }
    if let Some(f) = triggered {
        let already_in = current.is_some_and(|r| !r.status.is_finished() && r.root_flow() == f);
        return if already_in {
            Current
        } else {
            Start(f.to_string())
        };
    }
    match (current, default_flow) {
        (None, Some(d)) => Start(d.to_string()),
        (None, None) => Nobody,
        (Some(r), Some(d)) if r.status.is_finished() && r.root_flow() != d => Start(d.to_string()),
        (Some(r), None) if r.status.is_finished() => {
            let word = normalise(text);
            let menu = flows
                .flow(r.root_flow())
                .is_some_and(|f| f.menu_keywords.iter().any(|k| normalise(k) == word));
            if is_command(&word) || menu {
                Current
            } else {
                Nobody
            }
        }
        (Some(_), _) => Current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_flow;

    fn flow(id: &str, triggers: &str) -> Flow {
        parse_flow(
            "t.yaml",
            &format!("id: {id}\ntriggers: {triggers}\nnodes:\n  - {{ id: a, type: end }}\n"),
        )
        .unwrap()
    }

    #[test]
    fn triggers_match_by_kind_case_and_priority() {
        let a = flow(
            "a",
            "[{ match: exact, value: Orders }, { match: starts_with, value: 'track ', priority: 1 }]",
        );
        let b = flow(
            "b",
            "[{ match: contains, value: order, priority: 5 }, { match: regex, value: '^ORD-\\d+$', case_sensitive: true }]",
        );
        let c = flow(
            "c",
            "[{ match: ends_with, value: '?', priority: -1 }, { match: exact, value: Help, case_sensitive: true }]",
        );
        let all = [&a, &b, &c];
        let pick = |t: &str| triggered(&all, t).map(|f| f.id.clone());
        assert_eq!(
            pick(" orders "),
            Some("b".into()),
            "both match; b has the higher priority"
        );
        assert_eq!(pick("track my parcel"), Some("a".into()));
        assert_eq!(pick("ORD-123"), Some("b".into()));
        assert_eq!(pick("ord-123"), None, "case-sensitive regex");
        assert_eq!(pick("why?"), Some("c".into()));
        assert_eq!(pick("help"), None);
        assert_eq!(pick("Help"), Some("c".into()));
    }

    /// Where `text` goes: the flow started, or none for the current run
    /// (and "nobody" when it is only stored).
    fn route(
        flows: &[&Flow],
        default: Option<&str>,
        current: Option<&Run>,
        text: &str,
    ) -> Option<String> {
        let by_id: std::collections::HashMap<String, Flow> =
            flows.iter().map(|f| (f.id.clone(), (*f).clone())).collect();
        match choose(
            &by_id,
            triggered(flows, text).map(|f| f.id.as_str()),
            default,
            current,
            text,
        ) {
            Destination::Start(f) => Some(f),
            Destination::Current => None,
            Destination::Nobody => Some("nobody".into()),
        }
    }

    #[test]
    fn the_current_run_keeps_its_messages_unless_a_trigger_names_another_flow() {
        let a = flow("a", "[{ value: start a }]");
        let all = [&a];
        let mut run = Run::new("default", serde_json::json!({}));
        run.node = Some("q".into());
        assert_eq!(
            route(&all, Some("default"), None, "hello"),
            Some("default".into())
        );
        assert_eq!(route(&all, Some("default"), Some(&run), "hello"), None);
        assert_eq!(
            route(&all, Some("default"), Some(&run), "start a"),
            Some("a".into())
        );
        let mut in_a = Run::new("a", serde_json::json!({}));
        in_a.node = Some("q".into());
        assert_eq!(
            route(&all, Some("default"), Some(&in_a), "START A"),
            None,
            "already in a"
        );
        in_a.status = RunStatus::Completed;
        assert_eq!(
            route(&all, Some("default"), Some(&in_a), "hello"),
            Some("default".into())
        );
        assert_eq!(
            route(&all, Some("default"), Some(&in_a), "start a"),
            Some("a".into())
        );
        assert_eq!(
            route(&all, None, None, "hello"),
            Some("nobody".into()),
            "no default flow: nobody answers"
        );
        in_a.status = RunStatus::Completed;
        assert_eq!(
            route(&all, None, Some(&in_a), "thanks!"),
            Some("nobody".into()),
            "no default flow: a finished flow does not start again"
        );
        for command in ["STOP", "start", "restart"] {
            assert_eq!(route(&all, None, Some(&in_a), command), None, "{command}");
        }
        in_a.status = RunStatus::WaitingInput;
        assert_eq!(route(&all, None, Some(&in_a), "thanks!"), None);
        assert_eq!(route(&all, None, None, "start a"), Some("a".into()));
        run.status = RunStatus::HandedOff;
        assert_eq!(
            route(&all, Some("default"), Some(&run), "start a"),
            None,
            "a person has it"
        );
    }
}
