//! The console's session: the token a login gives, kept in a cookie that
//! the page's scripts cannot read (`HttpOnly`), that the browser sends only
//! with the console's own requests (`SameSite=Strict`) and, over HTTPS, only
//! over HTTPS (`Secure`); and the CSRF token every form and script request
//! carries, derived from it.

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session's cookie: the API token of the user who logged in.
pub const SESSION: &str = "confab_session";
/// Before a login: a random value the login form's CSRF token is derived
/// from (double submit).
pub const LOGIN: &str = "confab_login";
/// Where a form carries its CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
/// Where a script request (htmx) carries it.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name`, if the request has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` for the console's paths; `max_age` 0 removes it.
pub fn set_cookie(name: &str, value: &str, max_age_s: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    // The value is a token or hex: nothing in it needs quoting.
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("confab_invalid=; Path=/console; Max-Age=0"))
}

/// The CSRF token of a session (or of a login form's cookie): only a page
/// that could read the session can know it.
pub fn csrf_of(secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"confab console csrf\0")
        .chain_update(secret.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// Whether `given` is the CSRF token of `secret`, compared in constant time.
pub fn csrf_ok(secret: &str, given: &str) -> bool {
    let want = csrf_of(secret);
    want.len() == given.len() && bool::from(want.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; confab_session=tok; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("confab_login=xyz"));
        assert_eq!(cookie(&h, SESSION).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, LOGIN).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "confab"), None);
    }

    #[test]
    fn a_csrf_token_belongs_to_its_session() {
        let t = csrf_of("session-a");
        assert!(csrf_ok("session-a", &t));
        assert!(!csrf_ok("session-b", &t));
        assert!(!csrf_ok("session-a", ""));
        assert!(!csrf_ok("session-a", &t[..10]));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let c = set_cookie(SESSION, "tok", 60, true);
        let c = c.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/console",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(
            !set_cookie(SESSION, "tok", 60, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
