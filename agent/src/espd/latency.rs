//! Latency, jitter and loss by repeated TCP handshakes: the SYN → SYN-ACK (or RST) time is one
//! round trip, and needs no privileges. A probe not answered within the probe timeout (shorter
//! than the kernel's first SYN retransmission, 1 s) counts as lost.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use parta_protocol::espd::{LatencyMethod, LatencyStats};

/// Round-trip statistics of `rtts` (µs) out of `sent` probes.
pub fn stats(method: LatencyMethod, sent: u16, rtts: &[u32]) -> LatencyStats {
    let received = u16::try_from(rtts.len()).unwrap_or(u16::MAX).min(sent);
    let mut sorted = rtts.to_vec();
    sorted.sort_unstable();
    let median = match sorted.len() {
        0 => 0,
        n if n % 2 == 1 => sorted[n / 2],
        n => sorted[n / 2 - 1] / 2 + sorted[n / 2] / 2,
    };
    let avg =
        if rtts.is_empty() { 0 } else { rtts.iter().map(|&r| u64::from(r)).sum::<u64>() / rtts.len() as u64 };
    // RFC 3550 style: the mean absolute difference of consecutive answered probes.
    let jitter = if rtts.len() < 2 {
        0
    } else {
        rtts.windows(2).map(|w| u64::from(w[0].abs_diff(w[1]))).sum::<u64>() / (rtts.len() as u64 - 1)
    };
    LatencyStats {
        method,
        sent,
        received,
        rtt_min_us: sorted.first().copied().unwrap_or(0),
        rtt_median_us: median,
        rtt_avg_us: u32::try_from(avg).unwrap_or(u32::MAX),
        rtt_max_us: sorted.last().copied().unwrap_or(0),
        jitter_us: u32::try_from(jitter).unwrap_or(u32::MAX),
    }
}

/// Sends `probes` TCP handshakes to `addr`, `spacing` apart, each given `timeout`.
pub fn tcp_probe(addr: SocketAddr, probes: u16, spacing: Duration, timeout: Duration) -> LatencyStats {
    let mut rtts = Vec::with_capacity(usize::from(probes));
    for i in 0..probes {
        if i > 0 {
            std::thread::sleep(spacing);
        }
        let t = Instant::now();
        let answered = match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => true,
            // A RST is an answer too: the round trip is measured all the same.
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        };
        let rtt = t.elapsed();
        if answered && rtt < timeout {
            rtts.push(u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX));
        }
    }
    stats(LatencyMethod::TcpConnect, probes, &rtts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_round_trips() {
        let s = stats(LatencyMethod::TcpConnect, 5, &[100, 300, 200, 400]);
        assert_eq!((s.sent, s.received), (5, 4));
        assert_eq!((s.rtt_min_us, s.rtt_median_us, s.rtt_avg_us, s.rtt_max_us), (100, 250, 250, 400));
        // |300-100| + |200-300| + |400-200| = 500 over 3 pairs.
        assert_eq!(s.jitter_us, 166);
        assert!((s.loss() - 0.2).abs() < 1e-9);
        let none = stats(LatencyMethod::TcpConnect, 3, &[]);
        assert_eq!((none.received, none.rtt_median_us, none.jitter_us), (0, 0, 0));
        assert!((none.loss() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn refused_and_accepted_connects_both_measure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let s = tcp_probe(open, 3, Duration::from_millis(1), Duration::from_millis(500));
        assert_eq!(s.received, 3);
        drop(listener);
        // Nothing listens any more: RSTs, still answers.
        let s = tcp_probe(open, 3, Duration::from_millis(1), Duration::from_millis(500));
        assert_eq!(s.received, 3);
        assert!(s.rtt_max_us < 500_000);
    }
}
