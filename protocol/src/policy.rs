//! The configuration exchange: the collector offers a device its effective policy (a TOML
//! document of agent settings, merged from the scopes it belongs to) and the agent answers with
//! the version it runs — or the exact reason it refused one, keeping the previous in force.
//!
//! ```text
//! agent                                   collector
//!   Hello { running_policy: v7 }  ──▶
//!                                   ◀──  Welcome
//!                                   ◀──  Policy { v9, h9, document }   (at connect, if h9 ≠ h7,
//!   PolicyStatus { v9, h9, Applied } ──▶                               and on every change)
//! ```
//!
//! [`AgentPolicy`] is the agent's side as a state machine (sans-IO): it decides what to do with
//! an offer — apply it, or answer at once because it is the one already running or already
//! refused, or refuse it because it is older than the one running or damaged — and what to
//! answer. Applying (parsing, validating, swapping settings, writing the last-known-good file)
//! is the agent's.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest policy document, bytes.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Longest refusal key or reason, bytes.
pub const MAX_REASON: usize = 512;

/// A policy's identity: its version (increasing per device with every change, rollbacks
/// included) and the SHA-256 of its document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyId {
    /// Version.
    pub version: u64,
    /// SHA-256 of the document.
    pub hash: [u8; 32],
}

impl PolicyId {
    /// The id of `document` at `version`.
    pub fn of(version: u64, document: &str) -> Self {
        Self { version, hash: hash(document) }
    }

    /// `v9 (3f1c…)`: for logs and the UI.
    pub fn short(&self) -> String {
        let hex: String = self.hash[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("v{} ({hex}…)", self.version)
    }
}

/// SHA-256 of a policy document.
pub fn hash(document: &str) -> [u8; 32] {
    Sha256::digest(document.as_bytes()).into()
}

/// Collector → agent: the device's effective policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOffer {
    /// Version and hash.
    pub id: PolicyId,
    /// The effective settings as TOML (secrets of targets this device polls included).
    pub document: String,
}

/// What the agent did with a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyOutcome {
    /// In force.
    Applied,
    /// Not applied; the previous policy stays in force.
    Refused {
        /// The setting at fault, e.g. `snmp.target[2].community` (empty: the whole document).
        key: String,
        /// Why, for people.
        reason: String,
    },
}

/// Agent → collector: the outcome of an offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// The policy the outcome is about.
    pub id: PolicyId,
    /// Applied or refused.
    pub outcome: PolicyOutcome,
}

/// What the agent must do with an offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Parse, validate and apply the document, then report with [`AgentPolicy::applied`] or
    /// [`AgentPolicy::refused`].
    Apply,
    /// Nothing to apply: send this answer.
    Answer(PolicyStatus),
}

/// The agent's side of the exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentPolicy {
    running: Option<PolicyId>,
    refused: Option<PolicyStatus>,
}

impl AgentPolicy {
    /// State after a start: the last-known-good policy the agent runs, if any.
    pub fn new(running: Option<PolicyId>) -> Self {
        Self { running, refused: None }
    }

    /// The policy in force.
    pub fn running(&self) -> Option<PolicyId> {
        self.running
    }

    /// The last offer refused, with why.
    pub fn last_refusal(&self) -> Option<&PolicyStatus> {
        self.refused.as_ref()
    }

    /// Decides what to do with an offer. An offer whose document does not match its hash, or
    /// that is too large, is refused without being parsed; one older than the policy in force
    /// is refused (a collector that has not seen the latest change must not roll a device
    /// back); the policy already running or already refused is answered again without being
    /// applied again.
    pub fn offer(&mut self, offer: &PolicyOffer) -> Decision {
        let refuse = |reason: String| PolicyStatus {
            id: offer.id,
            outcome: PolicyOutcome::Refused { key: String::new(), reason },
        };
        if offer.document.len() > MAX_POLICY_BYTES {
            let s =
                refuse(format!("the document is {} bytes, at most {MAX_POLICY_BYTES}", offer.document.len()));
            self.refused = Some(s.clone());
            return Decision::Answer(s);
        }
        if hash(&offer.document) != offer.id.hash {
            // Not remembered as refused: the same id with the right document may follow.
            return Decision::Answer(refuse("the document does not match its hash".into()));
        }
        if let Some(r) = self.running {
            if r == offer.id {
                return Decision::Answer(PolicyStatus { id: r, outcome: PolicyOutcome::Applied });
            }
            if offer.id.version < r.version {
                return Decision::Answer(refuse(format!(
                    "older than the policy in force ({}); the collector has not seen the latest change",
                    r.short()
                )));
            }
        }
        if let Some(s) = self.refused.as_ref().filter(|s| s.id == offer.id) {
            return Decision::Answer(s.clone());
        }
        Decision::Apply
    }

    /// The offer was applied (and saved as last-known-good): it is in force now.
    pub fn applied(&mut self, id: PolicyId) -> PolicyStatus {
        self.running = Some(id);
        self.refused = None;
        PolicyStatus { id, outcome: PolicyOutcome::Applied }
    }

    /// The offer was refused while applying; the previous policy stays in force.
    pub fn refused(&mut self, id: PolicyId, key: &str, reason: &str) -> PolicyStatus {
        let cut = |s: &str| {
            let mut end = s.len().min(MAX_REASON);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        };
        let s = PolicyStatus { id, outcome: PolicyOutcome::Refused { key: cut(key), reason: cut(reason) } };
        self.refused = Some(s.clone());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(version: u64, document: &str) -> PolicyOffer {
        PolicyOffer { id: PolicyId::of(version, document), document: document.into() }
    }

    #[test]
    fn a_new_policy_is_applied_then_answered_without_applying_again() {
        let mut a = AgentPolicy::new(None);
        let o = offer(1, "interval = \"30s\"\n");
        assert_eq!(a.offer(&o), Decision::Apply);
        let s = a.applied(o.id);
        assert_eq!(s.outcome, PolicyOutcome::Applied);
        assert_eq!(a.offer(&o), Decision::Answer(s), "a reconnect offers it again: answered, not re-applied");
        assert_eq!(a.running(), Some(o.id));
    }

    #[test]
    fn a_refused_policy_keeps_the_previous_and_is_refused_again_without_work() {
        let good = offer(1, "a = 1\n");
        let mut a = AgentPolicy::new(Some(good.id));
        let bad = offer(2, "snmp = 1\n");
        assert_eq!(a.offer(&bad), Decision::Apply);
        let s = a.refused(bad.id, "snmp", "expected a table");
        assert_eq!(a.running(), Some(good.id), "the previous policy stays in force");
        assert_eq!(a.offer(&bad), Decision::Answer(s.clone()));
        assert_eq!(a.last_refusal(), Some(&s));
        // A fixed one is applied and clears the refusal.
        let fixed = offer(3, "a = 2\n");
        assert_eq!(a.offer(&fixed), Decision::Apply);
        a.applied(fixed.id);
        assert_eq!(a.last_refusal(), None);
    }

    #[test]
    fn older_damaged_and_oversized_offers_are_refused_unparsed() {
        let mut a = AgentPolicy::new(Some(PolicyId::of(5, "x = 5\n")));
        let Decision::Answer(s) = a.offer(&offer(4, "x = 4\n")) else { panic!("older must not apply") };
        assert!(
            matches!(&s.outcome, PolicyOutcome::Refused { reason, .. } if reason.contains("older than the policy in force (v5"))
        );
        let mut damaged = offer(6, "x = 6\n");
        damaged.document.push('!');
        let Decision::Answer(s) = a.offer(&damaged) else { panic!("damaged must not apply") };
        assert!(matches!(&s.outcome, PolicyOutcome::Refused { reason, .. } if reason.contains("hash")));
        let big = offer(7, &"#".repeat(MAX_POLICY_BYTES + 1));
        assert!(matches!(a.offer(&big), Decision::Answer(_)));
        assert_eq!(a.running().map(|r| r.version), Some(5));
    }

    #[test]
    fn refusal_texts_are_bounded_on_char_boundaries() {
        let mut a = AgentPolicy::new(None);
        let long = "ж".repeat(MAX_REASON);
        let s = a.refused(PolicyId::of(1, ""), &long, &long);
        let PolicyOutcome::Refused { key, reason } = s.outcome else { unreachable!() };
        assert!(key.len() <= MAX_REASON && reason.len() <= MAX_REASON && key.starts_with('ж'));
    }
}
