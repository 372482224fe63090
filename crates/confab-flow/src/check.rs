//! The flow checker: everything that can be known wrong about a flow before
//! a contact walks into it, each problem named by node.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use crate::definition::{Flow, MessageSpec, Node};
use crate::engine::templates;
use crate::template::BUILTINS;

/// One thing wrong with a flow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub node: Option<String>,
    /// The field at fault, where one is: `next`, `pattern`, `start`...
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            Some(n) => write!(f, "node {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Names minijinja provides itself, which a template may use unset.
const GLOBALS: [&str; 8] = [
    "range",
    "dict",
    "namespace",
    "debug",
    "loop",
    "true",
    "false",
    "none",
];
/// A subflow may set anything: checking stops trusting what is unset after one.
const ANY: &str = "*";

/// Checks `flow`; `flow_exists` answers whether a subflow's flow is known.
pub fn check(flow: &Flow, flow_exists: &dyn Fn(&str) -> bool) -> Vec<Problem> {
    let mut problems = BTreeSet::new();
    let mut p = |node: Option<&str>, field: Option<&str>, message: String| {
        problems.insert(Problem {
            node: node.map(str::to_string),
            field: field.map(str::to_string),
            message,
        });
    };
    if flow.id.is_empty()
        || !flow
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        p(
            None,
            Some("id"),
            format!(
                "flow id {:?} must be lowercase letters, digits and underscores",
                flow.id
            ),
        );
    }
    if flow.nodes.is_empty() {
        p(None, Some("nodes"), "the flow has no nodes".into());
        return problems.into_iter().collect();
    }
    let mut ids = HashSet::new();
    for n in &flow.nodes {
        if !ids.insert(n.id()) {
            p(Some(n.id()), Some("id"), "duplicate node id".into());
        }
    }
    let start = flow.start_node().unwrap_or_default();
    if !ids.contains(start) {
        p(
            None,
            Some("start"),
            format!("start names unknown node {start:?}"),
        );
    }
    for n in &flow.nodes {
        for (field, target) in n.successors() {
            if !ids.contains(target) {
                p(
                    Some(n.id()),
                    Some(field),
                    format!("{field} names unknown node {target:?}"),
                );
            }
        }
        for (field, problem) in node_problems(n, flow_exists) {
            p(Some(n.id()), field, problem);
        }
    }
    for t in &flow.triggers {
        if t.value.trim().is_empty() {
            p(
                None,
                Some("triggers"),
                "a trigger has an empty value".into(),
            );
        }
        if t.kind == crate::definition::TriggerKind::Regex
            && let Err(e) = regex::Regex::new(&t.value)
        {
            p(
                None,
                Some("triggers"),
                format!(
                    "trigger pattern {:?} is not a valid regular expression: {e}",
                    t.value
                ),
            );
        }
    }
    let declared = crate::collection::CollectionsFile {
        collections: flow.collections.clone(),
    };
    for problem in crate::collection::check_collections(&declared) {
        p(None, Some("collections"), problem);
    }
    if let Some(t) = &flow.when_completed
        && let Err(e) = templates().template_variables(t)
    {
        p(
            None,
            Some("when_completed"),
            format!("when_completed does not compile: {e}"),
        );
    }

    // Reachability and variables, walking from the start.
    let by_id: HashMap<&str, &Node> = flow.nodes.iter().map(|n| (n.id(), n)).collect();
    let mut may_set: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut queue = VecDeque::new();
    if by_id.contains_key(start) {
        may_set.insert(start, HashSet::new());
        queue.push_back(start);
    }
    // May-set variables grow until nothing changes; each pass only adds.
    while let Some(id) = queue.pop_front() {
        let node = by_id[id];
        let mut out = may_set[id].clone();
        out.extend(sets(node));
        for (_, target) in node.successors() {
            let Some((&t, _)) = by_id.get_key_value(target) else {
                continue;
            };
            let first = !may_set.contains_key(t);
            let entry = may_set.entry(t).or_default();
            let before = entry.len();
            entry.extend(out.iter().cloned());
            if first || entry.len() > before {
                queue.push_back(t);
            }
        }
    }
    for n in &flow.nodes {
        let Some(known) = may_set.get(n.id()) else {
            p(Some(n.id()), None, "unreachable from the start".into());
            continue;
        };
        if known.contains(ANY) {
            continue;
        }
        for var in uses(n) {
            if !known.contains(&var)
                && !BUILTINS.contains(&var.as_str())
                && !GLOBALS.contains(&var.as_str())
            {
                p(
                    Some(n.id()),
                    None,
                    format!("uses variable {var:?} before any node can set it"),
                );
            }
        }
    }
    problems.into_iter().collect()
}

/// Variables a node sets.
fn sets(n: &Node) -> Vec<String> {
    let one = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
    match n {
        Node::Ask(a) => vec![a.save_as.clone()],
        Node::Menu(m) => one(&m.save_as),
        Node::Set(s) => s.values.keys().cloned().collect(),
        Node::Http(h) => one(&h.save_as),
        Node::Ai(a) => one(&a.save_as),
        Node::SaveRecord(r) => one(&r.save_as),
        Node::FindRecord(r) => vec![r.save_as.clone()],
        Node::UpdateRecord(r) => one(&r.save_as),
        Node::Subflow(_) => vec![ANY.into()],
        _ => vec![],
    }
}

/// Texts (templates) and expressions of a node.
fn sources(n: &Node) -> (Vec<String>, Vec<String>) {
    let mut texts = Vec::new();
    let mut exprs = Vec::new();
    let message = |m: &MessageSpec, texts: &mut Vec<String>| {
        texts.extend(m.text.clone());
        texts.extend(m.media_url.clone());
        for b in m.buttons.iter().flatten() {
            texts.push(b.title.clone());
        }
        if let Some(l) = &m.list {
            texts.push(l.button.clone());
            for r in l.sections.iter().flat_map(|s| &s.rows) {
                texts.push(r.title.clone());
            }
        }
        if let Some(t) = &m.template {
            texts.extend(t.variables.values().cloned());
        }
    };
    match n {
        Node::Send(s) => message(&s.message(), &mut texts),
        Node::Ask(a) => {
            message(&a.message(), &mut texts);
            texts.extend(a.error.clone());
            texts.extend(a.errors.values().cloned());
        }
        Node::Menu(m) => {
            texts.push(m.text.clone());
            texts.extend(m.error.clone());
            texts.extend(m.options.iter().map(|o| o.label.clone()));
        }
        Node::Set(s) => exprs.extend(s.values.values().cloned()),
        Node::Branch(b) => exprs.extend(b.branches.iter().map(|b| b.when.clone())),
        Node::Http(h) => {
            texts.push(h.url.clone());
            texts.extend(h.headers.values().cloned());
            if let Some(body) = &h.body {
                json_strings(body, &mut texts);
            }
        }
        Node::Ai(a) => {
            texts.extend(a.system.clone());
            texts.extend(a.prompt.clone());
            texts.extend(a.errors.values().cloned());
        }
        Node::Wait(w) => exprs.extend(w.until.clone()),
        Node::SaveRecord(r) => exprs.extend(r.fields.values().cloned()),
        Node::FindRecord(r) => exprs.extend(r.filter.values().cloned()),
        Node::UpdateRecord(r) => {
            exprs.push(r.record.clone());
            exprs.extend(r.fields.values().cloned());
        }
        Node::Handoff(h) => texts.extend(h.text.clone()),
        Node::End(e) => texts.extend(e.text.clone()),
        Node::Subflow(_) => {}
    }
    (texts, exprs)
}

fn json_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| json_strings(x, out)),
        _ => {}
    }
}

/// Variables a node reads.
fn uses(n: &Node) -> BTreeSet<String> {
    let (texts, exprs) = sources(n);
    let mut out = BTreeSet::new();
    for t in texts {
        out.extend(templates().template_variables(&t).unwrap_or_default());
    }
    for e in exprs {
        out.extend(templates().expression_variables(&e).unwrap_or_default());
    }
    out
}

fn node_problems(
    n: &Node,
    flow_exists: &dyn Fn(&str) -> bool,
) -> Vec<(Option<&'static str>, String)> {
    let mut out: Vec<String> = Vec::new();
    let (texts, exprs) = sources(n);
    for t in &texts {
        if let Err(e) = templates().template_variables(t) {
            out.push(format!("template {t:?} does not compile: {e}"));
        }
    }
    for e in &exprs {
        if let Err(err) = templates().expression_variables(e) {
            out.push(format!("expression {e:?} does not compile: {err}"));
        }
    }
    out.extend(n.behaviour().problems(flow_exists));
    out.into_iter().map(|m| (field_of(&m), m)).collect()
}

/// What is wrong with a message a node sends (`send`, `ask`).
pub(crate) fn message_problems(m: &MessageSpec) -> Vec<String> {
    let mut out = Vec::new();
    let shapes = [
        m.media_url.is_some(),
        m.buttons.is_some(),
        m.list.is_some(),
        m.template.is_some(),
    ];
    if shapes.iter().filter(|s| **s).count() > 1 {
        out.push("give only one of media_url, buttons, list and template".into());
    }
    if m.text.is_none() && m.media_url.is_none() && m.template.is_none() {
        out.push("sends nothing: give text, media_url or template".into());
    }
    if m.buttons
        .as_ref()
        .is_some_and(|b| b.is_empty() || b.len() > 3)
    {
        out.push("buttons must hold 1 to 3 buttons".into());
    }
    if let Some(l) = &m.list {
        let rows: usize = l.sections.iter().map(|s| s.rows.len()).sum();
        if rows == 0 || rows > 10 {
            out.push("a list needs 1 to 10 rows".into());
        }
    }
    out
}

/// The field a node's problem is about: the word it opens with, when that
/// is one of the node's fields.
fn field_of(message: &str) -> Option<&'static str> {
    const FIELDS: [&str; 16] = [
        "template",
        "expression",
        "buttons",
        "save_as",
        "max_tries",
        "timeout_seconds",
        "pattern",
        "min_length",
        "method",
        "on_status",
        "errors",
        "temperature",
        "max_tokens",
        "subflow",
        "seconds",
        "options",
    ];
    let first = message.split([' ', ':']).next().unwrap_or_default();
    match first {
        "give" if message.contains("seconds or until") => Some("seconds"),
        "give" | "sends" => Some("text"),
        "a" if message.starts_with("a list") => Some("list"),
        "a" if message.starts_with("a menu") || message.starts_with("a choice") => Some("options"),
        "subflow" => Some("flow"),
        "expression" => Some("when"),
        "template" => Some("text"),
        _ => FIELDS.iter().find(|f| **f == first).copied(),
    }
}
