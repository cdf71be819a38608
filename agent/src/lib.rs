//! # parta-agent — the Parta agent for school PCs, laptops and interactive panels
//!
//! ## Layout
//! - [`app`]: command dispatch and exit codes; `main.rs` only calls it.
//! - [`cli`]: command-line definition (clap); [`config`]: flags, environment and TOML resolved
//!   into [`config::AgentConfig`], with errors that name the offending setting; [`policy`]: the
//!   settings a collector may set centrally and the check of a policy document by these same
//!   rules (the collector runs it before storing a policy).
//! - [`sources`]: what is measured. Sources sample on request and never sleep, send or store.
//! - [`usage`]: the usage tracker — sessions, idle hints and display power into exact intervals,
//!   boots and shutdowns into power events, carried across restarts.
//! - [`observer`]: one observation of sessions and displays for the tracker, its state file.
//! - [`runner`]: the service loop — one multi-threaded runtime owns the sources, the spool
//!   writer, the uplink, the SNMP poller and the ЕСПД probe (tasks), and applies the
//!   collector's policies live; [`blocking`]: file work kept off the other tasks' way.
//! - [`snmp`]: the SNMP poller for LAN gear and printers (one agent per school), its targets,
//!   profiles and scheduler; the runner spools its polls.
//! - [`spool`]: the durable, crash-safe, bounded store of reports until acknowledged;
//!   [`outbox`] joins it with the protocol's delivery state machine (what to send next).
//! - [`uplink`]: the QUIC session with the collector (Hello/Welcome, reports, acks, renewed
//!   certificates), reconnect with [`backoff`]; [`tls`] builds the client configurations (the CA
//!   file, or the CA a join string pins; the device's certificate).
//! - [`enroll`]: `parta-agent enroll JOIN` and the first session's enrollment with a token;
//!   [`credential`]: the device's key, certificate and the collector's CA in the state directory.
//! - [`privacy`]: what may leave the device — the machine's own filesystems only (no mount
//!   point naming a person), the host name sent, hashed or left out.
//! - [`update`]: updates of the agent — the signed release downloaded and verified by the
//!   agent, installed by the root-owned `parta-agent update install` with a health watchdog
//!   and rollback; [`version`]: the version this build carries (stamped at release).
//! - [`status`]: the snapshot the running agent writes and `parta-agent status` reads.
//! - [`identity`]: the device id kept in the state directory (offered at enrollment); [`paths`]: where host files are
//!   read from (`--sysfs`, `--procfs`, `--rootfs`).
//!
//! Linux is the supported platform; OS-specific reading sits in [`sources`] and [`paths`].

#![forbid(unsafe_code)]

pub mod app;
pub mod backoff;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod credential;
pub mod enroll;
pub mod espd;
pub mod identity;
pub mod observer;
pub mod outbox;
pub mod paths;
pub mod policy;
pub mod privacy;
pub mod runner;
pub mod snmp;
pub mod sources;
pub mod spool;
pub mod status;
pub mod tls;
pub mod update;
pub mod uplink;
pub mod usage;
pub mod version;
