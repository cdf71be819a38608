//! Command-line interface. Every subcommand accepts the global options, which are also settable
//! by environment variables and in the configuration file (see [`crate::config`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use parta_common::settings::CommonArgs;

/// Parta agent: reports uptime, usage, inventory and bandwidth of a school device to a Parta
/// collector over QUIC.
#[derive(Debug, Parser)]
#[command(name = "parta-agent", version = crate::version::text(), about, long_about = None)]
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
    /// Collector address, `host:port` (port 4433 when omitted); several, comma-separated, are
    /// tried in turn.
    #[arg(long, env = "PARTA_COLLECTOR", global = true, value_name = "HOST:PORT")]
    pub collector: Option<String>,
    /// Name expected in the collector's certificate [default: the host part of --collector].
    #[arg(long, env = "PARTA_SERVER_NAME", global = true, value_name = "NAME")]
    pub server_name: Option<String>,
    /// CA certificate (PEM) that signed the collector's certificate.
    #[arg(long, env = "PARTA_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Enrollment token of the school (from `parta-collector token create`); needed only until
    /// the device has enrolled (its first session enrolls it).
    #[arg(long, env = "PARTA_ENROLL_TOKEN", global = true, value_name = "TOKEN", hide_env_values = true)]
    pub enroll_token: Option<String>,
    /// File holding the enrollment token (keeps it out of process listings).
    #[arg(long, env = "PARTA_ENROLL_TOKEN_FILE", global = true, value_name = "FILE")]
    pub enroll_token_file: Option<PathBuf>,
    /// School id, e.g. 74-0012.
    #[arg(long, env = "PARTA_SCHOOL", global = true, value_name = "ID")]
    pub school: Option<String>,
    /// Device kind: computer or panel [default: computer].
    #[arg(long, env = "PARTA_KIND", global = true, value_name = "KIND")]
    pub kind: Option<String>,
    /// State directory: device identity, sequence numbers [default: /var/lib/parta-agent].
    #[arg(long, env = "PARTA_STATE_DIR", global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Sampling interval, e.g. 1s, 60s, 5m; at least 100ms [default: 60s].
    #[arg(long, env = "PARTA_INTERVAL", global = true, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Largest spool on disk, e.g. 256MiB [default: 256MiB].
    #[arg(long, env = "PARTA_SPOOL_MAX_BYTES", global = true, value_name = "SIZE")]
    pub spool_max_bytes: Option<String>,
    /// Oldest report the spool keeps, e.g. 30d [default: 30d].
    #[arg(long, env = "PARTA_SPOOL_MAX_AGE", global = true, value_name = "DURATION")]
    pub spool_max_age: Option<String>,
    /// Spool durability: always (fsync each report) or interval:DURATION [default: always].
    #[arg(long, env = "PARTA_SPOOL_FSYNC", global = true, value_name = "POLICY")]
    pub spool_fsync: Option<String>,
    /// Longest pause between reconnection attempts, e.g. 5m [default: 5m].
    #[arg(long, env = "PARTA_RECONNECT_MAX", global = true, value_name = "DURATION")]
    pub reconnect_max: Option<String>,
    /// Diagnostics: append every report taken, as a JSON line, to this file (grows without
    /// bound; for tests and troubleshooting).
    #[arg(long, env = "PARTA_REPORT_LOG", global = true, value_name = "FILE")]
    pub report_log: Option<PathBuf>,
    /// Room (classroom) the device is in, e.g. "каб. 214".
    #[arg(long, env = "PARTA_ROOM", global = true, value_name = "ROOM")]
    pub room: Option<String>,
    /// Equipment class: teacher_laptop, pupil_laptop, admin_laptop, laptop, interactive_complex,
    /// desktop, monitor, mfu, network_equipment, other [default: detected from DMI chassis type].
    #[arg(long, env = "PARTA_EQUIPMENT_CLASS", global = true, value_name = "CLASS")]
    pub equipment_class: Option<String>,
    /// How often sessions and displays are checked, e.g. 5s [default: 5s].
    #[arg(long, env = "PARTA_USAGE_POLL", global = true, value_name = "DURATION")]
    pub usage_poll: Option<String>,
    /// A session stays in use this long after its last input, e.g. 5m [default: 5m].
    #[arg(long, env = "PARTA_IDLE_AFTER", global = true, value_name = "DURATION")]
    pub idle_after: Option<String>,
    /// Open usage intervals are cut and sent at least this often [default: 10m].
    #[arg(long, env = "PARTA_USAGE_FLUSH", global = true, value_name = "DURATION")]
    pub usage_flush: Option<String>,
    /// Where logind is: system, none, or a D-Bus address [default: system].
    #[arg(long, env = "PARTA_LOGIND_BUS", global = true, value_name = "BUS")]
    pub logind_bus: Option<String>,
    /// Comma-separated groups whose members are teachers [default: teachers].
    #[arg(long, env = "PARTA_USER_GROUPS_TEACHER", global = true, value_name = "GROUPS")]
    pub user_groups_teacher: Option<String>,
    /// Comma-separated groups whose members are pupils [default: pupils,students].
    #[arg(long, env = "PARTA_USER_GROUPS_PUPIL", global = true, value_name = "GROUPS")]
    pub user_groups_pupil: Option<String>,
    /// Comma-separated groups whose members are administration staff [default: administration].
    #[arg(long, env = "PARTA_USER_GROUPS_ADMIN", global = true, value_name = "GROUPS")]
    pub user_groups_admin: Option<String>,
    /// File holding the secret salt (mode 0640, owner root, group parta-agent): when set, a
    /// salted hash of the user (never the name) is sent so that distinct users can be counted.
    #[arg(long, env = "PARTA_USER_HASH_SALT_FILE", global = true, value_name = "FILE")]
    pub user_hash_salt_file: Option<PathBuf>,
    /// How the host name is sent: send (as is), hash (h- and 16 hex digits of SHA-256) or none
    /// [default: send].
    #[arg(long, env = "PARTA_HOSTNAME_MODE", global = true, value_name = "MODE")]
    pub hostname_mode: Option<String>,
    /// Mount point of sysfs [default: /sys].
    #[arg(long, env = "PARTA_SYSFS", global = true, value_name = "DIR")]
    pub sysfs: Option<PathBuf>,
    /// Mount point of procfs [default: /proc].
    #[arg(long, env = "PARTA_PROCFS", global = true, value_name = "DIR")]
    pub procfs: Option<PathBuf>,
    /// Root filesystem to read /etc from [default: /].
    #[arg(long, env = "PARTA_ROOTFS", global = true, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
}

/// Agent commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll this device with a join string (from `parta-collector token create`): checks
    /// the collector's CA against the string's fingerprint, obtains the device's certificate,
    /// and writes the credential, the CA and the configuration file (--config, default
    /// /etc/parta/agent.toml). On an enrolled device it says so and changes nothing.
    Enroll(EnrollArgs),
    /// Run the agent: sample every interval and deliver reports to the collector.
    Run,
    /// Print the configuration the agent would use (secrets redacted) and check it is complete
    /// for `run`.
    Config,
    /// Show the agent's delivery state: spool depth, oldest unacknowledged report, last
    /// acknowledgement, last error.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Print the device's inventory (hardware, OS, network interfaces, displays, equipment
    /// class) as it would be sent; nothing is sent or stored.
    Inventory {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Take one sample and print it; nothing is sent or stored.
    Sample {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
    },
    /// SNMP diagnostics for LAN gear and printers.
    #[command(subcommand)]
    Snmp(SnmpCommand),
    /// Updates of the agent: `update install` is the root-owned installer that
    /// parta-agent-update.service runs when the agent has downloaded a signed release.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Connectivity checks, run once on site (commissioning).
    #[command(subcommand)]
    Check(CheckCommand),
}

/// Flags of `enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The join string, `parta://HOST[:PORT]/SCHOOL?token=…&ca=sha256:…`; `@FILE` reads it
    /// from a file and `-` from standard input (keeping the token out of process listings).
    #[arg(value_name = "JOIN")]
    pub join: String,
    /// Room (classroom) to write into the configuration, e.g. "каб. 214".
    #[arg(long, value_name = "ROOM")]
    pub room: Option<String>,
    /// Equipment class to write into the configuration (see --equipment-class).
    #[arg(long = "class", value_name = "CLASS")]
    pub class: Option<String>,
    /// Enroll again although the device is enrolled (same key: the same device, a new
    /// certificate; e.g. for a new collector address).
    #[arg(long)]
    pub force: bool,
    /// Forget this device's identity (key, certificate, id) and enroll as a new device.
    #[arg(long, conflicts_with = "force")]
    pub new_device: bool,
}

/// `parta-agent update …`.
#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Install the release the agent downloaded (run as root by parta-agent-update.service):
    /// verify it again against the root-owned release key, replace the binary keeping the
    /// previous one, restart the agent, and put the previous binary back unless the new
    /// version reports healthy in time. Also finishes an installation that was interrupted.
    /// Exit status 0 when installed or nothing waited, 1 when refused or rolled back.
    Install(InstallArgs),
}

/// Flags of `update install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The installed agent binary.
    #[arg(long, default_value = "/usr/bin/parta-agent")]
    pub binary: PathBuf,
    /// The installer's own directory: the previous binary, the journal.
    #[arg(long, default_value = "/var/lib/parta-agent-update")]
    pub work_dir: PathBuf,
    /// The release public key root trusts (written at enrollment by the package).
    #[arg(long, default_value = "/etc/parta/release.pub")]
    pub key: PathBuf,
    /// Time the new version has to report healthy (connected, a report acknowledged).
    #[arg(long, env = "PARTA_UPDATE_HEALTH_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub update_health_timeout: std::time::Duration,
    /// The command that restarts the agent (words separated by spaces).
    #[arg(long, default_value = "systemctl --no-block restart parta-agent.service")]
    pub restart_command: String,
}

/// `parta-agent check …`.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Run every ЕСПД check of `[espd]` once — DNS through the configured resolvers, the
    /// must-reach resources (TCP, TLS, HTTP), latency/jitter/loss, the must-be-blocked list —
    /// and print results and verdicts; nothing is sent. Exit status 0 when every check
    /// passed, 1 otherwise.
    Espd {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// `parta-agent snmp …`.
#[derive(Debug, Subcommand)]
pub enum SnmpCommand {
    /// Poll a switch, router, access point or printer once and print what was read (system
    /// group, interfaces with counters, page counters) or why it failed; nothing is sent.
    /// Exit status 0 when the device answered, 1 otherwise.
    Poll(Box<SnmpPollArgs>),
    /// List the device profiles in force (built-in and from the profiles directory).
    Profiles,
}

/// Flags of `snmp poll`.
#[derive(Debug, Args)]
pub struct SnmpPollArgs {
    /// Device address: host, host:port, [IPv6]:port (port 161 when omitted).
    #[arg(value_name = "ADDRESS[:PORT]")]
    pub address: String,
    /// SNMP version: 1, 2c or 3 [default: 3 with --user, else 2c].
    #[arg(long = "version", value_name = "VERSION")]
    pub snmp_version: Option<String>,
    /// Community (v1/v2c) [default: public].
    #[arg(long, env = "PARTA_COMMUNITY", value_name = "COMMUNITY", hide_env_values = true)]
    pub community: Option<String>,
    /// SNMPv3 user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// SNMPv3 authentication protocol: md5, sha, sha224, sha256, sha384, sha512 [default: sha].
    #[arg(long, value_name = "PROTO")]
    pub auth_proto: Option<String>,
    /// SNMPv3 authentication password (or PARTA_AUTH_PASS, kept out of process listings).
    #[arg(long, env = "PARTA_AUTH_PASS", value_name = "PASSWORD", hide_env_values = true)]
    pub auth_pass: Option<String>,
    /// SNMPv3 privacy protocol: des, aes, aes192, aes256 [default: aes].
    #[arg(long, value_name = "PROTO")]
    pub priv_proto: Option<String>,
    /// SNMPv3 privacy password (or PARTA_PRIV_PASS).
    #[arg(long, env = "PARTA_PRIV_PASS", value_name = "PASSWORD", hide_env_values = true)]
    pub priv_pass: Option<String>,
    /// Per-request timeout, e.g. 2s [default: 2s, or `snmp.timeout` of the configuration].
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Retries after a timeout [default: 1].
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Use this profile instead of choosing by sysObjectID.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Poll twice this far apart and show interface rates, e.g. 10s.
    #[arg(long, value_name = "DURATION")]
    pub rates_after: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
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
