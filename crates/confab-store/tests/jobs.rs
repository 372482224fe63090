mod common;
use common::store;
use confab_model::{Channel, OutboundContent, PhoneNumber};
use confab_store::NewOutbound;

fn outbound(phone: &str) -> NewOutbound {
    NewOutbound {
        bot_id: confab_store::DEFAULT_BOT,
        to: PhoneNumber::parse(phone).unwrap(),
        channel: Channel::Twilio,
        sender: "+14155238886".into(),
        content: OutboundContent::Text { body: "x".into() },
        reply_to: None,
        contact_id: None,
    }
}

#[tokio::test]
async fn a_leased_job_is_not_claimed_again_until_the_lease_ends() {
    let s = store().await;
    s.enqueue_outbound(&[outbound("+14155552671"), outbound("+14155552672")], 1_000)
        .await
        .unwrap();
    let first = s.claim_sends(2_000, 7_000, 10).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].attempt, 1);
    assert!(s.claim_sends(2_001, 7_001, 10).await.unwrap().is_empty());
    assert!(s.claim_sends(6_999, 12_000, 10).await.unwrap().is_empty());
    let again = s.claim_sends(7_000, 12_000, 10).await.unwrap();
    assert_eq!(again.len(), 2, "the lease ran out");
    assert_eq!(again[0].attempt, 2);
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_job() {
    let s = store().await;
    let items: Vec<_> = (0..300)
        .map(|i| outbound(&format!("+1415555{:04}", i)))
        .collect();
    s.enqueue_outbound(&items, 1_000).await.unwrap();
    let claims = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = s.claim_sends(2_000, 60_000, 7).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch.into_iter().map(|c| c.job_id));
            }
            mine
        })
    });
    let mut all: Vec<i64> = Vec::new();
    for c in claims {
        all.extend(c.await.unwrap());
    }
    assert_eq!(all.len(), 300);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 300);
}

#[tokio::test]
async fn accepted_sends_finish_the_job_and_apply_early_reports() {
    let s = store().await;
    let q = s
        .enqueue_outbound(&[outbound("+14155552671")], 1_000)
        .await
        .unwrap();
    let job = s.claim_sends(2_000, 60_000, 10).await.unwrap().remove(0);
    // The delivery report beats the send result.
    let early = confab_model::StatusUpdate {
        channel: Channel::Twilio,
        provider_message_id: "SMabc".into(),
        status: confab_model::DeliveryStatus::Delivered,
        error: None,
    };
    let applied = s.apply_statuses(&[early], 2_500).await.unwrap();
    assert_eq!(applied, [confab_store::StatusApplied::Unknown]);
    s.send_accepted(job.job_id, q[0].message_id, "SMabc", 3_000)
        .await
        .unwrap();
    let m = s.message(q[0].message_id).await.unwrap();
    assert_eq!(m.status, confab_model::DeliveryStatus::Delivered);
    assert_eq!(m.provider_message_id.as_deref(), Some("SMabc"));
    assert_eq!(s.count_rows("jobs").await.unwrap(), 0);
    assert!(
        s.claim_sends(100_000, 200_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_lost_lease_cannot_record_a_result() {
    let s = store().await;
    let q = s
        .enqueue_outbound(&[outbound("+14155552671")], 1_000)
        .await
        .unwrap();
    let old = s.claim_sends(2_000, 3_000, 10).await.unwrap().remove(0);
    // The lease ran out and another worker took the job.
    let new = s.claim_sends(3_000, 9_000, 10).await.unwrap().remove(0);
    let err = confab_model::ProviderError {
        code: None,
        message: "x".into(),
    };
    assert!(
        !s.send_failed(old.job_id, old.lease, q[0].message_id, &err, 3_500)
            .await
            .unwrap()
    );
    assert!(
        !s.send_retry(old.job_id, old.lease, 4_000, "x")
            .await
            .unwrap()
    );
    assert_eq!(
        s.extend_lease(old.job_id, old.lease, 10_000).await.unwrap(),
        None
    );
    assert_eq!(
        s.message(q[0].message_id).await.unwrap().status,
        confab_model::DeliveryStatus::Queued
    );
    assert_eq!(
        s.extend_lease(new.job_id, new.lease, 10_000).await.unwrap(),
        Some(10_000)
    );
    // Deferring for pace does not count as an attempt.
    s.defer_sends(&[(new.job_id, 10_000, 11_000)])
        .await
        .unwrap();
    let again = s.claim_sends(11_000, 20_000, 10).await.unwrap().remove(0);
    assert_eq!(again.attempt, 2);
}

#[tokio::test]
async fn messages_queued_with_a_batch_each_get_one_send_job_in_order() {
    use confab_store::{Outgoing, Write};
    let s = store().await;
    // Messages already queued: the batch's jobs must not point at them.
    s.enqueue_outbound(&[outbound("+14155552670")], 1_000)
        .await
        .unwrap();
    let a = s
        .ensure_contact(confab_store::DEFAULT_BOT, "+14155552671", 1_000)
        .await
        .unwrap();
    let b = s
        .ensure_contact(confab_store::DEFAULT_BOT, "+14155552672", 1_000)
        .await
        .unwrap();
    let message = |contact_id: i64, body: &str| Outgoing {
        contact_id,
        channel: Channel::Meta,
        sender: Some("15550001111".into()),
        content: OutboundContent::Text { body: body.into() },
        reply_to: Some(format!("wamid.{body}")),
    };
    let writes = vec![
        Write::Queued(message(a, "a1")),
        Write::Queued(message(b, "b1")),
        // Handed over in a webhook's answer: kept, never sent again.
        Write::Reply(message(b, "answered")),
        Write::Queued(message(a, "a2")),
    ];
    s.begin()
        .await
        .unwrap()
        .commit_writes(writes, 2_000)
        .await
        .unwrap();
    let claimed = s.claim_sends(3_000, 9_000, 10).await.unwrap();
    let sent: Vec<(i64, Option<String>, Option<String>)> = claimed
        .iter()
        .map(|c| {
            (
                c.message.contact_id,
                c.message.text.clone(),
                c.message.extra.context_id.clone(),
            )
        })
        .collect();
    let text = |s: &str| Some(s.to_string());
    assert_eq!(
        sent,
        vec![
            (claimed[0].message.contact_id, text("x"), None),
            (a, text("a1"), text("wamid.a1")),
            (b, text("b1"), text("wamid.b1")),
            (a, text("a2"), text("wamid.a2")),
        ]
    );
    let ids: Vec<i64> = claimed.iter().map(|c| c.message.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}
