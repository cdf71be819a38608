//! A session's side of releases: after the agent says it takes releases (`Update(Ready)`), the
//! collector offers the newest release a rollout gives the device, serves the artifact one
//! chunk per fetch — within a bandwidth bound all sessions share — and records every state the
//! device reports in `update_status`.
//!
//! Everything the agent sends is bounded: one `Ready` per session, a platform name and details
//! of bounded length, fetches only of the release offered in this session and inside its size,
//! at most [`MAX_STATUSES`] states per session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use parta_protocol::DeviceId;
use parta_protocol::release::ReleaseVersion;
use parta_protocol::update::{
    MAX_CHUNK, MAX_DETAIL, MAX_TARGET, ReleaseMessage, StatusReport, UpdateMessage,
};
use tokio::sync::watch;

use super::book::{Offer, ReleaseBook};
use crate::policy::PolicyScope;
use crate::storage::releases::UpdateStatusRow;

/// Update states one session may report, at most (a real agent reports a handful).
pub const MAX_STATUSES: u32 = 64;

/// Where sessions put the states devices report.
pub type StatusSender = crate::storage::queue::RowSender<UpdateStatusRow>;

/// Starts the task writing update states.
pub fn start_writer(store: crate::storage::Store) -> (StatusSender, tokio::task::JoinHandle<()>) {
    crate::storage::queue::start(store, "update_status")
}

/// The bandwidth all sessions share for artifacts: chunks leave no faster than this on average
/// (one chunk may go at once).
#[derive(Debug)]
pub struct Bandwidth {
    bytes_per_sec: f64,
    next_free: Mutex<Instant>,
}

impl Bandwidth {
    /// A bound of `mbit` megabits per second (at least 1).
    pub fn new(mbit: u32) -> Self {
        let bytes_per_sec = f64::from(mbit.max(1)) * 1_000_000.0 / 8.0;
        Self { bytes_per_sec, next_free: Mutex::new(Instant::now()) }
    }

    /// Waits for the turn to send `n` bytes.
    pub async fn take(&self, n: usize) {
        let start = self.schedule(Instant::now(), n);
        tokio::time::sleep_until(start).await;
    }

    /// When `n` bytes asked for at `now` may go: after everything scheduled before them.
    fn schedule(&self, now: Instant, n: usize) -> Instant {
        let cost = Duration::from_secs_f64((n as f64 / self.bytes_per_sec).min(3600.0));
        let mut next = self.next_free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = (*next).max(now);
        *next = start + cost;
        start
    }
}

/// What the session needs from the collector.
#[derive(Debug, Clone)]
pub struct Courier {
    /// Releases in force.
    pub book: Arc<ReleaseBook>,
    /// Where states go.
    pub status: StatusSender,
    /// The shared bound.
    pub bandwidth: Arc<Bandwidth>,
}

/// A fetch to answer.
#[derive(Debug)]
pub struct Fetch {
    path: std::path::PathBuf,
    version: ReleaseVersion,
    offset: u64,
    len: usize,
    end: bool,
}

impl Fetch {
    /// Reads the chunk (after waiting for the bandwidth) and makes the answer.
    pub async fn answer(self, bandwidth: Arc<Bandwidth>) -> Result<ReleaseMessage, String> {
        bandwidth.take(self.len).await;
        let Fetch { path, version, offset, len, end } = self;
        let bytes = tokio::task::spawn_blocking(move || read_at(&path, offset, len))
            .await
            .map_err(|e| e.to_string())??;
        // A file shorter than its signature says (damaged on disk): the collector has no more,
        // and says so; the device refuses the release as truncated.
        let end = end || bytes.len() < len;
        Ok(ReleaseMessage::Chunk { version, offset, bytes, end })
    }
}

fn read_at(path: &std::path::Path, offset: u64, len: usize) -> Result<Vec<u8>, String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(offset)).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(buf)
}

/// One session's side.
#[derive(Debug)]
pub struct UpdateSession {
    courier: Courier,
    device: DeviceId,
    running: Option<ReleaseVersion>,
    running_text: String,
    target: Option<String>,
    offered: Option<Offer>,
    statuses: u32,
    changes: watch::Receiver<u64>,
}

impl UpdateSession {
    /// A session of `device`, whose `Hello` says it runs `agent_version`.
    pub fn new(courier: Courier, device: DeviceId, agent_version: &str) -> Self {
        let mut changes = courier.book.subscribe();
        changes.mark_unchanged();
        Self {
            courier,
            device,
            running: agent_version.parse().ok(),
            running_text: agent_version.to_owned(),
            target: None,
            offered: None,
            statuses: 0,
            changes,
        }
    }

    /// Waits until releases or rollouts change.
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The offer to send now, if the device takes releases and a rollout gives it one it was
    /// not offered in this session yet.
    pub fn next_offer(&mut self, scopes: &[PolicyScope]) -> Option<ReleaseMessage> {
        let target = self.target.as_deref()?;
        let offer = self.courier.book.offer_for(self.device, scopes, target, self.running)?;
        if self.offered.as_ref().is_some_and(|o| o.manifest == offer.manifest && o.retry == offer.retry) {
            return None;
        }
        tracing::info!(device = %self.device, version = %offer.manifest.version, retry = offer.retry,
            "offering the device a release");
        let msg = ReleaseMessage::Offer { signature: offer.signature.clone(), retry: offer.retry };
        self.offered = Some(offer);
        Some(msg)
    }

    /// A message from the agent: `Ok(Some(fetch))` when a chunk is to be sent; an error (for
    /// the `Reject`) when it breaks a bound.
    pub fn on_message(&mut self, msg: UpdateMessage) -> Result<Option<Fetch>, String> {
        match msg {
            UpdateMessage::Ready { target, latest } => {
                if self.target.is_some() {
                    return Err("Update(Ready) sent twice in one session".into());
                }
                if target.is_empty() || target.len() > MAX_TARGET {
                    return Err(format!("Update(Ready): a platform name of {} bytes", target.len()));
                }
                self.target = Some(target);
                if let Some(s) = latest {
                    self.on_status(&s)?;
                }
                Ok(None)
            }
            UpdateMessage::Status(s) => {
                self.on_status(&s)?;
                Ok(None)
            }
            UpdateMessage::Fetch { version, offset } => {
                let Some(offer) = self.offered.as_ref().filter(|o| o.manifest.version == version) else {
                    return Err(format!("Update(Fetch) of {version}, which this session did not offer"));
                };
                let size = offer.manifest.size;
                if offset > size {
                    return Err(format!(
                        "Update(Fetch) of {version} from byte {offset}, beyond its {size} bytes"
                    ));
                }
                let len = usize::try_from((size - offset).min(MAX_CHUNK as u64)).unwrap_or(MAX_CHUNK);
                let end = offset + len as u64 >= size;
                Ok(Some(Fetch { path: offer.path.clone(), version, offset, len, end }))
            }
        }
    }

    fn on_status(&mut self, s: &StatusReport) -> Result<(), String> {
        self.statuses += 1;
        if self.statuses > MAX_STATUSES {
            return Err(format!("more than {MAX_STATUSES} update states in one session"));
        }
        if s.detail.len() > MAX_DETAIL {
            return Err(format!("an update state's detail is longer than {MAX_DETAIL} bytes"));
        }
        if !self.courier.book.set().knows(s.version) {
            // Only a release this collector offers can have states; a state of any other version
            // is something the device made up (or a release added elsewhere not yet read here:
            // the device says its latest state again in its next session).
            tracing::warn!(device = %self.device, version = %s.version, state = s.state.as_str(),
                "the device reports a state of a release the collector does not have; not recorded");
            return Ok(());
        }
        let level_warn = super::is_problem(s.state.as_str());
        if level_warn {
            tracing::warn!(device = %self.device, version = %s.version, state = s.state.as_str(), detail = %s.detail,
                "the device reports an update that did not happen");
        } else {
            tracing::info!(device = %self.device, version = %s.version, state = s.state.as_str(), bytes = s.bytes,
                "the device reports an update state");
        }
        if s.state == parta_protocol::update::UpdateState::Healthy {
            self.running = Some(s.version);
        }
        self.courier.status.send(UpdateStatusRow {
            device_id: self.device.0,
            version: s.version.to_string(),
            state: s.state.as_str().to_owned(),
            bytes: s.bytes,
            detail: s.detail.clone(),
            running: self.running_text.clone(),
            at: crate::clock::rollup_version(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::releases::{ReleaseRow, RolloutRow};
    use parta_protocol::update::UpdateState;

    /// A session of a device to which a rollout offers 0.2.0 (a real signature file, by a key
    /// the device need not know: the collector is only a courier).
    fn session() -> (UpdateSession, tokio::sync::mpsc::Receiver<UpdateStatusRow>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let sig = include_str!("../../../protocol/tests/golden/release.sig");
        let release = ReleaseRow {
            product: "parta-agent".into(),
            version: "0.2.0".into(),
            target: "x86_64-linux".into(),
            channel: "stable".into(),
            signature: sig.into(),
            size: 41,
            sha256: String::new(),
            added_ms: 0,
            author: String::new(),
        };
        let rollout = RolloutRow {
            channel: "stable".into(),
            version: "0.2.0".into(),
            percent: 100,
            scopes: vec![],
            retry: 0,
            at_ms: 0,
            author: String::new(),
            comment: String::new(),
        };
        let book = Arc::new(ReleaseBook::new(dir.path().to_owned()));
        book.replace(super::super::book::ReleaseSet::new(&[release], &[rollout]));
        let (status, rx) = crate::storage::queue::channel("update_status");
        let courier = Courier { book, status, bandwidth: Arc::new(Bandwidth::new(100)) };
        (UpdateSession::new(courier, DeviceId::random(), "0.1.0"), rx, dir)
    }

    fn v(s: &str) -> ReleaseVersion {
        s.parse().unwrap()
    }

    fn report(state: UpdateState, detail: &str) -> StatusReport {
        StatusReport { version: v("0.2.0"), state, bytes: 0, detail: detail.into() }
    }

    #[test]
    fn a_hostile_agent_cannot_fetch_what_it_was_not_offered_or_flood_states() {
        let (mut s, mut rows, _dir) = session();
        // Nothing offered before Ready; fetches of anything not offered are refused.
        assert!(s.next_offer(&[]).is_none());
        let fetch = |version: &str, offset: u64| UpdateMessage::Fetch { version: v(version), offset };
        assert!(s.on_message(fetch("0.2.0", 0)).unwrap_err().contains("did not offer"));
        let ready = || UpdateMessage::Ready { target: "x86_64-linux".into(), latest: None };
        s.on_message(ready()).unwrap();
        assert!(s.on_message(ready()).unwrap_err().contains("twice"));
        assert!(matches!(s.next_offer(&[]), Some(ReleaseMessage::Offer { retry: 0, .. })));
        assert!(s.next_offer(&[]).is_none(), "offered once per session");
        assert!(s.on_message(fetch("0.3.0", 0)).unwrap_err().contains("did not offer"));
        assert!(s.on_message(fetch("0.2.0", 42)).unwrap_err().contains("beyond"));
        let ok = s.on_message(fetch("0.2.0", 40)).unwrap().unwrap();
        assert_eq!((ok.offset, ok.len, ok.end), (40, 1, true));
        // A platform name or a detail beyond the bounds ends the session.
        let (mut s2, _, _d2) = session();
        let long = UpdateMessage::Ready { target: "x".repeat(MAX_TARGET + 1), latest: None };
        assert!(s2.on_message(long).is_err());
        let detail = "d".repeat(MAX_DETAIL + 1);
        assert!(s.on_message(UpdateMessage::Status(report(UpdateState::Failed, &detail))).is_err());
        // States are recorded as said, up to the bound per session.
        s.on_message(UpdateMessage::Status(report(UpdateState::Downloading, ""))).unwrap();
        let row = rows.try_recv().unwrap();
        assert_eq!(
            (row.version.as_str(), row.state.as_str(), row.running.as_str()),
            ("0.2.0", "downloading", "0.1.0")
        );
        let mut refused = None;
        for i in 0..MAX_STATUSES {
            if let Err(e) = s.on_message(UpdateMessage::Status(report(UpdateState::Downloading, ""))) {
                refused = Some((i, e));
                break;
            }
        }
        let (i, e) = refused.expect("the flood is cut");
        assert!(e.contains("more than"), "{e}");
        assert!(i < MAX_STATUSES);
    }

    #[test]
    fn a_state_of_a_release_the_collector_does_not_have_is_not_recorded() {
        let (mut s, mut rows, _dir) = session();
        let made_up = StatusReport {
            version: v("9.9.9"),
            state: UpdateState::Healthy,
            bytes: 0,
            detail: String::new(),
        };
        s.on_message(UpdateMessage::Ready { target: "x86_64-linux".into(), latest: Some(made_up.clone()) })
            .unwrap();
        s.on_message(UpdateMessage::Status(made_up)).unwrap();
        assert!(rows.try_recv().is_err(), "nothing recorded");
        // Nor does it make the collector believe the device runs 9.9.9: 0.2.0 is still offered.
        assert!(matches!(s.next_offer(&[]), Some(ReleaseMessage::Offer { .. })));
        s.on_message(UpdateMessage::Status(report(UpdateState::Offered, ""))).unwrap();
        assert_eq!(rows.try_recv().unwrap().state, "offered");
    }

    #[test]
    fn a_device_running_the_release_or_a_newer_one_is_not_offered_it() {
        let (s, _, dir) = session();
        let book = &s.courier.book;
        let d = DeviceId::random();
        assert!(book.offer_for(d, &[], "x86_64-linux", Some(v("0.2.0"))).is_none());
        assert!(book.offer_for(d, &[], "x86_64-linux", Some(v("0.3.0"))).is_none());
        assert!(book.offer_for(d, &[], "aarch64-linux", Some(v("0.1.0"))).is_none(), "another platform");
        let o = book.offer_for(d, &[], "x86_64-linux", Some(v("0.1.0"))).unwrap();
        assert_eq!(o.path, dir.path().join("releases/parta-agent-0.2.0-x86_64-linux"));
    }

    #[test]
    fn the_bandwidth_bound_paces_chunks() {
        // 8 Mbit/s = 1 MB/s: chunks of 100 kB asked for at once go 0.1 s apart; after a pause
        // longer than the backlog, the next goes at once.
        let b = Bandwidth::new(8);
        let t0 = Instant::now();
        let starts: Vec<Duration> = (0..10).map(|_| b.schedule(t0, 100_000) - t0).collect();
        for (i, s) in starts.iter().enumerate() {
            assert_eq!(s.as_millis(), 100 * i as u128, "{starts:?}");
        }
        let later = t0 + Duration::from_secs(5);
        assert_eq!(b.schedule(later, 100_000), later);
    }
}
