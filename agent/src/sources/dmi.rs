//! DMI/SMBIOS identification from `{sysfs}/class/dmi/id`.
//!
//! Serial numbers are readable by root only on Linux; the systemd unit grants the agent
//! `CAP_DAC_READ_SEARCH` for that. Unreadable or placeholder values become `None`.

use std::io::ErrorKind;

use crate::paths::HostPaths;

/// Values vendors leave in DMI fields instead of real data (compared case-insensitively).
const PLACEHOLDERS: &[&str] = &[
    "to be filled by o.e.m.",
    "to be filled by oem",
    "default string",
    "system serial number",
    "system manufacturer",
    "system product name",
    "not specified",
    "not applicable",
    "not available",
    "none",
    "n/a",
    "oem",
    "o.e.m.",
    "0",
    "00000000",
    "0123456789",
    "123456789",
    "chassis serial number",
    "base board serial number",
    "empty",
    "unknown",
    "invalid",
];

/// Reads one DMI attribute: `Ok(None)` when missing, root-only (serial numbers: configuration,
/// not garbage) or a placeholder; `Err` when it cannot be read otherwise.
pub fn read_field(paths: &HostPaths, name: &str) -> std::io::Result<Option<String>> {
    match std::fs::read(path(paths, name)) {
        Ok(bytes) => Ok(clean(&bytes)),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Path of a DMI attribute.
pub fn path(paths: &HostPaths, name: &str) -> std::path::PathBuf {
    paths.sys("class/dmi/id").join(name)
}

/// Trims whitespace and NULs, drops control characters, maps placeholders to `None`.
pub fn clean(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let s: String = text
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let lower = s.to_lowercase();
    if s.is_empty() || PLACEHOLDERS.contains(&lower.as_str()) || s.chars().all(|c| c == 'F' || c == 'f') {
        None
    } else {
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_garbage_become_none() {
        assert_eq!(clean(b"To Be Filled By O.E.M.\n"), None);
        assert_eq!(clean(b"Default string"), None);
        assert_eq!(clean(b"   \n"), None);
        assert_eq!(clean(b"FFFFFFFF"), None);
        assert_eq!(clean(b"\0\0"), None);
        assert_eq!(clean(b"QCNS6850123456\n"), Some("QCNS6850123456".into()));
        assert_eq!(clean(b"HP ProBook\x01 450"), Some("HP ProBook 450".into()));
        assert_eq!(clean(&[0xff, 0xfe, b'A']), Some("\u{fffd}\u{fffd}A".into()));
    }

    #[test]
    fn reads_fixture_tree_and_tolerates_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("sys/class/dmi/id");
        std::fs::create_dir_all(&id).unwrap();
        std::fs::write(id.join("sys_vendor"), "AQUARIUS\n").unwrap();
        std::fs::write(id.join("product_name"), "CMP NS685U R11\n").unwrap();
        std::fs::create_dir(id.join("board_name")).unwrap();
        let paths = HostPaths::under(dir.path());
        assert_eq!(read_field(&paths, "sys_vendor").unwrap().as_deref(), Some("AQUARIUS"));
        assert_eq!(read_field(&paths, "product_name").unwrap().as_deref(), Some("CMP NS685U R11"));
        assert_eq!(read_field(&paths, "product_serial").unwrap(), None);
        assert!(read_field(&paths, "board_name").is_err(), "a directory is not an attribute");
    }
}
