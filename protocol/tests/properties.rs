//! Property tests: every message survives encode → frame → decode unchanged; no input makes the
//! decoders panic; the sanitiser always yields a report the validator accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use parta_protocol::espd::{
    CheckKind, CheckOutcome, CheckResult, ConnectivityRun, LatencyMethod, LatencyStats, Locality, RunTrigger,
    Stages, ThroughputStats,
};
use parta_protocol::inventory::{
    ClassSource, CpuInfo, DiskInfo, DisplayInfo, DmiInventory, EquipmentClass, Inventory, Media, NicInfo,
    SizeSource,
};
use parta_protocol::message::{
    Ack, Certificate, DeviceId, DeviceKind, EnrollRequest, Enrolled, Hello, Message, Reject, RejectReason,
    Report, Welcome,
};
use parta_protocol::policy::{AgentPolicy, Decision, PolicyId, PolicyOffer, PolicyOutcome, PolicyStatus};
use parta_protocol::sample::{
    Dmi, FsUsage, HostInfo, HostMetrics, IfTraffic, LossReason, MacAddr, NetInterface, OsInfo, Sample,
    SpoolLoss,
};
use parta_protocol::seqset::SeqRange;
use parta_protocol::snmp::{
    InterfaceReading, PollOutcome, PrinterReading, RateNote, SnmpDeviceKind, SnmpPoll, SystemGroup,
};
use parta_protocol::usage::{PowerEvent, PowerEventKind, Subject, UsageInterval, UsageState, UserClass};
use parta_protocol::validate::{sanitize_report, validate_report};
use parta_protocol::{FrameDecoder, decode, encode, encode_frame};
use proptest::option::of;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Mix ASCII, Cyrillic and the odd multi-byte character; lengths cross the 256-byte limit.
    proptest::string::string_regex("[a-zA-Z0-9 ./_-]{0,12}|[а-яА-ЯёЁ ]{0,40}|[\\PC]{0,300}").unwrap()
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    any::<u128>().prop_map(|n| DeviceId(uuid::Uuid::from_u128(n)))
}

fn host_info() -> impl Strategy<Value = HostInfo> {
    (
        text(),
        (text(), text(), text(), text(), text(), prop::collection::vec((text(), text()), 0..13)),
        text(),
        (of(text()), of(text()), of(text())),
        prop::collection::vec((text(), of(any::<[u8; 6]>())), 0..6),
    )
        .prop_map(|(hostname, os, kernel, dmi, nics)| HostInfo {
            hostname,
            os: OsInfo {
                id: os.0,
                name: os.1,
                version: os.2,
                pretty_name: os.3,
                edition: os.4,
                release_fields: os.5,
            },
            kernel,
            dmi: Dmi { vendor: dmi.0, product: dmi.1, serial: dmi.2 },
            interfaces: nics
                .into_iter()
                .map(|(name, mac)| NetInterface { name, mac: mac.map(MacAddr) })
                .collect(),
        })
}

fn host_metrics() -> impl Strategy<Value = HostMetrics> {
    (
        any::<[u64; 6]>(),
        // Finite values only: NaN != NaN would make equality checks meaningless.
        -1.0e6f32..1.0e6,
        prop::collection::vec((text(), text(), any::<u64>(), any::<u64>()), 0..5),
        prop::collection::vec((text(), any::<u64>(), any::<u64>(), of(any::<u64>()), of(any::<u64>())), 0..5),
    )
        .prop_map(|(n, cpu, fs, nics)| HostMetrics {
            boot_time: n[0],
            uptime_s: n[1],
            cpu_percent: cpu,
            mem_total: n[2],
            mem_used: n[3],
            swap_total: n[4],
            swap_used: n[5],
            filesystems: fs
                .into_iter()
                .map(|(mount, fs_type, total, available)| FsUsage { mount, fs_type, total, available })
                .collect(),
            interfaces: nics
                .into_iter()
                .map(|(name, rx_bytes, tx_bytes, rx_rate, tx_rate)| IfTraffic {
                    name,
                    rx_bytes,
                    tx_bytes,
                    rx_rate,
                    tx_rate,
                })
                .collect(),
        })
}

fn spool_loss() -> impl Strategy<Value = SpoolLoss> {
    (
        prop::sample::select(vec![
            LossReason::Thinned,
            LossReason::Expired,
            LossReason::DiskFull,
            LossReason::Corrupt,
        ]),
        any::<[u64; 3]>(),
        any::<[i64; 2]>(),
    )
        .prop_map(|(reason, n, t)| SpoolLoss {
            reason,
            first_seq: n[0],
            last_seq: n[1],
            reports: n[2],
            oldest_ms: t[0],
            newest_ms: t[1],
        })
}

fn inventory() -> impl Strategy<Value = Inventory> {
    (
        (text(), text(), of(prop::sample::select(EquipmentClass::ALL.to_vec())), any::<u64>()),
        (of(text()), of(any::<u8>()), text(), any::<[u32; 2]>()),
        prop::collection::vec((text(), of(text()), any::<u64>(), any::<bool>()), 0..3),
        prop::collection::vec((text(), of(any::<[u8; 6]>()), of(any::<u32>()), any::<bool>()), 0..3),
        prop::collection::vec(
            (any::<u128>(), text(), text(), any::<u16>(), of(text()), any::<[u32; 2]>(), any::<u16>()),
            0..2,
        ),
    )
        .prop_map(|(a, b, disks, nics, displays)| Inventory {
            hostname: a.0,
            room: a.1,
            equipment_class: a.2,
            class_source: Some(ClassSource::Detected),
            memory_bytes: a.3,
            dmi: DmiInventory { serial: b.0, chassis_type: b.1, ..DmiInventory::default() },
            cpu: CpuInfo { model: b.2, logical: b.3[0], cores: b.3[1] },
            disks: disks
                .into_iter()
                .map(|(name, model, size_bytes, ssd)| DiskInfo {
                    name,
                    model,
                    size_bytes,
                    media: Some(if ssd { Media::Ssd } else { Media::Hdd }),
                })
                .collect(),
            nics: nics
                .into_iter()
                .map(|(name, mac, speed_mbps, wireless)| NicInfo {
                    name,
                    mac: mac.map(MacAddr),
                    speed_mbps,
                    wireless,
                })
                .collect(),
            displays: displays
                .into_iter()
                .map(|(id, connector, manufacturer, product_code, serial, mm, diag)| DisplayInfo {
                    device_id: DeviceId(uuid::Uuid::from_u128(id)),
                    connector,
                    manufacturer,
                    product_code,
                    serial,
                    name: None,
                    width_mm: mm[0],
                    height_mm: mm[1],
                    diagonal_decimal_in: diag,
                    year: 2020,
                    equipment_class: EquipmentClass::Monitor,
                    kind: DeviceKind::Panel,
                    size_source: SizeSource::BaseBlock,
                    class_source: ClassSource::Inferred,
                })
                .collect(),
            ..Inventory::default()
        })
}

fn usage() -> impl Strategy<Value = Vec<UsageInterval>> {
    prop::collection::vec(
        (
            of(any::<u128>()),
            any::<i64>(),
            any::<i64>(),
            prop::sample::select(vec![
                UsageState::Off,
                UsageState::Idle,
                UsageState::InUse,
                UsageState::Unmonitored,
            ]),
            prop::sample::select(vec![
                UserClass::None,
                UserClass::Teacher,
                UserClass::Pupil,
                UserClass::Admin,
                UserClass::Other,
            ]),
            of(any::<u64>()),
            any::<i32>(),
        )
            .prop_map(|(display, start_ms, end_ms, state, user_class, user_key, local_day)| {
                UsageInterval {
                    subject: display
                        .map_or(Subject::Host, |id| Subject::Display(DeviceId(uuid::Uuid::from_u128(id)))),
                    start_ms,
                    end_ms,
                    state,
                    user_class,
                    user_key,
                    local_day,
                }
            }),
        0..4,
    )
}

fn interface() -> impl Strategy<Value = InterfaceReading> {
    (
        (any::<u32>(), text(), text(), text(), any::<u32>()),
        (any::<u8>(), any::<u8>(), any::<u32>(), prop::sample::select(vec![32u8, 64])),
        (any::<u64>(), any::<u64>(), of(any::<u64>()), of(any::<u64>())),
        prop::sample::select(vec![
            RateNote::Measured,
            RateNote::First,
            RateNote::Reboot,
            RateNote::Discontinuity,
            RateNote::Implausible,
        ]),
    )
        .prop_map(|(a, b, c, rate)| InterfaceReading {
            index: a.0,
            name: a.1,
            alias: a.2,
            descr: a.3,
            if_type: a.4,
            admin_status: b.0,
            oper_status: b.1,
            speed_mbps: b.2,
            counter_bits: b.3,
            in_octets: c.0,
            out_octets: c.1,
            in_bps: c.2,
            out_bps: c.3,
            rate,
        })
}

fn snmp_poll() -> impl Strategy<Value = SnmpPoll> {
    (
        (device_id(), text(), text(), text(), any::<bool>(), text()),
        (
            any::<i64>(),
            any::<u32>(),
            any::<i32>(),
            prop::sample::select(vec![
                PollOutcome::Ok,
                PollOutcome::Partial,
                PollOutcome::Timeout,
                PollOutcome::AuthFailed,
                PollOutcome::Malformed,
                PollOutcome::Error,
            ]),
            text(),
        ),
        of((text(), text(), text(), text(), any::<u32>(), any::<bool>())),
        of(text()),
        prop::collection::vec(interface(), 0..4),
        of((prop::collection::vec((any::<u32>(), any::<u64>()), 0..=16), of(any::<u8>()), of(any::<u8>()))),
    )
        .prop_map(|(a, b, system, serial, interfaces, printer)| SnmpPoll {
            device_id: a.0,
            target: a.1,
            label: a.2,
            room: a.3,
            kind: if a.4 { SnmpDeviceKind::Printer } else { SnmpDeviceKind::Network },
            profile: a.5,
            vendor: String::new(),
            polled_at_ms: b.0,
            duration_ms: b.1,
            local_day: b.2,
            outcome: b.3,
            error: b.4,
            system: system.map(|s| SystemGroup {
                descr: s.0,
                object_id: s.1,
                name: s.2,
                location: s.3,
                uptime_cs: s.4,
                rebooted: s.5,
            }),
            serial,
            interfaces,
            printer: printer.map(|p| PrinterReading {
                markers: p.0,
                device_status: p.1,
                printer_status: p.2,
            }),
        })
}

fn check_result() -> impl Strategy<Value = CheckResult> {
    (
        (0usize..6, text(), 0usize..9, text(), any::<i64>(), any::<u32>()),
        (any::<[u32; 4]>(), any::<u16>(), prop::collection::vec(text(), 0..3)),
        (
            prop::option::of((any::<bool>(), any::<u16>(), any::<u16>(), any::<[u32; 5]>())),
            prop::option::of(any::<[u64; 5]>()),
        ),
    )
        .prop_map(|(a, b, c)| {
            let kinds = [
                CheckKind::Dns,
                CheckKind::Reach,
                CheckKind::Latency,
                CheckKind::Download,
                CheckKind::Upload,
                CheckKind::Filter,
            ];
            let outcomes = [
                CheckOutcome::Ok,
                CheckOutcome::DnsFailed,
                CheckOutcome::TcpFailed,
                CheckOutcome::TlsFailed,
                CheckOutcome::HttpFailed,
                CheckOutcome::Slow,
                CheckOutcome::Blocked,
                CheckOutcome::NotBlocked,
                CheckOutcome::Error,
            ];
            CheckResult {
                kind: kinds[a.0],
                target: a.1,
                outcome: outcomes[a.2],
                error: a.3,
                started_at_ms: a.4,
                duration_ms: a.5,
                stages: Stages { dns_us: b.0[0], connect_us: b.0[1], tls_us: b.0[2], response_us: b.0[3] },
                http_status: b.1,
                addresses: b.2,
                latency: c.0.map(|(icmp, sent, received, r)| LatencyStats {
                    method: if icmp { LatencyMethod::Icmp } else { LatencyMethod::TcpConnect },
                    sent,
                    received,
                    rtt_min_us: r[0],
                    rtt_median_us: r[1],
                    rtt_avg_us: r[2],
                    rtt_max_us: r[3],
                    jitter_us: r[4],
                }),
                throughput: c.1.map(|t| ThroughputStats {
                    bytes: t[0],
                    micros: t[1],
                    bits_per_s: t[2],
                    ip_bits_per_s: t[3],
                    total_bytes: t[4],
                }),
            }
        })
}

fn connectivity_run() -> impl Strategy<Value = ConnectivityRun> {
    (
        any::<i64>(),
        any::<u32>(),
        any::<i32>(),
        0usize..3,
        any::<bool>(),
        any::<u32>(),
        prop::collection::vec(check_result(), 0..4),
    )
        .prop_map(|(started_at_ms, duration_ms, local_day, t, rural, required_mbps, checks)| {
            ConnectivityRun {
                started_at_ms,
                duration_ms,
                local_day,
                trigger: [RunTrigger::Reachability, RunTrigger::Throughput, RunTrigger::Manual][t],
                locality: if rural { Locality::Rural } else { Locality::Urban },
                required_mbps,
                checks,
            }
        })
}

fn sample() -> impl Strategy<Value = Sample> {
    prop_oneof![
        host_info().prop_map(Sample::HostInfo),
        host_metrics().prop_map(Sample::HostMetrics),
        spool_loss().prop_map(Sample::SpoolLoss),
        inventory().prop_map(|i| Sample::Inventory(Box::new(i))),
        usage().prop_map(Sample::Usage),
        (any::<i64>(), text(), any::<Option<bool>>()).prop_map(|(at_ms, boot_id, clean)| Sample::Power(
            PowerEvent {
                kind: clean.map_or(PowerEventKind::Boot, |clean| PowerEventKind::Shutdown { clean }),
                at_ms,
                boot_id,
            }
        )),
        snmp_poll().prop_map(|p| Sample::Snmp(Box::new(p))),
        connectivity_run().prop_map(|r| Sample::Connectivity(Box::new(r))),
    ]
}

fn report() -> impl Strategy<Value = Report> {
    (any::<u64>(), any::<i64>(), prop::collection::vec(sample(), 0..4))
        .prop_map(|(seq, agent_time_ms, samples)| Report { seq, agent_time_ms, samples })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (text(), prop::sample::select(DeviceKind::ALL.to_vec()), of(policy_id())).prop_map(
            |(agent_version, kind, running_policy)| Message::Hello(Hello {
                agent_version,
                kind,
                running_policy
            })
        ),
        (text(), device_id(), text(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(
            |(v, device_id, school_id, a, b, expires)| Message::Welcome(Welcome {
                collector_version: v,
                device_id,
                school_id,
                stored_up_to: a,
                highest_seq: b,
                credential_expires_ms: expires,
            })
        ),
        (
            text(),
            prop::sample::select(DeviceKind::ALL.to_vec()),
            text(),
            prop::collection::vec(any::<u8>(), 0..200),
            prop::option::of(device_id())
        )
            .prop_map(|(agent_version, kind, token, public_key, device_id)| Message::Enroll(
                EnrollRequest { agent_version, kind, token, public_key, device_id }
            )),
        (device_id(), text(), prop::collection::vec(any::<u8>(), 0..600), any::<i64>()).prop_map(
            |(device_id, school_id, der, not_after_ms)| Message::Enrolled(Enrolled {
                device_id,
                school_id,
                certificate: Certificate { der, not_after_ms },
            })
        ),
        (prop::collection::vec(any::<u8>(), 0..600), any::<i64>())
            .prop_map(|(der, not_after_ms)| Message::Renewed(Certificate { der, not_after_ms })),
        report().prop_map(Message::Report),
        prop::collection::vec((any::<u64>(), any::<u64>()), 0..5).prop_map(|rs| Message::Ack(Ack {
            ranges: rs.into_iter().map(|(a, b)| SeqRange::new(a.min(b), a.max(b))).collect()
        })),
        (prop::sample::select(RejectReason::ALL.to_vec()), text())
            .prop_map(|(reason, detail)| Message::Reject(Reject { reason, detail })),
        (policy_id(), text()).prop_map(|(id, document)| Message::Policy(PolicyOffer { id, document })),
        (policy_id(), of((text(), text()))).prop_map(|(id, refused)| Message::PolicyStatus(PolicyStatus {
            id,
            outcome: match refused {
                None => PolicyOutcome::Applied,
                Some((key, reason)) => PolicyOutcome::Refused { key, reason },
            },
        })),
    ]
}

fn policy_id() -> impl Strategy<Value = PolicyId> {
    (any::<u64>(), any::<[u8; 32]>()).prop_map(|(version, hash)| PolicyId { version, hash })
}

proptest! {
    /// Whatever the offers, in whatever order: the agent never runs an older policy than one it
    /// ran, applies only what matches its hash, and answers an offer of the policy it runs as
    /// applied without applying it again.
    #[test]
    fn agent_policy_never_goes_back_and_never_reapplies(
        offers in prop::collection::vec((0u64..6, 0u8..4, any::<bool>(), any::<bool>()), 0..40)
    ) {
        let mut agent = AgentPolicy::default();
        let mut highest = None::<u64>;
        for (version, doc, damaged, accept) in offers {
            let document = format!("x = {doc}\n");
            let mut offer = PolicyOffer { id: PolicyId::of(version, &document), document };
            if damaged {
                offer.document.push('!');
            }
            let before = agent.running();
            match agent.offer(&offer) {
                Decision::Apply => {
                    prop_assert!(!damaged);
                    prop_assert!(before != Some(offer.id));
                    prop_assert!(highest.is_none_or(|h| version >= h));
                    if accept {
                        agent.applied(offer.id);
                        highest = Some(version);
                    } else {
                        agent.refused(offer.id, "x", "no");
                        prop_assert_eq!(agent.running(), before);
                    }
                }
                Decision::Answer(s) => {
                    prop_assert_eq!(s.id, offer.id);
                    prop_assert_eq!(agent.running(), before);
                    if s.outcome == PolicyOutcome::Applied {
                        prop_assert_eq!(before, Some(offer.id));
                    }
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn envelope_round_trip(msg in message()) {
        prop_assert_eq!(decode(&encode(&msg).unwrap()).unwrap(), msg);
    }

    #[test]
    fn frames_round_trip_in_arbitrary_chunks(
        msgs in prop::collection::vec(message(), 1..6),
        chunk in 1usize..64,
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(|m| encode_frame(m).unwrap()).collect();
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for part in stream.chunks(chunk) {
            dec.push(part);
            while let Some(m) = dec.next_frame().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let mut dec = FrameDecoder::with_max_len(4096);
        dec.push(&bytes);
        for _ in 0..bytes.len() + 1 {
            match dec.next_frame() {
                Ok(Some(_)) | Err(parta_protocol::FrameError::Decode(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic(msg in message(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = encode(&msg).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = decode(&bytes);
    }

    #[test]
    fn json_round_trip(msg in message()) {
        // The agent prints samples as JSON; the JSON form must carry the same information.
        let json = serde_json::to_string(&msg).unwrap();
        prop_assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), msg);
    }

    #[test]
    fn sanitized_reports_always_validate(mut r in report()) {
        r.seq = r.seq.max(1);
        // Loss notices are built by the spool from its own numbers; keep them consistent here.
        for s in &mut r.samples {
            if let Sample::SpoolLoss(l) = s {
                l.first_seq = l.first_seq.max(1);
                l.last_seq = l.last_seq.max(l.first_seq);
                l.reports = l.reports.min(l.last_seq - l.first_seq + 1);
            }
        }
        sanitize_report(&mut r);
        prop_assert_eq!(validate_report(&r), Ok(()));
    }
}
