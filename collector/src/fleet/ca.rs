//! The device CA: a key the collector keeps in its data directory (`device-ca.pem`,
//! `device-ca.key`, made on first start) that signs each device's client certificate. Separate
//! from the server certificate's CA, so that whoever runs the region's TLS certificates does
//! not also mint devices. Collectors that serve the same region share these two files.

use std::path::Path;

use parta_common::fsutil;
use parta_common::tls::PemError;
use parta_protocol::DeviceId;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::tls::TlsError;

/// CA certificate file in the data directory.
pub const DEVICE_CA_CERT: &str = "device-ca.pem";
/// CA key file in the data directory (0600).
pub const DEVICE_CA_KEY: &str = "device-ca.key";

/// Certificates are valid from a day before issue, so that a device whose clock is slightly
/// behind accepts a fresh one and the collector accepts it from a device whose clock is ahead.
const BACKDATE: time::Duration = time::Duration::days(1);

/// A public key the collector will not certify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a SubjectPublicKeyInfo.
    #[error("public key is not a valid SubjectPublicKeyInfo: {0}")]
    Unreadable(String),
    /// Another algorithm than ECDSA P-256/P-384 or Ed25519.
    #[error("public key algorithm is not accepted (ECDSA P-256, P-384 or Ed25519)")]
    Algorithm,
    /// Signing failed (a bug or a broken CA key).
    #[error("cannot sign the certificate: {0}")]
    Sign(String),
}

/// A certificate issued to a device.
#[derive(Debug, Clone)]
pub struct Issued {
    /// DER.
    pub der: Vec<u8>,
    /// SHA-256 of the DER.
    pub fingerprint: [u8; 32],
    /// Serial number, hex.
    pub serial: String,
    /// End of validity.
    pub not_after: time::OffsetDateTime,
}

/// The device CA, loaded.
pub struct DeviceCa {
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceCa(sha256:{})", hex::encode(Sha256::digest(&self.cert_der)))
    }
}

/// SHA-256 of a DER blob (certificate or key).
pub fn sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

impl DeviceCa {
    /// Loads the CA from `dir`, creating it on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, TlsError> {
        fsutil::create_private_dir(dir).map_err(|error| TlsError::Write { path: dir.to_owned(), error })?;
        let (cert_path, key_path) = (dir.join(DEVICE_CA_CERT), dir.join(DEVICE_CA_KEY));
        let unreadable = |path: &Path, reason: String| {
            TlsError::Pem(PemError::Unreadable { path: path.to_owned(), reason })
        };
        let common_name = format!("Parta device CA ({})", crate::tls::host_name());
        let (pem, key, created) = crate::tls::load_or_create_ca(&cert_path, &key_path, &common_name, 30)?;
        if created {
            tracing::info!(path = %cert_path.display(), "generated the device CA that signs agents' certificates");
        }
        let cert_der = parta_common::tls::certs_from_pem(pem.as_bytes())
            .ok()
            .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)))
            .ok_or_else(|| unreadable(&cert_path, "no certificate".into()))?;
        let issuer =
            Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| unreadable(&cert_path, e.to_string()))?;
        Ok(Self { cert_der, issuer })
    }

    /// The CA certificate, for the verifier of client certificates.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Checks a public key an agent sent: a readable SubjectPublicKeyInfo of an accepted
    /// algorithm.
    pub fn check_key(spki: &[u8]) -> Result<(), KeyError> {
        let key = SubjectPublicKeyInfo::from_der(spki).map_err(|e| KeyError::Unreadable(e.to_string()))?;
        let alg = key.algorithm();
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256
            || alg == &rcgen::PKCS_ECDSA_P384_SHA384
            || alg == &rcgen::PKCS_ED25519
        {
            Ok(())
        } else {
            Err(KeyError::Algorithm)
        }
    }

    /// Issues a client certificate naming `device` for the key `spki`, valid for `validity`
    /// from `now`.
    pub fn issue(
        &self,
        device: DeviceId,
        spki: &[u8],
        validity: std::time::Duration,
        now: time::OffsetDateTime,
    ) -> Result<Issued, KeyError> {
        Self::check_key(spki)?;
        let key = SubjectPublicKeyInfo::from_der(spki).map_err(|e| KeyError::Unreadable(e.to_string()))?;
        let sign = |e: rcgen::Error| KeyError::Sign(e.to_string());
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(sign)?;
        params.distinguished_name.push(DnType::OrganizationName, "Parta");
        params.distinguished_name.push(DnType::CommonName, format!("parta device {device}"));
        let uri = rcgen::string::Ia5String::try_from(format!("urn:uuid:{device}")).map_err(sign)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let mut serial: [u8; 16] = rand::RngExt::random(&mut rand::rng());
        // A positive INTEGER: the top bit clear.
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = now - BACKDATE;
        params.not_after = now + time::Duration::try_from(validity).unwrap_or(time::Duration::days(365));
        let cert = params.signed_by(&key, &self.issuer).map_err(sign)?;
        let der = cert.der().to_vec();
        Ok(Issued {
            fingerprint: sha256(&der),
            der,
            serial: hex::encode(serial),
            not_after: params.not_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_client_certificates_that_rustls_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeviceCa::load_or_create(dir.path()).unwrap();
        let again = DeviceCa::load_or_create(dir.path()).unwrap();
        assert_eq!(ca.cert(), again.cert(), "created once, then loaded");
        let key = KeyPair::generate().unwrap();
        let device = DeviceId::random();
        let now = time::OffsetDateTime::now_utc();
        let issued = ca
            .issue(device, &key.subject_public_key_info(), std::time::Duration::from_secs(3600), now)
            .unwrap();
        assert_eq!(issued.fingerprint, sha256(&issued.der));
        // The certificate verifies as a client certificate against the CA.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            parta_common::tls::provider(),
        )
        .build()
        .unwrap();
        let end = CertificateDer::from(issued.der.clone());
        verifier.verify_client_cert(&end, &[], rustls_pki_types::UnixTime::now()).unwrap();
        // The device id is readable by people in the subject.
        assert!(String::from_utf8_lossy(&issued.der).contains(&device.to_string()));
    }

    #[test]
    fn refuses_unreadable_keys() {
        assert!(matches!(DeviceCa::check_key(&[0x30, 0x03, 0x01, 0x01, 0x00]), Err(KeyError::Unreadable(_))));
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        DeviceCa::check_key(&ed.subject_public_key_info()).unwrap();
    }
}
