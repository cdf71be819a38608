//! Real devices read right (issue 20): every EDID, os-release file and SNMP recording of the
//! public corpus (`shared/corpus/realworld`, not copied into the project) with what the agent
//! must conclude from it. Expectations come from the model names and the standards, not from
//! the code: a 75BDL panel is 74.5″ (its class 75″), a 278E1 is a 27″ monitor, a P2422H is a
//! 23.8″ monitor; a Canon printer's serial is its `prtGeneralSerialNumber`. A file added to the
//! corpus without an expectation here fails the test.
//!
//! The SNMP recordings are served by a real net-snmp `snmpd` (its `pass_persist` hook answering
//! from the recording) and read by `parta-agent snmp poll`, as in a school.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use parta_agent::sources::display::PanelMakers;
use parta_agent::sources::{edid, inventory, osrelease};
use parta_protocol::DeviceId;
use parta_protocol::inventory::{ClassSource, EquipmentClass, SizeSource};
use parta_tests::snmpd::{Snmpd, SnmpdConfig};
use parta_tests::util::{artifacts_dir, binary, files_with_extension, realworld_dir};
use serde_json::Value;

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// What a display must be read as: diagonal (tenths of an inch), which stated size, class, how
/// the class was decided, and the serial that tells units apart (None: a placeholder or none,
/// so the id comes from the computer and the connector).
struct DisplayWant {
    diagonal: u16,
    size: SizeSource,
    class: EquipmentClass,
    class_source: ClassSource,
    unit_serial: Option<&'static str>,
}

const fn want(
    diagonal: u16,
    size: SizeSource,
    class: EquipmentClass,
    class_source: ClassSource,
    unit_serial: Option<&'static str>,
) -> DisplayWant {
    DisplayWant { diagonal, size, class, class_source, unit_serial }
}

use ClassSource::{Detected, Inferred};
use EquipmentClass::{InteractiveComplex as Panel, Monitor};
use SizeSource::{BaseBlock, BoardDefault, DetailedTiming};

#[rustfmt::skip]
fn displays_wanted() -> BTreeMap<&'static str, DisplayWant> {
    BTreeMap::from([
        // Office monitors: every size field agrees; real serials.
        ("dell-p2422h", want(238, DetailedTiming, Monitor, Detected, Some("DTJ2NY3"))),
        ("hp-p24h-g4", want(238, DetailedTiming, Monitor, Detected, Some("3CM1012Z3D"))),
        ("samsung-s24f350", want(235, DetailedTiming, Monitor, Detected, Some("H4ZJ804206"))),
        // 21.5″ LG: its CTA block carries a 47″ TV's 1039×584 mm and a 16×9 "size".
        ("lg-full-hd-22", want(217, DetailedTiming, Monitor, Detected, Some("510NTUWDY806"))),
        // A 27″ monitor whose timings say 1394×784 mm (63″) and whose serial is 999 in every unit.
        ("philips-278e1", want(272, BaseBlock, Monitor, Detected, None)),
        // TVs with board-default timings (1872×1053, 1280×720, 800×450 mm): the base block's cm.
        ("toshiba-43uhd-lcd-tv", want(427, BaseBlock, Monitor, Detected, None)),
        ("hisense-65r6", want(650, BaseBlock, Panel, Detected, None)),
        ("tcl-75s431", want(749, BaseBlock, Panel, Detected, None)),
        ("samsung-tv-sam0b90", want(546, BaseBlock, Panel, Detected, None)),
        // A 32″ TV whose cm (71×40) are the 708×398 mm default rounded: consistent, yet a
        // default — the size cannot tell, and Vestel is not a panel maker: a monitor.
        ("vestel-32w-lcd-tv", want(321, BoardDefault, Monitor, Detected, None)),
        // A 32″ touch poster (70×39 cm) with 1428×804 mm timings; 16843009 numeric, a real text serial.
        ("viewsonic-ep3220t", want(315, BaseBlock, Monitor, Detected, Some("UWV160900001"))),
        // 55″-class panels measure 54.6–54.9″: panels; the LG's 0x01010101 serial is no serial.
        ("dten-board-55", want(546, DetailedTiming, Panel, Detected, None)),
        ("lg-signage-55", want(549, DetailedTiming, Panel, Detected, None)),
        ("nec-v552", want(546, DetailedTiming, Panel, Detected, Some("3Y005307NB"))),
        ("sharp-aquos-60", want(600, DetailedTiming, Panel, Detected, None)),
        ("philips-75bdl3050q", want(745, DetailedTiming, Panel, Detected, None)),
        ("xbh-panel-75", want(750, DetailedTiming, Panel, Detected, None)),
        // Panels whose first timing is the 708×398 mm (32″) default: the 75″ class by the cm
        // fields or by a timing that agrees with them.
        ("viewsonic-ifp7550", want(749, BaseBlock, Panel, Detected, None)),
        ("promethean-ap7-nickel-75", want(785, DetailedTiming, Panel, Detected, None)),
        // Board defaults in every size field but the cm, which say 52″ — no class a panel maker
        // sells; ActivPanel is a classroom panel by its maker (Hitevision) and model: inferred.
        ("promethean-activpanel-v6", want(520, BaseBlock, Panel, Inferred, None)),
    ])
}

#[test]
fn every_edid_of_the_corpus_is_read_right() {
    let dir = realworld_dir().join("edid/bin");
    let files = files_with_extension(&dir, "bin");
    let wanted = displays_wanted();
    let names: BTreeSet<String> = files.iter().map(|p| stem(p)).collect();
    let expected: BTreeSet<String> = wanted.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(names, expected, "every EDID of the corpus has an expectation, and only those");
    let host = DeviceId(uuid::Uuid::from_u128(7));
    let panels = PanelMakers::built_in();
    let mut failures = Vec::new();
    for path in &files {
        let name = stem(path);
        let e = edid::parse(&std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (d, reasons) = inventory::explain_display(host, "HDMI-A-1", Some(&e), &panels);
        let w = &wanted[name.as_str()];
        let got = (d.diagonal_decimal_in, d.size_source, d.equipment_class, d.class_source, e.unit_serial());
        let exp = (w.diagonal, w.size, w.class, w.class_source, w.unit_serial.map(str::to_owned));
        if got != exp {
            failures.push(format!("{name}: got {got:?}, want {exp:?}\n    {}", reasons.join("\n    ")));
        }
        // The id: from the serial when it tells units apart, else from the host and connector.
        let by_connector = inventory::explain_display(host, "HDMI-A-1", None, &panels).0.device_id;
        assert_eq!(d.device_id == by_connector, w.unit_serial.is_none(), "{name}: id source");
        assert!(
            reasons.iter().any(|r| r.starts_with("size: "))
                && reasons.iter().any(|r| r.starts_with("class: "))
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Two identical panels whose EDID serial is a placeholder, on two computers: two devices.
#[test]
fn identical_panels_with_a_placeholder_serial_stay_two_devices() {
    let bytes = std::fs::read(realworld_dir().join("edid/bin/philips-75bdl3050q.bin")).unwrap();
    let e = edid::parse(&bytes).unwrap();
    assert_eq!(e.serial().as_deref(), Some("16843009"), "the serial as read is kept for people");
    let panels = PanelMakers::built_in();
    let a = inventory::display_info(DeviceId(uuid::Uuid::from_u128(1)), "HDMI-A-1", Some(&e), &panels);
    let b = inventory::display_info(DeviceId(uuid::Uuid::from_u128(2)), "HDMI-A-1", Some(&e), &panels);
    assert_ne!(a.device_id, b.device_id);
    assert_eq!(a.serial.as_deref(), Some("16843009"));
}

/// (name, version, edition) people use, per os-release file; the raw fields are kept.
#[rustfmt::skip]
fn os_wanted() -> BTreeMap<&'static str, (&'static str, &'static str, &'static str)> {
    BTreeMap::from([
        // Astra 1.7 SE without its version files: the edition from VARIANT_ID, the version
        // without "_x86-64".
        ("astra-1.7-se", ("Astra Linux", "1.7", "SE")),
        ("astra-1.8", ("Astra Linux", "1.8", "")),
        // ALT whose NAME is a branch: the product is PRETTY_NAME's.
        ("alt-p10-starterkit", ("ALT Starterkit", "10", "")),
        ("alt-regular-sisyphus", ("ALT Regular", "20240122", "")),
        ("alt-server-11.0", ("ALT Server", "11.0", "ALT Server")),
        ("ximper-0.9.3", ("Etersoft Ximper", "0.9.3", "")),
        ("redos-7.3.2", ("RED OS", "7.3.2", "Standard")),
        ("redos-8.0.2", ("RED OS", "8.0.2", "Standard")),
        ("debian-12", ("Debian GNU/Linux", "12", "")),
        ("ubuntu-22.04", ("Ubuntu", "22.04", "")),
    ])
}

#[test]
fn every_os_release_of_the_corpus_is_named_right() {
    let dir = realworld_dir().join("osrelease/files");
    let files = files_with_extension(&dir, "os-release");
    let wanted = os_wanted();
    let names: BTreeSet<String> = files.iter().map(|p| stem(p)).collect();
    assert_eq!(names, wanted.keys().map(|k| (*k).to_owned()).collect(), "every file has an expectation");
    for path in &files {
        let name = stem(path);
        let fields = osrelease::parse(&std::fs::read_to_string(path).unwrap());
        let info = osrelease::identify(&fields, |_| None);
        let (n, v, ed) = wanted[name.as_str()];
        assert_eq!((info.name.as_str(), info.version.as_str(), info.edition.as_str()), (n, v, ed), "{name}");
        // The raw NAME and VERSION_ID travel as written.
        for key in ["NAME", "VERSION_ID"] {
            if let Some(raw) = fields.get(key) {
                assert!(info.release_fields.contains(&(key.to_owned(), raw.clone())), "{name}: {key} kept");
            }
        }
    }
    // Astra 1.7 with its update file, as installed machines have it.
    let fields = osrelease::parse(&std::fs::read_to_string(dir.join("astra-1.7-se.os-release")).unwrap());
    let info = osrelease::identify(&fields, |p| (p == "etc/astra_version").then(|| "1.7.9".to_owned()));
    assert_eq!((info.version.as_str(), info.edition.as_str()), ("1.7.9", "SE"));
}

/// What `snmp poll` must read from a recording: kind, profile, serial, interfaces.
struct SnmpWant {
    kind: &'static str,
    profile: &'static str,
    serial: Option<&'static str>,
    interfaces: usize,
}

const fn snmp(
    kind: &'static str,
    profile: &'static str,
    serial: Option<&'static str>,
    interfaces: usize,
) -> SnmpWant {
    SnmpWant { kind, profile, serial, interfaces }
}

#[rustfmt::skip]
fn snmp_wanted() -> BTreeMap<&'static str, SnmpWant> {
    BTreeMap::from([
        // Printers: the serial from Printer-MIB's prtGeneralSerialNumber whatever the maker
        // (Canon, Ricoh, Sharp have no profile), from the maker's branch for Brother and HP;
        // none where the device has none (Canon TM plotter, Samsung with an empty S/N).
        ("librenms__canonprinter_lbp", snmp("printer", "generic", Some("MKRA012345"), 2)),
        ("librenms__canonprinter_tm", snmp("printer", "generic", None, 2)),
        ("librenms__ricoh_mpc3002", snmp("printer", "generic", Some("W492KB03439"), 3)),
        ("librenms__sharp_mxm266nv", snmp("printer", "generic", Some("0505571100"), 1)),
        ("librenms__samsungprinter_m4080fx", snmp("printer", "generic", None, 2)),
        ("librenms__brother_hl5370dw", snmp("printer", "brother", Some("B9J154306"), 3)),
        ("librenms__jetdirect_m130nw", snmp("printer", "hp-printer", Some("VNCRC48198"), 0)),
        // Switches and routers: ENTITY-MIB or the maker's branch.
        ("librenms__dlink_des-3528", snmp("network", "dlink", None, 30)),
        ("librenms__dlink_dgs-1510-28", snmp("network", "dlink", Some("RZC52H3000029"), 36)),
        ("librenms__eltex-mes23xx_mes2324b", snmp("network", "eltex", Some("ES32012706"), 182)),
        ("librenms__eltex-mes24xx_mes2424bac", snmp("network", "eltex", None, 54)),
        ("librenms__ios_2960x", snmp("network", "cisco", Some("FCW1929B68S"), 146)),
        ("librenms__jetstream_sg2218p", snmp("network", "tplink", Some("222C014000151"), 20)),
        ("librenms__jetstream_t1600g-28ts", snmp("network", "tplink", Some("2199797000735"), 34)),
        ("librenms__procurve_2520", snmp("network", "generic", None, 44)),
        ("librenms__procurve_e2910", snmp("network", "generic", Some("AB123CD45E"), 39)),
        ("librenms__qtech_qsw-3450", snmp("network", "generic", Some("00030661509010026177"), 30)),
        ("librenms__snr", snmp("network", "generic", Some("SW080710J513000055"), 30)),
        ("librenms__routeros", snmp("network", "mikrotik", Some("71B1060EE89D"), 12)),
        ("librenms__routeros_rb750gr3", snmp("network", "mikrotik", Some("6F3A071688EA"), 14)),
        ("thola__routeros_chr1", snmp("network", "mikrotik", None, 32)),
    ])
}

#[test]
fn every_snmp_recording_of_the_corpus_is_read_right() {
    let art = artifacts_dir("realworld_snmp");
    let dir = realworld_dir().join("snmp/data");
    let files = files_with_extension(&dir, "snmprec");
    let wanted = snmp_wanted();
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for path in &files {
        let name = stem(path);
        seen.insert(name.clone());
        let cfg = SnmpdConfig {
            lines: vec!["rocommunity public 127.0.0.1".into()],
            recording: Some(path.clone()),
            ..SnmpdConfig::default()
        };
        let snmpd = Snmpd::start(&cfg, &art, &name);
        let started = std::time::Instant::now();
        let out = Command::new(binary("parta-agent"))
            .env_clear()
            .args(["snmp", "poll", "--format", "json", "--timeout", "5s", &snmpd.addr()])
            .output()
            .unwrap();
        let poll: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        eprintln!("{name}: polled in {:?}, {}", started.elapsed(), poll["error"]);
        if name == "librenms__kyocera" {
            // Five lines: no sysUpTime, so nothing about the device can be trusted — an error
            // naming what is missing, not a panic or a guess.
            assert_eq!(poll["outcome"], "malformed", "{name}: {poll}");
            assert!(poll["error"].as_str().unwrap().contains("sysUpTime"), "{name}: {poll}");
            continue;
        }
        let Some(w) = wanted.get(name.as_str()) else {
            failures.push(format!("{name}: no expectation"));
            continue;
        };
        let ifaces = poll["interfaces"].as_array().map_or(0, Vec::len);
        let got = (
            poll["outcome"].as_str(),
            poll["kind"].as_str(),
            poll["profile"].as_str(),
            poll["serial"].as_str(),
            ifaces,
        );
        if got != (Some("ok"), Some(w.kind), Some(w.profile), w.serial, w.interfaces) {
            failures.push(format!(
                "{name}: got {got:?}, want ({}, {}, {:?}, {})",
                w.kind, w.profile, w.serial, w.interfaces
            ));
        }
        // Interface texts whole, as the device has them, after the agent's sanitizing: the
        // D-Link's 72-character descriptions end with the stack unit.
        let descrs: Vec<String> = poll["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["descr"].as_str().unwrap().to_owned())
            .collect();
        let mut report = parta_protocol::Report {
            seq: 1,
            agent_time_ms: 0,
            samples: vec![parta_protocol::Sample::Snmp(Box::new(
                serde_json::from_value(poll.clone()).unwrap(),
            ))],
        };
        parta_protocol::validate::sanitize_report(&mut report);
        let parta_protocol::Sample::Snmp(p) = &report.samples[0] else { unreachable!() };
        let kept: Vec<&str> = p.interfaces.iter().map(|i| i.descr.as_str()).collect();
        assert_eq!(kept, descrs, "{name}: texts kept whole");
        if name == "librenms__dlink_dgs-1510-28" {
            assert!(descrs.iter().any(|d| d.len() > 64 && d.ends_with("Port 1 on Unit 1")), "{descrs:?}");
            let distinct: BTreeSet<&String> = descrs.iter().collect();
            assert_eq!(distinct.len(), descrs.len(), "every port tells apart");
        }
    }
    let expected: BTreeSet<String> =
        wanted.keys().map(|k| (*k).to_owned()).chain(["librenms__kyocera".to_owned()]).collect();
    assert_eq!(seen, expected, "every recording of the corpus has an expectation");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
