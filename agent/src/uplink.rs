//! The connection to the collector. One session: resolve, connect (QUIC, TLS 1.3, the device's
//! certificate), `Hello`, wait for `Welcome`, then send what the outbox's delivery state machine
//! picks (live reports first, then the backlog, within its window) while applying the
//! collector's acknowledgements and storing a renewed certificate when the collector sends one.
//! A device without a credential (or with an expired one) and a configured token enrolls first.
//! Any transient failure ends the session and the next one starts after a jittered exponential
//! backoff, with the next collector address; everything unacknowledged is resent, oldest first.
//! Rejections that no retry can fix (a refused token, a revoked device, an unsupported version)
//! end [`Uplink::run`] with an error that names the cause.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parta_common::quic::{FramedRecv, RecvError, close_reason, send_message};
use parta_protocol::policy::{PolicyId, PolicyOffer, PolicyStatus};
use parta_protocol::{Certificate, Hello, Message, RejectReason, Welcome};
use tokio::sync::{Notify, watch};

use crate::backoff::Backoff;
use crate::config::{CollectorAddr, UplinkSettings};
use crate::credential::{self, Credential, Identity};
use crate::enroll::{self, EnrollError};
use crate::outbox::{Outbox, lock};
use crate::tls::{self, Present, Trust};
use crate::update::Inbound;
use parta_protocol::update::UpdateMessage;

/// Time allowed for connecting and for the collector's answer to `Hello`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// A session that worked for this long resets the backoff.
const STABLE_SESSION: Duration = Duration::from_secs(30);

/// The uplink stopped for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UplinkError {
    /// The collector refused this agent for a reason only a configuration change or an
    /// administrator can fix.
    #[error("{}", explain_rejection(*reason, detail))]
    Rejected {
        /// Why.
        reason: RejectReason,
        /// The collector's detail text.
        detail: String,
    },
    /// The device has no usable credential and nothing to enroll with.
    #[error("{0}")]
    NotEnrolled(String),
}

/// What a permanent refusal means for the person reading the agent's log.
pub fn explain_rejection(reason: RejectReason, detail: &str) -> String {
    let what = match reason {
        RejectReason::UnknownToken => {
            "the collector does not know the enrollment token (ask for a new join string: \
             `parta-collector token create --school ID`)"
                .to_owned()
        }
        RejectReason::RevokedToken => {
            "the enrollment token was revoked (ask for a new join string)".to_owned()
        }
        RejectReason::TokenExpired => {
            "the enrollment token has expired (ask for a new join string)".to_owned()
        }
        RejectReason::TokenUsedUp => {
            "the enrollment token has enrolled all the devices it was made for (ask for a new join string)"
                .to_owned()
        }
        RejectReason::SchoolMismatch => "the device belongs to another school than the token's".to_owned(),
        RejectReason::DeviceRevoked => {
            "an administrator revoked this device; it cannot report again (to enroll this \
             machine as a new device: `parta-agent enroll --new-device JOIN`)"
                .to_owned()
        }
        RejectReason::UnknownDevice => {
            "the collector does not know this device's certificate (enroll again: \
             `parta-agent enroll --force JOIN`)"
                .to_owned()
        }
        RejectReason::DeviceTaken => {
            "another enrolled device holds this device's id (a copied state directory?); \
             enroll as a new device: `parta-agent enroll --new-device JOIN`"
                .to_owned()
        }
        RejectReason::UnsupportedVersion => format!(
            "the collector does not speak protocol version {} of this agent ({}); upgrade the agent",
            parta_protocol::PROTOCOL_VERSION,
            crate::version::text()
        ),
        other => format!("the collector refused the agent: {other}"),
    };
    let what = format!("collector refused: {what}");
    if detail.is_empty() { what } else { format!("{what} ({detail})") }
}

/// How a session ended, when not by shutdown.
#[derive(Debug)]
enum SessionEnd {
    /// Retry after a backoff.
    Transient(String),
    /// Stop for good.
    Permanent(RejectReason, String),
    /// No credential and nothing to enroll with.
    NotEnrolled(String),
}

/// What the uplink needs to know.
#[derive(Debug, Clone)]
pub struct UplinkParams {
    /// Collectors, CA, token.
    pub settings: UplinkSettings,
    /// The device's key and credential.
    pub identity: Arc<Identity>,
    /// The `Hello` sent on every session (its running policy is the one in force then).
    pub hello: Hello,
    /// Policy offers in, answers out.
    pub policy: PolicyLink,
    /// Releases in, fetches and update states out.
    pub updates: crate::update::UpdateLink,
}

/// The uplink's side of the configuration exchange: it passes the collector's latest offer to
/// the runner, which applies it, and sends the runner's answers.
#[derive(Debug, Clone)]
pub struct PolicyLink {
    /// The latest offer received.
    pub offers: watch::Sender<Option<PolicyOffer>>,
    /// The runner's latest answer.
    pub answers: watch::Receiver<PolicyAnswer>,
}

/// What the runner answers about policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyAnswer {
    /// The policy in force (named in `Hello`).
    pub running: Option<PolicyId>,
    /// The latest outcome, sent to the collector.
    pub status: Option<PolicyStatus>,
}

/// Delivers the outbox to the collector until shutdown or a permanent rejection.
#[derive(Debug)]
pub struct Uplink {
    params: UplinkParams,
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>,
    link: Arc<Mutex<LinkState>>,
    backoff: Backoff,
    /// Sessions tried, to pick the next collector address.
    attempts: usize,
    /// Sessions established, numbering them for the update task.
    established: u64,
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
        Self { params, outbox, wake, link, backoff, attempts: 0, established: 0 }
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
                    return Err(UplinkError::Rejected { reason, detail });
                }
                SessionEnd::NotEnrolled(why) => return Err(UplinkError::NotEnrolled(why)),
                SessionEnd::Transient(why) => {
                    if started.elapsed() >= STABLE_SESSION {
                        self.backoff.reset();
                    }
                    let delay = self.backoff.next_delay(&mut rand::rng());
                    self.attempts += 1;
                    tracing::warn!(error = %why,
                        retry_in = %humantime::format_duration(round_ms(delay)), "collector session ended");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = parta_common::shutdown::stopped(&mut shutdown) => return Ok(()),
                    }
                }
            }
        }
    }

    /// The collector address of this attempt: the configured ones in turn.
    fn collector(&self) -> CollectorAddr {
        let list = &self.params.settings.collectors;
        list[self.attempts % list.len()].clone()
    }

    /// A credential that is not expired, enrolling first when needed and possible.
    async fn credential(&mut self, addr: &CollectorAddr) -> Result<Credential, SessionEnd> {
        let now = crate::runner::now_ms();
        let current = self.params.identity.credential();
        if let Some(c) = current.as_ref().filter(|c| !c.expired(now)) {
            return Ok(c.clone());
        }
        let s = &self.params.settings;
        let Some(token) = s.enroll_token.clone() else {
            return Err(SessionEnd::NotEnrolled(match current {
                Some(c) => format!(
                    "the device's credential expired on {}; enroll again: `parta-agent enroll --force JOIN`",
                    enroll::rfc3339_ms(c.not_after_ms)
                ),
                None => "this device has not enrolled and no enrollment token is configured".to_owned(),
            }));
        };
        let identity = Arc::clone(&self.params.identity);
        let enrolled = enroll::enroll(
            std::slice::from_ref(addr),
            s.server_name.as_deref(),
            Trust::CaFile(&s.ca_cert),
            &identity.state_dir,
            &identity.key,
            &token,
            self.params.hello.kind,
        )
        .await;
        match enrolled {
            Ok(c) => {
                tracing::info!(device = %c.device_id, school = %c.school, collector = %addr.to_socket_string(),
                    not_after = %enroll::rfc3339_ms(c.not_after_ms), "enrolled with the collector");
                identity.set(Some(c.clone()));
                Ok(c)
            }
            Err(EnrollError::Refused { reason, detail }) if reason.is_permanent() => {
                Err(SessionEnd::Permanent(reason, detail))
            }
            Err(e) => Err(SessionEnd::Transient(format!("enrolling: {e}"))),
        }
    }

    async fn session(&mut self) -> SessionEnd {
        let collector = self.collector();
        let mut end = match self.credential(&collector).await {
            Ok(credential) => self.connect(&collector, &credential).await,
            Err(end) => end,
        };
        if matches!(end, SessionEnd::Permanent(RejectReason::UnknownDevice, _))
            && self.params.settings.enroll_token.is_some()
        {
            // The collector lost its record of this device (its data was reset, say): with a
            // token at hand, the next session enrolls again with the same key.
            self.params.identity.set(None);
            end = SessionEnd::Transient(
                "the collector does not know this device's certificate; enrolling again".into(),
            );
        }
        lock(&self.outbox).on_disconnected();
        {
            let mut link = link_state(&self.link);
            link.connected_since = None;
            let (SessionEnd::Transient(why) | SessionEnd::Permanent(_, why) | SessionEnd::NotEnrolled(why)) =
                &end;
            link.last_error = Some((std::time::SystemTime::now(), why.clone()));
        }
        end
    }

    async fn connect(&mut self, collector: &CollectorAddr, credential: &Credential) -> SessionEnd {
        let addr = match enroll::resolve(collector).await {
            Ok(a) => a,
            Err(e) => return SessionEnd::Transient(e),
        };
        let config = match tls::client_config(
            Trust::CaFile(&self.params.settings.ca_cert),
            Present::Device(credential, &self.params.identity.key),
        ) {
            Ok(c) => c,
            Err(e) => return SessionEnd::Transient(format!("TLS configuration: {e}")),
        };
        let bind: SocketAddr = if addr.is_ipv6() { ([0u16; 8], 0).into() } else { ([0, 0, 0, 0], 0).into() };
        let mut endpoint = match quinn::Endpoint::client(bind) {
            Ok(e) => e,
            Err(e) => return SessionEnd::Transient(format!("cannot open a UDP socket: {e}")),
        };
        endpoint.set_default_client_config(config);
        let server_name = self.params.settings.server_name_for(collector);
        let end = self.converse(&endpoint, addr, &server_name).await;
        // Give the close frame a moment to leave; never block shutdown on it.
        let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
        end
    }

    async fn converse(
        &mut self,
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        server_name: &str,
    ) -> SessionEnd {
        let connecting = match endpoint.connect(addr, server_name) {
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
            SessionEnd::Transient(_) | SessionEnd::NotEnrolled(_) => 0u32,
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
        let mut answers = self.params.policy.answers.clone();
        let hello =
            Hello { running_policy: answers.borrow_and_update().running, ..self.params.hello.clone() };
        if let Err(e) = send_message(&mut send, &Message::Hello(hello)).await {
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
        self.on_welcome(conn, &welcome).await;
        self.established += 1;
        let session = self.established;
        let updates = self.params.updates.clone();
        if updates.inbox.send(Inbound::Session(session)).await.is_err() {
            return SessionEnd::Transient("the update task is gone".into());
        }
        let latest = updates.latest.borrow().clone();
        let ready = UpdateMessage::Ready { target: crate::update::TARGET.to_owned(), latest };
        if let Err(e) = send_message(&mut send, &Message::Update(ready)).await {
            return SessionEnd::Transient(format!("sending Update(Ready): {e}"));
        }
        let mut update_out = updates.outbox.lock().await;
        let outbox = Arc::clone(&self.outbox);
        let wake = Arc::clone(&self.wake);
        let link = Arc::clone(&self.link);
        let identity = Arc::clone(&self.params.identity);
        let offers = self.params.policy.offers.clone();
        let writer = async {
            // `changed()` marks the answer seen: remember that it is still to be sent.
            let mut answer_due = false;
            loop {
                // An answer about a policy goes out first; one from before this session is
                // asked for again by the collector's offer.
                if std::mem::take(&mut answer_due) || answers.has_changed().unwrap_or(false) {
                    let status = answers.borrow_and_update().status.clone();
                    if let Some(s) = status
                        && let Err(e) = send_message(&mut send, &Message::PolicyStatus(s)).await
                    {
                        return SessionEnd::Transient(format!("sending PolicyStatus: {e}"));
                    }
                }
                // What the update task has to say for this session (fetches, states).
                while let Ok((n, msg)) = update_out.try_recv() {
                    if n == session
                        && let Err(e) = send_message(&mut send, &Message::Update(msg)).await
                    {
                        return SessionEnd::Transient(format!("sending Update: {e}"));
                    }
                }
                let batch = crate::blocking::run(|| lock(&outbox).next_batch());
                let records = match batch {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        tokio::select! {
                            () = wake.notified() => {}
                            out = update_out.recv() => match out {
                                Some((n, msg)) if n == session => {
                                    if let Err(e) = send_message(&mut send, &Message::Update(msg)).await {
                                        return SessionEnd::Transient(format!("sending Update: {e}"));
                                    }
                                }
                                Some(_) => {}
                                // The task is gone only when the agent stops.
                                None => wake.notified().await,
                            },
                            changed = answers.changed() => match changed {
                                Ok(()) => answer_due = true,
                                // The runner is gone only when the agent stops.
                                Err(_) => wake.notified().await,
                            },
                        }
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
            let mut acked = false;
            loop {
                match recv.next().await {
                    Ok(Some(Message::Ack(ack))) => {
                        crate::blocking::run(|| lock(&outbox).on_ack(&ack, std::time::Instant::now()));
                        link_state(&link).last_ack = Some(std::time::SystemTime::now());
                        wake.notify_one();
                        if !std::mem::replace(&mut acked, true) {
                            let _ = updates.inbox.try_send(Inbound::Acked(session));
                        }
                    }
                    Ok(Some(Message::Release(m))) => {
                        if updates.inbox.send(Inbound::Release(session, m)).await.is_err() {
                            return SessionEnd::Transient("the update task is gone".into());
                        }
                    }
                    Ok(Some(Message::Renewed(cert))) => renew(&identity, &cert).await,
                    Ok(Some(Message::Policy(offer))) => {
                        tracing::debug!(policy = %offer.id.short(), "the collector offers a policy");
                        offers.send_replace(Some(offer));
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

    async fn on_welcome(&mut self, conn: &quinn::Connection, w: &Welcome) {
        let pending = {
            let mut ob = lock(&self.outbox);
            ob.on_connected(w, std::time::Instant::now());
            ob.stats().pending
        };
        {
            let mut link = link_state(&self.link);
            link.connected_since = Some(std::time::SystemTime::now());
            link.sessions += 1;
        }
        tracing::info!(collector = %conn.remote_address(), collector_version = %w.collector_version,
            device = %w.device_id, school = %w.school_id, stored_up_to = w.stored_up_to, pending, "connected to collector");
        // The collector's record of the device's school wins (an administrator may have moved
        // it); keep the credential file saying so.
        let identity = &self.params.identity;
        if let Some(c) = identity.credential().filter(|c| c.school != w.school_id) {
            tracing::info!(from = %c.school, to = %w.school_id, "the collector records this device under another school now");
            let updated = Credential { school: w.school_id.clone(), ..c };
            store_credential(identity, updated).await;
        }
    }
}

/// Stores a renewed certificate; the next session uses it.
async fn renew(identity: &Arc<Identity>, cert: &Certificate) {
    let Some(current) = identity.credential() else { return };
    tracing::info!(not_after = %enroll::rfc3339_ms(cert.not_after_ms), "the collector renewed the device's certificate");
    store_credential(identity, credential::renewed(&current, cert)).await;
}

/// Writes a credential off the async thread, then makes it current.
async fn store_credential(identity: &Arc<Identity>, c: Credential) {
    let dir = identity.state_dir.clone();
    let stored = c.clone();
    match tokio::task::spawn_blocking(move || credential::store(&dir, &stored)).await {
        Ok(Ok(())) => identity.set(Some(c)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot store the device's credential; the current one stays")
        }
        Err(e) => tracing::warn!(error = %e, "cannot store the device's credential"),
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

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
