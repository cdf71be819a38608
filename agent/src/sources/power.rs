//! Boots and shutdowns: the kernel's boot id and boot time from procfs, and shutdown records
//! from `wtmp`.
//!
//! A new boot id tells the agent the machine restarted since it last ran. Whether the previous
//! boot ended cleanly comes from the `shutdown` record systemd (or SysV init) writes to
//! `{rootfs}/var/log/wtmp` (Linux glibc `struct utmp`, 384 bytes); when the system keeps no
//! wtmp (newer distributions moved to wtmpdb), the agent's own clean stop stands in for it. The
//! systemd journal is not read.

use std::io::{Read as _, Seek as _, SeekFrom};

use crate::paths::HostPaths;

/// The running boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// Kernel boot id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// Boot time, ms since the epoch (`btime` in `/proc/stat`).
    pub boot_ms: i64,
}

/// Why the boot could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the boot from {path}: {reason}")]
pub struct BootError {
    path: String,
    reason: String,
}

/// Reads the running boot's id and time.
pub fn boot(paths: &HostPaths) -> Result<BootInfo, BootError> {
    let id_path = paths.proc("sys/kernel/random/boot_id");
    let boot_id = std::fs::read_to_string(&id_path)
        .map_err(|e| BootError { path: id_path.display().to_string(), reason: e.to_string() })?
        .trim()
        .to_owned();
    if boot_id.is_empty() || boot_id.len() > 64 {
        return Err(BootError { path: id_path.display().to_string(), reason: "not a boot id".into() });
    }
    let stat_path = paths.proc("stat");
    let stat = std::fs::read_to_string(&stat_path)
        .map_err(|e| BootError { path: stat_path.display().to_string(), reason: e.to_string() })?;
    let btime = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<i64>().ok())
        .ok_or_else(|| BootError { path: stat_path.display().to_string(), reason: "no btime line".into() })?;
    Ok(BootInfo { boot_id, boot_ms: btime.saturating_mul(1000) })
}

/// Size of a glibc `struct utmp` record on Linux.
pub const UTMP_SIZE: usize = 384;
const RUN_LVL: i16 = 1;
const BOOT_TIME: i16 = 2;
/// Only the end of wtmp is read: shutdowns of interest are recent.
const WTMP_TAIL: u64 = 4 << 20;

/// A boot or shutdown record from wtmp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WtmpEvent {
    /// `reboot` record (system boot).
    Boot(i64),
    /// `shutdown` record (orderly shutdown).
    Shutdown(i64),
}

/// Parses wtmp records; records of other types, corrupt ones (microseconds outside a second)
/// and a torn last record are skipped.
pub fn parse_wtmp(bytes: &[u8]) -> Vec<WtmpEvent> {
    bytes
        .chunks_exact(UTMP_SIZE)
        .filter_map(|r| {
            let ut_type = i16::from_le_bytes([r[0], r[1]]);
            let user = &r[44..76];
            let user = &user[..user.iter().position(|&c| c == 0).unwrap_or(user.len())];
            let sec = i64::from(i32::from_le_bytes([r[340], r[341], r[342], r[343]]));
            let usec = i64::from(i32::from_le_bytes([r[344], r[345], r[346], r[347]]));
            if !(0..1_000_000).contains(&usec) {
                return None;
            }
            let ms = sec * 1000 + usec / 1000;
            match (ut_type, user) {
                (BOOT_TIME, _) => Some(WtmpEvent::Boot(ms)),
                (RUN_LVL, b"shutdown") => Some(WtmpEvent::Shutdown(ms)),
                _ => None,
            }
        })
        .collect()
}

/// Builds a wtmp record (for fixtures and tests).
pub fn wtmp_record(event: WtmpEvent) -> [u8; UTMP_SIZE] {
    let mut r = [0u8; UTMP_SIZE];
    let (ut_type, user, line, ms): (i16, &[u8], &[u8], i64) = match event {
        WtmpEvent::Boot(ms) => (BOOT_TIME, b"reboot", b"~", ms),
        WtmpEvent::Shutdown(ms) => (RUN_LVL, b"shutdown", b"~~", ms),
    };
    r[..2].copy_from_slice(&ut_type.to_le_bytes());
    r[8..8 + line.len()].copy_from_slice(line);
    r[40..42].copy_from_slice(b"~~");
    r[44..44 + user.len()].copy_from_slice(user);
    let sec = i32::try_from(ms.div_euclid(1000)).unwrap_or(i32::MAX);
    let usec = i32::try_from(ms.rem_euclid(1000) * 1000).unwrap_or(0);
    r[340..344].copy_from_slice(&sec.to_le_bytes());
    r[344..348].copy_from_slice(&usec.to_le_bytes());
    r
}

/// The orderly shutdown between `after_ms` and `before_ms`, if wtmp records one: the last
/// `shutdown` record in that window. `None` when there is none or wtmp is absent.
pub fn shutdown_between(paths: &HostPaths, after_ms: i64, before_ms: i64) -> Option<i64> {
    let path = paths.root("var/log/wtmp");
    let mut f = std::fs::File::open(&path).ok()?;
    let len = f.metadata().ok()?.len();
    // Start on a record boundary.
    let start = len.saturating_sub(WTMP_TAIL) / UTMP_SIZE as u64 * UTMP_SIZE as u64;
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    if let Err(e) = f.read_to_end(&mut bytes) {
        tracing::warn!(path = %path.display(), error = %e, "cannot read wtmp");
        return None;
    }
    parse_wtmp(&bytes)
        .into_iter()
        .filter_map(|e| match e {
            WtmpEvent::Shutdown(t) if t >= after_ms && t <= before_ms => Some(t),
            _ => None,
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_from_fixture() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/sys/kernel/random")).unwrap();
        std::fs::write(
            dir.path().join("proc/sys/kernel/random/boot_id"),
            "1b6c7c1e-0000-4000-8000-000000000001\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("proc/stat"), "cpu  1 2 3\nbtime 1763798400\nprocesses 5\n").unwrap();
        let b = boot(&HostPaths::under(dir.path())).unwrap();
        assert_eq!(b.boot_ms, 1_763_798_400_000);
        assert_eq!(b.boot_id, "1b6c7c1e-0000-4000-8000-000000000001");
        std::fs::write(dir.path().join("proc/stat"), "cpu  1 2 3\n").unwrap();
        let err = boot(&HostPaths::under(dir.path())).unwrap_err().to_string();
        assert!(err.contains("btime"), "{err}");
    }

    #[test]
    fn live_boot_is_readable() {
        let b = boot(&HostPaths::default()).unwrap();
        assert!(b.boot_ms > 1_000_000_000_000 && b.boot_id.len() == 36);
    }

    #[test]
    fn wtmp_round_trip_and_window() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/log")).unwrap();
        let mut bytes = Vec::new();
        for e in [WtmpEvent::Boot(1_000_000), WtmpEvent::Shutdown(5_000_500), WtmpEvent::Boot(6_000_000)] {
            bytes.extend_from_slice(&wtmp_record(e));
        }
        assert_eq!(
            parse_wtmp(&bytes),
            [WtmpEvent::Boot(1_000_000), WtmpEvent::Shutdown(5_000_500), WtmpEvent::Boot(6_000_000)]
        );
        bytes.extend_from_slice(&[7; 100]); // torn record
        std::fs::write(dir.path().join("var/log/wtmp"), &bytes).unwrap();
        let paths = HostPaths::under(dir.path());
        assert_eq!(shutdown_between(&paths, 4_000_000, 6_000_000), Some(5_000_500));
        assert_eq!(shutdown_between(&paths, 5_500_000, 6_000_000), None);
        assert_eq!(shutdown_between(&HostPaths::under(&dir.path().join("x")), 0, i64::MAX), None);
    }
}
