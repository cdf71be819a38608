//! Central configuration: policies attached to scopes (`all`, `region:CODE`,
//! `municipality:REGION/NAME`, `school:ID`, `device:ID`) and a device's effective policy, the
//! merge of the scopes it belongs to, narrowest winning key by key.
//!
//! - [`PolicyScope`]: the scopes, parsed and printed as people write them, ordered broadest
//!   first.
//! - [`merge`]: the effective document from the layers, and the check of a document by the
//!   agent's own parser and rules ([`parta_agent::policy::check`]).
//! - [`secrets`]: SNMP secrets sealed at rest under the collector's `policy.key`, opened only
//!   for the device a document is sent to, shown to people as `<secret>`.
//!
//! - [`commands`]: `parta-collector policy set|show|history|rollback|remove|effective`;
//!   policies are stored with their history in the auth database
//!   ([`crate::storage::policies`]).
//!
//! - [`book`]: the policies in force, in memory, refreshed every few seconds; what a device is
//!   offered (its document with the secrets of the targets it polls, and its version).
//! - [`changes`]: setting a scope's policy (command line and web UI alike): checked, secrets
//!   shown as `<secret>` kept, sealed, stored as the next version.
//! - [`deliver`]: a session's side of the exchange (offer at connect and on change, answers
//!   recorded in `policy_status`).
//! - [`state`]: where a device stands with its policy (current, pending, drifted, refused).

pub mod book;
pub mod changes;
pub mod commands;
pub mod deliver;
pub mod merge;
pub mod secrets;
pub mod state;

use std::fmt;

use uuid::Uuid;

/// What a policy is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyScope {
    /// Every device.
    All,
    /// The schools of a region.
    Region(String),
    /// The schools of a municipality of a region (the same name exists in many regions).
    Municipality {
        /// Region code.
        region: String,
        /// Name as in the school registry.
        name: String,
    },
    /// One school.
    School(String),
    /// One device.
    Device(Uuid),
}

impl PolicyScope {
    /// How narrow: a narrower scope's keys win.
    pub fn rank(&self) -> u8 {
        match self {
            Self::All => 0,
            Self::Region(_) => 1,
            Self::Municipality { .. } => 2,
            Self::School(_) => 3,
            Self::Device(_) => 4,
        }
    }

    /// Parses `all`, `region:74`, `municipality:74/NAME`, `school:ID`, `device:UUID`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "all" {
            return Ok(Self::All);
        }
        let expected = "expected all, region:CODE, municipality:REGION/NAME, school:ID or device:ID";
        let (kind, value) = s.split_once(':').ok_or_else(|| format!("scope {s:?}: {expected}"))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("scope {s:?}: nothing after the colon"));
        }
        match kind.trim() {
            "region" => Ok(Self::Region(value.to_owned())),
            "municipality" => match value.split_once('/') {
                Some((r, n)) if !r.trim().is_empty() && !n.trim().is_empty() => {
                    Ok(Self::Municipality { region: r.trim().to_owned(), name: n.trim().to_owned() })
                }
                _ => Err(format!(
                    "scope {s:?}: write the municipality with its region, municipality:REGION/NAME \
                     (the same name exists in many regions)"
                )),
            },
            "school" => Ok(Self::School(value.to_owned())),
            "device" => Uuid::parse_str(value)
                .map(Self::Device)
                .map_err(|e| format!("scope {s:?}: {value:?} is not a device id: {e}")),
            k => Err(format!("scope {s:?}: unknown kind {k:?}; {expected}")),
        }
    }
}

impl fmt::Display for PolicyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Region(r) => write!(f, "region:{r}"),
            Self::Municipality { region, name } => write!(f, "municipality:{region}/{name}"),
            Self::School(s) => write!(f, "school:{s}"),
            Self::Device(d) => write!(f, "device:{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_print_and_rank() {
        for s in ["all", "region:74", "municipality:74/Октябрьский район", "school:74-0012"] {
            assert_eq!(PolicyScope::parse(s).unwrap().to_string(), s);
        }
        let d = PolicyScope::parse("device:6b1d0c6e-6a43-4d0e-8d35-6f2b5c41d9e2").unwrap();
        assert_eq!(d.rank(), 4);
        assert!(PolicyScope::parse("municipality:Октябрьский район").unwrap_err().contains("REGION/NAME"));
        assert!(PolicyScope::parse("device:42").unwrap_err().contains("not a device id"));
        assert!(PolicyScope::parse("planet:earth").unwrap_err().contains("unknown kind"));
        assert!(PolicyScope::parse("school:").unwrap_err().contains("nothing after"));
    }
}
