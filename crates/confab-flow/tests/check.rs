use confab_flow::{check, json_schema, parse_flow};

fn problems(src: &str) -> Vec<String> {
    let f = parse_flow("f.yaml", src).unwrap();
    check(&f, &|id| id == "known")
        .into_iter()
        .map(|p| p.to_string())
        .collect()
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

#[test]
fn broken_flows_are_named_by_node_and_problem() {
    let p = problems(
        r#"
id: Bad-Id
nodes:
  - { id: a, type: send, text: "hi {{ name }}", next: nowhere }
  - { id: a, type: end }
  - { id: lonely, type: end }
  - { id: q, type: ask, text: "?", save_as: x, answer: { kind: text, pattern: "([" }, max_tries: 2 }
  - { id: t, type: send, text: "{% if %}" }
  - { id: s, type: set, values: { y: "1 +" } }
  - { id: sub, type: subflow, flow: unknown_flow }
"#,
    );
    assert!(has(&p, "flow id \"Bad-Id\""), "{p:#?}");
    assert!(
        has(&p, "node a: next names unknown node \"nowhere\""),
        "{p:#?}"
    );
    assert!(has(&p, "node a: duplicate node id"), "{p:#?}");
    assert!(has(&p, "node lonely: unreachable from the start"), "{p:#?}");
    assert!(
        has(
            &p,
            "node q: pattern \"([\" is not a valid regular expression"
        ),
        "{p:#?}"
    );
    assert!(
        has(&p, "node q: max_tries and on_give_up go together"),
        "{p:#?}"
    );
    assert!(
        has(&p, "node t: template \"{% if %}\" does not compile"),
        "{p:#?}"
    );
    assert!(
        has(&p, "node s: expression \"1 +\" does not compile"),
        "{p:#?}"
    );
    assert!(
        has(&p, "node sub: subflow names unknown flow \"unknown_flow\""),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "node a: uses variable \"name\" before any node can set it"
        ),
        "{p:#?}"
    );
}

#[test]
fn variables_set_on_some_path_are_fine() {
    let p = problems(
        r#"
id: ok
nodes:
  - { id: q, type: ask, text: "Name?", save_as: name, next: b }
  - { id: b, type: branch, branches: [{ when: "name == 'x'", next: s }], default: e }
  - { id: s, type: set, values: { greeting: "'Hi ' ~ name" }, next: e }
  - { id: e, type: end, text: "{{ greeting }} {{ contact.name }} {{ now }} {{ answer }}" }
"#,
    );
    assert_eq!(p, Vec::<String>::new());
    let p = problems(
        r#"
id: late
nodes:
  - { id: e, type: send, text: "{{ name }}", next: q }
  - { id: q, type: ask, text: "Name?", save_as: name, next: e }
"#,
    );
    assert_eq!(
        p,
        Vec::<String>::new(),
        "reachable again after the ask sets it"
    );
}

#[test]
fn unknown_fields_and_types_are_load_errors() {
    let e = parse_flow(
        "typo.yaml",
        "id: x\nnodes:\n  - { id: a, type: send, txt: hi }\n",
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("typo.yaml: "), "{e}");
    assert!(e.to_string().contains("txt"), "{e}");
    let e = parse_flow(
        "kind.yaml",
        "id: x\nnodes:\n  - { id: a, type: teleport }\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("teleport"), "{e}");
    let e = parse_flow(
        "f.json",
        "{\"id\": \"x\", \"nodes\": [{\"id\": \"a\", \"type\": \"end\"}]}",
    )
    .unwrap();
    assert_eq!(e.nodes.len(), 1);
}

#[test]
fn the_schema_describes_every_node_kind() {
    let schema = json_schema().to_string();
    for kind in [
        "send",
        "ask",
        "menu",
        "set",
        "branch",
        "http",
        "ai",
        "wait",
        "save_record",
        "find_record",
        "update_record",
        "handoff",
        "subflow",
        "end",
    ] {
        assert!(schema.contains(&format!("\"{kind}\"")), "{kind}");
    }
}
