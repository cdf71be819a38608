//! Enrollment: the device's key in, a certificate out. Used by `parta-agent enroll JOIN` (the
//! join string names the collectors, the school's token and the fingerprint of the collector's
//! CA) and by the first session of an agent configured with a token and a CA file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parta_common::quic::{FramedRecv, close_reason, send_message};
use parta_protocol::join::Join;
use parta_protocol::{DeviceKind, EnrollRequest, Enrolled, Message, RejectReason};

use crate::config::{AgentConfig, CollectorAddr};
use crate::credential::{self, Credential, DeviceKey};
use crate::tls::{self, PinnedCa, Present, Trust};

/// Time allowed for the whole exchange with one collector.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an enrollment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The collector refused; retrying the same request cannot help.
    #[error("the collector refused to enroll this device: {reason}: {detail}")]
    Refused {
        /// Why.
        reason: RejectReason,
        /// The collector's words.
        detail: String,
    },
    /// The collector's CA is not the one the join string pins.
    #[error("{0}")]
    WrongCa(String),
    /// No collector could be reached, or the exchange broke; retrying may help.
    #[error("{0}")]
    Failed(String),
}

impl EnrollError {
    /// True when only a new token, join string or an administrator can help.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Refused { reason, .. } => reason.is_permanent(),
            Self::WrongCa(_) => true,
            Self::Failed(_) => false,
        }
    }
}

/// One enrollment request to one collector.
pub async fn request(
    addr: SocketAddr,
    server_name: &str,
    config: quinn::ClientConfig,
    req: EnrollRequest,
) -> Result<Enrolled, EnrollError> {
    let failed = |what: String| EnrollError::Failed(format!("{addr}: {what}"));
    let bind: SocketAddr = if addr.is_ipv6() { ([0u16; 8], 0).into() } else { ([0, 0, 0, 0], 0).into() };
    let mut endpoint =
        quinn::Endpoint::client(bind).map_err(|e| failed(format!("cannot open a UDP socket: {e}")))?;
    endpoint.set_default_client_config(config);
    let exchange = async {
        let conn =
            endpoint.connect(addr, server_name).map_err(|e| failed(e.to_string()))?.await.map_err(|e| {
                match close_reason(&e) {
                    Some(reason) => EnrollError::Refused { reason, detail: String::new() },
                    None => failed(format!("cannot connect: {e}")),
                }
            })?;
        let (mut send, recv) = conn.open_bi().await.map_err(|e| failed(e.to_string()))?;
        let mut recv = FramedRecv::new(recv, parta_protocol::MAX_FRAME_LEN);
        send_message(&mut send, &Message::Enroll(req))
            .await
            .map_err(|e| failed(format!("sending Enroll: {e}")))?;
        let answer = recv.next().await;
        conn.close(quinn::VarInt::from_u32(0), b"enrollment done");
        match answer {
            Ok(Some(Message::Enrolled(e))) => Ok(e),
            Ok(Some(Message::Reject(r))) => Err(EnrollError::Refused { reason: r.reason, detail: r.detail }),
            Ok(Some(other)) => Err(failed(format!("unexpected answer {}", other.name()))),
            Ok(None) => Err(failed("the collector closed the stream".into())),
            Err(e) => match e.reject_reason() {
                Some(reason) => Err(EnrollError::Refused { reason, detail: String::new() }),
                None => Err(failed(e.to_string())),
            },
        }
    };
    let result = match tokio::time::timeout(ENROLL_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(failed(format!("no answer within {ENROLL_TIMEOUT:?}"))),
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
    result
}

/// Resolves `host:port`.
pub async fn resolve(addr: &CollectorAddr) -> Result<SocketAddr, String> {
    let target = addr.to_socket_string();
    let mut addrs =
        tokio::net::lookup_host(&target).await.map_err(|e| format!("cannot resolve {target}: {e}"))?;
    addrs.next().ok_or_else(|| format!("{target} resolves to no address"))
}

/// Enrolls with the collectors in turn until one answers; stores the credential in
/// `state_dir`. `trust` decides which collector certificate is accepted.
pub async fn enroll(
    collectors: &[CollectorAddr],
    server_name: Option<&str>,
    trust: Trust<'_>,
    state_dir: &Path,
    key: &DeviceKey,
    token: &str,
    kind: DeviceKind,
) -> Result<Credential, EnrollError> {
    let config =
        tls::client_config(trust, Present::Nothing).map_err(|e| EnrollError::WrongCa(e.to_string()))?;
    let req = EnrollRequest {
        agent_version: crate::version::text().to_owned(),
        kind,
        token: token.to_owned(),
        public_key: key.public_key().to_vec(),
        device_id: crate::identity::load(state_dir),
    };
    let mut failures = Vec::new();
    for addr in collectors {
        let socket = match resolve(addr).await {
            Ok(s) => s,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let name = server_name.map_or_else(|| addr.host.clone(), str::to_owned);
        match request(socket, &name, config.clone(), req.clone()).await {
            Ok(e) => {
                let c = Credential {
                    device_id: e.device_id,
                    school: e.school_id,
                    cert: e.certificate.der,
                    not_after_ms: e.certificate.not_after_ms,
                };
                let dir = state_dir.to_owned();
                let stored = c.clone();
                tokio::task::spawn_blocking(move || credential::store(&dir, &stored))
                    .await
                    .map_err(|e| EnrollError::Failed(format!("storing the credential: {e}")))?
                    .map_err(|e| EnrollError::Failed(format!("storing the credential: {e}")))?;
                return Ok(c);
            }
            Err(e @ EnrollError::Refused { .. }) => return Err(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(EnrollError::Failed(format!("no collector enrolled this device: {}", failures.join("; "))))
}

/// Flags of `parta-agent enroll`.
#[derive(Debug)]
pub struct EnrollCommand {
    /// The join string.
    pub join: String,
    /// Room to write into the configuration.
    pub room: Option<String>,
    /// Equipment class to write into the configuration.
    pub class: Option<String>,
    /// The configuration file to write.
    pub config_path: PathBuf,
    /// Enroll again although a credential exists.
    pub force: bool,
    /// Forget the device's identity and enroll as a new device.
    pub new_device: bool,
}

/// `parta-agent enroll JOIN`: enrolls, writes the credential, the collector's CA and the
/// configuration, and says what it did.
pub fn command(config: &AgentConfig, cmd: &EnrollCommand) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let text = match cmd.join.as_str() {
        "-" => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("reading the join string from standard input")?;
            line
        }
        j => match j.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the join string from {file}"))?,
            None => j.to_owned(),
        },
    };
    let join: Join = text.parse().map_err(|e| anyhow::anyhow!("join string: {e}"))?;
    let collectors: Vec<CollectorAddr> = join
        .collectors
        .iter()
        .map(|c| {
            crate::config::parse_collector(c)
                .map_err(|e| anyhow::anyhow!("join string: collector address {c:?}: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let room = cmd
        .room
        .as_deref()
        .map(crate::config::check_room)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--room: {e}"))?;
    let class = cmd
        .class
        .as_deref()
        .map(|c| c.trim().parse::<parta_protocol::inventory::EquipmentClass>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("--class: {e}"))?;
    let state = &config.state_dir;
    if cmd.new_device {
        for f in credential::forget(state)? {
            println!("removed {}", f.display());
        }
    } else if let Some(c) = credential::load(state)?
        && !cmd.force
    {
        println!(
            "already enrolled as device {} of school {} (credential valid until {}); nothing changed \
             (--force enrolls again with the same key, --new-device as a new device)",
            c.device_id,
            c.school,
            rfc3339_ms(c.not_after_ms)
        );
        return Ok(());
    }
    parta_common::fsutil::create_private_dir(state)
        .with_context(|| format!("state directory {}", state.display()))?;
    let key = credential::load_or_create_key(state)?;
    let pinned = PinnedCa::new(join.ca_sha256);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("async runtime")?;
    let result = rt.block_on(enroll(
        &collectors,
        config.server_name.as_deref(),
        Trust::Pinned(pinned.clone()),
        state,
        &key,
        &join.token,
        config.kind,
    ));
    let cred = match result {
        Ok(c) => c,
        // A CA that does not match shows as a failed handshake; say what the pin saw.
        Err(EnrollError::Failed(why)) => match pinned.refused() {
            Some(mismatch) => return Err(EnrollError::WrongCa(mismatch).into()),
            None => return Err(EnrollError::Failed(why).into()),
        },
        Err(e) => return Err(e.into()),
    };
    let ca = pinned
        .accepted()
        .ok_or_else(|| anyhow::anyhow!("enrolled, but the collector's CA was not kept (a bug)"))?;
    let ca_path = state.join(credential::CA_FILE);
    credential::store_ca(&ca_path, &ca)?;
    if let Some(key) = &join.release_key {
        credential::store_release_key(&state.join(credential::RELEASE_KEY_FILE), key)?;
    }
    let mut settings: Vec<(&str, String)> = vec![
        ("collector", join.collectors.join(",")),
        ("ca_cert", ca_path.display().to_string()),
        ("school", cred.school.clone()),
        ("state_dir", state.display().to_string()),
    ];
    if let Some(r) = &room {
        settings.push(("room", r.clone()));
    }
    if let Some(c) = class {
        settings.push(("equipment_class", c.as_str().to_owned()));
    }
    write_config(&cmd.config_path, &settings, &["enroll_token", "enroll_token_file"])?;
    give_to_state_owner(
        state,
        &[
            credential::KEY_FILE,
            credential::CERT_FILE,
            crate::identity::FILE,
            credential::CA_FILE,
            credential::RELEASE_KEY_FILE,
        ],
    );
    println!(
        "enrolled as device {} of school {} with {}; credential valid until {}",
        cred.device_id,
        cred.school,
        join.collectors.join(", "),
        rfc3339_ms(cred.not_after_ms)
    );
    println!("collector CA:  {} ({})", ca_path.display(), parta_common::tls::fingerprint(&join.ca_sha256));
    println!(
        "credential:    {} and {} (0600)",
        state.join(credential::CERT_FILE).display(),
        state.join(credential::KEY_FILE).display()
    );
    match &join.release_key {
        Some(k) => println!(
            "release key:   {} ({}; updates must be signed by it)",
            parta_protocol::release::key_id_text(k),
            state.join(credential::RELEASE_KEY_FILE).display()
        ),
        None => println!("release key:   none in the join string (this device will not take updates)"),
    }
    println!("configuration: {}", cmd.config_path.display());
    println!(
        "start the agent: systemctl enable --now parta-agent (or `parta-agent --config {} run`)",
        cmd.config_path.display()
    );
    Ok(())
}

/// RFC 3339 UTC of a time in ms since the epoch.
pub fn rfc3339_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// Sets top-level keys of a TOML configuration file, keeping everything else (comments too):
/// a `key = …` line before the first table is replaced, a missing key is added at the top.
/// The result must parse as the agent's configuration before it replaces the file.
fn write_config(path: &Path, set: &[(&str, String)], remove: &[&str]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let text = edit_config(&old, set, remove)?;
    crate::config::check_file(path, &text)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    parta_common::fsutil::write_atomic(path, text.as_bytes(), false)
        .with_context(|| format!("writing {}", path.display()))
}

fn edit_config(old: &str, set: &[(&str, String)], remove: &[&str]) -> anyhow::Result<String> {
    let quote = |v: &str| toml::Value::String(v.to_owned()).to_string();
    let key_of =
        |line: &str| line.split_once('=').map(|(k, _)| k.trim().to_owned()).filter(|k| !k.starts_with('#'));
    let mut out: Vec<String> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    let mut in_table = false;
    for line in old.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            in_table = true;
        }
        if !in_table && let Some(k) = key_of(t) {
            if remove.contains(&k.as_str()) {
                continue;
            }
            if let Some((key, value)) = set.iter().find(|(key, _)| *key == k) {
                out.push(format!("{key} = {}", quote(value)));
                done.push(key);
                continue;
            }
        }
        out.push(line.to_owned());
    }
    let mut head = vec![format!(
        "# Enrollment settings written by `parta-agent enroll` ({}).",
        jiff::Timestamp::now().to_string().get(..10).unwrap_or_default()
    )];
    for (key, value) in set.iter().filter(|(k, _)| !done.contains(k)) {
        head.push(format!("{key} = {}", quote(value)));
    }
    let mut text = if done.len() == set.len() {
        out.join("\n")
    } else {
        format!("{}\n\n{}", head.join("\n"), out.join("\n"))
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// When root enrolls for a service that runs as another user, the files it wrote in the state
/// directory go to the directory's owner (Linux; elsewhere nothing is changed).
fn give_to_state_owner(state: &Path, files: &[&str]) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(state) else { return };
        for f in files {
            let path = state.join(f);
            if path.exists()
                && let Err(e) = std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid()))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot give the file to the state directory's owner");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (state, files);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_edits_keep_comments_and_tables() {
        let old = "# my notes\ncollector = \"old:1\"\nenroll_token = \"pt1_x\"\ninterval = \"30s\"\n\n[snmp]\ninterval = \"1m\"\n";
        let new = edit_config(
            old,
            &[("collector", "a:4433,b:4433".into()), ("school", "74-0012".into())],
            &["enroll_token"],
        )
        .unwrap();
        assert!(new.contains("# my notes"), "{new}");
        assert!(new.contains("collector = \"a:4433,b:4433\""), "{new}");
        assert!(!new.contains("old:1") && !new.contains("pt1_x"), "{new}");
        assert!(new.contains("school = \"74-0012\""), "{new}");
        assert!(new.contains("[snmp]\ninterval = \"1m\""), "{new}");
        // The table's own `interval` is not the top-level one.
        assert!(new.contains("interval = \"30s\""), "{new}");
        // A key inside a table is never replaced.
        let t = edit_config("[snmp]\nschool = \"x\"\n", &[("school", "y".into())], &[]).unwrap();
        assert!(
            t.starts_with("# Enrollment settings") && t.contains("school = \"y\"\n\n[snmp]\nschool = \"x\""),
            "{t}"
        );
        // Values are quoted as TOML.
        let q = edit_config("", &[("room", "каб. \"214\"".into())], &[]).unwrap();
        let t: toml::Table = toml::from_str(&q).unwrap();
        assert_eq!(t["room"].as_str(), Some("каб. \"214\""), "{q}");
    }
}
