//! MetaClient::send against a fake Graph API.

mod common;

use std::time::Duration;

use common::{FakeProvider, Recorded, Reply, closed_port_url};
use confab_channels::meta::{MetaClient, MetaConfig};
use confab_channels::{SendError, Sent, USER_AGENT, http_client};
use confab_model::{
    Button, ListRow, ListSection, MessageKind, OutboundContent, PhoneNumber, ProviderError,
    Template,
};
use serde_json::{Value, json};

const TOKEN: &str = "EAAG-meta-access-token-value";
const PHONE_ID: &str = "106540352242922";
const TIMEOUT: Duration = Duration::from_millis(500);

fn client(api_url: &str) -> MetaClient {
    let mut cfg = MetaConfig::new(TOKEN, PHONE_ID);
    cfg.api_url = api_url.to_string();
    cfg.app_secret = Some("app-secret".into());
    MetaClient::new(cfg, http_client(TIMEOUT))
}

fn to() -> PhoneNumber {
    PhoneNumber::parse("+16505551234").unwrap()
}

fn accepted(id: &str) -> Reply {
    Reply::json(
        200,
        json!({ "messaging_product": "whatsapp", "contacts": [{ "input": "16505551234", "wa_id": "16505551234" }],
                "messages": [{ "id": id, "message_status": "accepted" }] }),
    )
}

fn graph_error(status: u16, code: i64, message: &str) -> Reply {
    Reply::json(
        status,
        json!({ "error": { "message": message, "type": "OAuthException", "code": code, "error_subcode": 2494010,
                           "fbtrace_id": "AXsgnV2Cm3ZMGF3dF_cfYIn" } }),
    )
}

fn text(body: &str) -> OutboundContent {
    OutboundContent::Text { body: body.into() }
}

fn assert_meta_request(r: &Recorded) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/v23.0/{PHONE_ID}/messages"));
    assert_eq!(r.header("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(
        r.header("user-agent"),
        format!("confab/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(r.header("user-agent"), USER_AGENT);
}

fn envelope(kind: &str, payload: Value) -> Value {
    let mut v = json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234", "type": kind });
    v[kind] = payload;
    v
}

fn assert_no_secret(e: &SendError) {
    assert!(!e.to_string().contains(TOKEN), "{e}");
    assert!(!format!("{e:?}").contains(TOKEN), "{e:?}");
}

#[tokio::test]
async fn text_is_sent_as_the_spec_describes() {
    let fake = FakeProvider::start().await;
    fake.reply(accepted(
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA",
    ));
    let sent = client(&fake.url).send(&to(), &text("Hello")).await.unwrap();
    assert_eq!(
        sent,
        Sent {
            provider_message_id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA"
                .into()
        }
    );
    let r = fake.only_request();
    assert_meta_request(&r);
    assert_eq!(
        r.json(),
        envelope("text", json!({ "body": "Hello", "preview_url": false }))
    );
}

#[tokio::test]
async fn every_kind_of_content() {
    let fake = FakeProvider::start().await;
    let template = Template {
        name: Some("hello_world".into()),
        language: Some("en_US".into()),
        components: Some(vec![
            json!({ "type": "body", "parameters": [{ "type": "text", "text": "Ana" }] }),
        ]),
        ..Default::default()
    };
    let cases: Vec<(OutboundContent, Value)> = vec![
        (
            OutboundContent::Media {
                kind: MessageKind::Image,
                url: "https://x.test/a.jpg".into(),
                caption: Some("cap".into()),
            },
            envelope(
                "image",
                json!({ "link": "https://x.test/a.jpg", "caption": "cap" }),
            ),
        ),
        (
            OutboundContent::Media {
                kind: MessageKind::Video,
                url: "https://x.test/v.mp4".into(),
                caption: None,
            },
            envelope("video", json!({ "link": "https://x.test/v.mp4" })),
        ),
        (
            OutboundContent::Media {
                kind: MessageKind::Audio,
                url: "https://x.test/a.ogg".into(),
                caption: Some("no".into()),
            },
            envelope("audio", json!({ "link": "https://x.test/a.ogg" })),
        ),
        (
            OutboundContent::Media {
                kind: MessageKind::Sticker,
                url: "https://x.test/s.webp".into(),
                caption: None,
            },
            envelope("sticker", json!({ "link": "https://x.test/s.webp" })),
        ),
        (
            OutboundContent::Media {
                kind: MessageKind::Document,
                url: "https://x.test/r.pdf".into(),
                caption: Some("Report".into()),
            },
            envelope(
                "document",
                json!({ "link": "https://x.test/r.pdf", "caption": "Report", "filename": "r.pdf" }),
            ),
        ),
        (
            OutboundContent::Template { template },
            envelope(
                "template",
                json!({ "name": "hello_world", "language": { "policy": "deterministic", "code": "en_US" },
                        "components": [{ "type": "body", "parameters": [{ "type": "text", "text": "Ana" }] }] }),
            ),
        ),
        (
            OutboundContent::Buttons {
                body: "Continue?".into(),
                buttons: vec![
                    Button {
                        id: "yes".into(),
                        title: "Yes".into(),
                    },
                    Button {
                        id: "no".into(),
                        title: "No".into(),
                    },
                ],
            },
            envelope(
                "interactive",
                json!({ "type": "button", "body": { "text": "Continue?" }, "action": { "buttons": [
                    { "type": "reply", "reply": { "id": "yes", "title": "Yes" } },
                    { "type": "reply", "reply": { "id": "no", "title": "No" } } ] } }),
            ),
        ),
        (
            OutboundContent::List {
                body: "Shipping?".into(),
                button: "Choose".into(),
                sections: vec![ListSection {
                    title: Some("Options".into()),
                    rows: vec![
                        ListRow {
                            id: "express".into(),
                            title: "Express".into(),
                            description: Some("Next day".into()),
                        },
                        ListRow {
                            id: "ground".into(),
                            title: "Ground".into(),
                            description: None,
                        },
                    ],
                }],
            },
            envelope(
                "interactive",
                json!({ "type": "list", "body": { "text": "Shipping?" }, "action": { "button": "Choose", "sections": [
                    { "title": "Options", "rows": [
                        { "id": "express", "title": "Express", "description": "Next day" },
                        { "id": "ground", "title": "Ground" } ] } ] } }),
            ),
        ),
    ];
    for i in 0..cases.len() {
        fake.reply(accepted(&format!("wamid.{i}")));
    }
    let c = client(&fake.url);
    for (i, (content, _)) in cases.iter().enumerate() {
        assert_eq!(
            c.send(&to(), content).await.unwrap().provider_message_id,
            format!("wamid.{i}")
        );
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), cases.len());
    for (r, (content, want)) in requests.iter().zip(&cases) {
        assert_meta_request(r);
        assert_eq!(&r.json(), want, "{content:?}");
    }
}

#[tokio::test]
async fn limit_violations_fail_before_any_request() {
    let fake = FakeProvider::start().await;
    let c = client(&fake.url);
    let four = OutboundContent::Buttons {
        body: "Pick".into(),
        buttons: (1..=4)
            .map(|i| Button {
                id: format!("b{i}"),
                title: format!("Option {i}"),
            })
            .collect(),
    };
    let long_title = OutboundContent::Buttons {
        body: "Pick".into(),
        buttons: vec![Button {
            id: "a".into(),
            title: "A title over twenty chars".into(),
        }],
    };
    let eleven_rows = OutboundContent::List {
        body: "Pick".into(),
        button: "Choose".into(),
        sections: vec![ListSection {
            title: None,
            rows: (0..11)
                .map(|i| ListRow {
                    id: format!("r{i}"),
                    title: format!("Row {i}"),
                    description: None,
                })
                .collect(),
        }],
    };
    let twilio_template = OutboundContent::Template {
        template: Template {
            content_sid: Some(format!("HX{}", "c".repeat(32))),
            ..Default::default()
        },
    };
    for (content, needle) in [
        (four, "4 buttons"),
        (long_title, "at most 20"),
        (eleven_rows, "11 rows"),
        (twilio_template, "needs `name`"),
    ] {
        match c.send(&to(), &content).await.unwrap_err() {
            SendError::Permanent(ProviderError {
                code: None,
                message,
            }) => assert!(message.contains(needle), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_4xx_is_permanent_with_the_graph_code() {
    let fake = FakeProvider::start().await;
    fake.reply(graph_error(400, 131047, "Re-engagement message"));
    fake.reply(Reply::json(
        400,
        json!({ "error": { "message": "(#131026) Message Undeliverable.", "type": "OAuthException", "code": 131026,
                           "error_data": { "messaging_product": "whatsapp", "details": "Recipient is not a WhatsApp user" },
                           "fbtrace_id": "A1" } }),
    ));
    let c = client(&fake.url);
    let e = c.send(&to(), &text("hi")).await.unwrap_err();
    assert_no_secret(&e);
    assert_eq!(
        e,
        SendError::Permanent(ProviderError {
            code: Some("131047".into()),
            message: "Re-engagement message".into()
        })
    );
    let e = c.send(&to(), &text("hi")).await.unwrap_err();
    assert_eq!(
        e,
        SendError::Permanent(ProviderError {
            code: Some("131026".into()),
            message: "(#131026) Message Undeliverable. (Recipient is not a WhatsApp user)".into(),
        })
    );
}

#[tokio::test]
async fn bad_token_is_permanent_without_leaking_it() {
    let fake = FakeProvider::start().await;
    fake.reply(graph_error(
        401,
        190,
        "Invalid OAuth access token - Cannot parse access token",
    ));
    let e = client(&fake.url)
        .send(&to(), &text("hi"))
        .await
        .unwrap_err();
    assert_no_secret(&e);
    assert!(
        matches!(e, SendError::Permanent(ProviderError { code: Some(ref c), .. }) if c == "190")
    );
}

#[tokio::test]
async fn throttling_codes_are_retryable_even_as_400() {
    let fake = FakeProvider::start().await;
    let c = client(&fake.url);
    for code in [4, 80007, 130429, 131048, 131056] {
        fake.reply(graph_error(400, code, "Rate limit hit"));
        match c.send(&to(), &text("hi")).await.unwrap_err() {
            SendError::Retryable {
                message,
                retry_after: None,
            } => {
                assert!(
                    message.contains(&code.to_string()) && message.contains("Rate limit hit"),
                    "{message}"
                )
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    // Meta's own transient flag is honoured too.
    fake.reply(Reply::json(400, json!({ "error": { "message": "Temporary", "type": "OAuthException", "code": 100, "is_transient": true } })));
    assert!(c.send(&to(), &text("hi")).await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn a_429_is_retryable_after_the_given_delay() {
    let fake = FakeProvider::start().await;
    fake.reply(graph_error(429, 130429, "Rate limit hit").header("retry-after", "12"));
    let e = client(&fake.url)
        .send(&to(), &text("hi"))
        .await
        .unwrap_err();
    assert_no_secret(&e);
    match e {
        SendError::Retryable {
            retry_after,
            message,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(12)));
            assert!(message.contains("429"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_5xx_is_retryable_whatever_the_body() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply {
        status: 502,
        headers: vec![],
        body: "<html>Bad Gateway</html>".into(),
        delay: Duration::ZERO,
    });
    fake.reply(graph_error(500, 131000, "Something went wrong"));
    let c = client(&fake.url);
    for _ in 0..2 {
        let e = c.send(&to(), &text("hi")).await.unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        assert_no_secret(&e);
    }
}

#[tokio::test]
async fn a_slow_reply_times_out_as_retryable() {
    let fake = FakeProvider::start().await;
    fake.reply(accepted("wamid.late").delayed(TIMEOUT * 4));
    let e = client(&fake.url)
        .send(&to(), &text("hi"))
        .await
        .unwrap_err();
    match &e {
        SendError::Retryable {
            message,
            retry_after: None,
        } => assert!(message.contains("timed out"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_no_secret(&e);
}

#[tokio::test]
async fn an_unreachable_provider_is_retryable() {
    let e = client(&closed_port_url().await)
        .send(&to(), &text("hi"))
        .await
        .unwrap_err();
    match &e {
        SendError::Retryable { message, .. } => {
            assert!(message.starts_with("Meta: could not connect"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn success_without_an_id_is_not_retried() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        200,
        json!({ "messaging_product": "whatsapp", "messages": [] }),
    ));
    let e = client(&fake.url)
        .send(&to(), &text("hi"))
        .await
        .unwrap_err();
    match e {
        SendError::Permanent(p) => {
            assert!(p.message.contains("without a message id"), "{}", p.message)
        }
        other => panic!("{other:?}"),
    }
}
