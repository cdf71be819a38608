//! What the collector makes of a report before storing it, whatever the agent wrote: SNMP gear
//! and displays get ids derived from the school the collector has on record for the reporting
//! device ([`parta_protocol::ids`]), so one school's agent cannot write into another school's
//! devices; and intervals, polls and runs whose local day is far from when the report arrived
//! (a dead clock battery says 2000-01-01) are left out, so that they cannot make the daily
//! rollups reread years of data, nor land outside what the tables keep.

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

/// Oldest local day kept, before the receive day: what the fine-grained tables keep (400 days).
pub const DAYS_BACK: i64 = 400;
/// Newest local day kept, after the receive day (time zones ahead of UTC).
pub const DAYS_AHEAD: i64 = 1;

/// Leaves out usage intervals, SNMP polls and connectivity runs whose local day is outside
/// [`DAYS_BACK`] before to [`DAYS_AHEAD`] after the day the report was received; returns how
/// many. The report itself is stored (its number is in the ledger): only what a wrong clock
/// dated is dropped.
pub fn drop_far_days(report: &mut Report, received_ms: i64) -> usize {
    let today = received_ms.div_euclid(86_400_000);
    let near = |day: i32| (today - DAYS_BACK..=today + DAYS_AHEAD).contains(&i64::from(day));
    let mut dropped = 0;
    report.samples.retain_mut(|s| match s {
        Sample::Usage(list) => {
            let before = list.len();
            list.retain(|i| near(i.local_day));
            dropped += before - list.len();
            !list.is_empty() || before == 0
        }
        Sample::Snmp(p) if !near(p.local_day) => {
            dropped += 1;
            false
        }
        Sample::Connectivity(r) if !near(r.local_day) => {
            dropped += 1;
            false
        }
        _ => true,
    });
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use parta_protocol::examples;

    #[test]
    fn days_far_from_the_receipt_are_left_out() {
        let parta_protocol::Message::Report(mut r) = examples::usage_report() else { unreachable!() };
        let day_ms = 86_400_000;
        // The example's intervals are of 2025-11-22 (day 20,414).
        let received = 20_414 * day_ms + 3_600_000;
        let mut near = r.clone();
        assert_eq!(drop_far_days(&mut near, received), 0);
        assert_eq!(near, r);
        // A dead clock battery: the same intervals dated 2000-01-01.
        for s in &mut r.samples {
            if let Sample::Usage(list) = s {
                for i in list.iter_mut() {
                    i.local_day = 10_957;
                }
            }
        }
        let n = r.samples.iter().map(|s| if let Sample::Usage(l) = s { l.len() } else { 0 }).sum::<usize>();
        assert!(n > 0);
        assert_eq!(drop_far_days(&mut r, received), n);
        assert!(!r.samples.iter().any(|s| matches!(s, Sample::Usage(_))));
        assert!(r.samples.iter().any(|s| matches!(s, Sample::Inventory(_))), "the rest stays");
        // And the day after tomorrow is too far ahead.
        let parta_protocol::Message::Report(mut ahead) = examples::snmp_report() else { unreachable!() };
        let poll_day = 20_414;
        assert_eq!(drop_far_days(&mut ahead.clone(), poll_day * day_ms), 0);
        assert_eq!(drop_far_days(&mut ahead, (poll_day - 2) * day_ms), 2);
    }

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
