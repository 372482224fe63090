//! Any input, no panic: the flow loader, the checker and the template
//! language take whatever a flow's author writes. Arbitrary text, the
//! bundled flows with lines cut, repeated or replaced, and templates built
//! from the language's own pieces. `PROPTEST_CASES` sets how many cases
//! each property tries.

use confab_flow::template::Templates;
use confab_flow::{check, parse_flow};
use proptest::prelude::*;
use serde_json::json;

fn bundled() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../flows");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(!out.is_empty());
    out
}

/// How a line of a flow file is changed.
#[derive(Clone, Debug)]
enum Edit {
    Cut,
    Repeat,
    Replace(String),
    Insert(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        Just(Edit::Cut),
        Just(Edit::Repeat),
        any::<String>().prop_map(Edit::Replace),
        (
            any::<usize>(),
            prop::sample::select(
                &[
                    ":",
                    "- ",
                    "  ",
                    "{{",
                    "}}",
                    "{%",
                    "next: ",
                    "type: ask",
                    "id: ",
                    "[",
                    "]",
                    "'",
                    "\"",
                    "\t",
                    "&a",
                    "*a",
                    "!!str",
                    "~"
                ][..]
            )
            .prop_map(str::to_string)
        )
            .prop_map(|(at, s)| Edit::Insert(at, s)),
    ]
}

fn apply(source: &str, edits: &[(usize, Edit)]) -> String {
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    for (at, e) in edits {
        if lines.is_empty() {
            break;
        }
        let i = at % lines.len();
        match e {
            Edit::Cut => {
                lines.remove(i);
            }
            Edit::Repeat => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            Edit::Replace(s) => lines[i] = s.clone(),
            Edit::Insert(col, s) => {
                let line = &mut lines[i];
                let mut c = col % (line.chars().count() + 1);
                while !line.is_char_boundary(c) {
                    c -= 1;
                }
                line.insert_str(c, s);
            }
        }
    }
    lines.join("\n")
}

fn load_and_check(source: &str) {
    if let Ok(flow) = parse_flow("fuzz.yaml", source) {
        let _ = check(&flow, &|_| true);
        let _ = check(&flow, &|_| false);
    }
}

/// Pieces of the template language, put together at random.
const PIECES: &[&str] = &[
    "{{ ",
    " }}",
    "{% ",
    " %}",
    "if ",
    "else",
    "endif",
    "for x in ",
    "endfor",
    "range(",
    ")",
    "(",
    "contact.name",
    "contact.phone",
    "answers.rating",
    "x",
    "now",
    " | ",
    "date('%Y')",
    "add_hours(",
    "time_remaining",
    "upper",
    "length",
    "default('')",
    "'",
    "\"",
    " + ",
    " * ",
    " ~ ",
    " >= ",
    " and ",
    "not ",
    "1",
    "99999",
    "-1",
    "0.5",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "loop.index",
    "{# ",
    " #}",
    "set y = ",
    "endset",
    "macro m()",
    "endmacro",
    "m()",
    "raw",
    "endraw",
    "\n",
    "text ",
];

fn template() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        3 => prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|p| p.concat()),
    ]
}

proptest! {
    #[test]
    fn the_loader_takes_any_text(source in any::<String>()) {
        load_and_check(&source);
    }

    #[test]
    fn the_loader_takes_a_bundled_flow_with_any_lines_changed(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<usize>(), edit()), 1..8),
    ) {
        let all = bundled();
        load_and_check(&apply(&all[which.index(all.len())], &edits));
    }

    #[test]
    fn templates_take_any_text(t in template()) {
        let ctx = json!({"contact": {"name": "Ana", "phone": "+14155552671"}, "answers": {"rating": 4}, "x": [1, 2]});
        let engine = Templates::global();
        let _ = engine.render(&t, &ctx);
        let _ = engine.eval(&t, &ctx);
        let _ = engine.test(&t, &ctx);
        let _ = engine.template_variables(&t);
        let _ = engine.expression_variables(&t);
    }
}
