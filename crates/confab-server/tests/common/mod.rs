//! The harness every server test uses: a fresh database (SQLite, or
//! PostgreSQL when `TEST_DATABASE_URL` names one), the real server on port 0,
//! and fake providers at the HTTP level.
#![allow(dead_code)]

pub mod fake;
/// The fake OpenAI-compatible server the AI client's own tests use.
#[path = "../../../confab-ai/tests/common/mod.rs"]
pub mod fake_ai;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use confab_server::clock::ShiftedClock;
use confab_server::config::{RawSettings, Settings};
use confab_server::{App, auth};
use confab_store::Store;
use tokio::sync::watch;

pub const AUTH_TOKEN: &str = "12345abcdef";
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const APP_SECRET: &str = "meta-app-secret";
pub const VERIFY_TOKEN: &str = "verify-me";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const TEST_MASTER_KEY: &str =
    "5f1e0c0a9b8d7c6e5f4a3b2c1d0e0f1a2b3c4d5e6f708192a3b4c5d6e7f80912";

/// `field` of each item of a page, as text.
pub fn column<'a>(page: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[field].as_str().unwrap())
        .collect()
}

/// A database for one test. PostgreSQL ones are dropped by a later run
/// (see `Store::create_test_database`).
pub async fn fresh_database() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    match std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    {
        Some(admin) => {
            let store = Store::connect(&admin)
                .await
                .expect("TEST_DATABASE_URL must be reachable");
            let name = store
                .create_test_database()
                .await
                .expect("create test database");
            store.close().await;
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
        None => {
            // A folder of its own: the master key file lives beside it.
            let dir = std::env::temp_dir().join("confab-tests").join(&id);
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}/confab.db", dir.display())
        }
    }
}

pub fn is_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// Settings for a test: signed webhooks on both channels; sending through
/// the fakes when given.
pub fn settings(db: &str, twilio_api: Option<&str>, meta_api: Option<&str>) -> RawSettings {
    let mut r = RawSettings {
        database_url: Some(db.to_string()),
        twilio_auth_token: Some(AUTH_TOKEN.into()),
        whatsapp_app_secret: Some(APP_SECRET.into()),
        whatsapp_webhook_verify_token: Some(VERIFY_TOKEN.into()),
        send_retry_base_ms: Some("50".into()),
        send_max_attempts: Some("4".into()),
        provider_timeout_seconds: Some("2".into()),
        outbox_lease_seconds: Some("5".into()),
        twilio_send_rate: Some("1000".into()),
        whatsapp_send_rate: Some("1000".into()),
        // Messaging tests see only what they send: no bot answers.
        default_flow: Some("none".into()),
        // PostgreSQL has no key file: the replicas share this key.
        confab_master_key: is_postgres().then(|| TEST_MASTER_KEY.into()),
        ..Default::default()
    };
    if let Some(url) = twilio_api {
        r.twilio_account_sid = Some(ACCOUNT_SID.into());
        r.twilio_whatsapp_number = Some("whatsapp:+14155238886".into());
        r.twilio_api_url = Some(url.into());
    }
    if let Some(url) = meta_api {
        r.whatsapp_access_token = Some("meta-access-token".into());
        r.whatsapp_phone_number_id = Some(PHONE_NUMBER_ID.into());
        r.whatsapp_api_url = Some(url.into());
    }
    r
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub url: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub clock: ShiftedClock,
    pub raw: RawSettings,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app(raw: RawSettings) -> TestApp {
    let clock = ShiftedClock::default();
    spawn_app_with_clock(raw, clock).await
}

pub async fn spawn_app_with_clock(raw: RawSettings, clock: ShiftedClock) -> TestApp {
    // TEST_LOG=debug shows the server's logs for a failing test.
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let settings = Settings::from_raw(&raw).expect("test settings are valid");
    let app = App::build_with_clock(settings, Arc::new(clock.clone()))
        .await
        .expect("app builds");
    let store = app.state.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(app.serve(listener, stopped));
    TestApp {
        addr,
        url: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        store,
        clock,
        raw,
        stop,
        task: Some(task),
    }
}

impl TestApp {
    /// Stops the server as a deployment would (SIGTERM), waiting for it.
    pub async fn stop(mut self) -> RawSettings {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.raw.clone()
    }

    /// Signs and posts a Twilio webhook to `path`, as Twilio would: a
    /// message names the number it was sent to (`To`), a delivery report
    /// the number the message went from (`From`), the settings' sender
    /// unless given.
    pub async fn twilio(&self, path: &str, params: &[(&str, &str)]) -> reqwest::Response {
        self.twilio_signed(path, AUTH_TOKEN, params).await
    }

    /// As [`TestApp::twilio`], signed with `token` (another bot's).
    pub async fn twilio_signed(
        &self,
        path: &str,
        token: &str,
        params: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let is_message = params.iter().any(|(k, _)| k == "Body" || k == "NumMedia");
        if is_message && !params.iter().any(|(k, _)| k == "To") {
            params.push(("To".into(), "whatsapp:+14155238886".into()));
        }
        // A delivery report names the sender the message went from.
        let is_status = params.iter().any(|(k, _)| k == "MessageStatus");
        if is_status && !params.iter().any(|(k, _)| k == "From") {
            params.push(("From".into(), "whatsapp:+14155238886".into()));
        }
        let url = format!("{}{path}", self.url);
        // Twilio signs the URL it was given: the public one when configured.
        let signed = format!(
            "{}{path}",
            self.raw.public_url.as_deref().unwrap_or(&self.url)
        );
        let sig = confab_channels::twilio::signature(token, &signed, &params);
        self.http
            .post(&url)
            .header("X-Twilio-Signature", sig)
            .form(&params)
            .send()
            .await
            .unwrap()
    }

    /// A Twilio text from `from` to a bot's number `to`, signed with that
    /// bot's `token`.
    pub async fn twilio_to(
        &self,
        (to, token): (&str, &str),
        from: &str,
        body: &str,
        sid: &str,
    ) -> reqwest::Response {
        self.twilio_signed(
            "/webhooks/twilio",
            token,
            &[
                ("From", &format!("whatsapp:{from}")),
                ("To", &format!("whatsapp:{to}")),
                ("Body", body),
                ("MessageSid", sid),
                ("NumMedia", "0"),
            ],
        )
        .await
    }

    /// A Twilio inbound text from `from` with a unique message SID.
    pub async fn twilio_text(&self, from: &str, body: &str, sid: &str) -> reqwest::Response {
        self.twilio(
            "/webhooks/twilio",
            &[
                ("From", &format!("whatsapp:{from}")),
                ("To", "whatsapp:+14155238886"),
                ("Body", body),
                ("MessageSid", sid),
                ("ProfileName", "Test User"),
                ("NumMedia", "0"),
            ],
        )
        .await
    }

    pub async fn meta(&self, body: &[u8]) -> reqwest::Response {
        self.http
            .post(format!("{}/webhooks/meta", self.url))
            .header(
                "X-Hub-Signature-256",
                confab_channels::meta::signature(APP_SECRET, body),
            )
            .header("Content-Type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// An admin API key for `/api/v1`, made the way `confab key create`
    /// makes one.
    pub async fn api_key(&self) -> String {
        self.api_key_with(auth::Role::Admin).await
    }

    /// An API key with `role`.
    pub async fn api_key_with(&self, role: auth::Role) -> String {
        let (key, hash) = auth::new_api_key();
        self.store
            .create_api_key(
                &format!("test {role}"),
                &hash,
                role,
                &confab_store::Change::by("test", 0),
            )
            .await
            .unwrap();
        key
    }

    /// An authenticated API call: its status and its JSON body (null when none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// An unauthenticated GET (`/metrics`, `/openapi.json`...): its body.
    pub async fn text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// An unauthenticated GET of a JSON document.
    pub async fn public_json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.text(path).await).unwrap()
    }

    /// A user with `role` and the password `a-long-password`.
    pub async fn user(&self, name: &str, role: auth::Role) {
        let hash = auth::hash_password("a-long-password".into()).await.unwrap();
        self.store
            .create_user(name, &hash, role, &confab_store::Change::by("test", 0))
            .await
            .unwrap();
    }

    /// A login with a username and password: the status and the body.
    pub async fn login(&self, user: &str, password: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, key, path, None).await
    }

    pub async fn post(
        &self,
        key: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, key, path, Some(body))
            .await
    }

    pub async fn patch(
        &self,
        key: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::PATCH, key, path, Some(body))
            .await
    }

    /// Waits until `check` holds, polling; panics after `secs`.
    pub async fn eventually<F, Fut>(&self, secs: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while tokio::time::Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for: {what}");
    }

    pub fn clock_now(&self) -> i64 {
        use confab_server::clock::Clock;
        self.clock.now_ms()
    }

    pub async fn count(&self, sql_table: &str) -> i64 {
        self.store.count_rows(sql_table).await.unwrap()
    }
}
