//! Who sent a request, and to which URL, as far as the proxy settings let us
//! believe. `X-Forwarded-*` headers are written by whoever sends them, so
//! they count only when the connection comes from a proxy named in
//! `TRUSTED_PROXIES`; by default none is trusted and a request is what its
//! connection says.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::app::AppState;

/// An address block: an address and how many leading bits must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("'{s}': the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { net, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 client reaching an IPv6 socket arrives as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `TRUSTED_PROXIES`: the proxies whose `X-Forwarded-*` headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// A comma-separated list of addresses and CIDR blocks
    /// (`10.0.0.0/8, 127.0.0.1, fd00::/8`).
    pub fn parse(s: &str) -> Result<TrustedProxies, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a request came from and how it was addressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The client: the connection's peer, or, behind trusted proxies, the
    /// nearest address in `X-Forwarded-For` that is not one of them.
    pub client: IpAddr,
    /// `http` or `https`: ours, or `X-Forwarded-Proto` from a trusted proxy.
    pub scheme: String,
    /// `X-Forwarded-Host` from a trusted proxy, else the `Host` header.
    pub host: Option<String>,
}

impl Origin {
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Origin {
        let peer = canonical(peer);
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let host = header("host").map(str::to_string);
        if !trusted.contains(peer) {
            return Origin {
                client: peer,
                scheme: "http".into(),
                host,
            };
        }
        // Each proxy appends the address it heard from: walk back from the
        // nearest until one is not a trusted proxy. An unreadable entry
        // stops the walk at the last address believed.
        let mut client = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = canonical(ip);
                    if !trusted.contains(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let first = |v: &str| v.split(',').next().unwrap_or(v).trim().to_string();
        let scheme = header("x-forwarded-proto")
            .map(first)
            .filter(|p| p == "http" || p == "https")
            .unwrap_or_else(|| "http".into());
        Origin {
            client,
            scheme,
            host: header("x-forwarded-host").map(first).or(host),
        }
    }
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Every connection the server accepts carries its peer; a request
        // without one (made in-process) is local.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        Ok(Origin::of(
            peer,
            &parts.headers,
            &state.settings.http.trusted_proxies,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn blocks_parse_and_match() {
        let t = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1 ,fd00::/8").unwrap();
        assert!(t.contains("10.200.3.4".parse().unwrap()));
        assert!(t.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(t.contains("127.0.0.1".parse().unwrap()));
        assert!(!t.contains("127.0.0.2".parse().unwrap()));
        assert!(t.contains("fd12::1".parse().unwrap()));
        assert!(!t.contains("fe80::1".parse().unwrap()));
        assert!(
            TrustedProxies::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x", "::/129"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let h = headers(&[
            ("host", "10.0.0.5:8000"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "bot.example.com"),
        ]);
        let none = TrustedProxies::default();
        let o = Origin::of("198.51.100.1".parse().unwrap(), &h, &none);
        assert_eq!(o.client.to_string(), "198.51.100.1");
        assert_eq!(
            (o.scheme.as_str(), o.host.as_deref()),
            ("http", Some("10.0.0.5:8000"))
        );

        let lb = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let o = Origin::of("10.0.0.9".parse().unwrap(), &h, &lb);
        assert_eq!(o.client.to_string(), "203.0.113.7");
        assert_eq!(
            (o.scheme.as_str(), o.host.as_deref()),
            ("https", Some("bot.example.com"))
        );
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop() {
        let lb = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client forged the first entry; our proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.3")]);
        let o = Origin::of("10.0.0.9".parse().unwrap(), &h, &lb);
        assert_eq!(o.client.to_string(), "203.0.113.7");
        let h = headers(&[("x-forwarded-for", "junk, 10.0.0.3")]);
        let o = Origin::of("10.0.0.9".parse().unwrap(), &h, &lb);
        assert_eq!(o.client.to_string(), "10.0.0.3");
    }
}
