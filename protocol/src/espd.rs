//! ЕСПД connectivity checks run by a probe agent: one [`ConnectivityRun`] per scheduled (or
//! manual) run, with one [`CheckResult`] per check. Failure kinds are kept apart (DNS vs TCP vs
//! TLS vs HTTP vs slow vs filtered) so that ops can tell the operator's fault from the filter's.

use serde::{Deserialize, Serialize};

/// One run of checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectivityRun {
    /// When the run started, ms since the epoch.
    pub started_at_ms: i64,
    /// How long it took, ms.
    pub duration_ms: u32,
    /// Day of the run in the agent's local time, days since 1970-01-01.
    pub local_day: i32,
    /// Why it ran.
    pub trigger: RunTrigger,
    /// The school's locality as the probe is configured (the collector may know better from
    /// the school registry).
    pub locality: Locality,
    /// Required download speed the probe judged throughput against, Mbit/s.
    pub required_mbps: u32,
    /// The checks, in the order they ran.
    #[serde(deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_CHECKS }>")]
    pub checks: Vec<CheckResult>,
}

/// Why a run happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// The schedule's reachability round (every few minutes in school hours).
    Reachability,
    /// The schedule's throughput round (a few a day), with reachability checks too.
    Throughput,
    /// `parta-agent check espd` (commissioning on site).
    Manual,
}

impl RunTrigger {
    /// Name for tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reachability => "reachability",
            Self::Throughput => "throughput",
            Self::Manual => "manual",
        }
    }
}

/// Urban schools must get ≥ 100 Mbit/s, rural ones (and ПГТ) ≥ 50 Mbit/s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Locality {
    /// City.
    Urban,
    /// Village, settlement, ПГТ.
    Rural,
}

impl Locality {
    /// Name for configuration, tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Urban => "urban",
            Self::Rural => "rural",
        }
    }

    /// The speed the national project requires, Mbit/s.
    pub fn required_mbps(self) -> u32 {
        match self {
            Self::Urban => 100,
            Self::Rural => 50,
        }
    }
}

/// Thousandths of the required speed a measured rate (at the IP layer) must reach to pass:
/// 98 %. A link shaped at exactly the contract rate measures about 99 % of it at the IP layer
/// (Ethernet framing, 14 bytes of every 1514, lies below it), and a test's rate is good to
/// about a per cent; a link 3 % short of the contract fails.
pub const SPEED_PASS_PERMILLE: u64 = 980;

/// The lowest rate, bit/s at the IP layer, that meets `required_mbps`.
pub fn speed_pass_bps(required_mbps: u32) -> u64 {
    u64::from(required_mbps) * 1000 * SPEED_PASS_PERMILLE
}

/// What a check tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Resolve a name through a configured resolver.
    Dns,
    /// A must-reach URL: DNS, TCP connect, TLS handshake, HTTP status.
    Reach,
    /// Latency, jitter and loss to a host (repeated TCP connects or ICMP echo).
    Latency,
    /// Download throughput from the collector's speed-test service.
    Download,
    /// Upload throughput to the collector's speed-test service.
    Upload,
    /// A must-be-blocked URL: the content filter must block it.
    Filter,
}

impl CheckKind {
    /// Name for tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Reach => "reach",
            Self::Latency => "latency",
            Self::Download => "download",
            Self::Upload => "upload",
            Self::Filter => "filter",
        }
    }
}

/// How a check went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Passed: reachable, fast enough, or (for `filter`) blocked as required.
    Ok,
    /// The name did not resolve (timeout, NXDOMAIN, SERVFAIL, refused, no address).
    DnsFailed,
    /// TCP connect failed (refused, unreachable, timed out) or the connection broke.
    TcpFailed,
    /// TLS handshake failed (bad or untrusted certificate, protocol error).
    TlsFailed,
    /// The server answered with an HTTP error status or no valid HTTP response.
    HttpFailed,
    /// Throughput below the required speed.
    Slow,
    /// A must-reach resource is blocked by a content filter (a block page was recognised, or
    /// the connection was reset after the request).
    Blocked,
    /// A must-be-blocked resource is reachable.
    NotBlocked,
    /// The check could not run (bad configuration, no route, speed test refused).
    Error,
}

impl CheckOutcome {
    /// Name for tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::DnsFailed => "dns_failed",
            Self::TcpFailed => "tcp_failed",
            Self::TlsFailed => "tls_failed",
            Self::HttpFailed => "http_failed",
            Self::Slow => "slow",
            Self::Blocked => "blocked",
            Self::NotBlocked => "not_blocked",
            Self::Error => "error",
        }
    }

    /// Whether the check passed.
    pub fn passed(self) -> bool {
        self == Self::Ok
    }
}

/// One check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// What was checked.
    pub kind: CheckKind,
    /// The name, URL or `host:port` checked (with the resolver for DNS: `name@resolver`).
    pub target: String,
    /// How it went.
    pub outcome: CheckOutcome,
    /// For people: what went wrong; for a passed `filter` check, how the resource was blocked;
    /// otherwise empty.
    pub error: String,
    /// When the check started, ms since the epoch.
    pub started_at_ms: i64,
    /// How long it took, ms.
    pub duration_ms: u32,
    /// Time of each stage reached, µs (0: not reached).
    pub stages: Stages,
    /// HTTP status (0: none).
    pub http_status: u16,
    /// Addresses the name resolved to.
    #[serde(
        deserialize_with = "crate::bounded::vec_at_most::<_, _, { crate::validate::MAX_CHECK_ADDRESSES }>"
    )]
    pub addresses: Vec<String>,
    /// Latency, jitter and loss (`latency` checks).
    pub latency: Option<LatencyStats>,
    /// Throughput (`download`, `upload`).
    pub throughput: Option<ThroughputStats>,
}

impl CheckResult {
    /// A check of `kind` on `target` that started at `started_at_ms`: passed so far, nothing
    /// measured yet.
    pub fn new(kind: CheckKind, target: impl Into<String>, started_at_ms: i64) -> Self {
        Self {
            kind,
            target: target.into(),
            outcome: CheckOutcome::Ok,
            error: String::new(),
            started_at_ms,
            duration_ms: 0,
            stages: Stages::default(),
            http_status: 0,
            addresses: Vec::new(),
            latency: None,
            throughput: None,
        }
    }
}

/// Stage times of a connection, µs (0: the stage was not reached or does not apply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stages {
    /// Name resolution.
    pub dns_us: u32,
    /// TCP connect (SYN to established).
    pub connect_us: u32,
    /// TLS handshake.
    pub tls_us: u32,
    /// Request sent to the status line received (time to first byte).
    pub response_us: u32,
}

/// How latency was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyMethod {
    /// TCP handshakes: the SYN → SYN-ACK time.
    TcpConnect,
    /// ICMP echo (when the agent may open ICMP sockets).
    Icmp,
}

impl LatencyMethod {
    /// Name for tables and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TcpConnect => "tcp_connect",
            Self::Icmp => "icmp",
        }
    }
}

/// Round-trip statistics of a latency check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// How probes were sent.
    pub method: LatencyMethod,
    /// Probes sent.
    pub sent: u16,
    /// Probes answered within the timeout.
    pub received: u16,
    /// Minimum round trip, µs.
    pub rtt_min_us: u32,
    /// Median round trip, µs.
    pub rtt_median_us: u32,
    /// Mean round trip, µs.
    pub rtt_avg_us: u32,
    /// Maximum round trip, µs.
    pub rtt_max_us: u32,
    /// Jitter: mean absolute difference of consecutive round trips (RFC 3550), µs.
    pub jitter_us: u32,
}

impl LatencyStats {
    /// Share of probes lost, 0–1.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        f64::from(self.sent.saturating_sub(self.received)) / f64::from(self.sent)
    }
}

/// What a throughput test moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThroughputStats {
    /// Payload bytes moved in the measured part of the test.
    pub bytes: u64,
    /// Measured time, µs.
    pub micros: u64,
    /// Payload rate, bit/s.
    pub bits_per_s: u64,
    /// Rate at the IP layer, bit/s: the payload rate scaled by the QUIC, UDP and IP overhead
    /// the test's connection actually carried. This is what a provider's shaper and the
    /// contract's «Мбит/с» count, and what verdicts compare with the required speed.
    pub ip_bits_per_s: u64,
    /// All IP bytes the test cost the link, both directions, handshake and warm-up included.
    pub total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_at_the_contract_rate_passes_and_one_three_per_cent_short_fails() {
        // 100 Mbit/s shaped at the Ethernet layer measures 99.1 at the IP layer.
        assert!(99_100_000 >= speed_pass_bps(100));
        assert!(97_000_000 < speed_pass_bps(100));
        assert_eq!(speed_pass_bps(Locality::Rural.required_mbps()), 49_000_000);
    }
}
