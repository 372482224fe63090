//! Settings of the HTTP listener: how long a client may take, how many
//! connections it may hold, which proxies are believed, and how long a
//! shutdown may drain.

use std::time::Duration;

use super::{RawSettings, SettingError, bad, parse_num};
use crate::origin::TrustedProxies;

#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// From a request's first byte to the end of its headers.
    pub header_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request in progress is closed after
    /// this long; so is one whose client stops reading a response.
    pub idle_timeout: Duration,
    /// Connections served at once; `None`: as many as the process's file
    /// limit allows, with room kept for the database and the rest.
    pub max_connections: Option<usize>,
    /// How long a shutdown waits for requests in progress.
    pub shutdown_timeout: Duration,
    /// Proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: TrustedProxies,
}

fn seconds(
    var: &'static str,
    v: &Option<String>,
    default: u64,
    min: u64,
) -> Result<Duration, SettingError> {
    let s: u64 = parse_num(var, v, default, "a number of seconds")?;
    if s < min {
        return Err(bad(var, format!("must be at least {min}")));
    }
    Ok(Duration::from_secs(s))
}

pub(super) fn from_raw(r: &RawSettings) -> Result<HttpSettings, SettingError> {
    let max_connections = match &r.max_connections {
        None => None,
        Some(_) => {
            let n: usize = parse_num(
                "MAX_CONNECTIONS",
                &r.max_connections,
                0,
                "a number of connections",
            )?;
            if n < 16 {
                return Err(bad("MAX_CONNECTIONS", "must be at least 16"));
            }
            Some(n)
        }
    };
    Ok(HttpSettings {
        header_timeout: seconds(
            "HTTP_HEADER_TIMEOUT_SECONDS",
            &r.http_header_timeout_seconds,
            10,
            1,
        )?,
        body_timeout: seconds(
            "HTTP_BODY_TIMEOUT_SECONDS",
            &r.http_body_timeout_seconds,
            30,
            1,
        )?,
        idle_timeout: seconds(
            "HTTP_IDLE_TIMEOUT_SECONDS",
            &r.http_idle_timeout_seconds,
            60,
            1,
        )?,
        max_connections,
        shutdown_timeout: seconds(
            "SHUTDOWN_TIMEOUT_SECONDS",
            &r.shutdown_timeout_seconds,
            10,
            0,
        )?,
        trusted_proxies: match &r.trusted_proxies {
            None => TrustedProxies::default(),
            Some(s) => TrustedProxies::parse(s).map_err(|e| bad("TRUSTED_PROXIES", e))?,
        },
    })
}
