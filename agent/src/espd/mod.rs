//! ЕСПД connectivity checks (the probe role): DNS through the configured resolvers, must-reach
//! resources stage by stage, latency/jitter/loss, and the content filter's must-be-blocked
//! list. `parta-agent check espd` runs them once; the scheduled probe role and the throughput
//! test against the collector follow.
//!
//! - `dns`: a DNS stub (A/AAAA over UDP to a named resolver), pure reply parser.
//! - `probe`: one URL: DNS, TCP, TLS, HTTP, block-page markers.
//! - `latency`: repeated TCP handshakes; `icmp`: ICMP echo where the agent may use it.

pub mod dns;
pub mod icmp;
pub mod latency;
pub mod probe;
pub mod schedule;
pub mod throughput;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parta_protocol::espd::{CheckKind, CheckOutcome, CheckResult, ConnectivityRun, Locality, RunTrigger};
use serde::Deserialize;

/// Must-reach resources when none are configured (`../shared/reference/domain.md`: no official
/// list exists): federal education services, ЕСИА, and the update repositories of the
/// domestic Linux systems schools run.
pub const DEFAULT_MUST_REACH: [&str; 9] = [
    "https://myschool.edu.ru/",
    "https://sferum.ru/",
    "https://www.gosuslugi.ru/",
    "https://esia.gosuslugi.ru/",
    "https://resh.edu.ru/",
    "https://edu.gov.ru/",
    "https://download.astralinux.ru/",
    "http://ftp.altlinux.org/pub/distributions/ALTLinux/",
    "https://repo1.red-soft.ru/redos/",
];

/// Block-page wording when none is configured: a regional parameter (every filter words its
/// page differently); configure `block_markers` to your filter's page.
pub const DEFAULT_BLOCK_MARKERS: [&str; 3] =
    ["Доступ ограничен", "Доступ к ресурсу ограничен", "Доступ запрещ"];

/// CA bundles of the supported distributions, the first one present is used: Debian, Astra
/// Linux, ALT; RED OS and other RHEL-like systems.
pub const SYSTEM_CA_BUNDLES: [&str; 3] =
    ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/ca-bundle.pem"];

/// A port or `"off"` in the file.
pub mod toml_port {
    use serde::Deserialize;

    /// `4434` or `"off"`.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(untagged)]
    pub enum Port {
        /// A port.
        Number(u16),
        /// Must be `off`.
        Off(String),
    }
}

/// `[espd]` of the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EspdSection {
    /// Probe role: run the checks on a schedule and report them.
    pub enabled: Option<bool>,
    /// School-hours windows, e.g. `["mon-fri 08:00-17:00"]`.
    pub windows: Option<Vec<String>>,
    /// Reachability round period.
    pub every: Option<String>,
    /// `urban` (100 Mbit/s) or `rural` (50 Mbit/s).
    pub locality: Option<String>,
    /// Required speed override, Mbit/s.
    pub required_mbps: Option<u32>,
    /// Resolvers (`IP` or `IP:port`).
    pub resolvers: Option<Vec<String>>,
    /// Must-reach URLs.
    pub must_reach: Option<Vec<String>>,
    /// Must-be-blocked URLs.
    pub must_block: Option<Vec<String>>,
    /// Block-page markers.
    pub block_markers: Option<Vec<String>>,
    /// Latency target `host:port`.
    pub latency_target: Option<String>,
    /// Latency probes per check.
    pub latency_probes: Option<u16>,
    /// How latency is measured: `auto`, `icmp` or `tcp`.
    pub latency_method: Option<String>,
    /// Per-stage timeout.
    pub timeout: Option<String>,
    /// Speed-test service port on the collector host (default 4434), or `off`.
    pub speedtest_port: Option<toml_port::Port>,
    /// Length of each throughput test.
    pub throughput_time: Option<String>,
    /// A throughput round at most this often (probe role).
    pub throughput_every: Option<String>,
    /// CA bundle replacing the system one.
    pub ca_bundle: Option<PathBuf>,
    /// Extra CA certificates (e.g. the Russian Trusted Root CA where the system lacks it).
    pub ca_file: Option<PathBuf>,
}

/// How latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyChoice {
    /// ICMP echo when the agent may open an ICMP socket and the target answers it, else TCP
    /// handshakes.
    Auto,
    /// ICMP echo only.
    Icmp,
    /// TCP handshakes only.
    Tcp,
}

impl LatencyChoice {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Icmp => "icmp",
            Self::Tcp => "tcp",
        }
    }
}

/// The checks' settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspdSettings {
    /// Probe role on.
    pub enabled: bool,
    /// School-hours windows (local time).
    pub windows: Vec<schedule::Window>,
    /// A round runs once per period, at a random instant of it.
    pub every: Duration,
    /// The school's locality.
    pub locality: Locality,
    /// Required speed, Mbit/s.
    pub required_mbps: u32,
    /// Resolvers (from /etc/resolv.conf unless configured).
    pub resolvers: Vec<SocketAddr>,
    /// Must-reach URLs (checked to parse).
    pub must_reach: Vec<String>,
    /// Must-be-blocked URLs.
    pub must_block: Vec<String>,
    /// Block-page markers.
    pub block_markers: Vec<String>,
    /// Latency target (`host:port`; default: the first must-reach URL's).
    pub latency_target: Option<String>,
    /// Latency probes per check.
    pub latency_probes: u16,
    /// How latency is measured.
    pub latency_method: LatencyChoice,
    /// Per-stage timeout.
    pub timeout: Duration,
    /// Speed-test port on the collector host (`None`: no throughput tests).
    pub speedtest_port: Option<u16>,
    /// Length of each throughput test.
    pub throughput_time: Duration,
    /// Throughput rounds at most this often (probe role).
    pub throughput_every: Duration,
    /// CA bundle (None: the system's).
    pub ca_bundle: Option<PathBuf>,
    /// Extra CA certificates.
    pub ca_file: Option<PathBuf>,
}

/// A bad `[espd]` value: the key (under `espd.`), the value and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Key, e.g. `must_reach[2]`.
    pub key: String,
    /// The value as given.
    pub value: String,
    /// Why it is unusable.
    pub reason: String,
}

fn field_error(key: impl Into<String>, value: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError { key: key.into(), value: value.into(), reason: reason.into() }
}

/// Parses a resolver address: `IP` (port 53) or `IP:port` / `[IPv6]:port`.
pub fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| "not an IP address or IP:port (resolvers are given by address)".into())
}

/// Nameservers of a resolv.conf text.
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        // A zone index (fe80::1%eth0) is not representable here; such entries are skipped.
        .filter_map(|a| parse_resolver(a).ok())
        .collect()
}

impl EspdSettings {
    /// Resolves the section; `resolv_conf` is the text of /etc/resolv.conf (for the default
    /// resolvers).
    pub fn resolve(s: EspdSection, resolv_conf: &str) -> Result<Self, FieldError> {
        let locality = match s.locality.as_deref() {
            None | Some("urban") => Locality::Urban,
            Some("rural") => Locality::Rural,
            Some(other) => return Err(field_error("locality", other, "expected urban or rural")),
        };
        let required_mbps = match s.required_mbps {
            Some(0) => return Err(field_error("required_mbps", "0", "must be at least 1")),
            Some(v) if v > 100_000 => {
                return Err(field_error("required_mbps", v.to_string(), "at most 100000"));
            }
            Some(v) => v,
            None => locality.required_mbps(),
        };
        let resolvers = match &s.resolvers {
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, r)| parse_resolver(r).map_err(|why| field_error(format!("resolvers[{i}]"), r, why)))
                .collect::<Result<Vec<_>, _>>()?,
            None => resolv_conf_nameservers(resolv_conf),
        };
        let urls = |key: &str, list: Vec<String>| -> Result<Vec<String>, FieldError> {
            for (i, u) in list.iter().enumerate() {
                probe::Url::parse(u).map_err(|why| field_error(format!("{key}[{i}]"), u, why))?;
            }
            Ok(list)
        };
        let must_reach = urls(
            "must_reach",
            s.must_reach.unwrap_or_else(|| DEFAULT_MUST_REACH.map(str::to_owned).to_vec()),
        )?;
        let must_block = urls("must_block", s.must_block.unwrap_or_default())?;
        if must_reach.len() + must_block.len() > 40 {
            return Err(field_error(
                "must_reach",
                format!("{} + {} URLs", must_reach.len(), must_block.len()),
                "at most 40 URLs in both lists together",
            ));
        }
        if let Some(t) = &s.latency_target
            && !t
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
        {
            return Err(field_error("latency_target", t, "expected host:port"));
        }
        let latency_probes = match s.latency_probes {
            Some(n @ 1..=1000) => n,
            Some(n) => return Err(field_error("latency_probes", n.to_string(), "between 1 and 1000")),
            None => 20,
        };
        let latency_method = match s.latency_method.as_deref() {
            None | Some("auto") => LatencyChoice::Auto,
            Some("icmp") => LatencyChoice::Icmp,
            Some("tcp") => LatencyChoice::Tcp,
            Some(other) => return Err(field_error("latency_method", other, "expected auto, icmp or tcp")),
        };
        let duration = |key: &str,
                        value: &Option<String>,
                        min: Duration,
                        max: Duration,
                        default: Duration| match value {
            Some(t) => parta_common::settings::parse_duration_within(t, min, max)
                .map_err(|why| field_error(key, t, why)),
            None => Ok(default),
        };
        let windows = s
            .windows
            .unwrap_or_else(|| vec!["mon-fri 08:00-17:00".to_owned()])
            .iter()
            .enumerate()
            .map(|(i, w)| {
                schedule::Window::parse(w).map_err(|why| field_error(format!("windows[{i}]"), w, why))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let every = duration(
            "every",
            &s.every,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
            Duration::from_secs(15 * 60),
        )?;
        let timeout = duration(
            "timeout",
            &s.timeout,
            Duration::from_millis(100),
            Duration::from_secs(120),
            Duration::from_secs(10),
        )?;
        let speedtest_port = match s.speedtest_port {
            None => Some(4434),
            Some(toml_port::Port::Off(o)) if o == "off" => None,
            Some(toml_port::Port::Off(o)) => {
                return Err(field_error("speedtest_port", o, "a port number or \"off\""));
            }
            Some(toml_port::Port::Number(0)) => {
                return Err(field_error("speedtest_port", "0", "a port number or \"off\""));
            }
            Some(toml_port::Port::Number(p)) => Some(p),
        };
        let throughput_time = duration(
            "throughput_time",
            &s.throughput_time,
            Duration::from_secs(2),
            Duration::from_secs(10),
            Duration::from_secs(8),
        )?;
        let throughput_every = duration(
            "throughput_every",
            &s.throughput_every,
            Duration::from_secs(1),
            Duration::from_secs(7 * 86_400),
            Duration::from_secs(4 * 3600),
        )?;
        Ok(Self {
            speedtest_port,
            throughput_time,
            throughput_every,
            enabled: s.enabled.unwrap_or(false),
            windows,
            every,
            locality,
            required_mbps,
            resolvers,
            must_reach,
            must_block,
            block_markers: s
                .block_markers
                .unwrap_or_else(|| DEFAULT_BLOCK_MARKERS.map(str::to_owned).to_vec()),
            latency_target: s.latency_target,
            latency_probes,
            latency_method,
            timeout,
            ca_bundle: s.ca_bundle,
            ca_file: s.ca_file,
        })
    }

    /// The TLS client configuration: the system's (or the configured) CA bundle, plus the
    /// extra CA file.
    pub fn tls_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        use anyhow::Context as _;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let bundle = match &self.ca_bundle {
            Some(p) => Some(p.clone()),
            None => SYSTEM_CA_BUNDLES.iter().map(PathBuf::from).find(|p| p.exists()),
        };
        let mut roots = rustls::RootCertStore::empty();
        for path in bundle.iter().chain(self.ca_file.iter()) {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect)
                .with_context(|| format!("cannot read CA certificates from {}", path.display()))?;
            // A bundle may hold certificates rustls cannot use (old, odd encodings): skip those.
            let (_, _) = roots.add_parsable_certificates(certs);
        }
        if roots.is_empty() {
            anyhow::bail!(
                "no CA certificates: none of {} exists; set espd.ca_bundle",
                SYSTEM_CA_BUNDLES.join(", ")
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

fn now_ms() -> i64 {
    crate::runner::now_ms()
}

/// A check that could not run, failed with `outcome` and why.
fn failed(kind: CheckKind, target: String, outcome: CheckOutcome, error: String) -> CheckResult {
    CheckResult { outcome, error, ..CheckResult::new(kind, target, now_ms()) }
}

/// One DNS check: `name` through `resolver`.
fn check_dns(name: &str, resolver: SocketAddr, timeout: Duration) -> CheckResult {
    let started = Instant::now();
    let mut r = CheckResult::new(CheckKind::Dns, format!("{name}@{resolver}"), now_ms());
    match dns::resolve(resolver, name, timeout) {
        Ok(addrs) => {
            r.stages.dns_us = probe::stage_us(started);
            r.addresses = addrs
                .iter()
                .take(parta_protocol::validate::MAX_CHECK_ADDRESSES)
                .map(ToString::to_string)
                .collect();
        }
        Err(e) => {
            r.outcome = CheckOutcome::DnsFailed;
            r.error = e.to_string();
        }
    }
    r.duration_ms = probe::elapsed_ms(started);
    r
}

/// One latency check to `target` (`host:port`; ICMP echo goes to the host), by the configured
/// method.
fn check_latency(target: &str, s: &EspdSettings, p: &probe::ProbeSettings) -> CheckResult {
    let started = Instant::now();
    let mut r = CheckResult::new(CheckKind::Latency, target, now_ms());
    let addr = target.rsplit_once(':').and_then(|(h, port)| {
        let host = h.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse::<u16>().ok()?;
        Some((probe::resolve(host, p), port))
    });
    match addr {
        Some((Ok(ips), port)) => {
            // Probes time out at 1 s (the first SYN retransmission) or the stage timeout.
            let timeout = p.timeout.min(Duration::from_secs(1));
            let spacing = Duration::from_millis(100);
            let ip = ips[0];
            let mut icmp_note = String::new();
            if s.latency_method != LatencyChoice::Tcp {
                match icmp::Pinger::open(ip) {
                    Ok(pinger) => {
                        let stats = pinger.probe(ip, s.latency_probes, spacing, timeout);
                        if stats.received > 0 || s.latency_method == LatencyChoice::Icmp {
                            if stats.received == 0 {
                                r.outcome = CheckOutcome::Error;
                                r.error = format!(
                                    "none of {} ICMP echo requests to {ip} answered within {timeout:?} \
                                     (ICMP may be filtered on the way; latency_method = \"tcp\" measures \
                                     by TCP handshakes)",
                                    stats.sent
                                );
                            }
                            r.latency = Some(stats);
                            r.duration_ms = probe::elapsed_ms(started);
                            return r;
                        }
                        icmp_note = format!("; ICMP echo to {ip} went unanswered");
                    }
                    Err(e) if s.latency_method == LatencyChoice::Icmp => {
                        r.outcome = CheckOutcome::Error;
                        r.error = e.to_string();
                        r.duration_ms = probe::elapsed_ms(started);
                        return r;
                    }
                    Err(e) => tracing::debug!(error = %e, "ICMP not available, latency by TCP handshakes"),
                }
            }
            let stats = latency::tcp_probe(SocketAddr::new(ip, port), s.latency_probes, spacing, timeout);
            if stats.received == 0 {
                r.outcome = CheckOutcome::TcpFailed;
                r.error = format!("none of {} TCP probes answered within {timeout:?}{icmp_note}", stats.sent);
            }
            r.latency = Some(stats);
        }
        Some((Err(e), _)) => {
            r.outcome = CheckOutcome::DnsFailed;
            r.error = e;
        }
        None => {
            r.outcome = CheckOutcome::Error;
            r.error = "expected host:port".into();
        }
    }
    r.duration_ms = probe::elapsed_ms(started);
    r
}

/// Where the speed test goes: the first collector host of the configuration, `speedtest_port`,
/// the collector's CA, as the device (its credential). `None` when any is missing or the port
/// is off.
pub fn speedtest_target(
    c: &crate::config::AgentConfig,
    identity: Option<std::sync::Arc<crate::credential::Identity>>,
) -> Option<throughput::SpeedTestTarget> {
    let collector = c.collectors.first()?;
    Some(throughput::SpeedTestTarget {
        host: collector.host.clone(),
        port: c.espd.speedtest_port?,
        server_name: c.server_name.clone().unwrap_or_else(|| collector.host.clone()),
        ca: c.ca_cert.clone()?,
        identity: identity?,
    })
}

/// One throughput test; download is judged against the required speed, upload is reported.
fn check_throughput(
    t: &throughput::SpeedTestTarget,
    direction: parta_protocol::speedtest::Direction,
    s: &EspdSettings,
) -> CheckResult {
    use parta_protocol::speedtest::Direction;
    let started = Instant::now();
    let kind = match direction {
        Direction::Download => CheckKind::Download,
        Direction::Upload => CheckKind::Upload,
    };
    let mut r = CheckResult::new(kind, t.display(), now_ms());
    let secs = s.throughput_time.as_secs_f64();
    // Room for 3× the required speed for the whole test; the collector caps it too.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let max_bytes = (f64::from(s.required_mbps) * 3.0 * 1e6 / 8.0 * secs) as u64;
    let max_ms = u32::try_from(s.throughput_time.as_millis()).unwrap_or(10_000);
    match throughput::run(t, direction, max_bytes, max_ms) {
        Ok(stats) => {
            if direction == Direction::Download
                && stats.ip_bits_per_s < parta_protocol::espd::speed_pass_bps(s.required_mbps)
            {
                r.outcome = CheckOutcome::Slow;
                #[allow(clippy::cast_precision_loss)] // a rate for people
                let got = stats.ip_bits_per_s as f64 / 1e6;
                r.error = format!("{got:.1} Mbit/s, {} Mbit/s required", s.required_mbps);
            }
            r.throughput = Some(stats);
        }
        Err(e) => {
            r.outcome = CheckOutcome::Error;
            r.error = e;
            parta_protocol::validate::truncate_text(&mut r.error, parta_protocol::validate::MAX_TEXT);
        }
    }
    r.duration_ms = probe::elapsed_ms(started);
    r
}

/// Runs every configured check once, in order: DNS (every resolver, the must-reach names),
/// must-reach URLs, latency, must-be-blocked URLs. Blocking: call from a thread of its own.
pub fn run_checks(
    s: &EspdSettings,
    tls: Arc<rustls::ClientConfig>,
    trigger: RunTrigger,
    speedtest: Option<&throughput::SpeedTestTarget>,
) -> ConnectivityRun {
    let started_at_ms = now_ms();
    let started = Instant::now();
    let p = probe::ProbeSettings {
        resolvers: s.resolvers.clone(),
        timeout: s.timeout,
        tls,
        block_markers: s.block_markers.clone(),
        user_agent: format!("parta-agent/{}", crate::version::text()),
    };
    let mut checks = Vec::new();
    let hosts: Vec<String> = {
        let mut h: Vec<String> = s
            .must_reach
            .iter()
            .filter_map(|u| probe::Url::parse(u).ok())
            .map(|u| u.host)
            .filter(|h| h.parse::<std::net::IpAddr>().is_err())
            .collect();
        // Each name once, in the list's order (the same site may be listed by several URLs).
        let mut seen = std::collections::HashSet::new();
        h.retain(|name| seen.insert(name.clone()));
        h
    };
    if s.resolvers.is_empty() {
        checks.push(failed(
            CheckKind::Dns,
            "/etc/resolv.conf".into(),
            CheckOutcome::Error,
            "no resolvers: none configured and none in /etc/resolv.conf".into(),
        ));
    }
    // Every resolver answers for the first name; the other names through the first resolver
    // (the reach checks resolve them again anyway).
    for (i, resolver) in s.resolvers.iter().enumerate() {
        for name in hosts.iter().take(if i == 0 { 4 } else { 1 }) {
            checks.push(check_dns(name, *resolver, s.timeout));
        }
    }
    for u in &s.must_reach {
        checks.push(probe::check_url(CheckKind::Reach, u, &p, now_ms()));
    }
    let latency_target = s.latency_target.clone().or_else(|| {
        s.must_reach
            .first()
            .and_then(|u| probe::Url::parse(u).ok())
            .map(|u| crate::config::host_port(&u.host, u.port))
    });
    if let Some(t) = latency_target {
        checks.push(check_latency(&t, s, &p));
    }
    for u in &s.must_block {
        checks.push(probe::check_url(CheckKind::Filter, u, &p, now_ms()));
    }
    if trigger != RunTrigger::Reachability {
        match speedtest {
            Some(t) => {
                checks.push(check_throughput(t, parta_protocol::speedtest::Direction::Download, s));
                checks.push(check_throughput(t, parta_protocol::speedtest::Direction::Upload, s));
            }
            None => checks.push(failed(
                CheckKind::Download,
                "collector".into(),
                CheckOutcome::Error,
                "no speed test: the collector or its CA is not configured, the device has not enrolled, or espd.speedtest_port is off".into(),
            )),
        }
    }
    checks.truncate(parta_protocol::validate::MAX_CHECKS);
    ConnectivityRun {
        started_at_ms,
        duration_ms: probe::elapsed_ms(started),
        local_day: crate::usage::local_day(&jiff::tz::TimeZone::system(), started_at_ms).0,
        trigger,
        locality: s.locality,
        required_mbps: s.required_mbps,
        checks,
    }
}

/// The probe role: one round of checks per `every`, at a random instant of each period, in the
/// school-hours windows, until `stop`. Waiting is a timer on the agent's runtime; the checks
/// themselves (blocking DNS, TCP, TLS and ICMP probes) run on its blocking threads.
pub async fn probe_task(
    s: EspdSettings,
    tls: Arc<rustls::ClientConfig>,
    speedtest: Option<throughput::SpeedTestTarget>,
    tx: tokio::sync::mpsc::Sender<ConnectivityRun>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let tz = jiff::tz::TimeZone::system();
    let s = Arc::new(s);
    let speedtest = speedtest.map(Arc::new);
    // The first round in the windows measures throughput (as Giga Meter does after a start).
    let mut last_throughput: Option<Instant> = None;
    let every_ms = i64::try_from(s.every.as_millis()).unwrap_or(i64::MAX);
    let mut period = now_ms();
    loop {
        let at = schedule::instant_in_period(period, s.every, rand::random::<f64>());
        let wait = Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = parta_common::shutdown::stopped(&mut stop) => return,
        }
        if schedule::in_windows(&s.windows, &tz, now_ms()) {
            let due =
                speedtest.is_some() && last_throughput.is_none_or(|t| t.elapsed() >= s.throughput_every);
            let trigger = if due { RunTrigger::Throughput } else { RunTrigger::Reachability };
            if due {
                last_throughput = Some(Instant::now());
            }
            let (settings, tls, target) = (Arc::clone(&s), Arc::clone(&tls), speedtest.clone());
            let checks =
                tokio::task::spawn_blocking(move || run_checks(&settings, tls, trigger, target.as_deref()));
            let run = tokio::select! {
                run = checks => match run {
                    Ok(run) => run,
                    Err(e) => {
                        tracing::error!(error = %e, "ЕСПД checks failed");
                        continue;
                    }
                },
                () = parta_common::shutdown::stopped(&mut stop) => return,
            };
            // A throughput round that measured nothing (refused: another test of the school
            // running, the hourly limit; or broken) is tried again next round.
            if due && !run.checks.iter().any(|c| c.kind == CheckKind::Download && c.throughput.is_some()) {
                last_throughput = None;
            }
            let passed = run.checks.iter().filter(|c| c.outcome.passed()).count();
            tracing::debug!(checks = run.checks.len(), passed, "ЕСПД checks done");
            if tx.send(run).await.is_err() {
                return;
            }
        }
        period = period.saturating_add(every_ms);
        // A round longer than its period: the next period starts now.
        if period + every_ms <= now_ms() {
            period = now_ms();
        }
    }
}

/// Prints a run for people.
pub fn write_text(out: &mut impl std::io::Write, run: &ConnectivityRun) -> std::io::Result<()> {
    let passed = run.checks.iter().filter(|c| c.outcome.passed()).count();
    writeln!(
        out,
        "ЕСПД checks: {passed} of {} passed ({}, {} Mbit/s required), {:.1} s",
        run.checks.len(),
        run.locality.as_str(),
        run.required_mbps,
        f64::from(run.duration_ms) / 1000.0
    )?;
    for c in &run.checks {
        let mark = if c.outcome.passed() { "ok  " } else { "FAIL" };
        write!(out, "{mark} {:<8} {:<12} {}", c.kind.as_str(), c.outcome.as_str(), c.target)?;
        let ms = |us: u32| f64::from(us) / 1000.0;
        let st = c.stages;
        let stages: Vec<String> =
            [("dns", st.dns_us), ("tcp", st.connect_us), ("tls", st.tls_us), ("response", st.response_us)]
                .iter()
                .filter(|(_, us)| *us > 0)
                .map(|(name, us)| format!("{name} {:.1} ms", ms(*us)))
                .collect();
        if !stages.is_empty() {
            write!(out, " [{}]", stages.join(", "))?;
        }
        if c.http_status > 0 {
            write!(out, " HTTP {}", c.http_status)?;
        }
        if let Some(l) = &c.latency {
            write!(
                out,
                " rtt median {:.1} ms (min {:.1}, max {:.1}), jitter {:.1} ms, loss {:.1} % of {}",
                ms(l.rtt_median_us),
                ms(l.rtt_min_us),
                ms(l.rtt_max_us),
                ms(l.jitter_us),
                l.loss() * 100.0,
                l.sent
            )?;
        }
        if let Some(t) = &c.throughput {
            #[allow(clippy::cast_precision_loss)] // a rate for display
            let (ip, payload) = (t.ip_bits_per_s as f64 / 1e6, t.bits_per_s as f64 / 1e6);
            write!(out, " {ip:.1} Mbit/s (payload {payload:.1})")?;
        }
        if !c.addresses.is_empty() && c.kind == CheckKind::Dns {
            write!(out, " → {}", c.addresses.join(", "))?;
        }
        writeln!(out)?;
        if !c.error.is_empty() {
            writeln!(out, "       {}", c.error)?;
        }
    }
    Ok(())
}

/// The resolv.conf text of this host (empty when unreadable).
pub fn system_resolv_conf(root: &Path) -> String {
    std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_resolve_with_defaults_and_name_bad_keys() {
        let s = EspdSettings::resolve(
            EspdSection::default(),
            "# x\nnameserver 10.74.0.53\nnameserver fe80::1%eth0\n",
        )
        .unwrap();
        assert_eq!((s.locality, s.required_mbps), (Locality::Urban, 100));
        assert_eq!(s.resolvers, vec!["10.74.0.53:53".parse::<SocketAddr>().unwrap()]);
        assert_eq!(s.must_reach.len(), DEFAULT_MUST_REACH.len());
        let rural = EspdSettings::resolve(
            EspdSection { locality: Some("rural".into()), ..EspdSection::default() },
            "",
        )
        .unwrap();
        assert_eq!(rural.required_mbps, 50);
        for (section, key) in [
            (EspdSection { locality: Some("city".into()), ..EspdSection::default() }, "locality"),
            (
                EspdSection { resolvers: Some(vec!["dns.local".into()]), ..EspdSection::default() },
                "resolvers[0]",
            ),
            (
                EspdSection {
                    must_block: Some(vec!["https://ok/".into(), "ftp://x".into()]),
                    ..EspdSection::default()
                },
                "must_block[1]",
            ),
            (EspdSection { latency_target: Some("host".into()), ..EspdSection::default() }, "latency_target"),
            (EspdSection { timeout: Some("1h".into()), ..EspdSection::default() }, "timeout"),
            (EspdSection { required_mbps: Some(0), ..EspdSection::default() }, "required_mbps"),
        ] {
            assert_eq!(EspdSettings::resolve(section, "").unwrap_err().key, key);
        }
    }
}
