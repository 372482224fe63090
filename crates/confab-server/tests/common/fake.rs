//! A fake provider API (Twilio or Meta Graph) at the HTTP level: it records
//! every request and answers from a script, so tests can make it fail,
//! throttle or stall on demand.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The query string, undecoded (empty when none).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).unwrap()
    }

    pub fn form_value(&self, key: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub retry_after: Option<u64>,
}

impl Reply {
    pub fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.into(),
            delay: Duration::ZERO,
            retry_after: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Twilio,
    Meta,
}

/// Path to content type and bytes.
type Files = std::collections::HashMap<String, (String, Vec<u8>)>;

#[derive(Clone)]
struct Shared {
    kind: Kind,
    log: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    /// Paths served as files (media), with their content type.
    files: Arc<Mutex<Files>>,
}

pub struct FakeProvider {
    pub url: String,
    shared: Shared,
}

impl FakeProvider {
    pub async fn start(kind: Kind) -> FakeProvider {
        let shared = Shared {
            kind,
            log: Default::default(),
            script: Default::default(),
            files: Default::default(),
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeProvider {
            url: format!("http://{addr}"),
            shared,
        }
    }

    /// Answers the next requests with these replies, then with success. A
    /// 2xx reply with an empty body is the usual success.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// Serves `bytes` at `path` (a media file); its URL.
    pub fn file(&self, path: &str, content_type: &str, bytes: &[u8]) -> String {
        self.shared
            .files
            .lock()
            .unwrap()
            .insert(path.into(), (content_type.into(), bytes.to_vec()));
        format!("{}{path}", self.url)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }
}

fn success(kind: Kind, n: usize) -> (StatusCode, String) {
    match kind {
        Kind::Twilio => (
            StatusCode::CREATED,
            serde_json::json!({"sid": format!("SMfa{n:030x}"), "status": "queued"}).to_string(),
        ),
        Kind::Meta => (
            StatusCode::OK,
            serde_json::json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "x", "wa_id": "x"}],
                "messages": [{"id": format!("wamid.FAKE{n}"), "message_status": "accepted"}]
            })
            .to_string(),
        ),
    }
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = {
        let mut log = s.log.lock().unwrap();
        log.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            headers,
            body,
        });
        log.len()
    };
    if let Some((ct, bytes)) = s.files.lock().unwrap().get(uri.path()).cloned() {
        return (StatusCode::OK, [("content-type", ct)], bytes).into_response();
    }
    let scripted = s.script.lock().unwrap().pop_front();
    match scripted {
        None => {
            let (status, body) = success(s.kind, n);
            (status, [("content-type", "application/json")], body).into_response()
        }
        Some(r) => {
            tokio::time::sleep(r.delay).await;
            if r.status < 300 {
                // An empty body: the usual success; else the body scripted.
                let (status, body) = if r.body.is_empty() {
                    success(s.kind, n)
                } else {
                    (StatusCode::from_u16(r.status).unwrap(), r.body)
                };
                return (status, [("content-type", "application/json")], body).into_response();
            }
            let mut resp = (
                StatusCode::from_u16(r.status).unwrap(),
                [("content-type", "application/json")],
                r.body,
            )
                .into_response();
            if let Some(secs) = r.retry_after {
                resp.headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            resp
        }
    }
}
