//! The collector's own health as Prometheus metrics, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Label set with a single `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Reject reason, snake_case.
    pub reason: String,
}

/// All metrics. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reports stored and acknowledged.
    pub reports_accepted: Counter,
    /// Reports that were already stored (resends), acknowledged without storing again.
    pub reports_duplicate: Counter,
    /// Sessions and frames refused, by reason.
    pub rejected: Family<ReasonLabel, Counter>,
    /// Sessions accepted.
    pub sessions_accepted: Counter,
    /// Open agent connections.
    pub open_connections: Gauge,
    /// Reports per insert batch.
    pub batch_reports: Histogram,
    /// Seconds per batch insert (all tables).
    pub insert_seconds: Histogram,
    /// Failed insert attempts (each is retried).
    pub insert_errors: Counter,
    /// Reports waiting in memory for insert.
    pub ingest_queue: Gauge,
    /// Bytes of accepted reports.
    pub report_bytes: Counter,
    /// Seconds sessions could not take reports because storage lagged (summed over sessions).
    pub backpressure_seconds: Counter<f64, AtomicU64>,
    /// Delay between an agent taking a report and the collector storing it.
    pub report_delay_seconds: Histogram,
    /// Reports stored more than five minutes after they were taken: backlog replayed after an
    /// outage.
    pub backlog_reports: Counter,
    /// Age of the oldest report in the last stored batch; back near the sampling interval when
    /// backlogs have drained.
    pub oldest_report_age_seconds: Gauge<f64, AtomicU64>,
    /// Loss notices received from agents' spools, by reason (reports).
    pub agent_spool_losses: Family<ReasonLabel, Counter>,
    /// Connections that have not yet said Hello or enrolled.
    pub handshakes_waiting: Gauge,
    /// Connections refused because too many were waiting.
    pub handshakes_refused: Counter,
    /// Connections asked to prove their address (QUIC Retry) under load.
    pub handshake_retries: Counter,
    /// Devices enrolled (first enrollment or again with the same key).
    pub enrollments: Counter,
    /// Device certificates renewed over sessions.
    pub renewals: Counter,
    /// Bytes of reports in memory awaiting insert.
    pub ingest_queue_bytes: Gauge,
    /// Usage intervals, SNMP polls and connectivity runs left out for a local day far from the
    /// day they arrived.
    pub far_dated_dropped: Counter,
    /// Bytes of release artifacts sent to devices.
    pub release_bytes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `parta` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("parta");
        let m = Self {
            reports_accepted: Counter::default(),
            reports_duplicate: Counter::default(),
            rejected: Family::default(),
            sessions_accepted: Counter::default(),
            open_connections: Gauge::default(),
            batch_reports: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            insert_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            insert_errors: Counter::default(),
            ingest_queue: Gauge::default(),
            report_bytes: Counter::default(),
            backpressure_seconds: Counter::default(),
            report_delay_seconds: Histogram::new(exponential_buckets(1.0, 4.0, 12)),
            backlog_reports: Counter::default(),
            oldest_report_age_seconds: Gauge::default(),
            agent_spool_losses: Family::default(),
            handshakes_waiting: Gauge::default(),
            handshakes_refused: Counter::default(),
            handshake_retries: Counter::default(),
            enrollments: Counter::default(),
            renewals: Counter::default(),
            ingest_queue_bytes: Gauge::default(),
            far_dated_dropped: Counter::default(),
            release_bytes: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("reports_accepted", "Reports stored and acknowledged", m.reports_accepted.clone());
        registry.register(
            "reports_duplicate",
            "Resent reports that were already stored, acknowledged without storing again",
            m.reports_duplicate.clone(),
        );
        registry.register("rejected", "Sessions and frames refused, by reason", m.rejected.clone());
        registry.register("sessions_accepted", "Agent sessions accepted", m.sessions_accepted.clone());
        registry.register("open_connections", "Open agent connections", m.open_connections.clone());
        registry.register("batch_reports", "Reports per ClickHouse insert batch", m.batch_reports.clone());
        registry.register(
            "insert_seconds",
            "Duration of a batch insert into ClickHouse",
            m.insert_seconds.clone(),
        );
        registry.register("insert_errors", "Failed insert attempts (retried)", m.insert_errors.clone());
        registry.register("ingest_queue", "Reports in memory awaiting insert", m.ingest_queue.clone());
        registry.register("report_bytes", "Bytes of accepted reports on the wire", m.report_bytes.clone());
        registry.register(
            "backpressure_seconds",
            "Seconds sessions could not take reports because storage lagged, summed over sessions",
            m.backpressure_seconds.clone(),
        );
        registry.register(
            "report_delay_seconds",
            "Delay between an agent taking a report and the collector storing it",
            m.report_delay_seconds.clone(),
        );
        registry.register(
            "backlog_reports",
            "Reports stored more than five minutes after they were taken (backlog replay)",
            m.backlog_reports.clone(),
        );
        registry.register(
            "oldest_report_age_seconds",
            "Age of the oldest report in the last stored batch",
            m.oldest_report_age_seconds.clone(),
        );
        registry.register(
            "agent_spool_losses",
            "Reports agents' spools discarded (thinned, expired, disk full, corrupt), as they reported",
            m.agent_spool_losses.clone(),
        );
        registry.register(
            "handshakes_waiting",
            "Connections that have not yet said Hello or enrolled",
            m.handshakes_waiting.clone(),
        );
        registry.register(
            "handshakes_refused",
            "Connections refused because too many were waiting to say Hello",
            m.handshakes_refused.clone(),
        );
        registry.register(
            "handshake_retries",
            "Connections asked to prove their address (QUIC Retry) under a handshake flood",
            m.handshake_retries.clone(),
        );
        registry.register("enrollments", "Devices enrolled", m.enrollments.clone());
        registry.register(
            "release_bytes_served",
            "Bytes of signed release artifacts sent to devices (within release_bandwidth_mbit)",
            m.release_bytes.clone(),
        );
        registry.register(
            "certificate_renewals",
            "Device certificates renewed over sessions",
            m.renewals.clone(),
        );
        registry.register(
            "ingest_queue_bytes",
            "Bytes of decoded reports in memory awaiting insert",
            m.ingest_queue_bytes.clone(),
        );
        registry.register(
            "far_dated_dropped",
            "Usage intervals, SNMP polls and connectivity runs left out for a local day far from the day they arrived",
            m.far_dated_dropped.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts a refusal.
    pub fn reject(&self, reason: parta_protocol::RejectReason) {
        self.rejected.get_or_create(&ReasonLabel { reason: reason.as_str().to_owned() }).inc();
    }

    /// The Prometheus text exposition format (0.0.4), as `/metrics` serves it and `promtool
    /// check metrics` accepts it.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        openmetrics_to_text(&out)
    }
}

/// prometheus-client writes OpenMetrics: a counter family is named without `_total` in its
/// `# HELP`/`# TYPE` lines, and the text ends with `# EOF`. The Prometheus text format names the
/// family as its samples are named (`…_total`) and has no `# EOF`.
fn openmetrics_to_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        om.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(om.len() + 16 * counters.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) { "_total" } else { "" };
                out.push_str(&format!("{kind}{name}{suffix} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_as_their_samples() {
        let text = openmetrics_to_text(
            "# HELP parta_x Things.\n# TYPE parta_x counter\nparta_x_total 3\n# HELP parta_g A gauge.\n# TYPE parta_g gauge\nparta_g 1\n# EOF\n",
        );
        assert_eq!(
            text,
            "# HELP parta_x_total Things.\n# TYPE parta_x_total counter\nparta_x_total 3\n# HELP parta_g A gauge.\n# TYPE parta_g gauge\nparta_g 1\n"
        );
    }

    #[test]
    fn exposition_has_prefixed_names_and_reason_labels() {
        let m = Metrics::new();
        m.reports_accepted.inc();
        m.reject(parta_protocol::RejectReason::RevokedToken);
        let text = m.encode();
        assert!(text.contains("parta_reports_accepted_total 1"), "{text}");
        assert!(text.contains("parta_rejected_total{reason=\"revoked_token\"} 1"), "{text}");
        assert!(text.contains("parta_open_connections 0"), "{text}");
    }
}
