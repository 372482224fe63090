//! Triggers: the bot's keyword, event and schedule triggers; making one
//! and changing one with the same form (a preview shows a schedule's next
//! five firing times, in its time zone, before anything is kept),
//! switching one on or off, deleting one, and its log.

use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::{Refused, enc, flow_ids, items, may};
use super::{Action, Console, NoFields, refused_page, see_other, view};

#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
    /// On a trigger's page: ask whether to delete it.
    delete: Option<String>,
}

/// What a trigger page says after an action.
fn said(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "made" => "The trigger is saved.",
        "changed" => "The trigger is changed.",
        "deleted" => "The trigger is deleted.",
        "on" => "The trigger is on.",
        "off" => "The trigger is off.",
        _ => "Done.",
    })
}

/// Each field the API named, beside its control (the first word about it).
fn faults(refused: Option<&Refused>) -> Map<String, Value> {
    let mut faults = Map::new();
    for p in refused.map(|r| r.problems.as_slice()).unwrap_or_default() {
        if let (Some(f), Some(m)) = (p["field"].as_str(), p["message"].as_str()) {
            faults.entry(f.to_string()).or_insert(json!(m));
        }
    }
    faults
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
    view::render_with(
        status,
        "triggers.html",
        console.page(
            "triggers",
            json!({
                "triggers": items,
                "flows": flows,
                "form": form,
                "faults": faults(refused),
                "preview": preview,
                "error": refused.map(Refused::say),
                "done": said(done),
                "form_action": console.link("/console/triggers"),
                "submit_label": "Save the trigger",
            }),
        ),
    )
}

/// What the form to make or change a trigger holds; each field is the
/// API's, as text.
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

    /// The form filled with a trigger as the API shows it.
    fn of(t: &Value) -> TriggerForm {
        let text = |k: &str| match &t[k] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let list = |k: &str| {
            t[k].as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default()
                .join(", ")
        };
        let audience = &t["audience"];
        TriggerForm {
            name: text("name"),
            flow: text("flow"),
            trigger_type: text("trigger_type"),
            keywords: list("keywords"),
            match_type: text("match_type"),
            event_type: text("event_type"),
            schedule_type: text("schedule_type"),
            schedule_time: text("schedule_time"),
            schedule_at: text("schedule_at"),
            schedule_days: list("schedule_days"),
            schedule_day: text("schedule_day"),
            cron: text("cron"),
            schedule_timezone: text("schedule_timezone"),
            // A list of contacts has no text here: it is kept (`kept`).
            audience: match audience["tag"].as_str() {
                Some(tag) => tag.to_string(),
                None if audience["all"] == json!(true) => "all".into(),
                None => String::new(),
            },
            preview: None,
        }
    }

    /// The API's body for a change of `current`: the form's fields, and
    /// what the form has no control for kept as it is (`kept`), so that
    /// saving the form changes only what it shows.
    fn body_keeping(&self, current: &Value) -> Value {
        let mut body = self.body();
        let kind = self.trigger_type.as_str();
        for (field, value) in kept(current) {
            let applies = match field {
                "case_sensitive" => kind == "keyword",
                "event_conditions" => kind == "event",
                "misfire" => kind == "schedule",
                // A list of contacts, while the form's audience is left empty.
                "audience" => kind == "schedule" && self.audience.trim().is_empty(),
                _ => true,
            };
            // (A field of one kind is only ever stored on a trigger of it.)
            if applies {
                body[field] = value;
            }
        }
        body
    }
}

/// What a trigger has that the form does not show, by field: its priority
/// and variables, a keyword's case sensitivity, an event's conditions, a
/// schedule's misfire rule and a list of contacts as its audience.
fn kept(t: &Value) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if t["priority"].as_i64().is_some_and(|p| p != 0) {
        out.push(("priority", t["priority"].clone()));
    }
    for field in ["variables", "case_sensitive", "event_conditions", "misfire"] {
        if !t[field].is_null() {
            out.push((field, t[field].clone()));
        }
    }
    if t["audience"]["contacts"].is_array() {
        out.push(("audience", t["audience"].clone()));
    }
    out
}

/// `kept`, said for the form's reader.
fn kept_said(t: &Value) -> Vec<String> {
    kept(t)
        .into_iter()
        .map(|(field, v)| match field {
            "priority" => format!("priority {v}"),
            "case_sensitive" if v == json!(true) => "keywords matched case-sensitively".into(),
            "case_sensitive" => "keywords matched ignoring case".into(),
            "misfire" => format!("after a missed time: {}", v.as_str().unwrap_or_default()),
            "audience" => {
                let n = v["contacts"].as_array().map_or(0, Vec::len);
                format!(
                    "the audience: {n} listed contact{}",
                    if n == 1 { "" } else { "s" }
                )
            }
            other => format!("{}: {v}", other.replace('_', " ")),
        })
        .collect()
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

/// One trigger: its definition, next firing times and log, and the form
/// to change it (for those the API lets change it).
pub async fn one(console: Console, Path(id): Path<String>, Query(q): Query<Done>) -> Response {
    let shown = Shown {
        done: q.done.as_deref(),
        confirm_delete: q.delete.is_some(),
        ..Shown::default()
    };
    render_one(&console, &enc(&id), shown, StatusCode::OK).await
}

/// What a trigger's page shows besides the trigger.
#[derive(Default)]
struct Shown<'a> {
    /// The form as typed; the trigger as it is when none.
    form: Option<&'a TriggerForm>,
    refused: Option<&'a Refused>,
    /// The trigger as the form would make it, not kept.
    preview: Option<&'a Value>,
    done: Option<&'a str>,
    confirm_delete: bool,
}

/// The page of trigger `id` (encoded).
async fn render_one(console: &Console, id: &str, shown: Shown<'_>, status: StatusCode) -> Response {
    let paths = [
        console.path(&format!("/triggers/{id}")),
        console.path(&format!("/triggers/{id}/logs?limit=50")),
        console.path("/flows"),
    ];
    let (trigger, logs, flows) = tokio::join!(
        console.api.get(&paths[0]),
        console.api.get(&paths[1]),
        console.api.get(&paths[2]),
    );
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
    let as_is = TriggerForm::of(&trigger);
    let form = shown.form.unwrap_or(&as_is);
    // The flow it starts is offered even if the bot no longer has it (the
    // API then says so), so that saving never changes it unasked.
    let mut flows = flow_ids(&flows);
    if !form.flow.is_empty() && !flows.contains(&json!(form.flow)) {
        flows.insert(0, json!(form.flow));
    }
    let route = "/api/v1/bots/{bot}/triggers/{id}";
    view::render_with(
        status,
        "trigger.html",
        console.page(
            "triggers",
            json!({
                "trigger": trigger,
                "definition": definition,
                "logs": logs,
                "done": said(shown.done),
                "switch_action": console.link(&format!("/console/triggers/{id}/switch")),
                "triggers_href": console.link("/console/triggers"),
                "may_edit": may(&console.user, &Method::PUT, route),
                "may_delete": may(&console.user, &Method::DELETE, route),
                "confirm_delete": shown.confirm_delete,
                "ask_delete_href": format!("{}#delete", console.link(&format!("/console/triggers/{id}?delete=1"))),
                "delete_action": console.link(&format!("/console/triggers/{id}/delete")),
                "self_href": console.link(&format!("/console/triggers/{id}")),
                "form": form,
                "flows": flows,
                "faults": faults(shown.refused),
                "preview": shown.preview,
                "error": shown.refused.map(Refused::say),
                "kept": kept_said(&trigger),
                "audience_listed": trigger["audience"]["contacts"].as_array().map(Vec::len),
                "form_action": format!("{}#edit", console.link(&format!("/console/triggers/{id}"))),
                "submit_label": "Save the changes",
            }),
        ),
    )
}

/// Changes a trigger through the API (`PUT`: the form's fields, and what
/// the form does not show kept as it was), or previews the change (the
/// API's dry run: a schedule's next five firing times); what the API
/// refuses shows beside its field, the form as typed.
pub async fn update(
    Path(id): Path<String>,
    Action { console, form: f }: Action<TriggerForm>,
) -> Response {
    let id = enc(&id);
    let path = console.path(&format!("/triggers/{id}"));
    let current = match console.api.get(&path).await {
        Ok(t) => t,
        Err(r) => return refused_page(&r),
    };
    let body = f.body_keeping(&current);
    let answer = match f.preview {
        // The same checks as the change's, nothing kept.
        Some(_) => {
            console
                .api
                .post(&console.path("/triggers?dry_run=true"), body)
                .await
        }
        None => console.api.call(Method::PUT, &path, Some(body)).await,
    };
    match answer {
        Ok(t) if f.preview.is_some() => {
            let shown = Shown {
                form: Some(&f),
                preview: Some(&t),
                ..Shown::default()
            };
            render_one(&console, &id, shown, StatusCode::OK).await
        }
        Ok(_) => see_other(&console.link(&format!("/console/triggers/{id}?done=changed"))),
        Err(r) if matches!(r.status, 400 | 409 | 422) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let shown = Shown {
                form: Some(&f),
                refused: Some(&r),
                ..Shown::default()
            };
            render_one(&console, &id, shown, status).await
        }
        Err(r) => refused_page(&r),
    }
}

/// Deletes a trigger with its log, once asked on its page.
pub async fn delete(Path(id): Path<String>, Action { console, .. }: Action<NoFields>) -> Response {
    let path = console.path(&format!("/triggers/{}", enc(&id)));
    match console.api.call(Method::DELETE, &path, None).await {
        Ok(_) => see_other(&console.link("/console/triggers?done=deleted")),
        Err(r) => refused_page(&r),
    }
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

    #[test]
    fn a_trigger_saved_unchanged_from_its_form_is_the_same_trigger() {
        for t in [
            json!({"name": "Hi", "flow": "welcome", "trigger_type": "keyword",
                "keywords": ["hi", "hello"], "match_type": "contains", "case_sensitive": true,
                "priority": 3, "variables": {"source": "ad"}}),
            json!({"name": "New", "flow": "welcome", "trigger_type": "event", "priority": 0,
                "event_type": "flow_completed", "event_conditions": {"flow": ["a", "b"]}}),
            json!({"name": "Monthly", "flow": "survey", "trigger_type": "schedule", "priority": 0,
                "schedule_type": "monthly", "schedule_day": 31, "schedule_time": "08:00",
                "schedule_timezone": "Asia/Tokyo", "misfire": "skip",
                "audience": {"contacts": ["+15550000001", "+15550000002"]}}),
            json!({"name": "Weekly", "flow": "survey", "trigger_type": "schedule", "priority": 0,
                "schedule_type": "weekly", "schedule_days": ["mon", "fri"], "schedule_time": "09:00",
                "audience": {"tag": "vip"}}),
        ] {
            let mut shown = t.clone();
            for (k, v) in [
                ("id", json!(4)),
                ("active", json!(false)),
                ("upcoming", json!([])),
            ] {
                shown[k] = v;
            }
            let mut body = super::TriggerForm::of(&shown).body_keeping(&shown);
            if body["priority"].is_null() {
                body["priority"] = json!(0);
            }
            assert_eq!(body, t);
        }
        // Another type: only what applies to every type is kept.
        let keyword = json!({"name": "Hi", "flow": "welcome", "trigger_type": "keyword",
            "keywords": ["hi"], "case_sensitive": true, "priority": 3});
        let mut form = super::TriggerForm::of(&keyword);
        form.trigger_type = "event".into();
        form.event_type = "opt_in".into();
        assert_eq!(
            form.body_keeping(&keyword),
            json!({"name": "Hi", "flow": "welcome", "trigger_type": "event", "event_type": "opt_in", "priority": 3})
        );
    }
}
