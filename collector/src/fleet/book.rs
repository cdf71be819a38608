//! The fleet in memory: enrolled devices, which certificate belongs to which device, and which
//! school each device belongs to over time. Sessions authenticate against it (a certificate's
//! SHA-256 finds its device) and ask it which school a report belongs to; it is refreshed from
//! ClickHouse every few seconds (revocations and moves made by `parta-collector device …` or by
//! another collector) and at once when a certificate is unknown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use parta_protocol::{DeviceId, RejectReason};
use tokio::sync::watch;
use uuid::Uuid;

use crate::refresh::{MissRefresh, REFRESH_EVERY};
use crate::storage::fleet::{FleetBatch, FleetCertRow, FleetDeviceRow, FleetSchoolRow};
use crate::storage::{Store, StoreError};

/// `fleet_devices.state` of a device that may report.
pub const ACTIVE: &str = "active";
/// `fleet_devices.state` of a revoked device.
pub const REVOKED: &str = "revoked";

/// How long rows written by this collector are re-applied after a refresh swapped the view (a
/// refresh that began before they were stored would otherwise drop them until the next one).
const RECENT: Duration = Duration::from_secs(30);

/// From `since_ms` on, the device belongs to `school`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolSpan {
    /// Start, ms since the epoch (0: from the beginning).
    pub since_ms: i64,
    /// School id.
    pub school: String,
    /// Who assigned it (a token id at enrollment, an administrator for a move).
    pub by: String,
    /// `enrolled` or `moved`.
    pub reason: String,
}

/// A certificate issued to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
    /// Serial number, hex.
    pub serial: String,
    /// End of validity, seconds since the epoch.
    pub not_after: u32,
    /// When issued.
    pub issued_at: u32,
    /// `enrolled` or `renewed`.
    pub reason: String,
}

/// An enrolled device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Its id.
    pub id: DeviceId,
    /// The latest enrollment row.
    pub row: FleetDeviceRow,
    /// Schools, oldest first.
    pub schools: Vec<SchoolSpan>,
    /// Certificates, oldest first.
    pub certs: Vec<CertInfo>,
}

impl Device {
    /// Whether it was revoked.
    pub fn revoked(&self) -> bool {
        self.row.state == REVOKED
    }

    /// The school it belongs to now.
    pub fn school(&self) -> &str {
        self.schools.last().map_or("", |s| &s.school)
    }

    /// The school its data of `t_ms` belongs to: the assignment in force then (data from before
    /// its enrollment belongs to its first school).
    pub fn school_at(&self, t_ms: i64) -> &str {
        self.schools
            .iter()
            .rev()
            .find(|s| s.since_ms <= t_ms)
            .or(self.schools.first())
            .map_or("", |s| &s.school)
    }

    /// The latest certificate's end of validity, seconds since the epoch.
    pub fn credential_expires(&self) -> Option<u32> {
        self.certs.iter().map(|c| c.not_after).max()
    }

    /// The device as the commands and the API show it.
    pub fn to_json(&self) -> serde_json::Value {
        use crate::clock::rfc3339;
        serde_json::json!({
            "device_id": self.id.to_string(),
            "school_id": self.school(),
            "kind": self.row.kind,
            "state": self.row.state,
            "state_at": rfc3339(self.row.state_at),
            "state_by": self.row.state_by,
            "enrolled_at": rfc3339(self.row.enrolled_at),
            "enrolled_by_token": self.row.token_id,
            "credential_expires": self.credential_expires().map(rfc3339),
            "key_sha256": self.row.key_sha256,
            "schools": self.schools.iter().map(|s| serde_json::json!({
                "school_id": s.school,
                "since": since(s.since_ms),
                "reason": s.reason,
                "by": s.by,
            })).collect::<Vec<_>>(),
            "certificates": self.certs.iter().map(|c| serde_json::json!({
                "serial": c.serial,
                "issued_at": rfc3339(c.issued_at),
                "not_after": rfc3339(c.not_after),
                "reason": c.reason,
            })).collect::<Vec<_>>(),
        })
    }
}

/// When a school assignment began, RFC 3339; `None` for one in force from the start.
pub fn since(ms: i64) -> Option<String> {
    (ms > 0).then(|| crate::clock::rfc3339(u32::try_from(ms / 1000).unwrap_or(u32::MAX)))
}

/// A session's device, as its certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The device.
    pub device: DeviceId,
    /// Its school now.
    pub school: String,
    /// When the presented certificate expires, seconds since the epoch.
    pub cert_not_after: u32,
    /// When the device enrolled, seconds since the epoch.
    pub enrolled_at: u32,
}

#[derive(Debug, Default, Clone)]
struct View {
    devices: HashMap<DeviceId, Device>,
    /// Certificate SHA-256 → device.
    by_cert: HashMap<[u8; 32], DeviceId>,
    /// Key SHA-256 (hex) → device.
    by_key: HashMap<String, DeviceId>,
    /// Token id → devices it enrolled.
    uses: HashMap<String, u32>,
}

impl View {
    fn device(&mut self, id: Uuid) -> &mut Device {
        let id = DeviceId(id);
        self.devices.entry(id).or_insert_with(|| Device {
            id,
            row: FleetDeviceRow {
                device_id: id.0,
                kind: String::new(),
                public_key: String::new(),
                key_sha256: String::new(),
                token_id: String::new(),
                enrolled_at: 0,
                state: String::new(),
                state_at: 0,
                state_by: String::new(),
                version: 0,
            },
            schools: Vec::new(),
            certs: Vec::new(),
        })
    }

    fn add_device(&mut self, row: &FleetDeviceRow) {
        let d = self.device(row.device_id);
        if d.row.version > row.version {
            return;
        }
        let (old_token, new_token) = (d.row.token_id.clone(), row.token_id.clone());
        let first = d.row.version == 0;
        let enrolled_at = if first { row.enrolled_at } else { d.row.enrolled_at.min(row.enrolled_at) };
        d.row = row.clone();
        d.row.enrolled_at = enrolled_at;
        self.by_key.insert(row.key_sha256.clone(), DeviceId(row.device_id));
        if first || old_token != new_token {
            if !first && let Some(n) = self.uses.get_mut(&old_token) {
                *n = n.saturating_sub(1);
            }
            if !new_token.is_empty() {
                *self.uses.entry(new_token).or_default() += 1;
            }
        }
    }

    fn add_cert(&mut self, row: &FleetCertRow) {
        let Some(fp) = hex::decode(&row.fingerprint).ok().and_then(|v| <[u8; 32]>::try_from(v).ok()) else {
            return;
        };
        if self.by_cert.insert(fp, DeviceId(row.device_id)).is_some() {
            return;
        }
        let d = self.device(row.device_id);
        d.certs.push(CertInfo {
            fingerprint: row.fingerprint.clone(),
            serial: row.serial.clone(),
            not_after: row.not_after,
            issued_at: row.issued_at,
            reason: row.reason.clone(),
        });
        d.certs.sort_by_key(|c| c.issued_at);
    }

    fn add_school(&mut self, row: &FleetSchoolRow) {
        let d = self.device(row.device_id);
        if d.schools.iter().any(|s| s.since_ms == row.since_ms) {
            return;
        }
        d.schools.push(SchoolSpan {
            since_ms: row.since_ms,
            school: row.school_id.clone(),
            by: row.by.clone(),
            reason: row.reason.clone(),
        });
        d.schools.sort_by_key(|s| s.since_ms);
    }

    fn apply(&mut self, b: &FleetBatch) {
        for r in &b.certs {
            self.add_cert(r);
        }
        for r in &b.schools {
            self.add_school(r);
        }
        for r in &b.devices {
            self.add_device(r);
        }
    }
}

/// The fleet in memory.
#[derive(Debug, Default)]
pub struct DeviceBook {
    view: RwLock<View>,
    refresh: MissRefresh,
    /// Rows this collector stored lately, re-applied after a refresh.
    recent: Mutex<Vec<(Instant, Arc<FleetBatch>)>>,
}

impl DeviceBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the view with the tables' content; returns the devices that were active and are
    /// revoked now (their sessions must end).
    pub async fn refresh(&self, store: &Store) -> Result<Vec<DeviceId>, StoreError> {
        let (devices, certs, schools) =
            tokio::try_join!(store.fleet_devices(), store.fleet_certs(), store.fleet_schools())?;
        let mut fresh = View::default();
        fresh.apply(&FleetBatch { certs, schools, devices });
        let recent: Vec<Arc<FleetBatch>> = {
            let mut r = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            r.retain(|(at, _)| at.elapsed() < RECENT);
            r.iter().map(|(_, b)| Arc::clone(b)).collect()
        };
        for b in &recent {
            fresh.apply(b);
        }
        let mut view = self.write();
        let revoked = fresh
            .devices
            .values()
            .filter(|d| d.revoked() && view.devices.get(&d.id).is_some_and(|old| !old.revoked()))
            .map(|d| d.id)
            .collect();
        *view = fresh;
        drop(view);
        self.refresh.refreshed();
        Ok(revoked)
    }

    /// Adds rows this collector has just stored.
    pub fn apply(&self, batch: FleetBatch) {
        let batch = Arc::new(batch);
        self.write().apply(&batch);
        self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((Instant::now(), batch));
    }

    fn lookup(&self, fingerprint: &[u8; 32]) -> Option<Result<Authenticated, RejectReason>> {
        let view = self.read();
        let id = view.by_cert.get(fingerprint)?;
        let d = view.devices.get(id)?;
        if d.row.version == 0 {
            // A certificate whose enrollment is not stored (the collector stopped between the
            // two): not a device.
            return None;
        }
        if d.revoked() {
            return Some(Err(RejectReason::DeviceRevoked));
        }
        let hex = hex::encode(fingerprint);
        let cert_not_after = d.certs.iter().find(|c| c.fingerprint == hex).map_or(0, |c| c.not_after);
        Some(Ok(Authenticated {
            device: d.id,
            school: d.school().to_owned(),
            cert_not_after,
            enrolled_at: d.row.enrolled_at,
        }))
    }

    /// The device a client certificate (its SHA-256) was issued to. An unknown certificate is
    /// looked up again after a refresh (it may have been issued a moment ago by another
    /// collector); `Internal` when that refresh fails.
    pub async fn authenticate(
        &self,
        store: &Store,
        fingerprint: &[u8; 32],
    ) -> Result<Authenticated, RejectReason> {
        if let Some(found) = self.lookup(fingerprint) {
            return found;
        }
        let asked = Instant::now();
        if let Err(e) = self.refresh.after_miss(asked, || async { self.refresh(store).await.map(drop) }).await
        {
            tracing::warn!(error = %e, "cannot refresh the fleet to check an unknown certificate");
            return Err(RejectReason::Internal);
        }
        self.lookup(fingerprint).unwrap_or(Err(RejectReason::UnknownDevice))
    }

    /// A device.
    pub fn device(&self, id: DeviceId) -> Option<Device> {
        self.read().devices.get(&id).filter(|d| d.row.version != 0).cloned()
    }

    /// Every enrolled device.
    pub fn devices(&self) -> Vec<Device> {
        let mut v: Vec<Device> =
            self.read().devices.values().filter(|d| d.row.version != 0).cloned().collect();
        v.sort_by(|a, b| a.school().cmp(b.school()).then(a.id.cmp(&b.id)));
        v
    }

    /// The device enrolled with a key (its SHA-256, hex).
    pub fn by_key(&self, key_sha256: &str) -> Option<Device> {
        let view = self.read();
        view.by_key.get(key_sha256).and_then(|id| view.devices.get(id)).cloned()
    }

    /// Devices a token enrolled.
    pub fn uses(&self, token_id: &str) -> u32 {
        self.read().uses.get(token_id).copied().unwrap_or(0)
    }

    /// The school a device's data of `t_ms` belongs to.
    pub fn school_at(&self, id: DeviceId, t_ms: i64) -> Option<String> {
        self.read().devices.get(&id).map(|d| d.school_at(t_ms).to_owned())
    }
}

/// Refreshes the book every few seconds until `stop`; `on_revoked` is told of every device
/// revoked since the previous refresh (to end its session).
pub async fn refresh_loop(
    book: Arc<DeviceBook>,
    store: Store,
    on_revoked: impl Fn(DeviceId) + Send,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match book.refresh(&store).await {
            Ok(revoked) => revoked.into_iter().for_each(&on_revoked),
            Err(e) => tracing::debug!(error = %e, "fleet refresh failed; keeping the cached view"),
        }
        tokio::select! {
            () = tokio::time::sleep(REFRESH_EVERY) => {}
            () = parta_common::shutdown::stopped(&mut stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(device: Uuid, school: &str, token: &str, fp: u8, version: u64) -> FleetBatch {
        FleetBatch {
            certs: vec![FleetCertRow {
                fingerprint: hex::encode([fp; 32]),
                device_id: device,
                serial: "01".into(),
                not_after: 2_000_000_000,
                issued_at: 1_000 + u32::from(fp),
                reason: "enrolled".into(),
            }],
            schools: vec![FleetSchoolRow {
                device_id: device,
                school_id: school.into(),
                since_ms: 0,
                by: token.into(),
                reason: "enrolled".into(),
            }],
            devices: vec![FleetDeviceRow {
                device_id: device,
                kind: "computer".into(),
                public_key: "00".into(),
                key_sha256: format!("key-{fp}"),
                token_id: token.into(),
                enrolled_at: 1_000,
                state: ACTIVE.into(),
                state_at: 1_000,
                state_by: token.into(),
                version,
            }],
        }
    }

    #[test]
    fn certificates_find_their_device_and_schools_follow_moves() {
        let book = DeviceBook::new();
        let d = Uuid::from_u128(1);
        book.apply(batch(d, "74-0012", "tok", 7, 1));
        let a = book.lookup(&[7; 32]).unwrap().unwrap();
        assert_eq!((a.device, a.school.as_str(), a.cert_not_after), (DeviceId(d), "74-0012", 2_000_000_000));
        assert!(book.lookup(&[8; 32]).is_none());
        assert_eq!(book.uses("tok"), 1);
        // Moved at t = 5000 ms: old data stays with the old school.
        book.apply(FleetBatch {
            schools: vec![FleetSchoolRow {
                device_id: d,
                school_id: "74-0099".into(),
                since_ms: 5000,
                by: "admin".into(),
                reason: "moved".into(),
            }],
            ..FleetBatch::default()
        });
        assert_eq!(book.school_at(DeviceId(d), 4999).as_deref(), Some("74-0012"));
        assert_eq!(book.school_at(DeviceId(d), 5000).as_deref(), Some("74-0099"));
        assert_eq!(book.lookup(&[7; 32]).unwrap().unwrap().school, "74-0099");
        // Revoked: every certificate of the device is refused.
        let mut revoked = batch(d, "74-0012", "tok", 9, 2);
        revoked.devices[0].state = REVOKED.into();
        book.apply(revoked);
        assert_eq!(book.lookup(&[7; 32]), Some(Err(RejectReason::DeviceRevoked)));
        assert_eq!(book.lookup(&[9; 32]), Some(Err(RejectReason::DeviceRevoked)));
        // An older row never wins over a newer one, and uses are not counted twice.
        book.apply(batch(d, "74-0012", "tok", 7, 1));
        assert!(book.device(DeviceId(d)).unwrap().revoked());
        assert_eq!(book.uses("tok"), 1);
    }

    #[test]
    fn a_certificate_without_its_enrollment_row_is_no_device() {
        let book = DeviceBook::new();
        let mut b = batch(Uuid::from_u128(2), "74-0012", "tok", 3, 1);
        b.devices.clear();
        book.apply(b);
        assert!(book.lookup(&[3; 32]).is_none());
        assert!(book.devices().is_empty());
    }
}
