//! What the agent measures. Each source is a type or function that takes one sample; sources
//! never sleep, send or store — the [`crate::runner`] owns timing, the outbox and the uplink,
//! and [`crate::usage`] turns observations into intervals.
//!
//! - [`host`]: host identity and metrics.
//! - [`inventory`]: the inventory (DMI, CPU, memory, disks, NICs, displays, OS) and the
//!   equipment class; [`drm`] and [`edid`] read attached displays, [`display`] decides each one's
//!   size and class from all its EDID states (board-default sizes, panel makers' models).
//! - [`logind`]: interactive sessions and idle hints over D-Bus; [`users`] maps user names to
//!   classes on the device.
//! - [`power`]: boot id, boot time and wtmp shutdown records.
//! - [`osrelease`], [`dmi`]: file-based identity readers.
//! - [`rates`]: byte-counter rates with reset handling; [`counters`]: the same for SNMP
//!   counters (32/64-bit wraps, reboots, discontinuities), used by [`crate::snmp`].

pub mod counters;
pub mod display;
pub mod dmi;
pub mod drm;
pub mod edid;
pub mod host;
pub mod inventory;
pub mod logind;
pub mod osrelease;
pub mod power;
pub mod rates;
pub mod users;
