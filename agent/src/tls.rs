//! QUIC client configurations: TLS 1.3 only. The collector's certificate is verified against
//! the configured CA, or — when enrolling with a join string — against the CA the collector
//! presents, accepted only if its SHA-256 is the one the join string pins. Reporting sessions
//! and speed tests present the device's certificate.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parta_common::tls::{self, PemError};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::credential::{Credential, DeviceKey};

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
    /// rustls or quinn refused the configuration (a bug, or a damaged credential).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Whom the client trusts.
#[derive(Debug, Clone)]
pub enum Trust<'a> {
    /// The CA certificates in a PEM file.
    CaFile(&'a Path),
    /// Whatever CA the collector presents with this SHA-256 (enrollment with a join string).
    Pinned(Arc<PinnedCa>),
}

/// What the client presents.
#[derive(Debug, Clone, Copy)]
pub enum Present<'a> {
    /// Nothing (enrollment).
    Nothing,
    /// The device's certificate and key.
    Device(&'a Credential, &'a DeviceKey),
}

/// The configuration for the report stream (ALPN [`parta_protocol::ALPN`]).
pub fn client_config(trust: Trust<'_>, present: Present<'_>) -> Result<quinn::ClientConfig, TlsError> {
    build(trust, present, parta_protocol::ALPN, transport())
}

/// The client configuration for the collector's speed-test service: its ALPN, the device's
/// certificate, and wide windows, so that a test is limited by the link, not by flow control.
pub fn speedtest_client_config(
    ca_path: &Path,
    credential: &Credential,
    key: &DeviceKey,
) -> Result<quinn::ClientConfig, TlsError> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(quinn::IdleTimeout::try_from(Duration::from_secs(20)).ok());
    t.stream_receive_window(quinn::VarInt::from_u32(8 * 1024 * 1024));
    t.receive_window(quinn::VarInt::from_u32(16 * 1024 * 1024));
    t.send_window(16 * 1024 * 1024);
    build(
        Trust::CaFile(ca_path),
        Present::Device(credential, key),
        parta_protocol::speedtest::SPEEDTEST_ALPN,
        t,
    )
}

fn build(
    trust: Trust<'_>,
    present: Present<'_>,
    alpn: &[u8],
    transport: quinn::TransportConfig,
) -> Result<quinn::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match trust {
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in tls::load_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::BadCa { path: path.to_owned(), reason: e.to_string() })?;
            }
            builder.with_root_certificates(roots)
        }
        Trust::Pinned(pinned) => builder.dangerous().with_custom_certificate_verifier(pinned),
    };
    let mut crypto = match present {
        Present::Nothing => builder.with_no_client_auth(),
        Present::Device(credential, key) => builder
            .with_client_auth_cert(vec![credential.certificate()], key.private_key())
            .map_err(|e| TlsError::Config(format!("the device's certificate and key: {e}")))?,
    };
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

/// Trusts the CA the collector presents if — and only if — its SHA-256 is the pinned one; the
/// chain is then verified against it as against any CA (signatures, validity, the server's
/// name). Remembers the CA it accepted, and why it refused.
#[derive(Debug)]
pub struct PinnedCa {
    sha256: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
    accepted: Mutex<Option<CertificateDer<'static>>>,
    refused: Mutex<Option<String>>,
}

impl PinnedCa {
    /// Pins `sha256`.
    pub fn new(sha256: [u8; 32]) -> Arc<Self> {
        Arc::new(Self {
            sha256,
            provider: tls::provider(),
            accepted: Mutex::new(None),
            refused: Mutex::new(None),
        })
    }

    /// The CA accepted by the last handshake.
    pub fn accepted(&self) -> Option<CertificateDer<'static>> {
        self.accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Why the last handshake was refused by the pin.
    pub fn refused(&self) -> Option<String> {
        self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn refuse(&self, why: String) -> rustls::Error {
        *self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why.clone());
        rustls::Error::General(why)
    }
}

fn sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented: Vec<&CertificateDer<'_>> = std::iter::once(end_entity).chain(intermediates).collect();
        let Some(ca) = presented.iter().find(|c| sha256(c) == self.sha256) else {
            let seen: Vec<String> = presented.iter().map(|c| tls::fingerprint(&sha256(c))).collect();
            return Err(self.refuse(format!(
                "the collector's CA does not match the join string: expected {}, the collector presented {}",
                tls::fingerprint(&self.sha256),
                seen.join(", ")
            )));
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.to_vec()))
            .map_err(|e| self.refuse(format!("the pinned CA is not a usable CA: {e}")))?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider))
            .build()
            .map_err(|e| self.refuse(e.to_string()))?;
        let verified =
            inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        *self.accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(CertificateDer::from(ca.to_vec()));
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
