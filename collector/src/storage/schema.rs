//! Versioned schema migrations.
//!
//! Migrations are written for modern ClickHouse (23+) and rendered down for old servers: on
//! servers without the feature, `LowCardinality(T)` becomes `T`, `CODEC(...)` clauses are dropped
//! and `TTL` lines are removed. Debian's ClickHouse 18.16 gets the plain rendering; the test suite
//! runs the modern rendering on ClickHouse 26 (chdb) and the plain one on the real 18.16 server.
//!
//! Every statement is idempotent (`IF NOT EXISTS`; on old servers, which cannot say it of an
//! added column, the runner looks the column up first), so a migration interrupted half-way is
//! harmless: the next run completes it. Applied versions are
//! recorded in `schema_migrations`.

use std::fmt;

/// What the server supports, from its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerCaps {
    /// `LowCardinality` columns.
    pub low_cardinality: bool,
    /// Column compression codecs (`Delta`, `DoubleDelta`, `Gorilla`, `ZSTD`).
    pub codecs: bool,
    /// Table `TTL`.
    pub ttl: bool,
    /// `ALTER TABLE … ADD COLUMN IF NOT EXISTS`; without it the migration runner looks the
    /// column up first.
    pub add_column_if_not_exists: bool,
}

/// A ClickHouse version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    /// Major (year for modern releases).
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl ServerVersion {
    /// Parses `18.16.1`, `26.9.2.1`, `23.8`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.trim().split('.');
        let num = |p: Option<&str>| p.and_then(|s| s.parse::<u32>().ok());
        match (num(parts.next()), num(parts.next())) {
            (Some(major), Some(minor)) => Ok(Self { major, minor }),
            _ => Err(format!("not a ClickHouse version: {text:?} (expected e.g. 18.16 or 26.9)")),
        }
    }

    /// Features this version supports. All three arrived during 2019 (19.x); 20.3, the first
    /// long-term-support release with all of them stable, is the threshold.
    pub fn caps(self) -> ServerCaps {
        let modern = self >= Self { major: 20, minor: 3 };
        ServerCaps { low_cardinality: modern, codecs: modern, ttl: modern, add_column_if_not_exists: modern }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One schema change.
#[derive(Debug)]
pub struct Migration {
    /// Increasing version number.
    pub version: u32,
    /// Short description.
    pub name: &'static str,
    /// Statements, in modern SQL with `{db}` for the database name.
    pub statements: &'static [&'static str],
}

/// The table recording applied migrations (created before any migration runs).
pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = MergeTree ORDER BY version";

/// All migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "ingest ledger, host telemetry, devices, sessions, enrollment tokens",
        statements: &[
            // One row per accepted report: the proof of completeness. No TTL: auditors need the
            // whole history. ReplacingMergeTree on (device_id, seq) collapses the rare duplicate a
            // crash between insert and acknowledgement can leave; queries use FINAL or DISTINCT.
            "CREATE TABLE IF NOT EXISTS {db}.ingest_ledger (
    device_id UUID,
    school_id LowCardinality(String),
    seq UInt64 CODEC(Delta, ZSTD(1)),
    agent_time DateTime CODEC(DoubleDelta, ZSTD(1)),
    agent_time_ms Int64 CODEC(DoubleDelta, ZSTD(1)),
    receive_time DateTime CODEC(DoubleDelta, ZSTD(1)),
    bytes UInt32 CODEC(ZSTD(1)),
    samples UInt16 CODEC(ZSTD(1))
) ENGINE = ReplacingMergeTree
ORDER BY (device_id, seq)",
            // Host metrics, one row per report. Partitioned by the agent's time, which a resent
            // report repeats exactly, so duplicates always meet in the same partition.
            "CREATE TABLE IF NOT EXISTS {db}.host_metrics (
    device_id UUID,
    school_id LowCardinality(String),
    seq UInt64 CODEC(Delta, ZSTD(1)),
    ts DateTime CODEC(DoubleDelta, ZSTD(1)),
    boot_time DateTime CODEC(DoubleDelta, ZSTD(1)),
    uptime_s UInt64 CODEC(Delta, ZSTD(1)),
    cpu_percent Float32 CODEC(Gorilla, ZSTD(1)),
    mem_total UInt64 CODEC(ZSTD(1)),
    mem_used UInt64 CODEC(ZSTD(1)),
    swap_total UInt64 CODEC(ZSTD(1)),
    swap_used UInt64 CODEC(ZSTD(1))
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (school_id, device_id, seq)
TTL ts + INTERVAL 400 DAY",
            "CREATE TABLE IF NOT EXISTS {db}.host_filesystems (
    device_id UUID,
    school_id LowCardinality(String),
    seq UInt64 CODEC(Delta, ZSTD(1)),
    ts DateTime CODEC(DoubleDelta, ZSTD(1)),
    mount String,
    fs_type LowCardinality(String),
    total UInt64 CODEC(ZSTD(1)),
    available UInt64 CODEC(ZSTD(1))
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (school_id, device_id, seq, mount)
TTL ts + INTERVAL 400 DAY",
            "CREATE TABLE IF NOT EXISTS {db}.host_interfaces (
    device_id UUID,
    school_id LowCardinality(String),
    seq UInt64 CODEC(Delta, ZSTD(1)),
    ts DateTime CODEC(DoubleDelta, ZSTD(1)),
    name LowCardinality(String),
    rx_bytes UInt64 CODEC(Delta, ZSTD(1)),
    tx_bytes UInt64 CODEC(Delta, ZSTD(1)),
    rx_rate Nullable(UInt64),
    tx_rate Nullable(UInt64)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (school_id, device_id, seq, name)
TTL ts + INTERVAL 400 DAY",
            // Host identity, sent at agent start and on change: its rows are the change history.
            "CREATE TABLE IF NOT EXISTS {db}.host_info (
    device_id UUID,
    school_id LowCardinality(String),
    seq UInt64,
    ts DateTime,
    hostname String,
    os_id LowCardinality(String),
    os_name LowCardinality(String),
    os_version LowCardinality(String),
    os_pretty LowCardinality(String),
    os_edition LowCardinality(String),
    kernel LowCardinality(String),
    dmi_vendor String,
    dmi_product String,
    dmi_serial String,
    if_names Array(String),
    if_macs Array(String)
) ENGINE = ReplacingMergeTree
ORDER BY (device_id, seq)",
            // Latest state per device, one row per device per insert batch; queries take the row
            // with the highest last_seq.
            "CREATE TABLE IF NOT EXISTS {db}.devices (
    device_id UUID,
    school_id LowCardinality(String),
    kind LowCardinality(String),
    agent_version LowCardinality(String),
    last_seen DateTime,
    last_seq UInt64,
    uptime_s UInt64,
    boot_time DateTime
) ENGINE = ReplacingMergeTree(last_seq)
ORDER BY device_id",
            // Every accepted session (Hello): when agents connect, which version they run.
            "CREATE TABLE IF NOT EXISTS {db}.device_sessions (
    device_id UUID,
    school_id LowCardinality(String),
    kind LowCardinality(String),
    agent_version LowCardinality(String),
    collector LowCardinality(String),
    connected_at DateTime CODEC(DoubleDelta, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(connected_at)
ORDER BY (device_id, connected_at)
TTL connected_at + INTERVAL 400 DAY",
            // Enrollment tokens: only SHA-256 hashes are stored. A revocation is a new row with a
            // higher version; readers take the latest row per token.
            "CREATE TABLE IF NOT EXISTS {db}.enroll_tokens (
    token_id String,
    token_sha256 String,
    school_id String,
    comment String,
    created_at DateTime,
    revoked UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY token_id",
        ],
    },
    Migration { version: 2, name: "spool loss notices", statements: MIGRATION_2 },
    Migration {
        version: 3,
        name: "inventory, displays, device attributes, usage intervals and daily rollups, power events",
        statements: MIGRATION_3,
    },
    Migration {
        version: 4,
        name: "SNMP polls, interface counters and rates, printer page counters",
        statements: MIGRATION_4,
    },
    Migration { version: 5, name: "ЕСПД connectivity checks", statements: MIGRATION_5 },
    Migration { version: 6, name: "ЕСПД throughput at the IP layer", statements: MIGRATION_6 },
    Migration {
        version: 7,
        name: "school registry, equipment register, import and export audit logs",
        statements: MIGRATION_7,
    },
    Migration { version: 8, name: "daily ledger rollup", statements: MIGRATION_8 },
    Migration { version: 9, name: "daily ledger rollup with a bounded state", statements: MIGRATION_9 },
    Migration {
        version: 10,
        name: "accounts, API tokens, school-day rollups of usage and ЕСПД, compliance status",
        statements: MIGRATION_10,
    },
    Migration {
        version: 11,
        name: "fleet: enrolled devices, their certificates and schools; enrollment token limits",
        statements: super::fleet::MIGRATION_11,
    },
    Migration {
        version: 12,
        name: "accounts and credentials in a database of their own; API tokens tied to the account version; ended sessions",
        statements: super::accounts::MIGRATION_12,
    },
    Migration { version: 13, name: "policies with their history", statements: super::policies::MIGRATION_13 },
    Migration {
        version: 14,
        name: "what policy each device runs and its answers",
        statements: super::policies::MIGRATION_14,
    },
    Migration {
        version: 15,
        name: "signed releases, their rollouts and devices' update states",
        statements: super::releases::MIGRATION_15,
    },
];

/// The database of accounts and credentials that belongs to database `db`.
pub fn auth_database(db: &str) -> String {
    format!("{db}_auth")
}

/// The source table of a statement copying rows into the auth database
/// (`INSERT INTO {auth}.… SELECT … FROM {db}.TABLE`), which the runner skips once the source is
/// gone (a completed run dropped it).
pub fn copied_from(stmt: &str) -> Option<&str> {
    if !stmt.starts_with("INSERT INTO {auth}.") {
        return None;
    }
    let rest = &stmt[stmt.rfind(" FROM {db}.")? + " FROM {db}.".len()..];
    rest.split_whitespace().next()
}

/// Migration 10: what the web UI needs. Accounts and API tokens keep the latest row per login
/// or token (a change is a new row with a higher version; passwords as argon2 PHC strings,
/// tokens as SHA-256). The school-day rollups let a region overview read about one row per
/// school and day instead of every device's day: `school_days` from the usage rollup and
/// `espd_days` from the connectivity checks, both recomputed by the collector for the schools
/// and days an insert touches (the latest version is current) and filled here from what is
/// stored. `compliance_status` keeps each school's verdict from the latest report computed.
const MIGRATION_10: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {db}.users (
    login String,
    role LowCardinality(String),
    scope String,
    password_hash String,
    disabled UInt8,
    created_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY login",
    "CREATE TABLE IF NOT EXISTS {db}.api_tokens (
    token_id String,
    token_sha256 String,
    login String,
    comment String,
    created_at DateTime,
    revoked UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY token_id",
    "CREATE TABLE IF NOT EXISTS {db}.school_days (
    school_id String,
    local_day Date,
    devices UInt32,
    devices_on UInt32,
    devices_used UInt32,
    powered_ms Int64,
    in_use_ms Int64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(local_day)
ORDER BY (school_id, local_day)",
    "CREATE TABLE IF NOT EXISTS {db}.espd_days (
    school_id String,
    local_day Date,
    checks UInt32,
    passed UInt32,
    tests UInt32,
    met UInt32,
    required_mbps UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(local_day)
ORDER BY (school_id, local_day)",
    "CREATE TABLE IF NOT EXISTS {db}.compliance_status (
    school_id String,
    computed_at DateTime,
    profile String,
    period_from Date,
    period_to Date,
    lines UInt32,
    short UInt32,
    not_seen UInt32,
    underused UInt32,
    status LowCardinality(String)
) ENGINE = ReplacingMergeTree(computed_at)
ORDER BY school_id",
    "INSERT INTO {db}.school_days
{school_days_all}",
    "INSERT INTO {db}.espd_days
{espd_days_all}",
];

/// Migration 9: the daily ledger with a state of fixed size. Migration 8's distinct count kept
/// every report's sequence number per device and day — up to 1,440 a day at the default
/// interval, 8 bytes each, tens of gigabytes a year for a region. This rollup counts reports
/// instead, and readers cap each day's count at that day's sequence range (max − min + 1), so
/// a resent report, the backfill overlapping the view, or the backfill run twice cannot raise
/// a day above complete. (A day with both a lost report and a duplicate would hide the loss;
/// a duplicate needs a collector to fail between its insert and the acknowledgement.) The
/// backfill reads the ledger with FINAL, duplicates collapsed.
const MIGRATION_9: &[&str] = &[
    "DROP TABLE IF EXISTS {db}.ledger_daily_mv",
    "CREATE TABLE IF NOT EXISTS {db}.ledger_days (
    device_id UUID,
    school_id LowCardinality(String),
    day Date,
    min_seq AggregateFunction(min, UInt64),
    max_seq AggregateFunction(max, UInt64),
    reports AggregateFunction(count),
    last_received AggregateFunction(max, DateTime)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (school_id, device_id, day)",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ledger_days_mv TO {db}.ledger_days AS
SELECT device_id, school_id, toDate(agent_time) AS day, minState(seq) AS min_seq, maxState(seq) AS max_seq,
    countState() AS reports, maxState(receive_time) AS last_received
FROM {db}.ingest_ledger
GROUP BY device_id, school_id, day",
    "INSERT INTO {db}.ledger_days
SELECT device_id, school_id, toDate(agent_time) AS day, minState(seq), maxState(seq), countState(),
    maxState(receive_time)
FROM {db}.ingest_ledger FINAL
GROUP BY device_id, school_id, day",
    "DROP TABLE IF EXISTS {db}.ledger_daily",
];

/// Migration 8 (replaced by migration 9, which drops its table and view): the ledger rolled up
/// per device and day — the reports' sequence range, how many distinct reports arrived, the
/// last receive time — kept by a materialized view, and filled from the existing ledger. Every aggregate (min, max, distinct count) is unchanged by
/// duplicates, so a resent report, the backfill overlapping the view, or a backfill run twice
/// cannot inflate it. Compliance reports read completeness and "seen" from here instead of
/// scanning the ledger.
const MIGRATION_8: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {db}.ledger_daily (
    device_id UUID,
    school_id LowCardinality(String),
    day Date,
    min_seq AggregateFunction(min, UInt64),
    max_seq AggregateFunction(max, UInt64),
    reports AggregateFunction(uniqExact, UInt64),
    last_received AggregateFunction(max, DateTime)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (school_id, device_id, day)",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ledger_daily_mv TO {db}.ledger_daily AS
SELECT device_id, school_id, toDate(agent_time) AS day, minState(seq) AS min_seq, maxState(seq) AS max_seq,
    uniqExactState(seq) AS reports, maxState(receive_time) AS last_received
FROM {db}.ingest_ledger
GROUP BY device_id, school_id, day",
    "INSERT INTO {db}.ledger_daily
SELECT device_id, school_id, toDate(agent_time) AS day, minState(seq), maxState(seq), uniqExactState(seq),
    maxState(receive_time)
FROM {db}.ingest_ledger
GROUP BY device_id, school_id, day",
];

/// Migration 7: what the compliance report compares reporting devices with. The registry holds
/// the latest row per school (an import upserts the schools it lists). The register is kept per
/// import: a school's register is the items of its latest import, so an import replaces a
/// school's register whole, and the `register_imports` row, written after the items, is the
/// commit point. Imports and exports are logged for auditors: who, when, what, SHA-256.
const MIGRATION_7: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {db}.schools (
    school_id String,
    region_code LowCardinality(String),
    municipality String,
    name String,
    address String,
    locality LowCardinality(String),
    pupils UInt32,
    teachers UInt32,
    admin_staff UInt32,
    classrooms UInt32,
    buildings UInt32,
    import_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY school_id",
    "CREATE TABLE IF NOT EXISTS {db}.register_items (
    school_id String,
    import_id String,
    inventory_no String,
    line UInt32,
    category LowCardinality(String),
    vendor String,
    model String,
    serial String,
    serial_key String,
    mac String,
    room String,
    received String,
    funding String
) ENGINE = ReplacingMergeTree
ORDER BY (school_id, import_id, inventory_no)",
    "CREATE TABLE IF NOT EXISTS {db}.register_imports (
    school_id String,
    import_id String,
    items UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY school_id",
    "CREATE TABLE IF NOT EXISTS {db}.import_log (
    import_id String,
    kind LowCardinality(String),
    at DateTime,
    actor String,
    file String,
    sha256 String,
    rows UInt32,
    schools UInt32,
    profile String
) ENGINE = MergeTree
ORDER BY (at, import_id)",
    "CREATE TABLE IF NOT EXISTS {db}.export_log (
    export_id String,
    at DateTime,
    actor String,
    via LowCardinality(String),
    report LowCardinality(String),
    scope String,
    period_from Date,
    period_to Date,
    profile String,
    format LowCardinality(String),
    bytes UInt64,
    sha256 String
) ENGINE = MergeTree
ORDER BY (at, export_id)",
];

/// What an added column's statements start with; see [`added_column`].
const ADD_COLUMN: &str = " ADD COLUMN IF NOT EXISTS ";

/// Migration 6: the throughput tests' rate at the IP layer, what verdicts compare with the
/// required speed (`bits_per_s` stays the payload rate).
const MIGRATION_6: &[&str] =
    &["ALTER TABLE {db}.connectivity_checks ADD COLUMN IF NOT EXISTS ip_bits_per_s UInt64 AFTER bits_per_s"];

/// The table and column an `ALTER TABLE {db}.t ADD COLUMN IF NOT EXISTS c …` statement adds.
pub fn added_column(stmt: &str) -> Option<(&str, &str)> {
    let rest = stmt.strip_prefix("ALTER TABLE {db}.")?;
    let (table, rest) = rest.split_once(ADD_COLUMN)?;
    let column = rest.split_whitespace().next()?;
    Some((table.trim(), column))
}

/// Migration 5: ЕСПД connectivity checks of probe agents, one row per check with its run's
/// fields. Keyed by the probe, the run and the check's place in it, so that a resent report
/// collapses under FINAL.
const MIGRATION_5: &[&str] = &["CREATE TABLE IF NOT EXISTS {db}.connectivity_checks (
    device_id UUID,
    school_id LowCardinality(String),
    seq UInt64,
    run_started_at_ms Int64 CODEC(Delta, ZSTD(1)),
    ts DateTime CODEC(DoubleDelta, ZSTD(1)),
    local_day Date,
    trigger LowCardinality(String),
    locality LowCardinality(String),
    required_mbps UInt32,
    check_no UInt16,
    kind LowCardinality(String),
    target String,
    outcome LowCardinality(String),
    error String,
    started_at_ms Int64,
    duration_ms UInt32,
    dns_us UInt32,
    connect_us UInt32,
    tls_us UInt32,
    response_us UInt32,
    http_status UInt16,
    addresses Array(String),
    latency_method LowCardinality(String),
    probes_sent UInt16,
    probes_received UInt16,
    rtt_min_us UInt32,
    rtt_median_us UInt32,
    rtt_avg_us UInt32,
    rtt_max_us UInt32,
    jitter_us UInt32,
    bytes UInt64,
    micros UInt64,
    bits_per_s UInt64,
    total_bytes UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(local_day)
ORDER BY (school_id, device_id, run_started_at_ms, check_no)"];

/// Migration 4: what agents read from LAN gear and printers over SNMP. Rows are keyed by the
/// polled device and the poll time, so a resent report collapses under FINAL; partitioned by
/// the local day the resend repeats. The devices themselves go to `device_attrs` (kind
/// `network` / `printer`).
const MIGRATION_4: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {db}.snmp_polls (
    device_id UUID,
    agent_id UUID,
    school_id LowCardinality(String),
    seq UInt64,
    polled_at_ms Int64 CODEC(Delta, ZSTD(1)),
    ts DateTime CODEC(DoubleDelta, ZSTD(1)),
    local_day Date,
    target String,
    label String,
    room String,
    kind LowCardinality(String),
    profile LowCardinality(String),
    vendor LowCardinality(String),
    outcome LowCardinality(String),
    error String,
    duration_ms UInt32,
    sys_descr String,
    sys_object_id LowCardinality(String),
    sys_name String,
    sys_location String,
    uptime_cs UInt32,
    rebooted UInt8,
    serial String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(local_day)
ORDER BY (school_id, device_id, polled_at_ms)",
    // One row per interface per poll: raw counters and the rates the agent computed
    // (`has_rate` = 0 on the first poll and after resets; `rate_note` says why).
    "CREATE TABLE IF NOT EXISTS {db}.snmp_interfaces (
    device_id UUID,
    school_id LowCardinality(String),
    polled_at_ms Int64 CODEC(Delta, ZSTD(1)),
    ts DateTime CODEC(DoubleDelta, ZSTD(1)),
    local_day Date,
    if_index UInt32,
    name LowCardinality(String),
    alias LowCardinality(String),
    descr LowCardinality(String),
    if_type UInt32,
    admin_status UInt8,
    oper_status UInt8,
    speed_mbps UInt32,
    counter_bits UInt8,
    in_octets UInt64 CODEC(Delta, ZSTD(1)),
    out_octets UInt64 CODEC(Delta, ZSTD(1)),
    has_rate UInt8,
    in_bps UInt64 CODEC(ZSTD(1)),
    out_bps UInt64 CODEC(ZSTD(1)),
    rate_note LowCardinality(String),
    seq UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(local_day)
ORDER BY (school_id, device_id, if_index, polled_at_ms)",
    // Printer page counters (prtMarkerLifeCount, absolute) and status per poll; pages per day
    // are differences of consecutive readings (see the API).
    "CREATE TABLE IF NOT EXISTS {db}.printer_counters (
    device_id UUID,
    school_id LowCardinality(String),
    polled_at_ms Int64 CODEC(Delta, ZSTD(1)),
    ts DateTime CODEC(DoubleDelta, ZSTD(1)),
    local_day Date,
    marker UInt32,
    life_count UInt64 CODEC(Delta, ZSTD(1)),
    device_status UInt8,
    printer_status UInt8,
    seq UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(local_day)
ORDER BY (school_id, device_id, marker, polled_at_ms)",
];

/// Migration 3: what devices are and how they are used.
const MIGRATION_3: &[&str] = &[
    // The host inventory, one row per change (agents send it at start and on change): its rows
    // are the change history. `json` is the whole inventory for the API.
    "CREATE TABLE IF NOT EXISTS {db}.inventory (
    device_id UUID,
    school_id LowCardinality(String),
    seq UInt64,
    ts DateTime,
    hostname String,
    room String,
    equipment_class LowCardinality(String),
    class_source LowCardinality(String),
    os_name LowCardinality(String),
    os_version LowCardinality(String),
    os_edition LowCardinality(String),
    kernel LowCardinality(String),
    dmi_vendor String,
    dmi_product String,
    dmi_serial String,
    chassis_type UInt8,
    bios_vendor String,
    bios_version String,
    bios_date String,
    cpu_model String,
    cpu_cores UInt32,
    cpu_logical UInt32,
    memory_bytes UInt64,
    disk_names Array(String),
    disk_models Array(String),
    disk_sizes Array(UInt64),
    disk_media Array(String),
    nic_names Array(String),
    nic_macs Array(String),
    nic_speeds Array(UInt32),
    display_ids Array(String),
    json String CODEC(ZSTD(3))
) ENGINE = ReplacingMergeTree
ORDER BY (device_id, seq)",
    // Displays (panels, monitors) seen in hosts' inventories, with the host they were on.
    "CREATE TABLE IF NOT EXISTS {db}.displays (
    display_id UUID,
    host_id UUID,
    school_id LowCardinality(String),
    seq UInt64,
    ts DateTime,
    room String,
    connector LowCardinality(String),
    manufacturer LowCardinality(String),
    product_code UInt16,
    serial String,
    name String,
    width_mm UInt32,
    height_mm UInt32,
    diagonal_decimal_in UInt16,
    year UInt16,
    equipment_class LowCardinality(String),
    kind LowCardinality(String),
    json String CODEC(ZSTD(3))
) ENGINE = ReplacingMergeTree
ORDER BY (display_id, host_id, seq)",
    // What every device is (hosts and displays): the row with the highest version wins.
    "CREATE TABLE IF NOT EXISTS {db}.device_attrs (
    device_id UUID,
    host_id UUID,
    school_id LowCardinality(String),
    kind LowCardinality(String),
    equipment_class LowCardinality(String),
    room String,
    label String,
    serial String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY device_id",
    // Usage intervals. A resent report repeats its intervals exactly; the sort key (one
    // interval per device and start) lets FINAL collapse them. Partitioned by local day, which
    // the resend repeats, so duplicates always meet in one partition. No TTL: auditors need
    // the history.
    "CREATE TABLE IF NOT EXISTS {db}.usage_intervals (
    device_id UUID,
    host_id UUID,
    school_id LowCardinality(String),
    subject LowCardinality(String),
    start_ms Int64 CODEC(Delta, ZSTD(1)),
    end_ms Int64 CODEC(Delta, ZSTD(1)),
    start DateTime CODEC(DoubleDelta, ZSTD(1)),
    local_day Date,
    state LowCardinality(String),
    user_class LowCardinality(String),
    user_key UInt64,
    seq UInt64 CODEC(Delta, ZSTD(1)),
    received DateTime CODEC(DoubleDelta, ZSTD(1))
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(local_day)
ORDER BY (school_id, device_id, start_ms)",
    // Daily rollup per device, local day, state and user class, recomputed from the
    // intervals (deduplicated) for every device and day an insert touches; the row with the
    // highest version is current. The utilization and usage API read this table.
    "CREATE TABLE IF NOT EXISTS {db}.usage_daily (
    device_id UUID,
    school_id LowCardinality(String),
    local_day Date,
    state LowCardinality(String),
    user_class LowCardinality(String),
    total_ms Int64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(local_day)
ORDER BY (school_id, local_day, device_id, state, user_class)",
    "CREATE TABLE IF NOT EXISTS {db}.power_events (
    device_id UUID,
    school_id LowCardinality(String),
    seq UInt64,
    at_ms Int64,
    at DateTime,
    kind LowCardinality(String),
    clean UInt8,
    boot_id String
) ENGINE = ReplacingMergeTree
ORDER BY (device_id, at_ms, kind)",
];

/// Migration 2: agents' spool-loss notices, which explain gaps in the ledger.
const MIGRATION_2: &[&str] = &["CREATE TABLE IF NOT EXISTS {db}.spool_losses (
    device_id UUID,
    school_id LowCardinality(String),
    seq UInt64,
    ts DateTime,
    reason LowCardinality(String),
    first_seq UInt64,
    last_seq UInt64,
    reports UInt64,
    oldest DateTime,
    newest DateTime
) ENGINE = ReplacingMergeTree
ORDER BY (device_id, seq, first_seq)"];

/// Renders a statement for a server: substitutes the database and removes what the server does
/// not support.
pub fn render(sql: &str, db: &str, caps: ServerCaps) -> String {
    let mut s = sql.to_owned();
    for (mark, select) in super::overview::backfills() {
        if s.contains(mark) {
            s = s.replace(mark, &select);
        }
    }
    let mut s = s.replace("{auth}", &auth_database(db)).replace("{db}", db);
    if !caps.low_cardinality {
        s = unwrap_calls(&s, "LowCardinality(");
    }
    if !caps.codecs {
        s = remove_calls(&s, " CODEC(");
    }
    if !caps.ttl {
        s = s.lines().filter(|l| !l.trim_start().starts_with("TTL ")).collect::<Vec<_>>().join("\n");
    }
    if !caps.add_column_if_not_exists {
        s = s.replace(ADD_COLUMN, " ADD COLUMN ");
    }
    s
}

/// `LowCardinality(String)` → `String`, for every occurrence.
fn unwrap_calls(s: &str, open: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        out.push_str(&rest[..i]);
        let inner_start = i + open.len();
        let end = matching_paren(rest, inner_start);
        out.push_str(&rest[inner_start..end]);
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// Removes ` CODEC(...)` (with nested parentheses) everywhere.
fn remove_calls(s: &str, open: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        out.push_str(&rest[..i]);
        let end = matching_paren(rest, i + open.len());
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// Index of the `)` closing the parenthesis opened just before `from`.
fn matching_paren(s: &str, from: usize) -> usize {
    let mut depth = 1usize;
    for (i, c) in s[from..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return from + i;
                }
            }
            _ => {}
        }
    }
    s.len()
}

/// Every statement of every migration, rendered, in order — what `migrate --print-sql` prints.
pub fn all_statements(db: &str, caps: ServerCaps) -> Vec<String> {
    let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS {db}"), render(MIGRATIONS_TABLE, db, caps)];
    for m in MIGRATIONS {
        out.extend(m.statements.iter().map(|s| render(s, db, caps)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: ServerCaps =
        ServerCaps { low_cardinality: false, codecs: false, ttl: false, add_column_if_not_exists: false };
    const NEW: ServerCaps =
        ServerCaps { low_cardinality: true, codecs: true, ttl: true, add_column_if_not_exists: true };

    #[test]
    fn versions() {
        assert_eq!(ServerVersion::parse("18.16.1").unwrap().caps(), OLD);
        assert_eq!(ServerVersion::parse("26.9.2.1").unwrap().caps(), NEW);
        assert_eq!(ServerVersion::parse("20.3").unwrap().caps(), NEW);
        assert_eq!(ServerVersion::parse("19.17.4").unwrap().caps(), OLD);
        assert!(ServerVersion::parse("x").is_err());
    }

    #[test]
    fn old_rendering_strips_modern_features() {
        let sql = "CREATE TABLE {db}.t (\n  a LowCardinality(String),\n  b UInt64 CODEC(Delta, ZSTD(1)),\n  c Nullable(UInt64)\n) ENGINE = MergeTree\nORDER BY a\nTTL ts + INTERVAL 1 DAY";
        assert_eq!(
            render(sql, "parta", OLD),
            "CREATE TABLE parta.t (\n  a String,\n  b UInt64,\n  c Nullable(UInt64)\n) ENGINE = MergeTree\nORDER BY a"
        );
        assert_eq!(render(sql, "parta", NEW), sql.replace("{db}", "parta"));
    }

    #[test]
    fn every_statement_renders_without_leftovers_for_old_servers() {
        for stmt in all_statements("parta", OLD) {
            for bad in ["LowCardinality", "CODEC", "TTL", "{db}", "IF NOT EXISTS ip_"] {
                assert!(!stmt.contains(bad), "{bad} left in:\n{stmt}");
            }
            assert_eq!(stmt.matches('(').count(), stmt.matches(')').count(), "{stmt}");
        }
    }

    #[test]
    fn copies_into_the_auth_database_name_their_source() {
        assert_eq!(copied_from(super::super::accounts::MIGRATION_12[5]), Some("users"));
        assert_eq!(copied_from(super::super::accounts::MIGRATION_12[7]), Some("enroll_tokens"));
        assert_eq!(copied_from(MIGRATION_5[0]), None);
        assert!(
            render(super::super::accounts::MIGRATION_12[5], "parta", OLD).contains("INTO parta_auth.users")
        );
    }

    #[test]
    fn added_columns_are_found_in_their_statements() {
        assert_eq!(added_column(MIGRATION_6[0]), Some(("connectivity_checks", "ip_bits_per_s")));
        assert_eq!(added_column(MIGRATION_5[0]), None);
        assert_eq!(
            render(MIGRATION_6[0], "parta", OLD),
            "ALTER TABLE parta.connectivity_checks ADD COLUMN ip_bits_per_s UInt64 AFTER bits_per_s"
        );
        assert_eq!(render(MIGRATION_6[0], "parta", NEW), MIGRATION_6[0].replace("{db}", "parta"));
    }

    #[test]
    fn migration_versions_increase() {
        let v: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]) && v[0] == 1);
    }
}
