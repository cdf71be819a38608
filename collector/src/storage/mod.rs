//! ClickHouse storage: connection and server version, migrations, batched inserts, and the
//! queries behind the API and the session handshake.
//!
//! - [`schema`]: versioned migrations rendered for the server's capabilities.
//! - [`rows`]: row types and [`rows::Batch`], accepted reports turned into rows.
//! - [`queries`]: reads for the API, tokens and per-device sequence state.
//! - [`fleet`]: enrolled devices, their certificates and school history.
//! - [`accounts`], [`policies`]: accounts and credentials, and policies with their history, in
//!   the auth database.
//! - [`queue`]: rows many sessions produce a few at a time, written in batches by one task.
//! - [`releases`]: signed releases and their rollouts (auth database), devices' update states.
//!
//! Inserts go table by table with the ledger last: a ledger row exists only once all the data
//! of its report is stored. If the collector dies between the data and the ledger insert, the
//! agent resends and the data is inserted again; the tables are `ReplacingMergeTree` keyed by
//! `(device_id, seq, …)`, so the copies collapse (at merge time, or at once with `FINAL`).

pub mod accounts;
pub mod compliance;
pub mod fleet;
pub mod overview;
pub mod policies;
pub mod queries;
pub mod queue;
pub mod registry;
pub mod releases;
pub mod rows;
pub mod schema;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::{Client, Compression};
use serde::Serialize;

use crate::config::ClickHouseConfig;
use rows::Batch;
use schema::{ServerCaps, ServerVersion};

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// ClickHouse refused or could not be reached.
    #[error("ClickHouse at {url}: {error}")]
    ClickHouse {
        /// Server URL.
        url: String,
        /// Underlying error.
        error: clickhouse::error::Error,
    },
    /// An insert task died (a bug); the batch is retried.
    #[error("insert task failed: {0}")]
    Task(String),
    /// The server reported a version string we cannot read.
    #[error("ClickHouse at {url} reports an unreadable version: {detail}")]
    Version {
        /// Server URL.
        url: String,
        /// Detail.
        detail: String,
    },
}

/// Handle to the Parta database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    client: Client,
    url: String,
    database: String,
    version: ServerVersion,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("version", &self.version)
            .finish()
    }
}

/// How long one insert may take before it is abandoned and retried.
const INSERT_TIMEOUT: Duration = Duration::from_secs(60);

/// Pairs per rollup statement (keeps the statement far below ClickHouse's 256 KiB
/// `max_query_size`).
const ROLLUP_GROUP: usize = 1000;

impl Store {
    /// Connects and asks the server for its version (which decides the schema rendering).
    pub async fn connect(cfg: &ClickHouseConfig) -> Result<Self, StoreError> {
        let client = Client::default()
            .with_url(&cfg.url)
            .with_user(&cfg.user)
            .with_password(&cfg.password)
            .with_compression(Compression::Lz4)
            // Schema validation needs RowBinaryWithNamesAndTypes, which ClickHouse 18.16 lacks;
            // row types are instead checked against the real server by the test suite.
            .with_validation(false);
        let url = cfg.url.clone();
        let text: String = client
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(|error| StoreError::ClickHouse { url: url.clone(), error })?;
        let version =
            ServerVersion::parse(&text).map_err(|detail| StoreError::Version { url: url.clone(), detail })?;
        Ok(Self { client: client.with_database(&cfg.database), url, database: cfg.database.clone(), version })
    }

    /// Server version.
    pub fn version(&self) -> ServerVersion {
        self.version
    }

    /// Server capabilities.
    pub fn caps(&self) -> ServerCaps {
        self.version.caps()
    }

    /// Database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The same server, on the database of accounts and credentials (`<database>_auth`).
    pub fn auth(&self) -> Self {
        let auth = schema::auth_database(&self.database);
        Self {
            client: self.client.clone().with_database(&auth),
            url: self.url.clone(),
            database: auth,
            version: self.version,
        }
    }

    fn err(&self, error: clickhouse::error::Error) -> StoreError {
        StoreError::ClickHouse { url: self.url.clone(), error }
    }

    /// Runs a statement that returns nothing.
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.client.query(sql).execute().await.map_err(|e| self.err(e))
    }

    /// Creates the database and applies pending migrations. Returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        let db = &self.database;
        let caps = self.caps();
        // The database may not exist yet, so this statement must not name it as the default.
        self.client
            .clone()
            .with_database("default")
            .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
            .execute()
            .await
            .map_err(|e| self.err(e))?;
        self.execute(&schema::render(schema::MIGRATIONS_TABLE, db, caps)).await?;
        let tables = self.tables().await?;
        let applied: Vec<u32> = self
            .client
            .query("SELECT DISTINCT version FROM schema_migrations")
            .fetch_all()
            .await
            .map_err(|e| self.err(e))?;
        let mut done = Vec::new();
        for m in schema::MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            for stmt in m.statements {
                if let Some((table, column)) =
                    schema::added_column(stmt).filter(|_| !caps.add_column_if_not_exists)
                    && self.has_column(table, column).await?
                {
                    continue;
                }
                // A copy out of a table that a completed run of the same migration dropped.
                if let Some(source) = schema::copied_from(stmt)
                    && !tables.iter().any(|t| t == source)
                {
                    continue;
                }
                self.execute(&schema::render(stmt, db, caps)).await?;
            }
            #[derive(clickhouse::Row, Serialize)]
            struct Applied {
                version: u32,
                name: String,
                applied_at: u32,
            }
            let row = Applied { version: m.version, name: m.name.to_owned(), applied_at: now_secs() };
            self.insert_rows("schema_migrations", &[row]).await?;
            tracing::info!(version = m.version, name = m.name, server = %self.version, "applied schema migration");
            done.push(m.version);
        }
        Ok(done)
    }

    /// The tables of this database, when migrations start.
    async fn tables(&self) -> Result<Vec<String>, StoreError> {
        self.client
            .query("SELECT name FROM system.tables WHERE database = ?")
            .bind(&self.database)
            .fetch_all()
            .await
            .map_err(|e| self.err(e))
    }

    /// Whether `table` of this database has `column`.
    async fn has_column(&self, table: &str, column: &str) -> Result<bool, StoreError> {
        let n: u64 = self
            .client
            .query("SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?")
            .bind(&self.database)
            .bind(table)
            .bind(column)
            .fetch_one()
            .await
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Inserts rows into one table in one request.
    pub async fn insert_rows<T>(&self, table: &str, rows: &[T]) -> Result<(), StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client
            .insert::<T>(table)
            .await
            .map_err(|e| self.err(e))?
            .with_timeouts(Some(INSERT_TIMEOUT), Some(INSERT_TIMEOUT));
        for row in rows {
            insert.write(row).await.map_err(|e| self.err(e))?;
        }
        insert.end().await.map_err(|e| self.err(e))
    }

    /// Inserts a batch, data tables first and the ledger last (see the module docs). The data
    /// tables are inserted by parallel tasks: serialising and compressing rows is CPU work that
    /// would otherwise run on one core while ClickHouse waits.
    pub async fn insert_batch(&self, b: &Arc<Batch>) -> Result<Duration, StoreError> {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        macro_rules! table {
            ($name:literal, $field:ident) => {{
                let (store, b) = (self.clone(), Arc::clone(b));
                tasks.spawn(async move { store.insert_rows($name, &b.$field).await });
            }};
        }
        table!("host_metrics", metrics);
        table!("host_filesystems", filesystems);
        table!("host_interfaces", interfaces);
        table!("host_info", info);
        table!("device_sessions", sessions);
        table!("devices", devices);
        table!("spool_losses", losses);
        table!("inventory", inventory);
        table!("displays", displays);
        table!("device_attrs", attrs);
        table!("usage_intervals", usage);
        table!("power_events", power);
        table!("snmp_polls", snmp_polls);
        table!("snmp_interfaces", snmp_interfaces);
        table!("printer_counters", printers);
        table!("connectivity_checks", checks);
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            // A panicking insert task is a bug; treat it like a failed insert so the batch is
            // retried rather than acknowledged.
            let result = joined.unwrap_or_else(|e| Err(StoreError::Task(e.to_string())));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        // The daily rollups of exactly the (device, day) and (school, day) pairs this batch
        // touched, before the ledger: a failure retries the whole batch, so the rollup never
        // misses intervals that are stored.
        if !b.usage.is_empty() {
            let (schools, device_days, school_days) = touched(&b.usage);
            for group in device_days.chunks(ROLLUP_GROUP) {
                self.rollup_usage_pairs(&schools, group).await?;
            }
            for group in school_days.chunks(ROLLUP_GROUP) {
                self.rollup_school_day_pairs(group).await?;
            }
        }
        if !b.checks.is_empty() {
            let school_days: Vec<(String, u16)> = b
                .checks
                .iter()
                .map(|c| (c.school_id.clone(), c.local_day))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            for group in school_days.chunks(ROLLUP_GROUP) {
                self.rollup_espd_day_pairs(group).await?;
            }
        }
        self.insert_rows("ingest_ledger", &b.ledger).await?;
        Ok(started.elapsed())
    }

    /// The underlying client, for queries.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }
}

/// What a batch's usage rows touched: their schools, and exactly the (device, day) and
/// (school, day) pairs, each sorted and once.
type Touched = (Vec<String>, Vec<(uuid::Uuid, u16)>, Vec<(String, u16)>);

fn touched(usage: &[rows::UsageRow]) -> Touched {
    let schools: BTreeSet<&String> = usage.iter().map(|u| &u.school_id).collect();
    let device_days: BTreeSet<(uuid::Uuid, u16)> = usage.iter().map(|u| (u.device_id, u.local_day)).collect();
    let school_days: BTreeSet<(&String, u16)> = usage.iter().map(|u| (&u.school_id, u.local_day)).collect();
    (
        schools.into_iter().cloned().collect(),
        device_days.into_iter().collect(),
        school_days.into_iter().map(|(s, d)| (s.clone(), d)).collect(),
    )
}

/// Seconds since the Unix epoch, as ClickHouse `DateTime`.
pub fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}
