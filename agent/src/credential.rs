//! The device's credential, kept in the state directory: its private key (`device.key`, made
//! on the device and never sent anywhere), the certificate the collector issued for it
//! (`device.pem`, with the device id, school and expiry in comment lines above the PEM block)
//! and, after enrolling with a join string, the collector's CA (`collector-ca.pem`).
//!
//! The key is written before the device enrolls, so an enrollment whose answer was lost is
//! repeated with the same key, and the collector recognises the same device.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use parta_common::fsutil;
use parta_common::tls::{certs_from_pem, pem_encode};
use parta_protocol::{Certificate, DeviceId};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The device's private key (PKCS#8 PEM, 0600).
pub const KEY_FILE: &str = "device.key";
/// The device's certificate (PEM with comment lines, 0600).
pub const CERT_FILE: &str = "device.pem";
/// The collector's CA learned at enrollment with a join string.
pub const CA_FILE: &str = "collector-ca.pem";
/// The region's release public key pinned at enrollment (from the join string): the only key
/// whose signatures the device's updates may carry.
pub const RELEASE_KEY_FILE: &str = "release.pub";

/// SubjectPublicKeyInfo header of an ECDSA P-256 key (id-ecPublicKey, prime256v1); the
/// 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A credential file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Reading or writing failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file holds something else than the agent wrote.
    #[error("{}: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialError + '_ {
    move |error| CredentialError::Io { path: path.to_owned(), error }
}

/// The device's key pair.
pub struct DeviceKey {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(<private>)")
    }
}

impl DeviceKey {
    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &SystemRandom::new())
            .map_err(|e| format!("not an ECDSA P-256 key: {e}"))?;
        let mut public = P256_SPKI_PREFIX.to_vec();
        public.extend_from_slice(pair.public_key().as_ref());
        Ok(Self { pkcs8, public })
    }

    /// The public key as the collector certifies it: SubjectPublicKeyInfo, DER.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The private key for TLS.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()))
    }
}

/// The device's key from `state_dir`, made (and written, 0600) when there is none.
pub fn load_or_create_key(state_dir: &Path) -> Result<DeviceKey, CredentialError> {
    let path = state_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let der = PrivatePkcs8KeyDer::from_pem_slice(&bytes).map_err(|e| CredentialError::Damaged {
                path: path.clone(),
                reason: format!("no private key: {e}"),
            })?;
            DeviceKey::from_pkcs8(der.secret_pkcs8_der().to_vec())
                .map_err(|reason| CredentialError::Damaged { path, reason })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fsutil::create_private_dir(state_dir).map_err(io(state_dir))?;
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .map_err(|e| CredentialError::Io {
                    path: path.clone(),
                    error: std::io::Error::other(format!("cannot generate a key: {e}")),
                })?;
            let key = DeviceKey::from_pkcs8(doc.as_ref().to_vec())
                .map_err(|reason| CredentialError::Damaged { path: path.clone(), reason })?;
            fsutil::write_atomic(&path, pem_encode("PRIVATE KEY", doc.as_ref()).as_bytes(), true)
                .map_err(io(&path))?;
            tracing::info!(path = %path.display(), "created the device's key pair");
            Ok(key)
        }
        Err(e) => Err(io(&path)(e)),
    }
}

/// The certificate the collector issued, with what it says.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The device.
    pub device_id: DeviceId,
    /// Its school when the certificate was issued or last confirmed.
    pub school: String,
    /// The certificate, DER.
    pub cert: Vec<u8>,
    /// End of validity, ms since the epoch.
    pub not_after_ms: i64,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({} of {}, until {} ms)", self.device_id, self.school, self.not_after_ms)
    }
}

impl Credential {
    /// The certificate for TLS.
    pub fn certificate(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.cert.clone())
    }

    fn to_text(&self) -> String {
        format!(
            "# Parta device certificate, written by parta-agent (enroll, renewal); do not edit.\n\
             # device: {}\n# school: {}\n# not-after-ms: {}\n{}",
            self.device_id,
            self.school,
            self.not_after_ms,
            pem_encode("CERTIFICATE", &self.cert)
        )
    }

    fn from_text(text: &str) -> Result<Self, String> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("# ")?.strip_prefix(name)?.strip_prefix(": ").map(str::trim))
                .ok_or_else(|| format!("no `{name}` line"))
        };
        let device_id = field("device")?.parse().map_err(|e| format!("device: {e}"))?;
        let school = field("school")?.to_owned();
        let not_after_ms = field("not-after-ms")?.parse().map_err(|e| format!("not-after-ms: {e}"))?;
        let cert = certs_from_pem(text.as_bytes())?.into_iter().next().ok_or("no certificate")?.to_vec();
        Ok(Self { device_id, school, cert, not_after_ms })
    }

    /// Whether it has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        now_ms >= self.not_after_ms
    }
}

/// The credential in `state_dir`, `None` when the device never enrolled.
pub fn load(state_dir: &Path) -> Result<Option<Credential>, CredentialError> {
    let path = state_dir.join(CERT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Credential::from_text(&text).map(Some).map_err(|reason| CredentialError::Damaged { path, reason })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Writes the credential (atomically, 0600) and the device id that goes with it.
pub fn store(state_dir: &Path, c: &Credential) -> Result<(), CredentialError> {
    fsutil::create_private_dir(state_dir).map_err(io(state_dir))?;
    let path = state_dir.join(CERT_FILE);
    fsutil::write_atomic(&path, c.to_text().as_bytes(), true).map_err(io(&path))?;
    crate::identity::store(state_dir, c.device_id).map_err(|e| CredentialError::Io {
        path: state_dir.join(crate::identity::FILE),
        error: std::io::Error::other(e.to_string()),
    })
}

/// A renewed certificate of the same device.
pub fn renewed(current: &Credential, cert: &Certificate) -> Credential {
    Credential { cert: cert.der.clone(), not_after_ms: cert.not_after_ms, ..current.clone() }
}

/// Writes the collector's CA learned at enrollment (PEM, readable).
pub fn store_ca(path: &Path, der: &[u8]) -> Result<(), CredentialError> {
    fsutil::write_atomic(path, pem_encode("CERTIFICATE", der).as_bytes(), false).map_err(io(path))
}

/// Pins the region's release public key (written as `parta-release keygen` writes it).
pub fn store_release_key(path: &Path, public: &[u8; 32]) -> Result<(), CredentialError> {
    let text = format!("{}\n", parta_protocol::release::render_public_key(public));
    fsutil::write_atomic(path, text.as_bytes(), false).map_err(io(path))
}

/// The pinned release public key, if the device has one.
pub fn load_release_key(state_dir: &Path) -> Result<Option<[u8; 32]>, CredentialError> {
    let path = state_dir.join(RELEASE_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parta_protocol::release::parse_public_key(&text)
            .map(Some)
            .map_err(|reason| CredentialError::Damaged { path: path.clone(), reason }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// The device's key and current credential, shared by the uplink (which enrolls and renews)
/// and whoever shows the agent's state.
#[derive(Debug)]
pub struct Identity {
    /// Where the files are.
    pub state_dir: PathBuf,
    /// The device's key.
    pub key: DeviceKey,
    credential: std::sync::Mutex<Option<Credential>>,
}

impl Identity {
    /// Loads the key (making it on first use) and the credential, if any.
    pub fn load(state_dir: &Path) -> Result<Self, CredentialError> {
        let key = load_or_create_key(state_dir)?;
        let credential = load(state_dir)?;
        Ok(Self { state_dir: state_dir.to_owned(), key, credential: std::sync::Mutex::new(credential) })
    }

    /// The current credential.
    pub fn credential(&self) -> Option<Credential> {
        self.credential.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the credential in memory (the caller has stored it, or removed it).
    pub fn set(&self, c: Option<Credential>) {
        *self.credential.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = c;
    }
}

/// Removes the device's identity — key, certificate, id — to enroll as a new device; returns
/// the files removed.
pub fn forget(state_dir: &Path) -> Result<Vec<PathBuf>, CredentialError> {
    let mut removed = Vec::new();
    for name in [CERT_FILE, KEY_FILE, crate::identity::FILE] {
        let path = state_dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_key(dir.path()).unwrap();
        let b = load_or_create_key(dir.path()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.public_key().len(), 91);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        let err = load_or_create_key(dir.path()).unwrap_err().to_string();
        assert!(err.contains(KEY_FILE) && err.contains("no private key"), "{err}");
    }

    #[test]
    fn credential_round_trips_and_renews() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let c = Credential {
            device_id: DeviceId::random(),
            school: "74-0012".into(),
            cert: (0..300u16).map(|i| (i % 251) as u8).collect(),
            not_after_ms: 1_800_000_000_000,
        };
        store(dir.path(), &c).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(c.clone()));
        assert_eq!(crate::identity::load(dir.path()), Some(c.device_id));
        let r = renewed(&c, &Certificate { der: vec![1, 2, 3], not_after_ms: 1_900_000_000_000 });
        assert_eq!(
            (r.device_id, r.cert.as_slice(), r.not_after_ms),
            (c.device_id, &[1u8, 2, 3][..], 1_900_000_000_000)
        );
        assert!(r.expired(1_900_000_000_000) && !r.expired(1_899_999_999_999));
        std::fs::write(dir.path().join(CERT_FILE), "# device: x\n").unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains("device"));
        let removed = forget(dir.path()).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
    }
}
