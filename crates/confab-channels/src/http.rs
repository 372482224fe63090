//! The HTTP client both providers share, and how transport failures and
//! provider answers map onto [`SendError`].

use crate::SendError;

pub use confab_http::{USER_AGENT, http_client, retry_after};

/// A request that never got an answer: the provider may be fine a moment later.
pub(crate) fn transport_error(provider: &str, err: reqwest::Error) -> SendError {
    SendError::Retryable {
        message: format!("{provider}: {}", confab_http::describe_failure(err)),
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

    #[test]
    fn snippet_is_bounded() {
        assert_eq!(snippet(b"  short \n"), "short");
        let long = "x".repeat(500);
        assert_eq!(snippet(long.as_bytes()).chars().count(), SNIPPET_CHARS + 1);
    }
}
