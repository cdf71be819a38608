//! TLS material shared by both binaries: PEM loading and the crypto provider (ring).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// The file could not be read or parsed.
    #[error("{}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file holds no certificate.
    #[error("{}: no PEM certificate (BEGIN CERTIFICATE) found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
}

/// The crypto provider both binaries use. ring keeps builds free of cmake and the agent small.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// PEM text of one DER object: `-----BEGIN {label}-----`, base64 in lines of 64, `-----END …`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                // A 6-bit index is always below 64.
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// SHA-256 fingerprint of a DER object as people compare it: `sha256:` and lower-case hex.
pub fn fingerprint(sha256: &[u8; 32]) -> String {
    format!("sha256:{}", parta_protocol::join::hex(sha256))
}

/// Every certificate in PEM text (text around the blocks is ignored).
pub fn certs_from_pem(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))
}

/// Loads every certificate from a PEM file; at least one must be present.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let unreadable = |reason: String| PemError::Unreadable { path: path.to_owned(), reason };
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let certs = certs_from_pem(&bytes).map_err(unreadable)?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// Loads the first private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = std::fs::read(path)
        .map_err(|e| PemError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| PemError::Unreadable {
        path: path.to_owned(),
        reason: format!("no usable private key: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_with_comments_around() {
        for len in [0usize, 1, 2, 3, 4, 5, 47, 48, 49, 200] {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let text = format!("# a comment: kept out of the block\n{}", pem_encode("CERTIFICATE", &der));
            let back = certs_from_pem(text.as_bytes()).unwrap();
            if len == 0 {
                continue;
            }
            assert_eq!(back.len(), 1, "{len}");
            assert_eq!(back[0].as_ref(), &der[..], "{len}");
        }
        assert!(pem_encode("X", b"Man").contains("\nTWFu\n"));
        assert!(pem_encode("X", b"Ma").contains("\nTWE=\n"));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        let err = load_certs(&p).unwrap_err().to_string();
        assert!(err.contains("ca.pem") && err.contains("no PEM certificate"), "{err}");
        let err = load_certs(&dir.path().join("missing.pem")).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        assert!(load_private_key(&p).unwrap_err().to_string().contains("no usable private key"));
    }
}
