//! `parta-agent status`: what the running agent last wrote to `STATE_DIR/status.json`, plus a
//! read-only look at the spool (depth, oldest unacknowledged report) that works whether or not
//! the agent is running.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cli::OutputFormat;
use crate::spool::{self, Stats};

/// File name in the state directory.
pub const FILE: &str = "status.json";

/// The running agent's snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Process id.
    pub pid: u32,
    /// When written, Unix seconds.
    pub updated_at: u64,
    /// Device id.
    pub device_id: String,
    /// School.
    pub school: String,
    /// When the device's credential expires, Unix seconds (absent before enrollment).
    #[serde(default)]
    pub credential_expires: Option<i64>,
    /// Collector addresses.
    pub collector: String,
    /// Start of the current session, Unix seconds (absent when disconnected).
    pub connected_since: Option<u64>,
    /// Last acknowledgement, Unix seconds.
    pub last_ack: Option<u64>,
    /// Last reason a session ended: Unix seconds and text.
    pub last_error: Option<(u64, String)>,
    /// Sessions since start.
    pub sessions: u64,
    /// Reports sent and not yet acknowledged.
    pub in_flight: usize,
    /// Seconds the collector has not acknowledged anything while reports were in flight.
    pub waiting_for_ack_s: Option<u64>,
    /// What the spool had to do since the agent started.
    pub spool_counters: crate::spool::Counters,
    /// The probe role's last round (absent when the role is off or no round ran yet).
    #[serde(default)]
    pub last_espd: Option<EspdRound>,
    /// The version the running agent carries.
    #[serde(default)]
    pub version: String,
}

/// A probe round in short.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EspdRound {
    /// Start, Unix seconds.
    pub at: u64,
    /// `reachability` or `throughput`.
    pub trigger: String,
    /// Checks run.
    pub checks: usize,
    /// Checks failed: `kind target: outcome`.
    pub failed: Vec<String>,
    /// Download at the IP layer, Mbit/s, when the round measured it.
    pub download_mbps: Option<f64>,
    /// The school's required speed, Mbit/s.
    pub required_mbps: u32,
}

impl EspdRound {
    /// The summary of a round.
    pub fn of(run: &parta_protocol::espd::ConnectivityRun) -> Self {
        use parta_protocol::espd::{CheckKind, CheckOutcome};
        #[allow(clippy::cast_precision_loss)] // a rate for people
        let download_mbps = run
            .checks
            .iter()
            .find(|c| c.kind == CheckKind::Download)
            .and_then(|c| c.throughput)
            .map(|t| (t.ip_bits_per_s as f64 / 1e4).round() / 100.0);
        Self {
            at: u64::try_from(run.started_at_ms / 1000).unwrap_or(0),
            trigger: run.trigger.as_str().to_owned(),
            checks: run.checks.len(),
            failed: run
                .checks
                .iter()
                .filter(|c| c.outcome != CheckOutcome::Ok)
                .map(|c| format!("{} {}: {}", c.kind.as_str(), c.target, c.outcome.as_str()))
                .collect(),
            download_mbps,
            required_mbps: run.required_mbps,
        }
    }
}

/// Unix seconds.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Writes the snapshot (atomically, not fsynced: it is informational).
pub fn write(state_dir: &Path, s: &Snapshot) {
    let path = state_dir.join(FILE);
    match serde_json::to_vec_pretty(s) {
        Ok(bytes) => {
            if let Err(e) = parta_common::fsutil::replace_file(&path, &bytes) {
                tracing::debug!(path = %path.display(), error = %e, "cannot write the status file");
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot encode the status"),
    }
}

/// What `status` prints.
#[derive(Debug, Serialize)]
struct Report {
    state_dir: PathBuf,
    running: bool,
    agent: Option<Snapshot>,
    spool: Option<Stats>,
    oldest_pending_age_s: Option<u64>,
    /// The latest release this device heard of and where it stands with it.
    update: Option<parta_protocol::update::StatusReport>,
}

/// `parta-agent status`.
pub fn show(state_dir: &Path, format: OutputFormat) -> anyhow::Result<()> {
    let snapshot: Option<Snapshot> =
        std::fs::read(state_dir.join(FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let running = snapshot.as_ref().is_some_and(|s| process_alive(s.pid));
    let spool_dir = state_dir.join("spool");
    let stats = if spool_dir.exists() { Some(spool::inspect(&spool_dir)?) } else { None };
    let now = unix(SystemTime::now());
    let now_ms = i64::try_from(now).unwrap_or(i64::MAX).saturating_mul(1000);
    let oldest_pending_age_s = stats
        .as_ref()
        .and_then(|s| s.oldest_pending)
        .map(|(_, t)| u64::try_from(now_ms.saturating_sub(t) / 1000).unwrap_or(0));
    let report = Report {
        state_dir: state_dir.to_owned(),
        running,
        agent: snapshot,
        spool: stats,
        oldest_pending_age_s,
        update: std::fs::read(state_dir.join(crate::update::files::DIR).join(crate::update::files::LATEST))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()),
    };
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        OutputFormat::Text => write_text(&mut out, &report, now)?,
    }
    Ok(())
}

fn ago(now: u64, t: u64) -> String {
    format!("{} ago", humantime::format_duration(Duration::from_secs(now.saturating_sub(t))))
}

fn write_text(out: &mut impl std::io::Write, r: &Report, now: u64) -> std::io::Result<()> {
    writeln!(out, "state directory:  {}", r.state_dir.display())?;
    if let Some(u) = &r.update {
        let detail = if u.detail.is_empty() { String::new() } else { format!(" — {}", u.detail) };
        writeln!(out, "latest release:   {} {}{detail}", u.version, u.state.as_str())?;
    }
    match &r.agent {
        Some(a) => {
            writeln!(
                out,
                "agent:            {} (pid {}, status written {})",
                if r.running { "running" } else { "not running" },
                a.pid,
                ago(now, a.updated_at)
            )?;
            writeln!(out, "device:           {} (school {})", a.device_id, a.school)?;
            if !a.version.is_empty() {
                writeln!(out, "version:          {}", a.version)?;
            }
            match a.credential_expires {
                Some(t) => writeln!(
                    out,
                    "credential:       valid until {}",
                    crate::enroll::rfc3339_ms(t.saturating_mul(1000))
                )?,
                None => writeln!(out, "credential:       none yet (the agent enrolls with its token)")?,
            }
            let conn = a.connected_since.map_or_else(
                || "not connected".to_owned(),
                |t| {
                    format!(
                        "connected for {}",
                        humantime::format_duration(Duration::from_secs(now.saturating_sub(t)))
                    )
                },
            );
            writeln!(out, "collector:        {} — {conn}, {} sessions", a.collector, a.sessions)?;
            writeln!(
                out,
                "last ack:         {}",
                a.last_ack.map_or_else(|| "never".to_owned(), |t| ago(now, t))
            )?;
            if let Some(w) = a.waiting_for_ack_s {
                writeln!(
                    out,
                    "waiting:          {} reports in flight, no acknowledgement for {w} s",
                    a.in_flight
                )?;
            }
            if let Some((t, e)) = &a.last_error {
                writeln!(out, "last error:       {} ({})", e, ago(now, *t))?;
            }
            if let Some(e) = &a.last_espd {
                let speed = e.download_mbps.map_or_else(String::new, |m| {
                    format!("; download {m:.1} Mbit/s of {} required", e.required_mbps)
                });
                writeln!(
                    out,
                    "ЕСПД checks:      {} round {}: {} checks, {} failed{speed}",
                    e.trigger,
                    ago(now, e.at),
                    e.checks,
                    e.failed.len()
                )?;
                for f in &e.failed {
                    writeln!(out, "                  {f}")?;
                }
            }
        }
        None => writeln!(out, "agent:            never ran here (no {FILE})")?,
    }
    if let Some(s) = &r.spool {
        writeln!(
            out,
            "spool:            {} reports unacknowledged, {} segments, {} KiB; next sequence {}, acknowledged up to {}",
            s.pending,
            s.segments,
            s.bytes / 1024,
            s.next_seq,
            s.acked_up_to
        )?;
        if let (Some((seq, _)), Some(age)) = (s.oldest_pending, r.oldest_pending_age_s) {
            writeln!(
                out,
                "oldest pending:   #{seq}, taken {} ago",
                humantime::format_duration(Duration::from_secs(age))
            )?;
        }
    }
    if let Some(a) = &r.agent {
        let c = &a.spool_counters;
        if c.thinned + c.expired + c.disk_full + c.corrupt + c.torn_bytes > 0 {
            writeln!(
                out,
                "spool repairs:    thinned {}, expired {}, disk full {}, corrupt {} reports (reported to the collector); torn bytes cut {}",
                c.thinned, c.expired, c.disk_full, c.corrupt, c.torn_bytes
            )?;
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    false
}
