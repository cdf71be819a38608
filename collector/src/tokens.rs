//! Enrollment tokens: per-school secrets an agent presents once, to enroll (see [`crate::fleet`]).
//!
//! A token is `pt1_` followed by 40 hex digits (160 random bits). Only its SHA-256 is stored;
//! the token id shown to administrators is the first 12 hex digits of that hash. A token may be
//! limited to a number of devices and an expiry date. The collector checks tokens against an
//! in-memory view of the `enroll_tokens` table (see [`crate::refresh`]), so a token created with
//! `parta-collector token create` works at once and a revocation takes effect within seconds. If
//! ClickHouse is unreachable, known tokens stay in force and unknown ones get a transient
//! refusal, never a permanent one. Revoking or expiring a token stops new enrollments; devices
//! it enrolled keep their own credentials.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Instant;

use parta_protocol::RejectReason;
use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::refresh::MissRefresh;
use crate::storage::Store;
use crate::storage::queries::TokenRow;

/// A freshly generated token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The secret, shown once.
    pub token: String,
    /// Its row, for storage.
    pub row: TokenRow,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Devices it may enroll; 0: any number.
    pub max_uses: u32,
    /// Seconds since the epoch after which it enrolls nobody; 0: never.
    pub expires_at: u32,
}

/// Generates a token for a school.
pub fn generate(school: &str, comment: &str, limits: Limits, now: u32, version: u64) -> NewToken {
    let bytes: [u8; 20] = rand::rng().random();
    let token = format!("pt1_{}", hex::encode(bytes));
    let sha = hash(&token);
    NewToken {
        row: TokenRow {
            token_id: sha[..12].to_owned(),
            token_sha256: sha,
            school_id: school.to_owned(),
            comment: comment.to_owned(),
            created_at: now,
            revoked: 0,
            max_uses: limits.max_uses,
            expires_at: limits.expires_at,
            version,
        },
        token,
    }
}

/// SHA-256 of a token, hex.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A valid token: whose it is and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Token id (12 hex digits of its hash).
    pub id: String,
    /// The school it enrolls devices into.
    pub school: String,
    /// Its limits.
    pub limits: Limits,
}

#[derive(Debug, Clone)]
struct Entry {
    info: TokenInfo,
    revoked: bool,
}

/// In-memory view of the token table.
#[derive(Debug, Default)]
pub struct TokenCache {
    by_hash: RwLock<HashMap<String, Entry>>,
    refresh: MissRefresh,
}

impl TokenCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the cache with the table's current content.
    pub async fn refresh(&self, store: &Store) -> Result<usize, crate::storage::StoreError> {
        let rows = store.tokens().await?;
        let map: HashMap<String, Entry> = rows
            .into_iter()
            .map(|r| {
                let info = TokenInfo {
                    id: r.token_id,
                    school: r.school_id,
                    limits: Limits { max_uses: r.max_uses, expires_at: r.expires_at },
                };
                (r.token_sha256, Entry { info, revoked: r.revoked != 0 })
            })
            .collect();
        let n = map.len();
        *self.by_hash.write().unwrap_or_else(std::sync::PoisonError::into_inner) = map;
        self.refresh.refreshed();
        Ok(n)
    }

    /// Checks a token against the cache at `now` (seconds since the epoch). Uses are counted by
    /// the enrollment itself, which knows how many devices a token enrolled.
    pub fn check_cached(&self, token: &str, now: u32) -> Result<TokenInfo, RejectReason> {
        let map = self.by_hash.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&hash(token)) {
            None => Err(RejectReason::UnknownToken),
            Some(e) if e.revoked => Err(RejectReason::RevokedToken),
            Some(e) if e.info.limits.expires_at != 0 && now >= e.info.limits.expires_at => {
                Err(RejectReason::TokenExpired)
            }
            Some(e) => Ok(e.info.clone()),
        }
    }

    /// Checks a token. An unknown token is looked up again in a cache refreshed after this call
    /// began, so tokens created a moment ago are accepted. When that refresh fails the answer is
    /// [`RejectReason::Internal`] (retry later), not a permanent refusal.
    pub async fn check(&self, store: &Store, token: &str, now: u32) -> Result<TokenInfo, RejectReason> {
        match self.check_cached(token, now) {
            Err(RejectReason::UnknownToken) => {
                let asked = Instant::now();
                let refreshed =
                    self.refresh.after_miss(asked, || async { self.refresh(store).await.map(drop) }).await;
                if let Err(e) = refreshed {
                    tracing::warn!(error = %e, "cannot refresh enrollment tokens to check an unknown token");
                    return Err(RejectReason::Internal);
                }
                self.check_cached(token, now)
            }
            other => other,
        }
    }

    /// Installs entries directly (tests).
    #[cfg(test)]
    fn insert(&self, token: &str, school: &str, revoked: bool, limits: Limits) {
        let info = TokenInfo { id: hash(token)[..12].to_owned(), school: school.into(), limits };
        self.by_hash.write().unwrap().insert(hash(token), Entry { info, revoked });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_distinct_and_hash_to_their_id() {
        let a = generate("74-0012", "", Limits::default(), 0, 1);
        let b = generate("74-0012", "", Limits::default(), 0, 1);
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with("pt1_") && a.token.len() == 44);
        assert_eq!(a.row.token_sha256, hash(&a.token));
        assert_eq!(a.row.token_id, &a.row.token_sha256[..12]);
        assert!(!a.row.token_sha256.contains(&a.token[4..]));
    }

    #[test]
    fn check_distinguishes_reasons() {
        let c = TokenCache::new();
        c.insert("good", "74-0012", false, Limits::default());
        c.insert("old", "74-0012", true, Limits::default());
        c.insert("dated", "74-0012", false, Limits { max_uses: 0, expires_at: 1000 });
        assert_eq!(c.check_cached("good", 5000).unwrap().school, "74-0012");
        assert_eq!(c.check_cached("old", 5000), Err(RejectReason::RevokedToken));
        assert_eq!(c.check_cached("nope", 5000), Err(RejectReason::UnknownToken));
        assert_eq!(c.check_cached("dated", 999).unwrap().limits.expires_at, 1000);
        assert_eq!(c.check_cached("dated", 1000), Err(RejectReason::TokenExpired));
    }
}
