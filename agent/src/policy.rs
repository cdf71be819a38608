//! Policies: the agent settings a collector may set centrally (a subset of `agent.toml`), and
//! the check of a policy document by the agent's own parser and rules — the collector runs the
//! same check before it stores a policy (`policy set`), so that nothing ships that an agent
//! would refuse for a reason the collector could see.
//!
//! What only the device can judge (a file it must read, its own paths) is not settable by a
//! policy, or is checked again by the agent when it applies one.

use std::path::Path;

use clap::{CommandFactory, FromArgMatches};
use parta_common::settings::{ConfigError, Origin};

use crate::cli::Cli;
use crate::config::AgentConfig;

/// Top-level keys a policy may set. The rest of `agent.toml` is the device's own: where the
/// collector is, its credentials and school, its paths, the user-hash salt.
pub const POLICY_KEYS: &[&str] = &[
    "interval",
    "spool_max_bytes",
    "spool_max_age",
    "spool_fsync",
    "reconnect_max",
    "room",
    "equipment_class",
    "usage_poll",
    "idle_after",
    "usage_flush",
    "user_groups_teacher",
    "user_groups_pupil",
    "user_groups_admin",
    "hostname_mode",
    "log_format",
    "log_level",
    "snmp",
    "espd",
];

/// The key of a policy listing the lists it adds to instead of replacing (`append =
/// ["espd.must_reach"]`): a narrower scope's list replaces a broader one's unless named here.
pub const APPEND_KEY: &str = "append";

/// Why a policy document was refused: the key at fault (dotted, empty for the whole document)
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct PolicyError {
    /// Dotted key, e.g. `snmp.target[2].auth_proto`.
    pub key: String,
    /// Why, with the value when it is not a secret.
    pub reason: String,
}

/// The file name errors of a policy are reported under.
const POLICY_FILE: &str = "policy";

/// Checks a policy document with the agent's own parser and rules. Environment variables of
/// the process running the check play no part.
pub fn check(document: &str) -> Result<(), PolicyError> {
    let mut table: toml::Table = toml::from_str(document)
        .map_err(|e| PolicyError { key: String::new(), reason: e.to_string().trim_end().to_owned() })?;
    let appends = table.remove(APPEND_KEY);
    if let Some(list) = &appends {
        check_append(list, &table)?;
    }
    if let Some(k) = table.keys().find(|k| !POLICY_KEYS.contains(&k.as_str())) {
        return Err(PolicyError {
            key: k.clone(),
            reason: "not settable by a policy: it is the device's own (set it in its agent.toml)".into(),
        });
    }
    let setup =
        |e: String| PolicyError { key: String::new(), reason: format!("cannot set up the check: {e}") };
    let command = Cli::command().mut_args(|a| a.env(None));
    let command = command.mut_subcommand("run", |s| s.mut_args(|a| a.env(None)));
    let matches = command.try_get_matches_from(["parta-agent", "run"]).map_err(|e| setup(e.to_string()))?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| setup(e.to_string()))?;
    // Without `append` the document as written, so that a parser's line numbers are its own.
    let document = match appends {
        Some(_) => std::borrow::Cow::Owned(toml::to_string(&table).map_err(|e| setup(e.to_string()))?),
        None => std::borrow::Cow::Borrowed(document),
    };
    AgentConfig::resolve_text(&cli.global, &matches, Path::new(POLICY_FILE), &document)
        .map_err(from_config)?;
    Ok(())
}

/// `append` must name lists the same document sets.
fn check_append(list: &toml::Value, table: &toml::Table) -> Result<(), PolicyError> {
    let bad = |reason: String| PolicyError { key: APPEND_KEY.into(), reason };
    let Some(items) = list.as_array() else {
        return Err(bad("expected a list of dotted keys, e.g. [\"espd.must_reach\"]".into()));
    };
    for item in items {
        let Some(path) = item.as_str() else { return Err(bad(format!("{item}: expected a dotted key"))) };
        if !matches!(lookup(table, path), Some(toml::Value::Array(_))) {
            return Err(bad(format!("{path:?} is not a list this policy sets")));
        }
    }
    Ok(())
}

/// The value at a dotted key (`espd.must_reach`) of a document.
pub fn lookup<'a>(table: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut parts = path.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn from_config(e: ConfigError) -> PolicyError {
    match e {
        ConfigError::Invalid { origin: Origin::File { key, .. }, value, reason } => {
            PolicyError { key, reason: format!("{value:?}: {reason}") }
        }
        ConfigError::Parse { message, .. } => PolicyError { key: String::new(), reason: message },
        other => PolicyError { key: String::new(), reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_school_policy_with_snmp_targets_and_espd_lists_passes() {
        let doc = "interval = \"30s\"\nuser_groups_pupil = \"pupils,students\"\n\
                   [snmp]\ninterval = \"5m\"\n[[snmp.target]]\naddress = \"10.74.12.2\"\nlabel = \"Коммутатор\"\n\
                   [espd]\nenabled = true\nlocality = \"rural\"\nmust_reach = [\"https://www.gosuslugi.ru/\"]\n";
        check(doc).unwrap();
        check("").unwrap();
    }

    #[test]
    fn refusals_name_the_key_and_the_value() {
        let e = check("interval = \"soon\"").unwrap_err();
        assert_eq!(e.key, "interval", "{e}");
        assert!(e.reason.contains("\"soon\""), "{e}");
        let e = check(
            "[[snmp.target]]\naddress = \"10.0.0.1\"\n[[snmp.target]]\naddress = \"10.0.0.2\"\n\
             auth_proto = \"rot13\"\nuser = \"u\"\nauth_pass = \"a-long-secret\"",
        )
        .unwrap_err();
        assert_eq!(e.key, "snmp.target[1].auth_proto", "{e}");
        assert!(e.reason.contains("rot13"), "{e}");
        let secret = "k".repeat(70);
        let e =
            check(&format!("[[snmp.target]]\naddress = \"10.0.0.1\"\ncommunity = \"{secret}\"")).unwrap_err();
        assert_eq!(e.key, "snmp.target[0].community", "{e}");
        assert!(!e.to_string().contains(&secret), "a secret is never echoed: {e}");
        let e = check("collector = \"evil.example:4433\"").unwrap_err();
        assert_eq!(e.key, "collector");
        assert!(e.reason.contains("device's own"), "{e}");
        let e = check("interval = ").unwrap_err();
        assert_eq!(e.key, "");
        assert!(e.reason.contains("line 1"), "{e}");
        let e = check("[espd]\nlocality = \"moon\"").unwrap_err();
        assert!(e.key.starts_with("espd."), "{e}");
    }

    #[test]
    fn append_names_lists_of_the_same_document() {
        check("append = [\"espd.must_reach\"]\n[espd]\nmust_reach = [\"https://sferum.ru/\"]\n").unwrap();
        let e = check("append = [\"espd.must_reach\"]\n").unwrap_err();
        assert_eq!(e.key, "append");
        assert!(e.reason.contains("espd.must_reach"), "{e}");
        let e = check("append = \"espd.must_reach\"\n").unwrap_err();
        assert_eq!(e.key, "append");
    }

    #[test]
    fn every_policy_key_is_a_key_of_agent_toml() {
        // A policy key the agent's file does not know would pass the table check and be
        // refused by the parser: the list and the file format stay one.
        for key in POLICY_KEYS {
            let doc = match *key {
                "snmp" | "espd" => format!("[{key}]\n"),
                _ => format!("{key} = 1\n"),
            };
            if let Err(e) = check(&doc) {
                assert!(!e.reason.contains("unknown field"), "{key}: {e}");
            }
        }
    }
}
