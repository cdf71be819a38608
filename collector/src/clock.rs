//! The collector's clock, in the units its tables use, and how times are shown.

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The version of a row's next state: now in milliseconds, and always above the previous.
pub fn next_version(previous: u64) -> u64 {
    now_ms().max(previous + 1)
}

/// The version of a rollup row: nanoseconds since the epoch, and strictly above every version
/// this process gave before, so that of two recomputations of the same row the later one always
/// wins `argMax` (the system clock may stand still or step back between them).
pub fn rollup_version() -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(
            last,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        ) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// The date at `now` in the IANA zone `tz` — the region's zone (`web_timezone`), in which the
/// devices count their local days; UTC when the zone is unknown.
pub fn date_at(tz: &str, now: jiff::Timestamp) -> jiff::civil::Date {
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    now.to_zoned(zone).date()
}

/// Today in the region's zone `tz` (see [`date_at`]).
pub fn today_in(tz: &str) -> jiff::civil::Date {
    date_at(tz, jiff::Timestamp::now())
}

/// The same day as a `time::Date` (the API's day ranges).
pub fn to_time_date(d: jiff::civil::Date) -> time::Date {
    time::Month::try_from(u8::try_from(d.month()).unwrap_or(1))
        .ok()
        .and_then(|m| {
            time::Date::from_calendar_date(i32::from(d.year()), m, u8::try_from(d.day()).unwrap_or(1)).ok()
        })
        .unwrap_or(time::Date::MIN)
}

/// [`rfc3339`] of a time in milliseconds (to the second).
pub fn rfc3339_ms(ms: u64) -> String {
    rfc3339(u32::try_from(ms / 1000).unwrap_or(u32::MAX))
}

/// RFC 3339 UTC for a `DateTime` value.
pub fn rfc3339(secs: u32) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::from(secs))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_763_802_060), "2025-11-22T09:01:00Z");
    }

    #[test]
    fn rollup_versions_strictly_grow_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| rollup_version()).collect::<Vec<_>>()))
            .collect();
        let per_thread: Vec<Vec<u64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for v in &per_thread {
            assert!(v.windows(2).all(|w| w[0] < w[1]), "each caller sees them grow");
        }
        let mut all: Vec<u64> = per_thread.concat();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "no two recomputations share a version");
    }

    #[test]
    fn today_is_the_regions_date() {
        // 20:30 UTC on 3 December is 01:30 on 4 December in Chelyabinsk (UTC+5): the devices
        // there already count the 4th.
        let t: jiff::Timestamp = "2026-12-03T20:30:00Z".parse().unwrap();
        assert_eq!(date_at("Asia/Yekaterinburg", t).to_string(), "2026-12-04");
        assert_eq!(date_at("Europe/Kaliningrad", t).to_string(), "2026-12-03");
        assert_eq!(date_at("No/Such_Zone", t).to_string(), "2026-12-03", "UTC when unknown");
        assert_eq!(to_time_date(date_at("Asia/Yekaterinburg", t)).to_string(), "2026-12-04");
    }

    #[test]
    fn versions_always_grow() {
        let v = next_version(u64::MAX - 1);
        assert_eq!(v, u64::MAX);
        assert!(next_version(0) >= now_ms() - 1000);
    }
}
