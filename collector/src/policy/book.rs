//! The policies in force, in memory: what every session offers its device. Refreshed from
//! ClickHouse every few seconds (a policy set by the command line or another collector reaches
//! live sessions within [`crate::refresh::REFRESH_EVERY`]); every change bumps a generation that
//! sessions watch, so each recomputes its device's document and offers it when it changed.
//!
//! A device's policy version is the time (ms) of the latest change of any scope it belongs to —
//! a removal and a rollback are changes too — so versions only grow, and a device that has not
//! applied version `v` by `v + drift_after` is *drifted*.

use std::collections::HashMap;
use std::sync::Arc;

use parta_protocol::DeviceId;
use parta_protocol::policy::{PolicyId, PolicyOffer};
use tokio::sync::watch;
use toml::Table;

use super::PolicyScope;
use super::merge::effective;
use super::secrets::{PolicyKey, SecretError};
use crate::storage::policies::PolicyRow;
use crate::storage::{Store, StoreError};

/// Region and municipality of a school, as the registry has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Region code.
    pub region: String,
    /// Municipality.
    pub municipality: String,
}

/// What the book holds: the latest row of every scope, where each school is, and what finds
/// a device's item in the equipment register.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PolicySet {
    /// Scope text → its latest row (removed ones included: their time is a change).
    pub latest: HashMap<String, PolicyRow>,
    /// School → place.
    pub places: HashMap<String, Place>,
    /// School → its register items that can be matched (a serial or a MAC).
    pub register: HashMap<String, Vec<RegisterEntry>>,
    /// Host → its serial keys (its own and its displays') and MACs.
    pub idents: HashMap<uuid::Uuid, Idents>,
}

/// An item of the equipment register, as matching needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterEntry {
    /// Inventory number.
    pub inventory_no: String,
    /// Serial key ([`crate::compliance::registry::serial_key`]; empty: none).
    pub serial_key: String,
    /// MAC, `aa:bb:…` (empty: none).
    pub mac: String,
    /// Room.
    pub room: String,
    /// Category id of the profile.
    pub category: String,
}

/// What identifies a host to the register.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Idents {
    /// Serial keys, its own and its displays'.
    pub serial_keys: Vec<String>,
    /// MACs, normalized.
    pub macs: Vec<String>,
}

/// The layers of one device: the latest rows of its scopes, broadest first.
#[derive(Debug, Clone)]
pub struct Layers<'a> {
    rows: Vec<(PolicyScope, &'a PolicyRow)>,
}

impl Layers<'_> {
    /// The version: the time of the latest change of any scope (0: no scope ever had a policy).
    pub fn version(&self) -> u64 {
        self.rows.iter().map(|(_, r)| r.at_ms).max().unwrap_or(0)
    }

    /// The scopes in force with their versions (removed ones left out).
    pub fn in_force(&self) -> impl Iterator<Item = (&PolicyScope, &PolicyRow)> {
        self.rows.iter().filter(|(_, r)| r.removed == 0).map(|(s, r)| (s, *r))
    }

    /// The merged document, secrets still sealed.
    pub fn merged(&self) -> Result<Table, toml::de::Error> {
        let docs = self
            .in_force()
            .map(|(_, r)| toml::from_str::<Table>(&r.document))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(effective(docs.iter()))
    }

    /// Which scope set each key of the merged document (`school:74-0012 v3`; appended lists
    /// name every scope that added to them), broadest first.
    pub fn origins(&self) -> Result<Vec<(String, String)>, toml::de::Error> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (scope, row) in self.in_force() {
            let doc: Table = toml::from_str(&row.document)?;
            let appends: Vec<String> =
                parta_agent::policy::string_list(&doc, parta_agent::policy::APPEND_KEY);
            let by = format!("{scope} v{}", row.version);
            for key in parta_agent::policy::leaf_keys(&doc) {
                if key == parta_agent::policy::APPEND_KEY {
                    continue;
                }
                match out.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) if appends.contains(&key) => {
                        v.push_str(" + ");
                        v.push_str(&by);
                    }
                    Some((_, v)) => v.clone_from(&by),
                    None => out.push((key, by.clone())),
                }
            }
        }
        Ok(out)
    }
}

impl PolicySet {
    /// Builds the set from the latest rows and the school registry.
    pub fn new(rows: Vec<PolicyRow>, schools: &[crate::storage::registry::SchoolRow]) -> Self {
        Self {
            latest: rows.into_iter().map(|r| (r.scope.clone(), r)).collect(),
            places: schools
                .iter()
                .map(|s| {
                    (
                        s.school_id.clone(),
                        Place { region: s.region_code.clone(), municipality: s.municipality.clone() },
                    )
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Adds the register and the hosts' identifiers.
    pub fn with_register(
        mut self,
        register: &[crate::storage::registry::RegisterRow],
        serials: Vec<crate::storage::policies::HostSerials>,
        macs: Vec<crate::storage::policies::HostMacs>,
    ) -> Self {
        use crate::compliance::registry::{mac_key, serial_key};
        for r in register.iter().filter(|r| !r.serial_key.is_empty() || !r.mac.is_empty()) {
            self.register.entry(r.school_id.clone()).or_default().push(RegisterEntry {
                inventory_no: r.inventory_no.clone(),
                serial_key: r.serial_key.clone(),
                mac: r.mac.clone(),
                room: r.room.clone(),
                category: r.category.clone(),
            });
        }
        for s in serials {
            let Ok(id) = s.id.parse::<uuid::Uuid>() else { continue };
            let keys = s.serials.iter().map(|x| serial_key(x)).filter(|k| !k.is_empty());
            self.idents.entry(id).or_default().serial_keys.extend(keys);
        }
        for m in macs {
            let Ok(id) = m.id.parse::<uuid::Uuid>() else { continue };
            self.idents.entry(id).or_default().macs.extend(m.macs.iter().filter_map(|x| mac_key(x)));
        }
        for i in self.idents.values_mut() {
            i.serial_keys.sort();
            i.serial_keys.dedup();
            i.macs.sort();
            i.macs.dedup();
        }
        self
    }

    /// The register item of a device of `school`: the one with its serial (its own or a
    /// display's), else the one with its MAC.
    pub fn register_item(&self, school: &str, device: DeviceId) -> Option<&RegisterEntry> {
        let items = self.register.get(school)?;
        let id = self.idents.get(&device.0)?;
        items
            .iter()
            .find(|i| !i.serial_key.is_empty() && id.serial_keys.contains(&i.serial_key))
            .or_else(|| items.iter().find(|i| !i.mac.is_empty() && id.macs.contains(&i.mac)))
    }

    /// The scopes a device of `school` belongs to, broadest first.
    pub fn scopes(&self, school: &str, device: Option<DeviceId>) -> Vec<PolicyScope> {
        let mut scopes = vec![PolicyScope::All];
        if let Some(p) = self.places.get(school) {
            scopes.push(PolicyScope::Region(p.region.clone()));
            scopes.push(PolicyScope::Municipality { region: p.region.clone(), name: p.municipality.clone() });
        }
        scopes.push(PolicyScope::School(school.to_owned()));
        if let Some(d) = device {
            scopes.push(PolicyScope::Device(d.0));
        }
        scopes
    }

    /// The layers of a device (or, without one, of a school).
    pub fn layers(&self, school: &str, device: Option<DeviceId>) -> Layers<'_> {
        let rows = self
            .scopes(school, device)
            .into_iter()
            .filter_map(|s| self.latest.get(&s.to_string()).map(|r| (s, r)))
            .collect();
        Layers { rows }
    }
}

/// A school's or device's effective policy as people see it (secrets as `<secret>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyView {
    /// Version: the time of the latest change of its scopes, ms (0: none ever).
    pub version: u64,
    /// The scopes in force and their versions, broadest first.
    pub layers: Vec<LayerJson>,
    /// Which scope set each key.
    pub origins: std::collections::BTreeMap<String, String>,
    /// The merged document, TOML, secrets redacted.
    pub effective: String,
}

/// A scope in force.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerJson {
    /// `school:74-0012`.
    pub scope: String,
    /// The scope's version.
    pub version: u32,
}

impl PolicySet {
    /// The view of a school's (`device: None`) or a device's effective policy.
    pub fn view(&self, school: &str, device: Option<DeviceId>) -> Result<PolicyView, OfferError> {
        let layers = self.layers(school, device);
        let merged = layers.merged()?;
        let merged = match device {
            Some(d) => parta_agent::policy::for_device(&merged, d.0),
            None => merged,
        };
        Ok(PolicyView {
            version: layers.version(),
            layers: layers
                .in_force()
                .map(|(s, r)| LayerJson { scope: s.to_string(), version: r.version })
                .collect(),
            origins: layers.origins()?.into_iter().collect(),
            effective: toml::to_string(&super::secrets::redact(&merged))?,
        })
    }
}

/// Why a device's document could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// A stored document is not TOML (written by hand into ClickHouse?).
    #[error("a stored policy is not valid TOML: {0}")]
    Stored(#[from] toml::de::Error),
    /// A secret does not open.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The document does not serialize.
    #[error("cannot write the document: {0}")]
    Write(#[from] toml::ser::Error),
}

/// The policies in force, shared by the sessions.
#[derive(Debug)]
pub struct PolicyBook {
    key: PolicyKey,
    set: crate::refresh::Shared<PolicySet>,
    /// Register category → the one equipment class it names.
    classes: HashMap<String, String>,
}

impl PolicyBook {
    /// An empty book whose secrets open with `key`.
    pub fn new(key: PolicyKey) -> Self {
        Self { key, set: crate::refresh::Shared::default(), classes: HashMap::new() }
    }

    /// Register categories that name one equipment class (in every profile that has them):
    /// a device matched to an item of such a category gets that class.
    pub fn with_profiles(mut self, profiles: &[crate::compliance::profile::Profile]) -> Self {
        let mut classes: HashMap<String, Option<String>> = HashMap::new();
        for c in profiles.iter().flat_map(|p| p.categories.iter()) {
            let one = match c.classes.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            };
            let e = classes.entry(c.id.clone()).or_insert_with(|| one.clone());
            if *e != one {
                *e = None;
            }
        }
        self.classes = classes.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        self
    }

    /// The key secrets are sealed with.
    pub fn key(&self) -> &PolicyKey {
        &self.key
    }

    /// The current set.
    pub fn set(&self) -> Arc<PolicySet> {
        self.set.get()
    }

    /// Changes of the set: the value grows with every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.set.subscribe()
    }

    /// Replaces the set; sessions are told when it differs.
    pub fn replace(&self, set: PolicySet) {
        self.set.replace(set);
    }

    /// Reads the policies and the school registry again.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let rows = store.latest_policies().await?;
        let schools = store.schools().await?;
        let register = store.register().await?;
        let (serials, macs) = store.host_identifiers().await?;
        self.replace(PolicySet::new(rows, &schools).with_register(&register, serials, macs));
        Ok(())
    }

    /// What a device is offered: its effective document with the secrets of the targets it
    /// polls opened, or `None` when no scope of it ever had a policy.
    pub fn offer_for(&self, device: DeviceId, school: &str) -> Result<Option<PolicyOffer>, OfferError> {
        let set = self.set();
        let layers = set.layers(school, Some(device));
        let item = set.register_item(school, device);
        let version = match (layers.version(), item) {
            (0, None) => return Ok(None),
            // The register alone: the first version (any policy's time is above it).
            (0, Some(_)) => 1,
            (v, _) => v,
        };
        let merged = layers.merged()?;
        let mut mine = parta_agent::policy::for_device(&merged, device.0);
        if let Some(i) = item {
            mine.insert(parta_agent::policy::REGISTER_KEY.into(), toml::Value::Table(self.register_table(i)));
        }
        let mut document = String::new();
        for (key, by) in layers.origins()? {
            document.push_str(&format!("{}{key} = {by}\n", parta_agent::policy::ORIGIN_PREFIX));
        }
        document.push_str(&toml::to_string(&self.key.open(&mine)?)?);
        Ok(Some(PolicyOffer { id: PolicyId::of(version, &document), document }))
    }
}

impl PolicyBook {
    /// The `[register]` table of a device matched to `item`: room, the category's class when
    /// it names one, the inventory number.
    fn register_table(&self, item: &RegisterEntry) -> Table {
        let mut t = Table::new();
        if !item.room.is_empty() {
            t.insert("room".into(), item.room.clone().into());
        }
        if let Some(class) = self.classes.get(&item.category) {
            t.insert("equipment_class".into(), class.clone().into());
        }
        t.insert("item".into(), item.inventory_no.clone().into());
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scope: &str, at_ms: u64, document: &str, removed: u8) -> PolicyRow {
        PolicyRow {
            scope: scope.into(),
            version: 1,
            document: document.into(),
            author: "t".into(),
            at_ms,
            comment: String::new(),
            removed,
        }
    }

    fn set(rows: Vec<PolicyRow>) -> PolicySet {
        let mut s = PolicySet::new(rows, &[]);
        s.places.insert("74-0012".into(), Place { region: "74".into(), municipality: "Чебаркуль".into() });
        s
    }

    #[test]
    fn the_version_is_the_latest_change_of_the_devices_scopes_removals_included() {
        let d = DeviceId(uuid::Uuid::from_u128(7));
        let s = set(vec![
            row("all", 100, "interval = \"60s\"\n", 0),
            row("region:74", 300, "", 1),
            row("school:74-0012", 200, "interval = \"30s\"\n", 0),
            row("school:74-0345", 900, "interval = \"10s\"\n", 0),
        ]);
        let l = s.layers("74-0012", Some(d));
        assert_eq!(l.version(), 300, "the region's removal is the latest change of this device's scopes");
        assert_eq!(l.in_force().map(|(s, _)| s.to_string()).collect::<Vec<_>>(), ["all", "school:74-0012"]);
        assert_eq!(l.merged().unwrap().get("interval").and_then(|v| v.as_str()), Some("30s"));
        assert_eq!(s.layers("74-9999", Some(d)).version(), 100, "a school outside the registry gets `all`");
        assert_eq!(PolicySet::default().layers("74-0012", Some(d)).version(), 0);
    }

    #[test]
    fn a_change_bumps_the_generation_once() {
        let book = PolicyBook::new(PolicyKey::from_bytes(&[1; 32]));
        let rx = book.subscribe();
        book.replace(set(vec![row("all", 1, "", 0)]));
        book.replace(set(vec![row("all", 1, "", 0)]));
        assert_eq!(*rx.borrow(), 1);
        book.replace(set(vec![row("all", 2, "", 0)]));
        assert_eq!(*rx.borrow(), 2);
    }
}
