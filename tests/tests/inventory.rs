//! `parta-agent inventory` on fixture trees of real-looking school devices gives exactly the
//! expected inventory; garbage in fixture files gives warnings and empty fields, never a crash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use parta_agent::sources::inventory::DISPLAY_NAMESPACE;
use parta_tests::fixtures::{self, Tree};
use parta_tests::util::binary;
use serde_json::{Value, json};

fn inventory(tree: &Tree, extra: &[(&str, &str)]) -> (Value, String) {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(binary("parta-agent"))
        .args(["inventory", "--format", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PARTA_STATE_DIR", state.path())
        .envs(tree.env())
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "inventory failed: {stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

fn display_id(name: &str) -> String {
    uuid::Uuid::new_v5(&DISPLAY_NAMESPACE, name.as_bytes()).to_string()
}

/// An Astra Linux teacher laptop (Aquarius), an external monitor on HDMI, its own eDP panel.
fn astra_laptop(root: &std::path::Path) -> Tree {
    let t = Tree::new(root);
    t.dmi(fixtures::AQUARIUS_LAPTOP_DMI)
        .dmi(&[
            ("bios_vendor", "American Megatrends Inc."),
            ("bios_version", "1.07"),
            ("bios_date", "03/15/2022"),
            ("board_vendor", "AQUARIUS"),
            ("board_name", "To Be Filled By O.E.M."),
        ])
        .procfs("kab214-teacher", "5f1c0d2e-8a7b-4c6d-9e0f-112233445566", 1_795_420_800)
        .cpu("11th Gen Intel(R) Core(TM) i5-1135G7 @ 2.40GHz", 8, 4, 16_318_412)
        .disk("nvme0n1", "KINGSTON SNV2S500G", 976_773_168, false, false)
        .disk("loop0", "", 1000, false, false)
        .disk("sda", "USB Flash", 30_000_000, true, true)
        .nic("wlp0s20f3", "f8:e4:e3:01:02:03", None, true, true)
        .nic("enp2s0", "00:e0:4c:68:00:01", Some(1000), false, true)
        .nic("docker0", "02:42:ac:11:00:01", None, false, false)
        .connector("eDP-1", &fixtures::monitor_edid(), true, true)
        .connector("HDMI-A-1", &fixtures::monitor_edid(), true, true)
        .os(
            fixtures::ASTRA_OS_RELEASE,
            &[("etc/astra_version", "SE 1.7.5\n"), ("etc/astra/build_version", "1.7.5.16\n")],
        );
    t
}

#[test]
fn astra_laptop_inventory_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let t = astra_laptop(dir.path());
    let (inv, stderr) =
        inventory(&t, &[("PARTA_ROOM", "каб. 214"), ("PARTA_EQUIPMENT_CLASS", "teacher_laptop")]);
    let expected = json!({
        "hostname": "kab214-teacher",
        "room": "каб. 214",
        "equipment_class": "teacher_laptop",
        "class_source": "configured",
        "os": {"id": "astra", "name": "Astra Linux", "version": "1.7.5.16", "pretty_name": "Astra Linux", "edition": "SE",
               "release_fields": [["NAME", "Astra Linux"], ["VERSION_ID", "1.7_x86-64"], ["ID_LIKE", "debian"],
                                  ["/etc/astra_version", "SE 1.7.5"], ["/etc/astra/build_version", "1.7.5.16"]]},
        "kernel": "6.1.90-1-generic",
        "dmi": {
            "vendor": "AQUARIUS", "product": "NS685U R11", "serial": "QCNS6850123456", "chassis_type": 10,
            "bios_vendor": "American Megatrends Inc.", "bios_version": "1.07", "bios_date": "03/15/2022",
            "board_vendor": "AQUARIUS", "board_product": null
        },
        "cpu": {"model": "11th Gen Intel(R) Core(TM) i5-1135G7 @ 2.40GHz", "logical": 8, "cores": 4},
        "memory_bytes": 16_710_053_888u64,
        "disks": [{"name": "nvme0n1", "model": "KINGSTON SNV2S500G", "size_bytes": 500_107_862_016u64, "media": "ssd"}],
        "nics": [
            {"name": "enp2s0", "mac": "00:e0:4c:68:00:01", "speed_mbps": 1000, "wireless": false},
            {"name": "wlp0s20f3", "mac": "f8:e4:e3:01:02:03", "speed_mbps": null, "wireless": true}
        ],
        "displays": [{
            "device_id": display_id("edid:AOC:9218:173779"),
            "connector": "HDMI-A-1", "manufacturer": "AOC", "product_code": 9218, "serial": "173779",
            "name": "24B2XH", "width_mm": 527, "height_mm": 296, "diagonal_decimal_in": 238, "year": 2021,
            "equipment_class": "monitor", "kind": "monitor",
            "size_source": "detailed_timing", "class_source": "detected"
        }]
    });
    assert_eq!(inv, expected, "stderr: {stderr}");
    // Without configuration the class is detected from the chassis type.
    let (inv, _) = inventory(&t, &[]);
    assert_eq!(
        (inv["equipment_class"].as_str(), inv["class_source"].as_str()),
        (Some("laptop"), Some("detected"))
    );
}

#[test]
fn alt_desktop_with_a_panel_attached() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path());
    t.dmi(&[
        ("sys_vendor", "ICL"),
        ("product_name", "SafeRAY S222"),
        ("product_serial", "ICL2207A1942"),
        ("chassis_type", "3"),
    ])
    .procfs("kab105-pc", "0b8a7c6d-1e2f-4a3b-8c9d-0e1f2a3b4c5d", 1_795_420_800)
    .cpu("Intel(R) Core(TM) i3-10105 CPU @ 3.70GHz", 8, 4, 8_011_776)
    .disk("sda", "ST1000DM010-2EP102", 1_953_525_168, true, false)
    .nic("eno1", "d8:bb:c1:aa:bb:cc", Some(100), false, true)
    .connector("HDMI-A-2", &fixtures::panel_edid(), true, true)
    .connector("DP-1", &[], false, false)
    .os(fixtures::ALT_OS_RELEASE, &[]);
    let (inv, stderr) = inventory(&t, &[]);
    assert_eq!(
        inv["os"],
        json!({"id": "altlinux", "name": "ALT Education", "version": "10.1", "pretty_name": "ALT Education 10.1 (Mendelevium)", "edition": "Education",
               "release_fields": [["NAME", "ALT Education"], ["VERSION", "10.1 (Mendelevium)"], ["VERSION_ID", "10.1"], ["VARIANT", "Education"]]}),
        "{stderr}"
    );
    assert_eq!(
        (inv["equipment_class"].as_str(), inv["class_source"].as_str()),
        (Some("desktop"), Some("detected"))
    );
    assert_eq!(
        inv["disks"],
        json!([{"name": "sda", "model": "ST1000DM010-2EP102", "size_bytes": 1_000_204_886_016u64, "media": "hdd"}])
    );
    assert_eq!(
        inv["nics"],
        json!([{"name": "eno1", "mac": "d8:bb:c1:aa:bb:cc", "speed_mbps": 100, "wireless": false}])
    );
    assert_eq!(
        inv["displays"],
        json!([{
            "device_id": display_id("edid:NTC:29953:NP75B2200417"),
            "connector": "HDMI-A-2", "manufacturer": "NTC", "product_code": 29953, "serial": "NP75B2200417",
            "name": "NexTouch 75", "width_mm": 1650, "height_mm": 928, "diagonal_decimal_in": 745, "year": 2022,
            "equipment_class": "interactive_complex", "kind": "panel",
            "size_source": "detailed_timing", "class_source": "detected"
        }])
    );
}

#[test]
fn red_os_panel_compute_module_is_the_panel() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path());
    t.dmi(&[("sys_vendor", "NexTouch"), ("product_name", "OPS-i5"), ("chassis_type", "3")])
        .procfs("panel-214", "7c6d5e4f-3a2b-4c1d-8e9f-a0b1c2d3e4f5", 1_795_420_800)
        .cpu("Intel(R) Core(TM) i5-8265U CPU @ 1.60GHz", 8, 4, 8_011_776)
        .disk("sda", "Netac SSD 256GB", 500_118_192, false, false)
        .nic("enp1s0", "00:1e:67:00:00:01", Some(1000), false, true)
        .connector("HDMI-A-1", &fixtures::panel_edid(), true, true)
        .os(fixtures::REDOS_OS_RELEASE, &[]);
    let (inv, stderr) = inventory(&t, &[("PARTA_KIND", "panel")]);
    assert_eq!(
        inv["os"],
        json!({"id": "redos", "name": "RED OS", "version": "7.3.4", "pretty_name": "RED OS MUROM (7.3.4)", "edition": "Standard",
               "release_fields": [["NAME", "RED OS"], ["VERSION", "MUROM (7.3.4)"], ["VERSION_ID", "7.3"], ["EDITION", "Standard"],
                                  ["ID_LIKE", "rhel centos fedora"]]}),
        "{stderr}"
    );
    assert_eq!(
        (inv["equipment_class"].as_str(), inv["class_source"].as_str()),
        (Some("interactive_complex"), Some("detected"))
    );
    assert_eq!(inv["displays"], json!([]), "the panel is the device itself, not an attached display");
    assert_eq!(inv["dmi"]["serial"], Value::Null);
}

#[test]
fn garbage_files_warn_and_leave_fields_empty() {
    let dir = tempfile::tempdir().unwrap();
    let t = astra_laptop(dir.path());
    // A truncated EDID, a bad checksum, a DMI file that is a directory, a chassis type that is
    // not a number, a memory file without MemTotal, a MAC address that is not one.
    let mut bad = fixtures::panel_edid();
    bad[20] ^= 0x01;
    t.connector("HDMI-A-1", &fixtures::monitor_edid()[..77], true, true).connector("DP-2", &bad, true, true);
    std::fs::remove_file(dir.path().join("sys/class/dmi/id/product_name")).unwrap();
    std::fs::create_dir(dir.path().join("sys/class/dmi/id/product_name")).unwrap();
    t.file("sys/class/dmi/id/chassis_type", "notebook\n")
        .file("proc/meminfo", "garbage\n")
        .file("sys/class/net/enp2s0/address", "zz:zz\n")
        .file("proc/cpuinfo", [0xff_u8, 0x00, 0x13].as_slice());
    let (inv, stderr) = inventory(&t, &[]);
    for needle in [
        "EDID truncated",
        "EDID checksum mismatch",
        "product_name",
        "chassis_type",
        "MemTotal",
        "not a MAC address",
    ] {
        assert!(stderr.contains(needle), "warning about {needle:?} expected in: {stderr}");
    }
    assert_eq!(inv["dmi"]["product"], Value::Null);
    assert_eq!(inv["dmi"]["chassis_type"], Value::Null);
    assert_eq!(inv["dmi"]["vendor"], "AQUARIUS", "the rest is still read");
    assert_eq!(inv["memory_bytes"], 0);
    assert_eq!(inv["cpu"], json!({"model": "", "logical": 0, "cores": 0}));
    assert_eq!(inv["nics"][0]["mac"], Value::Null);
    let displays = inv["displays"].as_array().unwrap();
    assert_eq!(displays.len(), 2, "{displays:?}");
    for d in displays {
        assert_eq!(
            (d["manufacturer"].as_str(), d["serial"].as_str(), d["width_mm"].as_u64()),
            (Some(""), None, Some(0)),
            "{d}"
        );
    }
    assert_eq!(inv["equipment_class"], "other", "no chassis type, nothing configured");
}

/// `parta-agent inventory` explains each display's id, size and class: real EDIDs from the
/// corpus — a Promethean ActivPanel whose timings carry board defaults (a panel by its maker,
/// inferred) and a 27″ Philips monitor whose timings say 63″ and whose serial is 999 in every
/// unit.
#[test]
fn inventory_explains_how_each_display_was_decided() {
    let corpus = parta_tests::util::realworld_dir().join("edid/bin");
    let dir = tempfile::tempdir().unwrap();
    let t = Tree::new(dir.path());
    t.dmi(&[("sys_vendor", "ICL"), ("product_name", "SafeRAY S222"), ("chassis_type", "3")])
        .procfs("kab105-pc", "0b8a7c6d-1e2f-4a3b-8c9d-0e1f2a3b4c5d", 1_795_420_800)
        .connector(
            "HDMI-A-1",
            &std::fs::read(corpus.join("promethean-activpanel-v6.bin")).unwrap(),
            true,
            true,
        )
        .connector("DP-1", &std::fs::read(corpus.join("philips-278e1.bin")).unwrap(), true, true)
        .os(fixtures::ALT_OS_RELEASE, &[]);
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(binary("parta-agent"))
        .arg("inventory")
        .env_clear()
        .env("PARTA_STATE_DIR", state.path())
        .envs(t.env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "display DP-1 (PHL PHL 278E1):",
        "  id: from this computer and DP-1 (serial 999 is a placeholder every unit carries)",
        "  size: the base block says 60×34 cm (27.2″): taken; the timings disagree: 1394×784 mm (63.0″, a known board default)",
        "  class: monitor: 27.2″, the 27″ class, below the 55″ class (54.0″)",
        "display HDMI-A-1 (HHT ActivPanel V6):",
        "  class: interactive panel, inferred: HHT ActivPanel V6 is listed as Hitevision (Honghe), ODM of Promethean ActivPanel (52.0″ would be a monitor)",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    let (inv, _) = inventory(&t, &[]);
    let by_connector: Vec<(&str, &str, &str)> = inv["displays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["connector"].as_str().unwrap(),
                d["size_source"].as_str().unwrap(),
                d["class_source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_connector, [("DP-1", "base_block", "detected"), ("HDMI-A-1", "base_block", "inferred")]);
}
