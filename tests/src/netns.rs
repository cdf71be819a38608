//! A network namespace joined to the host by a veth pair, so that a test can cut and restore the
//! link between an agent (inside) and the collector (outside). Only the test's own namespace and
//! addresses are touched. Needs root (CI runs as root).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip(8) from iproute2");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// The namespace and its link.
pub struct NetNs {
    /// Namespace name.
    pub name: String,
    host_if: String,
    ns_if: String,
    /// Host-side address (where the collector listens).
    pub host_ip: String,
    /// Address inside the namespace.
    pub ns_ip: String,
}

impl NetNs {
    /// Creates a namespace `pt<pid>n<k>` with a /30 link to the host.
    pub fn create() -> Self {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id() % 10_000;
        let name = format!("pt{id}n{k}");
        let (host_if, ns_if) = (format!("vh{id}n{k}"), format!("vn{id}n{k}"));
        // 10.(200 + k).(pid % 250).{1,2}/30: unique per process and namespace.
        let (a, b) = (200 + (k % 50), id % 250);
        let (host_ip, ns_ip) = (format!("10.{a}.{b}.1"), format!("10.{a}.{b}.2"));
        ip(&["netns", "add", &name]);
        let ns = Self { name, host_if, ns_if: ns_if.clone(), host_ip, ns_ip };
        ip(&["link", "add", &ns.host_if, "type", "veth", "peer", "name", &ns_if]);
        ip(&["link", "set", &ns_if, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{}/30", ns.host_ip), "dev", &ns.host_if]);
        ip(&["link", "set", &ns.host_if, "up"]);
        ip(&["-n", &ns.name, "addr", "add", &format!("{}/30", ns.ns_ip), "dev", &ns_if]);
        ip(&["-n", &ns.name, "link", "set", &ns_if, "up"]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Adds `pairs` veth pairs inside the namespace (both ends up), so that its IF-MIB lists
    /// `2 × pairs` more interfaces; they go with the namespace.
    pub fn add_interfaces(&self, pairs: usize) {
        for i in 0..pairs {
            let (a, b) = (format!("xa{i}"), format!("xb{i}"));
            ip(&["-n", &self.name, "link", "add", &a, "type", "veth", "peer", "name", &b]);
            ip(&["-n", &self.name, "link", "set", &a, "up"]);
            ip(&["-n", &self.name, "link", "set", &b, "up"]);
        }
    }

    /// Shapes what the host sends into the namespace with `tc` (qdisc arguments after `root`,
    /// e.g. `tbf rate 40mbit …`), replacing any earlier shaping. This kernel has `tbf`, `htb`
    /// and `pfifo` but no `netem`.
    pub fn shape(&self, qdisc: &[&str]) {
        let mut args = vec!["qdisc", "replace", "dev", &self.host_if, "root"];
        args.extend_from_slice(qdisc);
        let out = Command::new("tc").args(&args).output().expect("run tc(8) from iproute2");
        assert!(out.status.success(), "tc {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }

    /// Shapes what the namespace sends to the host (the other direction of [`Self::shape`]).
    pub fn shape_outbound(&self, qdisc: &[&str]) {
        let mut args =
            vec!["netns", "exec", &self.name, "tc", "qdisc", "replace", "dev", &self.ns_if, "root"];
        args.extend_from_slice(qdisc);
        let out = Command::new("ip").args(&args).output().expect("run tc(8) from iproute2");
        assert!(out.status.success(), "{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }

    /// Cuts the link (packets vanish, as when a school's uplink fails).
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    /// Restores the link.
    pub fn restore(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}
