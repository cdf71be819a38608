//! What the collector makes of a report before storing it, whatever the agent wrote: SNMP gear
//! and displays get ids derived from the school the collector has on record for the reporting
//! device ([`parta_protocol::ids`]), so one school's agent cannot write into another school's
//! devices.

use parta_protocol::usage::Subject;
use parta_protocol::{Report, Sample, ids};

/// Rewrites the ids of devices the report speaks about (not the reporting device, whose id
/// comes from its certificate) into the school's namespace.
pub fn bind_ids(report: &mut Report, school: &str) {
    for sample in &mut report.samples {
        match sample {
            Sample::Snmp(poll) => poll.device_id = ids::snmp_device(school, &poll.target),
            Sample::Inventory(inv) => {
                for d in &mut inv.displays {
                    d.device_id = ids::school_display(school, d.device_id);
                }
            }
            Sample::Usage(list) => {
                for i in list {
                    if let Subject::Display(d) = &mut i.subject {
                        *d = ids::school_display(school, *d);
                    }
                }
            }
            Sample::HostInfo(_)
            | Sample::HostMetrics(_)
            | Sample::Power(_)
            | Sample::Connectivity(_)
            | Sample::SpoolLoss(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parta_protocol::examples;

    #[test]
    fn ids_of_other_devices_follow_the_school_on_record() {
        let parta_protocol::Message::Report(mut a) = examples::snmp_report() else { unreachable!() };
        let mut b = a.clone();
        let forged = parta_protocol::DeviceId(uuid::Uuid::from_u128(42));
        for r in [&mut a, &mut b] {
            for s in &mut r.samples {
                if let Sample::Snmp(p) = s {
                    // Whatever id the agent claims…
                    p.device_id = forged;
                }
            }
        }
        bind_ids(&mut a, "74-0012");
        bind_ids(&mut b, "74-0013");
        let ids_of = |r: &Report| -> Vec<_> {
            r.samples
                .iter()
                .filter_map(|s| {
                    if let Sample::Snmp(p) = s { Some((p.device_id, p.target.clone())) } else { None }
                })
                .collect()
        };
        let (ia, ib) = (ids_of(&a), ids_of(&b));
        assert!(!ia.is_empty());
        for ((da, target), (db, _)) in ia.iter().zip(&ib) {
            // …the stored id is the school's id of the polled address.
            assert_eq!(*da, ids::snmp_device("74-0012", target));
            assert_ne!(da, db);
            assert_ne!(*da, forged);
        }
    }
}
