//! What the agent measures. Each source is a type with methods that take one sample; sources
//! never sleep, send or store — the [`crate::runner`] owns timing, the outbox and the uplink.
//!
//! - [`host`]: host identity and metrics.
//! - [`osrelease`], [`dmi`]: file-based identity readers used by `host`.
//! - [`rates`]: byte-counter rates with reset handling.

pub mod dmi;
pub mod host;
pub mod osrelease;
pub mod rates;
