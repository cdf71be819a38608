//! The agent service: owns timing, the outbox and the uplink. Every interval it asks the
//! sources for a sample, appends the report to the outbox and wakes the uplink.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use parta_protocol::sample::HostInfo;
use parta_protocol::{Credentials, DeviceId, Hello, Sample};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{AgentConfig, UplinkSettings};
use crate::outbox::{self, Outbox, lock};
use crate::sources::host::HostSource;
use crate::uplink::{Uplink, UplinkParams};
use crate::{identity, tls};

/// How long a stopping agent waits for the uplink to deliver what is queued.
const DRAIN_ON_STOP: Duration = Duration::from_secs(2);

/// Runs until SIGTERM/SIGINT (returns `Ok`) or a permanent failure.
pub async fn run(config: AgentConfig, uplink: UplinkSettings) -> anyhow::Result<()> {
    let client_config = tls::client_config(&uplink.ca_cert)?;
    parta_common::fsutil::create_private_dir(&config.state_dir)
        .with_context(|| format!("cannot create state directory {}", config.state_dir.display()))?;
    let device_id = identity::load_or_create(&config.state_dir)?;
    let outbox = Arc::new(Mutex::new(Outbox::open(&config.state_dir, outbox::DEFAULT_CAPACITY)?));
    let mut host = HostSource::new(config.paths.clone())?;
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);

    tracing::info!(%device_id, school = %uplink.school, collector = %uplink.collector.to_socket_string(),
        interval = %humantime::format_duration(config.interval), "agent starting");
    let params = UplinkParams {
        collector: uplink.collector.clone(),
        server_name: uplink.server_name.clone(),
        client_config,
        hello: hello(device_id, &config, &uplink),
    };
    let mut uplink_task =
        tokio::spawn(Uplink::new(params, Arc::clone(&outbox), Arc::clone(&wake)).run(stop_rx));

    // The first sample needs a CPU reading at least 200 ms after the one HostSource::new took.
    let first = Instant::now() + config.interval.min(Duration::from_secs(1));
    let mut ticker = tokio::time::interval_at(first, config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_info: Option<HostInfo> = None;
    let mut stop = std::pin::pin!(parta_common::shutdown::signal());
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let samples = take_samples(&mut host, &mut last_info);
                let seq = lock(&outbox).append(now_ms(), samples)?;
                tracing::debug!(seq, "report queued");
                wake.notify_one();
            }
            () = &mut stop => break,
            result = &mut uplink_task => {
                // The uplink only ends by itself on a permanent rejection.
                return match result {
                    Ok(r) => r.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::anyhow!("uplink task failed: {e}")),
                };
            }
        }
    }
    tracing::info!(queued = lock(&outbox).depth(), "stopping");
    let deadline = Instant::now() + DRAIN_ON_STOP;
    while lock(&outbox).depth() > 0 && Instant::now() < deadline && !uplink_task.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), uplink_task).await;
    Ok(())
}

/// Host metrics every time; host identity on the first report and whenever it changes.
fn take_samples(host: &mut HostSource, last_info: &mut Option<HostInfo>) -> Vec<Sample> {
    let metrics = host.metrics(std::time::Instant::now());
    let info = host.info();
    let mut samples = Vec::with_capacity(2);
    if last_info.as_ref() != Some(&info) {
        samples.push(Sample::HostInfo(info.clone()));
        *last_info = Some(info);
    }
    samples.push(Sample::HostMetrics(metrics));
    samples
}

fn hello(device_id: DeviceId, config: &AgentConfig, uplink: &UplinkSettings) -> Hello {
    Hello {
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        device_id,
        school_id: uplink.school.clone(),
        kind: config.kind,
        credentials: Credentials::EnrollToken(uplink.enroll_token.clone()),
    }
}

/// Milliseconds since the Unix epoch by the wall clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
