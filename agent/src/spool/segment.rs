//! Segment files: the record format, writing, and scanning with checksum verification and
//! resynchronisation past damaged bytes.
//!
//! A record is
//!
//! ```text
//! "PSR1" | len: u32 LE | crc32: u32 LE | seq: u64 LE | agent_time_ms: i64 LE | flags: u8 | payload (len bytes)
//! ```
//!
//! `crc32` covers everything after itself (seq through payload). The payload is the report's
//! frame exactly as it goes on the wire. A record is only ever appended; a segment is only ever
//! replaced whole (write a new file, fsync, rename), so the only damage a crash can leave is a
//! torn last record, which scanning detects.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Record marker.
pub const MAGIC: [u8; 4] = *b"PSR1";
/// Header size.
pub const HEADER: usize = 4 + 4 + 4 + 8 + 8 + 1;
/// Largest payload a record may hold (a frame of the largest allowed envelope).
pub const MAX_PAYLOAD: usize = parta_protocol::MAX_FRAME_LEN + parta_protocol::frame::LEN_PREFIX;
/// Flag bit: the report holds essential samples (kept when thinning).
pub const FLAG_ESSENTIAL: u8 = 1;

/// A record's metadata (no payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Sequence number.
    pub seq: u64,
    /// Agent time, ms since the epoch.
    pub time_ms: i64,
    /// Holds essential samples.
    pub essential: bool,
    /// Offset of the record in its file.
    pub offset: u64,
    /// Record size including the header.
    pub size: u64,
}

/// A record with its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Metadata.
    pub meta: Meta,
    /// The frame.
    pub payload: Vec<u8>,
}

/// Encodes a record.
pub fn encode(seq: u64, time_ms: i64, essential: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    // Payloads are frames, bounded by MAX_PAYLOAD, far below u32::MAX.
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.push(if essential { FLAG_ESSENTIAL } else { 0 });
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[12..]);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Parses a record at the start of `buf` if it is complete and intact.
fn parse(buf: &[u8], offset: u64) -> Option<Record> {
    if buf.len() < HEADER || buf[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(buf[4..8].try_into().ok()?) as usize;
    if len > MAX_PAYLOAD || buf.len() < HEADER + len {
        return None;
    }
    let crc = u32::from_le_bytes(buf[8..12].try_into().ok()?);
    if crc32fast::hash(&buf[12..HEADER + len]) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(buf[12..20].try_into().ok()?);
    let time_ms = i64::from_le_bytes(buf[20..28].try_into().ok()?);
    let essential = buf[28] & FLAG_ESSENTIAL != 0;
    Some(Record {
        meta: Meta { seq, time_ms, essential, offset, size: (HEADER + len) as u64 },
        payload: buf[HEADER..HEADER + len].to_vec(),
    })
}

/// A stretch of bytes that did not hold valid records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// Offset where it starts.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// Sequence number of the last good record before it (0 if none).
    pub after_seq: u64,
    /// Sequence number of the first good record after it (`None` at the end of the file: a torn
    /// tail).
    pub before_seq: Option<u64>,
}

/// Streams the records of a segment file, verifying each, skipping damaged stretches (which it
/// reports) by searching for the next intact record. Memory use is one record at a time plus a
/// read buffer.
#[derive(Debug)]
pub struct Scanner {
    reader: BufReader<File>,
    /// Bytes read from the file; `buf[pos..]` are not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// File offset of `buf[pos]`.
    base: u64,
    eof: bool,
    last_seq: u64,
    damage: Vec<Damage>,
    /// Open damaged stretch: (start offset, last good seq before it).
    open_damage: Option<(u64, u64)>,
}

const CHUNK: usize = 64 * 1024;

impl Scanner {
    /// Opens a segment for scanning from `offset` (a record boundary).
    pub fn open(path: &Path, offset: u64) -> io::Result<Self> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            reader: BufReader::with_capacity(CHUNK, file),
            buf: Vec::new(),
            pos: 0,
            base: offset,
            eof: false,
            last_seq: 0,
            damage: Vec::new(),
            open_damage: None,
        })
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Ensures at least `n` unconsumed bytes are buffered (fewer only at end of file).
    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.avail().len() >= n || self.eof {
            return Ok(());
        }
        // Compact once per refill, not per record.
        self.buf.drain(..self.pos);
        self.pos = 0;
        while self.buf.len() < n && !self.eof {
            let start = self.buf.len();
            self.buf.resize(start + CHUNK.max(n - start), 0);
            let got = self.reader.read(&mut self.buf[start..])?;
            self.buf.truncate(start + got);
            if got == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.base += n as u64;
    }

    /// The next intact record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        loop {
            self.fill(HEADER)?;
            let head = self.avail();
            if head.is_empty() {
                self.close_damage(None);
                return Ok(None);
            }
            let want = if head.len() >= 8 && head[..4] == MAGIC {
                let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
                HEADER + len.min(MAX_PAYLOAD)
            } else {
                HEADER
            };
            self.fill(want)?;
            if let Some(rec) = parse(self.avail(), self.base) {
                let size = rec.meta.size as usize;
                self.close_damage(Some(rec.meta.seq));
                self.last_seq = rec.meta.seq;
                self.consume(size);
                return Ok(Some(rec));
            }
            // Not a valid record here: skip to the next possible marker.
            if self.open_damage.is_none() {
                self.open_damage = Some((self.base, self.last_seq));
            }
            self.fill(CHUNK)?;
            let rest = self.avail();
            let skip = rest[1..]
                .windows(4)
                .position(|w| w == MAGIC)
                .map_or(rest.len().saturating_sub(3).max(1), |p| p + 1);
            let n = skip.min(rest.len());
            self.consume(n);
        }
    }

    fn close_damage(&mut self, before_seq: Option<u64>) {
        if let Some((offset, after_seq)) = self.open_damage.take() {
            self.damage.push(Damage { offset, len: self.base - offset, after_seq, before_seq });
        }
    }

    /// Damaged stretches found so far.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Offset just after the last byte consumed.
    pub fn offset(&self) -> u64 {
        self.base
    }
}

/// Writes `records` (already encoded) to a new file at `path` atomically.
pub fn write_segment(path: &Path, records: &[Vec<u8>]) -> io::Result<()> {
    let tmp = path.with_extension("seg.tmp");
    let result = (|| {
        let mut f = File::create(&tmp)?;
        for r in records {
            f.write_all(r)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }

    fn scan_all(path: &Path) -> (Vec<u64>, Vec<Damage>) {
        let mut s = Scanner::open(path, 0).unwrap();
        let mut seqs = Vec::new();
        while let Some(r) = s.next_record().unwrap() {
            seqs.push(r.meta.seq);
        }
        (seqs, s.damage().to_vec())
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.seg");
        let mut bytes = Vec::new();
        for seq in 1..=100u64 {
            bytes.extend(encode(
                seq,
                1000 + seq as i64,
                seq % 7 == 0,
                &vec![seq as u8; (seq * 13 % 300) as usize],
            ));
        }
        write(&p, &bytes);
        let mut s = Scanner::open(&p, 0).unwrap();
        let mut n = 0;
        while let Some(r) = s.next_record().unwrap() {
            n += 1;
            assert_eq!(r.meta.seq, n);
            assert_eq!(r.meta.essential, n % 7 == 0);
            assert_eq!(r.payload.len() as u64, n * 13 % 300);
        }
        assert_eq!(n, 100);
        assert!(s.damage().is_empty());
        assert_eq!(s.offset(), bytes.len() as u64);
    }

    #[test]
    fn torn_tail_is_reported_as_tail_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.seg");
        let mut bytes = Vec::new();
        for seq in 1..=5 {
            bytes.extend(encode(seq, 0, false, b"payload-of-a-report"));
        }
        let whole = bytes.len();
        bytes.extend_from_slice(&encode(6, 0, false, b"payload-of-a-report")[..20]);
        write(&p, &bytes);
        let (seqs, damage) = scan_all(&p);
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert_eq!(damage, [Damage { offset: whole as u64, len: 20, after_seq: 5, before_seq: None }]);
    }

    #[test]
    fn corruption_in_the_middle_is_skipped_and_later_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.seg");
        let recs: Vec<Vec<u8>> = (1..=10).map(|s| encode(s, 0, false, &[s as u8; 50])).collect();
        let mut bytes: Vec<u8> = recs.concat();
        // Flip bytes inside records 4 and 5 (payloads): checksums fail.
        let r4 = recs[..3].iter().map(Vec::len).sum::<usize>();
        bytes[r4 + HEADER + 10] ^= 0xff;
        bytes[r4 + recs[3].len() + HEADER + 3] ^= 0x55;
        write(&p, &bytes);
        let (seqs, damage) = scan_all(&p);
        assert_eq!(seqs, [1, 2, 3, 6, 7, 8, 9, 10]);
        assert_eq!(damage.len(), 1);
        assert_eq!((damage[0].after_seq, damage[0].before_seq), (3, Some(6)));
        assert_eq!(damage[0].offset, r4 as u64);
    }

    #[test]
    fn garbage_everywhere_never_panics_and_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.seg");
        let mut x: u32 = 12345;
        let mut bytes = Vec::new();
        for _ in 0..200_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            bytes.push((x >> 16) as u8);
        }
        // Sprinkle markers with absurd lengths.
        for i in (0..bytes.len() - 8).step_by(9973) {
            bytes[i..i + 4].copy_from_slice(&MAGIC);
        }
        write(&p, &bytes);
        let (seqs, damage) = scan_all(&p);
        assert!(seqs.is_empty());
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].len, bytes.len() as u64);
    }

    #[test]
    fn atomic_segment_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.seg");
        write(&p, b"old");
        write_segment(&p, &[encode(1, 0, false, b"x"), encode(2, 0, true, b"y")]).unwrap();
        assert_eq!(scan_all(&p).0, [1, 2]);
        assert!(!dir.path().join("a.seg.tmp").exists());
    }
}
