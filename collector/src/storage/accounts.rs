//! Storage of accounts, API tokens, enrollment tokens and ended sessions: the latest row per
//! login or token is current. They live in a database of their own, `<database>_auth`
//! (migration 12 moves them there), which the read-only user of Grafana's dashboards cannot see:
//! ClickHouse 18.16 restricts users by database only.

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
    /// The account's version when the token was made: a token works only while the account is
    /// unchanged (a new password, role, scope or a disabled account ends it).
    pub account_version: u64,
}

/// An `ended_sessions` row: a session ended by signing out, refused until it would have
/// expired anyway.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct EndedSessionRow {
    /// SHA-256 of the session cookie's value, hex.
    pub session_sha256: String,
    pub login: String,
    pub ended_at: u32,
    /// When the session would have expired.
    pub expires: u32,
}

/// Migration 12: accounts and credentials move to `{auth}` (`<database>_auth`), where the
/// Grafana user (allowed `<database>` only) cannot read them; API tokens gain the account
/// version they belong to (tokens made before have version 0 and must be made again);
/// sign-outs are recorded so that a copied cookie stops working.
pub const MIGRATION_12: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS {auth}",
    "CREATE TABLE IF NOT EXISTS {auth}.users (
    login String,
    role LowCardinality(String),
    scope String,
    password_hash String,
    disabled UInt8,
    created_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY login",
    "CREATE TABLE IF NOT EXISTS {auth}.api_tokens (
    token_id String,
    token_sha256 String,
    login String,
    comment String,
    created_at DateTime,
    revoked UInt8,
    version UInt64,
    account_version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY token_id",
    "CREATE TABLE IF NOT EXISTS {auth}.enroll_tokens (
    token_id String,
    token_sha256 String,
    school_id String,
    comment String,
    created_at DateTime,
    revoked UInt8,
    max_uses UInt32,
    expires_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY token_id",
    "CREATE TABLE IF NOT EXISTS {auth}.ended_sessions (
    session_sha256 String,
    login String,
    ended_at DateTime,
    expires DateTime
) ENGINE = ReplacingMergeTree
ORDER BY session_sha256
TTL expires + INTERVAL 1 DAY",
    "INSERT INTO {auth}.users (login, role, scope, password_hash, disabled, created_at, version)
 SELECT login, role, scope, password_hash, disabled, created_at, version FROM {db}.users",
    "INSERT INTO {auth}.api_tokens (token_id, token_sha256, login, comment, created_at, revoked, version, account_version)
 SELECT token_id, token_sha256, login, comment, created_at, revoked, version, 0 FROM {db}.api_tokens",
    "INSERT INTO {auth}.enroll_tokens (token_id, token_sha256, school_id, comment, created_at, revoked, max_uses, expires_at, version)
 SELECT token_id, token_sha256, school_id, comment, created_at, revoked, max_uses, expires_at, version FROM {db}.enroll_tokens",
    "DROP TABLE IF EXISTS {db}.users",
    "DROP TABLE IF EXISTS {db}.api_tokens",
    "DROP TABLE IF EXISTS {db}.enroll_tokens",
];

const USERS: &str = "SELECT login, argMax(role, version) AS u_role, argMax(scope, version) AS u_scope,
        argMax(password_hash, version) AS u_hash, argMax(disabled, version) AS u_disabled,
        min(created_at) AS u_created, max(version) AS u_version
 FROM users
 GROUP BY login
 ORDER BY login";

const API_TOKENS: &str =
    "SELECT token_id, argMax(token_sha256, version) AS t_sha, argMax(login, version) AS t_login,
        argMax(comment, version) AS t_comment, min(created_at) AS t_created,
        argMax(revoked, version) AS t_revoked, max(version) AS t_version,
        argMax(account_version, version) AS t_account
 FROM api_tokens
 GROUP BY token_id
 ORDER BY t_login, t_created, token_id";

/// Sessions ended by signing out that have not expired yet.
const ENDED_SESSIONS: &str = "SELECT session_sha256, any(login), max(ended_at), max(expires)
 FROM ended_sessions
 WHERE expires > now()
 GROUP BY session_sha256";

/// Every query of this module, for the test suite.
pub fn catalogue() -> Vec<(&'static str, String)> {
    vec![
        ("users", USERS.to_owned()),
        ("api_tokens", API_TOKENS.to_owned()),
        ("ended_sessions", ENDED_SESSIONS.to_owned()),
    ]
}

impl Store {
    /// Every account, latest state.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let a = self.auth();
        a.client().query(USERS).fetch_all().await.map_err(|e| a.err(e))
    }

    /// Writes an account's new state.
    pub async fn put_user(&self, row: &UserRow) -> Result<(), StoreError> {
        self.auth().insert_rows("users", std::slice::from_ref(row)).await
    }

    /// Every API token, latest state.
    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenRow>, StoreError> {
        let a = self.auth();
        a.client().query(API_TOKENS).fetch_all().await.map_err(|e| a.err(e))
    }

    /// Writes an API token's new state.
    pub async fn put_api_token(&self, row: &ApiTokenRow) -> Result<(), StoreError> {
        self.auth().insert_rows("api_tokens", std::slice::from_ref(row)).await
    }

    /// Sessions ended by signing out and not yet expired.
    pub async fn ended_sessions(&self) -> Result<Vec<EndedSessionRow>, StoreError> {
        let a = self.auth();
        a.client().query(ENDED_SESSIONS).fetch_all().await.map_err(|e| a.err(e))
    }

    /// Records a signed-out session.
    pub async fn end_session(&self, row: &EndedSessionRow) -> Result<(), StoreError> {
        self.auth().insert_rows("ended_sessions", std::slice::from_ref(row)).await
    }
}
