//! What a decoded report occupies in memory beyond its own struct: every string's and list's
//! buffer and every boxed sample. The collector charges it against its memory budget of
//! queued reports, so that a budget in bytes means bytes in memory, not on the wire (a list of
//! small elements takes several times its wire size once decoded). The protocol's
//! amplification test checks the figure against what decoding really allocates.

use std::mem::size_of;

use crate::espd::{CheckResult, ConnectivityRun};
use crate::inventory::{DiskInfo, DisplayInfo, Inventory, NicInfo};
use crate::message::Report;
use crate::sample::{FsUsage, HostInfo, HostMetrics, IfTraffic, NetInterface, Sample};
use crate::snmp::{InterfaceReading, SnmpPoll};
use crate::usage::UsageInterval;

/// Heap bytes a value owns (not counting its own size).
pub trait HeapSize {
    /// Bytes of the buffers the value owns.
    fn heap_size(&self) -> usize;
}

impl HeapSize for String {
    fn heap_size(&self) -> usize {
        self.capacity()
    }
}

impl<T: HeapSize> HeapSize for Option<T> {
    fn heap_size(&self) -> usize {
        self.as_ref().map_or(0, HeapSize::heap_size)
    }
}

impl<T: HeapSize> HeapSize for Vec<T> {
    fn heap_size(&self) -> usize {
        self.capacity() * size_of::<T>() + self.iter().map(HeapSize::heap_size).sum::<usize>()
    }
}

impl<T: HeapSize> HeapSize for Box<T> {
    fn heap_size(&self) -> usize {
        size_of::<T>() + (**self).heap_size()
    }
}

impl HeapSize for (String, String) {
    fn heap_size(&self) -> usize {
        self.0.heap_size() + self.1.heap_size()
    }
}

/// Types that own no heap memory.
macro_rules! flat {
    ($($t:ty),*) => {$(impl HeapSize for $t { fn heap_size(&self) -> usize { 0 } })*};
}
flat!(UsageInterval, (u32, u64));

/// Types whose heap memory is their fields'.
macro_rules! fields {
    ($t:ty => $($f:ident).+ $(, $($g:ident).+)*) => {
        impl HeapSize for $t {
            fn heap_size(&self) -> usize {
                self.$($f).+.heap_size() $(+ self.$($g).+.heap_size())*
            }
        }
    };
}
fields!(NetInterface => name);
fields!(FsUsage => mount, fs_type);
fields!(IfTraffic => name);
fields!(DiskInfo => name, model);
fields!(NicInfo => name);
fields!(DisplayInfo => connector, manufacturer, serial, name);
fields!(InterfaceReading => name, alias, descr);
fields!(HostMetrics => filesystems, interfaces);
fields!(CheckResult => target, error, addresses);
fields!(ConnectivityRun => checks);
fields!(HostInfo => hostname, kernel, os.id, os.name, os.version, os.pretty_name, os.edition, os.release_fields,
    dmi.vendor, dmi.product, dmi.serial, interfaces);
fields!(Inventory => hostname, room, kernel, os.id, os.name, os.version, os.pretty_name, os.edition,
    os.release_fields,    dmi.vendor, dmi.product, dmi.serial, dmi.bios_vendor, dmi.bios_version, dmi.bios_date,
    dmi.board_vendor, dmi.board_product, cpu.model, disks, nics, displays);

impl HeapSize for SnmpPoll {
    fn heap_size(&self) -> usize {
        let system = self.system.as_ref().map_or(0, |s| {
            s.descr.heap_size() + s.object_id.heap_size() + s.name.heap_size() + s.location.heap_size()
        });
        let printer = self.printer.as_ref().map_or(0, |p| p.markers.heap_size());
        self.target.heap_size()
            + self.label.heap_size()
            + self.room.heap_size()
            + self.profile.heap_size()
            + self.vendor.heap_size()
            + self.error.heap_size()
            + self.serial.heap_size()
            + self.interfaces.heap_size()
            + system
            + printer
    }
}

impl HeapSize for Sample {
    fn heap_size(&self) -> usize {
        match self {
            Self::HostInfo(i) => i.heap_size(),
            Self::HostMetrics(m) => m.heap_size(),
            Self::SpoolLoss(_) => 0,
            Self::Inventory(i) => i.heap_size(),
            Self::Usage(u) => u.heap_size(),
            Self::Power(p) => p.boot_id.heap_size(),
            Self::Snmp(p) => p.heap_size(),
            Self::Connectivity(r) => r.heap_size(),
        }
    }
}

impl HeapSize for Report {
    fn heap_size(&self) -> usize {
        self.samples.heap_size()
    }
}
