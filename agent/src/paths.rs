//! Where the agent reads the host from. Like node_exporter's `--path.sysfs`, `--path.procfs` and
//! `--path.rootfs`, every agent command accepts `--sysfs`, `--procfs` and `--rootfs`, so tests and
//! diagnostics can point the file-based sources at a fixture tree.
//!
//! Linux-only: metrics taken through `sysinfo` (CPU, memory, filesystems, interface counters)
//! always read the live system; the file-based sources (os-release, DMI) honour these paths.

use std::path::{Path, PathBuf};

/// Roots of the host's pseudo-filesystems and root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// Mount point of sysfs, `/sys` by default.
    pub sysfs: PathBuf,
    /// Mount point of procfs, `/proc` by default.
    pub procfs: PathBuf,
    /// The root filesystem, `/` by default.
    pub rootfs: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self { sysfs: PathBuf::from("/sys"), procfs: PathBuf::from("/proc"), rootfs: PathBuf::from("/") }
    }
}

impl HostPaths {
    /// A path under sysfs, e.g. `sys("class/dmi/id")`.
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }

    /// A path under procfs.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }

    /// A path under the root filesystem, e.g. `root("etc/os-release")`.
    pub fn root(&self, rel: &str) -> PathBuf {
        self.rootfs.join(rel.trim_start_matches('/'))
    }

    /// All three roots below one fixture directory (`DIR/sys`, `DIR/proc`, `DIR`).
    pub fn under(dir: &Path) -> Self {
        Self { sysfs: dir.join("sys"), procfs: dir.join("proc"), rootfs: dir.to_owned() }
    }
}
