//! SNMP secrets in policies (`community`, `auth_pass`, `priv_pass`, wherever they appear):
//! sealed with AES-256-GCM under a key in the collector's data directory (`policy.key`, 0600)
//! before a policy is stored, opened only to build the document sent to a device, and shown to
//! people as `<secret>` — they are write-only.

use std::convert::Infallible;
use std::path::Path;

use rand::RngExt as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use toml::{Table, Value};

use parta_agent::policy::SECRET_KEYS;
/// What people see instead of a secret.
pub const REDACTED: &str = "<secret>";
/// Prefix of a sealed value.
const SEALED: &str = "enc:v1:";
/// Bound into every sealed value: a sealed policy secret opens only as one.
const AAD: &[u8] = b"parta policy secret v1";

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file could not be read or made.
    #[error("policy key {path}: {error}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A stored value is not sealed by this key (another collector's key, or damaged).
    #[error(
        "{key}: the stored secret does not open with this collector's policy.key (copied from another collector, or damaged)"
    )]
    Open {
        /// Dotted key.
        key: String,
    },
}

/// The key policies' secrets are sealed with.
pub struct PolicyKey(LessSafeKey);

impl std::fmt::Debug for PolicyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyKey(<secret>)")
    }
}

impl PolicyKey {
    /// Loads `dir/policy.key`, making it on first use. Several collectors of a region share
    /// it by copying, like the CA.
    pub fn load(dir: &Path) -> Result<Self, SecretError> {
        let path = dir.join("policy.key");
        let bytes = parta_common::fsutil::load_or_create_key(
            &path,
            || rand::rng().random(),
            "the SNMP secrets of stored policies can no longer be read",
        )
        .map_err(|error| SecretError::Key { path: path.display().to_string(), error })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        // A 32-byte key is what AES-256-GCM takes: this cannot fail.
        #[allow(clippy::expect_used)]
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256-GCM takes a 32-byte key");
        Self(LessSafeKey::new(key))
    }

    fn seal_one(&self, plain: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        let mut data = plain.as_bytes().to_vec();
        // Sealing fails only for inputs beyond GCM's 64 GiB limit.
        #[allow(clippy::expect_used)]
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut data)
            .expect("a policy secret is far below GCM's limit");
        let mut out = nonce.to_vec();
        out.extend(data);
        format!("{SEALED}{}", hex::encode(out))
    }

    fn open_one(&self, sealed: &str) -> Option<String> {
        let raw = hex::decode(sealed.strip_prefix(SEALED)?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(AAD), &mut data).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }

    /// The document with every secret sealed (already sealed ones stay as they are).
    pub fn seal(&self, doc: &Table) -> Table {
        let Ok(sealed) = map_secrets::<Infallible>(doc, "", &mut |_, v| {
            Ok(if v.starts_with(SEALED) { v.to_owned() } else { self.seal_one(v) })
        });
        sealed
    }

    /// The document with every secret opened, for the device it is sent to.
    pub fn open(&self, doc: &Table) -> Result<Table, SecretError> {
        map_secrets(doc, "", &mut |key, v| match v.strip_prefix(SEALED) {
            Some(_) => self.open_one(v).ok_or_else(|| SecretError::Open { key: key.to_owned() }),
            None => Ok(v.to_owned()),
        })
    }
}

/// The document with every secret replaced by [`REDACTED`], for people.
pub fn redact(doc: &Table) -> Table {
    let Ok(redacted) = map_secrets::<Infallible>(doc, "", &mut |_, _| Ok(REDACTED.to_owned()));
    redacted
}

fn map_secrets<E>(
    doc: &Table,
    prefix: &str,
    f: &mut impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<Table, E> {
    let mut out = Table::new();
    for (k, v) in doc {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let mapped = match v {
            Value::String(s) if SECRET_KEYS.contains(&k.as_str()) => Value::String(f(&path, s)?),
            Value::Table(t) => Value::Table(map_secrets(t, &path, f)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::Table(t) => map_secrets(t, &format!("{path}[{i}]"), f).map(Value::Table),
                        other => Ok(other.clone()),
                    })
                    .collect::<Result<_, E>>()?,
            ),
            other => other.clone(),
        };
        out.insert(k.clone(), mapped);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Table {
        toml::from_str(
            "[snmp]\ncommunity = \"region-ro\"\n[[snmp.target]]\naddress = \"10.0.0.2\"\ncommunity = \"school-ro\"\n\
             [[snmp.target]]\naddress = \"10.0.0.3\"\nuser = \"parta\"\nauth_pass = \"auth-pass-1\"\npriv_pass = \"priv-pass-1\"\n",
        )
        .unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let key = PolicyKey::load(dir.path()).unwrap();
        let sealed = key.seal(&doc());
        let text = toml::to_string(&sealed).unwrap();
        for secret in ["region-ro", "school-ro", "auth-pass-1", "priv-pass-1"] {
            assert!(!text.contains(secret), "{secret} in clear: {text}");
        }
        assert!(text.contains("address = \"10.0.0.2\"") && text.contains("user = \"parta\""));
        assert_eq!(key.seal(&sealed), sealed, "sealing twice changes nothing");
        // The same key from the file opens them; another does not, naming the key.
        let again = PolicyKey::load(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), doc());
        let other = PolicyKey::from_bytes(&[7; 32]);
        let e = other.open(&sealed).unwrap_err().to_string();
        assert!(e.starts_with("snmp.community") || e.starts_with("snmp.target[0].community"), "{e}");
        let shown = toml::to_string(&redact(&sealed)).unwrap();
        assert_eq!(shown.matches(REDACTED).count(), 4, "{shown}");
        assert_eq!(std::fs::metadata(dir.path().join("policy.key")).map(|m| m.len()).unwrap(), 32);
    }

    #[test]
    fn a_damaged_value_is_an_error_not_a_panic() {
        let key = PolicyKey::from_bytes(&[1; 32]);
        let mut d = Table::new();
        d.insert("community".into(), Value::String(format!("{SEALED}zz")));
        assert!(key.open(&d).is_err());
        d.insert("community".into(), Value::String(format!("{SEALED}00")));
        assert!(key.open(&d).is_err());
    }
}
