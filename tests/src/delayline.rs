//! A link with delay and loss between two network namespaces of the test's own, for kernels
//! without `netem` (this one has `tbf`, `htb` and `pfifo` only): a point-to-point pair of TUN
//! devices joined by a small userspace forwarder that holds every packet for the configured
//! delay and drops the configured share, per direction.
//!
//! ```text
//!  namespace A (probe)               forwarder (python3)             namespace B (servers)
//!  tun 10.98.N.1 ── packets ──► delay, drop, forward ──► tun 10.98.N.2
//! ```
//!
//! The forwarder opens both TUN devices in the host namespace and the test moves them into
//! the namespaces (an open TUN file keeps working after its device moves). Needs root.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::procs::Proc;
use crate::util::wait_for;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The forwarder: `delayline.py TUN_A TUN_B DELAY_AB_MS LOSS_AB DELAY_BA_MS LOSS_BA`.
const FORWARDER: &str = r#"#!/usr/bin/env python3
import fcntl, heapq, os, random, select, struct, sys, time
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454ca, 0x0001, 0x1000
def tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd
a, b = tun(sys.argv[1]), tun(sys.argv[2])
rules = {a: (b, float(sys.argv[3]) / 1000, float(sys.argv[4])), b: (a, float(sys.argv[5]) / 1000, float(sys.argv[6]))}
print("ready", flush=True)
queue, seq = [], 0
while True:
    timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
    for fd in select.select([a, b], [], [], timeout)[0]:
        packet = os.read(fd, 65536)
        out, delay, loss = rules[fd]
        if random.random() >= loss:
            seq += 1
            heapq.heappush(queue, (time.monotonic() + delay, seq, out, packet))
    now = time.monotonic()
    while queue and queue[0][0] <= now:
        _, _, out, packet = heapq.heappop(queue)
        try:
            os.write(out, packet)
        except OSError:
            pass
"#;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip(8) from iproute2");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Delay (ms) and loss (0–1) of one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    /// Added one-way delay, ms.
    pub delay_ms: u32,
    /// Share of packets dropped.
    pub loss: f64,
}

/// Two namespaces joined by the delay line.
pub struct DelayLine {
    /// Namespace A (e.g. the probe).
    pub a: String,
    /// Namespace B (e.g. the servers).
    pub b: String,
    /// Address in A.
    pub a_ip: String,
    /// Address in B.
    pub b_ip: String,
    _forwarder: Proc,
    _dir: tempfile::TempDir,
}

impl DelayLine {
    /// Creates the namespaces and starts the forwarder; `ab` impairs packets from A to B, `ba`
    /// the way back.
    pub fn start(artifacts: &std::path::Path, ab: Impairment, ba: Impairment) -> Self {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id() % 10_000;
        let (a, b) = (format!("pd{id}a{k}"), format!("pd{id}b{k}"));
        let (tun_a, tun_b) = (format!("td{id}a{k}"), format!("td{id}b{k}"));
        // 10.98.(pid % 250).(4k + 1, 4k + 2): unique per process and line.
        let n = id % 250;
        let (a_ip, b_ip) =
            (format!("10.98.{n}.{}", 4 * (k % 60) + 1), format!("10.98.{n}.{}", 4 * (k % 60) + 2));
        ip(&["netns", "add", &a]);
        ip(&["netns", "add", &b]);
        let dir = tempfile::Builder::new().prefix("parta-delayline-").tempdir().unwrap();
        let script = dir.path().join("delayline.py");
        std::fs::write(&script, FORWARDER).unwrap();
        let mut forwarder = Proc::new("delay line", artifacts.join(format!("delayline{k}.log")));
        let mut cmd = Command::new("python3");
        cmd.arg(&script).args([&tun_a, &tun_b]).args([
            ab.delay_ms.to_string(),
            ab.loss.to_string(),
            ba.delay_ms.to_string(),
            ba.loss.to_string(),
        ]);
        forwarder.spawn(cmd);
        let line = Self { a, b, a_ip, b_ip, _forwarder: forwarder, _dir: dir };
        // The devices exist once the forwarder has opened them.
        wait_for(Duration::from_secs(20), "the delay line's TUN devices", || {
            let out = Command::new("ip").args(["link", "show", &tun_b]).output().ok()?;
            out.status.success().then_some(())
        });
        for (ns, dev, local, peer) in
            [(&line.a, &tun_a, &line.a_ip, &line.b_ip), (&line.b, &tun_b, &line.b_ip, &line.a_ip)]
        {
            ip(&["link", "set", dev, "netns", ns]);
            ip(&["-n", ns, "addr", "add", local, "peer", peer, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        line
    }

    /// A command run inside namespace `ns` (`ip netns exec`).
    pub fn command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
