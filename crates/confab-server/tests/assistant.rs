//! The AI assistant end to end: signed webhooks in, the fake OpenAI-compatible
//! server asked as the API documents it, the answer out through the fake
//! Twilio; media fetched with the account's credentials; the access policy.

mod common;

use std::time::Duration;

use base64::Engine;
use common::fake::{FakeProvider, Kind};
use common::fake_ai::{FakeServer, Reply};
use common::*;
use serde_json::{Value, json};

const SANDBOX: &str = "whatsapp:+14155238886";

fn chat_reply(text: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-test-0001",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}
        }),
    )
}

struct Setup {
    app: TestApp,
    ai: FakeServer,
    twilio: FakeProvider,
    key: String,
}

async fn setup(tune: impl FnOnce(&mut confab_server::RawSettings)) -> Setup {
    let ai = FakeServer::start().await;
    ai.always(chat_reply("Standing answer."));
    let twilio = FakeProvider::start(Kind::Twilio).await;
    let mut raw = settings(&fresh_database().await, Some(&twilio.url), None);
    raw.default_flow = Some("ai_assistant".into());
    raw.openai_base_url = Some(ai.base_url.clone());
    raw.openai_api_key = Some("sk-test".into());
    raw.openai_model = Some("gpt-test".into());
    raw.openai_vision_model = Some("gpt-test-vision".into());
    raw.openai_timeout_seconds = Some("4".into());
    tune(&mut raw);
    let app = spawn_app(raw).await;
    let key = app.api_key().await;
    Setup {
        app,
        ai,
        twilio,
        key,
    }
}

impl Setup {
    /// The bodies Twilio was asked to send, in order.
    fn sent(&self) -> Vec<String> {
        self.twilio
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/Messages.json"))
            .filter_map(|r| r.form_value("Body"))
            .collect()
    }

    async fn wait_sent(&self, n: usize) -> Vec<String> {
        self.app
            .eventually(10, &format!("{n} message(s) sent"), || async {
                self.sent().len() >= n
            })
            .await;
        self.sent()
    }

    fn chats(&self) -> Vec<Value> {
        self.ai
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/chat/completions")
            .map(|r| r.json())
            .collect()
    }

    async fn inbound(&self, params: &[(&str, &str)]) -> String {
        let r = self.app.twilio("/webhooks/twilio", params).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    async fn text(&self, from: &str, body: &str, sid: &str) -> String {
        let r = self.app.twilio_text(from, body, sid).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    async fn message_id(&self, sid: &str) -> i64 {
        let (_, list) = self
            .app
            .get(&self.key, "/api/v1/messages?direction=inbound&limit=100")
            .await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["provider_message_id"] == sid)
            .unwrap_or_else(|| panic!("no message {sid}: {list}"))["id"]
            .as_i64()
            .unwrap()
    }
}

fn roles(chat: &Value) -> Vec<(String, String)> {
    chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap_or("<parts>").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn text_is_answered_through_the_outbox_with_the_conversation_as_history() {
    let s = setup(|_| {}).await;
    s.ai.reply(chat_reply("Hi! How can I help?"));
    s.ai.reply(chat_reply("Paris."));
    let twiml = s.text("+15550001111", "Hello", "SMai0001").await;
    // The webhook is answered at once, with nothing in it: the answer
    // follows through the outbox.
    assert!(!twiml.contains("<Message>"), "{twiml}");
    assert_eq!(s.wait_sent(1).await, ["Hi! How can I help?"]);
    s.text("+15550001111", "What is the capital of France?", "SMai0002")
        .await;
    assert_eq!(s.wait_sent(2).await[1], "Paris.");

    let chats = s.chats();
    assert_eq!(chats.len(), 2);
    assert_eq!(chats[0]["model"], "gpt-test");
    let first = roles(&chats[0]);
    assert_eq!(first[0].0, "system");
    assert!(first[0].1.contains("WhatsApp"), "{first:?}");
    assert_eq!(first[1..], [("user".into(), "Hello".into())]);
    assert_eq!(
        roles(&chats[1])[1..],
        [
            ("user".to_string(), "Hello".to_string()),
            ("assistant".into(), "Hi! How can I help?".into()),
            ("user".into(), "What is the capital of France?".into()),
        ]
    );
    let auth = s.ai.requests()[0].header("authorization").to_string();
    assert_eq!(auth, "Bearer sk-test");

    // Model, tokens and latency are kept on the message, and summed per bot and day.
    let id = s.message_id("SMai0002").await;
    let (status, m) = s.app.get(&s.key, &format!("/api/v1/messages/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(m["ai"][0]["model"], "gpt-test-0001");
    assert_eq!(m["ai"][0]["prompt_tokens"], 40);
    assert_eq!(m["ai"][0]["completion_tokens"], 9);
    assert!(m["ai"][0]["latency_ms"].as_i64().unwrap() >= 0);
    let (status, stats) = s.app.get(&s.key, "/api/v1/stats/ai").await;
    assert_eq!(status, 200, "{stats}");
    let day = &stats["days"][0];
    assert_eq!(
        (
            &day["bot"],
            &day["calls"],
            &day["prompt_tokens"],
            &day["total_tokens"]
        ),
        (&json!("ai_assistant"), &json!(2), &json!(80), &json!(98))
    );
    let (status, _) = s.app.get(&s.key, "/api/v1/stats/ai?from=nope").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_webhook_does_not_wait_for_a_slow_answer() {
    let s = setup(|_| {}).await;
    s.ai.reply(chat_reply("Sorry for the wait.").delayed(Duration::from_millis(1500)));
    s.text("+15550002222", "Are you there?", "SMai0101").await;
    // Acknowledged while the AI is still writing.
    assert!(s.sent().is_empty());
    assert_eq!(s.wait_sent(1).await, ["Sorry for the wait."]);
}

#[tokio::test]
async fn a_failing_or_broken_provider_gets_the_contact_a_friendly_answer() {
    let s = setup(|_| {}).await;
    s.ai.always(Reply::raw(500, r#"{"error":{"message":"overloaded"}}"#));
    s.text("+15550003333", "Hello?", "SMai0201").await;
    let sent = s.wait_sent(1).await;
    assert!(
        sent[0].starts_with("Sorry, I couldn't come up with an answer"),
        "{sent:?}"
    );
    // Retried with back-off before giving up.
    assert!(s.chats().len() >= 2, "{}", s.chats().len());
    let id = s.message_id("SMai0201").await;
    let (_, m) = s.app.get(&s.key, &format!("/api/v1/messages/{id}")).await;
    assert!(
        m["ai"][0]["error"].as_str().unwrap().contains("overloaded"),
        "{m}"
    );

    s.ai.always(Reply::raw(200, "{not json"));
    s.text("+15550003333", "And now?", "SMai0202").await;
    let sent = s.wait_sent(2).await;
    assert!(sent[1].starts_with("Sorry, I couldn't"), "{sent:?}");
    let (_, stats) = s.app.get(&s.key, "/api/v1/stats/ai").await;
    assert_eq!(stats["days"][0]["errors"], 2);
}

#[tokio::test]
async fn without_a_provider_the_contact_is_told_and_health_says_so() {
    let s = setup(|r| {
        r.openai_base_url = None;
        r.openai_api_key = None;
    })
    .await;
    let (_, health) = s.app.get(&s.key, "/health").await;
    assert_eq!(health["ai"]["configured"], false);
    s.text("+15550004444", "Hello", "SMai0301").await;
    let sent = s.wait_sent(1).await;
    assert!(sent[0].contains("not set up yet"), "{sent:?}");
    assert!(s.ai.requests().is_empty());
}

#[tokio::test]
async fn health_shows_the_provider_without_its_key() {
    let s = setup(|_| {}).await;
    let r = s
        .app
        .http
        .get(format!("{}/health", s.app.url))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health["ai"]["configured"], true);
    assert_eq!(health["ai"]["chat_model"], "gpt-test");
    assert!(!text.contains("sk-test"), "{text}");
}

/// A Twilio media message: the file is served by the fake Twilio API.
async fn media_message(s: &Setup, sid: &str, caption: &str, ct: &str, bytes: &[u8]) -> String {
    let path = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media/ME{sid}");
    let url = s.twilio.file(&path, ct, bytes);
    s.inbound(&[
        ("From", "whatsapp:+15550005555"),
        ("To", SANDBOX),
        ("Body", caption),
        ("MessageSid", sid),
        ("NumMedia", "1"),
        ("MediaUrl0", &url),
        ("MediaContentType0", ct),
    ])
    .await
}

#[tokio::test]
async fn a_photo_goes_to_the_vision_model_with_its_caption() {
    let s = setup(|_| {}).await;
    s.ai.reply(chat_reply("A red bicycle."));
    let png = b"\x89PNG\r\n\x1a\nfake image bytes";
    media_message(&s, "MMai0401", "What is this?", "image/png", png).await;
    assert_eq!(s.wait_sent(1).await, ["A red bicycle."]);
    // Fetched with the account's credentials.
    let fetch = s
        .twilio
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/Media/"))
        .unwrap();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    assert_eq!(
        fetch.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    let chat = &s.chats()[0];
    assert_eq!(chat["model"], "gpt-test-vision");
    let last = chat["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "user");
    assert_eq!(
        last["content"][0],
        json!({"type": "text", "text": "What is this?"})
    );
    let data = base64::engine::general_purpose::STANDARD.encode(png);
    assert_eq!(
        last["content"][1],
        json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}})
    );
    // Stored with its size and hash.
    let id = s.message_id("MMai0401").await;
    let (_, m) = s.app.get(&s.key, &format!("/api/v1/messages/{id}")).await;
    assert_eq!(m["stored_media"][0]["size"], png.len());
    assert_eq!(m["stored_media"][0]["content_type"], "image/png");
    assert_eq!(m["ai"][0]["purpose"], "vision");
}

#[tokio::test]
async fn a_voice_note_is_transcribed_then_answered_saying_what_was_heard() {
    let s = setup(|_| {}).await;
    s.ai.reply(Reply::json(200, json!({"text": " What time do you open?"})));
    s.ai.reply(chat_reply("We open at nine."));
    media_message(&s, "MMai0501", "", "audio/ogg", b"OggS fake voice").await;
    assert_eq!(
        s.wait_sent(1).await,
        ["🎙️ \u{201c}What time do you open?\u{201d}\n\nWe open at nine."]
    );
    let upload =
        s.ai.requests()
            .into_iter()
            .find(|r| r.path == "/v1/audio/transcriptions")
            .unwrap();
    let parts = upload.multipart();
    let file = parts.iter().find(|p| p.name == "file").unwrap();
    assert_eq!(file.data, b"OggS fake voice");
    assert_eq!(file.content_type.as_deref(), Some("audio/ogg"));
    assert!(file.filename.as_deref().unwrap().ends_with(".ogg"));
    assert_eq!(
        parts.iter().find(|p| p.name == "model").unwrap().text(),
        "whisper-1"
    );
    let last = roles(&s.chats()[0]).pop().unwrap();
    assert_eq!(last, ("user".into(), "What time do you open?".into()));
    let id = s.message_id("MMai0501").await;
    let (_, m) = s.app.get(&s.key, &format!("/api/v1/messages/{id}")).await;
    assert_eq!(m["stored_media"][0]["text"], "What time do you open?");
    assert_eq!(m["ai"][0]["purpose"], "transcription");
    assert_eq!(m["ai"][1]["purpose"], "chat");
}

#[tokio::test]
async fn a_pdf_is_read_on_the_server_and_summarised() {
    let s = setup(|_| {}).await;
    s.ai.reply(chat_reply("An invoice from Acme Tools for 120 EUR."));
    let pdf = include_bytes!("data/invoice.pdf");
    media_message(&s, "MMai0601", "", "application/pdf", pdf).await;
    assert_eq!(
        s.wait_sent(1).await,
        ["An invoice from Acme Tools for 120 EUR."]
    );
    let (_, question) = roles(&s.chats()[0]).pop().unwrap();
    assert!(question.contains("Total due: 120 EUR"), "{question}");
    assert!(
        question.ends_with("Summarise this document briefly."),
        "{question}"
    );

    // A PDF with no text, a Word file, a video: a clear answer each, no AI call.
    let blank = include_bytes!("data/blank.pdf");
    media_message(&s, "MMai0602", "", "application/pdf", blank).await;
    s.wait_sent(2).await;
    media_message(&s, "MMai0603", "", "application/msword", b"DOC").await;
    s.wait_sent(3).await;
    media_message(&s, "MMai0604", "", "video/mp4", b"MP4").await;
    let sent = s.wait_sent(4).await;
    assert!(
        sent[1].contains("couldn't find any text in that PDF"),
        "{sent:?}"
    );
    assert!(
        sent[2].contains("can't handle documents other than PDFs"),
        "{sent:?}"
    );
    assert!(sent[3].contains("can't handle videos"), "{sent:?}");
    assert_eq!(s.chats().len(), 1);
}

#[tokio::test]
async fn oversized_and_mislabelled_files_are_refused_politely() {
    let s = setup(|r| r.media_max_bytes = Some("1024".into())).await;
    media_message(&s, "MMai0701", "look", "image/jpeg", &vec![7u8; 4096]).await;
    let sent = s.wait_sent(1).await;
    assert!(sent[0].contains("too large"), "{sent:?}");
    // Said to be an image, served as a web page.
    let path = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MMai0702/Media/ME1");
    let url = s.twilio.file(&path, "text/html", b"<html>");
    s.inbound(&[
        ("From", "whatsapp:+15550005555"),
        ("To", SANDBOX),
        ("MessageSid", "MMai0702"),
        ("NumMedia", "1"),
        ("MediaUrl0", &url),
        ("MediaContentType0", "image/jpeg"),
    ])
    .await;
    let sent = s.wait_sent(2).await;
    assert!(
        sent[1].contains("can't handle files of type text/html"),
        "{sent:?}"
    );
    assert!(s.chats().is_empty());
}

#[tokio::test]
async fn messages_sent_while_the_ai_answers_are_answered_next_never_dropped() {
    let s = setup(|_| {}).await;
    s.ai.reply(chat_reply("First answer.").delayed(Duration::from_millis(800)));
    s.ai.reply(chat_reply("Second answer."));
    s.text("+15550001313", "first question", "SMai1301").await;
    s.text("+15550001313", "oh, and another", "SMai1302").await;
    assert_eq!(s.wait_sent(2).await, ["First answer.", "Second answer."]);
    // The second call sees both questions, the latest last.
    let second = roles(&s.chats()[1]);
    assert_eq!(
        second[1..],
        [
            ("user".to_string(), "first question".to_string()),
            ("assistant".into(), "First answer.".into()),
            ("user".into(), "oh, and another".into()),
        ]
    );
}

#[tokio::test]
async fn the_history_window_is_the_last_n_messages() {
    let s = setup(|r| r.max_conversation_history = Some("2".into())).await;
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        s.text("+15550006666", text, &format!("SMai080{i}")).await;
        s.wait_sent(i + 1).await;
    }
    let last = roles(s.chats().last().unwrap());
    assert_eq!(
        last[1..],
        [
            ("user".to_string(), "two".to_string()),
            ("assistant".into(), "Standing answer.".into()),
            ("user".into(), "three".into()),
        ]
    );
}

#[tokio::test]
async fn the_allow_list_refuses_once_and_changes_apply_at_once() {
    let s = setup(|r| r.whitelisted_users = Some("+15550007777".into())).await;
    s.text("+15550007777", "Hi", "SMai0901").await;
    assert_eq!(s.wait_sent(1).await, ["Standing answer."]);
    // Someone else: one refusal, in the webhook's answer, then silence.
    let twiml = s.text("+15550008888", "Hi", "SMai0902").await;
    assert!(
        twiml.contains("only available to registered numbers"),
        "{twiml}"
    );
    let twiml = s.text("+15550008888", "Hello??", "SMai0903").await;
    assert!(!twiml.contains("<Message>"), "{twiml}");
    assert_eq!(s.chats().len(), 1);
    // Both messages are kept.
    s.message_id("SMai0903").await;

    let (status, access) = s
        .app
        .call(
            reqwest::Method::PUT,
            &s.key,
            "/api/v1/access/allow-list",
            Some(json!({"numbers": ["+15550007777", "+1 555 000 8888"]})),
        )
        .await;
    assert_eq!(status, 200, "{access}");
    assert_eq!(
        access["allow_list"],
        json!(["+15550007777", "+15550008888"])
    );
    s.text("+15550008888", "Now?", "SMai0904").await;
    assert_eq!(s.wait_sent(2).await[1], "Standing answer.");

    // Off again for the first number: refused at its next message.
    s.app
        .call(
            reqwest::Method::PUT,
            &s.key,
            "/api/v1/access/allow-list",
            Some(json!({"numbers": ["+15550008888"]})),
        )
        .await;
    let twiml = s.text("+15550007777", "Hi again", "SMai0905").await;
    assert!(twiml.contains("only available"), "{twiml}");
    let (status, _) = s
        .app
        .call(
            reqwest::Method::PUT,
            &s.key,
            "/api/v1/access/allow-list",
            Some(json!({"numbers": ["not a number"]})),
        )
        .await;
    assert_eq!(status, 422);
    let (_, access) = s.app.get(&s.key, "/api/v1/access").await;
    assert_eq!(access["allow_list"], json!(["+15550008888"]));
}

#[tokio::test]
async fn over_the_rate_limit_messages_are_stored_not_processed_and_told_once() {
    let s = setup(|r| {
        r.rate_limit_messages = Some("2".into());
        r.rate_limit_window_seconds = Some("60".into());
    })
    .await;
    for i in 0..2 {
        s.text("+15550009999", "hi", &format!("SMai100{i}")).await;
        s.wait_sent(i + 1).await;
    }
    let twiml = s.text("+15550009999", "hi", "SMai1002").await;
    assert!(twiml.contains("faster than I can answer"), "{twiml}");
    let twiml = s.text("+15550009999", "hi", "SMai1003").await;
    assert!(!twiml.contains("<Message>"), "{twiml}");
    s.message_id("SMai1003").await;
    assert_eq!(s.chats().len(), 2);
    // A new window: answered again.
    s.app.clock.advance_ms(61_000);
    s.text("+15550009999", "hi", "SMai1004").await;
    s.wait_sent(3).await;
    assert_eq!(s.chats().len(), 3);
}

#[tokio::test]
async fn blocked_contacts_are_stored_never_answered() {
    let s = setup(|_| {}).await;
    s.text("+15550001212", "hi", "SMai1101").await;
    s.wait_sent(1).await;
    let (_, contacts) = s.app.get(&s.key, "/api/v1/contacts").await;
    let id = contacts["items"][0]["id"].as_i64().unwrap();
    let (status, _) = s
        .app
        .patch(
            &s.key,
            &format!("/api/v1/contacts/{id}"),
            json!({"blocked": true}),
        )
        .await;
    assert_eq!(status, 200);
    let twiml = s.text("+15550001212", "hello?", "SMai1102").await;
    assert!(!twiml.contains("<Message>"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.sent().len(), 1);
    assert_eq!(s.chats().len(), 1);
    s.message_id("SMai1102").await;
}

/// Two servers on one PostgreSQL database count one contact's messages together.
#[tokio::test]
async fn the_rate_limit_holds_across_two_servers() {
    if !is_postgres() {
        return;
    }
    let s = setup(|r| {
        r.rate_limit_messages = Some("3".into());
        r.rate_limit_window_seconds = Some("60".into());
    })
    .await;
    let other = spawn_app(s.app.raw.clone()).await;
    let mut told = 0;
    for i in 0..6 {
        let app = if i % 2 == 0 { &s.app } else { &other };
        let r = app
            .twilio_text("+15550003434", "hi", &format!("SMai120{i}"))
            .await;
        if r.text().await.unwrap().contains("faster than I can answer") {
            told += 1;
        }
        if i < 3 {
            s.wait_sent(i + 1).await;
        }
    }
    assert_eq!(told, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.chats().len(), 3);
    assert_eq!(s.sent().len(), 3);
}

#[tokio::test]
async fn a_meta_photo_is_resolved_through_the_graph_api_and_answered_through_meta() {
    let ai = FakeServer::start().await;
    ai.always(chat_reply("A sunflower."));
    let meta = FakeProvider::start(Kind::Meta).await;
    let mut raw = settings(&fresh_database().await, None, Some(&meta.url));
    raw.default_flow = Some("ai_assistant".into());
    raw.openai_base_url = Some(ai.base_url.clone());
    raw.openai_api_key = Some("sk-test".into());
    let app = spawn_app(raw).await;
    let jpeg = b"\xff\xd8\xff fake jpeg";
    let file_url = meta.file("/cdn/photo-1", "image/jpeg", jpeg);
    let metadata = json!({
        "messaging_product": "whatsapp",
        "url": file_url,
        "mime_type": "image/jpeg",
        "file_size": jpeg.len(),
        "id": "1234567890"
    });
    meta.file(
        "/v23.0/1234567890",
        "application/json",
        metadata.to_string().as_bytes(),
    );
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
            "messages": [{"from": "16505551234", "id": "wamid.AI1", "timestamp": "1749416383",
                "type": "image", "image": {"id": "1234567890", "mime_type": "image/jpeg", "caption": "Which flower?"}}]
        }}]}]
    });
    let r = app.meta(body.to_string().as_bytes()).await;
    assert_eq!(r.status(), 200);
    app.eventually(10, "the answer sent through Meta", || async {
        meta.requests()
            .iter()
            .any(|r| r.path.ends_with("/messages"))
    })
    .await;
    let requests = meta.requests();
    let send = requests
        .iter()
        .find(|r| r.path.ends_with("/messages"))
        .unwrap();
    assert_eq!(send.json()["text"]["body"], "A sunflower.");
    for r in requests.iter().filter(|r| !r.path.ends_with("/messages")) {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer meta-access-token"),
            "{}",
            r.path
        );
    }
    let chat = ai.requests()[0].json();
    let last = chat["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"][0]["text"], "Which flower?");
    let data = base64::engine::general_purpose::STANDARD.encode(jpeg);
    assert_eq!(
        last["content"][1]["image_url"]["url"],
        format!("data:image/jpeg;base64,{data}")
    );
}

#[tokio::test]
async fn extraction_asks_for_structured_output_and_branches_on_what_comes_back() {
    let s = setup(|r| {
        r.default_flow = Some("intake".into());
        r.flows_dir = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/flows").into());
    })
    .await;
    s.ai.reply(chat_reply(
        r#"{"order_number": "PO-42", "severity": "High"}"#,
    ));
    s.ai.reply(chat_reply(r#"{"order_number": null, "severity": null}"#));
    s.text("+15550004545", "PO-42 arrived broken, urgent!", "SMai1401")
        .await;
    assert_eq!(s.wait_sent(1).await, ["Order PO-42, severity High."]);
    let chat = &s.chats()[0];
    assert_eq!(chat["temperature"], 0.0);
    let format = &chat["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    let schema = &format["json_schema"]["schema"];
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["order_number", "severity"]));
    s.text("+15550004545", "it is broken", "SMai1402").await;
    assert_eq!(
        s.wait_sent(2).await[1],
        "Which order is it about? Please send its number, like PO-123."
    );
}

#[tokio::test]
async fn the_earlier_bots_webhook_path_still_works() {
    let s = setup(|_| {}).await;
    let r = s
        .app
        .http
        .get(format!("{}/webhook", s.app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .app
        .twilio(
            "/webhook",
            &[
                ("From", "whatsapp:+15550005656"),
                ("To", SANDBOX),
                ("Body", "hi"),
                ("MessageSid", "SMai1501"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.wait_sent(1).await, ["Standing answer."]);
    // Signed for another path: refused.
    let r = s
        .app
        .http
        .post(format!("{}/webhook", s.app.url))
        .header(
            "X-Twilio-Signature",
            confab_channels::twilio::signature(
                AUTH_TOKEN,
                &format!("{}/webhooks/twilio", s.app.url),
                &[],
            ),
        )
        .form(&[("From", "whatsapp:+15550005656"), ("To", SANDBOX)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn media_can_be_kept_on_disk() {
    let dir = std::env::temp_dir().join(format!("confab-media-{}", uuid::Uuid::new_v4()));
    let dir_text = dir.to_string_lossy().to_string();
    let s = setup(|r| {
        r.media_storage = Some("disk".into());
        r.media_dir = Some(dir_text);
    })
    .await;
    let png = b"\x89PNG\r\n\x1a\non disk";
    media_message(&s, "MMai1601", "and this?", "image/png", png).await;
    s.wait_sent(1).await;
    let id = s.message_id("MMai1601").await;
    let (_, m) = s.app.get(&s.key, &format!("/api/v1/messages/{id}")).await;
    assert_eq!(m["stored_media"][0]["size"], png.len());
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        std::fs::read(files[0].as_ref().unwrap().path()).unwrap(),
        png
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_bot_answers_by_its_own_allow_list_rate_limit_and_ai_settings() {
    let s = setup(|_| {}).await;
    let (app, key) = (&s.app, &s.key);
    let shop = ("+14155550001", "shop-twilio-token-0001");
    let (status, bot) = app
        .post(
            key,
            "/api/v1/bots",
            json!({"name": "Shop", "slug": "shop", "default_flow": "ai_assistant",
                   "ai": {"system_prompt": "You are the shop's assistant.", "model": "shop-model"},
                   "channels": {"twilio": {"account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                           "auth_token": shop.1, "number": shop.0}}}),
        )
        .await;
    assert_eq!(status, 201, "{bot}");
    assert_eq!(bot["ai"]["model"], "shop-model");
    let put = |path: &'static str, body: Value| async move {
        app.call(reqwest::Method::PUT, key, path, Some(body)).await
    };
    let (status, access) = put(
        "/api/v1/bots/shop/access/allow-list",
        json!({"numbers": ["+15550002222"]}),
    )
    .await;
    assert_eq!(status, 200, "{access}");
    let (status, access) = put(
        "/api/v1/bots/shop/access/rate-limit",
        json!({"rate_limit": {"messages": 2, "window_seconds": 3600}}),
    )
    .await;
    assert_eq!(status, 200, "{access}");
    assert_eq!(
        access,
        json!({"allow_list": ["+15550002222"], "rate_limit": {"messages": 2, "window_seconds": 3600}})
    );
    // The default bot keeps its own: nobody listed, no limit.
    assert_eq!(
        app.get(key, "/api/v1/access").await.1,
        json!({"allow_list": null, "rate_limit": null})
    );

    // Off the shop's list: refused by the shop, answered by the default bot.
    let twiml = app
        .twilio_to(shop, "+15550003333", "Hello", "SMpol0001")
        .await;
    assert!(
        twiml
            .text()
            .await
            .unwrap()
            .contains("only available to registered numbers")
    );
    s.text("+15550003333", "Hello", "SMpol0002").await;
    s.app
        .eventually(10, "the default bot asked the AI", || async {
            s.chats().len() == 1
        })
        .await;
    assert_eq!(s.chats()[0]["model"], "gpt-test");

    // On it: asked with the shop's prompt and model, up to its limit.
    app.twilio_to(shop, "+15550002222", "Hi", "SMpol0003").await;
    s.app
        .eventually(10, "the shop asked the AI", || async {
            s.chats().len() == 2
        })
        .await;
    let chat = &s.chats()[1];
    assert_eq!(chat["model"], "shop-model");
    assert_eq!(
        roles(chat)[0],
        ("system".into(), "You are the shop's assistant.".into())
    );
    app.twilio_to(shop, "+15550002222", "Again", "SMpol0004")
        .await;
    let over = app
        .twilio_to(shop, "+15550002222", "And again", "SMpol0005")
        .await;
    assert!(
        over.text()
            .await
            .unwrap()
            .contains("faster than I can answer")
    );

    // Each bot's AI use is its own.
    let calls = |v: Value| {
        v["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["calls"].as_i64().unwrap())
            .sum::<i64>()
    };
    s.app
        .eventually(10, "each bot's calls are counted", || async {
            calls(app.get(key, "/api/v1/bots/shop/stats/ai").await.1) == 2
                && calls(app.get(key, "/api/v1/stats/ai").await.1) == 1
        })
        .await;

    // Bad settings name their field and change nothing.
    let (status, p) = app
        .patch(key, "/api/v1/bots/shop", json!({"ai": {"history": 99}}))
        .await;
    assert_eq!(status, 422);
    assert!(
        p["detail"].as_str().unwrap().starts_with("ai.history"),
        "{p}"
    );
    let (status, _) = put(
        "/api/v1/bots/shop/access/rate-limit",
        json!({"rate_limit": {"messages": 0, "window_seconds": 60}}),
    )
    .await;
    assert_eq!(status, 422);
    let viewer = app.api_key_with(confab_server::auth::Role::Viewer).await;
    let (status, _) = app
        .call(
            reqwest::Method::PUT,
            &viewer,
            "/api/v1/bots/shop/access/rate-limit",
            Some(json!({"rate_limit": null})),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        app.get(key, "/api/v1/bots/shop").await.1["ai"]["model"],
        "shop-model"
    );
    assert_eq!(
        app.get(key, "/api/v1/bots/shop/access").await.1["rate_limit"]["messages"],
        2
    );
}
