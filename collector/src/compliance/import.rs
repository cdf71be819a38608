//! `schools import` and `inventory import`: read a file, check every row, and store it only
//! when every row is good, logging who imported what.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::csvin::{self, CsvError, Delimiter, Encoding, Problem};
use super::profile::Profile;
use super::registry;
use crate::storage::registry::ImportLogRow;
use crate::storage::{Store, now_secs};

/// Largest file an import reads.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// How to read the file.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Encoding.
    pub encoding: Encoding,
    /// Separator.
    pub delimiter: Delimiter,
}

/// The file is not acceptable: every problem, and nothing was imported.
#[derive(Debug, thiserror::Error)]
pub struct DataError {
    /// File as given.
    pub file: String,
    /// Problems (at most [`SHOWN`] are printed).
    pub problems: Vec<Problem>,
}

/// Problems printed at most.
const SHOWN: usize = 200;

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.problems.iter().take(SHOWN) {
            if p.line > 0 {
                write!(f, "{}:{}: ", self.file, p.line)?;
            } else {
                write!(f, "{}: ", self.file)?;
            }
            let rest = Problem { line: 0, ..p.clone() };
            writeln!(f, "{rest}")?;
        }
        if self.problems.len() > SHOWN {
            writeln!(f, "… and {} more", self.problems.len() - SHOWN)?;
        }
        write!(
            f,
            "{}: {} problem{}; nothing imported",
            self.file,
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )
    }
}

fn whole_file(file: &str, message: String) -> DataError {
    DataError {
        file: file.to_owned(),
        problems: vec![Problem { line: 0, column: String::new(), value: String::new(), message }],
    }
}

/// Reads `path` as a table; any failure is a [`DataError`] naming the file.
pub fn read_table(path: &Path, opts: ReadOptions) -> Result<(csvin::Table, String), DataError> {
    let file = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| whole_file(&file, format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE {
        return Err(whole_file(&file, format!("larger than {} MiB", MAX_FILE / 1024 / 1024)));
    }
    let bytes = std::fs::read(path).map_err(|e| whole_file(&file, format!("cannot read: {e}")))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    let table = csvin::read(&bytes, opts.encoding, opts.delimiter).map_err(|e| {
        let line = match e {
            CsvError::Empty => 0,
            CsvError::NotUtf8 { line }
            | CsvError::UnclosedQuote { line }
            | CsvError::TextAfterQuote { line } => line,
        };
        let message = e.to_string();
        // The error text starts with its line; the report prints the line itself.
        let message =
            message.split_once(": ").filter(|_| line > 0).map_or(message.clone(), |(_, m)| m.to_owned());
        DataError {
            file: file.clone(),
            problems: vec![Problem { line, column: String::new(), value: String::new(), message }],
        }
    })?;
    Ok((table, sha))
}

/// What an import did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportSummary {
    /// Import id (empty on a dry run).
    pub import_id: String,
    /// Encoding detected or given.
    pub encoding: &'static str,
    /// Separator.
    pub delimiter: char,
    /// Data rows.
    pub rows: usize,
    /// Schools touched.
    pub schools: usize,
    /// Whether anything was stored.
    pub stored: bool,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.delimiter == '\t' { "tab".to_owned() } else { format!("«{}»", self.delimiter) };
        write!(
            f,
            "{} rows read ({}, separated by {sep}), {} schools",
            self.rows, self.encoding, self.schools
        )?;
        if self.stored {
            write!(f, "; imported as {}", self.import_id)
        } else {
            write!(f, "; all rows are good (dry run: nothing imported)")
        }
    }
}

fn new_import_id() -> String {
    format!("imp-{}", uuid::Uuid::new_v4().simple())
}

/// What an import read, before anything is stored.
struct Checked<'a> {
    table: &'a csvin::Table,
    file: String,
    sha256: String,
    schools: usize,
}

impl Checked<'_> {
    fn summary(&self) -> ImportSummary {
        ImportSummary {
            import_id: String::new(),
            encoding: self.table.encoding,
            delimiter: self.table.delimiter,
            rows: self.table.records.len(),
            schools: self.schools,
            stored: false,
        }
    }

    /// Logs the import `import_id` of `kind` and returns its summary.
    async fn logged(
        self,
        store: &Store,
        import_id: String,
        kind: &str,
        profile: String,
        actor: &str,
    ) -> anyhow::Result<ImportSummary> {
        let mut summary = self.summary();
        store
            .log_import(&ImportLogRow {
                import_id: import_id.clone(),
                kind: kind.to_owned(),
                at: now_secs(),
                actor: actor.to_owned(),
                file: self.file,
                sha256: self.sha256,
                rows: u32::try_from(summary.rows).unwrap_or(u32::MAX),
                schools: u32::try_from(self.schools).unwrap_or(u32::MAX),
                profile,
            })
            .await?;
        summary.import_id = import_id;
        summary.stored = true;
        Ok(summary)
    }
}

/// `schools import`.
pub async fn schools(
    store: &Store,
    path: &Path,
    opts: ReadOptions,
    dry_run: bool,
    actor: &str,
) -> anyhow::Result<ImportSummary> {
    let (table, sha256) = read_table(path, opts)?;
    let file = path.display().to_string();
    let schools =
        registry::parse_schools(&table).map_err(|problems| DataError { file: file.clone(), problems })?;
    let checked = Checked { table: &table, file, sha256, schools: schools.len() };
    if dry_run {
        return Ok(checked.summary());
    }
    let import_id = new_import_id();
    store.put_schools(&schools, &import_id, version_now()).await?;
    checked.logged(store, import_id, "schools", String::new(), actor).await
}

/// `inventory import`: the register of the schools the file lists replaces their previous one.
pub async fn register(
    store: &Store,
    path: &Path,
    opts: ReadOptions,
    profile: &Profile,
    dry_run: bool,
    actor: &str,
) -> anyhow::Result<ImportSummary> {
    let (table, sha256) = read_table(path, opts)?;
    let file = path.display().to_string();
    let known: BTreeSet<String> = store.schools().await?.into_iter().map(|s| s.school_id).collect();
    let items = registry::parse_register(&table, &known, profile)
        .map_err(|problems| DataError { file: file.clone(), problems })?;
    let schools = items.iter().map(|i| i.school_id.as_str()).collect::<BTreeSet<_>>().len();
    let checked = Checked { table: &table, file, sha256, schools };
    if dry_run {
        return Ok(checked.summary());
    }
    let import_id = new_import_id();
    store.put_register(&items, &import_id, version_now()).await?;
    checked.logged(store, import_id, "register", format!("{} {}", profile.id, profile.version), actor).await
}

/// A version that grows with time (ns), so that the latest import wins.
fn version_now() -> u64 {
    u64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    )
    .unwrap_or(u64::MAX)
}
