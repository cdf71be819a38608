//! Storage of accounts and API tokens: the latest row per login or token is current.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// A `users` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct UserRow {
    pub login: String,
    /// `admin`, `ops` or `auditor`.
    pub role: String,
    /// `all`, `region:CODE`, `municipality:NAME` or `school:ID`.
    pub scope: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub disabled: u8,
    pub created_at: u32,
    /// Bumped by every change; sessions signed for an older version stop working.
    pub version: u64,
}

/// An `api_tokens` row (the token's SHA-256 only).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ApiTokenRow {
    pub token_id: String,
    pub token_sha256: String,
    pub login: String,
    pub comment: String,
    pub created_at: u32,
    pub revoked: u8,
    pub version: u64,
}

const USERS: &str = "SELECT login, argMax(role, version) AS u_role, argMax(scope, version) AS u_scope,
        argMax(password_hash, version) AS u_hash, argMax(disabled, version) AS u_disabled,
        min(created_at) AS u_created, max(version) AS u_version
 FROM users
 GROUP BY login
 ORDER BY login";

const API_TOKENS: &str =
    "SELECT token_id, argMax(token_sha256, version) AS t_sha, argMax(login, version) AS t_login,
        argMax(comment, version) AS t_comment, min(created_at) AS t_created,
        argMax(revoked, version) AS t_revoked, max(version) AS t_version
 FROM api_tokens
 GROUP BY token_id
 ORDER BY t_login, t_created, token_id";

/// Every query of this module, for the test suite.
pub fn catalogue() -> Vec<(&'static str, String)> {
    vec![("users", USERS.to_owned()), ("api_tokens", API_TOKENS.to_owned())]
}

impl Store {
    /// Every account, latest state.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.client().query(USERS).fetch_all().await.map_err(|e| self.err(e))
    }

    /// Writes an account's new state.
    pub async fn put_user(&self, row: &UserRow) -> Result<(), StoreError> {
        self.insert_rows("users", std::slice::from_ref(row)).await
    }

    /// Every API token, latest state.
    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenRow>, StoreError> {
        self.client().query(API_TOKENS).fetch_all().await.map_err(|e| self.err(e))
    }

    /// Writes an API token's new state.
    pub async fn put_api_token(&self, row: &ApiTokenRow) -> Result<(), StoreError> {
        self.insert_rows("api_tokens", std::slice::from_ref(row)).await
    }
}
