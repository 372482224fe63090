use confab_flow::run::Frame;
use confab_flow::{
    Effect, EffectResult, Event, Flow, Input, Outcome, Reply, Request, Run, RunStatus, check,
    parse_flow, step,
};
use confab_model::OutboundContent;
use serde_json::json;

const NOW: i64 = 1_768_746_622_000; // 2026-01-18T14:30:22Z

const SURVEY: &str = r#"
id: survey
when_completed: "You already answered, {{ name }}. Send restart to answer again."
nodes:
  - id: welcome
    type: send
    text: "Hi! A few questions."
    next: ask_name
  - id: ask_name
    type: ask
    text: "What is your name?"
    answer: { kind: text, min_length: 2, max_length: 20, pattern: "^[\\p{L} '-]+$" }
    errors:
      too_short: "A name has at least two letters."
      pattern: "Letters only, please."
    save_as: name
    next: ask_more
  - id: ask_more
    type: ask
    text: "Thanks {{ name }}. Anything to add? (yes/no)"
    answer: { kind: yes_no }
    save_as: more
    next: route
  - id: route
    type: branch
    branches:
      - when: more
        next: ask_extra
    default: save
  - id: ask_extra
    type: ask
    text: "Go ahead."
    save_as: extra
    next: save
  - id: save
    type: save_record
    collection: answers
    fields:
      name: name
      extra: extra
      phone: contact.phone
      ref: "'A-' ~ now | date('%Y%m%d')"
    save_as: saved
    next: bye
  - id: bye
    type: end
    text: "Saved as {{ saved.id }}. Bye {{ name }}!"
"#;

fn flow(src: &str) -> Flow {
    let f = parse_flow("test.yaml", src).unwrap();
    assert_eq!(check(&f, &|_| true), vec![], "the test flow is clean");
    f
}

fn texts(o: &Outcome) -> Vec<String> {
    o.sent()
        .iter()
        .map(|c| c.text().unwrap_or_default())
        .collect()
}

fn say(f: &Flow, run: Run, text: &str) -> Outcome {
    step(f, run, Input::Message(Reply::text(text)), NOW)
}

fn start(f: &Flow) -> Outcome {
    step(
        f,
        Run::new(&f.id, json!({"phone": "+27123456789", "name": "Kai"})),
        Input::Start,
        NOW,
    )
}

#[test]
fn a_survey_runs_from_start_to_saved_record() {
    let f = flow(SURVEY);
    let o = start(&f);
    assert_eq!(texts(&o), ["Hi! A few questions.", "What is your name?"]);
    assert_eq!(o.run.status, RunStatus::WaitingInput);

    let o = say(&f, o.run, "A");
    assert_eq!(
        texts(&o),
        ["A name has at least two letters.", "What is your name?"]
    );
    assert!(o.events.contains(&Event::Invalid {
        node: "ask_name".into(),
        code: "too_short".into()
    }));
    let o = say(&f, o.run, "R2D2");
    assert_eq!(texts(&o)[0], "Letters only, please.");
    let o = say(&f, o.run, "  José  ");
    assert_eq!(texts(&o), ["Thanks José. Anything to add? (yes/no)"]);
    let o = say(&f, o.run, "maybe");
    assert_eq!(
        texts(&o),
        [
            "Please answer yes or no.",
            "Thanks José. Anything to add? (yes/no)"
        ]
    );
    let o = say(&f, o.run, "Yep");
    assert_eq!(texts(&o), ["Go ahead."]);
    let o = say(&f, o.run, "Great service");
    assert_eq!(o.run.status, RunStatus::WaitingEffect);
    let Some(Request::SaveRecord { collection, fields }) = o.request() else {
        panic!("{o:?}")
    };
    assert_eq!(collection, "answers");
    assert_eq!(fields["name"], "José");
    assert_eq!(fields["extra"], "Great service");
    assert_eq!(fields["phone"], "+27123456789");
    assert_eq!(fields["ref"], "A-20260118");

    let o = step(
        &f,
        o.run,
        Input::Result(EffectResult::Record {
            record: Some(json!({"id": 7})),
        }),
        NOW,
    );
    assert_eq!(texts(&o), ["Saved as 7. Bye José!"]);
    assert_eq!(o.run.status, RunStatus::Completed);

    let o = say(&f, o.run, "hello?");
    assert_eq!(
        texts(&o),
        ["You already answered, José. Send restart to answer again."]
    );
    assert_eq!(o.run.status, RunStatus::Completed);
    let o = say(&f, o.run, "Restart");
    assert_eq!(texts(&o), ["Hi! A few questions.", "What is your name?"]);
    assert!(
        !o.run.vars.contains_key("name"),
        "answers are not kept across a restart"
    );
    assert_eq!(o.run.vars["contact"]["phone"], "+27123456789");
}

#[test]
fn no_skips_the_optional_question() {
    let f = flow(SURVEY);
    let o = start(&f);
    let o = say(&f, o.run, "Ana");
    let o = say(&f, o.run, "no");
    let Some(Request::SaveRecord { fields, .. }) = o.request() else {
        panic!()
    };
    assert_eq!(fields["extra"], serde_json::Value::Null);
}

#[test]
fn stop_and_start_opt_out_and_in_without_moving_the_run() {
    let f = flow(SURVEY);
    let o = start(&f);
    let o = say(&f, o.run, "STOP");
    assert!(o.effects.contains(&Effect::OptOut));
    assert_eq!(o.run.node.as_deref(), Some("ask_name"));
    let o = say(&f, o.run, "start");
    assert!(o.effects.contains(&Effect::OptIn));
    let o = say(&f, o.run, "Ana");
    assert_eq!(texts(&o), ["Thanks Ana. Anything to add? (yes/no)"]);
}

const MENU: &str = r#"
id: factory
menu_keywords: [menu, hi]
nodes:
  - id: main
    type: menu
    text: "What do you need?"
    save_as: choice
    options:
      - { label: "Order status", next: order, synonyms: [orders] }
      - { label: "Talk to a person", value: human, next: person }
  - id: order
    type: ask
    text: "Order number?"
    save_as: order_no
    next: lookup
  - id: lookup
    type: find_record
    collection: orders
    where: { order_number: "order_no | upper" }
    save_as: order
    on_missing: unknown
    next: found
  - id: unknown
    type: send
    text: "No order {{ order_no | upper }}."
    next: main
  - id: found
    type: end
    text: "{{ order.order_number }} is {{ order.status }}."
  - id: person
    type: handoff
    text: "A colleague will answer you here."
    next: after
  - id: after
    type: end
    text: "Back with the bot."
"#;

#[test]
fn menus_match_numbers_words_labels_and_synonyms() {
    let f = flow(MENU);
    let o = start(&f);
    assert_eq!(
        texts(&o),
        ["What do you need?\n1. Order status\n2. Talk to a person"]
    );
    for pick in ["1", "one", "order status", "ORDERS", " One! "] {
        let o = say(&f, start(&f).run, pick);
        assert_eq!(texts(&o), ["Order number?"], "{pick}");
        assert_eq!(o.run.vars["choice"], "Order status");
    }
    let o = say(&f, start(&f).run, "7");
    assert_eq!(texts(&o)[0], confab_flow::engine::MENU_ERROR);
    let tapped = Reply {
        reply_id: Some("human".into()),
        ..Default::default()
    };
    let o = step(&f, start(&f).run, Input::Message(tapped), NOW);
    assert_eq!(texts(&o), ["A colleague will answer you here."]);
}

#[test]
fn records_found_or_missing_choose_the_branch() {
    let f = flow(MENU);
    let o = say(&f, start(&f).run, "1");
    let o = say(&f, o.run, "ord-1");
    let Some(Request::FindRecords {
        collection,
        filter,
        limit,
    }) = o.request()
    else {
        panic!()
    };
    assert_eq!(
        (collection.as_str(), filter["order_number"].as_str(), *limit),
        ("orders", Some("ORD-1"), 1)
    );
    let missing = step(
        &f,
        o.run.clone(),
        Input::Result(EffectResult::Records { records: vec![] }),
        NOW,
    );
    assert_eq!(texts(&missing)[0], "No order ORD-1.");
    assert_eq!(missing.run.node.as_deref(), Some("main"));
    let found = step(
        &f,
        o.run,
        Input::Result(EffectResult::Records {
            records: vec![json!({"order_number": "ORD-1", "status": "ON HOLD"})],
        }),
        NOW,
    );
    assert_eq!(texts(&found), ["ORD-1 is ON HOLD."]);
    // A menu keyword goes back to the start from anywhere.
    let o = say(&f, found.run, "Hi");
    assert_eq!(o.run.node.as_deref(), Some("main"));
}

#[test]
fn a_handed_off_contact_gets_no_bot_answers_until_resumed() {
    let f = flow(MENU);
    let o = say(&f, start(&f).run, "2");
    assert!(o.effects.contains(&Effect::Handoff));
    assert_eq!(o.run.status, RunStatus::HandedOff);
    let o = say(&f, o.run, "hello?");
    assert!(o.sent().is_empty());
    let o = step(&f, o.run, Input::Resume, NOW);
    assert_eq!(texts(&o), ["Back with the bot."]);
    assert_eq!(o.run.status, RunStatus::Completed);
}

#[test]
fn a_flow_that_loops_without_waiting_is_stopped() {
    let f = flow(
        r#"
id: spin
nodes:
  - { id: a, type: set, values: { n: "(n or 0) + 1" }, next: b }
  - { id: b, type: branch, branches: [{ when: "true", next: a }], default: a }
"#,
    );
    let o = start(&f);
    assert_eq!(o.run.status, RunStatus::Failed);
    assert!(
        o.events
            .iter()
            .any(|e| matches!(e, Event::Error { message } if message.contains("loops")))
    );
    assert_eq!(texts(&o), [confab_flow::engine::ERROR_TEXT]);
    assert!(o.run.vars["n"].as_i64().unwrap() <= 100);
}

#[test]
fn timers_drive_waits_and_question_timeouts() {
    let f = flow(
        r#"
id: timed
nodes:
  - { id: q, type: ask, text: "Still there?", save_as: a, timeout_seconds: 60, on_timeout: gone, next: pause }
  - { id: pause, type: wait, seconds: 3600, next: later }
  - { id: later, type: end, text: "An hour later." }
  - { id: gone, type: end, text: "Talk soon." }
"#,
    );
    let o = start(&f);
    assert!(o.effects.contains(&Effect::StartTimer {
        token: 1,
        at_ms: NOW + 60_000
    }));
    let timed_out = step(&f, o.run.clone(), Input::Timer(1), NOW + 60_000);
    assert_eq!(texts(&timed_out), ["Talk soon."]);
    let o = say(&f, o.run, "yes");
    assert!(o.effects.contains(&Effect::StartTimer {
        token: 2,
        at_ms: NOW + 3_600_000
    }));
    assert_eq!(o.run.status, RunStatus::WaitingTimer);
    let stale = step(&f, o.run.clone(), Input::Timer(1), NOW + 70_000);
    assert!(
        stale.sent().is_empty(),
        "the question's timer no longer counts"
    );
    let o = step(&f, o.run, Input::Timer(2), NOW + 3_600_000);
    assert_eq!(texts(&o), ["An hour later."]);
}

#[test]
fn http_results_route_by_status() {
    let f = flow(
        r#"
id: hook
nodes:
  - id: call
    type: http
    method: post
    url: "https://erp.example/orders/{{ contact.phone }}"
    headers: { Authorization: "Bearer abc" }
    body: { phone: "{{ contact.phone }}", n: 1 }
    save_as: resp
    on_status: { "404": none }
    on_failure: broken
    next: ok
  - { id: ok, type: end, text: "Got {{ resp.body.count }}." }
  - { id: none, type: end, text: "Nothing." }
  - { id: broken, type: end, text: "Try later." }
"#,
    );
    let o = start(&f);
    let Some(Request::Http {
        method,
        url,
        body,
        headers,
        timeout_ms,
    }) = o.request()
    else {
        panic!()
    };
    assert_eq!(method, "POST");
    assert_eq!(url, "https://erp.example/orders/+27123456789");
    assert_eq!(
        body.as_ref().unwrap(),
        &json!({"phone": "+27123456789", "n": 1})
    );
    assert_eq!(
        headers[0],
        ("Authorization".to_string(), "Bearer abc".to_string())
    );
    assert_eq!(*timeout_ms, 10_000);
    let res = |r| texts(&step(&f, o.run.clone(), Input::Result(r), NOW));
    assert_eq!(
        res(EffectResult::Http {
            status: 200,
            body: json!({"count": 3})
        }),
        ["Got 3."]
    );
    assert_eq!(
        res(EffectResult::Http {
            status: 404,
            body: json!(null)
        }),
        ["Nothing."]
    );
    assert_eq!(
        res(EffectResult::Http {
            status: 500,
            body: json!(null)
        }),
        ["Try later."]
    );
    assert_eq!(
        res(EffectResult::Failed {
            error: "timeout".into()
        }),
        ["Try later."]
    );
}

#[test]
fn subflows_return_to_their_caller() {
    let main = flow(
        r#"
id: main
nodes:
  - { id: call, type: subflow, flow: consent, next: done }
  - { id: done, type: end, text: "Consent: {{ 'given' if ok else 'refused' }}." }
"#,
    );
    let consent = flow(
        r#"
id: consent
nodes:
  - { id: q, type: ask, text: "Do you agree?", answer: { kind: yes_no }, save_as: ok }
"#,
    );
    let flows = std::collections::HashMap::from([
        ("main".to_string(), main),
        ("consent".to_string(), consent),
    ]);
    let o = step(&flows, Run::new("main", json!({})), Input::Start, NOW);
    assert_eq!(o.run.flow, "consent");
    assert_eq!(
        o.run.stack,
        [Frame {
            flow: "main".into(),
            next: Some("done".into())
        }]
    );
    let o = step(&flows, o.run, Input::Message(Reply::text("yes")), NOW);
    assert_eq!(
        o.sent()[0],
        &OutboundContent::Text {
            body: "Consent: given.".into()
        }
    );
    assert_eq!(o.run.status, RunStatus::Completed);
}

#[test]
fn any_text_at_any_step_never_panics_or_strands_the_run() {
    let flows = [flow(SURVEY), flow(MENU)];
    let inputs = [
        "",
        " ",
        "1",
        "yes",
        "no",
        "restart",
        "stop",
        "start",
        "menu",
        "{{ x }}",
        "%",
        "🙂",
        "ñ",
        &"x".repeat(6000),
    ];
    for f in &flows {
        let mut run = start(f).run;
        for (i, text) in inputs.iter().cycle().take(200).enumerate() {
            let o = say(f, run, text);
            run = o.run;
            if let Some(node) = &run.node {
                assert!(
                    f.node(node).is_some(),
                    "step {i}: run at unknown node {node}"
                );
            }
            if run.status == RunStatus::WaitingEffect {
                run = step(
                    f,
                    run,
                    Input::Result(EffectResult::Records { records: vec![] }),
                    NOW,
                )
                .run;
            }
            if run.status == RunStatus::WaitingEffect {
                run = step(
                    f,
                    run,
                    Input::Result(EffectResult::Record {
                        record: Some(json!({"id": 1})),
                    }),
                    NOW,
                )
                .run;
            }
        }
    }
}

#[test]
fn a_run_started_with_variables_reads_them_as_input_and_keeps_them_on_restart() {
    let f = flow(
        "id: remind\nnodes:\n  - { id: a, type: ask, text: \"Your order {{ input.order | default('?') }} is ready. Collect it?\", save_as: ok, next: b }\n  - { id: b, type: end, text: \"Thanks for {{ input.order | default('?') }}\" }\n",
    );
    let mut vars = serde_json::Map::new();
    vars.insert("order".into(), json!("ORD-7"));
    let run = Run::new(&f.id, json!({"phone": "+27123456789"}));
    let o = step(&f, run, Input::StartWith(vars), NOW);
    assert_eq!(texts(&o), ["Your order ORD-7 is ready. Collect it?"]);
    let o = say(&f, o.run, "restart");
    assert_eq!(texts(&o), ["Your order ORD-7 is ready. Collect it?"]);
    // Started by a message, there is no input.
    assert_eq!(texts(&start(&f)), ["Your order ? is ready. Collect it?"]);
}
