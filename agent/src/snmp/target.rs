//! SNMP targets: what to poll, how, and how often — from the `[snmp]` section of the agent's
//! configuration file or from the flags of `parta-agent snmp poll`.
//!
//! ```toml
//! [snmp]
//! interval = "5m"        # default poll interval of every target
//! timeout = "2s"         # per request
//! retries = 1
//! concurrency = 32       # targets polled at the same time
//!
//! [[snmp.target]]
//! address = "10.74.12.2"           # port 161 unless given: "10.74.12.2:1161"
//! version = "2c"                   # 1 | 2c | 3
//! community = "public"
//! label = "Коммутатор, 2 этаж"
//! room = "201"
//!
//! [[snmp.target]]
//! address = "10.74.12.30"
//! version = "3"
//! user = "parta"
//! auth_proto = "sha"               # md5 | sha | sha224 | sha256 | sha384 | sha512
//! auth_pass = "…"
//! priv_proto = "aes"               # des | aes | aes192 | aes256
//! priv_pass = "…"
//! kind = "printer"                 # network | printer; otherwise from the profile
//! ```

use std::fmt;
use std::time::Duration;

use parta_common::settings;
use parta_protocol::snmp::SnmpDeviceKind;
use serde::Deserialize;
use snmp2::v3::{Auth, AuthProtocol, Cipher, KeyExtension, Security};

/// Default poll interval: interface rates at 5-minute resolution, like most NMS defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default retries after a timeout.
pub const DEFAULT_RETRIES: u32 = 1;
/// Default number of targets polled at once.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Default GETBULK max-repetitions (spread over the columns of a walk).
pub const DEFAULT_MAX_REPETITIONS: u32 = 50;
/// Default SNMP port.
pub const DEFAULT_PORT: u16 = 161;

/// SNMP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpVersion {
    /// SNMPv1 (no GETBULK, no 64-bit counters).
    V1,
    /// SNMPv2c.
    V2c,
    /// SNMPv3 with USM.
    V3,
}

impl std::str::FromStr for SnmpVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1" | "v1" => Ok(Self::V1),
            "2c" | "v2c" | "2" => Ok(Self::V2c),
            "3" | "v3" => Ok(Self::V3),
            _ => Err("expected 1, 2c or 3".into()),
        }
    }
}

/// How the poller proves itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// v1/v2c community.
    Community(String),
    /// v3 user-based security.
    Usm(Usm),
}

impl fmt::Debug for Credentials {
    // Communities and passwords are secrets: never in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Community(_) => f.write_str("Community(<redacted>)"),
            Self::Usm(u) => write!(f, "Usm({u:?})"),
        }
    }
}

/// SNMPv3 USM settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Usm {
    /// User name.
    pub user: String,
    /// Authentication protocol and password (`None`: noAuthNoPriv).
    pub auth: Option<(AuthProto, String)>,
    /// Privacy protocol and password (`None`: no encryption).
    pub privacy: Option<(PrivProto, String)>,
}

impl fmt::Debug for Usm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Usm")
            .field("user", &self.user)
            .field("auth", &self.auth.as_ref().map(|a| a.0))
            .field("privacy", &self.privacy.as_ref().map(|p| p.0))
            .finish()
    }
}

impl Usm {
    /// The security level name net-snmp uses.
    pub fn level(&self) -> &'static str {
        match (&self.auth, &self.privacy) {
            (None, _) => "noAuthNoPriv",
            (Some(_), None) => "authNoPriv",
            (Some(_), Some(_)) => "authPriv",
        }
    }

    /// The `snmp2` security context.
    pub fn security(&self) -> Security {
        let Some((proto, pass)) = &self.auth else {
            return Security::new(self.user.as_bytes(), b"").with_auth(Auth::NoAuthNoPriv);
        };
        let mut s = Security::new(self.user.as_bytes(), pass.as_bytes()).with_auth_protocol(proto.snmp2());
        s = match &self.privacy {
            None => s.with_auth(Auth::AuthNoPriv),
            Some((p, pass)) => {
                let cipher = p.snmp2();
                if cipher.priv_key_needs_extension(&proto.snmp2()) {
                    // net-snmp's aes192/aes256 extend the key as in draft-blumenthal.
                    s = s.with_key_extension_method(KeyExtension::Blumenthal);
                }
                s.with_auth(Auth::AuthPriv { cipher, privacy_password: pass.as_bytes().to_vec() })
            }
        };
        s
    }
}

/// v3 authentication protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProto {
    /// HMAC-MD5-96.
    Md5,
    /// HMAC-SHA-96.
    Sha,
    /// HMAC-SHA-224.
    Sha224,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

impl AuthProto {
    fn snmp2(self) -> AuthProtocol {
        match self {
            Self::Md5 => AuthProtocol::Md5,
            Self::Sha => AuthProtocol::Sha1,
            Self::Sha224 => AuthProtocol::Sha224,
            Self::Sha256 => AuthProtocol::Sha256,
            Self::Sha384 => AuthProtocol::Sha384,
            Self::Sha512 => AuthProtocol::Sha512,
        }
    }
}

impl std::str::FromStr for AuthProto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "").as_str() {
            "md5" => Ok(Self::Md5),
            "sha" | "sha1" => Ok(Self::Sha),
            "sha224" => Ok(Self::Sha224),
            "sha256" => Ok(Self::Sha256),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            _ => Err("expected md5, sha, sha224, sha256, sha384 or sha512".into()),
        }
    }
}

/// v3 privacy protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProto {
    /// CBC-DES.
    Des,
    /// CFB-AES-128.
    Aes,
    /// CFB-AES-192.
    Aes192,
    /// CFB-AES-256.
    Aes256,
}

impl PrivProto {
    fn snmp2(self) -> Cipher {
        match self {
            Self::Des => Cipher::Des,
            Self::Aes => Cipher::Aes128,
            Self::Aes192 => Cipher::Aes192,
            Self::Aes256 => Cipher::Aes256,
        }
    }
}

impl std::str::FromStr for PrivProto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "").as_str() {
            "des" => Ok(Self::Des),
            "aes" | "aes128" => Ok(Self::Aes),
            "aes192" => Ok(Self::Aes192),
            "aes256" => Ok(Self::Aes256),
            _ => Err("expected des, aes, aes192 or aes256".into()),
        }
    }
}

/// One target, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`.
    pub address: String,
    /// Version.
    pub version: SnmpVersion,
    /// Community or USM.
    pub credentials: Credentials,
    /// Poll interval.
    pub interval: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after a timeout.
    pub retries: u32,
    /// GETBULK max-repetitions.
    pub max_repetitions: u32,
    /// Label for people.
    pub label: String,
    /// Room.
    pub room: String,
    /// Kind forced by configuration.
    pub kind: Option<SnmpDeviceKind>,
    /// Profile forced by configuration.
    pub profile: Option<String>,
}

/// A target as written in the file or given as flags: every field optional text, resolved by
/// [`TargetSpec::resolve`] into a [`Target`] or an error naming the field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Address.
    pub address: Option<String>,
    /// Version: 1, 2c, 3.
    pub version: Option<String>,
    /// v1/v2c community.
    pub community: Option<String>,
    /// v3 user.
    pub user: Option<String>,
    /// v3 auth protocol.
    pub auth_proto: Option<String>,
    /// v3 auth password.
    pub auth_pass: Option<String>,
    /// v3 privacy protocol.
    pub priv_proto: Option<String>,
    /// v3 privacy password.
    pub priv_pass: Option<String>,
    /// Poll interval.
    pub interval: Option<String>,
    /// Timeout.
    pub timeout: Option<String>,
    /// Retries.
    pub retries: Option<u32>,
    /// GETBULK max-repetitions.
    pub max_repetitions: Option<u32>,
    /// Label.
    pub label: Option<String>,
    /// Room.
    pub room: Option<String>,
    /// `network` or `printer`.
    pub kind: Option<String>,
    /// Profile name.
    pub profile: Option<String>,
}

/// `[snmp]` of the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpSection {
    /// Default interval.
    pub interval: Option<String>,
    /// Default timeout.
    pub timeout: Option<String>,
    /// Default retries.
    pub retries: Option<u32>,
    /// Targets polled at once.
    pub concurrency: Option<usize>,
    /// Extra profile directory.
    pub profiles_dir: Option<std::path::PathBuf>,
    /// The targets.
    #[serde(default)]
    pub target: Vec<TargetSpec>,
}

/// A bad target field: which field, the value (secrets redacted) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field name, e.g. `auth_proto`.
    pub field: &'static str,
    /// The value as given, `<redacted>` for secrets.
    pub value: String,
    /// Why it is unusable.
    pub reason: String,
}

/// Defaults a target falls back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Interval.
    pub interval: Duration,
    /// Timeout.
    pub timeout: Duration,
    /// Retries.
    pub retries: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Self { interval: DEFAULT_INTERVAL, timeout: DEFAULT_TIMEOUT, retries: DEFAULT_RETRIES }
    }
}

fn bad(field: &'static str, value: &str, reason: impl Into<String>) -> FieldError {
    FieldError { field, value: value.to_owned(), reason: reason.into() }
}

fn secret_missing(field: &'static str, reason: &str) -> FieldError {
    FieldError { field, value: String::new(), reason: reason.into() }
}

impl TargetSpec {
    /// Resolves the spec; errors name the field.
    pub fn resolve(&self, d: Defaults) -> Result<Target, FieldError> {
        let raw = self.address.as_deref().unwrap_or_default();
        let address = normalize_address(raw).map_err(|r| bad("address", raw, r))?;
        let version = match &self.version {
            Some(v) => v.parse::<SnmpVersion>().map_err(|r| bad("version", v, r))?,
            None if self.user.is_some() => SnmpVersion::V3,
            None => SnmpVersion::V2c,
        };
        let credentials = match version {
            SnmpVersion::V1 | SnmpVersion::V2c => {
                for (field, v) in
                    [("user", &self.user), ("auth_proto", &self.auth_proto), ("priv_proto", &self.priv_proto)]
                {
                    if let Some(v) = v {
                        return Err(bad(field, v, "only for SNMPv3 (version = \"3\")"));
                    }
                }
                let c = self.community.clone().unwrap_or_else(|| "public".into());
                if c.is_empty() || c.len() > 64 {
                    return Err(secret_missing("community", "a community is 1–64 characters"));
                }
                Credentials::Community(c)
            }
            SnmpVersion::V3 => {
                if self.community.is_some() {
                    return Err(secret_missing("community", "SNMPv3 uses a user, not a community"));
                }
                let user = self.user.clone().unwrap_or_default();
                if user.is_empty() || user.len() > 32 {
                    return Err(bad("user", &user, "SNMPv3 needs a user name of 1–32 characters"));
                }
                let auth = match (&self.auth_proto, &self.auth_pass) {
                    (None, None) => None,
                    (proto, Some(pass)) => {
                        let proto = match proto {
                            Some(p) => p.parse::<AuthProto>().map_err(|r| bad("auth_proto", p, r))?,
                            None => AuthProto::Sha,
                        };
                        if pass.len() < 8 {
                            return Err(secret_missing(
                                "auth_pass",
                                "USM passwords are at least 8 characters",
                            ));
                        }
                        Some((proto, pass.clone()))
                    }
                    (Some(p), None) => {
                        return Err(bad("auth_proto", p, "set auth_pass too, or remove auth_proto"));
                    }
                };
                let privacy = match (&self.priv_proto, &self.priv_pass) {
                    (None, None) => None,
                    (proto, Some(pass)) => {
                        if auth.is_none() {
                            return Err(secret_missing(
                                "priv_pass",
                                "privacy needs authentication: set auth_pass",
                            ));
                        }
                        let proto = match proto {
                            Some(p) => p.parse::<PrivProto>().map_err(|r| bad("priv_proto", p, r))?,
                            None => PrivProto::Aes,
                        };
                        if pass.len() < 8 {
                            return Err(secret_missing(
                                "priv_pass",
                                "USM passwords are at least 8 characters",
                            ));
                        }
                        Some((proto, pass.clone()))
                    }
                    (Some(p), None) => {
                        return Err(bad("priv_proto", p, "set priv_pass too, or remove priv_proto"));
                    }
                };
                Credentials::Usm(Usm { user, auth, privacy })
            }
        };
        let dur = |field: &'static str,
                   v: &Option<String>,
                   min: Duration,
                   max: Duration,
                   default: Duration| match v {
            Some(s) => settings::parse_duration_within(s, min, max).map_err(|r| bad(field, s, r)),
            None => Ok(default),
        };
        let interval =
            dur("interval", &self.interval, Duration::from_secs(1), Duration::from_secs(86_400), d.interval)?;
        let timeout =
            dur("timeout", &self.timeout, Duration::from_millis(100), Duration::from_secs(60), d.timeout)?;
        let retries = self.retries.unwrap_or(d.retries);
        if retries > 10 {
            return Err(bad("retries", &retries.to_string(), "at most 10"));
        }
        let max_repetitions = self.max_repetitions.unwrap_or(DEFAULT_MAX_REPETITIONS);
        if !(1..=200).contains(&max_repetitions) {
            return Err(bad("max_repetitions", &max_repetitions.to_string(), "between 1 and 200"));
        }
        let kind = match self.kind.as_deref() {
            None => None,
            Some("network") => Some(SnmpDeviceKind::Network),
            Some("printer") => Some(SnmpDeviceKind::Printer),
            Some(k) => return Err(bad("kind", k, "expected network or printer")),
        };
        let text = |field: &'static str, v: &Option<String>| -> Result<String, FieldError> {
            let s = v.as_deref().unwrap_or_default().trim();
            if s.chars().count() > 64 || s.chars().any(char::is_control) {
                return Err(bad(field, s, "at most 64 printable characters"));
            }
            Ok(s.to_owned())
        };
        Ok(Target {
            address,
            version,
            credentials,
            interval,
            timeout,
            retries,
            max_repetitions,
            label: text("label", &self.label)?,
            room: text("room", &self.room)?,
            kind,
            profile: self.profile.clone(),
        })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address → `host:port`.
pub fn normalize_address(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("an address is required (host or host:port)".into());
    }
    if t.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(format!("[{t}]:{DEFAULT_PORT}"));
    }
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("missing `]` after an IPv6 address")?;
        (h, after.strip_prefix(':'))
    } else {
        match t.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (t, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("host is empty or has spaces".into());
    }
    let port = match port {
        Some(p) => {
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("port {p:?} is not 1–65535"))?
        }
        None => DEFAULT_PORT,
    };
    Ok(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(f: impl FnOnce(&mut TargetSpec)) -> TargetSpec {
        let mut s = TargetSpec { address: Some("10.0.0.2".into()), ..TargetSpec::default() };
        f(&mut s);
        s
    }

    #[test]
    fn v2c_defaults() {
        let t = spec(|_| {}).resolve(Defaults::default()).unwrap();
        assert_eq!(t.address, "10.0.0.2:161");
        assert_eq!(t.version, SnmpVersion::V2c);
        assert_eq!(t.credentials, Credentials::Community("public".into()));
        assert_eq!(t.interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn v3_levels() {
        let t = spec(|s| {
            s.user = Some("parta".into());
            s.auth_pass = Some("authpass1".into());
            s.priv_pass = Some("privpass1".into());
            s.priv_proto = Some("AES-256".into());
        })
        .resolve(Defaults::default())
        .unwrap();
        assert_eq!(t.version, SnmpVersion::V3);
        let Credentials::Usm(u) = &t.credentials else { panic!() };
        assert_eq!(u.level(), "authPriv");
        assert_eq!(u.privacy.as_ref().unwrap().0, PrivProto::Aes256);
        assert!(!format!("{t:?}").contains("authpass1"), "secrets stay out of Debug");
        let noauth = spec(|s| s.user = Some("n".into())).resolve(Defaults::default()).unwrap();
        let Credentials::Usm(u) = &noauth.credentials else { panic!() };
        assert_eq!(u.level(), "noAuthNoPriv");
    }

    #[test]
    fn errors_name_the_field() {
        let e = spec(|s| s.version = Some("4".into())).resolve(Defaults::default()).unwrap_err();
        assert_eq!(e.field, "version");
        let e = spec(|s| {
            s.user = Some("u".into());
            s.auth_proto = Some("sha3".into());
            s.auth_pass = Some("12345678".into());
        })
        .resolve(Defaults::default())
        .unwrap_err();
        assert_eq!(e.field, "auth_proto");
        let e = spec(|s| {
            s.user = Some("u".into());
            s.priv_pass = Some("12345678".into());
        })
        .resolve(Defaults::default())
        .unwrap_err();
        assert_eq!(e.field, "priv_pass");
        let e = spec(|s| s.address = Some("10.0.0.2:99999".into())).resolve(Defaults::default()).unwrap_err();
        assert_eq!(e.field, "address");
        let e = spec(|s| s.user = Some("u".into())).resolve(Defaults::default());
        assert!(e.is_ok());
        let e = spec(|s| {
            s.version = Some("2c".into());
            s.user = Some("u".into());
        })
        .resolve(Defaults::default())
        .unwrap_err();
        assert_eq!(e.field, "user");
    }

    #[test]
    fn addresses() {
        assert_eq!(normalize_address("::1").unwrap(), "[::1]:161");
        assert_eq!(normalize_address("[::1]:1161").unwrap(), "[::1]:1161");
        assert_eq!(normalize_address("switch.school.local").unwrap(), "switch.school.local:161");
        assert!(normalize_address("").is_err());
        assert!(normalize_address("a b").is_err());
    }
}
