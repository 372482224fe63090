//! Meta webhook parsing against the spec's own examples and pywa's test data
//! (tests/data/meta, see its README).

use confab_channels::meta::{WebhookBatch, parse_webhook};
use confab_model::{Channel, DeliveryStatus, InboundMessage, Location, MessageKind, ProviderError};
use serde_json::{Value, json};

/// Every top-level fixture, with the number of messages, statuses and
/// ignored events it must give.
const SPEC_FIXTURES: &[(&str, &str, usize, usize, usize)] = &[
    (
        "button_message.json",
        include_str!("data/meta/button_message.json"),
        1,
        0,
        0,
    ),
    (
        "contact_sharing_message.json",
        include_str!("data/meta/contact_sharing_message.json"),
        1,
        0,
        0,
    ),
    (
        "group_create_message.json",
        include_str!("data/meta/group_create_message.json"),
        0,
        0,
        1,
    ),
    (
        "group_remove_participants.json",
        include_str!("data/meta/group_remove_participants.json"),
        0,
        0,
        1,
    ),
    (
        "group_settings_update.json",
        include_str!("data/meta/group_settings_update.json"),
        0,
        0,
        1,
    ),
    (
        "image_message.json",
        include_str!("data/meta/image_message.json"),
        1,
        0,
        0,
    ),
    (
        "interactive_button_reply_message.json",
        include_str!("data/meta/interactive_button_reply_message.json"),
        1,
        0,
        0,
    ),
    (
        "interactive_list_reply_message.json",
        include_str!("data/meta/interactive_list_reply_message.json"),
        1,
        0,
        0,
    ),
    (
        "location_message.json",
        include_str!("data/meta/location_message.json"),
        1,
        0,
        0,
    ),
    (
        "order_message.json",
        include_str!("data/meta/order_message.json"),
        1,
        0,
        0,
    ),
    (
        "reaction_message.json",
        include_str!("data/meta/reaction_message.json"),
        1,
        0,
        0,
    ),
    (
        "system_message.json",
        include_str!("data/meta/system_message.json"),
        1,
        0,
        0,
    ),
    (
        "text_message.json",
        include_str!("data/meta/text_message.json"),
        1,
        0,
        0,
    ),
    (
        "text_message_from_click_to_whatsapp_ad.json",
        include_str!("data/meta/text_message_from_click_to_whatsapp_ad.json"),
        1,
        0,
        0,
    ),
    (
        "text_message_with_context_product_inquiry.json",
        include_str!("data/meta/text_message_with_context_product_inquiry.json"),
        1,
        0,
        0,
    ),
    (
        "unsupported_message.json",
        include_str!("data/meta/unsupported_message.json"),
        1,
        0,
        0,
    ),
];

fn spec(name: &str) -> WebhookBatch {
    let (_, body, ..) = SPEC_FIXTURES
        .iter()
        .find(|f| f.0 == name)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    parse_webhook(body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn spec_message(name: &str) -> InboundMessage {
    let batch = spec(name);
    assert_eq!(batch.messages.len(), 1, "{name}");
    batch.messages.into_iter().next().unwrap()
}

fn pywa_file(file: &str) -> &'static str {
    match file {
        "message" => include_str!("data/meta/pywa/message.json"),
        "message_status" => include_str!("data/meta/pywa/message_status.json"),
        "system" => include_str!("data/meta/pywa/system.json"),
        "callback_button" => include_str!("data/meta/pywa/callback_button.json"),
        "callback_selection" => include_str!("data/meta/pywa/callback_selection.json"),
        _ => panic!("no pywa file {file}"),
    }
}

fn pywa(file: &str, case: &str) -> WebhookBatch {
    let cases: Value = serde_json::from_str(pywa_file(file)).unwrap();
    let body = serde_json::to_vec(&cases[case]).unwrap();
    assert!(cases.get(case).is_some(), "no case {file}/{case}");
    parse_webhook(&body).unwrap_or_else(|e| panic!("{file}/{case}: {e}"))
}

fn pywa_message(file: &str, case: &str) -> InboundMessage {
    let batch = pywa(file, case);
    assert_eq!(batch.messages.len(), 1, "{file}/{case}");
    assert_eq!(batch.ignored, 0, "{file}/{case}");
    let m = batch.messages.into_iter().next().unwrap();
    assert_eq!(m.channel, Channel::Meta);
    assert_eq!(m.from.as_str(), "+972987654321", "{file}/{case}");
    assert_eq!(m.to.as_deref(), Some("972123456789"));
    assert_eq!(m.profile_name.as_deref(), Some("Test Name"));
    m
}

#[test]
fn every_spec_fixture_is_covered_and_parses() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/meta");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = SPEC_FIXTURES.iter().map(|f| f.0.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every fixture file must be listed in SPEC_FIXTURES"
    );

    for (name, body, messages, statuses, ignored) in SPEC_FIXTURES {
        let batch = parse_webhook(body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(batch.messages.len(), *messages, "{name} messages");
        assert_eq!(batch.statuses.len(), *statuses, "{name} statuses");
        assert_eq!(batch.ignored, *ignored, "{name} ignored");
        for m in &batch.messages {
            assert_eq!(m.channel, Channel::Meta);
            assert_eq!(m.from.as_str(), "+16505551234", "{name}");
            assert_eq!(m.to.as_deref(), Some("15550783881"), "{name}");
            assert!(m.provider_message_id.starts_with("wamid."), "{name}");
        }
    }
}

#[test]
fn spec_text() {
    let m = spec_message("text_message.json");
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text.as_deref(), Some("Does it come in another color?"));
    assert_eq!(
        m.provider_message_id,
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    );
    assert_eq!(m.profile_name.as_deref(), Some("Sheena Nelson"));
    assert!(m.media.is_empty());
    assert!(m.extra.is_empty());

    let m = spec_message("text_message_from_click_to_whatsapp_ad.json");
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(
        m.text.as_deref(),
        Some("Hello! Can I get more info on this?")
    );

    let m = spec_message("text_message_with_context_product_inquiry.json");
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text.as_deref(), Some("Is this still available?"));
    assert_eq!(
        m.extra.context_id.as_deref(),
        Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA")
    );
}

#[test]
fn spec_image() {
    let m = spec_message("image_message.json");
    assert_eq!(m.kind, MessageKind::Image);
    assert_eq!(m.text.as_deref(), Some("Taj Mahal"));
    assert_eq!(m.media.len(), 1);
    let media = &m.media[0];
    assert_eq!(media.provider_id.as_deref(), Some("1003383421387256"));
    assert_eq!(media.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(
        media.sha256.as_deref(),
        Some("SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=")
    );
    assert_eq!(media.url, None);
    assert_eq!(media.filename, None);
}

#[test]
fn spec_location() {
    let m = spec_message("location_message.json");
    assert_eq!(m.kind, MessageKind::Location);
    assert_eq!(m.text, None);
    assert_eq!(
        m.extra.location,
        Some(Location {
            latitude: 37.44221496582,
            longitude: -122.16165924072,
            name: Some("Philz Coffee".into()),
            address: Some("101 Forest Ave, Palo Alto, CA 94301".into()),
        })
    );
}

#[test]
fn spec_contacts() {
    let m = spec_message("contact_sharing_message.json");
    assert_eq!(m.kind, MessageKind::Contacts);
    assert_eq!(m.text, None);
    let contacts = m.extra.contacts.unwrap();
    assert_eq!(contacts[0]["name"]["formatted_name"], "Lucía Gómez");
    assert_eq!(contacts[0]["phones"][0]["wa_id"], "19835552319");
}

#[test]
fn spec_interactive_and_button_replies() {
    let m = spec_message("interactive_button_reply_message.json");
    assert_eq!(m.kind, MessageKind::Interactive);
    assert_eq!(m.text.as_deref(), Some("Cancel"));
    assert_eq!(m.extra.reply_id.as_deref(), Some("cancel-button"));
    assert_eq!(
        m.extra.context_id.as_deref(),
        Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA")
    );

    let m = spec_message("interactive_list_reply_message.json");
    assert_eq!(m.kind, MessageKind::Interactive);
    assert_eq!(m.text.as_deref(), Some("Priority Mail Express"));
    assert_eq!(m.extra.reply_id.as_deref(), Some("priority_express"));

    let m = spec_message("button_message.json");
    assert_eq!(m.kind, MessageKind::Button);
    assert_eq!(m.text.as_deref(), Some("Unsubscribe"));
    assert_eq!(m.extra.reply_id.as_deref(), Some("Unsubscribe"));
    assert_eq!(
        m.extra.context_id.as_deref(),
        Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA")
    );
}

#[test]
fn spec_reaction() {
    let m = spec_message("reaction_message.json");
    assert_eq!(m.kind, MessageKind::Reaction);
    assert_eq!(m.text, None);
    assert_eq!(m.extra.emoji.as_deref(), Some("👍"));
    assert_eq!(
        m.extra.context_id.as_deref(),
        Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA")
    );
}

#[test]
fn spec_messages_we_do_not_understand_are_unsupported() {
    for name in [
        "order_message.json",
        "system_message.json",
        "unsupported_message.json",
    ] {
        let m = spec_message(name);
        assert_eq!(m.kind, MessageKind::Unsupported, "{name}");
        assert_eq!(m.text, None, "{name}");
        assert!(m.media.is_empty(), "{name}");
    }
    // The system message's value has no contacts.
    assert_eq!(spec_message("system_message.json").profile_name, None);
}

#[test]
fn pywa_text_reply_and_forwarded() {
    let m = pywa_message("message", "text");
    assert_eq!(
        (m.kind, m.text.as_deref()),
        (MessageKind::Text, Some("Body Text"))
    );
    assert_eq!(m.provider_message_id, "wamid.xyzxyz");
    let m = pywa_message("message", "reply");
    assert_eq!(m.text.as_deref(), Some("replied text"));
    assert_eq!(m.extra.context_id.as_deref(), Some("wamid.xyzxyz=="));
    for case in ["forwarded", "forwarded_many_times", "referral"] {
        let m = pywa_message("message", case);
        assert_eq!(m.kind, MessageKind::Text, "{case}");
        assert_eq!(m.extra.context_id, None, "{case}");
    }
}

#[test]
fn pywa_media() {
    // (case, kind, id, mime type, caption, filename)
    let cases = [
        (
            "image",
            MessageKind::Image,
            "65463453",
            "image/jpeg",
            None,
            None,
        ),
        (
            "video",
            MessageKind::Video,
            "765756756",
            "video/mp4",
            Some("caption"),
            None,
        ),
        (
            "document",
            MessageKind::Document,
            "1234567890987654321",
            "application/pdf",
            Some("caption"),
            Some("filename.pdf"),
        ),
        (
            "audio",
            MessageKind::Audio,
            "1234567890987654321",
            "audio/ogg; codecs=opus",
            None,
            None,
        ),
        (
            "voice",
            MessageKind::Audio,
            "1234567890987654321",
            "audio/ogg; codecs=opus",
            None,
            None,
        ),
        (
            "static_sticker",
            MessageKind::Sticker,
            "1234567890987654321",
            "image/webp",
            None,
            None,
        ),
        (
            "animated_sticker",
            MessageKind::Sticker,
            "1234567890987654321",
            "image/webp",
            None,
            None,
        ),
    ];
    for (case, kind, id, mime, caption, filename) in cases {
        let m = pywa_message("message", case);
        assert_eq!(m.kind, kind, "{case}");
        assert_eq!(m.text.as_deref(), caption, "{case}");
        assert_eq!(m.media.len(), 1, "{case}");
        assert_eq!(m.media[0].provider_id.as_deref(), Some(id), "{case}");
        assert_eq!(m.media[0].content_type.as_deref(), Some(mime), "{case}");
        assert_eq!(m.media[0].filename.as_deref(), filename, "{case}");
        assert!(m.media[0].sha256.is_some(), "{case}");
    }
    let m = pywa_message("message", "media_with_url");
    assert_eq!(
        m.media[0].url.as_deref(),
        Some(
            "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=65463453&source=webhook&ext=487r9re&hash=heiwchueowbcew-dnedcw"
        )
    );
}

#[test]
fn pywa_reactions() {
    let m = pywa_message("message", "reaction");
    assert_eq!(m.kind, MessageKind::Reaction);
    assert_eq!(m.extra.emoji.as_deref(), Some("😮"));
    assert_eq!(m.extra.context_id.as_deref(), Some("wamid.yzxyzx="));
    // Removing a reaction: no emoji, still tied to its message.
    for case in ["unreaction_empty", "unreaction_no_emoji"] {
        let m = pywa_message("message", case);
        assert_eq!(m.kind, MessageKind::Reaction, "{case}");
        assert_eq!(m.extra.emoji, None, "{case}");
        assert_eq!(
            m.extra.context_id.as_deref(),
            Some("wamid.yzxyzx="),
            "{case}"
        );
    }
}

#[test]
fn pywa_locations_and_contacts() {
    let m = pywa_message("message", "current_location");
    assert_eq!(m.kind, MessageKind::Location);
    assert_eq!(
        m.extra.location,
        Some(Location {
            latitude: 12.25089,
            longitude: 43.90539,
            name: None,
            address: None
        })
    );
    let m = pywa_message("message", "chosen_location");
    let loc = m.extra.location.unwrap();
    assert_eq!(loc.name.as_deref(), Some("Facebook HQ"));
    assert_eq!(
        loc.address.as_deref(),
        Some("1 Hacker Way, Menlo Park, CA 94025")
    );
    let m = pywa_message("message", "contacts");
    assert_eq!(m.kind, MessageKind::Contacts);
    assert_eq!(
        m.extra
            .contacts
            .as_ref()
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(3)
    );
}

#[test]
fn pywa_unsupported_kinds() {
    for case in ["order", "unsupported", "unsupported_with_type"] {
        let m = pywa_message("message", case);
        assert_eq!(m.kind, MessageKind::Unsupported, "{case}");
        assert_eq!(m.text, None, "{case}");
    }
    // An interactive message Meta could not render, with a value-level error
    // beside it: the message is kept, the error counted as ignored.
    let batch = pywa("message", "interactive_message_with_err");
    assert_eq!(batch.ignored, 1);
    assert_eq!(batch.messages.len(), 1);
    assert_eq!(batch.messages[0].kind, MessageKind::Unsupported);
    assert_eq!(
        batch.messages[0].extra.context_id.as_deref(),
        Some("wamid.gvwegfretge==")
    );
    for case in ["phone_number_change", "identity_change"] {
        let batch = pywa("system", case);
        assert_eq!(batch.messages.len(), 1, "{case}");
        assert_eq!(batch.messages[0].kind, MessageKind::Unsupported, "{case}");
    }
}

#[test]
fn pywa_callbacks() {
    let m = pywa_message("callback_button", "button");
    assert_eq!(
        (m.kind, m.text.as_deref(), m.extra.reply_id.as_deref()),
        (
            MessageKind::Interactive,
            Some("title"),
            Some("callback_data")
        )
    );
    for case in ["quick_reply", "quick_reply_without_context"] {
        let m = pywa_message("callback_button", case);
        assert_eq!(
            (m.kind, m.text.as_deref(), m.extra.reply_id.as_deref()),
            (MessageKind::Button, Some("title"), Some("callback_data")),
            "{case}"
        );
    }
    for case in ["callback", "description"] {
        let m = pywa_message("callback_selection", case);
        assert_eq!(
            (m.kind, m.text.as_deref(), m.extra.reply_id.as_deref()),
            (
                MessageKind::Interactive,
                Some("title"),
                Some("callback_data")
            ),
            "{case}"
        );
        assert_eq!(m.extra.context_id.as_deref(), Some("wamid.xyzxyz"));
    }
}

#[test]
fn pywa_statuses() {
    for (case, want) in [
        ("sent", DeliveryStatus::Sent),
        ("delivered", DeliveryStatus::Delivered),
        ("read", DeliveryStatus::Read),
        ("played", DeliveryStatus::Read),
        ("with_tracker", DeliveryStatus::Sent),
        ("group", DeliveryStatus::Read),
    ] {
        let batch = pywa("message_status", case);
        assert!(batch.messages.is_empty(), "{case}");
        assert_eq!(batch.ignored, 0, "{case}");
        assert_eq!(batch.statuses.len(), 1, "{case}");
        let s = &batch.statuses[0];
        assert_eq!(s.channel, Channel::Meta);
        assert_eq!(s.status, want, "{case}");
        assert_eq!(s.error, None, "{case}");
    }
    assert_eq!(
        pywa("message_status", "sent").statuses[0].provider_message_id,
        "wamid.xyzxyz"
    );

    let s = pywa("message_status", "failed").statuses.remove(0);
    assert_eq!(s.status, DeliveryStatus::Failed);
    assert_eq!(
        s.error,
        Some(ProviderError {
            code: Some("130472".into()),
            message: "User's number is part of an experiment: Failed to send message because this user's phone number is part of an experiment".into(),
        })
    );
}

fn envelope(entries: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "object": "whatsapp_business_account", "entry": entries })).unwrap()
}

fn value(messages: Value, statuses: Value) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
        "contacts": [
            { "profile": { "name": "Ana" }, "wa_id": "16505551234" },
            { "profile": { "name": "Ben" }, "wa_id": "27123456789" }
        ],
        "messages": messages,
        "statuses": statuses,
    })
}

#[test]
fn a_batch_with_several_entries_changes_messages_and_statuses() {
    let body = envelope(json!([
        {
            "id": "1",
            "changes": [
                {
                    "field": "messages",
                    "value": value(
                        json!([
                            { "from": "16505551234", "id": "wamid.1", "timestamp": "1", "type": "text", "text": { "body": "one" } },
                            { "from": "27123456789", "id": "wamid.2", "timestamp": "2", "type": "text", "text": { "body": "two" } }
                        ]),
                        json!([
                            { "id": "wamid.out1", "status": "delivered", "timestamp": "3", "recipient_id": "16505551234" },
                            { "id": "wamid.out2", "status": "deleted", "timestamp": "3", "recipient_id": "16505551234" }
                        ])
                    )
                },
                { "field": "account_update", "value": { "event": "VERIFIED_ACCOUNT" } }
            ]
        },
        {
            "id": "2",
            "changes": [
                {
                    "field": "messages",
                    "value": value(
                        json!([
                            { "from": "16505551234", "id": "wamid.3", "timestamp": "4", "type": "image", "image": { "id": "m1", "mime_type": "image/png" } },
                            { "from": "not-a-number", "id": "wamid.4", "timestamp": "4", "type": "text", "text": { "body": "?" } },
                            { "from": "16505551234", "timestamp": "4", "type": "text", "text": { "body": "no id" } }
                        ]),
                        json!([
                            { "id": "wamid.out1", "status": "read", "timestamp": "5", "recipient_id": "16505551234" },
                            { "id": "wamid.out3", "status": "failed", "timestamp": "5", "recipient_id": "16505551234",
                              "errors": [ { "code": 131026, "title": "Message undeliverable" } ] }
                        ])
                    )
                }
            ]
        }
    ]));
    let batch = parse_webhook(&body).unwrap();
    let ids: Vec<&str> = batch
        .messages
        .iter()
        .map(|m| m.provider_message_id.as_str())
        .collect();
    assert_eq!(ids, ["wamid.1", "wamid.2", "wamid.3"]);
    let names: Vec<Option<&str>> = batch
        .messages
        .iter()
        .map(|m| m.profile_name.as_deref())
        .collect();
    assert_eq!(names, [Some("Ana"), Some("Ben"), Some("Ana")]);
    assert_eq!(batch.messages[1].from.as_str(), "+27123456789");
    assert_eq!(batch.messages[2].kind, MessageKind::Image);

    let statuses: Vec<(&str, DeliveryStatus)> = batch
        .statuses
        .iter()
        .map(|s| (s.provider_message_id.as_str(), s.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("wamid.out1", DeliveryStatus::Delivered),
            ("wamid.out1", DeliveryStatus::Read),
            ("wamid.out3", DeliveryStatus::Failed)
        ]
    );
    assert_eq!(
        batch.statuses[2].error,
        Some(ProviderError {
            code: Some("131026".into()),
            message: "Message undeliverable".into()
        })
    );
    // account_update change, `deleted` status.
    assert_eq!(batch.ignored, 2);
    // A bad sender and a missing id are handed back with the reason.
    let rejected: Vec<(Option<&str>, &str)> = batch
        .rejected
        .iter()
        .map(|r| (r.provider_message_id.as_deref(), r.event))
        .collect();
    assert_eq!(rejected, [(Some("wamid.4"), "message"), (None, "message")]);
    assert!(
        batch.rejected[0]
            .reason
            .contains("`from` is not a phone number"),
        "{}",
        batch.rejected[0].reason
    );
    assert!(batch.rejected[0].payload.contains("not-a-number"));
    assert_eq!(batch.rejected[1].reason, "no `id`");
}

#[test]
fn to_falls_back_to_the_phone_number_id() {
    let body = envelope(
        json!([{ "id": "1", "changes": [{ "field": "messages", "value": {
            "metadata": { "phone_number_id": "106540352242922" },
            "messages": [{ "from": "16505551234", "id": "wamid.1", "type": "text", "text": { "body": "x" } }]
        }}]}]),
    );
    let batch = parse_webhook(&body).unwrap();
    assert_eq!(batch.messages[0].to.as_deref(), Some("106540352242922"));
    assert_eq!(batch.messages[0].profile_name, None);
}

#[test]
fn malformed_bodies_are_errors() {
    let err = |body: &[u8]| parse_webhook(body).unwrap_err().to_string();
    assert!(
        err(b"not json").starts_with("webhook body is not JSON"),
        "{}",
        err(b"not json")
    );
    assert!(
        err(br#"{"object":"whatsapp_business_account","entry":["#)
            .starts_with("webhook body is not JSON")
    );
    assert_eq!(err(b"[]"), "webhook body is not a JSON object");
    assert_eq!(err(br#"{"entry":[]}"#), "missing field `object`");
    assert_eq!(
        err(br#"{"object":"page","entry":[]}"#),
        "`object` is 'page', expected 'whatsapp_business_account'"
    );
    assert_eq!(
        err(br#"{"object":"whatsapp_business_account"}"#),
        "missing field `entry`"
    );
    assert_eq!(
        err(br#"{"object":"whatsapp_business_account","entry":{}}"#),
        "`entry` is not an array"
    );
    assert_eq!(
        err(br#"{"object":"whatsapp_business_account","entry":[{"id":"1"}]}"#),
        "missing field `entry[0].changes`"
    );
    // A change of the right field and the wrong shape is kept as rejected,
    // whole: none of its events is taken.
    let rejected = |body: &[u8]| {
        let b = parse_webhook(body).unwrap();
        assert!(b.messages.is_empty() && b.statuses.is_empty());
        assert_eq!(b.rejected.len(), 1);
        assert_eq!(b.rejected[0].event, "change");
        b.rejected[0].reason.clone()
    };
    assert_eq!(
        rejected(br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages"}]}]}"#),
        "`entry[0].changes[0].value` is not an object"
    );
    assert_eq!(
        rejected(br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":{},"messages":[{"from":"16505551234","id":"wamid.1","type":"text","text":{"body":"x"}}]}}]}]}"#),
        "`entry[0].changes[0].value.statuses` is not an array"
    );
    // An empty batch is fine.
    assert_eq!(
        parse_webhook(br#"{"object":"whatsapp_business_account","entry":[]}"#).unwrap(),
        WebhookBatch::default()
    );
}
