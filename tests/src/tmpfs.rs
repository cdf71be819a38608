//! A small tmpfs mounted by the test, to fill a disk on purpose. Needs root.

use std::path::Path;
use std::process::Command;

/// A mounted tmpfs, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run mount(8)");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount(8) syntax, e.g. `48k`).
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("parta-tmpfs-").tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path()));
        Self { dir }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes its size (space "returns").
    pub fn resize(&self, size: &str) {
        run(Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(self.dir.path()));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).output();
    }
}
