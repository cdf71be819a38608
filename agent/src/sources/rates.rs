//! Rates from monotonically increasing byte counters, with reset handling.
//!
//! A counter that goes down was reset (interface re-created, driver reloaded, 32-bit counter
//! wrapped on an old kernel). The reading is then taken as the bytes counted since the reset —
//! an underestimate at worst, never a negative or absurd rate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Remembers the previous reading of each named counter pair.
#[derive(Debug, Default)]
pub struct RateTracker {
    prev: HashMap<String, Reading>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    rx: u64,
    tx: u64,
    at: Instant,
}

impl RateTracker {
    /// Records a reading and returns the receive and transmit rates in bytes per second since
    /// the previous reading of `name`; `None` for the first reading.
    pub fn update(&mut self, name: &str, rx: u64, tx: u64, now: Instant) -> (Option<u64>, Option<u64>) {
        let current = Reading { rx, tx, at: now };
        match self.prev.insert(name.to_owned(), current) {
            Some(prev) => {
                let dt = now.saturating_duration_since(prev.at);
                (rate(prev.rx, rx, dt), rate(prev.tx, tx, dt))
            }
            None => (None, None),
        }
    }

    /// Forgets counters whose names are not in `alive` (removed interfaces).
    pub fn retain(&mut self, alive: &dyn Fn(&str) -> bool) {
        self.prev.retain(|name, _| alive(name));
    }
}

/// Bytes per second between two readings of a counter taken `dt` apart.
pub fn rate(prev: u64, current: u64, dt: Duration) -> Option<u64> {
    // Readings closer than 1 ms say nothing reliable about a rate.
    if dt < Duration::from_millis(1) {
        return None;
    }
    let delta = if current >= prev { current - prev } else { current };
    // f64 keeps 53 bits of precision — far above any real byte rate; the cast saturates.
    Some((delta as f64 / dt.as_secs_f64()).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_counter() {
        assert_eq!(rate(1_000, 61_000, Duration::from_secs(60)), Some(1_000));
    }

    #[test]
    fn reset_counts_from_zero_never_negative() {
        assert_eq!(rate(5_000_000, 2_000, Duration::from_secs(2)), Some(1_000));
        assert_eq!(rate(u64::MAX, 0, Duration::from_secs(1)), Some(0));
    }

    #[test]
    fn zero_interval_has_no_rate() {
        assert_eq!(rate(0, 10, Duration::ZERO), None);
    }

    #[test]
    fn tracker_first_reading_then_rates_then_forget() {
        let t0 = Instant::now();
        let mut t = RateTracker::default();
        assert_eq!(t.update("eth0", 100, 50, t0), (None, None));
        assert_eq!(t.update("eth0", 300, 50, t0 + Duration::from_secs(2)), (Some(100), Some(0)));
        t.retain(&|n| n != "eth0");
        assert_eq!(t.update("eth0", 400, 60, t0 + Duration::from_secs(3)), (None, None));
    }
}
