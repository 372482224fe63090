//! One file per kind of node: what it does when a run enters it, when an
//! answer, a result or a timer reaches it, and what the checker says about
//! it beyond what every node is checked for. The engine dispatches here;
//! what a node file says (its fields) is in `definition`.

pub(crate) mod ai;
mod ask;
mod branch;
mod end;
mod find_record;
mod handoff;
mod http;
mod menu;
mod save_record;
mod send;
mod set;
mod subflow;
mod update_record;
mod wait;

use crate::answer::Reply;
use crate::definition::Node;
use crate::engine::{Broken, Stepper};
use crate::run::EffectResult;

/// Where entering a node leads: on to a node (none: the flow ends here),
/// or nowhere until an answer, a result or a timer comes.
pub(crate) enum Then {
    Go(Option<String>),
    Wait,
}

/// A kind of node's behaviour. What a kind does not take (`None`) the
/// engine answers for every kind alike.
pub(crate) trait Kind {
    /// The run enters the node.
    fn enter(&self, s: &mut Stepper) -> Result<Then, Broken>;

    /// A message from the contact while the run waits at the node for one.
    fn answer(&self, _s: &mut Stepper, _reply: &Reply) -> Option<Result<(), Broken>> {
        None
    }

    /// A message from the contact while the run waits for a result or a
    /// timer here.
    fn while_waiting(&self, _s: &mut Stepper) -> Option<Result<(), Broken>> {
        None
    }

    /// The result of the request the run waits for at the node.
    fn result(&self, _s: &mut Stepper, _result: EffectResult) -> Option<Result<(), Broken>> {
        None
    }

    /// A request of the node's that failed is the node's to handle (else
    /// the run fails).
    fn takes_failures(&self) -> bool {
        false
    }

    /// The node's timer went off.
    fn timer(&self, _s: &mut Stepper) -> Option<Result<(), Broken>> {
        None
    }

    /// Where an operator handing the conversation back leads.
    fn resumed(&self) -> Option<String> {
        None
    }

    /// What the checker says about the node's own fields.
    fn problems(&self, _flow_exists: &dyn Fn(&str) -> bool) -> Vec<String> {
        Vec::new()
    }
}

impl Node {
    pub(crate) fn behaviour(&self) -> &dyn Kind {
        match self {
            Node::Send(n) => n,
            Node::Ask(n) => n,
            Node::Menu(n) => n,
            Node::Set(n) => n,
            Node::Branch(n) => n,
            Node::Http(n) => n,
            Node::Ai(n) => n,
            Node::Wait(n) => n,
            Node::SaveRecord(n) => n,
            Node::FindRecord(n) => n,
            Node::UpdateRecord(n) => n,
            Node::Handoff(n) => n,
            Node::Subflow(n) => n,
            Node::End(n) => n,
        }
    }
}

/// A record request's result saved where the node says.
fn store(s: &mut Stepper, var: &Option<String>, value: serde_json::Value) {
    if let Some(var) = var {
        s.set_var(var, value);
    }
}

/// Every kind's golden cases (`testdata/<kind>.yaml`): flows that use it,
/// checked clean, and conversations through them that must go as written.
#[cfg(test)]
mod golden {
    use std::collections::HashMap;

    use serde::Deserialize;
    use serde_json::Value;

    use crate::collection::{Collection, CollectionsFile, check_collections};
    use crate::definition::Flow;
    use crate::transcript::{Transcript, run_transcript};

    const CASES: &[(&str, &str)] = &[
        ("send", include_str!("testdata/send.yaml")),
        ("ask", include_str!("testdata/ask.yaml")),
        ("menu", include_str!("testdata/menu.yaml")),
        ("set", include_str!("testdata/set.yaml")),
        ("branch", include_str!("testdata/branch.yaml")),
        ("http", include_str!("testdata/http.yaml")),
        ("ai", include_str!("testdata/ai.yaml")),
        ("wait", include_str!("testdata/wait.yaml")),
        ("save_record", include_str!("testdata/save_record.yaml")),
        ("find_record", include_str!("testdata/find_record.yaml")),
        ("update_record", include_str!("testdata/update_record.yaml")),
        ("handoff", include_str!("testdata/handoff.yaml")),
        ("subflow", include_str!("testdata/subflow.yaml")),
        ("end", include_str!("testdata/end.yaml")),
    ];

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Golden {
        #[serde(default)]
        collections: Vec<Collection>,
        flows: Vec<Flow>,
        transcripts: Vec<Value>,
    }

    /// The kinds of node the flow format has, as its schema lists them.
    fn kinds() -> Vec<String> {
        let schema = serde_json::to_value(crate::json_schema()).unwrap();
        let mut kinds: Vec<String> = schema["$defs"]["Node"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v["properties"]["type"]["const"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        kinds.sort();
        kinds
    }

    #[test]
    fn every_kind_of_node_has_golden_cases() {
        let mut golden: Vec<String> = CASES.iter().map(|(k, _)| k.to_string()).collect();
        golden.sort();
        assert_eq!(golden, kinds());
    }

    #[test]
    fn every_golden_case_goes_as_written() {
        for (kind, text) in CASES {
            let g: Golden = serde_norway::from_str(text).unwrap_or_else(|e| panic!("{kind}: {e}"));
            let problems = check_collections(&CollectionsFile {
                collections: g.collections.clone(),
            });
            assert!(problems.is_empty(), "{kind}: {problems:?}");
            assert!(
                g.flows[0].nodes.iter().any(|n| n.kind() == *kind),
                "{kind}: its first flow has no {kind} node"
            );
            let flows: HashMap<String, Flow> =
                g.flows.iter().map(|f| (f.id.clone(), f.clone())).collect();
            for f in &g.flows {
                let problems = crate::check(f, &|id| flows.contains_key(id));
                assert!(problems.is_empty(), "{kind}: {} {problems:?}", f.id);
            }
            let collections: HashMap<String, Collection> = g
                .collections
                .iter()
                .map(|c| (c.name.clone(), c.clone()))
                .collect();
            for mut t in g.transcripts {
                if let Some(o) = t.as_object_mut() {
                    o.entry("flow")
                        .or_insert(Value::String(g.flows[0].id.clone()));
                }
                let t: Transcript =
                    serde_json::from_value(t).unwrap_or_else(|e| panic!("{kind}: {e}"));
                if let Err(difference) = run_transcript(&t, &flows, &collections) {
                    panic!(
                        "{kind}: {}:\n{difference}",
                        t.name.as_deref().unwrap_or("?")
                    );
                }
            }
        }
    }
}
