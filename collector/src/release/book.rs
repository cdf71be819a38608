//! The releases and rollouts in force, in memory, shared by the sessions and refreshed from
//! ClickHouse every few seconds (a `release add` or `rollout` on any collector reaches every
//! session within that time); which release a device is offered.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use parta_protocol::DeviceId;
use parta_protocol::release::{Manifest, ReleaseVersion};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use super::{AGENT, Channel, artifact_path};
use crate::policy::PolicyScope;
use crate::storage::releases::{ReleaseRow, RolloutRow};
use crate::storage::{Store, StoreError};

/// A release a device can be offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The signature file.
    pub signature: Vec<u8>,
    /// What it says.
    pub manifest: Manifest,
    /// The retry epoch of the rollout that offers it.
    pub retry: u32,
    /// The artifact on disk.
    pub path: PathBuf,
}

/// Who a channel's release is offered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The channel.
    pub channel: Channel,
    /// The release.
    pub version: ReleaseVersion,
    /// This share of all devices, 0–100.
    pub percent: u8,
    /// And the devices of these scopes (as printed: `school:…`).
    pub scopes: BTreeSet<String>,
    /// Retry epoch.
    pub retry: u32,
}

impl Rollout {
    /// True when a device in `scopes` is offered this rollout's release.
    pub fn includes(&self, device: DeviceId, scopes: &[PolicyScope]) -> bool {
        bucket(device) < self.percent || scopes.iter().any(|s| self.scopes.contains(&s.to_string()))
    }
}

/// The device's place in percentage rollouts, 0–99: a hash of its id, so that a rollout to 50 %
/// includes every device of the 10 % before it.
pub fn bucket(device: DeviceId) -> u8 {
    let h = Sha256::digest(device.0.as_bytes());
    // 0..=99 fits a u8.
    u8::try_from(u16::from_be_bytes([h[0], h[1]]) % 100).unwrap_or(0)
}

/// Releases (by target and version) and the rollout of each channel.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReleaseSet {
    releases: BTreeMap<(String, ReleaseVersion), (Vec<u8>, Manifest)>,
    rollouts: Vec<Rollout>,
}

impl ReleaseSet {
    /// From the stored rows; rows that do not parse are skipped with a warning (they were
    /// checked when added).
    pub fn new(releases: &[ReleaseRow], rollouts: &[RolloutRow]) -> Self {
        let mut set = Self::default();
        for r in releases.iter().filter(|r| r.product == AGENT) {
            match Manifest::parse(r.signature.as_bytes()) {
                Ok(m) => {
                    set.releases.insert((m.target.clone(), m.version), (r.signature.clone().into_bytes(), m));
                }
                Err(e) => {
                    tracing::warn!(version = %r.version, error = %e, "stored release does not parse; skipped")
                }
            }
        }
        for r in rollouts {
            let (Some(channel), Ok(version)) = (Channel::parse(&r.channel), r.version.parse()) else {
                tracing::warn!(channel = %r.channel, version = %r.version, "stored rollout does not parse; skipped");
                continue;
            };
            set.rollouts.push(Rollout {
                channel,
                version,
                percent: r.percent.min(100),
                scopes: r.scopes.iter().cloned().collect(),
                retry: r.retry,
            });
        }
        set
    }

    /// True when `version` is a release of any platform (a device may report states of it).
    pub fn knows(&self, version: ReleaseVersion) -> bool {
        self.releases.keys().any(|(_, v)| *v == version)
    }

    /// The rollouts in force.
    pub fn rollouts(&self) -> &[Rollout] {
        &self.rollouts
    }

    /// The newest release for `target` offered to `device` (in `scopes`) by any rollout, unless
    /// the device already runs it or a newer one.
    pub fn offer_for(
        &self,
        data_dir: &std::path::Path,
        device: DeviceId,
        scopes: &[PolicyScope],
        target: &str,
        running: Option<ReleaseVersion>,
    ) -> Option<Offer> {
        let (rollout, (signature, manifest)) = self
            .rollouts
            .iter()
            .filter(|r| r.includes(device, scopes))
            .filter_map(|r| self.releases.get(&(target.to_owned(), r.version)).map(|rel| (r, rel)))
            .max_by_key(|(r, _)| (r.version, r.retry))?;
        if running.is_some_and(|v| v >= manifest.version) {
            return None;
        }
        Some(Offer {
            signature: signature.clone(),
            manifest: manifest.clone(),
            retry: rollout.retry,
            path: artifact_path(data_dir, AGENT, manifest.version, target),
        })
    }
}

/// The set in force, shared by the sessions.
#[derive(Debug)]
pub struct ReleaseBook {
    data_dir: PathBuf,
    set: crate::refresh::Shared<ReleaseSet>,
}

impl ReleaseBook {
    /// An empty book; artifacts are under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self { data_dir, set: crate::refresh::Shared::default() }
    }

    /// The current set.
    pub fn set(&self) -> Arc<ReleaseSet> {
        self.set.get()
    }

    /// Changes of the set.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.set.subscribe()
    }

    /// Replaces the set; sessions are told when it differs.
    pub fn replace(&self, set: ReleaseSet) {
        self.set.replace(set);
    }

    /// Reads releases and rollouts again.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let releases = store.releases().await?;
        let rollouts = store.rollouts().await?;
        self.replace(ReleaseSet::new(&releases, &rollouts));
        Ok(())
    }

    /// What `device` is offered (see [`ReleaseSet::offer_for`]).
    pub fn offer_for(
        &self,
        device: DeviceId,
        scopes: &[PolicyScope],
        target: &str,
        running: Option<ReleaseVersion>,
    ) -> Option<Offer> {
        self.set().offer_for(&self.data_dir, device, scopes, target, running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_larger_share_includes_every_device_of_a_smaller_one() {
        let devices: Vec<DeviceId> = (0..2000).map(|_| DeviceId::random()).collect();
        let at = |p: u8| {
            let r = Rollout {
                channel: Channel::Stable,
                version: "0.2.0".parse().unwrap(),
                percent: p,
                scopes: BTreeSet::new(),
                retry: 0,
            };
            devices.iter().filter(|d| r.includes(**d, &[])).copied().collect::<BTreeSet<_>>()
        };
        let (ten, fifty, all) = (at(10), at(50), at(100));
        assert!(ten.is_subset(&fifty) && fifty.is_subset(&all));
        assert_eq!(all.len(), devices.len());
        assert!(at(0).is_empty());
        // Roughly the share asked for (2000 devices: 10 % is 200 ± a few dozen).
        assert!((140..=260).contains(&ten.len()), "{}", ten.len());
    }
}
