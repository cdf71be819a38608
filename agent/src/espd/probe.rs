//! One URL, stage by stage: DNS through the configured resolvers, TCP connect, TLS handshake,
//! HTTP request — each timed, each failure named by its stage, and content-filter block pages
//! recognised by configured markers. Blocking I/O with timeouts: checks run one after another
//! on a thread of their own.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parta_protocol::espd::{CheckKind, CheckOutcome, CheckResult, Stages};

use super::dns;

/// Most of a response read (status line, headers and the start of the body, where block pages
/// say what they are).
const MAX_RESPONSE: usize = 64 * 1024;

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https`?
    pub tls: bool,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port (80/443 unless given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses a URL; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("must start with http:// or https://".into());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err("credentials in URLs are not supported".into());
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("unexpected {after:?} after the host")),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| format!("bad port {p:?}"))?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("no host, or spaces in the URL".into());
        }
        if host.parse::<IpAddr>().is_err() && dns::build_query(0, &host, dns::TYPE_A).is_err() {
            return Err(format!("{host:?} is not a host name (write international names in punycode)"));
        }
        Ok(Self { tls, host: host.to_ascii_lowercase(), port, path })
    }
}

/// What a probe needs besides the URL.
#[derive(Clone)]
pub struct ProbeSettings {
    /// Resolvers, tried in order.
    pub resolvers: Vec<SocketAddr>,
    /// Per-stage timeout.
    pub timeout: Duration,
    /// TLS client configuration (trusted roots).
    pub tls: Arc<rustls::ClientConfig>,
    /// Texts that identify the content filter's block page.
    pub block_markers: Vec<String>,
    /// `User-Agent`.
    pub user_agent: String,
}

impl std::fmt::Debug for ProbeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeSettings")
            .field("resolvers", &self.resolvers)
            .field("timeout", &self.timeout)
            .field("block_markers", &self.block_markers)
            .finish_non_exhaustive()
    }
}

/// How far a fetch got.
#[derive(Debug)]
enum Fetch {
    /// A stage failed.
    Failed(CheckOutcome, String),
    /// The connection was reset or closed after the request went out (a filter's reset, or
    /// one during the TLS handshake after the client hello carried the name).
    Reset(String),
    /// An HTTP response: status and the head of headers and body.
    Response(u16, String),
}

/// µs since `t` as a stage time: at least 1, since 0 means "not reached".
pub(super) fn stage_us(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX).max(1)
}

/// ms since `t`, for a check's duration.
pub(super) fn elapsed_ms(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_millis()).unwrap_or(u32::MAX)
}

/// Resolves through the first resolver that answers; failures of every resolver are named.
pub fn resolve(host: &str, s: &ProbeSettings) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    if s.resolvers.is_empty() {
        return Err("no resolvers configured".into());
    }
    let mut errors = Vec::new();
    for r in &s.resolvers {
        match dns::resolve(*r, host, s.timeout) {
            Ok(a) => return Ok(a),
            // The name does not exist: another resolver of the same network will say the same.
            Err(e @ dns::DnsError::NxDomain(_)) => return Err(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(errors.join("; "))
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

fn fetch(url: &Url, s: &ProbeSettings, stages: &mut Stages, addresses: &mut Vec<String>) -> Fetch {
    let t = Instant::now();
    let ips = match resolve(&url.host, s) {
        Ok(a) => a,
        Err(e) => return Fetch::Failed(CheckOutcome::DnsFailed, e),
    };
    if url.host.parse::<IpAddr>().is_err() {
        stages.dns_us = stage_us(t);
    }
    addresses.extend(ips.iter().take(parta_protocol::validate::MAX_CHECK_ADDRESSES).map(ToString::to_string));
    // The first address (as a browser would, without happy eyeballs).
    let addr = SocketAddr::new(ips[0], url.port);
    let t = Instant::now();
    let mut tcp = match TcpStream::connect_timeout(&addr, s.timeout) {
        Ok(c) => c,
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    format!("TCP connect to {addr} timed out after {:?}", s.timeout)
                }
                std::io::ErrorKind::ConnectionRefused => format!("TCP connect to {addr} refused"),
                _ => format!("TCP connect to {addr}: {e}"),
            };
            return Fetch::Failed(CheckOutcome::TcpFailed, why);
        }
    };
    stages.connect_us = stage_us(t);
    if tcp.set_read_timeout(Some(s.timeout)).and_then(|()| tcp.set_write_timeout(Some(s.timeout))).is_err() {
        return Fetch::Failed(CheckOutcome::TcpFailed, "cannot set socket timeouts".into());
    }
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        if url.port == if url.tls { 443 } else { 80 } {
            url.host.clone()
        } else {
            format!("{}:{}", url.host, url.port)
        },
        s.user_agent
    );
    if url.tls {
        let Ok(name) = rustls::pki_types::ServerName::try_from(url.host.clone()) else {
            return Fetch::Failed(
                CheckOutcome::TlsFailed,
                format!("{:?} cannot be a TLS server name", url.host),
            );
        };
        let mut conn = match rustls::ClientConnection::new(Arc::clone(&s.tls), name) {
            Ok(c) => c,
            Err(e) => return Fetch::Failed(CheckOutcome::TlsFailed, format!("TLS: {e}")),
        };
        let t = Instant::now();
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                return tls_failure(&e, s.timeout);
            }
        }
        stages.tls_us = stage_us(t);
        let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
        exchange(&mut stream, &request, stages)
    } else {
        exchange(&mut tcp, &request, stages)
    }
}

fn tls_failure(e: &std::io::Error, timeout: Duration) -> Fetch {
    if is_reset(e) || e.kind() == std::io::ErrorKind::UnexpectedEof {
        return Fetch::Reset(format!("connection closed during the TLS handshake ({e})"));
    }
    if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
        return Fetch::Failed(CheckOutcome::TlsFailed, format!("TLS handshake timed out after {timeout:?}"));
    }
    let why = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => {
            use rustls::CertificateError as C;
            let why = match c {
                C::UnknownIssuer => {
                    "issued by a CA this probe does not trust (espd.ca_file adds CAs)".to_owned()
                }
                C::Expired | C::ExpiredContext { .. } => "expired".to_owned(),
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "not valid yet (or the probe's clock is wrong)".to_owned()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => "issued for another name".to_owned(),
                C::Revoked => "revoked".to_owned(),
                other => format!("{other:?}"),
            };
            format!("TLS: the server's certificate is not valid: {why}")
        }
        Some(other) => format!("TLS: {other}"),
        None => format!("TLS: {e}"),
    };
    Fetch::Failed(CheckOutcome::TlsFailed, why)
}

fn exchange(stream: &mut impl ReadWrite, request: &str, stages: &mut Stages) -> Fetch {
    let t = Instant::now();
    if let Err(e) = stream.write_all(request.as_bytes()).and_then(|()| stream.flush()) {
        return if is_reset(&e) {
            Fetch::Reset(format!("connection reset when sending the request ({e})"))
        } else {
            Fetch::Failed(CheckOutcome::TcpFailed, format!("sending the request: {e}"))
        };
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if head.is_empty() {
                    stages.response_us = stage_us(t);
                }
                head.extend_from_slice(&buf[..n]);
                if head.len() >= MAX_RESPONSE {
                    break;
                }
            }
            // A TLS server closing without close_notify after the body: what was read counts.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !head.is_empty() => break,
            Err(e) if is_reset(&e) && head.is_empty() => {
                return Fetch::Reset(format!("connection reset after the request ({e})"));
            }
            Err(e) if head.is_empty() => {
                let why = if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
                {
                    "no response within the timeout".to_owned()
                } else {
                    format!("reading the response: {e}")
                };
                return Fetch::Failed(CheckOutcome::HttpFailed, why);
            }
            // Timeout or reset in the middle of the body: the head is enough.
            Err(_) => break,
        }
    }
    let text = parta_common::text::decode_utf8_or_cp1251(&head);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c));
    match status {
        Some(code) => Fetch::Response(code, text),
        None if head.is_empty() => {
            Fetch::Failed(CheckOutcome::HttpFailed, "the server closed without a response".into())
        }
        None => Fetch::Failed(CheckOutcome::HttpFailed, "not an HTTP response".into()),
    }
}

/// Read + Write, for the plain and the TLS stream alike.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn marker_in<'a>(text: &str, markers: &'a [String]) -> Option<&'a str> {
    markers.iter().find(|m| !m.is_empty() && text.contains(m.as_str())).map(String::as_str)
}

/// Checks a must-reach (`Reach`) or must-be-blocked (`Filter`) URL.
pub fn check_url(kind: CheckKind, url_text: &str, s: &ProbeSettings, now_ms: i64) -> CheckResult {
    let started = Instant::now();
    let mut result = CheckResult::new(kind, url_text, now_ms);
    let fetched = match Url::parse(url_text) {
        Ok(url) => fetch(&url, s, &mut result.stages, &mut result.addresses),
        Err(e) => Fetch::Failed(CheckOutcome::Error, format!("bad URL: {e}")),
    };
    let (outcome, error) = match (kind, fetched) {
        (_, Fetch::Failed(CheckOutcome::Error, e)) => (CheckOutcome::Error, e),
        (CheckKind::Filter, Fetch::Response(code, text)) => {
            result.http_status = code;
            match marker_in(&text, &s.block_markers) {
                Some(m) => (CheckOutcome::Ok, format!("blocked: the filter's block page (marker {m:?})")),
                None => (CheckOutcome::NotBlocked, format!("reachable (HTTP {code}); it must be blocked")),
            }
        }
        // Not fetched: blocked at DNS, TCP, TLS or by a reset — what the filter must do. How
        // it was blocked is kept for the auditor.
        (CheckKind::Filter, Fetch::Failed(_, e) | Fetch::Reset(e)) => {
            (CheckOutcome::Ok, format!("blocked: {e}"))
        }
        (_, Fetch::Failed(outcome, e)) => (outcome, e),
        (_, Fetch::Reset(e)) => (CheckOutcome::Blocked, format!("{e}: typical of a content filter")),
        (_, Fetch::Response(code, text)) => {
            result.http_status = code;
            if let Some(m) = marker_in(&text, &s.block_markers) {
                (CheckOutcome::Blocked, format!("the content filter's block page (marker {m:?})"))
            } else if code >= 400 {
                (CheckOutcome::HttpFailed, format!("HTTP {code}"))
            } else {
                (CheckOutcome::Ok, String::new())
            }
        }
    };
    result.outcome = outcome;
    result.error = error;
    parta_protocol::validate::truncate_text(&mut result.error, parta_protocol::validate::MAX_TEXT);
    result.duration_ms = elapsed_ms(started);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_why() {
        let u = Url::parse("https://MySchool.edu.ru/").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port, u.path.as_str()), (true, "myschool.edu.ru", 443, "/"));
        let u = Url::parse("http://10.0.0.5:8080?x=1").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port, u.path.as_str()), (false, "10.0.0.5", 8080, "/?x=1"));
        let u = Url::parse("https://[2001:db8::1]:8443/a b").unwrap_err();
        assert!(u.contains("spaces"), "{u}");
        let u = Url::parse("https://[2001:db8::1]:8443/a").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 8443));
        for (bad, why) in [
            ("ftp://x/", "http://"),
            ("https://user:pw@x/", "credentials"),
            ("https://x:99999/", "bad port"),
            ("https:///", "no host"),
            ("https://школа.рф/", "punycode"),
        ] {
            let e = Url::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn markers_match_text_only_when_configured() {
        let m = vec![String::new(), "Доступ ограничен".to_owned()];
        assert_eq!(marker_in("<h1>Доступ ограничен</h1>", &m), Some("Доступ ограничен"));
        assert_eq!(marker_in("<h1>Школа</h1>", &m), None);
    }
}
