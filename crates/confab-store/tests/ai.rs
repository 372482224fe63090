//! What the assistant keeps, alike on both backends: media with its bytes
//! and text, AI calls summed per flow and day, rate windows.

mod common;

use common::store;
use confab_store::{NewAiCall, NewMedia, RateWindow, Store};

const DAY: i64 = 86_400_000;

async fn one_message(s: &Store, sid: &str) -> (i64, i64) {
    let mut tx = s.begin().await.unwrap();
    let stored = tx
        .ingest(
            &[confab_model::InboundMessage {
                bot_id: confab_model::DEFAULT_BOT,
                channel: confab_model::Channel::Twilio,
                provider_message_id: sid.into(),
                from: confab_model::PhoneNumber::parse("+14155552671").unwrap(),
                to: None,
                profile_name: None,
                kind: confab_model::MessageKind::Audio,
                text: None,
                media: vec![],
                extra: Default::default(),
            }],
            1,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (stored[0].message_id, stored[0].contact_id)
}

#[tokio::test]
async fn media_is_kept_once_with_its_bytes_and_text_and_purged_when_old() {
    let s = store().await;
    let (m1, _) = one_message(&s, "MM1").await;
    let (m2, _) = one_message(&s, "MM2").await;
    let bytes: Vec<u8> = (0..=255).collect();
    let new = NewMedia {
        message_id: m1,
        position: 0,
        content_type: "audio/ogg".into(),
        size: 256,
        sha256: "ab".repeat(32),
        bytes: Some(bytes.clone()),
        path: None,
    };
    let a = s.save_media(&new, 10 * DAY).await.unwrap();
    // A job run again keeps what the first try stored.
    let again = s
        .save_media(
            &NewMedia {
                size: 1,
                ..new.clone()
            },
            10 * DAY,
        )
        .await
        .unwrap();
    assert_eq!((again.id, again.size), (a.id, 256));
    assert_eq!(s.media_bytes(a.id).await.unwrap(), Some(bytes));
    s.set_media_text(a.id, "hello there").await.unwrap();
    let on_disk = s
        .save_media(
            &NewMedia {
                message_id: m2,
                bytes: None,
                path: Some("/tmp/confab-media/2-0".into()),
                ..new
            },
            40 * DAY,
        )
        .await
        .unwrap();
    assert_eq!(s.media_bytes(on_disk.id).await.unwrap(), None);
    let texts = s.media_texts(&[m1, m2]).await.unwrap();
    assert_eq!(texts.get(&m1).map(String::as_str), Some("hello there"));
    assert!(!texts.contains_key(&m2));

    let (gone, files) = s.purge_media(20 * DAY).await.unwrap();
    assert_eq!((gone, files), (1, vec![]));
    let (gone, files) = s.purge_media(41 * DAY).await.unwrap();
    assert_eq!(
        (gone, files),
        (1, vec!["/tmp/confab-media/2-0".to_string()])
    );
    assert!(s.media_of(m1).await.unwrap().is_empty());
}

#[tokio::test]
async fn ai_calls_are_summed_per_flow_and_day() {
    let s = store().await;
    let (m, _) = one_message(&s, "SM1").await;
    let call = |flow: &str, tokens: i64, error: Option<&str>| NewAiCall {
        message_id: Some(m),
        run_id: Some(1),
        flow_id: flow.into(),
        node: Some("chat".into()),
        purpose: "chat".into(),
        model: "gpt-test".into(),
        prompt_tokens: tokens,
        completion_tokens: tokens / 10,
        latency_ms: 100,
        error: error.map(str::to_string),
    };
    let mut tx = s.begin().await.unwrap();
    tx.record_ai_calls(
        &[call("a", 100, None), call("a", 50, Some("boom"))],
        5 * DAY + 1,
    )
    .await
    .unwrap();
    tx.record_ai_calls(&[call("b", 10, None)], 5 * DAY + 3)
        .await
        .unwrap();
    tx.record_ai_calls(&[call("a", 7, None)], 6 * DAY)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stats = s
        .ai_stats(confab_store::DEFAULT_BOT, 5 * DAY, 7 * DAY)
        .await
        .unwrap();
    let rows: Vec<(&str, i64, i64, i64, i64, i64)> = stats
        .iter()
        .map(|r| {
            (
                r.flow_id.as_str(),
                r.day,
                r.calls,
                r.errors,
                r.prompt_tokens,
                r.completion_tokens,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("a", 5, 2, 1, 150, 15),
            ("b", 5, 1, 0, 10, 1),
            ("a", 6, 1, 0, 7, 0)
        ]
    );
    assert_eq!(stats[0].latency_ms, 200);
    assert_eq!(
        s.ai_stats(confab_store::DEFAULT_BOT, 6 * DAY, 7 * DAY)
            .await
            .unwrap()
            .len(),
        1
    );
    // Another bot's contacts made none of them.
    assert!(s.ai_stats(99, 5 * DAY, 7 * DAY).await.unwrap().is_empty());
    let calls = s.ai_calls_of(&[m]).await.unwrap();
    assert_eq!(calls[&m].len(), 4);
    assert_eq!(calls[&m][1].error.as_deref(), Some("boom"));
}

#[tokio::test]
async fn rate_windows_are_written_and_replaced() {
    let s = store().await;
    let (_, contact) = one_message(&s, "SM1").await;
    let mut tx = s.begin().await.unwrap();
    assert!(tx.rate_windows(&[contact]).await.unwrap().is_empty());
    let w = RateWindow {
        start_ms: 1_000,
        count: 3,
        told: false,
    };
    tx.put_rate_windows(&[(contact, w)]).await.unwrap();
    let told = RateWindow {
        count: 4,
        told: true,
        ..w
    };
    tx.put_rate_windows(&[(contact, told)]).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.rate_windows(&[contact]).await.unwrap()[&contact], told);
    tx.set_refused(contact, 5).await.unwrap();
    let states = tx.contact_states(&[contact]).await.unwrap();
    assert!(states[&contact].refused);
    tx.commit().await.unwrap();
}
