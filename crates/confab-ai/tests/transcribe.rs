//! AiClient::transcribe against a fake OpenAI-compatible server.

mod common;

use common::{FakeServer, KEY, Recorded, Reply};
use confab_ai::{AiError, Transcript};
use serde_json::json;

/// Not valid UTF-8, so a body mangled as text would show.
fn voice_note() -> Vec<u8> {
    let mut audio = b"OggS\0\x02".to_vec();
    audio.extend((0..=255u8).rev());
    audio.extend_from_slice(b"\r\n--not-a-boundary\r\n");
    audio
}

/// The documented form: `file` with its name and type, `model`, and the
/// `json` response format.
fn assert_transcription_request(r: &Recorded, filename: &str, content_type: &str, model: &str) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/audio/transcriptions");
    assert_eq!(r.header("authorization"), format!("Bearer {KEY}"));
    let parts = r.multipart();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["file", "model", "response_format"]);

    let file = &parts[0];
    assert_eq!(file.filename.as_deref(), Some(filename));
    assert_eq!(file.content_type.as_deref(), Some(content_type));
    assert_eq!(file.data, voice_note());

    assert_eq!(parts[1].filename, None);
    assert_eq!(parts[1].text(), model);
    assert_eq!(parts[2].text(), "json");
}

#[tokio::test]
async fn plain_text_reply() {
    let fake = FakeServer::start().await;
    fake.reply(Reply::json(
        200,
        json!({"text": " Hello, see you at three."}),
    ));
    let transcript = fake
        .client(|_| {})
        .transcribe(voice_note(), "voice.ogg", "audio/ogg")
        .await
        .unwrap();
    assert_eq!(
        transcript,
        Transcript {
            text: "Hello, see you at three.".into(),
            model: "whisper-1".into(),
            latency_ms: transcript.latency_ms,
            attempts: 1,
        }
    );
    assert_transcription_request(&fake.only_request(), "voice.ogg", "audio/ogg", "whisper-1");
}

#[tokio::test]
async fn reply_with_usage_and_logprobs() {
    let fake = FakeServer::start().await;
    fake.reply(Reply::json(
        200,
        json!({
            "text": "Imagine the wildest idea that you've ever had.",
            "logprobs": [{"token": "Imagine", "logprob": -0.01, "bytes": [73, 109]}],
            "usage": {
                "type": "tokens",
                "input_tokens": 14,
                "input_token_details": {"text_tokens": 10, "audio_tokens": 4},
                "output_tokens": 101,
                "total_tokens": 115
            }
        }),
    ));
    let client = fake.client(|cfg| cfg.transcription_model = "gpt-4o-mini-transcribe".into());
    let transcript = client
        .transcribe(voice_note(), "note.mp3", "audio/mpeg")
        .await
        .unwrap();
    assert_eq!(
        transcript.text,
        "Imagine the wildest idea that you've ever had."
    );
    assert_eq!(transcript.model, "gpt-4o-mini-transcribe");
    assert_transcription_request(
        &fake.only_request(),
        "note.mp3",
        "audio/mpeg",
        "gpt-4o-mini-transcribe",
    );
}

#[tokio::test]
async fn content_type_parameters_are_kept() {
    let fake = FakeServer::start().await;
    fake.reply(Reply::json(200, json!({"text": "hi"})));
    fake.client(|_| {})
        .transcribe(voice_note(), "voice.ogg", "audio/ogg; codecs=opus")
        .await
        .unwrap();
    assert_transcription_request(
        &fake.only_request(),
        "voice.ogg",
        "audio/ogg; codecs=opus",
        "whisper-1",
    );
}

#[tokio::test]
async fn invalid_content_type_is_left_out() {
    let fake = FakeServer::start().await;
    fake.reply(Reply::json(200, json!({"text": "hi"})));
    fake.client(|_| {})
        .transcribe(voice_note(), "voice.ogg", "not a type")
        .await
        .unwrap();
    let parts = fake.only_request().multipart();
    assert_eq!(parts[0].filename.as_deref(), Some("voice.ogg"));
    assert_eq!(parts[0].content_type, None);
    assert_eq!(parts[0].data, voice_note());
}

#[tokio::test]
async fn server_error_is_retried_with_the_whole_file() {
    let fake = FakeServer::start().await;
    fake.reply(Reply::json(
        503,
        json!({"error": {"message": "overloaded", "type": "server_error", "param": null, "code": null}}),
    ));
    fake.reply(Reply::json(200, json!({"text": "second time"})));
    let transcript = fake
        .client(|_| {})
        .transcribe(voice_note(), "voice.ogg", "audio/ogg")
        .await
        .unwrap();
    assert_eq!(transcript.text, "second time");
    assert_eq!(transcript.attempts, 2);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_transcription_request(r, "voice.ogg", "audio/ogg", "whisper-1");
    }
}

#[tokio::test]
async fn bad_file_surfaces_the_message() {
    let fake = FakeServer::start().await;
    fake.always(Reply::json(
        400,
        json!({"error": {
            "message": "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']",
            "type": "invalid_request_error", "param": null, "code": null
        }}),
    ));
    let err = fake
        .client(|_| {})
        .transcribe(voice_note(), "voice.bin", "application/octet-stream")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AiError::Status { status: 400, message } if message.starts_with("Invalid file format.")),
        "{err:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn blank_or_missing_text() {
    let fake = FakeServer::start().await;
    fake.reply(Reply::json(200, json!({"text": "  "})));
    fake.reply(Reply::json(200, json!({"transcript": "wrong field"})));
    let client = fake.client(|_| {});
    assert_eq!(
        client
            .transcribe(voice_note(), "voice.ogg", "audio/ogg")
            .await
            .unwrap_err(),
        AiError::Empty
    );
    let err = client
        .transcribe(voice_note(), "voice.ogg", "audio/ogg")
        .await
        .unwrap_err();
    assert!(matches!(err, AiError::Malformed(_)), "{err:?}");
    assert_eq!(fake.requests().len(), 2);
}
