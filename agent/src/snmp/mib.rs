//! The MIB objects the poller reads, and the pure functions that turn replies into readings.
//! Nothing here does I/O, so every function is tested (and fuzzed) with crafted values.

use std::collections::BTreeMap;

use parta_protocol::snmp::{InterfaceReading, PrinterReading};

use super::client::{Arcs, Reply, Val};

/// SNMPv2-MIB `sysDescr.0`.
pub const SYS_DESCR: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 1, 0];
/// `sysObjectID.0`.
pub const SYS_OBJECT_ID: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 2, 0];
/// `sysUpTime.0`.
pub const SYS_UPTIME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
/// `sysName.0`.
pub const SYS_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 5, 0];
/// `sysLocation.0`.
pub const SYS_LOCATION: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 6, 0];
/// The system scalars, in the order [`parse_system`] expects.
pub const SYSTEM: [&[u32]; 5] = [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME, SYS_LOCATION];

/// IF-MIB columns walked together: ifTable then ifXTable.
pub const IF_COLUMNS: [&[u32]; 13] = [
    &[1, 3, 6, 1, 2, 1, 2, 2, 1, 2],      // 0 ifDescr
    &[1, 3, 6, 1, 2, 1, 2, 2, 1, 3],      // 1 ifType
    &[1, 3, 6, 1, 2, 1, 2, 2, 1, 5],      // 2 ifSpeed (bit/s, Gauge32)
    &[1, 3, 6, 1, 2, 1, 2, 2, 1, 7],      // 3 ifAdminStatus
    &[1, 3, 6, 1, 2, 1, 2, 2, 1, 8],      // 4 ifOperStatus
    &[1, 3, 6, 1, 2, 1, 2, 2, 1, 10],     // 5 ifInOctets (Counter32)
    &[1, 3, 6, 1, 2, 1, 2, 2, 1, 16],     // 6 ifOutOctets (Counter32)
    &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1],  // 7 ifName
    &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6],  // 8 ifHCInOctets (Counter64)
    &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10], // 9 ifHCOutOctets (Counter64)
    &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15], // 10 ifHighSpeed (Mbit/s)
    &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18], // 11 ifAlias
    &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 19], // 12 ifCounterDiscontinuityTime
];

/// Printer columns walked together.
pub const PRINTER_COLUMNS: [&[u32]; 4] = [
    &[1, 3, 6, 1, 2, 1, 43, 10, 2, 1, 4], // 0 prtMarkerLifeCount (index hrDeviceIndex.prtMarkerIndex)
    &[1, 3, 6, 1, 2, 1, 25, 3, 2, 1, 2],  // 1 hrDeviceType
    &[1, 3, 6, 1, 2, 1, 25, 3, 2, 1, 5],  // 2 hrDeviceStatus
    &[1, 3, 6, 1, 2, 1, 25, 3, 5, 1, 1],  // 3 hrPrinterStatus
];

/// HOST-RESOURCES-TYPES `hrDevicePrinter`.
pub const HR_DEVICE_PRINTER: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 3, 1, 5];

/// ENTITY-MIB columns: entPhysicalClass, entPhysicalSerialNum.
pub const ENTITY_COLUMNS: [&[u32]; 2] =
    [&[1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 5], &[1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 11]];

/// Feeds a reply to every reader, as scalars and as table columns (varbind `k` to column
/// `k mod 13`, indexed by the last two arcs of its OID, reversed): what the fuzz target and the
/// property tests throw arbitrary replies at. The readers must never panic.
#[doc(hidden)]
pub fn read_everything(reply: &Reply) {
    let _ = parse_system(reply);
    let _ = parse_uptime(reply);
    let _ = scalar_serial(reply);
    let columns: Vec<Vec<(Arcs, Val)>> = (0..IF_COLUMNS.len())
        .map(|c| {
            reply
                .varbinds
                .iter()
                .skip(c)
                .step_by(IF_COLUMNS.len())
                .map(|(o, v)| (o.iter().rev().take(2).copied().collect(), v.clone()))
                .collect()
        })
        .collect();
    let _ = parse_interfaces(&columns);
    let _ = parse_printer(&columns[..PRINTER_COLUMNS.len()], &[1, 2]);
    let _ = parse_entity_serial(&columns[..ENTITY_COLUMNS.len()]);
    let _ = printer_serial(&columns[..1]);
}

/// Device text: UTF-8 or Windows-1251, cleaned.
pub fn decode_text(bytes: &[u8]) -> String {
    parta_common::text::device_text(bytes)
}

/// The system group as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSystem {
    /// sysDescr.
    pub descr: String,
    /// sysObjectID (empty when absent).
    pub object_id: Arcs,
    /// sysName.
    pub name: String,
    /// sysLocation.
    pub location: String,
    /// sysUpTime.
    pub uptime_cs: u32,
}

/// sysUpTime from a reply, if it holds one as TimeTicks.
pub fn parse_uptime(reply: &Reply) -> Option<u32> {
    reply.varbinds.iter().find_map(|(o, v)| match v {
        Val::Ticks(t) if o.as_slice() == SYS_UPTIME => Some(*t),
        _ => None,
    })
}

/// Reads the reply to a GET of [`SYSTEM`]. sysUpTime is required: without it nothing about the
/// device's uptime or counters can be trusted.
pub fn parse_system(reply: &Reply) -> Result<RawSystem, String> {
    let find = |oid: &[u32]| reply.varbinds.iter().find(|(o, _)| o.as_slice() == oid).map(|(_, v)| v);
    let uptime_cs = match find(SYS_UPTIME) {
        Some(Val::Ticks(t)) => *t,
        Some(other) => return Err(format!("sysUpTime is not TimeTicks but {other:?}")),
        None => return Err("the reply lacks sysUpTime".into()),
    };
    let text = |oid: &[u32]| find(oid).and_then(Val::as_text).unwrap_or_default();
    let object_id = match find(SYS_OBJECT_ID) {
        Some(Val::Oid(o)) => o.clone(),
        _ => Vec::new(),
    };
    Ok(RawSystem {
        descr: text(SYS_DESCR),
        object_id,
        name: text(SYS_NAME),
        location: text(SYS_LOCATION),
        uptime_cs,
    })
}

/// An interface as read: the message's reading with the counters chosen (64-bit when the device
/// has both, else 32-bit; `counter_bits` 0 without counters) and no rates yet, plus what the
/// rate computation needs besides.
#[derive(Debug, Clone, PartialEq)]
pub struct RawInterface {
    /// The reading; [`super::poller::Rates::finish`] fills in the rates.
    pub reading: InterfaceReading,
    /// ifCounterDiscontinuityTime.
    pub discontinuity: Option<u32>,
}

/// Single-arc table index, or `None` for anything else.
fn single_index(suffix: &[u32]) -> Option<u32> {
    match suffix {
        [i] => Some(*i),
        _ => None,
    }
}

/// Cells of one interface that only make sense together (both directions of a counter) or
/// that override another (ifHighSpeed over ifSpeed).
#[derive(Default)]
struct Pending {
    hc: [Option<u64>; 2],
    c32: [Option<u32>; 2],
    high_speed: Option<u32>,
}

/// Assembles interfaces from a walk of [`IF_COLUMNS`]. Rows with another index shape, values
/// of the wrong type and exceptions are skipped: a device that lies about one cell loses that
/// cell, not the poll.
pub fn parse_interfaces(columns: &[Vec<(Arcs, Val)>]) -> Vec<RawInterface> {
    let mut by_index: BTreeMap<u32, (RawInterface, Pending)> = BTreeMap::new();
    for (col, rows) in columns.iter().enumerate() {
        for (suffix, val) in rows {
            let Some(index) = single_index(suffix) else { continue };
            // Every ifTable/ifXTable row makes an interface exist.
            let (raw, p) = by_index.entry(index).or_insert_with(|| {
                let reading = InterfaceReading::new(index);
                (RawInterface { reading, discontinuity: None }, Pending::default())
            });
            let e = &mut raw.reading;
            match (col, val) {
                (0, v) => e.descr = v.as_text().unwrap_or_default(),
                (1, Val::Int(t)) => e.if_type = u32::try_from(*t).unwrap_or(0),
                (2, Val::Gauge32(s) | Val::Counter32(s)) => e.speed_mbps = s / 1_000_000,
                (3, Val::Int(s)) => e.admin_status = u8::try_from(*s).unwrap_or(0),
                (4, Val::Int(s)) => e.oper_status = u8::try_from(*s).unwrap_or(0),
                (5, Val::Counter32(n)) => p.c32[0] = Some(*n),
                (6, Val::Counter32(n)) => p.c32[1] = Some(*n),
                (7, v) => e.name = v.as_text().unwrap_or_default(),
                (8, Val::Counter64(n)) => p.hc[0] = Some(*n),
                (9, Val::Counter64(n)) => p.hc[1] = Some(*n),
                (10, Val::Gauge32(s)) => p.high_speed = Some(*s),
                (11, v) => e.alias = v.as_text().unwrap_or_default(),
                (12, Val::Ticks(t)) => raw.discontinuity = Some(*t),
                _ => {}
            }
        }
    }
    by_index
        .into_values()
        .map(|(mut raw, p)| {
            let e = &mut raw.reading;
            match (p.hc, p.c32) {
                ([Some(i), Some(o)], _) => (e.counter_bits, e.in_octets, e.out_octets) = (64, i, o),
                (_, [Some(i), Some(o)]) => {
                    (e.counter_bits, e.in_octets, e.out_octets) = (32, u64::from(i), u64::from(o));
                }
                _ => {}
            }
            // ifSpeed saturates at 4.29 Gbit/s; ifHighSpeed is exact in Mbit/s where present.
            if let Some(s) = p.high_speed.filter(|s| *s > 0) {
                e.speed_mbps = s;
            }
            raw
        })
        .collect()
}

/// Printer state from a walk of [`PRINTER_COLUMNS`], plus page counters from the profile's
/// scalars (used only when the Printer-MIB has none). `None` when the device shows nothing of
/// a printer.
pub fn parse_printer(columns: &[Vec<(Arcs, Val)>], scalar_pages: &[u64]) -> Option<PrinterReading> {
    let col = |i: usize| columns.get(i).map(Vec::as_slice).unwrap_or_default();
    let mut markers: Vec<(u32, u64)> = col(0)
        .iter()
        .filter_map(|(suffix, v)| match (suffix.as_slice(), v.as_u64()) {
            // Index: hrDeviceIndex.prtMarkerIndex. -1/-2 (unknown) arrive as negative INTEGERs
            // and are dropped by as_u64.
            ([_, marker], Some(n)) => Some((*marker, n)),
            _ => None,
        })
        .collect();
    if markers.is_empty() {
        markers = scalar_pages
            .iter()
            .enumerate()
            .map(|(i, n)| (u32::try_from(i + 1).unwrap_or(u32::MAX), *n))
            .collect();
    }
    markers.truncate(parta_protocol::validate::MAX_MARKERS);
    // The printer's hrDevice row: the first whose type is hrDevicePrinter.
    let printer_index = col(1).iter().find_map(|(suffix, v)| match v {
        Val::Oid(t) if t.as_slice() == HR_DEVICE_PRINTER => single_index(suffix),
        _ => None,
    });
    let cell = |c: usize| -> Option<u8> {
        let idx = printer_index?;
        col(c).iter().find_map(|(suffix, v)| match (single_index(suffix), v) {
            (Some(i), Val::Int(n)) if i == idx => u8::try_from(*n).ok(),
            _ => None,
        })
    };
    let reading = PrinterReading { markers, device_status: cell(2), printer_status: cell(3) };
    (!reading.markers.is_empty() || printer_index.is_some()).then_some(reading)
}

/// The chassis serial from a walk of [`ENTITY_COLUMNS`]: the first non-empty serial of an
/// entity of class chassis (3), else of a stack (11), else the first non-empty one.
pub fn parse_entity_serial(columns: &[Vec<(Arcs, Val)>]) -> Option<String> {
    let (classes, serials) = (columns.first()?, columns.get(1)?);
    let class_of = |suffix: &Arcs| {
        classes
            .iter()
            .find(|(s, _)| s == suffix)
            .and_then(|(_, v)| if let Val::Int(c) = v { Some(*c) } else { None })
    };
    let candidates: Vec<(Option<i64>, String)> = serials
        .iter()
        .filter_map(|(suffix, v)| {
            let s = v.as_text()?;
            (!s.is_empty()).then(|| (class_of(suffix), s))
        })
        .collect();
    [Some(3), Some(11)]
        .iter()
        .find_map(|want| candidates.iter().find(|(c, _)| c == want))
        .or_else(|| candidates.first())
        .map(|(_, s)| s.clone())
}

/// The serial to report from candidates in order of preference: the first that tells units
/// apart, else the first placeholder (kept as read; the collector never matches on it).
fn best_serial(candidates: impl IntoIterator<Item = String>) -> Option<String> {
    let usable: Vec<String> =
        candidates.into_iter().filter(|s| !s.trim().is_empty() && s.len() <= 64).collect();
    usable
        .iter()
        .find(|s| !parta_common::serial::is_placeholder(s))
        .or_else(|| usable.first())
        .map(|s| s.trim().to_owned())
}

/// The serial among scalar replies (profile `serial_oids`).
pub fn scalar_serial(reply: &Reply) -> Option<String> {
    best_serial(reply.varbinds.iter().filter_map(|(_, v)| v.as_text()))
}

/// Printer-MIB `prtGeneralSerialNumber` (prtGeneralTable, indexed by the printer's
/// hrDeviceIndex): the standard place of a printer's serial, whatever its maker.
pub const PRT_GENERAL_SERIAL: [&[u32]; 1] = [&[1, 3, 6, 1, 2, 1, 43, 5, 1, 1, 17]];

/// The serial from a walk of [`PRT_GENERAL_SERIAL`].
pub fn printer_serial(columns: &[Vec<(Arcs, Val)>]) -> Option<String> {
    best_serial(columns.first()?.iter().filter_map(|(_, v)| v.as_text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u32, v: Val) -> (Arcs, Val) {
        (vec![index], v)
    }

    #[test]
    fn system_requires_uptime() {
        let ok = Reply {
            error_status: 0,
            varbinds: vec![
                (SYS_DESCR.to_vec(), Val::Bytes(b"MES2324B".to_vec())),
                (SYS_OBJECT_ID.to_vec(), Val::Oid(vec![1, 3, 6, 1, 4, 1, 35265, 1, 81])),
                (SYS_UPTIME.to_vec(), Val::Ticks(4242)),
                (SYS_NAME.to_vec(), Val::NoSuch),
                (SYS_LOCATION.to_vec(), Val::Bytes(b"\xca\xe0\xe1. 201".to_vec())),
            ],
        };
        let s = parse_system(&ok).unwrap();
        assert_eq!((s.descr.as_str(), s.uptime_cs, s.name.as_str()), ("MES2324B", 4242, ""));
        assert_eq!(s.location, "Каб. 201", "Windows-1251 sysLocation");
        let mut bad = ok.clone();
        bad.varbinds[2].1 = Val::Int(5);
        assert!(parse_system(&bad).unwrap_err().contains("TimeTicks"));
        bad.varbinds.remove(2);
        assert!(parse_system(&bad).unwrap_err().contains("sysUpTime"));
    }

    #[test]
    fn interfaces_prefer_hc_counters_and_high_speed() {
        let mut cols: Vec<Vec<(Arcs, Val)>> = vec![Vec::new(); IF_COLUMNS.len()];
        cols[0] = vec![row(1, Val::Bytes(b"gi1".to_vec())), row(2, Val::Bytes(b"te1".to_vec()))];
        cols[2] = vec![row(1, Val::Gauge32(1_000_000_000)), row(2, Val::Gauge32(u32::MAX))];
        cols[5] = vec![row(1, Val::Counter32(10)), row(2, Val::Counter32(20))];
        cols[6] = vec![row(1, Val::Counter32(11)), row(2, Val::Counter32(21))];
        cols[8] = vec![row(2, Val::Counter64(1 << 40))];
        cols[9] = vec![row(2, Val::Counter64(1 << 41))];
        cols[10] = vec![row(2, Val::Gauge32(10_000))];
        // A garbage row: two-arc index, wrong types.
        cols[4] = vec![(vec![1, 1], Val::Int(1)), row(1, Val::Bytes(b"up".to_vec()))];
        let ifs: Vec<InterfaceReading> = parse_interfaces(&cols).into_iter().map(|r| r.reading).collect();
        let counters = |i: &InterfaceReading| (i.counter_bits, i.in_octets, i.out_octets);
        assert_eq!(ifs.len(), 2);
        assert_eq!(counters(&ifs[0]), (32, 10, 11));
        assert_eq!(ifs[0].speed_mbps, 1000);
        assert_eq!(ifs[0].oper_status, 0);
        assert_eq!(counters(&ifs[1]), (64, 1 << 40, 1 << 41));
        assert_eq!(ifs[1].speed_mbps, 10_000, "ifHighSpeed beats the saturated ifSpeed");
    }

    #[test]
    fn printer_from_markers_or_scalars() {
        let mut cols: Vec<Vec<(Arcs, Val)>> = vec![Vec::new(); 4];
        cols[0] = vec![(vec![1, 1], Val::Counter32(48_213)), (vec![1, 2], Val::Int(-2))];
        cols[1] = vec![
            (vec![1], Val::Oid(HR_DEVICE_PRINTER.to_vec())),
            (vec![2], Val::Oid(vec![1, 3, 6, 1, 2, 1, 25, 3, 1, 4])),
        ];
        cols[2] = vec![(vec![1], Val::Int(2)), (vec![2], Val::Int(5))];
        cols[3] = vec![(vec![1], Val::Int(4))];
        let p = parse_printer(&cols, &[]).unwrap();
        assert_eq!(p.markers, vec![(1, 48_213)]);
        assert_eq!((p.device_status, p.printer_status), (Some(2), Some(4)));
        let p = parse_printer(&[Vec::new(), Vec::new(), Vec::new(), Vec::new()], &[777]).unwrap();
        assert_eq!(p.life_count(), 777);
        assert!(parse_printer(&[Vec::new(), Vec::new(), Vec::new(), Vec::new()], &[]).is_none());
    }

    #[test]
    fn entity_serial_prefers_the_chassis() {
        let cols = vec![
            vec![(vec![1], Val::Int(10)), (vec![2], Val::Int(3))],
            vec![(vec![1], Val::Bytes(b"PORT-SN".to_vec())), (vec![2], Val::Bytes(b"ES1A000123 ".to_vec()))],
        ];
        assert_eq!(parse_entity_serial(&cols).as_deref(), Some("ES1A000123"));
        assert_eq!(parse_entity_serial(&[Vec::new(), Vec::new()]), None);
    }
}
