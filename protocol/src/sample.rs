//! Measurements carried by reports.
//!
//! Identity-like facts that rarely change ([`HostInfo`]) are sent in the first report after the
//! agent starts and again only when they change; metrics ([`HostMetrics`]) are sent every
//! interval. That keeps a typical report small (see the `codec` benchmark).

use std::fmt;

use serde::{Deserialize, Serialize};

/// One measurement of one kind. Variant order is part of the wire format: append, never reorder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Sample {
    /// Host identity: name, OS, DMI, network interfaces.
    HostInfo(HostInfo),
    /// Host metrics: uptime, CPU, memory, filesystems, traffic.
    HostMetrics(HostMetrics),
    /// Reports the agent's spool lost, so that the gap in the ledger is explained.
    SpoolLoss(SpoolLoss),
    /// The device's inventory (at agent start and on change).
    Inventory(Box<crate::inventory::Inventory>),
    /// Closed usage intervals of the device and its displays.
    Usage(
        #[serde(
            deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_INTERVALS }>"
        )]
        Vec<crate::usage::UsageInterval>,
    ),
    /// A boot or shutdown.
    Power(crate::usage::PowerEvent),
    /// One poll of an SNMP target (network gear, printer).
    Snmp(Box<crate::snmp::SnmpPoll>),
    /// One run of ЕСПД connectivity checks by a probe agent.
    Connectivity(Box<crate::espd::ConnectivityRun>),
}

impl Sample {
    /// Name of the sample kind, for logs and validation errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HostInfo(_) => "HostInfo",
            Self::HostMetrics(_) => "HostMetrics",
            Self::SpoolLoss(_) => "SpoolLoss",
            Self::Inventory(_) => "Inventory",
            Self::Usage(_) => "Usage",
            Self::Power(_) => "Power",
            Self::Snmp(_) => "Snmp",
            Self::Connectivity(_) => "Connectivity",
        }
    }

    /// Essential samples are kept when a full spool thins out old reports: identity,
    /// inventory, usage intervals, power events, loss notices and connectivity runs (few, and
    /// the evidence auditors ask for). Fine-grained metrics (host
    /// metrics, SNMP polls: their counters are absolute, so a later poll still carries the
    /// totals) are not essential.
    pub fn is_essential(&self) -> bool {
        match self {
            Self::HostInfo(_)
            | Self::SpoolLoss(_)
            | Self::Inventory(_)
            | Self::Usage(_)
            | Self::Power(_)
            | Self::Connectivity(_) => true,
            Self::HostMetrics(_) | Self::Snmp(_) => false,
        }
    }
}

/// Reports the agent's spool discarded before they were acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolLoss {
    /// Why.
    pub reason: LossReason,
    /// First sequence number of the affected span.
    pub first_seq: u64,
    /// Last sequence number of the affected span.
    pub last_seq: u64,
    /// Reports discarded within the span (thinning keeps some).
    pub reports: u64,
    /// Agent time of the oldest discarded report, ms since the epoch (0 if unknown).
    pub oldest_ms: i64,
    /// Agent time of the newest discarded report, ms since the epoch (0 if unknown).
    pub newest_ms: i64,
}

/// Why a spool discarded reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LossReason {
    /// The spool reached its size limit; old fine-grained reports were thinned out.
    Thinned,
    /// Reports were older than the spool's age limit.
    Expired,
    /// The disk was full and the in-memory overflow too.
    DiskFull,
    /// Stored bytes were damaged (failed checksums) and could not be read.
    Corrupt,
}

impl LossReason {
    /// Name for tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thinned => "thinned",
            Self::Expired => "expired",
            Self::DiskFull => "disk_full",
            Self::Corrupt => "corrupt",
        }
    }
}

/// Facts about the host that change rarely.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name as the OS reports it.
    pub hostname: String,
    /// Operating system, from os-release.
    pub os: OsInfo,
    /// Kernel release, e.g. `6.1.0-18-amd64`.
    pub kernel: String,
    /// Vendor, product and serial number from DMI/SMBIOS, where readable.
    pub dmi: Dmi,
    /// Network interfaces with their hardware addresses (loopback excluded).
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_INTERFACES }>")]
    pub interfaces: Vec<NetInterface>,
}

/// Operating system identification from `/etc/os-release`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    /// `ID` field, e.g. `astra`, `altlinux`, `redos`, `debian`.
    pub id: String,
    /// Product name as people say it, e.g. `Astra Linux`, `ALT Education`, `RED OS`.
    pub name: String,
    /// The most precise version known: Astra Linux's build (`1.7.5.16`) or update (`2.12.46`),
    /// RED OS's point release (`7.3.6`), otherwise `VERSION_ID` (`10.1`).
    pub version: String,
    /// `PRETTY_NAME`, or a composed name when absent.
    pub pretty_name: String,
    /// Edition or variant where the distribution records one: Astra Linux's `VARIANT_ID`
    /// (`SE`) or `CE`/`SE` prefix in `/etc/astra_version`, ALT's `VARIANT`, RED OS's
    /// `EDITION`; empty otherwise.
    pub edition: String,
    /// The os-release fields the product was named from, as written (`NAME`, `VERSION`,
    /// `VERSION_ID`, `VARIANT`, `VARIANT_ID`, `EDITION`, `BUILD_ID`, `ALT_BRANCH_ID`,
    /// `ID_LIKE`), and the first line of Astra Linux's version files, keyed by path.
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_OS_FIELDS }>")]
    pub release_fields: Vec<(String, String)>,
}

/// DMI/SMBIOS identification. Fields are `None` when unreadable (serials need root on Linux) or
/// filled with vendor placeholders such as `To Be Filled By O.E.M.`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dmi {
    /// `sys_vendor`.
    pub vendor: Option<String>,
    /// `product_name`.
    pub product: Option<String>,
    /// `product_serial`.
    pub serial: Option<String>,
}

/// A network interface and its hardware address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetInterface {
    /// Interface name, e.g. `enp3s0`.
    pub name: String,
    /// MAC address; `None` for interfaces without one (tunnels).
    pub mac: Option<MacAddr>,
}

/// A 48-bit hardware address. On the wire (postcard) it is six bytes; in human-readable formats
/// such as JSON it is the usual `00:1b:21:3a:4c:5d` text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(|| format!("MAC address {s:?} is too short"))?;
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| format!("MAC address {s:?} has a bad byte {part:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC address {s:?} is too long"));
        }
        Ok(Self(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(self) } else { self.0.serialize(s) }
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 6]>::deserialize(d).map(Self)
        }
    }
}

/// Metrics taken every interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostMetrics {
    /// Boot time, seconds since the Unix epoch.
    pub boot_time: u64,
    /// Seconds since boot.
    pub uptime_s: u64,
    /// Average CPU utilisation over all cores since the previous sample, 0–100.
    pub cpu_percent: f32,
    /// Physical memory, bytes.
    pub mem_total: u64,
    /// Memory in use (total minus available), bytes.
    pub mem_used: u64,
    /// Swap size, bytes.
    pub swap_total: u64,
    /// Swap in use, bytes.
    pub swap_used: u64,
    /// Usage of local filesystems.
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_FILESYSTEMS }>")]
    pub filesystems: Vec<FsUsage>,
    /// Traffic per network interface (loopback excluded).
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_INTERFACES }>")]
    pub interfaces: Vec<IfTraffic>,
}

/// Usage of one mounted filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsUsage {
    /// Mount point, e.g. `/` or `/home`.
    pub mount: String,
    /// Filesystem type, e.g. `ext4`.
    pub fs_type: String,
    /// Size, bytes.
    pub total: u64,
    /// Space available to unprivileged users, bytes.
    pub available: u64,
}

/// Byte counters and rates of one network interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfTraffic {
    /// Interface name.
    pub name: String,
    /// Bytes received since the counter started (interface creation or boot).
    pub rx_bytes: u64,
    /// Bytes sent since the counter started.
    pub tx_bytes: u64,
    /// Receive rate since the previous sample, bytes per second; `None` on the first sample
    /// after the agent starts, when no previous reading exists.
    pub rx_rate: Option<u64>,
    /// Transmit rate since the previous sample, bytes per second.
    pub tx_rate: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_form() {
        let mac: MacAddr = "00:1B:21:3a:4c:5d".parse().unwrap();
        assert_eq!(mac.to_string(), "00:1b:21:3a:4c:5d");
        assert_eq!("00-1b-21-3a-4c-5d".parse::<MacAddr>().unwrap(), mac);
        for bad in ["", "00:1b", "00:1b:21:3a:4c:5d:00", "zz:1b:21:3a:4c:5d"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
