//! Messages exchanged on the control stream of a connection.
//!
//! A session is: agent → `Hello`; collector → `Welcome` or `Reject`; then the agent sends
//! `Report`s (usually oldest first, the newest ahead of a backlog) and the collector answers with
//! `Ack`s — ranges of sequence numbers — once the reports are durable. Either side may end the session; the collector says why with a `Reject`.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sample::Sample;
use crate::seqset::SeqRange;

/// Stable identity of a device, generated once by the agent and kept in its state directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceId(pub Uuid);

impl DeviceId {
    /// A new random identity.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// What kind of device an agent reports for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A PC or laptop running the agent.
    Computer,
    /// An interactive panel: one whose built-in compute module runs the agent, or one attached
    /// to a computer and reported by that computer's agent.
    Panel,
    /// A monitor attached to a computer, reported by the computer's agent. Agents never declare
    /// this kind for themselves.
    Monitor,
}

impl DeviceKind {
    /// Name used in configuration files, the API and ClickHouse.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Computer => "computer",
            Self::Panel => "panel",
            Self::Monitor => "monitor",
        }
    }

    /// Every kind an agent may declare for itself, for help texts and parsers.
    pub const ALL: [DeviceKind; 2] = [Self::Computer, Self::Panel];
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown device kind {s:?}, expected one of: computer, panel"))
    }
}

/// How an agent proves it may report for a school.
///
/// Per-device client certificates will be added as a new variant; the collector then takes the
/// identity from the TLS layer and the variant only names which certificate was used.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Credentials {
    /// A per-school enrollment token created with `parta-collector token create`.
    EnrollToken(String),
}

impl Credentials {
    /// The enrollment token, when these credentials are one.
    pub fn enroll_token(&self) -> Option<&str> {
        match self {
            Self::EnrollToken(t) => Some(t),
        }
    }
}

impl fmt::Debug for Credentials {
    // Tokens are secrets: never print them, not even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnrollToken(_) => f.write_str("EnrollToken(<redacted>)"),
        }
    }
}

/// First message of every session, sent by the agent. The protocol version travels in the
/// envelope of every frame ([`crate::codec`]), so it is not repeated here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Version of the agent software, e.g. `0.1.0`.
    pub agent_version: String,
    /// The device this agent reports for.
    pub device_id: DeviceId,
    /// School the device belongs to, e.g. `74-0012`.
    pub school_id: String,
    /// What the device is.
    pub kind: DeviceKind,
    /// Proof that the agent may report for `school_id`.
    pub credentials: Credentials,
}

/// The collector's answer to an accepted `Hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Version of the collector software.
    pub collector_version: String,
    /// Every report of this device with a sequence number up to and including this one is
    /// already stored; the agent may forget them. 0 when nothing is stored yet.
    pub stored_up_to: u64,
    /// Highest sequence number of this device ever stored (≥ `stored_up_to`). An agent whose own
    /// counter is below it has lost its state and must continue numbering above it.
    pub highest_seq: u64,
}

/// A batch of samples taken at one moment, numbered per device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Per-device sequence number: starts at 1, increases by one per report, survives restarts.
    pub seq: u64,
    /// Agent's wall clock when the samples were taken, milliseconds since the Unix epoch.
    pub agent_time_ms: i64,
    /// What was measured.
    pub samples: Vec<Sample>,
}

/// Acknowledgement: the reports with these sequence numbers are durably stored by the
/// collector. Ranges are disjoint and ascending; reports may be acknowledged in any order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Stored sequence numbers.
    pub ranges: Vec<SeqRange>,
}

impl Ack {
    /// An acknowledgement of `first..=last`.
    pub fn range(first: u64, last: u64) -> Self {
        Self { ranges: vec![SeqRange::new(first, last)] }
    }

    /// An acknowledgement of a set.
    pub fn of(set: &crate::seqset::SeqSet) -> Self {
        Self { ranges: set.seq_ranges() }
    }
}

/// Why the collector ends a session. The collector sends it as the last frame and also closes
/// the QUIC connection with [`RejectReason::code`] as the application error code, so an agent
/// learns the reason even if the frame is lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable detail for logs; never contains secrets.
    pub detail: String,
}

/// Machine-readable reasons for ending a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RejectReason {
    /// The enrollment token is not known to the collector.
    UnknownToken,
    /// The enrollment token was revoked.
    RevokedToken,
    /// The token is valid, but for a different school than the one in `Hello`.
    SchoolMismatch,
    /// The envelope carries a protocol version the collector does not speak.
    UnsupportedVersion,
    /// A frame could not be decoded.
    Malformed,
    /// A frame announced a length above the limit.
    FrameTooLarge,
    /// A report broke a validation rule (see [`crate::validate`]).
    InvalidReport,
    /// A message arrived that is not allowed at this point of the session.
    UnexpectedMessage,
    /// Another session of the same device replaced this one.
    Superseded,
    /// The collector is shutting down; reconnect later.
    ShuttingDown,
    /// The collector failed internally; reconnect later.
    Internal,
}

impl RejectReason {
    /// Every reason, in code order.
    pub const ALL: [RejectReason; 11] = [
        Self::UnknownToken,
        Self::RevokedToken,
        Self::SchoolMismatch,
        Self::UnsupportedVersion,
        Self::Malformed,
        Self::FrameTooLarge,
        Self::InvalidReport,
        Self::UnexpectedMessage,
        Self::Superseded,
        Self::ShuttingDown,
        Self::Internal,
    ];

    /// Stable numeric code, used as the QUIC application close code. Code 0 means a normal close.
    pub fn code(self) -> u32 {
        match self {
            Self::UnknownToken => 1,
            Self::RevokedToken => 2,
            Self::SchoolMismatch => 3,
            Self::UnsupportedVersion => 4,
            Self::Malformed => 5,
            Self::FrameTooLarge => 6,
            Self::InvalidReport => 7,
            Self::UnexpectedMessage => 8,
            Self::Superseded => 9,
            Self::ShuttingDown => 10,
            Self::Internal => 11,
        }
    }

    /// The reason for a close code, if it is one of ours.
    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|r| u64::from(r.code()) == code)
    }

    /// Short snake_case name for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownToken => "unknown_token",
            Self::RevokedToken => "revoked_token",
            Self::SchoolMismatch => "school_mismatch",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Malformed => "malformed",
            Self::FrameTooLarge => "frame_too_large",
            Self::InvalidReport => "invalid_report",
            Self::UnexpectedMessage => "unexpected_message",
            Self::Superseded => "superseded",
            Self::ShuttingDown => "shutting_down",
            Self::Internal => "internal",
        }
    }

    /// True when retrying cannot help until someone changes the configuration (token, school,
    /// software version). Agents exit with an error on these instead of retrying forever.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Self::UnknownToken | Self::RevokedToken | Self::SchoolMismatch | Self::UnsupportedVersion
        )
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can travel in a frame.
///
/// Variant order is part of the wire format: append new variants, never reorder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Agent → collector, first message.
    Hello(Hello),
    /// Collector → agent, session accepted.
    Welcome(Welcome),
    /// Agent → collector, one numbered report.
    Report(Report),
    /// Collector → agent, reports stored.
    Ack(Ack),
    /// Collector → agent, session ended with a reason.
    Reject(Reject),
}

impl Message {
    /// Name of the message type, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "Hello",
            Self::Welcome(_) => "Welcome",
            Self::Report(_) => "Report",
            Self::Ack(_) => "Ack",
            Self::Reject(_) => "Reject",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in RejectReason::ALL {
            assert!(seen.insert(r.code()), "duplicate code for {r}");
            assert_eq!(RejectReason::from_code(u64::from(r.code())), Some(r));
        }
        assert_eq!(RejectReason::from_code(0), None);
        assert_eq!(RejectReason::from_code(999), None);
    }

    #[test]
    fn credentials_debug_never_shows_the_token() {
        let c = Credentials::EnrollToken("pt1_secret".into());
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn device_kind_parses_its_own_names() {
        for k in DeviceKind::ALL {
            assert_eq!(k.as_str().parse::<DeviceKind>(), Ok(k));
        }
        assert!("toaster".parse::<DeviceKind>().is_err());
    }
}
