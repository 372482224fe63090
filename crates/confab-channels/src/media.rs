//! Downloading the files contacts send. Both providers go through one
//! routine that bounds the size, checks the type before reading the body, and
//! follows redirects itself so that on every hop it decides whether the
//! provider's credentials may go along.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};

/// What the caller is willing to take.
#[derive(Clone, Debug)]
pub struct MediaLimits {
    pub max_bytes: u64,
    /// Content types accepted, as prefixes ("image/", "audio/", "application/pdf"); empty = any.
    pub accept: Vec<String>,
}

impl MediaLimits {
    /// Whether `content_type` (already normalised) is one the caller takes.
    pub fn accepts(&self, content_type: &str) -> bool {
        self.accept.is_empty()
            || self.accept.iter().any(|prefix| {
                let prefix = prefix.trim();
                !prefix.is_empty()
                    && content_type
                        .get(..prefix.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
            })
    }

    fn check_type(&self, content_type: &str) -> Result<(), MediaError> {
        if self.accepts(content_type) {
            Ok(())
        } else {
            Err(MediaError::WrongType(content_type.to_string()))
        }
    }

    fn check_size(&self, size: u64) -> Result<(), MediaError> {
        if size > self.max_bytes {
            Err(MediaError::TooLarge {
                limit: self.max_bytes,
            })
        } else {
            Ok(())
        }
    }
}

/// A downloaded file.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// Lowercased, parameters (";codecs=opus") stripped.
    pub content_type: String,
    pub size: u64,
    /// Lowercase hex of the bytes.
    pub sha256: String,
}

/// Why a file could not be downloaded. No variant carries a URL or a
/// credential: the texts are safe to store and show.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MediaError {
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("files of type {0} are not accepted")]
    WrongType(String),
    #[error("the provider has no such media")]
    NotFound,
    /// An HTTP status the provider answered with, e.g. 401, 403 or 500.
    #[error("the provider refused the media request ({0})")]
    Status(u16),
    #[error("the media could not be fetched: {0}")]
    Network(String),
    #[error("the media answer could not be read: {0}")]
    Malformed(String),
}

impl MediaError {
    /// Whether trying again later may succeed: transport failures, rate
    /// limits and server errors. Anything else will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            MediaError::Network(_) => true,
            MediaError::Status(s) => *s == 429 || (500..=599).contains(s),
            _ => false,
        }
    }
}

/// Twilio answers a media URL with one redirect to its storage; a few more
/// leave room for a CDN's own, and a loop ends quickly.
const MAX_REDIRECTS: usize = 5;

/// Files are larger than API answers and may come over a slow link, so
/// downloads get more time than provider calls; a stalled one is still
/// caught by the read timeout.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The client downloads go through. It never follows redirects by itself:
/// [`download`] does, so that credentials only reach the origin they are for.
pub fn client() -> reqwest::Client {
    confab_http::build(
        confab_http::client_builder(DOWNLOAD_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .read_timeout(READ_TIMEOUT),
    )
}

/// How a provider authenticates a download.
pub(crate) enum Auth<'a> {
    Basic { user: &'a str, password: &'a str },
    Bearer(&'a str),
}

/// Credentials and the one origin (scheme, host, port) they may be sent to.
pub(crate) struct Credentials<'a> {
    pub auth: Auth<'a>,
    pub origin: Url,
}

/// An http(s) URL we are willing to request.
pub(crate) fn parse_url(raw: &str) -> Result<Url, MediaError> {
    let url = Url::parse(raw.trim())
        .map_err(|_| MediaError::Malformed("the media URL is not a valid URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(MediaError::Malformed(
            "the media URL is not an http(s) URL".into(),
        ));
    }
    // reqwest would turn userinfo into its own Authorization header, next to
    // or instead of the provider's; media URLs never carry any.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(MediaError::Malformed(
            "the media URL carries a user name or password".into(),
        ));
    }
    Ok(url)
}

/// Fetches `url` within `limits`.
///
/// `credentials` go along only while every hop so far has stayed on their
/// origin: once a redirect leads elsewhere they are not sent again, even if
/// a later redirect comes back, so a third party cannot bounce us into making
/// authenticated requests. `declared_type` is the type the provider already
/// stated for the file; it stands in when the download's own `Content-Type`
/// is missing or says no more than "bytes".
pub(crate) async fn download(
    http: &reqwest::Client,
    url: &str,
    credentials: Option<&Credentials<'_>>,
    declared_type: Option<&str>,
    limits: &MediaLimits,
) -> Result<Fetched, MediaError> {
    let mut url = parse_url(url)?;
    let mut trusted = true;
    let mut redirects = 0;
    let response = loop {
        let mut request = http.get(url.clone());
        if let Some(c) = credentials {
            trusted &= url.origin() == c.origin.origin();
            if trusted {
                request = match c.auth {
                    Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
                    Auth::Bearer(token) => request.bearer_auth(token),
                };
            }
        }
        let response = request.send().await.map_err(network)?;
        let status = response.status();
        if !is_redirect(status) {
            break response;
        }
        if redirects == MAX_REDIRECTS {
            return Err(MediaError::Malformed(format!(
                "more than {MAX_REDIRECTS} redirects"
            )));
        }
        redirects += 1;
        url = next_hop(&url, response.headers())?;
        tracing::debug!(
            host = url.host_str(),
            status = status.as_u16(),
            "media redirect"
        );
    };
    read(response, declared_type, limits).await
}

/// The statuses that say "the file is over there". 300 (a choice) and 304
/// (a cache answer to a request we never make conditional) are not followed.
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn next_hop(current: &Url, headers: &HeaderMap) -> Result<Url, MediaError> {
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| MediaError::Malformed("a redirect without a Location".into()))?;
    // A relative Location is resolved against the URL that sent it.
    let next = current
        .join(location.trim())
        .map_err(|_| MediaError::Malformed("a redirect to an invalid URL".into()))?;
    parse_url(next.as_str())
}

async fn read(
    mut response: reqwest::Response,
    declared_type: Option<&str>,
    limits: &MediaLimits,
) -> Result<Fetched, MediaError> {
    let status = response.status();
    if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
        return Err(MediaError::NotFound);
    }
    if !status.is_success() {
        return Err(MediaError::Status(status.as_u16()));
    }
    // Both checks come before the body: a file we will refuse is not worth
    // receiving.
    if let Some(length) = response.content_length() {
        limits.check_size(length)?;
    }
    let content_type = effective_type(response.headers(), declared_type);
    limits.check_type(&content_type)?;

    // Content-Length may be absent or wrong, so the bytes themselves are
    // counted and the download stops as soon as they pass the limit.
    let capacity = response
        .content_length()
        .unwrap_or(0)
        .min(limits.max_bytes)
        .try_into()
        .unwrap_or(0);
    let mut bytes: Vec<u8> = Vec::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await.map_err(network)? {
        limits.check_size(bytes.len() as u64 + chunk.len() as u64)?;
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        // Neither provider stores empty files; an empty answer is a fault on
        // their side, not a file to keep.
        return Err(MediaError::Malformed(
            "the provider sent an empty file".into(),
        ));
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(Fetched {
        size: bytes.len() as u64,
        bytes,
        content_type,
        sha256,
    })
}

/// A content type without parameters, lowercased; `None` when blank.
pub(crate) fn normalize_type(raw: &str) -> Option<String> {
    let essence = raw.split(';').next().unwrap_or("").trim();
    (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
}

/// Types that say only "some bytes"; storage services use them for
/// files uploaded without a type.
fn is_generic(content_type: &str) -> bool {
    matches!(
        content_type,
        "application/octet-stream" | "binary/octet-stream"
    )
}

fn effective_type(headers: &HeaderMap, declared: Option<&str>) -> String {
    let header = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(normalize_type);
    let declared = declared.and_then(normalize_type);
    match (header, declared) {
        (Some(h), Some(d)) if is_generic(&h) => d,
        (Some(h), _) => h,
        (None, Some(d)) => d,
        (None, None) => "application/octet-stream".to_string(),
    }
}

/// A request that got no (complete) answer. The URL is left out: a storage
/// URL is itself a short-lived credential.
pub(crate) fn network(err: reqwest::Error) -> MediaError {
    MediaError::Network(confab_http::describe_failure(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn limits(accept: &[&str]) -> MediaLimits {
        MediaLimits {
            max_bytes: 10,
            accept: accept.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn accept_prefixes() {
        assert!(limits(&[]).accepts("video/mp4"));
        let l = limits(&["image/", "audio/", "Application/PDF"]);
        assert!(l.accepts("image/jpeg"));
        assert!(l.accepts("audio/ogg"));
        assert!(l.accepts("application/pdf"));
        assert!(!l.accepts("video/mp4"));
        assert!(!l.accepts("image"));
        assert!(!l.accepts("application/json"));
        // A blank entry accepts nothing rather than everything.
        assert!(!limits(&[" "]).accepts("image/png"));
        assert_eq!(
            l.check_type("video/mp4"),
            Err(MediaError::WrongType("video/mp4".into()))
        );
    }

    #[test]
    fn size_limit_is_inclusive() {
        let l = limits(&[]);
        assert_eq!(l.check_size(10), Ok(()));
        assert_eq!(l.check_size(11), Err(MediaError::TooLarge { limit: 10 }));
    }

    #[test]
    fn content_types_are_normalised() {
        assert_eq!(
            normalize_type("Audio/OGG; codecs=opus").as_deref(),
            Some("audio/ogg")
        );
        assert_eq!(normalize_type(" ; x=y"), None);
        let mut h = HeaderMap::new();
        assert_eq!(effective_type(&h, None), "application/octet-stream");
        assert_eq!(effective_type(&h, Some("image/jpeg")), "image/jpeg");
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("binary/octet-stream"),
        );
        assert_eq!(effective_type(&h, Some("image/JPEG")), "image/jpeg");
        assert_eq!(effective_type(&h, None), "binary/octet-stream");
        h.insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
        assert_eq!(effective_type(&h, Some("image/jpeg")), "image/png");
    }

    #[test]
    fn retryable_errors() {
        assert!(MediaError::Network("x".into()).is_retryable());
        for s in [429, 500, 502, 503, 599] {
            assert!(MediaError::Status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 409] {
            assert!(!MediaError::Status(s).is_retryable(), "{s}");
        }
        assert!(!MediaError::NotFound.is_retryable());
        assert!(!MediaError::TooLarge { limit: 1 }.is_retryable());
        assert!(!MediaError::WrongType("a/b".into()).is_retryable());
        assert!(!MediaError::Malformed("x".into()).is_retryable());
    }

    #[test]
    fn only_http_urls_without_userinfo() {
        assert!(parse_url("https://api.twilio.com/2010-04-01/x").is_ok());
        assert!(parse_url(" http://127.0.0.1:8080/x ").is_ok());
        for bad in [
            "",
            "api.twilio.com/x",
            "ftp://h.test/x",
            "file:///etc/passwd",
            "https://user:pw@h.test/x",
            "https://user@h.test/x",
        ] {
            assert!(
                matches!(parse_url(bad), Err(MediaError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn redirect_targets() {
        let here = Url::parse("https://api.twilio.com/a/b").unwrap();
        let mut h = HeaderMap::new();
        assert!(matches!(next_hop(&here, &h), Err(MediaError::Malformed(_))));
        h.insert(LOCATION, HeaderValue::from_static("/c?d=1"));
        assert_eq!(
            next_hop(&here, &h).unwrap().as_str(),
            "https://api.twilio.com/c?d=1"
        );
        h.insert(LOCATION, HeaderValue::from_static("https://cdn.test/f"));
        assert_eq!(next_hop(&here, &h).unwrap().as_str(), "https://cdn.test/f");
        h.insert(LOCATION, HeaderValue::from_static("javascript:alert(1)"));
        assert!(matches!(next_hop(&here, &h), Err(MediaError::Malformed(_))));
        for s in [301, 302, 303, 307, 308] {
            assert!(is_redirect(StatusCode::from_u16(s).unwrap()));
        }
        for s in [200, 300, 304, 404] {
            assert!(!is_redirect(StatusCode::from_u16(s).unwrap()));
        }
    }

    #[test]
    fn origins_include_scheme_and_port() {
        let api = Url::parse("https://api.twilio.com").unwrap();
        let same = |u: &str| Url::parse(u).unwrap().origin() == api.origin();
        assert!(same("https://api.twilio.com/2010-04-01/x"));
        assert!(same("https://API.twilio.com:443/x"));
        assert!(!same("http://api.twilio.com/x"));
        assert!(!same("https://api.twilio.com:8443/x"));
        assert!(!same("https://api.twilio.com.evil.test/x"));
        assert!(!same("https://media.twiliocdn.com/x"));
    }
}
