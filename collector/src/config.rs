//! Collector configuration: the TOML file, environment variables and flags resolved into one
//! typed [`CollectorConfig`]. Errors name the flag, variable or file key that holds the bad value.
//!
//! ```toml
//! # /etc/parta/collector.toml
//! clickhouse_url = "http://127.0.0.1:8123"
//! clickhouse_database = "parta"
//! quic_listen = "0.0.0.0:4433"
//! speedtest_listen = "0.0.0.0:4434"   # or "off"
//! speedtest_per_hour = 12               # tests per school and hour
//! speedtest_concurrent = 4              # tests at a time, all schools
//! speedtest_max_mb = 700                # payload per test
//! http_listen = "127.0.0.1:8080"
//! data_dir = "/var/lib/parta-collector"
//! tls_names = "parta.example.ru"
//! join_addresses = "parta.example.ru:4433"  # what join strings tell agents to connect to
//! release_key = "/etc/parta/release.pub"  # the region's release public key, given to devices in join strings
//! release_bandwidth_mbit = 100          # all release downloads together, Mbit/s
//! device_cert_validity = "365d"             # device certificates; renewed with a third left
//! policy_drift_after = "1h"             # a device not running its current policy by then is drifted
//! web_timezone = "Asia/Yekaterinburg"  # weekday × hour heatmaps; default: the system's zone
//! web_cookie_secure = "on"              # "off" only for plain HTTP on a trusted network
//! web_trusted_proxies = "127.0.0.1"     # reverse proxies whose X-Forwarded-For names the client
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;
use parta_common::settings::{self, ConfigError, Layers, LogSettings};
use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::speedtest::SpeedTestLimits;

/// The configuration file. Keys are the long option names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    clickhouse_url: Option<String>,
    clickhouse_database: Option<String>,
    clickhouse_user: Option<String>,
    clickhouse_password: Option<String>,
    quic_listen: Option<String>,
    speedtest_listen: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    speedtest_per_hour: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    speedtest_concurrent: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    speedtest_max_mb: Option<String>,
    http_listen: Option<String>,
    data_dir: Option<PathBuf>,
    profiles_dir: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_names: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    batch_max_reports: Option<String>,
    batch_max_delay: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    ingest_queue: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    ingest_queue_bytes: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    max_handshakes: Option<String>,
    join_addresses: Option<String>,
    release_key: Option<String>,
    #[serde(default, deserialize_with = "settings::scalar")]
    release_bandwidth_mbit: Option<String>,
    device_cert_validity: Option<String>,
    policy_drift_after: Option<String>,
    web_timezone: Option<String>,
    web_cookie_secure: Option<String>,
    web_trusted_proxies: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
}

/// ClickHouse connection settings.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// HTTP URL.
    pub url: String,
    /// Database name.
    pub database: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Where the server certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// Files configured by the operator.
    Files {
        /// Certificate chain (PEM).
        cert: PathBuf,
        /// Private key (PEM).
        key: PathBuf,
    },
    /// Generated on first start in the data directory, with these extra names.
    Generated {
        /// Extra DNS names or IP addresses.
        extra_names: Vec<String>,
    },
}

/// Ingest batching and memory bounds.
#[derive(Debug, Clone, Copy)]
pub struct IngestConfig {
    /// Most reports per insert. ClickHouse wants inserts of thousands of rows, about one per
    /// second; 50,000 lets a reconnect storm drain in large inserts.
    pub batch_max_reports: usize,
    /// Longest wait before a partial batch is inserted.
    pub batch_max_delay: Duration,
    /// Most reports in memory awaiting insert.
    pub queue: usize,
    /// Most bytes of decoded reports in memory awaiting insert (what their lists and strings
    /// take, [`parta_protocol::heap`]): reports are bounded in number and in size, so that
    /// 100,000 reports of a megabyte each cannot exhaust memory.
    pub queue_bytes: usize,
    /// Most connections that have not yet said `Hello` (or enrolled) at a time: beyond half of
    /// it, new connections must prove their address (QUIC Retry); beyond it, they are refused.
    pub max_handshakes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            batch_max_reports: 50_000,
            batch_max_delay: Duration::from_secs(1),
            queue: 100_000,
            // A typical report takes ~1 KiB decoded, the largest possible 3.6 MiB (the protocol's
            // amplification test): room for the whole report queue of typical reports.
            queue_bytes: 128 << 20,
            // A reconnect storm of a region's agents passes in waves of this many; each waiting
            // connection holds at most a 4 KiB frame buffer besides QUIC's own state.
            max_handshakes: 512,
        }
    }
}

/// Enrollment and device credentials.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Collector addresses join strings give agents, `host[:port]`.
    pub join_addresses: Vec<String>,
    /// Validity of device certificates; they are renewed over the session when a third of it is
    /// left.
    pub cert_validity: Duration,
    /// A device that has not applied its current policy this long after the change is drifted.
    pub policy_drift_after: Duration,
    /// The region's release public key (from `release_key`, a `release.pub` file): join strings
    /// carry it, and enrolled devices install only releases it signed.
    pub release_key: Option<[u8; 32]>,
    /// Bandwidth all sessions together may use for release artifacts, Mbit/s.
    pub release_bandwidth_mbit: u32,
}

/// Default bound on the bandwidth release artifacts take: a tenth of a gigabit port, so that
/// reports and the web UI keep flowing while a region downloads.
pub const DEFAULT_RELEASE_BANDWIDTH_MBIT: usize = 100;

/// Default time after a policy change until a device that has not applied it is drifted: long
/// enough for a device switched on in the morning, short enough to be seen the same day.
pub const DEFAULT_POLICY_DRIFT_AFTER: Duration = Duration::from_secs(3600);

/// Default validity of device certificates: a year, so that a PC switched off for the summer
/// holidays (three months) still finds its certificate valid and renews it.
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// Web UI settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// IANA time zone of heatmaps (weekday × hour), e.g. `Asia/Yekaterinburg`.
    pub timezone: String,
    /// Session cookies carry `Secure` (browsers send them over HTTPS, and to localhost).
    pub cookie_secure: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for sign-in limits per
    /// address); nobody's by default.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// The system's IANA time zone, else UTC.
fn system_timezone() -> String {
    jiff::tz::TimeZone::system().iana_name().map_or_else(|| "UTC".to_owned(), str::to_owned)
}

/// An IANA zone name that is known and safe to write into SQL.
pub fn check_timezone(s: &str) -> Result<String, String> {
    let safe = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
    if safe && jiff::tz::TimeZone::get(s).is_ok() {
        Ok(s.to_owned())
    } else {
        Err("expected an IANA time zone, e.g. Europe/Moscow or Asia/Yekaterinburg".into())
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// ClickHouse.
    pub clickhouse: ClickHouseConfig,
    /// QUIC listen address.
    pub quic_listen: SocketAddr,
    /// Speed-test service address (`None`: off).
    pub speedtest_listen: Option<SocketAddr>,
    /// What the speed-test service gives.
    pub speedtest: SpeedTestLimits,
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// Web UI settings.
    pub web: WebConfig,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Regional norm profiles.
    pub profiles_dir: Option<PathBuf>,
    /// Server certificate.
    pub tls: TlsSource,
    /// Ingest tuning.
    pub ingest: IngestConfig,
    /// Enrollment and device credentials.
    pub fleet: FleetConfig,
    /// Logging.
    pub log: LogSettings,
}

impl CollectorConfig {
    /// Resolves the configuration (`matches` are the top-level matches, to tell flags from
    /// environment variables in error messages).
    pub fn resolve(args: &GlobalArgs, matches: &ArgMatches) -> Result<Self, ConfigError> {
        let file: FileConfig = args.common.load_file()?;
        Self::resolve_with(args, matches, args.common.config.as_deref(), file)
    }

    fn resolve_with(
        a: &GlobalArgs,
        m: &ArgMatches,
        path: Option<&Path>,
        f: FileConfig,
    ) -> Result<Self, ConfigError> {
        let l = Layers::new(m, path);
        let text = |id: &str, cli: &Option<String>, file: Option<String>| {
            l.pick(id, cli.clone(), id, file).map(|v| v.0)
        };
        let url = l
            .parse("clickhouse_url", a.clickhouse_url.clone(), "clickhouse_url", f.clickhouse_url, |s| {
                if s.starts_with("http://") || s.starts_with("https://") {
                    Ok(s.trim_end_matches('/').to_owned())
                } else {
                    Err("expected an http:// or https:// URL of ClickHouse's HTTP interface".into())
                }
            })?
            .map_or_else(|| "http://127.0.0.1:8123".to_owned(), |v| v.0);
        let database = l
            .parse(
                "clickhouse_database",
                a.clickhouse_database.clone(),
                "clickhouse_database",
                f.clickhouse_database,
                |s| {
                    let ok = !s.is_empty()
                        && s.len() <= 64
                        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        && !s.starts_with(|c: char| c.is_ascii_digit());
                    if ok {
                        Ok(s.to_owned())
                    } else {
                        Err("use letters, digits and `_`, not starting with a digit".into())
                    }
                },
            )?
            .map_or_else(|| "parta".to_owned(), |v| v.0);
        let addr = |id: &str,
                    cli: &Option<String>,
                    file: Option<String>,
                    default: &str|
         -> Result<SocketAddr, ConfigError> {
            Ok(l.parse(id, cli.clone(), id, file, |s| {
                s.parse::<SocketAddr>()
                    .map_err(|_| "expected IP:PORT, e.g. 0.0.0.0:4433 or [::]:4433".to_owned())
            })?
            .map_or_else(
                || default.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0))),
                |v| v.0,
            ))
        };
        let count = |id: &str,
                     cli: &Option<String>,
                     file: Option<String>,
                     default: usize,
                     max: usize|
         -> Result<usize, ConfigError> {
            Ok(l.parse(id, cli.clone(), id, file, |s| {
                s.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("expected a whole number between 1 and {max}"))
            })?
            .map_or(default, |v| v.0))
        };
        let defaults = IngestConfig::default();
        let ingest = IngestConfig {
            batch_max_reports: count(
                "batch_max_reports",
                &a.batch_max_reports,
                f.batch_max_reports,
                defaults.batch_max_reports,
                1_000_000,
            )?,
            batch_max_delay: l
                .parse(
                    "batch_max_delay",
                    a.batch_max_delay.clone(),
                    "batch_max_delay",
                    f.batch_max_delay,
                    |s| {
                        settings::parse_duration_within(s, Duration::from_millis(10), Duration::from_secs(60))
                    },
                )?
                .map_or(defaults.batch_max_delay, |v| v.0),
            queue: count("ingest_queue", &a.ingest_queue, f.ingest_queue, defaults.queue, 10_000_000)?,
            queue_bytes: l
                .parse(
                    "ingest_queue_bytes",
                    a.ingest_queue_bytes.clone(),
                    "ingest_queue_bytes",
                    f.ingest_queue_bytes,
                    |s| {
                        let n = settings::parse_size(s)?;
                        if (2 << 20..=64 << 30).contains(&n) {
                            usize::try_from(n).map_err(|_| "too large for this machine".to_owned())
                        } else {
                            Err("between 2MiB and 64GiB".into())
                        }
                    },
                )?
                .map_or(defaults.queue_bytes, |v| v.0),
            max_handshakes: count(
                "max_handshakes",
                &a.max_handshakes,
                f.max_handshakes,
                defaults.max_handshakes,
                100_000,
            )?,
        };
        let quic_listen = addr("quic_listen", &a.quic_listen, f.quic_listen, "0.0.0.0:4433")?;
        let default_join = format!("{}:{}", crate::tls::host_name(), quic_listen.port());
        let fleet = FleetConfig {
            join_addresses: l
                .parse("join_addresses", a.join_addresses.clone(), "join_addresses", f.join_addresses, |s| {
                    let list: Vec<String> =
                        s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect();
                    let probe = format!(
                        "{}{}/x?token=x&ca=sha256:{}",
                        parta_protocol::join::SCHEME,
                        list.join(","),
                        "0".repeat(64)
                    );
                    match probe.parse::<parta_protocol::join::Join>() {
                        Ok(_) if !list.is_empty() => Ok(list),
                        Ok(_) => Err("expected host[:port], comma-separated".into()),
                        Err(e) => Err(e.to_string()),
                    }
                })?
                .map_or_else(|| vec![default_join], |v| v.0),
            cert_validity: l
                .parse(
                    "device_cert_validity",
                    a.device_cert_validity.clone(),
                    "device_cert_validity",
                    f.device_cert_validity,
                    |s| {
                        settings::parse_duration_within(
                            s,
                            Duration::from_secs(10),
                            Duration::from_secs(20 * 365 * 86_400),
                        )
                    },
                )?
                .map_or(DEFAULT_CERT_VALIDITY, |v| v.0),
            policy_drift_after: l
                .parse(
                    "policy_drift_after",
                    a.policy_drift_after.clone(),
                    "policy_drift_after",
                    f.policy_drift_after,
                    |s| {
                        settings::parse_duration_within(
                            s,
                            Duration::from_secs(1),
                            Duration::from_secs(365 * 86_400),
                        )
                    },
                )?
                .map_or(DEFAULT_POLICY_DRIFT_AFTER, |v| v.0),
            release_key: l
                .parse("release_key", a.release_key.clone(), "release_key", f.release_key, |s| {
                    let text = std::fs::read_to_string(s).map_err(|e| format!("cannot read {s}: {e}"))?;
                    parta_protocol::release::parse_public_key(&text)
                })?
                .map(|v| v.0),
            release_bandwidth_mbit: u32::try_from(count(
                "release_bandwidth_mbit",
                &a.release_bandwidth_mbit,
                f.release_bandwidth_mbit,
                DEFAULT_RELEASE_BANDWIDTH_MBIT,
                100_000,
            )?)
            .unwrap_or(u32::MAX),
        };
        let st = SpeedTestLimits::default();
        let speedtest = SpeedTestLimits {
            per_school_per_hour: count(
                "speedtest_per_hour",
                &a.speedtest_per_hour,
                f.speedtest_per_hour,
                st.per_school_per_hour,
                1000,
            )?,
            concurrent: count(
                "speedtest_concurrent",
                &a.speedtest_concurrent,
                f.speedtest_concurrent,
                st.concurrent,
                64,
            )?,
            max_bytes: count(
                "speedtest_max_mb",
                &a.speedtest_max_mb,
                f.speedtest_max_mb,
                usize::try_from(st.max_bytes / 1_000_000).unwrap_or(700),
                10_000,
            )? as u64
                * 1_000_000,
        };
        let tls_cert = l.pick("tls_cert", a.tls_cert.clone(), "tls_cert", f.tls_cert);
        let tls_key = l.pick("tls_key", a.tls_key.clone(), "tls_key", f.tls_key);
        let tls = match (tls_cert, tls_key) {
            (Some((cert, _)), Some((key, _))) => TlsSource::Files { cert, key },
            (None, None) => TlsSource::Generated {
                extra_names: text("tls_names", &a.tls_names, f.tls_names)
                    .map(|s| s.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect())
                    .unwrap_or_default(),
            },
            (Some(_), None) => return Err(l.missing("tls_key", "tls_key")),
            (None, Some(_)) => return Err(l.missing("tls_cert", "tls_cert")),
        };
        Ok(Self {
            clickhouse: ClickHouseConfig {
                url,
                database,
                user: text("clickhouse_user", &a.clickhouse_user, f.clickhouse_user)
                    .unwrap_or_else(|| "default".into()),
                password: text("clickhouse_password", &a.clickhouse_password, f.clickhouse_password)
                    .unwrap_or_default(),
            },
            quic_listen,
            speedtest_listen: match l.pick(
                "speedtest_listen",
                a.speedtest_listen.clone(),
                "speedtest_listen",
                f.speedtest_listen.clone(),
            ) {
                Some((v, _)) if v == "off" => None,
                _ => Some(addr("speedtest_listen", &a.speedtest_listen, f.speedtest_listen, "0.0.0.0:4434")?),
            },
            speedtest,
            http_listen: addr("http_listen", &a.http_listen, f.http_listen, "127.0.0.1:8080")?,
            web: WebConfig {
                timezone: l
                    .parse(
                        "web_timezone",
                        a.web_timezone.clone(),
                        "web_timezone",
                        f.web_timezone,
                        check_timezone,
                    )?
                    .map_or_else(system_timezone, |v| v.0),
                cookie_secure: l
                    .parse(
                        "web_cookie_secure",
                        a.web_cookie_secure.clone(),
                        "web_cookie_secure",
                        f.web_cookie_secure,
                        |s| match s {
                            "on" | "true" => Ok(true),
                            "off" | "false" => Ok(false),
                            _ => Err("expected on or off".into()),
                        },
                    )?
                    .is_none_or(|v| v.0),
                trusted_proxies: l
                    .parse(
                        "web_trusted_proxies",
                        a.web_trusted_proxies.clone(),
                        "web_trusted_proxies",
                        f.web_trusted_proxies,
                        |s| {
                            s.split(',')
                                .map(str::trim)
                                .filter(|x| !x.is_empty())
                                .map(|x| {
                                    x.parse::<std::net::IpAddr>()
                                        .map_err(|_| format!("{x:?} is not an IP address"))
                                })
                                .collect::<Result<Vec<_>, _>>()
                        },
                    )?
                    .map(|v| v.0)
                    .unwrap_or_default(),
            },
            data_dir: l
                .pick("data_dir", a.data_dir.clone(), "data_dir", f.data_dir)
                .map_or_else(|| PathBuf::from("/var/lib/parta-collector"), |v| v.0),
            profiles_dir: l
                .pick("profiles_dir", a.profiles_dir.clone(), "profiles_dir", f.profiles_dir)
                .map(|v| v.0),
            tls,
            ingest,
            fleet,
            log: a.common.logging(&l, f.log_format, f.log_level)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::{CommandFactory, FromArgMatches};

    fn resolve(argv: &[&str], toml: &str) -> Result<CollectorConfig, ConfigError> {
        let m = Cli::command().get_matches_from(argv);
        let cli = Cli::from_arg_matches(&m).unwrap();
        let path = PathBuf::from("/etc/parta/collector.toml");
        let file = settings::parse_file(&path, toml)?;
        CollectorConfig::resolve_with(&cli.global, &m, Some(&path), file)
    }

    #[test]
    fn defaults() {
        let c = resolve(&["parta-collector", "serve"], "").unwrap();
        assert_eq!(c.clickhouse.database, "parta");
        assert_eq!(c.clickhouse.url, "http://127.0.0.1:8123");
        assert_eq!(c.quic_listen.port(), 4433);
        assert!(matches!(c.tls, TlsSource::Generated { .. }));
        assert_eq!(c.speedtest, SpeedTestLimits::default());
        let c = resolve(
            &["parta-collector", "serve", "--speedtest-per-hour", "2"],
            "speedtest_concurrent = \"8\"\nspeedtest_max_mb = \"100\"",
        )
        .unwrap();
        assert_eq!(
            c.speedtest,
            SpeedTestLimits { per_school_per_hour: 2, concurrent: 8, max_bytes: 100_000_000 }
        );
        // Numbers may be written as TOML numbers too.
        let c = resolve(&["parta-collector", "serve"], "speedtest_per_hour = 3\nbatch_max_reports = 1000")
            .unwrap();
        assert_eq!((c.speedtest.per_school_per_hour, c.ingest.batch_max_reports), (3, 1000));
    }

    #[test]
    fn errors_name_the_setting() {
        let err =
            resolve(&["parta-collector", "serve"], "quic_listen = \"nowhere\"").unwrap_err().to_string();
        assert!(err.contains("key `quic_listen` in /etc/parta/collector.toml"), "{err}");
        let err = resolve(&["parta-collector", "serve", "--clickhouse-database", "x-y"], "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--clickhouse-database"), "{err}");
        let err = resolve(&["parta-collector", "serve", "--tls-cert", "/x.pem"], "").unwrap_err().to_string();
        assert!(err.contains("missing setting `tls_key`"), "{err}");
        let err =
            resolve(&["parta-collector", "serve"], "batch_max_reports = \"0\"").unwrap_err().to_string();
        assert!(err.contains("between 1 and"), "{err}");
        let err =
            resolve(&["parta-collector", "serve"], "speedtest_per_hour = \"many\"").unwrap_err().to_string();
        assert!(err.contains("key `speedtest_per_hour`") && err.contains("between 1 and 1000"), "{err}");
    }

    #[test]
    fn fleet_settings() {
        let c = resolve(&["parta-collector", "serve"], "").unwrap();
        assert_eq!(c.fleet.cert_validity, DEFAULT_CERT_VALIDITY);
        assert_eq!(c.fleet.join_addresses.len(), 1);
        let c = resolve(
            &["parta-collector", "serve", "--join-addresses", "a.example:4433, [2001:db8::1]:4433"],
            "device_cert_validity = \"30d\"\ningest_queue_bytes = \"16MiB\"",
        )
        .unwrap();
        assert_eq!(c.fleet.join_addresses, ["a.example:4433", "[2001:db8::1]:4433"]);
        assert_eq!(c.fleet.cert_validity, Duration::from_secs(30 * 86_400));
        assert_eq!(c.ingest.queue_bytes, 16 << 20);
        let err =
            resolve(&["parta-collector", "serve", "--join-addresses", "a b"], "").unwrap_err().to_string();
        assert!(err.contains("--join-addresses") && err.contains("collector address"), "{err}");
        let err =
            resolve(&["parta-collector", "serve"], "device_cert_validity = \"1s\"").unwrap_err().to_string();
        assert!(err.contains("device_cert_validity"), "{err}");
    }

    #[test]
    fn tls_names_split() {
        let c = resolve(&["parta-collector", "serve", "--tls-names", "a.example, 10.0.0.5,"], "").unwrap();
        let TlsSource::Generated { extra_names } = c.tls else { panic!() };
        assert_eq!(extra_names, ["a.example", "10.0.0.5"]);
    }
}
