//! Example messages shaped like real traffic, shared by golden-byte tests, benchmarks and the
//! collector's ingest benchmark. They are data, not behaviour: nothing in production uses them.

use uuid::Uuid;

use crate::espd::{
    CheckKind, CheckOutcome, CheckResult, ConnectivityRun, LatencyMethod, LatencyStats, Locality, RunTrigger,
    Stages, ThroughputStats,
};
use crate::inventory::{
    ClassSource, CpuInfo, DiskInfo, DisplayInfo, DmiInventory, EquipmentClass, Inventory, Media, NicInfo,
    SizeSource,
};
use crate::policy::{PolicyId, PolicyOffer, PolicyOutcome, PolicyStatus};
use crate::release::ReleaseVersion;
use crate::snmp::{
    InterfaceReading, PollOutcome, PrinterReading, RateNote, SnmpDeviceKind, SnmpPoll, SystemGroup,
};
use crate::update::{ReleaseMessage, StatusReport, UpdateMessage, UpdateState};
use crate::usage::{PowerEvent, PowerEventKind, Subject, UsageInterval, UsageState, UserClass};

use crate::message::{
    Ack, Certificate, DeviceId, DeviceKind, EnrollRequest, Enrolled, Hello, Message, Reject, RejectReason,
    Report, Welcome,
};
use crate::sample::{
    Dmi, FsUsage, HostInfo, HostMetrics, IfTraffic, LossReason, MacAddr, NetInterface, OsInfo, Sample,
    SpoolLoss,
};

/// A fixed device id for examples.
pub const EXAMPLE_DEVICE: DeviceId = DeviceId(Uuid::from_bytes([
    0x6b, 0x1d, 0x3a, 0x52, 0x8c, 0x41, 0x4e, 0x0f, 0x9d, 0x27, 0x55, 0x10, 0xc3, 0x8e, 0x71, 0x02,
]));

/// A teacher PC's `Hello`, running policy version 7.
pub fn hello() -> Message {
    Message::Hello(Hello {
        agent_version: "0.1.0".into(),
        kind: DeviceKind::Computer,
        running_policy: Some(PolicyId::of(7, POLICY_V7)),
    })
}

/// A school's policy as the collector merges it: SNMP targets and the ЕСПД lists.
pub const POLICY_V7: &str = "interval = \"60s\"\n\n[snmp]\ninterval = \"5m\"\n\n[[snmp.target]]\naddress = \"10.74.12.2\"\nlabel = \"Коммутатор\"\ncommunity = \"school-ro\"\n\n[espd]\nmust_reach = [\"https://www.gosuslugi.ru/\", \"https://edu.gov.ru/\"]\n";

/// The collector's offer of a school's policy, version 8 (a new must-reach site).
pub fn policy_offer() -> Message {
    let document =
        POLICY_V7.replace("\"https://edu.gov.ru/\"]", "\"https://edu.gov.ru/\", \"https://sferum.ru/\"]");
    Message::Policy(PolicyOffer { id: PolicyId::of(8, &document), document })
}

/// The agent's refusal of a policy, naming the key.
pub fn policy_status() -> Message {
    Message::PolicyStatus(PolicyStatus {
        id: PolicyId::of(8, POLICY_V7),
        outcome: PolicyOutcome::Refused {
            key: "espd.ca_file".into(),
            reason: "cannot read /etc/parta/region-ca.pem: No such file or directory".into(),
        },
    })
}

/// The collector's offer of release 0.2.0 (the golden signature file).
pub fn release_offer() -> Message {
    Message::Release(ReleaseMessage::Offer {
        signature: include_bytes!("../tests/golden/release.sig").to_vec(),
        retry: 0,
    })
}

/// The artifact of that release, as the collector sends it in one chunk.
pub fn release_chunk() -> Message {
    Message::Release(ReleaseMessage::Chunk {
        version: ReleaseVersion { major: 0, minor: 2, patch: 0 },
        offset: 0,
        bytes: b"parta-agent 0.2.0 for the golden fixture\n".to_vec(),
        end: true,
    })
}

/// An agent ready for releases, whose last one (0.2.0) is being downloaded.
pub fn update_ready() -> Message {
    Message::Update(UpdateMessage::Ready {
        target: "x86_64-linux".into(),
        latest: Some(StatusReport {
            version: ReleaseVersion { major: 0, minor: 2, patch: 0 },
            state: UpdateState::Downloading,
            bytes: 20,
            detail: String::new(),
        }),
    })
}

/// The agent resuming its download at byte 20.
pub fn update_fetch() -> Message {
    Message::Update(UpdateMessage::Fetch {
        version: ReleaseVersion { major: 0, minor: 2, patch: 0 },
        offset: 20,
    })
}

/// The old version again: the new one did not report healthy in time.
pub fn update_rolled_back() -> Message {
    Message::Update(UpdateMessage::Status(StatusReport {
        version: ReleaseVersion { major: 0, minor: 2, patch: 0 },
        state: UpdateState::RolledBack,
        bytes: 41,
        detail: "parta-agent 0.2.0 did not report healthy within 2m; 0.1.0 restored".into(),
    }))
}

/// The collector's `Welcome`.
pub fn welcome() -> Message {
    Message::Welcome(welcome_at(41, 41))
}

/// A `Welcome` of the example device saying what the collector stores.
pub fn welcome_at(stored_up_to: u64, highest_seq: u64) -> Welcome {
    Welcome {
        collector_version: "0.1.0".into(),
        device_id: EXAMPLE_DEVICE,
        school_id: "74-0012".into(),
        stored_up_to,
        highest_seq,
        credential_expires_ms: 1_779_000_000_000,
    }
}

/// A public key as an agent sends it: SubjectPublicKeyInfo of an ECDSA P-256 key (91 bytes; the
/// key itself is made up).
fn example_public_key() -> Vec<u8> {
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    spki.extend((0u8..64).map(|i| i.wrapping_mul(37)));
    spki
}

/// A new PC's `Enroll`.
pub fn enroll() -> Message {
    Message::Enroll(EnrollRequest {
        agent_version: "0.1.0".into(),
        kind: DeviceKind::Computer,
        token: "pt1_3q2ZkPZ1b0Jx9v4nYwHc8TgLrA7sUeMd".into(),
        public_key: example_public_key(),
        device_id: None,
    })
}

/// The collector's answer to it (the certificate bytes are a stand-in of realistic length).
pub fn enrolled() -> Message {
    Message::Enrolled(Enrolled {
        device_id: EXAMPLE_DEVICE,
        school_id: "74-0012".into(),
        certificate: Certificate {
            der: (0..=255u8).cycle().take(480).collect(),
            not_after_ms: 1_779_000_000_000,
        },
    })
}

/// Host identity of a teacher laptop on Astra Linux.
pub fn host_info() -> HostInfo {
    HostInfo {
        hostname: "kab-214-teacher".into(),
        os: OsInfo {
            id: "astra".into(),
            name: "Astra Linux".into(),
            version: "1.7.5.16".into(),
            pretty_name: "Astra Linux".into(),
            edition: "SE".into(),
            release_fields: vec![
                ("NAME".into(), "Astra Linux".into()),
                ("VERSION_ID".into(), "1.7_x86-64".into()),
                ("VARIANT_ID".into(), "se".into()),
                ("/etc/astra_version".into(), "1.7.5".into()),
            ],
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

/// A teacher laptop's inventory with an interactive panel on HDMI.
pub fn inventory() -> Inventory {
    let info = host_info();
    Inventory {
        hostname: info.hostname,
        room: "214".into(),
        equipment_class: Some(EquipmentClass::TeacherLaptop),
        class_source: Some(ClassSource::Configured),
        os: info.os,
        kernel: info.kernel,
        dmi: DmiInventory {
            vendor: Some("AQUARIUS".into()),
            product: Some("CMP NS685U R11".into()),
            serial: Some("QCNS6850123456".into()),
            chassis_type: Some(10),
            bios_vendor: Some("American Megatrends Inc.".into()),
            bios_version: Some("R1.05".into()),
            bios_date: Some("03/14/2022".into()),
            board_vendor: Some("AQUARIUS".into()),
            board_product: Some("NS685U".into()),
        },
        cpu: CpuInfo { model: "Intel(R) Core(TM) i5-10210U CPU @ 1.60GHz".into(), logical: 8, cores: 4 },
        memory_bytes: 8_254_459_904,
        disks: vec![DiskInfo {
            name: "nvme0n1".into(),
            model: Some("KINGSTON OM8PDP3256B".into()),
            size_bytes: 256_060_514_304,
            media: Some(Media::Ssd),
        }],
        nics: vec![
            NicInfo {
                name: "enp2s0".into(),
                mac: Some(MacAddr([0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5d])),
                speed_mbps: Some(1000),
                wireless: false,
            },
            NicInfo {
                name: "wlp3s0".into(),
                mac: Some(MacAddr([0x7c, 0x2a, 0x31, 0x9e, 0x04, 0xb2])),
                speed_mbps: None,
                wireless: true,
            },
        ],
        displays: vec![DisplayInfo {
            device_id: DeviceId(Uuid::from_bytes([
                0x1f, 0x3b, 0x6e, 0x58, 0x9a, 0x0c, 0x5d, 0x21, 0x8e, 0x44, 0x71, 0x05, 0xb2, 0xc6, 0x3d,
                0x90,
            ])),
            connector: "HDMI-A-1".into(),
            manufacturer: "TCH".into(),
            product_code: 0x4b1d,
            serial: Some("TT75A0042".into()),
            name: Some("TeachTouch 75".into()),
            width_mm: 1650,
            height_mm: 928,
            diagonal_decimal_in: 745,
            year: 2022,
            equipment_class: EquipmentClass::InteractiveComplex,
            kind: DeviceKind::Panel,
            size_source: SizeSource::DetailedTiming,
            class_source: ClassSource::Detected,
        }],
    }
}

/// A report with the inventory, usage intervals of a lesson, and a boot event.
pub fn usage_report() -> Message {
    let panel = inventory().displays[0].device_id;
    let lesson = 1_763_802_000_000; // 2025-11-22 09:00 UTC
    let day = 20_414; // 2025-11-22
    Message::Report(Report {
        seq: 7,
        agent_time_ms: lesson + 2_700_000,
        samples: vec![
            Sample::Power(PowerEvent {
                kind: PowerEventKind::Boot,
                at_ms: lesson - 600_000,
                boot_id: "21bde96f-45b5-430c-94ec-c993fbf4a174".into(),
            }),
            Sample::Inventory(Box::new(inventory())),
            Sample::Usage(vec![
                UsageInterval {
                    subject: Subject::Host,
                    start_ms: lesson - 600_000,
                    end_ms: lesson,
                    state: UsageState::Idle,
                    user_class: UserClass::None,
                    user_key: None,
                    local_day: day,
                },
                UsageInterval {
                    subject: Subject::Host,
                    start_ms: lesson,
                    end_ms: lesson + 2_700_000,
                    state: UsageState::InUse,
                    user_class: UserClass::Teacher,
                    user_key: Some(0x5eed_cafe_f00d_0042),
                    local_day: day,
                },
                UsageInterval {
                    subject: Subject::Display(panel),
                    start_ms: lesson,
                    end_ms: lesson + 2_700_000,
                    state: UsageState::InUse,
                    user_class: UserClass::None,
                    user_key: None,
                    local_day: day,
                },
            ]),
        ],
    })
}

/// A school switch's poll: the system group and two ports with 64-bit counters and rates.
pub fn switch_poll() -> SnmpPoll {
    let port = |index: u32, alias: &str, in_bps: u64, out_bps: u64| InterfaceReading {
        index,
        name: format!("gi1/0/{index}"),
        alias: alias.into(),
        descr: format!("GigabitEthernet1/0/{index}"),
        if_type: 6,
        admin_status: 1,
        oper_status: 1,
        speed_mbps: 1000,
        counter_bits: 64,
        in_octets: 18_446_744_073_709_000_000 + u64::from(index),
        out_octets: 912_345_678_901,
        in_bps: Some(in_bps),
        out_bps: Some(out_bps),
        rate: RateNote::Measured,
    };
    SnmpPoll {
        device_id: DeviceId(Uuid::from_bytes([0x51; 16])),
        target: "10.74.12.2:161".into(),
        label: "Коммутатор, 2 этаж".into(),
        room: "201".into(),
        kind: SnmpDeviceKind::Network,
        profile: "eltex".into(),
        vendor: "Eltex".into(),
        polled_at_ms: 1_763_802_000_000,
        duration_ms: 38,
        local_day: 20_414,
        outcome: PollOutcome::Ok,
        error: String::new(),
        system: Some(SystemGroup {
            descr: "MES2324B 28-port 1G/10G Managed Switch".into(),
            object_id: "1.3.6.1.4.1.35265.1.81".into(),
            name: "sw-school12-2fl".into(),
            location: "Школа 12, 2 этаж".into(),
            uptime_cs: 123_456_789,
            rebooted: false,
        }),
        serial: Some("ES1A000123".into()),
        interfaces: vec![
            port(1, "uplink ЕСПД", 61_000_000, 4_200_000),
            port(2, "каб. 201", 800_000, 12_000_000),
        ],
        printer: None,
    }
}

/// An MFU's poll: page counter and status, no interface table.
pub fn printer_poll() -> SnmpPoll {
    SnmpPoll {
        device_id: DeviceId(Uuid::from_bytes([0x52; 16])),
        target: "10.74.12.30:161".into(),
        label: "МФУ учительская".into(),
        room: "105".into(),
        kind: SnmpDeviceKind::Printer,
        profile: "pantum".into(),
        vendor: "Pantum".into(),
        polled_at_ms: 1_763_802_000_500,
        duration_ms: 12,
        local_day: 20_414,
        outcome: PollOutcome::Partial,
        error: "ENTITY-MIB: no such object".into(),
        system: Some(SystemGroup {
            descr: "Pantum M7100DW".into(),
            object_id: "1.3.6.1.4.1.40093.1.1".into(),
            name: "PNT-105".into(),
            location: String::new(),
            uptime_cs: 360_000,
            rebooted: true,
        }),
        serial: None,
        interfaces: Vec::new(),
        printer: Some(PrinterReading {
            markers: vec![(1, 48_213)],
            device_status: Some(2),
            printer_status: Some(3),
        }),
    }
}

/// A report of the school's SNMP poller: a switch and a printer.
pub fn snmp_report() -> Message {
    Message::Report(Report {
        seq: 9,
        agent_time_ms: 1_763_802_001_000,
        samples: vec![Sample::Snmp(Box::new(switch_poll())), Sample::Snmp(Box::new(printer_poll()))],
    })
}

/// A probe's throughput round at a rural school: DNS, a must-reach site, a must-reach site the
/// filter blocks, latency, download and upload, and a must-be-blocked site that is blocked.
pub fn connectivity_run() -> ConnectivityRun {
    let at = 1_763_802_600_000;
    let check = |kind, target: &str, outcome, error: &str, offset: i64, ms| CheckResult {
        outcome,
        error: error.to_owned(),
        duration_ms: ms,
        ..CheckResult::new(kind, target, at + offset)
    };
    let mut dns = check(CheckKind::Dns, "myschool.edu.ru@10.74.0.53", CheckOutcome::Ok, "", 0, 4);
    dns.stages.dns_us = 3_870;
    dns.addresses = vec!["95.167.1.10".into()];
    let mut reach = check(CheckKind::Reach, "https://myschool.edu.ru/", CheckOutcome::Ok, "", 10, 182);
    reach.stages = Stages { dns_us: 3_610, connect_us: 21_400, tls_us: 64_200, response_us: 92_800 };
    reach.http_status = 200;
    reach.addresses = vec!["95.167.1.10".into()];
    let mut blocked = check(
        CheckKind::Reach,
        "https://pypi.org/simple/",
        CheckOutcome::Blocked,
        "the content filter's block page (marker \"Доступ ограничен\")",
        200,
        96,
    );
    blocked.stages = Stages { dns_us: 2_200, connect_us: 8_100, tls_us: 0, response_us: 0 };
    let mut latency = check(CheckKind::Latency, "collector.edu74.ru:4433", CheckOutcome::Ok, "", 300, 2_140);
    latency.latency = Some(LatencyStats {
        method: LatencyMethod::TcpConnect,
        sent: 20,
        received: 19,
        rtt_min_us: 18_300,
        rtt_median_us: 19_900,
        rtt_avg_us: 21_040,
        rtt_max_us: 35_600,
        jitter_us: 2_310,
    });
    let mut down = check(CheckKind::Download, "collector.edu74.ru:4433", CheckOutcome::Ok, "", 2_500, 8_200);
    down.throughput = Some(ThroughputStats {
        bytes: 61_000_000,
        micros: 7_000_000,
        bits_per_s: 69_714_285,
        ip_bits_per_s: 73_200_000,
        total_bytes: 76_900_000,
    });
    let mut up = check(
        CheckKind::Upload,
        "collector.edu74.ru:4433",
        CheckOutcome::Slow,
        "41.2 Mbit/s, 50 required",
        10_800,
        8_100,
    );
    up.throughput = Some(ThroughputStats {
        bytes: 36_050_000,
        micros: 7_000_000,
        bits_per_s: 41_200_000,
        ip_bits_per_s: 43_260_000,
        total_bytes: 45_800_000,
    });
    let mut filter = check(CheckKind::Filter, "http://casino.example/", CheckOutcome::Ok, "", 19_000, 31);
    filter.stages = Stages { dns_us: 1_900, connect_us: 0, tls_us: 0, response_us: 0 };
    ConnectivityRun {
        started_at_ms: at,
        duration_ms: 19_040,
        local_day: 20_414,
        trigger: RunTrigger::Throughput,
        locality: Locality::Rural,
        required_mbps: 50,
        checks: vec![dns, reach, blocked, latency, down, up, filter],
    }
}

/// A report carrying a connectivity run.
pub fn connectivity_report() -> Message {
    Message::Report(Report {
        seq: 17,
        agent_time_ms: 1_763_802_620_000,
        samples: vec![Sample::Connectivity(Box::new(connectivity_run()))],
    })
}

/// Every example with a stable name, for golden-byte fixtures.
pub fn all() -> Vec<(&'static str, Message)> {
    vec![
        ("hello", hello()),
        ("welcome", welcome()),
        ("enroll", enroll()),
        ("enrolled", enrolled()),
        ("report_first", first_report()),
        ("report_typical", typical_report(42)),
        ("ack", ack()),
        ("report_loss", loss_report()),
        ("report_usage", usage_report()),
        ("reject", reject()),
        ("report_snmp", snmp_report()),
        ("report_espd", connectivity_report()),
        ("policy", policy_offer()),
        ("policy_status", policy_status()),
        ("release_offer", release_offer()),
        ("release_chunk", release_chunk()),
        ("update_ready", update_ready()),
        ("update_fetch", update_fetch()),
        ("update_rolled_back", update_rolled_back()),
    ]
}
