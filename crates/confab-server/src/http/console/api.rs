//! The console's calls of the API: in-process, through the API's own router
//! with the session's token. Each is authorised, checked and answered
//! exactly as the same call from outside would be; the console has no
//! other path to the data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::Value;
use tower::ServiceExt;

/// Answers larger than this are not read (a page shows a page of rows).
const MAX_ANSWER: usize = 32 << 20;

/// The API's routes, behind the same access layer as from outside, and
/// the answers read lately that every console of a bot shares.
#[derive(Clone)]
pub struct ApiRouter(Router, Arc<Recent>);

impl ApiRouter {
    pub fn new(router: Router) -> ApiRouter {
        ApiRouter(router, Arc::default())
    }
}

/// Answers of the API kept for a moment, by path (`Api::get_shared`).
#[derive(Default)]
struct Recent(Mutex<HashMap<String, (Instant, Value)>>);

/// How many answers `Recent` keeps at most: each open console's user and
/// bots (two a session, `crate::live::MAX_STREAMS` of them at most) and the
/// lists they share; past it, the expired ones go, then all.
const RECENT: usize = 4 * crate::live::MAX_STREAMS;

/// The API, as the session's user.
#[derive(Clone)]
pub struct Api {
    router: Router,
    token: String,
    recent: Arc<Recent>,
}

/// What the API refused, as its problem+json says.
#[derive(Clone, Debug)]
pub struct Refused {
    pub status: u16,
    pub detail: String,
    /// Each field or node at fault: `{"field", "node", "message"}`.
    pub problems: Vec<Value>,
}

impl Refused {
    /// What to tell the user: the detail, and each field or node at fault.
    pub fn say(&self) -> String {
        let mut out = self.detail.clone();
        for p in &self.problems {
            if let Some(m) = p.get("message").and_then(Value::as_str)
                && !out.contains(m)
            {
                out.push_str(&format!(" {m}."));
            }
        }
        out
    }
}

impl Api {
    pub fn new(router: &ApiRouter, token: &str) -> Api {
        Api {
            router: router.0.clone(),
            token: token.to_string(),
            recent: router.1.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, Refused> {
        self.call(Method::GET, path, None).await
    }

    /// As `get`, but an answer to the same path that anyone read within
    /// `fresh`, and after `changed` (when the streams were last told of
    /// the bot's changes), is given again. For what every console of a bot
    /// reloads as its conversations change (the inbox's list): fifty open
    /// consoles then cost one read a moment, not fifty. Only for paths
    /// that answer every user who may see the bot alike; the caller has
    /// checked that this user may.
    pub async fn get_shared(
        &self,
        path: &str,
        fresh: Duration,
        changed: Instant,
    ) -> Result<Value, Refused> {
        self.shared(path.to_string(), fresh, changed, self.get(path))
            .await
    }

    /// What `make` gives, kept under `key` for every session as
    /// `get_shared` keeps an answer: within `fresh` and after `changed`.
    /// The key names all that the value depends on.
    pub async fn shared<E>(
        &self,
        key: String,
        fresh: Duration,
        changed: Instant,
        make: impl Future<Output = Result<Value, E>>,
    ) -> Result<Value, E> {
        self.recently(key, fresh, Some(changed), make).await
    }

    /// As `get`, but this session's own answer to the same path within
    /// `fresh` is given again: who the user is and which bots they see,
    /// which every page asks first.
    pub async fn get_own(&self, path: &str, fresh: Duration) -> Result<Value, Refused> {
        self.recently(
            format!("{}\n{path}", self.token),
            fresh,
            None,
            self.get(path),
        )
        .await
    }

    async fn recently<E>(
        &self,
        key: String,
        fresh: Duration,
        changed: Option<Instant>,
        make: impl Future<Output = Result<Value, E>>,
    ) -> Result<Value, E> {
        let now = Instant::now();
        if let Some((at, v)) = self.recent.0.lock().ok().and_then(|r| r.get(&key).cloned())
            && now.duration_since(at) < fresh
            && changed.is_none_or(|c| at > c)
        {
            return Ok(v);
        }
        let v = make.await?;
        if let Ok(mut r) = self.recent.0.lock() {
            if r.len() >= RECENT {
                r.retain(|_, (at, _)| now.duration_since(*at) < fresh);
                if r.len() >= RECENT {
                    r.clear();
                }
            }
            r.insert(key, (now, v.clone()));
        }
        Ok(v)
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, Refused> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `path` is the API's, from `/api/v1`, with its query string.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Refused> {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        json_of(self.exchange(method, path, body).await?)
    }

    /// A document given as YAML (a flow), answered as JSON.
    pub async fn yaml(&self, method: Method, path: &str, text: &str) -> Result<Value, Refused> {
        let body = Some(("application/yaml", text.as_bytes().to_vec()));
        json_of(self.exchange(method, path, body).await?)
    }

    /// A GET whose answer is text (a CSV export).
    pub async fn text(&self, path: &str) -> Result<String, Refused> {
        let bytes = self.exchange(Method::GET, path, None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A GET whose answer is a file (what a contact sent): the API's
    /// answer as it is, with its headers.
    pub async fn file(&self, path: &str) -> Result<axum::response::Response, Refused> {
        let resp = self.send(Method::GET, path, None).await?;
        match resp.status().is_success() {
            true => Ok(resp),
            false => Err(refusal(resp).await),
        }
    }

    /// The answer's body, or what the API refused as its problem+json says.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<axum::body::Bytes, Refused> {
        let resp = self.send(method, path, body).await?;
        if !resp.status().is_success() {
            return Err(refusal(resp).await);
        }
        axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| refused(500, format!("the API's answer could not be read: {e}")))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<axum::response::Response, Refused> {
        // A change made through the console shows on the page it leads to.
        if method != Method::GET
            && let Ok(mut r) = self.recent.0.lock()
        {
            r.clear();
        }
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if let Some((kind, _)) = &body {
            req = req.header(header::CONTENT_TYPE, *kind);
        }
        let body = body.map_or_else(Body::empty, |(_, b)| Body::from(b));
        let req = req.body(body).map_err(|e| refused(500, e.to_string()))?;
        match self.router.clone().oneshot(req).await {
            Ok(r) => Ok(r),
            Err(never) => match never {},
        }
    }
}

/// What the API refused, as its problem+json says.
async fn refusal(resp: axum::response::Response) -> Refused {
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
        .await
        .unwrap_or_default();
    let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Refused {
        status: status.as_u16(),
        detail: problem
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string()),
        problems: problem
            .get("problems")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    }
}

/// The items of a page the API answered; none when it refused.
pub fn items(page: &Result<Value, Refused>) -> Vec<Value> {
    page.as_ref()
        .ok()
        .and_then(|p| p["items"].as_array().cloned())
        .unwrap_or_default()
}

/// The ids of the flows a `/flows` answer lists.
pub fn flow_ids(flows: &Result<Value, Refused>) -> Vec<Value> {
    items(flows).into_iter().map(|f| f["id"].clone()).collect()
}

fn json_of(bytes: axum::body::Bytes) -> Result<Value, Refused> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| refused(502, format!("the API's answer is not JSON: {e}")))
}

fn refused(status: u16, detail: String) -> Refused {
    Refused {
        status,
        detail,
        problems: Vec::new(),
    }
}

/// Whether the user (as `/auth/me` answers) has a role the API's table
/// lets call `route` (its full path as the table spells it, e.g.
/// `/api/v1/bots/{bot}/triggers/{id}`): so that a page offers only what
/// the API would do for them. The API still decides every call.
pub fn may(user: &Value, method: &Method, route: &str) -> bool {
    use crate::auth::policy::{Access, rule};
    let role = user["role"]
        .as_str()
        .and_then(|r| crate::auth::Role::parse(r).ok());
    match (rule(method, route), role) {
        (Some(Access::Public), _) => true,
        (Some(Access::Least(least)), Some(role)) => role >= least,
        _ => false,
    }
}

/// A path segment or query value, percent-encoded.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use serde_json::json;

    #[test]
    fn a_role_may_what_the_apis_table_lets_it() {
        let (viewer, editor) = (json!({"role": "viewer"}), json!({"role": "editor"}));
        let put = "/api/v1/bots/{bot}/triggers/{id}";
        assert!(!super::may(&viewer, &Method::PUT, put));
        assert!(super::may(&editor, &Method::PUT, put));
        assert!(super::may(&viewer, &Method::GET, put));
        assert!(!super::may(&json!({}), &Method::GET, put));
        assert!(!super::may(&editor, &Method::PUT, "/api/v1/no/such/route"));
    }

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(super::enc("+1 555/ä"), "%2B1%20555%2F%C3%A4");
        assert_eq!(super::enc("shop-2_x.y~"), "shop-2_x.y~");
    }
}
