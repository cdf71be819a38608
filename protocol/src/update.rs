//! The agent's side of a release update, sans-IO: what a device does with an offered release,
//! where its download resumes, when the artifact is ready for the installer, and the states it
//! reports. No files, no network: the agent feeds it the offer, the bytes (from disk first
//! after a restart, then from the collector) and the installer's outcome, and sends the
//! [`StatusReport`]s it queues.
//!
//! A version that failed on this device (refused, rolled back, failed to install) is not tried
//! again when offered again — only when the offer carries a higher `retry` epoch, which an
//! administrator raises. Every transition is reported; a download that stops midway stays
//! `downloading` at its offset and resumes from there; nothing else can stick.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::release::{ArtifactCheck, Manifest, Refusal, ReleaseVersion};

/// Longest detail (a reason) in a status report, in bytes.
pub const MAX_DETAIL: usize = 512;

/// Where a device is with one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateState {
    /// Offered and accepted; nothing downloaded yet.
    Offered,
    /// Downloading; the report says how far.
    Downloading,
    /// Downloaded and verified; waiting for the installer.
    Downloaded,
    /// The installer is replacing the binary.
    Installing,
    /// Installed; the new version runs, not yet proven healthy.
    Installed,
    /// The new version connected and its reports were acknowledged.
    Healthy,
    /// The new version was not healthy in time: the previous one runs again.
    RolledBack,
    /// The installation failed; the previous version runs.
    Failed,
    /// Refused before installing (signature, version, size, digest…).
    Refused,
}

impl UpdateState {
    /// Stable lower-case name (API, CLI, ClickHouse).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Downloading => "downloading",
            Self::Downloaded => "downloaded",
            Self::Installing => "installing",
            Self::Installed => "installed",
            Self::Healthy => "healthy",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }

    /// True when nothing more happens to this version on this device without a new offer.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Healthy | Self::RolledBack | Self::Failed | Self::Refused)
    }
}

/// One transition, as the device reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The release.
    pub version: ReleaseVersion,
    /// Its new state here.
    pub state: UpdateState,
    /// Bytes downloaded and verified so far.
    pub bytes: u64,
    /// Why (refusals, failures, rollbacks); empty otherwise.
    pub detail: String,
}

/// Longest signature file in an offer, bytes (the format's own bound).
pub const MAX_OFFER_SIGNATURE: usize = crate::release::SIG_MAX;
/// Largest piece of an artifact in one [`ReleaseMessage::Chunk`], bytes.
pub const MAX_CHUNK: usize = 128 * 1024;
/// Longest platform name in [`UpdateMessage::Ready`].
pub const MAX_TARGET: usize = 64;

/// Collector → agent, during a session of an agent that said [`UpdateMessage::Ready`].
///
/// ```text
/// agent                                        collector
///   Hello ──▶                            ◀── Welcome
///   Update(Ready { target, latest }) ──▶
///                                      ◀── Release(Offer { signature, retry })  (when the rollout
///   Update(Status(offered)) ──▶                                                 includes the device)
///   Update(Fetch { version, offset }) ──▶
///                                      ◀── Release(Chunk { version, offset, bytes, end })
///   … one fetch per chunk, resuming at the offset verified on disk …
///   Update(Status(downloaded)) ──▶      (the root-owned installer takes over; the new version
///                                        reports installed and healthy — or the old one reports
///                                        rolled_back — in a later session)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReleaseMessage {
    /// A release for this device: the signature file as `parta-release sign` wrote it, and the
    /// retry epoch (raised by an administrator to have devices try a version that failed).
    Offer {
        /// The signature file.
        #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { MAX_OFFER_SIGNATURE }>")]
        signature: Vec<u8>,
        /// Retry epoch.
        retry: u32,
    },
    /// A piece of the artifact, answering a fetch.
    Chunk {
        /// The release.
        version: ReleaseVersion,
        /// Where the bytes start.
        offset: u64,
        /// The bytes (at most [`MAX_CHUNK`]).
        #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { MAX_CHUNK }>")]
        bytes: Vec<u8>,
        /// No bytes follow these: the artifact ends here (or the collector has no more of it).
        end: bool,
    },
}

/// Agent → collector, about releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateMessage {
    /// Sent once after `Welcome`: this agent takes release offers for its platform; the state
    /// of its latest release (sent again every session, so a transition reported while the
    /// collector was away is not lost; the collector keeps the newest per device and version).
    Ready {
        /// Its platform, e.g. `x86_64-linux`.
        target: String,
        /// Its latest release's state, if any.
        latest: Option<StatusReport>,
    },
    /// Asks for the artifact of `version` from `offset` on.
    Fetch {
        /// The release (must be the one offered in this session).
        version: ReleaseVersion,
        /// The first byte wanted.
        offset: u64,
    },
    /// A transition.
    Status(StatusReport),
}

/// A version that failed on this device, kept (by the agent, in its state directory) so that it
/// is not retried on every offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRelease {
    /// How it ended.
    pub state: UpdateState,
    /// Why.
    pub reason: String,
    /// The offer's retry epoch when it failed.
    pub retry: u32,
}

/// What to do with an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferDecision {
    /// Refused (reported); nothing to download.
    Refused(Refusal),
    /// This version failed here before; not retried until the offer's retry epoch is raised.
    AlreadyFailed {
        /// Why it failed then.
        reason: String,
    },
    /// The device runs this version or is already busy with it: nothing new to do.
    Nothing,
    /// Download from this offset (0, or where a previous download stopped).
    Download {
        /// The first byte still needed.
        from: u64,
    },
}

/// The next step after some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Ask for more from this offset.
    More {
        /// The first byte still needed.
        next: u64,
    },
    /// Every byte is in and verified: hand the artifact to the installer.
    Complete,
}

/// What the device is and trusts.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    /// The product it runs (`parta-agent`).
    pub name: String,
    /// Its platform (`x86_64-linux`).
    pub target: String,
    /// The version it runs.
    pub running: ReleaseVersion,
    /// The release keys pinned at enrollment.
    pub trusted: Vec<[u8; 32]>,
}

#[derive(Debug)]
struct Download {
    manifest: Manifest,
    check: ArtifactCheck,
    done: bool,
    /// The offer's retry epoch, remembered with a failure.
    retry: u32,
}

/// The agent's update state machine.
#[derive(Debug)]
pub struct Updater {
    facts: DeviceFacts,
    failed: BTreeMap<ReleaseVersion, FailedRelease>,
    current: Option<Download>,
    reports: Vec<StatusReport>,
}

fn detail(text: &str) -> String {
    let mut end = text.len().min(MAX_DETAIL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

impl Updater {
    /// A device with its facts and the versions that failed on it before.
    pub fn new(facts: DeviceFacts, failed: BTreeMap<ReleaseVersion, FailedRelease>) -> Self {
        Self { facts, failed, current: None, reports: Vec::new() }
    }

    /// The versions that failed here (for the agent to keep).
    pub fn failed(&self) -> &BTreeMap<ReleaseVersion, FailedRelease> {
        &self.failed
    }

    /// The release being downloaded or ready, if any.
    pub fn current(&self) -> Option<&Manifest> {
        self.current.as_ref().map(|d| &d.manifest)
    }

    /// Reports queued since the last call, oldest first.
    pub fn take_reports(&mut self) -> Vec<StatusReport> {
        std::mem::take(&mut self.reports)
    }

    fn report(&mut self, version: ReleaseVersion, state: UpdateState, bytes: u64, why: &str) {
        self.reports.push(StatusReport { version, state, bytes, detail: detail(why) });
    }

    /// Reports that `version` ended in `state` and drops its download if it is the current
    /// one; the retry epoch it was offered with (`retry` when it is not the current one).
    fn conclude(&mut self, version: ReleaseVersion, state: UpdateState, reason: &str, retry: u32) -> u32 {
        let mine = self.current.as_ref().filter(|d| d.manifest.version == version);
        let bytes = mine.map_or(0, |d| d.check.seen());
        let retry = mine.map_or(retry, |d| d.retry);
        if mine.is_some() {
            self.current = None;
        }
        self.report(version, state, bytes, reason);
        retry
    }

    fn fail(&mut self, version: ReleaseVersion, state: UpdateState, reason: &str, retry: u32) {
        let retry = self.conclude(version, state, reason, retry);
        self.failed.insert(version, FailedRelease { state, reason: detail(reason), retry });
    }

    /// An offer: the signature file's bytes and the offer's retry epoch.
    pub fn offer(&mut self, sig: &[u8], retry: u32) -> OfferDecision {
        let m = match Manifest::parse(sig) {
            Ok(m) => m,
            // Nothing to name the version by: refused, reported by the caller with the offer's id.
            Err(e) => return OfferDecision::Refused(Refusal::Malformed(e)),
        };
        if m.version == self.facts.running {
            return OfferDecision::Nothing;
        }
        if let Some(f) = self.failed.get(&m.version)
            && retry <= f.retry
        {
            return OfferDecision::AlreadyFailed { reason: f.reason.clone() };
        }
        if let Some(d) = &self.current
            && d.manifest == m
        {
            return if d.done {
                OfferDecision::Nothing
            } else {
                OfferDecision::Download { from: d.check.seen() }
            };
        }
        let checked = m
            .verify_signature(&self.facts.trusted)
            .and_then(|()| m.check_offer(&self.facts.name, &self.facts.target, self.facts.running));
        if let Err(refusal) = checked {
            self.fail(m.version, UpdateState::Refused, &refusal.to_string(), retry);
            return OfferDecision::Refused(refusal);
        }
        // A newer offer replaces one in progress (its partial download is dropped).
        let check = m.checker();
        let version = m.version;
        self.current = Some(Download { manifest: m, check, done: false, retry });
        self.failed.remove(&version);
        self.report(version, UpdateState::Offered, 0, "");
        OfferDecision::Download { from: 0 }
    }

    /// Bytes of the current release at `offset` (from disk after a restart, or from the
    /// collector). Bytes at another offset than the next one needed are refused (the download
    /// asks again from [`Progress::More`]).
    pub fn bytes(&mut self, offset: u64, bytes: &[u8]) -> Result<Progress, Refusal> {
        let Some(d) = self.current.as_mut() else {
            return Err(Refusal::NotOffered);
        };
        if d.done {
            return Ok(Progress::Complete);
        }
        let seen = d.check.seen();
        if offset != seen {
            return Ok(Progress::More { next: seen });
        }
        let first = seen == 0 && !bytes.is_empty();
        if let Err(refusal) = d.check.update(bytes) {
            let v = d.manifest.version;
            self.fail(v, UpdateState::Refused, &refusal.to_string(), 0);
            return Err(refusal);
        }
        let (version, now, size) = (d.manifest.version, d.check.seen(), d.manifest.size);
        if now < size {
            if first {
                self.report(version, UpdateState::Downloading, now, "");
            }
            return Ok(Progress::More { next: now });
        }
        self.complete()
    }

    /// The collector said the artifact ends here (no more bytes will come).
    pub fn end(&mut self) -> Result<Progress, Refusal> {
        match self.current.as_ref() {
            Some(d) if d.done => Ok(Progress::Complete),
            Some(_) => self.complete(),
            None => Err(Refusal::NotOffered),
        }
    }

    fn complete(&mut self) -> Result<Progress, Refusal> {
        let Some(d) = self.current.as_mut() else {
            return Err(Refusal::NotOffered);
        };
        let version = d.manifest.version;
        match d.check.clone().finish() {
            Ok(()) => {
                d.done = true;
                let size = d.manifest.size;
                self.report(version, UpdateState::Downloaded, size, "");
                Ok(Progress::Complete)
            }
            Err(refusal) => {
                self.fail(version, UpdateState::Refused, &refusal.to_string(), 0);
                Err(refusal)
            }
        }
    }

    /// The download of `version` stopped for want of disk space (none free before it started,
    /// or a write failed): reported as failed with `why`, but not remembered — the space may be
    /// freed, and the next offer (the next session) tries again without an administrator.
    pub fn out_of_space(&mut self, version: ReleaseVersion, why: &str) {
        self.conclude(version, UpdateState::Failed, why, 0);
    }

    /// What the installer says happened to `version`; final failures are remembered so the
    /// version is not retried until an administrator raises the retry epoch.
    pub fn installer(&mut self, version: ReleaseVersion, state: UpdateState, why: &str) {
        match state {
            UpdateState::RolledBack | UpdateState::Failed => self.fail(version, state, why, 0),
            _ => {
                let bytes = self.current.as_ref().map_or(0, |d| d.manifest.size);
                self.report(version, state, bytes, why);
                if state == UpdateState::Healthy {
                    self.facts.running = version;
                    self.current = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::release::testkeys::{keypair as key, public};
    use sha2::Digest as _;

    fn sig(k: &ring::signature::Ed25519KeyPair, artifact: &[u8], version: &str) -> Vec<u8> {
        let digest = sha2::Sha256::digest(artifact).into();
        let v = version.parse().unwrap();
        Manifest::sign("parta-agent", v, "x86_64-linux", artifact.len() as u64, digest, k)
            .render()
            .into_bytes()
    }

    fn device(running: &str) -> Updater {
        let facts = DeviceFacts {
            name: "parta-agent".into(),
            target: "x86_64-linux".into(),
            running: running.parse().unwrap(),
            trusted: vec![public(&key(1))],
        };
        Updater::new(facts, BTreeMap::new())
    }

    fn states(u: &mut Updater) -> Vec<&'static str> {
        u.take_reports().iter().map(|r| r.state.as_str()).collect()
    }

    const ARTIFACT: &[u8; 64] = b"an agent build, version B, padded to sixty-four bytes...........";

    #[test]
    fn an_offer_downloads_resumes_after_a_restart_and_ends_downloaded() {
        let offer = sig(&key(1), ARTIFACT, "0.2.0");
        let mut u = device("0.1.0");
        assert_eq!(u.offer(&offer, 0), OfferDecision::Download { from: 0 });
        assert_eq!(u.bytes(0, &ARTIFACT[..20]).unwrap(), Progress::More { next: 20 });
        // The same offer again mid-download: continue where it is.
        assert_eq!(u.offer(&offer, 0), OfferDecision::Download { from: 20 });
        // Bytes at the wrong offset are not taken.
        assert_eq!(u.bytes(30, &ARTIFACT[30..40]).unwrap(), Progress::More { next: 20 });
        assert_eq!(states(&mut u), ["offered", "downloading"]);

        // The agent restarts: a new machine, fed the 20 bytes on disk, then the rest.
        let mut u = device("0.1.0");
        assert_eq!(u.offer(&offer, 0), OfferDecision::Download { from: 0 });
        assert_eq!(u.bytes(0, &ARTIFACT[..20]).unwrap(), Progress::More { next: 20 });
        assert_eq!(u.bytes(20, &ARTIFACT[20..]).unwrap(), Progress::Complete);
        assert_eq!(u.offer(&offer, 0), OfferDecision::Nothing, "downloaded: waiting for the installer");
        assert_eq!(states(&mut u), ["offered", "downloading", "downloaded"]);
        let v = "0.2.0".parse().unwrap();
        u.installer(v, UpdateState::Installing, "");
        u.installer(v, UpdateState::Installed, "");
        u.installer(v, UpdateState::Healthy, "");
        assert_eq!(states(&mut u), ["installing", "installed", "healthy"]);
        assert_eq!(u.offer(&offer, 0), OfferDecision::Nothing, "runs it now");
    }

    #[test]
    fn bad_releases_are_refused_reported_and_not_retried_until_an_admin_says_so() {
        let mut u = device("0.2.0");
        // Bytes before any offer are nobody's.
        assert_eq!(u.bytes(0, b"x"), Err(Refusal::NotOffered));
        assert_eq!(u.end(), Err(Refusal::NotOffered));
        // Older, another key, a damaged signature file.
        let older = sig(&key(1), ARTIFACT, "0.1.5");
        assert!(matches!(u.offer(&older, 0), OfferDecision::Refused(Refusal::NotNewer { .. })));
        let foreign = sig(&key(2), ARTIFACT, "0.3.0");
        assert!(matches!(u.offer(&foreign, 0), OfferDecision::Refused(Refusal::UnknownKey { .. })));
        assert!(matches!(u.offer(b"junk", 0), OfferDecision::Refused(Refusal::Malformed(_))));
        let reports = u.take_reports();
        assert_eq!(reports.iter().map(|r| r.state).collect::<Vec<_>>(), [UpdateState::Refused; 2]);
        assert!(reports[1].detail.contains("does not trust"), "{reports:?}");
        // 0.3.0 failed here: offered again, not tried; with a higher retry epoch, tried.
        assert!(matches!(u.offer(&foreign, 0), OfferDecision::AlreadyFailed { .. }));
        assert!(matches!(u.offer(&foreign, 1), OfferDecision::Refused(Refusal::UnknownKey { .. })));

        // Truncated (the collector ends early) and altered (a flipped bit).
        let good = sig(&key(1), ARTIFACT, "0.4.0");
        assert_eq!(u.offer(&good, 0), OfferDecision::Download { from: 0 });
        u.bytes(0, &ARTIFACT[..10]).unwrap();
        assert!(matches!(u.end(), Err(Refusal::Truncated { expected: 64, got: 10 })));
        // Remembered with the offer's epoch (0): epoch 1 tries it again.
        assert!(matches!(u.offer(&good, 0), OfferDecision::AlreadyFailed { .. }));
        assert_eq!(u.offer(&good, 1), OfferDecision::Download { from: 0 });
        let mut flipped = ARTIFACT.to_vec();
        flipped[5] ^= 4;
        assert!(matches!(u.bytes(0, &flipped), Err(Refusal::Altered { .. })));
        let last = u.take_reports().pop().unwrap();
        assert_eq!((last.state, last.bytes), (UpdateState::Refused, 64));
        assert!(last.detail.starts_with("altered"), "{last:?}");

        // A version the installer rolled back is not retried either.
        let five = sig(&key(1), ARTIFACT, "0.5.0");
        assert_eq!(u.offer(&five, 0), OfferDecision::Download { from: 0 });
        assert_eq!(u.bytes(0, ARTIFACT.as_slice()).unwrap(), Progress::Complete);
        u.installer("0.5.0".parse().unwrap(), UpdateState::RolledBack, "not healthy within 2m");
        assert_eq!(
            u.offer(&five, 0),
            OfferDecision::AlreadyFailed { reason: "not healthy within 2m".into() }
        );
        assert!(u.failed().values().all(|f| f.state.is_final()));
    }

    #[test]
    fn a_download_stopped_by_a_full_disk_is_reported_and_tried_again_at_the_next_offer() {
        let offer = sig(&key(1), ARTIFACT, "0.2.0");
        let mut u = device("0.1.0");
        assert_eq!(u.offer(&offer, 0), OfferDecision::Download { from: 0 });
        u.bytes(0, &ARTIFACT[..30]).unwrap();
        u.out_of_space("0.2.0".parse().unwrap(), "No space left on device");
        let last = u.take_reports().pop().unwrap();
        assert_eq!(
            (last.state, last.bytes, last.detail.as_str()),
            (UpdateState::Failed, 30, "No space left on device")
        );
        assert!(u.current().is_none() && u.failed().is_empty(), "not remembered as failed");
        // The next offer (same epoch) starts it again from the beginning.
        assert_eq!(u.offer(&offer, 0), OfferDecision::Download { from: 0 });
        assert_eq!(u.bytes(0, ARTIFACT.as_slice()).unwrap(), Progress::Complete);
    }

    proptest::proptest! {
        #[test]
        fn any_split_of_the_bytes_completes_and_any_corruption_is_refused(
            cuts in proptest::collection::vec(0usize..64, 0..8),
            flip in proptest::option::of((0usize..64, 1u8..=255)),
        ) {
            let offer = sig(&key(1), ARTIFACT, "0.2.0");
            let mut data = ARTIFACT.to_vec();
            if let Some((at, x)) = flip { data[at] ^= x; }
            let mut u = device("0.1.0");
            proptest::prop_assert_eq!(u.offer(&offer, 0), OfferDecision::Download { from: 0 });
            let mut bounds: Vec<usize> = cuts;
            bounds.push(0);
            bounds.push(data.len());
            bounds.sort_unstable();
            bounds.dedup();
            let mut outcome = None;
            for w in bounds.windows(2) {
                match u.bytes(w[0] as u64, &data[w[0]..w[1]]) {
                    Ok(Progress::Complete) => { outcome = Some(Ok(())); break; }
                    Ok(Progress::More { next }) => proptest::prop_assert_eq!(next, w[1] as u64),
                    Err(r) => { outcome = Some(Err(r)); break; }
                }
            }
            match (flip, outcome) {
                (None, Some(Ok(()))) => {}
                (Some(_), Some(Err(Refusal::Altered { .. }))) => {}
                (f, o) => proptest::prop_assert!(false, "flip {:?} ended {:?}", f, o),
            }
        }
    }
}
