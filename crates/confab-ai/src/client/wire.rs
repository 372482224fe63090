//! The OpenAI wire format: request bodies as the API reference documents them
//! and the parts of the answers we read.

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::{AiError, ChatMessage, ChatRequest, Part, Role};

/// The `/chat/completions` body for `req`, asking for `model`.
pub(super) fn chat_body(req: &ChatRequest, model: &str) -> Result<Vec<u8>, AiError> {
    let body = ChatBody {
        model,
        messages: req.messages.iter().map(WireMessage::from).collect(),
        temperature: req.temperature,
        max_tokens: req.max_tokens,
        response_format: req.json_schema.as_ref().map(|f| ResponseFormat {
            kind: "json_schema",
            json_schema: JsonSchema {
                name: &f.name,
                schema: &f.schema,
                strict: true,
            },
        }),
    };
    serde_json::to_vec(&body)
        .map_err(|e| AiError::Malformed(format!("the request could not be written: {e}")))
}

#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    /// The reference marks `max_tokens` deprecated in favour of
    /// `max_completion_tokens`, which o-series models require. We still send
    /// `max_tokens`: OpenAI accepts it for the chat models we use, and
    /// llama.cpp, vLLM and Ollama all read it while not all of them read the
    /// newer name.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Content<'a>,
}

impl<'a> From<&'a ChatMessage> for WireMessage<'a> {
    fn from(m: &'a ChatMessage) -> Self {
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let content = match m.parts.as_slice() {
            // Plain string content is what every local server understands;
            // content parts are only needed to mix in images.
            [Part::Text(text)] => Content::Text(text),
            // An empty parts array is invalid (the reference asks for at
            // least one part); an empty string is not.
            [] => Content::Text(""),
            parts => Content::Parts(parts.iter().map(WirePart::from).collect()),
        };
        WireMessage { role, content }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(&'a str),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

impl<'a> From<&'a Part> for WirePart<'a> {
    fn from(p: &'a Part) -> Self {
        match p {
            Part::Text(text) => WirePart::Text { text },
            Part::Image { url } => WirePart::ImageUrl {
                image_url: ImageUrl { url },
            },
        }
    }
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: &'a str,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'a str,
    schema: &'a serde_json::Value,
    strict: bool,
}

/// What we take from a chat completion.
#[derive(Debug, PartialEq)]
pub(super) struct ChatReply {
    pub text: String,
    pub model: Option<String>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ResponseMessage>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

/// Local servers may leave usage out or send nulls.
#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

pub(super) fn parse_chat(body: &[u8]) -> Result<ChatReply, AiError> {
    let response: ChatResponse = serde_json::from_slice(body).map_err(|e| malformed(&e, body))?;
    let message = response.choices.into_iter().next().and_then(|c| c.message);
    let (content, refusal) = message.map_or((None, None), |m| (m.content, m.refusal));
    // A refusal is the model's answer too; the caller shows it like any other.
    let text = [content, refusal]
        .into_iter()
        .flatten()
        .find(|t| !t.trim().is_empty())
        .ok_or(AiError::Empty)?;
    let usage = response.usage;
    Ok(ChatReply {
        text,
        model: response.model.filter(|m| !m.trim().is_empty()),
        prompt_tokens: usage.as_ref().and_then(|u| u.prompt_tokens).unwrap_or(0),
        completion_tokens: usage.and_then(|u| u.completion_tokens).unwrap_or(0),
    })
}

/// Only `text` is read, so usage, logprobs and whatever else a server adds
/// are ignored, and a bare `{"text": ...}` from a local server is enough.
#[derive(Deserialize)]
struct TranscriptionResponse {
    text: String,
}

pub(super) fn parse_transcript(body: &[u8]) -> Result<String, AiError> {
    let response: TranscriptionResponse =
        serde_json::from_slice(body).map_err(|e| malformed(&e, body))?;
    let text = response.text.trim();
    if text.is_empty() {
        return Err(AiError::Empty);
    }
    Ok(text.to_string())
}

/// At most this much of the provider's words goes into an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// How much of an unreadable answer is quoted, enough to tell HTML from JSON.
const MAX_QUOTE_CHARS: usize = 100;

/// The message of an error answer: OpenAI's `{"error": {"message": ...}}`,
/// the `{"error": "..."}` of Ollama or the `{"message": ...}` of vLLM, else
/// the body itself, else the status's reason. The key never appears in it.
pub(super) fn error_message(status: StatusCode, body: &[u8], api_key: Option<&str>) -> String {
    let message = provider_message(body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body).trim().to_string();
        if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_string()
        } else {
            text
        }
    });
    let message = match api_key {
        Some(key) => message.replace(key, "<redacted>"),
        None => message,
    };
    cut(message.trim(), MAX_MESSAGE_CHARS)
}

fn provider_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = match value.get("error") {
        Some(serde_json::Value::Object(error)) => error.get("message")?.as_str(),
        Some(serde_json::Value::String(error)) => Some(error.as_str()),
        _ => value.get("message").and_then(|m| m.as_str()),
    }?;
    Some(message.to_string()).filter(|m| !m.trim().is_empty())
}

fn malformed(err: &serde_json::Error, body: &[u8]) -> AiError {
    let quote = cut(String::from_utf8_lossy(body).trim(), MAX_QUOTE_CHARS);
    AiError::Malformed(format!("{err}; the answer began `{quote}`"))
}

/// `text` cut to at most `max` characters, the last an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(req: &ChatRequest) -> serde_json::Value {
        serde_json::from_slice(&chat_body(req, "m").unwrap()).unwrap()
    }

    fn request(messages: Vec<ChatMessage>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages,
            temperature: None,
            max_tokens: None,
            json_schema: None,
        }
    }

    #[test]
    fn single_text_is_string_content_and_options_are_left_out() {
        let req = request(vec![
            ChatMessage::text(Role::System, "be brief"),
            ChatMessage::text(Role::User, "hi"),
        ]);
        assert_eq!(
            body(&req),
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                ],
            })
        );
    }

    #[test]
    fn mixed_parts_are_content_parts() {
        let req = request(vec![ChatMessage {
            role: Role::User,
            parts: vec![
                Part::Text("what is this?".into()),
                Part::Image {
                    url: "https://x.test/a.png".into(),
                },
            ],
        }]);
        assert_eq!(
            body(&req)["messages"][0]["content"],
            json!([
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ])
        );
    }

    #[test]
    fn no_parts_is_empty_string_content() {
        let req = request(vec![ChatMessage {
            role: Role::Assistant,
            parts: vec![],
        }]);
        assert_eq!(body(&req)["messages"][0]["content"], json!(""));
    }

    #[test]
    fn refusal_stands_in_for_missing_content() {
        let reply = parse_chat(
            br#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."}}]}"#,
        )
        .unwrap();
        assert_eq!(reply.text, "I can't help with that.");
        assert_eq!(reply.model, None);
        assert_eq!((reply.prompt_tokens, reply.completion_tokens), (0, 0));
    }

    #[test]
    fn null_or_blank_content_is_empty() {
        for body in [
            r#"{"choices":[]}"#,
            r#"{"choices":[{"message":{"content":null}}]}"#,
            r#"{"choices":[{"message":{"content":"  \n"}}]}"#,
            r#"{"choices":[{"finish_reason":"stop"}]}"#,
        ] {
            assert_eq!(parse_chat(body.as_bytes()), Err(AiError::Empty), "{body}");
        }
    }

    #[test]
    fn missing_choices_or_bad_json_is_malformed() {
        for body in ["{}", "not json", r#"{"choices":null}"#, ""] {
            let err = parse_chat(body.as_bytes()).unwrap_err();
            assert!(matches!(err, AiError::Malformed(_)), "{body}: {err:?}");
        }
    }

    #[test]
    fn usage_with_nulls_counts_zero() {
        let reply = parse_chat(
            br#"{"model":"local","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":null,"completion_tokens":7}}"#,
        )
        .unwrap();
        assert_eq!(reply.model.as_deref(), Some("local"));
        assert_eq!((reply.prompt_tokens, reply.completion_tokens), (0, 7));
    }

    #[test]
    fn error_messages_in_their_various_shapes() {
        let s = StatusCode::BAD_REQUEST;
        let openai = br#"{"error":{"message":"Bad model","type":"invalid_request_error","param":null,"code":null}}"#;
        assert_eq!(error_message(s, openai, None), "Bad model");
        assert_eq!(
            error_message(s, br#"{"error":"model not found"}"#, None),
            "model not found"
        );
        assert_eq!(
            error_message(s, br#"{"object":"error","message":"too long"}"#, None),
            "too long"
        );
        assert_eq!(
            error_message(s, b" upstream broke ", None),
            "upstream broke"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"", None),
            "Bad Gateway"
        );
    }

    #[test]
    fn error_message_is_cut_and_hides_the_key() {
        let long = format!(
            r#"{{"error":{{"message":"key sk-abc rejected {}"}}}}"#,
            "é".repeat(400)
        );
        let m = error_message(StatusCode::UNAUTHORIZED, long.as_bytes(), Some("sk-abc"));
        assert!(!m.contains("sk-abc"), "{m}");
        assert!(m.starts_with("key <redacted> rejected"), "{m}");
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn transcript_is_trimmed_and_blank_is_empty() {
        assert_eq!(
            parse_transcript(br#"{"text":" Hello."}"#).unwrap(),
            "Hello."
        );
        assert_eq!(parse_transcript(br#"{"text":""}"#), Err(AiError::Empty));
        assert!(matches!(
            parse_transcript(br#"{"transcript":"x"}"#),
            Err(AiError::Malformed(_))
        ));
    }
}
