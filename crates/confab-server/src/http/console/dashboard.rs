//! The dashboard: for a range of days, messages per day in and out,
//! delivery outcomes, each flow's runs (started, completed, failed, and how
//! many complete), AI calls, tokens and latency, and the outbox now; from
//! the statistics routes of the API, drawn as SVG on the server.

use std::collections::BTreeMap;

use axum::extract::Query;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::enc;
use super::chart::{grouped, shares};
use super::{Console, refused_page, view};

#[derive(Deserialize, Default)]
pub struct Range {
    from: Option<String>,
    to: Option<String>,
}

/// Delivery outcomes, best first.
const OUTCOMES: [&str; 7] = [
    "read",
    "delivered",
    "sent",
    "accepted",
    "queued",
    "undelivered",
    "failed",
];

pub async fn page(console: Console, Query(q): Query<Range>) -> Response {
    let mut range = String::new();
    for (k, v) in [("from", &q.from), ("to", &q.to)] {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            range.push_str(&format!(
                "{}{k}={}",
                if range.is_empty() { "?" } else { "&" },
                enc(v)
            ));
        }
    }
    let paths = [
        console.path(&format!("/stats/messages{range}")),
        console.path(&format!("/runs/statistics{range}")),
        console.path(&format!("/stats/ai{range}")),
    ];
    let (messages, runs, ai) = tokio::join!(
        console.api.get(&paths[0]),
        console.api.get(&paths[1]),
        console.api.get(&paths[2]),
    );
    let messages = match messages {
        Ok(m) => m,
        Err(r) => return refused_page(&r),
    };
    let runs = runs.unwrap_or(Value::Null);
    let ai = ai.unwrap_or(Value::Null);
    let days: Vec<Value> = messages["days"].as_array().cloned().unwrap_or_default();
    // `12-03`: the year is in the range.
    let labels: Vec<String> = days
        .iter()
        .map(|d| {
            d["date"]
                .as_str()
                .unwrap_or_default()
                .get(5..)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let column = |v: &[Value], f: &str| -> Vec<i64> {
        v.iter().map(|d| d[f].as_i64().unwrap_or(0)).collect()
    };
    let traffic = grouped(
        &labels,
        &[
            ("in", "received", column(&days, "inbound")),
            ("out", "sent", column(&days, "outbound")),
        ],
    );
    let outcomes = shares(
        &OUTCOMES
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    messages["statuses"][*s].as_i64().unwrap_or(0),
                )
            })
            .collect::<Vec<_>>(),
    );
    // Each flow's runs, most started first.
    let mut flows: Vec<(String, Value)> = runs["flows"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    flows.sort_by_key(|(id, c)| (-c["started"].as_i64().unwrap_or(0), id.clone()));
    let flow_ids: Vec<String> = flows.iter().map(|(id, _)| id.clone()).collect();
    let counts: Vec<Value> = flows.iter().map(|(_, c)| c.clone()).collect();
    let funnel = grouped(
        &flow_ids,
        &[
            ("started", "started", column(&counts, "started")),
            ("completed", "completed", column(&counts, "completed")),
            ("failed", "failed", column(&counts, "failed")),
        ],
    );
    let completion: Vec<Value> = flows
        .iter()
        .map(|(id, c)| {
            let started = c["started"].as_i64().unwrap_or(0);
            let completed = c["completed"].as_i64().unwrap_or(0);
            json!({"flow": id, "started": started, "completed": completed,
                   "percent": if started > 0 { format!("{:.0}", completed as f64 * 100.0 / started as f64) } else { "–".into() }})
        })
        .collect();
    // AI use per day, over the flows that asked.
    let mut per_day: BTreeMap<String, (i64, i64, i64, i64)> = BTreeMap::new();
    for d in ai["days"].as_array().into_iter().flatten() {
        let e = per_day
            .entry(d["date"].as_str().unwrap_or_default().to_string())
            .or_default();
        let calls = d["calls"].as_i64().unwrap_or(0);
        e.0 += calls;
        e.1 += d["errors"].as_i64().unwrap_or(0);
        e.2 += d["total_tokens"].as_i64().unwrap_or(0);
        e.3 += d["average_latency_ms"].as_i64().unwrap_or(0) * calls;
    }
    let on = |date: &Value| {
        per_day
            .get(date.as_str().unwrap_or_default())
            .copied()
            .unwrap_or_default()
    };
    let ai_chart = grouped(
        &labels,
        &[
            (
                "calls",
                "AI calls",
                days.iter().map(|d| on(&d["date"]).0).collect(),
            ),
            (
                "errors",
                "failed AI calls",
                days.iter().map(|d| on(&d["date"]).1).collect(),
            ),
        ],
    );
    let (calls, errors, tokens, latency) = per_day.values().fold((0, 0, 0, 0), |a, d| {
        (a.0 + d.0, a.1 + d.1, a.2 + d.2, a.3 + d.3)
    });
    let sum = |f: &str| days.iter().map(|d| d[f].as_i64().unwrap_or(0)).sum::<i64>();
    view::render(
        "dashboard.html",
        console.page(
            "dashboard",
            json!({
                "from": messages["from"],
                "to": messages["to"],
                "received": sum("inbound"),
                "sent": sum("outbound"),
                "traffic": traffic,
                "outcomes": outcomes,
                "funnel": funnel,
                "completion": completion,
                "runs_total": runs["total"],
                "ai_chart": ai_chart,
                "ai": {"calls": calls, "errors": errors, "tokens": tokens,
                       "latency": if calls > 0 { latency / calls } else { 0 }},
                "outbox": {"depth": messages["outbox_depth"], "waiting": messages["outbox_waiting_seconds"]},
                "action": "/console/dashboard",
            }),
        ),
    )
}
