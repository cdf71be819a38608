//! Signed releases: the signature file (`FILE.sig`) `parta-release sign` writes next to an
//! artifact, and its verification against the release keys a device trusts.
//!
//! A signature file is a few lines of text, strictly ordered, each `key = value`:
//!
//! ```text
//! parta-release-signature 1
//! name = parta-agent
//! version = 0.2.0
//! target = x86_64-linux
//! size = 8561912
//! sha256 = 64 hex digits
//! key = 16 hex digits (the signing key's id)
//! signature = 128 hex digits (Ed25519)
//! ```
//!
//! The signature covers every line before `signature =` exactly as rendered (a domain-separated
//! message: the first line names the format), so the product, version, target, size and digest
//! are all signed. Parsing is sans-IO and refuses anything else — unknown, missing, repeated or
//! reordered keys, a value out of its alphabet, a file longer than [`SIG_MAX`] — with the line
//! and the reason. Verification says why an artifact is refused: [`Refusal`].

use std::fmt;

use sha2::{Digest as _, Sha256};

/// The most bytes a signature file may have.
pub const SIG_MAX: usize = 1024;

/// The first line of every signature file (format version 1).
pub const HEADER: &str = "parta-release-signature 1";

/// A release version, `MAJOR.MINOR.PATCH`; releases only move up. Serialized as its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl std::str::FromStr for ReleaseVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let num = |p: &str| -> Result<u32, String> {
            if p.is_empty()
                || p.len() > 6
                || !p.bytes().all(|b| b.is_ascii_digit())
                || (p.len() > 1 && p.starts_with('0'))
            {
                return Err(format!("{s:?} is not a version MAJOR.MINOR.PATCH (digits, no leading zeros)"));
            }
            p.parse().map_err(|_| format!("{s:?}: {p} is too large"))
        };
        match parts.as_slice() {
            [a, b, c] => Ok(Self { major: num(a)?, minor: num(b)?, patch: num(c)? }),
            _ => Err(format!("{s:?} is not a version MAJOR.MINOR.PATCH")),
        }
    }
}

impl TryFrom<String> for ReleaseVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ReleaseVersion> for String {
    fn from(v: ReleaseVersion) -> Self {
        v.to_string()
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The id of a release public key: the first 8 bytes of SHA-256 over a label and the key.
pub fn key_id(public: &[u8; 32]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(b"parta-release-key\n");
    h.update(public);
    let d = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// How a release public key is written (`release.pub`, the collector's configuration): this
/// prefix, then the 32-byte Ed25519 key as 64 lowercase hex digits.
pub const PUBLIC_KEY_PREFIX: &str = "parta-release-public-key 1 ";

/// A release public key as text.
pub fn render_public_key(public: &[u8; 32]) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", hex(public))
}

/// Reads a release public key written by [`render_public_key`] (surrounding whitespace allowed).
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    text.trim().strip_prefix(PUBLIC_KEY_PREFIX).and_then(unhex::<32>).ok_or_else(|| {
        format!("not a release public key: expected `{PUBLIC_KEY_PREFIX}` and 64 lowercase hex digits")
    })
}

/// A key id as text (16 hex digits).
pub fn key_id_text(public: &[u8; 32]) -> String {
    hex(&key_id(public))
}

/// What a signature file says about its artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The product (`parta-agent`).
    pub name: String,
    /// Its version.
    pub version: ReleaseVersion,
    /// The platform it runs on (`x86_64-linux`).
    pub target: String,
    /// The artifact's length in bytes.
    pub size: u64,
    /// The artifact's SHA-256.
    pub sha256: [u8; 32],
    /// The id of the key that signed it.
    pub key: [u8; 8],
    /// Ed25519 over [`Manifest::signed_text`].
    pub signature: [u8; 64],
}

/// Why a signature file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signature file, line {line}: {why}")]
pub struct ParseError {
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// Why an artifact is refused. The text is what devices report and `release status` shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No signature file came with it.
    #[error("unsigned: no signature file")]
    Unsigned,
    /// Bytes came for a release that was not offered and accepted.
    #[error("no release was offered and accepted for these bytes")]
    NotOffered,
    /// The signature file is not one.
    #[error("malformed {0}")]
    Malformed(#[from] ParseError),
    /// Signed by a key the device does not trust.
    #[error("signed by key {key}, which this device does not trust (it trusts {trusted})")]
    UnknownKey {
        /// The signature's key id.
        key: String,
        /// The ids the device trusts.
        trusted: String,
    },
    /// The signature does not match the file's contents (a forged or altered signature file).
    #[error("bad signature: the signature file was not signed by key {key}")]
    BadSignature {
        /// The key id it claims.
        key: String,
    },
    /// For another product or platform.
    #[error("for {got}, not {expected}")]
    WrongProduct {
        /// What the device runs.
        expected: String,
        /// What was offered.
        got: String,
    },
    /// Not newer than what runs.
    #[error("downgrade refused: {offered} is not newer than the running {running}")]
    NotNewer {
        /// The running version.
        running: ReleaseVersion,
        /// The offered one.
        offered: ReleaseVersion,
    },
    /// Shorter than signed.
    #[error("truncated: {got} of {expected} bytes")]
    Truncated {
        /// Signed length.
        expected: u64,
        /// Length received.
        got: u64,
    },
    /// Longer than signed.
    #[error("oversized: more than the {expected} bytes signed")]
    Oversized {
        /// Signed length.
        expected: u64,
    },
    /// The bytes are not the ones signed.
    #[error("altered: SHA-256 {got} is not the signed {expected}")]
    Altered {
        /// Signed digest (hex).
        expected: String,
        /// Digest of the bytes received (hex).
        got: String,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A name or target: 1–64 of `a-z 0-9 _ -`.
fn word_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

const KEYS: [&str; 7] = ["name", "version", "target", "size", "sha256", "key", "signature"];

impl Manifest {
    /// The text the signature covers: the header and every line before `signature`.
    pub fn signed_text(&self) -> String {
        format!(
            "{HEADER}\nname = {}\nversion = {}\ntarget = {}\nsize = {}\nsha256 = {}\nkey = {}\n",
            self.name,
            self.version,
            self.target,
            self.size,
            hex(&self.sha256),
            hex(&self.key)
        )
    }

    /// The manifest of an artifact of `size` bytes with SHA-256 `sha256`, signed with `key`
    /// (`parta-release sign`; the tests and fixtures sign with keys from fixed seeds).
    pub fn sign(
        name: &str,
        version: ReleaseVersion,
        target: &str,
        size: u64,
        sha256: [u8; 32],
        key: &ring::signature::Ed25519KeyPair,
    ) -> Self {
        use ring::signature::KeyPair as _;
        // An Ed25519 public key is 32 bytes and a signature 64: the copies cannot fail.
        let mut public = [0u8; 32];
        public.copy_from_slice(key.public_key().as_ref());
        let mut m = Self {
            name: name.to_owned(),
            version,
            target: target.to_owned(),
            size,
            sha256,
            key: key_id(&public),
            signature: [0; 64],
        };
        let signature = key.sign(m.signed_text().as_bytes());
        m.signature.copy_from_slice(signature.as_ref());
        m
    }

    /// The signature file.
    pub fn render(&self) -> String {
        format!("{}signature = {}\n", self.signed_text(), hex(&self.signature))
    }

    /// Reads a signature file, refusing anything but the exact format.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let whole = |why: String| ParseError { line: 0, why };
        if bytes.is_empty() {
            return Err(whole("empty".into()));
        }
        if bytes.len() > SIG_MAX {
            return Err(whole(format!("{} bytes, more than {SIG_MAX}", bytes.len())));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| whole("not UTF-8 text".into()))?;
        let text = text.strip_suffix('\n').ok_or_else(|| whole("does not end with a newline".into()))?;
        let mut lines = text.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(ParseError { line: 1, why: format!("the first line must be {HEADER:?}") });
        }
        let mut values = Vec::with_capacity(KEYS.len());
        for (i, key) in KEYS.iter().enumerate() {
            let line = i + 2;
            let l = lines.next().ok_or_else(|| ParseError { line, why: format!("missing `{key} = …`") })?;
            let v = l
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(" = "))
                .ok_or_else(|| ParseError { line, why: format!("expected `{key} = …`") })?;
            values.push((line, v));
        }
        if lines.next().is_some() {
            return Err(ParseError { line: KEYS.len() + 2, why: "unexpected line after `signature`".into() });
        }
        let bad =
            |idx: usize, why: &str| ParseError { line: values[idx].0, why: format!("{} {why}", KEYS[idx]) };
        let name = values[0].1;
        if !word_ok(name) {
            return Err(bad(0, "must be 1–64 of a-z, 0-9, _ and -"));
        }
        let version = values[1].1.parse().map_err(|e: String| bad(1, &e))?;
        let target = values[2].1;
        if !word_ok(target) {
            return Err(bad(2, "must be 1–64 of a-z, 0-9, _ and -"));
        }
        let size_text = values[3].1;
        let size: u64 = if !size_text.is_empty()
            && size_text.len() <= 12
            && size_text.bytes().all(|b| b.is_ascii_digit())
            && (size_text == "0" || !size_text.starts_with('0'))
        {
            size_text.parse().map_err(|_| bad(3, "is not a number"))?
        } else {
            return Err(bad(3, "must be a byte count (digits, no leading zeros)"));
        };
        let sha256 = unhex::<32>(values[4].1).ok_or_else(|| bad(4, "must be 64 lowercase hex digits"))?;
        let key = unhex::<8>(values[5].1).ok_or_else(|| bad(5, "must be 16 lowercase hex digits"))?;
        let signature = unhex::<64>(values[6].1).ok_or_else(|| bad(6, "must be 128 lowercase hex digits"))?;
        Ok(Self { name: name.to_owned(), version, target: target.to_owned(), size, sha256, key, signature })
    }

    /// Checks the signature against the keys the device trusts (Ed25519 public keys).
    pub fn verify_signature(&self, trusted: &[[u8; 32]]) -> Result<(), Refusal> {
        let Some(public) = trusted.iter().find(|k| key_id(k) == self.key) else {
            return Err(Refusal::UnknownKey {
                key: hex(&self.key),
                trusted: trusted.iter().map(|k| hex(&key_id(k))).collect::<Vec<_>>().join(", "),
            });
        };
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
            .verify(self.signed_text().as_bytes(), &self.signature)
            .map_err(|_| Refusal::BadSignature { key: hex(&self.key) })
    }

    /// Checks that this is the product and platform the device runs, and newer than `running`.
    pub fn check_offer(&self, name: &str, target: &str, running: ReleaseVersion) -> Result<(), Refusal> {
        if self.name != name || self.target != target {
            return Err(Refusal::WrongProduct {
                expected: format!("{name} {target}"),
                got: format!("{} {}", self.name, self.target),
            });
        }
        if self.version <= running {
            return Err(Refusal::NotNewer { running, offered: self.version });
        }
        Ok(())
    }

    /// Hashes the artifact as it arrives and checks it against the signed size and digest.
    pub fn checker(&self) -> ArtifactCheck {
        ArtifactCheck { expected_size: self.size, expected: self.sha256, seen: 0, hash: Sha256::new() }
    }
}

/// Why [`ArtifactCheck::check_reader`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadCheckError {
    /// The reader failed after `seen` bytes.
    #[error("reading failed after {seen} bytes: {source}")]
    Io {
        /// Bytes read and checked before the failure.
        seen: u64,
        /// The failure.
        source: std::io::Error,
    },
    /// The bytes are not the signed artifact.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// The artifact's bytes checked as they arrive (a download may resume: feed the bytes already
/// on disk first).
#[derive(Debug, Clone)]
pub struct ArtifactCheck {
    expected_size: u64,
    expected: [u8; 32],
    seen: u64,
    hash: Sha256,
}

impl ArtifactCheck {
    /// Feeds bytes; refuses as soon as there are more than signed.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        self.seen = self.seen.saturating_add(bytes.len() as u64);
        if self.seen > self.expected_size {
            return Err(Refusal::Oversized { expected: self.expected_size });
        }
        self.hash.update(bytes);
        Ok(())
    }

    /// Bytes fed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Feeds everything `reader` yields, in 64 KiB pieces (each also handed to `each`), then
    /// gives the verdict: the one loop for an artifact in a file, wherever it is checked.
    pub fn check_reader(
        mut self,
        mut reader: impl std::io::Read,
        mut each: impl FnMut(&[u8]),
    ) -> Result<(), ReadCheckError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ReadCheckError::Io { seen: self.seen, source }),
            };
            let piece = buf.get(..n).unwrap_or_default();
            self.update(piece)?;
            each(piece);
        }
        Ok(self.finish()?)
    }

    /// The verdict once every byte is in.
    pub fn finish(self) -> Result<(), Refusal> {
        if self.seen < self.expected_size {
            return Err(Refusal::Truncated { expected: self.expected_size, got: self.seen });
        }
        let got: [u8; 32] = self.hash.finalize().into();
        if got != self.expected {
            return Err(Refusal::Altered { expected: hex(&self.expected), got: hex(&got) });
        }
        Ok(())
    }
}

/// Keys from fixed seeds, for this module's tests and [`crate::update`]'s.
/// The marker before the version a build carries in its version slot (see [`stamp`]).
pub const STAMP_MARKER: &[u8] = b"PARTA-VERSION-SLOT:";
/// Bytes of the version slot after the marker: the version, then NUL bytes.
pub const STAMP_LEN: usize = 32;

/// A version slot holding `version` (for the binary's `static`).
pub const fn stamp_slot(version: &str) -> [u8; STAMP_MARKER.len() + STAMP_LEN] {
    let mut slot = [0u8; STAMP_MARKER.len() + STAMP_LEN];
    let mut i = 0;
    while i < STAMP_MARKER.len() {
        slot[i] = STAMP_MARKER[i];
        i += 1;
    }
    let v = version.as_bytes();
    let mut j = 0;
    while j < v.len() && j < STAMP_LEN {
        slot[STAMP_MARKER.len() + j] = v[j];
        j += 1;
    }
    slot
}

/// The version in a slot's bytes after the marker (up to the first NUL).
pub fn slot_version(after_marker: &[u8]) -> Option<&str> {
    let bytes = after_marker.get(..STAMP_LEN)?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(STAMP_LEN);
    std::str::from_utf8(bytes.get(..end)?).ok()
}

/// Where the slot's version starts: the one place the marker is followed by a version and NUL
/// padding (the marker's own text may appear elsewhere in a binary, followed by other data).
fn slot_offset(binary: &[u8]) -> Result<usize, String> {
    let mut found = binary
        .windows(STAMP_MARKER.len())
        .enumerate()
        .filter(|(_, w)| *w == STAMP_MARKER)
        .map(|(i, _)| i + STAMP_MARKER.len())
        .filter(|&at| {
            let Some(bytes) = binary.get(at..at + STAMP_LEN) else { return false };
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(STAMP_LEN);
            bytes[end..].iter().all(|&b| b == 0)
                && slot_version(bytes).is_some_and(|t| t.parse::<ReleaseVersion>().is_ok())
        });
    let first = found.next().ok_or("no version slot: not a Parta build")?;
    if found.next().is_some() {
        return Err("more than one version slot".into());
    }
    Ok(first)
}

/// The version a build carries (what it will say it runs).
pub fn read_stamp(binary: &[u8]) -> Result<ReleaseVersion, String> {
    let at = slot_offset(binary)?;
    let text = binary.get(at..).and_then(slot_version).ok_or("the version slot is not text")?;
    text.parse().map_err(|e| format!("version slot {text:?}: {e}"))
}

/// Stamps a build with the version it is released as: a region builds once and releases the
/// same code under the version it signs, so the version a device reports is the one signed.
pub fn stamp(binary: &mut [u8], version: ReleaseVersion) -> Result<(), String> {
    let at = slot_offset(binary)?;
    let text = version.to_string();
    let slot = binary.get_mut(at..at + STAMP_LEN).ok_or("the version slot is cut off")?;
    slot.fill(0);
    slot.get_mut(..text.len()).ok_or("version too long for the slot")?.copy_from_slice(text.as_bytes());
    Ok(())
}

#[cfg(test)]
pub(crate) mod testkeys {
    #![allow(clippy::unwrap_used)]
    use ring::signature::KeyPair as _;

    /// The key pair of a seed.
    pub(crate) fn keypair(seed: u8) -> ring::signature::Ed25519KeyPair {
        ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
    }

    /// Its public key.
    pub(crate) fn public(k: &ring::signature::Ed25519KeyPair) -> [u8; 32] {
        k.public_key().as_ref().try_into().unwrap()
    }
}

#[cfg(test)]
mod stamp_tests {
    use super::*;

    #[test]
    fn a_build_is_stamped_with_its_release_version_and_read_back() {
        let mut bin = b"ELF...".to_vec();
        bin.extend_from_slice(&stamp_slot("0.1.0"));
        bin.extend_from_slice(b"...rest");
        assert_eq!(read_stamp(&bin).unwrap().to_string(), "0.1.0");
        stamp(&mut bin, "0.12.345".parse().unwrap()).unwrap();
        assert_eq!(read_stamp(&bin).unwrap().to_string(), "0.12.345");
        assert!(bin.ends_with(b"...rest"));
        assert!(read_stamp(b"no slot here").unwrap_err().contains("not a Parta build"));
        let mut two = bin.clone();
        two.extend_from_slice(&stamp_slot("0.1.0"));
        assert!(stamp(&mut two, "0.2.0".parse().unwrap()).unwrap_err().contains("more than one"));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::testkeys::{keypair, public};
    use super::*;

    fn signed(k: &ring::signature::Ed25519KeyPair, artifact: &[u8], version: &str) -> Manifest {
        let digest = Sha256::digest(artifact).into();
        Manifest::sign(
            "parta-agent",
            version.parse().unwrap(),
            "x86_64-linux",
            artifact.len() as u64,
            digest,
            k,
        )
    }

    fn check(m: &Manifest, artifact: &[u8]) -> Result<(), Refusal> {
        let mut c = m.checker();
        c.update(artifact)?;
        c.finish()
    }

    #[test]
    fn a_signed_artifact_passes_every_check_and_round_trips() {
        let k = keypair(7);
        let art = b"the agent binary".repeat(100);
        let m = signed(&k, &art, "0.2.0");
        let text = m.render();
        let back = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(back, m);
        back.verify_signature(&[public(&keypair(1)), public(&k)]).unwrap();
        back.check_offer("parta-agent", "x86_64-linux", "0.1.9".parse().unwrap()).unwrap();
        check(&back, &art).unwrap();
        // Resumed: the bytes in two parts give the same verdict.
        let mut c = back.checker();
        c.update(&art[..700]).unwrap();
        c.update(&art[700..]).unwrap();
        c.finish().unwrap();
    }

    #[test]
    fn each_kind_of_bad_artifact_is_refused_with_its_reason() {
        let k = keypair(7);
        let art = b"0123456789".repeat(50);
        let m = signed(&k, &art, "0.2.0");
        // Another key.
        let e = m.verify_signature(&[public(&keypair(8))]).unwrap_err();
        assert!(matches!(e, Refusal::UnknownKey { .. }) && e.to_string().contains("does not trust"), "{e}");
        // A signature file edited after signing (a bigger size, the same signature).
        let mut forged = m.clone();
        forged.size += 1;
        assert!(matches!(forged.verify_signature(&[public(&k)]), Err(Refusal::BadSignature { .. })));
        // A signature by the right key id over other bytes.
        let mut wrong = m.clone();
        wrong.signature[0] ^= 1;
        assert!(matches!(wrong.verify_signature(&[public(&k)]), Err(Refusal::BadSignature { .. })));
        // Truncated, bit-flipped, oversized.
        assert_eq!(check(&m, &art[..499]), Err(Refusal::Truncated { expected: 500, got: 499 }));
        let mut flipped = art.clone();
        flipped[123] ^= 0x10;
        assert!(matches!(check(&m, &flipped), Err(Refusal::Altered { .. })));
        let mut longer = art.clone();
        longer.push(b'x');
        assert_eq!(check(&m, &longer), Err(Refusal::Oversized { expected: 500 }));
        // Older, the same, another product.
        let run = |v: &str| m.check_offer("parta-agent", "x86_64-linux", v.parse().unwrap());
        assert!(matches!(run("0.2.0"), Err(Refusal::NotNewer { .. })));
        let e = run("0.10.0").unwrap_err();
        assert!(
            e.to_string().contains("downgrade refused: 0.2.0 is not newer than the running 0.10.0"),
            "{e}"
        );
        assert!(matches!(
            m.check_offer("parta-collector", "x86_64-linux", "0.1.0".parse().unwrap()),
            Err(Refusal::WrongProduct { .. })
        ));
    }

    #[test]
    fn malformed_signature_files_name_the_line_and_the_reason() {
        let good = signed(&keypair(3), b"x", "1.0.0").render();
        let cases: Vec<(String, usize, &str)> = vec![
            (String::new(), 0, "empty"),
            ("x".repeat(SIG_MAX + 1), 0, "more than"),
            (good.trim_end().to_owned(), 0, "newline"),
            (good.replacen("signature 1", "signature 2", 1), 1, "first line"),
            (good.replacen("name = parta-agent", "name = Parta", 1), 2, "name must be"),
            (good.replacen("version = 1.0.0", "version = 1.0", 1), 3, "MAJOR.MINOR.PATCH"),
            (good.replacen("version = 1.0.0", "version = 01.0.0", 1), 3, "leading zeros"),
            (good.replacen("size = 1", "size = -1", 1), 5, "byte count"),
            (good.replacen("sha256 = ", "sha256 = A", 1), 6, "hex"),
            (good.replacen("key = ", "kee = ", 1), 7, "expected `key"),
            (format!("{good}extra\n"), 9, "unexpected line"),
            (good.replacen("\nsize = 1\n", "\n", 1), 5, "expected `size"),
        ];
        for (text, line, why) in cases {
            let e = Manifest::parse(text.as_bytes()).unwrap_err();
            assert_eq!(e.line, line, "{e} for {text:?}");
            assert!(e.to_string().contains(why), "{e} lacks {why:?}");
        }
    }

    #[test]
    fn versions_order_numerically() {
        let v = |s: &str| s.parse::<ReleaseVersion>().unwrap();
        assert!(v("0.10.0") > v("0.9.9") && v("1.0.0") > v("0.99.99") && v("0.1.1") > v("0.1.0"));
        for bad in ["", "1", "1.2", "1.2.3.4", "1.2.x", "1.2.-3", "1234567.0.0", " 1.2.3"] {
            assert!(bad.parse::<ReleaseVersion>().is_err(), "{bad:?}");
        }
    }
}
