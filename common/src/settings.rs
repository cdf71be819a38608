//! Layered settings with provenance.
//!
//! Every binary reads the same sources in the same order — command-line flag, then environment
//! variable, then the TOML configuration file, then the built-in default — and every subcommand
//! of a binary reads them all, so admin commands find the same database and directories as the
//! service. Flags are named `--some-key`, variables `PARTA_SOME_KEY`, file keys `some_key`; a
//! test in each binary checks its command-line definition against that convention.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::de::DeserializeOwned;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, e.g. `--interval`.
    Flag(String),
    /// An environment variable, e.g. `PARTA_INTERVAL`.
    Env(String),
    /// A key in a configuration file.
    File {
        /// The file.
        path: PathBuf,
        /// Dotted key, e.g. `log.format`.
        key: String,
    },
    /// The built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "command-line flag {flag}"),
            Self::Env(var) => write!(f, "environment variable {var}"),
            Self::File { path, key } => write!(f, "key `{key}` in {}", path.display()),
            Self::Default => f.write_str("built-in default"),
        }
    }
}

/// A configuration problem. The message always says which setting and where it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        error: std::io::Error,
    },
    /// The configuration file is not valid TOML or has unknown or mistyped keys.
    #[error("configuration file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said, with line and column.
        message: String,
    },
    /// A value was present but unusable.
    #[error("invalid value {value:?} for {origin}: {reason}")]
    Invalid {
        /// Where the value came from.
        origin: Origin,
        /// The value as given (secrets are replaced by `<redacted>`).
        value: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The settings are complete but say something that cannot work, explained.
    #[error("{0}")]
    Unusable(String),
    /// A required setting has no value anywhere.
    #[error("missing setting `{key}`: set `{key}` in the configuration file, {flag} or {env}")]
    Missing {
        /// File key.
        key: String,
        /// Flag name.
        flag: String,
        /// Environment variable.
        env: String,
    },
}

/// A file setting given as a string, a number or a boolean, as its text: people write
/// `batch_max_reports = 1000` as often as `"1000"`; the setting's own parser judges the text.
/// For `#[serde(default, deserialize_with = "scalar")]` on `Option<String>` fields.
pub fn scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(Some(match <Scalar as serde::Deserialize>::deserialize(d)? {
        Scalar::Text(s) => s,
        Scalar::Int(n) => n.to_string(),
        Scalar::Float(x) => x.to_string(),
        Scalar::Bool(b) => b.to_string(),
    }))
}

/// Reads and parses a TOML configuration file into `T` (which should use
/// `#[serde(deny_unknown_fields)]` so that typos are errors, not silently ignored).
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.to_owned(), error })?;
    parse_file(path, &text)
}

/// Parses TOML text as if it were the file at `path` (for error messages).
pub fn parse_file<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        // toml's message spans several lines with a source excerpt; keep it, it points at the
        // exact line and key.
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Options every Parta binary has: the configuration file and logging.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Configuration file (TOML); its keys are the long option names with `_` for `-`.
    #[arg(long, short = 'c', env = "PARTA_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "PARTA_LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or debug or info,parta_agent=debug [default: info].
    #[arg(long, env = "PARTA_LOG_LEVEL", global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// Resolved logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Output format.
    pub format: crate::logging::LogFormat,
    /// Filter directive.
    pub level: String,
}

impl CommonArgs {
    /// Reads and parses the configuration file, if one is given.
    pub fn load_file<T: DeserializeOwned + Default>(&self) -> Result<T, ConfigError> {
        self.config.as_deref().map_or_else(|| Ok(T::default()), load_file)
    }

    /// Logging settings from flags, environment and the file's `log_format`/`log_level`.
    pub fn logging(
        &self,
        l: &Layers<'_>,
        file_format: Option<String>,
        file_level: Option<String>,
    ) -> Result<LogSettings, ConfigError> {
        Ok(LogSettings {
            format: l
                .parse("log_format", self.log_format.clone(), "log_format", file_format, |s| s.parse())?
                .map_or(crate::logging::LogFormat::Text, |v| v.0),
            level: l
                .parse(
                    "log_level",
                    self.log_level.clone(),
                    "log_level",
                    file_level,
                    crate::logging::parse_filter,
                )?
                .map_or_else(|| "info".to_owned(), |v| v.0),
        })
    }
}

/// Resolves settings from the command line (including environment variables, which clap reads)
/// and an optional configuration file.
#[derive(Debug)]
pub struct Layers<'a> {
    matches: &'a ArgMatches,
    file: Option<&'a Path>,
}

impl<'a> Layers<'a> {
    /// `matches` from the top-level command; `file` is the configuration file path, if any.
    pub fn new(matches: &'a ArgMatches, file: Option<&'a Path>) -> Self {
        Self { matches, file }
    }

    /// Picks a value: the flag or variable (`cli`, as parsed by clap for the argument `id`), else
    /// the file's value for `key`, else `None`. Returns the value with its origin.
    pub fn pick<T>(&self, id: &str, cli: Option<T>, key: &str, file: Option<T>) -> Option<(T, Origin)> {
        if let Some(v) = cli {
            return Some((v, self.cli_origin(id)));
        }
        file.map(|v| (v, self.file_origin(key)))
    }

    /// Like [`Self::pick`], then parses the text with `parse`, reporting failures with the origin.
    pub fn parse<T>(
        &self,
        id: &str,
        cli: Option<String>,
        key: &str,
        file: Option<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<(T, Origin)>, ConfigError> {
        let Some((text, origin)) = self.pick(id, cli, key, file) else {
            return Ok(None);
        };
        match parse(&text) {
            Ok(v) => Ok(Some((v, origin))),
            Err(reason) => Err(ConfigError::Invalid { origin, value: text, reason }),
        }
    }

    /// The origin a value for `id` has when clap supplied it.
    pub fn cli_origin(&self, id: &str) -> Origin {
        match self.matches.value_source(id) {
            Some(ValueSource::EnvVariable) => Origin::Env(env_name(id)),
            _ => Origin::Flag(flag_name(id)),
        }
    }

    /// The origin of a file key.
    pub fn file_origin(&self, key: &str) -> Origin {
        match self.file {
            Some(path) => Origin::File { path: path.to_owned(), key: key.to_owned() },
            None => Origin::Default,
        }
    }

    /// A "missing setting" error naming all three places it can be set.
    pub fn missing(&self, id: &str, key: &str) -> ConfigError {
        ConfigError::Missing { key: key.to_owned(), flag: flag_name(id), env: env_name(id) }
    }
}

/// `--some-key` for the argument id `some_key`.
pub fn flag_name(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// `PARTA_SOME_KEY` for the argument id `some_key`.
pub fn env_name(id: &str) -> String {
    format!("PARTA_{}", id.to_ascii_uppercase())
}

/// Checks that every argument of `cmd` (and its subcommands) with an environment variable follows
/// the naming convention; used by each binary's tests.
pub fn check_naming_convention(cmd: &clap::Command) -> Result<(), String> {
    let mut problems = Vec::new();
    visit(cmd, &mut problems);
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

fn visit(cmd: &clap::Command, problems: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if let Some(env) = arg.get_env() {
            if env.to_str() != Some(&env_name(id)) {
                problems.push(format!(
                    "{}: `{id}` uses env {env:?}, expected {}",
                    cmd.get_name(),
                    env_name(id)
                ));
            }
            let long = arg.get_long().map(|l| format!("--{l}"));
            if long.as_deref() != Some(flag_name(id).as_str()) {
                problems.push(format!(
                    "{}: `{id}` uses flag {long:?}, expected {}",
                    cmd.get_name(),
                    flag_name(id)
                ));
            }
        }
    }
    for sub in cmd.get_subcommands() {
        visit(sub, problems);
    }
}

/// Parses a duration such as `1s`, `60s`, `5m`, `1h 30m`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t).map_err(|e| format!("{e} (examples: 1s, 60s, 5m, 1h)"))
}

/// Parses a size such as `256MiB`, `64MB`, `1GiB`, `512KiB` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| "expected a number of bytes, e.g. 256MiB, 64MB, 1GiB".to_owned())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" | "K" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" | "M" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" | "G" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}; use B, KiB, MiB, GiB, KB, MB or GB")),
    };
    n.checked_mul(mult).ok_or_else(|| "size too large".to_owned())
}

/// Parses a duration and checks it lies within `[min, max]`.
pub fn parse_duration_within(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < min || d > max {
        return Err(format!(
            "must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn cmd() -> Command {
        Command::new("t").arg(Arg::new("some_key").long("some-key").env("PARTA_SOME_KEY"))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5x").unwrap_err().contains("examples"));
        assert!(parse_duration_within("0s", Duration::from_secs(1), Duration::from_secs(60)).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn flag_beats_file_and_origins_are_named() {
        let m = cmd().get_matches_from(["t", "--some-key", "5s"]);
        let path = PathBuf::from("/etc/parta/x.toml");
        let layers = Layers::new(&m, Some(&path));
        let got = layers
            .parse(
                "some_key",
                m.get_one::<String>("some_key").cloned(),
                "some_key",
                Some("9s".into()),
                parse_duration,
            )
            .unwrap()
            .unwrap();
        assert_eq!(got, (Duration::from_secs(5), Origin::Flag("--some-key".into())));

        let m = cmd().get_matches_from(["t"]);
        let layers = Layers::new(&m, Some(&path));
        let err = layers.parse("some_key", None, "some_key", Some("9x".into()), parse_duration).unwrap_err();
        assert_eq!(
            err.to_string().split(':').next().unwrap(),
            "invalid value \"9x\" for key `some_key` in /etc/parta/x.toml"
        );
    }

    #[test]
    fn file_errors_name_file_line_and_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct F {
            interval: Option<String>,
        }
        let err = parse_file::<F>(Path::new("/etc/parta/agent.toml"), "interval = \"1s\"\nintervl = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("configuration file /etc/parta/agent.toml:"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("intervl"), "{err}");
    }

    #[test]
    fn naming_convention_check_catches_mismatches() {
        assert!(check_naming_convention(&cmd()).is_ok());
        let bad = Command::new("t").arg(Arg::new("some_key").long("key").env("PARTA_KEY"));
        assert!(check_naming_convention(&bad).is_err());
    }
}
