//! Settings: what `serve` needs to know, checked once at start-up so that a
//! bad value stops the server with one line naming the variable.

mod assistant;
mod http;

use std::fmt;
use std::time::Duration;

pub use assistant::{AssistantSettings, DEFAULT_SYSTEM_PROMPT, MediaSettings, RateLimit};
pub use http::HttpSettings;

use confab_channels::meta::MetaConfig;
use confab_channels::twilio::TwilioConfig;
use confab_model::PhoneNumber;

/// The most inbound writers PostgreSQL may have (`INGEST_WRITERS`).
const MAX_INGEST_WRITERS: usize = confab_store::POSTGRES_POOL as usize / 2;

/// Raw settings as they come from flags, the environment and `.env`, named
/// by their environment variables. [`Settings::from_raw`] checks them.
#[derive(Clone, Default)]
pub struct RawSettings {
    pub database_url: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub public_url: Option<String>,
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub twilio_whatsapp_number: Option<String>,
    pub twilio_api_url: Option<String>,
    pub twilio_send_rate: Option<String>,
    pub whatsapp_access_token: Option<String>,
    pub whatsapp_phone_number_id: Option<String>,
    pub whatsapp_app_secret: Option<String>,
    pub whatsapp_webhook_verify_token: Option<String>,
    pub whatsapp_business_account_id: Option<String>,
    pub whatsapp_api_version: Option<String>,
    pub whatsapp_api_url: Option<String>,
    pub whatsapp_send_rate: Option<String>,
    pub jwt_secret: Option<String>,
    pub jwt_ttl_seconds: Option<String>,
    pub allow_registration: Option<String>,
    pub max_body_bytes: Option<String>,
    pub send_max_attempts: Option<String>,
    pub send_retry_base_ms: Option<String>,
    pub outbox_lease_seconds: Option<String>,
    pub provider_timeout_seconds: Option<String>,
    pub flows_dir: Option<String>,
    pub default_flow: Option<String>,
    pub run_timeout_minutes: Option<String>,
    pub ingest_writers: Option<String>,
    pub openai_api_key: Option<String>,
    pub openai_base_url: Option<String>,
    pub openai_model: Option<String>,
    pub openai_vision_model: Option<String>,
    pub openai_transcription_model: Option<String>,
    pub openai_timeout_seconds: Option<String>,
    pub ai_system_prompt: Option<String>,
    pub max_conversation_history: Option<String>,
    pub ai_concurrency: Option<String>,
    pub pdf_max_chars: Option<String>,
    pub whitelisted_users: Option<String>,
    pub rate_limit_messages: Option<String>,
    pub rate_limit_window_seconds: Option<String>,
    pub media_storage: Option<String>,
    pub media_dir: Option<String>,
    pub media_max_bytes: Option<String>,
    pub media_retention_days: Option<String>,
    pub http_header_timeout_seconds: Option<String>,
    pub http_body_timeout_seconds: Option<String>,
    pub http_idle_timeout_seconds: Option<String>,
    pub max_connections: Option<String>,
    pub shutdown_timeout_seconds: Option<String>,
    pub trusted_proxies: Option<String>,
    pub confab_master_key: Option<String>,
}

impl RawSettings {
    /// Reads every setting from the environment (after `.env` is loaded).
    pub fn from_env() -> RawSettings {
        let v = |k: &str| std::env::var(k).ok().filter(|s| !s.trim().is_empty());
        RawSettings {
            database_url: v("DATABASE_URL"),
            host: v("HOST"),
            port: v("PORT"),
            public_url: v("PUBLIC_URL"),
            twilio_account_sid: v("TWILIO_ACCOUNT_SID"),
            twilio_auth_token: v("TWILIO_AUTH_TOKEN"),
            twilio_whatsapp_number: v("TWILIO_WHATSAPP_NUMBER"),
            twilio_api_url: v("TWILIO_API_URL"),
            twilio_send_rate: v("TWILIO_SEND_RATE"),
            whatsapp_access_token: v("WHATSAPP_ACCESS_TOKEN"),
            whatsapp_phone_number_id: v("WHATSAPP_PHONE_NUMBER_ID"),
            whatsapp_app_secret: v("WHATSAPP_APP_SECRET"),
            whatsapp_webhook_verify_token: v("WHATSAPP_WEBHOOK_VERIFY_TOKEN"),
            whatsapp_business_account_id: v("WHATSAPP_BUSINESS_ACCOUNT_ID"),
            whatsapp_api_version: v("WHATSAPP_API_VERSION"),
            whatsapp_api_url: v("WHATSAPP_API_URL"),
            whatsapp_send_rate: v("WHATSAPP_SEND_RATE"),
            jwt_secret: v("JWT_SECRET"),
            jwt_ttl_seconds: v("JWT_TTL_SECONDS"),
            allow_registration: v("ALLOW_REGISTRATION"),
            max_body_bytes: v("MAX_BODY_BYTES"),
            send_max_attempts: v("SEND_MAX_ATTEMPTS"),
            send_retry_base_ms: v("SEND_RETRY_BASE_MS"),
            outbox_lease_seconds: v("OUTBOX_LEASE_SECONDS"),
            provider_timeout_seconds: v("PROVIDER_TIMEOUT_SECONDS"),
            flows_dir: v("FLOWS_DIR"),
            default_flow: v("DEFAULT_FLOW"),
            run_timeout_minutes: v("RUN_TIMEOUT_MINUTES"),
            ingest_writers: v("INGEST_WRITERS"),
            openai_api_key: v("OPENAI_API_KEY"),
            openai_base_url: v("OPENAI_BASE_URL"),
            openai_model: v("OPENAI_MODEL"),
            openai_vision_model: v("OPENAI_VISION_MODEL"),
            openai_transcription_model: v("OPENAI_TRANSCRIPTION_MODEL"),
            openai_timeout_seconds: v("OPENAI_TIMEOUT_SECONDS"),
            ai_system_prompt: v("AI_SYSTEM_PROMPT"),
            max_conversation_history: v("MAX_CONVERSATION_HISTORY"),
            ai_concurrency: v("AI_CONCURRENCY"),
            pdf_max_chars: v("PDF_MAX_CHARS"),
            whitelisted_users: v("WHITELISTED_USERS"),
            rate_limit_messages: v("RATE_LIMIT_MESSAGES"),
            rate_limit_window_seconds: v("RATE_LIMIT_WINDOW_SECONDS"),
            media_storage: v("MEDIA_STORAGE"),
            media_dir: v("MEDIA_DIR"),
            media_max_bytes: v("MEDIA_MAX_BYTES"),
            media_retention_days: v("MEDIA_RETENTION_DAYS"),
            http_header_timeout_seconds: v("HTTP_HEADER_TIMEOUT_SECONDS"),
            http_body_timeout_seconds: v("HTTP_BODY_TIMEOUT_SECONDS"),
            http_idle_timeout_seconds: v("HTTP_IDLE_TIMEOUT_SECONDS"),
            max_connections: v("MAX_CONNECTIONS"),
            shutdown_timeout_seconds: v("SHUTDOWN_TIMEOUT_SECONDS"),
            trusted_proxies: v("TRUSTED_PROXIES"),
            confab_master_key: v("CONFAB_MASTER_KEY"),
        }
    }
}

/// A start-up setting that is wrong: the variable and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct SettingError {
    pub var: &'static str,
    pub problem: String,
}

fn bad(var: &'static str, problem: impl Into<String>) -> SettingError {
    SettingError {
        var,
        problem: problem.into(),
    }
}

/// Checked settings.
#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    pub host: String,
    pub port: u16,
    /// The external base URL (scheme, host, optional path prefix) Twilio signs.
    pub public_url: Option<String>,
    /// Set when inbound Twilio webhooks must be signed.
    pub twilio_auth_token: Option<String>,
    /// Set when we can send through Twilio.
    pub twilio: Option<TwilioConfig>,
    pub twilio_send_rate: f64,
    /// Set when inbound Meta webhooks must be signed.
    pub meta_app_secret: Option<String>,
    pub meta_verify_token: Option<String>,
    /// The default bot's WhatsApp Business account (for templates).
    pub meta_business_account_id: Option<String>,
    /// Set when we can send through Meta.
    pub meta: Option<MetaConfig>,
    pub meta_send_rate: f64,
    /// Where the providers' APIs are, for every bot's channels.
    pub endpoints: confab_channels::settings::Endpoints,
    /// Seals the credentials bots keep (`CONFAB_MASTER_KEY`); on SQLite,
    /// a key file beside the database stands in for it.
    pub master_key: Option<String>,
    pub jwt_secret: Option<String>,
    pub jwt_ttl: Duration,
    /// Anyone may register (as a viewer); else only the first user of an
    /// empty database.
    pub allow_registration: bool,
    pub max_body_bytes: usize,
    pub send_max_attempts: i64,
    pub send_retry_base: Duration,
    pub outbox_lease: Duration,
    pub provider_timeout: Duration,
    /// Flows and collections that add to or override the bundled ones.
    pub flows_dir: std::path::PathBuf,
    /// `FLOWS_DIR` was given (not the default `./flows`).
    pub flows_dir_given: bool,
    /// The flow a contact without a run starts in; `None` (DEFAULT_FLOW=none):
    /// messages are stored and only triggers start flows.
    pub default_flow: Option<String>,
    /// A run waiting this long for an answer expires; `None`: never.
    pub run_timeout: Option<Duration>,
    /// Inbound batches committed side by side on PostgreSQL (SQLite has one
    /// writer at a time).
    pub ingest_writers: usize,
    /// The AI provider, the access policy and inbound media.
    pub assistant: AssistantSettings,
    /// Timeouts, the connection cap, trusted proxies, the shutdown deadline.
    pub http: HttpSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("public_url", &self.public_url)
            .field("twilio_signed", &self.twilio_auth_token.is_some())
            .field("twilio_sending", &self.twilio.is_some())
            .field("meta_signed", &self.meta_app_secret.is_some())
            .field("meta_sending", &self.meta.is_some())
            .field("ai", &self.assistant.ai.is_some())
            .finish_non_exhaustive()
    }
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A SQLAlchemy URL names its driver after the dialect
/// (`sqlite+aiosqlite:///./bot.db`, `postgresql+asyncpg://...`); the
/// Python systems Confab replaces were configured so. The driver is theirs.
fn without_driver(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, rest)) if scheme.contains('+') => {
            let dialect = scheme.split('+').next().unwrap_or(scheme);
            format!("{dialect}:{rest}")
        }
        _ => url.to_string(),
    }
}

fn parse_num<T: std::str::FromStr>(
    var: &'static str,
    v: &Option<String>,
    default: T,
    what: &str,
) -> Result<T, SettingError> {
    match v {
        None => Ok(default),
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| bad(var, format!("'{s}' is not {what}"))),
    }
}

fn parse_base_url(
    var: &'static str,
    v: &Option<String>,
    default: &str,
) -> Result<String, SettingError> {
    let s = v.as_deref().unwrap_or(default).trim().trim_end_matches('/');
    let ok = (s.starts_with("http://") || s.starts_with("https://"))
        && s.split("://")
            .nth(1)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
    if !ok {
        return Err(bad(var, format!("'{s}' is not an http(s) URL")));
    }
    Ok(s.to_string())
}

fn positive_rate(var: &'static str, v: &Option<String>, default: f64) -> Result<f64, SettingError> {
    let r: f64 = parse_num(var, v, default, "a number of messages per second")?;
    if !(r > 0.0 && r.is_finite()) {
        return Err(bad(var, "must be a positive number of messages per second"));
    }
    Ok(r)
}

impl Settings {
    /// Messages per second one sender number of `channel` may send: the
    /// outbox's pace, and the pace a schedule starts its audience at.
    pub fn send_rate(&self, channel: confab_model::Channel) -> f64 {
        match channel {
            confab_model::Channel::Twilio => self.twilio_send_rate,
            confab_model::Channel::Meta | confab_model::Channel::Simulator => self.meta_send_rate,
        }
    }

    pub fn from_raw(r: &RawSettings) -> Result<Settings, SettingError> {
        let database_url = r
            .database_url
            .as_deref()
            .map(without_driver)
            .unwrap_or_else(|| "sqlite://./data/confab.db".into());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(bad(
                "DATABASE_URL",
                "must start with sqlite: or postgres://",
            ));
        }
        let port: u16 = parse_num("PORT", &r.port, 8000, "a port number (0-65535)")?;
        let public_url = match &r.public_url {
            None => None,
            Some(_) => Some(parse_base_url("PUBLIC_URL", &r.public_url, "")?),
        };

        let twilio_api_url = parse_base_url(
            "TWILIO_API_URL",
            &r.twilio_api_url,
            "https://api.twilio.com",
        )?;
        let twilio = match (
            &r.twilio_account_sid,
            &r.twilio_auth_token,
            &r.twilio_whatsapp_number,
        ) {
            (None, _, None) => None,
            (sid, token, number) => {
                let sid = sid.clone().ok_or_else(|| {
                    bad(
                        "TWILIO_ACCOUNT_SID",
                        "is required to send through Twilio (TWILIO_WHATSAPP_NUMBER is set)",
                    )
                })?;
                if !(sid.len() == 34
                    && sid.starts_with("AC")
                    && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(bad(
                        "TWILIO_ACCOUNT_SID",
                        "must be AC followed by 32 hex digits",
                    ));
                }
                let token = token.clone().ok_or_else(|| {
                    bad(
                        "TWILIO_AUTH_TOKEN",
                        "is required when TWILIO_ACCOUNT_SID is set",
                    )
                })?;
                let number = number.as_deref().ok_or_else(|| {
                    bad(
                        "TWILIO_WHATSAPP_NUMBER",
                        "is required when TWILIO_ACCOUNT_SID is set",
                    )
                })?;
                let from = PhoneNumber::parse(number)
                    .map_err(|e| bad("TWILIO_WHATSAPP_NUMBER", e.to_string()))?;
                Some(TwilioConfig {
                    account_sid: sid,
                    auth_token: token,
                    from,
                    api_url: twilio_api_url.clone(),
                })
            }
        };

        let meta_api_url = parse_base_url(
            "WHATSAPP_API_URL",
            &r.whatsapp_api_url,
            "https://graph.facebook.com",
        )?;
        let api_version = r
            .whatsapp_api_version
            .clone()
            .unwrap_or_else(|| "v23.0".into());
        let version_ok = api_version.strip_prefix('v').is_some_and(|n| {
            let mut parts = n.split('.');
            let ok = |p: Option<&str>| {
                p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            };
            ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
        });
        if !version_ok {
            return Err(bad(
                "WHATSAPP_API_VERSION",
                format!("'{api_version}' is not a Graph API version like v23.0"),
            ));
        }
        let meta = match (&r.whatsapp_access_token, &r.whatsapp_phone_number_id) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(bad(
                    "WHATSAPP_ACCESS_TOKEN",
                    "is required when WHATSAPP_PHONE_NUMBER_ID is set",
                ));
            }
            (Some(_), None) => {
                return Err(bad(
                    "WHATSAPP_PHONE_NUMBER_ID",
                    "is required when WHATSAPP_ACCESS_TOKEN is set",
                ));
            }
            (Some(token), Some(id)) => {
                if !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(
                        "WHATSAPP_PHONE_NUMBER_ID",
                        "must be the numeric phone number id from the Meta app",
                    ));
                }
                Some(MetaConfig {
                    access_token: token.clone(),
                    phone_number_id: id.clone(),
                    app_secret: r.whatsapp_app_secret.clone(),
                    verify_token: r.whatsapp_webhook_verify_token.clone(),
                    api_version: api_version.clone(),
                    api_url: meta_api_url.clone(),
                })
            }
        };

        let (twilio_api_url_all, meta_api_url_all) = (twilio_api_url, meta_api_url);
        let jwt_secret = r.jwt_secret.clone();
        if jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(bad("JWT_SECRET", "must be at least 32 characters"));
        }
        let max_body_bytes: usize = parse_num(
            "MAX_BODY_BYTES",
            &r.max_body_bytes,
            1 << 20,
            "a number of bytes",
        )?;
        if max_body_bytes < 1024 {
            return Err(bad("MAX_BODY_BYTES", "must be at least 1024"));
        }
        let send_max_attempts: i64 = parse_num(
            "SEND_MAX_ATTEMPTS",
            &r.send_max_attempts,
            8,
            "a whole number",
        )?;
        if send_max_attempts < 1 {
            return Err(bad("SEND_MAX_ATTEMPTS", "must be at least 1"));
        }
        let lease: u64 = parse_num(
            "OUTBOX_LEASE_SECONDS",
            &r.outbox_lease_seconds,
            60,
            "a number of seconds",
        )?;
        let timeout: u64 = parse_num(
            "PROVIDER_TIMEOUT_SECONDS",
            &r.provider_timeout_seconds,
            30,
            "a number of seconds",
        )?;
        if lease <= timeout {
            return Err(bad(
                "OUTBOX_LEASE_SECONDS",
                format!("must be longer than PROVIDER_TIMEOUT_SECONDS ({timeout})"),
            ));
        }
        let ttl: u64 = parse_num(
            "JWT_TTL_SECONDS",
            &r.jwt_ttl_seconds,
            3600,
            "a number of seconds",
        )?;
        let meta_business_account_id = match &r.whatsapp_business_account_id {
            Some(id) if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(bad(
                    "WHATSAPP_BUSINESS_ACCOUNT_ID",
                    "must be the numeric WhatsApp Business account id",
                ));
            }
            id => id.clone(),
        };
        Ok(Settings {
            database_url,
            host: r.host.clone().unwrap_or_else(|| "0.0.0.0".into()),
            port,
            public_url,
            twilio_auth_token: r.twilio_auth_token.clone(),
            twilio,
            twilio_send_rate: positive_rate("TWILIO_SEND_RATE", &r.twilio_send_rate, 20.0)?,
            meta_app_secret: r.whatsapp_app_secret.clone(),
            meta_verify_token: r.whatsapp_webhook_verify_token.clone(),
            meta_business_account_id,
            meta,
            meta_send_rate: positive_rate("WHATSAPP_SEND_RATE", &r.whatsapp_send_rate, 80.0)?,
            endpoints: confab_channels::settings::Endpoints {
                twilio_api_url: Some(twilio_api_url_all),
                meta_api_url: Some(meta_api_url_all),
                meta_api_version: Some(api_version),
            },
            master_key: r.confab_master_key.clone(),
            jwt_secret,
            jwt_ttl: Duration::from_secs(ttl.max(60)),
            allow_registration: match r.allow_registration.as_deref().map(str::trim) {
                None | Some("false") | Some("0") | Some("no") => false,
                Some("true") | Some("1") | Some("yes") => true,
                Some(other) => {
                    return Err(bad(
                        "ALLOW_REGISTRATION",
                        format!("'{other}' is not true or false"),
                    ));
                }
            },
            max_body_bytes,
            send_max_attempts,
            send_retry_base: Duration::from_millis(parse_num(
                "SEND_RETRY_BASE_MS",
                &r.send_retry_base_ms,
                1000,
                "a number of milliseconds",
            )?),
            outbox_lease: Duration::from_secs(lease),
            provider_timeout: Duration::from_secs(timeout.max(1)),
            flows_dir: r
                .flows_dir
                .clone()
                .unwrap_or_else(|| "./flows".into())
                .into(),
            flows_dir_given: r.flows_dir.is_some(),
            default_flow: match r.default_flow.as_deref().map(str::trim) {
                None => Some("product_review".into()),
                Some("none") => None,
                Some(f) => Some(f.to_string()),
            },
            run_timeout: match parse_num::<u64>(
                "RUN_TIMEOUT_MINUTES",
                &r.run_timeout_minutes,
                1440,
                "a number of minutes",
            )? {
                0 => None,
                m => Some(Duration::from_secs(m.saturating_mul(60))),
            },
            ingest_writers: match parse_num::<usize>(
                "INGEST_WRITERS",
                &r.ingest_writers,
                1,
                "a number",
            )? {
                // Each writer holds a pooled connection while it commits;
                // half the pool leaves the rest for the API and the outbox.
                n @ 1..=MAX_INGEST_WRITERS => n,
                _ => {
                    return Err(bad(
                        "INGEST_WRITERS",
                        format!("must be from 1 to {MAX_INGEST_WRITERS}"),
                    ));
                }
            },
            assistant: assistant::from_raw(r)?,
            http: http::from_raw(r)?,
        })
    }

    /// Problems worth a warning at start-up (and on `/health`).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.twilio_auth_token.is_none() {
            w.push("TWILIO_AUTH_TOKEN is not set: Twilio webhooks are accepted without signature checks (local development only)".into());
        }
        if self.meta_app_secret.is_none() {
            w.push("WHATSAPP_APP_SECRET is not set: Meta webhooks are accepted without signature checks (local development only)".into());
        }
        if self.flows_dir_given && !self.flows_dir.is_dir() {
            w.push(format!(
                "FLOWS_DIR {} is not a directory: only the bundled flows are loaded",
                self.flows_dir.display()
            ));
        }
        if self.twilio_auth_token.is_some()
            && self.public_url.is_none()
            && self.http.trusted_proxies.is_empty()
        {
            w.push("PUBLIC_URL is not set: Twilio signatures are checked against the URL in each request's Host header; behind a proxy, set PUBLIC_URL (or TRUSTED_PROXIES to believe its X-Forwarded-Proto and -Host)".into());
        }
        if self.twilio.is_some() && self.public_url.is_none() {
            w.push("PUBLIC_URL is not set: Twilio sends carry no status callback, so their delivery status stays 'accepted' unless the callback is set on the Twilio sender".into());
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings::default()
    }

    #[test]
    fn defaults_need_nothing() {
        let s = Settings::from_raw(&raw()).unwrap();
        assert_eq!(s.database_url, "sqlite://./data/confab.db");
        assert_eq!((s.host.as_str(), s.port), ("0.0.0.0", 8000));
        assert_eq!(s.ingest_writers, 1);
        assert!(s.twilio.is_none() && s.meta.is_none());
        assert_eq!(s.warnings().len(), 2);
    }

    #[test]
    fn a_flows_dir_that_is_not_there_is_warned_about() {
        let mut r = raw();
        r.flows_dir = Some("/nonexistent/confab-flows".into());
        let w = Settings::from_raw(&r).unwrap().warnings();
        assert!(
            w.iter()
                .any(|w| w.starts_with("FLOWS_DIR /nonexistent/confab-flows is not a directory")),
            "{w:?}"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let mut r = raw();
        r.port = Some("eighty".into());
        assert_eq!(Settings::from_raw(&r).unwrap_err().var, "PORT");

        let mut r = raw();
        r.twilio_account_sid = Some(format!("AC{}", "a".repeat(32)));
        let e = Settings::from_raw(&r).unwrap_err();
        assert_eq!(e.var, "TWILIO_AUTH_TOKEN");

        r.twilio_auth_token = Some("t".into());
        r.twilio_whatsapp_number = Some("whatsapp:+1415".into());
        assert_eq!(
            Settings::from_raw(&r).unwrap_err().var,
            "TWILIO_WHATSAPP_NUMBER"
        );

        r.twilio_whatsapp_number = Some("whatsapp:+14155552671".into());
        r.twilio_api_url = Some("ftp://x".into());
        assert_eq!(Settings::from_raw(&r).unwrap_err().var, "TWILIO_API_URL");
        r.twilio_api_url = Some("http://127.0.0.1:9/".into());
        let s = Settings::from_raw(&r).unwrap();
        assert_eq!(s.twilio.unwrap().api_url, "http://127.0.0.1:9");

        let mut r = raw();
        r.whatsapp_access_token = Some("x".into());
        assert_eq!(
            Settings::from_raw(&r).unwrap_err().var,
            "WHATSAPP_PHONE_NUMBER_ID"
        );
        r.whatsapp_phone_number_id = Some("123".into());
        r.whatsapp_api_version = Some("23".into());
        assert_eq!(
            Settings::from_raw(&r).unwrap_err().var,
            "WHATSAPP_API_VERSION"
        );

        let mut r = raw();
        r.ingest_writers = Some("0".into());
        assert_eq!(Settings::from_raw(&r).unwrap_err().var, "INGEST_WRITERS");
        r.ingest_writers = Some("9".into());
        assert_eq!(Settings::from_raw(&r).unwrap_err().var, "INGEST_WRITERS");
        r.ingest_writers = Some("8".into());
        assert_eq!(Settings::from_raw(&r).unwrap().ingest_writers, 8);

        let mut r = raw();
        r.database_url = Some("mysql://x".into());
        let e = Settings::from_raw(&r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DATABASE_URL: must start with sqlite: or postgres://"
        );
    }

    #[test]
    fn the_python_seeds_database_urls_work_as_their_users_meant_them() {
        let mut r = raw();
        r.database_url = Some("sqlite+aiosqlite:///./chatboost.db".into());
        assert_eq!(
            Settings::from_raw(&r).unwrap().database_url,
            "sqlite:///./chatboost.db"
        );
        r.database_url = Some("postgresql+asyncpg://u:p@db/bots".into());
        assert_eq!(
            Settings::from_raw(&r).unwrap().database_url,
            "postgresql://u:p@db/bots"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut r = raw();
        r.database_url = Some("postgres://app:hunter2@db/confab".into());
        r.twilio_auth_token = Some("supersecret".into());
        let s = format!("{:?}", Settings::from_raw(&r).unwrap());
        assert!(!s.contains("hunter2") && !s.contains("supersecret"), "{s}");
        assert!(s.contains("postgres://app:***@db/confab"));
    }
}
