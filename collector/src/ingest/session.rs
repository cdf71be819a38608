//! One agent session: `Hello` → authentication → `Welcome` → reports and cumulative acks.
//!
//! Every refusal closes only this connection, with a `Reject` frame and the reason's close code,
//! is logged and counted in `/metrics`; everybody else keeps being served.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parta_common::quic::{FramedRecv, RecvError, send_message};
use parta_protocol::SeqSet;
use parta_protocol::validate::{validate_hello, validate_report};
use parta_protocol::{
    Ack, DecodeError, FrameError, Hello, MAX_FRAME_LEN, Message, Reject, RejectReason, Report, Welcome,
};
use tokio::sync::{oneshot, watch};

use super::registry::{Claim, Registry};
use super::{Job, JobSender};
use crate::metrics::Metrics;
use crate::storage::rows::{Accepted, SessionRecord};
use crate::storage::{Store, now_secs};
use crate::tokens::TokenCache;

/// Time an agent has to open its stream and say `Hello`; generous, because in a reconnect
/// storm thousands of handshakes compete for the same CPU.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// Reports of one session awaiting storage, at most; beyond it the session stops reading and
/// QUIC flow control holds the agent back.
pub const SESSION_WINDOW: usize = 1024;
/// Longest wait for a previous session of the same device to finish storing its reports.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// What every session needs.
#[derive(Debug)]
pub struct SessionCtx {
    /// Storage, for token and ledger lookups.
    pub store: Store,
    /// Enrollment tokens.
    pub tokens: Arc<TokenCache>,
    /// Per-device state.
    pub registry: Arc<Registry>,
    /// The batcher's queue.
    pub jobs: JobSender,
    /// One permit per report held in memory awaiting storage (`ingest_queue` in all).
    pub memory: Arc<tokio::sync::Semaphore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Name of this collector instance, recorded with sessions.
    pub collector_name: String,
    /// Turns true when the collector shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// How a session ended.
#[derive(Debug)]
enum End {
    /// The agent went away or closed; nothing to tell it.
    Gone(String),
    /// The collector ends the session for a reason it tells the agent.
    Reject(RejectReason, String),
}

/// Serves one incoming connection to the end.
pub async fn handle(ctx: Arc<SessionCtx>, incoming: quinn::Incoming) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "QUIC handshake failed");
            return;
        }
    };
    let peer = conn.remote_address();
    ctx.metrics.open_connections.inc();
    let end = match tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok((send, recv))) => {
            let mut s =
                Session { ctx: &ctx, conn: &conn, send, recv: FramedRecv::new(recv, MAX_FRAME_LEN), peer };
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
}

impl Session<'_> {
    async fn run(&mut self) -> End {
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, self.recv.next()).await {
            Err(_) => return End::Reject(RejectReason::UnexpectedMessage, "no Hello in time".into()),
            Ok(Ok(Some(Message::Hello(h)))) => h,
            Ok(Ok(Some(other))) => {
                return End::Reject(
                    RejectReason::UnexpectedMessage,
                    format!("expected Hello, got {}", other.name()),
                );
            }
            Ok(Ok(None)) => return End::Gone("stream closed before Hello".into()),
            Ok(Err(e)) => return from_recv_error(e),
        };
        if let Err(e) = validate_hello(&hello) {
            return End::Reject(RejectReason::Malformed, format!("invalid Hello: {e}"));
        }
        let Some(token) = hello.credentials.enroll_token() else {
            return End::Reject(RejectReason::Malformed, "unsupported kind of credentials".into());
        };
        if let Err(reason) = self.ctx.tokens.check(&self.ctx.store, token, &hello.school_id).await {
            let detail = match reason {
                RejectReason::UnknownToken => {
                    format!("unknown enrollment token for school {}", hello.school_id)
                }
                RejectReason::RevokedToken => {
                    format!("enrollment token for school {} was revoked", hello.school_id)
                }
                RejectReason::Internal => "cannot verify the enrollment token now; retry later".to_owned(),
                _ => format!("enrollment token is not valid for school {}", hello.school_id),
            };
            return End::Reject(reason, detail);
        }
        let claim = self.ctx.registry.claim(hello.device_id);
        let end = self.owned(&hello, &claim).await;
        // Whatever happened, every report this session handed to storage is resolved now.
        let _ = claim.done.send(true);
        self.ctx.registry.release(hello.device_id, claim.id);
        end
    }

    /// The part of the session that owns the device.
    async fn owned(&mut self, hello: &Hello, claim: &Claim) -> End {
        let device = hello.device_id;
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
            stored_up_to: stored.contiguous_from_one(),
            highest_seq: stored.max(),
        };
        if let Err(e) = send_message(&mut self.send, &Message::Welcome(welcome)).await {
            return End::Gone(format!("sending Welcome: {e}"));
        }
        self.ctx.metrics.sessions_accepted.inc();
        tracing::info!(peer = %self.peer, %device, school = %hello.school_id, kind = %hello.kind,
            agent_version = %hello.agent_version, stored_up_to = stored.contiguous_from_one(), "agent session accepted");
        let record = SessionRecord {
            device_id: device,
            school_id: hello.school_id.clone(),
            kind: hello.kind,
            agent_version: hello.agent_version.clone(),
            collector: self.ctx.collector_name.clone(),
            connected_at: now_secs(),
        };
        if self.ctx.jobs.send(Job::Session(record)).await.is_err() {
            return End::Reject(RejectReason::ShuttingDown, "collector is stopping".into());
        }
        let mut pending: VecDeque<(u64, Option<oneshot::Receiver<()>>)> = VecDeque::new();
        let end = self.exchange(hello, claim, &mut pending).await;
        for (_, rx) in pending {
            if let Some(rx) = rx {
                let _ = rx.await;
            }
        }
        end
    }

    async fn exchange(
        &mut self,
        hello: &Hello,
        claim: &Claim,
        pending: &mut VecDeque<(u64, Option<oneshot::Receiver<()>>)>,
    ) -> End {
        let mut shutdown = self.ctx.shutdown.clone();
        // Numbers received in this session and not yet acknowledged: a second copy within one
        // session is an agent bug, refused rather than stored twice.
        let mut unacked: HashSet<u64> = HashSet::new();
        let mut blocked_since: Option<Instant> = None;
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
                msg = self.recv.next(), if can_read => match msg {
                    Ok(Some(Message::Report(report))) => {
                        if let Err(e) = validate_report(&report) {
                            return End::Reject(RejectReason::InvalidReport, format!("report {}: {e}", report.seq));
                        }
                        if !unacked.insert(report.seq) {
                            return End::Reject(RejectReason::InvalidReport,
                                format!("report {} sent twice in one session", report.seq));
                        }
                        let bytes = self.recv.last_frame_len();
                        match self.submit(hello, report, bytes).await {
                            Some(entry) => pending.push_back(entry),
                            None => return End::Reject(RejectReason::ShuttingDown, "collector is stopping".into()),
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

    /// Hands a report to the batcher, or marks it as already stored. `None` when the batcher is
    /// gone (shutdown).
    async fn submit(
        &self,
        hello: &Hello,
        report: Report,
        bytes: usize,
    ) -> Option<(u64, Option<oneshot::Receiver<()>>)> {
        let seq = report.seq;
        let registry: &Registry = &self.ctx.registry;
        if registry.is_stored(hello.device_id, seq) {
            self.ctx.metrics.reports_duplicate.inc();
            return Some((seq, None));
        }
        let accepted = Accepted {
            device_id: hello.device_id,
            school_id: hello.school_id.clone(),
            kind: hello.kind,
            agent_version: hello.agent_version.clone(),
            report,
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
            received: now_secs(),
        };
        // Waiting for memory (ClickHouse slower than the agents) is backpressure: this session
        // stops reading meanwhile.
        let permit = match Arc::clone(&self.ctx.memory).try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return None,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let blocked = Instant::now();
                let p = Arc::clone(&self.ctx.memory).acquire_owned().await.ok();
                self.ctx.metrics.backpressure_seconds.inc_by(blocked.elapsed().as_secs_f64());
                p?
            }
        };
        let (tx, rx) = oneshot::channel();
        self.ctx.jobs.send(Job::Report(Box::new(accepted), tx, permit)).await.ok()?;
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
