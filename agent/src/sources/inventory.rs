//! The device's inventory from files: DMI, `/proc/cpuinfo`, `/proc/meminfo`, `/sys/block`,
//! `/sys/class/net`, DRM connectors and os-release — all under [`HostPaths`], so a fixture tree
//! gives the same answer on any machine.
//!
//! Garbage never stops the inventory: an unreadable or malformed file leaves its field empty and
//! logs a warning once (the agent re-reads the inventory every report and sends it on change).

use std::collections::{BTreeSet, HashSet};
use std::io::ErrorKind;
use std::path::Path;

use parta_protocol::DeviceId;
use parta_protocol::DeviceKind;
use parta_protocol::inventory::{
    ClassSource, CpuInfo, DiskInfo, DisplayInfo, DmiInventory, EquipmentClass, Inventory, Media, NicInfo,
    SizeSource,
};
use parta_protocol::sample::MacAddr;
use uuid::Uuid;

use super::display::{self as decide, PanelMakers};
use super::drm::{self, Connector};
use super::{dmi, osrelease};
use crate::paths::HostPaths;

/// Namespace of display device ids (UUIDv5).
pub const DISPLAY_NAMESPACE: Uuid = Uuid::from_u128(0x7a1c_52b0_9a43_4f0e_8d35_6f2b_5c41_d9e2);
/// Block devices that are not fixed disks.
const VIRTUAL_BLOCK: &[&str] = &["loop", "ram", "zram", "dm-", "sr", "md", "fd", "nbd", "mmcblk0boot"];
/// SMBIOS chassis types of portable computers (laptop, notebook, tablet, convertible, ...).
const PORTABLE_CHASSIS: &[u8] = &[8, 9, 10, 11, 14, 30, 31, 32];

/// What the configuration says about the device.
#[derive(Debug, Clone)]
pub struct InventoryOptions {
    /// The agent's own device id (display ids without a serial derive from it).
    pub device_id: DeviceId,
    /// Device kind the agent declares.
    pub kind: DeviceKind,
    /// Room from the configuration.
    pub room: String,
    /// Equipment class from the configuration; detected when `None`.
    pub equipment_class: Option<EquipmentClass>,
    /// Makers and models of interactive panels (built-in and the region's).
    pub panels: std::sync::Arc<PanelMakers>,
}

/// Reads the inventory, warning once per distinct problem.
#[derive(Debug)]
pub struct InventorySource {
    paths: HostPaths,
    options: InventoryOptions,
    warned: HashSet<String>,
}

impl InventorySource {
    /// A source reading below `paths`.
    pub fn new(paths: HostPaths, options: InventoryOptions) -> Self {
        Self { paths, options, warned: HashSet::new() }
    }

    /// Reads the whole inventory.
    pub fn read(&mut self) -> Inventory {
        let mut warnings = Vec::new();
        let inv = read(&self.paths, &self.options, &drm::read(&self.paths), &mut warnings);
        self.warn(warnings);
        inv
    }

    /// Reads only the DRM connectors: the connected displays' ids and whether each is on (for
    /// the usage tracker, every poll).
    pub fn displays_on(&mut self) -> Vec<(DeviceId, bool)> {
        let connectors = drm::read(&self.paths);
        // A computer needs only each display's id, which the EDID gives; a panel's compute
        // module must tell its own panel (left out) from other displays: the whole decision.
        if self.options.kind != DeviceKind::Panel {
            return connectors
                .iter()
                .filter(|c| c.connected)
                .map(|c| {
                    let edid = c.edid.as_ref().and_then(|e| e.as_ref().ok());
                    (display_id(self.options.device_id, &c.name, edid), c.is_on())
                })
                .collect();
        }
        let mut warnings = Vec::new();
        let on = displays(&self.options, &connectors, &mut warnings)
            .into_iter()
            .map(|d| (d.device_id, connectors.iter().any(|c| c.name == d.connector && c.is_on())))
            .collect();
        self.warn(warnings);
        on
    }

    fn warn(&mut self, warnings: Vec<String>) {
        for w in warnings {
            if self.warned.insert(w.clone()) {
                tracing::warn!("inventory: {w}");
            }
        }
    }
}

/// Reads the inventory; problems are appended to `warnings`.
pub fn read(
    paths: &HostPaths,
    options: &InventoryOptions,
    connectors: &[Connector],
    warnings: &mut Vec<String>,
) -> Inventory {
    let hostname = text_file(&paths.proc("sys/kernel/hostname"), warnings)
        .or_else(|| text_file(&paths.root("etc/hostname"), warnings))
        .unwrap_or_default();
    let kernel = text_file(&paths.proc("sys/kernel/osrelease"), warnings).unwrap_or_default();
    let dmi = read_dmi(paths, warnings);
    let (class, source) = match options.equipment_class {
        Some(c) => (c, ClassSource::Configured),
        None => (detect_class(options.kind, dmi.chassis_type), ClassSource::Detected),
    };
    Inventory {
        hostname,
        room: options.room.clone(),
        equipment_class: Some(class),
        class_source: Some(source),
        os: osrelease::read(paths),
        kernel,
        cpu: read_cpu(&paths.proc("cpuinfo"), warnings),
        memory_bytes: read_meminfo(&paths.proc("meminfo"), warnings),
        disks: read_disks(paths, warnings),
        nics: read_nics(paths, warnings),
        displays: displays(options, connectors, warnings),
        dmi,
    }
}

/// Equipment class from the device kind and DMI chassis type.
pub fn detect_class(kind: DeviceKind, chassis: Option<u8>) -> EquipmentClass {
    match (kind, chassis) {
        (DeviceKind::Panel, _) => EquipmentClass::InteractiveComplex,
        (_, Some(c)) if PORTABLE_CHASSIS.contains(&c) => EquipmentClass::Laptop,
        (_, Some(_)) => EquipmentClass::Desktop,
        (_, None) => EquipmentClass::Other,
    }
}

/// A one-line text file, trimmed; `None` (with a warning unless it is simply absent) otherwise.
fn text_file(path: &Path, warnings: &mut Vec<String>) -> Option<String> {
    let s = read_text(path, warnings)?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn read_dmi(paths: &HostPaths, warnings: &mut Vec<String>) -> DmiInventory {
    let field = |name: &str, warnings: &mut Vec<String>| -> Option<String> {
        dmi::read_field(paths, name).unwrap_or_else(|e| {
            warnings
                .push(format!("cannot read DMI {}: {e}; field left empty", dmi::path(paths, name).display()));
            None
        })
    };
    let chassis_type = field("chassis_type", warnings).and_then(|s| match s.parse::<u8>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            warnings.push(format!("DMI chassis_type {s:?} is not a number; field left empty"));
            None
        }
    });
    DmiInventory {
        vendor: field("sys_vendor", warnings),
        product: field("product_name", warnings),
        serial: field("product_serial", warnings),
        chassis_type,
        bios_vendor: field("bios_vendor", warnings),
        bios_version: field("bios_version", warnings),
        bios_date: field("bios_date", warnings),
        board_vendor: field("board_vendor", warnings),
        board_product: field("board_name", warnings),
    }
}

/// `/proc/cpuinfo`: model, logical processors, physical cores.
fn read_cpu(path: &Path, warnings: &mut Vec<String>) -> CpuInfo {
    let Some(text) = read_text(path, warnings) else { return CpuInfo::default() };
    parse_cpuinfo(&text)
}

/// Parses `/proc/cpuinfo` (x86 and ARM layouts).
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut model = None;
    let mut logical = 0u32;
    let mut cores: BTreeSet<(String, String)> = BTreeSet::new();
    let (mut physical, mut core) = (String::new(), String::new());
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() && !core.is_empty() {
                cores.insert((std::mem::take(&mut physical), std::mem::take(&mut core)));
            }
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" if v.parse::<u32>().is_ok() => logical += 1,
            "model name" | "Model" | "Hardware" if model.is_none() && !v.is_empty() => {
                model = Some(v.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            "physical id" => physical = v.to_owned(),
            "core id" => core = v.to_owned(),
            _ => {}
        }
    }
    if !core.is_empty() {
        cores.insert((physical, core));
    }
    let cores = if cores.is_empty() { logical } else { u32::try_from(cores.len()).unwrap_or(u32::MAX) };
    CpuInfo { model: model.unwrap_or_default(), logical, cores }
}

/// `MemTotal` from `/proc/meminfo`, bytes.
fn read_meminfo(path: &Path, warnings: &mut Vec<String>) -> u64 {
    let Some(text) = read_text(path, warnings) else { return 0 };
    let total = text.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
    });
    match total {
        Some(kb) => kb.saturating_mul(1024),
        None => {
            warnings.push(format!("no MemTotal in {}; memory left empty", path.display()));
            0
        }
    }
}

fn read_text(path: &Path, warnings: &mut Vec<String>) -> Option<String> {
    match std::fs::read(path) {
        Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}; field left empty", path.display()));
            None
        }
    }
}

/// Fixed disks from `/sys/block`: no loop, RAM, device-mapper, optical or removable devices.
fn read_disks(paths: &HostPaths, warnings: &mut Vec<String>) -> Vec<DiskInfo> {
    let dir = paths.sys("block");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if VIRTUAL_BLOCK.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let p = e.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).ok().map(|s| s.trim().to_owned());
        if read("removable").as_deref() == Some("1") {
            continue;
        }
        let sectors = match read("size").map(|s| s.parse::<u64>()) {
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                warnings.push(format!("{}: size is not a number; disk skipped", p.display()));
                continue;
            }
            None => continue,
        };
        if sectors == 0 {
            continue;
        }
        let media = match read("queue/rotational").as_deref() {
            Some("1") => Some(Media::Hdd),
            Some("0") => Some(Media::Ssd),
            _ => None,
        };
        let model = read("device/model").and_then(|m| dmi::clean(m.as_bytes()));
        out.push(DiskInfo { name, model, size_bytes: sectors.saturating_mul(512), media });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Physical network interfaces (those with a `device` link) from `/sys/class/net`.
fn read_nics(paths: &HostPaths, warnings: &mut Vec<String>) -> Vec<NicInfo> {
    let dir = paths.sys("class/net");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if !p.join("device").exists() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).ok().map(|s| s.trim().to_owned());
        let mac = match read("address") {
            Some(a) => match a.parse::<MacAddr>() {
                Ok(m) if m.0 != [0; 6] => Some(m),
                Ok(_) => None,
                Err(_) => {
                    warnings.push(format!("{}/address {a:?} is not a MAC address; left empty", p.display()));
                    None
                }
            },
            None => None,
        };
        // `speed` reads -1 or fails with EINVAL while the link is down.
        let speed_mbps = read("speed")
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0);
        let wireless = p.join("wireless").exists() || p.join("phy80211").exists();
        out.push(NicInfo { name, mac, speed_mbps, wireless });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Connected displays as devices of their own. A panel's own compute module (`kind = panel`)
/// sees the panel as a display: it is the device itself and is left out.
pub fn displays(
    options: &InventoryOptions,
    connectors: &[Connector],
    warnings: &mut Vec<String>,
) -> Vec<DisplayInfo> {
    explained_displays(options, connectors, warnings).into_iter().map(|(d, _)| d).collect()
}

/// [`displays`], each with the reasons for its size and class (what `parta-agent inventory`
/// prints).
pub fn explained_displays(
    options: &InventoryOptions,
    connectors: &[Connector],
    warnings: &mut Vec<String>,
) -> Vec<(DisplayInfo, Vec<String>)> {
    connectors
        .iter()
        .filter(|c| c.connected)
        .map(|c| {
            let edid = match &c.edid {
                Some(Ok(e)) => Some(e),
                Some(Err(e)) => {
                    warnings.push(format!("display on {}: {e}; its identity is left empty", c.name));
                    None
                }
                None => None,
            };
            if let Some(e) = edid.filter(|e| !e.bad_extensions.is_empty()) {
                warnings.push(format!(
                    "display on {}: EDID extension block(s) {:?} damaged or missing; read without them",
                    c.name, e.bad_extensions
                ));
            }
            explain_display(options.device_id, &c.name, edid, &options.panels)
        })
        .filter(|(d, _)| !(options.kind == DeviceKind::Panel && d.kind == DeviceKind::Panel))
        .collect()
}

/// One display's inventory entry.
pub fn display_info(
    host: DeviceId,
    connector: &str,
    edid: Option<&super::edid::Edid>,
    panels: &PanelMakers,
) -> DisplayInfo {
    explain_display(host, connector, edid, panels).0
}

/// A display's id: from the EDID's maker, model and serial when the serial tells units apart;
/// from the host and connector otherwise ([`id_reason`] says which).
pub fn display_id(host: DeviceId, connector: &str, edid: Option<&super::edid::Edid>) -> DeviceId {
    let name = match (edid, edid.and_then(super::edid::Edid::unit_serial)) {
        (Some(e), Some(s)) => format!("edid:{}:{}:{}", e.manufacturer, e.product_code, s),
        _ => format!("connector:{}:{}", host.0, connector),
    };
    DeviceId(Uuid::new_v5(&DISPLAY_NAMESPACE, name.as_bytes()))
}

/// Why [`display_id`] is what it is, for people.
pub fn id_reason(connector: &str, edid: Option<&super::edid::Edid>) -> String {
    match edid.and_then(super::edid::Edid::unit_serial) {
        Some(s) => format!("id: from maker, model and serial {s}"),
        None => match edid.and_then(super::edid::Edid::serial) {
            Some(s) => {
                format!(
                    "id: from this computer and {connector} (serial {s} is a placeholder every unit carries)"
                )
            }
            None => format!("id: from this computer and {connector} (no serial)"),
        },
    }
}

/// One display's inventory entry and the reasons for its id, size and class. Its id derives
/// from the EDID's maker, model and serial when the serial tells units apart; from the host
/// and connector when there is no serial or only a placeholder (`1`, `16843009`, …), so that
/// a school's identical panels stay as many devices as they are.
pub fn explain_display(
    host: DeviceId,
    connector: &str,
    edid: Option<&super::edid::Edid>,
    panels: &PanelMakers,
) -> (DisplayInfo, Vec<String>) {
    let device_id = display_id(host, connector, edid);
    let mut reasons = vec![id_reason(connector, edid)];
    let serial = edid.and_then(super::edid::Edid::serial);
    let size = match edid {
        Some(e) => decide::decide_size(e),
        None => decide::SizeDecision {
            width_mm: 0,
            height_mm: 0,
            source: SizeSource::Unknown,
            reasons: vec!["no EDID".into()],
        },
    };
    let manufacturer = edid.map(|e| e.manufacturer.clone()).unwrap_or_default();
    let name = edid.and_then(|e| e.name.clone());
    let class = decide::decide_class(&size, &manufacturer, name.as_deref(), panels);
    reasons.extend(size.reasons.iter().map(|r| format!("size: {r}")));
    reasons.push(format!("class: {}", class.reason));
    let panel = class.class == EquipmentClass::InteractiveComplex;
    let info = DisplayInfo {
        device_id,
        connector: connector.to_owned(),
        manufacturer,
        product_code: edid.map_or(0, |e| e.product_code),
        serial,
        name,
        width_mm: size.width_mm,
        height_mm: size.height_mm,
        diagonal_decimal_in: size.diagonal_decimal_in(),
        year: edid.map_or(0, |e| e.year),
        equipment_class: class.class,
        kind: if panel { DeviceKind::Panel } else { DeviceKind::Monitor },
        size_source: size.source,
        class_source: class.source,
    };
    (info, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_x86_counts_cores_and_threads() {
        let mut text = String::new();
        for (p, core) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
            text.push_str(&format!(
                "processor\t: {p}\nmodel name\t: Intel(R) Core(TM) i3-10100  CPU @ 3.60GHz\nphysical id\t: 0\ncore id\t\t: {core}\n\n"
            ));
        }
        let c = parse_cpuinfo(&text);
        assert_eq!(
            c,
            CpuInfo { model: "Intel(R) Core(TM) i3-10100 CPU @ 3.60GHz".into(), logical: 4, cores: 2 }
        );
    }

    #[test]
    fn cpuinfo_arm_without_core_ids() {
        let text = "processor\t: 0\nBogoMIPS\t: 48.00\n\nprocessor\t: 1\nBogoMIPS\t: 48.00\n\nHardware\t: Rockchip RK3588\n";
        assert_eq!(parse_cpuinfo(text), CpuInfo { model: "Rockchip RK3588".into(), logical: 2, cores: 2 });
    }

    #[test]
    fn class_detection() {
        assert_eq!(detect_class(DeviceKind::Computer, Some(10)), EquipmentClass::Laptop);
        assert_eq!(detect_class(DeviceKind::Computer, Some(3)), EquipmentClass::Desktop);
        assert_eq!(detect_class(DeviceKind::Computer, None), EquipmentClass::Other);
        assert_eq!(detect_class(DeviceKind::Panel, Some(3)), EquipmentClass::InteractiveComplex);
    }

    #[test]
    fn display_ids_are_stable_and_distinct() {
        let host = DeviceId(Uuid::from_u128(1));
        let p = PanelMakers::built_in();
        let a = display_info(host, "HDMI-A-1", None, &p);
        let b = display_info(host, "HDMI-A-1", None, &p);
        let c = display_info(host, "DP-1", None, &p);
        assert_eq!(a.device_id, b.device_id);
        assert_ne!(a.device_id, c.device_id);
        assert_eq!(a.kind, DeviceKind::Monitor);
    }
}
