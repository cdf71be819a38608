//! User classes: a user name is mapped, on the device, to teacher / pupil / admin / other by the
//! groups it belongs to; only the class (and, when a salt is configured, a salted hash) leaves
//! the device — never the name (152-ФЗ: pupils are minors).
//!
//! Groups come from `{rootfs}/etc/passwd` and `{rootfs}/etc/group`; users these files do not
//! know (domain users through SSSD/winbind, e.g. ALD Pro or FreeIPA) are looked up with
//! `id -Gn`, which asks NSS, when reading the live root filesystem.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parta_protocol::usage::UserClass;
use sha2::{Digest as _, Sha256};

use crate::paths::HostPaths;

/// Group membership is re-read after this long.
const CACHE_FOR: Duration = Duration::from_secs(3600);

/// Which groups make a user a teacher, a pupil or an admin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMapping {
    /// Groups of teachers.
    pub teacher: Vec<String>,
    /// Groups of pupils.
    pub pupil: Vec<String>,
    /// Groups of administration staff.
    pub admin: Vec<String>,
}

impl GroupMapping {
    /// The class of a user in `groups`: teacher, then admin, then pupil groups are tried.
    pub fn classify(&self, groups: &[String]) -> UserClass {
        let any = |list: &[String]| list.iter().any(|g| groups.contains(g));
        if any(&self.teacher) {
            UserClass::Teacher
        } else if any(&self.admin) {
            UserClass::Admin
        } else if any(&self.pupil) {
            UserClass::Pupil
        } else {
            UserClass::Other
        }
    }
}

/// Maps user names to classes and keys, with a cache.
#[derive(Debug)]
pub struct Users {
    paths: HostPaths,
    mapping: GroupMapping,
    salt: Option<String>,
    cache: HashMap<String, (Instant, UserClass, Option<u64>)>,
}

impl Users {
    /// A classifier reading groups below `paths.rootfs`.
    pub fn new(paths: HostPaths, mapping: GroupMapping, salt: Option<String>) -> Self {
        Self { paths, mapping, salt, cache: HashMap::new() }
    }

    /// The user's class and, with a salt configured, its salted hash.
    pub fn classify(&mut self, user: &str) -> (UserClass, Option<u64>) {
        if let Some((at, class, key)) = self.cache.get(user)
            && at.elapsed() < CACHE_FOR
        {
            return (*class, *key);
        }
        let groups = groups_of(&self.paths, user);
        let class = self.mapping.classify(&groups);
        let key = self.salt.as_deref().map(|s| user_key(s, user));
        self.cache.insert(user.to_owned(), (Instant::now(), class, key));
        (class, key)
    }
}

impl Users {
    /// Names of the accounts seen in sessions (kept in memory only, to keep them out of mount
    /// points reported: [`crate::privacy`]).
    pub fn seen(&self) -> impl Iterator<Item = &str> {
        self.cache.keys().map(String::as_str)
    }
}

/// The salted hash of a user name: the first 8 bytes of SHA-256(salt, 0, name).
pub fn user_key(salt: &str, user: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(user.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// An account of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id, as written.
    pub gid: String,
}

/// The accounts of `{rootfs}/etc/passwd` (none when it cannot be read); lines without a name
/// or a numeric uid are skipped.
pub fn passwd_entries(paths: &HostPaths) -> Vec<PasswdEntry> {
    let passwd = std::fs::read_to_string(paths.root("etc/passwd")).unwrap_or_default();
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry { name: f[0].to_owned(), uid: f[2].parse().ok()?, gid: f[3].to_owned() })
        })
        .collect()
}

/// Names of the groups `user` belongs to (primary and supplementary).
pub fn groups_of(paths: &HostPaths, user: &str) -> Vec<String> {
    let group = std::fs::read_to_string(paths.root("etc/group")).unwrap_or_default();
    let primary_gid = passwd_entries(paths).into_iter().find(|e| e.name == user).map(|e| e.gid);
    let Some(primary_gid) = primary_gid else {
        return if paths.rootfs == std::path::Path::new("/") { groups_from_nss(user) } else { Vec::new() };
    };
    let mut out = Vec::new();
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        if f[2] == primary_gid || f[3].split(',').any(|m| m.trim() == user) {
            out.push(f[0].to_owned());
        }
    }
    out
}

fn groups_from_nss(user: &str) -> Vec<String> {
    match std::process::Command::new("id").arg("-Gn").arg("--").arg(user).output() {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_from_group_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/bash\nivanova:x:1001:1001::/home/ivanova:/bin/bash\npetya:x:1002:2000::/home/petya:/bin/bash\nguest:x:1003:1003::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nivanova:x:1001:\nteachers:x:3000:ivanova\npupils:x:2000:\nguest:x:1003:\n",
        )
        .unwrap();
        let mapping = GroupMapping {
            teacher: vec!["teachers".into()],
            pupil: vec!["pupils".into()],
            admin: vec!["staff".into()],
        };
        let mut u = Users::new(HostPaths::under(dir.path()), mapping, Some("s".into()));
        assert_eq!(u.classify("ivanova").0, UserClass::Teacher);
        assert_eq!(u.classify("petya").0, UserClass::Pupil);
        assert_eq!(u.classify("guest").0, UserClass::Other);
        assert_eq!(u.classify("nobody-here").0, UserClass::Other);
        let (_, k1) = u.classify("petya");
        assert_eq!(k1, Some(user_key("s", "petya")));
        assert_ne!(user_key("s", "petya"), user_key("t", "petya"));
    }
}
