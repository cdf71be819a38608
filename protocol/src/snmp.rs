//! What an agent reads from LAN gear and printers over SNMP: one [`SnmpPoll`] per target and
//! poll, with the raw counters and the rates the agent computed from consecutive polls.

use serde::{Deserialize, Serialize};

use crate::message::DeviceId;

/// One poll of one SNMP target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnmpPoll {
    /// The polled device: a UUIDv5 of the school and the configured address, so that any agent
    /// of the school polling the same address reports the same device.
    pub device_id: DeviceId,
    /// Configured address, `host:port`.
    pub target: String,
    /// Label from the configuration (e.g. `Коммутатор 2 этаж`), may be empty.
    pub label: String,
    /// Room from the configuration, may be empty.
    pub room: String,
    /// Network gear or printer (from the profile, or the configuration).
    pub kind: SnmpDeviceKind,
    /// Profile that matched the device's sysObjectID, e.g. `eltex`, `generic`.
    pub profile: String,
    /// Vendor named by the profile, may be empty.
    pub vendor: String,
    /// When the poll started, ms since the epoch.
    pub polled_at_ms: i64,
    /// How long it took, ms.
    pub duration_ms: u32,
    /// Day of the poll in the agent's local time, days since 1970-01-01.
    pub local_day: i32,
    /// How the poll went.
    pub outcome: PollOutcome,
    /// What went wrong, for people; empty when the outcome is `Ok`.
    pub error: String,
    /// SNMPv2-MIB system group.
    pub system: Option<SystemGroup>,
    /// ENTITY-MIB serial number of the chassis (or HOST-RESOURCES/Printer-MIB where the profile
    /// says so), when the device has one.
    pub serial: Option<String>,
    /// IF-MIB interfaces.
    #[serde(
        deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_SNMP_INTERFACES }>"
    )]
    pub interfaces: Vec<InterfaceReading>,
    /// Printer-MIB and HOST-RESOURCES printer state, for printers and MFUs.
    pub printer: Option<PrinterReading>,
}

/// What an SNMP device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnmpDeviceKind {
    /// Switch, router, Wi-Fi controller or access point.
    Network,
    /// Printer or MFU.
    Printer,
}

impl SnmpDeviceKind {
    /// Name for configuration, tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Printer => "printer",
        }
    }
}

/// How a poll went. Failure kinds are kept apart so that ops can tell a dead device from a
/// wrong password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollOutcome {
    /// Everything configured was read.
    Ok,
    /// The system group was read, some tables were not (see `error`).
    Partial,
    /// No answer within the timeout and retries.
    Timeout,
    /// Wrong community, unknown v3 user, wrong password or unsupported security level.
    AuthFailed,
    /// The device answered with something that is not a valid SNMP reply.
    Malformed,
    /// Anything else: address not resolvable, network unreachable, an SNMP error status.
    Error,
}

impl PollOutcome {
    /// Name for tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Partial => "partial",
            Self::Timeout => "timeout",
            Self::AuthFailed => "auth_failed",
            Self::Malformed => "malformed",
            Self::Error => "error",
        }
    }

    /// Whether the device answered.
    pub fn reachable(self) -> bool {
        matches!(self, Self::Ok | Self::Partial)
    }
}

/// SNMPv2-MIB `system` group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemGroup {
    /// `sysDescr`.
    pub descr: String,
    /// `sysObjectID`, dotted (`1.3.6.1.4.1.35265.1.…`).
    pub object_id: String,
    /// `sysName`.
    pub name: String,
    /// `sysLocation`.
    pub location: String,
    /// `sysUpTime`, hundredths of a second since the SNMP agent started.
    pub uptime_cs: u32,
    /// `sysUpTime` went back since the previous poll (and did not wrap): the device rebooted.
    pub rebooted: bool,
}

/// One IF-MIB interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterfaceReading {
    /// `ifIndex`.
    pub index: u32,
    /// `ifName` (ifXTable), empty where absent.
    pub name: String,
    /// `ifAlias` (ifXTable): the description an admin gave the port.
    pub alias: String,
    /// `ifDescr`.
    pub descr: String,
    /// `ifType` (6 ethernetCsmacd, 71 ieee80211, 24 softwareLoopback, …).
    pub if_type: u32,
    /// `ifAdminStatus`: 1 up, 2 down, 3 testing.
    pub admin_status: u8,
    /// `ifOperStatus`: 1 up, 2 down, 3 testing, 4 unknown, 5 dormant, 6 notPresent,
    /// 7 lowerLayerDown.
    pub oper_status: u8,
    /// Speed, Mbit/s: `ifHighSpeed`, or `ifSpeed` / 10⁶ without ifXTable.
    pub speed_mbps: u32,
    /// 64 when the octet counters are ifHCInOctets/ifHCOutOctets, 32 for ifInOctets/ifOutOctets.
    pub counter_bits: u8,
    /// Received octets (raw counter).
    pub in_octets: u64,
    /// Sent octets (raw counter).
    pub out_octets: u64,
    /// Receive rate since the previous poll, bit/s.
    pub in_bps: Option<u64>,
    /// Send rate since the previous poll, bit/s.
    pub out_bps: Option<u64>,
    /// Why there is no rate, or `Measured`.
    pub rate: RateNote,
}

impl InterfaceReading {
    /// An interface known by its index only: no names, zero counters, no rate yet.
    pub fn new(index: u32) -> Self {
        Self {
            index,
            name: String::new(),
            alias: String::new(),
            descr: String::new(),
            if_type: 0,
            admin_status: 0,
            oper_status: 0,
            speed_mbps: 0,
            counter_bits: 0,
            in_octets: 0,
            out_octets: 0,
            in_bps: None,
            out_bps: None,
            rate: RateNote::First,
        }
    }
}

/// Whether an interface reading carries rates, and why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateNote {
    /// Rates measured between this poll and the previous one.
    Measured,
    /// First poll of the interface since the agent started: nothing to compare with.
    First,
    /// The device rebooted in between.
    Reboot,
    /// `ifCounterDiscontinuityTime` changed: the counters were reset.
    Discontinuity,
    /// The increase is more than the interface could carry: an unannounced counter reset.
    Implausible,
}

impl RateNote {
    /// Name for tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Measured => "measured",
            Self::First => "first",
            Self::Reboot => "reboot",
            Self::Discontinuity => "discontinuity",
            Self::Implausible => "implausible",
        }
    }
}

/// Printer state: page counters and status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterReading {
    /// `prtMarkerLifeCount` per marker (`prtMarkerIndex`, count); the unit is usually
    /// impressions (pages).
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_MARKERS }>")]
    pub markers: Vec<(u32, u64)>,
    /// `hrDeviceStatus` of the printer device: 1 unknown, 2 running, 3 warning, 4 testing,
    /// 5 down.
    pub device_status: Option<u8>,
    /// `hrPrinterStatus`: 1 other, 2 unknown, 3 idle, 4 printing, 5 warmup.
    pub printer_status: Option<u8>,
}

impl PrinterReading {
    /// Pages printed over the device's life: the sum over its markers.
    pub fn life_count(&self) -> u64 {
        self.markers.iter().fold(0u64, |a, (_, c)| a.saturating_add(*c))
    }
}
