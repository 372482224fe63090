//! AiClient::chat against a fake OpenAI-compatible server.

mod common;

use std::time::{Duration, Instant};

use common::{FakeServer, KEY, Recorded, Reply, closed_port_url};
use confab_ai::{
    AiConfig, AiError, ChatAnswer, ChatMessage, ChatRequest, JsonSchemaFormat, Part, Role,
    image_data_url,
};
use serde_json::json;

fn completion(content: &str) -> serde_json::Value {
    json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_741_569_952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
        },
        "service_tier": "default"
    })
}

fn ok(content: &str) -> Reply {
    Reply::json(200, completion(content))
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        model: "gpt-4o-mini".into(),
        messages: vec![ChatMessage::text(Role::User, text)],
        temperature: None,
        max_tokens: None,
        json_schema: None,
    }
}

fn openai_error(message: &str, kind: &str) -> serde_json::Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

/// Everything every chat request must carry.
fn assert_chat_request(r: &Recorded) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), format!("Bearer {KEY}"));
    assert_eq!(r.header("content-type"), "application/json");
}

#[tokio::test]
async fn request_and_answer_are_as_documented() {
    let fake = FakeServer::start().await;
    fake.reply(ok("It is a cat."));
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    let schema = json!({
        "type": "object",
        "properties": {"animal": {"type": "string"}},
        "required": ["animal"],
        "additionalProperties": false
    });
    let req = ChatRequest {
        model: "gpt-4o-mini".into(),
        messages: vec![
            ChatMessage::text(Role::System, "You answer in one sentence."),
            ChatMessage::text(Role::User, "Hello"),
            ChatMessage::text(Role::Assistant, "Hi! How can I help?"),
            ChatMessage {
                role: Role::User,
                parts: vec![
                    Part::Text("What animal is this?".into()),
                    Part::Image {
                        url: image_data_url("image/png", png),
                    },
                ],
            },
        ],
        temperature: Some(0.2),
        max_tokens: Some(150),
        json_schema: Some(JsonSchemaFormat {
            name: "animal".into(),
            schema: schema.clone(),
        }),
    };
    let answer = fake.client(|_| {}).chat(&req).await.unwrap();

    assert_eq!(answer.text, "It is a cat.");
    assert_eq!(answer.model, "gpt-4o-mini-2024-07-18");
    assert_eq!((answer.prompt_tokens, answer.completion_tokens), (19, 10));
    assert_eq!(answer.attempts, 1);

    let r = fake.only_request();
    assert_chat_request(&r);
    assert_eq!(
        r.json(),
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You answer in one sentence."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi! How can I help?"},
                {"role": "user", "content": [
                    {"type": "text", "text": "What animal is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}}
                ]}
            ],
            "temperature": 0.2,
            "max_tokens": 150,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "animal", "schema": schema, "strict": true}
            }
        })
    );
}

#[tokio::test]
async fn unset_options_are_left_out_and_local_answers_are_enough() {
    let fake = FakeServer::start().await;
    // What a local server may answer: no model, no usage.
    fake.reply(Reply::json(
        200,
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}}]}),
    ));
    let client = fake.client(|cfg| {
        cfg.api_key = None;
        cfg.base_url.push('/');
    });
    let answer = client.chat(&ask("ping")).await.unwrap();
    assert_eq!(
        answer,
        ChatAnswer {
            text: "pong".into(),
            model: "gpt-4o-mini".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: answer.latency_ms,
            attempts: 1,
        }
    );

    let r = fake.only_request();
    assert_eq!(r.path, "/v1/chat/completions");
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(
        r.json(),
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]})
    );
}

#[tokio::test]
async fn refusal_is_the_answer() {
    let fake = FakeServer::start().await;
    fake.reply(Reply::json(
        200,
        json!({
            "model": "gpt-4o-mini",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."},
                "logprobs": null,
                "finish_reason": "stop"
            }]
        }),
    ));
    let answer = fake.client(|_| {}).chat(&ask("...")).await.unwrap();
    assert_eq!(answer.text, "I can't help with that.");
}

#[tokio::test]
async fn slow_attempt_times_out_and_the_next_one_answers() {
    let fake = FakeServer::start().await;
    fake.reply(ok("late").delayed(Duration::from_secs(3)));
    fake.reply(ok("on time"));
    let client = fake.client(|cfg| cfg.request_timeout = Duration::from_millis(300));
    let answer = client.chat(&ask("hi")).await.unwrap();
    assert_eq!(answer.text, "on time");
    assert_eq!(answer.attempts, 2);
    assert!(answer.latency_ms >= 300, "{}", answer.latency_ms);
    assert!(answer.latency_ms < 2000, "{}", answer.latency_ms);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn always_slow_gives_a_timeout_within_the_deadline() {
    let fake = FakeServer::start().await;
    fake.always(ok("late").delayed(Duration::from_secs(5)));
    let client = fake.client(|cfg| {
        cfg.request_timeout = Duration::from_millis(300);
        cfg.deadline = Duration::from_millis(1500);
        cfg.max_attempts = 2;
    });
    let start = Instant::now();
    let err = client.chat(&ask("hi")).await.unwrap_err();
    let elapsed = start.elapsed();
    // The whole call's seconds, rounded up: about 0.9 s of waiting.
    assert!(matches!(err, AiError::Timeout(1 | 2)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(fake.requests().len(), 2);
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn rate_limit_then_success_honours_retry_after() {
    let fake = FakeServer::start().await;
    let limited = Reply::json(
        429,
        openai_error("Rate limit reached for requests", "requests"),
    );
    fake.reply(limited.clone().header("retry-after", "0"));
    fake.reply(limited.header("retry-after", "1"));
    fake.reply(ok("finally"));
    let answer = fake.client(|_| {}).chat(&ask("hi")).await.unwrap();
    assert_eq!(answer.text, "finally");
    assert_eq!(answer.attempts, 3);
    // Retry-After: 1 replaces the 500 ms back-off of the second retry.
    assert!(answer.latency_ms >= 1000, "{}", answer.latency_ms);
    assert!(answer.latency_ms < 1500, "{}", answer.latency_ms);
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_chat_request(r);
        assert_eq!(r.body, requests[0].body);
    }
}

#[tokio::test]
async fn retry_after_beyond_the_deadline_gives_up_at_once() {
    let fake = FakeServer::start().await;
    fake.always(
        Reply::json(
            429,
            openai_error("You exceeded your current quota", "insufficient_quota"),
        )
        .header("retry-after", "30"),
    );
    let client = fake.client(|cfg| cfg.deadline = Duration::from_secs(5));
    let start = Instant::now();
    let err = client.chat(&ask("hi")).await.unwrap_err();
    assert_eq!(
        err,
        AiError::Status {
            status: 429,
            message: "You exceeded your current quota".into()
        }
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_stop_at_max_attempts() {
    let fake = FakeServer::start().await;
    fake.always(Reply::json(
        500,
        openai_error("The server had an error", "server_error"),
    ));
    let client = fake.client(|cfg| cfg.max_attempts = 3);
    let start = Instant::now();
    let err = client.chat(&ask("hi")).await.unwrap_err();
    assert_eq!(
        err,
        AiError::Status {
            status: 500,
            message: "The server had an error".into()
        }
    );
    assert!(err.is_retryable());
    assert_eq!(fake.requests().len(), 3);
    // Two back-offs: 250 ms and 500 ms, each with up to a fifth of jitter.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(750), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn server_errors_stop_at_the_deadline() {
    let fake = FakeServer::start().await;
    fake.always(Reply::raw(503, "").header("content-type", "text/plain"));
    let client = fake.client(|cfg| {
        cfg.max_attempts = 100;
        cfg.deadline = Duration::from_millis(1200);
    });
    let start = Instant::now();
    let err = client.chat(&ask("hi")).await.unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(
        err,
        AiError::Status {
            status: 503,
            message: "Service Unavailable".into()
        }
    );
    // Attempts at about 0, 250 and 750 ms; the next wait (1 s) would pass
    // the deadline, so the call ends there instead of sleeping. A loaded
    // machine may already stop after the second.
    let attempts = fake.requests().len();
    assert!((2..=3).contains(&attempts), "{attempts}");
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
}

#[tokio::test]
async fn malformed_answer_is_not_retried() {
    let fake = FakeServer::start().await;
    fake.always(Reply::raw(200, "{\"choices\": [ oops"));
    let err = fake.client(|_| {}).chat(&ask("hi")).await.unwrap_err();
    let AiError::Malformed(why) = &err else {
        panic!("{err:?}")
    };
    assert!(why.contains("{\"choices\": [ oops"), "{why}");
    assert!(!err.is_retryable());
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn bad_request_surfaces_the_message_and_is_not_retried() {
    let fake = FakeServer::start().await;
    fake.always(Reply::json(
        400,
        openai_error(
            "Invalid value for 'temperature': must be between 0 and 2.",
            "invalid_request_error",
        ),
    ));
    let mut req = ask("hi");
    req.temperature = Some(7.0);
    let err = fake.client(|_| {}).chat(&req).await.unwrap_err();
    assert_eq!(
        err,
        AiError::Status {
            status: 400,
            message: "Invalid value for 'temperature': must be between 0 and 2.".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the AI provider refused the request (400): Invalid value for 'temperature': must be between 0 and 2."
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn the_key_never_reaches_an_error() {
    let fake = FakeServer::start().await;
    // A proxy that echoes the header it refused.
    fake.always(Reply::json(
        401,
        openai_error(
            &format!("Incorrect API key provided: {KEY}."),
            "invalid_request_error",
        ),
    ));
    let err = fake.client(|_| {}).chat(&ask("hi")).await.unwrap_err();
    assert_eq!(
        err,
        AiError::Status {
            status: 401,
            message: "Incorrect API key provided: <redacted>.".into()
        }
    );
    assert!(!format!("{err:?}").contains(KEY));
}

#[tokio::test]
async fn long_provider_message_is_cut() {
    let fake = FakeServer::start().await;
    fake.always(Reply::json(
        400,
        openai_error(&"too long ".repeat(100), "invalid_request_error"),
    ));
    let err = fake.client(|_| {}).chat(&ask("hi")).await.unwrap_err();
    let AiError::Status { message, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(message.chars().count(), 300);
    assert!(message.starts_with("too long too long"));
}

#[tokio::test]
async fn no_choices_is_empty() {
    let fake = FakeServer::start().await;
    fake.always(Reply::json(
        200,
        json!({"id": "x", "object": "chat.completion", "model": "m", "choices": []}),
    ));
    let err = fake.client(|_| {}).chat(&ask("hi")).await.unwrap_err();
    assert_eq!(err, AiError::Empty);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn unreachable_server_is_a_network_error_after_retries() {
    let client = confab_ai::AiClient::new(
        AiConfig {
            base_url: closed_port_url().await,
            max_attempts: 2,
            ..AiConfig::default()
        },
        reqwest::Client::new(),
    );
    let err = client.chat(&ask("hi")).await.unwrap_err();
    assert!(matches!(err, AiError::Network(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn no_base_url_is_not_configured() {
    let client = confab_ai::AiClient::new(
        AiConfig {
            base_url: " ".into(),
            ..AiConfig::default()
        },
        reqwest::Client::new(),
    );
    assert_eq!(
        client.chat(&ask("hi")).await.unwrap_err(),
        AiError::NotConfigured
    );
    assert_eq!(
        client
            .transcribe(vec![1, 2, 3], "a.ogg", "audio/ogg")
            .await
            .unwrap_err(),
        AiError::NotConfigured
    );
}

#[test]
fn config_debug_hides_the_key() {
    let cfg = AiConfig {
        api_key: Some(KEY.into()),
        ..AiConfig::default()
    };
    let shown = format!("{cfg:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let client = confab_ai::AiClient::new(cfg, reqwest::Client::new());
    assert!(!format!("{client:?}").contains(KEY));
}
