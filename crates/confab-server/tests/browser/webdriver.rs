//! Just enough of the W3C WebDriver protocol to drive headless Chromium
//! through chromedriver: open pages, find elements, click, type, read
//! text and cookies, resize the window, take screenshots.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long `wait_*` keep looking.
const PATIENCE: Duration = Duration::from_secs(10);

pub struct Browser {
    http: reqwest::Client,
    session: String,
}

#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// A new headless Chromium, through the chromedriver at
    /// `CHROMEDRIVER_URL` (`bash .ci/browser` starts one).
    pub async fn open() -> Browser {
        let driver = std::env::var("CHROMEDRIVER_URL").expect(
            "CHROMEDRIVER_URL names a running chromedriver: run these with bash .ci/browser",
        );
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                // Headless as root, and nothing that reaches out to the network.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--disable-crash-reporter",
                         "--disable-breakpad", "--window-size=1280,900",
                         "--force-device-scale-factor=1", "--hide-scrollbars"]
            }
        }}});
        let answer: Value = http
            .post(format!("{driver}/session"))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .unwrap();
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a browser session: {answer}"));
        Browser {
            http,
            session: format!("{driver}/session/{id}"),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let answer: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!("{path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    async fn try_find(&self, css: &str) -> Option<Element> {
        let answer: Value = self
            .http
            .post(format!("{}/element", self.session))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["value"][ELEMENT]
            .as_str()
            .map(|id| Element(id.to_string()))
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// A command's answer that is text.
    async fn string(&self, path: &str) -> String {
        self.call(reqwest::Method::GET, path, None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn url(&self) -> String {
        self.string("/url").await
    }

    /// The element `css` picks, waited for.
    pub async fn find(&self, css: &str) -> Element {
        let until = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if tokio::time::Instant::now() > until {
                panic!(
                    "no element {css:?} within {PATIENCE:?} on {}: {}",
                    self.url().await,
                    self.main_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the page's main part says, for a failure's message.
    async fn main_text(&self) -> String {
        match self.try_find("main").await {
            Some(e) => self.text(&e).await,
            None => self.source().await,
        }
    }

    /// Waits until the element `css` picks holds `text`; its text then.
    pub async fn wait_text(&self, css: &str, text: &str) -> String {
        let until = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(e) = self.try_find(css).await {
                let got = self.text(&e).await;
                if got.contains(text) {
                    return got;
                }
                if tokio::time::Instant::now() > until {
                    panic!("{css:?} does not hold {text:?} within {PATIENCE:?}: {got:?}");
                }
            } else if tokio::time::Instant::now() > until {
                panic!(
                    "no element {css:?} within {PATIENCE:?} on {}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn text(&self, e: &Element) -> String {
        // An element replaced meanwhile (a live update) reads as empty.
        let answer: Value = self
            .http
            .get(format!("{}/element/{}/text", self.session, e.0))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["value"].as_str().unwrap_or_default().to_string()
    }

    /// Does `verb` (`click`, `value`, `clear`) to the element `css` picks.
    async fn act(&self, css: &str, verb: &str, body: Value) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/{verb}", e.0),
            Some(body),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        self.act(css, "click", json!({})).await;
    }

    /// Types `text` into the field `css` picks, after what it holds.
    pub async fn type_in(&self, css: &str, text: &str) {
        self.act(css, "value", json!({"text": text})).await;
    }

    /// Empties the field `css` picks and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        self.act(css, "clear", json!({})).await;
        self.type_in(css, text).await;
    }

    /// Sets a long text at once (typing it key by key is slow).
    pub async fn set_value(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "arguments[0].value = arguments[1];",
                         "args": [{ELEMENT: e.0}, text]})),
        )
        .await;
    }

    pub async fn source(&self) -> String {
        self.string("/source").await
    }

    pub async fn cookie(&self, name: &str) -> String {
        self.call(reqwest::Method::GET, &format!("/cookie/{name}"), None)
            .await["value"]
            .as_str()
            .unwrap_or_else(|| panic!("a cookie {name}"))
            .to_string()
    }

    /// Sets the window to `width` × `height`.
    pub async fn size(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// The page as a PNG, written to `path`; its bytes.
    pub async fn screenshot(&self, path: &std::path::Path) -> Vec<u8> {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .unwrap();
        std::fs::write(path, &png).unwrap();
        png
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}
