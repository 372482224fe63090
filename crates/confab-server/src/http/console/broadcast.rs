//! Broadcast: one message (a template, or text for those inside the
//! 24-hour window) to a tag or a list of numbers. The form is checked
//! first (a dry run through the API: how many it reaches, how many are
//! outside the window, who not and why); confirmed, it is queued, and its
//! page shows the outbox's progress until every message has gone.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::api::{Refused, items};
use super::inbox::{template, template_choices};
use super::{Action, Console, refused_page, see_other, view};

#[derive(Deserialize, Serialize, Default, Clone)]
pub struct BroadcastForm {
    /// `tag` or `list`.
    #[serde(default)]
    audience: String,
    #[serde(default)]
    tag: String,
    /// One number a line.
    #[serde(default)]
    numbers: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    template: String,
    /// The template's parameters, one a line.
    #[serde(default)]
    parameters: String,
    #[serde(default)]
    channel: String,
    /// Present when the confirmation's button was pressed.
    send: Option<String>,
}

impl BroadcastForm {
    /// The API's body.
    fn body(&self) -> Value {
        let mut b = Map::new();
        let to = match self.audience.as_str() {
            "list" => json!(
                self.numbers
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
            ),
            _ => json!({"tag": self.tag.trim()}),
        };
        b.insert("to".into(), to);
        if !self.channel.is_empty() {
            b.insert("channel".into(), json!(self.channel));
        }
        let parameters: Vec<&str> = self
            .parameters
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        match self.template.trim() {
            "" => b.insert("text".into(), json!(self.text.trim())),
            t => b.insert("template".into(), template(t, &parameters)),
        };
        Value::Object(b)
    }
}

pub async fn page(console: Console) -> Response {
    show(
        &console,
        &BroadcastForm::default(),
        None,
        None,
        StatusCode::OK,
    )
    .await
}

/// The form; with a dry run's answer, the confirmation; with a refusal,
/// what is wrong.
async fn show(
    console: &Console,
    form: &BroadcastForm,
    review: Option<&Value>,
    refused: Option<&Refused>,
    status: StatusCode,
) -> Response {
    let paths = [console.path("/broadcasts"), console.path("/templates")];
    let (listed, templates) = tokio::join!(console.api.get(&paths[0]), console.api.get(&paths[1]));
    let broadcasts: Vec<Value> = items(&listed)
        .into_iter()
        .map(|mut b| {
            b["href"] = json!(console.link(&format!("/console/broadcast/{}", b["id"])));
            b
        })
        .collect();
    view::render_with(
        status,
        "broadcast.html",
        console.page(
            "broadcast",
            json!({
                "form": form,
                "review": review,
                "error": refused.map(Refused::say),
                "templates": template_choices(&templates),
                "broadcasts": broadcasts,
                "action": console.link("/console/broadcast"),
            }),
        ),
    )
}

/// Checks the broadcast (a dry run), or, confirmed, queues it.
pub async fn send(Action { console, form }: Action<BroadcastForm>) -> Response {
    let confirmed = form.send.is_some();
    let path = console.path(if confirmed {
        "/broadcasts"
    } else {
        "/broadcasts?dry_run=true"
    });
    match console.api.post(&path, form.body()).await {
        Ok(b) if confirmed => see_other(&console.link(&format!("/console/broadcast/{}", b["id"]))),
        Ok(review) => show(&console, &form, Some(&review), None, StatusCode::OK).await,
        Err(r) if matches!(r.status, 400 | 409 | 422) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            show(&console, &form, None, Some(&r), status).await
        }
        Err(r) => refused_page(&r),
    }
}

/// A broadcast's progress.
pub async fn one(console: Console, Path(id): Path<i64>) -> Response {
    match console
        .api
        .get(&console.path(&format!("/broadcasts/{id}")))
        .await
    {
        Ok(b) => {
            let finished = b["done"].as_i64() >= b["queued"].as_i64();
            view::render(
                "broadcast_one.html",
                console.page(
                    "broadcast",
                    json!({
                        "b": b,
                        "finished": finished,
                        "here": console.link(&format!("/console/broadcast/{id}")),
                        "broadcast_href": console.link("/console/broadcast"),
                    }),
                ),
            )
        }
        Err(r) => refused_page(&r),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_form_becomes_the_apis_body() {
        let tag = super::BroadcastForm {
            audience: "tag".into(),
            tag: " vip ".into(),
            template: "promo|en_US".into(),
            parameters: "Ana\n\n20%".into(),
            ..Default::default()
        };
        assert_eq!(
            tag.body(),
            json!({"to": {"tag": "vip"}, "template": {"name": "promo", "language": "en_US",
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "20%"}]}]}})
        );
        let list = super::BroadcastForm {
            audience: "list".into(),
            numbers: "+14155550001\n +14155550002 \n".into(),
            text: "We open at 9".into(),
            channel: "twilio".into(),
            ..Default::default()
        };
        assert_eq!(
            list.body(),
            json!({"to": ["+14155550001", "+14155550002"], "channel": "twilio", "text": "We open at 9"})
        );
    }
}
