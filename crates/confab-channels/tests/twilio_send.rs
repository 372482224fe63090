//! TwilioClient::send against a fake Twilio.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{FakeProvider, Recorded, Reply, closed_port_url};
use confab_channels::twilio::{TwilioClient, TwilioConfig};
use confab_channels::{SendError, Sent, USER_AGENT, http_client};
use confab_model::{
    Button, ListRow, ListSection, MessageKind, OutboundContent, PhoneNumber, ProviderError,
    Template,
};
use serde_json::json;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-value";
const TIMEOUT: Duration = Duration::from_millis(500);

fn client(api_url: &str) -> TwilioClient {
    let mut cfg = TwilioConfig::new(SID, TOKEN, PhoneNumber::parse("+14155238886").unwrap());
    cfg.api_url = format!("{api_url}/"); // a trailing slash is tolerated
    TwilioClient::new(cfg, http_client(TIMEOUT))
}

fn to() -> PhoneNumber {
    PhoneNumber::parse("+14155550100").unwrap()
}

fn created(sid: &str) -> Reply {
    Reply::json(
        201,
        json!({ "sid": sid, "status": "queued", "body": "..." }),
    )
}

fn text(body: &str) -> OutboundContent {
    OutboundContent::Text { body: body.into() }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Everything every request to Twilio must carry.
fn assert_twilio_request(r: &Recorded) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    assert_eq!(r.header("authorization"), format!("Basic {basic}"));
    assert_eq!(
        r.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        r.header("user-agent"),
        format!("confab/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(r.header("user-agent"), USER_AGENT);
}

fn assert_no_secret(e: &SendError) {
    assert!(!e.to_string().contains(TOKEN), "{e}");
    assert!(!format!("{e:?}").contains(TOKEN), "{e:?}");
}

#[tokio::test]
async fn text_with_status_callback() {
    let fake = FakeProvider::start().await;
    fake.reply(created("SM0123456789abcdef0123456789abcdef"));
    let sent = client(&fake.url)
        .send(
            &to(),
            &text("Hello & welcome"),
            Some("https://confab.test/webhooks/twilio/status"),
        )
        .await
        .unwrap();
    assert_eq!(
        sent,
        Sent {
            provider_message_id: "SM0123456789abcdef0123456789abcdef".into()
        }
    );
    let r = fake.only_request();
    assert_twilio_request(&r);
    assert_eq!(
        r.form(),
        pairs(&[
            ("To", "whatsapp:+14155550100"),
            ("From", "whatsapp:+14155238886"),
            ("Body", "Hello & welcome"),
            (
                "StatusCallback",
                "https://confab.test/webhooks/twilio/status"
            ),
        ])
    );
}

#[tokio::test]
async fn media_template_and_interactive_forms() {
    let fake = FakeProvider::start().await;
    for i in 0..5 {
        fake.reply(created(&format!("SM{i}")));
    }
    let c = client(&fake.url);
    let mut vars = serde_json::Map::new();
    vars.insert("1".into(), json!("Ana"));
    vars.insert("2".into(), json!("3pm"));
    let sid = format!("HX{}", "b".repeat(32));
    let contents = [
        OutboundContent::Media {
            kind: MessageKind::Image,
            url: "https://x.test/a.png".into(),
            caption: Some("look".into()),
        },
        OutboundContent::Media {
            kind: MessageKind::Document,
            url: "https://x.test/a.pdf".into(),
            caption: None,
        },
        OutboundContent::Template {
            template: Template {
                content_sid: Some(sid.clone()),
                variables: Some(vars),
                ..Default::default()
            },
        },
        OutboundContent::Buttons {
            body: "Continue?".into(),
            buttons: vec![
                Button {
                    id: "y".into(),
                    title: "Yes".into(),
                },
                Button {
                    id: "n".into(),
                    title: "No".into(),
                },
            ],
        },
        OutboundContent::List {
            body: "Pick".into(),
            button: "Options".into(),
            sections: vec![ListSection {
                title: None,
                rows: vec![ListRow {
                    id: "a".into(),
                    title: "Alpha".into(),
                    description: Some("first".into()),
                }],
            }],
        },
    ];
    for (i, content) in contents.iter().enumerate() {
        let sent = c.send(&to(), content, None).await.unwrap();
        assert_eq!(sent.provider_message_id, format!("SM{i}"));
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 5);
    requests.iter().for_each(assert_twilio_request);
    let base = [
        ("To", "whatsapp:+14155550100"),
        ("From", "whatsapp:+14155238886"),
    ];
    let with = |rest: &[(&str, &str)]| pairs(&[&base[..], rest].concat());
    assert_eq!(
        requests[0].form(),
        with(&[("MediaUrl", "https://x.test/a.png"), ("Body", "look")])
    );
    assert_eq!(
        requests[1].form(),
        with(&[("MediaUrl", "https://x.test/a.pdf")])
    );
    assert_eq!(
        requests[2].form(),
        with(&[
            ("ContentSid", &sid),
            ("ContentVariables", r#"{"1":"Ana","2":"3pm"}"#)
        ])
    );
    assert_eq!(
        requests[3].form(),
        with(&[("Body", "Continue?\n1. Yes\n2. No")])
    );
    assert_eq!(
        requests[4].form(),
        with(&[("Body", "Pick\n1. Alpha — first")])
    );
}

#[tokio::test]
async fn a_template_twilio_cannot_send_fails_before_any_request() {
    let fake = FakeProvider::start().await;
    let meta_only = Template {
        name: Some("hello_world".into()),
        language: Some("en_US".into()),
        ..Default::default()
    };
    let e = client(&fake.url)
        .send(
            &to(),
            &OutboundContent::Template {
                template: meta_only,
            },
            None,
        )
        .await
        .unwrap_err();
    match e {
        SendError::Permanent(ProviderError {
            code: None,
            message,
        }) => assert!(message.contains("content_sid"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_4xx_is_permanent_with_twilios_code() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        400,
        json!({ "code": 21211, "message": "The 'To' number whatsapp:+14155550100 is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400 }),
    ));
    let e = client(&fake.url)
        .send(&to(), &text("hi"), None)
        .await
        .unwrap_err();
    assert_no_secret(&e);
    assert_eq!(
        e,
        SendError::Permanent(ProviderError {
            code: Some("21211".into()),
            message: "The 'To' number whatsapp:+14155550100 is not a valid phone number.".into(),
        })
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn bad_credentials_are_permanent_without_leaking_them() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(
        401,
        json!({ "code": 20003, "message": "Authenticate", "status": 401 }),
    ));
    let e = client(&fake.url)
        .send(&to(), &text("hi"), None)
        .await
        .unwrap_err();
    assert_no_secret(&e);
    assert_eq!(
        e,
        SendError::Permanent(ProviderError {
            code: Some("20003".into()),
            message: "Authenticate".into()
        })
    );
}

#[tokio::test]
async fn a_429_is_retryable_after_the_given_delay() {
    let fake = FakeProvider::start().await;
    fake.reply(
        Reply::json(
            429,
            json!({ "code": 20429, "message": "Too Many Requests", "status": 429 }),
        )
        .header("retry-after", "3"),
    );
    let e = client(&fake.url)
        .send(&to(), &text("hi"), None)
        .await
        .unwrap_err();
    match &e {
        SendError::Retryable {
            message,
            retry_after,
        } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(3)));
            assert!(
                message.contains("429")
                    && message.contains("Too Many Requests")
                    && message.contains("20429"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_no_secret(&e);
}

#[tokio::test]
async fn a_5xx_is_retryable() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply {
        status: 503,
        headers: vec![],
        body: "<html>Service Unavailable</html>".into(),
        delay: Duration::ZERO,
    });
    let e = client(&fake.url)
        .send(&to(), &text("hi"), None)
        .await
        .unwrap_err();
    match e {
        SendError::Retryable {
            message,
            retry_after: None,
        } => assert!(message.contains("503"), "{message}"),
        other => panic!("{other:?}"),
    }
    fake.reply(Reply::json(
        500,
        json!({ "code": 20500, "message": "Internal Server Error", "status": 500 }),
    ));
    assert!(
        client(&fake.url)
            .send(&to(), &text("hi"), None)
            .await
            .unwrap_err()
            .is_retryable()
    );
}

#[tokio::test]
async fn a_slow_reply_times_out_as_retryable() {
    let fake = FakeProvider::start().await;
    fake.reply(created("SMlate").delayed(TIMEOUT * 4));
    let started = std::time::Instant::now();
    let e = client(&fake.url)
        .send(&to(), &text("hi"), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "the timeout was not applied"
    );
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
        .send(&to(), &text("hi"), None)
        .await
        .unwrap_err();
    match &e {
        SendError::Retryable { message, .. } => assert!(
            message.starts_with("Twilio: could not connect"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert_no_secret(&e);
}

#[tokio::test]
async fn success_without_a_sid_is_not_retried() {
    let fake = FakeProvider::start().await;
    fake.reply(Reply::json(201, json!({ "status": "queued" })));
    let e = client(&fake.url)
        .send(&to(), &text("hi"), None)
        .await
        .unwrap_err();
    match e {
        SendError::Permanent(p) => {
            assert!(p.message.contains("without a message sid"), "{}", p.message)
        }
        other => panic!("{other:?}"),
    }
}
