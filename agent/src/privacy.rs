//! What may leave the device (152-ФЗ: pupils are minors). Applied to every report's host
//! identity, inventory and metrics just before they are spooled:
//!
//! - **Filesystems**: only the machine's own. A mount point is left out when it is where
//!   removable media or user sessions mount things (`/media`, `/run/media`, `/run/user`), below
//!   a home directory (`/home/NAME…`), or has any path segment that is the name of a person's
//!   account — local (`/etc/passwd`, uid 1000–59999) or seen in a session (domain accounts). The
//!   host source already leaves out removable, network and pseudo filesystems.
//! - **Host name**: sent as is (IT staff find machines by it), as a hash, or not at all
//!   ([`HostnameMode`]).
//!
//! User names themselves never reach a report: sessions are reduced to a class and, with a salt,
//! a salted hash ([`crate::sources::users`]).

use std::collections::BTreeSet;
use std::str::FromStr;

use parta_protocol::inventory::Inventory;
use parta_protocol::sample::{HostInfo, HostMetrics};
use sha2::{Digest as _, Sha256};

use crate::paths::HostPaths;

/// How the host name is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostnameMode {
    /// Unchanged (the default: IT staff need it to find a machine).
    #[default]
    Send,
    /// `h-` and 16 hex digits of SHA-256: the same machine gives the same value, and whoever
    /// knows a name can check it, but names are not listed.
    Hash,
    /// Empty.
    None,
}

impl FromStr for HostnameMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "send" => Ok(Self::Send),
            "hash" => Ok(Self::Hash),
            "none" => Ok(Self::None),
            other => Err(format!("{other:?}: expected send, hash or none")),
        }
    }
}

impl HostnameMode {
    /// Name for `config` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Hash => "hash",
            Self::None => "none",
        }
    }

    /// The host name as sent.
    pub fn apply(self, name: &str) -> String {
        match self {
            Self::Send => name.to_owned(),
            Self::None => String::new(),
            Self::Hash if name.is_empty() => String::new(),
            Self::Hash => {
                let d =
                    Sha256::new().chain_update(b"parta hostname\0").chain_update(name.as_bytes()).finalize();
                let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("h-{hex}")
            }
        }
    }
}

/// Mount points below these are where removable media and user sessions mount things.
const USER_MOUNT_ROOTS: &[&str] = &["/media", "/run/media", "/run/user", "/var/run/user"];

/// Whether a mount point may be reported: not where users' media mount, not below a home
/// directory, no segment naming one of `people` (account names, compared without case).
pub fn reportable_mount(mount: &str, people: &BTreeSet<String>) -> bool {
    let below =
        |root: &str| mount.strip_prefix(root).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if USER_MOUNT_ROOTS.iter().any(|r| below(r)) {
        return false;
    }
    if mount.strip_prefix("/home/").is_some_and(|rest| !rest.is_empty()) {
        return false;
    }
    !mount.split('/').filter(|s| !s.is_empty()).any(|seg| people.contains(&seg.to_lowercase()))
}

/// Names of people's accounts in `{rootfs}/etc/passwd` (uid 1000–59999), lowercased.
pub fn local_people(paths: &HostPaths) -> BTreeSet<String> {
    crate::sources::users::passwd_entries(paths)
        .into_iter()
        .filter(|e| (1000..60_000).contains(&e.uid))
        .map(|e| e.name.to_lowercase())
        .collect()
}

/// The local accounts, read again only when `/etc/passwd` changed (by its modification time
/// and size), not on every report.
#[derive(Debug, Default)]
pub struct LocalPeople {
    stamp: Option<(std::time::SystemTime, u64)>,
    people: BTreeSet<String>,
}

impl LocalPeople {
    /// The accounts now.
    pub fn get(&mut self, paths: &HostPaths) -> &BTreeSet<String> {
        let stamp = std::fs::metadata(paths.root("etc/passwd"))
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp.is_none() || stamp != self.stamp {
            self.people = local_people(paths);
            self.stamp = stamp;
        }
        &self.people
    }
}

/// The privacy rules of one device.
#[derive(Debug, Clone)]
pub struct Privacy {
    /// How the host name is sent.
    pub hostname: HostnameMode,
    /// Account names that must not appear in a mount point (lowercased).
    pub people: BTreeSet<String>,
}

impl Privacy {
    /// The rules for `mode`, with the local accounts of `paths` and the accounts `seen` in
    /// sessions.
    pub fn new<'a>(mode: HostnameMode, paths: &HostPaths, seen: impl IntoIterator<Item = &'a str>) -> Self {
        Self::with_people(mode, local_people(paths), seen)
    }

    /// The rules for `mode` with the local accounts `people` and the accounts `seen`.
    pub fn with_people<'a>(
        mode: HostnameMode,
        mut people: BTreeSet<String>,
        seen: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        people.extend(seen.into_iter().map(str::to_lowercase));
        Self { hostname: mode, people }
    }

    /// The host identity as sent.
    pub fn host_info(&self, mut info: HostInfo) -> HostInfo {
        info.hostname = self.hostname.apply(&info.hostname);
        info
    }

    /// The inventory as sent.
    pub fn inventory(&self, mut inventory: Inventory) -> Inventory {
        inventory.hostname = self.hostname.apply(&inventory.hostname);
        inventory
    }

    /// The metrics as sent: the machine's own filesystems only.
    pub fn metrics(&self, mut metrics: HostMetrics) -> HostMetrics {
        metrics.filesystems.retain(|fs| reportable_mount(&fs.mount, &self.people));
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn user_mounts_and_names_are_never_reported() {
        let p = people(&["ivanov", "petrova.a"]);
        for own in ["/", "/boot", "/boot/efi", "/home", "/var", "/srv/data", "/mnt/backup", "/media2"] {
            assert!(reportable_mount(own, &p), "{own}");
        }
        for theirs in [
            "/media/ivanov/USB",
            "/media/USB",
            "/media",
            "/run/media/petrova.a/ФЛЕШКА",
            "/run/user/1001/gvfs",
            "/home/ivanov",
            "/home/sidorov/Документы",
            "/mnt/ivanov",
            "/mnt/IVANOV/disk",
            "/srv/petrova.a",
        ] {
            assert!(!reportable_mount(theirs, &p), "{theirs}");
        }
    }

    #[test]
    fn people_are_accounts_of_ordinary_uids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nsystemd-network:x:998:998::/:/usr/sbin/nologin\n\
             Ivanov:x:1001:1001::/home/ivanov:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n\
             broken line\n",
        )
        .unwrap();
        let paths = HostPaths { rootfs: dir.path().to_owned(), ..HostPaths::default() };
        assert_eq!(local_people(&paths), people(&["ivanov"]));
        let p = Privacy::new(HostnameMode::Send, &paths, ["Petrov"]);
        assert_eq!(p.people, people(&["ivanov", "petrov"]));
    }

    #[test]
    fn host_names_are_sent_hashed_or_not_at_all_as_configured() {
        assert_eq!(HostnameMode::Send.apply("kab214-teacher"), "kab214-teacher");
        assert_eq!(HostnameMode::None.apply("kab214-teacher"), "");
        let h = HostnameMode::Hash.apply("kab214-teacher");
        assert!(h.starts_with("h-") && h.len() == 18 && !h.contains("kab"), "{h}");
        assert_eq!(h, HostnameMode::Hash.apply("kab214-teacher"), "stable");
        assert_ne!(h, HostnameMode::Hash.apply("kab214-pupil01"));
        assert_eq!("hash".parse::<HostnameMode>(), Ok(HostnameMode::Hash));
        assert!("hashed".parse::<HostnameMode>().unwrap_err().contains("send, hash or none"));
    }
}
