//! The inbox: the bot's contacts, one conversation at a time, and an
//! agent's answers (a reply inside the 24-hour window, a template outside
//! it), handing a contact back to the bot, marking a conversation read.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::{enc, items};
use super::{Action, Console, NoFields, refused_page, see_other, view};

/// Contacts on one page of the list.
const CONTACTS: usize = 50;
/// Messages of a conversation shown at once, newest last.
const MESSAGES: usize = 100;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    search: Option<String>,
    /// The page after this contact id.
    cursor: Option<String>,
    /// What the last action did, to say so.
    done: Option<String>,
}

/// The list of contacts, the latest conversation first, with a search.
pub async fn list(console: Console, Query(q): Query<ListQuery>) -> Response {
    if let Some(alone) = list_alone(&console, &q, None).await {
        return alone;
    }
    match contacts(&console, &q).await {
        Ok(page) => view::render("inbox.html", console.page("inbox", page)),
        Err(r) => r,
    }
}

/// The list alone, when a live reload asks for it (`HX-Target`): every
/// console of the bot showing the same list draws the same HTML, so it
/// is drawn once a change heard and handed to them all.
async fn list_alone(console: &Console, q: &ListQuery, open: Option<i64>) -> Option<Response> {
    if console.target.as_deref() != Some("contact-list") {
        return None;
    }
    let key = format!(
        "list\n{}\n{open:?}\n{}\n{}",
        console.bot.slug,
        q.search.as_deref().unwrap_or_default(),
        q.cursor.as_deref().unwrap_or_default()
    );
    let draw = async {
        let mut list = contacts(console, q).await?;
        if let Some(id) = open {
            list["contact"] = json!({"id": id});
            list["here"] = json!(console.link(&format!("/console/inbox/{id}")));
        }
        view::html("_contact_list.html", &list)
            .map(Value::String)
            .ok_or_else(view::failed)
    };
    let html = console
        .api
        .shared(key, super::MOMENT, console.changed_at(), draw)
        .await;
    Some(match html {
        Ok(Value::String(html)) => axum::response::Html(html).into_response(),
        Ok(_) => view::failed(),
        Err(r) => r,
    })
}

async fn contacts(console: &Console, q: &ListQuery) -> Result<Value, Response> {
    let mut path = console.path(&format!(
        "/contacts?order=activity&test=false&limit={CONTACTS}"
    ));
    let search = q.search.as_deref().map(str::trim).unwrap_or_default();
    if !search.is_empty() {
        path.push_str(&format!("&search={}", enc(search)));
    }
    if let Some(c) = q.cursor.as_deref().filter(|c| !c.is_empty()) {
        path.push_str(&format!("&cursor={}", enc(c)));
    }
    // Every open console reloads the list as the bot's conversations
    // change: one read a moment serves them all.
    let page = match console.reload {
        true => {
            console
                .api
                .get_shared(&path, super::MOMENT, console.changed_at())
                .await
        }
        false => console.api.get(&path).await,
    }
    .map_err(|r| refused_page(&r))?;
    let more = page["next_cursor"].as_str().map(|c| {
        let mut link = console.link(&format!("/console/inbox?cursor={}", enc(c)));
        if !search.is_empty() {
            link.push_str(&format!("&search={}", enc(search)));
        }
        link
    });
    let contacts: Vec<Value> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = c.clone();
            let id = c["id"].as_i64().unwrap_or_default();
            c["href"] = json!(console.link(&format!("/console/inbox/{id}")));
            c
        })
        .collect();
    let mut here = console.link("/console/inbox");
    if !search.is_empty() {
        here.push_str(&format!("&search={}", enc(search)));
    }
    Ok(json!({
        "search": search,
        "contacts": contacts,
        "more": more,
        "here": here,
        "inbox_href": console.link("/console/inbox"),
        "live_url": console.link("/console/live"),
    }))
}

/// What the reply form held, shown again with the API's objection.
#[derive(Deserialize, Default, Clone)]
pub struct ReplyForm {
    #[serde(default)]
    text: String,
    channel: Option<String>,
    /// `name|language` (Meta) or a Content SID (Twilio).
    template: Option<String>,
    /// The template's parameters, one per line.
    #[serde(default)]
    parameters: String,
}

/// One conversation, beside the list.
pub async fn conversation(
    console: Console,
    Path(contact): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Ok(id) = contact.parse::<i64>()
        && let Some(alone) = list_alone(&console, &q, Some(id)).await
    {
        return alone;
    }
    let done = match q.done.as_deref() {
        Some("sent") => Some("Your message is queued; its status shows here as it changes."),
        Some("resumed") => Some("The bot has the conversation again."),
        Some("read") => Some("Marked as read."),
        _ => None,
    };
    show(
        &console,
        &contact,
        &q,
        done,
        None,
        &ReplyForm::default(),
        StatusCode::OK,
    )
    .await
}

async fn show(
    console: &Console,
    contact: &str,
    q: &ListQuery,
    done: Option<&str>,
    error: Option<String>,
    form: &ReplyForm,
    status: StatusCode,
) -> Response {
    let list = match contacts(console, q).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let id = enc(contact);
    let api = &console.api;
    let paths = [
        console.path(&format!("/contacts/{id}")),
        console.path(&format!("/contacts/{id}/messages?limit={MESSAGES}")),
        console.path(&format!("/runs?contact={id}&limit=1")),
        console.path("/templates"),
    ];
    let (person, history, runs, templates) = tokio::join!(
        api.get(&paths[0]),
        api.get(&paths[1]),
        api.get(&paths[2]),
        api.get(&paths[3]),
    );
    let person = match person {
        Ok(p) => p,
        Err(r) => return refused_page(&r),
    };
    let mut messages: Vec<Value> = match history {
        Ok(h) => h["items"].as_array().cloned().unwrap_or_default(),
        Err(r) => return refused_page(&r),
    };
    messages.reverse();
    mark_ai_answers(&mut messages);
    let run = runs
        .ok()
        .and_then(|r| r["items"].as_array().and_then(|i| i.first().cloned()));
    let templates = template_choices(&templates);
    let cid = person["id"].as_i64().unwrap_or_default();
    let action = |what: &str| console.link(&format!("/console/inbox/{cid}/{what}"));
    let mut page = list;
    page["contact"] = person;
    page["messages"] = json!(messages);
    page["run"] = run.unwrap_or(Value::Null);
    page["templates"] = json!(templates);
    page["done"] = json!(done);
    page["error"] = json!(error);
    page["form"] = json!({"text": form.text, "channel": form.channel, "template": form.template, "parameters": form.parameters});
    page["here"] = json!(console.link(&format!("/console/inbox/{cid}")));
    page["media_href"] = json!("/console/media");
    page["reply_action"] = json!(action("reply"));
    page["read_action"] = json!(action("read"));
    page["resume_action"] = json!(action("resume"));
    view::render_with(status, "inbox.html", console.page("inbox", page))
}

/// Marks the bot's answers to a message the AI was asked about (oldest
/// first) with `ai_answer`: its models and tokens. The calls are kept on
/// the message they answered; what the bot sent next, until the contact
/// writes again, is the answer.
pub(super) fn mark_ai_answers(messages: &mut [Value]) {
    let mut asked: Option<Value> = None;
    for m in messages.iter_mut() {
        if m["direction"] == "inbound" {
            let calls = m["ai"].as_array().filter(|c| !c.is_empty());
            asked = calls.map(|calls| {
                let mut models: Vec<&str> =
                    calls.iter().filter_map(|c| c["model"].as_str()).collect();
                models.dedup();
                let tokens: i64 = calls
                    .iter()
                    .map(|c| {
                        c["prompt_tokens"].as_i64().unwrap_or(0)
                            + c["completion_tokens"].as_i64().unwrap_or(0)
                    })
                    .sum();
                json!({"models": models.join(", "), "tokens": tokens, "calls": calls.len()})
            });
        } else if let Some(a) = &asked {
            m["ai_answer"] = a.clone();
        }
    }
}

/// Sends an agent's reply, or a template, through the API's send; what it
/// refuses is shown beside the form, which keeps what was typed.
pub async fn reply(
    Path(contact): Path<String>,
    Action { console, form: f }: Action<ReplyForm>,
) -> Response {
    let id = enc(&contact);
    let person = match console
        .api
        .get(&console.path(&format!("/contacts/{id}")))
        .await
    {
        Ok(p) => p,
        Err(r) => return refused_page(&r),
    };
    let mut body = Map::new();
    body.insert("to".into(), person["phone"].clone());
    if let Some(c) = f.channel.as_deref().filter(|c| !c.is_empty()) {
        body.insert("channel".into(), json!(c));
    }
    let parameters: Vec<&str> = f
        .parameters
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match f.template.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => {
            body.insert("template".into(), template(t, &parameters));
        }
        None => {
            let text = f.text.trim();
            if text.is_empty() {
                return show(
                    &console,
                    &contact,
                    &ListQuery::default(),
                    None,
                    Some("Write a message, or pick a template.".into()),
                    &f,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            body.insert("text".into(), json!(text));
        }
    }
    match console
        .api
        .post(&console.path("/messages"), Value::Object(body))
        .await
    {
        Ok(_) => see_other(&console.link(&format!("/console/inbox/{id}?done=sent"))),
        Err(r) if r.status == 422 || r.status == 409 || r.status == 400 => {
            show(
                &console,
                &contact,
                &ListQuery::default(),
                None,
                Some(r.say()),
                &f,
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            )
            .await
        }
        Err(r) => refused_page(&r),
    }
}

/// The catalogue's approved templates, as a send form offers them.
pub(super) fn template_choices(listed: &Result<Value, super::api::Refused>) -> Vec<Value> {
    // A viewer may not read the catalogue's sends, but sees the list.
    items(listed)
        .into_iter()
        .filter(|t| t["status"] == "APPROVED")
        .map(|t| {
            let value = match t["content_sid"].as_str() {
                Some(sid) => sid.to_string(),
                None => format!(
                    "{}|{}",
                    t["name"].as_str().unwrap_or_default(),
                    t["language"].as_str().unwrap_or_default()
                ),
            };
            json!({"value": value, "label": format!("{} ({}, {})", t["name"].as_str().unwrap_or_default(),
                t["language"].as_str().unwrap_or_default(), t["channel"].as_str().unwrap_or_default()),
                "body": t["body"], "channel": t["channel"]})
        })
        .collect()
}

/// The template a send names: a Content SID (Twilio) with its variables by
/// number, or `name|language` (Meta) with its body parameters.
pub(super) fn template(chosen: &str, parameters: &[&str]) -> Value {
    match chosen.split_once('|') {
        Some((name, language)) => {
            let params: Vec<Value> = parameters
                .iter()
                .map(|p| json!({"type": "text", "text": p}))
                .collect();
            let components = if params.is_empty() {
                json!([])
            } else {
                json!([{"type": "body", "parameters": params}])
            };
            json!({"name": name, "language": language, "components": components})
        }
        None => {
            let variables: Map<String, Value> = parameters
                .iter()
                .enumerate()
                .map(|(i, p)| ((i + 1).to_string(), json!(p)))
                .collect();
            json!({"content_sid": chosen, "variables": variables})
        }
    }
}

/// Marks the conversation read.
pub async fn read(
    Path(contact): Path<String>,
    Action { console, .. }: Action<NoFields>,
) -> Response {
    let id = enc(&contact);
    match console
        .api
        .post(&console.path(&format!("/contacts/{id}/read")), json!(null))
        .await
    {
        Ok(_) => see_other(&console.link(&format!("/console/inbox/{id}?done=read"))),
        Err(r) => refused_page(&r),
    }
}

/// Hands a handed-off contact back to the bot: resumes their run.
pub async fn resume(
    Path(contact): Path<String>,
    Action { console, .. }: Action<NoFields>,
) -> Response {
    let id = enc(&contact);
    let run = match console
        .api
        .get(&console.path(&format!("/runs?contact={id}&limit=1")))
        .await
    {
        Ok(r) => r["items"][0]["id"].as_i64(),
        Err(r) => return refused_page(&r),
    };
    let Some(run) = run else {
        return super::problem(
            StatusCode::CONFLICT,
            "Nothing to resume",
            "This contact has no run to hand back to the bot.",
        );
    };
    match console
        .api
        .post(&console.path(&format!("/runs/{run}/resume")), json!({}))
        .await
    {
        Ok(_) => see_other(&console.link(&format!("/console/inbox/{id}?done=resumed"))),
        Err(r) => refused_page(&r),
    }
}

/// A file a contact sent, as the API gives it (fetched with the bot's
/// credentials the first time, then kept).
pub async fn media(
    console: Console,
    Path((message, position)): Path<(String, String)>,
) -> Response {
    let path = console.path(&format!(
        "/messages/{}/media/{}",
        enc(&message),
        enc(&position)
    ));
    match console.api.file(&path).await {
        Ok(file) => file,
        Err(r) => refused_page(&r),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_template_is_named_as_its_channel_sends_it() {
        assert_eq!(
            super::template("order_update|en_US", &["A1", "Friday"]),
            json!({"name": "order_update", "language": "en_US", "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "A1"}, {"type": "text", "text": "Friday"}]}]})
        );
        assert_eq!(
            super::template("HXb5b62575e6e4ff6129ad7c8efe1f983e", &["Ana"]),
            json!({"content_sid": "HXb5b62575e6e4ff6129ad7c8efe1f983e", "variables": {"1": "Ana"}})
        );
    }

    #[test]
    fn the_bots_answers_after_an_ai_call_are_marked_until_the_contact_writes() {
        let call = |model: &str, p: i64, c: i64| json!({"model": model, "prompt_tokens": p, "completion_tokens": c});
        let mut messages = vec![
            json!({"direction": "outbound"}),
            json!({"direction": "inbound", "ai": [call("gpt-4o-mini", 100, 20), call("gpt-4o-mini", 5, 1)]}),
            json!({"direction": "outbound"}),
            json!({"direction": "outbound"}),
            json!({"direction": "inbound"}),
            json!({"direction": "outbound"}),
        ];
        super::mark_ai_answers(&mut messages);
        let marked: Vec<bool> = messages
            .iter()
            .map(|m| m.get("ai_answer").is_some())
            .collect();
        assert_eq!(marked, [false, false, true, true, false, false]);
        assert_eq!(
            messages[2]["ai_answer"],
            json!({"models": "gpt-4o-mini", "tokens": 126, "calls": 2})
        );
    }
}
