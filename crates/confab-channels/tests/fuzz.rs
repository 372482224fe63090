//! Any input, no panic: the webhook parsers and signature checks take
//! whatever a client sends. Arbitrary bytes and forms, and the real Meta
//! fixtures with a part replaced by anything, to reach past the envelope.
//! `PROPTEST_CASES` sets how many cases each property tries.

use confab_channels::{meta, twilio};
use proptest::prelude::*;
use serde_json::Value;

/// Keys the parsers look for, so that random documents reach them.
const KEYS: &[&str] = &[
    "object",
    "entry",
    "changes",
    "field",
    "value",
    "metadata",
    "contacts",
    "messages",
    "statuses",
    "errors",
    "from",
    "id",
    "type",
    "text",
    "body",
    "wa_id",
    "profile",
    "name",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "latitude",
    "longitude",
    "interactive",
    "button_reply",
    "list_reply",
    "button",
    "payload",
    "context",
    "status",
    "recipient_id",
    "code",
    "title",
    "caption",
    "mime_type",
    "reaction",
    "emoji",
    "display_phone_number",
    "phone_number_id",
    "timestamp",
    "messages",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(
            &[
                "16505551234",
                "whatsapp_business_account",
                "messages",
                "text",
                "image",
                "interactive",
                "button_reply",
                "+14155552671",
                ""
            ][..]
        )
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn fixtures() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/meta");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push(serde_json::from_str(&text).unwrap());
        }
    }
    assert!(!out.is_empty());
    out
}

/// `doc` with the part that `path` leads to (each step a child, chosen
/// modulo the number of children) replaced by `with`.
fn replace_at(doc: &mut Value, path: &[usize], with: Value) {
    let Some((step, rest)) = path.split_first() else {
        *doc = with;
        return;
    };
    match doc {
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            replace_at(&mut a[step % n], rest, with)
        }
        Value::Object(o) if !o.is_empty() => {
            let n = o.len();
            replace_at(o.values_mut().nth(step % n).unwrap(), rest, with)
        }
        leaf => *leaf = with,
    }
}

proptest! {
    #[test]
    fn meta_takes_any_bytes(body in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = meta::parse_webhook(&body);
    }

    #[test]
    fn meta_takes_any_json(doc in json()) {
        let _ = meta::parse_webhook(doc.to_string().as_bytes());
    }

    #[test]
    fn meta_takes_a_real_payload_with_any_part_replaced(
        which in any::<prop::sample::Index>(),
        path in prop::collection::vec(any::<usize>(), 0..10),
        with in json(),
    ) {
        let all = fixtures();
        let mut doc = all[which.index(all.len())].clone();
        replace_at(&mut doc, &path, with);
        let _ = meta::parse_webhook(doc.to_string().as_bytes());
    }

    #[test]
    fn twilio_takes_any_form(
        params in prop::collection::vec(
            (prop_oneof![
                3 => prop::sample::select(&["From", "To", "Body", "MessageSid", "ProfileName", "NumMedia",
                    "MediaUrl0", "MediaContentType0", "MediaUrl1", "Latitude", "Longitude", "ButtonPayload",
                    "ButtonText", "MessageStatus", "ErrorCode", "ErrorMessage", "WaId", "Address", "Label",
                    "OriginalRepliedMessageSid", "ListId", "ListTitle"][..]).prop_map(str::to_string),
                1 => any::<String>(),
            ], any::<String>()),
            0..24,
        ),
    ) {
        let _ = twilio::parse_inbound(&params);
        let _ = twilio::parse_status(&params);
        let _ = twilio::verify_signature("token", "https://example.com/webhooks/twilio", &params, "sig");
    }

    #[test]
    fn signatures_take_any_header(secret in any::<String>(), body in any::<Vec<u8>>(), header in any::<String>()) {
        let _ = meta::verify_signature(&secret, &body, &header);
        let _ = meta::verify_handshake(Some(&header), Some(&secret), Some(&header), &secret);
    }
}
