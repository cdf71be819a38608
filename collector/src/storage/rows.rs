//! Row types of the ClickHouse tables, and [`Batch`]: accepted reports turned into rows.

use clickhouse::Row;
use parta_protocol::espd::ConnectivityRun;
use parta_protocol::inventory::{ClassSource, EquipmentClass, Inventory, Media};
use parta_protocol::snmp::{SnmpDeviceKind, SnmpPoll};
use parta_protocol::usage::{PowerEventKind, Subject};
use parta_protocol::{DeviceId, DeviceKind, Report, Sample};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A report the collector accepted, with what the session knows about its sender.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Device, from its certificate.
    pub device_id: DeviceId,
    /// School the fleet records for the device at the report's time.
    pub school_id: String,
    /// Device kind from `Hello`.
    pub kind: DeviceKind,
    /// Agent version from `Hello`.
    pub agent_version: String,
    /// The report.
    pub report: Report,
    /// Encoded size on the wire.
    pub bytes: u32,
    /// Collector's clock at receipt, seconds since the epoch.
    pub received: u32,
    /// The same, in milliseconds.
    pub received_ms: i64,
}

impl Accepted {
    /// The latest time this report's data may claim, ms: the collector's receive time (an agent
    /// clock in the future must not make its rows win "latest" forever).
    pub fn latest_ms(&self) -> i64 {
        self.received_ms
    }

    /// Version of "latest wins" rows the report writes: its time, never after its receipt.
    pub fn version_of(&self, t_ms: i64) -> u64 {
        u64::try_from(t_ms.min(self.latest_ms()).max(0)).unwrap_or(0)
    }
}

/// A session the collector accepted.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Device.
    pub device_id: DeviceId,
    /// School.
    pub school_id: String,
    /// Kind.
    pub kind: DeviceKind,
    /// Agent version.
    pub agent_version: String,
    /// Collector instance name.
    pub collector: String,
    /// When, seconds since the epoch.
    pub connected_at: u32,
}

/// `ingest_ledger` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct LedgerRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub agent_time: u32,
    pub agent_time_ms: i64,
    pub receive_time: u32,
    pub bytes: u32,
    pub samples: u16,
}

/// `host_metrics` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct MetricsRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub ts: u32,
    pub boot_time: u32,
    pub uptime_s: u64,
    pub cpu_percent: f32,
    pub mem_total: u64,
    pub mem_used: u64,
    pub swap_total: u64,
    pub swap_used: u64,
}

/// `host_filesystems` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct FsRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub ts: u32,
    pub mount: String,
    pub fs_type: String,
    pub total: u64,
    pub available: u64,
}

/// `host_interfaces` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct IfRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub ts: u32,
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_rate: Option<u64>,
    pub tx_rate: Option<u64>,
}

/// `host_info` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct InfoRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub ts: u32,
    pub hostname: String,
    pub os_id: String,
    pub os_name: String,
    pub os_version: String,
    pub os_pretty: String,
    pub os_edition: String,
    pub kernel: String,
    pub dmi_vendor: String,
    pub dmi_product: String,
    pub dmi_serial: String,
    pub if_names: Vec<String>,
    pub if_macs: Vec<String>,
}

/// `devices` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct DeviceStateRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub kind: String,
    pub agent_version: String,
    pub last_seen: u32,
    pub last_seq: u64,
    pub uptime_s: u64,
    pub boot_time: u32,
}

/// `spool_losses` row: an agent's notice of reports its spool discarded.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SpoolLossRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    /// The report that carried the notice.
    pub seq: u64,
    pub ts: u32,
    pub reason: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub reports: u64,
    pub oldest: u32,
    pub newest: u32,
}

/// `device_sessions` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SessionRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub kind: String,
    pub agent_version: String,
    pub collector: String,
    pub connected_at: u32,
}

/// `inventory` row: the host's inventory, kept as history (one row per change).
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct InventoryRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub ts: u32,
    pub hostname: String,
    pub room: String,
    pub equipment_class: String,
    pub class_source: String,
    pub os_name: String,
    pub os_version: String,
    pub os_edition: String,
    pub kernel: String,
    pub dmi_vendor: String,
    pub dmi_product: String,
    pub dmi_serial: String,
    pub chassis_type: u8,
    pub bios_vendor: String,
    pub bios_version: String,
    pub bios_date: String,
    pub cpu_model: String,
    pub cpu_cores: u32,
    pub cpu_logical: u32,
    pub memory_bytes: u64,
    pub disk_names: Vec<String>,
    pub disk_models: Vec<String>,
    pub disk_sizes: Vec<u64>,
    pub disk_media: Vec<String>,
    pub nic_names: Vec<String>,
    pub nic_macs: Vec<String>,
    pub nic_speeds: Vec<u32>,
    pub display_ids: Vec<String>,
    /// The whole inventory as JSON, for the API.
    pub json: String,
}

/// `displays` row: a display seen in a host's inventory.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct DisplayRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub display_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub host_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub ts: u32,
    pub room: String,
    pub connector: String,
    pub manufacturer: String,
    pub product_code: u16,
    pub serial: String,
    pub name: String,
    pub width_mm: u32,
    pub height_mm: u32,
    pub diagonal_decimal_in: u16,
    pub year: u16,
    pub equipment_class: String,
    pub kind: String,
    pub json: String,
}

/// `device_attrs` row: what a device is (hosts and displays alike), latest by `version`.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct DeviceAttrRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub host_id: Uuid,
    pub school_id: String,
    pub kind: String,
    pub equipment_class: String,
    pub room: String,
    pub label: String,
    pub serial: String,
    pub version: u64,
}

/// `usage_intervals` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct UsageRow {
    /// The subject: the host, or the display's own id.
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub host_id: Uuid,
    pub school_id: String,
    pub subject: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub start: u32,
    /// `Date`: days since 1970-01-01 (local day of the device).
    pub local_day: u16,
    pub state: String,
    pub user_class: String,
    pub user_key: u64,
    pub seq: u64,
    pub received: u32,
}

/// `power_events` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct PowerRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub at_ms: i64,
    pub at: u32,
    pub kind: String,
    pub clean: u8,
    pub boot_id: String,
}

/// `snmp_polls` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SnmpPollRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub agent_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub polled_at_ms: i64,
    pub ts: u32,
    pub local_day: u16,
    pub target: String,
    pub label: String,
    pub room: String,
    pub kind: String,
    pub profile: String,
    pub vendor: String,
    pub outcome: String,
    pub error: String,
    pub duration_ms: u32,
    pub sys_descr: String,
    pub sys_object_id: String,
    pub sys_name: String,
    pub sys_location: String,
    pub uptime_cs: u32,
    pub rebooted: u8,
    pub serial: String,
}

/// `snmp_interfaces` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SnmpIfRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub polled_at_ms: i64,
    pub ts: u32,
    pub local_day: u16,
    pub if_index: u32,
    pub name: String,
    pub alias: String,
    pub descr: String,
    pub if_type: u32,
    pub admin_status: u8,
    pub oper_status: u8,
    pub speed_mbps: u32,
    pub counter_bits: u8,
    pub in_octets: u64,
    pub out_octets: u64,
    pub has_rate: u8,
    pub in_bps: u64,
    pub out_bps: u64,
    pub rate_note: String,
    pub seq: u64,
}

/// `printer_counters` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct PrinterRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub polled_at_ms: i64,
    pub ts: u32,
    pub local_day: u16,
    pub marker: u32,
    pub life_count: u64,
    pub device_status: u8,
    pub printer_status: u8,
    pub seq: u64,
}

/// `connectivity_checks` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct CheckRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub seq: u64,
    pub run_started_at_ms: i64,
    pub ts: u32,
    pub local_day: u16,
    pub trigger: String,
    pub locality: String,
    pub required_mbps: u32,
    pub check_no: u16,
    pub kind: String,
    pub target: String,
    pub outcome: String,
    pub error: String,
    pub started_at_ms: i64,
    pub duration_ms: u32,
    pub dns_us: u32,
    pub connect_us: u32,
    pub tls_us: u32,
    pub response_us: u32,
    pub http_status: u16,
    pub addresses: Vec<String>,
    pub latency_method: String,
    pub probes_sent: u16,
    pub probes_received: u16,
    pub rtt_min_us: u32,
    pub rtt_median_us: u32,
    pub rtt_avg_us: u32,
    pub rtt_max_us: u32,
    pub jitter_us: u32,
    pub bytes: u64,
    pub micros: u64,
    pub bits_per_s: u64,
    pub ip_bits_per_s: u64,
    pub total_bytes: u64,
}

/// Rows for one insert round, table by table.
#[derive(Debug, Default)]
pub struct Batch {
    pub ledger: Vec<LedgerRow>,
    pub metrics: Vec<MetricsRow>,
    pub filesystems: Vec<FsRow>,
    pub interfaces: Vec<IfRow>,
    pub info: Vec<InfoRow>,
    pub devices: Vec<DeviceStateRow>,
    pub sessions: Vec<SessionRow>,
    pub losses: Vec<SpoolLossRow>,
    pub inventory: Vec<InventoryRow>,
    pub displays: Vec<DisplayRow>,
    pub attrs: Vec<DeviceAttrRow>,
    pub usage: Vec<UsageRow>,
    pub power: Vec<PowerRow>,
    pub snmp_polls: Vec<SnmpPollRow>,
    pub snmp_interfaces: Vec<SnmpIfRow>,
    pub printers: Vec<PrinterRow>,
    pub checks: Vec<CheckRow>,
}

/// Seconds since the epoch for a millisecond timestamp, clamped to ClickHouse `DateTime`'s range
/// (agents' clocks can be anywhere).
pub fn datetime(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000).max(0)).unwrap_or(u32::MAX)
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl Batch {
    /// Adds the rows of one accepted report.
    pub fn add_report(&mut self, a: &Accepted) {
        let device_id = a.device_id.0;
        let r = &a.report;
        let ts = datetime(r.agent_time_ms);
        let school = &a.school_id;
        let mut state = DeviceStateRow {
            device_id,
            school_id: school.clone(),
            kind: a.kind.as_str().to_owned(),
            agent_version: a.agent_version.clone(),
            last_seen: a.received,
            last_seq: r.seq,
            uptime_s: 0,
            boot_time: 0,
        };
        for sample in &r.samples {
            match sample {
                Sample::HostMetrics(m) => {
                    state.uptime_s = m.uptime_s;
                    state.boot_time = clamp_u32(m.boot_time);
                    self.metrics.push(MetricsRow {
                        device_id,
                        school_id: school.clone(),
                        seq: r.seq,
                        ts,
                        boot_time: clamp_u32(m.boot_time),
                        uptime_s: m.uptime_s,
                        cpu_percent: m.cpu_percent,
                        mem_total: m.mem_total,
                        mem_used: m.mem_used,
                        swap_total: m.swap_total,
                        swap_used: m.swap_used,
                    });
                    self.filesystems.extend(m.filesystems.iter().map(|f| FsRow {
                        device_id,
                        school_id: school.clone(),
                        seq: r.seq,
                        ts,
                        mount: f.mount.clone(),
                        fs_type: f.fs_type.clone(),
                        total: f.total,
                        available: f.available,
                    }));
                    self.interfaces.extend(m.interfaces.iter().map(|i| IfRow {
                        device_id,
                        school_id: school.clone(),
                        seq: r.seq,
                        ts,
                        name: i.name.clone(),
                        rx_bytes: i.rx_bytes,
                        tx_bytes: i.tx_bytes,
                        rx_rate: i.rx_rate,
                        tx_rate: i.tx_rate,
                    }));
                }
                Sample::SpoolLoss(l) => self.losses.push(SpoolLossRow {
                    device_id,
                    school_id: school.clone(),
                    seq: r.seq,
                    ts,
                    reason: l.reason.as_str().to_owned(),
                    first_seq: l.first_seq,
                    last_seq: l.last_seq,
                    reports: l.reports,
                    oldest: datetime(l.oldest_ms),
                    newest: datetime(l.newest_ms),
                }),
                Sample::Inventory(inv) => self.add_inventory(a, inv),
                Sample::Usage(list) => {
                    for i in list {
                        let (subject, id) = match i.subject {
                            Subject::Host => ("host", device_id),
                            Subject::Display(d) => ("display", d.0),
                        };
                        self.usage.push(UsageRow {
                            device_id: id,
                            host_id: device_id,
                            school_id: school.clone(),
                            subject: subject.to_owned(),
                            start_ms: i.start_ms,
                            end_ms: i.end_ms,
                            start: datetime(i.start_ms),
                            local_day: u16::try_from(i.local_day.max(0)).unwrap_or(u16::MAX),
                            state: i.state.as_str().to_owned(),
                            user_class: i.user_class.as_str().to_owned(),
                            user_key: i.user_key.unwrap_or(0),
                            seq: r.seq,
                            received: a.received,
                        });
                    }
                }
                Sample::Power(p) => {
                    let (kind, clean) = match p.kind {
                        PowerEventKind::Boot => ("boot", 0),
                        PowerEventKind::Shutdown { clean } => ("shutdown", u8::from(clean)),
                    };
                    self.power.push(PowerRow {
                        device_id,
                        school_id: school.clone(),
                        seq: r.seq,
                        at_ms: p.at_ms,
                        at: datetime(p.at_ms),
                        kind: kind.to_owned(),
                        clean,
                        boot_id: p.boot_id.clone(),
                    });
                }
                Sample::Snmp(p) => self.add_snmp(a, p),
                Sample::Connectivity(run) => self.add_connectivity(a, run),
                Sample::HostInfo(info) => self.info.push(InfoRow {
                    device_id,
                    school_id: school.clone(),
                    seq: r.seq,
                    ts,
                    hostname: info.hostname.clone(),
                    os_id: info.os.id.clone(),
                    os_name: info.os.name.clone(),
                    os_version: info.os.version.clone(),
                    os_pretty: info.os.pretty_name.clone(),
                    os_edition: info.os.edition.clone(),
                    kernel: info.kernel.clone(),
                    dmi_vendor: info.dmi.vendor.clone().unwrap_or_default(),
                    dmi_product: info.dmi.product.clone().unwrap_or_default(),
                    dmi_serial: info.dmi.serial.clone().unwrap_or_default(),
                    if_names: info.interfaces.iter().map(|i| i.name.clone()).collect(),
                    if_macs: info
                        .interfaces
                        .iter()
                        .map(|i| i.mac.map(|m| m.to_string()).unwrap_or_default())
                        .collect(),
                }),
            }
        }
        // One devices row per device per batch: keep the one with the highest sequence number.
        match self.devices.iter_mut().find(|d| d.device_id == device_id) {
            Some(d) if d.last_seq < state.last_seq => {
                if state.uptime_s == 0 {
                    state.uptime_s = d.uptime_s;
                    state.boot_time = d.boot_time;
                }
                *d = state;
            }
            Some(_) => {}
            None => self.devices.push(state),
        }
        self.ledger.push(LedgerRow {
            device_id,
            school_id: school.clone(),
            seq: r.seq,
            agent_time: ts,
            agent_time_ms: r.agent_time_ms,
            receive_time: a.received,
            bytes: a.bytes,
            samples: u16::try_from(r.samples.len()).unwrap_or(u16::MAX),
        });
    }

    fn add_inventory(&mut self, a: &Accepted, inv: &Inventory) {
        let device_id = a.device_id.0;
        let seq = a.report.seq;
        let ts = datetime(a.report.agent_time_ms);
        let version = a.version_of(a.report.agent_time_ms);
        let class = inv.equipment_class.map_or("other", EquipmentClass::as_str).to_owned();
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        self.inventory.push(InventoryRow {
            device_id,
            school_id: a.school_id.clone(),
            seq,
            ts,
            hostname: inv.hostname.clone(),
            room: inv.room.clone(),
            equipment_class: class.clone(),
            class_source: inv.class_source.map_or("", ClassSource::as_str).to_owned(),
            os_name: inv.os.name.clone(),
            os_version: inv.os.version.clone(),
            os_edition: inv.os.edition.clone(),
            kernel: inv.kernel.clone(),
            dmi_vendor: text(&inv.dmi.vendor),
            dmi_product: text(&inv.dmi.product),
            dmi_serial: text(&inv.dmi.serial),
            chassis_type: inv.dmi.chassis_type.unwrap_or(0),
            bios_vendor: text(&inv.dmi.bios_vendor),
            bios_version: text(&inv.dmi.bios_version),
            bios_date: text(&inv.dmi.bios_date),
            cpu_model: inv.cpu.model.clone(),
            cpu_cores: inv.cpu.cores,
            cpu_logical: inv.cpu.logical,
            memory_bytes: inv.memory_bytes,
            disk_names: inv.disks.iter().map(|d| d.name.clone()).collect(),
            disk_models: inv.disks.iter().map(|d| text(&d.model)).collect(),
            disk_sizes: inv.disks.iter().map(|d| d.size_bytes).collect(),
            disk_media: inv
                .disks
                .iter()
                .map(|d| match d.media {
                    Some(Media::Ssd) => "ssd",
                    Some(Media::Hdd) => "hdd",
                    None => "",
                })
                .map(str::to_owned)
                .collect(),
            nic_names: inv.nics.iter().map(|n| n.name.clone()).collect(),
            nic_macs: inv.nics.iter().map(|n| n.mac.map(|m| m.to_string()).unwrap_or_default()).collect(),
            nic_speeds: inv.nics.iter().map(|n| n.speed_mbps.unwrap_or(0)).collect(),
            display_ids: inv.displays.iter().map(|d| d.device_id.to_string()).collect(),
            json: serde_json::to_string(inv).unwrap_or_default(),
        });
        self.attrs.push(DeviceAttrRow {
            device_id,
            host_id: device_id,
            school_id: a.school_id.clone(),
            kind: a.kind.as_str().to_owned(),
            equipment_class: class,
            room: inv.room.clone(),
            label: inv.hostname.clone(),
            serial: text(&inv.dmi.serial),
            version,
        });
        for d in &inv.displays {
            let label = d
                .name
                .clone()
                .unwrap_or_else(|| format!("{} {}", d.manufacturer, d.connector).trim().to_owned());
            self.displays.push(DisplayRow {
                display_id: d.device_id.0,
                host_id: device_id,
                school_id: a.school_id.clone(),
                seq,
                ts,
                room: inv.room.clone(),
                connector: d.connector.clone(),
                manufacturer: d.manufacturer.clone(),
                product_code: d.product_code,
                serial: text(&d.serial),
                name: text(&d.name),
                width_mm: d.width_mm,
                height_mm: d.height_mm,
                diagonal_decimal_in: d.diagonal_decimal_in,
                year: d.year,
                equipment_class: d.equipment_class.as_str().to_owned(),
                kind: d.kind.as_str().to_owned(),
                json: serde_json::to_string(d).unwrap_or_default(),
            });
            self.attrs.push(DeviceAttrRow {
                device_id: d.device_id.0,
                host_id: device_id,
                school_id: a.school_id.clone(),
                kind: d.kind.as_str().to_owned(),
                equipment_class: d.equipment_class.as_str().to_owned(),
                room: inv.room.clone(),
                label,
                serial: text(&d.serial),
                version,
            });
        }
    }

    fn add_connectivity(&mut self, a: &Accepted, run: &ConnectivityRun) {
        let local_day = u16::try_from(run.local_day.max(0)).unwrap_or(u16::MAX);
        for (no, c) in run.checks.iter().enumerate() {
            let l = c.latency.as_ref();
            let t = c.throughput.as_ref();
            self.checks.push(CheckRow {
                device_id: a.device_id.0,
                school_id: a.school_id.clone(),
                seq: a.report.seq,
                run_started_at_ms: run.started_at_ms,
                ts: datetime(c.started_at_ms),
                local_day,
                trigger: run.trigger.as_str().to_owned(),
                locality: run.locality.as_str().to_owned(),
                required_mbps: run.required_mbps,
                // Validation caps a run at MAX_CHECKS (64) checks.
                check_no: u16::try_from(no).unwrap_or(u16::MAX),
                kind: c.kind.as_str().to_owned(),
                target: c.target.clone(),
                outcome: c.outcome.as_str().to_owned(),
                error: c.error.clone(),
                started_at_ms: c.started_at_ms,
                duration_ms: c.duration_ms,
                dns_us: c.stages.dns_us,
                connect_us: c.stages.connect_us,
                tls_us: c.stages.tls_us,
                response_us: c.stages.response_us,
                http_status: c.http_status,
                addresses: c.addresses.clone(),
                latency_method: l.map(|l| l.method.as_str()).unwrap_or_default().to_owned(),
                probes_sent: l.map_or(0, |l| l.sent),
                probes_received: l.map_or(0, |l| l.received),
                rtt_min_us: l.map_or(0, |l| l.rtt_min_us),
                rtt_median_us: l.map_or(0, |l| l.rtt_median_us),
                rtt_avg_us: l.map_or(0, |l| l.rtt_avg_us),
                rtt_max_us: l.map_or(0, |l| l.rtt_max_us),
                jitter_us: l.map_or(0, |l| l.jitter_us),
                bytes: t.map_or(0, |t| t.bytes),
                micros: t.map_or(0, |t| t.micros),
                bits_per_s: t.map_or(0, |t| t.bits_per_s),
                ip_bits_per_s: t.map_or(0, |t| t.ip_bits_per_s),
                total_bytes: t.map_or(0, |t| t.total_bytes),
            });
        }
    }

    fn add_snmp(&mut self, a: &Accepted, p: &SnmpPoll) {
        let device_id = p.device_id.0;
        let school = &a.school_id;
        let seq = a.report.seq;
        let ts = datetime(p.polled_at_ms);
        let local_day = u16::try_from(p.local_day.max(0)).unwrap_or(u16::MAX);
        let sys = p.system.clone().unwrap_or_default();
        self.snmp_polls.push(SnmpPollRow {
            device_id,
            agent_id: a.device_id.0,
            school_id: school.clone(),
            seq,
            polled_at_ms: p.polled_at_ms,
            ts,
            local_day,
            target: p.target.clone(),
            label: p.label.clone(),
            room: p.room.clone(),
            kind: p.kind.as_str().to_owned(),
            profile: p.profile.clone(),
            vendor: p.vendor.clone(),
            outcome: p.outcome.as_str().to_owned(),
            error: p.error.clone(),
            duration_ms: p.duration_ms,
            sys_descr: sys.descr,
            sys_object_id: sys.object_id,
            sys_name: sys.name.clone(),
            sys_location: sys.location,
            uptime_cs: sys.uptime_cs,
            rebooted: u8::from(sys.rebooted),
            serial: p.serial.clone().unwrap_or_default(),
        });
        // What the device is, from polls that reached it (a failed poll knows nothing new).
        if p.outcome.reachable() {
            let label = if p.label.is_empty() { sys.name } else { p.label.clone() };
            self.attrs.push(DeviceAttrRow {
                device_id,
                host_id: a.device_id.0,
                school_id: school.clone(),
                kind: p.kind.as_str().to_owned(),
                equipment_class: match p.kind {
                    SnmpDeviceKind::Network => EquipmentClass::NetworkEquipment,
                    SnmpDeviceKind::Printer => EquipmentClass::Mfu,
                }
                .as_str()
                .to_owned(),
                room: p.room.clone(),
                label,
                serial: p.serial.clone().unwrap_or_default(),
                version: a.version_of(p.polled_at_ms),
            });
        }
        self.snmp_interfaces.extend(p.interfaces.iter().map(|i| SnmpIfRow {
            device_id,
            school_id: school.clone(),
            polled_at_ms: p.polled_at_ms,
            ts,
            local_day,
            if_index: i.index,
            name: i.name.clone(),
            alias: i.alias.clone(),
            descr: i.descr.clone(),
            if_type: i.if_type,
            admin_status: i.admin_status,
            oper_status: i.oper_status,
            speed_mbps: i.speed_mbps,
            counter_bits: i.counter_bits,
            in_octets: i.in_octets,
            out_octets: i.out_octets,
            has_rate: u8::from(i.in_bps.is_some() && i.out_bps.is_some()),
            in_bps: i.in_bps.unwrap_or(0),
            out_bps: i.out_bps.unwrap_or(0),
            rate_note: i.rate.as_str().to_owned(),
            seq,
        }));
        if let Some(pr) = &p.printer {
            self.printers.extend(pr.markers.iter().map(|(marker, count)| PrinterRow {
                device_id,
                school_id: school.clone(),
                polled_at_ms: p.polled_at_ms,
                ts,
                local_day,
                marker: *marker,
                life_count: *count,
                device_status: pr.device_status.unwrap_or(0),
                printer_status: pr.printer_status.unwrap_or(0),
                seq,
            }));
        }
    }

    /// Adds an accepted session.
    pub fn add_session(&mut self, s: &SessionRecord) {
        self.sessions.push(SessionRow {
            device_id: s.device_id.0,
            school_id: s.school_id.clone(),
            kind: s.kind.as_str().to_owned(),
            agent_version: s.agent_version.clone(),
            collector: s.collector.clone(),
            connected_at: s.connected_at,
        });
    }

    /// Reports in the batch.
    pub fn reports(&self) -> usize {
        self.ledger.len()
    }

    /// True when nothing is to be inserted.
    pub fn is_empty(&self) -> bool {
        self.ledger.is_empty() && self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parta_protocol::{Message, examples};

    fn accepted(msg: Message, received: u32) -> Accepted {
        let Message::Report(report) = msg else { unreachable!() };
        Accepted {
            device_id: examples::EXAMPLE_DEVICE,
            school_id: "74-0012".into(),
            kind: DeviceKind::Computer,
            agent_version: "0.1.0".into(),
            report,
            bytes: 100,
            received,
            received_ms: i64::from(received) * 1000,
        }
    }

    #[test]
    fn report_fans_out_to_tables_and_one_device_row() {
        let mut b = Batch::default();
        b.add_report(&accepted(examples::first_report(), 10));
        b.add_report(&accepted(examples::typical_report(2), 11));
        assert_eq!(b.ledger.len(), 2);
        assert_eq!(b.metrics.len(), 2);
        assert_eq!(b.filesystems.len(), 4);
        assert_eq!(b.interfaces.len(), 4);
        assert_eq!(b.info.len(), 1);
        assert_eq!(b.info[0].if_macs, ["00:1b:21:3a:4c:5d", "7c:2a:31:9e:04:b2"]);
        assert_eq!(b.devices.len(), 1);
        assert_eq!((b.devices[0].last_seq, b.devices[0].last_seen), (2, 11));
        assert_eq!(b.ledger[1].agent_time, 1_763_802_180);
    }

    #[test]
    fn a_future_clock_cannot_win_latest_forever() {
        // The report carries an inventory; its agent clock is a century ahead.
        let mut a = accepted(examples::usage_report(), 1_800_000_000);
        a.report.agent_time_ms = 4_900_000_000_000;
        let mut b = Batch::default();
        b.add_report(&a);
        assert!(!b.attrs.is_empty());
        for attr in &b.attrs {
            assert_eq!(attr.version, 1_800_000_000_000, "capped at the receive time");
        }
        // An honest clock keeps its own time.
        let mut honest = accepted(examples::usage_report(), 1_800_000_000);
        honest.report.agent_time_ms = 1_799_999_000_000;
        let mut b = Batch::default();
        b.add_report(&honest);
        assert_eq!(b.attrs[0].version, 1_799_999_000_000);
    }

    #[test]
    fn datetimes_clamp() {
        assert_eq!(datetime(-5), 0);
        assert_eq!(datetime(1_999), 1);
        assert_eq!(datetime(i64::MAX), u32::MAX);
    }
}
