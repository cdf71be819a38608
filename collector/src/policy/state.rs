//! Where a device stands with its policy, for the UI and the API: running its current
//! version, not yet (pending), not after `policy_drift_after` (drifted), or refused with the
//! device's reason.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::storage::policies::PolicyStatusRow;

/// A device's policy state in `/api/v1/devices` and the UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyState {
    /// `none` (no policy reaches it), `current`, `pending`, `drifted` or `refused`.
    pub state: String,
    /// Version of its effective policy now (0: none).
    pub current_version: u64,
    /// Version it runs, as it last said (0: none or never said).
    pub running_version: u64,
    /// The current version is older than `policy_drift_after` and not running.
    pub drifted: bool,
    /// When it refused the current version: the key at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_key: Option<String>,
    /// When it refused the current version: why, in the device's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_reason: Option<String>,
}

/// The state of a device whose effective policy is `current` (its version: the time of the
/// change, ms), given its latest status, at `now_ms`.
pub fn of(current: u64, status: Option<&PolicyStatusRow>, now_ms: u64, drift_after: Duration) -> PolicyState {
    let running = status.map_or(0, |s| s.running_version);
    let old = now_ms.saturating_sub(current) > u64::try_from(drift_after.as_millis()).unwrap_or(u64::MAX);
    let refusal = status.filter(|s| s.outcome == "refused" && s.answered_version == current);
    let drifted = running != current && old;
    let state = if current == 0 && running == 0 {
        "none"
    } else if running == current {
        "current"
    } else if refusal.is_some() {
        "refused"
    } else if drifted {
        "drifted"
    } else {
        "pending"
    };
    PolicyState {
        state: state.into(),
        current_version: current,
        running_version: running,
        drifted,
        refused_key: refusal.map(|s| s.key.clone()),
        refused_reason: refusal.map(|s| s.reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(running: u64, outcome: &str, answered: u64) -> PolicyStatusRow {
        PolicyStatusRow {
            device_id: uuid::Uuid::nil(),
            running_version: running,
            running_hash: String::new(),
            answered_version: answered,
            outcome: outcome.into(),
            key: "espd.ca_file".into(),
            reason: "cannot read".into(),
            version: 1,
        }
    }

    #[test]
    fn states() {
        let hour = Duration::from_secs(3600);
        let t = 1_800_000_000_000;
        assert_eq!(of(0, None, t, hour).state, "none");
        assert_eq!(of(t, Some(&status(t, "applied", t)), t + 1, hour).state, "current");
        let p = of(t, Some(&status(t - 5, "running", 0)), t + 1_000, hour);
        assert_eq!((p.state.as_str(), p.drifted), ("pending", false));
        let d = of(t, Some(&status(t - 5, "running", 0)), t + 3_600_001, hour);
        assert_eq!((d.state.as_str(), d.drifted), ("drifted", true));
        assert_eq!(of(t, None, t + 3_600_001, hour).state, "drifted", "never connected since");
        let r = of(t, Some(&status(t - 5, "refused", t)), t + 3_600_001, hour);
        assert_eq!(r.state, "refused");
        assert!(r.drifted, "a refusal is drift too");
        assert_eq!(r.refused_reason.as_deref(), Some("cannot read"));
        let stale = of(t, Some(&status(t - 5, "refused", t - 5)), t + 1, hour);
        assert_eq!(stale.state, "pending", "a refusal of an earlier version is not this one's");
    }
}
