//! Slows password guessing without locking the real user out.
//!
//! Failed logins are counted by client (its address, an IPv6 client by its
//! /64) and by account. A client that keeps failing waits longer after each
//! failure, whichever accounts it tries. An account's count slows only the
//! clients that have already failed on it, so an attacker spread over many
//! addresses gets one guess from each before the account's back-off applies
//! to it, while the account's owner, from an address that has not failed or
//! that has logged in as them before, still gets in with the right password.
//! Failures are forgotten half an hour after the last one; every map is
//! bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures a client may make before it must wait.
pub const CLIENT_FREE: u32 = 5;
/// Failures on an account before the clients that failed on it must wait.
pub const ACCOUNT_FREE: u32 = 10;
/// The longest wait.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// How long a failure is remembered after the last one.
const FORGET: Duration = Duration::from_secs(2 * 15 * 60);
/// Entries each map may hold; past it, forgotten ones go, then the oldest.
const MAX_ENTRIES: usize = 50_000;

/// Who is logging in, as far as the login limits care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// An IPv6 client is its /64: one host usually has the whole prefix.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(bits.into()))
                }
            },
        }
    }
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long from now until another attempt is allowed, if any, when
    /// `free` failures cost nothing and each one after doubles the wait.
    fn wait(&self, free: u32, now: Instant) -> Option<Duration> {
        if self.count < free {
            return None;
        }
        let doublings = (self.count - free).min(20);
        let wait = Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
        (self.last + wait)
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }
}

#[derive(Default)]
struct Inner {
    clients: HashMap<ClientKey, Failures>,
    accounts: HashMap<String, Failures>,
    /// Clients that failed on an account (those the account's count slows).
    failed_on: HashMap<(ClientKey, String), Instant>,
    /// Clients that logged in as an account (never slowed by its count).
    known: HashMap<(ClientKey, String), Instant>,
}

#[derive(Default)]
pub struct LoginGuard {
    inner: Mutex<Inner>,
}

/// Keeps `map` under `MAX_ENTRIES`: first what is forgotten anyway, then the
/// entries touched longest ago.
fn bound<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    last: impl Fn(&V) -> Instant,
    now: Instant,
) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, v| now.duration_since(last(v)) < FORGET);
    if map.len() >= MAX_ENTRIES {
        let mut ages: Vec<Instant> = map.values().map(&last).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 4];
        map.retain(|_, v| last(v) > cut);
    }
}

impl LoginGuard {
    /// Counts an attempt by `client` on `account` as a failure until it
    /// proves otherwise ([`LoginGuard::succeeded`]), so that guesses sent
    /// all at once are limited like guesses sent one after another; or says
    /// how long the client must wait first.
    pub fn attempt(&self, client: ClientKey, account: &str) -> Result<(), Duration> {
        self.attempt_at(client, account, Instant::now())
    }

    fn attempt_at(&self, client: ClientKey, account: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut inner) = self.inner.lock() else {
            return Ok(());
        };
        if let Some(wait) = inner.wait(client, account, now) {
            return Err(wait);
        }
        inner.failed(client, account, now);
        Ok(())
    }

    /// The password could not be checked (the hashing threads were busy, the
    /// database did not answer): the attempt is not held against anyone.
    pub fn abandoned(&self, client: ClientKey, account: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(f) = inner.clients.get_mut(&client) {
            f.count = f.count.saturating_sub(1);
        }
        if let Some(f) = inner.accounts.get_mut(account) {
            f.count = f.count.saturating_sub(1);
        }
    }

    /// The right password: the attempt was not a failure, the client's
    /// failures are forgiven, and it is known to this account from now on.
    pub fn succeeded(&self, client: ClientKey, account: &str) {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clients.remove(&client);
        if let Some(f) = inner.accounts.get_mut(account) {
            f.count = f.count.saturating_sub(1);
        }
        let pair = (client, account.to_string());
        inner.failed_on.remove(&pair);
        bound(&mut inner.known, |t| *t, now);
        inner.known.insert(pair, now);
    }
}

impl Inner {
    fn wait(&self, client: ClientKey, account: &str, now: Instant) -> Option<Duration> {
        let by_client = self
            .clients
            .get(&client)
            .and_then(|f| f.wait(CLIENT_FREE, now));
        let pair = (client, account.to_string());
        let by_account = if self.failed_on.contains_key(&pair) && !self.known.contains_key(&pair) {
            self.accounts
                .get(account)
                .and_then(|f| f.wait(ACCOUNT_FREE, now))
        } else {
            None
        };
        by_client.max(by_account)
    }

    fn failed(&mut self, client: ClientKey, account: &str, now: Instant) {
        let count = |entry: Option<&Failures>| match entry {
            Some(f) if now.duration_since(f.last) < FORGET => f.count + 1,
            _ => 1,
        };
        bound(&mut self.clients, |f| f.last, now);
        let n = count(self.clients.get(&client));
        self.clients.insert(
            client,
            Failures {
                count: n,
                last: now,
            },
        );
        bound(&mut self.accounts, |f| f.last, now);
        let n = count(self.accounts.get(account));
        self.accounts.insert(
            account.to_string(),
            Failures {
                count: n,
                last: now,
            },
        );
        bound(&mut self.failed_on, |t| *t, now);
        self.failed_on.insert((client, account.to_string()), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    #[test]
    fn a_failing_client_waits_longer_after_each_failure() {
        let g = LoginGuard::default();
        let t0 = Instant::now();
        let c = ip("203.0.113.9");
        for i in 0..CLIENT_FREE {
            assert_eq!(g.attempt_at(c, "ana", t0), Ok(()), "failure {i} is free");
        }
        assert_eq!(g.attempt_at(c, "ana", t0), Err(Duration::from_secs(1)));
        // Other accounts from the same client wait too.
        assert_eq!(g.attempt_at(c, "bob", t0), Err(Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(g.attempt_at(c, "ana", t1), Ok(()));
        assert_eq!(g.attempt_at(c, "ana", t1), Err(Duration::from_secs(2)));
        // Each wait served, the next failure doubles it, up to the cap.
        let mut t = t1;
        for _ in 0..20 {
            if let Err(wait) = g.attempt_at(c, "ana", t) {
                t += wait;
                assert_eq!(g.attempt_at(c, "ana", t), Ok(()));
            }
        }
        assert_eq!(g.attempt_at(c, "ana", t), Err(MAX_WAIT), "capped");
    }

    #[test]
    fn the_owner_gets_in_while_the_account_is_attacked() {
        let g = LoginGuard::default();
        let now = Instant::now();
        // Twenty addresses, two guesses each.
        for i in 0..20 {
            let c = ip(&format!("198.51.100.{i}"));
            assert_eq!(g.attempt_at(c, "ana", now), Ok(()), "first guess from {i}");
            if i >= ACCOUNT_FREE as usize {
                assert!(
                    g.attempt_at(c, "ana", now).is_err(),
                    "a second guess from {i} waits for the account"
                );
            }
        }
        // A client that has not failed is not slowed by the account's count,
        let owner = ip("192.0.2.1");
        assert_eq!(g.attempt_at(owner, "ana", now), Ok(()));
        g.succeeded(owner, "ana");
        // nor, once it has logged in as ana, by a typo of its own.
        assert_eq!(g.attempt_at(owner, "ana", now), Ok(()));
        assert_eq!(g.attempt_at(owner, "ana", now), Ok(()));
        // Another account is not affected by ana's count.
        assert_eq!(g.attempt_at(ip("198.51.100.15"), "bob", now), Ok(()));
    }

    #[test]
    fn success_forgives_the_client() {
        let g = LoginGuard::default();
        let now = Instant::now();
        let c = ip("2001:db8:1:2:3:4:5:6");
        for _ in 0..CLIENT_FREE {
            g.attempt_at(c, "ana", now).unwrap();
        }
        // The same /64 is the same client.
        assert!(g.attempt_at(ip("2001:db8:1:2::99"), "ana", now).is_err());
        assert!(g.attempt_at(ip("2001:db8:1:3::1"), "ana", now).is_ok());
        g.succeeded(c, "ana");
        assert_eq!(g.attempt_at(c, "ana", now), Ok(()));
    }

    #[test]
    fn the_maps_stay_bounded() {
        let g = LoginGuard::default();
        let now = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 5_000) {
            let c = ClientKey::of(IpAddr::V4(i.into()));
            g.attempt_at(
                c,
                &format!("user{i}"),
                now + Duration::from_millis(i as u64),
            )
            .unwrap();
        }
        let inner = g.inner.lock().unwrap();
        assert!(inner.clients.len() <= MAX_ENTRIES);
        assert!(inner.accounts.len() <= MAX_ENTRIES);
        assert!(inner.failed_on.len() <= MAX_ENTRIES);
    }
}
