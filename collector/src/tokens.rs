//! Enrollment tokens: per-school secrets agents present in `Hello`.
//!
//! A token is `pt1_` followed by 40 hex digits (160 random bits). Only its SHA-256 is stored;
//! the token id shown to administrators is the first 12 hex digits of that hash. The collector
//! checks tokens against an in-memory cache of the `enroll_tokens` table, refreshed every few
//! seconds, and refreshed before an unknown token is refused — so a token created with
//! `parta-collector token create` works immediately — with concurrent misses sharing one refresh
//! and at most one refresh per second, so a flood of bad tokens cannot flood ClickHouse. A
//! revocation takes effect within [`REFRESH_EVERY`]. If ClickHouse is unreachable, known tokens
//! stay in force and unknown ones get a transient refusal, never a permanent one.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use parta_protocol::RejectReason;
use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::storage::Store;
use crate::storage::queries::TokenRow;

/// How often the cache is refreshed in the background.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// Least time between refreshes triggered by unknown tokens (a flood of bad tokens must not
/// become a flood of ClickHouse queries).
const MISS_REFRESH_MIN: Duration = Duration::from_secs(1);

/// A freshly generated token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The secret, shown once.
    pub token: String,
    /// Its row, for storage.
    pub row: TokenRow,
}

/// Generates a token for a school.
pub fn generate(school: &str, comment: &str, now: u32, version: u64) -> NewToken {
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
            version,
        },
        token,
    }
}

/// SHA-256 of a token, hex.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Debug, Clone)]
struct Entry {
    school: String,
    revoked: bool,
}

/// In-memory view of the token table.
#[derive(Debug)]
pub struct TokenCache {
    by_hash: RwLock<HashMap<String, Entry>>,
    last_refresh: std::sync::Mutex<Option<Instant>>,
    /// Serialises refreshes triggered by unknown tokens.
    miss_refresh: tokio::sync::Mutex<()>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            by_hash: RwLock::new(HashMap::new()),
            last_refresh: std::sync::Mutex::new(None),
            miss_refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Replaces the cache with the table's current content.
    pub async fn refresh(&self, store: &Store) -> Result<usize, crate::storage::StoreError> {
        let rows = store.tokens().await?;
        let map: HashMap<String, Entry> = rows
            .into_iter()
            .map(|r| (r.token_sha256, Entry { school: r.school_id, revoked: r.revoked != 0 }))
            .collect();
        let n = map.len();
        *self.by_hash.write().unwrap_or_else(std::sync::PoisonError::into_inner) = map;
        *self.last_refresh.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        Ok(n)
    }

    /// Checks a token for a school against the cache.
    pub fn check_cached(&self, token: &str, school: &str) -> Result<(), RejectReason> {
        let map = self.by_hash.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&hash(token)) {
            None => Err(RejectReason::UnknownToken),
            Some(e) if e.revoked => Err(RejectReason::RevokedToken),
            Some(e) if e.school != school => Err(RejectReason::SchoolMismatch),
            Some(_) => Ok(()),
        }
    }

    /// Checks a token. An unknown token is looked up again in a cache refreshed after this call
    /// began, so tokens created a moment ago are accepted. When that refresh fails the answer is
    /// [`RejectReason::Internal`] (retry later), not a permanent refusal.
    pub async fn check(&self, store: &Store, token: &str, school: &str) -> Result<(), RejectReason> {
        match self.check_cached(token, school) {
            Err(RejectReason::UnknownToken) => {
                let asked = Instant::now();
                let _turn = self.miss_refresh.lock().await;
                if !self.refreshed_since(asked) {
                    if let Some(last) = self.last_refresh() {
                        tokio::time::sleep_until((last + MISS_REFRESH_MIN).into()).await;
                    }
                    if let Err(e) = self.refresh(store).await {
                        tracing::warn!(error = %e, "cannot refresh enrollment tokens to check an unknown token");
                        return Err(RejectReason::Internal);
                    }
                }
                self.check_cached(token, school)
            }
            other => other,
        }
    }

    fn last_refresh(&self) -> Option<Instant> {
        *self.last_refresh.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refreshed_since(&self, t: Instant) -> bool {
        self.last_refresh().is_some_and(|last| last >= t)
    }

    /// Installs entries directly (tests).
    #[cfg(test)]
    fn insert(&self, token: &str, school: &str, revoked: bool) {
        self.by_hash.write().unwrap().insert(hash(token), Entry { school: school.into(), revoked });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_distinct_and_hash_to_their_id() {
        let a = generate("74-0012", "", 0, 1);
        let b = generate("74-0012", "", 0, 1);
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with("pt1_") && a.token.len() == 44);
        assert_eq!(a.row.token_sha256, hash(&a.token));
        assert_eq!(a.row.token_id, &a.row.token_sha256[..12]);
        assert!(!a.row.token_sha256.contains(&a.token[4..]));
    }

    #[test]
    fn check_distinguishes_reasons() {
        let c = TokenCache::new();
        c.insert("good", "74-0012", false);
        c.insert("old", "74-0012", true);
        assert_eq!(c.check_cached("good", "74-0012"), Ok(()));
        assert_eq!(c.check_cached("good", "74-0013"), Err(RejectReason::SchoolMismatch));
        assert_eq!(c.check_cached("old", "74-0012"), Err(RejectReason::RevokedToken));
        assert_eq!(c.check_cached("nope", "74-0012"), Err(RejectReason::UnknownToken));
    }
}
