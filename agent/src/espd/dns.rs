//! A minimal DNS stub: A/AAAA queries over UDP to a configured resolver, so that a check can
//! name the resolver that failed (the system resolver hides which one it asked, and caches).
//! [`parse_reply`] is pure and fuzzed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Record types asked for.
pub const TYPE_A: u16 = 1;
/// IPv6 address record.
pub const TYPE_AAAA: u16 = 28;

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name is not a valid DNS name.
    #[error("{0:?} is not a valid host name")]
    BadName(String),
    /// No reply within the timeout.
    #[error("no answer from the resolver {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    /// The resolver could not be reached (ICMP unreachable, no route).
    #[error("resolver {0} unreachable: {1}")]
    Unreachable(SocketAddr, String),
    /// The name does not exist (NXDOMAIN).
    #[error("the name does not exist (NXDOMAIN from {0})")]
    NxDomain(SocketAddr),
    /// SERVFAIL, REFUSED or another error code.
    #[error("the resolver {0} answered {1}")]
    Rcode(SocketAddr, &'static str),
    /// The name exists but has no address.
    #[error("no A or AAAA record (from {0})")]
    NoAddress(SocketAddr),
    /// The reply is not a valid DNS message for the query.
    #[error("malformed reply from {0}: {1}")]
    Malformed(SocketAddr, String),
}

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Response code (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED).
    pub rcode: u8,
    /// The reply was truncated (TC bit).
    pub truncated: bool,
    /// A and AAAA records of the answer section.
    pub addresses: Vec<IpAddr>,
}

/// Builds a recursive query for `name`.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let name = name.trim_end_matches('.');
    let bad = || DnsError::BadName(name.to_owned());
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend(id.to_be_bytes());
    q.extend([0x01, 0x00]); // RD
    q.extend([0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.split('.') {
        let len = u8::try_from(label.len()).map_err(|_| bad())?;
        if len == 0 || len > 63 || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad());
        }
        q.push(len);
        q.extend(label.as_bytes());
    }
    q.push(0);
    q.extend(qtype.to_be_bytes());
    q.extend([0, 1]); // IN
    Ok(q)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]])).ok_or_else(|| format!("cut at byte {at}"))
}

/// Skips a (possibly compressed) name starting at `at`; returns the offset after it.
fn skip_name(b: &[u8], mut at: usize) -> Result<usize, String> {
    // A name in the message is at most 255 bytes: 128 labels bound the loop.
    for _ in 0..128 {
        let len = *b.get(at).ok_or_else(|| format!("name cut at byte {at}"))?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok(at + 1),
            0x00 => at += 1 + usize::from(len),
            0xc0 => {
                b.get(at + 1).ok_or_else(|| format!("pointer cut at byte {at}"))?;
                return Ok(at + 2);
            }
            _ => return Err(format!("bad label type {len:#04x} at byte {at}")),
        }
    }
    Err("name longer than 128 labels".into())
}

/// Parses the reply to query `id`.
pub fn parse_reply(b: &[u8], id: u16) -> Result<Reply, String> {
    if b.len() < 12 {
        return Err(format!("{} bytes, shorter than a header", b.len()));
    }
    if u16_at(b, 0)? != id {
        return Err("reply to another query (id differs)".into());
    }
    let flags = u16_at(b, 2)?;
    if flags & 0x8000 == 0 {
        return Err("not a response (QR bit clear)".into());
    }
    let rcode = u8::try_from(flags & 0x000f).unwrap_or(0);
    let truncated = flags & 0x0200 != 0;
    let (qd, an) = (u16_at(b, 4)?, u16_at(b, 6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(b, at)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..an {
        at = skip_name(b, at)?;
        let rtype = u16_at(b, at)?;
        let rdlen = usize::from(u16_at(b, at + 8)?);
        let data = b.get(at + 10..at + 10 + rdlen).ok_or_else(|| format!("record data cut at byte {at}"))?;
        match (rtype, data.len()) {
            (TYPE_A, 4) => addresses.push(IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))),
            (TYPE_AAAA, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(data);
                addresses.push(IpAddr::V6(Ipv6Addr::from(o)));
            }
            (TYPE_A | TYPE_AAAA, n) => return Err(format!("address record of {n} bytes")),
            _ => {} // CNAME and others: the addresses follow
        }
        at += 10 + rdlen;
    }
    Ok(Reply { rcode, truncated, addresses })
}

fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        1 => "FORMERR",
        2 => "SERVFAIL",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "an error code",
    }
}

/// Asks `resolver` for the addresses of `name` (A, then AAAA when there is no A record), with
/// two tries inside `timeout`.
pub fn resolve(resolver: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<IpAddr>, DnsError> {
    let unreachable = |e: std::io::Error| DnsError::Unreachable(resolver, e.to_string());
    let bind: SocketAddr = if resolver.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).map_err(unreachable)?;
    socket.connect(resolver).map_err(unreachable)?;
    let deadline = Instant::now() + timeout;
    for qtype in [TYPE_A, TYPE_AAAA] {
        let id = rand::random::<u16>();
        let query = build_query(id, name, qtype)?;
        let reply = exchange(&socket, &query, id, resolver, deadline, timeout)?;
        match reply.rcode {
            0 if !reply.addresses.is_empty() => return Ok(reply.addresses),
            0 => {}
            3 => return Err(DnsError::NxDomain(resolver)),
            r => return Err(DnsError::Rcode(resolver, rcode_name(r))),
        }
    }
    Err(DnsError::NoAddress(resolver))
}

/// Sends `query` (again after half the time is gone) and waits for its reply.
fn exchange(
    socket: &UdpSocket,
    query: &[u8],
    id: u16,
    resolver: SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<Reply, DnsError> {
    let unreachable = |e: std::io::Error| DnsError::Unreachable(resolver, e.to_string());
    let mut buf = [0u8; 1500];
    for attempt in 0..2u32 {
        socket.send(query).map_err(unreachable)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let until = Instant::now() + if attempt == 0 { left / 2 } else { left };
        loop {
            let wait = until.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(wait)).map_err(unreachable)?;
            match socket.recv(&mut buf) {
                Ok(n) => match parse_reply(&buf[..n], id) {
                    Ok(r) => return Ok(r),
                    // A stray datagram (an earlier query's late reply): keep waiting.
                    Err(e) if e.contains("id differs") => {}
                    Err(e) => return Err(DnsError::Malformed(resolver, e)),
                },
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    break;
                }
                Err(e) => return Err(unreachable(e)),
            }
        }
    }
    Err(DnsError::Timeout(resolver, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: u16, rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = build_query(id, "myschool.edu.ru", TYPE_A).unwrap();
        b[2] = 0x81;
        b[3] = 0x80 | rcode;
        b[7] = u8::try_from(answers.len()).unwrap();
        for (t, data) in answers {
            b.extend([0xc0, 12]); // pointer to the question's name
            b.extend(t.to_be_bytes());
            b.extend([0, 1, 0, 0, 0, 60]);
            b.extend(u16::try_from(data.len()).unwrap().to_be_bytes());
            b.extend(*data);
        }
        b
    }

    #[test]
    fn queries_are_well_formed() {
        let q = build_query(0x1234, "myschool.edu.ru.", TYPE_A).unwrap();
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(&q[12..], b"\x08myschool\x03edu\x02ru\x00\x00\x01\x00\x01");
        for bad in ["", "a..b", "bad name", &"x".repeat(64), "школа.рф"] {
            assert!(build_query(1, bad, TYPE_A).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replies_give_addresses_and_codes() {
        let cname = b"\x03www\xc0\x0c";
        let r = parse_reply(&reply(7, 0, &[(5, cname), (TYPE_A, &[95, 167, 1, 10])]), 7).unwrap();
        assert_eq!(r.addresses, vec![IpAddr::from([95, 167, 1, 10])]);
        assert_eq!(parse_reply(&reply(7, 3, &[]), 7).unwrap().rcode, 3);
        let six = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let r = parse_reply(&reply(9, 0, &[(TYPE_AAAA, &six)]), 9).unwrap();
        assert_eq!(r.addresses, vec!["2001:db8::1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn bad_replies_are_errors() {
        let good = reply(7, 0, &[(TYPE_A, &[10, 0, 0, 1])]);
        assert!(parse_reply(&good, 8).unwrap_err().contains("id differs"));
        for cut in 0..good.len() {
            assert!(parse_reply(&good[..cut], 7).is_err(), "cut {cut}");
        }
        assert!(parse_reply(&reply(7, 0, &[(TYPE_A, &[10, 0, 1])]), 7).is_err());
        let mut query = good.clone();
        query[2] = 0x01; // QR clear
        assert!(parse_reply(&query, 7).is_err());
        // A label type of 0b01 is invalid.
        let mut bad = good;
        bad[12] = 0x41;
        assert!(parse_reply(&bad, 7).is_err());
    }
}
