//! Storage of the school registry, the equipment register and the import/export logs.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::compliance::registry::{RegisterItem, School, serial_key};

/// A `schools` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct SchoolRow {
    pub school_id: String,
    pub region_code: String,
    pub municipality: String,
    pub name: String,
    pub address: String,
    pub locality: String,
    pub pupils: u32,
    pub teachers: u32,
    pub admin_staff: u32,
    pub classrooms: u32,
    pub buildings: u32,
    pub import_id: String,
    pub version: u64,
}

impl SchoolRow {
    /// The school of a row.
    pub fn school(&self) -> School {
        School {
            region_code: self.region_code.clone(),
            municipality: self.municipality.clone(),
            school_id: self.school_id.clone(),
            name: self.name.clone(),
            address: self.address.clone(),
            locality: self.locality.clone(),
            pupils: self.pupils,
            teachers: self.teachers,
            admin_staff: self.admin_staff,
            classrooms: self.classrooms,
            buildings: self.buildings,
        }
    }
}

/// A `register_items` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct RegisterRow {
    pub school_id: String,
    pub import_id: String,
    pub inventory_no: String,
    pub line: u32,
    pub category: String,
    pub vendor: String,
    pub model: String,
    pub serial: String,
    pub serial_key: String,
    pub mac: String,
    pub room: String,
    pub received: String,
    pub funding: String,
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct RegisterImportRow {
    school_id: String,
    import_id: String,
    items: u32,
    version: u64,
}

/// An `import_log` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ImportLogRow {
    pub import_id: String,
    pub kind: String,
    pub at: u32,
    pub actor: String,
    pub file: String,
    pub sha256: String,
    pub rows: u32,
    pub schools: u32,
    pub profile: String,
}

/// An `export_log` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ExportLogRow {
    pub export_id: String,
    pub at: u32,
    pub actor: String,
    pub via: String,
    pub report: String,
    pub scope: String,
    /// Days since 1970-01-01.
    pub period_from: u16,
    /// Days since 1970-01-01.
    pub period_to: u16,
    pub profile: String,
    pub format: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The registry's latest row per school.
const SCHOOLS: &str = "SELECT school_id, argMax(region_code, version) AS region_code,
        argMax(municipality, version) AS municipality, argMax(name, version) AS name,
        argMax(address, version) AS address, argMax(locality, version) AS locality,
        argMax(pupils, version) AS pupils, argMax(teachers, version) AS teachers,
        argMax(admin_staff, version) AS admin_staff, argMax(classrooms, version) AS classrooms,
        argMax(buildings, version) AS buildings, argMax(import_id, version) AS import_id,
        max(version) AS last_version
 FROM schools
 GROUP BY school_id
 ORDER BY school_id";

/// Every school's register: the items of its latest import. `{scope}` narrows it to some
/// schools.
const REGISTER: &str = "SELECT school_id, import_id, inventory_no, any(line) AS line, any(category) AS category,
        any(vendor) AS vendor, any(model) AS model, any(serial) AS serial, any(serial_key) AS serial_key,
        any(mac) AS mac, any(room) AS room, any(received) AS received, any(funding) AS funding
 FROM register_items
 WHERE (school_id, import_id) IN (SELECT school_id, argMax(import_id, version) FROM register_imports GROUP BY school_id) {scope}
 GROUP BY school_id, import_id, inventory_no
 ORDER BY school_id, inventory_no";

/// The schools of [`REGISTER`], as an array parameter.
const REGISTER_SCOPE: &str = "AND school_id IN (SELECT arrayJoin(CAST(? AS Array(String))))";

/// The import log, newest first.
const IMPORTS: &str =
    "SELECT import_id, kind, toUInt32(at) AS at, actor, file, sha256, rows, schools, profile
 FROM import_log ORDER BY at DESC, import_id LIMIT 1000";

/// The export log, newest first.
const EXPORTS: &str =
    "SELECT export_id, toUInt32(at) AS at, actor, via, report, scope, toUInt16(period_from) AS period_from,
        toUInt16(period_to) AS period_to, profile, format, bytes, sha256
 FROM export_log ORDER BY at DESC, export_id LIMIT 1000";

/// Read queries of this module, for the test suite's runs on old and modern ClickHouse.
pub fn catalogue() -> Vec<(&'static str, String)> {
    vec![
        ("schools", SCHOOLS.to_owned()),
        ("register", REGISTER.replace("{scope}", "")),
        ("register_of_schools", REGISTER.replace("{scope}", REGISTER_SCOPE)),
        ("imports", IMPORTS.to_owned()),
        ("exports", EXPORTS.to_owned()),
    ]
}

impl Store {
    /// Upserts schools in one insert (all or nothing), version `version`.
    pub async fn put_schools(
        &self,
        schools: &[School],
        import_id: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let rows: Vec<SchoolRow> = schools
            .iter()
            .map(|s| SchoolRow {
                school_id: s.school_id.clone(),
                region_code: s.region_code.clone(),
                municipality: s.municipality.clone(),
                name: s.name.clone(),
                address: s.address.clone(),
                locality: s.locality.clone(),
                pupils: s.pupils,
                teachers: s.teachers,
                admin_staff: s.admin_staff,
                classrooms: s.classrooms,
                buildings: s.buildings,
                import_id: import_id.to_owned(),
                version,
            })
            .collect();
        self.insert_rows("schools", &rows).await
    }

    /// The registry.
    pub async fn schools(&self) -> Result<Vec<SchoolRow>, StoreError> {
        self.client().query(SCHOOLS).fetch_all().await.map_err(|e| self.err(e))
    }

    /// Replaces the register of every school in `items`: the items first (invisible until
    /// committed), then one `register_imports` row per school, in one insert, as the commit.
    pub async fn put_register(
        &self,
        items: &[RegisterItem],
        import_id: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let rows: Vec<RegisterRow> = items
            .iter()
            .map(|i| RegisterRow {
                school_id: i.school_id.clone(),
                import_id: import_id.to_owned(),
                inventory_no: i.inventory_no.clone(),
                line: i.line,
                category: i.category.clone(),
                vendor: i.vendor.clone(),
                model: i.model.clone(),
                serial: i.serial.clone(),
                serial_key: serial_key(&i.serial),
                mac: i.mac.clone(),
                room: i.room.clone(),
                received: i.received.clone(),
                funding: i.funding.clone(),
            })
            .collect();
        self.insert_rows("register_items", &rows).await?;
        let mut per_school: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
        for i in items {
            *per_school.entry(i.school_id.as_str()).or_default() += 1;
        }
        let commits: Vec<RegisterImportRow> = per_school
            .into_iter()
            .map(|(school, n)| RegisterImportRow {
                school_id: school.to_owned(),
                import_id: import_id.to_owned(),
                items: n,
                version,
            })
            .collect();
        self.insert_rows("register_imports", &commits).await
    }

    /// Every school's current register.
    pub async fn register(&self) -> Result<Vec<RegisterRow>, StoreError> {
        self.client().query(&REGISTER.replace("{scope}", "")).fetch_all().await.map_err(|e| self.err(e))
    }

    /// The current register of `schools`.
    pub async fn register_of(&self, schools: &[String]) -> Result<Vec<RegisterRow>, StoreError> {
        self.client()
            .query(&REGISTER.replace("{scope}", REGISTER_SCOPE))
            .bind(schools)
            .fetch_all()
            .await
            .map_err(|e| self.err(e))
    }

    /// Logs an import.
    pub async fn log_import(&self, row: &ImportLogRow) -> Result<(), StoreError> {
        self.insert_rows("import_log", std::slice::from_ref(row)).await
    }

    /// The import log, newest first.
    pub async fn imports(&self) -> Result<Vec<ImportLogRow>, StoreError> {
        self.client().query(IMPORTS).fetch_all().await.map_err(|e| self.err(e))
    }

    /// Logs an export.
    pub async fn log_export(&self, row: &ExportLogRow) -> Result<(), StoreError> {
        self.insert_rows("export_log", std::slice::from_ref(row)).await
    }

    /// The export log, newest first.
    pub async fn exports(&self) -> Result<Vec<ExportLogRow>, StoreError> {
        self.client().query(EXPORTS).fetch_all().await.map_err(|e| self.err(e))
    }
}
