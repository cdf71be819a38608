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
use crate::policy::{ConfigSource, LastKnownGood, PolicyError};
use crate::sources::host::HostSource;
use crate::status::{self, Snapshot};
use crate::uplink::{LinkState, PolicyAnswer, PolicyLink, Uplink, UplinkParams, link_state};
use crate::usage::Tracker;
use crate::{blocking, identity, tls};
use parta_protocol::inventory::Inventory;
use parta_protocol::policy::{AgentPolicy, Decision, PolicyOffer};

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

/// Runs until SIGTERM/SIGINT (returns `Ok`) or a permanent failure. `config` is `source` with
/// `policy` (the last-known-good policy, if it applied at start) applied; offers of the
/// collector are applied over `source` while running.
pub async fn run(
    mut config: AgentConfig,
    uplink: UplinkSettings,
    source: ConfigSource,
    policy: Option<LastKnownGood>,
) -> anyhow::Result<()> {
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
    let mut usage_state = observer::StateFile::new(observer::state_path(&config.state_dir));
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
    let (update_link, update_task) =
        blocking::run(|| crate::update::start(&config.state_dir, crate::version::release()));
    tokio::spawn(update_task.run());
    let mut policies = AgentPolicy::new(policy.as_ref().map(LastKnownGood::id));
    let (answers_tx, answers_rx) = watch::channel(PolicyAnswer { running: policies.running(), status: None });
    let (offers_tx, mut offers_rx) = watch::channel(None);
    let mut offers_open = true;
    let params = UplinkParams {
        settings: uplink.clone(),
        identity: Arc::clone(&device),
        hello: Hello {
            agent_version: crate::version::text().to_owned(),
            kind: config.kind,
            running_policy: None,
        },
        policy: PolicyLink { offers: offers_tx, answers: answers_rx },
        updates: update_link,
    };
    let backoff = Backoff::new(Duration::from_secs(1), config.reconnect_max);
    let uplink_task = Uplink::new(params, Arc::clone(&outbox), Arc::clone(&wake), Arc::clone(&link), backoff);
    let mut uplink_task = tokio::spawn(uplink_task.run(stop_rx));
    let (snmp_tx, mut snmp_rx) = mpsc::channel(2 * parta_protocol::validate::MAX_SNMP_POLLS);
    let (espd_tx, mut espd_rx) = mpsc::channel(2);
    let mut roles = Roles { snmp: None, espd: None, snmp_tx, espd_tx };
    roles.start_snmp(&config, &uplink)?;
    roles.start_probe(&config, &device)?;

    // The first sample needs a CPU reading at least 200 ms after the one HostSource::new took.
    let first = Instant::now() + config.interval.min(Duration::from_secs(1));
    let mut ticker = tokio::time::interval_at(first, config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    if let Some(p) = &policy {
        tracing::info!(policy = %p.id().short(), "running the last policy the collector sent");
    }
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
                blocking::run(|| usage_state.save(tracker.state()));
            }
            _ = ticker.tick() => blocking::run(|| {
                let samples = take_samples(&mut host, &mut observer, &mut last_info, &mut last_inventory);
                let now = now_ms();
                {
                    let mut ob = lock(&outbox);
                    spool(&mut ob, &mut tracker, &mut usage_state, now, samples, &mut report_log);
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
            }),
            changed = offers_rx.changed(), if offers_open => {
                if changed.is_err() {
                    offers_open = false;
                    continue;
                }
                let Some(offer) = offers_rx.borrow_and_update().clone() else { continue };
                let status = match policies.offer(&offer) {
                    Decision::Answer(s) => s,
                    Decision::Apply => match prepare(&source, &offer, &config, &device).await {
                        Err(e) => {
                            tracing::warn!(policy = %offer.id.short(), key = %e.key, reason = %e.reason,
                                "refused the collector's policy; the previous one stays in force");
                            policies.refused(offer.id, &e.key, &e.reason)
                        }
                        Ok(new) => {
                            let old = std::mem::replace(&mut config, new);
                            let mut live = Live {
                                observer: &mut observer, tracker: &mut tracker, ticker: &mut ticker,
                                usage_ticker: &mut usage_ticker, roles: &mut roles, outbox: &outbox,
                            };
                            let changed = live.reconfigure(&old, &config, &uplink, &device, device_id);
                            tracing::info!(policy = %offer.id.short(), changed = %changed.join(", "),
                                "applied the collector's policy");
                            policies.applied(offer.id)
                        }
                    },
                };
                answers_tx.send_replace(PolicyAnswer { running: policies.running(), status: Some(status) });
            }
            poll = snmp_rx.recv() => {
                let Some(poll) = poll else { continue };
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
                        blocking::run(|| spool(&mut lock(&outbox), &mut tracker, &mut usage_state, now_ms(), full, &mut report_log));
                        bytes = 0;
                    }
                    bytes += n;
                    samples.push(s);
                }
                blocking::run(|| spool(&mut lock(&outbox), &mut tracker, &mut usage_state, now_ms(), samples, &mut report_log));
                wake.notify_one();
            }
            run = espd_rx.recv() => {
                let Some(run) = run else { continue };
                last_espd = Some(crate::status::EspdRound::of(&run));
                blocking::run(|| {
                    write_status(&config.state_dir, &device, &uplink, &outbox, &link, last_espd.as_ref());
                    let samples = vec![Sample::Connectivity(Box::new(run))];
                    spool(&mut lock(&outbox), &mut tracker, &mut usage_state, now_ms(), samples, &mut report_log);
                });
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
    blocking::run(|| {
        spool(&mut lock(&outbox), &mut tracker, &mut usage_state, now_ms(), Vec::new(), &mut report_log)
    });
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
    roles.stop();
    let _ = tokio::time::timeout(Duration::from_secs(2), uplink_task).await;
    lock(&outbox).close();
    write_status(&config.state_dir, &device, &uplink, &outbox, &link, last_espd.as_ref());
    Ok(())
}

/// The roles that run on threads of their own — the SNMP poller and the ЕСПД probe — each with
/// its own stop signal, so that a policy can restart one with new settings. Their results
/// arrive on channels that live as long as the agent.
struct Roles {
    snmp: Option<watch::Sender<bool>>,
    espd: Option<watch::Sender<bool>>,
    snmp_tx: mpsc::Sender<parta_protocol::snmp::SnmpPoll>,
    espd_tx: mpsc::Sender<parta_protocol::espd::ConnectivityRun>,
}

impl Roles {
    /// (Re)starts the SNMP poller with `config`'s targets (none: it stays stopped).
    fn start_snmp(&mut self, config: &AgentConfig, uplink: &UplinkSettings) -> anyhow::Result<()> {
        if let Some(stop) = self.snmp.take() {
            let _ = stop.send(true);
        }
        if config.snmp.targets.is_empty() {
            return Ok(());
        }
        tracing::info!(
            targets = config.snmp.targets.len(),
            concurrency = config.snmp.concurrency,
            "SNMP poller starting"
        );
        let settings = crate::snmp::poller::PollerSettings::new(&config.snmp, school_of(config, uplink))?;
        // A task of the agent's runtime: the runner's file work runs in `blocking`, so polls in
        // flight (timeouts, measured rates) are not stalled by fsyncs.
        let targets = config.snmp.targets.clone();
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(crate::snmp::poller::run(targets, settings, self.snmp_tx.clone(), stop));
        self.snmp = Some(stop_tx);
        Ok(())
    }

    /// (Re)starts the ЕСПД probe role when `[espd] enabled`.
    fn start_probe(
        &mut self,
        config: &AgentConfig,
        device: &Arc<crate::credential::Identity>,
    ) -> anyhow::Result<()> {
        if let Some(stop) = self.espd.take() {
            let _ = stop.send(true);
        }
        if !config.espd.enabled {
            return Ok(());
        }
        let settings = config.espd.clone();
        let tls = settings.tls_config()?;
        let speedtest = crate::espd::speedtest_target(config, Some(Arc::clone(device)));
        tracing::info!(
            every_s = settings.every.as_secs(),
            must_reach = settings.must_reach.len(),
            must_block = settings.must_block.len(),
            "ЕСПД probe starting"
        );
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(crate::espd::probe_task(settings, tls, speedtest, self.espd_tx.clone(), stop));
        self.espd = Some(stop_tx);
        Ok(())
    }

    fn stop(&mut self) {
        for stop in [self.snmp.take(), self.espd.take()].into_iter().flatten() {
            let _ = stop.send(true);
        }
    }
}

/// The school that names the polled devices' ids; the collector derives them again from its
/// own record of the school, so an agent's configured school cannot place gear elsewhere.
fn school_of(config: &AgentConfig, uplink: &UplinkSettings) -> String {
    crate::credential::load(&config.state_dir)
        .ok()
        .flatten()
        .map(|c| c.school)
        .or_else(|| uplink.school.clone())
        .unwrap_or_default()
}

/// The configuration an offered policy makes, judged by what only the device can judge (the
/// files it names are readable, the SNMP settings usable) and saved as last-known-good; the
/// error names the key at fault. Nothing changes when it fails.
async fn prepare(
    source: &ConfigSource,
    offer: &PolicyOffer,
    current: &AgentConfig,
    device: &Arc<crate::credential::Identity>,
) -> Result<AgentConfig, PolicyError> {
    let new = source.resolve(Some(&offer.document))?;
    if new.espd.enabled
        && new.espd != current.espd
        && let Err(e) = new.espd.tls_config()
    {
        let text = format!("{e:#}");
        let key = match &new.espd.ca_file {
            Some(p) if text.contains(&p.display().to_string()) => "espd.ca_file",
            _ => "espd.ca_bundle",
        };
        return Err(PolicyError { key: key.into(), reason: text });
    }
    if !new.snmp.targets.is_empty() {
        let school = device.credential().map(|c| c.school).unwrap_or_default();
        crate::snmp::poller::PollerSettings::new(&new.snmp, school)
            .map_err(|e| PolicyError { key: "snmp".into(), reason: format!("{e:#}") })?;
    }
    let lkg = LastKnownGood::of(offer);
    let dir = new.state_dir.clone();
    let saved = tokio::task::spawn_blocking(move || lkg.store(&dir)).await;
    match saved {
        Ok(Ok(())) => Ok(new),
        Ok(Err(e)) => Err(PolicyError {
            key: String::new(),
            reason: format!(
                "cannot save it as the last-known-good policy in {}: {e}",
                new.state_dir.display()
            ),
        }),
        Err(e) => Err(PolicyError { key: String::new(), reason: format!("cannot save it: {e}") }),
    }
}

/// What a new configuration changes in a running agent.
struct Live<'a> {
    observer: &'a mut Observer,
    tracker: &'a mut Tracker,
    ticker: &'a mut tokio::time::Interval,
    usage_ticker: &'a mut tokio::time::Interval,
    roles: &'a mut Roles,
    outbox: &'a Mutex<Outbox>,
}

impl Live<'_> {
    /// Applies what differs between `old` and `new`; the names of what changed. Settings read
    /// only at start (`reconnect_max`, `log_format`) take effect at the next start.
    fn reconfigure(
        &mut self,
        old: &AgentConfig,
        new: &AgentConfig,
        uplink: &UplinkSettings,
        device: &Arc<crate::credential::Identity>,
        device_id: parta_protocol::DeviceId,
    ) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if new.interval != old.interval {
            *self.ticker = tokio::time::interval_at(Instant::now() + new.interval, new.interval);
            self.ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            changed.push("interval");
        }
        if new.usage.poll != old.usage.poll {
            *self.usage_ticker = tokio::time::interval(new.usage.poll);
            self.usage_ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            changed.push("usage_poll");
        }
        if new.usage.idle_after != old.usage.idle_after || new.usage.flush != old.usage.flush {
            self.tracker.set_config(observer::usage_config(new));
            changed.push("usage");
        }
        if !new.usage.same_sources(&old.usage) {
            *self.observer = Observer::new(new, device_id);
            changed.push("inventory");
        }
        if new.spool != old.spool {
            lock(self.outbox).set_spool_config(new.spool);
            changed.push("spool");
        }
        if new.log.level != old.log.level {
            if let Err(e) = parta_common::logging::set_filter(&new.log.level) {
                tracing::warn!(error = %e, "cannot change the log level now; it applies at the next start");
            }
            changed.push("log_level");
        }
        if new.snmp != old.snmp {
            if let Err(e) = self.roles.start_snmp(new, uplink) {
                tracing::error!(error = %format!("{e:#}"), "cannot restart the SNMP poller");
            }
            changed.push("snmp");
        }
        if new.espd != old.espd {
            if let Err(e) = self.roles.start_probe(new, device) {
                tracing::error!(error = %format!("{e:#}"), "cannot restart the ЕСПД probe");
            }
            changed.push("espd");
        }
        changed
    }
}

/// Spools a report of `samples` plus what the usage tracker has closed, keeping the tracker's
/// state file consistent with the spool (see [`crate::usage`], "Exactly once").
fn spool(
    ob: &mut Outbox,
    tracker: &mut Tracker,
    state: &mut observer::StateFile,
    now: i64,
    mut samples: Vec<Sample>,
    report_log: &mut Option<std::fs::File>,
) {
    let carries_usage = tracker.has_pending();
    if carries_usage {
        let (intervals, events) =
            tracker.take_for_report(ob.next_seq(), USAGE_PER_REPORT, POWER_EVENTS_PER_REPORT);
        state.save(tracker.state());
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
                state.save(tracker.state());
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
        version: crate::version::text().to_owned(),
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
