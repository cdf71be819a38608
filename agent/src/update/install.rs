//! `parta-agent update install`: the root-owned half of an update, run by
//! `parta-agent-update.service` when the agent's `STATE_DIR/update/ready` appears (and once at
//! boot, to finish an installation a power cut interrupted).
//!
//! Everything in the agent's state directory is the unprivileged agent's work and treated as
//! hostile: the files are read without following links and within size bounds, copied into the
//! installer's own directory first, and verified there against the root-owned release key
//! (`/etc/parta/release.pub`) — signature, product, platform, a version above the installed
//! binary's, size, SHA-256, and the version the build itself carries.
//!
//! Then: the installed binary is copied to `WORK_DIR/previous`, a journal says what is under
//! way, the new binary replaces the old by rename, the agent is restarted, and the installer
//! waits (`--update-health-timeout`) for the new version to write `STATE_DIR/update/healthy` (it does
//! once connected with a report acknowledged). If it does not, the previous binary goes back
//! and the agent is restarted again. The outcome is written to `STATE_DIR/update/installer.json`
//! for the agent to report. A run that finds a journal (the previous run was killed or the power
//! went) finishes that installation first: healthy if the new version proved so, else rolled
//! back — no state sticks.

use std::io::Read as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use parta_common::fsutil;
use parta_protocol::release::{self, Manifest, ReleaseVersion};
use parta_protocol::update::UpdateState;
use serde::{Deserialize, Serialize};

use super::{InstallerOutcome, PRODUCT, TARGET, files};

/// Largest artifact the installer takes.
pub const MAX_ARTIFACT: u64 = 512 << 20;

/// What the installer needs.
#[derive(Debug, Clone)]
pub struct Installer {
    /// The agent's state directory.
    pub state_dir: PathBuf,
    /// The installed binary.
    pub binary: PathBuf,
    /// The installer's own directory (root-owned).
    pub work_dir: PathBuf,
    /// The root-owned release public key.
    pub key: PathBuf,
    /// Time the new version has to prove healthy.
    pub health_timeout: Duration,
    /// Restarts the agent.
    pub restart: Vec<String>,
}

/// What an installation under way is.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    version: ReleaseVersion,
    previous: ReleaseVersion,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was waiting.
    Nothing,
    /// The new version runs and proved healthy.
    Healthy(ReleaseVersion),
    /// The new version did not prove healthy; the previous one runs again.
    RolledBack(ReleaseVersion, String),
    /// Refused before anything changed.
    Failed(ReleaseVersion, String),
}

impl Installer {
    fn update_file(&self, name: &str) -> PathBuf {
        self.state_dir.join(files::DIR).join(name)
    }

    fn journal_path(&self) -> PathBuf {
        self.work_dir.join("journal.json")
    }

    /// One run: an interrupted installation finished, then a waiting one installed.
    pub fn run(&self) -> anyhow::Result<Outcome> {
        fsutil::create_private_dir(&self.work_dir)
            .with_context(|| format!("cannot create {}", self.work_dir.display()))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.work_dir.join("lock"))
            .with_context(|| format!("cannot open {}", self.work_dir.join("lock").display()))?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            tracing::info!("another installer is running; leaving it the work");
            return Ok(Outcome::Nothing);
        }
        if let Some(j) =
            read_small(&self.journal_path(), 4096)?.and_then(|b| serde_json::from_slice::<Journal>(&b).ok())
        {
            let outcome = self.recover(&j)?;
            // The trigger of the version just finished is spent.
            if read_small(&self.update_file(files::READY), 64)?
                .is_some_and(|b| b == j.version.to_string().as_bytes())
            {
                let _ = std::fs::remove_file(self.update_file(files::READY));
            }
            return Ok(outcome);
        }
        self.install_waiting()
    }

    fn install_waiting(&self) -> anyhow::Result<Outcome> {
        let Some(wanted) = read_small(&self.update_file(files::READY), 64)? else {
            tracing::info!("no release waiting");
            return Ok(Outcome::Nothing);
        };
        // Taken: whatever happens now, this trigger is not run again.
        std::fs::remove_file(self.update_file(files::READY)).context("removing the trigger")?;
        let wanted = String::from_utf8_lossy(&wanted).trim().to_owned();
        let key = self.trusted_key()?;
        let current = installed_version(&self.binary)?;
        let sig = read_small(&self.update_file(files::SIGNATURE), release::SIG_MAX as u64)?;
        let incoming = self.work_dir.join("incoming");
        let copied = copy_bounded(&self.update_file(files::ARTIFACT), &incoming, MAX_ARTIFACT);
        let checked = match (sig, copied) {
            (None, _) => Err("the signature file is missing".to_owned()),
            (_, Err(e)) => Err(format!("{e:#}")),
            (Some(sig), Ok(())) => check(&sig, &incoming, &key, current, &wanted),
        };
        let manifest = match checked {
            Ok(m) => m,
            Err(why) => {
                let version = wanted.parse().unwrap_or(current);
                let why = format!("the installer refused it: {why}");
                tracing::warn!(%version, reason = %why, "not installed");
                let _ = std::fs::remove_file(&incoming);
                self.outcome(version, UpdateState::Failed, &why)?;
                return Ok(Outcome::Failed(version, why));
            }
        };
        let v = manifest.version;
        tracing::info!(version = %v, previous = %current, "installing");
        // The previous binary is kept before anything changes; the journal says what is under way.
        copy_bounded(&self.binary, &self.work_dir.join("previous"), MAX_ARTIFACT)?;
        let journal = serde_json::to_vec(&Journal { version: v, previous: current })?;
        fsutil::write_atomic(&self.journal_path(), &journal, true)?;
        let _ = std::fs::remove_file(self.update_file(files::HEALTHY));
        self.outcome(v, UpdateState::Installing, "")?;
        put_binary(&incoming, &self.binary)?;
        let _ = std::fs::remove_file(&incoming);
        self.outcome(v, UpdateState::Installed, "")?;
        self.restart();
        self.await_health(v, current)
    }

    /// Waits for the new version's proof of health; rolls back without it.
    fn await_health(&self, v: ReleaseVersion, previous: ReleaseVersion) -> anyhow::Result<Outcome> {
        let deadline = Instant::now() + self.health_timeout;
        loop {
            if self.healthy(v)? {
                tracing::info!(version = %v, "the new version is healthy");
                self.outcome(v, UpdateState::Healthy, "")?;
                std::fs::remove_file(self.journal_path()).context("removing the journal")?;
                return Ok(Outcome::Healthy(v));
            }
            if Instant::now() >= deadline {
                let why = format!(
                    "{PRODUCT} {v} did not report healthy (connected, a report acknowledged) within {}; {previous} restored",
                    humantime::format_duration(self.health_timeout)
                );
                return self.roll_back(v, &why);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn roll_back(&self, v: ReleaseVersion, why: &str) -> anyhow::Result<Outcome> {
        tracing::warn!(version = %v, reason = %why, "rolling back");
        put_binary(&self.work_dir.join("previous"), &self.binary).context("restoring the previous binary")?;
        self.outcome(v, UpdateState::RolledBack, why)?;
        std::fs::remove_file(self.journal_path()).context("removing the journal")?;
        self.restart();
        Ok(Outcome::RolledBack(v, why.to_owned()))
    }

    /// Finishes an installation a previous run did not.
    fn recover(&self, j: &Journal) -> anyhow::Result<Outcome> {
        let installed = installed_version(&self.binary).ok();
        tracing::warn!(version = %j.version, "finishing an installation that was interrupted");
        if installed == Some(j.version) {
            // The new binary is in place: it gets its time to prove healthy, from now.
            if !self.healthy(j.version)? {
                self.restart();
            }
            return self.await_health(j.version, j.previous);
        }
        // Interrupted before the swap: the previous binary still runs.
        let why =
            format!("the installer was interrupted before installing {}; {} kept", j.version, j.previous);
        self.outcome(j.version, UpdateState::RolledBack, &why)?;
        std::fs::remove_file(self.journal_path()).context("removing the journal")?;
        Ok(Outcome::RolledBack(j.version, why))
    }

    fn healthy(&self, v: ReleaseVersion) -> anyhow::Result<bool> {
        Ok(read_small(&self.update_file(files::HEALTHY), 64)?
            .is_some_and(|b| b.trim_ascii() == v.to_string().as_bytes()))
    }

    fn trusted_key(&self) -> anyhow::Result<[u8; 32]> {
        let meta = std::fs::symlink_metadata(&self.key)
            .with_context(|| format!("cannot read the release key {}", self.key.display()))?;
        // Only root may be able to change what root trusts.
        if !meta.is_file() || meta.permissions().mode() & 0o022 != 0 {
            bail!("{}: not a regular file writable by root only", self.key.display());
        }
        let text =
            std::fs::read_to_string(&self.key).with_context(|| format!("reading {}", self.key.display()))?;
        release::parse_public_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", self.key.display()))
    }

    /// Writes the outcome for the agent (readable to it, written by root).
    fn outcome(&self, version: ReleaseVersion, state: UpdateState, detail: &str) -> anyhow::Result<()> {
        let o = InstallerOutcome { version, state, detail: detail.to_owned() };
        let path = self.update_file(files::INSTALLER);
        fsutil::write_atomic(&path, &serde_json::to_vec(&o)?, false)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn restart(&self) {
        let Some((cmd, args)) = self.restart.split_first() else { return };
        match std::process::Command::new(cmd).args(args).status() {
            Ok(s) if s.success() => tracing::info!(command = %self.restart.join(" "), "agent restarted"),
            Ok(s) => {
                tracing::warn!(command = %self.restart.join(" "), status = %s, "restarting the agent failed")
            }
            Err(e) => {
                tracing::warn!(command = %self.restart.join(" "), error = %e, "cannot restart the agent")
            }
        }
    }
}

/// Checks the copied artifact: signature by the trusted key, product, platform, newer than the
/// installed version, the version the trigger named, size and SHA-256, and the build's own
/// version slot.
fn check(
    sig: &[u8],
    artifact: &Path,
    key: &[u8; 32],
    current: ReleaseVersion,
    wanted: &str,
) -> Result<Manifest, String> {
    let m = Manifest::parse(sig).map_err(|e| e.to_string())?;
    m.verify_signature(std::slice::from_ref(key)).map_err(|e| e.to_string())?;
    m.check_offer(PRODUCT, TARGET, current).map_err(|e| e.to_string())?;
    if m.version.to_string() != wanted {
        return Err(format!("the trigger names {wanted:?}, the signature {}", m.version));
    }
    let f = std::fs::File::open(artifact).map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    m.checker().check_reader(f, |piece| head.extend_from_slice(piece)).map_err(|e| e.to_string())?;
    match release::read_stamp(&head) {
        Ok(v) if v == m.version => Ok(m),
        Ok(v) => Err(format!("the build says it is {v}, the signature {}", m.version)),
        Err(e) => Err(format!("not a build of {PRODUCT}: {e}")),
    }
}

/// The version the installed binary carries.
fn installed_version(binary: &Path) -> anyhow::Result<ReleaseVersion> {
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    release::read_stamp(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", binary.display()))
}

/// A small file of the agent's, without following links; `None` when absent.
fn read_small(path: &Path, max: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let f = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{}: longer than {max} bytes", path.display());
    }
    Ok(Some(bytes))
}

fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0))
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// Copies a regular file (no links followed) of at most `max` bytes, synced.
fn copy_bounded(from: &Path, to: &Path, max: u64) -> anyhow::Result<()> {
    let f = open_nofollow(from).with_context(|| format!("opening {}", from.display()))?;
    let len = f.metadata()?.len();
    if len > max {
        bail!("{}: {len} bytes, more than {max}", from.display());
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o700)
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut f.take(max), &mut out).with_context(|| format!("copying {}", from.display()))?;
    out.sync_all()?;
    Ok(())
}

/// Replaces `binary` with `from` by rename (a running process keeps its old image).
fn put_binary(from: &Path, binary: &Path) -> anyhow::Result<()> {
    let mut tmp = binary.as_os_str().to_owned();
    tmp.push(".parta-new");
    let tmp = PathBuf::from(tmp);
    copy_bounded(from, &tmp, MAX_ARTIFACT)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, binary).with_context(|| format!("replacing {}", binary.display()))?;
    if let Some(dir) = binary.parent() {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}
