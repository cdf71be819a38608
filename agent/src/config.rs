//! Agent configuration: the TOML file, environment variables and flags resolved into one typed
//! [`AgentConfig`]. Errors name the flag, variable or file key that holds the bad value.
//!
//! ```toml
//! # /etc/parta/agent.toml
//! collector = "parta.example.ru:4433"
//! ca_cert = "/etc/parta/ca.pem"
//! enroll_token_file = "/etc/parta/enroll-token"
//! school = "74-0012"
//! interval = "60s"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;
use parta_common::settings::{self, ConfigError, Layers, LogSettings, Origin};
use parta_protocol::DeviceKind;
use parta_protocol::validate::{self, MAX_TOKEN};
use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::paths::HostPaths;
use crate::snmp::target::{Defaults, SnmpSection, Target};
use crate::sources::logind::BusAddress;
use crate::sources::users::GroupMapping;
use crate::spool::{FsyncPolicy, SpoolConfig};
use parta_protocol::inventory::EquipmentClass;

/// Default collector QUIC port.
pub const DEFAULT_PORT: u16 = 4433;
/// Default sampling interval: one report a minute is the resolution usage questions need
/// (hours per day) at ~130 bytes per report.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default longest pause between reconnection attempts: an outage of hours costs one attempt
/// per few minutes per agent, and a region's agents spread out.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(300);
/// Default state directory (systemd `StateDirectory=parta-agent`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/parta-agent";

/// The configuration file. Keys are the long option names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    collector: Option<String>,
    server_name: Option<String>,
    ca_cert: Option<PathBuf>,
    enroll_token: Option<String>,
    enroll_token_file: Option<PathBuf>,
    school: Option<String>,
    kind: Option<String>,
    state_dir: Option<PathBuf>,
    interval: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    spool_max_bytes: Option<String>,
    spool_max_age: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    spool_fsync: Option<String>,
    reconnect_max: Option<String>,
    report_log: Option<PathBuf>,
    room: Option<String>,
    equipment_class: Option<String>,
    usage_poll: Option<String>,
    idle_after: Option<String>,
    usage_flush: Option<String>,
    logind_bus: Option<String>,
    user_groups_teacher: Option<String>,
    user_groups_pupil: Option<String>,
    user_groups_admin: Option<String>,
    /// Refused with a message: the salt belongs in `user_hash_salt_file`.
    user_hash_salt: Option<toml::Value>,
    user_hash_salt_file: Option<PathBuf>,
    hostname_mode: Option<String>,
    display_profiles_dir: Option<PathBuf>,
    sysfs: Option<PathBuf>,
    procfs: Option<PathBuf>,
    rootfs: Option<PathBuf>,
    log_format: Option<String>,
    log_level: Option<String>,
    snmp: Option<SnmpSection>,
    espd: Option<crate::espd::EspdSection>,
    /// Keys a policy does not change on this device (`crate::policy::LOCAL_KEY`).
    local: Option<Vec<String>>,
}

/// Where the collector is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorAddr {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl CollectorAddr {
    /// `host:port` for resolution, with brackets around IPv6 addresses.
    pub fn to_socket_string(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Parses a comma-separated list of collector addresses (tried in turn).
pub fn parse_collectors(text: &str) -> Result<Vec<CollectorAddr>, String> {
    let list = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_collector)
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() { Err("no collector address".into()) } else { Ok(list) }
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
pub fn parse_collector(text: &str) -> Result<CollectorAddr, String> {
    let t = text.trim();
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing `]` after an IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected `:port` after `]`")?),
        };
        (host, port)
    } else {
        match t.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err("put IPv6 addresses in brackets, e.g. [2001:db8::1]:4433".into());
            }
            Some((h, p)) => (h, Some(p)),
            None => (t, None),
        }
    };
    if host.is_empty() {
        return Err("host is empty".into());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port {p:?} is not a number between 1 and 65535"))?,
        None => DEFAULT_PORT,
    };
    Ok(CollectorAddr { host: host.to_owned(), port })
}

/// Everything every agent command needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Collector addresses, tried in turn (empty: none configured).
    pub collectors: Vec<CollectorAddr>,
    /// TLS server name override.
    pub server_name: Option<String>,
    /// CA certificate file.
    pub ca_cert: Option<PathBuf>,
    /// Enrollment token.
    pub enroll_token: Option<String>,
    /// School id (validated).
    pub school: Option<String>,
    /// Device kind.
    pub kind: DeviceKind,
    /// State directory.
    pub state_dir: PathBuf,
    /// Sampling interval.
    pub interval: Duration,
    /// Spool limits and durability.
    pub spool: SpoolConfig,
    /// Longest pause between reconnection attempts.
    pub reconnect_max: Duration,
    /// Diagnostic log of every report taken.
    pub report_log: Option<PathBuf>,
    /// Host paths for file-based sources.
    pub paths: HostPaths,
    /// Room, inventory, usage and privacy settings.
    pub usage: UsageSettings,
    /// SNMP targets and poller settings (`[snmp]` in the file).
    pub snmp: SnmpSettings,
    /// ЕСПД connectivity checks (`[espd]` in the file).
    pub espd: crate::espd::EspdSettings,
    /// Logging.
    pub log: LogSettings,
}

/// The SNMP poller's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnmpSettings {
    /// Targets (empty: the agent polls nothing).
    pub targets: Vec<Target>,
    /// Targets polled at once.
    pub concurrency: usize,
    /// A region's own device profiles.
    pub profiles_dir: PathBuf,
    /// Defaults for targets (and for `snmp poll`).
    pub defaults: Defaults,
}

/// Resolves `[snmp]`; errors name the file and key, e.g. `snmp.target[2].auth_proto`.
fn resolve_snmp(path: Option<&Path>, section: Option<SnmpSection>) -> Result<SnmpSettings, ConfigError> {
    let s = section.unwrap_or_default();
    let origin = |key: String| match path {
        Some(p) => Origin::File { path: p.to_owned(), key },
        None => Origin::Default,
    };
    let invalid = |key: String, value: String, reason: String| ConfigError::Invalid {
        origin: origin(key),
        value,
        reason,
    };
    let dur = |key: &str, v: &Option<String>, min: Duration, max: Duration, default: Duration| match v {
        Some(t) => settings::parse_duration_within(t, min, max)
            .map_err(|r| invalid(format!("snmp.{key}"), t.clone(), r)),
        None => Ok(default),
    };
    let base = Defaults::default();
    let defaults = Defaults {
        interval: dur(
            "interval",
            &s.interval,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
            base.interval,
        )?,
        timeout: dur(
            "timeout",
            &s.timeout,
            Duration::from_millis(100),
            Duration::from_secs(60),
            base.timeout,
        )?,
        retries: match s.retries {
            Some(r) if r > 10 => {
                return Err(invalid("snmp.retries".into(), r.to_string(), "at most 10".into()));
            }
            Some(r) => r,
            None => base.retries,
        },
    };
    let concurrency = match s.concurrency {
        Some(c) if !(1..=1024).contains(&c) => {
            return Err(invalid("snmp.concurrency".into(), c.to_string(), "between 1 and 1024".into()));
        }
        Some(c) => c,
        None => crate::snmp::target::DEFAULT_CONCURRENCY,
    };
    let mut targets: Vec<Target> = Vec::with_capacity(s.target.len());
    for (i, spec) in s.target.iter().enumerate() {
        let t = spec.resolve(defaults).map_err(|e| {
            let value = if e.value.is_empty() { "<redacted>".to_owned() } else { e.value };
            invalid(format!("snmp.target[{i}].{}", e.field), value, e.reason)
        })?;
        if let Some(j) = targets.iter().position(|o| o.address == t.address) {
            return Err(invalid(
                format!("snmp.target[{i}].address"),
                t.address,
                format!("the same address as snmp.target[{j}]"),
            ));
        }
        targets.push(t);
    }
    Ok(SnmpSettings {
        targets,
        concurrency,
        profiles_dir: s
            .profiles_dir
            .unwrap_or_else(|| PathBuf::from(crate::snmp::profile::DEFAULT_PROFILES_DIR)),
        defaults,
    })
}

/// Defaults of the user-class group mapping.
pub const DEFAULT_TEACHER_GROUPS: &str = "teachers";
/// Default pupil groups.
pub const DEFAULT_PUPIL_GROUPS: &str = "pupils,students";
/// Default administration groups.
pub const DEFAULT_ADMIN_GROUPS: &str = "administration";

/// Room, equipment class, usage tracking and privacy settings.
#[derive(Debug, Clone)]
pub struct UsageSettings {
    /// Room.
    pub room: String,
    /// Configured equipment class.
    pub equipment_class: Option<EquipmentClass>,
    /// Session/display poll period.
    pub poll: Duration,
    /// Idle threshold.
    pub idle_after: Duration,
    /// Longest open interval before it is cut and sent.
    pub flush: Duration,
    /// Where logind is.
    pub logind_bus: BusAddress,
    /// Group mapping.
    pub groups: GroupMapping,
    /// Salt for user hashes (read from `user_hash_salt_file`).
    pub user_hash_salt: Option<String>,
    /// Where the salt was read from.
    pub user_hash_salt_file: Option<PathBuf>,
    /// How the host name is sent.
    pub hostname_mode: crate::privacy::HostnameMode,
    /// A region's own lists of interactive-panel makers and models.
    pub display_profiles_dir: PathBuf,
    /// Makers and models of interactive panels: built-in plus `display_profiles_dir`.
    pub panels: std::sync::Arc<crate::sources::display::PanelMakers>,
}

impl UsageSettings {
    /// Whether the usage sources would read the same with `other` (the panel lists compare by
    /// where they come from).
    pub fn same_sources(&self, other: &Self) -> bool {
        self.room == other.room
            && self.equipment_class == other.equipment_class
            && self.logind_bus == other.logind_bus
            && self.groups == other.groups
            && self.user_hash_salt == other.user_hash_salt
            && self.hostname_mode == other.hostname_mode
            && self.display_profiles_dir == other.display_profiles_dir
    }
}

/// What `run` needs on top of [`AgentConfig`]: a complete uplink.
#[derive(Debug, Clone)]
pub struct UplinkSettings {
    /// Collector addresses, tried in turn.
    pub collectors: Vec<CollectorAddr>,
    /// Name to verify in the collector's certificate (default: each address's host).
    pub server_name: Option<String>,
    /// CA certificate file.
    pub ca_cert: PathBuf,
    /// Enrollment token, for a device that has not enrolled yet (the first session enrolls it).
    pub enroll_token: Option<String>,
    /// School id as configured (the collector's record is what counts).
    pub school: Option<String>,
}

impl UplinkSettings {
    /// The name to verify in the certificate of the collector at `addr`.
    pub fn server_name_for(&self, addr: &CollectorAddr) -> String {
        self.server_name.clone().unwrap_or_else(|| addr.host.clone())
    }
}

impl AgentConfig {
    /// Resolves the configuration from parsed arguments (`matches` are the top-level matches,
    /// used to tell flags from environment variables in error messages).
    pub fn resolve(args: &GlobalArgs, matches: &ArgMatches) -> Result<Self, ConfigError> {
        Self::resolve_for(args, matches, false)
    }

    /// As [`Self::resolve`]; with `missing_ok`, a configuration file that does not exist yet
    /// counts as empty (`enroll` writes it).
    pub fn resolve_for(
        args: &GlobalArgs,
        matches: &ArgMatches,
        missing_ok: bool,
    ) -> Result<Self, ConfigError> {
        let path = args.common.config.as_deref();
        let file: FileConfig = match path {
            Some(p) if missing_ok && !p.exists() => FileConfig::default(),
            _ => args.common.load_file()?,
        };
        Self::resolve_with(args, matches, path, file)
    }

    /// Resolves a configuration document given as text (a policy), reported under `path`.
    pub(crate) fn resolve_text(
        a: &GlobalArgs,
        m: &ArgMatches,
        path: &Path,
        text: &str,
    ) -> Result<Self, ConfigError> {
        let file: FileConfig = settings::parse_file(path, text)?;
        Self::resolve_with(a, m, Some(path), file)
    }

    fn resolve_with(
        a: &GlobalArgs,
        m: &ArgMatches,
        path: Option<&Path>,
        f: FileConfig,
    ) -> Result<Self, ConfigError> {
        let l = Layers::new(m, path);
        if let Some(local) = &f.local {
            crate::policy::check_local(local).map_err(|reason| ConfigError::Invalid {
                origin: match path {
                    Some(p) => Origin::File { path: p.to_owned(), key: crate::policy::LOCAL_KEY.into() },
                    None => Origin::Default,
                },
                value: local.join(", "),
                reason,
            })?;
        }
        let usage = resolve_usage(&l, a, &f)?;
        let snmp = resolve_snmp(path, f.snmp)?;
        let espd = crate::espd::EspdSettings::resolve(
            f.espd.unwrap_or_default(),
            &crate::espd::system_resolv_conf(
                a.rootfs.as_deref().or(f.rootfs.as_deref()).unwrap_or_else(|| Path::new("/")),
            ),
        )
        .map_err(|e| ConfigError::Invalid {
            origin: match path {
                Some(p) => Origin::File { path: p.to_owned(), key: format!("espd.{}", e.key) },
                None => Origin::Default,
            },
            value: e.value,
            reason: e.reason,
        })?;
        let collectors = l
            .parse("collector", a.collector.clone(), "collector", f.collector, parse_collectors)?
            .map(|v| v.0)
            .unwrap_or_default();
        let school = l
            .parse("school", a.school.clone(), "school", f.school, |s| {
                validate::validate_school_id(s).map(|()| s.to_owned()).map_err(|e| e.to_string())
            })?
            .map(|v| v.0);
        let kind = l
            .parse("kind", a.kind.clone(), "kind", f.kind, |s| s.parse::<DeviceKind>())?
            .map_or(DeviceKind::Computer, |v| v.0);
        let interval = l
            .parse("interval", a.interval.clone(), "interval", f.interval, |s| {
                settings::parse_duration_within(s, Duration::from_millis(100), Duration::from_secs(3600))
            })?
            .map_or(DEFAULT_INTERVAL, |v| v.0);
        let log = a.common.logging(&l, f.log_format, f.log_level)?;
        let defaults_spool = SpoolConfig::default();
        let spool = SpoolConfig {
            max_bytes: l
                .parse(
                    "spool_max_bytes",
                    a.spool_max_bytes.clone(),
                    "spool_max_bytes",
                    f.spool_max_bytes,
                    |s| {
                        let n = settings::parse_size(s)?;
                        if n < 64 * 1024 { Err("must be at least 64KiB".into()) } else { Ok(n) }
                    },
                )?
                .map_or(defaults_spool.max_bytes, |v| v.0),
            max_age: l
                .parse("spool_max_age", a.spool_max_age.clone(), "spool_max_age", f.spool_max_age, |s| {
                    settings::parse_duration_within(
                        s,
                        Duration::from_secs(3600),
                        Duration::from_secs(3650 * 86_400),
                    )
                })?
                .map_or(defaults_spool.max_age, |v| v.0),
            fsync: l
                .parse("spool_fsync", a.spool_fsync.clone(), "spool_fsync", f.spool_fsync, |s| {
                    s.parse::<FsyncPolicy>()
                })?
                .map_or(defaults_spool.fsync, |v| v.0),
        };
        let reconnect_max = l
            .parse("reconnect_max", a.reconnect_max.clone(), "reconnect_max", f.reconnect_max, |s| {
                settings::parse_duration_within(s, Duration::from_secs(1), Duration::from_secs(3600))
            })?
            .map_or(DEFAULT_RECONNECT_MAX, |v| v.0);
        let enroll_token = resolve_token(&l, a, f.enroll_token, f.enroll_token_file)?;
        let defaults = HostPaths::default();
        let pick_path = |id: &str, cli: &Option<PathBuf>, file: Option<PathBuf>, default: PathBuf| {
            l.pick(id, cli.clone(), id, file).map_or(default, |v| v.0)
        };
        Ok(Self {
            collectors,
            server_name: l
                .pick("server_name", a.server_name.clone(), "server_name", f.server_name)
                .map(|v| v.0),
            ca_cert: l.pick("ca_cert", a.ca_cert.clone(), "ca_cert", f.ca_cert).map(|v| v.0),
            enroll_token,
            school,
            kind,
            state_dir: pick_path("state_dir", &a.state_dir, f.state_dir, PathBuf::from(DEFAULT_STATE_DIR)),
            interval,
            spool,
            reconnect_max,
            report_log: l.pick("report_log", a.report_log.clone(), "report_log", f.report_log).map(|v| v.0),
            paths: HostPaths {
                sysfs: pick_path("sysfs", &a.sysfs, f.sysfs, defaults.sysfs),
                procfs: pick_path("procfs", &a.procfs, f.procfs, defaults.procfs),
                rootfs: pick_path("rootfs", &a.rootfs, f.rootfs, defaults.rootfs),
            },
            log,
            usage,
            snmp,
            espd,
        })
    }

    /// The uplink settings `run` needs, or an error naming the first missing one. A device
    /// that has not enrolled needs an enrollment token (its first session enrolls it).
    pub fn uplink(&self, args: &GlobalArgs, matches: &ArgMatches) -> Result<UplinkSettings, ConfigError> {
        let l = Layers::new(matches, args.common.config.as_deref());
        if self.collectors.is_empty() {
            return Err(l.missing("collector", "collector"));
        }
        let ca_cert = self.ca_cert.clone().ok_or_else(|| l.missing("ca_cert", "ca_cert"))?;
        let enrolled = self.state_dir.join(crate::credential::CERT_FILE).exists();
        if !enrolled && self.enroll_token.is_none() {
            return Err(ConfigError::Unusable(format!(
                "this device has not enrolled (no {} in the state directory): run `parta-agent enroll JOIN` \
                 with the join string from `parta-collector token create`, or set `enroll_token` \
                 (--enroll-token, PARTA_ENROLL_TOKEN) and the first session enrolls it",
                crate::credential::CERT_FILE
            )));
        }
        Ok(UplinkSettings {
            collectors: self.collectors.clone(),
            server_name: self.server_name.clone(),
            ca_cert,
            enroll_token: self.enroll_token.clone(),
            school: self.school.clone(),
        })
    }
}

fn resolve_usage(l: &Layers<'_>, a: &GlobalArgs, f: &FileConfig) -> Result<UsageSettings, ConfigError> {
    let salt = resolve_salt(l, a, f)?;
    let dur = |id: &str,
               cli: &Option<String>,
               file: &Option<String>,
               min: Duration,
               max: Duration,
               default: Duration| {
        l.parse(id, cli.clone(), id, file.clone(), |s| settings::parse_duration_within(s, min, max))
            .map(|v| v.map_or(default, |v| v.0))
    };
    let groups = |id: &str, cli: &Option<String>, file: &Option<String>, default: &str| {
        l.parse(id, cli.clone(), id, file.clone(), parse_groups)
            .map(|v| v.map_or_else(|| parse_groups(default).unwrap_or_default(), |v| v.0))
    };
    let room =
        l.parse("room", a.room.clone(), "room", f.room.clone(), check_room)?.map(|v| v.0).unwrap_or_default();
    let (display_profiles_dir, dir_origin) = l
        .pick("display_profiles_dir", None::<PathBuf>, "display_profiles_dir", f.display_profiles_dir.clone())
        .unwrap_or_else(|| {
            (PathBuf::from(crate::sources::display::DEFAULT_DISPLAY_PROFILES_DIR), Origin::Default)
        });
    let panels = crate::sources::display::PanelMakers::load(Some(&display_profiles_dir)).map_err(|e| {
        ConfigError::Invalid { origin: dir_origin, value: e.file.clone(), reason: e.reason.clone() }
    })?;
    Ok(UsageSettings {
        display_profiles_dir,
        panels: std::sync::Arc::new(panels),
        room,
        equipment_class: l
            .parse(
                "equipment_class",
                a.equipment_class.clone(),
                "equipment_class",
                f.equipment_class.clone(),
                |s| s.trim().parse::<EquipmentClass>(),
            )?
            .map(|v| v.0),
        poll: dur(
            "usage_poll",
            &a.usage_poll,
            &f.usage_poll,
            Duration::from_millis(100),
            Duration::from_secs(600),
            Duration::from_secs(5),
        )?,
        idle_after: dur(
            "idle_after",
            &a.idle_after,
            &f.idle_after,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
            Duration::from_secs(300),
        )?,
        flush: dur(
            "usage_flush",
            &a.usage_flush,
            &f.usage_flush,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
            Duration::from_secs(600),
        )?,
        logind_bus: l
            .parse("logind_bus", a.logind_bus.clone(), "logind_bus", f.logind_bus.clone(), |s| {
                s.parse::<BusAddress>()
            })?
            .map_or(BusAddress::System, |v| v.0),
        groups: GroupMapping {
            teacher: groups(
                "user_groups_teacher",
                &a.user_groups_teacher,
                &f.user_groups_teacher,
                DEFAULT_TEACHER_GROUPS,
            )?,
            pupil: groups(
                "user_groups_pupil",
                &a.user_groups_pupil,
                &f.user_groups_pupil,
                DEFAULT_PUPIL_GROUPS,
            )?,
            admin: groups(
                "user_groups_admin",
                &a.user_groups_admin,
                &f.user_groups_admin,
                DEFAULT_ADMIN_GROUPS,
            )?,
        },
        user_hash_salt: salt.as_ref().map(|s| s.0.clone()),
        user_hash_salt_file: salt.map(|s| s.1),
        hostname_mode: l
            .parse("hostname_mode", a.hostname_mode.clone(), "hostname_mode", f.hostname_mode.clone(), |s| {
                s.parse::<crate::privacy::HostnameMode>()
            })?
            .map(|v| v.0)
            .unwrap_or_default(),
    })
}

/// The salt for user hashes from its file, which only root and the agent's group may read: with
/// the salt, a `user_key` identifies a person (152-ФЗ), so it never sits in the world-readable
/// configuration file or in the environment (`systemctl show` prints a unit's).
fn resolve_salt(
    l: &Layers<'_>,
    a: &GlobalArgs,
    f: &FileConfig,
) -> Result<Option<(String, PathBuf)>, ConfigError> {
    if f.user_hash_salt.is_some() {
        return Err(ConfigError::Invalid {
            origin: l
                .pick("user_hash_salt", None::<()>, "user_hash_salt", Some(()))
                .map_or(Origin::Default, |v| v.1),
            value: "<redacted>".into(),
            reason: "the salt must not be in the configuration file (anyone can read it, and with the salt \
                     a user_key identifies a person): put it in a file only root and the agent's group can \
                     read — `install -m 0640 -o root -g parta-agent /dev/stdin /etc/parta/user-hash-salt` — \
                     and set user_hash_salt_file = \"/etc/parta/user-hash-salt\""
                .into(),
        });
    }
    let Some((path, origin)) = l.pick(
        "user_hash_salt_file",
        a.user_hash_salt_file.clone(),
        "user_hash_salt_file",
        f.user_hash_salt_file.clone(),
    ) else {
        return Ok(None);
    };
    let invalid = |reason: String| ConfigError::Invalid {
        origin: origin.clone(),
        value: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(&path).map_err(|e| invalid(format!("cannot read the salt file: {e}")))?;
    check_secret_file(&meta).map_err(invalid)?;
    let text =
        std::fs::read_to_string(&path).map_err(|e| invalid(format!("cannot read the salt file: {e}")))?;
    let salt = text.trim();
    if salt.chars().count() < 16 {
        return Err(invalid("the salt must be at least 16 characters (e.g. `openssl rand -hex 32`)".into()));
    }
    Ok(Some((salt.to_owned(), path)))
}

/// A secret file is readable by its owner and group only, writable by its owner only, and owned
/// by root or by the user the agent runs as.
pub fn check_secret_file(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    // The owner of /proc/self is the process's effective user (no unsafe getuid needed).
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    check_secret_mode(meta.mode(), meta.uid(), me)
}

/// [`check_secret_file`] on a file's mode and owner, given the agent's user id.
pub fn check_secret_mode(mode: u32, owner: u32, me: Option<u32>) -> Result<(), String> {
    if mode & 0o027 != 0 {
        return Err(format!(
            "the salt file has mode {:04o}: only its owner may write it and only its group read it \
             (chmod 0640, group parta-agent)",
            mode & 0o7777
        ));
    }
    if owner != 0 && Some(owner) != me {
        return Err(format!(
            "the salt file belongs to uid {owner}: it must belong to root (chown root:parta-agent)"
        ));
    }
    Ok(())
}

/// A room: at most 64 printable characters (trimmed).
pub fn check_room(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.chars().count() > 64 || s.chars().any(char::is_control) {
        Err("a room is at most 64 printable characters".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

/// Checks that `text` is a valid configuration file (for `enroll`, before it writes one).
pub fn check_file(path: &Path, text: &str) -> Result<(), ConfigError> {
    settings::parse_file::<FileConfig>(path, text).map(drop)
}

/// `teachers, учителя` → `["teachers", "учителя"]`.
fn parse_groups(s: &str) -> Result<Vec<String>, String> {
    let v: Vec<String> = s.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect();
    if v.iter().any(|g| g.contains(char::is_whitespace) || g.contains(':')) {
        return Err("group names are separated by commas and contain no spaces or `:`".into());
    }
    Ok(v)
}

fn resolve_token(
    l: &Layers<'_>,
    a: &GlobalArgs,
    inline: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<String>, ConfigError> {
    let check = |token: String, origin: Origin| -> Result<String, ConfigError> {
        let token = token.trim().to_owned();
        if token.is_empty()
            || token.len() > MAX_TOKEN
            || token.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::Invalid {
                origin,
                value: "<redacted>".into(),
                reason: format!("an enrollment token is 1–{MAX_TOKEN} printable characters without spaces"),
            });
        }
        Ok(token)
    };
    if let Some((token, origin)) = l.pick("enroll_token", a.enroll_token.clone(), "enroll_token", inline) {
        return check(token, origin).map(Some);
    }
    let Some((path, origin)) =
        l.pick("enroll_token_file", a.enroll_token_file.clone(), "enroll_token_file", file)
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
        origin: origin.clone(),
        value: path.display().to_string(),
        reason: format!("cannot read the token file: {e}"),
    })?;
    check(text, origin).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::{CommandFactory, FromArgMatches};

    fn resolve(argv: &[&str], toml: &str) -> Result<AgentConfig, ConfigError> {
        let m = Cli::command().get_matches_from(argv);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let path = PathBuf::from("/etc/parta/agent.toml");
        let file = settings::parse_file(&path, toml)?;
        AgentConfig::resolve_with(&cli.global, &m, Some(&path), file)
    }

    #[test]
    fn the_salt_lives_in_a_file_only_root_and_the_agents_group_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let err = resolve(&["parta-agent", "run"], "user_hash_salt = \"a-secret-salt-of-ours\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("user_hash_salt") && err.contains("user_hash_salt_file"), "{err}");
        assert!(!err.contains("a-secret-salt-of-ours"), "the secret is not echoed: {err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("user-hash-salt");
        std::fs::write(&file, "3f9c0e1a7b2d4c6e8f0a1b2c3d4e5f60\n").unwrap();
        let toml = format!("user_hash_salt_file = \"{}\"", file.display());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = resolve(&["parta-agent", "run"], &toml).unwrap_err().to_string();
        assert!(err.contains("0644") && err.contains("user_hash_salt_file"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let c = resolve(&["parta-agent", "run"], &toml).unwrap();
        assert_eq!(c.usage.user_hash_salt.as_deref(), Some("3f9c0e1a7b2d4c6e8f0a1b2c3d4e5f60"));
        std::fs::write(&file, "short\n").unwrap();
        assert!(resolve(&["parta-agent", "run"], &toml).unwrap_err().to_string().contains("at least 16"));

        assert!(check_secret_mode(0o100_640, 0, Some(999)).is_ok());
        assert!(check_secret_mode(0o100_600, 999, Some(999)).is_ok(), "the agent's own file");
        assert!(check_secret_mode(0o100_660, 0, Some(999)).is_err(), "group-writable");
        assert!(check_secret_mode(0o100_604, 0, Some(999)).is_err(), "world-readable");
        assert!(check_secret_mode(0o100_640, 1234, Some(999)).unwrap_err().contains("uid 1234"));
    }

    #[test]
    fn the_host_name_mode_is_send_hash_or_none() {
        use crate::privacy::HostnameMode;
        assert_eq!(resolve(&["parta-agent", "run"], "").unwrap().usage.hostname_mode, HostnameMode::Send);
        assert_eq!(
            resolve(&["parta-agent", "run"], "hostname_mode = \"hash\"").unwrap().usage.hostname_mode,
            HostnameMode::Hash
        );
        let c =
            resolve(&["parta-agent", "run", "--hostname-mode", "none"], "hostname_mode = \"hash\"").unwrap();
        assert_eq!(c.usage.hostname_mode, HostnameMode::None, "the flag wins over the file");
        let err = resolve(&["parta-agent", "run"], "hostname_mode = \"md5\"").unwrap_err().to_string();
        assert!(err.contains("hostname_mode") && err.contains("send, hash or none"), "{err}");
    }

    #[test]
    fn snmp_targets_and_errors_naming_the_key() {
        let c = resolve(
            &["parta-agent", "run"],
            "[snmp]\ninterval = \"1m\"\n[[snmp.target]]\naddress = \"10.0.0.2\"\n[[snmp.target]]\naddress = \"10.0.0.3:1161\"\nuser = \"parta\"\nauth_pass = \"secret-pass\"\n",
        )
        .unwrap();
        assert_eq!(c.snmp.targets.len(), 2);
        assert_eq!(c.snmp.targets[0].interval, Duration::from_secs(60));
        assert_eq!(c.snmp.targets[1].address, "10.0.0.3:1161");
        let e = resolve(
            &["parta-agent", "run"],
            "[[snmp.target]]\naddress = \"10.0.0.2\"\n[[snmp.target]]\naddress = \"10.0.0.4\"\nuser = \"u\"\nauth_pass = \"short\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("snmp.target[1].auth_pass") && e.contains("<redacted>") && !e.contains("short"),
            "{e}"
        );
        let e = resolve(
            &["parta-agent", "run"],
            "[[snmp.target]]\naddress = \"a\"\n[[snmp.target]]\naddress = \"a:161\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("snmp.target[1].address") && e.contains("snmp.target[0]"), "{e}");
        let e =
            resolve(&["parta-agent", "run"], "[[snmp.target]]\naddres = \"a\"\n").unwrap_err().to_string();
        assert!(e.contains("addres"), "unknown keys are errors: {e}");
    }

    #[test]
    fn collector_addresses() {
        let p = |s| parse_collector(s);
        assert_eq!(p("c.example:5000").unwrap(), CollectorAddr { host: "c.example".into(), port: 5000 });
        assert_eq!(p("c.example").unwrap().port, DEFAULT_PORT);
        assert_eq!(p("[::1]:7").unwrap(), CollectorAddr { host: "::1".into(), port: 7 });
        assert_eq!(p("[::1]").unwrap().to_socket_string(), "[::1]:4433");
        assert!(p("::1:7").is_err());
        assert!(p("host:0").is_err());
        assert!(p("host:http").is_err());
        assert!(p(":4433").is_err());
    }

    #[test]
    fn defaults() {
        let c = resolve(&["parta-agent", "sample"], "").unwrap();
        assert_eq!(c.interval, DEFAULT_INTERVAL);
        assert_eq!(c.kind, DeviceKind::Computer);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(c.paths, HostPaths::default());
    }

    #[test]
    fn flag_overrides_file() {
        let c =
            resolve(&["parta-agent", "run", "--interval", "5s"], "interval = \"5m\"\nschool = \"74-0012\"")
                .unwrap();
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.school.as_deref(), Some("74-0012"));
    }

    #[test]
    fn spool_settings() {
        let c = resolve(
            &["parta-agent", "run", "--spool-max-bytes", "1MiB", "--spool-fsync", "interval:500ms"],
            "spool_max_age = \"7d\"",
        )
        .unwrap();
        assert_eq!(c.spool.max_bytes, 1 << 20);
        assert_eq!(c.spool.fsync, FsyncPolicy::Interval(Duration::from_millis(500)));
        assert_eq!(c.spool.max_age, Duration::from_secs(7 * 86_400));
        assert_eq!(c.reconnect_max, DEFAULT_RECONNECT_MAX);
        let err = resolve(&["parta-agent", "run"], "spool_fsync = \"sometimes\"").unwrap_err().to_string();
        assert!(err.contains("key `spool_fsync`") && err.contains("interval:"), "{err}");
        let err = resolve(&["parta-agent", "run", "--spool-max-bytes", "1KiB"], "").unwrap_err().to_string();
        assert!(err.contains("at least 64KiB"), "{err}");
    }

    #[test]
    fn bad_values_name_their_origin() {
        let err = resolve(&["parta-agent", "run"], "interval = \"5 parsecs\"").unwrap_err().to_string();
        assert!(
            err.starts_with("invalid value \"5 parsecs\" for key `interval` in /etc/parta/agent.toml"),
            "{err}"
        );
        let err = resolve(&["parta-agent", "run", "--school", "школа 5"], "").unwrap_err().to_string();
        assert!(err.contains("command-line flag --school"), "{err}");
        let err = resolve(&["parta-agent", "run"], "kind = \"toaster\"").unwrap_err().to_string();
        assert!(err.contains("key `kind`") && err.contains("computer, panel"), "{err}");
        let err = resolve(&["parta-agent", "run"], "interval = \"0s\"").unwrap_err().to_string();
        assert!(err.contains("between 100ms and 1h"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error_with_line() {
        let err = resolve(&["parta-agent", "run"], "school = \"1\"\nshcool = \"2\"").unwrap_err().to_string();
        assert!(
            err.contains("/etc/parta/agent.toml") && err.contains("line 2") && err.contains("shcool"),
            "{err}"
        );
    }

    #[test]
    fn token_is_never_echoed_and_file_works() {
        let err =
            resolve(&["parta-agent", "run", "--enroll-token", "has space"], "").unwrap_err().to_string();
        assert!(!err.contains("has space") && err.contains("<redacted>"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "pt1_abc\n").unwrap();
        let c = resolve(&["parta-agent", "run", "--enroll-token-file", f.to_str().unwrap()], "").unwrap();
        assert_eq!(c.enroll_token.as_deref(), Some("pt1_abc"));
    }

    #[test]
    fn missing_uplink_setting_names_all_places() {
        let m = Cli::command().get_matches_from(["parta-agent", "run"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let c = AgentConfig::resolve_with(&cli.global, &m, None, FileConfig::default()).unwrap();
        let err = c.uplink(&cli.global, &m).unwrap_err().to_string();
        assert_eq!(
            err,
            "missing setting `collector`: set `collector` in the configuration file, --collector or PARTA_COLLECTOR"
        );
        // With a collector and its CA, a device that never enrolled needs a token.
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap();
        let c = resolve(
            &["parta-agent", "run", "--state-dir", state],
            "collector = \"a:1, b\"\nca_cert = \"/ca.pem\"",
        )
        .unwrap();
        assert_eq!(c.collectors.len(), 2);
        let m = Cli::command().get_matches_from(["parta-agent", "run"]);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let err = c.uplink(&cli.global, &m).unwrap_err().to_string();
        assert!(err.contains("parta-agent enroll"), "{err}");
    }
}
