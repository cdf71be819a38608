//! Messages exchanged on the control stream of a connection.
//!
//! Two kinds of session:
//! - **Enrollment**, on a connection without a client certificate: agent → `Enroll` (the school's
//!   token and the device's public key); collector → `Enrolled` (id, school, certificate) or
//!   `Reject`. Nothing else is accepted before a device is authenticated.
//! - **Reporting**, on a connection authenticated by the device's certificate: agent → `Hello`;
//!   collector → `Welcome` or `Reject`; then the agent sends `Report`s (usually oldest first, the
//!   newest ahead of a backlog) and the collector answers with `Ack`s — ranges of sequence
//!   numbers — once the reports are durable, and with `Renewed` when the certificate is due for
//!   renewal. Either side may end the session; the collector says why with a `Reject`.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sample::Sample;
use crate::seqset::SeqRange;

/// Stable identity of a device: chosen by the collector at enrollment (or kept from an agent
/// that predates enrollment), written in the device's certificate and kept in the agent's state
/// directory.
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

/// First message of a reporting session, sent by the agent on a connection authenticated by the
/// device's client certificate. Who the device is and which school it belongs to are the
/// collector's knowledge (from the certificate and its enrollment record), never the agent's
/// word, so they are not in this message. The protocol version travels in the envelope of every
/// frame ([`crate::codec`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Version of the agent software, e.g. `0.1.0`.
    pub agent_version: String,
    /// What the device is.
    pub kind: DeviceKind,
    /// The policy the agent runs (its last-known-good), so that the collector offers one only
    /// when it differs; `None` before the first.
    pub running_policy: Option<crate::policy::PolicyId>,
}

/// The collector's answer to an accepted `Hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Version of the collector software.
    pub collector_version: String,
    /// The device, as the collector knows it from the client certificate.
    pub device_id: DeviceId,
    /// The school the device belongs to now, as the collector records it (an administrator
    /// may have moved the device since it enrolled).
    pub school_id: String,
    /// Every report of this device with a sequence number up to and including this one is
    /// already stored; the agent may forget them. 0 when nothing is stored yet.
    pub stored_up_to: u64,
    /// Highest sequence number of this device ever stored (≥ `stored_up_to`). An agent whose own
    /// counter is below it has lost its state and must continue numbering above it.
    pub highest_seq: u64,
    /// When the certificate this session was authenticated with expires, ms since the epoch.
    pub credential_expires_ms: i64,
}

/// Enrollment: the first and only message of a session without a client certificate. The agent
/// presents the school's enrollment token and the public key of a key pair it generated and
/// keeps; the collector answers with [`Enrolled`] — a certificate for that key naming the
/// device — or a [`Reject`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// Version of the agent software.
    pub agent_version: String,
    /// What the device is.
    pub kind: DeviceKind,
    /// The school's enrollment token (`parta-collector token create`). Only the collector
    /// decides which school it stands for.
    pub token: String,
    /// The device's public key, X.509 SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
    /// The id an agent kept from before per-device credentials existed, so that its history
    /// continues; `None` for a new device (the collector chooses the id). The collector refuses
    /// an id that another key enrolled or whose reports belong to another school.
    pub device_id: Option<DeviceId>,
}

impl fmt::Debug for EnrollRequest {
    // The token is a secret: never print it, not even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("agent_version", &self.agent_version)
            .field("kind", &self.kind)
            .field("token", &"<redacted>")
            .field("public_key", &format_args!("{} bytes", self.public_key.len()))
            .field("device_id", &self.device_id)
            .finish()
    }
}

/// The collector's answer to an accepted enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// The device's id, also in the certificate.
    pub device_id: DeviceId,
    /// The school the token stands for, where the device now belongs.
    pub school_id: String,
    /// The device's credential: a certificate for the presented key, DER.
    pub certificate: Certificate,
}

/// A certificate the collector issued to a device, at enrollment or as a renewal.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The certificate, X.509 DER, signed by the collector's device CA.
    pub der: Vec<u8>,
    /// Its end of validity, ms since the epoch.
    pub not_after_ms: i64,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({} bytes, not after {} ms)", self.der.len(), self.not_after_ms)
    }
}

/// A batch of samples taken at one moment, numbered per device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Per-device sequence number: starts at 1, increases by one per report, survives restarts.
    pub seq: u64,
    /// Agent's wall clock when the samples were taken, milliseconds since the Unix epoch.
    pub agent_time_ms: i64,
    /// What was measured.
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_SAMPLES }>")]
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
    /// The enrollment token has passed its expiry date.
    TokenExpired,
    /// The enrollment token has enrolled as many devices as it was made for.
    TokenUsedUp,
    /// An administrator revoked this device's credential (`parta-collector device revoke`).
    DeviceRevoked,
    /// The client certificate is not one the collector issued to an enrolled device.
    UnknownDevice,
    /// The device id asked for at enrollment belongs to another enrolled key.
    DeviceTaken,
    /// A `Hello` arrived on a connection without a client certificate: enroll first.
    NotEnrolled,
    /// The collector is too busy to take the session now; reconnect later.
    Busy,
}

impl RejectReason {
    /// Every reason, in code order.
    pub const ALL: [RejectReason; 18] = [
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
        Self::TokenExpired,
        Self::TokenUsedUp,
        Self::DeviceRevoked,
        Self::UnknownDevice,
        Self::DeviceTaken,
        Self::NotEnrolled,
        Self::Busy,
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
            Self::TokenExpired => 12,
            Self::TokenUsedUp => 13,
            Self::DeviceRevoked => 14,
            Self::UnknownDevice => 15,
            Self::DeviceTaken => 16,
            Self::NotEnrolled => 17,
            Self::Busy => 18,
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
            Self::TokenExpired => "token_expired",
            Self::TokenUsedUp => "token_used_up",
            Self::DeviceRevoked => "device_revoked",
            Self::UnknownDevice => "unknown_device",
            Self::DeviceTaken => "device_taken",
            Self::NotEnrolled => "not_enrolled",
            Self::Busy => "busy",
        }
    }

    /// True when retrying cannot help until someone changes the configuration (token, school,
    /// software version, a revoked device). Agents exit with an error on these instead of
    /// retrying forever.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Self::UnknownToken
                | Self::RevokedToken
                | Self::SchoolMismatch
                | Self::UnsupportedVersion
                | Self::TokenExpired
                | Self::TokenUsedUp
                | Self::DeviceRevoked
                | Self::UnknownDevice
                | Self::DeviceTaken
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
    /// Agent → collector, first and only message of a session without a client certificate.
    Enroll(EnrollRequest),
    /// Collector → agent, enrollment accepted: the device's id, school and certificate.
    Enrolled(Enrolled),
    /// Collector → agent, during a session: a renewed certificate for the device's key, to use
    /// from the next session on.
    Renewed(Certificate),
    /// Collector → agent, after `Welcome` and whenever it changes: the device's effective policy.
    Policy(crate::policy::PolicyOffer),
    /// Agent → collector: what became of a policy offer.
    PolicyStatus(crate::policy::PolicyStatus),
    /// Collector → agent, to an agent that said it takes releases: an offer, or a piece of an
    /// artifact it asked for.
    Release(crate::update::ReleaseMessage),
    /// Agent → collector: ready for releases, a fetch, a state transition.
    Update(crate::update::UpdateMessage),
}

/// Variant indexes of [`Message`] on the wire (postcard writes the index as a varint first).
pub mod tag {
    /// `Hello`.
    pub const HELLO: u32 = 0;
    /// `Report`.
    pub const REPORT: u32 = 2;
    /// `Enroll`.
    pub const ENROLL: u32 = 5;
    /// `PolicyStatus`.
    pub const POLICY_STATUS: u32 = 9;
    /// `Update`.
    pub const UPDATE: u32 = 11;
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
            Self::Enroll(_) => "Enroll",
            Self::Enrolled(_) => "Enrolled",
            Self::Renewed(_) => "Renewed",
            Self::Policy(_) => "Policy",
            Self::PolicyStatus(_) => "PolicyStatus",
            Self::Release(_) => "Release",
            Self::Update(_) => "Update",
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
    fn enroll_debug_never_shows_the_token() {
        let e = EnrollRequest {
            agent_version: "0.1.0".into(),
            kind: DeviceKind::Computer,
            token: "pt1_secret".into(),
            public_key: vec![1, 2, 3],
            device_id: None,
        };
        assert!(!format!("{e:?}").contains("secret"));
    }

    #[test]
    fn tags_match_the_encoding() {
        let first = |m: &Message| crate::codec::encode(m).unwrap()[crate::codec::VERSION_LEN];
        let hello = Message::Hello(Hello {
            agent_version: String::new(),
            kind: DeviceKind::Computer,
            running_policy: None,
        });
        assert_eq!(u32::from(first(&hello)), tag::HELLO);
        let report = Message::Report(Report { seq: 1, agent_time_ms: 0, samples: vec![] });
        assert_eq!(u32::from(first(&report)), tag::REPORT);
        let e = EnrollRequest {
            agent_version: String::new(),
            kind: DeviceKind::Computer,
            token: String::new(),
            public_key: vec![],
            device_id: None,
        };
        assert_eq!(u32::from(first(&Message::Enroll(e))), tag::ENROLL);
        assert_eq!(u32::from(first(&crate::examples::policy_status())), tag::POLICY_STATUS);
    }

    #[test]
    fn device_kind_parses_its_own_names() {
        for k in DeviceKind::ALL {
            assert_eq!(k.as_str().parse::<DeviceKind>(), Ok(k));
        }
        assert!("toaster".parse::<DeviceKind>().is_err());
    }
}
