//! The `ai` node: what it asks the runtime for, and what it does with the
//! answer or the failure.

use confab_flow::{
    EffectResult, Event, Flow, Input, Outcome, Reply, Request, Run, RunStatus, check, parse_flow,
    step,
};
use serde_json::json;

const NOW: i64 = 1_768_746_622_000;

fn flow(src: &str) -> Flow {
    let f = parse_flow("ai.yaml", src).unwrap();
    assert_eq!(check(&f, &|_| true), vec![], "the test flow is clean");
    f
}

fn texts(o: &Outcome) -> Vec<String> {
    o.sent()
        .iter()
        .map(|c| c.text().unwrap_or_default())
        .collect()
}

fn start(f: &Flow) -> Outcome {
    step(
        f,
        Run::new(&f.id, json!({"phone": "+27123456789", "name": "Kai"})),
        Input::Start,
        NOW,
    )
}

fn answer(f: &Flow, run: Run, text: &str) -> Outcome {
    step(
        f,
        run,
        Input::Result(EffectResult::Ai {
            text: text.into(),
            heard: None,
        }),
        NOW,
    )
}

fn failed(f: &Flow, run: Run, code: &str, what: &str) -> Outcome {
    step(
        f,
        run,
        Input::Result(EffectResult::AiFailed {
            code: code.into(),
            error: what.into(),
        }),
        NOW,
    )
}

const ASSISTANT: &str = r#"
id: assistant
nodes:
  - id: chat
    type: ai
    system: "You help {{ contact.name }}."
    history: 6
    temperature: 0.2
    max_tokens: 300
    save_as: last_answer
    converse: true
"#;

#[test]
fn a_conversing_node_answers_every_message_and_stays() {
    let f = flow(ASSISTANT);
    let o = start(&f);
    assert_eq!(o.run.status, RunStatus::WaitingEffect);
    assert_eq!(
        o.request(),
        Some(&Request::Ai {
            system: Some("You help Kai.".into()),
            prompt: None,
            history: Some(6),
            media: true,
            model: None,
            temperature: Some(0.2),
            max_tokens: Some(300),
            schema: None,
        })
    );
    let o = answer(&f, o.run, "Hello Kai, how can I help?");
    assert_eq!(texts(&o), ["Hello Kai, how can I help?"]);
    assert_eq!(o.run.status, RunStatus::WaitingInput);
    assert_eq!(o.run.node.as_deref(), Some("chat"));
    assert_eq!(
        o.run.vars["last_answer"],
        json!("Hello Kai, how can I help?")
    );

    // The next message asks again, at the same node.
    let o = step(
        &f,
        o.run,
        Input::Message(Reply::text("and the weather?")),
        NOW,
    );
    assert!(matches!(o.request(), Some(Request::Ai { .. })));
    assert_eq!(o.run.status, RunStatus::WaitingEffect);

    // A message while the answer is being written is answered right after it.
    let more = step(
        &f,
        o.run.clone(),
        Input::Message(Reply::text("hello?")),
        NOW,
    );
    assert!(texts(&more).is_empty() && more.request().is_none());
    assert!(more.run.queued);
    let again = answer(&f, more.run, "It rains.");
    assert_eq!(texts(&again), ["It rains."]);
    assert!(matches!(again.request(), Some(Request::Ai { .. })));
    assert!(!again.run.queued);
    assert_eq!(again.run.status, RunStatus::WaitingEffect);

    // A voice note's answer says what was heard.
    let o = step(
        &f,
        o.run,
        Input::Result(EffectResult::Ai {
            text: "Sunny.".into(),
            heard: Some(" what's the weather ".into()),
        }),
        NOW,
    );
    assert_eq!(
        texts(&o),
        ["🎙️ \u{201c}what's the weather\u{201d}\n\nSunny."]
    );
}

#[test]
fn failures_get_a_clear_text_and_the_conversation_goes_on() {
    let f = flow(ASSISTANT);
    let o = start(&f);
    let o = failed(&f, o.run, "not_configured", "no key");
    assert!(texts(&o)[0].contains("not set up yet"), "{:?}", texts(&o));
    assert_eq!(o.run.status, RunStatus::WaitingInput);
    assert!(
        o.events
            .iter()
            .any(|e| matches!(e, Event::Invalid { code, .. } if code == "not_configured"))
    );

    let o = step(&f, o.run, Input::Message(Reply::text("a video")), NOW);
    let o = failed(&f, o.run, "unsupported", "videos");
    assert_eq!(
        texts(&o),
        ["Sorry, I can't handle videos yet. Send me text, a photo, a voice note or a PDF."]
    );
    for code in ["failed", "too_large", "no_text", "unreadable", "not_heard"] {
        let o = step(&f, o.run.clone(), Input::Message(Reply::text("x")), NOW);
        let o = failed(&f, o.run, code, "");
        assert_eq!(texts(&o).len(), 1, "{code}");
        assert_eq!(o.run.status, RunStatus::WaitingInput, "{code}");
    }
}

#[test]
fn a_node_can_fall_back_from_a_question_it_did_not_understand() {
    let f = flow(
        r#"
id: orders
nodes:
  - id: ask_order
    type: ask
    text: "Your order number?"
    answer: { kind: text, pattern: "^PO-\\d+$" }
    max_tries: 1
    on_give_up: help
    save_as: order
    next: done
  - id: help
    type: ai
    prompt: "The contact was asked for an order number (PO-123) and said: {{ answer }}"
    history: 0
    media: ignore
    errors:
      failed: "Please type it like PO-123."
    on_failure: ask_order
    next: ask_order
  - id: done
    type: end
    text: "Thanks, {{ order }}."
"#,
    );
    let o = start(&f);
    let o = step(&f, o.run, Input::Message(Reply::text("where is it??")), NOW);
    let busy = step(
        &f,
        o.run.clone(),
        Input::Message(Reply::text("hello?")),
        NOW,
    );
    assert_eq!(texts(&busy), [confab_flow::engine::AI_BUSY_TEXT]);
    assert_eq!(busy.run.status, RunStatus::WaitingEffect);
    match o.request() {
        Some(Request::Ai {
            prompt: Some(p),
            history: Some(0),
            media: false,
            ..
        }) => assert!(p.ends_with("said: where is it??"), "{p}"),
        other => panic!("{other:?}"),
    }
    let o = answer(
        &f,
        o.run,
        "Order numbers look like PO-123; find it on your receipt.",
    );
    assert_eq!(
        texts(&o),
        [
            "Order numbers look like PO-123; find it on your receipt.",
            "Your order number?"
        ]
    );
    let o = step(&f, o.run, Input::Message(Reply::text("huh")), NOW);
    let o = failed(&f, o.run, "failed", "");
    assert_eq!(
        texts(&o),
        ["Please type it like PO-123.", "Your order number?"]
    );
    let o = step(&f, o.run, Input::Message(Reply::text("PO-9")), NOW);
    assert_eq!(texts(&o), ["Thanks, PO-9."]);
}

const EXTRACT: &str = r#"
id: intake
nodes:
  - id: pull
    type: ai
    system: "Pull the order number and severity out of the message."
    extract:
      type: object
      properties:
        order_number: { type: string, pattern: "^PO-\\d+$" }
        severity: { enum: [Low, Medium, High] }
      required: [order_number]
    save_as: found
    on_failure: ask
    next: ok
  - id: ask
    type: end
    text: "Which order is it about?"
  - id: ok
    type: end
    text: "{{ found.order_number }} ({{ found.severity | default('no severity') }})"
"#;

#[test]
fn extraction_fills_the_schema_or_takes_the_failure_branch() {
    let f = flow(EXTRACT);
    let o = start(&f);
    let Some(Request::Ai {
        schema: Some(schema),
        ..
    }) = o.request()
    else {
        panic!("{:?}", o.request());
    };
    assert_eq!(schema["additionalProperties"], json!(false));
    assert_eq!(schema["required"], json!(["order_number", "severity"]));

    let ok = answer(
        &f,
        o.run.clone(),
        r#"{"order_number":"PO-77","severity":"High"}"#,
    );
    assert_eq!(texts(&ok), ["PO-77 (High)"]);
    assert_eq!(
        ok.run.vars["found"],
        json!({"order_number": "PO-77", "severity": "High"})
    );

    let partial = answer(
        &f,
        o.run.clone(),
        r#"{"order_number":"PO-1","severity":null}"#,
    );
    assert_eq!(texts(&partial), ["PO-1 (no severity)"]);

    for bad in [
        r#"{"order_number":null}"#,
        "I could not find one",
        r#"{"order_number":"77"}"#,
    ] {
        let o = answer(&f, o.run.clone(), bad);
        assert_eq!(texts(&o), ["Which order is it about?"], "{bad}");
        assert_eq!(o.run.vars["found"], json!(null));
        assert!(
            o.events
                .iter()
                .any(|e| matches!(e, Event::Invalid { code, .. } if code == "not_extracted"))
        );
    }
}

#[test]
fn bad_ai_nodes_are_named() {
    let problems = |src: &str| {
        let f = parse_flow("f.yaml", src).unwrap();
        check(&f, &|_| true)
            .into_iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let p = problems(
        r#"
id: bad
nodes:
  - id: a
    type: ai
    reply: true
    extract: { type: object, properties: { n: { type: array } } }
    temperature: 3
    errors: { oops: "x" }
    next: b
  - id: b
    type: ai
    converse: true
    next: a
"#,
    );
    for needle in [
        "property n",
        "does not reply",
        "temperature must be 0 to 2",
        "errors names \"oops\"",
        "stays where it is",
    ] {
        assert!(p.contains(needle), "{needle} in {p}");
    }
}
