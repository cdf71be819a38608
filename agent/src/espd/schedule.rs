//! When a probe runs its checks: at a random instant inside every period (so that a region's
//! probes never fire together), and only inside the configured school-hours windows.

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;

/// A weekly window, e.g. `mon-fri 08:00-17:00`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    from_min: u16,
    to_min: u16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(d: &str) -> Result<usize, String> {
    DAYS.iter().position(|x| *x == d).ok_or_else(|| format!("unknown day {d:?} (mon … sun)"))
}

fn minutes(t: &str) -> Result<u16, String> {
    let (h, m) = t.split_once(':').ok_or_else(|| format!("{t:?} is not HH:MM"))?;
    let (h, m): (u16, u16) = (
        h.parse().map_err(|_| format!("bad hour in {t:?}"))?,
        m.parse().map_err(|_| format!("bad minute in {t:?}"))?,
    );
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(format!("{t:?} is not a time of day"));
    }
    Ok(h * 60 + m)
}

impl Window {
    /// Parses `DAYS HH:MM-HH:MM`: days as `mon-fri`, `sat`, `mon,wed,fri`; `24:00` ends a day.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (days_text, times) =
            text.trim().split_once(' ').ok_or("expected e.g. \"mon-fri 08:00-17:00\"")?;
        let mut days = [false; 7];
        for part in days_text.to_ascii_lowercase().split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day_index(a)?, day_index(b)?);
                    if a > b {
                        return Err(format!("{part:?}: the first day comes after the last"));
                    }
                    days[a..=b].iter_mut().for_each(|d| *d = true);
                }
                None => days[day_index(part)?] = true,
            }
        }
        let (from, to) = times.trim().split_once('-').ok_or("expected HH:MM-HH:MM")?;
        let (from_min, to_min) = (minutes(from)?, minutes(to)?);
        if from_min >= to_min {
            return Err(format!("{times:?}: the window ends before it starts"));
        }
        Ok(Self { days, from_min, to_min })
    }

    fn contains(&self, weekday: Weekday, minute: u16) -> bool {
        let d = usize::from(weekday.to_monday_zero_offset().unsigned_abs());
        self.days[d] && (self.from_min..self.to_min).contains(&minute)
    }
}

/// Whether `at_ms` falls in any window, in time zone `tz`.
pub fn in_windows(windows: &[Window], tz: &TimeZone, at_ms: i64) -> bool {
    let Ok(ts) = Timestamp::from_millisecond(at_ms) else { return false };
    let local = ts.to_zoned(tz.clone());
    let minute = u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
    windows.iter().any(|w| w.contains(local.weekday(), minute))
}

/// The instant of the run in the period that starts at `period_start_ms`: a uniform random
/// point of the period (`unit` in 0..1 is the random draw).
pub fn instant_in_period(period_start_ms: i64, every: Duration, unit: f64) -> i64 {
    let span = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    // Truncation is intended: a point inside the period, at millisecond precision.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let offset = (span as f64 * unit.clamp(0.0, 0.999_999)) as i64;
    period_start_ms + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_contain() {
        let w = Window::parse("mon-fri 08:00-17:00").unwrap();
        assert!(w.contains(Weekday::Monday, 8 * 60));
        assert!(w.contains(Weekday::Friday, 17 * 60 - 1));
        assert!(!w.contains(Weekday::Friday, 17 * 60));
        assert!(!w.contains(Weekday::Saturday, 9 * 60));
        let all = Window::parse("mon-sun 00:00-24:00").unwrap();
        assert!(all.contains(Weekday::Sunday, 23 * 60 + 59));
        let some = Window::parse("Mon,wed 10:00-11:30").unwrap();
        assert!(some.contains(Weekday::Wednesday, 11 * 60 + 29) && !some.contains(Weekday::Tuesday, 630));
        for bad in [
            "mon-fri",
            "fri-mon 08:00-09:00",
            "mon 09:00-08:00",
            "mon 25:00-26:00",
            "xyz 08:00-09:00",
            "mon 8-9",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_are_in_local_time() {
        let tz = TimeZone::get("Asia/Yekaterinburg").unwrap(); // UTC+5, Chelyabinsk
        let w = [Window::parse("mon-fri 08:00-17:00").unwrap()];
        // Monday 2026-11-23 03:30 UTC is 08:30 in Chelyabinsk; 12:30 UTC is 17:30 there.
        let ms = |s: &str| s.parse::<Timestamp>().unwrap().as_millisecond();
        assert!(in_windows(&w, &tz, ms("2026-11-23T03:30:00Z")));
        assert!(!in_windows(&w, &tz, ms("2026-11-23T12:30:00Z")));
        assert!(!in_windows(&w, &tz, ms("2026-11-22T05:00:00Z"))); // Sunday
    }

    #[test]
    fn runs_fall_inside_their_period() {
        let every = Duration::from_secs(900);
        assert_eq!(instant_in_period(1_000, every, 0.0), 1_000);
        let last = instant_in_period(1_000, every, 1.0);
        assert!(last < 1_000 + 900_000 && last > 1_000 + 899_000);
    }
}
