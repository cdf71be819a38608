//! # parta-common — plumbing shared by `parta-agent` and `parta-collector`
//!
//! ## Layout
//! - [`settings`]: layered configuration (command-line flag → environment variable → TOML file →
//!   default) that remembers where each value came from, so that errors name the flag, the
//!   variable, or the file and key.
//! - [`logging`]: `tracing` set-up with text or JSON output on stderr.
//! - [`quic`]: framed protocol messages over quinn streams.
//! - [`shutdown`]: stop flags and OS signals.
//! - [`tls`]: PEM loading and the rustls crypto provider.
//! - [`fsutil`]: durable file writes (write to a temporary file, fsync, rename, fsync the
//!   directory) and private directories.
//! - [`text`]: UTF-8 or Windows-1251 text from devices and files.
//! - [`serial`]: serial numbers in comparable form, and the placeholders firmware puts in every
//!   unit of a model (never an identity, never a register match).

#![forbid(unsafe_code)]

pub mod fsutil;
pub mod logging;
pub mod quic;
pub mod serial;
pub mod settings;
pub mod shutdown;
pub mod text;
pub mod tls;

/// Exit code for configuration errors (`EX_CONFIG` from sysexits.h). systemd units use
/// `RestartPreventExitStatus=78` so that a broken configuration does not restart in a loop.
pub const EXIT_CONFIG: i32 = 78;
