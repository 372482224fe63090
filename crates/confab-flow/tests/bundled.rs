//! The bundled flows in `flows/`: every one passes the checker, and every
//! transcript in `flows/tests` passes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use confab_flow::collection::{CollectionsFile, check_collections};
use confab_flow::transcript::{Transcript, run_transcript};
use confab_flow::{Flow, check, parse_flow};

fn flows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../flows")
}

fn load() -> (
    HashMap<String, Flow>,
    HashMap<String, confab_flow::collection::Collection>,
) {
    let mut flows = HashMap::new();
    let mut collections = HashMap::new();
    for entry in std::fs::read_dir(flows_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        if name == "collections.yaml" {
            let file: CollectionsFile = serde_norway::from_str(&src).unwrap();
            assert_eq!(check_collections(&file), Vec::<String>::new());
            collections.extend(file.collections.into_iter().map(|c| (c.name.clone(), c)));
        } else {
            let f = parse_flow(&name, &src).unwrap_or_else(|e| panic!("{e}"));
            flows.insert(f.id.clone(), f);
        }
    }
    (flows, collections)
}

#[test]
fn bundled_flows_pass_the_checker() {
    let (flows, _) = load();
    assert!(flows.contains_key("product_review"));
    for f in flows.values() {
        let problems = check(f, &|id| flows.contains_key(id));
        assert!(problems.is_empty(), "{}: {problems:#?}", f.id);
    }
}

#[test]
fn bundled_transcripts_pass() {
    let (flows, collections) = load();
    let mut ran = 0;
    let mut failures = Vec::new();
    for dir in std::fs::read_dir(flows_dir().join("tests")).unwrap() {
        for entry in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            let t: Transcript = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Err(e) = run_transcript(&t, &flows, &collections) {
                failures.push(format!("{}:\n{e}", path.display()));
            }
            ran += 1;
        }
    }
    assert!(ran >= 7, "{ran} transcripts");
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn a_failing_transcript_shows_the_conversation_and_the_difference() {
    let (flows, collections) = load();
    let t: Transcript = serde_norway::from_str(
        r#"
flow: product_review
steps:
  - user: hi
    bot: [{ contains: "What's your name?" }]
  - user: Ana
    bot: ["Hello Ana"]
"#,
    )
    .unwrap();
    let err = run_transcript(&t, &flows, &collections).unwrap_err();
    assert!(
        err.contains("user: hi") && err.contains("user: Ana"),
        "{err}"
    );
    assert!(
        err.contains("Nice to meet you, Ana!"),
        "what the bot said: {err}"
    );
    assert!(
        err.contains("expected") && err.contains("\"Hello Ana\""),
        "{err}"
    );
}
