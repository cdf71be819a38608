//! The join string: everything an agent needs to enroll, in one line an administrator can paste
//! into a deployment script.
//!
//! ```text
//! parta://HOST[:PORT][,HOST[:PORT]…]/SCHOOL?token=TOKEN&ca=sha256:HEX[&release=ed25519:HEX]
//! ```
//!
//! `HOST` is a name or an address (IPv6 in brackets), `PORT` defaults to 4433; `SCHOOL` is the
//! school id; `TOKEN` the school's enrollment token; `HEX` the SHA-256 of the collector CA's
//! certificate (DER), 64 hex digits, colons allowed. The agent trusts the collector only if the
//! CA it presents has that fingerprint, so no CA file needs copying. `release`, when the region
//! signs releases, is its release public key (Ed25519, 64 hex digits): the device pins it at
//! enrollment and installs only releases signed by it.

use std::fmt;

use crate::validate::{self, MAX_TOKEN};

/// Scheme of a join string.
pub const SCHEME: &str = "parta://";
/// Longest join string accepted, in bytes.
pub const MAX_JOIN_LEN: usize = 2048;
/// Most collector addresses in one join string.
pub const MAX_COLLECTORS: usize = 8;

/// A parsed join string.
#[derive(Clone, PartialEq, Eq)]
pub struct Join {
    /// Collector addresses, `host[:port]` as written, in the order to try.
    pub collectors: Vec<String>,
    /// School id.
    pub school: String,
    /// Enrollment token.
    pub token: String,
    /// SHA-256 of the collector CA certificate's DER.
    pub ca_sha256: [u8; 32],
    /// The region's release public key (Ed25519), pinned at enrollment.
    pub release_key: Option<[u8; 32]>,
}

impl fmt::Debug for Join {
    // The token is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("collectors", &self.collectors)
            .field("school", &self.school)
            .field("token", &"<redacted>")
            .field("ca_sha256", &hex(&self.ca_sha256))
            .field("release_key", &self.release_key.as_ref().map(|k| hex(k)))
            .finish()
    }
}

impl fmt::Display for Join {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}/{}?token={}&ca=sha256:{}",
            self.collectors.join(","),
            self.school,
            self.token,
            hex(&self.ca_sha256)
        )?;
        if let Some(k) = &self.release_key {
            write!(f, "&release=ed25519:{}", hex(k))?;
        }
        Ok(())
    }
}

/// Why a join string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// It does not start with `parta://`.
    #[error("a join string starts with {SCHEME} (as printed by `parta-collector token create`)")]
    Scheme,
    /// It is longer than [`MAX_JOIN_LEN`].
    #[error("a join string is at most {MAX_JOIN_LEN} bytes")]
    TooLong,
    /// A part is missing or malformed.
    #[error("{part}: {reason}")]
    Part {
        /// Which part (`collector address`, `school`, `token`, `ca`, …).
        part: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn part(part: &'static str, reason: impl Into<String>) -> JoinError {
    JoinError::Part { part, reason: reason.into() }
}

impl std::str::FromStr for Join {
    type Err = JoinError;

    fn from_str(text: &str) -> Result<Self, JoinError> {
        let text = text.trim();
        if text.len() > MAX_JOIN_LEN {
            return Err(JoinError::TooLong);
        }
        let rest = text.strip_prefix(SCHEME).ok_or(JoinError::Scheme)?;
        let (authority, rest) =
            rest.split_once('/').ok_or_else(|| part("school", "missing after the collector addresses"))?;
        let (school, query) = rest.split_once('?').ok_or_else(|| part("token", "missing"))?;
        let collectors: Vec<String> = authority.split(',').map(str::to_owned).collect();
        if collectors.len() > MAX_COLLECTORS {
            return Err(part("collector address", format!("at most {MAX_COLLECTORS}")));
        }
        for c in &collectors {
            check_address(c)?;
        }
        validate::validate_school_id(school).map_err(|e| part("school", e.to_string()))?;
        let (mut token, mut ca, mut release) = (None, None, None);
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "token" => &mut token,
                "ca" => &mut ca,
                "release" => &mut release,
                other => {
                    return Err(part("parameter", format!("unknown parameter {:?}", truncated(other))));
                }
            };
            if slot.replace(value).is_some() {
                return Err(part("parameter", format!("{key} given twice")));
            }
        }
        let token = token.ok_or_else(|| part("token", "missing"))?;
        if token.is_empty() || token.len() > MAX_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(part("token", format!("1–{MAX_TOKEN} printable characters")));
        }
        let ca = ca.ok_or_else(|| part("ca", "missing: the CA fingerprint, sha256:HEX"))?;
        let ca_sha256 = parse_fingerprint(ca).map_err(|r| part("ca", r))?;
        let release_key = release
            .map(|r| {
                r.strip_prefix("ed25519:")
                    .and_then(|h| parse_fingerprint(&format!("sha256:{h}")).ok())
                    .filter(|_| r.len() == "ed25519:".len() + 64)
                    .ok_or_else(|| {
                        part("release", "expected ed25519: and 64 hex digits (the release public key)")
                    })
            })
            .transpose()?;
        Ok(Self { collectors, school: school.to_owned(), token: token.to_owned(), ca_sha256, release_key })
    }
}

fn check_address(c: &str) -> Result<(), JoinError> {
    let ok = !c.is_empty()
        && c.len() <= 255
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'));
    if ok { Ok(()) } else { Err(part("collector address", format!("{:?} is not host[:port]", truncated(c)))) }
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Parses `sha256:HEX` (64 hex digits, colons between bytes allowed, any case).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hexpart = text.strip_prefix("sha256:").ok_or("expected sha256:HEX")?;
    let digits: Vec<u8> = hexpart.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return Err(format!("expected 64 hex digits, found {}", digits.len()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let nib =
            |b: u8| (b as char).to_digit(16).ok_or_else(|| format!("{:?} is not a hex digit", b as char));
        let (hi, lo) = (nib(pair[0])?, nib(pair[1])?);
        // Two hex digits make a byte: at most 255.
        out[i] = u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX);
    }
    Ok(out)
}

/// Lower-case hex, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Join {
        Join {
            collectors: vec!["parta.edu74.ru:4433".into(), "[2001:db8::5]:4433".into(), "10.0.0.5".into()],
            school: "74-0012".into(),
            token: "pt1_0123456789abcdef0123456789abcdef01234567".into(),
            ca_sha256: [0xab; 32],
            release_key: None,
        }
    }

    #[test]
    fn round_trip() {
        let j = sample();
        let text = j.to_string();
        assert!(
            text.starts_with("parta://parta.edu74.ru:4433,[2001:db8::5]:4433,10.0.0.5/74-0012?token=pt1_")
        );
        assert_eq!(text.parse::<Join>().unwrap(), j);
        assert!(!format!("{j:?}").contains("pt1_"));
        let with_key = Join { release_key: Some([0x5c; 32]), ..j };
        let text = with_key.to_string();
        assert!(text.ends_with(&format!("&release=ed25519:{}", "5c".repeat(32))), "{text}");
        assert_eq!(text.parse::<Join>().unwrap(), with_key);
    }

    #[test]
    fn fingerprints_with_colons_and_capitals() {
        let colons = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
        assert_eq!(parse_fingerprint(&format!("sha256:{colons}")).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("sha1:abcd").is_err());
        assert!(parse_fingerprint(&format!("sha256:{}", "g".repeat(64))).unwrap_err().contains("hex"));
    }

    #[test]
    fn errors_name_the_part() {
        let bad = |s: &str| s.parse::<Join>().unwrap_err().to_string();
        assert!(bad("https://x/1?token=a&ca=sha256:00").contains("parta://"));
        assert!(bad("parta://x").starts_with("school:"));
        assert!(bad("parta://x/шк?token=a").starts_with("school:"));
        assert!(bad("parta://x/1?ca=sha256:00").starts_with("token:"));
        assert!(bad("parta://x/1?token=a").starts_with("ca:"));
        assert!(bad("parta://x/1?token=a&ca=sha256:00").starts_with("ca: expected 64"));
        assert!(bad("parta://x y/1?token=a").starts_with("collector address:"));
        assert!(bad("parta://,/1?token=a").starts_with("collector address:"));
        assert!(bad("parta://x/1?token=a&token=b").contains("twice"));
        assert!(bad("parta://x/1?token=a&foo=1").contains("unknown parameter"));
        let ca = format!("ca=sha256:{}", "0".repeat(64));
        assert!(bad(&format!("parta://x/1?token=a&{ca}&release=ed25519:00")).starts_with("release:"));
        assert!(bad(&format!("parta://x/1?token=a&{ca}&release={}", "0".repeat(64))).starts_with("release:"));
        let colons = (0..32).map(|_| "00").collect::<Vec<_>>().join(":");
        assert!(bad(&format!("parta://x/1?token=a&{ca}&release=ed25519:{colons}")).starts_with("release:"));
        assert_eq!(bad(&"x".repeat(MAX_JOIN_LEN + 1)), JoinError::TooLong.to_string());
    }
}
