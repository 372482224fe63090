use serde::{Deserialize, Serialize};

use crate::{DeliveryStatus, PhoneNumber};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The provider a message travels through.
    Channel {
        Twilio = "twilio",
        Meta = "meta",
        /// `confab chat`: a terminal standing in for a phone.
        Simulator = "simulator",
    }
);

string_enum!(Direction { Inbound = "inbound", Outbound = "outbound" });

string_enum!(
    /// What a message carries, the union of what both providers deliver.
    MessageKind {
        Text = "text",
        Image = "image",
        Audio = "audio",
        Video = "video",
        Document = "document",
        Sticker = "sticker",
        Location = "location",
        Contacts = "contacts",
        /// A tap on an interactive reply button or list row.
        Interactive = "interactive",
        /// A tap on a template's quick-reply button.
        Button = "button",
        Template = "template",
        Reaction = "reaction",
        Unsupported = "unsupported",
    }
);

impl MessageKind {
    /// The media kind a URL most likely holds, from its extension; used when
    /// a sender gives a media URL without saying what it is.
    pub fn for_media_url(url: &str) -> MessageKind {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "jpg" | "jpeg" | "png" | "webp" | "gif" => MessageKind::Image,
            "mp4" | "3gp" | "mov" => MessageKind::Video,
            "mp3" | "ogg" | "oga" | "opus" | "amr" | "aac" | "m4a" | "wav" => MessageKind::Audio,
            _ => MessageKind::Document,
        }
    }

    pub fn is_media(self) -> bool {
        matches!(
            self,
            MessageKind::Image
                | MessageKind::Audio
                | MessageKind::Video
                | MessageKind::Document
                | MessageKind::Sticker
        )
    }
}

/// A media attachment: a URL (Twilio, outbound) or a provider media id (Meta).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Media {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The parts of a message beyond its text and media, kept as one JSON value
/// so that storage does not grow a column per provider feature.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The id of the button or list row tapped (Twilio `ButtonPayload`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_id: Option<String>,
    /// The provider id of the message this one answers or reacts to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// Given to a run through the API (`POST /runs/{id}/input`) as if the
    /// contact had sent it; the contact did not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

impl Extra {
    pub fn is_empty(&self) -> bool {
        *self == Extra::default()
    }
}

/// One message from a contact, whatever channel it came through.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InboundMessage {
    /// The bot it was sent to: a contact is a phone number of a bot.
    pub bot_id: i64,
    pub channel: Channel,
    pub provider_message_id: String,
    pub from: PhoneNumber,
    /// Our number the contact wrote to, as the provider names it.
    pub to: Option<String>,
    pub profile_name: Option<String>,
    pub kind: MessageKind,
    /// The body, a caption, or the title of the button tapped.
    pub text: Option<String>,
    pub media: Vec<Media>,
    pub extra: Extra,
}

/// A provider's error, kept on a message that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub code: Option<String>,
    pub message: String,
}

/// A delivery report for a message we sent.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub channel: Channel,
    pub provider_message_id: String,
    pub status: DeliveryStatus,
    pub error: Option<ProviderError>,
}

/// Something a provider sent, signed, that cannot be used (a sender that is
/// not a phone number, a message with no id): kept with the reason, since
/// the provider was told it arrived and will not send it again.
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedInbound {
    pub channel: Channel,
    /// `message` or `status`.
    pub event: &'static str,
    /// The provider's id for it, when it has a usable one.
    pub provider_message_id: Option<String>,
    pub reason: String,
    /// The event as the provider sent it (JSON).
    pub payload: String,
}

/// A WhatsApp template: Twilio names it by Content SID with numbered
/// variables; Meta by name and language with components.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<serde_json::Value>>,
}

/// The template as one channel needs it, after checking it has what that
/// channel requires.
#[derive(Clone, Debug, PartialEq)]
pub enum TemplateSpec<'a> {
    Twilio {
        content_sid: &'a str,
        variables: Option<&'a serde_json::Map<String, serde_json::Value>>,
    },
    Meta {
        name: &'a str,
        language: &'a str,
        components: &'a [serde_json::Value],
    },
}

impl Template {
    pub fn for_channel(&self, channel: Channel) -> Result<TemplateSpec<'_>, String> {
        match channel {
            Channel::Twilio => {
                let sid = self
                    .content_sid
                    .as_deref()
                    .ok_or("a Twilio template needs `content_sid` (the Content SID, HX...)")?;
                if !(sid.len() == 34
                    && sid.starts_with("HX")
                    && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(format!(
                        "`content_sid` '{sid}' is not a Content SID (HX followed by 32 hex digits)"
                    ));
                }
                Ok(TemplateSpec::Twilio {
                    content_sid: sid,
                    variables: self.variables.as_ref(),
                })
            }
            Channel::Meta | Channel::Simulator => {
                let name = self
                    .name
                    .as_deref()
                    .filter(|n| !n.trim().is_empty())
                    .ok_or("a Meta template needs `name` and `language`")?;
                let language = self
                    .language
                    .as_deref()
                    .filter(|l| !l.trim().is_empty())
                    .ok_or("a Meta template needs `language` (e.g. en_US)")?;
                Ok(TemplateSpec::Meta {
                    name,
                    language,
                    components: self.components.as_deref().unwrap_or(&[]),
                })
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    pub id: String,
    pub title: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

/// What we send. Stored in the outbox as JSON and rendered by each channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundContent {
    Text {
        body: String,
    },
    Media {
        kind: MessageKind,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Template {
        template: Template,
    },
    Buttons {
        body: String,
        buttons: Vec<Button>,
    },
    List {
        body: String,
        button: String,
        sections: Vec<ListSection>,
    },
}

impl OutboundContent {
    pub fn kind(&self) -> MessageKind {
        match self {
            OutboundContent::Text { .. } => MessageKind::Text,
            OutboundContent::Media { kind, .. } => *kind,
            OutboundContent::Template { .. } => MessageKind::Template,
            OutboundContent::Buttons { .. } | OutboundContent::List { .. } => {
                MessageKind::Interactive
            }
        }
    }

    /// The text a person reads, for history and for channels that render
    /// interactive messages as numbered text.
    pub fn text(&self) -> Option<String> {
        match self {
            OutboundContent::Text { body } => Some(body.clone()),
            OutboundContent::Media { caption, .. } => caption.clone(),
            OutboundContent::Template { template } => template
                .name
                .clone()
                .or_else(|| template.content_sid.clone())
                .map(|n| format!("[template {n}]")),
            OutboundContent::Buttons { body, buttons } => {
                let mut s = body.clone();
                for (i, b) in buttons.iter().enumerate() {
                    s.push_str(&format!("\n{}. {}", i + 1, b.title));
                }
                Some(s)
            }
            OutboundContent::List { body, sections, .. } => {
                let mut s = body.clone();
                let mut n = 0;
                for section in sections {
                    if let Some(t) = &section.title {
                        s.push_str(&format!("\n{t}"));
                    }
                    for row in &section.rows {
                        n += 1;
                        s.push_str(&format!("\n{n}. {}", row.title));
                        if let Some(d) = &row.description {
                            s.push_str(&format!(" — {d}"));
                        }
                    }
                }
                Some(s)
            }
        }
    }

    pub fn media_url(&self) -> Option<&str> {
        match self {
            OutboundContent::Media { url, .. } => Some(url),
            _ => None,
        }
    }

    pub fn is_template(&self) -> bool {
        matches!(self, OutboundContent::Template { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_kind_from_url() {
        assert_eq!(
            MessageKind::for_media_url("https://x.test/a.JPG?sig=1"),
            MessageKind::Image
        );
        assert_eq!(
            MessageKind::for_media_url("https://x.test/v.mp4"),
            MessageKind::Video
        );
        assert_eq!(
            MessageKind::for_media_url("https://x.test/n.ogg"),
            MessageKind::Audio
        );
        assert_eq!(
            MessageKind::for_media_url("https://x.test/report.pdf"),
            MessageKind::Document
        );
        assert_eq!(
            MessageKind::for_media_url("https://x.test/noext"),
            MessageKind::Document
        );
    }

    #[test]
    fn template_checks_what_each_channel_needs() {
        let t = Template {
            content_sid: Some("HX".to_string() + &"a".repeat(32)),
            ..Default::default()
        };
        assert!(matches!(
            t.for_channel(Channel::Twilio),
            Ok(TemplateSpec::Twilio { .. })
        ));
        assert!(t.for_channel(Channel::Meta).is_err());
        let bad = Template {
            content_sid: Some("HXnope".into()),
            ..Default::default()
        };
        assert!(
            bad.for_channel(Channel::Twilio)
                .unwrap_err()
                .contains("Content SID")
        );
        let m = Template {
            name: Some("hello_world".into()),
            language: Some("en_US".into()),
            ..Default::default()
        };
        assert!(matches!(
            m.for_channel(Channel::Meta),
            Ok(TemplateSpec::Meta {
                name: "hello_world",
                ..
            })
        ));
    }

    #[test]
    fn interactive_renders_as_numbered_text() {
        let c = OutboundContent::Buttons {
            body: "Pick one".into(),
            buttons: vec![
                Button {
                    id: "a".into(),
                    title: "Yes".into(),
                },
                Button {
                    id: "b".into(),
                    title: "No".into(),
                },
            ],
        };
        assert_eq!(c.text().unwrap(), "Pick one\n1. Yes\n2. No");
        assert_eq!(c.kind(), MessageKind::Interactive);
    }

    #[test]
    fn content_round_trips_as_json() {
        let c = OutboundContent::Media {
            kind: MessageKind::Image,
            url: "https://x.test/a.png".into(),
            caption: Some("hi".into()),
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<OutboundContent>(&json).unwrap(), c);
    }
}
