//! Which numbers the collector has acknowledged, kept in `marks`, a small text file replaced
//! atomically (`acked 1-1200,1300-1305`). Losing it is harmless: reports are then sent again and
//! the collector recognises them as duplicates. It must, however, be saved before segments are
//! deleted, because it also remembers the highest number used once the segments are gone.

use std::path::{Path, PathBuf};

use parta_common::fsutil;
use parta_protocol::SeqSet;

/// Acknowledged numbers and the next number to use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// Stored by the collector.
    pub acked: SeqSet,
    /// The next sequence number to use, as of the last save.
    pub next: u64,
}

impl Marks {
    fn render(&self) -> String {
        let list = self.acked.ranges().iter().map(|(a, b)| format!("{a}-{b}")).collect::<Vec<_>>().join(",");
        format!("next {}\nacked {list}\n", self.next)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut m = Self::default();
        for line in text.lines() {
            let (key, list) = line.split_once(' ').unwrap_or((line, ""));
            let set = match key {
                "acked" => &mut m.acked,
                "next" => {
                    m.next = list.trim().parse().ok()?;
                    continue;
                }
                _ => return None,
            };
            for item in list.split(',').filter(|s| !s.is_empty()) {
                let (a, b) = item.split_once('-')?;
                let (a, b) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                set.insert_range(a, b);
            }
        }
        Some(m)
    }
}

/// Where the marks live.
#[derive(Debug, Clone)]
pub struct MarksFile {
    path: PathBuf,
}

impl MarksFile {
    /// The marks file in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join("marks") }
    }

    /// Reads the marks; a missing or damaged file gives empty marks (with a warning).
    pub fn load(&self) -> Marks {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Marks::parse(&text).unwrap_or_else(|| {
                tracing::warn!(path = %self.path.display(),
                    "spool marks are damaged; unacknowledged state is reset and reports will be resent (the collector drops duplicates)");
                Marks::default()
            }),
            Err(_) => Marks::default(),
        }
    }

    /// Replaces the file (atomically, fsynced).
    pub fn save(&self, marks: &Marks) -> std::io::Result<()> {
        fsutil::write_atomic(&self.path, marks.render().as_bytes(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let f = MarksFile::new(dir.path());
        assert_eq!(f.load(), Marks::default());
        let mut m = Marks::default();
        m.acked.insert_range(1, 100);
        m.acked.insert(150);
        m.next = 151;
        f.save(&m).unwrap();
        assert_eq!(f.load(), m);
        std::fs::write(dir.path().join("marks"), "acked 5-1\n").unwrap();
        assert_eq!(f.load(), Marks::default());
        std::fs::write(dir.path().join("marks"), "bogus\n").unwrap();
        assert_eq!(f.load(), Marks::default());
    }
}
