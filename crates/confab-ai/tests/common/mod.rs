//! A fake OpenAI-compatible server: a local HTTP server that records every
//! request and answers with scripted replies, in order, then with a standing
//! reply if one is set.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use confab_ai::{AiClient, AiConfig};

pub const KEY: &str = "sk-test";

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no header {name}"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// The parts of a multipart/form-data body, parsed by hand so the test
    /// checks the bytes on the wire rather than another library's reading.
    pub fn multipart(&self) -> Vec<FormPart> {
        let content_type = self.header("content-type");
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap_or_else(|| panic!("not multipart/form-data: {content_type}"))
            .trim_matches('"');
        let delimiter = format!("--{boundary}");
        let mut sections = split(&self.body, delimiter.as_bytes());
        assert!(
            sections.remove(0).is_empty(),
            "text before the first boundary"
        );
        let last = sections.pop().expect("a closing boundary");
        assert!(
            last.starts_with(b"--"),
            "the body does not end with the closing boundary"
        );
        sections
            .into_iter()
            .map(|s| {
                let s = s.strip_prefix(b"\r\n").expect("CRLF after a boundary");
                let s = s.strip_suffix(b"\r\n").expect("CRLF before a boundary");
                let end = find(s, b"\r\n\r\n").expect("a blank line after the part headers");
                let headers = std::str::from_utf8(&s[..end]).unwrap();
                FormPart::new(headers, s[end + 4..].to_vec())
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FormPart {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

impl FormPart {
    fn new(headers: &str, data: Vec<u8>) -> FormPart {
        let mut part = FormPart {
            name: String::new(),
            filename: None,
            content_type: None,
            data,
        };
        for line in headers.split("\r\n") {
            let (name, value) = line.split_once(':').expect("a header line");
            match name.to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    for param in value.split(';').map(str::trim).skip(1) {
                        let (k, v) = param.split_once('=').expect("a parameter");
                        let v = v.trim_matches('"').to_string();
                        match k {
                            "name" => part.name = v,
                            "filename" => part.filename = Some(v),
                            other => panic!("unexpected parameter {other}"),
                        }
                    }
                }
                "content-type" => part.content_type = Some(value.trim().to_string()),
                other => panic!("unexpected part header {other}"),
            }
        }
        part
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.data).unwrap()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut body: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = find(body, delimiter) {
        out.push(&body[..i]);
        body = &body[i + delimiter.len()..];
    }
    out.push(body);
    out
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::raw(status, &body.to_string())
    }

    pub fn raw(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

#[derive(Clone, Default)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    standing: Arc<Mutex<Option<Reply>>>,
}

pub struct FakeServer {
    /// The API root, as `AiConfig::base_url` wants it.
    pub base_url: String,
    shared: Shared,
}

impl FakeServer {
    pub async fn start() -> FakeServer {
        let shared = Shared::default();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeServer { base_url, shared }
    }

    /// The next reply, after those already scripted.
    pub fn reply(&self, reply: Reply) -> &Self {
        self.shared.replies.lock().unwrap().push_back(reply);
        self
    }

    /// The reply once the scripted ones are used up.
    pub fn always(&self, reply: Reply) -> &Self {
        *self.shared.standing.lock().unwrap() = Some(reply);
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn only_request(&self) -> Recorded {
        let mut all = self.requests();
        assert_eq!(all.len(), 1, "expected exactly one request");
        all.remove(0)
    }

    /// A client for this server with the test key and short limits.
    pub fn client(&self, tune: impl FnOnce(&mut AiConfig)) -> AiClient {
        let mut cfg = AiConfig {
            base_url: self.base_url.clone(),
            api_key: Some(KEY.into()),
            request_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(10),
            ..AiConfig::default()
        };
        tune(&mut cfg);
        AiClient::new(cfg, reqwest::Client::new())
    }
}

async fn handle(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 1 << 24).await.unwrap().to_vec();
    shared.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body,
    });
    let reply = shared.replies.lock().unwrap().pop_front();
    let Some(reply) = reply.or_else(|| shared.standing.lock().unwrap().clone()) else {
        return (StatusCode::IM_A_TEAPOT, "no reply scripted").into_response();
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &reply.headers {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    (
        StatusCode::from_u16(reply.status).unwrap(),
        headers,
        reply.body,
    )
        .into_response()
}

/// A loopback API root nothing listens on.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}
