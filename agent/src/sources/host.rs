//! Host telemetry: identity (name, kernel, network interfaces, with OS and DMI from the
//! inventory) and metrics (uptime, CPU, memory, filesystems, traffic), read through `sysinfo`.

use std::collections::BTreeMap;
use std::time::Instant;

use parta_protocol::inventory::Inventory;
use parta_protocol::sample::{FsUsage, HostInfo, HostMetrics, IfTraffic, MacAddr, NetInterface};
use sysinfo::{Disks, MemoryRefreshKind, Networks, System};

use super::rates::RateTracker;

/// Filesystem types that are not the machine's own storage (sysinfo already skips tmpfs, proc,
/// sysfs and the like): images, optical media, network shares, FUSE mounts of user sessions.
const SKIPPED_FS: &[&str] = &[
    "squashfs",
    "iso9660",
    "udf",
    "nsfs",
    "autofs",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "ceph",
    "glusterfs",
    "davfs",
    "ecryptfs",
];

/// Samples the host.
#[derive(Debug)]
pub struct HostSource {
    system: System,
    disks: Disks,
    networks: Networks,
    rates: RateTracker,
}

/// The host could not be inspected at all (unsupported platform).
#[derive(Debug, thiserror::Error)]
#[error("cannot read host information: {0}")]
pub struct HostError(String);

impl HostSource {
    /// Prepares the source and takes a first CPU reading, so that the first metrics sample has a
    /// meaningful CPU figure if taken at least 200 ms later.
    pub fn new() -> Result<Self, HostError> {
        let mut system = System::new().map_err(|e| HostError(e.to_string()))?;
        system.refresh_cpu_usage();
        let disks = Disks::new_with_refreshed_list().map_err(|e| HostError(e.to_string()))?;
        let networks = Networks::new_with_refreshed_list().map_err(|e| HostError(e.to_string()))?;
        Ok(Self { system, disks, networks, rates: RateTracker::default() })
    }

    /// The host's identity; OS and DMI come from the inventory read for the same report (the
    /// same files, read once).
    pub fn info(&self, inventory: &Inventory) -> HostInfo {
        let interfaces = self
            .sorted_interfaces()
            .into_iter()
            .map(|(name, data)| {
                let mac = data.mac_address();
                NetInterface { name, mac: (!mac.is_unspecified()).then_some(MacAddr(mac.0)) }
            })
            .collect();
        HostInfo {
            hostname: System::host_name().unwrap_or_default(),
            os: inventory.os.clone(),
            kernel: System::kernel_version().unwrap_or_default(),
            dmi: inventory.dmi.identity(),
            interfaces,
        }
    }

    /// Takes one metrics sample. CPU utilisation is the average since the previous call.
    pub fn metrics(&mut self, now: Instant) -> HostMetrics {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        self.disks.refresh(true);
        self.networks.refresh(true);

        let mut filesystems: BTreeMap<String, FsUsage> = BTreeMap::new();
        for d in self.disks.iter() {
            let fs_type = d.file_system().to_string_lossy().into_owned();
            // Removable media (USB sticks, card readers) are not the machine's own.
            if SKIPPED_FS.contains(&fs_type.as_str())
                || fs_type.starts_with("fuse")
                || d.is_removable()
                || d.total_space() == 0
            {
                continue;
            }
            let mount = d.mount_point().to_string_lossy().into_owned();
            // Bind mounts and containers list a mount point more than once; keep the first.
            filesystems.entry(mount.clone()).or_insert(FsUsage {
                mount,
                fs_type,
                total: d.total_space(),
                available: d.available_space(),
            });
        }

        let counters: Vec<(String, u64, u64)> = self
            .sorted_interfaces()
            .into_iter()
            .map(|(name, d)| (name, d.total_received(), d.total_transmitted()))
            .collect();
        let mut interfaces = Vec::with_capacity(counters.len());
        for (name, rx, tx) in counters {
            let (rx_rate, tx_rate) = self.rates.update(&name, rx, tx, now);
            interfaces.push(IfTraffic { name, rx_bytes: rx, tx_bytes: tx, rx_rate, tx_rate });
        }
        let networks = &self.networks;
        self.rates.retain(&|name| networks.keys().any(|k| k.to_string_lossy() == name));

        let total = self.system.total_memory();
        HostMetrics {
            boot_time: System::boot_time().unwrap_or_default(),
            uptime_s: System::uptime().unwrap_or_default(),
            cpu_percent: self.system.global_cpu_usage(),
            mem_total: total,
            // "Used" as people mean it: what is not available to new programs.
            mem_used: total.saturating_sub(self.system.available_memory()),
            swap_total: self.system.total_swap(),
            swap_used: self.system.used_swap(),
            filesystems: filesystems.into_values().collect(),
            interfaces,
        }
    }

    /// Interfaces other than loopback, sorted by name for stable output.
    fn sorted_interfaces(&self) -> Vec<(String, &sysinfo::NetworkData)> {
        let mut v: Vec<_> = self
            .networks
            .iter()
            .map(|(name, data)| (name.to_string_lossy().into_owned(), data))
            .filter(|(name, _)| name != "lo")
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_host_sample_is_plausible() {
        let mut src = HostSource::new().unwrap();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let m = src.metrics(Instant::now());
        assert!(m.mem_total > 0);
        assert!(m.mem_used <= m.mem_total);
        assert!(m.uptime_s > 0);
        assert!(m.boot_time > 1_000_000_000);
        assert!((0.0..=100.0).contains(&m.cpu_percent), "{}", m.cpu_percent);
        assert!(m.interfaces.iter().all(|i| i.name != "lo" && i.rx_rate.is_none()));
        let os = crate::sources::osrelease::read(&crate::paths::HostPaths::default());
        let inventory = Inventory { os, ..Inventory::default() };
        let info = src.info(&inventory);
        assert!(!info.hostname.is_empty());
        assert!(!info.os.name.is_empty());
    }
}
