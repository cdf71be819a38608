//! # parta-protocol — the wire format between Parta agents and collectors
//!
//! Sans-IO: no sockets, no clocks, no async runtime. Both binaries drive it over QUIC streams.
//!
//! ## Layout
//! - [`message`]: what agents and collectors say to each other — `Enroll`/`Enrolled` (a
//!   certificate per device), `Hello`, `Welcome`, `Report`, `Ack`, `Renewed`, `Reject` — and the
//!   typed reject reasons with their stable codes.
//! - [`inventory`], [`usage`]: what a device is (inventory, equipment class, displays) and how
//!   it is used (power and activity intervals, boots and shutdowns).
//! - [`snmp`]: what an agent reads from LAN gear and printers over SNMP (system group,
//!   interface counters and rates, page counters).
//! - [`espd`]: ЕСПД connectivity checks of a probe agent (DNS, must-reach resources, latency,
//!   throughput, content filtering), with failure kinds kept apart.
//! - [`speedtest`]: the collector's speed-test service for probes (control messages, the
//!   rate measurement).
//! - [`heap`]: the memory a decoded report occupies, which the collector's budget charges.
//! - [`ids`]: ids of SNMP gear and displays, bound by the collector to the reporting device's
//!   school. [`join`]: the join string `parta-collector token create` prints and
//!   `parta-agent enroll` reads.
//! - [`policy`]: the configuration exchange — the collector offers a device its effective
//!   policy, the agent answers with the version it applied or why it refused one — and the
//!   agent's side of it as a state machine.
//! - [`release`]: signed releases — the signature file `parta-release sign` writes, release
//!   versions, and the checks a device makes before installing an artifact (trusted key,
//!   signature, product, newer version, size and SHA-256 as the bytes arrive).
//! - [`update`]: the agent's side of a release update as a state machine — what to do with an
//!   offer, where a download resumes, the states a device reports, and versions that failed
//!   here not retried until an administrator says so. (Not on the wire yet.)
//! - [`sample`]: the measurements a report carries (host identity, host metrics, …). New kinds of
//!   samples are appended as new enum variants; existing variants are frozen.
//! - [`codec`]: the versioned envelope — a 2-byte protocol version followed by the postcard body.
//!   Decoding never panics and reports unknown versions and malformed bodies as typed errors.
//! - [`frame`]: length-prefixed framing with a hard maximum frame size (a few KiB before the peer
//!   is authenticated, when only `Hello` and `Enroll` are decoded), and an incremental
//!   [`frame::FrameDecoder`] for byte streams. Lists are bounded while they are decoded, so a
//!   frame cannot decode into more than a small multiple of its size.
//! - [`examples`]: messages shaped like real traffic, for golden fixtures and benchmarks.
//! - [`seqset`]: sets of sequence numbers as ranges (ledgers, acknowledgements).
//! - [`delivery`]: the agent-side delivery state machine — what to send next (live reports
//!   ahead of a backlog), the window, acknowledgements, reconnects — with an injected clock.
//! - [`validate`]: size and sanity limits a collector enforces on every report, shared with the
//!   agent so that it never produces a report the collector would refuse.
//!
//! ## Compatibility
//! postcard is not self-describing: the byte layout *is* the schema. Golden byte fixtures in
//! `tests/golden/` freeze it; any change that breaks them needs a new [`PROTOCOL_VERSION`].

#![forbid(unsafe_code)]

mod bounded;
pub mod codec;
pub mod delivery;
pub mod espd;
pub mod examples;
pub mod frame;
pub mod heap;
pub mod ids;
pub mod inventory;
pub mod join;
pub mod message;
pub mod policy;
pub mod release;
pub mod sample;
pub mod seqset;
pub mod snmp;
pub mod speedtest;
pub mod update;
pub mod usage;
pub mod validate;

pub use codec::{DecodeError, EncodeError, decode, encode};
pub use frame::{FrameDecoder, FrameError, MAX_FRAME_LEN, PRE_AUTH_MAX_FRAME_LEN, encode_frame};
pub use message::{
    Ack, Certificate, DeviceId, DeviceKind, EnrollRequest, Enrolled, Hello, Message, Reject, RejectReason,
    Report, Welcome,
};
pub use sample::Sample;
pub use seqset::{SeqRange, SeqSet};

/// Version of the envelope and message layout this crate speaks.
///
/// Version 2 (before any release): acknowledgements carry ranges, so reports may be sent and
/// acknowledged out of order (live reports ahead of a backlog); reports may carry spool-loss
/// notices. Version 3: a certificate per device — `Enroll`/`Enrolled`/`Renewed`, a `Hello`
/// without identity fields (the client certificate says who the device is), a `Welcome` that
/// tells the device its id and school. Version 4: displays say which of their stated sizes
/// was believed and how their class was decided; OS descriptions keep the os-release fields
/// they were named from; `Hello` names the policy the agent runs, `Policy`/`PolicyStatus`
/// carry the configuration exchange.
pub const PROTOCOL_VERSION: u16 = 4;

/// TLS ALPN identifier of the protocol on QUIC connections.
pub const ALPN: &[u8] = b"parta/4";
