//! Reconnect delays: exponential with "equal jitter" (half fixed, half random), so that a region's
//! agents cut off together do not reconnect together, and no delay is ever near zero.

use std::time::Duration;

use rand::RngExt;

/// Exponential backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 1 s doubling to 5 min: a restarting collector is found again within seconds, an outage of
    /// hours costs one attempt per few minutes per agent.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl Backoff {
    /// Starts at `base`, never exceeds `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max: max.max(base), attempt: 0 }
    }

    /// The delay before the next attempt, drawn from `[cap/2, cap]` where `cap` doubles per
    /// attempt up to `max`.
    pub fn next_delay(&mut self, rng: &mut impl rand::Rng) -> Duration {
        let cap = self.base.saturating_mul(1u32 << self.attempt.min(20)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = cap / 2;
        half + rng.random_range(Duration::ZERO..=cap - half)
    }

    /// Back to the base delay, after a session that worked.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grows_within_bounds_and_resets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut caps = Vec::new();
        for _ in 0..10 {
            let d = b.next_delay(&mut rng);
            caps.push(d);
        }
        assert!(caps[0] >= Duration::from_millis(500) && caps[0] <= Duration::from_secs(1));
        assert!(caps[3] >= Duration::from_secs(4) && caps[3] <= Duration::from_secs(8));
        assert!(caps.iter().all(|d| *d <= Duration::from_secs(60)));
        assert!(caps[9] >= Duration::from_secs(30));
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_secs(1));
    }

    #[test]
    fn delays_are_spread() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(8), Duration::from_secs(8)).next_delay(&mut rng))
            .collect();
        assert!(delays.len() > 15);
    }
}
