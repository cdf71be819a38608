//! Polling: [`read_device`] reads one target once (I/O); [`Rates::finish`] turns what was read
//! into an [`SnmpPoll`] with rates against the previous poll (pure); [`run`] schedules every
//! target on its own timer, bounded by a concurrency limit, so that a dead or slow device never
//! delays another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use parta_protocol::DeviceId;
use parta_protocol::snmp::{PollOutcome, PrinterReading, RateNote, SnmpDeviceKind, SnmpPoll, SystemGroup};
use tokio::sync::{Semaphore, mpsc, watch};
use uuid::Uuid;

use super::client::{Client, SnmpError, dotted};
use super::mib::{self, RawInterface, RawSystem};
use super::profile::{Profile, ProfileKind, Profiles};
use super::target::Target;
use crate::sources::counters::{self, Rate, Reading, ResetReason, Width};

/// Namespace of SNMP device ids: UUIDv5 of `school/host:port`.
pub const SNMP_NAMESPACE: Uuid = Uuid::from_u128(0x3f0c_8e61_25d4_4b7a_9e10_c2a8_51f3_7d64);

/// The device id of a target of a school: every agent of the school polling the same address
/// reports the same device.
pub fn device_id(school: &str, address: &str) -> DeviceId {
    DeviceId(Uuid::new_v5(&SNMP_NAMESPACE, format!("{school}/{address}").as_bytes()))
}

/// What one poll read, before rates.
#[derive(Debug, Clone)]
pub struct DeviceReading {
    /// The system group, or why it could not be read (then nothing else was tried).
    pub system: Result<RawSystem, SnmpError>,
    /// Profile used.
    pub profile: String,
    /// Vendor from the profile.
    pub vendor: String,
    /// Kind decided.
    pub kind: SnmpDeviceKind,
    /// Serial number.
    pub serial: Option<String>,
    /// Interfaces.
    pub interfaces: Vec<RawInterface>,
    /// When the interface table was read (ms since the epoch) and the device's sysUpTime read
    /// right after it; `None` when it was not read (not in the profile, or the walk failed).
    /// The counters are checked against this uptime, not the system group's: a device that
    /// reboots in the middle of a poll answers the system group before and the table after.
    pub interfaces_read: Option<(i64, u32)>,
    /// Printer state.
    pub printer: Option<PrinterReading>,
    /// Tables that failed after the system group was read.
    pub partial: Vec<String>,
}

impl DeviceReading {
    /// A reading of `system` and nothing else yet.
    fn new(target: &Target, system: Result<RawSystem, SnmpError>) -> Self {
        Self {
            system,
            profile: String::new(),
            vendor: String::new(),
            kind: target.kind.unwrap_or(SnmpDeviceKind::Network),
            serial: None,
            interfaces: Vec::new(),
            interfaces_read: None,
            printer: None,
            partial: Vec::new(),
        }
    }
}

/// Reads a target once: the system group, then what its profile asks for. `session` keeps the
/// conversation between polls (for SNMPv3 the engine discovery and key localization, ~2 MB of
/// hashing, happen once, not every poll); it is dropped after a poll that did not reach the
/// device, so the next poll starts afresh.
pub async fn read_device(
    target: &Target,
    profiles: &Profiles,
    session: &mut Option<Client>,
) -> DeviceReading {
    let client = match session {
        Some(c) => c,
        None => match Client::new(target).await {
            Ok(c) => session.insert(c),
            Err(e) => return DeviceReading::new(target, Err(e)),
        },
    };
    let reading = read_with(client, target, profiles).await;
    if reading.system.is_err() {
        *session = None;
    }
    reading
}

async fn read_with(client: &mut Client, target: &Target, profiles: &Profiles) -> DeviceReading {
    let sys = match client.get(&mib::SYSTEM).await {
        Ok(reply) if reply.error_status != 0 => Err(SnmpError::new(
            PollOutcome::Error,
            format!(
                "{} answered the system group with SNMP error status {}",
                target.address, reply.error_status
            ),
        )),
        Ok(reply) => mib::parse_system(&reply)
            .map_err(|why| SnmpError::new(PollOutcome::Malformed, format!("{}: {why}", target.address))),
        Err(e) => Err(e),
    };
    let sys = match sys {
        Ok(s) => s,
        Err(e) => return DeviceReading::new(target, Err(e)),
    };
    let Some(profile) = profiles.select(target.profile.as_deref(), &sys.object_id) else {
        let why = format!("no SNMP profile named {:?}", target.profile.as_deref().unwrap_or_default());
        return DeviceReading::new(target, Err(SnmpError::new(PollOutcome::Error, why)));
    };
    let mut reading = DeviceReading::new(target, Ok(sys));
    reading.profile.clone_from(&profile.name);
    reading.vendor.clone_from(&profile.vendor);
    if profile.interfaces {
        let before = crate::runner::now_ms();
        let walked = client.walk(&mib::IF_COLUMNS).await;
        // The counters were read somewhere during the walk: its midpoint is the best estimate.
        let at_ms = before + (crate::runner::now_ms() - before) / 2;
        let uptime = match walked {
            Ok(_) => client.get(&[mib::SYS_UPTIME]).await.map_err(|e| e.to_string()).and_then(|r| {
                mib::parse_uptime(&r).ok_or_else(|| "no sysUpTime after the interface walk".to_owned())
            }),
            Err(_) => Err(String::new()),
        };
        match (walked, uptime) {
            (Ok(cols), Ok(up)) => {
                reading.interfaces = mib::parse_interfaces(&cols);
                reading.interfaces_read = Some((at_ms, up));
            }
            (Err(e), _) => reading.partial.push(format!("IF-MIB: {e}")),
            // Without the uptime the counters cannot be told from a reboot's: not used.
            (Ok(_), Err(e)) => reading.partial.push(format!("IF-MIB: {e}")),
        }
    }
    if profile.printer {
        let mut scalar_pages = Vec::new();
        if !profile.page_count_oids.is_empty() {
            let oids: Vec<&[u32]> = profile.page_count_oids.iter().map(Vec::as_slice).collect();
            match client.get(&oids).await {
                Ok(r) => scalar_pages = r.varbinds.iter().filter_map(|(_, v)| v.as_u64()).collect(),
                Err(e) => reading.partial.push(format!("page counters: {e}")),
            }
        }
        match client.walk(&mib::PRINTER_COLUMNS).await {
            Ok(cols) => reading.printer = mib::parse_printer(&cols, &scalar_pages),
            Err(e) => reading.partial.push(format!("Printer-MIB: {e}")),
        }
    }
    reading.kind = match (target.kind, profile.kind) {
        (Some(k), _) => k,
        (None, ProfileKind::Network) => SnmpDeviceKind::Network,
        (None, ProfileKind::Printer) => SnmpDeviceKind::Printer,
        (None, ProfileKind::Auto) if reading.printer.is_some() => SnmpDeviceKind::Printer,
        (None, ProfileKind::Auto) => SnmpDeviceKind::Network,
    };
    read_serial(client, profile, &mut reading).await;
    reading
}

/// The serial: the profile's own objects first, then for every printer Printer-MIB's
/// `prtGeneralSerialNumber` (Canon, Ricoh, Sharp, Xerox… have no profile of their own, and
/// ENTITY-MIB has nothing for printers), then ENTITY-MIB. A later source is asked only while
/// the serial is missing or a placeholder (`1234567890`, all zeros).
async fn read_serial(client: &mut Client, profile: &Profile, reading: &mut DeviceReading) {
    let settled =
        |r: &DeviceReading| r.serial.as_deref().is_some_and(|s| !parta_common::serial::is_placeholder(s));
    let keep = |reading: &mut DeviceReading, found: Option<String>| {
        if let Some(f) = found
            && (reading.serial.is_none() || !parta_common::serial::is_placeholder(&f))
        {
            reading.serial = Some(f);
        }
    };
    if !profile.serial_oids.is_empty() {
        let oids: Vec<&[u32]> = profile.serial_oids.iter().map(Vec::as_slice).collect();
        match client.get(&oids).await {
            Ok(r) => keep(reading, mib::scalar_serial(&r)),
            Err(e) => reading.partial.push(format!("serial: {e}")),
        }
    }
    if reading.kind == SnmpDeviceKind::Printer && !settled(reading) {
        match client.walk(&mib::PRT_GENERAL_SERIAL).await {
            Ok(cols) => keep(reading, mib::printer_serial(&cols)),
            Err(e) => reading.partial.push(format!("Printer-MIB serial: {e}")),
        }
    }
    if profile.entity && !settled(reading) {
        match client.walk(&mib::ENTITY_COLUMNS).await {
            Ok(cols) => keep(reading, mib::parse_entity_serial(&cols)),
            Err(e) => reading.partial.push(format!("ENTITY-MIB: {e}")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct IfPrev {
    bits: u8,
    input: Reading,
    output: Reading,
}

/// Per-target memory between polls: the previous counters and sysUpTime.
#[derive(Debug, Default, Clone)]
pub struct Rates {
    uptime: Option<(i64, u32)>,
    ifaces: HashMap<u32, IfPrev>,
}

/// When and where a poll happened, for [`Rates::finish`].
#[derive(Debug, Clone, Copy)]
pub struct PollTime {
    /// Start, ms since the epoch.
    pub started_ms: i64,
    /// Duration, ms.
    pub duration_ms: u32,
    /// Local day of the start.
    pub local_day: i32,
}

impl Rates {
    /// The poll message for `reading`, with rates against the previous poll; remembers this
    /// poll's counters for the next.
    pub fn finish(
        &mut self,
        school: &str,
        target: &Target,
        reading: DeviceReading,
        time: PollTime,
    ) -> SnmpPoll {
        let mut poll = SnmpPoll {
            device_id: device_id(school, &target.address),
            target: target.address.clone(),
            label: target.label.clone(),
            room: target.room.clone(),
            kind: reading.kind,
            profile: reading.profile,
            vendor: reading.vendor,
            polled_at_ms: time.started_ms,
            duration_ms: time.duration_ms,
            local_day: time.local_day,
            outcome: PollOutcome::Ok,
            error: String::new(),
            system: None,
            serial: reading.serial,
            interfaces: Vec::new(),
            printer: reading.printer,
        };
        let sys = match reading.system {
            Ok(s) => s,
            Err(e) => {
                poll.outcome = e.kind;
                poll.error = e.message;
                return poll;
            }
        };
        let now = (time.started_ms, sys.uptime_cs);
        let rebooted = self.uptime.is_some_and(|prev| counters::rebooted(prev, now));
        self.uptime = Some(now);
        let (at_ms, if_uptime) = reading.interfaces_read.unwrap_or((time.started_ms, sys.uptime_cs));
        let mut seen = HashMap::with_capacity(reading.interfaces.len());
        for raw in reading.interfaces.into_iter().take(parta_protocol::validate::MAX_SNMP_INTERFACES) {
            let mut i = raw.reading;
            if i.counter_bits > 0 {
                let mk = |value| Reading {
                    value,
                    at_ms,
                    uptime_cs: Some(if_uptime),
                    discontinuity: raw.discontinuity,
                };
                let cur = IfPrev { bits: i.counter_bits, input: mk(i.in_octets), output: mk(i.out_octets) };
                let speed = (i.speed_mbps > 0).then(|| u64::from(i.speed_mbps) * 1_000_000);
                if let Some(prev) = self.ifaces.get(&i.index).filter(|p| p.bits == cur.bits) {
                    let width = if cur.bits == 64 { Width::Bits64 } else { Width::Bits32 };
                    (i.rate, i.in_bps, i.out_bps) = rates(
                        counters::rate(&prev.input, &cur.input, width, speed),
                        counters::rate(&prev.output, &cur.output, width, speed),
                    );
                }
                seen.insert(i.index, cur);
            }
            poll.interfaces.push(i);
        }
        // Interfaces that vanished are forgotten; a failed interface walk keeps the old ones.
        if reading.interfaces_read.is_some() {
            self.ifaces = seen;
        }
        if !reading.partial.is_empty() {
            poll.outcome = PollOutcome::Partial;
            poll.error = reading.partial.join("; ");
        }
        poll.system = Some(SystemGroup {
            descr: sys.descr,
            object_id: dotted(&sys.object_id),
            name: sys.name,
            location: sys.location,
            uptime_cs: sys.uptime_cs,
            rebooted,
        });
        parta_protocol::validate::sanitize_snmp_poll(&mut poll);
        poll
    }
}

/// Both directions' rates → note and bit/s. A reset in either direction drops both.
fn rates(input: Rate, output: Rate) -> (RateNote, Option<u64>, Option<u64>) {
    let note = |r: ResetReason| match r {
        ResetReason::Reboot => RateNote::Reboot,
        ResetReason::Discontinuity => RateNote::Discontinuity,
        ResetReason::Implausible => RateNote::Implausible,
    };
    match (input, output) {
        (Rate::BytesPerSecond(i), Rate::BytesPerSecond(o)) => {
            (RateNote::Measured, Some(bits_per_s(i)), Some(bits_per_s(o)))
        }
        (Rate::Reset(r), _) | (_, Rate::Reset(r)) => (note(r), None, None),
        (Rate::OutOfOrder, _) | (_, Rate::OutOfOrder) => (RateNote::First, None, None),
    }
}

// Rates are finite and bounded by the interface speed (counters::rate refuses more), so the
// conversion cannot overflow.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn bits_per_s(bytes_per_s: f64) -> u64 {
    (bytes_per_s * 8.0).round() as u64
}

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// School id (for device ids).
    pub school: String,
    /// Targets polled at once.
    pub concurrency: usize,
    /// Profiles.
    pub profiles: Arc<Profiles>,
    /// The agent's time zone, for local days.
    pub tz: TimeZone,
}

impl PollerSettings {
    /// Settings from the agent's `[snmp]` configuration: its profiles (built-in and
    /// `profiles_dir`), concurrency and the system time zone.
    pub fn new(
        config: &crate::config::SnmpSettings,
        school: String,
    ) -> Result<Self, super::profile::ProfileError> {
        Ok(Self {
            school,
            concurrency: config.concurrency,
            profiles: Arc::new(Profiles::load(Some(&config.profiles_dir))?),
            tz: TimeZone::system(),
        })
    }
}

/// Polls one target once: read, then rates. The whole poll is bounded by the target's interval
/// so that a device answering at a crawl cannot pile polls up.
pub async fn poll_once(
    target: &Target,
    settings: &PollerSettings,
    rates: &mut Rates,
    session: &mut Option<Client>,
) -> SnmpPoll {
    let started_ms = crate::runner::now_ms();
    let t0 = Instant::now();
    let read = tokio::time::timeout(target.interval, read_device(target, &settings.profiles, session)).await;
    let reading = match read {
        Ok(r) => r,
        Err(_) => {
            // Cut mid-request: a late reply would meet the next poll's first request.
            *session = None;
            DeviceReading::new(
                target,
                Err(SnmpError::new(
                    PollOutcome::Timeout,
                    format!("{}: the poll took longer than the poll interval", target.address),
                )),
            )
        }
    };
    let duration_ms = u32::try_from(t0.elapsed().as_millis()).unwrap_or(u32::MAX);
    let local_day = crate::usage::local_day(&settings.tz, started_ms).0;
    rates.finish(&settings.school, target, reading, PollTime { started_ms, duration_ms, local_day })
}

/// Runs every target on its own timer until `stop` turns true, sending each poll to `tx`. The
/// first poll of each target comes at a random moment within `min(interval, 30 s)`, so that a
/// school's gear is not polled all at once and a freshly configured target shows up quickly.
pub async fn run(
    targets: Vec<Target>,
    settings: PollerSettings,
    tx: mpsc::Sender<SnmpPoll>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let settings = Arc::new(settings);
    let mut tasks = tokio::task::JoinSet::new();
    for target in targets {
        let (permits, settings, tx, mut stop) =
            (Arc::clone(&permits), Arc::clone(&settings), tx.clone(), stop.clone());
        tasks.spawn(async move {
            let spread = target.interval.min(Duration::from_secs(30));
            let first = tokio::time::Instant::now() + spread.mul_f64(rand::random::<f64>());
            let mut ticker = tokio::time::interval_at(first, target.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut rates = Rates::default();
            let mut session = None;
            let mut last_outcome = PollOutcome::Ok;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop.changed() => return,
                }
                let Ok(_permit) = permits.acquire().await else { return };
                let poll = tokio::select! {
                    p = poll_once(&target, &settings, &mut rates, &mut session) => p,
                    _ = stop.changed() => return,
                };
                log_outcome_change(&mut last_outcome, &poll);
                if tx.send(poll).await.is_err() {
                    return;
                }
            }
        });
    }
    let _ = stop.wait_for(|s| *s).await;
    tasks.shutdown().await;
}

fn log_outcome_change(last: &mut PollOutcome, poll: &SnmpPoll) {
    if poll.outcome == *last {
        return;
    }
    if poll.outcome.reachable() && !last.reachable() {
        tracing::info!(target = %poll.target, outcome = poll.outcome.as_str(), "SNMP target answers again");
    } else if !poll.outcome.reachable() || poll.outcome == PollOutcome::Partial {
        tracing::warn!(target = %poll.target, outcome = poll.outcome.as_str(), error = %poll.error, "SNMP poll failed");
    }
    *last = poll.outcome;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::target::{Defaults, TargetSpec};
    use parta_protocol::snmp::InterfaceReading;

    fn target() -> Target {
        TargetSpec { address: Some("10.0.0.2".into()), ..TargetSpec::default() }
            .resolve(Defaults::default())
            .unwrap()
    }

    fn reading(uptime_cs: u32, at_ms: i64, ifs: Vec<RawInterface>) -> DeviceReading {
        DeviceReading {
            system: Ok(RawSystem {
                descr: "sw".into(),
                object_id: vec![1, 3, 6, 1, 4, 1, 35265, 1],
                name: "sw".into(),
                location: String::new(),
                uptime_cs,
            }),
            profile: "eltex".into(),
            vendor: "Eltex".into(),
            kind: SnmpDeviceKind::Network,
            serial: None,
            interfaces: ifs,
            interfaces_read: Some((at_ms, uptime_cs)),
            printer: None,
            partial: Vec::new(),
        }
    }

    fn hc(index: u32, i: u64, o: u64) -> RawInterface {
        let reading = InterfaceReading {
            index,
            name: String::new(),
            alias: String::new(),
            descr: String::new(),
            if_type: 6,
            admin_status: 1,
            oper_status: 1,
            speed_mbps: 1000,
            counter_bits: 64,
            in_octets: i,
            out_octets: o,
            in_bps: None,
            out_bps: None,
            rate: RateNote::First,
        };
        RawInterface { reading, discontinuity: None }
    }

    fn time(at_ms: i64) -> PollTime {
        PollTime { started_ms: at_ms, duration_ms: 5, local_day: 0 }
    }

    #[test]
    fn rates_across_polls_wrap_and_reboot() {
        let mut r = Rates::default();
        let t = target();
        let p = r.finish(
            "74-1",
            &t,
            reading(100_000, 1_000_000, vec![hc(1, u64::MAX - 1000, 0)]),
            time(1_000_000),
        );
        assert_eq!(p.interfaces[0].rate, RateNote::First);
        // 60 s later: the 64-bit counter wrapped (1001 bytes to reach 0), then 58 999 more.
        let p =
            r.finish("74-1", &t, reading(106_000, 1_060_000, vec![hc(1, 58_999, 600_000)]), time(1_060_000));
        assert_eq!(p.interfaces[0].rate, RateNote::Measured);
        assert_eq!(p.interfaces[0].in_bps, Some(60_000 * 8 / 60));
        assert_eq!(p.interfaces[0].out_bps, Some(600_000 * 8 / 60));
        assert!(!p.system.as_ref().unwrap().rebooted);
        // Reboot: uptime back to 10 s, counters small.
        let p = r.finish("74-1", &t, reading(1_000, 1_120_000, vec![hc(1, 5, 5)]), time(1_120_000));
        assert_eq!(p.interfaces[0].rate, RateNote::Reboot);
        assert_eq!(p.interfaces[0].in_bps, None);
        assert!(p.system.as_ref().unwrap().rebooted);
        assert_eq!(p.device_id, device_id("74-1", "10.0.0.2:161"));
    }

    #[test]
    fn a_reboot_in_the_middle_of_a_poll_gives_no_rate() {
        let mut r = Rates::default();
        let t = target();
        r.finish("74-1", &t, reading(100_000, 1_000_000, vec![hc(1, 5_000_000, 0)]), time(1_000_000));
        // The system group still came from before the reboot (uptime went on), the table from
        // after it (counters small again, the uptime read after the walk is back to 2 s).
        let mut mid = reading(106_000, 1_060_000, vec![hc(1, 1_000, 0)]);
        mid.interfaces_read = Some((1_060_000, 200));
        let p = r.finish("74-1", &t, mid, time(1_060_000));
        assert!(!p.system.as_ref().unwrap().rebooted);
        assert_eq!(p.interfaces[0].rate, RateNote::Reboot, "{p:?}");
        assert_eq!(p.interfaces[0].in_bps, None);
    }

    #[test]
    fn failures_carry_the_error() {
        let mut r = Rates::default();
        let mut rd = reading(1, 1, vec![]);
        rd.system = Err(SnmpError::new(PollOutcome::AuthFailed, "wrong password"));
        let p = r.finish("74-1", &target(), rd, time(1));
        assert_eq!((p.outcome, p.error.as_str()), (PollOutcome::AuthFailed, "wrong password"));
        assert!(p.system.is_none());
        let mut rd = reading(1, 1, vec![]);
        rd.partial.push("IF-MIB: timeout".into());
        let p = r.finish("74-1", &target(), rd, time(2));
        assert_eq!(p.outcome, PollOutcome::Partial);
    }
}
