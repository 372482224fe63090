//! What every outbound adapter (the WhatsApp providers, the AI provider)
//! shares about HTTP: one way to build the client, to read `Retry-After`,
//! and to describe a request that got no answer.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// `confab/<version>`: the `name/1.2.3` form Meta's API expects of a client.
pub const USER_AGENT: &str = concat!("confab/", env!("CARGO_PKG_VERSION"));

/// Connecting should never take long; a slow provider is caught by the
/// overall timeout instead.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How every provider client starts: our User-Agent, an overall
/// per-request timeout, a short connect timeout, and no proxy discovery
/// (providers are reached directly). Callers add what is theirs.
pub fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .no_proxy()
}

/// Builds a client from [`client_builder`].
pub fn build(builder: reqwest::ClientBuilder) -> reqwest::Client {
    builder
        .build()
        // Building only fails when the TLS backend cannot initialise, a broken
        // installation that no caller could recover from.
        .expect("the HTTP client's TLS backend failed to initialise")
}

/// A client for provider APIs, as [`client_builder`] makes it.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    build(client_builder(timeout))
}

/// `Retry-After` in seconds, the form Twilio, Meta and OpenAI-compatible
/// servers send. An HTTP date is not worth supporting: none of them uses it.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
}

/// A request that got no (complete) answer, in words: what went wrong and
/// its causes. The URL is left out: the caller knows the provider, and a
/// URL (a media download's) may itself be a credential.
pub fn describe_failure(err: reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() {
        "the connection broke off"
    } else {
        "request failed"
    };
    let mut message = what.to_string();
    let err = err.without_url();
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

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

    #[tokio::test]
    async fn failures_are_described_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = http_client(Duration::from_secs(2))
            .get(format!("http://{addr}/secret-token-path"))
            .send()
            .await
            .unwrap_err();
        let text = describe_failure(err);
        assert!(text.starts_with("could not connect"), "{text}");
        assert!(!text.contains("secret-token-path"), "{text}");
    }
}
