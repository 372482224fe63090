//! Runs: the bot's runs by flow, status and contact, and one run with its
//! variables and event log.

use axum::extract::{Path, Query};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{enc, flow_ids};
use super::{Console, refused_page, view};

/// Runs on one page.
const RUNS: usize = 50;
/// What a run's status may be, for the filter.
const STATUSES: [&str; 9] = [
    "waiting_input",
    "waiting_effect",
    "waiting_timer",
    "handed_off",
    "completed",
    "failed",
    "expired",
    "cancelled",
    "interrupted",
];

#[derive(Deserialize, Default)]
pub struct RunsQuery {
    flow: Option<String>,
    status: Option<String>,
    /// A contact id or phone number.
    contact: Option<String>,
    cursor: Option<String>,
}

/// The filters that are set, as `(name, value)`.
fn filters(q: &RunsQuery) -> Vec<(&'static str, &str)> {
    [
        ("flow", q.flow.as_deref()),
        ("status", q.status.as_deref()),
        ("contact", q.contact.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v.map(str::trim).filter(|v| !v.is_empty())?)))
    .collect()
}

pub async fn list(console: Console, Query(q): Query<RunsQuery>) -> Response {
    let set = filters(&q);
    let mut path = console.path(&format!("/runs?limit={RUNS}"));
    for (k, v) in &set {
        path.push_str(&format!("&{k}={}", enc(v)));
    }
    if let Some(c) = q.cursor.as_deref().filter(|c| !c.is_empty()) {
        path.push_str(&format!("&cursor={}", enc(c)));
    }
    let flows_path = console.path("/flows");
    let (page, flows) = tokio::join!(console.api.get(&path), console.api.get(&flows_path));
    let page = match page {
        Ok(p) => p,
        // A filter the API refuses (an unknown status) is said on the page.
        Err(r) if r.status == 400 || r.status == 422 => json!({"items": [], "error": r.say()}),
        Err(r) => return refused_page(&r),
    };
    let filter_query: String = set
        .iter()
        .map(|(k, v)| format!("&{k}={}", enc(v)))
        .collect();
    let more = page["next_cursor"]
        .as_str()
        .map(|c| console.link(&format!("/console/runs?cursor={}{filter_query}", enc(c))));
    let runs: Vec<Value> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut r = r.clone();
            r["href"] = json!(console.link(&format!("/console/runs/{}", r["id"])));
            r["contact_href"] = json!(console.link(&format!("/console/inbox/{}", r["contact_id"])));
            r
        })
        .collect();
    let flow_ids = flow_ids(&flows);
    view::render(
        "runs.html",
        console.page(
            "runs",
            json!({
                "runs": runs,
                "more": more,
                "error": page["error"],
                "flows": flow_ids,
                "statuses": STATUSES,
                "flow": q.flow.unwrap_or_default(),
                "status": q.status.unwrap_or_default(),
                "contact": q.contact.unwrap_or_default(),
            }),
        ),
    )
}

/// One run: where it is, its variables and its event log.
pub async fn one(console: Console, Path(id): Path<String>) -> Response {
    let run = match console
        .api
        .get(&console.path(&format!("/runs/{}", enc(&id))))
        .await
    {
        Ok(r) => r,
        Err(r) => return refused_page(&r),
    };
    let events: Vec<Value> = run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let rest: Vec<String> = e
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "type" && *k != "at")
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect();
            json!({"at": e["at"], "type": e["type"], "detail": rest.join(", ")})
        })
        .collect();
    let variables = serde_json::to_string_pretty(&run["variables"]).unwrap_or_default();
    view::render(
        "run.html",
        console.page(
            "runs",
            json!({
                "run": run,
                "events": events,
                "variables": variables,
                "contact_href": console.link(&format!("/console/inbox/{}", run["contact_id"])),
                "runs_href": console.link("/console/runs"),
            }),
        ),
    )
}
