//! Enrollment and renewal: one task decides and stores them in rounds, so that a thousand
//! devices enrolling at once cost a few inserts, and two enrollments of the same key or id can
//! never both succeed (decisions are made one at a time, against the fleet and the round).
//!
//! Rules of an enrollment (the token was checked by the session):
//! - a key already enrolled is the same device: its certificate is issued again, if the device
//!   is not revoked and the token is of the school the device belongs to;
//! - a new key enrolls a new device, while the token has uses left. The collector picks the id,
//!   unless the agent keeps one from before enrollment existed: that id is taken only if no key
//!   holds it and the reports stored under it (if any) are of the token's school.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parta_protocol::{Certificate, DeviceId, EnrollRequest, Enrolled, RejectReason};
use tokio::sync::{mpsc, oneshot};

use super::book::{ACTIVE, DeviceBook};
use super::ca::{DeviceCa, Issued, sha256};
use crate::storage::Store;
use crate::storage::fleet::{FleetBatch, FleetCertRow, FleetDeviceRow, FleetSchoolRow};
use crate::tokens::TokenInfo;

/// Most requests decided and stored in one round.
const ROUND: usize = 512;

/// Why an enrollment or renewal was refused; the session sends it to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// For people.
    pub detail: String,
}

fn refuse(reason: RejectReason, detail: impl Into<String>) -> Refusal {
    Refusal { reason, detail: detail.into() }
}

/// What the task needs.
#[derive(Debug)]
pub struct FleetCtx {
    /// Storage.
    pub store: Store,
    /// The fleet.
    pub book: Arc<DeviceBook>,
    /// The device CA.
    pub ca: Arc<DeviceCa>,
    /// Validity of issued certificates.
    pub validity: Duration,
}

enum Work {
    Enroll(TokenInfo, Box<EnrollRequest>),
    Renew(DeviceId),
}

enum Done {
    Enrolled(Enrolled),
    Renewed(Certificate),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Done, Refusal>>,
}

/// Handle of the enrollment task.
#[derive(Debug, Clone)]
pub struct Enroller {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Enroller {
    /// Starts the task; it ends when every handle is dropped.
    pub fn start(ctx: FleetCtx) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4 * ROUND);
        (Self { tx }, tokio::spawn(run(ctx, rx)))
    }

    async fn ask(&self, work: Work) -> Result<Done, Refusal> {
        let (reply, rx) = oneshot::channel();
        let stopping = || refuse(RejectReason::ShuttingDown, "collector is stopping");
        self.tx.send(Job { work, reply }).await.map_err(|_| stopping())?;
        rx.await.map_err(|_| stopping())?
    }

    /// Enrolls a device with a checked token.
    pub async fn enroll(&self, token: TokenInfo, request: EnrollRequest) -> Result<Enrolled, Refusal> {
        match self.ask(Work::Enroll(token, Box::new(request))).await? {
            Done::Enrolled(e) => Ok(e),
            Done::Renewed(_) => Err(refuse(RejectReason::Internal, "unexpected answer")),
        }
    }

    /// Issues a new certificate for an enrolled device's key.
    pub async fn renew(&self, device: DeviceId) -> Result<Certificate, Refusal> {
        match self.ask(Work::Renew(device)).await? {
            Done::Renewed(c) => Ok(c),
            Done::Enrolled(_) => Err(refuse(RejectReason::Internal, "unexpected answer")),
        }
    }
}

/// What a round has decided so far (the book does not know it yet).
#[derive(Default)]
struct Round {
    batch: FleetBatch,
    /// Key SHA-256 → (device, school) enrolled in this round.
    keys: HashMap<String, (DeviceId, String)>,
    ids: HashSet<DeviceId>,
    uses: HashMap<String, u32>,
}

async fn run(ctx: FleetCtx, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < ROUND {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut round = Round::default();
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let result = match job.work {
                Work::Enroll(token, req) => enroll(&ctx, &mut round, &token, &req).await.map(Done::Enrolled),
                Work::Renew(device) => renew(&ctx, &mut round, device).map(Done::Renewed),
            };
            replies.push((job.reply, result));
        }
        let stored =
            if round.batch.certs.is_empty() { Ok(()) } else { ctx.store.put_fleet(&round.batch).await };
        match stored {
            Ok(()) => {
                let n = round.batch.certs.len();
                if n > 0 {
                    tracing::info!(
                        certificates = n,
                        devices = round.batch.devices.len(),
                        "issued device certificates"
                    );
                }
                ctx.book.apply(round.batch);
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot store enrollments; the agents will retry");
                for (reply, result) in replies {
                    let result =
                        result.and(Err(refuse(RejectReason::Internal, "storage unavailable; retry later")));
                    let _ = reply.send(result);
                }
            }
        }
    }
}

fn now() -> (time::OffsetDateTime, u32, i64) {
    let t = time::OffsetDateTime::now_utc();
    let s = u32::try_from(t.unix_timestamp()).unwrap_or(u32::MAX);
    let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    (t, s, ms)
}

fn issue(
    ctx: &FleetCtx,
    round: &mut Round,
    device: DeviceId,
    spki: &[u8],
    reason: &str,
) -> Result<Certificate, Refusal> {
    let (t, now_s, _) = now();
    let Issued { der, fingerprint, serial, not_after } = ctx
        .ca
        .issue(device, spki, ctx.validity, t)
        .map_err(|e| refuse(RejectReason::Malformed, e.to_string()))?;
    let not_after_s = u32::try_from(not_after.unix_timestamp()).unwrap_or(u32::MAX);
    round.batch.certs.push(FleetCertRow {
        fingerprint: hex::encode(fingerprint),
        device_id: device.0,
        serial,
        not_after: not_after_s,
        issued_at: now_s,
        reason: reason.to_owned(),
    });
    Ok(Certificate { der, not_after_ms: i64::from(not_after_s) * 1000 })
}

async fn enroll(
    ctx: &FleetCtx,
    round: &mut Round,
    token: &TokenInfo,
    req: &EnrollRequest,
) -> Result<Enrolled, Refusal> {
    let key_sha = hex::encode(sha256(&req.public_key));
    // The device this key enrolled before, and its school unless it was revoked.
    let known: Option<(DeviceId, Option<String>)> =
        round.keys.get(&key_sha).map(|(id, school)| (*id, Some(school.clone()))).or_else(|| {
            ctx.book.by_key(&key_sha).map(|d| (d.id, (!d.revoked()).then(|| d.school().to_owned())))
        });
    if let Some((id, school)) = known {
        let Some(school) = school else {
            return Err(refuse(
                RejectReason::DeviceRevoked,
                format!(
                    "device {id} was revoked; its key cannot enroll again (enroll as a new device: `parta-agent enroll --new-device …`)"
                ),
            ));
        };
        if school != token.school {
            return Err(refuse(
                RejectReason::SchoolMismatch,
                format!(
                    "device {id} belongs to school {school}, the token is for school {}; an administrator moves devices with `parta-collector device move {id} --school {}`",
                    token.school, token.school
                ),
            ));
        }
        // The same device asks again (it lost its certificate, or the answer): a new one.
        let certificate = issue(ctx, round, id, &req.public_key, "enrolled")?;
        return Ok(Enrolled { device_id: id, school_id: school, certificate });
    }
    let used = ctx.book.uses(&token.id) + round.uses.get(&token.id).copied().unwrap_or(0);
    if token.limits.max_uses > 0 && used >= token.limits.max_uses {
        return Err(refuse(
            RejectReason::TokenUsedUp,
            format!(
                "enrollment token {} has enrolled the {} devices it was made for",
                token.id, token.limits.max_uses
            ),
        ));
    }
    let id = match req.device_id {
        Some(p) => {
            if round.ids.contains(&p) || ctx.book.device(p).is_some() {
                return Err(refuse(
                    RejectReason::DeviceTaken,
                    format!(
                        "device id {p} is enrolled with another key (a copy of another device's state directory?); remove device-id from the state directory to enroll as a new device"
                    ),
                ));
            }
            match ctx.store.legacy_school(p.0).await {
                Ok(Some(s)) if s != token.school => {
                    return Err(refuse(
                        RejectReason::SchoolMismatch,
                        format!(
                            "reports of device {p} are stored under school {s}, the token is for school {}",
                            token.school
                        ),
                    ));
                }
                Ok(_) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look up a device's earlier reports");
                    return Err(refuse(RejectReason::Internal, "storage unavailable; retry later"));
                }
            }
        }
        None => DeviceId::random(),
    };
    let certificate = issue(ctx, round, id, &req.public_key, "enrolled")?;
    let (_, now_s, now_ms) = now();
    round.batch.schools.push(FleetSchoolRow {
        device_id: id.0,
        school_id: token.school.clone(),
        since_ms: 0,
        by: format!("token {}", token.id),
        reason: "enrolled".into(),
    });
    round.batch.devices.push(FleetDeviceRow {
        device_id: id.0,
        kind: req.kind.as_str().to_owned(),
        public_key: hex::encode(&req.public_key),
        key_sha256: key_sha.clone(),
        token_id: token.id.clone(),
        enrolled_at: now_s,
        state: ACTIVE.into(),
        state_at: now_s,
        state_by: format!("token {}", token.id),
        version: u64::try_from(now_ms).unwrap_or(0),
    });
    round.keys.insert(key_sha, (id, token.school.clone()));
    round.ids.insert(id);
    *round.uses.entry(token.id.clone()).or_default() += 1;
    Ok(Enrolled { device_id: id, school_id: token.school.clone(), certificate })
}

fn renew(ctx: &FleetCtx, round: &mut Round, device: DeviceId) -> Result<Certificate, Refusal> {
    let d = ctx
        .book
        .device(device)
        .ok_or_else(|| refuse(RejectReason::UnknownDevice, format!("device {device} is not enrolled")))?;
    if d.revoked() {
        return Err(refuse(RejectReason::DeviceRevoked, format!("device {device} was revoked")));
    }
    let spki = hex::decode(&d.row.public_key)
        .map_err(|e| refuse(RejectReason::Internal, format!("stored key of {device}: {e}")))?;
    issue(ctx, round, device, &spki, "renewed")
}
