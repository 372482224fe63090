//! What a bot keeps about each of its channels: the fields a kind of
//! channel takes (which are secret, which routes webhooks to the bot), how
//! each is checked, and how a set of them becomes a working channel. The
//! server knows channels only through this registry: adding a kind of
//! channel adds an entry to [`KINDS`].

use std::collections::BTreeMap;

use confab_model::{Channel, PhoneNumber};
use serde_json::Value;

use crate::meta::MetaConfig;
use crate::twilio::TwilioConfig;

/// One field of a channel's settings.
pub struct Field {
    pub name: &'static str,
    /// Sealed at rest; the API shows only whether it is set.
    pub secret: bool,
    pub required: bool,
    /// Checks a value and gives it in its stored form.
    pub check: fn(&str) -> Result<String, String>,
    /// What the field holds, for the API document.
    pub about: &'static str,
}

/// A kind of channel.
pub struct Kind {
    pub channel: Channel,
    pub fields: &'static [Field],
    /// The field that routes a webhook to its bot (unique across bots).
    pub address: &'static str,
    /// Its webhooks: read, route, verify, parse, answer.
    pub webhooks: &'static dyn crate::webhook::Webhooks,
}

/// Every kind of channel a bot may have.
pub const KINDS: &[Kind] = &[
    Kind {
        channel: Channel::Twilio,
        address: "number",
        webhooks: &crate::twilio::TwilioWebhooks,
        fields: &[
            Field {
                name: "account_sid",
                secret: false,
                required: true,
                check: account_sid,
                about: "the Twilio account SID (AC followed by 32 hex digits)",
            },
            Field {
                name: "auth_token",
                secret: true,
                required: true,
                check: token,
                about: "the account's auth token: signs webhooks and authenticates sends",
            },
            Field {
                name: "number",
                secret: false,
                required: true,
                check: number,
                about: "the WhatsApp sender, E.164 (`whatsapp:` may precede it)",
            },
        ],
    },
    Kind {
        channel: Channel::Meta,
        address: "phone_number_id",
        webhooks: &crate::meta::MetaWebhooks,
        fields: &[
            Field {
                name: "phone_number_id",
                secret: false,
                required: true,
                check: graph_id,
                about: "the WhatsApp Business phone number id",
            },
            Field {
                name: "access_token",
                secret: true,
                required: true,
                check: token,
                about: "a system user's access token with whatsapp_business_messaging",
            },
            Field {
                name: "app_secret",
                secret: true,
                required: true,
                check: token,
                about: "the app secret that signs webhooks (X-Hub-Signature-256)",
            },
            Field {
                name: "verify_token",
                secret: true,
                required: false,
                check: token,
                about: "the token Meta's subscription handshake presents",
            },
            Field {
                name: "business_account_id",
                secret: false,
                required: false,
                check: graph_id,
                about: "the WhatsApp Business account id (for templates)",
            },
        ],
    },
];

pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.channel.as_str() == name)
}

/// A channel's settings, secrets included, each field in its stored form.
pub type Values = BTreeMap<String, String>;

fn account_sid(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = s.len() == 34 && s.starts_with("AC") && s[2..].chars().all(|c| c.is_ascii_hexdigit());
    ok.then(|| s.to_string())
        .ok_or_else(|| "is not a Twilio account SID (AC and 32 hex digits)".into())
}

fn token(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= 1024 && s.chars().all(|c| c.is_ascii_graphic());
    ok.then(|| s.to_string())
        .ok_or_else(|| "must be 1 to 1024 printable characters without spaces".into())
}

fn number(s: &str) -> Result<String, String> {
    PhoneNumber::parse(s)
        .map(|p| p.as_str().to_string())
        .map_err(|e| e.to_string())
}

fn graph_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_digit());
    ok.then(|| s.to_string())
        .ok_or_else(|| "must be 1 to 32 digits".into())
}

/// A field at fault: its name and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kind({})", self.name())
    }
}

impl Kind {
    pub fn name(&self) -> &'static str {
        self.channel.as_str()
    }

    /// Settings from `input` (a JSON object of strings) over `current`:
    /// a field left out keeps its current value, `null` clears an optional
    /// one. Unknown fields are refused.
    pub fn parse(
        &self,
        input: &serde_json::Map<String, Value>,
        current: Option<&Values>,
    ) -> Result<Values, FieldError> {
        let fault = |field: &str, problem: String| FieldError {
            field: field.to_string(),
            problem,
        };
        if let Some(unknown) = input
            .keys()
            .find(|k| !self.fields.iter().any(|f| f.name == k.as_str()))
        {
            let known: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
            return Err(fault(
                unknown,
                format!(
                    "is not a setting of a {} channel (those are {})",
                    self.name(),
                    known.join(", ")
                ),
            ));
        }
        let mut values = current.cloned().unwrap_or_default();
        for f in self.fields {
            match input.get(f.name) {
                None => {}
                Some(Value::Null) => {
                    values.remove(f.name);
                }
                Some(Value::String(s)) => {
                    let v = (f.check)(s).map_err(|p| fault(f.name, p))?;
                    values.insert(f.name.to_string(), v);
                }
                Some(_) => return Err(fault(f.name, "must be a string".into())),
            }
            if f.required && !values.contains_key(f.name) {
                return Err(fault(f.name, "is required".into()));
            }
        }
        Ok(values)
    }

    /// The address that routes webhooks to the channel's bot.
    pub fn address<'a>(&self, values: &'a Values) -> &'a str {
        values.get(self.address).map(String::as_str).unwrap_or("")
    }

    /// The fields that are not secret, and of each secret only whether it
    /// is set and its last characters.
    pub fn public(&self, values: &Values) -> serde_json::Map<String, Value> {
        self.fields
            .iter()
            .filter_map(|f| {
                let v = values.get(f.name)?;
                let shown = if f.secret {
                    serde_json::json!(hint(v))
                } else {
                    Value::String(v.clone())
                };
                Some((f.name.to_string(), shown))
            })
            .collect()
    }

    /// The secret fields only, to be sealed.
    pub fn secrets(&self, values: &Values) -> Values {
        values
            .iter()
            .filter(|(k, _)| self.fields.iter().any(|f| f.secret && f.name == k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// What is shown of a secret: whether it is set, and its last four
/// characters when it is long enough that they give nothing away.
pub fn hint(secret: &str) -> Value {
    let chars: Vec<char> = secret.chars().collect();
    let last4 = (chars.len() >= 12).then(|| chars[chars.len() - 4..].iter().collect::<String>());
    serde_json::json!({"set": !secret.is_empty(), "last4": last4})
}

/// Where a kind's provider API is, for every bot (tests point it at a fake).
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    pub twilio_api_url: Option<String>,
    pub meta_api_url: Option<String>,
    pub meta_api_version: Option<String>,
}

/// A channel ready to verify, parse and send.
#[derive(Clone, Debug)]
pub enum Config {
    Twilio(TwilioConfig),
    Meta(MetaConfig),
}

impl Config {
    /// The working channel of `values` (as [`Kind::parse`] gave them).
    pub fn build(channel: Channel, values: &Values, at: &Endpoints) -> Option<Config> {
        let get = |k: &str| values.get(k).cloned();
        match channel {
            Channel::Twilio => {
                let mut c = TwilioConfig::new(
                    get("account_sid")?,
                    get("auth_token")?,
                    PhoneNumber::parse(&get("number")?).ok()?,
                );
                if let Some(url) = &at.twilio_api_url {
                    c.api_url = url.clone();
                }
                Some(Config::Twilio(c))
            }
            Channel::Meta => {
                let mut c = MetaConfig::new(get("access_token")?, get("phone_number_id")?);
                c.app_secret = get("app_secret");
                c.verify_token = get("verify_token");
                if let Some(url) = &at.meta_api_url {
                    c.api_url = url.clone();
                }
                if let Some(v) = &at.meta_api_version {
                    c.api_version = v.clone();
                }
                Some(Config::Meta(c))
            }
            Channel::Simulator => None,
        }
    }
}

/// What a provider said when asked the cheapest question its credentials
/// allow.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Probe {
    /// The provider accepted the credentials.
    pub ok: bool,
    /// The HTTP status it answered, if it answered.
    pub status: Option<u16>,
    /// What it said: the account or number it describes, or its error.
    pub detail: Value,
}

impl Config {
    /// Twilio: the account (`GET /Accounts/{sid}.json`); Meta: the phone
    /// number (`GET /{phone_number_id}`). Nothing is changed or sent.
    pub async fn probe(&self, http: &reqwest::Client) -> Probe {
        let request = match self {
            Config::Twilio(c) => http
                .get(format!(
                    "{}/2010-04-01/Accounts/{}.json",
                    c.api_url.trim_end_matches('/'),
                    c.account_sid
                ))
                .basic_auth(&c.account_sid, Some(&c.auth_token)),
            Config::Meta(c) => http
                .get(format!(
                    "{}/{}/{}?fields=display_phone_number,verified_name,quality_rating",
                    c.api_url.trim_end_matches('/'),
                    c.api_version,
                    c.phone_number_id
                ))
                .bearer_auth(&c.access_token),
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Probe {
                    ok: false,
                    status: None,
                    detail: Value::String(confab_http::describe_failure(e)),
                };
            }
        };
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<Value>(&body)
            .map(|v| self.summary(v))
            .unwrap_or_else(|_| Value::String(crate::http::snippet(&body)));
        Probe {
            ok: status.is_success(),
            status: Some(status.as_u16()),
            detail,
        }
    }

    /// The parts of a provider's answer worth showing (never a credential).
    fn summary(&self, v: Value) -> Value {
        let keep: &[&str] = match self {
            Config::Twilio(_) => &[
                "friendly_name",
                "status",
                "type",
                "code",
                "message",
                "more_info",
            ],
            Config::Meta(_) => &[
                "display_phone_number",
                "verified_name",
                "quality_rating",
                "id",
                "error",
            ],
        };
        match v {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(k, _)| keep.contains(&k.as_str()))
                    .collect(),
            ),
            _ => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn each_field_is_checked_and_named() {
        let twilio = kind("twilio").unwrap();
        let good = json!({"account_sid": format!("AC{}", "a".repeat(32)), "auth_token": "0123456789abcdef", "number": "whatsapp:+14155238886"});
        let values = twilio.parse(&obj(good.clone()), None).unwrap();
        assert_eq!(twilio.address(&values), "+14155238886");
        let cases = [
            (json!({"account_sid": "XX"}), "account_sid"),
            (json!({"number": "not a number"}), "number"),
            (json!({"auth_token": "has space"}), "auth_token"),
            (json!({"auth_token": 5}), "auth_token"),
            (json!({"region": "us1"}), "region"),
        ];
        for (change, field) in cases {
            let mut input = obj(good.clone());
            input.extend(obj(change));
            let e = twilio.parse(&input, None).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let e = twilio
            .parse(
                &obj(json!({"account_sid": format!("AC{}", "a".repeat(32))})),
                None,
            )
            .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.problem.as_str()),
            ("auth_token", "is required")
        );
    }

    #[test]
    fn a_change_keeps_what_it_leaves_out_and_secrets_show_their_end_only() {
        let meta = kind("meta").unwrap();
        let first = meta
            .parse(
                &obj(json!({"phone_number_id": "1234", "access_token": "EAAG-very-long-token-WXYZ", "app_secret": "short"})),
                None,
            )
            .unwrap();
        let second = meta
            .parse(&obj(json!({"verify_token": "verify-me"})), Some(&first))
            .unwrap();
        assert_eq!(second.get("access_token"), first.get("access_token"));
        let shown = Value::Object(meta.public(&second));
        assert_eq!(shown["phone_number_id"], "1234");
        assert_eq!(shown["access_token"], json!({"set": true, "last4": "WXYZ"}));
        assert_eq!(shown["app_secret"], json!({"set": true, "last4": null}));
        assert!(!shown.to_string().contains("EAAG"));
        assert_eq!(
            meta.secrets(&second).keys().collect::<Vec<_>>(),
            ["access_token", "app_secret", "verify_token"]
        );
        let cleared = meta
            .parse(&obj(json!({"verify_token": null})), Some(&second))
            .unwrap();
        assert!(!cleared.contains_key("verify_token"));
        assert!(
            meta.parse(&obj(json!({"access_token": null})), Some(&second))
                .is_err()
        );
    }
}
