//! The OpenAI-compatible client: chat completions (text and images) and audio
//! transcriptions, retried within a per-call deadline.

mod wire;

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use base64::Engine as _;
use confab_http::retry_after;
use reqwest::RequestBuilder;
use reqwest::header::CONTENT_TYPE;
use reqwest::multipart::{Form, Part as FormPart};

/// Where the AI provider is, which models to ask for and how long to wait.
#[derive(Clone, PartialEq, Eq)]
pub struct AiConfig {
    /// The API root, e.g. `https://api.openai.com/v1`, or
    /// `http://127.0.0.1:8080/v1` for a local server. A trailing slash is
    /// ignored; an empty URL means no provider is configured.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>`. A blank key counts as none:
    /// local servers usually want none, and an empty variable in `.env` should
    /// not send a broken header.
    pub api_key: Option<String>,
    pub chat_model: String,
    pub vision_model: String,
    pub transcription_model: String,
    /// The limit for one HTTP attempt.
    pub request_timeout: Duration,
    /// The limit for a whole call: every attempt and the waits between them.
    pub deadline: Duration,
    /// How many HTTP attempts one call may make, the first included.
    pub max_attempts: u32,
}

impl Default for AiConfig {
    fn default() -> Self {
        AiConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            chat_model: "gpt-4o-mini".into(),
            vision_model: "gpt-4o-mini".into(),
            transcription_model: "whisper-1".into(),
            request_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(60),
            max_attempts: 4,
        }
    }
}

/// The key is a secret: configs end up in logs and panic messages.
impl fmt::Debug for AiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("chat_model", &self.chat_model)
            .field("vision_model", &self.vision_model)
            .field("transcription_model", &self.transcription_model)
            .field("request_timeout", &self.request_timeout)
            .field("deadline", &self.deadline)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// One chat completion request.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// An empty model means the configured one: `vision_model` when a message
    /// carries an image, `chat_model` otherwise.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    /// Sent as `max_tokens`; see the note in the wire module.
    pub max_tokens: Option<u32>,
    /// Asks for Structured Outputs: an answer that is JSON matching the schema.
    pub json_schema: Option<JsonSchemaFormat>,
}

/// A JSON Schema the answer must follow. `name` may hold a-z, A-Z, 0-9, `_`
/// and `-`, at most 64 characters.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonSchemaFormat {
    pub name: String,
    pub schema: serde_json::Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    /// Images are only accepted in user messages; system and assistant
    /// messages take text only.
    pub parts: Vec<Part>,
}

impl ChatMessage {
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        ChatMessage {
            role,
            parts: vec![Part::Text(text.into())],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    /// An https URL or a data: URL ("data:image/jpeg;base64,...").
    Image {
        url: String,
    },
}

/// A `data:` URL carrying the image itself, for providers that cannot fetch
/// our media (WhatsApp media URLs need the channel's credentials).
pub fn image_data_url(content_type: &str, bytes: &[u8]) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("data:{content_type};base64,{data}")
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChatAnswer {
    pub text: String,
    /// The model the server reports, else the one requested.
    pub model: String,
    /// 0 when the server reports no usage, as some local servers do.
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// The whole call, retries included.
    pub latency_ms: u64,
    pub attempts: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    /// Without the leading space Whisper puts before the text.
    pub text: String,
    /// The model requested: the transcription answer does not name one.
    pub model: String,
    pub latency_ms: u64,
    pub attempts: u32,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AiError {
    #[error("the AI provider is not configured")]
    NotConfigured,
    /// Seconds the call waited: the whole call's when it gave up for good.
    #[error("the AI provider did not answer within {0} s")]
    Timeout(u64),
    /// `message` is the provider's own when it sent one, at most 300
    /// characters, with the API key blanked out.
    #[error("the AI provider refused the request ({status}): {message}")]
    Status { status: u16, message: String },
    #[error("the AI provider's answer could not be read: {0}")]
    Malformed(String),
    #[error("the AI provider could not be reached: {0}")]
    Network(String),
    /// No choice, or a choice with neither content nor a refusal; for a
    /// transcription, blank text.
    #[error("the AI provider gave no answer")]
    Empty,
}

impl AiError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AiError::Timeout(_) | AiError::Network(_) => true,
            AiError::Status { status, .. } => *status == 429 || (500..=599).contains(status),
            AiError::NotConfigured | AiError::Malformed(_) | AiError::Empty => false,
        }
    }
}

/// A client for one OpenAI-compatible provider. Cloning is cheap: the
/// underlying connection pool is shared.
#[derive(Clone, Debug)]
pub struct AiClient {
    cfg: AiConfig,
    http: reqwest::Client,
}

/// The first wait between attempts; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Answers are small; anything bigger is a misbehaving server, not a reply
/// worth holding in memory.
const MAX_ANSWER_BYTES: usize = 16 << 20;

impl AiClient {
    pub fn new(mut cfg: AiConfig, http: reqwest::Client) -> AiClient {
        cfg.base_url = cfg.base_url.trim().trim_end_matches('/').to_string();
        AiClient { cfg, http }
    }

    /// The configuration in use, `base_url` without its trailing slash.
    pub fn config(&self) -> &AiConfig {
        &self.cfg
    }

    /// POST {base_url}/chat/completions
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatAnswer, AiError> {
        let url = self.url("chat/completions")?;
        let model = self.model_for(req);
        let body = wire::chat_body(req, &model)?;
        let done = self
            .with_retries("chat", |limit| {
                let request = self
                    .post(&url, limit)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
                async move {
                    let answer = self.execute(request).await?;
                    Ok(wire::parse_chat(&answer)?)
                }
            })
            .await?;
        let reply = done.value;
        Ok(ChatAnswer {
            text: reply.text,
            model: reply.model.unwrap_or(model),
            prompt_tokens: reply.prompt_tokens,
            completion_tokens: reply.completion_tokens,
            latency_ms: done.latency_ms,
            attempts: done.attempts,
        })
    }

    /// POST {base_url}/audio/transcriptions as multipart/form-data: the
    /// `file` (with its name and content type), `model`, and
    /// `response_format=json`.
    pub async fn transcribe(
        &self,
        audio: Vec<u8>,
        filename: &str,
        content_type: &str,
    ) -> Result<Transcript, AiError> {
        let url = self.url("audio/transcriptions")?;
        let model = self.cfg.transcription_model.clone();
        let done = self
            .with_retries("transcription", |limit| {
                let form = transcription_form(&audio, filename, content_type, &model);
                let request = self.post(&url, limit).multipart(form);
                async move {
                    let answer = self.execute(request).await?;
                    Ok(wire::parse_transcript(&answer)?)
                }
            })
            .await?;
        Ok(Transcript {
            text: done.value,
            model,
            latency_ms: done.latency_ms,
            attempts: done.attempts,
        })
    }

    fn url(&self, path: &str) -> Result<String, AiError> {
        if self.cfg.base_url.is_empty() {
            return Err(AiError::NotConfigured);
        }
        Ok(format!("{}/{path}", self.cfg.base_url))
    }

    fn model_for(&self, req: &ChatRequest) -> String {
        if !req.model.trim().is_empty() {
            return req.model.clone();
        }
        let has_image = req
            .messages
            .iter()
            .flat_map(|m| &m.parts)
            .any(|p| matches!(p, Part::Image { .. }));
        if has_image {
            self.cfg.vision_model.clone()
        } else {
            self.cfg.chat_model.clone()
        }
    }

    fn api_key(&self) -> Option<&str> {
        self.cfg
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
    }

    fn post(&self, url: &str, limit: Duration) -> RequestBuilder {
        let request = self.http.post(url).timeout(limit);
        match self.api_key() {
            // bearer_auth marks the header sensitive, so it stays out of logs.
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// One HTTP exchange: the body of a 2xx answer, or why there is none.
    async fn execute(&self, request: RequestBuilder) -> Result<Vec<u8>, Failure> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = read_body(response).await?;
        if status.is_success() {
            return Ok(body);
        }
        Err(Failure {
            error: AiError::Status {
                status: status.as_u16(),
                message: wire::error_message(status, &body, self.api_key()),
            },
            retry_after: wait,
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of attempts
    /// or would overrun the deadline. `attempt` gets its own time limit.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<Done<T>, AiError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let start = Instant::now();
        let max_attempts = self.cfg.max_attempts.max(1);
        let mut attempts = 0;
        loop {
            let limit = self
                .cfg
                .request_timeout
                .min(self.cfg.deadline.saturating_sub(start.elapsed()));
            attempts += 1;
            // reqwest enforces `limit` too, but not while the body is read on
            // every path; this bounds the attempt as a whole.
            let failure = match tokio::time::timeout(limit, attempt(limit)).await {
                Ok(Ok(value)) => {
                    return Ok(Done {
                        value,
                        latency_ms: millis(start.elapsed()),
                        attempts,
                    });
                }
                Ok(Err(failure)) => failure,
                Err(_) => AiError::Timeout(0).into(),
            };
            let error = match failure.error {
                AiError::Timeout(_) => AiError::Timeout(whole_seconds(limit)),
                e => e,
            };
            // Retry-After is the provider's own estimate, so it wins over our
            // schedule; when it reaches past the deadline there is no point
            // waiting only to give up.
            let wait = failure.retry_after.unwrap_or_else(|| backoff(attempts));
            let left = self.cfg.deadline.saturating_sub(start.elapsed());
            if !error.is_retryable() || attempts >= max_attempts || wait >= left {
                return Err(match error {
                    AiError::Timeout(_) => AiError::Timeout(whole_seconds(start.elapsed())),
                    e => e,
                });
            }
            tracing::warn!(
                what,
                attempt = attempts,
                wait_ms = millis(wait),
                error = %error,
                "AI request failed; trying again"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// A successful call and what it took.
struct Done<T> {
    value: T,
    latency_ms: u64,
    attempts: u32,
}

/// A failed attempt, with the wait the provider asked for if any.
struct Failure {
    error: AiError,
    retry_after: Option<Duration>,
}

impl From<AiError> for Failure {
    fn from(error: AiError) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// The form is rebuilt for every attempt: a sent form is consumed.
fn transcription_form(audio: &[u8], filename: &str, content_type: &str, model: &str) -> Form {
    let file = || FormPart::bytes(audio.to_vec()).file_name(filename.to_string());
    // A content type that is not a valid MIME type is left out rather than
    // refused: the provider also recognises the format by the file name.
    let file = file().mime_str(content_type).unwrap_or_else(|_| file());
    Form::new()
        .part("file", file)
        .text("model", model.to_string())
        .text("response_format", "json")
}

/// Reads the answer, refusing one too large to be a real reply.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(AiError::Malformed(format!(
                "the answer is larger than {} MiB",
                MAX_ANSWER_BYTES >> 20
            ))
            .into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request that never got an answer.
fn transport_error(err: reqwest::Error) -> Failure {
    if err.is_timeout() {
        // The seconds are filled in by the retry loop, which knows the limit.
        return AiError::Timeout(0).into();
    }
    AiError::Network(confab_http::describe_failure(err)).into()
}

/// 250 ms, 500 ms, 1 s, ... up to 8 s, plus up to a fifth more so clients
/// that failed together do not retry together.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_START
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    let jitter = rand::random_range(0..=millis(base) / 5);
    base + Duration::from_millis(jitter)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Rounded up, so a 200 ms timeout does not read "within 0 s".
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let cfg = AiConfig {
            api_key: Some("sk-very-secret".into()),
            ..AiConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(format!("{:?}", AiConfig::default()).contains("api_key: None"));
    }

    #[test]
    fn defaults() {
        let cfg = AiConfig::default();
        assert_eq!(cfg.base_url, "https://api.openai.com/v1");
        assert_eq!(cfg.api_key, None);
        assert_eq!(cfg.chat_model, "gpt-4o-mini");
        assert_eq!(cfg.vision_model, "gpt-4o-mini");
        assert_eq!(cfg.transcription_model, "whisper-1");
        assert_eq!(cfg.request_timeout, Duration::from_secs(30));
        assert_eq!(cfg.deadline, Duration::from_secs(60));
        assert_eq!(cfg.max_attempts, 4);
    }

    #[test]
    fn base_url_loses_its_trailing_slash() {
        let cfg = AiConfig {
            base_url: " http://127.0.0.1:8080/v1/ ".into(),
            ..AiConfig::default()
        };
        let client = AiClient::new(cfg, reqwest::Client::new());
        assert_eq!(client.config().base_url, "http://127.0.0.1:8080/v1");
        assert_eq!(
            client.url("chat/completions").unwrap(),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
    }

    #[test]
    fn blank_key_is_no_key() {
        let cfg = AiConfig {
            api_key: Some("  ".into()),
            ..AiConfig::default()
        };
        assert_eq!(AiClient::new(cfg, reqwest::Client::new()).api_key(), None);
    }

    #[test]
    fn empty_model_means_the_configured_one() {
        let client = AiClient::new(
            AiConfig {
                chat_model: "chat-m".into(),
                vision_model: "vision-m".into(),
                ..AiConfig::default()
            },
            reqwest::Client::new(),
        );
        let mut req = ChatRequest {
            model: String::new(),
            messages: vec![ChatMessage::text(Role::User, "hi")],
            temperature: None,
            max_tokens: None,
            json_schema: None,
        };
        assert_eq!(client.model_for(&req), "chat-m");
        req.messages[0].parts.push(Part::Image {
            url: "https://x.test/a.png".into(),
        });
        assert_eq!(client.model_for(&req), "vision-m");
        req.model = "explicit".into();
        assert_eq!(client.model_for(&req), "explicit");
    }

    #[test]
    fn retryable_errors() {
        assert!(AiError::Timeout(3).is_retryable());
        assert!(AiError::Network("reset".into()).is_retryable());
        for status in [429, 500, 502, 503, 599] {
            let e = AiError::Status {
                status,
                message: String::new(),
            };
            assert!(e.is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 408, 422] {
            let e = AiError::Status {
                status,
                message: String::new(),
            };
            assert!(!e.is_retryable(), "{status}");
        }
        assert!(!AiError::NotConfigured.is_retryable());
        assert!(!AiError::Malformed("x".into()).is_retryable());
        assert!(!AiError::Empty.is_retryable());
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        for (attempt, base_ms) in [
            (1, 250),
            (2, 500),
            (3, 1000),
            (4, 2000),
            (6, 8000),
            (40, 8000),
        ] {
            let d = millis(backoff(attempt));
            assert!(d >= base_ms && d <= base_ms + base_ms / 5, "{attempt}: {d}");
        }
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(whole_seconds(Duration::from_millis(200)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(30_001)), 31);
    }

    #[test]
    fn data_url() {
        assert_eq!(
            image_data_url("image/png", b"\x89PNG"),
            "data:image/png;base64,iVBORw=="
        );
    }
}
