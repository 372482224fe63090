//! The WhatsApp Business account's message templates, as the Graph API
//! lists them (`GET /{version}/{waba-id}/message_templates`), page by page.

use serde::Deserialize;
use serde_json::Value;

use super::{GraphErrorBody, MetaClient};
use crate::http::snippet;

/// Templates asked for per page.
const PAGE: usize = 100;
/// Pages read at most: a business account holds a few hundred templates,
/// so this stops a provider that never stops paging, not a real account.
const MAX_PAGES: usize = 100;
/// One page's body at most.
const MAX_PAGE_BYTES: usize = 8 << 20;

/// A template as Meta lists it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RemoteTemplate {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub components: Vec<Value>,
}

/// The component of a kind (`body`, `header`) among a template's
/// components, as Meta lists them (`BODY`) or a send gives them (`body`).
pub fn component<'a>(components: &'a [Value], kind: &str) -> Option<&'a Value> {
    components.iter().find(|c| {
        c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    })
}

/// The `body` component (see [`component`]).
pub fn body_component(components: &[Value]) -> Option<&Value> {
    component(components, "body")
}

impl RemoteTemplate {
    /// The text of its BODY component.
    pub fn body(&self) -> Option<&str> {
        body_component(&self.components)
            .and_then(|c| c.get("text"))
            .and_then(Value::as_str)
    }

    /// Its HEADER component's format (TEXT, IMAGE, VIDEO, DOCUMENT,
    /// LOCATION) and, for TEXT, the header's text.
    pub fn header(&self) -> Option<(String, Option<&str>)> {
        let h = component(&self.components, "header")?;
        let format = h
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("TEXT")
            .to_ascii_uppercase();
        Some((format, h.get("text").and_then(Value::as_str)))
    }
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    data: Vec<RemoteTemplate>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    /// Present only while there is a next page.
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

impl MetaClient {
    /// Every template of the business account `waba_id`. The next page is
    /// asked for with the `after` cursor on the same URL (never a URL the
    /// answer names), so the token goes nowhere else. An error says what
    /// Meta answered.
    pub async fn message_templates(&self, waba_id: &str) -> Result<Vec<RemoteTemplate>, String> {
        if waba_id.is_empty() || !waba_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{waba_id:?} is not a business account id"));
        }
        let url = format!(
            "{}/{}/{}/message_templates",
            self.cfg.api_url.trim_end_matches('/'),
            self.cfg.api_version,
            waba_id
        );
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                (
                    "fields",
                    "id,name,language,category,status,components".to_string(),
                ),
                ("limit", PAGE.to_string()),
            ];
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let page_url = reqwest::Url::parse_with_params(&url, &query)
                .map_err(|e| format!("the Graph API URL {url:?}: {e}"))?;
            let mut response = self
                .http
                .get(page_url)
                .bearer_auth(&self.cfg.access_token)
                .send()
                .await
                .map_err(|e| format!("Meta: {}", confab_http::describe_failure(e)))?;
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| format!("Meta: {}", confab_http::describe_failure(e)))?
            {
                if body.len() + chunk.len() > MAX_PAGE_BYTES {
                    return Err(format!(
                        "Meta's answer is larger than {MAX_PAGE_BYTES} bytes"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            if !status.is_success() {
                return Err(match serde_json::from_slice::<GraphErrorBody>(&body) {
                    Ok(GraphErrorBody { error }) => format!(
                        "Meta answered {status}: {} (code {})",
                        error.message.unwrap_or_default(),
                        error.code.unwrap_or_default()
                    ),
                    Err(_) => format!("Meta answered {status}: {}", snippet(&body)),
                });
            }
            let page: Listing = serde_json::from_slice(&body)
                .map_err(|e| format!("Meta's list of templates is not the expected JSON: {e}"))?;
            let more = !page.data.is_empty();
            all.extend(page.data);
            let paging = page.paging.filter(|p| p.next.is_some());
            after = paging
                .and_then(|p| p.cursors)
                .and_then(|c| c.after)
                .filter(|a| !a.is_empty());
            if !more || after.is_none() {
                return Ok(all);
            }
        }
        Err(format!(
            "Meta listed more than {} templates",
            PAGE * MAX_PAGES
        ))
    }
}
