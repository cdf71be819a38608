//! Accounts, roles, scopes, sessions and API tokens.
//!
//! - **Roles**: `admin` (everything, every school, manages accounts), `ops` (reads and exports
//!   within a scope), `auditor` (reads and exports within a scope, and the export log). Nothing
//!   in the UI or API writes data except accounts and tokens.
//! - **Scopes**: `all`, `region:CODE`, `municipality:NAME`, `school:ID`, resolved through the
//!   school registry. A school missing from the registry is visible to `all` only.
//! - **Passwords**: Argon2id (PHC strings). An unknown login costs the same hash as a known
//!   one. Every attempt counts before its password is checked; five in a minute lock that login
//!   from that address, twenty in ten minutes lock the address; two passwords are checked at a
//!   time and further sign-ins are told to come back (429).
//! - **Sessions**: a cookie `login.expiry.mac`, the MAC an HMAC-SHA256 under a key kept in the
//!   data directory over the login, the expiry and the account's version — so a password
//!   change, a role or scope change or a disabled account ends every session at once. Cookies
//!   are `HttpOnly`, `SameSite=Strict` and `Secure` (unless configured off for plain HTTP on a
//!   trusted network).
//! - **CSRF**: every form carries a token derived from the session (HMAC), checked on POST;
//!   the login form carries one derived from a nonce cookie (double submit).
//! - **API tokens**: `pat1_` + 40 hex digits, shown once, stored as SHA-256, acting as their
//!   account (same role and scope), revocable, and ended with any change of the account (they
//!   carry the account's version). They serve the API only: the UI takes session cookies.
//! - **Signing out** records the session as ended, so a copied cookie stops working too.
//!
//! Accounts, tokens and the registry's school places are cached in memory and refreshed every
//! few seconds (and on an unknown token or login, at most once a second).

pub mod commands;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use rand::RngExt;
use sha2::Sha256;

use crate::storage::accounts::{ApiTokenRow, UserRow};
use crate::storage::{Store, StoreError};

/// Cookie holding the session.
pub const SESSION_COOKIE: &str = "parta_session";
/// Cookie holding the login form's nonce.
pub const LOGIN_COOKIE: &str = "parta_login";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
use crate::refresh::REFRESH_EVERY;
/// Failures in a row that lock a login from one address, and for how long.
const LOCK_AFTER: u32 = 5;
const LOCK_FOR: Duration = Duration::from_secs(60);
/// Failed sign-ins from one address, whatever the login, that lock the address; the window.
const ADDRESS_LIMIT: u32 = 20;
const ADDRESS_WINDOW: Duration = Duration::from_secs(600);
/// Passwords checked at once: each Argon2 check takes ~19 MiB and a core for tens of ms, so a
/// flood of sign-ins must wait for these few, not allocate a hash each.
pub const HASHING_AT_ONCE: usize = 2;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// Regional or municipal operations: read and export within the scope.
    Ops,
    /// Read-only with exports and the export log, within the scope.
    Auditor,
}

impl Role {
    /// Parses `admin`, `ops`, `auditor`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Self::Admin),
            "ops" => Ok(Self::Ops),
            "auditor" => Ok(Self::Auditor),
            _ => Err(format!("unknown role {s:?} (admin, ops or auditor)")),
        }
    }

    /// Name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Ops => "ops",
            Self::Auditor => "auditor",
        }
    }
}

/// Which schools an account sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessScope {
    /// Every school, registered or not.
    All,
    /// The registered schools of a region, a municipality of a region, or one school.
    Within(crate::compliance::build::Scope),
    /// A scope that names nothing for certain — a municipality written without its region
    /// whose name several regions have (accounts made before scopes named regions): it covers
    /// nothing until an administrator writes it with its region.
    Unresolved {
        /// The scope as stored.
        scope: String,
        /// Why, and how to fix it.
        reason: crate::compliance::build::Unresolved,
    },
}

impl AccessScope {
    /// Parses `all`, `region:CODE`, `municipality:REGION/NAME` (or `municipality:NAME`),
    /// `school:ID`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "all" {
            return Ok(Self::All);
        }
        crate::compliance::build::Scope::parse(s).map(Self::Within)
    }

    /// The scope with a municipality's region filled in from the registry's `places`, or
    /// [`AccessScope::Unresolved`] when several regions (or none) have that name.
    pub fn resolve<'a>(self, places: impl Iterator<Item = &'a Place>) -> Self {
        match self {
            Self::Within(scope) => {
                let text = scope.to_string();
                match scope.resolve(places.map(|p| (p.region.as_str(), p.municipality.as_str()))) {
                    Ok(s) => Self::Within(s),
                    Err(reason) => Self::Unresolved { scope: text, reason },
                }
            }
            other => other,
        }
    }

    /// Whether a school (with its registry place, if registered) is in this scope.
    pub fn covers(&self, school_id: &str, place: Option<&Place>) -> bool {
        match (self, place) {
            (Self::All, _) => true,
            (Self::Within(s), Some(p)) => s.covers(school_id, &p.region, &p.municipality),
            (Self::Within(_) | Self::Unresolved { .. }, _) => false,
        }
    }
}

/// The schools of a report scope, as an access scope.
impl From<&crate::compliance::build::Scope> for AccessScope {
    fn from(s: &crate::compliance::build::Scope) -> Self {
        Self::Within(s.clone())
    }
}

impl fmt::Display for AccessScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Within(s) => s.fmt(f),
            Self::Unresolved { scope, .. } => f.write_str(scope),
        }
    }
}

/// Where a registered school is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Region code.
    pub region: String,
    /// Municipality.
    pub municipality: String,
    /// School name.
    pub name: String,
}

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A session cookie (the UI).
    Session,
    /// An API token.
    Token,
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Login.
    pub login: String,
    /// Role.
    pub role: Role,
    /// Scope.
    pub scope: AccessScope,
    /// How.
    pub via: Via,
    /// The session cookie's value (CSRF tokens derive from it), empty for tokens.
    pub session: String,
}

impl Principal {
    /// Whether the account manages accounts.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The actor name written to logs (export log, import log).
    pub fn actor(&self) -> String {
        match self.via {
            Via::Session => format!("user:{}", self.login),
            Via::Token => format!("token:{}", self.login),
        }
    }
}

/// Hashes a password (Argon2id, default parameters, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// The least a password must be.
pub fn check_password_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < 10 {
        return Err("the password must be at least 10 characters long".into());
    }
    Ok(())
}

/// A login name: 1–64 of `a-z0-9._-`, starting with a letter or digit.
pub fn validate_login(login: &str) -> Result<(), String> {
    let ok = !login.is_empty()
        && login.len() <= 64
        && login.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && login.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("login {login:?}: use 1–64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"))
    }
}

/// A new API token of an account at its current `account_version`: the secret (shown once) and
/// its row.
pub fn generate_api_token(account: &UserRow, comment: &str, now: u32, version: u64) -> (String, ApiTokenRow) {
    let bytes: [u8; 20] = rand::rng().random();
    let token = format!("pat1_{}", hex::encode(bytes));
    let sha = crate::tokens::hash(&token);
    let row = ApiTokenRow {
        token_id: sha[..12].to_owned(),
        token_sha256: sha,
        login: account.login.clone(),
        comment: comment.to_owned(),
        created_at: now,
        revoked: 0,
        version,
        account_version: account.version,
    };
    (token, row)
}

/// The parts of a session cookie value `hex(login).expiry.hex(mac)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParts {
    /// Login.
    pub login: String,
    /// Expiry, seconds since the epoch.
    pub expires: u64,
    /// A random nonce: two sign-ins within one second are two sessions (signing one out must
    /// not end the other).
    pub nonce: [u8; 16],
    /// HMAC-SHA256.
    pub mac: Vec<u8>,
}

/// SHA-256 of a session cookie's value, hex: how an ended session is recorded.
fn session_hash(value: &str) -> String {
    hex::encode(<Sha256 as sha2::Digest>::digest(value.as_bytes()))
}

/// Splits a session cookie value; `None` for anything malformed.
pub fn parse_session(value: &str) -> Option<SessionParts> {
    if value.len() > 512 {
        return None;
    }
    let mut parts = value.split('.');
    let login = String::from_utf8(hex::decode(parts.next()?).ok()?).ok()?;
    let expires: u64 = parts.next()?.parse().ok()?;
    let nonce: [u8; 16] = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    let mac = hex::decode(parts.next()?).ok()?;
    if parts.next().is_some() || mac.len() != 32 {
        return None;
    }
    Some(SessionParts { login, expires, nonce, mac })
}

/// Why a sign-in failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong login or password (never says which).
    Invalid,
    /// Too many failures (from this address, for this login or any); try again later.
    Locked,
    /// Too many sign-ins are being checked at this moment; try again in a moment.
    Busy,
    /// The account store is unreachable.
    Unavailable,
}

#[derive(Debug, Default)]
struct Snapshot {
    users: HashMap<String, UserRow>,
    tokens: HashMap<String, ApiTokenRow>,
    places: HashMap<String, Place>,
    /// SHA-256 of sessions ended by signing out.
    ended: std::collections::HashSet<String>,
}

/// The in-memory view of accounts, tokens and school places, with the signing key.
pub struct Accounts {
    key: [u8; 32],
    snapshot: RwLock<Snapshot>,
    /// When the cache was refreshed; refreshes on unknown tokens and logins.
    miss: crate::refresh::MissRefresh,
    refreshing: tokio::sync::Mutex<()>,
    attempts: Mutex<Attempts>,
    hashing: tokio::sync::Semaphore,
    /// Accounts (login and scope) already warned about as seeing nothing.
    warned: Mutex<HashSet<(String, String)>>,
}

/// Failed (and pending) sign-ins: per login and address, so that nobody elsewhere can keep an
/// account locked, and per address, whatever the login.
#[derive(Debug, Default)]
struct Attempts {
    by_login: HashMap<(String, std::net::IpAddr), (u32, Instant)>,
    by_address: HashMap<std::net::IpAddr, (u32, Instant)>,
}

impl Attempts {
    /// Counts an attempt before its password is checked — so that parallel guesses see each
    /// other — unless the login or the address is locked now.
    fn begin(&mut self, login: &str, addr: std::net::IpAddr, now: Instant) -> Result<(), LoginError> {
        // Bounded: a flood of invented logins cannot grow the maps without limit.
        if self.by_login.len() > 10_000 {
            self.by_login.retain(|_, (_, t)| now.duration_since(*t) < LOCK_FOR);
        }
        if self.by_address.len() > 10_000 {
            self.by_address.retain(|_, (_, t)| now.duration_since(*t) < ADDRESS_WINDOW);
        }
        let key = (login.to_owned(), addr);
        let fresh = |e: &(u32, Instant), window: Duration| now.duration_since(e.1) < window;
        let login_n = self.by_login.get(&key).filter(|e| fresh(e, LOCK_FOR)).map_or(0, |e| e.0);
        let addr_n = self.by_address.get(&addr).filter(|e| fresh(e, ADDRESS_WINDOW)).map_or(0, |e| e.0);
        if login_n >= LOCK_AFTER || addr_n >= ADDRESS_LIMIT {
            return Err(LoginError::Locked);
        }
        self.by_login.insert(key, (login_n + 1, now));
        self.by_address.insert(addr, (addr_n + 1, now));
        Ok(())
    }

    /// The attempt succeeded: it was no failure.
    fn succeeded(&mut self, login: &str, addr: std::net::IpAddr) {
        self.by_login.remove(&(login.to_owned(), addr));
        if let Some(e) = self.by_address.get_mut(&addr) {
            e.0 = e.0.saturating_sub(1);
        }
    }

    /// The attempt was not checked at all (busy): it does not count.
    fn not_checked(&mut self, login: &str, addr: std::net::IpAddr) {
        if let Some(e) = self.by_login.get_mut(&(login.to_owned(), addr)) {
            e.0 = e.0.saturating_sub(1);
        }
        if let Some(e) = self.by_address.get_mut(&addr) {
            e.0 = e.0.saturating_sub(1);
        }
    }
}

/// A hash to verify against when the login is unknown, so both cost the same; made on first use.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("parta-no-such-user").unwrap_or_default()).clone()
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Accounts {
    /// An empty cache with a signing key.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            snapshot: RwLock::new(Snapshot::default()),
            miss: crate::refresh::MissRefresh::default(),
            refreshing: tokio::sync::Mutex::new(()),
            attempts: Mutex::new(Attempts::default()),
            hashing: tokio::sync::Semaphore::new(HASHING_AT_ONCE),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// Loads the session key from `dir/session.key`, creating it (mode 0600) on first use.
    pub fn load_key(dir: &Path) -> std::io::Result<[u8; 32]> {
        parta_common::fsutil::load_or_create_key(
            &dir.join("session.key"),
            || rand::rng().random(),
            "signs everyone out",
        )
    }

    /// Reloads everything from storage.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let (users, tokens, schools, ended) =
            tokio::try_join!(store.users(), store.api_tokens(), store.schools(), store.ended_sessions())?;
        let snap = Snapshot {
            ended: ended.into_iter().map(|e| e.session_sha256).collect(),
            users: users.into_iter().map(|u| (u.login.clone(), u)).collect(),
            tokens: tokens.into_iter().map(|t| (t.token_sha256.clone(), t)).collect(),
            places: schools
                .into_iter()
                .map(|s| {
                    (
                        s.school_id.clone(),
                        Place { region: s.region_code, municipality: s.municipality, name: s.name },
                    )
                })
                .collect(),
        };
        self.warn_unresolved(&snap);
        *self.snapshot.write().unwrap_or_else(std::sync::PoisonError::into_inner) = snap;
        self.miss.refreshed();
        Ok(())
    }

    /// Logs, once per account and scope, an account whose scope names no place for certain.
    fn warn_unresolved(&self, snap: &Snapshot) {
        let mut warned = self.warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for u in snap.users.values().filter(|u| u.disabled == 0) {
            let Ok(AccessScope::Unresolved { reason, .. }) =
                AccessScope::parse(&u.scope).map(|s| s.resolve(snap.places.values()))
            else {
                continue;
            };
            if warned.insert((u.login.clone(), u.scope.clone())) {
                tracing::warn!(
                    login = %u.login, scope = %u.scope, %reason,
                    "this account sees no school until its scope is set again with `parta-collector user add`"
                );
            }
        }
    }

    fn age(&self) -> Option<Duration> {
        self.miss.age()
    }

    /// Makes sure the cache was refreshed after `asked`, when something was not found in it: a
    /// token or an account made a moment ago (at most one refresh a second, shared).
    async fn refresh_after_miss(&self, store: &Store, asked: Instant) {
        if let Err(e) = self.miss.after_miss(asked, || self.refresh(store)).await {
            tracing::warn!(error = %e, "cannot refresh accounts");
        }
    }

    /// Refreshes when older than `max_age`; concurrent callers share one refresh. A failed
    /// refresh keeps the old view (logged).
    async fn refresh_if_older(&self, store: &Store, max_age: Duration) {
        if self.age().is_some_and(|a| a < max_age) {
            return;
        }
        let _one = self.refreshing.lock().await;
        if self.age().is_some_and(|a| a < max_age) {
            return;
        }
        if let Err(e) = self.refresh(store).await {
            tracing::warn!(error = %e, "cannot refresh accounts");
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn principal_of(snap: &Snapshot, user: &UserRow, via: Via, session: String) -> Option<Principal> {
        if user.disabled != 0 {
            return None;
        }
        Some(Principal {
            login: user.login.clone(),
            role: Role::parse(&user.role).ok()?,
            scope: AccessScope::parse(&user.scope).ok()?.resolve(snap.places.values()),
            via,
            session,
        })
    }

    /// The account of an API token, if the token is current and its account enabled.
    pub async fn by_token(&self, store: &Store, token: &str) -> Option<Principal> {
        let asked = Instant::now();
        self.refresh_if_older(store, REFRESH_EVERY).await;
        let sha = crate::tokens::hash(token);
        // A token works while it is not revoked and its account is as it was when the token
        // was made: a new password, role or scope, or a disabled account, ends it.
        let found = |s: &Snapshot| {
            let t = s.tokens.get(&sha).filter(|t| t.revoked == 0)?;
            let u = s.users.get(&t.login).filter(|u| u.version == t.account_version)?;
            Self::principal_of(s, u, Via::Token, String::new())
        };
        if let Some(p) = found(&self.read()) {
            return Some(p);
        }
        self.refresh_after_miss(store, asked).await;
        found(&self.read())
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        #[allow(clippy::expect_used)]
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        for p in parts {
            m.update(&(p.len() as u64).to_le_bytes());
            m.update(p);
        }
        m
    }

    /// The MAC of a session: the login, its expiry, its nonce and the account's version.
    fn session_mac(&self, login: &str, expires: u64, nonce: &[u8; 16], version: u64) -> HmacSha256 {
        self.mac(&[b"session", login.as_bytes(), &expires.to_le_bytes(), nonce, &version.to_le_bytes()])
    }

    /// A new session cookie value for an account, valid until `expires` (seconds since the
    /// epoch).
    pub fn session_value(&self, user: &UserRow, expires: u64) -> String {
        let nonce: [u8; 16] = rand::rng().random();
        let mac = self.session_mac(&user.login, expires, &nonce, user.version);
        format!(
            "{}.{expires}.{}.{}",
            hex::encode(user.login.as_bytes()),
            hex::encode(nonce),
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// The account of a session cookie value, if it is genuine, unexpired and the account
    /// unchanged since it was signed.
    pub async fn by_session(&self, store: &Store, value: &str, now: u64) -> Option<Principal> {
        // Malformed or expired values cost no refresh.
        parse_session(value).filter(|s| s.expires > now)?;
        self.refresh_if_older(store, REFRESH_EVERY).await;
        let snap = self.read();
        if snap.ended.contains(&session_hash(value)) {
            return None;
        }
        let user = self.check_session(value, now, |login| snap.users.get(login).cloned())?;
        Self::principal_of(&snap, &user, Via::Session, value.to_owned())
    }

    /// Ends a session on the server (signing out): the cookie's value is refused from now on,
    /// here at once and on other collectors from their next refresh, even if someone kept a copy.
    pub async fn end_session(&self, store: &Store, principal: &Principal) -> Result<(), StoreError> {
        let Some(parts) = parse_session(&principal.session) else { return Ok(()) };
        let sha = session_hash(&principal.session);
        store
            .end_session(&crate::storage::accounts::EndedSessionRow {
                session_sha256: sha.clone(),
                login: principal.login.clone(),
                ended_at: crate::storage::now_secs(),
                expires: u32::try_from(parts.expires).unwrap_or(u32::MAX),
            })
            .await?;
        self.snapshot.write().unwrap_or_else(std::sync::PoisonError::into_inner).ended.insert(sha);
        Ok(())
    }

    /// The account's current row (for tokens made in its name).
    pub fn user(&self, login: &str) -> Option<UserRow> {
        self.read().users.get(login).cloned()
    }

    /// The account of a session cookie value given a way to look accounts up: genuine (the MAC
    /// verifies against the account's current version), unexpired, the account enabled.
    pub fn check_session(
        &self,
        value: &str,
        now: u64,
        lookup: impl Fn(&str) -> Option<UserRow>,
    ) -> Option<UserRow> {
        let s = parse_session(value)?;
        if s.expires <= now {
            return None;
        }
        let user = lookup(&s.login).filter(|u| u.disabled == 0)?;
        self.session_mac(&s.login, s.expires, &s.nonce, user.version).verify_slice(&s.mac).ok()?;
        Some(user)
    }

    /// The CSRF token of a session.
    pub fn csrf_token(&self, session: &str) -> String {
        hex::encode(&self.mac(&[b"csrf", session.as_bytes()]).finalize().into_bytes()[..16])
    }

    /// The CSRF token of the login form for a nonce cookie.
    pub fn login_token(&self, nonce: &str) -> String {
        hex::encode(&self.mac(&[b"login", nonce.as_bytes()]).finalize().into_bytes()[..16])
    }

    /// Compares a submitted CSRF token with the expected one in constant time.
    pub fn tokens_match(expected: &str, submitted: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        expected.len() == submitted.len() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
    }

    fn attempts(&self) -> std::sync::MutexGuard<'_, Attempts> {
        self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks a login and password from `addr`; the account on success. The attempt counts
    /// before the password is checked; at most [`HASHING_AT_ONCE`] passwords are checked at a
    /// time (others get [`LoginError::Busy`]).
    pub async fn sign_in(
        &self,
        store: &Store,
        login: &str,
        password: &str,
        addr: std::net::IpAddr,
    ) -> Result<UserRow, LoginError> {
        let asked = Instant::now();
        self.attempts().begin(login, addr, asked)?;
        self.refresh_if_older(store, REFRESH_EVERY).await;
        if self.read().users.get(login).is_none_or(|u| u.disabled != 0) {
            // Perhaps an account made or enabled a moment ago (before the permit: a wait here
            // must not keep others' passwords from being checked).
            self.refresh_after_miss(store, asked).await;
        }
        if self.age().is_none() {
            self.attempts().not_checked(login, addr);
            return Err(LoginError::Unavailable);
        }
        let user = self.read().users.get(login).cloned();
        if self.check_password(login, addr, user.as_ref(), password).await? {
            return self.signed_in(login, addr, user);
        }
        // Perhaps a password changed a moment ago: check once more if the account changed.
        let Some(old) = user else { return Err(LoginError::Invalid) };
        self.refresh_after_miss(store, asked).await;
        let now = self.read().users.get(login).cloned().filter(|u| u.version != old.version);
        if now.is_some() && self.check_password(login, addr, now.as_ref(), password).await? {
            return self.signed_in(login, addr, now);
        }
        Err(LoginError::Invalid)
    }

    /// Whether `password` is the account's (a dummy hash is checked for an unknown one, so that
    /// timing does not tell); [`LoginError::Busy`] when too many checks are running (the
    /// attempt then does not count).
    async fn check_password(
        &self,
        login: &str,
        addr: std::net::IpAddr,
        user: Option<&UserRow>,
        password: &str,
    ) -> Result<bool, LoginError> {
        let Ok(_hashing) = self.hashing.try_acquire() else {
            self.attempts().not_checked(login, addr);
            return Err(LoginError::Busy);
        };
        let known = user.map(|u| u.password_hash.clone());
        let pw = password.to_owned();
        Ok(tokio::task::spawn_blocking(move || verify_password(&pw, &known.unwrap_or_else(dummy_hash)))
            .await
            .unwrap_or(false))
    }

    fn signed_in(
        &self,
        login: &str,
        addr: std::net::IpAddr,
        user: Option<UserRow>,
    ) -> Result<UserRow, LoginError> {
        match user {
            Some(u) if u.disabled == 0 => {
                self.attempts().succeeded(login, addr);
                Ok(u)
            }
            _ => Err(LoginError::Invalid),
        }
    }

    /// The registry place of a school.
    pub fn place(&self, school: &str) -> Option<Place> {
        self.read().places.get(school).cloned()
    }

    /// Whether a principal sees a school.
    pub fn sees(&self, p: &Principal, school: &str) -> bool {
        p.scope.covers(school, self.read().places.get(school))
    }

    /// A scope with a bare municipality name given its region from the registry
    /// ([`AccessScope::resolve`]).
    pub fn resolve(&self, scope: AccessScope) -> AccessScope {
        scope.resolve(self.read().places.values())
    }

    /// The registered schools of a scope, with their places, by id.
    pub fn visible_schools(&self, scope: &AccessScope) -> Vec<(String, Place)> {
        let mut v: Vec<(String, Place)> = self
            .read()
            .places
            .iter()
            .filter(|(id, place)| scope.covers(id, Some(place)))
            .map(|(id, place)| (id.clone(), place.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Refreshes the cache now if it is older than the usual interval (the UI calls this before
    /// listing schools).
    pub async fn ensure_fresh(&self, store: &Store) {
        self.refresh_if_older(store, REFRESH_EVERY).await;
    }

    /// API tokens of a login, latest state.
    pub fn tokens_of(&self, login: &str) -> Vec<ApiTokenRow> {
        let mut v: Vec<ApiTokenRow> =
            self.read().tokens.values().filter(|t| t.login == login).cloned().collect();
        v.sort_by(|a, b| (a.created_at, &a.token_id).cmp(&(b.created_at, &b.token_id)));
        v
    }

    /// Every account, by login.
    pub fn users(&self) -> Vec<UserRow> {
        let mut v: Vec<UserRow> = self.read().users.values().cloned().collect();
        v.sort_by(|a, b| a.login.cmp(&b.login));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(login: &str, version: u64) -> UserRow {
        UserRow {
            login: login.into(),
            role: "ops".into(),
            scope: "municipality:74/Аша".into(),
            password_hash: String::new(),
            disabled: 0,
            created_at: 0,
            version,
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
        // Salted: the same password hashes differently.
        assert_ne!(h, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn scopes_cover_by_registry_place() {
        let p = Place { region: "74".into(), municipality: "Аша".into(), name: String::new() };
        let scope = |s: &str| AccessScope::parse(s).unwrap();
        assert!(AccessScope::All.covers("x", None));
        assert!(scope("region:74").covers("x", Some(&p)));
        assert!(!scope("region:66").covers("x", Some(&p)));
        assert!(scope("municipality:74/Аша").covers("x", Some(&p)));
        assert!(!scope("municipality:66/Аша").covers("x", Some(&p)), "same name, other region");
        assert!(!scope("municipality:74/Миасс").covers("x", Some(&p)));
        assert!(scope("school:x").covers("x", Some(&p)));
        assert!(!scope("school:y").covers("x", Some(&p)));
        // Unregistered schools: `all` only.
        assert!(!scope("region:74").covers("x", None));
        assert_eq!(scope("municipality:74/Аша").to_string(), "municipality:74/Аша");
        assert!(AccessScope::parse("planet:earth").is_err());
    }

    #[test]
    fn a_municipality_without_its_region_resolves_only_when_one_region_has_it() {
        let place =
            |r: &str, m: &str| Place { region: r.into(), municipality: m.into(), name: String::new() };
        let registry =
            [place("74", "Октябрьский район"), place("66", "Октябрьский район"), place("74", "Аша")];
        let old = AccessScope::parse("municipality:Аша").unwrap().resolve(registry.iter());
        assert_eq!(old.to_string(), "municipality:74/Аша");
        assert!(old.covers("x", Some(&registry[2])));
        let ambiguous =
            AccessScope::parse("municipality:Октябрьский район").unwrap().resolve(registry.iter());
        let AccessScope::Unresolved { reason, .. } = &ambiguous else { panic!("{ambiguous:?}") };
        assert!(reason.to_string().contains("66, 74"), "{reason}");
        // It covers neither region's schools until written with its region.
        assert!(!ambiguous.covers("x", Some(&registry[0])));
        assert!(!ambiguous.covers("x", Some(&registry[1])));
        let qualified =
            AccessScope::parse("municipality:66/Октябрьский район").unwrap().resolve(registry.iter());
        assert!(qualified.covers("x", Some(&registry[1])) && !qualified.covers("x", Some(&registry[0])));
    }

    #[test]
    fn session_macs_bind_login_expiry_nonce_and_version() {
        let a = Accounts::new([7; 32]);
        let u = user("ivanova", 1);
        let lookup = |_: &str| Some(u.clone());
        let v = a.session_value(&u, 2_000_000_000);
        let again = a.session_value(&u, 2_000_000_000);
        assert_ne!(v, again, "two sign-ins in one second are two sessions");
        assert!(
            a.check_session(&v, 1_000, lookup).is_some() && a.check_session(&again, 1_000, lookup).is_some()
        );
        // Another session's nonce under this MAC: refused.
        let parts: Vec<&str> = v.split('.').collect();
        let other: Vec<&str> = again.split('.').collect();
        let swapped = [parts[0], parts[1], other[2], parts[3]].join(".");
        assert!(a.check_session(&swapped, 1_000, lookup).is_none());
        // Another key's session: refused.
        assert!(
            a.check_session(&Accounts::new([8; 32]).session_value(&u, 2_000_000_000), 1_000, lookup)
                .is_none()
        );
        // The CSRF token follows the session.
        assert_ne!(a.csrf_token(&v), a.csrf_token(&again));
        assert!(Accounts::tokens_match(&a.csrf_token(&v), &a.csrf_token(&v)));
        assert!(!Accounts::tokens_match(&a.csrf_token(&v), ""));
    }

    #[test]
    fn sessions_verify_only_when_genuine_current_and_unexpired() {
        let a = Accounts::new([7; 32]);
        let u = user("ivanova", 3);
        let v = a.session_value(&u, 2_000);
        let lookup = |login: &str| (login == "ivanova").then(|| u.clone());
        assert_eq!(a.check_session(&v, 1_999, lookup).map(|p| p.login), Some("ivanova".into()));
        assert!(a.check_session(&v, 2_000, lookup).is_none(), "expired");
        // The account changed since (a new password bumps its version).
        assert!(a.check_session(&v, 1_000, |_| Some(user("ivanova", 4))).is_none());
        // A disabled account.
        assert!(a.check_session(&v, 1_000, |_| Some(UserRow { disabled: 1, ..u.clone() })).is_none());
        // Tampering: a later expiry, another login, a flipped MAC bit.
        let later = v.replacen(".2000.", ".9000.", 1);
        assert!(a.check_session(&later, 1_000, lookup).is_none());
        let other = a.session_value(&user("petrov", 3), 2_000);
        let forged = format!("{}{}", hex::encode("ivanova"), &other[other.find('.').unwrap()..]);
        assert!(a.check_session(&forged, 1_000, lookup).is_none());
        let mut flipped = v.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert!(a.check_session(&String::from_utf8(flipped).unwrap(), 1_000, lookup).is_none());
        for bad in ["", "x", "..", "zz.1.00", &format!("{v}.x")] {
            assert!(parse_session(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn attempts_count_before_the_check_per_login_and_address() {
        let mut a = Attempts::default();
        let (here, there): (std::net::IpAddr, std::net::IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        // Five guesses at once all count, the sixth is refused before any password is checked.
        for _ in 0..LOCK_AFTER {
            a.begin("admin", here, t).unwrap();
        }
        assert_eq!(a.begin("admin", here, t), Err(LoginError::Locked));
        // The same login from elsewhere is not locked by that: nobody can keep admin out.
        a.begin("admin", there, t).unwrap();
        a.succeeded("admin", there);
        // A minute later the login is open again from the first address.
        a.begin("admin", here, t + LOCK_FOR).unwrap();
        // One address guessing many logins is stopped too.
        let mut b = Attempts::default();
        for i in 0..ADDRESS_LIMIT {
            b.begin(&format!("user{i}"), here, t).unwrap();
        }
        assert_eq!(b.begin("another", here, t), Err(LoginError::Locked));
        assert!(b.begin("another", there, t).is_ok());
        // An attempt that was never checked (busy) does not count.
        let mut c = Attempts::default();
        c.begin("x", here, t).unwrap();
        c.not_checked("x", here);
        assert_eq!(c.by_login[&("x".to_owned(), here)].0, 0);
    }

    #[test]
    fn logins_are_checked() {
        assert!(validate_login("ops.asha-1").is_ok());
        for bad in ["", "Ivanova", "-x", "a b", "иванова"] {
            assert!(validate_login(bad).is_err(), "{bad}");
        }
        assert!(check_password_strength("short").is_err());
    }
}
