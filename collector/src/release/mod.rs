//! Signed releases of the agent, offered to devices over their sessions.
//!
//! A region signs a build with `parta-release sign` (the private key never on the collector);
//! `parta-collector release add FILE.sig FILE --channel pilot|stable` verifies it against the
//! collector's `release_key` and keeps the artifact in `DATA_DIR/releases/`; `release rollout`
//! says who is offered a channel's release (a share of all devices, chosen by a hash of the
//! device id so that 50 % includes the first 10 %, and/or scopes); `release status` shows where
//! every device stands with every release. Devices verify everything again against the key
//! pinned at enrollment; the collector is only a courier.
//!
//! - [`book`]: releases and rollouts in force, in memory, refreshed every few seconds; which
//!   release a device is offered.
//! - [`serve`]: a session's side — the offer, the artifact in chunks under a bandwidth bound
//!   shared by all sessions, the device's states recorded in `update_status`.
//! - [`commands`]: `parta-collector release add|rollout|retry|status|list`.
//!
//! [`summarize`] counts devices per release and state for `release status` and the web UI's
//! `/releases` page.

pub mod book;
pub mod commands;
pub mod serve;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use parta_protocol::release::ReleaseVersion;

use crate::storage::releases::{RolloutRow, UpdateStatusRow};

/// A release channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Channel {
    /// A few devices first.
    Pilot,
    /// Everybody, staged.
    Stable,
}

impl Channel {
    /// Stable name (ClickHouse, CLI).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pilot => "pilot",
            Self::Stable => "stable",
        }
    }

    /// The channel named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pilot, Self::Stable].into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the artifact of a release is kept: `DATA_DIR/releases/PRODUCT-VERSION-TARGET` (names
/// checked by the signature file's parser: a product and target are `[a-z0-9_-]`, a version
/// digits and dots).
pub fn artifact_path(data_dir: &Path, product: &str, version: ReleaseVersion, target: &str) -> PathBuf {
    data_dir.join("releases").join(format!("{product}-{version}-{target}"))
}

/// The product the collector offers.
pub const AGENT: &str = "parta-agent";

/// Devices per (release, state), with how many gave each reason.
pub type Summary = BTreeMap<(ReleaseVersion, String), (u64, BTreeMap<String, u64>)>;

/// Counts `rows` (each device's latest state with each release) per release and state; rows
/// whose version does not parse are skipped.
pub fn summarize(rows: &[UpdateStatusRow]) -> Summary {
    let mut per = Summary::new();
    for r in rows {
        let Ok(v) = r.version.parse::<ReleaseVersion>() else { continue };
        let e = per.entry((v, r.state.clone())).or_default();
        e.0 += 1;
        if !r.detail.is_empty() {
            *e.1.entry(r.detail.clone()).or_default() += 1;
        }
    }
    per
}

/// True for the states that end a release on a device without it running: the ones an
/// administrator looks at.
pub fn is_problem(state: &str) -> bool {
    matches!(state, "failed" | "refused" | "rolled_back")
}

/// Whom a rollout offers its release to, in parts: `N % <of_devices>` (when it names a share, or
/// nothing else), then its scopes.
pub fn offered_to(r: &RolloutRow, of_devices: &str) -> Vec<String> {
    let mut parts = Vec::new();
    if r.percent > 0 || r.scopes.is_empty() {
        parts.push(format!("{} % {of_devices}", r.percent));
    }
    parts.extend(r.scopes.iter().cloned());
    parts
}
