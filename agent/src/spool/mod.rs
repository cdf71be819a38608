//! The agent's durable spool: every report is written here before it is sent and stays until the
//! collector acknowledges it.
//!
//! ## On disk (`STATE_DIR/spool/`)
//! - `NNNNNNNNNNNNNNNNNNNN.seg` — segments, named by the first sequence number they may hold;
//!   `….t1.seg` / `….t2.seg` after thinning. Records carry a CRC-32 ([`segment`]).
//! - `marks` — acknowledged numbers and the next number to use ([`marks`]).
//! - `quarantine/` — copies of segments in which damage was found, for inspection (the newest
//!   few are kept; nobody has to delete anything).
//!
//! ## Guarantees
//! - **Crash safety.** Records are only appended; segments are only replaced whole (temporary
//!   file, fsync, rename). After `kill -9` or power loss the last record may be torn: start-up
//!   finds it and cuts it off. A damaged record elsewhere (bad checksum) is skipped by resyncing
//!   on the next intact record; the segment is copied to `quarantine/`, rewritten without the
//!   damage, and the lost numbers are reported to the collector ([`LossReason::Corrupt`]).
//!   Nothing in the spool makes the agent refuse to start.
//! - **fsync policy** ([`FsyncPolicy`]): `always` (default) syncs each record before it is sent,
//!   so a report the collector has acknowledged is on the agent's disk and sequence numbers are
//!   never reused after a power cut; `interval` syncs at most once per interval — cheaper on slow
//!   media, but a power cut can lose the last interval's reports and reuse their numbers.
//!   `marks` is written atomically; losing recent acknowledgements only causes resends.
//! - **Bounded.** Over `max_bytes`, old segments are thinned — every 10th fine-grained report is
//!   kept, then every 100th; essential reports (identity, loss notices) are kept — and then the
//!   oldest segments are dropped. Segments whose newest report is older than `max_age` are
//!   dropped. On a full disk the oldest segment is thinned or dropped to make room; records that
//!   still do not fit wait in a small in-memory overflow. Every loss is counted and reported to
//!   the collector as a [`SpoolLoss`], so the gap in the ledger is explained.
//! - **Light start-up.** Opening scans the segments record by record (to verify checksums and
//!   find the newest number) without holding them in memory.

pub mod marks;
pub mod segment;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parta_common::fsutil;
use parta_protocol::SeqSet;
use parta_protocol::sample::{LossReason, SpoolLoss};

use marks::{Marks, MarksFile};
use segment::{Damage, Scanner};

/// How records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync every record before it is sent.
    Always,
    /// fsync at most once per interval.
    Interval(Duration),
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Self::Always),
            _ => match s.strip_prefix("interval:") {
                Some(d) => parta_common::settings::parse_duration_within(
                    d,
                    Duration::from_millis(10),
                    Duration::from_secs(60),
                )
                .map(Self::Interval),
                None => Err("expected `always` or `interval:DURATION`, e.g. interval:1s".into()),
            },
        }
    }
}

/// Spool limits and durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Largest size on disk.
    pub max_bytes: u64,
    /// Oldest report kept.
    pub max_age: Duration,
    /// fsync policy.
    pub fsync: FsyncPolicy,
}

impl Default for SpoolConfig {
    /// 256 MiB hold about two million reports — years at one a minute; 30 days covers a school
    /// holiday with the PC off; `always` is cheap at one report a minute.
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024 * 1024,
            max_age: Duration::from_secs(30 * 86_400),
            fsync: FsyncPolicy::Always,
        }
    }
}

impl SpoolConfig {
    /// Segment size: 1/16 of the limit so thinning has room to work, between 16 KiB and 4 MiB.
    pub fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 16).clamp(16 * 1024, 4 * 1024 * 1024)
    }
}

/// Records waiting in memory while the disk is full, at most.
pub const OVERFLOW_MAX: usize = 1_000;
/// Damaged segment copies kept in `quarantine/`.
const QUARANTINE_KEEP: usize = 8;
/// Least time between saves of `marks` when nothing forces one.
const MARKS_SAVE_EVERY: Duration = Duration::from_secs(1);

/// A spool operation failed in a way the spool cannot absorb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The spool directory cannot be created or listed.
    #[error("spool {}: {error}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Underlying error.
        error: io::Error,
    },
    /// A caller appended a number out of order (a bug).
    #[error("spool append of sequence {got}, expected {expected}")]
    Sequence {
        /// Number given.
        got: u64,
        /// Number expected.
        expected: u64,
    },
}

/// Counters of what the spool had to do, since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Reports thinned out because the spool was full.
    pub thinned: u64,
    /// Reports dropped for age.
    pub expired: u64,
    /// Reports lost because the disk was full.
    pub disk_full: u64,
    /// Reports lost to damaged bytes.
    pub corrupt: u64,
    /// Bytes of torn records cut off at start-up.
    pub torn_bytes: u64,
    /// Segments copied to quarantine.
    pub quarantined: u64,
    /// Writes that failed (then retried or held in memory).
    pub write_errors: u64,
}

/// A summary for `status` and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Segment files.
    pub segments: usize,
    /// Bytes on disk.
    pub bytes: u64,
    /// Reports not yet acknowledged (on disk and in memory).
    pub pending: u64,
    /// Oldest unacknowledged report: sequence number and agent time (ms).
    pub oldest_pending: Option<(u64, i64)>,
    /// Reports waiting in memory because the disk is full.
    pub overflow: usize,
    /// Next sequence number.
    pub next_seq: u64,
    /// Every report up to this number is acknowledged.
    pub acked_up_to: u64,
    /// What the spool had to do.
    pub counters: Counters,
}

/// A batch read for sending.
#[derive(Debug, Default)]
pub struct ReadBatch {
    /// `(sequence number, frame)` in ascending order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The last number looked at.
    pub scanned_to: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    /// Lower bound of the numbers in the file (from its name).
    first_seq: u64,
    /// Lowest number in the file (0 when empty).
    min_seq: u64,
    /// Highest number the file covers (0 when empty); records above its last one were thinned.
    last_seq: u64,
    records: u64,
    bytes: u64,
    oldest_ms: i64,
    newest_ms: i64,
    /// Thinning level: 0, 1 (every 10th kept), 2 (every 100th kept).
    level: u8,
    /// Numbers within `first_seq..=last_seq` not in the file (thinned, damaged).
    holes: SeqSet,
}

impl Segment {
    fn new(dir: &Path, first_seq: u64, level: u8) -> Self {
        Self::at(segment_path(dir, first_seq, level), first_seq, level)
    }

    /// An empty segment at `path`.
    fn at(path: PathBuf, first_seq: u64, level: u8) -> Self {
        Self {
            path,
            first_seq,
            min_seq: 0,
            last_seq: 0,
            records: 0,
            bytes: 0,
            oldest_ms: i64::MAX,
            newest_ms: i64::MIN,
            level,
            holes: SeqSet::new(),
        }
    }

    fn note(&mut self, seq: u64, time_ms: i64, size: u64) {
        if self.records > 0 && seq > self.last_seq + 1 {
            self.holes.insert_range(self.last_seq + 1, seq - 1);
        }
        if self.records == 0 {
            self.min_seq = seq;
        }
        self.last_seq = self.last_seq.max(seq);
        self.records += 1;
        self.bytes += size;
        self.oldest_ms = self.oldest_ms.min(time_ms);
        self.newest_ms = self.newest_ms.max(time_ms);
    }

    /// Unacknowledged records: those in `min_seq..=last_seq` that are neither holes nor
    /// acknowledged.
    fn pending(&self, acked: &SeqSet) -> u64 {
        if self.records == 0 {
            return 0;
        }
        let acked_here = acked.within(self.min_seq, self.last_seq);
        let acked_existing = acked_here.len() - acked_here.intersection_len(&self.holes);
        self.records.saturating_sub(acked_existing)
    }
}

fn segment_path(dir: &Path, first_seq: u64, level: u8) -> PathBuf {
    if level == 0 {
        dir.join(format!("{first_seq:020}.seg"))
    } else {
        dir.join(format!("{first_seq:020}.t{level}.seg"))
    }
}

/// `NNNN.seg` → (first seq, level 0); `NNNN.t2.seg` → (first seq, level 2).
fn parse_segment_name(name: &str) -> Option<(u64, u8)> {
    let stem = name.strip_suffix(".seg")?;
    let (num, level) = match stem.split_once('.') {
        Some((num, t)) => (num, t.strip_prefix('t')?.parse::<u8>().ok().filter(|l| *l <= 2)?),
        None => (stem, 0),
    };
    (num.len() == 20 && num.bytes().all(|b| b.is_ascii_digit()))
        .then(|| num.parse().ok())
        .flatten()
        .map(|n| (n, level))
}

#[derive(Debug)]
struct Overflow {
    seq: u64,
    time_ms: i64,
    record: Vec<u8>,
}

/// Where the last read stopped, to continue without rescanning the segment.
#[derive(Debug, Clone)]
struct ReadHint {
    path: PathBuf,
    next_seq: u64,
    offset: u64,
}

/// The spool. Not thread-safe by itself: the agent keeps it behind a mutex.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    cfg: SpoolConfig,
    segments: Vec<Segment>,
    /// Append handle of the last segment, while it takes appends.
    writer: Option<File>,
    marks: Marks,
    marks_file: MarksFile,
    marks_dirty: bool,
    marks_saved_at: Instant,
    next_seq: u64,
    overflow: VecDeque<Overflow>,
    losses: Vec<SpoolLoss>,
    counters: Counters,
    unsynced: bool,
    synced_at: Instant,
    damaged: Vec<PathBuf>,
    hint: Option<ReadHint>,
}

impl Spool {
    /// Changes limits and durability; new segments take the new size, the limits apply from
    /// the next append.
    pub fn set_config(&mut self, cfg: SpoolConfig) {
        self.cfg = cfg;
    }

    /// Opens (creating if needed) the spool in `dir`, repairing what a crash or bit rot left.
    pub fn open(dir: &Path, cfg: SpoolConfig) -> Result<Self, SpoolError> {
        let dir_err = |error| SpoolError::Dir { path: dir.to_owned(), error };
        fsutil::create_private_dir(dir).map_err(dir_err)?;
        let marks_file = MarksFile::new(dir);
        let marks = marks_file.load();
        let mut spool = Self {
            dir: dir.to_owned(),
            cfg,
            segments: Vec::new(),
            writer: None,
            marks,
            marks_file,
            marks_dirty: false,
            marks_saved_at: Instant::now(),
            next_seq: 1,
            overflow: VecDeque::new(),
            losses: Vec::new(),
            counters: Counters::default(),
            unsynced: false,
            synced_at: Instant::now(),
            damaged: Vec::new(),
            hint: None,
        };
        let (found, damage) = scan_dir(dir, true).map_err(dir_err)?;
        let last = found.len().checked_sub(1);
        for (i, (mut seg, dmg)) in found.into_iter().zip(damage).enumerate() {
            let torn_tail = Some(i) == last && dmg.last().is_some_and(|d| d.before_seq.is_none());
            if torn_tail {
                // A record cut short by a crash: cut it off. It was never acknowledged (records
                // are synced before they are sent), so nothing is lost that was promised.
                if let Some(d) = dmg.last() {
                    spool.cut_torn_tail(&mut seg, *d);
                }
            }
            let real: Vec<Damage> =
                dmg.into_iter().filter(|d| !(torn_tail && d.before_seq.is_none())).collect();
            spool.segments.push(seg);
            if !real.is_empty() {
                let idx = spool.segments.len() - 1;
                spool.repair(idx, &real);
            }
        }
        let newest = spool.segments.iter().map(|s| s.last_seq).max().unwrap_or(0);
        spool.next_seq = spool.marks.next.max(newest + 1).max(spool.marks.acked.max() + 1).max(1);
        // Reopen the last segment for appends if it can take more.
        if let Some(seg) = spool.segments.last()
            && seg.level == 0
            && seg.bytes < cfg.segment_bytes()
        {
            spool.writer = OpenOptions::new().append(true).open(&seg.path).ok();
        }
        spool.gc();
        Ok(spool)
    }

    fn cut_torn_tail(&mut self, seg: &mut Segment, d: Damage) {
        let cut = OpenOptions::new().write(true).open(&seg.path).and_then(|f| {
            f.set_len(d.offset)?;
            f.sync_all()
        });
        match cut {
            Ok(()) => {
                seg.bytes = d.offset;
                self.counters.torn_bytes += d.len;
                tracing::warn!(segment = %seg.path.display(), bytes = d.len, after_seq = d.after_seq,
                    "cut off a torn record at the end of the spool (the agent stopped mid-write)");
            }
            Err(e) => {
                tracing::warn!(segment = %seg.path.display(), error = %e, "cannot cut off a torn record")
            }
        }
    }

    /// The next sequence number to use.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Highest number used so far.
    pub fn newest(&self) -> u64 {
        self.next_seq - 1
    }

    /// Acknowledged numbers.
    pub fn acked(&self) -> &SeqSet {
        &self.marks.acked
    }

    /// Continue numbering above `seq` (the collector holds numbers this spool does not know:
    /// the state directory was restored from an old copy).
    pub fn skip_above(&mut self, seq: u64) {
        let Some(next) = seq.checked_add(1) else {
            // No number is left above it: following would wrap to 0, which no collector
            // accepts, and the agent would retry forever. Keep numbering where we are.
            tracing::error!(
                local_next = self.next_seq,
                collector_highest = seq,
                "the collector reports the highest possible sequence number; ignoring it"
            );
            return;
        };
        if seq >= self.next_seq {
            tracing::warn!(
                local_next = self.next_seq,
                collector_highest = seq,
                "the collector holds higher sequence numbers than this agent; continuing above them"
            );
            self.next_seq = next;
            self.marks.next = self.next_seq;
            self.marks_dirty = true;
            self.save_marks();
        }
    }

    /// Appends a report's frame. Never fails for lack of disk space: the spool makes room or
    /// holds the record in memory (see the module docs).
    pub fn append(
        &mut self,
        seq: u64,
        time_ms: i64,
        essential: bool,
        frame: &[u8],
    ) -> Result<(), SpoolError> {
        if seq != self.next_seq {
            return Err(SpoolError::Sequence { got: seq, expected: self.next_seq });
        }
        self.next_seq += 1;
        let record = segment::encode(seq, time_ms, essential, frame);
        self.flush_overflow();
        if !self.overflow.is_empty() || !self.write_with_room(seq, time_ms, &record) {
            self.hold(Overflow { seq, time_ms, record });
        }
        if self.total_bytes() > self.cfg.max_bytes {
            self.enforce_size();
        }
        Ok(())
    }

    /// Writes a record, making room once if the disk is full. False when it still did not fit.
    fn write_with_room(&mut self, seq: u64, time_ms: i64, record: &[u8]) -> bool {
        match self.write_record(seq, time_ms, record) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::StorageFull => {
                self.counters.write_errors += 1;
                tracing::warn!(error = %e, "spool disk is full; making room");
                self.make_room();
                self.write_record(seq, time_ms, record).is_ok()
            }
            Err(e) => {
                self.counters.write_errors += 1;
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot write to the spool; holding the report in memory");
                false
            }
        }
    }

    fn write_record(&mut self, seq: u64, time_ms: i64, record: &[u8]) -> io::Result<()> {
        let full = self.segments.last().is_none_or(|s| s.bytes >= self.cfg.segment_bytes());
        if self.writer.is_none() || full {
            if let Some(old) = self.writer.take()
                && self.unsynced
            {
                old.sync_data()?;
                self.unsynced = false;
            }
            let seg = Segment::new(&self.dir, seq, 0);
            let file = OpenOptions::new().create(true).append(true).open(&seg.path)?;
            fsutil::sync_dir(&self.dir)?;
            self.writer = Some(file);
            self.segments.push(seg);
        }
        let (Some(writer), Some(seg)) = (self.writer.as_mut(), self.segments.last_mut()) else {
            return Err(io::Error::other("no segment to append to"));
        };
        if let Err(e) = writer.write_all(record) {
            // Leave no partial record behind.
            let _ = writer.set_len(seg.bytes);
            return Err(e);
        }
        seg.note(seq, time_ms, record.len() as u64);
        match self.cfg.fsync {
            FsyncPolicy::Always => writer.sync_data()?,
            FsyncPolicy::Interval(_) => self.unsynced = true,
        }
        Ok(())
    }

    fn hold(&mut self, o: Overflow) {
        self.overflow.push_back(o);
        if self.overflow.len() > OVERFLOW_MAX
            && let Some(lost) = self.overflow.pop_front()
        {
            self.counters.disk_full += 1;
            self.note_loss(LossReason::DiskFull, lost.seq, lost.seq, 1, lost.time_ms, lost.time_ms);
        }
    }

    fn flush_overflow(&mut self) {
        while let Some(o) = self.overflow.pop_front() {
            if self.marks.acked.contains(o.seq) {
                continue;
            }
            if let Err(e) = self.write_record(o.seq, o.time_ms, &o.record) {
                if e.kind() != io::ErrorKind::StorageFull {
                    self.counters.write_errors += 1;
                }
                self.overflow.push_front(o);
                return;
            }
        }
    }

    /// Reads up to `max` unacknowledged records with numbers in `from..below` (and at most about
    /// `max_bytes`), oldest first.
    pub fn read(&mut self, from: u64, below: u64, max: usize, max_bytes: usize) -> io::Result<ReadBatch> {
        let mut out = ReadBatch { records: Vec::new(), scanned_to: from.saturating_sub(1) };
        let mut bytes = 0usize;
        let last_idx = self.segments.len().saturating_sub(1);
        for i in 0..self.segments.len() {
            let seg = &self.segments[i];
            if seg.records == 0 || seg.last_seq < from || seg.first_seq >= below {
                continue;
            }
            let offset = match &self.hint {
                Some(h) if h.path == seg.path && h.next_seq <= from => h.offset,
                _ => 0,
            };
            let mut scanner = Scanner::open(&seg.path, offset)?;
            let mut stopped = false;
            while let Some(rec) = scanner.next_record()? {
                let seq = rec.meta.seq;
                if seq < from {
                    continue;
                }
                if seq >= below || out.records.len() >= max || bytes >= max_bytes {
                    self.hint =
                        Some(ReadHint { path: seg.path.clone(), next_seq: seq, offset: rec.meta.offset });
                    stopped = true;
                    break;
                }
                out.scanned_to = seq;
                if !self.marks.acked.contains(seq) {
                    bytes += rec.payload.len();
                    out.records.push((seq, rec.payload));
                }
            }
            if !scanner.damage().is_empty() && !self.damaged.contains(&seg.path) {
                self.damaged.push(seg.path.clone());
            }
            if stopped {
                return Ok(out);
            }
            // The whole segment was looked at.
            out.scanned_to = out.scanned_to.max(
                if i == last_idx { seg.last_seq } else { self.segments[i + 1].first_seq - 1 }.min(below - 1),
            );
            self.hint = Some(ReadHint {
                path: seg.path.clone(),
                next_seq: seg.last_seq + 1,
                offset: scanner.offset(),
            });
        }
        for o in &self.overflow {
            if o.seq < from || self.marks.acked.contains(o.seq) {
                continue;
            }
            if o.seq >= below || out.records.len() >= max {
                return Ok(out);
            }
            // The frame is the record's payload.
            out.records.push((o.seq, o.record[segment::HEADER..].to_vec()));
            out.scanned_to = o.seq;
        }
        out.scanned_to = out.scanned_to.max(self.newest().min(below.saturating_sub(1)));
        Ok(out)
    }

    /// Records acknowledgements; deletes segments that hold nothing unacknowledged.
    pub fn ack(&mut self, newly: &SeqSet) {
        if newly.is_empty() {
            return;
        }
        self.marks.acked.union_with(newly);
        self.marks_dirty = true;
        self.overflow.retain(|o| !newly.contains(o.seq));
        self.gc();
    }

    /// Periodic work: sync per policy, flush the overflow, repair damage found by reads, enforce
    /// the age and size limits, save the marks.
    pub fn maintain(&mut self, now_ms: i64) {
        self.flush_overflow();
        if let FsyncPolicy::Interval(every) = self.cfg.fsync
            && self.unsynced
            && self.synced_at.elapsed() >= every
        {
            self.sync();
        }
        for path in std::mem::take(&mut self.damaged) {
            if let Some(i) = self.segments.iter().position(|s| s.path == path) {
                match scan_file(&path) {
                    Ok((_, dmg)) if !dmg.is_empty() => self.repair(i, &dmg),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(segment = %path.display(), error = %e, "cannot rescan a damaged segment")
                    }
                }
            }
        }
        self.expire(now_ms);
        self.enforce_size();
        self.gc();
        if self.marks_dirty && self.marks_saved_at.elapsed() >= MARKS_SAVE_EVERY {
            self.save_marks();
        }
    }

    /// Syncs what was written and saves the marks (on shutdown).
    pub fn close(&mut self) {
        self.sync();
        self.marks_dirty = true;
        self.save_marks();
    }

    fn sync(&mut self) {
        if let Some(w) = &self.writer
            && let Err(e) = w.sync_data()
        {
            tracing::warn!(error = %e, "cannot sync the spool");
            return;
        }
        self.unsynced = false;
        self.synced_at = Instant::now();
    }

    fn save_marks(&mut self) -> bool {
        self.marks.next = self.next_seq;
        match self.marks_file.save(&self.marks) {
            Ok(()) => {
                self.marks_dirty = false;
                self.marks_saved_at = Instant::now();
                true
            }
            Err(e) => {
                // Not fatal: acknowledged reports would be resent and recognised as duplicates.
                self.counters.write_errors += 1;
                tracing::warn!(error = %e, "cannot save spool marks; will retry");
                false
            }
        }
    }

    /// Loss notices not yet handed to a report.
    pub fn take_losses(&mut self) -> Vec<SpoolLoss> {
        std::mem::take(&mut self.losses)
    }

    /// Puts loss notices back (the report that was to carry them could not be made).
    pub fn return_losses(&mut self, mut l: Vec<SpoolLoss>) {
        l.append(&mut self.losses);
        self.losses = l;
    }

    fn note_loss(
        &mut self,
        reason: LossReason,
        first: u64,
        last: u64,
        reports: u64,
        oldest_ms: i64,
        newest_ms: i64,
    ) {
        if reports == 0 {
            return;
        }
        tracing::warn!(
            reason = reason.as_str(),
            first_seq = first,
            last_seq = last,
            reports,
            "spool discarded reports"
        );
        self.losses.push(SpoolLoss {
            reason,
            first_seq: first,
            last_seq: last,
            reports,
            oldest_ms,
            newest_ms,
        });
    }

    fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum::<u64>()
            + self.overflow.iter().map(|o| o.record.len() as u64).sum::<u64>()
    }

    /// Index past the last segment that no longer takes appends.
    fn closed_count(&self) -> usize {
        if self.writer.is_some() { self.segments.len().saturating_sub(1) } else { self.segments.len() }
    }

    /// Deletes segments whose records are all acknowledged (saving the marks first, which keep
    /// the next number once the records are gone).
    fn gc(&mut self) {
        let acked = &self.marks.acked;
        let done: Vec<usize> = (0..self.segments.len())
            .filter(|&i| {
                let s = &self.segments[i];
                s.records > 0 && s.pending(acked) == 0
            })
            .collect();
        if done.is_empty() {
            return;
        }
        self.marks_dirty = true;
        if !self.save_marks() {
            return;
        }
        for &i in done.iter().rev() {
            let seg = self.segments.remove(i);
            if i == self.segments.len() {
                self.writer = None;
            }
            if let Err(e) = std::fs::remove_file(&seg.path) {
                tracing::warn!(segment = %seg.path.display(), error = %e, "cannot delete an acknowledged segment");
            }
        }
        self.hint = None;
        // Below the oldest record still held, nothing will ever be sent again: keep the marks
        // small by counting all of it as done.
        let floor = self.segments.first().map_or(self.next_seq, |s| s.first_seq);
        let floor = self.overflow.front().map_or(floor, |o| floor.min(o.seq));
        self.marks.acked.collapse_below(floor);
    }

    /// Drops closed segments whose newest report is older than the age limit.
    fn expire(&mut self, now_ms: i64) {
        let max_age_ms = i64::try_from(self.cfg.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(max_age_ms);
        while self.closed_count() > 0 && self.segments[0].newest_ms < cutoff {
            self.drop_segment(0, LossReason::Expired);
        }
    }

    /// Thins and then drops the oldest segments until the spool fits its limit.
    fn enforce_size(&mut self) {
        while self.total_bytes() > self.cfg.max_bytes {
            if self.closed_count() == 0 {
                if self.writer.is_none() {
                    break;
                }
                // Close the active segment so that it can be thinned; appends open a new one.
                self.sync();
                self.writer = None;
                continue;
            }
            let closed = self.closed_count();
            let target = (0..closed)
                .find(|&i| self.segments[i].level < 1)
                .or_else(|| (0..closed).find(|&i| self.segments[i].level < 2));
            match target {
                Some(i) => {
                    if let Err(e) = self.thin(i) {
                        tracing::warn!(error = %e, "cannot thin a spool segment; dropping it instead");
                        self.drop_segment(i, LossReason::Thinned);
                    }
                }
                None => self.drop_segment(0, LossReason::Thinned),
            }
        }
    }

    /// Frees space on a full disk: thin the oldest closed segment, or drop it if even that
    /// cannot be written.
    fn make_room(&mut self) {
        if self.closed_count() == 0 {
            self.sync();
            self.writer = None;
        }
        if self.closed_count() == 0 {
            return;
        }
        let i = (0..self.closed_count()).find(|&i| self.segments[i].level < 2);
        let thinned = match i {
            Some(i) => self.thin(i).is_ok(),
            None => false,
        };
        if !thinned {
            self.drop_segment(0, LossReason::DiskFull);
        }
    }

    /// Rewrites segment `i` one thinning level down.
    fn thin(&mut self, i: usize) -> io::Result<()> {
        let level = self.segments[i].level + 1;
        let keep_every: u64 = if level == 1 { 10 } else { 100 };
        let old = self.segments[i].clone();
        let mut scanner = Scanner::open(&old.path, 0)?;
        let mut kept = Vec::new();
        let mut seg = Segment::new(&self.dir, old.first_seq, level);
        seg.holes = old.holes.clone();
        let (mut lost, mut lost_first, mut lost_last, mut lost_old, mut lost_new) =
            (0u64, u64::MAX, 0u64, i64::MAX, i64::MIN);
        while let Some(rec) = scanner.next_record()? {
            let m = rec.meta;
            let acked = self.marks.acked.contains(m.seq);
            if !acked && (m.essential || m.seq % keep_every == 0) {
                kept.push(segment::encode(m.seq, m.time_ms, m.essential, &rec.payload));
                seg.note(m.seq, m.time_ms, m.size);
            } else {
                seg.holes.insert(m.seq);
                if !acked {
                    lost += 1;
                    (lost_first, lost_last) = (lost_first.min(m.seq), lost_last.max(m.seq));
                    (lost_old, lost_new) = (lost_old.min(m.time_ms), lost_new.max(m.time_ms));
                }
            }
        }
        // Keep the segment's span even if its last records went, so numbering stays monotonic.
        seg.last_seq = seg.last_seq.max(old.last_seq);
        if seg.records == 0 {
            seg.holes = SeqSet::new();
        }
        segment::write_segment(&seg.path, &kept)?;
        if seg.path != old.path {
            let _ = std::fs::remove_file(&old.path);
        }
        let _ = fsutil::sync_dir(&self.dir);
        self.hint = None;
        self.counters.thinned += lost;
        self.note_loss(LossReason::Thinned, lost_first, lost_last, lost, lost_old, lost_new);
        if seg.records == 0 {
            let _ = std::fs::remove_file(&seg.path);
            self.segments.remove(i);
        } else {
            self.segments[i] = seg;
        }
        Ok(())
    }

    /// Deletes segment `i`, counting its unacknowledged records as lost.
    fn drop_segment(&mut self, i: usize, reason: LossReason) {
        let seg = self.segments.remove(i);
        if i == self.segments.len() {
            self.writer = None;
        }
        let lost = seg.pending(&self.marks.acked);
        match reason {
            LossReason::Expired => self.counters.expired += lost,
            LossReason::DiskFull => self.counters.disk_full += lost,
            _ => self.counters.thinned += lost,
        }
        self.note_loss(reason, seg.first_seq, seg.last_seq, lost, seg.oldest_ms, seg.newest_ms);
        // The marks keep the next number before the records are gone.
        self.marks_dirty = true;
        self.save_marks();
        if let Err(e) = std::fs::remove_file(&seg.path) {
            tracing::warn!(segment = %seg.path.display(), error = %e, "cannot delete a spool segment");
        }
        self.hint = None;
    }

    /// Copies segment `i` to quarantine, rewrites it without the damaged bytes, reports the loss.
    fn repair(&mut self, i: usize, damage: &[Damage]) {
        let seg = self.segments[i].clone();
        self.quarantine(&seg.path);
        let mut good = Vec::new();
        let mut fixed = Segment::new(&self.dir, seg.first_seq, seg.level);
        fixed.holes = seg.holes.clone();
        let scanned = (|| -> io::Result<()> {
            let mut s = Scanner::open(&seg.path, 0)?;
            while let Some(rec) = s.next_record()? {
                let m = rec.meta;
                good.push(segment::encode(m.seq, m.time_ms, m.essential, &rec.payload));
                fixed.note(m.seq, m.time_ms, m.size);
            }
            Ok(())
        })();
        let next_first = self.segments.get(i + 1).map(|s| s.first_seq);
        for d in damage {
            // Numbers between the good records around the damage are gone.
            let lo = d.after_seq.max(seg.first_seq.saturating_sub(1)) + 1;
            let hi = match (d.before_seq, next_first) {
                (Some(b), _) => b.saturating_sub(1),
                (None, Some(n)) => n.saturating_sub(1),
                (None, None) => self.next_seq.saturating_sub(1).max(seg.last_seq),
            };
            if lo <= hi {
                let lost = hi - lo + 1 - self.marks.acked.within(lo, hi).len();
                fixed.holes.insert_range(lo, hi);
                fixed.last_seq = fixed.last_seq.max(hi);
                self.counters.corrupt += lost;
                self.note_loss(LossReason::Corrupt, lo, hi, lost, 0, 0);
            }
        }
        match scanned.and_then(|()| segment::write_segment(&seg.path, &good)) {
            Ok(()) => {
                tracing::warn!(segment = %seg.path.display(), damaged_stretches = damage.len(),
                    "repaired a damaged spool segment (a copy is in quarantine/)");
                self.segments[i] = fixed;
            }
            Err(e) => {
                tracing::warn!(segment = %seg.path.display(), error = %e, "cannot rewrite a damaged spool segment")
            }
        }
        self.hint = None;
    }

    fn quarantine(&mut self, path: &Path) {
        let qdir = self.dir.join("quarantine");
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = path.file_name().map_or_else(|| "segment".into(), |n| n.to_string_lossy().into_owned());
        let copied = fsutil::create_private_dir(&qdir)
            .and_then(|()| std::fs::copy(path, qdir.join(format!("{name}.{stamp}.damaged"))));
        match copied {
            Ok(_) => {
                self.counters.quarantined += 1;
                // Keep only the newest few copies.
                if let Ok(rd) = std::fs::read_dir(&qdir) {
                    let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    files.sort();
                    for old in files.iter().rev().skip(QUARANTINE_KEEP) {
                        let _ = std::fs::remove_file(old);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(segment = %path.display(), error = %e, "cannot copy a damaged segment to quarantine")
            }
        }
    }

    /// Reports not yet acknowledged (cheap: no file access).
    pub fn pending(&self) -> u64 {
        let acked = &self.marks.acked;
        self.segments.iter().map(|s| s.pending(acked)).sum::<u64>()
            + self.overflow.iter().filter(|o| !acked.contains(o.seq)).count() as u64
    }

    /// A summary of the spool.
    pub fn stats(&self) -> Stats {
        let acked = &self.marks.acked;
        let oldest_pending = self.oldest_pending();
        Stats {
            segments: self.segments.len(),
            bytes: self.total_bytes(),
            pending: self.pending(),
            oldest_pending,
            overflow: self.overflow.len(),
            next_seq: self.next_seq,
            acked_up_to: acked.contiguous_from_one(),
            counters: self.counters,
        }
    }

    fn oldest_pending(&self) -> Option<(u64, i64)> {
        let acked = &self.marks.acked;
        let seg = self.segments.iter().find(|s| s.pending(acked) > 0);
        if let Some(seg) = seg {
            let mut scanner = Scanner::open(&seg.path, 0).ok()?;
            while let Ok(Some(rec)) = scanner.next_record() {
                if !acked.contains(rec.meta.seq) {
                    return Some((rec.meta.seq, rec.meta.time_ms));
                }
            }
        }
        self.overflow.iter().find(|o| !acked.contains(o.seq)).map(|o| (o.seq, o.time_ms))
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }
}

/// Reads a spool directory without changing anything (for `parta-agent status`).
pub fn inspect(dir: &Path) -> io::Result<Stats> {
    // A running agent may remove or replace a segment between the listing and the read (after
    // acknowledgements, thinning, expiry): look again.
    let mut attempt = 0;
    loop {
        match inspect_once(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 10 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

fn inspect_once(dir: &Path) -> io::Result<Stats> {
    let marks = MarksFile::new(dir).load();
    let (segments, _) = scan_dir(dir, false)?;
    let mut stats = Stats { segments: segments.len(), ..Stats::default() };
    let newest = segments.iter().map(|s| s.last_seq).max().unwrap_or(0);
    stats.next_seq = marks.next.max(newest + 1).max(marks.acked.max() + 1).max(1);
    stats.acked_up_to = marks.acked.contiguous_from_one();
    for s in &segments {
        stats.bytes += s.bytes;
        stats.pending += s.pending(&marks.acked);
    }
    if let Some(seg) = segments.iter().find(|s| s.pending(&marks.acked) > 0) {
        let mut scanner = Scanner::open(&seg.path, 0)?;
        while let Some(rec) = scanner.next_record()? {
            if !marks.acked.contains(rec.meta.seq) {
                stats.oldest_pending = Some((rec.meta.seq, rec.meta.time_ms));
                break;
            }
        }
    }
    Ok(stats)
}

/// Segment files of a spool directory, oldest first (for inspection and tests).
pub fn segment_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut named = list_segments(dir, false)?;
    named.sort();
    Ok(named.into_iter().map(|(_, _, p)| p).collect())
}

/// `(first seq, level, path)` of every segment file; with `cleanup`, leftover temporary files are
/// removed (only the spool's owner may do that: a reader must not race a running agent).
fn list_segments(dir: &Path, cleanup: bool) -> io::Result<Vec<(u64, u8, PathBuf)>> {
    let mut named = Vec::new();
    if !dir.exists() {
        return Ok(named);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if name.ends_with(".tmp") {
            if cleanup {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        if let Some((first, level)) = parse_segment_name(&name) {
            named.push((first, level, path));
        }
    }
    Ok(named)
}

/// Lists and scans the segments of a directory. With `cleanup` (the owner opening the spool),
/// leftover temporary files and superseded copies of thinned segments are removed. Returns
/// segments in order with their damage.
fn scan_dir(dir: &Path, cleanup: bool) -> io::Result<(Vec<Segment>, Vec<Vec<Damage>>)> {
    let mut named = list_segments(dir, cleanup)?;
    named.sort();
    // A thinning interrupted after the new file appeared leaves both levels: keep the newer.
    let mut chosen: Vec<(u64, u8, PathBuf)> = Vec::new();
    for (first, level, path) in named {
        match chosen.last() {
            Some((f, _, old)) if *f == first => {
                if cleanup {
                    let _ = std::fs::remove_file(old);
                }
                chosen.pop();
                chosen.push((first, level, path));
            }
            _ => chosen.push((first, level, path)),
        }
    }
    let mut segments = Vec::with_capacity(chosen.len());
    let mut damage = Vec::with_capacity(chosen.len());
    for (first, level, path) in chosen {
        let (mut seg, dmg) = scan_file(&path)?;
        seg.first_seq = first;
        seg.level = level;
        segments.push(seg);
        damage.push(dmg);
    }
    Ok((segments, damage))
}

/// Scans one segment file: its metadata and any damage.
fn scan_file(path: &Path) -> io::Result<(Segment, Vec<Damage>)> {
    let mut seg = Segment::at(path.to_owned(), 0, 0);
    let mut scanner = Scanner::open(path, 0)?;
    while let Some(rec) = scanner.next_record()? {
        seg.note(rec.meta.seq, rec.meta.time_ms, rec.meta.size);
    }
    let damage = scanner.damage().to_vec();
    // Damaged bytes still occupy the file until it is repaired.
    seg.bytes = std::fs::metadata(path)?.len();
    Ok((seg, damage))
}

#[cfg(test)]
mod tests;
