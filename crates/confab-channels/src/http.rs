//! The HTTP client both providers share, and how transport failures and
//! provider answers map onto [`SendError`].

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::SendError;

/// `confab/<version>`: the `name/1.2.3` form Meta's API expects of a client.
pub const USER_AGENT: &str = concat!("confab/", env!("CARGO_PKG_VERSION"));

/// Connecting should never take long; a slow provider is caught by the
/// overall timeout instead.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for provider APIs: our User-Agent, an overall per-request
/// timeout, and no proxy discovery (providers are reached directly).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .no_proxy()
        .build()
        // Building only fails when the TLS backend cannot initialise, a broken
        // installation that no caller could recover from.
        .expect("the HTTP client's TLS backend failed to initialise")
}

/// `Retry-After` in seconds, as both providers send it. An HTTP date is not
/// worth supporting: neither provider uses that form.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
}

/// A request that never got an answer: the provider may be fine a moment later.
/// The URL is left out of the message; the caller already knows the provider.
pub(crate) fn transport_error(provider: &str, err: reqwest::Error) -> SendError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut message = format!("{provider}: {what}");
    let err = err.without_url();
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    SendError::Retryable {
        message,
        retry_after: None,
    }
}

/// Whether an HTTP status means "try later" whatever the body says.
pub(crate) fn status_is_retryable(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// At most this much of an unexpected body goes into an error message.
const SNIPPET_CHARS: usize = 200;

pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut s: String = text.chars().take(SNIPPET_CHARS).collect();
    if text.chars().count() > SNIPPET_CHARS {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn user_agent_has_the_name_version_form() {
        let (name, version) = USER_AGENT.split_once('/').unwrap();
        assert_eq!(name, "confab");
        assert_eq!(version.split('.').count(), 3);
        assert!(version.split('.').all(|p| p.parse::<u32>().is_ok()));
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn snippet_is_bounded() {
        assert_eq!(snippet(b"  short \n"), "short");
        let long = "x".repeat(500);
        assert_eq!(snippet(long.as_bytes()).chars().count(), SNIPPET_CHARS + 1);
    }

    #[test]
    fn client_builds() {
        let _ = http_client(Duration::from_secs(5));
    }
}
