//! Who the bot answers: the allow-list (kept in the database, so a change
//! applies at once on every replica) and the per-contact rate limit
//! (counted in the database, so it holds across replicas).

use std::collections::HashSet;

use confab_model::PhoneNumber;
use confab_store::RateWindow;

use crate::config::RateLimit;

/// The settings key of the allow-list: a JSON list of E.164 numbers, or
/// `null` for none.
pub const ALLOW_LIST_KEY: &str = "access.allow_list";

pub const REFUSAL_TEXT: &str = "Sorry, this service is only available to registered numbers. Please contact the team that runs it if you think you should have access.";
pub const RATE_LIMIT_TEXT: &str = "You're sending messages faster than I can answer them. Please wait a moment before you send the next one.";

/// The numbers of a stored allow-list; none when it is off.
pub fn parse_allow_list(raw: &str) -> Option<HashSet<String>> {
    match serde_json::from_str::<Option<Vec<String>>>(raw) {
        Ok(list) => list.map(|l| l.into_iter().collect()),
        Err(e) => {
            // Only this server writes it; if it cannot be read, serve no one
            // rather than everyone.
            tracing::error!(error = %e, "the stored allow-list cannot be read; answering no one");
            Some(HashSet::new())
        }
    }
}

/// The stored form of an allow-list.
pub fn allow_list_text(numbers: Option<&[PhoneNumber]>) -> String {
    let list: Option<Vec<&str>> = numbers.map(|n| n.iter().map(PhoneNumber::as_str).collect());
    serde_json::to_string(&list).unwrap_or_else(|_| "null".into())
}

/// What to do with a message under the rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Over the limit: store it, and tell the contact (once per window).
    Tell,
    /// Over the limit and already told.
    Quiet,
}

/// Counts one message in the contact's window (a new one when the last has
/// run out).
pub fn count(window: Option<RateWindow>, limit: RateLimit, now_ms: i64) -> (RateWindow, Verdict) {
    let length = limit.window.as_millis() as i64;
    let mut w = match window {
        Some(w) if now_ms < w.start_ms.saturating_add(length) => w,
        _ => RateWindow {
            start_ms: now_ms,
            count: 0,
            told: false,
        },
    };
    w.count += 1;
    if w.count <= limit.messages {
        return (w, Verdict::Pass);
    }
    if w.told {
        return (w, Verdict::Quiet);
    }
    w.told = true;
    (w, Verdict::Tell)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_limit_lets_n_through_tells_once_and_resets_with_the_window() {
        let limit = RateLimit {
            messages: 2,
            window: Duration::from_secs(60),
        };
        let (w, v) = count(None, limit, 1_000);
        assert_eq!(v, Verdict::Pass);
        let (w, v) = count(Some(w), limit, 2_000);
        assert_eq!(v, Verdict::Pass);
        let (w, v) = count(Some(w), limit, 3_000);
        assert_eq!(v, Verdict::Tell);
        let (w, v) = count(Some(w), limit, 4_000);
        assert_eq!((v, w.count), (Verdict::Quiet, 4));
        let (w, v) = count(Some(w), limit, 61_000);
        assert_eq!(
            (v, w.count, w.start_ms, w.told),
            (Verdict::Pass, 1, 61_000, false)
        );
    }

    #[test]
    fn allow_lists_round_trip_and_a_broken_one_serves_no_one() {
        let n = [PhoneNumber::parse("+14155552671").unwrap()];
        assert_eq!(
            parse_allow_list(&allow_list_text(Some(&n))),
            Some(HashSet::from(["+14155552671".to_string()]))
        );
        assert_eq!(parse_allow_list(&allow_list_text(None)), None);
        assert_eq!(parse_allow_list("{"), Some(HashSet::new()));
    }
}

/// A bot's access policy as its record keeps it (`bots.policy`):
/// `{"allow_list": ["+27…"] | null, "rate_limit": {"messages", "window_seconds"} | null}`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredPolicy {
    /// The default bot's is kept apart (`ALLOW_LIST_KEY`), read within
    /// each batch's transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_list: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<StoredRateLimit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredRateLimit {
    pub messages: i64,
    pub window_seconds: u64,
}

impl StoredRateLimit {
    pub fn limit(self) -> RateLimit {
        RateLimit {
            messages: self.messages,
            window: std::time::Duration::from_secs(self.window_seconds),
        }
    }
}

impl From<RateLimit> for StoredRateLimit {
    fn from(l: RateLimit) -> StoredRateLimit {
        StoredRateLimit {
            messages: l.messages,
            window_seconds: l.window.as_secs(),
        }
    }
}

/// A bot's policy, ready for the inbound path.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Only these numbers are answered; none: everyone is.
    pub allow_list: Option<std::sync::Arc<HashSet<String>>>,
    pub rate_limit: Option<RateLimit>,
}

impl StoredPolicy {
    /// The policy a bot's record holds; one that cannot be read serves no
    /// one (only this server writes it).
    pub fn of(value: &serde_json::Value) -> StoredPolicy {
        serde_json::from_value(value.clone()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "a bot's access policy cannot be read; answering no one");
            StoredPolicy {
                allow_list: Some(Vec::new()),
                rate_limit: None,
            }
        })
    }

    pub fn policy(&self) -> Policy {
        Policy {
            allow_list: self
                .allow_list
                .as_ref()
                .map(|l| std::sync::Arc::new(l.iter().cloned().collect())),
            rate_limit: self.rate_limit.map(StoredRateLimit::limit),
        }
    }
}
