//! Device profiles: what to read from a device, chosen by the enterprise prefix of its
//! sysObjectID. Profiles are data files (`agent/profiles/snmp/*.toml`, built into the agent),
//! and a region adds or overrides its own in `profiles_dir` (default `/etc/parta/snmp-profiles`):
//!
//! ```toml
//! name = "qtech"                       # unique; a file with a built-in name replaces it
//! vendor = "QTECH"
//! kind = "network"                     # network | printer | auto (decided by what answers)
//! match = ["1.3.6.1.4.1.27514"]        # sysObjectID prefixes; the longest match wins
//! interfaces = true                    # IF-MIB ifTable/ifXTable
//! printer = false                      # Printer-MIB and HOST-RESOURCES printer status
//! entity = true                        # ENTITY-MIB serial number
//! serial_oids = []                     # scalars (exact OIDs, GET) tried before ENTITY-MIB
//! page_count_oids = []                 # page counters (GET) used without Printer-MIB
//! ```

use std::path::Path;

use serde::Deserialize;

use super::client::dotted;

/// Profiles shipped with the agent: (file name, contents).
const BUILT_IN: &[(&str, &str)] = &[
    ("generic.toml", include_str!("../../profiles/snmp/generic.toml")),
    ("eltex.toml", include_str!("../../profiles/snmp/eltex.toml")),
    ("mikrotik.toml", include_str!("../../profiles/snmp/mikrotik.toml")),
    ("cisco.toml", include_str!("../../profiles/snmp/cisco.toml")),
    ("dlink.toml", include_str!("../../profiles/snmp/dlink.toml")),
    ("tplink.toml", include_str!("../../profiles/snmp/tplink.toml")),
    ("hp-printer.toml", include_str!("../../profiles/snmp/hp-printer.toml")),
    ("kyocera.toml", include_str!("../../profiles/snmp/kyocera.toml")),
    ("pantum.toml", include_str!("../../profiles/snmp/pantum.toml")),
    ("brother.toml", include_str!("../../profiles/snmp/brother.toml")),
];

/// Default directory of a region's own profiles.
pub const DEFAULT_PROFILES_DIR: &str = "/etc/parta/snmp-profiles";

/// Network gear, printer, or decided by what the device answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    /// Network gear.
    Network,
    /// Printer or MFU.
    Printer,
    /// Printer if it has page counters or a printer device, otherwise network gear.
    Auto,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    #[serde(default)]
    vendor: String,
    kind: ProfileKind,
    #[serde(rename = "match")]
    matches: Vec<String>,
    #[serde(default = "yes")]
    interfaces: bool,
    #[serde(default)]
    printer: bool,
    #[serde(default = "yes")]
    entity: bool,
    #[serde(default)]
    serial_oids: Vec<String>,
    #[serde(default)]
    page_count_oids: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A profile, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Name.
    pub name: String,
    /// Vendor.
    pub vendor: String,
    /// Kind.
    pub kind: ProfileKind,
    /// sysObjectID prefixes.
    pub matches: Vec<Vec<u32>>,
    /// Read IF-MIB.
    pub interfaces: bool,
    /// Read Printer-MIB and HOST-RESOURCES printer status.
    pub printer: bool,
    /// Read ENTITY-MIB serials.
    pub entity: bool,
    /// Serial number scalars.
    pub serial_oids: Vec<Vec<u32>>,
    /// Page counter scalars.
    pub page_count_oids: Vec<Vec<u32>>,
}

/// A profile file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("SNMP profile {file}: {reason}")]
pub struct ProfileError {
    /// File.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// Parses a dotted OID (a leading dot is allowed).
pub fn parse_oid(text: &str) -> Result<Vec<u32>, String> {
    let t = text.trim().trim_start_matches('.');
    let arcs: Result<Vec<u32>, _> = t.split('.').map(str::parse::<u32>).collect();
    match arcs {
        Ok(a) if a.len() >= 2 && a[0] <= 2 => Ok(a),
        _ => Err(format!("{text:?} is not a dotted OID such as 1.3.6.1.4.1.35265")),
    }
}

impl Profile {
    /// Parses a profile file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ProfileError> {
        let err = |reason: String| ProfileError { file: file.to_owned(), reason };
        let f: ProfileFile = toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_owned()))?;
        if f.name.is_empty()
            || f.name.len() > 64
            || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(format!("name {:?} must be 1–64 characters of a–z, 0–9, '-', '_'", f.name)));
        }
        let oids = |key: &str, list: &[String]| -> Result<Vec<Vec<u32>>, ProfileError> {
            list.iter().map(|o| parse_oid(o).map_err(|r| err(format!("{key}: {r}")))).collect()
        };
        Ok(Self {
            matches: oids("match", &f.matches)?,
            serial_oids: oids("serial_oids", &f.serial_oids)?,
            page_count_oids: oids("page_count_oids", &f.page_count_oids)?,
            name: f.name,
            vendor: f.vendor,
            kind: f.kind,
            interfaces: f.interfaces,
            printer: f.printer,
            entity: f.entity,
        })
    }
}

/// All profiles in force.
#[derive(Debug, Clone)]
pub struct Profiles {
    list: Vec<Profile>,
}

impl Profiles {
    /// The built-in profiles.
    pub fn built_in() -> Self {
        let list = BUILT_IN
            .iter()
            .filter_map(|(file, text)| match Profile::parse(file, text) {
                Ok(p) => Some(p),
                // Covered by a unit test; a broken built-in profile must never stop polling.
                Err(e) => {
                    tracing::error!(error = %e, "built-in SNMP profile is broken");
                    None
                }
            })
            .collect();
        Self { list }
    }

    /// Built-in profiles plus every `*.toml` in `dir` (a missing directory is fine). A file
    /// whose `name` equals a built-in profile's replaces it. Any bad file is an error naming it.
    pub fn load(dir: Option<&Path>) -> Result<Self, ProfileError> {
        let mut profiles = Self::built_in();
        let Some(dir) = dir else { return Ok(profiles) };
        let files = parta_common::fsutil::read_toml_dir(dir)
            .map_err(|(file, reason)| ProfileError { file, reason })?;
        for (name, text) in files {
            let p = Profile::parse(&name, &text)?;
            profiles.list.retain(|q| q.name != p.name);
            profiles.list.push(p);
        }
        Ok(profiles)
    }

    /// The profile for a device: a configured name, or the longest sysObjectID prefix match,
    /// or `generic`.
    pub fn select(&self, forced: Option<&str>, object_id: &[u32]) -> Option<&Profile> {
        if let Some(name) = forced {
            return self.by_name(name);
        }
        self.list
            .iter()
            .filter_map(|p| {
                let best = p.matches.iter().filter(|m| object_id.starts_with(m)).map(Vec::len).max()?;
                Some((best, p))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, p)| p)
            .or_else(|| self.by_name("generic"))
    }

    /// A profile by name.
    pub fn by_name(&self, name: &str) -> Option<&Profile> {
        self.list.iter().find(|p| p.name == name)
    }

    /// Names and match prefixes, for `--help`-like listings.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.list
            .iter()
            .map(|p| (p.name.clone(), p.matches.iter().map(|m| dotted(m)).collect::<Vec<_>>().join(", ")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_parse() {
        for (file, text) in BUILT_IN {
            Profile::parse(file, text).unwrap();
        }
        assert_eq!(Profiles::built_in().list.len(), BUILT_IN.len());
    }

    #[test]
    fn selection_by_longest_prefix() {
        let p = Profiles::built_in();
        let oid = |s: &str| parse_oid(s).unwrap();
        assert_eq!(p.select(None, &oid("1.3.6.1.4.1.35265.1.81")).unwrap().name, "eltex");
        assert_eq!(p.select(None, &oid("1.3.6.1.4.1.11.2.3.9.1")).unwrap().name, "hp-printer");
        // HP network gear is not a printer.
        assert_eq!(p.select(None, &oid("1.3.6.1.4.1.11.2.3.7.11")).unwrap().name, "generic");
        // 1.3.6.1.4.1.9 must not match 1.3.6.1.4.1.99…: prefixes compare by arcs.
        assert_eq!(p.select(None, &oid("1.3.6.1.4.1.99.1")).unwrap().name, "generic");
        assert_eq!(p.select(None, &oid("1.3.6.1.4.1.9.1.1208")).unwrap().name, "cisco");
        assert_eq!(p.select(Some("pantum"), &oid("1.3.6.1.4.1.9")).unwrap().name, "pantum");
        assert!(p.select(Some("nope"), &[]).is_none());
    }

    #[test]
    fn regional_profiles_add_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("qtech.toml"),
            "name = \"qtech\"\nvendor = \"QTECH\"\nkind = \"network\"\nmatch = [\"1.3.6.1.4.1.27514\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("eltex.toml"),
            "name = \"eltex\"\nkind = \"network\"\nmatch = [\".1.3.6.1.4.1.35265\"]\nentity = false\n",
        )
        .unwrap();
        let p = Profiles::load(Some(dir.path())).unwrap();
        assert_eq!(p.select(None, &parse_oid("1.3.6.1.4.1.27514.1.2").unwrap()).unwrap().vendor, "QTECH");
        assert!(!p.by_name("eltex").unwrap().entity);
        std::fs::write(dir.path().join("bad.toml"), "name = \"x\"\nkind = \"router\"\nmatch = []\n").unwrap();
        let e = Profiles::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("router"), "{e}");
        std::fs::write(
            dir.path().join("bad.toml"),
            "name = \"x\"\nkind = \"network\"\nmatch = [\"1.3.x\"]\n",
        )
        .unwrap();
        let e = Profiles::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("match") && e.contains("1.3.x"), "{e}");
    }
}
