//! The agent service: owns timing, the outbox and the uplink. Every interval it asks the
//! sources for a sample, spools the report, wakes the uplink, upkeeps the spool and writes the
//! status snapshot.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use parta_protocol::delivery::DeliveryConfig;
use parta_protocol::sample::HostInfo;
use parta_protocol::{Hello, Sample};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::backoff::Backoff;
use crate::config::{AgentConfig, UplinkSettings};
use crate::observer::{self, Observer};
use crate::outbox::Outbox;
use crate::outbox::lock;
use crate::sources::host::HostSource;
use crate::status::{self, Snapshot};
use crate::uplink::{LinkState, Uplink, UplinkParams, link_state};
use crate::usage::Tracker;
use crate::{identity, tls};
use parta_protocol::inventory::Inventory;

/// How long a stopping agent, while connected, waits for the collector to acknowledge what is
/// spooled (everything stays in the spool anyway; this spares resends and leaves the spool empty
/// after a clean stop).
const DRAIN_ON_STOP: Duration = Duration::from_secs(3);
/// Usage intervals per report: 8 `Usage` samples of the protocol's largest size.
const USAGE_PER_REPORT: usize = 8 * parta_protocol::validate::MAX_INTERVALS;
/// Power events per report (each is a sample; the protocol allows 64 samples).
const POWER_EVENTS_PER_REPORT: usize = 16;
/// Status snapshots are written at most this often.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// After this long without acknowledgements while reports are in flight, the agent warns.
const ACK_WAIT_WARN: Duration = Duration::from_secs(120);

/// Runs until SIGTERM/SIGINT (returns `Ok`) or a permanent failure.
pub async fn run(config: AgentConfig, uplink: UplinkSettings) -> anyhow::Result<()> {
    // The CA file must be usable before anything starts.
    tls::client_config(tls::Trust::CaFile(&uplink.ca_cert), tls::Present::Nothing)?;
    parta_common::fsutil::create_private_dir(&config.state_dir)
        .with_context(|| format!("cannot create state directory {}", config.state_dir.display()))?;
    let device_id = identity::load_or_create(&config.state_dir)?;
    let device = Arc::new(crate::credential::Identity::load(&config.state_dir)?);
    let outbox = Outbox::open(&config.state_dir.join("spool"), config.spool, DeliveryConfig::default())?;
    let stats = outbox.stats();
    let outbox = Arc::new(Mutex::new(outbox));
    let mut host = HostSource::new()?;
    let mut observer = Observer::new(&config, device_id);
    let usage_state = observer::state_path(&config.state_dir);
    let mut tracker = observer::start_tracker(&config, lock(&outbox).next_seq(), now_ms());
    let wake = Arc::new(Notify::new());
    let link = Arc::new(Mutex::new(LinkState::default()));
    let (stop_tx, stop_rx) = watch::channel(false);

    let credential = device.credential();
    tracing::info!(%device_id, enrolled = credential.is_some(),
        school = %credential.as_ref().map(|c| c.school.clone()).or(uplink.school.clone()).unwrap_or_default(),
        collector = %collectors_text(&uplink),
        interval = %humantime::format_duration(config.interval), spool_pending = stats.pending,
        next_seq = stats.next_seq, "agent starting");
    let params = UplinkParams {
        settings: uplink.clone(),
        identity: Arc::clone(&device),
        hello: Hello {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            kind: config.kind,
            running_policy: None,
        },
    };
    let backoff = Backoff::new(Duration::from_secs(1), config.reconnect_max);
    let uplink_task = Uplink::new(params, Arc::clone(&outbox), Arc::clone(&wake), Arc::clone(&link), backoff);
    let mut uplink_task = tokio::spawn(uplink_task.run(stop_rx));
    let (mut snmp_rx, mut snmp_on) = start_snmp(&config, &uplink, stop_tx.subscribe())?;
    let (mut espd_rx, mut espd_on) = start_probe(&config, Arc::clone(&device), stop_tx.subscribe())?;

    // The first sample needs a CPU reading at least 200 ms after the one HostSource::new took.
    let first = Instant::now() + config.interval.min(Duration::from_secs(1));
    let mut ticker = tokio::time::interval_at(first, config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_info: Option<HostInfo> = None;
    let mut last_inventory: Option<Inventory> = None;
    let mut status_at: Option<Instant> = None;
    let mut warned_wait = false;
    let mut last_espd: Option<crate::status::EspdRound> = None;
    let mut report_log = match &config.report_log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the report log {}", path.display()))?,
        ),
        None => None,
    };
    let mut usage_ticker = tokio::time::interval(config.usage.poll);
    usage_ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stop = std::pin::pin!(parta_common::shutdown::signal());
    loop {
        tokio::select! {
            _ = usage_ticker.tick() => {
                let obs = observer.observe().await;
                tracker.observe(now_ms(), obs.sessions.as_deref(), &obs.displays);
                observer::save_state(&usage_state, tracker.state());
            }
            _ = ticker.tick() => {
                let samples = take_samples(&mut host, &mut observer, &mut last_info, &mut last_inventory);
                let now = now_ms();
                {
                    let mut ob = lock(&outbox);
                    spool(&mut ob, &mut tracker, &usage_state, now, samples, &mut report_log);
                    ob.maintain(now);
                    let waiting = ob.waiting_for_ack(std::time::Instant::now());
                    match waiting {
                        Some(w) if w >= ACK_WAIT_WARN && !warned_wait => {
                            warned_wait = true;
                            tracing::warn!(waiting_s = w.as_secs(), in_flight = ob.in_flight(),
                                "the collector has not acknowledged reports for a while; it may be unable to store them");
                        }
                        None => warned_wait = false,
                        _ => {}
                    }
                }
                wake.notify_one();
                if status_at.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
                    status_at = Some(Instant::now());
                    write_status(&config.state_dir, &device, &uplink, &outbox, &link, last_espd.as_ref());
                }
            }
            poll = snmp_rx.recv(), if snmp_on => {
                let Some(poll) = poll else {
                    snmp_on = false;
                    continue;
                };
                // Polls that finished together travel together, as many as fit a report.
                let first = Sample::Snmp(Box::new(poll));
                let mut bytes = parta_protocol::codec::sample_len(&first);
                let mut samples = vec![first];
                while let Ok(p) = snmp_rx.try_recv() {
                    let s = Sample::Snmp(Box::new(p));
                    let n = parta_protocol::codec::sample_len(&s);
                    if samples.len() >= parta_protocol::validate::MAX_SNMP_POLLS
                        || bytes + n > parta_protocol::validate::SNMP_REPORT_BYTES
                    {
                        let full = std::mem::take(&mut samples);
                        spool(&mut lock(&outbox), &mut tracker, &usage_state, now_ms(), full, &mut report_log);
                        bytes = 0;
                    }
                    bytes += n;
                    samples.push(s);
                }
                spool(&mut lock(&outbox), &mut tracker, &usage_state, now_ms(), samples, &mut report_log);
                wake.notify_one();
            }
            run = espd_rx.recv(), if espd_on => {
                let Some(run) = run else {
                    espd_on = false;
                    continue;
                };
                last_espd = Some(crate::status::EspdRound::of(&run));
                write_status(&config.state_dir, &device, &uplink, &outbox, &link, last_espd.as_ref());
                let samples = vec![Sample::Connectivity(Box::new(run))];
                spool(&mut lock(&outbox), &mut tracker, &usage_state, now_ms(), samples, &mut report_log);
                wake.notify_one();
            }
            () = &mut stop => break,
            result = &mut uplink_task => {
                lock(&outbox).close();
                write_status(&config.state_dir, &device, &uplink, &outbox, &link, last_espd.as_ref());
                // The uplink only ends by itself on a permanent rejection.
                return match result {
                    Ok(r) => r.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::anyhow!("uplink task failed: {e}")),
                };
            }
        }
    }
    tracker.stop(now_ms());
    spool(&mut lock(&outbox), &mut tracker, &usage_state, now_ms(), Vec::new(), &mut report_log);
    wake.notify_one();
    tracing::info!(pending = lock(&outbox).pending(), "stopping");
    let deadline = Instant::now() + DRAIN_ON_STOP;
    while lock(&outbox).pending() > 0
        && link_state(&link).connected_since.is_some()
        && Instant::now() < deadline
        && !uplink_task.is_finished()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), uplink_task).await;
    lock(&outbox).close();
    write_status(&config.state_dir, &device, &uplink, &outbox, &link, last_espd.as_ref());
    Ok(())
}

/// Starts the SNMP poller when targets are configured; its polls arrive on the receiver.
fn start_snmp(
    config: &AgentConfig,
    uplink: &UplinkSettings,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(mpsc::Receiver<parta_protocol::snmp::SnmpPoll>, bool)> {
    let (tx, rx) = mpsc::channel(2 * parta_protocol::validate::MAX_SNMP_POLLS);
    if config.snmp.targets.is_empty() {
        return Ok((rx, false));
    }
    tracing::info!(
        targets = config.snmp.targets.len(),
        concurrency = config.snmp.concurrency,
        "SNMP poller starting"
    );
    // The school names the polled devices' ids; the collector derives them again from its own
    // record of the school, so an agent's configured school cannot place gear elsewhere.
    let school = crate::credential::load(&config.state_dir)
        .ok()
        .flatten()
        .map(|c| c.school)
        .or_else(|| uplink.school.clone())
        .unwrap_or_default();
    let settings = crate::snmp::poller::PollerSettings::new(&config.snmp, school)?;
    // The poller gets a thread of its own: the runner's thread blocks on spool and state-file
    // fsyncs, which must not stall polls in flight (timeouts, measured rates).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the SNMP poller's runtime")?;
    let targets = config.snmp.targets.clone();
    std::thread::Builder::new()
        .name("snmp-poller".into())
        .spawn(move || runtime.block_on(crate::snmp::poller::run(targets, settings, tx, stop)))
        .context("cannot start the SNMP poller's thread")?;
    Ok((rx, true))
}

/// Starts the ЕСПД probe role when `[espd] enabled`; its runs arrive on the receiver.
fn start_probe(
    config: &AgentConfig,
    device: Arc<crate::credential::Identity>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(mpsc::Receiver<parta_protocol::espd::ConnectivityRun>, bool)> {
    let (tx, rx) = mpsc::channel(2);
    if !config.espd.enabled {
        return Ok((rx, false));
    }
    let settings = config.espd.clone();
    let tls = settings.tls_config()?;
    let speedtest = crate::espd::speedtest_target(config, Some(device));
    tracing::info!(
        every_s = settings.every.as_secs(),
        must_reach = settings.must_reach.len(),
        must_block = settings.must_block.len(),
        "ЕСПД probe starting"
    );
    std::thread::Builder::new()
        .name("espd-probe".into())
        .spawn(move || crate::espd::probe_loop(&settings, tls, speedtest.as_ref(), &tx, &stop))
        .context("cannot start the ЕСПД probe's thread")?;
    Ok((rx, true))
}

/// Spools a report of `samples` plus what the usage tracker has closed, keeping the tracker's
/// state file consistent with the spool (see [`crate::usage`], "Exactly once").
fn spool(
    ob: &mut Outbox,
    tracker: &mut Tracker,
    state_path: &Path,
    now: i64,
    mut samples: Vec<Sample>,
    report_log: &mut Option<std::fs::File>,
) {
    let carries_usage = tracker.has_pending();
    if carries_usage {
        let (intervals, events) =
            tracker.take_for_report(ob.next_seq(), USAGE_PER_REPORT, POWER_EVENTS_PER_REPORT);
        observer::save_state(state_path, tracker.state());
        samples.extend(observer::usage_samples(intervals, events));
    }
    if samples.is_empty() {
        return;
    }
    let logged = report_log.as_ref().map(|_| samples.clone());
    match ob.append(now, samples) {
        Ok(seq) => {
            tracing::debug!(seq, "report spooled");
            if let (Some(log), Some(samples)) = (report_log.as_mut(), logged) {
                log_report(log, seq, now, &samples);
            }
            if carries_usage {
                tracker.spooled();
                observer::save_state(state_path, tracker.state());
            }
        }
        Err(e) => {
            tracker.not_spooled();
            tracing::error!(error = %e, "cannot spool a report");
        }
    }
}

/// Appends `{"seq":…,"agent_time_ms":…,"samples":[…]}` to the diagnostic report log.
fn log_report(log: &mut std::fs::File, seq: u64, agent_time_ms: i64, samples: &[Sample]) {
    use std::io::Write as _;
    let mut line =
        serde_json::json!({ "seq": seq, "agent_time_ms": agent_time_ms, "samples": samples }).to_string();
    line.push('\n');
    // One write per line: `writeln!` would issue several, and a reader could see half a line.
    if let Err(e) = log.write_all(line.as_bytes()) {
        tracing::debug!(error = %e, "cannot write the report log");
    }
}

fn write_status(
    dir: &Path,
    device: &crate::credential::Identity,
    uplink: &UplinkSettings,
    outbox: &Mutex<Outbox>,
    link: &Mutex<LinkState>,
    last_espd: Option<&crate::status::EspdRound>,
) {
    let (in_flight, waiting, counters) = {
        let ob = lock(outbox);
        (ob.in_flight(), ob.waiting_for_ack(std::time::Instant::now()), ob.stats().counters)
    };
    let l = link_state(link).clone();
    let credential = device.credential();
    let snapshot = Snapshot {
        pid: std::process::id(),
        updated_at: status::unix(SystemTime::now()),
        device_id: credential
            .as_ref()
            .map(|c| c.device_id)
            .or_else(|| identity::load(dir))
            .map(|d| d.to_string())
            .unwrap_or_default(),
        school: credential.as_ref().map(|c| c.school.clone()).or(uplink.school.clone()).unwrap_or_default(),
        credential_expires: credential.as_ref().map(|c| c.not_after_ms.div_euclid(1000)),
        collector: collectors_text(uplink),
        connected_since: l.connected_since.map(status::unix),
        last_ack: l.last_ack.map(status::unix),
        last_error: l.last_error.map(|(t, e)| (status::unix(t), e)),
        sessions: l.sessions,
        in_flight,
        waiting_for_ack_s: waiting.map(|w| w.as_secs()),
        spool_counters: counters,
        last_espd: last_espd.cloned(),
    };
    status::write(dir, &snapshot);
}

/// Host metrics every time; host identity and the inventory on the first report and whenever
/// they change.
fn take_samples(
    host: &mut HostSource,
    observer: &mut Observer,
    last_info: &mut Option<HostInfo>,
    last_inventory: &mut Option<Inventory>,
) -> Vec<Sample> {
    // What leaves the device: crate::privacy.
    let privacy = observer.privacy();
    let metrics = privacy.metrics(host.metrics(std::time::Instant::now()));
    let inventory = observer.inventory();
    let info = privacy.host_info(host.info(&inventory));
    let inventory = privacy.inventory(inventory);
    let mut samples = Vec::with_capacity(3);
    if let Some(info) = changed(last_info, info) {
        samples.push(Sample::HostInfo(info));
    }
    samples.push(Sample::HostMetrics(metrics));
    if let Some(inventory) = changed(last_inventory, inventory) {
        samples.push(Sample::Inventory(Box::new(inventory)));
    }
    samples
}

/// `value` if it differs from the last one sent (which it then becomes).
fn changed<T: PartialEq + Clone>(last: &mut Option<T>, value: T) -> Option<T> {
    if last.as_ref() == Some(&value) {
        return None;
    }
    *last = Some(value.clone());
    Some(value)
}

/// The collector addresses, for logs and status.
fn collectors_text(uplink: &UplinkSettings) -> String {
    uplink
        .collectors
        .iter()
        .map(crate::config::CollectorAddr::to_socket_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Milliseconds since the Unix epoch by the wall clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
