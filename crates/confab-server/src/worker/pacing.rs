use std::time::{Duration, Instant};

/// Paces sends from one sender number: `rate` per second on average, with
/// bursts of up to one second's worth.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: rate.max(1.0),
            last: Instant::now(),
        }
    }

    /// Takes a token if one is there; otherwise says how long until one is.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_rate_per_second() {
        let start = Instant::now();
        let mut b = TokenBucket::new(10.0);
        let mut sent = 0;
        // Simulate 3 seconds in 1 ms steps.
        for ms in 0..3000 {
            let now = start + Duration::from_millis(ms);
            while b.try_take(now).is_ok() {
                sent += 1;
            }
        }
        // A burst of 10 at the start, then 10 per second.
        assert!((38..=41).contains(&sent), "{sent}");
    }

    #[test]
    fn empty_bucket_says_how_long_to_wait() {
        let now = Instant::now();
        let mut b = TokenBucket::new(2.0);
        assert!(b.try_take(now).is_ok());
        assert!(b.try_take(now).is_ok());
        let wait = b.try_take(now).unwrap_err();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }
}
