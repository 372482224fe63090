//! Triggers: the bot's keyword, event and schedule triggers; making one
//! (a schedule shows its next five firing times, in its time zone, once
//! saved), switching one on or off, and its log.

use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::{Refused, enc, flow_ids, items};
use super::{Action, Console, refused_page, see_other, view};

#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
}

pub async fn list(console: Console, Query(q): Query<Done>) -> Response {
    render_list(
        &console,
        &TriggerForm::default(),
        (None, None),
        q.done.as_deref(),
        StatusCode::OK,
    )
    .await
}

/// The list and the form; `preview` is a trigger as it would be, not kept.
async fn render_list(
    console: &Console,
    form: &TriggerForm,
    (refused, preview): (Option<&Refused>, Option<&Value>),
    done: Option<&str>,
    status: StatusCode,
) -> Response {
    let paths = [console.path("/triggers"), console.path("/flows")];
    let (triggers, flows) = tokio::join!(console.api.get(&paths[0]), console.api.get(&paths[1]));
    let triggers = match triggers {
        Ok(t) => t,
        Err(r) => return refused_page(&r),
    };
    let items: Vec<Value> = triggers["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut t = t.clone();
            let id = t["id"].clone();
            t["href"] = json!(console.link(&format!("/console/triggers/{id}")));
            t["switch_action"] = json!(console.link(&format!("/console/triggers/{id}/switch")));
            t
        })
        .collect();
    let flows = flow_ids(&flows);
    // Each field the API named, beside its control.
    let mut faults = Map::new();
    for p in refused.map(|r| r.problems.as_slice()).unwrap_or_default() {
        if let (Some(f), Some(m)) = (p["field"].as_str(), p["message"].as_str()) {
            faults.entry(f.to_string()).or_insert(json!(m));
        }
    }
    view::render_with(
        status,
        "triggers.html",
        console.page(
            "triggers",
            json!({
                "triggers": items,
                "flows": flows,
                "form": form,
                "faults": faults,
                "preview": preview,
                "error": refused.map(Refused::say),
                "done": done.map(|d| match d {
                    "made" => "The trigger is saved.",
                    "on" => "The trigger is on.",
                    "off" => "The trigger is off.",
                    _ => "Done.",
                }),
                "create_action": console.link("/console/triggers"),
            }),
        ),
    )
}

/// What the form to make a trigger holds; each field is the API's, as text.
#[derive(Deserialize, Default, serde::Serialize)]
pub struct TriggerForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    flow: String,
    #[serde(default)]
    trigger_type: String,
    /// keyword: comma-separated.
    #[serde(default)]
    keywords: String,
    #[serde(default)]
    match_type: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    schedule_type: String,
    #[serde(default)]
    schedule_time: String,
    #[serde(default)]
    schedule_at: String,
    /// weekly: comma-separated weekdays.
    #[serde(default)]
    schedule_days: String,
    #[serde(default)]
    schedule_day: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    schedule_timezone: String,
    /// `all`, or a tag.
    #[serde(default)]
    audience: String,
    /// Present when the preview button was pressed: nothing is kept.
    #[serde(default, skip_serializing)]
    preview: Option<String>,
}

impl TriggerForm {
    /// The API's body: only what the type uses, and nothing left empty.
    fn body(&self) -> Value {
        let mut b = Map::new();
        let text = |s: &str| s.trim().to_string();
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect()
        };
        b.insert("name".into(), json!(text(&self.name)));
        b.insert("flow".into(), json!(text(&self.flow)));
        b.insert("trigger_type".into(), json!(text(&self.trigger_type)));
        let mut put = |k: &str, v: &str| {
            if !v.trim().is_empty() {
                b.insert(k.into(), json!(text(v)));
            }
        };
        match self.trigger_type.as_str() {
            "keyword" => {
                put("match_type", &self.match_type);
                b.insert("keywords".into(), json!(list(&self.keywords)));
            }
            "event" => put("event_type", &self.event_type),
            "schedule" => {
                for (k, v) in [
                    ("schedule_type", &self.schedule_type),
                    ("schedule_time", &self.schedule_time),
                    ("schedule_at", &self.schedule_at),
                    ("cron", &self.cron),
                    ("schedule_timezone", &self.schedule_timezone),
                ] {
                    put(k, v);
                }
                if !self.schedule_days.trim().is_empty() {
                    b.insert("schedule_days".into(), json!(list(&self.schedule_days)));
                }
                if let Ok(day) = self.schedule_day.trim().parse::<u32>() {
                    b.insert("schedule_day".into(), json!(day));
                } else if !self.schedule_day.trim().is_empty() {
                    // Said by the API, as the day it is not.
                    b.insert("schedule_day".into(), json!(self.schedule_day.trim()));
                }
                let audience = match self.audience.trim() {
                    "" | "all" => json!({"all": true}),
                    tag => json!({"tag": tag}),
                };
                b.insert("audience".into(), audience);
            }
            _ => {}
        }
        Value::Object(b)
    }
}

/// Makes a trigger through the API, or previews it (a dry run: a
/// schedule's next five firing times); what it refuses shows beside its
/// field.
pub async fn create(Action { console, form: f }: Action<TriggerForm>) -> Response {
    let path = console.path(match f.preview {
        Some(_) => "/triggers?dry_run=true",
        None => "/triggers",
    });
    match console.api.post(&path, f.body()).await {
        Ok(t) if f.preview.is_some() => {
            render_list(&console, &f, (None, Some(&t)), None, StatusCode::OK).await
        }
        Ok(t) => see_other(&console.link(&format!("/console/triggers/{}?done=made", t["id"]))),
        Err(r) if matches!(r.status, 400 | 409 | 422) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            render_list(&console, &f, (Some(&r), None), None, status).await
        }
        Err(r) => refused_page(&r),
    }
}

/// One trigger: its definition, next firing times and log.
pub async fn one(console: Console, Path(id): Path<String>, Query(q): Query<Done>) -> Response {
    let id = enc(&id);
    let paths = [
        console.path(&format!("/triggers/{id}")),
        console.path(&format!("/triggers/{id}/logs?limit=50")),
    ];
    let (trigger, logs) = tokio::join!(console.api.get(&paths[0]), console.api.get(&paths[1]));
    let trigger = match trigger {
        Ok(t) => t,
        Err(r) => return refused_page(&r),
    };
    let logs: Vec<Value> = items(&logs)
        .into_iter()
        .map(|mut l| {
            if let Some(run) = l["run_id"].as_i64() {
                l["run_href"] = json!(console.link(&format!("/console/runs/{run}")));
            }
            l
        })
        .collect();
    let definition = serde_json::to_string_pretty(&trigger).unwrap_or_default();
    view::render(
        "trigger.html",
        console.page(
            "triggers",
            json!({
                "trigger": trigger,
                "definition": definition,
                "logs": logs,
                "done": match q.done.as_deref() {
                    Some("made") => Some("The trigger is saved."),
                    Some("on") => Some("The trigger is on."),
                    Some("off") => Some("The trigger is off."),
                    _ => None,
                },
                "switch_action": console.link(&format!("/console/triggers/{id}/switch")),
                "triggers_href": console.link("/console/triggers"),
            }),
        ),
    )
}

#[derive(Deserialize)]
pub struct SwitchForm {
    /// `on` or `off`.
    to: String,
}

/// Switches a trigger on or off.
pub async fn switch(
    Path(id): Path<String>,
    Action { console, form: f }: Action<SwitchForm>,
) -> Response {
    let (verb, done) = match f.to.as_str() {
        "on" => ("activate", "on"),
        _ => ("deactivate", "off"),
    };
    let id = enc(&id);
    match console
        .api
        .call(
            Method::POST,
            &console.path(&format!("/triggers/{id}/{verb}")),
            None,
        )
        .await
    {
        Ok(_) => see_other(&console.link(&format!("/console/triggers/{id}?done={done}"))),
        Err(r) => refused_page(&r),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_form_becomes_the_apis_body_with_only_what_its_type_uses() {
        let f = super::TriggerForm {
            name: " Monday check-in ".into(),
            flow: "product_review".into(),
            trigger_type: "schedule".into(),
            keywords: "ignored".into(),
            schedule_type: "weekly".into(),
            schedule_days: "mon, thu".into(),
            schedule_time: "09:30".into(),
            schedule_timezone: "Europe/Berlin".into(),
            audience: "customer".into(),
            ..Default::default()
        };
        assert_eq!(
            f.body(),
            json!({"name": "Monday check-in", "flow": "product_review", "trigger_type": "schedule",
                "schedule_type": "weekly", "schedule_days": ["mon", "thu"], "schedule_time": "09:30",
                "schedule_timezone": "Europe/Berlin", "audience": {"tag": "customer"}})
        );
        let k = super::TriggerForm {
            name: "Hi".into(),
            flow: "welcome".into(),
            trigger_type: "keyword".into(),
            keywords: "hi, hello,".into(),
            ..Default::default()
        };
        assert_eq!(
            k.body(),
            json!({"name": "Hi", "flow": "welcome", "trigger_type": "keyword", "keywords": ["hi", "hello"]})
        );
    }
}
