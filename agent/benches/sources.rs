//! CPU time of one sampling cycle with all sources on, against the skeleton's cycle (host
//! metrics only) measured in the same run. The file-based sources read a fixture tree of a
//! classroom laptop (DMI, 8 CPU threads, 2 disks, 2 NICs, 3 DRM connectors with EDIDs); host
//! metrics read the live system. logind is not included (it needs a bus; the end-to-end usage
//! test covers it).
//!
//! `cargo bench -p parta-agent --bench sources`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use parta_agent::paths::HostPaths;
use parta_agent::sources::edid::{self, Spec};
use parta_agent::sources::host::HostSource;
use parta_agent::sources::inventory::{InventoryOptions, InventorySource};
use parta_agent::sources::power::BootInfo;
use parta_agent::sources::{dmi, osrelease};
use parta_agent::usage::{SessionView, Tracker, UsageConfig};
use parta_protocol::inventory::{DmiInventory, Inventory};
use parta_protocol::usage::UserClass;
use parta_protocol::{DeviceId, DeviceKind};

fn write(root: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn fixture(root: &Path) {
    for (k, v) in [
        ("sys_vendor", "AQUARIUS"),
        ("product_name", "NS685U R11"),
        ("product_serial", "QC1"),
        ("chassis_type", "10"),
        ("bios_vendor", "AMI"),
        ("bios_version", "1.07"),
        ("bios_date", "03/15/2022"),
        ("board_vendor", "AQUARIUS"),
        ("board_name", "NS685U"),
    ] {
        write(root, &format!("sys/class/dmi/id/{k}"), format!("{v}\n"));
    }
    let mut cpuinfo = String::new();
    for p in 0..8 {
        cpuinfo.push_str(&format!("processor\t: {p}\nmodel name\t: Intel(R) Core(TM) i5-1135G7\nphysical id\t: 0\ncore id\t\t: {}\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush\n\n", p % 4));
    }
    write(root, "proc/cpuinfo", cpuinfo);
    write(root, "proc/meminfo", "MemTotal:       16318412 kB\nMemFree:         1000 kB\n");
    write(root, "proc/sys/kernel/hostname", "kab214\n");
    write(root, "proc/sys/kernel/osrelease", "6.1.90\n");
    for (name, rot) in [("nvme0n1", "0"), ("sda", "1")] {
        write(root, &format!("sys/block/{name}/size"), "976773168\n");
        write(root, &format!("sys/block/{name}/queue/rotational"), format!("{rot}\n"));
        write(root, &format!("sys/block/{name}/removable"), "0\n");
        write(root, &format!("sys/block/{name}/device/model"), "KINGSTON SNV2S500G\n");
    }
    for (name, speed) in [("enp2s0", "1000"), ("wlp0s20f3", "-1")] {
        write(root, &format!("sys/class/net/{name}/address"), "00:e0:4c:68:00:01\n");
        write(root, &format!("sys/class/net/{name}/speed"), format!("{speed}\n"));
        std::fs::create_dir_all(root.join(format!("sys/class/net/{name}/device"))).unwrap();
    }
    for (i, conn) in ["HDMI-A-1", "DP-1", "eDP-1"].iter().enumerate() {
        let e = edid::encode(&Spec {
            manufacturer: "NTC",
            product_code: 7,
            serial_number: i as u32 + 1,
            serial_text: None,
            name: Some("NexTouch 75"),
            year: 2022,
            width_mm: 1650,
            height_mm: 928,
            ..Default::default()
        });
        let d = format!("sys/class/drm/card0-{conn}");
        write(root, &format!("{d}/edid"), e);
        write(root, &format!("{d}/status"), "connected\n");
        write(root, &format!("{d}/enabled"), "enabled\n");
        write(root, &format!("{d}/dpms"), "On\n");
    }
    write(root, "etc/os-release", "NAME=\"Astra Linux\"\nID=astra\nVERSION_ID=1.7_x86-64\n");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let paths = HostPaths::under(dir.path());
    let options = InventoryOptions {
        device_id: DeviceId(uuid::Uuid::from_u128(1)),
        kind: DeviceKind::Computer,
        room: "214".into(),
        equipment_class: None,
        panels: std::sync::Arc::new(parta_agent::sources::display::PanelMakers::built_in()),
    };
    let mut host = HostSource::new().unwrap();
    let mut inventory = InventorySource::new(paths.clone(), options);
    let cfg = UsageConfig { idle_after_ms: 300_000, flush_ms: 600_000, tz: jiff::tz::TimeZone::UTC };
    let now = 1_795_400_000_000i64;
    let (mut tracker, _) = Tracker::start(
        cfg,
        None,
        &BootInfo { boot_id: "b".into(), boot_ms: now - 3_600_000 },
        |_, _| None,
        1,
        now,
    );
    let sessions = vec![SessionView {
        id: "1".into(),
        idle_hint: false,
        idle_since_ms: now,
        created_ms: now - 60_000,
        user_class: UserClass::Pupil,
        user_key: None,
    }];
    let display = [(DeviceId(uuid::Uuid::from_u128(2)), true)];
    let mut t = now;

    let mut group = c.benchmark_group("sampling_cycle");
    group.measurement_time(Duration::from_secs(5));
    // The skeleton's cycle: metrics, and the identity from os-release and three DMI fields.
    group.bench_function("baseline_skeleton_host_metrics_and_info", |b| {
        b.iter(|| {
            let m = host.metrics(Instant::now());
            let field = |name: &str| dmi::read_field(&paths, name).ok().flatten();
            let dmi = DmiInventory {
                vendor: field("sys_vendor"),
                product: field("product_name"),
                serial: field("product_serial"),
                ..DmiInventory::default()
            };
            let identity = Inventory { os: osrelease::read(&paths), dmi, ..Inventory::default() };
            let i = host.info(&identity);
            (m, i)
        });
    });
    group.bench_function("inventory_with_displays", |b| b.iter(|| inventory.read()));
    group.bench_function("usage_tracker_observe", |b| {
        b.iter(|| {
            t += 100;
            tracker.observe(t, Some(&sessions), &display);
            if tracker.has_pending() {
                tracker.take_for_report(0, usize::MAX, usize::MAX);
                tracker.spooled();
            }
        });
    });
    group.bench_function("all_sources", |b| {
        b.iter(|| {
            let m = host.metrics(Instant::now());
            let inv = inventory.read();
            let i = host.info(&inv);
            t += 100;
            tracker.observe(t, Some(&sessions), &display);
            (m, i, inv)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
