//! The connection to the collector. One session: resolve, connect (QUIC, TLS 1.3), `Hello`,
//! wait for `Welcome`, then send what the outbox's delivery state machine picks (live reports
//! first, then the backlog, within its window) while applying the collector's acknowledgements.
//! Any transient failure ends the session and the next one starts after a jittered exponential
//! backoff; everything unacknowledged is resent, oldest first. Rejections that no retry can fix (bad token,
//! wrong school, unsupported version) end [`Uplink::run`] with an error that names the cause.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parta_common::quic::{FramedRecv, RecvError, close_reason, send_message};
use parta_protocol::{Hello, Message, RejectReason, Welcome};
use tokio::sync::{Notify, watch};

use crate::backoff::Backoff;
use crate::config::CollectorAddr;
use crate::outbox::{Outbox, lock};

/// Time allowed for connecting and for the collector's answer to `Hello`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// A session that worked for this long resets the backoff.
const STABLE_SESSION: Duration = Duration::from_secs(30);

/// The uplink stopped for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UplinkError {
    /// The collector refused this agent for a reason only a configuration change can fix.
    #[error("{}", explain_rejection(*reason, school, detail))]
    Rejected {
        /// Why.
        reason: RejectReason,
        /// The school the agent claimed.
        school: String,
        /// The collector's detail text.
        detail: String,
    },
}

fn explain_rejection(reason: RejectReason, school: &str, detail: &str) -> String {
    let what = match reason {
        RejectReason::UnknownToken => format!(
            "collector rejected the enrollment token for school {school}: the token is unknown \
             (create one with `parta-collector token create --school {school}`)"
        ),
        RejectReason::RevokedToken => {
            format!("collector rejected the enrollment token for school {school}: the token was revoked")
        }
        RejectReason::SchoolMismatch => format!(
            "collector rejected the enrollment token for school {school}: the token belongs to another school"
        ),
        RejectReason::UnsupportedVersion => format!(
            "collector does not speak protocol version {} of this agent ({}); upgrade the agent",
            parta_protocol::PROTOCOL_VERSION,
            env!("CARGO_PKG_VERSION")
        ),
        other => format!("collector rejected the agent: {other}"),
    };
    if detail.is_empty() { what } else { format!("{what} ({detail})") }
}

/// How a session ended, when not by shutdown.
#[derive(Debug)]
enum SessionEnd {
    /// Retry after a backoff.
    Transient(String),
    /// Stop for good.
    Permanent(RejectReason, String),
}

/// What the uplink needs to know.
#[derive(Debug, Clone)]
pub struct UplinkParams {
    /// Collector address.
    pub collector: CollectorAddr,
    /// Name to verify in the collector's certificate.
    pub server_name: String,
    /// QUIC client configuration (TLS, transport).
    pub client_config: quinn::ClientConfig,
    /// The `Hello` sent on every session.
    pub hello: Hello,
}

/// Delivers the outbox to the collector until shutdown or a permanent rejection.
#[derive(Debug)]
pub struct Uplink {
    params: UplinkParams,
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>,
    link: Arc<Mutex<LinkState>>,
    backoff: Backoff,
}

/// What the uplink tells `parta-agent status`.
#[derive(Debug, Clone, Default)]
pub struct LinkState {
    /// Start of the current session, when connected.
    pub connected_since: Option<std::time::SystemTime>,
    /// Last acknowledgement.
    pub last_ack: Option<std::time::SystemTime>,
    /// Last reason a session ended.
    pub last_error: Option<(std::time::SystemTime, String)>,
    /// Sessions established since start.
    pub sessions: u64,
}

/// Locks the shared link state (plain data: a poisoned lock is still consistent).
pub fn link_state(link: &Mutex<LinkState>) -> std::sync::MutexGuard<'_, LinkState> {
    link.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Uplink {
    /// `wake` is notified by whoever appends to the outbox; `link` receives the session state.
    pub fn new(
        params: UplinkParams,
        outbox: Arc<Mutex<Outbox>>,
        wake: Arc<Notify>,
        link: Arc<Mutex<LinkState>>,
        backoff: Backoff,
    ) -> Self {
        Self { params, outbox, wake, link, backoff }
    }

    /// Runs sessions until `shutdown` turns true (returns `Ok`) or the collector rejects the
    /// agent permanently.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), UplinkError> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let started = tokio::time::Instant::now();
            let end = tokio::select! {
                end = self.session() => end,
                () = parta_common::shutdown::stopped(&mut shutdown) => return Ok(()),
            };
            match end {
                SessionEnd::Permanent(reason, detail) => {
                    return Err(UplinkError::Rejected {
                        reason,
                        school: self.params.hello.school_id.clone(),
                        detail,
                    });
                }
                SessionEnd::Transient(why) => {
                    if started.elapsed() >= STABLE_SESSION {
                        self.backoff.reset();
                    }
                    let delay = self.backoff.next_delay(&mut rand::rng());
                    tracing::warn!(collector = %self.params.collector.to_socket_string(), error = %why,
                        retry_in = %humantime::format_duration(round_ms(delay)), "collector session ended");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = parta_common::shutdown::stopped(&mut shutdown) => return Ok(()),
                    }
                }
            }
        }
    }

    async fn session(&mut self) -> SessionEnd {
        let target = self.params.collector.to_socket_string();
        let addr = match resolve(&target).await {
            Ok(a) => a,
            Err(e) => return SessionEnd::Transient(e),
        };
        let bind: SocketAddr = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut endpoint = match quinn::Endpoint::client(bind) {
            Ok(e) => e,
            Err(e) => return SessionEnd::Transient(format!("cannot open a UDP socket: {e}")),
        };
        endpoint.set_default_client_config(self.params.client_config.clone());
        let end = self.converse(&endpoint, addr).await;
        lock(&self.outbox).on_disconnected();
        {
            let mut link = link_state(&self.link);
            link.connected_since = None;
            let (SessionEnd::Transient(why) | SessionEnd::Permanent(_, why)) = &end;
            link.last_error = Some((std::time::SystemTime::now(), why.clone()));
        }
        // Give the close frame a moment to leave; never block shutdown on it.
        let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
        end
    }

    async fn converse(&mut self, endpoint: &quinn::Endpoint, addr: SocketAddr) -> SessionEnd {
        let connecting = match endpoint.connect(addr, &self.params.server_name) {
            Ok(c) => c,
            Err(e) => return SessionEnd::Transient(format!("cannot connect to {addr}: {e}")),
        };
        let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return from_connection_error(&e, &format!("connecting to {addr}")),
            Err(_) => {
                return SessionEnd::Transient(format!("no answer from {addr} within {HANDSHAKE_TIMEOUT:?}"));
            }
        };
        let end = self.exchange(&conn).await;
        let code = match &end {
            SessionEnd::Transient(_) => 0u32,
            SessionEnd::Permanent(r, _) => r.code(),
        };
        conn.close(quinn::VarInt::from_u32(code), b"agent closing session");
        end
    }

    async fn exchange(&mut self, conn: &quinn::Connection) -> SessionEnd {
        let (mut send, recv) = match conn.open_bi().await {
            Ok(s) => s,
            Err(e) => return from_connection_error(&e, "opening the report stream"),
        };
        let mut recv = FramedRecv::new(recv, parta_protocol::MAX_FRAME_LEN);
        if let Err(e) = send_message(&mut send, &Message::Hello(self.params.hello.clone())).await {
            return SessionEnd::Transient(format!("sending Hello: {e}"));
        }
        let welcome = match tokio::time::timeout(HANDSHAKE_TIMEOUT, recv.next()).await {
            Err(_) => return SessionEnd::Transient("collector did not answer Hello in time".into()),
            Ok(first) => match first {
                Ok(Some(Message::Welcome(w))) => w,
                Ok(Some(Message::Reject(r))) => return rejected(r.reason, r.detail),
                Ok(Some(other)) => {
                    return SessionEnd::Transient(format!("collector answered Hello with {}", other.name()));
                }
                Ok(None) => return SessionEnd::Transient("collector closed the stream after Hello".into()),
                Err(e) => return from_recv_error(&e),
            },
        };
        self.on_welcome(conn, &welcome);
        let outbox = Arc::clone(&self.outbox);
        let wake = Arc::clone(&self.wake);
        let link = Arc::clone(&self.link);
        let writer = async {
            loop {
                let batch = lock(&outbox).next_batch();
                let records = match batch {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        wake.notified().await;
                        continue;
                    }
                    Err(e) => return SessionEnd::Transient(format!("reading the spool: {e}")),
                };
                // One write for the whole batch: QUIC then packs several reports per packet,
                // which matters when a backlog drains after an outage.
                let bytes: Vec<u8> = records.iter().flat_map(|r| r.1.iter().copied()).collect();
                if let Err(e) = send.write_all(&bytes).await {
                    return SessionEnd::Transient(format!("sending {} reports: {e}", records.len()));
                }
            }
        };
        let reader = async {
            loop {
                match recv.next().await {
                    Ok(Some(Message::Ack(ack))) => {
                        lock(&outbox).on_ack(&ack, std::time::Instant::now());
                        link_state(&link).last_ack = Some(std::time::SystemTime::now());
                        wake.notify_one();
                    }
                    Ok(Some(Message::Reject(r))) => return rejected(r.reason, r.detail),
                    Ok(Some(other)) => {
                        return SessionEnd::Transient(format!("unexpected {} from collector", other.name()));
                    }
                    Ok(None) => return SessionEnd::Transient("collector ended the session".into()),
                    Err(e) => return from_recv_error(&e),
                }
            }
        };
        tokio::select! {
            end = writer => end,
            end = reader => end,
        }
    }

    fn on_welcome(&mut self, conn: &quinn::Connection, w: &Welcome) {
        let mut ob = lock(&self.outbox);
        ob.on_connected(w, std::time::Instant::now());
        let pending = ob.stats().pending;
        drop(ob);
        let mut link = link_state(&self.link);
        link.connected_since = Some(std::time::SystemTime::now());
        link.sessions += 1;
        tracing::info!(collector = %conn.remote_address(), collector_version = %w.collector_version,
            stored_up_to = w.stored_up_to, pending, "connected to collector");
    }
}

fn rejected(reason: RejectReason, detail: String) -> SessionEnd {
    if reason.is_permanent() {
        SessionEnd::Permanent(reason, detail)
    } else {
        SessionEnd::Transient(format!("collector ended the session: {reason}: {detail}"))
    }
}

fn from_recv_error(e: &RecvError) -> SessionEnd {
    match e.reject_reason() {
        Some(reason) => rejected(reason, String::new()),
        None => SessionEnd::Transient(e.to_string()),
    }
}

fn from_connection_error(e: &quinn::ConnectionError, doing: &str) -> SessionEnd {
    match close_reason(e) {
        Some(reason) => rejected(reason, String::new()),
        None => SessionEnd::Transient(format!("{doing}: {e}")),
    }
}

async fn resolve(target: &str) -> Result<SocketAddr, String> {
    let mut addrs =
        tokio::net::lookup_host(target).await.map_err(|e| format!("cannot resolve {target}: {e}"))?;
    addrs.next().ok_or_else(|| format!("{target} resolves to no address"))
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
