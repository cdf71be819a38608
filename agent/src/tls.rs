//! QUIC client configurations: TLS 1.3 only, the collector's certificate verified against the
//! configured CA; one for reports (ALPN [`parta_protocol::ALPN`]), one for the speed-test
//! service.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parta_common::tls::{self, PemError};
use quinn::crypto::rustls::QuicClientConfig;

/// The client TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The CA file is unusable.
    #[error("CA certificate {0}")]
    Pem(#[from] PemError),
    /// A certificate in the CA file was refused as a trust anchor.
    #[error("CA certificate {}: {reason}", path.display())]
    BadCa {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls or quinn refused the configuration (a bug, not a user error).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Builds the QUIC client configuration trusting only the CA in `ca_path`.
pub fn client_config(ca_path: &Path) -> Result<quinn::ClientConfig, TlsError> {
    build(ca_path, parta_protocol::ALPN, transport())
}

/// The client configuration for the collector's speed-test service: the same trust, its ALPN,
/// and wide windows, so that a test is limited by the link, not by flow control.
pub fn speedtest_client_config(ca_path: &Path) -> Result<quinn::ClientConfig, TlsError> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(quinn::IdleTimeout::try_from(Duration::from_secs(20)).ok());
    t.stream_receive_window(quinn::VarInt::from_u32(8 * 1024 * 1024));
    t.receive_window(quinn::VarInt::from_u32(16 * 1024 * 1024));
    t.send_window(16 * 1024 * 1024);
    build(ca_path, parta_protocol::speedtest::SPEEDTEST_ALPN, t)
}

fn build(
    ca_path: &Path,
    alpn: &[u8],
    transport: quinn::TransportConfig,
) -> Result<quinn::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in tls::load_certs(ca_path)? {
        roots.add(cert).map_err(|e| TlsError::BadCa { path: ca_path.to_owned(), reason: e.to_string() })?;
    }
    let mut crypto = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![alpn.to_vec()];
    let quic = QuicClientConfig::try_from(Arc::new(crypto)).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Transport parameters sized for an agent: it receives only small acknowledgements, so receive
/// windows are small (less memory); keep-alives hold NAT bindings open on school routers.
fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(15)));
    // 60 s fits in quinn's IdleTimeout (anything below 2^62 ms does).
    t.max_idle_timeout(quinn::IdleTimeout::try_from(Duration::from_secs(60)).ok());
    t.stream_receive_window(quinn::VarInt::from_u32(64 * 1024));
    t.receive_window(quinn::VarInt::from_u32(128 * 1024));
    t.send_window(512 * 1024);
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1));
    t.datagram_receive_buffer_size(None);
    t
}
