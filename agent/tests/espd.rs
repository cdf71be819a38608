//! ЕСПД checks against stand-ins started by the test on loopback: a DNS responder, an HTTP
//! server (pages, an error, a block page in Windows-1251, a reset), HTTPS servers with a
//! trusted and an untrusted certificate. Each failure must come out as its own kind. (The
//! network-namespace tests with shaping, dnsmasq and nginx are in `tests/`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use parta_agent::espd::{EspdSection, EspdSettings, dns, run_checks};
use parta_protocol::espd::{CheckKind, CheckOutcome, RunTrigger};

/// Answers A queries: `*.good.test` and `bad.test` → 127.0.0.1, `gone.test` → NXDOMAIN,
/// `broken.test` → SERVFAIL, `slow.test` → nothing; AAAA → no records.
fn dns_responder() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { return };
            let q = &buf[..n];
            // Name labels start at 12; find the end of the name.
            let mut at = 12;
            let mut labels = Vec::new();
            while q[at] != 0 {
                let len = usize::from(q[at]);
                labels.push(String::from_utf8_lossy(&q[at + 1..at + 1 + len]).into_owned());
                at += 1 + len;
            }
            let name = labels.join(".");
            let qtype = u16::from_be_bytes([q[at + 1], q[at + 2]]);
            let question_end = at + 5;
            let mut r = q[..question_end].to_vec();
            r[2] = 0x81;
            let (rcode, answer) = match name.as_str() {
                "slow.test" => continue,
                "gone.test" => (3, false),
                "broken.test" => (2, false),
                _ if qtype == dns::TYPE_A => (0, true),
                _ => (0, false),
            };
            r[3] = 0x80 | rcode;
            if answer {
                r[7] = 1;
                r.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
            }
            let _ = socket.send_to(&r, from);
        }
    });
    port
}

fn read_request(s: &mut impl Read) -> String {
    let mut req = Vec::new();
    let mut b = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&req).into_owned()
}

fn response(path: &str) -> Vec<u8> {
    let (status, body): (&str, Vec<u8>) = match path {
        "/" => ("200 OK", b"<h1>school</h1>".to_vec()),
        "/err" => ("503 Service Unavailable", b"down".to_vec()),
        // The block page in Windows-1251, as old filter appliances serve it.
        "/block" => {
            ("200 OK", b"<h1>\xc4\xee\xf1\xf2\xf3\xef \xee\xe3\xf0\xe0\xed\xe8\xf7\xe5\xed</h1>".to_vec())
        }
        _ => ("404 Not Found", b"no".to_vec()),
    };
    let mut r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
        .into_bytes();
    r.extend(body);
    r
}

fn path_of(request: &str) -> String {
    request.split_whitespace().nth(1).unwrap_or("/").to_owned()
}

/// Plain HTTP; `/reset` closes with the request unread, which makes the kernel send a RST.
fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut peek = [0u8; 64];
            std::thread::sleep(Duration::from_millis(20));
            let n = s.peek(&mut peek).unwrap_or(0);
            if String::from_utf8_lossy(&peek[..n]).starts_with("GET /reset ") {
                drop(s);
                continue;
            }
            let req = read_request(&mut s);
            let _ = s.write_all(&response(&path_of(&req)));
        }
    });
    port
}

/// HTTPS with `cert`/`key` (PEM).
fn https_server(cert_pem: &str, key_pem: &str) -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    let certs = vec![rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(tcp) = s else { continue };
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let req = read_request(&mut tls);
                let _ = tls.write_all(&response(&path_of(&req)));
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

struct Pki {
    dir: tempfile::TempDir,
    trusted: (String, String),
    untrusted: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["www.good.test".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    let bad_key = KeyPair::generate().unwrap();
    let bad = CertificateParams::new(vec!["bad.test".to_owned()]).unwrap().self_signed(&bad_key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    Pki { dir, trusted: (leaf.pem(), key.serialize_pem()), untrusted: (bad.pem(), bad_key.serialize_pem()) }
}

#[test]
fn every_failure_kind_is_told_apart() {
    let dns_port = dns_responder();
    let http = http_server();
    let pki = pki();
    let good_tls = https_server(&pki.trusted.0, &pki.trusted.1);
    let bad_tls = https_server(&pki.untrusted.0, &pki.untrusted.1);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let reach = vec![
        format!("http://www.good.test:{http}/"),
        format!("https://www.good.test:{good_tls}/"),
        format!("https://bad.test:{bad_tls}/"),
        format!("http://www.good.test:{http}/err"),
        format!("http://www.good.test:{http}/block"),
        format!("http://www.good.test:{http}/reset"),
        format!("http://gone.test:{http}/"),
        format!("http://127.0.0.1:{closed}/"),
    ];
    let block = vec![
        format!("http://www.good.test:{http}/block"),
        format!("http://www.good.test:{http}/"),
        format!("http://127.0.0.1:{closed}/"),
        format!("http://gone.test:{http}/"),
    ];
    let section = EspdSection {
        locality: Some("rural".into()),
        resolvers: Some(vec![format!("127.0.0.1:{dns_port}")]),
        must_reach: Some(reach.clone()),
        must_block: Some(block.clone()),
        latency_target: Some(format!("127.0.0.1:{http}")),
        latency_probes: Some(5),
        timeout: Some("1s".into()),
        ca_bundle: Some(pki.dir.path().join("ca.pem")),
        ..EspdSection::default()
    };
    let settings = EspdSettings::resolve(section, "").unwrap();
    let run = run_checks(&settings, settings.tls_config().unwrap(), RunTrigger::Reachability, None);
    assert_eq!((run.required_mbps, run.locality.as_str()), (50, "rural"));
    let find = |kind: CheckKind, target: &str| {
        run.checks
            .iter()
            .find(|c| c.kind == kind && c.target == target)
            .unwrap_or_else(|| panic!("{target}: {run:#?}"))
    };
    let expect = [
        (&reach[0], CheckOutcome::Ok, ""),
        (&reach[1], CheckOutcome::Ok, ""),
        (&reach[2], CheckOutcome::TlsFailed, "certificate"),
        (&reach[3], CheckOutcome::HttpFailed, "HTTP 503"),
        (&reach[4], CheckOutcome::Blocked, "Доступ ограничен"),
        (&reach[5], CheckOutcome::Blocked, "reset"),
        (&reach[6], CheckOutcome::DnsFailed, "NXDOMAIN"),
        (&reach[7], CheckOutcome::TcpFailed, "refused"),
    ];
    for (target, outcome, why) in expect {
        let c = find(CheckKind::Reach, target);
        assert_eq!(c.outcome, outcome, "{target}: {c:#?}");
        assert!(c.error.contains(why), "{target}: {:?} should say {why:?}", c.error);
    }
    let ok = find(CheckKind::Reach, &reach[1]);
    assert_eq!(ok.http_status, 200);
    assert!(
        ok.stages.dns_us > 0 && ok.stages.connect_us > 0 && ok.stages.tls_us > 0 && ok.stages.response_us > 0
    );
    assert_eq!(ok.addresses, vec!["127.0.0.1".to_owned()]);
    for (target, outcome) in [
        (&block[0], CheckOutcome::Ok),
        (&block[1], CheckOutcome::NotBlocked),
        (&block[2], CheckOutcome::Ok),
        (&block[3], CheckOutcome::Ok),
    ] {
        assert_eq!(find(CheckKind::Filter, target).outcome, outcome, "{target}");
    }
    let dns = run.checks.iter().filter(|c| c.kind == CheckKind::Dns).collect::<Vec<_>>();
    assert!(
        !dns.is_empty()
            && dns.iter().all(|c| c.outcome == CheckOutcome::Ok || c.target.starts_with("gone.test"))
    );
    let lat = find(CheckKind::Latency, &format!("127.0.0.1:{http}")).latency.unwrap();
    assert_eq!((lat.sent, lat.received), (5, 5));
    // The run is valid protocol and survives the codec.
    let report = parta_protocol::Report {
        seq: 1,
        agent_time_ms: run.started_at_ms,
        samples: vec![parta_protocol::Sample::Connectivity(Box::new(run))],
    };
    parta_protocol::validate::validate_report(&report).unwrap();
}

#[test]
fn resolver_failures_are_named() {
    let port = dns_responder();
    let resolver = format!("127.0.0.1:{port}").parse().unwrap();
    let t = Duration::from_millis(400);
    assert_eq!(
        dns::resolve(resolver, "www.good.test", t).unwrap(),
        vec![std::net::IpAddr::from([127, 0, 0, 1])]
    );
    assert!(matches!(dns::resolve(resolver, "gone.test", t), Err(dns::DnsError::NxDomain(_))));
    assert!(matches!(dns::resolve(resolver, "broken.test", t), Err(dns::DnsError::Rcode(_, "SERVFAIL"))));
    let started = std::time::Instant::now();
    assert!(matches!(dns::resolve(resolver, "slow.test", t), Err(dns::DnsError::Timeout(..))));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Nothing listens: refused (ICMP port unreachable), told apart from a timeout.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = dns::resolve(dead, "www.good.test", t).unwrap_err();
    assert!(matches!(e, dns::DnsError::Unreachable(..)), "{e}");
}
