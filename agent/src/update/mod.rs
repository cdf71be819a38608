//! Updates of the agent itself, in two halves that never share privileges.
//!
//! - The **download** (this module, inside the unprivileged agent): the collector offers a
//!   release over the session; [`parta_protocol::update::Updater`] checks the offer against the
//!   release key pinned at enrollment, the product, the platform and the running version; the
//!   artifact is fetched in chunks into `STATE_DIR/update/artifact.part` (after a restart the
//!   bytes on disk are verified again and the download resumes after them), verified as it
//!   arrives (size, SHA-256), and when complete renamed to `artifact` beside `release.sig`,
//!   and `ready` is written — the trigger of the root-owned installer.
//! - The **installer** ([`install`], `parta-agent update install`, run as root by
//!   `parta-agent-update.service` when `ready` appears): verifies everything again against a
//!   root-owned copy of the key, swaps the binary keeping the previous one, restarts the agent
//!   and waits for the new version to prove healthy (connected, a report acknowledged —
//!   `STATE_DIR/update/healthy`), else puts the previous binary back. It writes its outcome to
//!   `STATE_DIR/update/installer.json`, which the agent reports.
//!
//! Every transition is sent to the collector as it happens and the latest again at every
//! session start (`Update(Ready)`), so nothing is lost across restarts or outages. A version
//! that failed here is remembered in `failed.json` and not tried again until an administrator
//! raises the retry epoch (`parta-collector release retry`) — except a download stopped by a
//! full disk (or any failed write), which is tried again in the next session.
//!
//! Linux only for now (the installer's binary swap and restart; the download is portable).

pub mod install;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use parta_common::fsutil;
use parta_protocol::release::{Manifest, ReleaseVersion};
use parta_protocol::update::{
    DeviceFacts, FailedRelease, OfferDecision, Progress, ReleaseMessage, StatusReport, UpdateMessage,
    UpdateState, Updater,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

/// The product name in signature files.
pub const PRODUCT: &str = "parta-agent";
/// This build's platform in signature files, e.g. `x86_64-linux`.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub const TARGET: &str = "x86_64-linux";
/// This build's platform in signature files, e.g. `x86_64-linux`.
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
pub const TARGET: &str = "aarch64-linux";
/// This build's platform in signature files, e.g. `x86_64-linux`.
#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux")))]
pub const TARGET: &str = "unsupported";
/// Space left free for the spool besides the artifact when a download starts.
pub const DISK_RESERVE: u64 = 64 << 20;

/// Files of `STATE_DIR/update/`.
pub mod files {
    /// The directory, under the state directory.
    pub const DIR: &str = "update";
    /// The offer being downloaded (signature file and retry epoch).
    pub const OFFER: &str = "offer.json";
    /// The bytes so far.
    pub const PART: &str = "artifact.part";
    /// The complete, verified artifact.
    pub const ARTIFACT: &str = "artifact";
    /// Its signature file.
    pub const SIGNATURE: &str = "release.sig";
    /// The installer's trigger: the version to install.
    pub const READY: &str = "ready";
    /// Versions that failed here.
    pub const FAILED: &str = "failed.json";
    /// The latest state, sent at every session start.
    pub const LATEST: &str = "latest.json";
    /// The new version's proof of health (its version), for the installer.
    pub const HEALTHY: &str = "healthy";
    /// The installer's outcome.
    pub const INSTALLER: &str = "installer.json";
    /// An outcome the agent has reported.
    pub const INSTALLER_DONE: &str = "installer.done.json";
}

/// The offer being downloaded, kept so a restart resumes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedOffer {
    signature: String,
    retry: u32,
}

/// What the installer writes for the agent: what became of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallerOutcome {
    /// The release.
    pub version: ReleaseVersion,
    /// `installing`, `installed`, `healthy`, `rolled_back`, `failed`.
    pub state: UpdateState,
    /// Why (failures, rollbacks).
    pub detail: String,
}

/// What the uplink hands the update task.
#[derive(Debug)]
pub enum Inbound {
    /// Session `n` started (after `Welcome`; `Ready` was sent).
    Session(u64),
    /// The collector acknowledged a report in session `n`.
    Acked(u64),
    /// A release message of session `n`.
    Release(u64, ReleaseMessage),
}

/// The uplink's side of updates.
#[derive(Debug, Clone)]
pub struct UpdateLink {
    /// To the task.
    pub inbox: mpsc::Sender<Inbound>,
    /// From the task: messages for a session (those for an earlier session are dropped).
    pub outbox: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<(u64, UpdateMessage)>>>,
    /// The latest state, for `Ready`.
    pub latest: watch::Receiver<Option<StatusReport>>,
}

/// The task's side.
#[derive(Debug)]
pub struct UpdateTask {
    inbox: mpsc::Receiver<Inbound>,
    out: mpsc::Sender<(u64, UpdateMessage)>,
    latest: watch::Sender<Option<StatusReport>>,
    dir: PathBuf,
    updater: Updater,
    session: u64,
    /// The download file, open for appending.
    part: Option<std::fs::File>,
    /// Installed as this version and waiting for an acknowledgement to be healthy.
    proving: Option<ReleaseVersion>,
}

/// Makes the link and the task for an agent with `state_dir` running `running`; the task
/// resumes a download on disk and reports the installer's outcome.
pub fn start(state_dir: &Path, running: ReleaseVersion) -> (UpdateLink, UpdateTask) {
    let dir = state_dir.join(files::DIR);
    let trusted = match crate::credential::load_release_key(state_dir) {
        Ok(k) => k.into_iter().collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the pinned release key; every release will be refused");
            Vec::new()
        }
    };
    let failed =
        read_json::<BTreeMap<ReleaseVersion, FailedRelease>>(&dir.join(files::FAILED)).unwrap_or_default();
    let facts = DeviceFacts { name: PRODUCT.into(), target: TARGET.into(), running, trusted };
    let (in_tx, in_rx) = mpsc::channel(8);
    let (out_tx, out_rx) = mpsc::channel(64);
    let latest = read_json::<StatusReport>(&dir.join(files::LATEST));
    let (latest_tx, latest_rx) = watch::channel(latest);
    let link = UpdateLink {
        inbox: in_tx,
        outbox: std::sync::Arc::new(tokio::sync::Mutex::new(out_rx)),
        latest: latest_rx,
    };
    let mut task = UpdateTask {
        inbox: in_rx,
        out: out_tx,
        latest: latest_tx,
        dir,
        updater: Updater::new(facts, failed),
        session: 0,
        part: None,
        proving: None,
    };
    task.resume();
    (link, task)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read an update file; ignored");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "damaged update file; ignored"))
        .ok()
}

/// Free bytes for unprivileged users on the filesystem of `path`.
fn free_space(path: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(path)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

impl UpdateTask {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// At start: the installer's outcome, then a download left on disk.
    fn resume(&mut self) {
        if let Err(e) = fsutil::create_private_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot create the update directory");
        }
        let running = crate::version::release();
        if let Some(o) = read_json::<InstallerOutcome>(&self.path(files::INSTALLER)) {
            match o.state {
                UpdateState::Installed | UpdateState::Installing if o.version == running => {
                    tracing::info!(version = %o.version, "running the release just installed; healthy once a report is acknowledged");
                    self.updater.installer(o.version, UpdateState::Installed, "");
                    self.proving = Some(o.version);
                }
                UpdateState::RolledBack | UpdateState::Failed if o.version != running => {
                    tracing::warn!(version = %o.version, state = o.state.as_str(), detail = %o.detail,
                        "the installer did not install the release");
                    self.updater.installer(o.version, o.state, &o.detail);
                    self.forget_download();
                    let _ = std::fs::rename(self.path(files::INSTALLER), self.path(files::INSTALLER_DONE));
                }
                _ => {}
            }
        }
        if self.proving.is_none() {
            self.resume_download();
        }
        self.flush();
    }

    /// Feeds a download left on disk back through the checks.
    fn resume_download(&mut self) {
        let Some(saved) = read_json::<SavedOffer>(&self.path(files::OFFER)) else { return };
        match self.updater.offer(saved.signature.as_bytes(), saved.retry) {
            OfferDecision::Download { .. } => {}
            _ => {
                self.forget_download();
                return;
            }
        }
        let complete = self.path(files::ARTIFACT);
        let from = if complete.exists() { complete } else { self.path(files::PART) };
        let mut offset = 0u64;
        if let Ok(mut f) = std::fs::File::open(&from) {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match std::io::Read::read(&mut f, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the download so far; starting again");
                        break;
                    }
                };
                match self.updater.bytes(offset, &buf[..n]) {
                    Ok(Progress::More { next }) => offset = next,
                    Ok(Progress::Complete) => {
                        offset += n as u64;
                        break;
                    }
                    Err(_) => {
                        self.forget_download();
                        return;
                    }
                }
            }
        }
        if self.updater.current().is_some() {
            tracing::info!(bytes = offset, "resuming a release download");
            // Whatever was beyond the verified bytes goes.
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(self.path(files::PART)) {
                let _ = f.set_len(offset);
            }
        }
    }

    /// Removes a download and its offer.
    fn forget_download(&mut self) {
        self.part = None;
        for name in [files::OFFER, files::PART, files::ARTIFACT, files::SIGNATURE, files::READY] {
            let _ = std::fs::remove_file(self.path(name));
        }
    }

    /// Runs until the uplink is gone.
    pub async fn run(mut self) {
        while let Some(msg) = self.inbox.recv().await {
            crate::blocking::run(|| self.handle(msg));
        }
    }

    fn handle(&mut self, msg: Inbound) {
        match msg {
            Inbound::Session(n) => self.session = n,
            Inbound::Acked(n) if n == self.session => {
                if let Some(v) = self.proving.take() {
                    match fsutil::write_atomic(&self.path(files::HEALTHY), v.to_string().as_bytes(), false) {
                        Ok(()) => {
                            tracing::info!(version = %v, "healthy: connected and a report acknowledged");
                            self.updater.installer(v, UpdateState::Healthy, "");
                            self.forget_download();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot write the health file; the installer will roll back");
                        }
                    }
                }
            }
            Inbound::Acked(_) => {}
            Inbound::Release(n, m) if n == self.session => self.release(m),
            Inbound::Release(..) => {}
        }
        self.flush();
    }

    fn send(&self, msg: UpdateMessage) {
        if self.out.try_send((self.session, msg)).is_err() {
            tracing::debug!("update message not sent (queue full or session gone)");
        }
    }

    fn release(&mut self, m: ReleaseMessage) {
        match m {
            ReleaseMessage::Offer { signature, retry } => self.offer(&signature, retry),
            ReleaseMessage::Chunk { version, offset, bytes, end } => self.chunk(version, offset, &bytes, end),
        }
    }

    fn offer(&mut self, signature: &[u8], retry: u32) {
        if self.proving.is_some() {
            return;
        }
        match self.updater.offer(signature, retry) {
            OfferDecision::Download { from } => {
                let Some(m) = self.updater.current().cloned() else { return };
                if from == 0 && !self.begin(&m, signature, retry) {
                    return;
                }
                tracing::info!(version = %m.version, from, size = m.size, "downloading a release");
                self.send(UpdateMessage::Fetch { version: m.version, offset: from });
            }
            OfferDecision::Refused(r) => {
                tracing::warn!(reason = %r, "refused a release offer");
            }
            OfferDecision::AlreadyFailed { reason } => {
                tracing::debug!(%reason, "offered a release that failed here before; not retried");
            }
            OfferDecision::Nothing => {}
        }
    }

    /// A new download: disk space checked, files reset, the offer saved.
    fn begin(&mut self, m: &Manifest, signature: &[u8], retry: u32) -> bool {
        self.forget_download();
        let need = m.size.saturating_add(DISK_RESERVE);
        match free_space(&self.dir) {
            Ok(free) if free < need => {
                let why = format!(
                    "not enough disk space for the download: {} MiB free, {} MiB needed (the artifact and room for the spool)",
                    free >> 20,
                    need >> 20
                );
                tracing::warn!(%why, version = %m.version, "release download not started; tried again next session");
                self.updater.out_of_space(m.version, &why);
                return false;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read the free space; downloading anyway"),
        }
        let saved = SavedOffer { signature: String::from_utf8_lossy(signature).into_owned(), retry };
        let opened = serde_json::to_vec(&saved)
            .map_err(std::io::Error::other)
            .and_then(|bytes| fsutil::write_atomic(&self.path(files::OFFER), &bytes, true))
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .open(self.path(files::PART))
            });
        match opened {
            Ok(f) => {
                self.part = Some(f);
                true
            }
            Err(e) => {
                self.disk_failure(m.version, &e);
                false
            }
        }
    }

    fn disk_failure(&mut self, version: ReleaseVersion, e: &std::io::Error) {
        let why = format!("cannot write the download in {}: {e}", self.dir.display());
        tracing::warn!(%why, "release download failed; tried again next session");
        self.forget_download();
        self.updater.out_of_space(version, &why);
    }

    fn chunk(&mut self, version: ReleaseVersion, offset: u64, bytes: &[u8], end: bool) {
        if self.updater.current().is_none_or(|m| m.version != version) {
            return;
        }
        let progress = match self.updater.bytes(offset, bytes) {
            Ok(p) => p,
            Err(refusal) => {
                tracing::warn!(%version, reason = %refusal, "refused a release download");
                self.forget_download();
                return;
            }
        };
        let took = match progress {
            Progress::More { next } => next == offset + bytes.len() as u64,
            Progress::Complete => true,
        };
        if took && let Err(e) = self.append(bytes) {
            self.disk_failure(version, &e);
            return;
        }
        match progress {
            Progress::Complete => self.complete(version),
            Progress::More { .. } if end => {
                // The collector has no more: truncated.
                if let Err(refusal) = self.updater.end() {
                    tracing::warn!(%version, reason = %refusal, "refused a release download");
                    self.forget_download();
                }
            }
            Progress::More { next } => self.send(UpdateMessage::Fetch { version, offset: next }),
        }
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.part.is_none() {
            self.part = Some(std::fs::OpenOptions::new().append(true).open(self.path(files::PART))?);
        }
        match self.part.as_mut() {
            Some(f) => f.write_all(bytes),
            None => Ok(()),
        }
    }

    /// Every byte is in and verified: the artifact and its signature file beside the trigger.
    fn complete(&mut self, version: ReleaseVersion) {
        let done = (|| -> std::io::Result<()> {
            if let Some(f) = self.part.take() {
                f.sync_all()?;
            }
            let saved = read_json::<SavedOffer>(&self.path(files::OFFER))
                .ok_or_else(|| std::io::Error::other("the saved offer is gone"))?;
            fsutil::write_atomic(&self.path(files::SIGNATURE), saved.signature.as_bytes(), false)?;
            if self.path(files::PART).exists() {
                std::fs::rename(self.path(files::PART), self.path(files::ARTIFACT))?;
            }
            fsutil::write_atomic(&self.path(files::READY), version.to_string().as_bytes(), false)
        })();
        match done {
            Ok(()) => tracing::info!(%version, "release downloaded and verified; the installer takes over"),
            Err(e) => self.disk_failure(version, &e),
        }
    }

    /// Sends and keeps what the update machine reported, and the failures it remembers.
    fn flush(&mut self) {
        let reports = self.updater.take_reports();
        if reports.is_empty() {
            return;
        }
        let failed = self.updater.failed().clone();
        if let Ok(bytes) = serde_json::to_vec(&failed)
            && let Err(e) = fsutil::write_atomic(&self.path(files::FAILED), &bytes, true)
        {
            tracing::warn!(error = %e, "cannot keep the failed releases");
        }
        for r in reports {
            if let Ok(bytes) = serde_json::to_vec(&r) {
                let _ = fsutil::write_atomic(&self.path(files::LATEST), &bytes, true);
            }
            self.latest.send_replace(Some(r.clone()));
            self.send(UpdateMessage::Status(r));
        }
    }
}
