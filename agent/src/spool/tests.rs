//! Spool behaviour: durability, damage, limits. Fault-injection with real processes lives in
//! `tests/tests/faults.rs`.

use std::collections::BTreeMap;

use super::*;

const T0: i64 = 1_763_802_000_000;

fn cfg(max_bytes: u64) -> SpoolConfig {
    SpoolConfig { max_bytes, max_age: Duration::from_secs(30 * 86_400), fsync: FsyncPolicy::Always }
}

fn frame(seq: u64, size: usize) -> Vec<u8> {
    let mut f = seq.to_le_bytes().to_vec();
    f.resize(size, (seq % 251) as u8);
    f
}

fn append_n(s: &mut Spool, n: u64, size: usize, essential: impl Fn(u64) -> bool) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let seq = s.next_seq();
            s.append(seq, T0 + seq as i64 * 60_000, essential(seq), &frame(seq, size)).unwrap();
            seq
        })
        .collect()
}

fn read_all(s: &mut Spool) -> Vec<u64> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let b = s.read(from, u64::MAX, 100, usize::MAX).unwrap();
        out.extend(b.records.iter().map(|r| r.0));
        if b.records.is_empty() {
            return out;
        }
        from = b.scanned_to + 1;
    }
}

fn segs(dir: &Path) -> Vec<PathBuf> {
    segment_files(dir).unwrap()
}

#[test]
fn append_read_ack_and_reopen_continue_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    assert_eq!(append_n(&mut s, 50, 100, |_| false), (1..=50).collect::<Vec<_>>());
    assert_eq!(read_all(&mut s), (1..=50).collect::<Vec<_>>());
    let b = s.read(10, 20, 5, usize::MAX).unwrap();
    assert_eq!(b.records.iter().map(|r| r.0).collect::<Vec<_>>(), [10, 11, 12, 13, 14]);
    assert_eq!(b.records[0].1, frame(10, 100), "the frame comes back byte for byte");
    s.ack(&SeqSet::span(1, 30));
    assert_eq!(read_all(&mut s), (31..=50).collect::<Vec<_>>());
    assert_eq!(s.stats().pending, 20);
    s.close();
    drop(s);
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    assert_eq!(s.next_seq(), 51);
    assert_eq!(read_all(&mut s), (31..=50).collect::<Vec<_>>());
    s.ack(&SeqSet::span(31, 50));
    assert_eq!(s.stats().pending, 0);
    assert!(segs(dir.path()).is_empty(), "fully acknowledged segments are deleted");
    drop(s);
    // With no segments left, the marks keep the numbering.
    let s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    assert_eq!(s.next_seq(), 51);
}

#[test]
fn segments_roll_and_deletion_follows_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    // 16 KiB segments.
    let mut s = Spool::open(dir.path(), cfg(256 * 1024)).unwrap();
    append_n(&mut s, 400, 200, |_| false);
    let n = segs(dir.path()).len();
    assert!(n >= 5, "{n} segments");
    s.ack(&SeqSet::span(1, 200));
    assert!(segs(dir.path()).len() < n);
    assert_eq!(read_all(&mut s), (201..=400).collect::<Vec<_>>());
    // Out-of-order acknowledgement of the newest: older ones still pending.
    s.ack(&SeqSet::span(390, 400));
    assert_eq!(read_all(&mut s), (201..=389).collect::<Vec<_>>());
    assert_eq!(s.stats().oldest_pending.map(|p| p.0), Some(201));
}

#[test]
fn torn_tail_is_cut_and_numbering_continues_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    append_n(&mut s, 10, 100, |_| false);
    drop(s);
    // Half of record 11 made it to disk before the power went.
    let last = segs(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&segment::encode(11, T0, false, &frame(11, 100))[..40]);
    std::fs::write(&last, &bytes).unwrap();
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    assert_eq!(s.counters().torn_bytes, 40);
    assert!(s.take_losses().is_empty(), "a torn unsent record is not a loss");
    assert_eq!(s.next_seq(), 11);
    append_n(&mut s, 2, 100, |_| false);
    assert_eq!(read_all(&mut s), (1..=12).collect::<Vec<_>>());
}

#[test]
fn corruption_in_the_middle_is_quarantined_repaired_and_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    append_n(&mut s, 20, 100, |_| false);
    s.close();
    drop(s);
    let path = segs(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let rec = segment::HEADER + 100;
    // Damage records 8 and 9.
    bytes[7 * rec + 30] ^= 0xff;
    bytes[8 * rec + 5] ^= 0x0f;
    std::fs::write(&path, &bytes).unwrap();
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    let losses = s.take_losses();
    assert_eq!(losses.len(), 1);
    assert_eq!(
        (losses[0].reason, losses[0].first_seq, losses[0].last_seq, losses[0].reports),
        (LossReason::Corrupt, 8, 9, 2)
    );
    assert_eq!(read_all(&mut s), (1..=7).chain(10..=20).collect::<Vec<_>>());
    assert_eq!(std::fs::read_dir(dir.path().join("quarantine")).unwrap().count(), 1);
    assert_eq!(s.next_seq(), 21);
    // Everything else still acknowledges and deletes normally.
    s.ack(&SeqSet::span(1, 7));
    s.ack(&SeqSet::span(10, 20));
    assert_eq!(s.stats().pending, 0);
    assert!(segs(dir.path()).is_empty());
    drop(s);
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    assert!(s.take_losses().is_empty(), "reported once, not on every start");
}

#[test]
fn a_segment_of_pure_garbage_does_not_stop_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{:020}.seg", 1)), vec![0xAB; 5000]).unwrap();
    std::fs::write(dir.path().join("marks"), "nonsense").unwrap();
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    assert_eq!(s.next_seq(), 1);
    append_n(&mut s, 3, 10, |_| false);
    assert_eq!(read_all(&mut s), [1, 2, 3]);
}

#[test]
fn over_the_limit_old_reports_are_thinned_keeping_essentials_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let max = 256 * 1024;
    let mut s = Spool::open(dir.path(), cfg(max)).unwrap();
    // ~2.5× the limit; every 25th report is essential.
    let all = append_n(&mut s, 2_500, 230, |seq| seq % 25 == 0);
    assert!(s.stats().bytes <= max, "{} > {max}", s.stats().bytes);
    let kept = read_all(&mut s);
    let losses = s.take_losses();
    assert!(!losses.is_empty());
    assert!(losses.iter().all(|l| l.reason == LossReason::Thinned));
    let lost: u64 = losses.iter().map(|l| l.reports).sum();
    assert_eq!(kept.len() as u64 + lost, all.len() as u64, "every report is either kept or reported lost");
    // Essentials and the newest reports survive.
    for seq in (25..=2_500).step_by(25) {
        assert!(kept.contains(&seq), "essential report {seq} kept");
    }
    assert!(kept.ends_with(&[2_498, 2_499, 2_500]));
    assert_eq!(s.counters().thinned, lost);
    // The thinned segments delete once their survivors are acknowledged.
    s.ack(&SeqSet::from_sorted(kept.iter().copied()));
    assert_eq!(s.stats().pending, 0);
    assert!(segs(dir.path()).len() <= 1);
}

#[test]
fn old_segments_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(256 * 1024);
    c.max_age = Duration::from_secs(3_600);
    let mut s = Spool::open(dir.path(), c).unwrap();
    append_n(&mut s, 300, 200, |_| false);
    // Two days after the last report: every closed segment is older than an hour.
    s.maintain(T0 + 300 * 60_000 + 2 * 86_400_000);
    let losses = s.take_losses();
    assert!(losses.iter().all(|l| l.reason == LossReason::Expired) && !losses.is_empty());
    let lost: u64 = losses.iter().map(|l| l.reports).sum();
    assert_eq!(read_all(&mut s).len() as u64 + lost, 300);
}

#[test]
fn interrupted_thinning_keeps_the_newer_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    append_n(&mut s, 10, 50, |_| false);
    s.close();
    drop(s);
    let old = segs(dir.path()).pop().unwrap();
    // A thinned copy was written (renamed into place) but the old file not yet deleted.
    let thinned = dir.path().join(format!("{:020}.t1.seg", 1));
    segment::write_segment(&thinned, &[segment::encode(10, T0, false, &frame(10, 50))]).unwrap();
    std::fs::write(dir.path().join("junk.seg.tmp"), b"partial").unwrap();
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    assert!(!old.exists() && thinned.exists());
    assert!(!dir.path().join("junk.seg.tmp").exists());
    assert_eq!(read_all(&mut s), [10]);
}

#[test]
fn inspect_reads_without_changing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg(1 << 20)).unwrap();
    append_n(&mut s, 30, 100, |_| false);
    s.ack(&SeqSet::span(1, 10));
    s.close();
    let before: Vec<(PathBuf, Vec<u8>)> =
        segs(dir.path()).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    let st = inspect(dir.path()).unwrap();
    assert_eq!((st.pending, st.next_seq, st.acked_up_to), (20, 31, 10));
    assert_eq!(st.oldest_pending, Some((11, T0 + 11 * 60_000)));
    let after: Vec<(PathBuf, Vec<u8>)> =
        segs(dir.path()).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    assert_eq!(before, after);
}

/// A random mix of appends, acknowledgements, reopenings and tight limits: every report is
/// always exactly one of acknowledged, still readable, or reported lost.
#[test]
fn random_operations_never_lose_a_report_silently() {
    let dir = tempfile::tempdir().unwrap();
    let max = 200 * 1024;
    let mut s = Spool::open(dir.path(), cfg(max)).unwrap();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut acked = SeqSet::new();
    let mut lost = SeqSet::new();
    let mut appended = 0u64;
    let mut losses_total: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut counted = 0u64;
    let total = |c: Counters| c.thinned + c.expired + c.disk_full + c.corrupt;
    for round in 0..60 {
        let n = rnd(150);
        appended += append_n(&mut s, n, 100 + rnd(300) as usize, |seq| seq % 17 == 0).len() as u64;
        // Acknowledge a random part of what is readable, sometimes out of order.
        let readable = read_all(&mut s);
        let mut ack = SeqSet::new();
        for &seq in &readable {
            if rnd(3) == 0 {
                ack.insert(seq);
            }
        }
        s.ack(&ack);
        acked.union_with(&ack);
        for l in s.take_losses() {
            lost.insert_range(l.first_seq, l.last_seq);
            *losses_total.entry(l.reason.as_str()).or_default() += l.reports;
        }
        if round % 7 == 0 {
            counted += total(s.counters());
            s.close();
            drop(s);
            s = Spool::open(dir.path(), cfg(max)).unwrap();
        }
        let readable: SeqSet = SeqSet::from_sorted(read_all(&mut s));
        for seq in 1..=appended {
            let r = readable.contains(seq);
            let a = acked.contains(seq);
            assert!(!(r && a), "round {round}: {seq} readable though acknowledged");
            assert!(
                r || a || lost.contains(seq),
                "round {round}: report {seq} vanished without a loss notice"
            );
        }
        assert!(s.stats().bytes <= max + 64 * 1024, "size stays near the limit");
    }
    let reported: u64 = losses_total.values().sum();
    assert_eq!(reported, counted + total(s.counters()), "every counted loss was reported, and only those");
    assert!(reported > 0, "the limits were exercised");
}
