//! One agent connection: an enrollment (`Enroll` → `Enrolled`) or a reporting session (`Hello` →
//! `Welcome` → reports and acks, a renewed certificate when due).
//!
//! Until the device is authenticated the connection holds one of the server's handshake slots,
//! may send one frame of at most [`PRE_AUTH_MAX_FRAME_LEN`] bytes, and only `Hello` or `Enroll`
//! is decoded. The device is the one its client certificate was issued to and its school the one
//! the collector has on record; nothing the agent writes in a message says who it is.
//!
//! Every refusal closes only this connection, with a `Reject` frame and the reason's close code,
//! is logged and counted in `/metrics`; everybody else keeps being served.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parta_common::quic::{FramedRecv, RecvError, send_message};
use parta_protocol::heap::HeapSize as _;
use parta_protocol::message::tag;
use parta_protocol::update::{ReleaseMessage, UpdateMessage};
use parta_protocol::validate::{seq_in_window, validate_enroll, validate_hello, validate_report};
use parta_protocol::{
    Ack, DecodeError, EnrollRequest, FrameError, Hello, MAX_FRAME_LEN, Message, PRE_AUTH_MAX_FRAME_LEN,
    Reject, RejectReason, Report, SeqSet, Welcome,
};
use tokio::sync::{OwnedSemaphorePermit, oneshot, watch};

use super::registry::{Claim, Registry};
use super::{Job, JobSender, Memory};
use crate::fleet::book::{Authenticated, DeviceBook};
use crate::fleet::ca::{DeviceCa, sha256};
use crate::fleet::enroll::{Enroller, Refusal};
use crate::metrics::Metrics;
use crate::policy::deliver::Delivery;
use crate::release::serve::UpdateSession;
use crate::storage::rows::{Accepted, SessionRecord};
use crate::storage::{Store, now_secs};
use crate::tokens::TokenCache;

/// Time a connection has to complete its QUIC handshake, and then to open its stream and send
/// its first message; it holds a handshake slot meanwhile.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Reports of one session awaiting storage, at most; beyond it the session stops reading and
/// QUIC flow control holds the agent back.
pub const SESSION_WINDOW: usize = 1024;
/// Longest wait for a previous session of the same device to finish storing its reports.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before another renewal attempt after one failed.
const RENEW_RETRY: Duration = Duration::from_secs(60);
/// Messages accepted before the device is authenticated.
const PRE_AUTH: &[u32] = &[tag::HELLO, tag::ENROLL];
/// Messages accepted after `Hello`.
const REPORTS: &[u32] = &[tag::REPORT, tag::POLICY_STATUS, tag::UPDATE];

/// What every session needs.
#[derive(Debug)]
pub struct SessionCtx {
    /// Storage, for ledger lookups.
    pub store: Store,
    /// Enrollment tokens.
    pub tokens: Arc<TokenCache>,
    /// The fleet: who a certificate is, which school a report belongs to.
    pub book: Arc<DeviceBook>,
    /// Enrollment and renewal.
    pub enroller: Enroller,
    /// Validity of device certificates (a certificate with a third of it left is renewed).
    pub cert_validity: Duration,
    /// Per-device state.
    pub registry: Arc<Registry>,
    /// The batcher's queue.
    pub jobs: JobSender,
    /// Memory budget of reports awaiting storage.
    pub memory: Memory,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Name of this collector instance, recorded with sessions.
    pub collector_name: String,
    /// Turns true when the collector shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The policies in force.
    pub policies: Arc<crate::policy::book::PolicyBook>,
    /// Where devices' policy answers are recorded.
    pub policy_status: crate::policy::deliver::StatusSender,
    /// Releases: what devices are offered, the artifacts, where their states go.
    pub courier: crate::release::serve::Courier,
}

/// A release chunk being read for the agent.
type ChunkFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<ReleaseMessage, String>> + Send>>;

/// How a session ended.
#[derive(Debug)]
enum End {
    /// The agent went away or closed; nothing to tell it.
    Gone(String),
    /// The collector ends the session for a reason it tells the agent.
    Reject(RejectReason, String),
}

impl From<Refusal> for End {
    fn from(r: Refusal) -> Self {
        End::Reject(r.reason, r.detail)
    }
}

/// Serves one incoming connection to the end. `slot` is the connection's handshake slot, given
/// back once the device is authenticated (or the connection ends).
pub async fn handle(ctx: Arc<SessionCtx>, incoming: quinn::Incoming, slot: OwnedSemaphorePermit) {
    let peer = incoming.remote_address();
    let conn = match tokio::time::timeout(HELLO_TIMEOUT, incoming).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "QUIC handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "QUIC handshake did not complete in time");
            return;
        }
    };
    // The certificate rustls verified against the device CA, if the agent presented one.
    let certificate = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().map(|c| sha256(c)));
    ctx.metrics.open_connections.inc();
    let end = match tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok((send, recv))) => {
            let mut recv = FramedRecv::new(recv, PRE_AUTH_MAX_FRAME_LEN);
            recv.set_allowed(Some(PRE_AUTH));
            let mut s = Session { ctx: &ctx, conn: &conn, send, recv, peer, certificate, slot: Some(slot) };
            let end = s.run().await;
            if let End::Reject(reason, detail) = &end {
                // Count and log before telling the agent, so that whoever sees the refusal also
                // finds it in /metrics.
                record_rejection(&ctx, peer, *reason, detail);
                s.reject(*reason, detail).await;
            }
            end
        }
        Ok(Err(e)) => End::Gone(format!("no stream opened: {e}")),
        Err(_) => {
            let detail = "no stream opened in time".to_owned();
            record_rejection(&ctx, peer, RejectReason::UnexpectedMessage, &detail);
            End::Reject(RejectReason::UnexpectedMessage, detail)
        }
    };
    match &end {
        End::Gone(why) => {
            tracing::debug!(%peer, reason = %why, "agent connection ended");
            conn.close(quinn::VarInt::from_u32(0), b"");
        }
        End::Reject(reason, detail) => {
            conn.close(quinn::VarInt::from_u32(reason.code()), truncate(detail).as_bytes());
        }
    }
    ctx.metrics.open_connections.dec();
}

fn record_rejection(ctx: &SessionCtx, peer: SocketAddr, reason: RejectReason, detail: &str) {
    ctx.metrics.reject(reason);
    if matches!(reason, RejectReason::Superseded | RejectReason::ShuttingDown) {
        tracing::info!(%peer, %reason, %detail, "session ended");
    } else {
        tracing::warn!(%peer, %reason, %detail, "session rejected");
    }
}

struct Session<'a> {
    ctx: &'a SessionCtx,
    conn: &'a quinn::Connection,
    send: quinn::SendStream,
    recv: FramedRecv,
    peer: SocketAddr,
    /// SHA-256 of the client certificate, when one was presented (and verified).
    certificate: Option<[u8; 32]>,
    /// The handshake slot, held until the device is authenticated.
    slot: Option<OwnedSemaphorePermit>,
}

impl Session<'_> {
    async fn run(&mut self) -> End {
        let first = match tokio::time::timeout(HELLO_TIMEOUT, self.recv.next()).await {
            Err(_) => return End::Reject(RejectReason::UnexpectedMessage, "no Hello in time".into()),
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return End::Gone("stream closed before Hello".into()),
            Ok(Err(e)) => return from_recv_error(e),
        };
        match first {
            Message::Enroll(req) => self.enroll(req).await,
            Message::Hello(hello) => self.hello(hello).await,
            other => {
                End::Reject(RejectReason::UnexpectedMessage, format!("expected Hello, got {}", other.name()))
            }
        }
    }

    /// An enrollment: the token checked here, the decision and the certificate by the enroller.
    async fn enroll(&mut self, req: EnrollRequest) -> End {
        if let Err(e) = validate_enroll(&req) {
            return End::Reject(RejectReason::Malformed, format!("invalid Enroll: {e}"));
        }
        let token = match self.ctx.tokens.check(&self.ctx.store, &req.token, now_secs()).await {
            Ok(t) => t,
            Err(reason) => {
                let detail = match reason {
                    RejectReason::UnknownToken => "unknown enrollment token".to_owned(),
                    RejectReason::RevokedToken => "the enrollment token was revoked".to_owned(),
                    RejectReason::TokenExpired => "the enrollment token has expired".to_owned(),
                    _ => "cannot verify the enrollment token now; retry later".to_owned(),
                };
                return End::Reject(reason, detail);
            }
        };
        if let Err(e) = DeviceCa::check_key(&req.public_key) {
            return End::Reject(RejectReason::Malformed, e.to_string());
        }
        let enrolled = match self.ctx.enroller.enroll(token, req).await {
            Ok(e) => e,
            Err(refusal) => return refusal.into(),
        };
        self.ctx.metrics.enrollments.inc();
        tracing::info!(peer = %self.peer, device = %enrolled.device_id, school = %enrolled.school_id, "device enrolled");
        if let Err(e) = send_message(&mut self.send, &Message::Enrolled(enrolled)).await {
            return End::Gone(format!("sending Enrolled: {e}"));
        }
        let _ = self.send.finish();
        // The agent closes once it has read the answer.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.conn.closed()).await;
        End::Gone("enrolled".into())
    }

    /// A reporting session of the device the certificate names.
    async fn hello(&mut self, hello: Hello) -> End {
        if let Err(e) = validate_hello(&hello) {
            return End::Reject(RejectReason::Malformed, format!("invalid Hello: {e}"));
        }
        let Some(certificate) = self.certificate else {
            return End::Reject(
                RejectReason::NotEnrolled,
                "no device certificate: the device must enroll first (`parta-agent enroll JOIN`)".into(),
            );
        };
        let auth = match self.ctx.book.authenticate(&self.ctx.store, &certificate).await {
            Ok(a) => a,
            Err(reason) => {
                let detail = match reason {
                    RejectReason::DeviceRevoked => "this device was revoked by an administrator".to_owned(),
                    RejectReason::UnknownDevice => {
                        "the certificate is not one this collector issued to an enrolled device".to_owned()
                    }
                    _ => "cannot verify the device now; retry later".to_owned(),
                };
                return End::Reject(reason, detail);
            }
        };
        // Authenticated: the slot goes back, the full flow-control window, frame size and
        // reports are allowed.
        self.slot = None;
        self.conn.set_receive_window(quinn::VarInt::from_u32(crate::tls::AUTHENTICATED_RECEIVE_WINDOW));
        self.recv.set_max_frame(MAX_FRAME_LEN);
        self.recv.set_allowed(Some(REPORTS));
        let device = auth.device;
        let claim = self.ctx.registry.claim(device);
        let end = self.owned(&hello, &auth, &claim).await;
        // Whatever happened, every report this session handed to storage is resolved now.
        let _ = claim.done.send(true);
        self.ctx.registry.release(device, claim.id);
        end
    }

    /// The part of the session that owns the device.
    async fn owned(&mut self, hello: &Hello, auth: &Authenticated, claim: &Claim) -> End {
        let device = auth.device;
        if let Some(mut previous) = claim.previous.clone() {
            let drained = async {
                let _ = previous.wait_for(|done| *done).await;
            };
            if tokio::time::timeout(TAKEOVER_TIMEOUT, drained).await.is_err() {
                return End::Reject(
                    RejectReason::Internal,
                    "the previous session of this device is still storing its reports; retry later".into(),
                );
            }
        }
        let stored = match self.ctx.registry.stored(&self.ctx.store, device).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%device, error = %e, "cannot read the device's ledger");
                return End::Reject(RejectReason::Internal, "storage unavailable; retry later".into());
            }
        };
        let welcome = Welcome {
            collector_version: env!("CARGO_PKG_VERSION").to_owned(),
            device_id: device,
            school_id: auth.school.clone(),
            stored_up_to: stored.contiguous_from_one(),
            highest_seq: stored.max(),
            credential_expires_ms: i64::from(auth.cert_not_after) * 1000,
        };
        if let Err(e) = send_message(&mut self.send, &Message::Welcome(welcome)).await {
            return End::Gone(format!("sending Welcome: {e}"));
        }
        self.ctx.metrics.sessions_accepted.inc();
        tracing::info!(peer = %self.peer, %device, school = %auth.school, kind = %hello.kind,
            agent_version = %hello.agent_version, stored_up_to = stored.contiguous_from_one(), "agent session accepted");
        let record = SessionRecord {
            device_id: device,
            school_id: auth.school.clone(),
            kind: hello.kind,
            agent_version: hello.agent_version.clone(),
            collector: self.ctx.collector_name.clone(),
            connected_at: now_secs(),
        };
        if self.ctx.jobs.send(Job::Session(record)).await.is_err() {
            return End::Reject(RejectReason::ShuttingDown, "collector is stopping".into());
        }
        let mut policy = Delivery::start(
            Arc::clone(&self.ctx.policies),
            self.ctx.policy_status.clone(),
            device,
            auth.school.clone(),
            hello.running_policy,
        );
        if let Some(offer) = policy.next_offer() {
            tracing::info!(%device, policy = %offer.id.short(), "offering the device its policy");
            if let Err(e) = send_message(&mut self.send, &Message::Policy(offer)).await {
                return End::Gone(format!("sending Policy: {e}"));
            }
        }
        let mut updates = UpdateSession::new(self.ctx.courier.clone(), device, &hello.agent_version);
        let mut pending: VecDeque<(u64, Option<oneshot::Receiver<()>>)> = VecDeque::new();
        let end = self.exchange(hello, auth, claim, &mut pending, &mut policy, &mut updates).await;
        for (_, rx) in pending {
            if let Some(rx) = rx {
                let _ = rx.await;
            }
        }
        end
    }

    /// When a certificate valid until `not_after` (seconds) is due for renewal: once a third of
    /// the validity is left.
    fn renewal_due(&self, not_after: u32) -> tokio::time::Instant {
        let left_at = u64::from(not_after).saturating_sub(self.ctx.cert_validity.as_secs() / 3);
        let wait = left_at.saturating_sub(u64::from(now_secs()));
        tokio::time::Instant::now() + Duration::from_secs(wait)
    }

    async fn exchange(
        &mut self,
        hello: &Hello,
        auth: &Authenticated,
        claim: &Claim,
        pending: &mut VecDeque<(u64, Option<oneshot::Receiver<()>>)>,
        policy: &mut Delivery,
        updates: &mut UpdateSession,
    ) -> End {
        // The chunk being read for the agent's fetch (one at a time).
        let mut fetch: Option<ChunkFuture> = None;
        let mut shutdown = self.ctx.shutdown.clone();
        // Numbers received in this session and not yet acknowledged: a second copy within one
        // session is an agent bug, refused rather than stored twice.
        let mut unacked: HashSet<u64> = HashSet::new();
        let mut blocked_since: Option<Instant> = None;
        let mut renew_at = self.renewal_due(auth.cert_not_after);
        loop {
            let can_read = pending.len() < SESSION_WINDOW;
            // Backpressure: time this session could not take reports because its earlier
            // reports are not stored yet.
            match (can_read, blocked_since) {
                (false, None) => blocked_since = Some(Instant::now()),
                (true, Some(t)) => {
                    self.ctx.metrics.backpressure_seconds.inc_by(t.elapsed().as_secs_f64());
                    blocked_since = None;
                }
                _ => {}
            }
            tokio::select! {
                biased;
                () = claim.cancel.notified() => {
                    if claim.revoked.load(Ordering::SeqCst) {
                        return End::Reject(RejectReason::DeviceRevoked, "this device was revoked by an administrator".into());
                    }
                    return End::Reject(RejectReason::Superseded, "a newer session of this device took over".into());
                }
                () = parta_common::shutdown::stopped(&mut shutdown) => {
                    return End::Reject(RejectReason::ShuttingDown, "collector is stopping".into());
                }
                stored = wait_front(pending), if !pending.is_empty() => {
                    if stored.is_err() {
                        return End::Reject(RejectReason::ShuttingDown, "collector is stopping".into());
                    }
                    let stored = pop_resolved(pending);
                    for &(a, b) in stored.ranges() {
                        for seq in a..=b {
                            unacked.remove(&seq);
                        }
                    }
                    if let Err(e) = send_message(&mut self.send, &Message::Ack(Ack::of(&stored))).await {
                        return End::Gone(format!("sending Ack: {e}"));
                    }
                }
                () = policy.changed() => {
                    if let Some(offer) = policy.next_offer() {
                        tracing::info!(device = %auth.device, policy = %offer.id.short(), "offering the device its changed policy");
                        if let Err(e) = send_message(&mut self.send, &Message::Policy(offer)).await {
                            return End::Gone(format!("sending Policy: {e}"));
                        }
                    }
                }
                () = updates.changed() => {
                    if let Err(why) = self.offer_release(auth, updates).await {
                        return End::Gone(why);
                    }
                }
                chunk = async {
                    match fetch.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                }, if fetch.is_some() => {
                    fetch = None;
                    match chunk {
                        Ok(m) => {
                            let served = match &m {
                                ReleaseMessage::Chunk { bytes, .. } => bytes.len() as u64,
                                ReleaseMessage::Offer { .. } => 0,
                            };
                            if let Err(e) = send_message(&mut self.send, &Message::Release(m)).await {
                                return End::Gone(format!("sending a release chunk: {e}"));
                            }
                            self.ctx.metrics.release_bytes.inc_by(served);
                        }
                        Err(e) => {
                            tracing::error!(device = %auth.device, error = %e, "cannot read a release artifact");
                            return End::Reject(RejectReason::Internal, "cannot read the release artifact; retry later".into());
                        }
                    }
                }
                () = tokio::time::sleep_until(renew_at) => {
                    match self.ctx.enroller.renew(auth.device).await {
                        Ok(cert) => {
                            self.ctx.metrics.renewals.inc();
                            tracing::info!(device = %auth.device, not_after_ms = cert.not_after_ms, "renewed the device's certificate");
                            // A session may outlive the new certificate's renewal time too.
                            let not_after = u32::try_from(cert.not_after_ms / 1000).unwrap_or(u32::MAX);
                            renew_at = self.renewal_due(not_after);
                            if let Err(e) = send_message(&mut self.send, &Message::Renewed(cert)).await {
                                return End::Gone(format!("sending Renewed: {e}"));
                            }
                        }
                        Err(r) if r.reason == RejectReason::DeviceRevoked => return r.into(),
                        Err(r) => {
                            tracing::warn!(device = %auth.device, reason = %r.reason, detail = %r.detail, "cannot renew the device's certificate; retrying");
                            renew_at = tokio::time::Instant::now() + RENEW_RETRY;
                        }
                    }
                }
                msg = self.recv.next(), if can_read => match msg {
                    Ok(Some(Message::Report(report))) => {
                        if let Err(e) = validate_report(&report) {
                            return End::Reject(RejectReason::InvalidReport, format!("report {}: {e}", report.seq));
                        }
                        let highest = self.ctx.registry.highest(auth.device);
                        if !seq_in_window(report.seq, highest) {
                            return End::Reject(RejectReason::InvalidReport, format!(
                                "report {} is more than {} above the highest stored number ({highest})",
                                report.seq, parta_protocol::validate::SEQ_WINDOW));
                        }
                        if !unacked.insert(report.seq) {
                            return End::Reject(RejectReason::InvalidReport,
                                format!("report {} sent twice in one session", report.seq));
                        }
                        let bytes = self.recv.last_frame_len();
                        match self.submit(hello, auth, report, bytes).await {
                            Some(entry) => pending.push_back(entry),
                            None => return End::Reject(RejectReason::ShuttingDown, "collector is stopping".into()),
                        }
                    }
                    Ok(Some(Message::PolicyStatus(status))) => {
                        if let Err(e) = policy.on_status(&status) {
                            return End::Reject(RejectReason::Malformed, e);
                        }
                    }
                    Ok(Some(Message::Update(msg))) => {
                        let ready = matches!(msg, UpdateMessage::Ready { .. });
                        match updates.on_message(msg) {
                            Err(e) => return End::Reject(RejectReason::Malformed, e),
                            Ok(Some(job)) => {
                                if fetch.is_some() {
                                    return End::Reject(RejectReason::Malformed,
                                        "Update(Fetch) before the previous chunk was sent".into());
                                }
                                fetch = Some(Box::pin(job.answer(Arc::clone(&self.ctx.courier.bandwidth))));
                            }
                            Ok(None) => {}
                        }
                        if ready && let Err(why) = self.offer_release(auth, updates).await {
                            return End::Gone(why);
                        }
                    }
                    Ok(Some(other)) => {
                        return End::Reject(RejectReason::UnexpectedMessage, format!("unexpected {} during session", other.name()));
                    }
                    Ok(None) => return End::Gone("agent closed the stream".into()),
                    Err(e) => return from_recv_error(e),
                },
            }
        }
    }

    /// Offers the device a release if a rollout gives it one it was not offered in this
    /// session; an error when the agent went away.
    async fn offer_release(
        &mut self,
        auth: &Authenticated,
        updates: &mut UpdateSession,
    ) -> Result<(), String> {
        let scopes = self.ctx.policies.set().scopes(&auth.school, Some(auth.device));
        match updates.next_offer(&scopes) {
            Some(offer) => send_message(&mut self.send, &Message::Release(offer))
                .await
                .map_err(|e| format!("sending a release offer: {e}")),
            None => Ok(()),
        }
    }

    /// Hands a report to the batcher, or marks it as already stored. `None` when the batcher is
    /// gone (shutdown).
    async fn submit(
        &self,
        hello: &Hello,
        auth: &Authenticated,
        mut report: Report,
        bytes: usize,
    ) -> Option<(u64, Option<oneshot::Receiver<()>>)> {
        let seq = report.seq;
        let device = auth.device;
        if self.ctx.registry.is_stored(device, seq) {
            self.ctx.metrics.reports_duplicate.inc();
            return Some((seq, None));
        }
        let received_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
        let received = u32::try_from(received_ms / 1000).unwrap_or(u32::MAX);
        // The school of the report's time (an agent's clock cannot place it after now), as the
        // fleet records it; reports from before a move stay with the old school.
        let at_ms = report.agent_time_ms.min(received_ms);
        let school = self.ctx.book.school_at(device, at_ms).unwrap_or_else(|| auth.school.clone());
        super::bind::bind_ids(&mut report, &school);
        let dropped = super::bind::drop_far_days(&mut report, received_ms);
        if dropped > 0 {
            self.ctx.metrics.far_dated_dropped.inc_by(dropped as u64);
            tracing::warn!(%device, seq, dropped, agent_time_ms = report.agent_time_ms,
                "left out intervals, polls or runs dated far from today (is the device's clock wrong?)");
        }
        let accepted = Accepted {
            device_id: device,
            school_id: school,
            kind: hello.kind,
            agent_version: hello.agent_version.clone(),
            report,
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
            received,
            received_ms,
        };
        // What the report takes in memory while it waits for storage. Waiting for memory
        // (ClickHouse slower than the agents) is backpressure: this session stops reading.
        let memory = std::mem::size_of::<Accepted>() + accepted.report.heap_size();
        let blocked = Instant::now();
        let (held, waited) = self.ctx.memory.take(memory).await?;
        if waited {
            self.ctx.metrics.backpressure_seconds.inc_by(blocked.elapsed().as_secs_f64());
        }
        let (tx, rx) = oneshot::channel();
        self.ctx.jobs.send(Job::Report(Box::new(accepted), tx, held)).await.ok()?;
        Some((seq, Some(rx)))
    }

    /// Tells the agent why the session ends and gives it a moment to read that.
    async fn reject(&mut self, reason: RejectReason, detail: &str) {
        let msg = Message::Reject(Reject { reason, detail: truncate(detail) });
        let sent = tokio::time::timeout(Duration::from_secs(1), send_message(&mut self.send, &msg)).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = self.send.finish();
            // The agent closes the connection once it has read the Reject.
            let _ = tokio::time::timeout(Duration::from_millis(500), self.conn.closed()).await;
        }
    }
}

/// Resolves when the oldest pending report is stored (immediately for duplicates).
async fn wait_front(
    pending: &mut VecDeque<(u64, Option<oneshot::Receiver<()>>)>,
) -> Result<(), oneshot::error::RecvError> {
    match pending.front_mut() {
        Some((_, Some(rx))) => rx.await,
        _ => Ok(()),
    }
}

/// Pops the front (resolved) and every following resolved entry; returns the popped numbers.
fn pop_resolved(pending: &mut VecDeque<(u64, Option<oneshot::Receiver<()>>)>) -> SeqSet {
    let mut stored = SeqSet::new();
    if let Some((seq, _)) = pending.pop_front() {
        stored.insert(seq);
    }
    while let Some((seq, rx)) = pending.front_mut() {
        let ready = match rx {
            None => true,
            Some(rx) => matches!(rx.try_recv(), Ok(())),
        };
        if !ready {
            break;
        }
        stored.insert(*seq);
        pending.pop_front();
    }
    stored
}

fn from_recv_error(e: RecvError) -> End {
    match e {
        RecvError::Frame(FrameError::TooLarge { len, max }) => End::Reject(
            RejectReason::FrameTooLarge,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ),
        RecvError::Frame(FrameError::NotAllowed { tag }) => End::Reject(
            RejectReason::UnexpectedMessage,
            format!("message type {tag} is not accepted at this point of the session"),
        ),
        RecvError::Frame(FrameError::Decode(d @ DecodeError::UnknownVersion { .. })) => {
            End::Reject(RejectReason::UnsupportedVersion, d.to_string())
        }
        RecvError::Frame(e) => End::Reject(RejectReason::Malformed, e.to_string()),
        other => End::Gone(other.to_string()),
    }
}

/// Close reasons and reject details are kept short.
fn truncate(s: &str) -> String {
    let mut s = s.to_owned();
    parta_protocol::validate::truncate_text(&mut s, 200);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_resolved_coalesces_ready_entries_in_order() {
        let (tx1, rx1) = oneshot::channel();
        let (tx3, rx3) = oneshot::channel::<()>();
        let (_tx4, rx4) = oneshot::channel::<()>();
        // Out of order: the live report 100 arrived between backlog reports.
        let mut q: VecDeque<_> =
            [(1, Some(rx1)), (100, None), (2, Some(rx3)), (3, Some(rx4)), (4, None)].into();
        tx1.send(()).unwrap();
        tx3.send(()).unwrap();
        assert_eq!(pop_resolved(&mut q).ranges(), &[(1, 2), (100, 100)]);
        assert_eq!(q.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4]);
    }
}
