//! ЕСПД probe end to end on loopback: a real dnsmasq (Debian) as the school's resolver, a
//! plain HTTP server standing in for must-reach sites and a filter's block page, the agent in
//! the probe role (every 2 s, all-day window), the collector and ClickHouse. Every check the
//! agent reported reaches ClickHouse once, and `/api/v1/connectivity` gives the SLA figures of
//! exactly those checks. (Shaped links, TLS and throughput in namespaces: the next tests.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use parta_tests::clickhouse::ClickHouse;
use parta_tests::delayline::{DelayLine, Impairment};
use parta_tests::procs::{Agent, AgentSpec, Collector, Proc, check_espd};
use parta_tests::util::{artifacts_dir, free_tcp_port, free_udp_port, http_get, wait_for};
use serde_json::Value;

const SCHOOL: &str = "74-0031";
/// No environment beyond the configuration file.
const NO_ENV: [(&str, &str); 0] = [];

/// dnsmasq on `ip` (a free port, returned) answering `*.school.test` with `ip` and NXDOMAIN
/// for `gone.test`; nothing upstream.
fn dnsmasq(art: &Path, ip: &str) -> (Proc, u16) {
    let port = free_udp_port();
    let mut p = Proc::new("dnsmasq", art.join("dnsmasq.log"));
    let mut cmd = Command::new("/usr/sbin/dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--conf-file=/dev/null",
        "--bind-interfaces",
    ])
    .arg(format!("--listen-address={ip}"))
    .arg("--user=root")
    .arg(format!("--port={port}"))
    .arg(format!("--address=/school.test/{ip}"))
    .arg("--local=/gone.test/");
    p.spawn(cmd);
    (p, port)
}

/// python3's http.server over a directory with a page and a block page, on `ip` (a free
/// port, returned).
fn http_server(art: &Path, ip: &str) -> (Proc, u16, tempfile::TempDir) {
    let port = free_tcp_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>Моя школа</h1>").unwrap();
    std::fs::write(dir.path().join("blocked.html"), "<h1>Доступ ограничен</h1>").unwrap();
    let mut p = Proc::new("http", art.join("http.log"));
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "http.server", &port.to_string(), "--bind", ip, "--directory"]).arg(dir.path());
    p.spawn(cmd);
    wait_for(Duration::from_secs(20), "the HTTP stand-in", || {
        (http_get(&format!("http://{ip}:{port}/")).0 == 200).then_some(())
    });
    (p, port, dir)
}

/// `openssl` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`ca.pem`), a certificate it signed for `www.school.test` (`good.pem`/`good.key`) and a
/// self-signed one for `bad.school.test` (`bad.pem`/`bad.key`).
fn certificates(dir: &Path) {
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=Test school CA",
            days[0],
            days[1],
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "good.key",
            "-out",
            "good.csr",
            "-subj",
            "/CN=www.school.test",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:www.school.test\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "good.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "good.pem",
            "-extfile",
            "san.ext",
            days[0],
            days[1],
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "bad.key",
            "-out",
            "bad.pem",
            "-subj",
            "/CN=bad.school.test",
            "-addext",
            "subjectAltName=DNS:bad.school.test",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            days[0],
            days[1],
        ],
    );
}

/// python3's HTTPS server on `ip:port` with `cert`/`key` from `dir`.
fn https_server(art: &Path, dir: &Path, ip: &str, port: u16, name: &str) -> Proc {
    const SERVER: &str = "import functools, http.server, ssl, sys\n\
ip, port, cert, key, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]\n\
srv = http.server.ThreadingHTTPServer((ip, port), functools.partial(http.server.SimpleHTTPRequestHandler, directory=root))\n\
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
ctx.load_cert_chain(cert, key)\n\
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n\
srv.serve_forever()\n";
    std::fs::write(dir.join("index.html"), "<h1>Моя школа</h1>").unwrap();
    let mut p = Proc::new("https", art.join(format!("https-{name}.log")));
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SERVER, ip, &port.to_string()])
        .arg(dir.join(format!("{name}.pem")))
        .arg(dir.join(format!("{name}.key")))
        .arg(dir);
    p.spawn(cmd);
    p
}

/// (kind, target, outcome) of every check in the agent's report log.
fn reported_checks(log: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        for s in r["samples"].as_array().unwrap() {
            if let Some(run) = s.get("Connectivity") {
                for c in run["checks"].as_array().unwrap() {
                    let f = |k: &str| c[k].as_str().unwrap().to_owned();
                    out.push((f("kind"), f("target"), f("outcome")));
                }
            }
        }
    }
    out
}

#[test]
fn probe_runs_reach_clickhouse_and_the_api_gives_sla_figures() {
    let art = artifacts_dir("espd_probe_end_to_end");
    let (_dns, dns_port) = dnsmasq(&art, "127.0.0.1");
    let (_http, http, _dir) = http_server(&art, "127.0.0.1");
    let closed = free_tcp_port();
    let ch = ClickHouse::start();
    let collector = Collector::start(&ch, "parta", &art);
    let token = collector.create_token(SCHOOL);
    let reach = [
        format!("http://www.school.test:{http}/"),
        format!("http://www.school.test:{http}/blocked.html"),
        format!("http://gone.test:{http}/"),
    ];
    let block = [
        format!("http://casino.school.test:{http}/blocked.html"),
        format!("http://127.0.0.1:{closed}/"),
        format!("http://www.school.test:{http}/"),
    ];
    let list = |l: &[String]| l.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
    let toml = |enabled: bool| {
        format!(
            "[espd]\nenabled = {enabled}\nevery = \"2s\"\nwindows = [\"mon-sun 00:00-24:00\"]\nlocality = \"rural\"\n\
         resolvers = [\"127.0.0.1:{dns_port}\"]\nmust_reach = [{}]\nmust_block = [{}]\n\
         latency_target = \"127.0.0.1:{http}\"\nlatency_probes = 5\ntimeout = \"2s\"\n\
         speedtest_port = {}\nthroughput_time = \"2s\"\n",
            list(&reach),
            list(&block),
            collector.speedtest_port
        )
    };
    let cfg = art.join("agent.toml");
    // The probe role off at first: the manual checks below must not meet a scheduled speed
    // test of the same school (the collector runs one at a time per school).
    std::fs::write(&cfg, toml(false)).unwrap();
    // `check espd` first, as an installer would: exit 1 (some checks fail), JSON on stdout.
    let spec = AgentSpec::new(&collector, SCHOOL, &token)
        .env("PARTA_CONFIG", cfg.to_str().unwrap())
        .env("PARTA_LOGIND_BUS", "none");
    let mut agent = Agent::start(spec, &art, "agent");
    let out = agent.command().args(["check", "espd", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let manual: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manual["trigger"], "manual");
    assert_eq!(manual["required_mbps"], 50);
    // On loopback the school's link is fast: both directions measured by the collector's
    // speed-test service, download judged against the 50 Mbit/s.
    for kind in ["download", "upload"] {
        let c = manual["checks"].as_array().unwrap().iter().find(|c| c["kind"] == kind).unwrap();
        assert_eq!(c["outcome"], "ok", "{c}");
        let t = &c["throughput"];
        assert!(t["ip_bits_per_s"].as_u64().unwrap() > 50_000_000, "{c}");
        // The IP-layer rate adds what the connection carried beyond the payload: headers, a few
        // per cent, and the datagrams it sent again — loopback drops some when the receiving
        // process falls behind on a busy machine (CI measured 1.16 once for an upload).
        let overhead = t["ip_bits_per_s"].as_f64().unwrap() / t["bits_per_s"].as_f64().unwrap();
        assert!((1.01..1.30).contains(&overhead), "IP/payload {overhead}: {c}");
    }

    // A device that has not enrolled and holds a wrong token gets no speed test: the
    // collector refuses the enrollment and the command says why; the other checks still run.
    let fresh = tempfile::tempdir().unwrap();
    let out = agent
        .command()
        .env("PARTA_ENROLL_TOKEN", "pt1_wrong")
        .env("PARTA_STATE_DIR", fresh.path())
        .args(["check", "espd", "--format", "json"])
        .output()
        .unwrap();
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = refused["checks"].as_array().unwrap().iter().find(|c| c["kind"] == "download").unwrap();
    assert_eq!(c["outcome"], "error", "{c}");
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("no speed test") && why.contains("refused") && why.contains("unknown_token"),
        "{why}"
    );
    assert!(!fresh.path().join("device.pem").exists());

    // Now the probe role. At least three scheduled runs, then stop the agent (it delivers what
    // it spooled before it exits) so that the report log is final.
    std::fs::write(&cfg, toml(true)).unwrap();
    agent.stop();
    agent.restart();
    wait_for(Duration::from_secs(60), "three probe runs", || {
        let runs = reported_checks(agent.report_log()).iter().filter(|c| c.0 == "latency").count();
        (runs >= 3).then_some(())
    });
    // `status` tells the last round and what failed in it.
    let st = agent.status();
    let last = &st["agent"]["last_espd"];
    assert!(last["checks"].as_u64().unwrap() >= 7, "{st}");
    let failed: Vec<&str> = last["failed"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(failed.contains(&format!("reach {}: dns_failed", reach[2]).as_str()), "{failed:?}");
    assert!(failed.contains(&format!("filter {}: not_blocked", block[2]).as_str()), "{failed:?}");
    agent.stop();
    let checks = reported_checks(agent.report_log());
    let runs = checks.iter().filter(|c| c.0 == "latency").count() as u64;
    let outcome = |kind: &str, target: &str| {
        let o: Vec<&str> =
            checks.iter().filter(|c| c.0 == kind && c.1 == target).map(|c| c.2.as_str()).collect();
        assert!(!o.is_empty() && o.iter().all(|x| *x == o[0]), "{target}: {o:?}");
        o[0].to_owned()
    };
    assert_eq!(outcome("reach", &reach[0]), "ok");
    assert_eq!(outcome("reach", &reach[1]), "blocked");
    assert_eq!(outcome("reach", &reach[2]), "dns_failed");
    assert_eq!(outcome("filter", &block[0]), "ok");
    assert_eq!(outcome("filter", &block[1]), "ok");
    assert_eq!(outcome("filter", &block[2]), "not_blocked");
    assert_eq!(outcome("dns", &format!("www.school.test@127.0.0.1:{dns_port}")), "ok");

    // Exactly once in ClickHouse, and the API's figures are those of the reported checks.
    let rows = wait_for(Duration::from_secs(30), "the checks in ClickHouse", || {
        let n = ch.query_u64(&format!(
            "SELECT count() FROM parta.connectivity_checks FINAL WHERE school_id = '{SCHOOL}'"
        ));
        (n >= checks.len() as u64).then_some(n)
    });
    assert_eq!(rows, checks.len() as u64);
    assert_eq!(ch.query_u64("SELECT count() FROM parta.connectivity_checks"), rows, "no duplicate rows");
    let (status, body) = collector.get(&format!("/api/v1/connectivity?school={SCHOOL}"));
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["checks"], checks.len() as u64);
    assert_eq!(api["passed"], checks.iter().filter(|c| c.2 == "ok").count() as u64);
    assert_eq!((api["locality"].as_str(), api["required_mbps"].as_u64()), (Some("rural"), Some(50)));
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for c in checks.iter().filter(|c| c.2 != "ok") {
        *failures.entry(c.2.clone()).or_default() += 1;
    }
    assert_eq!(serde_json::to_value(&failures).unwrap(), api["failures"]);
    let reach_json = api["must_reach"].as_array().unwrap();
    let find = |list: &[Value], t: &str| {
        list.iter().find(|x| x["target"] == t).cloned().unwrap_or_else(|| panic!("{t}: {list:?}"))
    };
    assert_eq!(find(reach_json, &reach[0])["availability"], 1.0);
    assert_eq!(find(reach_json, &reach[1])["outcomes"]["blocked"], runs);
    assert_eq!(find(reach_json, &reach[2])["availability"], 0.0);
    let filter = api["filter"].as_array().unwrap();
    assert_eq!(find(filter, &block[0])["verdict"], "pass");
    assert_eq!(find(filter, &block[1])["verdict"], "pass");
    assert_eq!(find(filter, &block[2])["verdict"], "fail");
    let lat = &api["latency"][0];
    assert_eq!((lat["runs"].as_u64(), lat["loss_pct"].as_f64()), (Some(runs), Some(0.0)));
    assert!(lat["rtt_ms"].as_f64().unwrap() < 50.0, "{lat}");
    // The first scheduled round measured throughput (loopback: fast); the API has it.
    let downloads =
        checks.iter().filter(|c| c.0 == "download" && (c.2 == "ok" || c.2 == "slow")).count() as u64;
    assert!(downloads >= 1, "a round measured throughput: {checks:?}");
    let down = api["throughput"].as_array().unwrap().iter().find(|t| t["direction"] == "download").unwrap();
    assert_eq!(down["tests"], downloads);
    assert_eq!(
        (down["required_mbps"].as_u64(), down["verdict"].as_str()),
        (Some(50), Some("pass")),
        "{down}"
    );
    assert!(down["median_mbps"].as_f64().unwrap() >= 50.0, "{down}");
    // Bad parameters: a clear 400 naming the field.
    let (status, body) = collector.get("/api/v1/connectivity?school=bad%20id");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("school"), "{body}");
    let (status, body) = collector.get(&format!("/api/v1/connectivity?school={SCHOOL}&from=2026-13-01"));
    assert_eq!(status, 400, "{body}");
}

/// The speed-test service gives a school only so many tests an hour (here 2, by
/// `PARTA_SPEEDTEST_PER_HOUR`): a probe's second round is refused with the reason and when to
/// come back, and the refusal is an error, not a rate of 0.
#[test]
fn the_speed_test_service_limits_a_school_per_hour() {
    let art = artifacts_dir("espd_speedtest_hourly_limit");
    let ch = ClickHouse::start();
    let collector = Collector::start_with(&ch, "parta", &art, &[("PARTA_SPEEDTEST_PER_HOUR", "2")]);
    let token = collector.create_token(SCHOOL);
    let cfg = art.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[espd]\nresolvers = [\"127.0.0.1:{}\"]\nmust_reach = []\nlatency_probes = 2\nspeedtest_port = {}\nthroughput_time = \"2s\"\n",
            free_udp_port(),
            collector.speedtest_port
        ),
    )
    .unwrap();
    let throughput = |run: &Value| -> Vec<(String, Value)> {
        ["download", "upload"]
            .iter()
            .map(|k| {
                let c = run["checks"].as_array().unwrap().iter().find(|c| c["kind"] == *k).unwrap();
                (c["outcome"].as_str().unwrap().to_owned(), c.clone())
            })
            .collect()
    };
    let first = check_espd(None, &cfg, &art, "first", collector.probe_env(SCHOOL, &token));
    for (outcome, c) in throughput(&first) {
        assert_eq!(outcome, "ok", "the hour's two tests: {c}");
    }
    let second = check_espd(None, &cfg, &art, "second", collector.probe_env(SCHOOL, &token));
    for (outcome, c) in throughput(&second) {
        assert_eq!(outcome, "error", "{c}");
        assert!(c["throughput"].is_null(), "a refused test has no rate: {c}");
        let why = c["error"].as_str().unwrap();
        assert!(why.contains(&format!("school {SCHOOL} ran 2 speed tests in the last hour")), "{why}");
        let retry: u64 =
            why.split("retry after ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!((3500..=3600).contains(&retry), "{why}");
    }
    // Another school (another device, another state directory) is not affected.
    let other = "74-0032";
    let token = collector.create_token(other);
    let other_dir = art.join("other-school");
    std::fs::create_dir_all(&other_dir).unwrap();
    let run = check_espd(None, &cfg, &other_dir, "other", collector.probe_env(other, &token));
    assert_eq!(throughput(&run)[0].0, "ok", "{run}");
}

/// A probe in a namespace of the test's own whose link to the servers' namespace delays every
/// packet towards them by 100 ms and drops 5 % of them (a userspace delay line: this kernel
/// has no `netem`): the latency check reports the round trip and the loss within tolerance,
/// by TCP handshakes and by ICMP echo.
#[test]
fn latency_and_loss_through_a_delayed_lossy_link() {
    let art = artifacts_dir("espd_latency_and_loss");
    let line = DelayLine::start(&art, Impairment { delay_ms: 100, loss: 0.05 }, Impairment::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>Моя школа</h1>").unwrap();
    let port = 8080;
    let mut http = Proc::new("http", art.join("http.log"));
    let mut cmd = DelayLine::command(&line.b, "python3");
    cmd.args(["-m", "http.server", &port.to_string(), "--bind", &line.b_ip, "--directory"]).arg(dir.path());
    http.spawn(cmd);
    let target = format!("{}:{port}", line.b_ip);
    wait_for(Duration::from_secs(30), "the HTTP stand-in behind the delay line", || {
        let out = DelayLine::command(&line.a, "curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                &format!("http://{target}/"),
            ])
            .output()
            .ok()?;
        (out.stdout == b"200").then_some(())
    });
    // The same link measured by TCP handshakes and by ICMP echo: through a raw socket (the test
    // runs as root, and a new namespace does not allow unprivileged ICMP), then through an
    // unprivileged one once the namespace's net.ipv4.ping_group_range allows it.
    for (name, method) in [("tcp", "tcp"), ("icmp-raw", "icmp"), ("icmp-unprivileged", "icmp")] {
        if name == "icmp-unprivileged" {
            let out = DelayLine::command(&line.a, "sh")
                .args(["-c", "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let cfg = art.join(format!("agent-{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[espd]\nresolvers = [\"{}:53\"]\nmust_reach = [\"http://{target}/\"]\nlatency_target = \"{target}\"\n\
                 latency_method = \"{method}\"\nlatency_probes = 200\ntimeout = \"5s\"\n",
                line.b_ip
            ),
        )
        .unwrap();
        let run = check_espd(Some(&line.a), &cfg, &art, name, NO_ENV);
        let checks = run["checks"].as_array().unwrap();
        let reach = checks.iter().find(|c| c["kind"] == "reach").unwrap();
        let lat = checks.iter().find(|c| c["kind"] == "latency").unwrap();
        let l = &lat["latency"];
        let (sent, received) = (l["sent"].as_f64().unwrap(), l["received"].as_f64().unwrap());
        let loss = (sent - received) / sent * 100.0;
        let median_ms = l["rtt_median_us"].as_f64().unwrap() / 1000.0;
        println!(
            "delay 100 ms, loss 5 %, {name}: median round trip {median_ms:.1} ms, loss {loss:.1} % of {sent}, jitter {:.2} ms; reach {}",
            l["jitter_us"].as_f64().unwrap() / 1000.0,
            reach["outcome"]
        );
        let expected = if method == "tcp" { "tcp_connect" } else { "icmp" };
        assert_eq!(l["method"], expected, "{lat}");
        // 100 ms added to a sub-millisecond link (plus the forwarder's scheduling); the loss
        // is binomial (n = 200, σ ≈ 1.5 points). A SYN and an echo request each cross the
        // impaired direction once.
        assert!((100.0..115.0).contains(&median_ms), "median {median_ms} ms: {lat}");
        assert!((1.0..=10.0).contains(&loss), "loss {loss} %: {lat}");
        assert_eq!(lat["outcome"], "ok");
        // The page comes (a lost packet is retransmitted), just slower.
        assert_eq!(reach["outcome"], "ok", "{reach}");
    }
}

/// The probe in a namespace of the test's own, the school's resolver (dnsmasq) and sites on the
/// other side of its link: a site with a certificate from the configured CA passes, one with a
/// self-signed certificate fails as TLS; then the resolver stops, and names fail as DNS while
/// an address still answers and a closed port still fails as TCP.
#[test]
fn dns_down_and_bad_certificates_are_told_from_tcp_failures() {
    let art = artifacts_dir("espd_dns_tls_in_namespace");
    let ns = parta_tests::netns::NetNs::create();
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let ip = ns.host_ip.clone();
    let (mut dns, dns_port) = dnsmasq(&art, &ip);
    let (good, bad, closed) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let _good = https_server(&art, dir.path(), &ip, good, "good");
    let _bad = https_server(&art, dir.path(), &ip, bad, "bad");
    let (_plain, plain, _pdir) = http_server(&art, &ip);
    let reach = [
        format!("https://www.school.test:{good}/"),
        format!("https://bad.school.test:{bad}/"),
        format!("http://{ip}:{plain}/"),
        format!("http://{ip}:{closed}/"),
    ];
    let cfg = art.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[espd]\nresolvers = [\"{ip}:{dns_port}\"]\nmust_reach = [{}]\nlatency_target = \"{ip}:{plain}\"\nlatency_probes = 3\n\
             timeout = \"2s\"\nca_bundle = \"{}\"\n",
            reach.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", "),
            dir.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    let check = |name: &str| check_espd(Some(&ns.name), &cfg, &art, name, NO_ENV);
    let outcome = |run: &Value, target: &str| -> (String, String) {
        let c = run["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "reach" && c["target"] == target)
            .unwrap();
        (c["outcome"].as_str().unwrap().to_owned(), c["error"].as_str().unwrap().to_owned())
    };
    // The servers may take a moment: wait until every one of them listens (the good site
    // answers, the others no longer refuse connections).
    let up = wait_for(Duration::from_secs(30), "the stand-ins", || {
        let run = check("up");
        let listening = outcome(&run, &reach[0]).0 == "ok"
            && outcome(&run, &reach[1]).0 != "tcp_failed"
            && outcome(&run, &reach[2]).0 == "ok";
        listening.then_some(run)
    });
    let (o, e) = outcome(&up, &reach[1]);
    assert_eq!(o, "tls_failed", "{e}");
    assert!(e.contains("certificate") && e.contains("does not trust"), "{e}");
    assert_eq!(outcome(&up, &reach[2]).0, "ok");
    assert_eq!(outcome(&up, &reach[3]).0, "tcp_failed");
    let dns_checks: Vec<&Value> =
        up["checks"].as_array().unwrap().iter().filter(|c| c["kind"] == "dns").collect();
    assert!(!dns_checks.is_empty() && dns_checks.iter().all(|c| c["outcome"] == "ok"), "{dns_checks:?}");

    dns.kill();
    let down = check("dns-down");
    for target in &reach[..2] {
        let (o, e) = outcome(&down, target);
        assert_eq!(o, "dns_failed", "{target}: {e}");
        assert!(e.contains(&format!("{ip}:{dns_port}")), "the resolver is named: {e}");
    }
    assert_eq!(outcome(&down, &reach[2]).0, "ok", "an address needs no DNS");
    assert_eq!(outcome(&down, &reach[3]).0, "tcp_failed");
    let dns_checks: Vec<&Value> =
        down["checks"].as_array().unwrap().iter().filter(|c| c["kind"] == "dns").collect();
    assert!(
        !dns_checks.is_empty() && dns_checks.iter().all(|c| c["outcome"] == "dns_failed"),
        "{dns_checks:?}"
    );
}

/// The throughput test through a link shaped with `tbf` (both directions): at 40 Mbit/s the
/// measured rate is within ±10 % and the school fails both tiers; at 70 Mbit/s a rural school
/// passes and an urban one fails. The collector's speed-test service is on the host, the probe
/// in a namespace of the test's own.
#[test]
fn throughput_through_shaped_links_gives_tier_verdicts() {
    let art = artifacts_dir("espd_throughput_shaped");
    let ns = parta_tests::netns::NetNs::create();
    let ch = ClickHouse::start();
    let collector = Collector::start_with(
        &ch,
        "parta",
        &art,
        &[("PARTA_QUIC_LISTEN", &ns.host_ip), ("PARTA_TLS_NAMES", &ns.host_ip)],
    );
    let token = collector.create_token(SCHOOL);
    let check = |name: &str, locality: &str| -> Value {
        let cfg = art.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[espd]\nlocality = \"{locality}\"\nresolvers = [\"{}:53\"]\nmust_reach = []\nspeedtest_port = {}\nthroughput_time = \"5s\"\n",
                ns.host_ip, collector.speedtest_port
            ),
        )
        .unwrap();
        check_espd(Some(&ns.name), &cfg, &art, name, collector.probe_env(SCHOOL, &token))
    };
    let rate = |run: &Value, kind: &str| -> (f64, String) {
        let c = run["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind)
            .unwrap_or_else(|| panic!("{run}"));
        let mbps = c["throughput"]["ip_bits_per_s"].as_f64().unwrap_or_else(|| panic!("{c}")) / 1e6;
        (mbps, c["outcome"].as_str().unwrap().to_owned())
    };
    let tbf = |mbit: u32| {
        let rate = format!("{mbit}mbit");
        let q = ["tbf", "rate", rate.as_str(), "burst", "64kb", "latency", "100ms"];
        ns.shape(&q);
        ns.shape_outbound(&q);
    };

    tbf(40);
    let run = check("40-rural", "rural");
    let (down, down_outcome) = rate(&run, "download");
    let (up, _) = rate(&run, "upload");
    println!("shaped 40 Mbit/s: download {down:.1}, upload {up:.1} Mbit/s");
    assert!((36.0..=44.0).contains(&down), "download {down} Mbit/s at 40");
    assert!((36.0..=44.0).contains(&up), "upload {up} Mbit/s at 40");
    assert_eq!(down_outcome, "slow", "40 Mbit/s fails the rural 50");

    tbf(70);
    let rural = check("70-rural", "rural");
    let urban = check("70-urban", "urban");
    let (down_rural, outcome_rural) = rate(&rural, "download");
    let (down_urban, outcome_urban) = rate(&urban, "download");
    println!("shaped 70 Mbit/s: download {down_rural:.1} (rural run), {down_urban:.1} (urban run) Mbit/s");
    assert!(
        (63.0..=77.0).contains(&down_rural) && (63.0..=77.0).contains(&down_urban),
        "at 70: {down_rural}, {down_urban}"
    );
    assert_eq!(outcome_rural, "ok", "70 Mbit/s passes the rural 50");
    assert_eq!(outcome_urban, "slow", "70 Mbit/s fails the urban 100");
    assert_eq!((rural["required_mbps"].as_u64(), urban["required_mbps"].as_u64()), (Some(50), Some(100)));
}
