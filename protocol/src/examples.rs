//! Example messages shaped like real traffic, shared by golden-byte tests, benchmarks and the
//! collector's ingest benchmark. They are data, not behaviour: nothing in production uses them.

use uuid::Uuid;

use crate::message::{
    Ack, Credentials, DeviceId, DeviceKind, Hello, Message, Reject, RejectReason, Report, Welcome,
};
use crate::sample::{
    Dmi, FsUsage, HostInfo, HostMetrics, IfTraffic, LossReason, MacAddr, NetInterface, OsInfo, Sample,
    SpoolLoss,
};

/// A fixed device id for examples.
pub const EXAMPLE_DEVICE: DeviceId = DeviceId(Uuid::from_bytes([
    0x6b, 0x1d, 0x3a, 0x52, 0x8c, 0x41, 0x4e, 0x0f, 0x9d, 0x27, 0x55, 0x10, 0xc3, 0x8e, 0x71, 0x02,
]));

/// A teacher PC's `Hello`.
pub fn hello() -> Message {
    Message::Hello(Hello {
        agent_version: "0.1.0".into(),
        device_id: EXAMPLE_DEVICE,
        school_id: "74-0012".into(),
        kind: DeviceKind::Computer,
        credentials: Credentials::EnrollToken("pt1_3q2ZkPZ1b0Jx9v4nYwHc8TgLrA7sUeMd".into()),
    })
}

/// The collector's `Welcome`.
pub fn welcome() -> Message {
    Message::Welcome(Welcome { collector_version: "0.1.0".into(), stored_up_to: 41, highest_seq: 41 })
}

/// Host identity of a teacher laptop on Astra Linux.
pub fn host_info() -> HostInfo {
    HostInfo {
        hostname: "kab-214-teacher".into(),
        os: OsInfo {
            id: "astra".into(),
            name: "Astra Linux".into(),
            version: "1.7_x86-64".into(),
            pretty_name: "Astra Linux".into(),
            edition: "SE 1.7.5 (smolensk)".into(),
        },
        kernel: "5.15.0-70-generic".into(),
        dmi: Dmi {
            vendor: Some("AQUARIUS".into()),
            product: Some("CMP NS685U R11".into()),
            serial: Some("QCNS6850123456".into()),
        },
        interfaces: vec![
            NetInterface { name: "enp2s0".into(), mac: Some(MacAddr([0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5d])) },
            NetInterface { name: "wlp3s0".into(), mac: Some(MacAddr([0x7c, 0x2a, 0x31, 0x9e, 0x04, 0xb2])) },
        ],
    }
}

/// One interval's metrics of a typical classroom PC: two filesystems, wired and Wi-Fi NICs.
pub fn host_metrics() -> HostMetrics {
    HostMetrics {
        boot_time: 1_763_788_800,
        uptime_s: 13_260,
        cpu_percent: 7.25,
        mem_total: 8_254_459_904,
        mem_used: 3_112_206_336,
        swap_total: 2_147_479_552,
        swap_used: 0,
        filesystems: vec![
            FsUsage {
                mount: "/".into(),
                fs_type: "ext4".into(),
                total: 250_375_106_560,
                available: 181_202_739_200,
            },
            FsUsage {
                mount: "/boot/efi".into(),
                fs_type: "vfat".into(),
                total: 535_805_952,
                available: 529_498_112,
            },
        ],
        interfaces: vec![
            IfTraffic {
                name: "enp2s0".into(),
                rx_bytes: 3_881_203_417,
                tx_bytes: 412_093_551,
                rx_rate: Some(1_250_311),
                tx_rate: Some(48_220),
            },
            IfTraffic { name: "wlp3s0".into(), rx_bytes: 0, tx_bytes: 0, rx_rate: Some(0), tx_rate: Some(0) },
        ],
    }
}

/// The typical report sent every interval: metrics only.
pub fn typical_report(seq: u64) -> Message {
    Message::Report(Report {
        seq,
        agent_time_ms: 1_763_802_060_000 + i64::try_from(seq).unwrap_or(0) * 60_000,
        samples: vec![Sample::HostMetrics(host_metrics())],
    })
}

/// The first report after start: identity and metrics.
pub fn first_report() -> Message {
    Message::Report(Report {
        seq: 1,
        agent_time_ms: 1_763_802_060_000,
        samples: vec![Sample::HostInfo(host_info()), Sample::HostMetrics(host_metrics())],
    })
}

/// An acknowledgement of a backlog prefix and a live report ahead of it.
pub fn ack() -> Message {
    Message::Ack(Ack {
        ranges: vec![crate::seqset::SeqRange::new(1, 42), crate::seqset::SeqRange::new(1_440, 1_440)],
    })
}

/// A report carrying a spool-loss notice (and its metrics).
pub fn loss_report() -> Message {
    Message::Report(Report {
        seq: 50_000,
        agent_time_ms: 1_766_000_000_000,
        samples: vec![
            Sample::SpoolLoss(SpoolLoss {
                reason: LossReason::Thinned,
                first_seq: 1,
                last_seq: 10_000,
                reports: 9_000,
                oldest_ms: 1_763_802_060_000,
                newest_ms: 1_764_402_000_000,
            }),
            Sample::HostMetrics(host_metrics()),
        ],
    })
}

/// A rejected token.
pub fn reject() -> Message {
    Message::Reject(Reject {
        reason: RejectReason::RevokedToken,
        detail: "enrollment token for school 74-0012 was revoked".into(),
    })
}

/// Every example with a stable name, for golden-byte fixtures.
pub fn all() -> Vec<(&'static str, Message)> {
    vec![
        ("hello", hello()),
        ("welcome", welcome()),
        ("report_first", first_report()),
        ("report_typical", typical_report(42)),
        ("ack", ack()),
        ("report_loss", loss_report()),
        ("reject", reject()),
    ]
}
