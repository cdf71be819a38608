//! Logging set-up: `tracing` events to stderr, as text for people or JSON for log shippers.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected `text` or `json`".into()),
        }
    }
}

/// Checks a filter directive such as `info` or `parta_agent=debug,quinn=warn`.
pub fn parse_filter(text: &str) -> Result<String, String> {
    EnvFilter::try_new(text).map(|_| text.to_owned()).map_err(|e| e.to_string())
}

/// Changes the filter of the subscriber [`init`] installed.
type Reload = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

static RELOAD: std::sync::OnceLock<Reload> = std::sync::OnceLock::new();

/// Installs the global subscriber. Safe to call once per process; later calls are ignored.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(true);
    // `try_init` fails only when a subscriber is already installed (tests); nothing to do then.
    let reload: Option<Reload> = match format {
        LogFormat::Text => {
            let b = builder.with_ansi(false).with_filter_reloading();
            let handle = b.reload_handle();
            b.try_init()
                .ok()
                .map(|()| Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())) as Reload)
        }
        LogFormat::Json => {
            let b = builder.json().flatten_event(true).with_filter_reloading();
            let handle = b.reload_handle();
            b.try_init()
                .ok()
                .map(|()| Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())) as Reload)
        }
    };
    if let Some(r) = reload {
        let _ = RELOAD.set(r);
    }
}

/// Changes the log filter of the running process (a new `log_level`), without a restart.
pub fn set_filter(text: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(text).map_err(|e| e.to_string())?;
    match RELOAD.get() {
        Some(reload) => reload(filter),
        None => Err("logging was not set up by this process's start".into()),
    }
}
