//! One SNMP conversation with one target: GET of scalars and GETBULK walks of table columns,
//! each request bounded by the target's timeout and retried `retries` times.
//!
//! Built on `snmp2`'s [`AsyncSession`]. That session reads exactly one datagram per request and
//! rejects a reply with another request id, so a late reply to a timed-out request would spoil
//! the next exchange; after a timeout the client therefore opens a fresh session (a new socket,
//! for v3 a new engine discovery) before it retries.

use snmp2::{AsyncSession, Oid, Value};

use super::target::{Credentials, SnmpVersion, Target};
use parta_protocol::snmp::PollOutcome;

/// Most varbinds one walk may return, so that a device answering with an endless table cannot
/// exhaust the agent's memory.
const MAX_WALK_VARBINDS: usize = 50_000;
/// Most requests one walk may take.
const MAX_WALK_REQUESTS: usize = 2_000;

/// An object identifier as its arcs.
pub type Arcs = Vec<u32>;

/// An owned SNMP value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// INTEGER.
    Int(i64),
    /// OCTET STRING.
    Bytes(Vec<u8>),
    /// OBJECT IDENTIFIER.
    Oid(Arcs),
    /// Counter32.
    Counter32(u32),
    /// Gauge32 / Unsigned32.
    Gauge32(u32),
    /// TimeTicks.
    Ticks(u32),
    /// Counter64.
    Counter64(u64),
    /// IpAddress.
    Ip([u8; 4]),
    /// NULL.
    Null,
    /// The agent has no such object or instance (v2c/v3 exceptions).
    NoSuch,
    /// The walk ran off the end of the agent's MIB view.
    EndOfMibView,
    /// A type the poller does not read (Opaque, BOOLEAN, constructed…).
    Other,
}

impl Val {
    fn from_snmp(v: &Value<'_>) -> Self {
        match v {
            Value::Integer(n) => Self::Int(*n),
            Value::OctetString(b) => Self::Bytes(b.to_vec()),
            Value::ObjectIdentifier(o) => arcs(o).map_or(Self::Other, Self::Oid),
            Value::Counter32(n) => Self::Counter32(*n),
            Value::Unsigned32(n) => Self::Gauge32(*n),
            Value::Timeticks(n) => Self::Ticks(*n),
            Value::Counter64(n) => Self::Counter64(*n),
            Value::IpAddress(a) => Self::Ip(*a),
            Value::Null => Self::Null,
            Value::NoSuchObject | Value::NoSuchInstance => Self::NoSuch,
            Value::EndOfMibView => Self::EndOfMibView,
            _ => Self::Other,
        }
    }

    /// An unsigned number, whatever numeric type the device chose.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Int(n) => u64::try_from(n).ok(),
            Self::Counter32(n) | Self::Gauge32(n) | Self::Ticks(n) => Some(u64::from(n)),
            Self::Counter64(n) => Some(n),
            _ => None,
        }
    }

    /// Text of an OCTET STRING: UTF-8, or Windows-1251 where the bytes are not UTF-8 (Russian
    /// devices' sysLocation), with control characters and trailing NULs removed.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Bytes(b) => Some(super::mib::decode_text(b)),
            _ => None,
        }
    }
}

/// Arcs of an `Oid`, or `None` if an arc does not fit 32 bits (not valid SNMP).
fn arcs(o: &Oid<'_>) -> Option<Arcs> {
    o.iter()?.map(|a| u32::try_from(a).ok()).collect()
}

/// A reply, owned.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// `error-status` (0 noError, 1 tooBig, 2 noSuchName, 5 genErr, …).
    pub error_status: u32,
    /// The varbinds in order.
    pub varbinds: Vec<(Arcs, Val)>,
}

impl Reply {
    /// The owned form of a parsed PDU.
    pub fn from_pdu(p: &snmp2::Pdu<'_>) -> Self {
        Self {
            error_status: p.error_status,
            varbinds: p
                .varbinds
                .clone()
                .map(|(o, v)| (arcs(&o).unwrap_or_default(), Val::from_snmp(&v)))
                .collect(),
        }
    }

    /// Decodes a v1/v2c message the way the client does (for tests and fuzzing of the reply
    /// path without a socket).
    pub fn decode(bytes: &[u8]) -> Result<Self, snmp2::Error> {
        snmp2::Pdu::from_bytes(bytes).map(|p| Self::from_pdu(&p))
    }
}

/// Why an exchange failed, classified as the poll outcome it leads to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SnmpError {
    /// Outcome kind.
    pub kind: PollOutcome,
    /// For people: what happened and what to check.
    pub message: String,
}

impl SnmpError {
    pub(crate) fn new(kind: PollOutcome, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// A conversation with one target.
pub struct Client {
    target: Target,
    addr: std::net::SocketAddr,
    session: Option<AsyncSession>,
    next_req_id: i32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("target", &self.target.address).finish_non_exhaustive()
    }
}

impl Client {
    /// Resolves the target's address; the session opens on first use.
    pub async fn new(target: &Target) -> Result<Self, SnmpError> {
        let addr = tokio::net::lookup_host(&target.address)
            .await
            .map_err(|e| {
                SnmpError::new(PollOutcome::Error, format!("cannot resolve {}: {e}", target.address))
            })?
            .next()
            .ok_or_else(|| {
                SnmpError::new(PollOutcome::Error, format!("{} has no address", target.address))
            })?;
        Ok(Self {
            target: target.clone(),
            addr,
            session: None,
            next_req_id: rand::random::<i32>() & 0x3fff_ffff,
        })
    }

    async fn open(&mut self) -> Result<(), SnmpError> {
        let id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1000) & 0x3fff_ffff;
        let io =
            |e: std::io::Error| SnmpError::new(PollOutcome::Error, format!("cannot open a UDP socket: {e}"));
        let mut session = match (&self.target.version, &self.target.credentials) {
            (SnmpVersion::V1, Credentials::Community(c)) => {
                AsyncSession::new_v1(self.addr, c.as_bytes(), id).await.map_err(io)?
            }
            (SnmpVersion::V2c, Credentials::Community(c)) => {
                AsyncSession::new_v2c(self.addr, c.as_bytes(), id).await.map_err(io)?
            }
            (_, Credentials::Usm(usm)) => {
                AsyncSession::new_v3(self.addr, id, usm.security()).await.map_err(io)?
            }
            (SnmpVersion::V3, Credentials::Community(_)) => {
                return Err(SnmpError::new(PollOutcome::Error, "SNMPv3 needs a user, not a community"));
            }
        };
        if self.target.version == SnmpVersion::V3 {
            // Engine discovery: one round trip, bounded like any request.
            match tokio::time::timeout(self.target.timeout, session.init()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(classify(&e, &self.target)),
                Err(_) => return Err(self.timeout_error()),
            }
        }
        self.session = Some(session);
        Ok(())
    }

    fn timeout_error(&self) -> SnmpError {
        let t = &self.target;
        let hint = match t.version {
            SnmpVersion::V3 => "is the device up and is SNMPv3 enabled on it?",
            _ => {
                "is the device up, is SNMP enabled, and is the community right? (a device ignores a wrong community)"
            }
        };
        SnmpError::new(
            PollOutcome::Timeout,
            format!(
                "no answer from {} in {} × {} attempt(s): {hint}",
                t.address,
                humantime::format_duration(t.timeout),
                t.retries + 1
            ),
        )
    }

    /// GET of `oids`.
    pub async fn get(&mut self, oids: &[&[u32]]) -> Result<Reply, SnmpError> {
        let oids = to_oids(oids)?;
        self.exchange(Request::Get(&oids)).await
    }

    /// GETBULK (GETNEXT for SNMPv1) from each of `oids`.
    async fn bulk(&mut self, oids: &[Oid<'static>], max_repetitions: u32) -> Result<Reply, SnmpError> {
        if self.target.version == SnmpVersion::V1 {
            // v1 has no GETBULK: one GETNEXT per column.
            let mut out = Reply::default();
            for oid in oids {
                let r = self.exchange(Request::Next(oid)).await?;
                if r.error_status == 2 {
                    // noSuchName: the end of the agent's MIB.
                    out.varbinds.push((Vec::new(), Val::EndOfMibView));
                    continue;
                }
                if r.error_status != 0 {
                    return Ok(r);
                }
                out.varbinds.extend(r.varbinds);
            }
            return Ok(out);
        }
        self.exchange(Request::Bulk(oids, max_repetitions)).await
    }

    /// Walks the table columns `columns` together (one GETBULK carries every unfinished
    /// column). Returns per column the rows as (index suffix, value), in order.
    pub async fn walk(&mut self, columns: &[&[u32]]) -> Result<Vec<Vec<(Arcs, Val)>>, SnmpError> {
        let mut out: Vec<Vec<(Arcs, Val)>> = vec![Vec::new(); columns.len()];
        let mut cursor: Vec<Arcs> = columns.iter().map(|c| c.to_vec()).collect();
        let mut done = vec![false; columns.len()];
        let mut total = 0usize;
        let mut max_rep = self.target.max_repetitions.max(1);
        for _ in 0..MAX_WALK_REQUESTS {
            let active: Vec<usize> = (0..columns.len()).filter(|&i| !done[i]).collect();
            if active.is_empty() {
                return Ok(out);
            }
            let oids = active.iter().map(|&i| to_oid(&cursor[i])).collect::<Result<Vec<_>, _>>()?;
            let per_column = (max_rep / u32::try_from(active.len()).unwrap_or(u32::MAX)).max(1);
            let reply = self.bulk(&oids, per_column).await?;
            match reply.error_status {
                0 => {}
                1 if max_rep > 1 => {
                    // tooBig: ask for less.
                    max_rep /= 2;
                    continue;
                }
                s => return Err(error_status(s, &self.target.address)),
            }
            if reply.varbinds.is_empty() {
                return Err(SnmpError::new(
                    PollOutcome::Malformed,
                    format!("{} answered a GETBULK with no values", self.target.address),
                ));
            }
            // The reply holds rows of one varbind per requested column.
            for (k, (oid, val)) in reply.varbinds.into_iter().enumerate() {
                let col = active[k % active.len()];
                if done[col] {
                    continue;
                }
                let prefix = columns[col];
                if val == Val::EndOfMibView || !oid.starts_with(prefix) || oid.len() == prefix.len() {
                    done[col] = true;
                    continue;
                }
                if oid <= cursor[col] {
                    return Err(SnmpError::new(
                        PollOutcome::Malformed,
                        format!(
                            "{} returned OIDs out of order ({} after {}); the device's SNMP agent is broken",
                            self.target.address,
                            dotted(&oid),
                            dotted(&cursor[col])
                        ),
                    ));
                }
                out[col].push((oid[prefix.len()..].to_vec(), val));
                cursor[col] = oid;
                total += 1;
            }
            if total > MAX_WALK_VARBINDS {
                return Err(SnmpError::new(
                    PollOutcome::Malformed,
                    format!(
                        "{} returned more than {MAX_WALK_VARBINDS} rows for one table",
                        self.target.address
                    ),
                ));
            }
        }
        Err(SnmpError::new(
            PollOutcome::Malformed,
            format!("{}: a walk did not end after {MAX_WALK_REQUESTS} requests", self.target.address),
        ))
    }

    async fn exchange(&mut self, req: Request<'_>) -> Result<Reply, SnmpError> {
        let mut updated = 0;
        let mut attempt = 0;
        loop {
            if self.session.is_none() {
                match self.open().await {
                    Ok(()) => {}
                    Err(e) if e.kind == PollOutcome::Timeout && attempt < self.target.retries => {
                        attempt += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(session) = self.session.as_mut() else { continue };
            let fut = async {
                let pdu = match req {
                    Request::Get(oids) => {
                        let refs: Vec<&Oid<'_>> = oids.iter().collect();
                        session.get_many(&refs).await
                    }
                    Request::Next(oid) => session.getnext(oid).await,
                    Request::Bulk(oids, n) => {
                        let refs: Vec<&Oid<'_>> = oids.iter().collect();
                        session.getbulk(&refs, 0, n).await
                    }
                };
                pdu.map(|p| Reply {
                    error_status: p.error_status,
                    varbinds: p
                        .varbinds
                        .map(|(o, v)| (arcs(&o).unwrap_or_default(), Val::from_snmp(&v)))
                        .collect(),
                })
            };
            match tokio::time::timeout(self.target.timeout, fut).await {
                Ok(Ok(reply)) => return Ok(reply),
                // v3: the engine's boots/time were updated; repeat once or twice.
                Ok(Err(snmp2::Error::AuthUpdated)) if updated < 2 => updated += 1,
                Ok(Err(snmp2::Error::RequestIdMismatch)) if attempt < self.target.retries => {
                    // A late reply to an earlier request: start afresh.
                    self.session = None;
                    attempt += 1;
                }
                Ok(Err(e)) => return Err(classify(&e, &self.target)),
                Err(_) if attempt < self.target.retries => {
                    self.session = None;
                    attempt += 1;
                }
                Err(_) => return Err(self.timeout_error()),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Request<'a> {
    Get(&'a [Oid<'static>]),
    Next(&'a Oid<'static>),
    Bulk(&'a [Oid<'static>], u32),
}

fn to_oid(arcs: &[u32]) -> Result<Oid<'static>, SnmpError> {
    let wide: Vec<u64> = arcs.iter().map(|a| u64::from(*a)).collect();
    Oid::from(&wide).map_err(|_| SnmpError::new(PollOutcome::Error, format!("invalid OID {}", dotted(arcs))))
}

fn to_oids(oids: &[&[u32]]) -> Result<Vec<Oid<'static>>, SnmpError> {
    oids.iter().map(|o| to_oid(o)).collect()
}

/// `1.3.6.1…` text of arcs.
pub fn dotted(arcs: &[u32]) -> String {
    let mut s = String::with_capacity(arcs.len() * 3);
    for (i, a) in arcs.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(&a.to_string());
    }
    s
}

fn error_status(status: u32, address: &str) -> SnmpError {
    let name = match status {
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess",
        16 => "authorizationError",
        _ => "error",
    };
    let kind = if status == 16 || status == 6 { PollOutcome::AuthFailed } else { PollOutcome::Error };
    SnmpError::new(kind, format!("{address} answered with SNMP error {name} ({status})"))
}

/// Turns an `snmp2` error into an outcome and a message that says what to check.
fn classify(e: &snmp2::Error, target: &Target) -> SnmpError {
    use snmp2::Error as E;
    let addr = &target.address;
    match e {
        E::AuthFailure(kind) => {
            use snmp2::v3::AuthErrorKind as K;
            let what = match kind {
                K::SignatureMismatch => {
                    "the reply's signature does not match: wrong auth password or protocol"
                }
                K::NotAuthenticated => {
                    "not authenticated: unknown user, wrong auth password or wrong security level"
                }
                K::UsernameMismatch => "the device answered for another user",
                K::ReplyNotEncrypted => "the device did not encrypt its reply: check the privacy protocol",
                K::PrivLengthMismatch | K::KeyLengthMismatch | K::PayloadLengthMismatch => {
                    "cannot decrypt the reply: wrong privacy password or protocol"
                }
                K::KeyExtensionRequired => "AES-192/256 needs a key extension this device does not use",
                _ => "SNMPv3 security check failed",
            };
            SnmpError::new(PollOutcome::AuthFailed, format!("{addr}: {what} ({kind})"))
        }
        E::CommunityMismatch => {
            SnmpError::new(PollOutcome::AuthFailed, format!("{addr} answered for another community"))
        }
        // A Report PDU instead of a Response: the agent refused the request (v3 unknown user,
        // wrong digest, unsupported security level).
        E::AsnWrongType if target.version == SnmpVersion::V3 => SnmpError::new(
            PollOutcome::AuthFailed,
            format!(
                "{addr} refused the request (SNMPv3 report): unknown user, wrong password or security level"
            ),
        ),
        E::Send | E::Receive => SnmpError::new(
            PollOutcome::Error,
            format!("{addr}: network error ({e}); is the address reachable and the port right?"),
        ),
        E::Crypto(m) => SnmpError::new(PollOutcome::Error, format!("{addr}: cryptography error: {m}")),
        _ => {
            SnmpError::new(PollOutcome::Malformed, format!("{addr} sent a reply that is not valid SNMP: {e}"))
        }
    }
}
