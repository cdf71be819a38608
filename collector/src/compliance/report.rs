//! The compliance report, computed from facts (pure): per school and category what the norm
//! profile requires, what is on the books, what reports (seen) and what is used; the lists an
//! auditor follows up; the ЕСПД summary; and the methodology (profile, period, data cut-off,
//! ledger completeness) that says how far to trust the numbers.
//!
//! Definitions (also in README, "Compliance"):
//! - a register item matches a reporting device by serial number (DMI, ENTITY-MIB, EDID; letters
//!   and digits, case-insensitive), else by MAC; each device matches one item at most;
//! - a device's category is its item's when matched, else its equipment class's;
//! - *seen*: reported within the profile's `seen_days` before the period's end;
//! - *used*: seen, and meeting the category's usage expectation on average over the period;
//! - status, in order: `short` (on books < required), `not_seen` (seen < required),
//!   `underused` (used < required), else `ok`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::profile::{Profile, UsageRule};
use super::registry::School;
use crate::storage::queries::day_string;
use crate::storage::registry::RegisterRow;

/// A reporting device (a host with its attached displays folded in, or an SNMP device).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceFacts {
    /// Device id.
    pub device_id: String,
    /// School.
    pub school_id: String,
    /// Kind (`pc`, `laptop`, `panel`, `network`, `printer`, …).
    pub kind: String,
    /// Equipment class.
    pub class: String,
    /// Room.
    pub room: String,
    /// Host name or label.
    pub label: String,
    /// Serial keys ([`super::registry::serial_key`]): its own and its attached displays'.
    pub serial_keys: Vec<String>,
    /// MAC addresses, `aa:bb:…`.
    pub macs: Vec<String>,
    /// Last day (days since 1970-01-01) it reported, up to the period's end.
    pub last_seen_day: Option<i32>,
    /// Hours in use in the period.
    pub in_use_hours: f64,
    /// Pages printed in the period.
    pub pages: u64,
}

/// A school's ЕСПД checks in the period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EspdFacts {
    /// Checks run.
    pub checks: u64,
    /// Checks passed.
    pub passed: u64,
    /// Download tests that measured.
    pub download_tests: u64,
    /// Median download, bit/s at the IP layer.
    pub download_median_bps: u64,
    /// 10th percentile download, bit/s.
    pub download_p10_bps: u64,
    /// Tests at or above the required speed.
    pub download_met: u64,
}

/// Reports expected and received (per sequence numbers) in the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerFacts {
    /// Reports the agents numbered in the period.
    pub expected: u64,
    /// Reports the collector holds of them.
    pub received: u64,
}

/// What a report is computed from.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Norm profile.
    pub profile: &'a Profile,
    /// Scope as people read it (`регион 74`, `муниципалитет …`, `школа …`).
    pub scope: String,
    /// First day of the period, days since 1970-01-01.
    pub from_day: i32,
    /// Last day (inclusive).
    pub to_day: i32,
    /// When the newest data in scope was received (RFC 3339), the data cut-off.
    pub cutoff: String,
    /// Schools in scope, from the registry.
    pub schools: Vec<School>,
    /// Their register.
    pub register: Vec<RegisterRow>,
    /// Their reporting devices.
    pub devices: Vec<DeviceFacts>,
    /// ЕСПД per school.
    pub espd: BTreeMap<String, EspdFacts>,
    /// Ledger per school.
    pub ledger: BTreeMap<String, LedgerFacts>,
    /// The collector's version, for the methodology.
    pub generator: String,
}

/// Status of a school's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fewer on the books than required.
    Short,
    /// Fewer seen than required.
    NotSeen,
    /// Fewer used than required.
    Underused,
    /// Required quantity used.
    Ok,
}

/// One school's category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchoolLine {
    /// Municipality.
    pub municipality: String,
    /// School id.
    pub school_id: String,
    /// School name.
    pub school: String,
    /// Category id.
    pub category: String,
    /// Required.
    pub required: u32,
    /// On the books.
    pub on_books: u32,
    /// Seen.
    pub seen: u32,
    /// Used.
    pub used: u32,
    /// Status.
    pub status: Status,
}

impl SchoolLine {
    /// `74-0012 teacher_laptop 4/3/2/1 Short`: school, category, required/on books/seen/used,
    /// status — for logs and tests.
    pub fn summary(&self) -> String {
        format!(
            "{} {} {}/{}/{}/{} {:?}",
            self.school_id, self.category, self.required, self.on_books, self.seen, self.used, self.status
        )
    }
}

/// One category over the scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryLine {
    /// Category id.
    pub category: String,
    /// Category name (Russian).
    pub name: String,
    /// Sum of required.
    pub required: u32,
    /// Sum on the books.
    pub on_books: u32,
    /// Sum seen.
    pub seen: u32,
    /// Sum used.
    pub used: u32,
    /// Schools whose status is `ok`.
    pub schools_ok: u32,
    /// Schools in scope.
    pub schools: u32,
    /// Whether the required quantity is confirmed in the standard.
    pub confirmed: bool,
}

/// A register item nobody has seen in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnseenItem {
    /// School id.
    pub school_id: String,
    /// Inventory number.
    pub inventory_no: String,
    /// Category id.
    pub category: String,
    /// Vendor and model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Room.
    pub room: String,
    /// Date received.
    pub received: String,
    /// The matched device's last report day (`YYYY-MM-DD`), empty when never matched.
    pub last_seen: String,
}

/// A reporting device (for the lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceLine {
    /// School id.
    pub school_id: String,
    /// Device id.
    pub device_id: String,
    /// Category id (empty when its class is in no category).
    pub category: String,
    /// Equipment class.
    pub class: String,
    /// Host name or label.
    pub label: String,
    /// Room.
    pub room: String,
    /// Last report day.
    pub last_seen: String,
    /// Hours in use in the period.
    pub in_use_hours: f64,
    /// Pages in the period.
    pub pages: u64,
}

/// A school's ЕСПД summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EspdLine {
    /// School id.
    pub school_id: String,
    /// `urban`/`rural`.
    pub locality: String,
    /// Required speed by the profile, Mbit/s.
    pub required_mbps: u32,
    /// Checks run.
    pub checks: u64,
    /// Share passed, 0–1 (`None` without checks).
    pub passed_share: Option<f64>,
    /// Download tests.
    pub download_tests: u64,
    /// Median download, Mbit/s.
    pub download_median_mbps: Option<f64>,
    /// 10th percentile, Mbit/s.
    pub download_p10_mbps: Option<f64>,
    /// `pass`, `fail` or `no_data`.
    pub verdict: String,
}

/// The methodology part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Methodology {
    /// Profile id.
    pub profile: String,
    /// Profile version.
    pub profile_version: String,
    /// Profile name.
    pub profile_name: String,
    /// Profile's sources.
    pub profile_source: String,
    /// Scope.
    pub scope: String,
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// Data cut-off.
    pub cutoff: String,
    /// Seen window, days.
    pub seen_days: u32,
    /// Reports expected in the period.
    pub ledger_expected: u64,
    /// Reports received.
    pub ledger_received: u64,
    /// Received / expected (`None` without reports).
    pub ledger_completeness: Option<f64>,
    /// Categories whose required quantity is a regional parameter.
    pub regional_parameters: Vec<String>,
    /// Producer.
    pub generator: String,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceReport {
    /// How it was made.
    pub methodology: Methodology,
    /// Per category over the scope.
    pub categories: Vec<CategoryLine>,
    /// Per school and category.
    pub schools: Vec<SchoolLine>,
    /// On the books, not seen in the period.
    pub on_books_not_seen: Vec<UnseenItem>,
    /// Seen in the period, not on the books.
    pub seen_not_on_books: Vec<DeviceLine>,
    /// Seen in the period, never used in it.
    pub seen_never_used: Vec<DeviceLine>,
    /// ЕСПД per school.
    pub espd: Vec<EspdLine>,
}

/// `YYYY-MM-DD` of days since 1970-01-01 ([`day_string`]; empty before 1970).
fn day_text(day: i32) -> String {
    u16::try_from(day).map(day_string).unwrap_or_default()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn mbps(bps: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // a rate for people
    round2(bps as f64 / 1e6)
}

/// Computes the report.
pub fn compute(f: &Facts<'_>) -> ComplianceReport {
    let p = f.profile;
    let period_days = f64::from((f.to_day - f.from_day + 1).max(1));
    let weeks = period_days / 7.0;
    let seen_from = f.to_day - i32::try_from(p.seen_days).unwrap_or(30) + 1;
    let in_scope: BTreeSet<&str> = f.schools.iter().map(|s| s.school_id.as_str()).collect();

    // Match items to devices: serial first, then MAC; a device matches one item at most.
    let mut by_serial: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_mac: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, d) in f.devices.iter().enumerate() {
        for s in d.serial_keys.iter().filter(|s| !s.is_empty()) {
            by_serial.entry(s.as_str()).or_insert(i);
        }
        for m in d.macs.iter().filter(|m| !m.is_empty()) {
            by_mac.entry(m.as_str()).or_insert(i);
        }
    }
    let mut register: Vec<&RegisterRow> =
        f.register.iter().filter(|r| in_scope.contains(r.school_id.as_str())).collect();
    register.sort_by(|a, b| (&a.school_id, &a.inventory_no).cmp(&(&b.school_id, &b.inventory_no)));
    let mut item_device: Vec<Option<usize>> = vec![None; register.len()];
    let mut device_item: Vec<Option<usize>> = vec![None; f.devices.len()];
    for pass in 0..2 {
        for (k, item) in register.iter().enumerate() {
            if item_device[k].is_some() {
                continue;
            }
            let found = if pass == 0 {
                Some(item.serial_key.as_str()).filter(|s| !s.is_empty()).and_then(|s| by_serial.get(s))
            } else {
                Some(item.mac.as_str()).filter(|m| !m.is_empty()).and_then(|m| by_mac.get(m))
            };
            if let Some(&d) = found
                && device_item[d].is_none()
            {
                item_device[k] = Some(d);
                device_item[d] = Some(k);
            }
        }
    }
    let category_of = |d: usize| -> Option<&str> {
        match device_item[d] {
            Some(k) => Some(register[k].category.as_str()),
            None => p.category_of_class(&f.devices[d].class).map(|c| c.id.as_str()),
        }
    };
    let seen = |d: &DeviceFacts| d.last_seen_day.is_some_and(|day| day >= seen_from && day <= f.to_day);
    let seen_in_period =
        |d: &DeviceFacts| d.last_seen_day.is_some_and(|day| day >= f.from_day && day <= f.to_day);
    let used = |d: &DeviceFacts, rule: &UsageRule| {
        seen(d)
            && match rule {
                UsageRule::InUseHoursPerWeek(h) => d.in_use_hours / weeks >= *h && d.in_use_hours > 0.0,
                #[allow(clippy::cast_precision_loss)] // page counts
                UsageRule::PagesPerWeek(n) => d.pages as f64 / weeks >= *n && d.pages > 0,
                UsageRule::Seen => true,
            }
    };

    // Items and devices per (school, category), once: a region has 10⁵ of each.
    let mut books: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in &register {
        *books.entry((r.school_id.as_str(), r.category.as_str())).or_default() += 1;
    }
    let mut units: BTreeMap<(&str, &str), Vec<&DeviceFacts>> = BTreeMap::new();
    for (i, d) in f.devices.iter().enumerate() {
        if let Some(c) = category_of(i) {
            units.entry((d.school_id.as_str(), c)).or_default().push(d);
        }
    }

    let mut schools_out = Vec::new();
    let mut totals: BTreeMap<&str, CategoryLine> = BTreeMap::new();
    let mut sorted_schools: Vec<&School> = f.schools.iter().collect();
    sorted_schools.sort_by(|a, b| (&a.municipality, &a.school_id).cmp(&(&b.municipality, &b.school_id)));
    for s in &sorted_schools {
        for c in &p.categories {
            let required = c.required.quantity(&s.vars());
            let key = (s.school_id.as_str(), c.id.as_str());
            let on_books = books.get(&key).copied().unwrap_or(0);
            let devices = units.get(&key).map_or(&[][..], Vec::as_slice);
            let n_seen = devices.iter().filter(|d| seen(d)).count();
            let n_used = devices.iter().filter(|d| used(d, &c.usage)).count();
            let [on_books, n_seen, n_used] =
                [on_books, n_seen, n_used].map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            let status = if on_books < required {
                Status::Short
            } else if n_seen < required {
                Status::NotSeen
            } else if n_used < required {
                Status::Underused
            } else {
                Status::Ok
            };
            let t = totals.entry(c.id.as_str()).or_insert_with(|| CategoryLine {
                category: c.id.clone(),
                name: c.name.clone(),
                required: 0,
                on_books: 0,
                seen: 0,
                used: 0,
                schools_ok: 0,
                schools: 0,
                confirmed: c.confirmed,
            });
            t.required += required;
            t.on_books += on_books;
            t.seen += n_seen;
            t.used += n_used;
            t.schools += 1;
            t.schools_ok += u32::from(status == Status::Ok);
            schools_out.push(SchoolLine {
                municipality: s.municipality.clone(),
                school_id: s.school_id.clone(),
                school: s.name.clone(),
                category: c.id.clone(),
                required,
                on_books,
                seen: n_seen,
                used: n_used,
                status,
            });
        }
    }
    let categories = p.categories.iter().filter_map(|c| totals.remove(c.id.as_str())).collect();

    let last = |d: &DeviceFacts| d.last_seen_day.map(day_text).unwrap_or_default();
    let on_books_not_seen = register
        .iter()
        .enumerate()
        .filter(|(k, _)| item_device[*k].is_none_or(|d| !seen_in_period(&f.devices[d])))
        .map(|(k, r)| UnseenItem {
            school_id: r.school_id.clone(),
            inventory_no: r.inventory_no.clone(),
            category: r.category.clone(),
            model: format!("{} {}", r.vendor, r.model).trim().to_owned(),
            serial: r.serial.clone(),
            room: r.room.clone(),
            received: r.received.clone(),
            last_seen: item_device[k].map(|d| last(&f.devices[d])).unwrap_or_default(),
        })
        .collect();
    let line = |i: usize, d: &DeviceFacts| DeviceLine {
        school_id: d.school_id.clone(),
        device_id: d.device_id.clone(),
        category: category_of(i).unwrap_or_default().to_owned(),
        class: d.class.clone(),
        label: d.label.clone(),
        room: d.room.clone(),
        last_seen: last(d),
        in_use_hours: round2(d.in_use_hours),
        pages: d.pages,
    };
    let mut order: Vec<usize> =
        (0..f.devices.len()).filter(|i| in_scope.contains(f.devices[*i].school_id.as_str())).collect();
    order.sort_by(|a, b| {
        let (x, y) = (&f.devices[*a], &f.devices[*b]);
        (&x.school_id, &x.label, &x.device_id).cmp(&(&y.school_id, &y.label, &y.device_id))
    });
    let seen_not_on_books = order
        .iter()
        .filter(|i| device_item[**i].is_none() && seen_in_period(&f.devices[**i]))
        .map(|i| line(*i, &f.devices[*i]))
        .collect();
    let seen_never_used = order
        .iter()
        .filter(|i| {
            let d = &f.devices[**i];
            let rule =
                category_of(**i).and_then(|c| p.categories.iter().find(|k| k.id == c)).map(|c| &c.usage);
            seen_in_period(d)
                && match rule {
                    Some(UsageRule::InUseHoursPerWeek(_)) => d.in_use_hours <= 0.0,
                    Some(UsageRule::PagesPerWeek(_)) => d.pages == 0,
                    Some(UsageRule::Seen) | None => false,
                }
        })
        .map(|i| line(*i, &f.devices[*i]))
        .collect();

    let espd = sorted_schools
        .iter()
        .map(|s| {
            let e = f.espd.get(&s.school_id).cloned().unwrap_or_default();
            let required_mbps = if s.locality == "rural" { p.espd_mbps.1 } else { p.espd_mbps.0 };
            #[allow(clippy::cast_precision_loss)] // shares
            let passed_share = (e.checks > 0).then(|| round2(e.passed as f64 / e.checks as f64));
            let verdict = if e.download_tests == 0 {
                "no_data"
            } else if e.download_median_bps >= parta_protocol::espd::speed_pass_bps(required_mbps) {
                "pass"
            } else {
                "fail"
            };
            EspdLine {
                school_id: s.school_id.clone(),
                locality: s.locality.clone(),
                required_mbps,
                checks: e.checks,
                passed_share,
                download_tests: e.download_tests,
                download_median_mbps: (e.download_tests > 0).then(|| mbps(e.download_median_bps)),
                download_p10_mbps: (e.download_tests > 0).then(|| mbps(e.download_p10_bps)),
                verdict: verdict.to_owned(),
            }
        })
        .collect();

    let (expected, received) = f
        .ledger
        .iter()
        .filter(|(s, _)| in_scope.contains(s.as_str()))
        .fold((0u64, 0u64), |(e, r), (_, l)| (e + l.expected, r + l.received.min(l.expected)));
    #[allow(clippy::cast_precision_loss)] // a share
    let completeness =
        (expected > 0).then(|| (received as f64 / expected as f64 * 10_000.0).floor() / 10_000.0);
    ComplianceReport {
        methodology: Methodology {
            profile: p.id.clone(),
            profile_version: p.version.clone(),
            profile_name: p.name.clone(),
            profile_source: p.source.clone(),
            scope: f.scope.clone(),
            from: day_text(f.from_day),
            to: day_text(f.to_day),
            cutoff: f.cutoff.clone(),
            seen_days: p.seen_days,
            ledger_expected: expected,
            ledger_received: received,
            ledger_completeness: completeness,
            regional_parameters: p.categories.iter().filter(|c| !c.confirmed).map(|c| c.id.clone()).collect(),
            generator: f.generator.clone(),
        },
        categories,
        schools: schools_out,
        on_books_not_seen,
        seen_not_on_books,
        seen_never_used,
        espd,
    }
}

#[cfg(test)]
mod tests {
    use super::super::csvin::{Delimiter, Encoding, read};
    use super::super::profile::{self, DEFAULT_PROFILE};
    use super::super::registry::{parse_register, parse_schools, serial_key};
    use super::*;

    /// The fixture municipality's registry and register (tests/fixtures/compliance).
    fn registry() -> (Vec<School>, Vec<RegisterRow>, Vec<Profile>) {
        let profiles = profile::load_all(None).unwrap();
        let schools_csv = include_bytes!("../../../tests/fixtures/compliance/schools-cp1251.csv");
        let schools = parse_schools(&read(schools_csv, Encoding::Auto, Delimiter::Auto).unwrap()).unwrap();
        let known = schools.iter().map(|s| s.school_id.clone()).collect();
        let register_csv = include_bytes!("../../../tests/fixtures/compliance/register.csv");
        let p = profile::find(&profiles, DEFAULT_PROFILE).unwrap();
        let items =
            parse_register(&read(register_csv, Encoding::Auto, Delimiter::Auto).unwrap(), &known, p).unwrap();
        let rows = items
            .into_iter()
            .map(|i| RegisterRow {
                school_id: i.school_id,
                import_id: "imp-1".into(),
                inventory_no: i.inventory_no,
                line: i.line,
                category: i.category,
                vendor: i.vendor,
                model: i.model,
                serial_key: serial_key(&i.serial),
                serial: i.serial,
                mac: i.mac,
                room: i.room,
                received: i.received,
                funding: i.funding,
            })
            .collect();
        (schools, rows, profiles)
    }

    fn device(
        id: &str,
        school: &str,
        class: &str,
        serial: &str,
        last: i32,
        hours: f64,
        pages: u64,
    ) -> DeviceFacts {
        DeviceFacts {
            device_id: id.into(),
            school_id: school.into(),
            kind: "laptop".into(),
            class: class.into(),
            room: String::new(),
            label: id.into(),
            serial_keys: vec![serial_key(serial)],
            macs: Vec::new(),
            last_seen_day: Some(last),
            in_use_hours: hours,
            pages,
        }
    }

    /// The fixture municipality over four weeks, computed by hand (see the comments).
    #[test]
    fn the_fixture_municipality_gives_the_hand_computed_report() {
        let (schools, register, profiles) = registry();
        let p = profile::find(&profiles, DEFAULT_PROFILE).unwrap();
        let to = 20_780; // 2026-11-23
        let from = to - 27; // four weeks
        let mut d6 = device("d6", "74-0013", "teacher_laptop", "", to, 30.0, 0);
        d6.macs = vec!["00:1b:21:3a:4c:01".into()];
        let mut d4 = device("d4", "74-0012", "interactive_complex", "MB-1", to - 2, 20.0, 0);
        d4.serial_keys.push(serial_key("LC-86-0001")); // the panel's EDID serial, folded in
        let devices = vec![
            device("d1", "74-0012", "teacher_laptop", "AQ-T-0001", to, 40.0, 0), // 10 h a week: used
            device("d2", "74-0012", "teacher_laptop", "aq t 0002", to, 8.0, 0),  // 2 h a week: not used
            device("d3", "74-0012", "teacher_laptop", "XX-999", to - 1, 0.0, 0), // not on the books, idle
            d4,                                                                  // 5 h a week: used
            device("d5", "74-0012", "mfu", "PNT-0001", to, 0.0, 100),            // 25 pages a week: used
            d6,                                                                  // matched by MAC, used
            device("d7", "74-0013", "pupil_laptop", "ICL-P-0001", to - 40, 5.0, 0), // before the period
            device("d8", "74-0345", "network_equipment", "ES-0345-01", to, 0.0, 0), // reporting is using
            device("d9", "74-0345", "teacher_laptop", "AQ-T-0345", to - 20, 0.0, 0), // seen, idle
        ];
        let espd = BTreeMap::from([
            (
                "74-0012".to_owned(),
                EspdFacts {
                    checks: 10,
                    passed: 9,
                    download_tests: 2,
                    download_median_bps: 96_500_000,
                    download_p10_bps: 90_000_000,
                    download_met: 0,
                },
            ),
            (
                "74-0345".to_owned(),
                EspdFacts {
                    checks: 4,
                    passed: 4,
                    download_tests: 1,
                    download_median_bps: 61_000_000,
                    download_p10_bps: 61_000_000,
                    download_met: 1,
                },
            ),
        ]);
        let ledger = BTreeMap::from([
            ("74-0012".to_owned(), LedgerFacts { expected: 1000, received: 990 }),
            ("74-0013".to_owned(), LedgerFacts { expected: 500, received: 500 }),
            // Duplicates never count beyond what was expected.
            ("74-0345".to_owned(), LedgerFacts { expected: 100, received: 110 }),
        ]);
        let facts = Facts {
            profile: p,
            scope: "регион 74".into(),
            from_day: from,
            to_day: to,
            cutoff: "2026-11-23T12:00:00Z".into(),
            schools,
            register,
            devices,
            espd,
            ledger,
            generator: "parta-collector test".into(),
        };
        let r = compute(&facts);

        // Required (cos-2021): teachers; pupils tier 45/15/15; admin staff; panels tier 3/1/1;
        // MFUs and network equipment per building.
        let lines: Vec<String> = r.schools.iter().map(SchoolLine::summary).collect();
        assert_eq!(
            lines,
            [
                // Аргаяшский муниципальный район sorts first.
                "74-0345 teacher_laptop 1/1/1/0 Underused",
                "74-0345 pupil_laptop 15/0/0/0 Short",
                "74-0345 admin_laptop 1/0/0/0 Short",
                "74-0345 interactive_complex 1/0/0/0 Short",
                "74-0345 mfu 1/0/0/0 Short",
                "74-0345 network_equipment 1/1/1/1 Ok",
                // d1, d2 and the unregistered d3 are seen; only d1 is used.
                "74-0012 teacher_laptop 4/3/3/1 Short",
                "74-0012 pupil_laptop 45/0/0/0 Short",
                "74-0012 admin_laptop 2/0/0/0 Short",
                "74-0012 interactive_complex 3/1/1/1 Short",
                "74-0012 mfu 1/1/1/1 Ok",
                "74-0012 network_equipment 1/0/0/0 Short",
                "74-0013 teacher_laptop 1/1/1/1 Ok",
                "74-0013 pupil_laptop 15/1/0/0 Short",
                "74-0013 admin_laptop 1/0/0/0 Short",
                "74-0013 interactive_complex 1/1/0/0 NotSeen",
                "74-0013 mfu 1/0/0/0 Short",
                "74-0013 network_equipment 1/0/0/0 Short",
            ]
        );
        let totals: Vec<String> = r
            .categories
            .iter()
            .map(|c| {
                format!(
                    "{} {}/{}/{}/{} ok {}/{}",
                    c.category, c.required, c.on_books, c.seen, c.used, c.schools_ok, c.schools
                )
            })
            .collect();
        assert_eq!(
            totals,
            [
                "teacher_laptop 6/5/5/2 ok 1/3",
                "pupil_laptop 75/1/0/0 ok 0/3",
                "admin_laptop 4/0/0/0 ok 0/3",
                "interactive_complex 5/2/1/1 ok 0/3",
                "mfu 3/1/1/1 ok 1/3",
                "network_equipment 3/1/1/1 ok 1/3",
            ]
        );
        let unseen: Vec<(&str, &str)> =
            r.on_books_not_seen.iter().map(|i| (i.inventory_no.as_str(), i.last_seen.as_str())).collect();
        assert_eq!(unseen, [("1012-003", ""), ("1013-002", "2026-10-14"), ("1013-010", "")]);
        let ids = |l: &[DeviceLine]| l.iter().map(|d| d.device_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&r.seen_not_on_books), ["d3"]);
        assert_eq!(ids(&r.seen_never_used), ["d3", "d9"]);
        let espd: Vec<String> = r
            .espd
            .iter()
            .map(|e| {
                format!(
                    "{} {} {:?} {:?} {}",
                    e.school_id, e.required_mbps, e.passed_share, e.download_median_mbps, e.verdict
                )
            })
            .collect();
        assert_eq!(
            espd,
            [
                "74-0345 50 Some(1.0) Some(61.0) pass",
                "74-0012 100 Some(0.9) Some(96.5) fail",
                "74-0013 100 None None no_data",
            ]
        );
        let m = &r.methodology;
        assert_eq!((m.from.as_str(), m.to.as_str(), m.seen_days), ("2026-10-27", "2026-11-23", 30));
        assert_eq!((m.ledger_expected, m.ledger_received, m.ledger_completeness), (1600, 1590, Some(0.9937)));
        assert_eq!(m.regional_parameters.len(), 6);
        // Same facts, same report.
        assert_eq!(compute(&facts), r);
    }
}
