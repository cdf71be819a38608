//! Rates from SNMP octet counters (used by [`crate::snmp`]): 32- and 64-bit wraps,
//! resets on reboot (sysUpTime going back, allowing for its own 497-day wrap) and on counter
//! discontinuities (`ifCounterDiscontinuityTime` changing), and implausible jumps — never a
//! negative or absurd rate.

/// Width of a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// `Counter32` (`ifInOctets`): wraps after 4 GiB, minutes on a busy gigabit link.
    Bits32,
    /// `Counter64` (`ifHCInOctets`).
    Bits64,
}

impl Width {
    fn modulus(self) -> u128 {
        match self {
            Self::Bits32 => 1 << 32,
            Self::Bits64 => 1 << 64,
        }
    }
}

/// One reading of a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Counter value.
    pub value: u64,
    /// When it was read, ms since the epoch (the poller's clock).
    pub at_ms: i64,
    /// The device's sysUpTime, hundredths of a second (a 32-bit TimeTicks).
    pub uptime_cs: Option<u32>,
    /// `ifCounterDiscontinuityTime` (TimeTicks), when the device has it.
    pub discontinuity: Option<u32>,
}

/// What two readings say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Bytes per second (≥ 0).
    BytesPerSecond(f64),
    /// The counter restarted in between: no rate for this interval.
    Reset(ResetReason),
    /// The readings are not in time order.
    OutOfOrder,
}

/// Why a counter is considered restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// sysUpTime went back: the device rebooted.
    Reboot,
    /// `ifCounterDiscontinuityTime` changed.
    Discontinuity,
    /// The increase is more than the interface could carry in the time (a counter reset the
    /// device did not announce).
    Implausible,
}

/// Headroom over the interface speed before an increase counts as implausible.
const SPEED_SLACK: f64 = 1.10;
/// Without a known speed, the fastest link assumed: 400 Gbit/s.
const MAX_BYTES_PER_S: f64 = 400e9 / 8.0;
/// Tolerance, in hundredths of a second, when telling a sysUpTime wrap from a reboot.
const UPTIME_TOLERANCE_CS: i64 = 60 * 100;

/// The rate between two readings of a counter of `width`; `speed_bps` is the interface speed
/// (`ifHighSpeed` × 10⁶) when known.
pub fn rate(prev: &Reading, cur: &Reading, width: Width, speed_bps: Option<u64>) -> Rate {
    let dt_ms = cur.at_ms - prev.at_ms;
    if dt_ms <= 0 {
        return Rate::OutOfOrder;
    }
    if let (Some(a), Some(b)) = (prev.discontinuity, cur.discontinuity)
        && a != b
    {
        return Rate::Reset(ResetReason::Discontinuity);
    }
    if let (Some(a), Some(b)) = (prev.uptime_cs, cur.uptime_cs)
        && b < a
        && !is_uptime_wrap(a, b, dt_ms)
    {
        return Rate::Reset(ResetReason::Reboot);
    }
    let m = width.modulus();
    let (p, c) = (u128::from(prev.value) % m, u128::from(cur.value) % m);
    // One wrap at most between polls; more would be implausible anyway.
    let delta = if c >= p { c - p } else { m - p + c };
    let secs = dt_ms as f64 / 1000.0;
    let per_s = delta as f64 / secs;
    let limit = speed_bps.filter(|s| *s > 0).map_or(MAX_BYTES_PER_S, |s| s as f64 / 8.0 * SPEED_SLACK);
    // A few bytes of slack for very short intervals and rounding.
    if per_s > limit + 1024.0 / secs {
        return Rate::Reset(ResetReason::Implausible);
    }
    Rate::BytesPerSecond(per_s)
}

/// Whether the device rebooted between two readings of sysUpTime (`at_ms`, hundredths of a
/// second): it went back and the step is not its 497-day wrap.
pub fn rebooted(prev: (i64, u32), cur: (i64, u32)) -> bool {
    let dt_ms = cur.0 - prev.0;
    cur.1 < prev.1 && !is_uptime_wrap(prev.1, cur.1, dt_ms.max(0))
}

/// sysUpTime is a 32-bit TimeTicks that wraps after ~497 days: `b < a` is a wrap, not a
/// reboot, when `a` advanced by the elapsed time lands on `b` modulo 2³².
fn is_uptime_wrap(a: u32, b: u32, dt_ms: i64) -> bool {
    let expected = (i64::from(a) + dt_ms / 10).rem_euclid(1 << 32);
    (expected - i64::from(b)).abs() <= UPTIME_TOLERANCE_CS && i64::from(a) + dt_ms / 10 >= 1 << 32
}

/// Utilization in percent of `speed_bps` for a rate in bytes per second (`None` without a
/// speed); capped at 100.
pub fn utilization_percent(bytes_per_s: f64, speed_bps: Option<u64>) -> Option<f64> {
    let speed = speed_bps.filter(|s| *s > 0)? as f64;
    Some((bytes_per_s * 8.0 / speed * 100.0).min(100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(value: u64, at_s: i64, uptime_s: u32) -> Reading {
        Reading {
            value,
            at_ms: at_s * 1000,
            uptime_cs: Some(uptime_s.wrapping_mul(100)),
            discontinuity: None,
        }
    }

    const GIG: Option<u64> = Some(1_000_000_000);

    #[test]
    fn plain_increase() {
        assert_eq!(
            rate(&r(1_000, 0, 100), &r(11_000, 10, 110), Width::Bits64, GIG),
            Rate::BytesPerSecond(1000.0)
        );
    }

    #[test]
    fn counter32_wraps() {
        let prev = r(u64::from(u32::MAX) - 999, 0, 100);
        let cur = r(1_000, 10, 110);
        assert_eq!(rate(&prev, &cur, Width::Bits32, GIG), Rate::BytesPerSecond(200.0));
    }

    #[test]
    fn counter64_wraps_near_the_top() {
        let prev = r(u64::MAX - 4_999_999, 0, 100);
        let cur = r(5_000_000, 10, 110);
        assert_eq!(rate(&prev, &cur, Width::Bits64, GIG), Rate::BytesPerSecond(1_000_000.0));
    }

    #[test]
    fn reboot_is_a_reset_not_a_negative_rate() {
        let prev = r(9_000_000_000, 0, 5_000);
        let cur = r(1_000, 10, 4);
        assert_eq!(rate(&prev, &cur, Width::Bits64, GIG), Rate::Reset(ResetReason::Reboot));
    }

    #[test]
    fn sysuptime_wrap_is_not_a_reboot() {
        // 497 days: sysUpTime wraps from near 2^32 to a small value as time goes on.
        let a = u32::MAX - 500; // hundredths
        let prev = Reading { value: 0, at_ms: 0, uptime_cs: Some(a), discontinuity: None };
        let cur = Reading { value: 10_000, at_ms: 10_000, uptime_cs: Some(499), discontinuity: None };
        assert_eq!(rate(&prev, &cur, Width::Bits64, GIG), Rate::BytesPerSecond(1000.0));
    }

    #[test]
    fn discontinuity_and_implausible_jumps_reset() {
        let mut prev = r(0, 0, 100);
        let mut cur = r(1_000, 10, 110);
        prev.discontinuity = Some(5);
        cur.discontinuity = Some(900);
        assert_eq!(rate(&prev, &cur, Width::Bits64, GIG), Rate::Reset(ResetReason::Discontinuity));
        // A 64-bit counter that "wrapped" from a low value: an unannounced reset.
        let prev = r(5_000_000, 0, 100);
        let cur = r(1_000, 10, 110);
        assert_eq!(rate(&prev, &cur, Width::Bits64, GIG), Rate::Reset(ResetReason::Implausible));
        // More than a 100 Mbit/s port can carry.
        assert_eq!(
            rate(&r(0, 0, 100), &r(200_000_000, 10, 110), Width::Bits64, Some(100_000_000)),
            Rate::Reset(ResetReason::Implausible)
        );
    }

    #[test]
    fn time_must_advance() {
        assert_eq!(rate(&r(0, 10, 100), &r(5, 10, 100), Width::Bits64, GIG), Rate::OutOfOrder);
    }

    #[test]
    fn utilization() {
        assert_eq!(utilization_percent(12_500_000.0, Some(1_000_000_000)), Some(10.0));
        assert_eq!(utilization_percent(1e12, Some(1_000_000_000)), Some(100.0));
        assert_eq!(utilization_percent(1.0, None), None);
    }
}
