//! The simulator: a person talks to any flow of the bot over the real
//! engine, as a fresh test contact, with no provider: the run is started
//! with the `simulator` channel, so its messages stay in the conversation.
//! Buttons and list rows are tapped; the run's node and variables are shown
//! beside it; restart begins again with a new contact.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::api::{Refused, flow_ids};
use super::{Action, Console, problem, refused_page, see_other, view};

/// Messages of a simulation shown at once, newest last.
const MESSAGES: usize = 100;

#[derive(Deserialize, Default)]
pub struct PageQuery {
    /// The test contact being talked as.
    contact: Option<i64>,
}

pub async fn page(console: Console, Query(q): Query<PageQuery>) -> Response {
    show(&console, q.contact, None, "", StatusCode::OK).await
}

async fn show(
    console: &Console,
    contact: Option<i64>,
    error: Option<&Refused>,
    typed: &str,
    status: StatusCode,
) -> Response {
    let flows = console.api.get(&console.path("/flows")).await;
    if let Err(r) = &flows {
        return refused_page(r);
    }
    let mut page = json!({
        "flows": flow_ids(&flows),
        "start_action": console.link("/console/simulator"),
        "error": error.map(Refused::say),
        "typed": typed,
    });
    if let Some(id) = contact {
        let path = console.path(&format!("/contacts/{id}/messages?limit={MESSAGES}"));
        let (history, run) = tokio::join!(console.api.get(&path), simulated_run(console, id));
        let run = match run {
            Ok(r) => r,
            Err(page) => return page,
        };
        let mut messages = match history {
            Ok(h) => h["items"].as_array().cloned().unwrap_or_default(),
            Err(r) => return refused_page(&r),
        };
        messages.reverse();
        super::inbox::mark_ai_answers(&mut messages);
        let mut variables = run["variables"].clone();
        if let Some(v) = variables.as_object_mut() {
            v.remove("contact");
        }
        page["contact_id"] = json!(id);
        page["phone"] = run["variables"]["contact"]["phone"].clone();
        page["messages"] = json!(messages);
        page["variables"] = json!(serde_json::to_string_pretty(&variables).unwrap_or_default());
        page["live"] = json!(matches!(
            run["status"].as_str(),
            Some("waiting_input" | "waiting_effect" | "waiting_timer" | "handed_off")
        ));
        page["tap_action"] = json!(console.link(&format!("/console/simulator/{id}/say")));
        page["run_href"] = json!(console.link(&format!("/console/runs/{}", run["id"])));
        page["run"] = run;
    }
    view::render_with(status, "simulator.html", console.page("simulator", page))
}

/// The test contact's current run; only a simulation is talked to here (a
/// real contact's runs are the inbox's).
async fn simulated_run(console: &Console, contact: i64) -> Result<serde_json::Value, Response> {
    let runs = console
        .api
        .get(&console.path(&format!("/runs?contact={contact}&limit=1")))
        .await
        .map_err(|r| refused_page(&r))?;
    let run = runs["items"][0].clone();
    if run["variables"]["contact"]["channel"] != "simulator" {
        return Err(problem(
            StatusCode::NOT_FOUND,
            "No such simulation",
            "This contact is not a test contact of the simulator. Start a simulation instead.",
        ));
    }
    Ok(run)
}

#[derive(Deserialize)]
pub struct StartForm {
    flow: String,
}

/// Starts the flow for a fresh test contact.
pub async fn start(Action { console, form }: Action<StartForm>) -> Response {
    let body = json!({"flow": form.flow, "channel": "simulator"});
    match console.api.post(&console.path("/runs"), body).await {
        Ok(run) => {
            see_other(&console.link(&format!("/console/simulator?contact={}", run["contact_id"])))
        }
        Err(r) if matches!(r.status, 409 | 422) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            show(&console, None, Some(&r), "", status).await
        }
        Err(r) => refused_page(&r),
    }
}

#[derive(Deserialize)]
pub struct SayForm {
    #[serde(default)]
    text: String,
    /// A button or list row tapped, by its id.
    tap: Option<String>,
}

/// What the test contact says (or taps), given to their current run as if
/// they had sent it.
pub async fn say(Path(contact): Path<i64>, Action { console, form }: Action<SayForm>) -> Response {
    let run = match simulated_run(&console, contact).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let body = match form.tap.filter(|t| !t.is_empty()) {
        Some(tap) => json!({"tap": tap}),
        None => json!({"text": form.text}),
    };
    let path = console.path(&format!("/runs/{}/input", run["id"]));
    match console.api.post(&path, body).await {
        Ok(_) => see_other(&console.link(&format!("/console/simulator?contact={contact}"))),
        Err(r) if matches!(r.status, 409 | 422) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            show(&console, Some(contact), Some(&r), &form.text, status).await
        }
        Err(r) => refused_page(&r),
    }
}
