//! Latency, jitter and loss by ICMP echo ("ping"), when the agent may use it: an unprivileged
//! ICMP socket (Linux `SOCK_DGRAM`, allowed when the agent's group is in
//! `net.ipv4.ping_group_range`), else a raw socket (root or `CAP_NET_RAW`). Packets are built
//! and parsed by pure functions here, so that a reply can be fuzzed without a network.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parta_protocol::espd::{LatencyMethod, LatencyStats};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::latency::stats;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// Bytes after the 8-byte ICMP header: a marker, so a raw socket tells our replies apart.
const PAYLOAD: &[u8; 16] = b"parta-espd-probe";

/// An open ICMP socket towards one address family.
#[derive(Debug)]
pub struct Pinger {
    socket: Socket,
    v6: bool,
    /// A raw socket: IPv4 replies start with the IP header, and every ICMP packet of the host
    /// arrives, so the identifier is checked.
    raw: bool,
    id: u16,
}

/// An echo request: type, code 0, checksum, identifier, sequence, [`PAYLOAD`]. The ICMPv6
/// checksum covers a pseudo-header the kernel fills in, so it is left 0 there.
pub fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD);
    if !v6 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 =
        data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above folded the sum into 16 bits.
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

/// The sequence number of an echo reply of ours in `packet`, or `None` for anything else.
/// `ip_header`: the packet starts with an IPv4 header (raw IPv4 sockets); `id`: the identifier
/// to require (raw sockets; an unprivileged socket's kernel matches it).
pub fn parse_reply(packet: &[u8], v6: bool, ip_header: bool, id: Option<u16>) -> Option<u16> {
    let icmp = if ip_header {
        let first = *packet.first()?;
        if first >> 4 != 4 {
            return None;
        }
        packet.get(usize::from(first & 0x0f) * 4..)?
    } else {
        packet
    };
    let header = icmp.get(..8)?;
    let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if header[0] != reply || header[1] != 0 || icmp.get(8..8 + PAYLOAD.len())? != PAYLOAD {
        return None;
    }
    let got_id = u16::from_be_bytes([header[4], header[5]]);
    if id.is_some_and(|want| want != got_id) {
        return None;
    }
    Some(u16::from_be_bytes([header[6], header[7]]))
}

impl Pinger {
    /// Opens an ICMP socket for `ip`'s family: unprivileged first, raw second.
    pub fn open(ip: IpAddr) -> io::Result<Self> {
        let v6 = ip.is_ipv6();
        let (domain, protocol) =
            if v6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) };
        let (socket, raw) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
            Ok(s) => (s, false),
            Err(dgram) => match Socket::new(domain, Type::RAW, Some(protocol)) {
                Ok(s) => (s, true),
                Err(raw) => {
                    return Err(io::Error::new(
                        raw.kind(),
                        format!(
                            "no ICMP socket: unprivileged ({dgram}; the agent's group must be in \
                             net.ipv4.ping_group_range), raw ({raw}; needs CAP_NET_RAW)"
                        ),
                    ));
                }
            },
        };
        // Raw sockets see every ICMP packet of the host: tell ours by a random identifier.
        let id = rand::random::<u16>();
        Ok(Self { socket, v6, raw, id })
    }

    /// Sends `probes` echo requests to `ip`, `spacing` apart, each given `timeout` for its
    /// reply. A late reply of an earlier probe is not counted.
    pub fn probe(&self, ip: IpAddr, probes: u16, spacing: Duration, timeout: Duration) -> LatencyStats {
        let to = SockAddr::from(SocketAddr::new(ip, 0));
        let mut rtts = Vec::with_capacity(usize::from(probes));
        let mut buf = [0u8; 1500];
        let first_seq = rand::random::<u16>();
        for i in 0..probes {
            if i > 0 {
                std::thread::sleep(spacing);
            }
            let seq = first_seq.wrapping_add(i);
            let sent = Instant::now();
            if self.socket.send_to(&echo_request(self.v6, self.id, seq), &to).is_err() {
                continue;
            }
            let deadline = sent + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || self.socket.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                let Ok(n) = (&self.socket).read(&mut buf) else { break };
                let ip_header = self.raw && !self.v6;
                let id = self.raw.then_some(self.id);
                if parse_reply(&buf[..n], self.v6, ip_header, id) == Some(seq) {
                    rtts.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                    break;
                }
            }
        }
        stats(LatencyMethod::Icmp, probes, &rtts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_requests_carry_a_valid_checksum() {
        let p = echo_request(false, 0x1234, 7);
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum(&p), 0);
        // RFC 1071's example words.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        assert_eq!(echo_request(true, 1, 2)[..4], [128, 0, 0, 0]);
    }

    #[test]
    fn replies_are_ours_only_with_type_marker_and_identifier() {
        let mut reply = echo_request(false, 0xbeef, 42);
        reply[0] = ECHO_REPLY_V4;
        assert_eq!(parse_reply(&reply, false, false, None), Some(42));
        assert_eq!(parse_reply(&reply, false, false, Some(0xbeef)), Some(42));
        assert_eq!(parse_reply(&reply, false, false, Some(0xbeee)), None);
        // Behind a 20-byte IPv4 header, as a raw socket reads it.
        let mut with_ip = vec![0x45u8];
        with_ip.extend_from_slice(&[0; 19]);
        with_ip.extend_from_slice(&reply);
        assert_eq!(parse_reply(&with_ip, false, true, Some(0xbeef)), Some(42));
        // Our own request (a raw socket sees it on loopback), another pinger's reply, garbage.
        assert_eq!(parse_reply(&echo_request(false, 0xbeef, 42), false, false, None), None);
        let mut other = reply.clone();
        other[8] = b'X';
        assert_eq!(parse_reply(&other, false, false, None), None);
        for cut in 0..reply.len() {
            assert_eq!(parse_reply(&reply[..cut], false, false, None), None);
            assert_eq!(parse_reply(&with_ip[..cut], false, true, None), None);
        }
        assert_eq!(parse_reply(&[0x4f], false, true, None), None);
        let mut v6 = echo_request(true, 1, 9);
        v6[0] = ECHO_REPLY_V6;
        assert_eq!(parse_reply(&v6, true, false, None), Some(9));
        assert_eq!(parse_reply(&v6, false, false, None), None);
    }
}
