//! Fixture trees of real-looking school devices: sysfs (DMI, block devices, network interfaces,
//! DRM connectors with EDID), procfs (cpuinfo, meminfo, boot id, btime, hostname) and a root
//! filesystem (os-release, wtmp), for `--sysfs/--procfs/--rootfs`.

use std::path::{Path, PathBuf};

use parta_agent::sources::edid::{self, Spec};
use parta_agent::sources::power::{self, WtmpEvent};

/// A fixture tree being built.
#[derive(Debug)]
pub struct Tree {
    /// Root directory (`sys/`, `proc/` and the root filesystem below it).
    pub root: PathBuf,
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

impl Tree {
    /// An empty tree in `root`.
    pub fn new(root: &Path) -> Self {
        std::fs::create_dir_all(root).unwrap();
        Self { root: root.to_owned() }
    }

    /// Writes a file relative to the root.
    pub fn file(&self, rel: &str, bytes: impl AsRef<[u8]>) -> &Self {
        write(&self.root.join(rel), bytes);
        self
    }

    /// DMI attributes (`sys/class/dmi/id/NAME`).
    pub fn dmi(&self, fields: &[(&str, &str)]) -> &Self {
        for (k, v) in fields {
            self.file(&format!("sys/class/dmi/id/{k}"), format!("{v}\n"));
        }
        self
    }

    /// procfs basics: hostname, kernel release, boot id and btime.
    pub fn procfs(&self, hostname: &str, boot_id: &str, btime: i64) -> &Self {
        self.file("proc/sys/kernel/hostname", format!("{hostname}\n"));
        self.file("proc/sys/kernel/osrelease", "6.1.90-1-generic\n");
        self.boot(boot_id, btime)
    }

    /// `/proc/cpuinfo` with `threads` logical processors on `cores` cores, `/proc/meminfo`.
    pub fn cpu(&self, model: &str, threads: u32, cores: u32, mem_kb: u64) -> &Self {
        let mut cpuinfo = String::new();
        for p in 0..threads {
            cpuinfo.push_str(&format!(
                "processor\t: {p}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\nphysical id\t: 0\ncore id\t\t: {}\n\n",
                p % cores
            ));
        }
        self.file("proc/cpuinfo", cpuinfo);
        self.file("proc/meminfo", format!("MemTotal:       {mem_kb} kB\nMemFree:         1000 kB\n"));
        self
    }

    /// Boot id and boot time (seconds).
    pub fn boot(&self, boot_id: &str, btime: i64) -> &Self {
        self.file("proc/sys/kernel/random/boot_id", format!("{boot_id}\n"));
        self.file("proc/stat", format!("cpu  10 0 10 100 0 0 0 0 0 0\nbtime {btime}\nprocesses 100\n"));
        self
    }

    /// A block device.
    pub fn disk(&self, name: &str, model: &str, sectors: u64, rotational: bool, removable: bool) -> &Self {
        let d = format!("sys/block/{name}");
        self.file(&format!("{d}/size"), format!("{sectors}\n"));
        self.file(&format!("{d}/queue/rotational"), if rotational { "1\n" } else { "0\n" });
        self.file(&format!("{d}/removable"), if removable { "1\n" } else { "0\n" });
        self.file(&format!("{d}/device/model"), format!("{model}\n"));
        self
    }

    /// A network interface; `physical` gives it a `device` link, `speed` its link speed.
    pub fn nic(&self, name: &str, mac: &str, speed: Option<i32>, wireless: bool, physical: bool) -> &Self {
        let d = format!("sys/class/net/{name}");
        self.file(&format!("{d}/address"), format!("{mac}\n"));
        if let Some(s) = speed {
            self.file(&format!("{d}/speed"), format!("{s}\n"));
        }
        if physical {
            std::fs::create_dir_all(self.root.join(format!("{d}/device"))).unwrap();
        }
        if wireless {
            std::fs::create_dir_all(self.root.join(format!("{d}/wireless"))).unwrap();
        }
        self
    }

    /// A DRM connector with an EDID (raw bytes, possibly garbage) and its state.
    pub fn connector(&self, name: &str, edid: &[u8], connected: bool, dpms_on: bool) -> &Self {
        let d = format!("sys/class/drm/card0-{name}");
        self.file(&format!("{d}/edid"), edid);
        self.file(&format!("{d}/enabled"), if connected { "enabled\n" } else { "disabled\n" });
        self.set_connector(name, connected, dpms_on);
        self
    }

    /// Changes a connector's status and DPMS state.
    pub fn set_connector(&self, name: &str, connected: bool, dpms_on: bool) {
        let d = format!("sys/class/drm/card0-{name}");
        self.file(&format!("{d}/status"), if connected { "connected\n" } else { "disconnected\n" });
        self.file(&format!("{d}/enabled"), if connected { "enabled\n" } else { "disabled\n" });
        self.file(&format!("{d}/dpms"), if dpms_on { "On\n" } else { "Off\n" });
    }

    /// `etc/os-release` (and extra version files).
    pub fn os(&self, os_release: &str, extra: &[(&str, &str)]) -> &Self {
        self.file("etc/os-release", os_release);
        for (k, v) in extra {
            self.file(k, v);
        }
        self
    }

    /// Appends records to `var/log/wtmp`.
    pub fn wtmp(&self, events: &[WtmpEvent]) -> &Self {
        let path = self.root.join("var/log/wtmp");
        let mut bytes = std::fs::read(&path).unwrap_or_default();
        for e in events {
            bytes.extend_from_slice(&power::wtmp_record(*e));
        }
        write(&path, bytes);
        self
    }

    /// `--sysfs/--procfs/--rootfs` environment for the agent.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PARTA_SYSFS".into(), self.root.join("sys").display().to_string()),
            ("PARTA_PROCFS".into(), self.root.join("proc").display().to_string()),
            ("PARTA_ROOTFS".into(), self.root.display().to_string()),
        ]
    }
}

/// DMI of an Aquarius classroom laptop (chassis type 10, notebook).
pub const AQUARIUS_LAPTOP_DMI: &[(&str, &str)] = &[
    ("sys_vendor", "AQUARIUS"),
    ("product_name", "NS685U R11"),
    ("product_serial", "QCNS6850123456"),
    ("chassis_type", "10"),
];

/// EDID of a 75" interactive panel (1650 × 928 mm).
pub fn panel_edid() -> Vec<u8> {
    edid::encode(&Spec {
        manufacturer: "NTC",
        product_code: 0x7501,
        serial_number: 0,
        serial_text: Some("NP75B2200417"),
        name: Some("NexTouch 75"),
        year: 2022,
        width_mm: 1650,
        height_mm: 928,
        ..Default::default()
    })
}

/// EDID of a 23.8" office monitor (527 × 296 mm) with a numeric serial only.
pub fn monitor_edid() -> Vec<u8> {
    edid::encode(&Spec {
        manufacturer: "AOC",
        product_code: 0x2402,
        serial_number: 0x0002_a6d3,
        serial_text: None,
        name: Some("24B2XH"),
        year: 2021,
        width_mm: 527,
        height_mm: 296,
        ..Default::default()
    })
}

/// A teacher's laptop as schools got them: AQUARIUS NS685U, Core i5, NVMe, gigabit NIC with
/// `mac`, Astra Linux SE 1.7.
pub fn school_laptop(root: &Path, host: &str, serial: &str, mac: &str) -> Tree {
    let t = Tree::new(root);
    t.dmi(&[
        ("sys_vendor", "AQUARIUS"),
        ("product_name", "NS685U R11"),
        ("product_serial", serial),
        ("chassis_type", "10"),
    ])
    .procfs(host, &uuid::Uuid::new_v4().to_string(), 1_795_420_800)
    .cpu("Intel(R) Core(TM) i5-1135G7", 8, 4, 16_318_412)
    .disk("nvme0n1", "KINGSTON SNV2S500G", 976_773_168, false, false)
    .nic("enp2s0", mac, Some(1000), false, true)
    .os(ASTRA_OS_RELEASE, &[("etc/astra_version", "SE 1.7.5\n")]);
    t
}

/// Astra Linux 1.7 SE os-release and version file.
pub const ASTRA_OS_RELEASE: &str = "PRETTY_NAME=\"Astra Linux\"\nNAME=\"Astra Linux\"\nID=astra\nID_LIKE=debian\nANSI_COLOR=\"1;31\"\nHOME_URL=\"https://astralinux.ru\"\nSUPPORT_URL=\"https://astralinux.ru/support\"\nLOGO=astra\nVERSION_ID=1.7_x86-64\nVERSION_CODENAME=1.7_x86-64\n";
/// ALT Education 10.
pub const ALT_OS_RELEASE: &str = "NAME=\"ALT Education\"\nVERSION=\"10.1 (Mendelevium)\"\nID=altlinux\nVERSION_ID=10.1\nPRETTY_NAME=\"ALT Education 10.1 (Mendelevium)\"\nANSI_COLOR=\"1;33\"\nCPE_NAME=\"cpe:/o:alt:education:10.1\"\nHOME_URL=\"https://basealt.ru\"\nVARIANT=\"Education\"\n";
/// RED OS 7.3.
pub const REDOS_OS_RELEASE: &str = "NAME=\"RED OS\"\nVERSION=\"MUROM (7.3.4)\"\nEDITION=\"Standard\"\nID=\"redos\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"7.3\"\nPRETTY_NAME=\"RED OS MUROM (7.3.4)\"\nANSI_COLOR=\"0;31\"\nCPE_NAME=\"cpe:/o:redsoft:redos:7.3\"\nHOME_URL=\"https://redos.red-soft.ru/\"\n";
