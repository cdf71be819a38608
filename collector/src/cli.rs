//! Command-line interface. Every subcommand accepts the global options, which are also settable
//! by environment variables and in the configuration file (see [`crate::config`]), so admin
//! commands find the same database and data directory as `serve`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use parta_common::settings::CommonArgs;

/// Parta collector: accepts agents over QUIC, stores their reports in ClickHouse and serves the
/// HTTP API for regional operations.
#[derive(Debug, Parser)]
#[command(name = "parta-collector", version, about, long_about = None)]
pub struct Cli {
    /// Options shared by all commands.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by all commands. Precedence: flag, environment variable, configuration file,
/// built-in default.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file and logging.
    #[command(flatten)]
    pub common: CommonArgs,
    /// ClickHouse HTTP interface [default: http://127.0.0.1:8123].
    #[arg(long, env = "PARTA_CLICKHOUSE_URL", global = true, value_name = "URL")]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database [default: parta].
    #[arg(long, env = "PARTA_CLICKHOUSE_DATABASE", global = true, value_name = "NAME")]
    pub clickhouse_database: Option<String>,
    /// ClickHouse user [default: default].
    #[arg(long, env = "PARTA_CLICKHOUSE_USER", global = true, value_name = "USER")]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password [default: empty].
    #[arg(
        long,
        env = "PARTA_CLICKHOUSE_PASSWORD",
        global = true,
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub clickhouse_password: Option<String>,
    /// UDP address for agents (QUIC) [default: 0.0.0.0:4433].
    #[arg(long, env = "PARTA_QUIC_LISTEN", global = true, value_name = "ADDR")]
    pub quic_listen: Option<String>,
    /// UDP address of the speed-test service for ЕСПД probes (QUIC), or `off`
    /// [default: 0.0.0.0:4434].
    #[arg(long, env = "PARTA_SPEEDTEST_LISTEN", global = true, value_name = "ADDR|off")]
    pub speedtest_listen: Option<String>,
    /// Speed tests per school and hour, both directions counted [default: 12].
    #[arg(long, env = "PARTA_SPEEDTEST_PER_HOUR", global = true, value_name = "N")]
    pub speedtest_per_hour: Option<String>,
    /// Speed tests at a time, all schools together [default: 4].
    #[arg(long, env = "PARTA_SPEEDTEST_CONCURRENT", global = true, value_name = "N")]
    pub speedtest_concurrent: Option<String>,
    /// Most payload per speed test, MB [default: 700].
    #[arg(long, env = "PARTA_SPEEDTEST_MAX_MB", global = true, value_name = "MB")]
    pub speedtest_max_mb: Option<String>,
    /// TCP address of the HTTP API and /metrics [default: 127.0.0.1:8080].
    #[arg(long, env = "PARTA_HTTP_LISTEN", global = true, value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// Data directory: generated CA and certificates [default: /var/lib/parta-collector].
    #[arg(long, env = "PARTA_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Server certificate chain (PEM); generated in the data directory when unset.
    #[arg(long, env = "PARTA_TLS_CERT", global = true, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM), with --tls-cert.
    #[arg(long, env = "PARTA_TLS_KEY", global = true, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Extra names (comma-separated DNS names or IPs) for the generated server certificate.
    #[arg(long, env = "PARTA_TLS_NAMES", global = true, value_name = "NAMES")]
    pub tls_names: Option<String>,
    /// Most reports in one ClickHouse insert [default: 50000].
    #[arg(long, env = "PARTA_BATCH_MAX_REPORTS", global = true, value_name = "N")]
    pub batch_max_reports: Option<String>,
    /// Longest wait before a partial batch is inserted [default: 1s].
    #[arg(long, env = "PARTA_BATCH_MAX_DELAY", global = true, value_name = "DURATION")]
    pub batch_max_delay: Option<String>,
    /// Directory of regional norm profiles (*.toml) besides the shipped ones.
    #[arg(long, env = "PARTA_PROFILES_DIR", global = true, value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Most reports held in memory awaiting insert; agents are slowed beyond it [default: 100000].
    #[arg(long, env = "PARTA_INGEST_QUEUE", global = true, value_name = "N")]
    pub ingest_queue: Option<String>,
    /// Most bytes of decoded reports held in memory awaiting insert, e.g. 128MiB
    /// [default: 128MiB].
    #[arg(long, env = "PARTA_INGEST_QUEUE_BYTES", global = true, value_name = "SIZE")]
    pub ingest_queue_bytes: Option<String>,
    /// Most connections waiting to say Hello or enroll; beyond half of it new connections must
    /// prove their address (QUIC Retry), beyond it they are refused [default: 512].
    #[arg(long, env = "PARTA_MAX_HANDSHAKES", global = true, value_name = "N")]
    pub max_handshakes: Option<String>,
    /// Collector addresses that join strings give agents, comma-separated host[:port]
    /// [default: this host's name, port 4433].
    #[arg(long, env = "PARTA_JOIN_ADDRESSES", global = true, value_name = "HOST:PORT,…")]
    pub join_addresses: Option<String>,
    /// Validity of device certificates, e.g. 365d; renewed when a third is left [default: 365d].
    #[arg(long, env = "PARTA_DEVICE_CERT_VALIDITY", global = true, value_name = "DURATION")]
    pub device_cert_validity: Option<String>,
    /// The region's release public key file (`parta-release keygen` makes release.pub): join
    /// strings carry it and enrolled devices install only releases signed by it [default: none].
    #[arg(long, env = "PARTA_RELEASE_KEY", global = true, value_name = "FILE")]
    pub release_key: Option<String>,
    /// Bandwidth all release downloads together may take, Mbit/s [default: 100].
    #[arg(long, env = "PARTA_RELEASE_BANDWIDTH_MBIT", global = true, value_name = "MBIT")]
    pub release_bandwidth_mbit: Option<String>,
    /// A device that has not applied its current policy this long after a change shows as
    /// drifted [default: 1h].
    #[arg(long, env = "PARTA_POLICY_DRIFT_AFTER", global = true, value_name = "DURATION")]
    pub policy_drift_after: Option<String>,
    /// Time zone of the web UI's weekday × hour heatmaps (IANA name) [default: the system's].
    #[arg(long, env = "PARTA_WEB_TIMEZONE", global = true, value_name = "ZONE")]
    pub web_timezone: Option<String>,
    /// Reverse proxies (comma-separated IPs) whose X-Forwarded-For names the client, for the
    /// sign-in limits per address [default: none].
    #[arg(long, env = "PARTA_WEB_TRUSTED_PROXIES", global = true, value_name = "IPS")]
    pub web_trusted_proxies: Option<String>,
    /// Mark session cookies Secure: on (default; HTTPS or localhost) or off (plain HTTP on a
    /// trusted network only).
    #[arg(long, env = "PARTA_WEB_COOKIE_SECURE", global = true, value_name = "on|off")]
    pub web_cookie_secure: Option<String>,
}

/// Collector commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector: QUIC ingest, ClickHouse storage, HTTP API.
    Serve,
    /// Print the configuration the collector would use (secrets redacted).
    Config,
    /// Create or upgrade the ClickHouse schema, then exit.
    Migrate {
        /// Print the SQL instead of running it.
        #[arg(long)]
        print_sql: bool,
        /// With --print-sql: render for this ClickHouse version (e.g. 18.16 or 26.9) instead of
        /// asking the server.
        #[arg(long, value_name = "X.Y", requires = "print_sql")]
        server_version: Option<String>,
    },
    /// Manage school enrollment tokens and the join strings agents enroll with.
    Token {
        /// Token action.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Enrolled devices: list, show, move to another school, revoke.
    Device {
        /// Device action.
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// The school registry: import it from CSV, list it.
    Schools {
        /// Registry action.
        #[command(subcommand)]
        action: SchoolsAction,
    },
    /// The equipment register (the accounting inventory): import it from CSV, list it.
    Inventory {
        /// Register action.
        #[command(subcommand)]
        action: InventoryAction,
    },
    /// Reports for auditors.
    Report {
        /// Which report.
        #[command(subcommand)]
        kind: ReportKind,
    },
    /// Norm profiles of the equipment standard: list them, show one.
    Profiles {
        /// Profile action.
        #[command(subcommand)]
        action: ProfilesAction,
    },
    /// Accounts of the web UI and API: add, list, set a password, change role or scope, disable.
    User {
        /// Account action.
        #[command(subcommand)]
        action: UserAction,
    },
    /// API tokens for scripts: create (acting as an account), list, revoke.
    ApiToken {
        /// Token action.
        #[command(subcommand)]
        action: ApiTokenAction,
    },
    /// The per-school daily rollups behind the web UI's overview.
    Rollups {
        /// Rollup action.
        #[command(subcommand)]
        action: RollupsAction,
    },
    /// Central configuration: agent settings per region, municipality, school or device, with
    /// their history; agents receive their effective policy over their sessions.
    Policy {
        /// Policy action.
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Signed releases of the agent: add one (verified against `release_key`), roll it out to
    /// a share of the devices or to scopes, see where every device stands.
    Release {
        /// Release action.
        #[command(subcommand)]
        action: ReleaseAction,
    },
}

/// Release actions.
#[derive(Debug, Subcommand)]
pub enum ReleaseAction {
    /// Add a release signed with `parta-release sign`: the signature is checked against the
    /// collector's `release_key` and the artifact against the signature; the artifact is kept
    /// in DATA_DIR/releases. Nothing is offered to devices until `release rollout`.
    Add {
        /// The signature file (`FILE.sig`).
        signature: PathBuf,
        /// The artifact (the agent's binary).
        artifact: PathBuf,
        /// The channel.
        #[arg(long, value_enum)]
        channel: crate::release::Channel,
        /// Who, for the record [default: the user running the command].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Offer a channel's release to a share of all devices (--percent; a larger share includes
    /// every device of a smaller one) and/or to the devices of scopes (--scope, repeatable).
    /// Replaces the channel's previous rollout; `--percent 0` with no scope stops offering.
    Rollout {
        /// The channel.
        #[arg(long, value_enum)]
        channel: crate::release::Channel,
        /// The release [default: the newest added to the channel].
        #[arg(long, value_name = "X.Y.Z")]
        version: Option<String>,
        /// Share of all devices, 0–100.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: Option<u8>,
        /// Devices of this scope (school:ID, municipality:REGION/NAME, region:CODE, device:ID, all).
        #[arg(long, value_name = "SCOPE")]
        scope: Vec<String>,
        /// Why, for the record.
        #[arg(long)]
        comment: Option<String>,
        /// Who, for the record [default: the user running the command].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Have devices on which the channel's release failed (refused, rolled back, failed) try it
    /// again: raises the rollout's retry epoch.
    Retry {
        /// The channel.
        #[arg(long, value_enum)]
        channel: crate::release::Channel,
        /// Who, for the record [default: the user running the command].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Releases and the rollouts in force.
    List,
    /// Per release: how many devices are offered, downloading, installed, healthy, rolled back,
    /// failed or refused, with the reasons; `--devices` lists each device.
    Status {
        /// Only this release.
        #[arg(long, value_name = "X.Y.Z")]
        version: Option<String>,
        /// One line per device and release.
        #[arg(long)]
        devices: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// Policy actions. SCOPE is `all`, `region:CODE`, `municipality:REGION/NAME`, `school:ID` or
/// `device:ID`.
#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Set a scope's policy from a TOML file of agent settings. It is checked by the agent's own
    /// rules first: a refused file changes nothing, and the error names the key. SNMP secrets
    /// are stored encrypted and never shown again.
    Set {
        /// The scope.
        #[arg(long, value_name = "SCOPE")]
        scope: String,
        /// The policy (TOML).
        file: PathBuf,
        /// Why, for the history.
        #[arg(long)]
        comment: Option<String>,
        /// Who, for the history [default: the user running the command].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Show a scope's policy (secrets as <secret>).
    Show {
        /// The scope.
        #[arg(long, value_name = "SCOPE")]
        scope: String,
        /// This version instead of the one in force.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
    },
    /// Every version of a scope's policy: version, when, who, what, why.
    History {
        /// The scope.
        #[arg(long, value_name = "SCOPE")]
        scope: String,
    },
    /// Make an earlier version's document the policy in force again, as a new version.
    Rollback {
        /// The scope.
        #[arg(long, value_name = "SCOPE")]
        scope: String,
        /// The version to go back to.
        #[arg(long, value_name = "N")]
        to: u32,
        /// Why, for the history [default: "rollback to version N"].
        #[arg(long)]
        comment: Option<String>,
        /// Who, for the history [default: the user running the command].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Remove a scope's policy (as a new version; the history stays).
    Remove {
        /// The scope.
        #[arg(long, value_name = "SCOPE")]
        scope: String,
        /// Why, for the history.
        #[arg(long)]
        comment: Option<String>,
        /// Who, for the history [default: the user running the command].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// The effective policy of a device or a school: the merge of its scopes, broadest first,
    /// narrowest winning key by key (secrets as <secret>).
    Effective {
        /// An enrolled device.
        #[arg(long, value_name = "ID", conflicts_with = "school")]
        device: Option<String>,
        /// A school.
        #[arg(long, value_name = "ID")]
        school: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PolicyFormat::Toml)]
        format: PolicyFormat,
    },
}

/// How `policy effective` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyFormat {
    /// The TOML document, the scopes it merges as comments.
    Toml,
    /// JSON: the layers and the document.
    Json,
}

/// Rollup actions.
#[derive(Debug, Subcommand)]
pub enum RollupsAction {
    /// Recompute the rollups from the usage and ЕСПД tables: after rows were loaded into
    /// ClickHouse by other means than the collector, or to repair them. Safe to repeat.
    Rebuild {
        /// First day, YYYY-MM-DD (default: 90 days up to --to).
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (default: today, UTC). At most 366 days per run.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// Only this school (repeatable; default: every school agents report for).
        #[arg(long = "school", value_name = "ID")]
        schools: Vec<String>,
    },
}

/// Account actions. Passwords are read from standard input (one line), never from arguments.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add an account, or replace its role, scope and password.
    Add {
        /// Login: a-z, 0-9, '.', '_', '-'.
        login: String,
        /// admin, ops or auditor.
        #[arg(long)]
        role: String,
        /// all, region:CODE, municipality:NAME or school:ID (admin: all).
        #[arg(long, default_value = "all")]
        scope: String,
        /// Read the password from standard input (otherwise a random one is generated and printed
        /// once).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an account's password (read from standard input); ends its sessions.
    Passwd {
        /// Login.
        login: String,
    },
    /// Disable an account; ends its sessions and stops its API tokens.
    Disable {
        /// Login.
        login: String,
    },
    /// List accounts (never passwords).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// API token actions.
#[derive(Debug, Subcommand)]
pub enum ApiTokenAction {
    /// Create a token acting as an account and print it (shown once).
    Create {
        /// The account the token acts as.
        #[arg(long)]
        user: String,
        /// Note, e.g. what script uses it.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List tokens (ids, accounts, state; never the tokens themselves).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Revoke a token by id or by the token itself.
    Revoke {
        /// Token id or token.
        token: String,
    },
}

/// How an import reads its file.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// CSV file (from Excel, 1С or a regional system).
    pub file: PathBuf,
    /// Text encoding: auto (UTF-8 if valid, else Windows-1251), utf-8 or cp1251.
    #[arg(long, default_value = "auto", value_name = "ENCODING")]
    pub encoding: String,
    /// Separator: auto (from the header line), ';', ',' or tab.
    #[arg(long, default_value = "auto", value_name = "SEP")]
    pub delimiter: String,
    /// Check every row and report, but import nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// School registry actions.
#[derive(Debug, Subcommand)]
pub enum SchoolsAction {
    /// Import schools from CSV: region code, municipality, school id, name, address, locality
    /// (urban/rural), pupils, teachers, administrative staff, classrooms, buildings. Every bad
    /// row and column is reported; a file with any problem imports nothing. Listed schools are
    /// added or replaced; others stay.
    Import(ImportArgs),
    /// List the registry.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// Equipment register actions.
#[derive(Debug, Subcommand)]
pub enum InventoryAction {
    /// Import the equipment register from CSV: inventory number, category, vendor, model,
    /// serial number, MAC, school, room, date received, funding programme. The register of
    /// every school in the file is replaced by the file's items; a file with any problem
    /// imports nothing.
    Import {
        /// File and how to read it.
        #[command(flatten)]
        args: ImportArgs,
        /// Norm profile whose categories the register names [default: cos-2021].
        #[arg(long, value_name = "ID")]
        profile: Option<String>,
    },
    /// List the register (every school's latest import).
    List {
        /// Only this school.
        #[arg(long, value_name = "ID")]
        school: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// Reports.
#[derive(Debug, Subcommand)]
pub enum ReportKind {
    /// Equipment-standard compliance for a period and a scope: per category required, on the
    /// books, seen and used; what is on the books but never seen, seen but not on the books,
    /// seen but never used; the ЕСПД summary; the methodology. The SHA-256 of the export is
    /// printed and recorded in the export log.
    Compliance {
        /// region:CODE, municipality:NAME or school:ID (e.g. region:74).
        #[arg(long, value_name = "SCOPE")]
        scope: String,
        /// First day, YYYY-MM-DD [default: 90 days before --to].
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last day, YYYY-MM-DD [default: yesterday].
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// Norm profile [default: cos-2021].
        #[arg(long, value_name = "ID")]
        profile: Option<String>,
        /// xlsx, csv (UTF-8 with BOM and ';', for Russian Excel) or json.
        #[arg(long, default_value = "xlsx", value_name = "FORMAT")]
        format: String,
        /// Output file [default: standard output for csv and json; required for xlsx].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Language of the xlsx and csv: ru or en.
        #[arg(long, default_value = "ru", value_name = "LANG")]
        lang: String,
    },
    /// Computes the compliance report of a scope for the canonical period (the 90 days up to
    /// yesterday, in the region's time zone) with the default profile, and records each school's
    /// verdict — what the web UI's overview shows. Run it on a schedule (cron, a systemd
    /// timer); exports of other periods never change the overview.
    Status {
        /// region:CODE, municipality:NAME or school:ID (e.g. region:74).
        #[arg(long, value_name = "SCOPE")]
        scope: String,
    },
}

/// Norm profile actions.
#[derive(Debug, Subcommand)]
pub enum ProfilesAction {
    /// List the profiles: shipped ones and those in profiles_dir.
    List,
    /// Show a profile's categories, quantities, sources and usage expectations.
    Show {
        /// Profile id.
        id: String,
    },
}

/// Enrollment token actions.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token for a school and print it and the join string agents enroll with
    /// (`parta-agent enroll JOIN`); shown once, only the token's hash is stored.
    Create {
        /// School id, e.g. 74-0012.
        #[arg(long, value_name = "ID")]
        school: String,
        /// Note for administrators, e.g. who received the token.
        #[arg(long, default_value = "")]
        comment: String,
        /// Devices the token may enroll [default: any number].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        uses: Option<u32>,
        /// The token stops enrolling after this long, e.g. 30d [default: never].
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Collector address for the join string, host[:port]; repeat for several
        /// [default: the join_addresses setting].
        #[arg(long = "collector", value_name = "HOST:PORT")]
        collectors: Vec<String>,
    },
    /// List tokens (ids, schools, state; never the tokens themselves).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Revoke a token by its id (from `token list`) or by the token itself.
    Revoke {
        /// Token id or token.
        token: String,
    },
}

/// Device actions.
#[derive(Debug, Subcommand)]
pub enum DeviceAction {
    /// List enrolled devices: id, school, kind, state, enrollment, credential expiry.
    List {
        /// Only this school's devices.
        #[arg(long, value_name = "ID")]
        school: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Show a device: state, school history, certificates.
    Show {
        /// Device id.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Move a device to another school: its reports from now on belong to the new school,
    /// earlier ones stay with the old one.
    Move {
        /// Device id.
        id: String,
        /// The new school id.
        #[arg(long, value_name = "ID")]
        school: String,
        /// Who moves it, for the record [default: the user running the command].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Revoke a device's credential: its session ends within seconds and it cannot connect or
    /// enroll with its key again (the agent stops with exit status 77). Its data stays.
    Revoke {
        /// Device id.
        id: String,
        /// Who revokes it, for the record [default: the user running the command].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
}

/// How commands print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// JSON for scripts.
    Json,
    /// Text for people.
    Text,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn options_follow_the_naming_convention() {
        super::Cli::command().debug_assert();
        parta_common::settings::check_naming_convention(&super::Cli::command()).unwrap();
    }
}
