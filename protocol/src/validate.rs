//! Limits a collector enforces on every message, and the sanitiser agents run before sending so
//! that they never produce a report the collector would refuse.
//!
//! Limits are structural (sizes, counts, finite numbers). Odd but possible values — a clock in
//! the future, used memory above total — are accepted: refusing them would lose real data.

use std::fmt;

use crate::espd::ConnectivityRun;
use crate::inventory::Inventory;
use crate::message::{EnrollRequest, Hello, Report};
use crate::sample::{HostInfo, HostMetrics, Sample};
use crate::snmp::SnmpPoll;
use crate::usage::UsageInterval;

/// Longest school id, in bytes.
pub const MAX_SCHOOL_ID: usize = 64;
/// Longest free-text field (host name, OS name, DMI strings, mount points…), in bytes.
pub const MAX_TEXT: usize = 256;
/// Longest version string, in bytes.
pub const MAX_VERSION: usize = 64;
/// Longest enrollment token, in bytes.
pub const MAX_TOKEN: usize = 128;
/// Most samples in one report.
pub const MAX_SAMPLES: usize = 64;
/// Most filesystems in one metrics sample.
pub const MAX_FILESYSTEMS: usize = 128;
/// Most network interfaces in one sample.
pub const MAX_INTERFACES: usize = 256;
/// Most os-release fields kept as written in an OS description.
pub const MAX_OS_FIELDS: usize = 12;
/// Most disks in an inventory.
pub const MAX_DISKS: usize = 64;
/// Most displays in an inventory.
pub const MAX_DISPLAYS: usize = 16;
/// Most usage intervals in one sample (a month powered off is ~31 day-long intervals).
pub const MAX_INTERVALS: usize = 1024;
/// Longest SNMP interface name, alias or description, in bytes: IF-MIB's `DisplayString`
/// limit (longer ones are cut by the agent). Stacked switches end names with the unit
/// (`… Port 1 Unit 2`), so cutting shorter made ports of different units the same.
pub const MAX_IF_TEXT: usize = 255;
/// Most SNMP interfaces in one poll (larger tables are cut by the agent, which warns).
pub const MAX_SNMP_INTERFACES: usize = 256;
/// Most printer markers in one poll.
pub const MAX_MARKERS: usize = 16;
/// Most SNMP polls in one report.
pub const MAX_SNMP_POLLS: usize = 8;
/// Most bytes of SNMP polls an agent puts in one report (it starts another beyond): a poll of
/// the largest table with the longest texts is ~210 KiB, so eight would not fit a frame.
pub const SNMP_REPORT_BYTES: usize = 512 * 1024;
/// Most checks in one connectivity run.
pub const MAX_CHECKS: usize = 64;
/// Most addresses kept per check (what a name resolved to).
pub const MAX_CHECK_ADDRESSES: usize = 8;
/// Longest address text (an IPv6 address with a zone fits).
pub const MAX_ADDRESS: usize = 64;
/// Most connectivity runs in one report (runs are minutes apart; two allow a spooled one).
pub const MAX_CONNECTIVITY_RUNS: usize = 2;
/// Longest usage interval: intervals never cross local midnight; 26 h allows for a DST day.
pub const MAX_INTERVAL_MS: i64 = 26 * 3_600_000;
/// Longest public key in an `Enroll`, bytes of DER (an ECDSA P-256 key is 91, RSA-4096 ~550).
pub const MAX_PUBLIC_KEY: usize = 1024;
/// How far above the highest sequence number stored for a device a report's number may be.
/// An agent numbers its reports one by one, so a larger jump is not a backlog but a forged or
/// broken counter: 2^24 is 32 years of reports at the default 60 s interval and 19 days at the
/// smallest interval (100 ms) spent entirely offline.
pub const SEQ_WINDOW: u64 = 1 << 24;
/// Local time is UTC minus at most 12 h and plus at most 14 h: a `local_day` must name a day
/// that some offset in that range puts the event in.
const MAX_OFFSET_BEHIND_MS: i64 = 12 * 3_600_000;
const MAX_OFFSET_AHEAD_MS: i64 = 14 * 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// A rule a message broke. `field` is a path such as `samples[1].interfaces[3].name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A text field is longer than allowed.
    #[error("{field} is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Field path.
        field: String,
        /// Actual length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A list has more elements than allowed.
    #[error("{field} has {count} elements, the limit is {max}")]
    TooMany {
        /// Field path.
        field: String,
        /// Actual count.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A number is NaN or infinite.
    #[error("{field} is not a finite number")]
    NotFinite {
        /// Field path.
        field: String,
    },
    /// Sequence numbers start at 1.
    #[error("report sequence number 0 is invalid; sequences start at 1")]
    SeqZero,
    /// A school id is empty or has characters outside `[A-Za-z0-9._-]`.
    #[error("school id {0:?} is invalid: use 1–64 characters of A–Z, a–z, 0–9, '.', '_', '-'")]
    SchoolId(String),
    /// Fields contradict each other.
    #[error("{field}: {reason}")]
    Inconsistent {
        /// Field path.
        field: String,
        /// What is contradictory.
        reason: String,
    },
    /// A required text field is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Field path.
        field: String,
    },
}

/// Checks a school id: 1–64 bytes of `[A-Za-z0-9._-]`.
pub fn validate_school_id(id: &str) -> Result<(), ValidationError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_SCHOOL_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        // Show at most the limit, so that a huge id does not flood logs.
        Err(ValidationError::SchoolId(id.chars().take(MAX_SCHOOL_ID).collect()))
    }
}

/// Checks a `Hello`.
pub fn validate_hello(hello: &Hello) -> Result<(), ValidationError> {
    text(|| "agent_version".into(), &hello.agent_version, MAX_VERSION)
}

/// Checks an `Enroll`.
pub fn validate_enroll(e: &EnrollRequest) -> Result<(), ValidationError> {
    text(|| "agent_version".into(), &e.agent_version, MAX_VERSION)?;
    if e.token.is_empty() {
        return Err(ValidationError::Empty { field: "token".into() });
    }
    text(|| "token".into(), &e.token, MAX_TOKEN)?;
    if e.public_key.is_empty() {
        return Err(ValidationError::Empty { field: "public_key".into() });
    }
    count(|| "public_key".into(), e.public_key.len(), MAX_PUBLIC_KEY)
}

/// Whether a report numbered `seq` may be stored for a device whose highest stored number is
/// `highest` (0: none yet): at most [`SEQ_WINDOW`] above it.
pub fn seq_in_window(seq: u64, highest: u64) -> bool {
    seq <= highest.saturating_add(SEQ_WINDOW)
}

/// Whether `local_day` (days since 1970-01-01 in the device's local time) can be the local day
/// of an event spanning `start_ms..=end_ms` (UTC): some UTC offset between −12 h and +14 h
/// puts both ends in that day, allowing an hour for a daylight-saving change within it.
pub fn day_agrees(local_day: i32, start_ms: i64, end_ms: i64) -> bool {
    let day_start = i64::from(local_day) * DAY_MS;
    let day_end = day_start + DAY_MS;
    // The local midnight that starts the day is at UTC `day_start - offset`.
    let earliest = day_start - MAX_OFFSET_AHEAD_MS - 3_600_000;
    let latest = day_end + MAX_OFFSET_BEHIND_MS + 3_600_000;
    start_ms <= end_ms && start_ms >= earliest && end_ms <= latest
}

/// [`day_agrees`] as a validation rule; `field` names the `local_day` when it fails.
fn check_day(
    field: impl FnOnce() -> String,
    local_day: i32,
    start_ms: i64,
    end_ms: i64,
) -> Result<(), ValidationError> {
    if day_agrees(local_day, start_ms, end_ms) {
        return Ok(());
    }
    Err(ValidationError::Inconsistent {
        field: field(),
        reason: format!(
            "local_day {local_day} is not the local day of {start_ms}..{end_ms} ms in any time zone"
        ),
    })
}

/// Checks a `Report`.
pub fn validate_report(report: &Report) -> Result<(), ValidationError> {
    if report.seq == 0 {
        return Err(ValidationError::SeqZero);
    }
    count(|| "samples".into(), report.samples.len(), MAX_SAMPLES)?;
    let polls = report.samples.iter().filter(|s| matches!(s, Sample::Snmp(_))).count();
    count(|| "samples (SNMP polls)".into(), polls, MAX_SNMP_POLLS)?;
    let runs = report.samples.iter().filter(|s| matches!(s, Sample::Connectivity(_))).count();
    count(|| "samples (connectivity runs)".into(), runs, MAX_CONNECTIVITY_RUNS)?;
    for (i, sample) in report.samples.iter().enumerate() {
        let at = Path(&"samples", i);
        match sample {
            Sample::HostInfo(info) => validate_host_info(&at, info)?,
            Sample::HostMetrics(m) => validate_host_metrics(&at, m)?,
            Sample::Inventory(inv) => validate_inventory(&at, inv)?,
            Sample::Usage(list) => validate_usage(&at, list)?,
            Sample::Power(p) => text(|| format!("{at}.boot_id"), &p.boot_id, MAX_VERSION)?,
            Sample::Snmp(poll) => validate_snmp(&at, poll)?,
            Sample::Connectivity(run) => validate_connectivity(&at, run)?,
            Sample::SpoolLoss(l) => {
                if l.first_seq == 0 || l.first_seq > l.last_seq || l.reports > l.last_seq - l.first_seq + 1 {
                    return Err(ValidationError::Inconsistent {
                        field: format!("{at}"),
                        reason: format!(
                            "span {}..={} cannot hold {} lost reports",
                            l.first_seq, l.last_seq, l.reports
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

fn validate_inventory(at: &Path<'_>, inv: &Inventory) -> Result<(), ValidationError> {
    count(|| format!("{at}.disks"), inv.disks.len(), MAX_DISKS)?;
    count(|| format!("{at}.nics"), inv.nics.len(), MAX_INTERFACES)?;
    count(|| format!("{at}.displays"), inv.displays.len(), MAX_DISPLAYS)?;
    count(|| format!("{at}.os.release_fields"), inv.os.release_fields.len(), MAX_OS_FIELDS)?;
    // Inventories are rare (start and change): naming every field eagerly costs nothing.
    for (name, value) in inventory_texts(inv) {
        text(|| format!("{at}.{name}"), value, MAX_TEXT)?;
    }
    Ok(())
}

/// Every text field of an inventory with its path.
fn inventory_texts(inv: &Inventory) -> Vec<(String, &str)> {
    let mut v: Vec<(String, &str)> = vec![
        ("hostname".into(), &inv.hostname),
        ("room".into(), &inv.room),
        ("kernel".into(), &inv.kernel),
        ("os.id".into(), &inv.os.id),
        ("os.name".into(), &inv.os.name),
        ("os.version".into(), &inv.os.version),
        ("os.pretty_name".into(), &inv.os.pretty_name),
        ("os.edition".into(), &inv.os.edition),
        ("cpu.model".into(), &inv.cpu.model),
    ];
    for (i, (k, value)) in inv.os.release_fields.iter().enumerate() {
        v.push((format!("os.release_fields[{i}].key"), k));
        v.push((format!("os.release_fields[{i}].value"), value));
    }
    let d = &inv.dmi;
    for (name, value) in [
        ("vendor", &d.vendor),
        ("product", &d.product),
        ("serial", &d.serial),
        ("bios_vendor", &d.bios_vendor),
        ("bios_version", &d.bios_version),
        ("bios_date", &d.bios_date),
        ("board_vendor", &d.board_vendor),
        ("board_product", &d.board_product),
    ] {
        if let Some(value) = value {
            v.push((format!("dmi.{name}"), value));
        }
    }
    for (i, disk) in inv.disks.iter().enumerate() {
        v.push((format!("disks[{i}].name"), &disk.name));
        if let Some(m) = &disk.model {
            v.push((format!("disks[{i}].model"), m));
        }
    }
    for (i, nic) in inv.nics.iter().enumerate() {
        v.push((format!("nics[{i}].name"), &nic.name));
    }
    for (i, disp) in inv.displays.iter().enumerate() {
        v.push((format!("displays[{i}].connector"), &disp.connector));
        v.push((format!("displays[{i}].manufacturer"), &disp.manufacturer));
        for (name, value) in [("serial", &disp.serial), ("name", &disp.name)] {
            if let Some(value) = value {
                v.push((format!("displays[{i}].{name}"), value));
            }
        }
    }
    v
}

fn sanitize_inventory(inv: &mut Inventory) {
    inv.disks.truncate(MAX_DISKS);
    inv.nics.truncate(MAX_INTERFACES);
    inv.displays.truncate(MAX_DISPLAYS);
    inv.os.release_fields.truncate(MAX_OS_FIELDS);
    let d = &mut inv.dmi;
    let mut texts: Vec<&mut String> = vec![
        &mut inv.hostname,
        &mut inv.room,
        &mut inv.kernel,
        &mut inv.os.id,
        &mut inv.os.name,
        &mut inv.os.version,
        &mut inv.os.pretty_name,
        &mut inv.os.edition,
        &mut inv.cpu.model,
    ];
    texts.extend(
        [
            &mut d.vendor,
            &mut d.product,
            &mut d.serial,
            &mut d.bios_vendor,
            &mut d.bios_version,
            &mut d.bios_date,
            &mut d.board_vendor,
            &mut d.board_product,
        ]
        .into_iter()
        .flatten(),
    );
    for disk in &mut inv.disks {
        texts.push(&mut disk.name);
        texts.extend(disk.model.as_mut());
    }
    for nic in &mut inv.nics {
        texts.push(&mut nic.name);
    }
    for disp in &mut inv.displays {
        texts.push(&mut disp.connector);
        texts.push(&mut disp.manufacturer);
        texts.extend(disp.serial.as_mut());
        texts.extend(disp.name.as_mut());
    }
    for (k, v) in &mut inv.os.release_fields {
        texts.push(k);
        texts.push(v);
    }
    for t in texts {
        truncate_text(t, MAX_TEXT);
    }
}

fn validate_snmp(at: &Path<'_>, poll: &SnmpPoll) -> Result<(), ValidationError> {
    count(|| format!("{at}.interfaces"), poll.interfaces.len(), MAX_SNMP_INTERFACES)?;
    check_day(|| format!("{at}.local_day"), poll.local_day, poll.polled_at_ms, poll.polled_at_ms)?;
    if let Some(p) = &poll.printer {
        count(|| format!("{at}.printer.markers"), p.markers.len(), MAX_MARKERS)?;
    }
    // Polls are frequent (every target, every interval): field paths are only formatted for
    // an error.
    let sys = poll.system.as_ref();
    for (name, value) in [
        ("target", Some(&poll.target)),
        ("label", Some(&poll.label)),
        ("room", Some(&poll.room)),
        ("profile", Some(&poll.profile)),
        ("vendor", Some(&poll.vendor)),
        ("error", Some(&poll.error)),
        ("serial", poll.serial.as_ref()),
        ("system.descr", sys.map(|s| &s.descr)),
        ("system.object_id", sys.map(|s| &s.object_id)),
        ("system.name", sys.map(|s| &s.name)),
        ("system.location", sys.map(|s| &s.location)),
    ] {
        if let Some(v) = value {
            text(|| format!("{at}.{name}"), v, MAX_TEXT)?;
        }
    }
    for (i, x) in poll.interfaces.iter().enumerate() {
        for (name, v) in [("name", &x.name), ("alias", &x.alias), ("descr", &x.descr)] {
            text(|| format!("{at}.interfaces[{i}].{name}"), v, MAX_IF_TEXT)?;
        }
    }
    Ok(())
}

fn validate_connectivity(at: &Path<'_>, run: &ConnectivityRun) -> Result<(), ValidationError> {
    count(|| format!("{at}.checks"), run.checks.len(), MAX_CHECKS)?;
    check_day(|| format!("{at}.local_day"), run.local_day, run.started_at_ms, run.started_at_ms)?;
    for (i, c) in run.checks.iter().enumerate() {
        text(|| format!("{at}.checks[{i}].target"), &c.target, MAX_TEXT)?;
        text(|| format!("{at}.checks[{i}].error"), &c.error, MAX_TEXT)?;
        count(|| format!("{at}.checks[{i}].addresses"), c.addresses.len(), MAX_CHECK_ADDRESSES)?;
        for (j, a) in c.addresses.iter().enumerate() {
            text(|| format!("{at}.checks[{i}].addresses[{j}]"), a, MAX_ADDRESS)?;
        }
        if let Some(l) = &c.latency
            && l.received > l.sent
        {
            return Err(ValidationError::Inconsistent {
                field: format!("{at}.checks[{i}].latency"),
                reason: format!("{} probes answered of {} sent", l.received, l.sent),
            });
        }
    }
    Ok(())
}

/// Cuts a connectivity run to the limits [`validate_report`] enforces.
pub fn sanitize_connectivity(run: &mut ConnectivityRun) {
    run.checks.truncate(MAX_CHECKS);
    for c in &mut run.checks {
        truncate_text(&mut c.target, MAX_TEXT);
        truncate_text(&mut c.error, MAX_TEXT);
        c.addresses.truncate(MAX_CHECK_ADDRESSES);
        for a in &mut c.addresses {
            truncate_text(a, MAX_ADDRESS);
        }
        if let Some(l) = &mut c.latency {
            l.received = l.received.min(l.sent);
        }
    }
}

/// Cuts an SNMP poll to the limits [`validate_report`] enforces.
pub fn sanitize_snmp_poll(poll: &mut SnmpPoll) {
    poll.interfaces.truncate(MAX_SNMP_INTERFACES);
    if let Some(p) = &mut poll.printer {
        p.markers.truncate(MAX_MARKERS);
    }
    let mut texts: Vec<&mut String> = vec![
        &mut poll.target,
        &mut poll.label,
        &mut poll.room,
        &mut poll.profile,
        &mut poll.vendor,
        &mut poll.error,
    ];
    texts.extend(poll.serial.as_mut());
    if let Some(s) = &mut poll.system {
        texts.extend([&mut s.descr, &mut s.object_id, &mut s.name, &mut s.location]);
    }
    for t in texts {
        truncate_text(t, MAX_TEXT);
    }
    for x in &mut poll.interfaces {
        for t in [&mut x.name, &mut x.alias, &mut x.descr] {
            truncate_text(t, MAX_IF_TEXT);
        }
    }
}

fn validate_usage(at: &Path<'_>, list: &[UsageInterval]) -> Result<(), ValidationError> {
    count(|| format!("{at}"), list.len(), MAX_INTERVALS)?;
    for (i, u) in list.iter().enumerate() {
        let len = u.end_ms.checked_sub(u.start_ms);
        if !len.is_some_and(|l| (0..=MAX_INTERVAL_MS).contains(&l)) {
            return Err(ValidationError::Inconsistent {
                field: format!("{at}[{i}]"),
                reason: format!(
                    "interval {}..{} must not be negative or longer than 26 h",
                    u.start_ms, u.end_ms
                ),
            });
        }
        check_day(|| format!("{at}[{i}].local_day"), u.local_day, u.start_ms, u.end_ms)?;
    }
    Ok(())
}

fn interval_ok(u: &UsageInterval) -> bool {
    u.end_ms.checked_sub(u.start_ms).is_some_and(|l| (0..=MAX_INTERVAL_MS).contains(&l))
        && day_agrees(u.local_day, u.start_ms, u.end_ms)
}

// Field paths are built only when a check fails: validation runs on every report the collector
// receives, and formatting a path per field was a measurable share of ingest CPU.

fn validate_host_info(at: &Path<'_>, info: &HostInfo) -> Result<(), ValidationError> {
    text(|| format!("{at}.hostname"), &info.hostname, MAX_TEXT)?;
    text(|| format!("{at}.kernel"), &info.kernel, MAX_TEXT)?;
    let os = &info.os;
    for (name, value) in [
        ("id", &os.id),
        ("name", &os.name),
        ("version", &os.version),
        ("pretty_name", &os.pretty_name),
        ("edition", &os.edition),
    ] {
        text(|| format!("{at}.os.{name}"), value, MAX_TEXT)?;
    }
    count(|| format!("{at}.os.release_fields"), os.release_fields.len(), MAX_OS_FIELDS)?;
    for (i, (k, v)) in os.release_fields.iter().enumerate() {
        text(|| format!("{at}.os.release_fields[{i}].key"), k, MAX_TEXT)?;
        text(|| format!("{at}.os.release_fields[{i}].value"), v, MAX_TEXT)?;
    }
    for (name, value) in
        [("vendor", &info.dmi.vendor), ("product", &info.dmi.product), ("serial", &info.dmi.serial)]
    {
        if let Some(v) = value {
            text(|| format!("{at}.dmi.{name}"), v, MAX_TEXT)?;
        }
    }
    count(|| format!("{at}.interfaces"), info.interfaces.len(), MAX_INTERFACES)?;
    for (i, nic) in info.interfaces.iter().enumerate() {
        text(|| format!("{at}.interfaces[{i}].name"), &nic.name, MAX_TEXT)?;
    }
    Ok(())
}

fn validate_host_metrics(at: &Path<'_>, m: &HostMetrics) -> Result<(), ValidationError> {
    if !m.cpu_percent.is_finite() {
        return Err(ValidationError::NotFinite { field: format!("{at}.cpu_percent") });
    }
    count(|| format!("{at}.filesystems"), m.filesystems.len(), MAX_FILESYSTEMS)?;
    for (i, fs) in m.filesystems.iter().enumerate() {
        text(|| format!("{at}.filesystems[{i}].mount"), &fs.mount, MAX_TEXT)?;
        text(|| format!("{at}.filesystems[{i}].fs_type"), &fs.fs_type, MAX_TEXT)?;
    }
    count(|| format!("{at}.interfaces"), m.interfaces.len(), MAX_INTERFACES)?;
    for (i, nic) in m.interfaces.iter().enumerate() {
        text(|| format!("{at}.interfaces[{i}].name"), &nic.name, MAX_TEXT)?;
    }
    Ok(())
}

/// Brings a report within every limit: truncates text (at a character boundary), drops list
/// elements beyond the limits and replaces non-finite numbers by 0. Agents call it before a
/// report is stored for sending. A report with `seq == 0` stays invalid: that is a caller bug.
pub fn sanitize_report(report: &mut Report) {
    report.samples.truncate(MAX_SAMPLES);
    // Samples past the per-kind limits go (the agent never batches more).
    let (mut polls, mut runs) = (0, 0);
    // So do polls and runs whose local day contradicts their time (the agent's clock moved
    // between the two readings): the collector would refuse the whole report for them.
    report.samples.retain(|s| match s {
        Sample::Snmp(p) => {
            polls += 1;
            polls <= MAX_SNMP_POLLS && day_agrees(p.local_day, p.polled_at_ms, p.polled_at_ms)
        }
        Sample::Connectivity(r) => {
            runs += 1;
            runs <= MAX_CONNECTIVITY_RUNS && day_agrees(r.local_day, r.started_at_ms, r.started_at_ms)
        }
        _ => true,
    });
    for sample in &mut report.samples {
        match sample {
            Sample::HostInfo(info) => {
                for s in [
                    &mut info.hostname,
                    &mut info.kernel,
                    &mut info.os.id,
                    &mut info.os.name,
                    &mut info.os.version,
                    &mut info.os.pretty_name,
                    &mut info.os.edition,
                ] {
                    truncate_text(s, MAX_TEXT);
                }
                info.os.release_fields.truncate(MAX_OS_FIELDS);
                for (k, v) in &mut info.os.release_fields {
                    truncate_text(k, MAX_TEXT);
                    truncate_text(v, MAX_TEXT);
                }
                for s in
                    [&mut info.dmi.vendor, &mut info.dmi.product, &mut info.dmi.serial].into_iter().flatten()
                {
                    truncate_text(s, MAX_TEXT);
                }
                info.interfaces.truncate(MAX_INTERFACES);
                for nic in &mut info.interfaces {
                    truncate_text(&mut nic.name, MAX_TEXT);
                }
            }
            Sample::SpoolLoss(_) => {}
            Sample::Power(p) => truncate_text(&mut p.boot_id, MAX_VERSION),
            Sample::Inventory(inv) => sanitize_inventory(inv),
            Sample::Snmp(poll) => sanitize_snmp_poll(poll),
            Sample::Connectivity(run) => sanitize_connectivity(run),
            Sample::Usage(list) => {
                list.retain(interval_ok);
                list.truncate(MAX_INTERVALS);
            }
            Sample::HostMetrics(m) => {
                if !m.cpu_percent.is_finite() {
                    m.cpu_percent = 0.0;
                }
                m.filesystems.truncate(MAX_FILESYSTEMS);
                for fs in &mut m.filesystems {
                    truncate_text(&mut fs.mount, MAX_TEXT);
                    truncate_text(&mut fs.fs_type, MAX_TEXT);
                }
                m.interfaces.truncate(MAX_INTERFACES);
                for nic in &mut m.interfaces {
                    truncate_text(&mut nic.name, MAX_TEXT);
                }
            }
        }
    }
}

/// Truncates `s` to at most `max` bytes without splitting a character.
pub fn truncate_text(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn text(field: impl FnOnce() -> String, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() > max {
        return Err(ValidationError::TooLong { field: field(), len: value.len(), max });
    }
    Ok(())
}

fn count(field: impl FnOnce() -> String, n: usize, max: usize) -> Result<(), ValidationError> {
    if n > max {
        return Err(ValidationError::TooMany { field: field(), count: n, max });
    }
    Ok(())
}

/// `name[index]`, formatted lazily.
struct Path<'a>(&'a &'a str, usize);

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{FsUsage, IfTraffic};

    fn report_with(samples: Vec<Sample>) -> Report {
        Report { seq: 1, agent_time_ms: 1_700_000_000_000, samples }
    }

    #[test]
    fn school_ids() {
        for ok in ["74-0012", "a", "SCHOOL_1.b"] {
            assert_eq!(validate_school_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "74 0012", "школа", "a/b", &"x".repeat(65)] {
            assert!(validate_school_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_days_must_agree_with_the_times() {
        let noon = 20_000 * DAY_MS + 12 * 3_600_000;
        // Noon UTC is the same day everywhere from −12 h to +11 h, the next day at +12 h or more.
        assert!(day_agrees(20_000, noon, noon + 3_600_000));
        assert!(day_agrees(20_001, noon, noon));
        assert!(day_agrees(19_999, noon - 13 * 3_600_000, noon - 12 * 3_600_000));
        assert!(!day_agrees(20_002, noon, noon));
        assert!(!day_agrees(19_998, noon, noon));
        assert!(!day_agrees(i32::MAX, noon, noon) && !day_agrees(i32::MIN, noon, noon));
        let u = UsageInterval {
            subject: crate::usage::Subject::Host,
            start_ms: noon,
            end_ms: noon + 1000,
            state: crate::usage::UsageState::InUse,
            user_class: crate::usage::UserClass::Teacher,
            user_key: None,
            local_day: 20_005,
        };
        let err = validate_report(&report_with(vec![Sample::Usage(vec![u.clone()])])).unwrap_err();
        assert!(err.to_string().starts_with("samples[0][0].local_day: local_day 20005"), "{err}");
        // The sanitiser drops what validation refuses.
        let mut r =
            report_with(vec![Sample::Usage(vec![u.clone(), UsageInterval { local_day: 20_000, ..u }])]);
        sanitize_report(&mut r);
        assert_eq!(validate_report(&r), Ok(()));
        let Sample::Usage(list) = &r.samples[0] else { unreachable!() };
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn sequence_window() {
        assert!(seq_in_window(SEQ_WINDOW, 0) && !seq_in_window(SEQ_WINDOW + 1, 0));
        assert!(seq_in_window(u64::MAX, u64::MAX - 1) && !seq_in_window(u64::MAX, 5));
    }

    #[test]
    fn seq_zero_is_refused() {
        let mut r = report_with(vec![]);
        r.seq = 0;
        assert_eq!(validate_report(&r), Err(ValidationError::SeqZero));
    }

    #[test]
    fn error_names_the_field_path() {
        let m = HostMetrics {
            interfaces: vec![IfTraffic {
                name: "x".repeat(MAX_TEXT + 1),
                rx_bytes: 0,
                tx_bytes: 0,
                rx_rate: None,
                tx_rate: None,
            }],
            ..HostMetrics::default()
        };
        let r = report_with(vec![Sample::HostInfo(HostInfo::default()), Sample::HostMetrics(m)]);
        let err = validate_report(&r).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("samples[1].interfaces[0].name is {} bytes long, the limit is {MAX_TEXT}", MAX_TEXT + 1)
        );
    }

    #[test]
    fn sanitize_fixes_what_validate_refuses() {
        let m = HostMetrics {
            cpu_percent: f32::NAN,
            filesystems: vec![
                FsUsage {
                    mount: "é".repeat(200),
                    fs_type: "ext4".into(),
                    total: 1,
                    available: 1,
                };
                MAX_FILESYSTEMS + 5
            ],
            ..HostMetrics::default()
        };
        let mut r = report_with(vec![Sample::HostMetrics(m); MAX_SAMPLES + 1]);
        assert!(validate_report(&r).is_err());
        sanitize_report(&mut r);
        assert_eq!(validate_report(&r), Ok(()));
        let Sample::HostMetrics(m) = &r.samples[0] else { unreachable!() };
        assert_eq!(m.cpu_percent, 0.0);
        assert_eq!(m.filesystems[0].mount.chars().count(), MAX_TEXT / 2);
    }
}
