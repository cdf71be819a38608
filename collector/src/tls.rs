//! The collector's TLS identity. With `tls_cert`/`tls_key` configured, those files are used.
//! Otherwise a private CA and a server certificate are generated in the data directory on first
//! start — `ca.pem` is what agents need (`PARTA_CA_CERT`) — and reused afterwards; the server
//! certificate is re-issued by the same CA when the configured names change, so agents keep
//! trusting it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parta_common::fsutil;
use parta_common::tls::{self, PemError};
use quinn::crypto::rustls::QuicServerConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

use crate::config::TlsSource;

/// File names inside the data directory.
pub const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";
const SERVER_NAMES: &str = "server.names";

/// The TLS identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file is unusable.
    #[error("TLS {0}")]
    Pem(#[from] PemError),
    /// A file in the data directory could not be written.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        error: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Paths of the certificate in use.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// The CA agents must trust, when Parta generated it.
    pub generated_ca: Option<PathBuf>,
}

/// Loads or generates the identity.
pub fn identity(source: &TlsSource, data_dir: &Path) -> Result<Identity, TlsError> {
    match source {
        TlsSource::Files { cert, key } => {
            Ok(Identity { cert: cert.clone(), key: key.clone(), generated_ca: None })
        }
        TlsSource::Generated { extra_names } => ensure_generated(data_dir, extra_names),
    }
}

/// The certificate agents must trust, as a join string pins it: the generated CA, or the last
/// certificate of a configured chain (put the CA last in `tls_cert`). Never creates anything.
pub fn trust_anchor(source: &TlsSource, data_dir: &Path) -> Result<CertificateDer<'static>, TlsError> {
    let path = match source {
        TlsSource::Files { cert, .. } => cert.clone(),
        TlsSource::Generated { .. } => data_dir.join(CA_CERT),
    };
    tls::load_certs(&path)?.pop().ok_or(TlsError::Pem(PemError::NoCertificate { path }))
}

/// Which client certificates a QUIC endpoint asks for: signed by the device CA; optional where
/// devices also enroll (they have none yet), required elsewhere.
#[derive(Debug, Clone, Copy)]
pub enum ClientAuth<'a> {
    /// Connections without a certificate are accepted (they may only enroll).
    Optional(&'a CertificateDer<'static>),
    /// Every connection must present a device certificate.
    Required(&'a CertificateDer<'static>),
}

/// The speed-test service's QUIC configuration: the same identity, ALPN
/// `parta-speedtest/1`, and windows wide enough for a school's link (500 Mbit/s at 50 ms is
/// ~3 MB in flight), unlike the ingest endpoint's deliberately small ones.
pub fn speedtest_server_config(
    id: &Identity,
    device_ca: &CertificateDer<'static>,
) -> Result<quinn::ServerConfig, TlsError> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(quinn::IdleTimeout::try_from(Duration::from_secs(20)).ok());
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t.stream_receive_window(quinn::VarInt::from_u32(8 * 1024 * 1024));
    t.receive_window(quinn::VarInt::from_u32(16 * 1024 * 1024));
    t.send_window(16 * 1024 * 1024);
    build(id, parta_protocol::speedtest::SPEEDTEST_ALPN, t, ClientAuth::Required(device_ca))
}

/// Bytes a connection may send before its device is authenticated: a pre-authentication frame
/// (4 KiB) with room to spare, so that a connection that never says who it is holds no more.
pub const PRE_AUTH_RECEIVE_WINDOW: u32 = 8 * 1024;
/// Bytes an authenticated connection may send ahead of the collector reading them.
pub const AUTHENTICATED_RECEIVE_WINDOW: u32 = 512 * 1024;

/// The QUIC server configuration for agents' reports: TLS 1.3 only, ALPN
/// [`parta_protocol::ALPN`], device certificates asked for (optional: devices enroll here).
pub fn server_config(
    id: &Identity,
    device_ca: &CertificateDer<'static>,
) -> Result<quinn::ServerConfig, TlsError> {
    let mut t = quinn::TransportConfig::default();
    // Agents send keep-alives every 15 s; a minute of silence means the agent is gone.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(Duration::from_secs(60)).ok());
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t.datagram_receive_buffer_size(None);
    // What an agent may send ahead of the collector reading it. When ClickHouse is slow, sessions
    // stop reading and this much per connection waits in memory: 256 KiB (~2,000 reports, twice
    // an agent's window) × 1,000 draining agents stays far below the memory goal, where quinn's
    // default (1.25 MB) would not.
    t.stream_receive_window(quinn::VarInt::from_u32(256 * 1024));
    // Until the device is authenticated it may send no more than this (an `Enroll` or a
    // `Hello` is a few hundred bytes); the session opens the window to
    // [`AUTHENTICATED_RECEIVE_WINDOW`] once it is.
    t.receive_window(quinn::VarInt::from_u32(PRE_AUTH_RECEIVE_WINDOW));
    let mut config = build(id, parta_protocol::ALPN, t, ClientAuth::Optional(device_ca))?;
    // Connections still in their handshake that quinn keeps for us; the session layer's own
    // bound (`max_handshakes`) decides which become sessions.
    config.max_incoming(4096);
    Ok(config)
}

/// A TLS 1.3 server configuration of `id` for `alpn`, with `transport`.
fn build(
    id: &Identity,
    alpn: &[u8],
    transport: quinn::TransportConfig,
    client_auth: ClientAuth<'_>,
) -> Result<quinn::ServerConfig, TlsError> {
    let mut certs = tls::load_certs(&id.cert)?;
    // Agents enrolling with a join string pin the CA by its fingerprint and learn it from the
    // chain, so the generated CA travels with the server certificate.
    if let Some(ca) = &id.generated_ca {
        for c in tls::load_certs(ca)? {
            if !certs.contains(&c) {
                certs.push(c);
            }
        }
    }
    let key = tls::load_private_key(&id.key)?;
    let (ClientAuth::Optional(ca) | ClientAuth::Required(ca)) = client_auth;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| TlsError::Config(format!("device CA: {e}")))?;
    let builder =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider());
    let verifier = match client_auth {
        ClientAuth::Optional(_) => builder.allow_unauthenticated().build(),
        ClientAuth::Required(_) => builder.build(),
    }
    .map_err(|e| TlsError::Config(format!("device certificate verifier: {e}")))?;
    let mut crypto = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("{} and {}: {e}", id.cert.display(), id.key.display())))?;
    crypto.alpn_protocols = vec![alpn.to_vec()];
    let quic = QuicServerConfig::try_from(Arc::new(crypto)).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

fn ensure_generated(dir: &Path, extra_names: &[String]) -> Result<Identity, TlsError> {
    fsutil::create_private_dir(dir).map_err(|error| TlsError::Write { path: dir.to_owned(), error })?;
    let (ca_cert, ca_key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let (cert, key, names_file) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY), dir.join(SERVER_NAMES));
    let write = |path: &Path, text: &str, private: bool| {
        fsutil::write_atomic(path, text.as_bytes(), private)
            .map_err(|error| TlsError::Write { path: path.to_owned(), error })
    };

    let host = host_name();
    let (ca_pem, ca_key_pair, created) =
        load_or_create_ca(&ca_cert, &ca_key, &format!("Parta collector CA ({host})"), 20)?;
    if created {
        tracing::info!(path = %ca_cert.display(), "generated a private CA for agents");
        // A new CA invalidates any server certificate signed by an old one.
        let _ = std::fs::remove_file(&names_file);
    }

    let names = san_list(extra_names);
    let wanted = names.join(",");
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    if !(cert.exists() && key.exists() && current.trim() == wanted) {
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key_pair)?;
        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, 10);
        let server = params.signed_by(&server_key, &issuer)?;
        write(&key, &server_key.serialize_pem(), true)?;
        write(&cert, &server.pem(), false)?;
        write(&names_file, &format!("{wanted}\n"), false)?;
        tracing::info!(names = %wanted, path = %cert.display(), "issued the collector's server certificate");
    }
    Ok(Identity { cert, key, generated_ca: Some(ca_cert) })
}

/// A CA kept as PEM files `cert` and `key` (0600): loaded, or made on first use named
/// `common_name` and valid `years`. Returns its certificate (PEM), its key, and whether it was
/// made now.
pub(crate) fn load_or_create_ca(
    cert: &Path,
    key: &Path,
    common_name: &str,
    years: i64,
) -> Result<(String, KeyPair, bool), TlsError> {
    if cert.exists() && key.exists() {
        let pem = read(cert)?;
        let pair = KeyPair::from_pem(&read(key)?)
            .map_err(|e| PemError::Unreadable { path: key.to_owned(), reason: e.to_string() })?;
        return Ok((pem, pair, false));
    }
    let pair = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::OrganizationName, "Parta");
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, years);
    let made = params.self_signed(&pair)?;
    let write = |path: &Path, text: &str, private: bool| {
        fsutil::write_atomic(path, text.as_bytes(), private)
            .map_err(|error| TlsError::Write { path: path.to_owned(), error })
    };
    write(key, &pair.serialize_pem(), true)?;
    write(cert, &made.pem(), false)?;
    Ok((made.pem(), pair, true))
}

/// Names in the generated certificate: the host name, loopback, and the configured extras.
fn san_list(extra: &[String]) -> Vec<String> {
    let mut names = vec![host_name(), "localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    for n in extra {
        let n = n.parse::<IpAddr>().map_or_else(|_| n.to_ascii_lowercase(), |ip| ip.to_string());
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// This host's name, lower case (for generated certificates and default join addresses).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "parta-collector".into())
}

fn set_validity(params: &mut CertificateParams, years: i64) {
    let now = time::OffsetDateTime::now_utc();
    // Back-date by a day so that agents with a slightly slow clock accept a fresh certificate.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365 * years);
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path)
        .map_err(|e| TlsError::Pem(PemError::Unreadable { path: path.to_owned(), reason: e.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_and_reissued_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_generated(dir.path(), &[]).unwrap();
        let ca1 = std::fs::read(dir.path().join(CA_CERT)).unwrap();
        let cert1 = std::fs::read(&a.cert).unwrap();
        let device_ca = crate::fleet::ca::DeviceCa::load_or_create(dir.path()).unwrap();
        server_config(&a, device_ca.cert()).unwrap();
        ensure_generated(dir.path(), &[]).unwrap();
        assert_eq!(std::fs::read(&a.cert).unwrap(), cert1, "reused");
        ensure_generated(dir.path(), &["parta.example.ru".into()]).unwrap();
        assert_ne!(std::fs::read(&a.cert).unwrap(), cert1, "re-issued for new names");
        assert_eq!(std::fs::read(dir.path().join(CA_CERT)).unwrap(), ca1, "same CA");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CA_KEY)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn san_list_normalises_and_dedups() {
        let names = san_list(&["LOCALHOST".into(), "10.0.0.5".into(), "Parta.Example".into()]);
        assert_eq!(names.iter().filter(|n| *n == "localhost").count(), 1);
        assert!(names.contains(&"10.0.0.5".to_owned()) && names.contains(&"parta.example".to_owned()));
    }
}
