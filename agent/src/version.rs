//! The agent's version: the one it says in `Hello`, at enrollment and in `status`, and the one
//! releases are compared with. It lives in a version slot of the binary that `parta-release
//! stamp` rewrites, so a region releases one build under the version it signs
//! ([`parta_protocol::release::stamp`]); an unstamped build carries its crate version.

use parta_protocol::release::{ReleaseVersion, STAMP_LEN, STAMP_MARKER, slot_version, stamp_slot};

/// The version slot. Read through [`std::hint::black_box`] so that the compiler cannot fold
/// the build-time value into the code that reads it.
#[used]
static SLOT: [u8; STAMP_MARKER.len() + STAMP_LEN] = stamp_slot(env!("CARGO_PKG_VERSION"));

/// The version this binary runs as, e.g. `0.2.0`.
pub fn text() -> &'static str {
    let slot: &'static [u8] = std::hint::black_box(&SLOT);
    slot.get(STAMP_MARKER.len()..).and_then(slot_version).unwrap_or(env!("CARGO_PKG_VERSION"))
}

/// The version as a release version (the crate version when the slot does not parse).
pub fn release() -> ReleaseVersion {
    text().parse().or_else(|_| env!("CARGO_PKG_VERSION").parse()).unwrap_or(ReleaseVersion {
        major: 0,
        minor: 0,
        patch: 0,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unstamped_build_runs_as_its_crate_version() {
        assert_eq!(super::text(), env!("CARGO_PKG_VERSION"));
        assert_eq!(super::release().to_string(), env!("CARGO_PKG_VERSION"));
    }
}
