//! Random conversations against the bundled flows: whatever a contact
//! sends, in whatever order, with whatever results the runtime feeds back,
//! a step never panics and never leaves the run somewhere undefined.

use std::collections::HashMap;
use std::path::Path;

use confab_flow::{
    EffectResult, Flow, Flows, Input, Node, Reply, Run, RunStatus, parse_flow, step,
};
use serde_json::json;

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "",
    " ",
    "hi",
    "menu",
    "restart",
    "RESTART",
    "stop",
    "start",
    "factory",
    "review",
    "yes",
    "no",
    "maybe",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "one",
    "six",
    "ORD-12345",
    "ord-99999",
    "MACH-001",
    "high",
    "Low",
    "Internal Reject",
    "Return",
    "Bearing",
    "whatsapp",
    "Ana",
    "A",
    "José O'Neil-Ruíz",
    "Great kettle, boils fast",
    "{{ now }}",
    "{% for %}",
    "%s",
    "🙂",
    "ñ",
    "\u{0}",
    "<Response>",
    "&amp;",
    "MAINT-20260118143022",
];

fn bundled() -> HashMap<String, Flow> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../flows");
    let mut flows = HashMap::new();
    for name in ["product_review.yaml", "pms_menu.yaml"] {
        let f = parse_flow(name, &std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        flows.insert(f.id.clone(), f);
    }
    flows
}

fn text(rng: &mut Rng) -> String {
    match rng.next() % 10 {
        0 => (0..rng.next() % 300)
            .map(|_| char::from_u32(32 + (rng.next() % 2000) as u32).unwrap_or('x'))
            .collect(),
        1 => format!("{} {}", rng.pick(WORDS), rng.pick(WORDS)),
        _ => rng.pick(WORDS).to_string(),
    }
}

fn result(rng: &mut Rng) -> EffectResult {
    match rng.next() % 5 {
        0 => EffectResult::Records { records: vec![] },
        1 => EffectResult::Records {
            records: vec![
                json!({"id": 1, "order_number": "ORD-12345", "status": "In Progress", "progress": 75,
                "expected_date": "2026-01-25T16:00:00Z", "ticket": "MAINT-1", "due_at": "2026-01-19T14:30:22Z", "sla_hours": 24}),
            ],
        },
        2 => EffectResult::Record {
            record: Some(json!({"id": 7})),
        },
        3 => EffectResult::Record { record: None },
        _ => EffectResult::Failed {
            error: "the database said no".into(),
        },
    }
}

fn check_run(flows: &HashMap<String, Flow>, run: &Run, ctx: &str) {
    let flow = flows
        .flow(&run.flow)
        .unwrap_or_else(|| panic!("{ctx}: run in unknown flow {}", run.flow));
    match (&run.node, run.status) {
        (Some(node), status) => {
            let n = flow
                .node(node)
                .unwrap_or_else(|| panic!("{ctx}: run at unknown node {node}"));
            if status == RunStatus::WaitingInput {
                assert!(
                    matches!(n, Node::Ask(_) | Node::Menu(_)),
                    "{ctx}: waits for input at {} node {node}",
                    n.kind()
                );
            }
        }
        (None, status) => assert!(
            status.is_finished() || status == RunStatus::WaitingInput,
            "{ctx}: {status:?} at no node"
        ),
    }
}

#[test]
fn random_conversations_never_panic_or_strand_a_run() {
    let flows = bundled();
    let ids: Vec<String> = flows.keys().cloned().collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut now = 1_768_746_622_000i64;
    for conversation in 0..300 {
        let flow = rng.pick(&ids).clone();
        let mut out = step(
            &flows,
            Run::new(&flow, json!({"phone": "+27123456789"})),
            Input::Start,
            now,
        );
        for turn in 0..40 {
            let ctx = format!("conversation {conversation}, turn {turn}");
            let mut run = out.run.clone();
            // The runtime answers every request before the next message.
            let mut guard = 0;
            while run.status == RunStatus::WaitingEffect && guard < 20 {
                run = step(&flows, run, Input::Result(result(&mut rng)), now).run;
                guard += 1;
            }
            check_run(&flows, &run, &ctx);
            now += (rng.next() % 4_000_000) as i64;
            let input = match rng.next() % 12 {
                0 => Input::Timer(run.timer.unwrap_or(rng.next() % 5)),
                1 => Input::Resume,
                2 => Input::Message(Reply {
                    reply_id: Some(text(&mut rng)),
                    ..Default::default()
                }),
                _ => Input::Message(Reply::text(&text(&mut rng))),
            };
            out = step(&flows, run, input, now);
            assert!(
                out.effects
                    .iter()
                    .filter(|e| matches!(e, confab_flow::Effect::Request { .. }))
                    .count()
                    <= 1,
                "{ctx}"
            );
        }
    }
}
