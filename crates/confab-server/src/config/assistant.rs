//! Settings of the AI assistant, the access policy and inbound media. The
//! seed's variable names work: `OPENAI_API_KEY`, `OPENAI_MODEL`,
//! `MAX_CONVERSATION_HISTORY`, `WHITELISTED_USERS`, `RATE_LIMIT_MESSAGES`,
//! `RATE_LIMIT_WINDOW_SECONDS`.

use std::time::Duration;

use confab_ai::AiConfig;
use confab_model::PhoneNumber;

use super::{RawSettings, SettingError, bad, parse_base_url, parse_num};

pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant answering on WhatsApp. \
Answer in the language the user writes in, briefly and clearly, in plain text without Markdown headings or tables.";

#[derive(Clone, Debug)]
pub struct AssistantSettings {
    /// Set when an AI provider is configured (a key or a base URL).
    pub ai: Option<AiConfig>,
    pub system_prompt: String,
    /// Earlier messages sent along with a question.
    pub history: u32,
    /// AI requests carried out at the same time, per process.
    pub concurrency: usize,
    /// Characters of a PDF's text given to the model.
    pub pdf_max_chars: usize,
    pub media: MediaSettings,
    /// Allow-list from `WHITELISTED_USERS`, written to the database at
    /// start; the API changes it at run time.
    pub allow_list: Option<Vec<PhoneNumber>>,
    /// Messages per window a contact may send; none: no limit.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub messages: i64,
    pub window: Duration,
}

#[derive(Clone, Debug)]
pub struct MediaSettings {
    /// Files larger than this are not fetched.
    pub max_bytes: u64,
    /// Where fetched files live: in the database, or in files under `dir`.
    pub on_disk: bool,
    pub dir: std::path::PathBuf,
    /// Files older than this are deleted.
    pub retention: Duration,
}

pub(super) fn from_raw(r: &RawSettings) -> Result<AssistantSettings, SettingError> {
    let ai = match (&r.openai_api_key, &r.openai_base_url) {
        (None, None) => None,
        (key, _) => {
            let base_url = parse_base_url(
                "OPENAI_BASE_URL",
                &r.openai_base_url,
                "https://api.openai.com/v1",
            )?;
            let timeout: u64 = parse_num(
                "OPENAI_TIMEOUT_SECONDS",
                &r.openai_timeout_seconds,
                60,
                "a number of seconds",
            )?;
            if timeout == 0 {
                return Err(bad("OPENAI_TIMEOUT_SECONDS", "must be at least 1"));
            }
            let model = |v: &Option<String>, default: &str| {
                v.clone().unwrap_or_else(|| default.to_string())
            };
            let chat = model(&r.openai_model, "gpt-4o-mini");
            Some(AiConfig {
                base_url,
                api_key: key.clone(),
                vision_model: model(&r.openai_vision_model, &chat),
                chat_model: chat,
                transcription_model: model(&r.openai_transcription_model, "whisper-1"),
                // One attempt may take half the deadline, so a retry fits.
                request_timeout: Duration::from_secs(timeout.div_ceil(2).max(1)),
                deadline: Duration::from_secs(timeout),
                max_attempts: 4,
            })
        }
    };
    let history: u32 = parse_num(
        "MAX_CONVERSATION_HISTORY",
        &r.max_conversation_history,
        10,
        "a number of messages",
    )?;
    if history > 100 {
        return Err(bad("MAX_CONVERSATION_HISTORY", "must be 100 at most"));
    }
    let concurrency: usize = parse_num("AI_CONCURRENCY", &r.ai_concurrency, 64, "a number")?;
    if concurrency == 0 {
        return Err(bad("AI_CONCURRENCY", "must be at least 1"));
    }
    let allow_list = match &r.whitelisted_users {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    PhoneNumber::parse(s)
                        .map_err(|e| bad("WHITELISTED_USERS", format!("'{s}': {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let rate_limit = match &r.rate_limit_messages {
        None => None,
        Some(_) => {
            let messages: i64 = parse_num(
                "RATE_LIMIT_MESSAGES",
                &r.rate_limit_messages,
                10,
                "a number of messages",
            )?;
            let window: u64 = parse_num(
                "RATE_LIMIT_WINDOW_SECONDS",
                &r.rate_limit_window_seconds,
                60,
                "a number of seconds",
            )?;
            if messages < 1 || window < 1 {
                return Err(bad(
                    "RATE_LIMIT_MESSAGES",
                    "the limit and its window (RATE_LIMIT_WINDOW_SECONDS) must be at least 1",
                ));
            }
            Some(RateLimit {
                messages,
                window: Duration::from_secs(window),
            })
        }
    };
    let on_disk = match r.media_storage.as_deref().map(str::trim) {
        None | Some("database") => false,
        Some("disk") => true,
        Some(other) => {
            return Err(bad(
                "MEDIA_STORAGE",
                format!("'{other}' is not database or disk"),
            ));
        }
    };
    let max_bytes: u64 = parse_num(
        "MEDIA_MAX_BYTES",
        &r.media_max_bytes,
        16 << 20,
        "a number of bytes",
    )?;
    let retention_days: u64 = parse_num(
        "MEDIA_RETENTION_DAYS",
        &r.media_retention_days,
        30,
        "a number of days",
    )?;
    Ok(AssistantSettings {
        ai,
        system_prompt: r
            .ai_system_prompt
            .clone()
            .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.into()),
        history,
        concurrency,
        pdf_max_chars: parse_num(
            "PDF_MAX_CHARS",
            &r.pdf_max_chars,
            20_000,
            "a number of characters",
        )?,
        media: MediaSettings {
            max_bytes: max_bytes.max(1),
            on_disk,
            dir: r
                .media_dir
                .clone()
                .unwrap_or_else(|| "./data/media".into())
                .into(),
            retention: Duration::from_secs(retention_days.max(1).saturating_mul(86_400)),
        },
        allow_list,
        rate_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::*;

    #[test]
    fn ai_is_configured_by_a_key_or_a_base_url() {
        let s = Settings::from_raw(&RawSettings::default()).unwrap();
        assert!(s.assistant.ai.is_none());
        assert_eq!(s.assistant.history, 10);
        assert!(s.assistant.allow_list.is_none() && s.assistant.rate_limit.is_none());

        let r = RawSettings {
            openai_api_key: Some("sk-secret".into()),
            openai_model: Some("gpt-4.1".into()),
            ..Default::default()
        };
        let ai = Settings::from_raw(&r).unwrap().assistant.ai.unwrap();
        assert_eq!(ai.base_url, "https://api.openai.com/v1");
        assert_eq!(
            (ai.chat_model.as_str(), ai.vision_model.as_str()),
            ("gpt-4.1", "gpt-4.1")
        );

        let r = RawSettings {
            openai_base_url: Some("http://127.0.0.1:8080/v1/".into()),
            ..Default::default()
        };
        let ai = Settings::from_raw(&r).unwrap().assistant.ai.unwrap();
        assert_eq!(ai.base_url, "http://127.0.0.1:8080/v1");
        assert!(ai.api_key.is_none());
    }

    #[test]
    fn policy_settings_are_checked() {
        let r = RawSettings {
            whitelisted_users: Some("+14155552671, +27123456789".into()),
            rate_limit_messages: Some("5".into()),
            rate_limit_window_seconds: Some("30".into()),
            ..Default::default()
        };
        let s = Settings::from_raw(&r).unwrap().assistant;
        assert_eq!(s.allow_list.map(|l| l.len()), Some(2));
        assert_eq!(
            s.rate_limit,
            Some(RateLimit {
                messages: 5,
                window: Duration::from_secs(30)
            })
        );
        let e = |r: RawSettings| Settings::from_raw(&r).unwrap_err().var;
        assert_eq!(
            e(RawSettings {
                whitelisted_users: Some("+1415, nope".into()),
                ..Default::default()
            }),
            "WHITELISTED_USERS"
        );
        assert_eq!(
            e(RawSettings {
                rate_limit_messages: Some("0".into()),
                ..Default::default()
            }),
            "RATE_LIMIT_MESSAGES"
        );
        assert_eq!(
            e(RawSettings {
                media_storage: Some("s3".into()),
                ..Default::default()
            }),
            "MEDIA_STORAGE"
        );
        assert_eq!(
            e(RawSettings {
                openai_api_key: Some("k".into()),
                openai_base_url: Some("localhost:8080".into()),
                ..Default::default()
            }),
            "OPENAI_BASE_URL"
        );
    }
}
