//! Flows: the bot's flows with their version and source; one flow with its
//! statistics (where runs stopped), its definition as YAML, and its
//! versions, each compared with the live one and any of which an editor
//! may make live again; its conversation tests, run against a version in
//! memory; and the editor, where the YAML is checked (each problem shown on
//! its line) before it is published.

use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Refused, enc, items, may};
use super::{Action, Console, NoFields, diff, graph, refused_page, see_other, view};

/// A definition as YAML, its fields in the order flow files write them.
fn yaml_of(definition: &Value) -> String {
    match serde_json::from_value::<confab_flow::Flow>(definition.clone()) {
        Ok(flow) => serde_norway::to_string(&flow),
        Err(_) => serde_norway::to_string(definition),
    }
    .unwrap_or_default()
}

pub async fn list(console: Console) -> Response {
    let listed = console.api.get(&console.path("/flows")).await;
    if let Err(r) = &listed {
        return refused_page(r);
    }
    let flows: Vec<Value> = items(&listed)
        .into_iter()
        .map(|mut f| {
            let id = f["id"].as_str().unwrap_or_default().to_string();
            f["href"] = json!(console.link(&format!("/console/flows/{}", enc(&id))));
            f
        })
        .collect();
    view::render("flows.html", console.page("flows", json!({"flows": flows})))
}

#[derive(Deserialize, Default)]
pub struct FlowQuery {
    done: Option<String>,
    /// A version to compare with the live one.
    diff: Option<i64>,
}

pub async fn one(console: Console, Path(id): Path<String>, Query(q): Query<FlowQuery>) -> Response {
    page(&console, &enc(&id), q, Tests::default(), StatusCode::OK).await
}

/// The flow's conversation tests as the page shows them: the text given,
/// and what running it gave.
#[derive(Default, serde::Serialize)]
struct Tests {
    text: String,
    /// The version asked for; the live one when none.
    version: Option<i64>,
    /// The API's answer: `passed`, `version`, and each test's `results`.
    outcome: Option<Value>,
    /// Why nothing ran: the API's objection.
    error: Option<String>,
    /// No test was given.
    none: bool,
    /// The box holds the tests bundled with the flow.
    bundled: bool,
}

/// The page of flow `flow_id` (encoded).
async fn page(
    console: &Console,
    flow_id: &str,
    q: FlowQuery,
    tests: Tests,
    status: StatusCode,
) -> Response {
    let paths = [
        console.path(&format!("/flows/{flow_id}")),
        console.path(&format!("/flows/{flow_id}/stats")),
        console.path(&format!("/flows/{flow_id}/versions")),
    ];
    let (flow, stats, versions) = tokio::join!(
        console.api.get(&paths[0]),
        console.api.get(&paths[1]),
        console.api.get(&paths[2]),
    );
    let flow = match flow {
        Ok(f) => f,
        Err(r) => return refused_page(&r),
    };
    let yaml = yaml_of(&flow["definition"]);
    let compared = match q.diff {
        Some(v) => {
            let path = console.path(&format!("/flows/{flow_id}/versions/{v}"));
            match console.api.get(&path).await {
                Ok(old) => {
                    let old = yaml_of(&old["definition"]);
                    let lines = diff::lines(&old, &yaml).map(|l| {
                        l.into_iter()
                            .map(|(change, text)| json!({"change": change, "text": text}))
                            .collect::<Vec<_>>()
                    });
                    Some(json!({"version": v, "lines": lines}))
                }
                Err(r) => return refused_page(&r),
            }
        }
        None => None,
    };
    let mut dropped: Vec<(String, i64)> = stats
        .as_ref()
        .ok()
        .and_then(|s| s["dropped_at"].as_object())
        .into_iter()
        .flatten()
        .map(|(node, n)| (node.clone(), n.as_i64().unwrap_or_default()))
        .collect();
    dropped.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let graph = serde_json::from_value::<confab_flow::Flow>(flow["definition"].clone())
        .ok()
        .map(|f| graph::draw(&f, &dropped.iter().cloned().collect()));
    let versions: Vec<Value> = items(&versions)
        .into_iter()
        .map(|mut v| {
            v["publish_action"] = json!(console.link(&format!(
                "/console/flows/{flow_id}/versions/{}/publish",
                v["version"]
            )));
            // The fragment after the query, or the bot is lost in it.
            v["diff_href"] = json!(format!(
                "{}#diff",
                console.link(&format!("/console/flows/{flow_id}?diff={}", v["version"]))
            ));
            v
        })
        .collect();
    // A bundled flow's own tests (also when the flows directory has it)
    // are in the box until others are given.
    let mut tests = tests;
    if tests.text.is_empty() && (flow["source"] == "bundled" || flow["source"] == "file") {
        tests.text = crate::catalog::bundled_tests(flow["id"].as_str().unwrap_or_default());
        tests.bundled = !tests.text.is_empty();
    }
    let failed = tests.outcome.as_ref().map(|o| {
        o["results"].as_array().map_or(0, |r| {
            r.iter().filter(|t| t["passed"] != json!(true)).count()
        })
    });
    view::render_with(
        status,
        "flow.html",
        console.page(
            "flows",
            json!({
                "tests": tests,
                "failed": failed,
                "may_test": may(&console.user, &Method::POST, "/api/v1/bots/{bot}/flows/{flow}/test"),
                "test_action": format!("{}#tests", console.link(&format!("/console/flows/{flow_id}/test"))),
                "transcript_example": TRANSCRIPT_EXAMPLE,
                "flow": flow,
                "yaml": yaml,
                "stats": stats.ok(),
                "dropped": dropped,
                "versions": versions,
                "done": q.done.map(|v| format!("Version {v} is live: new runs start on it.")),
                "compared": compared,
                "graph": graph,
                "flows_href": console.link("/console/flows"),
                "edit_href": console.link(&format!("/console/flows/{flow_id}/edit")),
                "runs_href": console.link(&format!("/console/runs?flow={flow_id}")),
            }),
        ),
    )
}

/// What the tests' box shows while empty.
const TRANSCRIPT_EXAMPLE: &str = "name: says hello\nsteps:\n  - user: hi\n    bot: [{ contains: \"Hello\" }]\n---\nname: another test\nsteps: ...";

#[derive(Deserialize)]
pub struct TestForm {
    /// Transcripts as YAML: one, several as `---` documents or a list, or
    /// `transcripts: [...]`.
    #[serde(default)]
    transcripts: String,
    /// The version to test; the live one when empty.
    #[serde(default)]
    version: String,
}

/// Runs the conversation tests given against a version of the flow,
/// through the API (in memory: no contact, message or record is touched),
/// and shows each test passed or failed, and for a failure where the
/// conversation went otherwise.
pub async fn test(Path(id): Path<String>, Action { console, form }: Action<TestForm>) -> Response {
    let flow_id = enc(&id);
    let version = form.version.trim().parse::<i64>().ok();
    let path = console.path(&format!(
        "/flows/{flow_id}/test{}",
        version.map(|v| format!("?version={v}")).unwrap_or_default()
    ));
    let none = form.transcripts.trim().is_empty();
    // No test is still asked of the API, which refuses it (and refuses
    // whoever may not run tests, as for any other).
    let answer = match transcripts(&form.transcripts) {
        Some(list) => {
            console
                .api
                .post(&path, json!({ "transcripts": list }))
                .await
        }
        None => {
            console
                .api
                .yaml(Method::POST, &path, &form.transcripts)
                .await
        }
    };
    let mut tests = Tests {
        text: form.transcripts.clone(),
        version,
        ..Tests::default()
    };
    let status = match answer {
        Ok(out) => {
            tests.outcome = Some(out);
            StatusCode::OK
        }
        Err(r) if none && r.status == 422 => {
            tests.none = true;
            StatusCode::OK
        }
        Err(r) if matches!(r.status, 400 | 422) => {
            tests.error = Some(r.say());
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(r) => return refused_page(&r),
    };
    page(&console, &flow_id, FlowQuery::default(), tests, status).await
}

/// Several transcripts in one text (`---` documents, or a list) as the
/// API's list of them; `None` for one document (or none, or what does not
/// read as YAML), sent as it is for the API to read and judge.
fn transcripts(text: &str) -> Option<Vec<Value>> {
    if text.trim().is_empty() {
        return Some(Vec::new());
    }
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        docs.push(serde::Deserialize::deserialize(doc).ok()?);
    }
    match docs.as_mut_slice() {
        [Value::Array(list)] => Some(std::mem::take(list)),
        [_] | [] => None,
        _ => Some(docs),
    }
}

/// Makes a version live again (roll back, or forward) through the API,
/// which checks its templates against the catalogue first.
pub async fn publish(
    Path((id, version)): Path<(String, i64)>,
    Action { console, .. }: Action<NoFields>,
) -> Response {
    let flow_id = enc(&id);
    let path = console.path(&format!("/flows/{flow_id}/versions/{version}/publish"));
    match console.api.post(&path, json!(null)).await {
        Ok(_) => see_other(&console.link(&format!("/console/flows/{flow_id}?done={version}"))),
        Err(r) => refused_page(&r),
    }
}

/// The editor, with the live definition.
pub async fn edit(console: Console, Path(id): Path<String>) -> Response {
    let flow = match console
        .api
        .get(&console.path(&format!("/flows/{}", enc(&id))))
        .await
    {
        Ok(f) => f,
        Err(r) => return refused_page(&r),
    };
    let yaml = yaml_of(&flow["definition"]);
    editor(&console, &flow, &yaml, None, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct EditForm {
    yaml: String,
    /// Present when the publish button was pressed; else only a check.
    publish: Option<String>,
}

/// Checks the YAML through the API (a dry run), or publishes it as a new
/// version; what the API finds wrong is shown on its lines.
pub async fn save(Path(id): Path<String>, Action { console, form }: Action<EditForm>) -> Response {
    let flow_id = enc(&id);
    let publish = form.publish.is_some();
    let path = console.path(&format!(
        "/flows/{flow_id}{}",
        if publish { "" } else { "?dry_run=true" }
    ));
    let (checked, notice) = match console.api.yaml(Method::PUT, &path, &form.yaml).await {
        Ok(saved) if publish => {
            return see_other(&console.link(&format!(
                "/console/flows/{flow_id}?done={}",
                saved["version"]
            )));
        }
        Ok(_) => (None, Some("No problems: it is ready to publish.")),
        Err(r) if matches!(r.status, 400 | 409 | 422) => (Some(r), None),
        Err(r) => return refused_page(&r),
    };
    // The editor again, with what the API said: the flow is read only now,
    // as a publish that went through leads elsewhere.
    let flow = match console
        .api
        .get(&console.path(&format!("/flows/{flow_id}")))
        .await
    {
        Ok(f) => f,
        Err(r) => return refused_page(&r),
    };
    let status = checked.as_ref().map_or(StatusCode::OK, |r| {
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
    });
    editor(
        &console,
        &flow,
        &form.yaml,
        checked.as_ref(),
        notice,
        status,
    )
}

/// The editor's page: the text, and below it each line numbered with the
/// problems that lie on it; problems of no line above.
fn editor(
    console: &Console,
    flow: &Value,
    yaml: &str,
    refused: Option<&Refused>,
    done: Option<&str>,
    status: StatusCode,
) -> Response {
    let count = yaml.lines().count();
    // Each problem at its line; one past the end (the text ended too soon)
    // at the last.
    let problems: Vec<(Option<usize>, Value)> = refused
        .map(|r| r.problems.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let line = p["line"]
                .as_u64()
                .map(|n| (n as usize).clamp(1, count.max(1)));
            (line.filter(|_| count > 0), p["message"].clone())
        })
        .collect();
    let listing: Vec<Value> = yaml
        .lines()
        .enumerate()
        .map(|(i, text)| {
            let on: Vec<&Value> = problems
                .iter()
                .filter(|(l, _)| *l == Some(i + 1))
                .map(|(_, m)| m)
                .collect();
            json!({"n": i + 1, "text": text, "problems": on})
        })
        .collect();
    let unplaced: Vec<&Value> = problems
        .iter()
        .filter(|(l, _)| l.is_none())
        .map(|(_, m)| m)
        .collect();
    let placed: Vec<Value> = problems
        .iter()
        .filter_map(|(l, m)| Some(json!({"line": (*l)?, "message": m})))
        .collect();
    let flow_id = enc(flow["id"].as_str().unwrap_or_default());
    view::render_with(
        status,
        "flow_edit.html",
        console.page(
            "flows",
            json!({
                "flow": flow,
                "yaml": yaml,
                "listing": listing,
                "placed": placed,
                "unplaced": unplaced,
                "error": refused.filter(|r| r.problems.is_empty()).map(Refused::say),
                "checked": refused.is_some() || done.is_some(),
                "done": done,
                "save_action": console.link(&format!("/console/flows/{flow_id}/edit")),
                "flow_href": console.link(&format!("/console/flows/{flow_id}")),
            }),
        ),
    )
}
