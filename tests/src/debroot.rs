//! A Debian root made by `debootstrap` (Debian's package), for installing Parta's packages with
//! the real `dpkg`: made once per machine (minbase with systemd, cached under
//! `/var/cache/parta-test`, or `PARTA_DEBROOT_CACHE`; python3 for Ansible), copied for each test, entered with
//! `chroot` inside a private mount namespace (`unshare`) that has its own `/proc`, `/sys` and
//! `/dev`, so nothing the test mounts outlives it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Debian release the test roots are made of (the machine's own).
const SUITE: &str = "bookworm";

/// A private copy of the cached Debian root, deleted on drop.
#[derive(Debug)]
pub struct DebRoot {
    dir: tempfile::TempDir,
}

impl DebRoot {
    /// A fresh copy of the cached root (made first when missing: `debootstrap` takes about
    /// half a minute with a near mirror; `PARTA_DEBIAN_MIRROR` names another).
    pub fn fresh() -> Self {
        let cache = cached_root();
        let dir = tempfile::Builder::new().prefix("parta-debroot-").tempdir().unwrap();
        let out = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", cache.display()))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "copying {}: {}",
            cache.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    /// The root's directory on the host.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the root, seen from the host (`/etc/passwd` → `ROOT/etc/passwd`).
    pub fn file(&self, inside: &str) -> PathBuf {
        self.dir.path().join(inside.trim_start_matches('/'))
    }

    /// Copies a host file into the root's `/tmp` and returns its path inside the root.
    pub fn put(&self, host: &Path) -> String {
        let name = host.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(host, self.file("/tmp").join(&name)).unwrap();
        format!("/tmp/{name}")
    }

    /// Runs `script` with `/bin/sh` inside the root, with `env` set, and returns its output.
    pub fn sh(&self, script: &str, env: &[(&str, &str)]) -> Output {
        let mut args = vec!["chroot".to_owned(), self.path().display().to_string()];
        args.extend(
            ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"].map(String::from),
        );
        args.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        args.extend(["/bin/sh", "-c", script].map(String::from));
        self.mounted(&args)
    }

    /// Runs a host command (`args`) while the root has its own `/proc`, `/sys`, `/run` and
    /// `/dev` (e.g. `rpm --root`, whose scriptlets run chrooted in it).
    pub fn mounted<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        let root = self.path().display().to_string();
        let mounts = format!(
            "mount -t proc proc {root}/proc && mount --rbind /sys {root}/sys && \
             mount -t tmpfs tmpfs {root}/run && mount --rbind /dev {root}/dev && exec \"$@\""
        );
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--fork", "sh", "-c", &mounts, "sh"])
            .args(args)
            .output()
            .unwrap()
    }

    /// Like [`Self::sh`], failing the test with the output when the script fails.
    pub fn sh_ok(&self, script: &str, env: &[(&str, &str)]) -> String {
        let out = self.sh(script, env);
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "in the Debian root, `{script}` failed:\n{text}");
        text
    }
}

/// The cached root, made under an exclusive lock when missing (tests run in parallel).
fn cached_root() -> PathBuf {
    let base = std::env::var_os("PARTA_DEBROOT_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/parta-test"), PathBuf::from);
    std::fs::create_dir_all(&base).unwrap();
    let root = base.join(format!("{SUITE}-minbase-systemd-python3-apt"));
    let lock = std::fs::File::create(base.join(".lock")).unwrap();
    lock.lock().unwrap();
    if !root.join(".parta-complete").exists() {
        let tmp = base.join(format!("{SUITE}-minbase-systemd-python3-apt.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        let mirror =
            std::env::var("PARTA_DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into());
        let out = Command::new("debootstrap")
            .args(["--variant=minbase", "--include=systemd,init-system-helpers,python3,python3-apt", SUITE])
            .arg(&tmp)
            .arg(&mirror)
            .output()
            .expect("debootstrap (scripts/install-deps.sh installs it)");
        assert!(
            out.status.success(),
            "debootstrap {SUITE} from {mirror}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(tmp.join(".parta-complete"), "").unwrap();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::rename(&tmp, &root).unwrap();
    }
    root
}
