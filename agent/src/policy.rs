//! Policies: the agent settings a collector may set centrally (a subset of `agent.toml`), and
//! the check of a policy document by the agent's own parser and rules — the collector runs the
//! same check before it stores a policy (`policy set`), so that nothing ships that an agent
//! would refuse for a reason the collector could see.
//!
//! What only the device can judge (a file it must read, its own paths) is not settable by a
//! policy, or is checked again by the agent when it applies one.

use std::path::{Path, PathBuf};

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

/// Key of a policy's `[[snmp.target]]` naming the devices (ids) that poll it; a target without
/// it is polled by every device the policy reaches. A device is sent only the targets it polls
/// (and so only their secrets), without this key.
pub const DEVICES_KEY: &str = "devices";

/// Keys whose values are secrets (SNMP communities and v3 passwords), wherever they appear.
pub const SECRET_KEYS: &[&str] = &["community", "auth_pass", "priv_pass"];

/// Key of an offered document holding what the equipment register says of the device (`room`,
/// `equipment_class`, `item`): they apply where neither the file nor a policy sets the key.
/// Written by the collector, never by people.
pub const REGISTER_KEY: &str = "register";

/// Key of `agent.toml` listing the keys (dotted, e.g. `room` or `espd.must_reach`) that stay as
/// the file says whatever a policy sets.
pub const LOCAL_KEY: &str = "local";

/// Checks a policy document with the agent's own parser and rules. Environment variables of
/// the process running the check play no part.
pub fn check(document: &str) -> Result<(), PolicyError> {
    let mut table: toml::Table = toml::from_str(document)
        .map_err(|e| PolicyError { key: String::new(), reason: e.to_string().trim_end().to_owned() })?;
    let appends = table.remove(APPEND_KEY);
    let register = table.remove(REGISTER_KEY);
    if let Some(r) = &register {
        check_register(r)?;
    }
    if let Some(list) = &appends {
        check_append(list, &table)?;
    }
    if let Some(k) = table.keys().find(|k| !POLICY_KEYS.contains(&k.as_str())) {
        return Err(PolicyError {
            key: k.clone(),
            reason: "not settable by a policy: it is the device's own (set it in its agent.toml)".into(),
        });
    }
    let assigned = strip_assignments(&mut table)?;
    let setup =
        |e: String| PolicyError { key: String::new(), reason: format!("cannot set up the check: {e}") };
    let command = Cli::command().mut_args(|a| a.env(None));
    let command = command.mut_subcommand("run", |s| s.mut_args(|a| a.env(None)));
    let matches = command.try_get_matches_from(["parta-agent", "run"]).map_err(|e| setup(e.to_string()))?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| setup(e.to_string()))?;
    // Without `append` or `devices` the document as written, so that a parser's line numbers
    // are its own.
    let document = match appends.is_some() || assigned || register.is_some() {
        true => std::borrow::Cow::Owned(toml::to_string(&table).map_err(|e| setup(e.to_string()))?),
        false => std::borrow::Cow::Borrowed(document),
    };
    AgentConfig::resolve_text(&cli.global, &matches, Path::new(POLICY_FILE), &document)
        .map_err(from_config)?;
    Ok(())
}

/// `[register]`: a room, an equipment class, an inventory number.
fn check_register(value: &toml::Value) -> Result<(), PolicyError> {
    let bad = |key: &str, reason: String| PolicyError { key: format!("{REGISTER_KEY}.{key}"), reason };
    let Some(t) = value.as_table() else {
        return Err(PolicyError { key: REGISTER_KEY.into(), reason: "expected a table".into() });
    };
    for (k, v) in t {
        let Some(s) = v.as_str() else { return Err(bad(k, format!("{v}: expected a string"))) };
        match k.as_str() {
            "room" => {
                crate::config::check_room(s).map_err(|e| bad(k, format!("{s:?}: {e}")))?;
            }
            "equipment_class" => {
                s.parse::<parta_protocol::inventory::EquipmentClass>()
                    .map_err(|e| bad(k, format!("{s:?}: {e}")))?;
            }
            "item" if s.chars().count() <= 64 => {}
            "item" => return Err(bad(k, "at most 64 characters".into())),
            _ => return Err(bad(k, "unknown key (room, equipment_class, item)".into())),
        }
    }
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

/// Removes the `devices` lists of `[[snmp.target]]`, checking each names device ids; whether
/// there were any.
fn strip_assignments(table: &mut toml::Table) -> Result<bool, PolicyError> {
    let Some(toml::Value::Array(targets)) =
        table.get_mut("snmp").and_then(|s| s.as_table_mut()).and_then(|s| s.get_mut("target"))
    else {
        return Ok(false);
    };
    let mut any = false;
    for (i, target) in targets.iter_mut().enumerate() {
        let Some(devices) = target.as_table_mut().and_then(|t| t.remove(DEVICES_KEY)) else { continue };
        any = true;
        let bad = |reason: String| PolicyError { key: format!("snmp.target[{i}].{DEVICES_KEY}"), reason };
        let Some(list) = devices.as_array() else {
            return Err(bad(format!("{devices}: expected a list of device ids")));
        };
        if list.is_empty() {
            return Err(bad("no device would poll this target; remove the target instead".into()));
        }
        for v in list {
            if v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()).is_none() {
                return Err(bad(format!("{v} is not a device id")));
            }
        }
    }
    Ok(any)
}

/// The part of an effective policy a device is sent: the SNMP targets it polls (those without
/// `devices`, and those naming it), without the `devices` lists.
pub fn for_device(doc: &toml::Table, device: uuid::Uuid) -> toml::Table {
    let mut out = doc.clone();
    if let Some(toml::Value::Array(targets)) =
        out.get_mut("snmp").and_then(|s| s.as_table_mut()).and_then(|s| s.get_mut("target"))
    {
        targets.retain(|t| match t.get(DEVICES_KEY).and_then(toml::Value::as_array) {
            None => true,
            Some(list) => list
                .iter()
                .filter_map(toml::Value::as_str)
                .filter_map(|s| uuid::Uuid::parse_str(s).ok())
                .any(|d| d == device),
        });
        for t in targets.iter_mut().filter_map(toml::Value::as_table_mut) {
            t.remove(DEVICES_KEY);
        }
    }
    out
}

/// Merges `over` into `base` key by key: tables merge recursively, other values (lists
/// included) replace, except lists whose dotted path is in `appends`, which are concatenated
/// without repeating an entry. `prefix` is the dotted path of `base` (empty at the top).
pub fn merge_into(base: &mut toml::Table, over: &toml::Table, prefix: &str, appends: &[String]) {
    for (key, value) in over {
        if prefix.is_empty() && key == APPEND_KEY {
            continue;
        }
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_into(b, o, &path, appends),
            (Some(toml::Value::Array(b)), toml::Value::Array(o)) if appends.contains(&path) => {
                for v in o {
                    if !b.contains(v) {
                        b.push(v.clone());
                    }
                }
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The configuration document of a device running `policy`: the file's keys, replaced by the
/// policy's (tables merged, lists replaced) except the keys the file lists in `local`.
pub fn overlay(file: &toml::Table, policy: &toml::Table) -> toml::Table {
    let mut policy = policy.clone();
    let register = policy.remove(REGISTER_KEY);
    let mut out = file.clone();
    merge_into(&mut out, &policy, "", &[]);
    for key in local_keys(file) {
        match lookup(file, &key) {
            Some(v) => set_path(&mut out, &key, Some(v.clone())),
            None => set_path(&mut out, &key, None),
        }
    }
    // What the register says counts where nobody said otherwise.
    if let Some(toml::Value::Table(r)) = register {
        for key in REGISTER_SETS {
            if let (false, Some(v)) = (out.contains_key(*key), r.get(*key)) {
                out.insert((*key).to_owned(), v.clone());
            }
        }
    }
    out
}

/// The settings the register's item gives a device.
const REGISTER_SETS: &[&str] = &["room", "equipment_class"];

/// The keys a configuration file marks as local.
pub fn local_keys(file: &toml::Table) -> Vec<String> {
    string_list(file, LOCAL_KEY)
}

/// The strings of the list at top-level key `key` (`local`, `append`).
pub fn string_list(doc: &toml::Table, key: &str) -> Vec<String> {
    doc.get(key)
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(toml::Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Checks a file's `local` list: dotted keys a policy may set.
pub fn check_local(list: &[String]) -> Result<(), String> {
    for key in list {
        let top = key.split('.').next().unwrap_or_default();
        if !POLICY_KEYS.contains(&top) {
            return Err(format!(
                "{key:?} is not a key a policy sets (those are: {}); the device's own keys are always local",
                POLICY_KEYS.join(", ")
            ));
        }
    }
    Ok(())
}

/// Sets (or, with `None`, removes) the value at a dotted key, making tables on the way.
fn set_path(table: &mut toml::Table, path: &str, value: Option<toml::Value>) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut t = table;
    for part in parts {
        let entry = t.entry(part.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(next) = entry.as_table_mut() else { return };
        t = next;
    }
    match value {
        Some(v) => {
            t.insert(last.to_owned(), v);
        }
        None => {
            t.remove(last);
        }
    }
}

/// The dotted keys of a document's values: tables are walked, anything else (lists of tables
/// included) is one key.
pub fn leaf_keys(table: &toml::Table) -> Vec<String> {
    fn walk(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in t {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                toml::Value::Table(inner) => walk(inner, &path, out),
                _ => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    walk(table, "", &mut out);
    out
}

/// Prefix of the comment lines at the top of an offered document saying which scope set each
/// key: `#@ espd.must_reach = school:74-0012 v3`.
pub const ORIGIN_PREFIX: &str = "#@ ";

/// The scopes an offered document says its keys came from.
pub fn origin_lines(document: &str) -> Vec<(String, String)> {
    document
        .lines()
        .filter_map(|l| l.strip_prefix(ORIGIN_PREFIX))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
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

/// What the agent was started with — its command line (flags, and the environment clap reads)
/// and its configuration file — kept so that a policy can be applied over it while running.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    argv: Vec<std::ffi::OsString>,
    path: Option<PathBuf>,
    file: toml::Table,
}

impl ConfigSource {
    /// The running process's command line and the file at `path`.
    pub fn of_process(path: Option<&Path>) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|error| ConfigError::Read { path: p.to_owned(), error })?;
                parta_common::settings::parse_file::<toml::Table>(p, &text)?
            }
            None => toml::Table::new(),
        };
        Ok(Self { argv: std::env::args_os().collect(), path: path.map(Path::to_owned), file })
    }

    /// The same with a given command line and file, for tests.
    pub fn new(argv: &[&str], path: Option<&Path>, file: toml::Table) -> Self {
        Self { argv: argv.iter().map(Into::into).collect(), path: path.map(Path::to_owned), file }
    }

    /// The configuration file's document.
    pub fn file(&self) -> &toml::Table {
        &self.file
    }

    /// The configuration file's path.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The command line, parsed again (clap reads the environment again too).
    pub fn matches(&self) -> Result<(Cli, clap::ArgMatches), PolicyError> {
        let setup = |e: String| PolicyError { key: String::new(), reason: format!("command line: {e}") };
        let matches = Cli::command().try_get_matches_from(&self.argv).map_err(|e| setup(e.to_string()))?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| setup(e.to_string()))?;
        Ok((cli, matches))
    }

    /// The configuration with `policy` (an offered document) applied: checked by the same rules
    /// as on the collector, then merged over the file (keys marked local stay), then resolved
    /// with the flags and environment on top. Errors name the policy's key.
    pub fn resolve(&self, policy: Option<&str>) -> Result<AgentConfig, PolicyError> {
        let merged = match policy {
            Some(doc) => {
                check(doc)?;
                let table: toml::Table = toml::from_str(doc)
                    .map_err(|e| PolicyError { key: String::new(), reason: e.to_string() })?;
                overlay(&self.file, &table)
            }
            None => self.file.clone(),
        };
        let text = toml::to_string(&merged).map_err(|e| PolicyError {
            key: String::new(),
            reason: format!("cannot write the merged document: {e}"),
        })?;
        let (cli, matches) = self.matches()?;
        let path = self.path.clone().unwrap_or_else(|| PathBuf::from(POLICY_FILE));
        AgentConfig::resolve_text(&cli.global, &matches, &path, &text).map_err(from_config)
    }
}

/// Where each key set anywhere came from, for `parta-agent config`: a flag, an environment
/// variable, the configuration file (marked local or not) or the policy (its version and the
/// scope that set the key, as the collector wrote it). Keys not listed have their defaults.
pub fn origins(
    source: &ConfigSource,
    policy: Option<&LastKnownGood>,
) -> std::collections::BTreeMap<String, String> {
    let file = source.file();
    let local = local_keys(file);
    let policy_table: toml::Table = policy.and_then(|p| toml::from_str(&p.document).ok()).unwrap_or_default();
    let scopes = policy.map(|p| origin_lines(&p.document)).unwrap_or_default();
    let under = |key: &str, prefix: &str| key == prefix || key.starts_with(&format!("{prefix}."));
    let file_name =
        source.path().map_or_else(|| "configuration file".to_owned(), |p| p.display().to_string());
    let mut out = std::collections::BTreeMap::new();
    let mut keys = leaf_keys(file);
    keys.extend(leaf_keys(&policy_table));
    if let Some(toml::Value::Table(r)) = policy_table.get(REGISTER_KEY) {
        let item = r.get("item").and_then(toml::Value::as_str).unwrap_or_default();
        for key in REGISTER_SETS.iter().filter(|k| r.contains_key(**k)) {
            let set_elsewhere = file.contains_key(*key) || policy_table.contains_key(*key);
            if !set_elsewhere {
                out.insert((*key).to_owned(), format!("equipment register, item {item}"));
            }
        }
    }
    for key in keys {
        if key == LOCAL_KEY || key.starts_with(&format!("{REGISTER_KEY}.")) {
            continue;
        }
        let is_local = local.iter().any(|l| under(&key, l));
        let origin = match policy {
            Some(p) if !is_local && lookup(&policy_table, &key).is_some() => {
                let scope = scopes.iter().find(|(k, _)| under(&key, k)).map(|(_, s)| s.as_str());
                let id = p.id();
                match scope {
                    Some(s) => format!("policy {} from {s}", id.short()),
                    None => format!("policy {}", id.short()),
                }
            }
            _ if is_local => format!("{file_name} (local)"),
            _ => file_name.clone(),
        };
        out.insert(key, origin);
    }
    if let Ok((_, matches)) = source.matches() {
        let command = Cli::command();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let origin = match matches.value_source(id) {
                Some(clap::parser::ValueSource::CommandLine) => format!("flag --{}", id.replace('_', "-")),
                Some(clap::parser::ValueSource::EnvVariable) => {
                    format!("environment variable PARTA_{}", id.to_uppercase())
                }
                _ => continue,
            };
            out.insert(id.to_owned(), origin);
        }
    }
    for key in POLICY_KEYS {
        if !out.keys().any(|k| under(k, key)) {
            out.insert((*key).to_owned(), "built-in default".to_owned());
        }
    }
    out
}

/// The policy a device last applied, kept in its state directory (0600: it holds the secrets
/// of the targets it polls) so that an agent that starts offline runs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastKnownGood {
    /// Version.
    pub version: u64,
    /// SHA-256 of the document, hex.
    pub hash: String,
    /// The document as offered.
    pub document: String,
}

/// File name of [`LastKnownGood`] in the state directory.
pub const LKG_FILE: &str = "policy.json";

impl LastKnownGood {
    /// The record of an applied offer.
    pub fn of(offer: &parta_protocol::policy::PolicyOffer) -> Self {
        Self { version: offer.id.version, hash: hex::encode(offer.id.hash), document: offer.document.clone() }
    }

    /// Its id.
    pub fn id(&self) -> parta_protocol::policy::PolicyId {
        parta_protocol::policy::PolicyId::of(self.version, &self.document)
    }

    /// Reads it; `Ok(None)` when there is none, an error when it is damaged (its hash does not
    /// match: the agent then runs without it and says so).
    pub fn load(state_dir: &Path) -> Result<Option<Self>, String> {
        let path = state_dir.join(LKG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let lkg: Self = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if hex::encode(parta_protocol::policy::hash(&lkg.document)) != lkg.hash {
            return Err(format!("{}: the document does not match its hash", path.display()));
        }
        Ok(Some(lkg))
    }

    /// Writes it atomically, readable by the agent's user only.
    pub fn store(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        parta_common::fsutil::write_atomic(&state_dir.join(LKG_FILE), &bytes, true)
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

    #[test]
    fn targets_go_to_the_devices_named_and_the_list_is_checked() {
        let a = uuid::Uuid::from_u128(1);
        let b = uuid::Uuid::from_u128(2);
        let doc = format!(
            "[[snmp.target]]\naddress = \"10.0.0.1\"\ncommunity = \"for-all\"\n\
             [[snmp.target]]\naddress = \"10.0.0.2\"\ncommunity = \"only-a\"\ndevices = [\"{a}\"]\n"
        );
        check(&doc).unwrap();
        let table: toml::Table = toml::from_str(&doc).unwrap();
        let for_b = toml::to_string(&for_device(&table, b)).unwrap();
        assert!(for_b.contains("10.0.0.1") && !for_b.contains("only-a"), "{for_b}");
        let for_a = toml::to_string(&for_device(&table, a)).unwrap();
        assert!(for_a.contains("only-a") && !for_a.contains("devices"), "{for_a}");
        check(&for_a).unwrap();
        let e = check("[[snmp.target]]\naddress = \"10.0.0.1\"\ndevices = [\"kab-214\"]\n").unwrap_err();
        assert_eq!(e.key, "snmp.target[0].devices");
        assert!(e.reason.contains("kab-214"), "{e}");
        let e = check("[[snmp.target]]\naddress = \"10.0.0.1\"\ndevices = []\n").unwrap_err();
        assert_eq!(e.key, "snmp.target[0].devices");
    }

    #[test]
    fn a_policy_replaces_file_keys_except_local_ones() {
        let file: toml::Table = toml::from_str(
            "collector = \"c:4433\"\nroom = \"каб. 214\"\ninterval = \"60s\"\nlocal = [\"room\", \"espd.must_reach\"]\n\
             [espd]\nenabled = true\nmust_reach = [\"https://local.example/\"]\n",
        )
        .unwrap();
        let policy: toml::Table = toml::from_str(
            "room = \"policy room\"\ninterval = \"30s\"\n[espd]\nevery = \"5m\"\nmust_reach = [\"https://edu.gov.ru/\"]\n",
        )
        .unwrap();
        let merged = overlay(&file, &policy);
        assert_eq!(lookup(&merged, "interval").and_then(|v| v.as_str()), Some("30s"));
        assert_eq!(lookup(&merged, "room").and_then(|v| v.as_str()), Some("каб. 214"), "local wins");
        assert_eq!(lookup(&merged, "espd.every").and_then(|v| v.as_str()), Some("5m"));
        assert_eq!(lookup(&merged, "espd.enabled").and_then(toml::Value::as_bool), Some(true));
        assert_eq!(lookup(&merged, "espd.must_reach").and_then(|v| v.as_array()).map(Vec::len), Some(1));
        assert_eq!(lookup(&merged, "espd.must_reach").unwrap()[0].as_str(), Some("https://local.example/"));
        assert_eq!(lookup(&merged, "collector").and_then(|v| v.as_str()), Some("c:4433"));
        assert!(check_local(&["collector".into()]).unwrap_err().contains("device's own"));
        check_local(&["espd.must_reach".into()]).unwrap();
    }

    #[test]
    fn the_source_resolves_a_policy_over_the_file_and_says_where_keys_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let text = format!(
            "collector = \"127.0.0.1:4433\"\nstate_dir = \"{}\"\ninterval = \"60s\"\nroom = \"каб. 1\"\nlocal = [\"room\"]\n",
            dir.path().display()
        );
        std::fs::write(&path, &text).unwrap();
        let file: toml::Table = toml::from_str(&text).unwrap();
        let source = ConfigSource::new(&["parta-agent", "run"], Some(&path), file);
        let doc = "#@ interval = school:74-0012 v3\ninterval = \"15s\"\nroom = \"x\"\n";
        let c = source.resolve(Some(doc)).unwrap();
        assert_eq!(c.interval, std::time::Duration::from_secs(15));
        assert_eq!(c.usage.room, "каб. 1");
        let e = source.resolve(Some("interval = \"never\"\n")).unwrap_err();
        assert_eq!(e.key, "interval");
        let e = source.resolve(Some("state_dir = \"/\"\n")).unwrap_err();
        assert_eq!(e.key, "state_dir", "a policy cannot move the device's own settings");
        let offer = parta_protocol::policy::PolicyOffer {
            id: parta_protocol::policy::PolicyId::of(9, doc),
            document: doc.into(),
        };
        let lkg = LastKnownGood::of(&offer);
        lkg.store(dir.path()).unwrap();
        assert_eq!(LastKnownGood::load(dir.path()).unwrap(), Some(lkg.clone()));
        let origins = origins(&source, Some(&lkg));
        assert!(
            origins["interval"].starts_with("policy v9")
                && origins["interval"].ends_with("school:74-0012 v3"),
            "{origins:?}"
        );
        assert!(origins["room"].ends_with("(local)"), "{origins:?}");
        assert_eq!(origins["collector"], path.display().to_string());
        // A damaged file is said, not run.
        let mut bad = lkg;
        bad.document.push_str("interval = \"1s\"\n");
        std::fs::write(dir.path().join(LKG_FILE), serde_json::to_vec(&bad).unwrap()).unwrap();
        assert!(LastKnownGood::load(dir.path()).unwrap_err().contains("hash"));
    }

    #[test]
    fn the_register_sets_room_and_class_where_nobody_else_does() {
        let doc = "[register]\nroom = \"214\"\nequipment_class = \"teacher_laptop\"\nitem = \"1012-001\"\n";
        check(doc).unwrap();
        let policy: toml::Table = toml::from_str(doc).unwrap();
        let merged = overlay(&toml::Table::new(), &policy);
        assert_eq!(lookup(&merged, "room").and_then(|v| v.as_str()), Some("214"));
        assert_eq!(lookup(&merged, "equipment_class").and_then(|v| v.as_str()), Some("teacher_laptop"));
        assert!(!merged.contains_key(REGISTER_KEY));
        // The file's room and a policy's class win.
        let file: toml::Table = toml::from_str("room = \"каб. 3\"\n").unwrap();
        let mut with_class = policy.clone();
        with_class.insert("equipment_class".into(), "pupil_laptop".into());
        let merged = overlay(&file, &with_class);
        assert_eq!(lookup(&merged, "room").and_then(|v| v.as_str()), Some("каб. 3"));
        assert_eq!(lookup(&merged, "equipment_class").and_then(|v| v.as_str()), Some("pupil_laptop"));
        let e = check("[register]\nequipment_class = \"toaster\"\n").unwrap_err();
        assert_eq!(e.key, "register.equipment_class");
        let e = check("[register]\ncollector = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "register.collector");
    }
}
