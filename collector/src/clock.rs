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
    fn versions_always_grow() {
        let v = next_version(u64::MAX - 1);
        assert_eq!(v, u64::MAX);
        assert!(next_version(0) >= now_ms() - 1000);
    }
}
