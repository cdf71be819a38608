//! What a device is: its inventory, sent at agent start and whenever it changes, and the
//! equipment classes of the federal standard it is counted in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::message::{DeviceId, DeviceKind};
use crate::sample::{MacAddr, OsInfo};

/// Equipment class: the categories of the equipment standard (634/925 and the purchasing
/// recommendations), plus the classes needed to place what is not in them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "snake_case")]
pub enum EquipmentClass {
    /// Ноутбук педагога.
    TeacherLaptop,
    /// Ноутбук мобильного класса (pupils).
    PupilLaptop,
    /// Ноутбук для управленческого персонала.
    AdminLaptop,
    /// A laptop whose role (teacher, pupil, administration) is not configured.
    Laptop,
    /// Интерактивный комплекс с вычислительным блоком (interactive panel).
    InteractiveComplex,
    /// A desktop PC.
    Desktop,
    /// A monitor (not an interactive panel).
    Monitor,
    /// МФУ (printer, scanner, copier).
    Mfu,
    /// Network equipment (LAN/SCS, Wi-Fi).
    NetworkEquipment,
    /// Anything else.
    Other,
}

impl EquipmentClass {
    /// Every class, for parsers and help.
    pub const ALL: [EquipmentClass; 10] = [
        Self::TeacherLaptop,
        Self::PupilLaptop,
        Self::AdminLaptop,
        Self::Laptop,
        Self::InteractiveComplex,
        Self::Desktop,
        Self::Monitor,
        Self::Mfu,
        Self::NetworkEquipment,
        Self::Other,
    ];

    /// Name in configuration, tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TeacherLaptop => "teacher_laptop",
            Self::PupilLaptop => "pupil_laptop",
            Self::AdminLaptop => "admin_laptop",
            Self::Laptop => "laptop",
            Self::InteractiveComplex => "interactive_complex",
            Self::Desktop => "desktop",
            Self::Monitor => "monitor",
            Self::Mfu => "mfu",
            Self::NetworkEquipment => "network_equipment",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for EquipmentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EquipmentClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
            format!("unknown equipment class {s:?}, expected one of: {}", names.join(", "))
        })
    }
}

/// Where the equipment class came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassSource {
    /// Set in the agent's configuration.
    Configured,
    /// Detected from DMI chassis type or a display's size.
    Detected,
    /// Inferred from a display's maker and model name (its size could not tell): a guess from
    /// data a region can extend, marked as such.
    Inferred,
}

impl ClassSource {
    /// Name in tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configured => "configured",
            Self::Detected => "detected",
            Self::Inferred => "inferred",
        }
    }
}

/// Which of the sizes an EDID states a display's size was taken from. Real firmware puts board
/// defaults in some size fields (a 75″ panel saying 708×398 mm), so the agent weighs them all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeSource {
    /// No usable size (no EDID, or none stated).
    #[default]
    Unknown,
    /// The base block's centimetre fields (the detailed timings disagree with them or state
    /// nothing).
    BaseBlock,
    /// A detailed timing's millimetres, agreeing with the base block's centimetres (or the
    /// only size stated).
    DetailedTiming,
    /// A DisplayID display parameters block.
    DisplayId,
    /// Only sizes known as board defaults of TV and panel firmware: the size cannot tell.
    BoardDefault,
}

impl SizeSource {
    /// Name in tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::BaseBlock => "base_block",
            Self::DetailedTiming => "detailed_timing",
            Self::DisplayId => "display_id",
            Self::BoardDefault => "board_default",
        }
    }
}

/// The device's inventory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Host name.
    pub hostname: String,
    /// Room (classroom) from the configuration; empty when not set.
    pub room: String,
    /// Equipment class.
    pub equipment_class: Option<EquipmentClass>,
    /// Where the class came from.
    pub class_source: Option<ClassSource>,
    /// Operating system.
    pub os: OsInfo,
    /// Kernel release.
    pub kernel: String,
    /// DMI/SMBIOS.
    pub dmi: DmiInventory,
    /// Processor.
    pub cpu: CpuInfo,
    /// Physical memory, bytes.
    pub memory_bytes: u64,
    /// Fixed disks.
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_DISKS }>")]
    pub disks: Vec<DiskInfo>,
    /// Physical network interfaces.
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_INTERFACES }>")]
    pub nics: Vec<NicInfo>,
    /// Displays attached through DRM connectors.
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_DISPLAYS }>")]
    pub displays: Vec<DisplayInfo>,
}

/// DMI/SMBIOS fields; `None` when unreadable or a vendor placeholder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmiInventory {
    /// `sys_vendor`.
    pub vendor: Option<String>,
    /// `product_name`.
    pub product: Option<String>,
    /// `product_serial`.
    pub serial: Option<String>,
    /// `chassis_type` (SMBIOS code, e.g. 3 desktop, 10 notebook).
    pub chassis_type: Option<u8>,
    /// `bios_vendor`.
    pub bios_vendor: Option<String>,
    /// `bios_version`.
    pub bios_version: Option<String>,
    /// `bios_date`.
    pub bios_date: Option<String>,
    /// `board_vendor`.
    pub board_vendor: Option<String>,
    /// `board_name`.
    pub board_product: Option<String>,
}

impl DmiInventory {
    /// The identity part (vendor, product, serial) that `HostInfo` carries.
    pub fn identity(&self) -> crate::sample::Dmi {
        crate::sample::Dmi {
            vendor: self.vendor.clone(),
            product: self.product.clone(),
            serial: self.serial.clone(),
        }
    }
}

/// Processor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// Model name.
    pub model: String,
    /// Logical processors.
    pub logical: u32,
    /// Physical cores.
    pub cores: u32,
}

/// Kind of storage medium.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Media {
    /// Solid state.
    Ssd,
    /// Rotating disk.
    Hdd,
}

/// A fixed disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    /// Kernel name, e.g. `sda`, `nvme0n1`.
    pub name: String,
    /// Model.
    pub model: Option<String>,
    /// Size, bytes.
    pub size_bytes: u64,
    /// SSD or HDD.
    pub media: Option<Media>,
}

/// A physical network interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicInfo {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    pub mac: Option<MacAddr>,
    /// Link speed, Mbit/s, when known (link up).
    pub speed_mbps: Option<u32>,
    /// Wi-Fi.
    pub wireless: bool,
}

/// A display read from a DRM connector's EDID: reported as a device of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DisplayInfo {
    /// Stable id of the display as a device: derived from its EDID identity (manufacturer,
    /// product code, serial), or from the host and connector when the EDID has no serial or
    /// only a placeholder one (the same in every unit of the model).
    pub device_id: DeviceId,
    /// DRM connector, e.g. `HDMI-A-1`.
    pub connector: String,
    /// PNP manufacturer id, e.g. `SAM`.
    pub manufacturer: String,
    /// Product code.
    pub product_code: u16,
    /// Serial number as read (descriptor text, else the numeric serial), placeholders
    /// included: the collector never matches a register item on a placeholder.
    pub serial: Option<String>,
    /// Monitor name descriptor.
    pub name: Option<String>,
    /// Image width, mm.
    pub width_mm: u32,
    /// Image height, mm.
    pub height_mm: u32,
    /// Diagonal in tenths of an inch.
    pub diagonal_decimal_in: u16,
    /// Year of manufacture.
    pub year: u16,
    /// Interactive panel (the 55″ class and larger, or a classroom-panel maker's model) or
    /// monitor.
    pub equipment_class: EquipmentClass,
    /// What the agent reports the display as.
    pub kind: DeviceKind,
    /// Which stated size `width_mm`/`height_mm` come from.
    pub size_source: SizeSource,
    /// How the class was decided: `detected` by size, `inferred` by maker and model.
    pub class_source: ClassSource,
}
