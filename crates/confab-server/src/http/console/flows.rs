//! Flows: the bot's flows with their version and source; one flow with its
//! statistics (where runs stopped), its definition as YAML, and its
//! versions, any of which an editor may make live again.

use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};

use super::api::{enc, items};
use super::{Action, Console, NoFields, refused_page, see_other, view};

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

#[derive(serde::Deserialize, Default)]
pub struct Done {
    done: Option<String>,
}

pub async fn one(console: Console, Path(id): Path<String>, Query(q): Query<Done>) -> Response {
    let flow_id = enc(&id);
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
    let yaml = serde_norway::to_string(&flow["definition"]).unwrap_or_default();
    let mut dropped: Vec<(String, i64)> = stats
        .as_ref()
        .ok()
        .and_then(|s| s["dropped_at"].as_object())
        .into_iter()
        .flatten()
        .map(|(node, n)| (node.clone(), n.as_i64().unwrap_or_default()))
        .collect();
    dropped.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let versions: Vec<Value> = items(&versions)
        .into_iter()
        .map(|mut v| {
            v["publish_action"] = json!(console.link(&format!(
                "/console/flows/{flow_id}/versions/{}/publish",
                v["version"]
            )));
            v
        })
        .collect();
    view::render(
        "flow.html",
        console.page(
            "flows",
            json!({
                "flow": flow,
                "yaml": yaml,
                "stats": stats.ok(),
                "dropped": dropped,
                "versions": versions,
                "done": q.done.map(|v| format!("Version {v} is live: new runs start on it.")),
                "flows_href": console.link("/console/flows"),
                "runs_href": console.link(&format!("/console/runs?flow={flow_id}")),
            }),
        ),
    )
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
