//! The collector's speed-test service, used by probe agents to measure the school's link: a
//! QUIC connection with ALPN [`SPEEDTEST_ALPN`] to its own endpoint, one bidirectional stream,
//! a [`SpeedTestRequest`] (direction, bounds; the device is known from its client certificate,
//! its school from the collector's records), a
//! [`SpeedTestReply`], then payload: the collector sends (download) or receives and measures
//! (upload). Messages are length-prefixed postcard; the measurement ([`measure`]) is pure.

use serde::{Deserialize, Serialize};

/// TLS ALPN of the speed-test service.
pub const SPEEDTEST_ALPN: &[u8] = b"parta-speedtest/2";
/// Largest control message, bytes.
pub const MAX_CONTROL: usize = 4096;
/// Share of a test's time left out of the measurement: the start, while congestion control
/// finds the link's rate.
pub const WARM_UP_SHARE: f64 = 0.25;

/// Which way payload flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Collector → agent.
    Download,
    /// Agent → collector.
    Upload,
}

impl Direction {
    /// Name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Upload => "upload",
        }
    }
}

/// What the agent asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeedTestRequest {
    /// Direction.
    pub direction: Direction,
    /// Most payload bytes.
    pub max_bytes: u64,
    /// Longest test, ms.
    pub max_ms: u32,
}

/// What the collector answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpeedTestReply {
    /// Go ahead, within these bounds (the collector's limits may be lower than asked).
    Go {
        /// Most payload bytes.
        max_bytes: u64,
        /// Longest test, ms.
        max_ms: u32,
    },
    /// No test now.
    Refused {
        /// Why, for people.
        reason: String,
        /// When to ask again, seconds (0: do not, the request is wrong).
        retry_after_s: u32,
    },
    /// Upload result as the collector measured it.
    Measured {
        /// Payload bytes in the measured part.
        bytes: u64,
        /// Measured time, µs.
        micros: u64,
        /// All payload bytes received.
        total_bytes: u64,
    },
}

/// A control message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The length prefix is over [`MAX_CONTROL`].
    #[error("control message of {0} bytes (at most {MAX_CONTROL})")]
    TooLong(usize),
    /// The body is not a valid message.
    #[error("malformed control message: {0}")]
    Malformed(String),
}

/// Encodes a control message: a 4-byte little-endian length, then postcard.
pub fn encode_control<T: Serialize>(msg: &T) -> Vec<u8> {
    // postcard serialises these plain structs into a Vec without failing.
    let body = postcard::to_allocvec(msg).unwrap_or_default();
    let mut out = u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes().to_vec();
    out.extend(body);
    out
}

/// The body length a control message prefix announces, checked against [`MAX_CONTROL`].
pub fn control_len(prefix: [u8; 4]) -> Result<usize, ControlError> {
    let len = usize::try_from(u32::from_le_bytes(prefix)).unwrap_or(usize::MAX);
    if len > MAX_CONTROL { Err(ControlError::TooLong(len)) } else { Ok(len) }
}

/// Decodes a control message body (after the prefix); trailing bytes are an error.
pub fn decode_control<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ControlError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(ControlError::Malformed(format!("{} trailing bytes", rest.len()))),
        Err(e) => Err(ControlError::Malformed(e.to_string())),
    }
}

/// The rate of a transfer from its progress samples `(µs since start, cumulative bytes)` in
/// time order: bytes and time between the first sample at or after the warm-up
/// (`WARM_UP_SHARE` of the whole) and the last sample. `None` with too little to measure.
pub fn measure(samples: &[(u64, u64)]) -> Option<(u64, u64)> {
    let &(end_t, end_b) = samples.last()?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let warm = (end_t as f64 * WARM_UP_SHARE) as u64;
    let &(start_t, start_b) = samples.iter().find(|(t, _)| *t >= warm)?;
    let micros = end_t.checked_sub(start_t).filter(|m| *m > 0)?;
    Some((end_b.saturating_sub(start_b), micros))
}

/// IPv4 and UDP header bytes of a datagram.
pub const IPV4_UDP_HEADER: u64 = 28;
/// IPv6 and UDP header bytes of a datagram.
pub const IPV6_UDP_HEADER: u64 = 48;

/// IP bytes of `datagrams` UDP datagrams that carried `udp_bytes` of UDP payload.
pub fn ip_bytes(udp_bytes: u64, datagrams: u64, ipv6: bool) -> u64 {
    let header = if ipv6 { IPV6_UDP_HEADER } else { IPV4_UDP_HEADER };
    udp_bytes.saturating_add(datagrams.saturating_mul(header))
}

/// The IP-layer rate of a transfer whose payload moved at `payload_bits_per_s`, when carrying
/// `payload_bytes` took `ip_bytes` on the wire (QUIC framing, packet protection, UDP and IP
/// headers, acknowledgements and retransmissions of that direction). Without payload the
/// payload rate is returned unchanged.
pub fn ip_rate(payload_bits_per_s: u64, payload_bytes: u64, ip_bytes: u64) -> u64 {
    if payload_bytes == 0 || ip_bytes < payload_bytes {
        return payload_bits_per_s;
    }
    u64::try_from(u128::from(payload_bits_per_s) * u128::from(ip_bytes) / u128::from(payload_bytes))
        .unwrap_or(u64::MAX)
}

/// Bits per second of `bytes` in `micros`.
pub fn bits_per_s(bytes: u64, micros: u64) -> u64 {
    if micros == 0 {
        return 0;
    }
    u64::try_from(u128::from(bytes) * 8_000_000 / u128::from(micros)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip_and_refuse_garbage() {
        let req = SpeedTestRequest { direction: Direction::Upload, max_bytes: 100_000_000, max_ms: 8_000 };
        let bytes = encode_control(&req);
        let len = control_len(bytes[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(decode_control::<SpeedTestRequest>(&bytes[4..]).unwrap(), req);
        assert!(decode_control::<SpeedTestRequest>(&bytes[4..bytes.len() - 1]).is_err());
        let mut long = bytes[4..].to_vec();
        long.push(0);
        assert!(decode_control::<SpeedTestRequest>(&long).is_err());
        assert_eq!(control_len(5000u32.to_le_bytes()), Err(ControlError::TooLong(5000)));
        let reply = SpeedTestReply::Measured { bytes: 1, micros: 2, total_bytes: 3 };
        assert_eq!(decode_control::<SpeedTestReply>(&encode_control(&reply)[4..]).unwrap(), reply);
    }

    #[test]
    fn the_rate_leaves_out_the_warm_up() {
        // Slow for the first second, then 1 MB per 100 ms (80 Mbit/s) for 3 s.
        let mut samples = vec![(0, 0), (500_000, 100_000), (1_000_000, 200_000)];
        for i in 1..=30u64 {
            samples.push((1_000_000 + i * 100_000, 200_000 + i * 1_000_000));
        }
        let (bytes, micros) = measure(&samples).unwrap();
        assert_eq!((bytes, micros), (30_000_000, 3_000_000));
        assert_eq!(bits_per_s(bytes, micros), 80_000_000);
        assert_eq!(measure(&[]), None);
        assert_eq!(measure(&[(0, 0)]), None);
        assert_eq!(bits_per_s(5, 0), 0);
    }

    #[test]
    fn the_ip_rate_adds_the_measured_overhead() {
        // 1000 full datagrams of 1452 UDP bytes carrying 1,400,000 payload bytes.
        let ip = ip_bytes(1_452_000, 1000, false);
        assert_eq!(ip, 1_480_000);
        assert_eq!(ip_rate(95_000_000, 1_400_000, ip), 100_428_571);
        assert_eq!(ip_bytes(1_452_000, 1000, true), 1_500_000);
        // Nothing to scale by: the payload rate stays.
        assert_eq!(ip_rate(95_000_000, 0, ip), 95_000_000);
        assert_eq!(ip_rate(95_000_000, 2_000_000, ip), 95_000_000);
    }
}
