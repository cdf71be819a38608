//! What the compliance report reads: per device of the schools in scope — attributes, serials
//! and MACs, the last day it reported, hours in use and pages in the period — and per school
//! the ЕСПД figures, the ledger's completeness and the data cut-off. Every query takes the
//! school ids as an array and the period as two dates.

use std::collections::BTreeMap;

use clickhouse::Row;
use parta_protocol::snmp::SnmpDeviceKind;
use serde::Deserialize;

use super::{Store, StoreError};
use crate::compliance::registry::{mac_key, serial_key};
use crate::compliance::report::{DeviceFacts, EspdFacts, LedgerFacts};

/// The schools of a query, as a subquery.
const SCOPE: &str = "school_id IN (SELECT arrayJoin(CAST(? AS Array(String))))";

/// Latest attributes of every device (hosts, displays, SNMP devices).
const ATTRS: &str = "SELECT toString(device_id) AS id, toString(argMax(host_id, version)) AS host,
        argMax(school_id, version) AS school, argMax(kind, version) AS kind,
        argMax(equipment_class, version) AS class, argMax(room, version) AS room,
        argMax(label, version) AS label, argMax(serial, version) AS serial
 FROM device_attrs
 WHERE {scope}
 GROUP BY device_id";

/// The latest inventory's MACs of every host.
const MACS: &str = "SELECT toString(device_id) AS id, argMax(nic_macs, seq) AS macs
 FROM inventory
 WHERE {scope}
 GROUP BY device_id";

/// The last day each agent reported, up to the period's end (a year back at most), its
/// sequence numbers in the period and the reports received, each day's count capped at that
/// day's sequence range (see migration 9).
const LEDGER: &str =
    "SELECT toString(device_id) AS id, any(school) AS school, toUInt16(max(day)) AS last_day,
        minIf(d_min, day >= toDate(?)) AS first_seq, maxIf(d_max, day >= toDate(?)) AS last_seq,
        sumIf(least(d_count, d_max - d_min + 1), day >= toDate(?)) AS received,
        toUInt32(max(d_last)) AS last_received
 FROM (
    SELECT device_id, any(school_id) AS school, day, minMerge(min_seq) AS d_min, maxMerge(max_seq) AS d_max,
        countMerge(reports) AS d_count, maxMerge(last_received) AS d_last
    FROM ledger_days
    WHERE {scope} AND day <= toDate(?) AND day >= toDate(?) - 366
    GROUP BY device_id, day
 )
 GROUP BY device_id";

/// The last day each SNMP device answered, up to the period's end (a year back at most).
const SNMP_SEEN: &str = "SELECT toString(device_id) AS id, toUInt16(max(local_day)) AS last_day
 FROM snmp_polls
 WHERE {scope} AND outcome IN ('ok', 'partial') AND local_day <= toDate(?) AND local_day >= toDate(?) - 366
 GROUP BY device_id";

/// Hours in use per device in the period: each day's latest rollup (FINAL; every filter is
/// on the sort key, so it cannot pick an older version).
const IN_USE: &str = "SELECT toString(device_id) AS id, sum(total_ms) AS in_use_ms
 FROM usage_daily FINAL
 WHERE {scope} AND state = 'in_use' AND local_day >= toDate(?) AND local_day <= toDate(?)
 GROUP BY device_id";

/// Pages per printer in the period: the growth of each marker's life count.
const PAGES: &str = "SELECT toString(device_id) AS id, toUInt64(sum(grown)) AS pages
 FROM (
    SELECT device_id, marker, max(life_count) - min(life_count) AS grown
    FROM printer_counters
    WHERE {scope} AND local_day >= toDate(?) AND local_day <= toDate(?)
    GROUP BY device_id, marker
 )
 GROUP BY device_id";

/// ЕСПД per school in the period: checks, passed, and the download tests that measured. A
/// resent check collapses under FINAL (2.5× faster on 18.16 than grouping by the sort key); a
/// resend repeats `local_day`, so the day filter keeps or drops both copies.
const ESPD: &str = "SELECT school_id AS school, count() AS checks, countIf(outcome = 'ok') AS passed,
        countIf(c_test) AS tests,
        toUInt64(quantileExactIf(0.5)(ip_bits_per_s, c_test)) AS median_bps,
        toUInt64(quantileExactIf(0.1)(ip_bits_per_s, c_test)) AS p10_bps,
        countIf(c_test AND ip_bits_per_s >= toUInt64(required_mbps) * {pass_bps_per_mbps}) AS met
 FROM (
    SELECT school_id, outcome, ip_bits_per_s, required_mbps, kind = 'download' AND outcome IN ('ok', 'slow') AS c_test
    FROM connectivity_checks FINAL
    WHERE {scope} AND local_day >= toDate(?) AND local_day <= toDate(?)
 )
 GROUP BY school_id
 ORDER BY school";

fn sql(template: &str) -> String {
    template
        .replace("{scope}", SCOPE)
        .replace("{pass_bps_per_mbps}", &parta_protocol::espd::speed_pass_bps(1).to_string())
}

/// Every query of this module with its placeholders, for the test suite.
pub fn catalogue() -> Vec<(&'static str, String)> {
    [
        ("compliance_attrs", ATTRS),
        ("compliance_macs", MACS),
        ("compliance_ledger", LEDGER),
        ("compliance_snmp_seen", SNMP_SEEN),
        ("compliance_in_use", IN_USE),
        ("compliance_pages", PAGES),
        ("compliance_espd", ESPD),
    ]
    .into_iter()
    .map(|(n, t)| (n, sql(t)))
    .collect()
}

#[derive(Debug, Row, Deserialize)]
struct AttrRow {
    id: String,
    host: String,
    school: String,
    kind: String,
    class: String,
    room: String,
    label: String,
    serial: String,
}

#[derive(Debug, Row, Deserialize)]
struct MacRow {
    id: String,
    macs: Vec<String>,
}

#[derive(Debug, Row, Deserialize)]
struct LedgerRow {
    id: String,
    school: String,
    last_day: u16,
    first_seq: u64,
    last_seq: u64,
    received: u64,
    last_received: u32,
}

#[derive(Debug, Row, Deserialize)]
struct DayRow {
    id: String,
    last_day: u16,
}

#[derive(Debug, Row, Deserialize)]
struct SumRow {
    id: String,
    value: u64,
}

#[derive(Debug, Row, Deserialize)]
struct EspdRow {
    school: String,
    checks: u64,
    passed: u64,
    tests: u64,
    median_bps: u64,
    p10_bps: u64,
    met: u64,
}

/// What the database says of the schools in scope.
#[derive(Debug, Default)]
pub struct StoredFacts {
    /// Reporting devices (displays folded into their hosts).
    pub devices: Vec<DeviceFacts>,
    /// ЕСПД per school.
    pub espd: BTreeMap<String, EspdFacts>,
    /// Ledger per school.
    pub ledger: BTreeMap<String, LedgerFacts>,
    /// The newest receive time in scope up to the period's end, Unix seconds.
    pub cutoff: u32,
}

impl Store {
    /// Reads the facts of `schools` for the period `from`–`to` (`YYYY-MM-DD`, inclusive).
    pub async fn compliance_facts(
        &self,
        schools: &[String],
        from: &str,
        to: &str,
    ) -> Result<StoredFacts, StoreError> {
        let c = self.client();
        let q = |t: &str| c.query(&sql(t)).bind(schools);
        let attrs: Vec<AttrRow> = q(ATTRS).fetch_all().await.map_err(|e| self.err(e))?;
        let macs: Vec<MacRow> = q(MACS).fetch_all().await.map_err(|e| self.err(e))?;
        // Placeholders in the order of the text: the period's start in the SELECT list first.
        let ledger: Vec<LedgerRow> = c
            .query(&sql(LEDGER))
            .bind(from)
            .bind(from)
            .bind(from)
            .bind(schools)
            .bind(to)
            .bind(to)
            .fetch_all()
            .await
            .map_err(|e| self.err(e))?;
        let snmp: Vec<DayRow> = q(SNMP_SEEN).bind(to).bind(to).fetch_all().await.map_err(|e| self.err(e))?;
        let in_use: Vec<SumRow> = q(IN_USE).bind(from).bind(to).fetch_all().await.map_err(|e| self.err(e))?;
        let pages: Vec<SumRow> = q(PAGES).bind(from).bind(to).fetch_all().await.map_err(|e| self.err(e))?;
        let espd: Vec<EspdRow> = q(ESPD).bind(from).bind(to).fetch_all().await.map_err(|e| self.err(e))?;

        let macs: BTreeMap<String, Vec<String>> =
            macs.into_iter().map(|m| (m.id, m.macs.iter().filter_map(|x| mac_key(x)).collect())).collect();
        let last_day: BTreeMap<&str, i32> = ledger
            .iter()
            .map(|l| (l.id.as_str(), i32::from(l.last_day)))
            .chain(snmp.iter().map(|s| (s.id.as_str(), i32::from(s.last_day))))
            .collect();
        let in_use: BTreeMap<&str, u64> = in_use.iter().map(|r| (r.id.as_str(), r.value)).collect();
        let pages: BTreeMap<&str, u64> = pages.iter().map(|r| (r.id.as_str(), r.value)).collect();

        // Hosts and SNMP devices are units; a display is folded into its host (its serial
        // identifies the host's unit, its usage counts when the host's is lower). An SNMP
        // device's host is the agent that polls it, which it is not part of.
        let mut units: BTreeMap<&str, DeviceFacts> = BTreeMap::new();
        let snmp_kinds = [SnmpDeviceKind::Network.as_str(), SnmpDeviceKind::Printer.as_str()];
        let is_unit = |a: &AttrRow| a.host == a.id || snmp_kinds.contains(&a.kind.as_str());
        for a in attrs.iter().filter(|a| is_unit(a)) {
            #[allow(clippy::cast_precision_loss)] // hours for people
            let hours = in_use.get(a.id.as_str()).copied().unwrap_or(0) as f64 / 3_600_000.0;
            units.insert(
                a.id.as_str(),
                DeviceFacts {
                    device_id: a.id.clone(),
                    school_id: a.school.clone(),
                    kind: a.kind.clone(),
                    class: a.class.clone(),
                    room: a.room.clone(),
                    label: a.label.clone(),
                    serial_keys: vec![serial_key(&a.serial)].into_iter().filter(|s| !s.is_empty()).collect(),
                    macs: macs.get(&a.id).cloned().unwrap_or_default(),
                    last_seen_day: last_day.get(a.id.as_str()).copied(),
                    in_use_hours: hours,
                    pages: pages.get(a.id.as_str()).copied().unwrap_or(0),
                },
            );
        }
        for a in attrs.iter().filter(|a| !is_unit(a)) {
            if let Some(u) = units.get_mut(a.host.as_str()) {
                let key = serial_key(&a.serial);
                if !key.is_empty() && !u.serial_keys.contains(&key) {
                    u.serial_keys.push(key);
                }
                #[allow(clippy::cast_precision_loss)] // hours for people
                let hours = in_use.get(a.id.as_str()).copied().unwrap_or(0) as f64 / 3_600_000.0;
                u.in_use_hours = u.in_use_hours.max(hours);
            }
        }
        let mut per_school: BTreeMap<String, LedgerFacts> = BTreeMap::new();
        for l in &ledger {
            let e = per_school.entry(l.school.clone()).or_default();
            if l.received > 0 {
                e.expected += l.last_seq.saturating_sub(l.first_seq) + 1;
                e.received += l.received;
            }
        }
        Ok(StoredFacts {
            devices: units.into_values().collect(),
            espd: espd
                .into_iter()
                .map(|e| {
                    (
                        e.school,
                        EspdFacts {
                            checks: e.checks,
                            passed: e.passed,
                            download_tests: e.tests,
                            download_median_bps: e.median_bps,
                            download_p10_bps: e.p10_bps,
                            download_met: e.met,
                        },
                    )
                })
                .collect(),
            ledger: per_school,
            cutoff: ledger.iter().map(|l| l.last_received).max().unwrap_or(0),
        })
    }
}
