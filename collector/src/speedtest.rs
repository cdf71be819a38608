//! The speed-test service for ЕСПД probes: its own QUIC endpoint (ALPN `parta-speedtest/2`),
//! one test per connection. The connection carries the device's client certificate, checked as
//! a session's is, and the school is the one the fleet records for the device; tests are
//! bounded in bytes and time, one at a time per school, so many per school and hour and so many at a time in all ([`SpeedTestLimits`]), so the service cannot be turned
//! into a traffic source. Download: the collector sends for the test's time. Upload: it
//! receives, measures (leaving out the warm-up) and returns the figures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parta_protocol::speedtest::{self, Direction, SpeedTestReply, SpeedTestRequest, encode_control};
use tokio::sync::{Semaphore, watch};

use crate::fleet::book::DeviceBook;
use crate::fleet::ca::sha256;
use crate::storage::Store;

/// Longest test, ms.
pub const MAX_MS: u32 = 10_000;
const CHUNK: usize = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);

/// How much the service gives, per school and in all (`speedtest_*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeedTestLimits {
    /// Tests per school and hour, both directions counted.
    pub per_school_per_hour: usize,
    /// Tests at a time, all schools together.
    pub concurrent: usize,
    /// Most payload bytes per test.
    pub max_bytes: u64,
}

impl Default for SpeedTestLimits {
    /// 12 tests per school and hour (a probe's round is two; a few a day is the plan), 4 at a
    /// time, 700 MB (500 Mbit/s for 10 s, and some).
    fn default() -> Self {
        Self { per_school_per_hour: 12, concurrent: 4, max_bytes: 700_000_000 }
    }
}

/// Why a test was not admitted, and when to come back, s.
type Refusal = (String, u32);

/// Admission of tests: one at a time per school, so many per school and hour, so many at a
/// time in all. Only admitted tests count against a school's hour.
#[derive(Debug)]
pub struct Admissions {
    limits: SpeedTestLimits,
    slots: Arc<Semaphore>,
    schools: Mutex<HashMap<String, SchoolTests>>,
}

/// A school's tests: when they started in the last hour, and whether one runs.
#[derive(Debug, Default)]
struct SchoolTests {
    recent: Vec<Instant>,
    running: bool,
}

/// An admitted test; dropping it ends the test for the school and frees its slot.
#[derive(Debug)]
pub struct Admitted<'a> {
    admissions: &'a Admissions,
    school: String,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut schools = self.admissions.schools.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tests) = schools.get_mut(&self.school) {
            tests.running = false;
        }
    }
}

impl Admissions {
    /// Admissions under `limits`.
    pub fn new(limits: SpeedTestLimits) -> Self {
        Self {
            limits,
            slots: Arc::new(Semaphore::new(limits.concurrent)),
            schools: Mutex::new(HashMap::new()),
        }
    }

    /// The limits.
    pub fn limits(&self) -> SpeedTestLimits {
        self.limits
    }

    /// Admits a test of `school` at `now`, or says why not and when to come back.
    pub fn admit(&self, school: &str, now: Instant) -> Result<Admitted<'_>, Refusal> {
        let mut schools = self.schools.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tests = schools.entry(school.to_owned()).or_default();
        tests.recent.retain(|t| now.saturating_duration_since(*t) < HOUR);
        let per_hour = self.limits.per_school_per_hour;
        if tests.recent.len() >= per_hour {
            let oldest = tests.recent.iter().min().copied().unwrap_or(now);
            let wait = HOUR.saturating_sub(now.saturating_duration_since(oldest)).as_secs().max(1);
            return Err((
                format!("school {school} ran {per_hour} speed tests in the last hour"),
                u32::try_from(wait).unwrap_or(3600),
            ));
        }
        if tests.running {
            return Err((format!("a speed test of school {school} is running"), 10));
        }
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            return Err((
                format!(
                    "the speed-test service is busy (its limit of {} tests at a time is reached)",
                    self.limits.concurrent
                ),
                30,
            ));
        };
        tests.running = true;
        tests.recent.push(now);
        Ok(Admitted { admissions: self, school: school.to_owned(), _slot: slot })
    }
}

/// What the service shares.
#[derive(Debug)]
pub struct SpeedTestCtx {
    /// Storage, for look-ups of certificates issued a moment ago.
    pub store: Store,
    /// The fleet: which device a certificate is, which school it belongs to.
    pub book: Arc<DeviceBook>,
    admissions: Admissions,
}

impl SpeedTestCtx {
    /// A service under `limits`.
    pub fn new(store: Store, book: Arc<DeviceBook>, limits: SpeedTestLimits) -> Self {
        Self { store, book, admissions: Admissions::new(limits) }
    }
}

/// Accepts connections until shutdown.
pub async fn run(endpoint: quinn::Endpoint, ctx: Arc<SpeedTestCtx>, mut shutdown: watch::Receiver<bool>) {
    let mut tests = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    tests.spawn(handle(Arc::clone(&ctx), incoming));
                }
                None => break,
            },
            Some(_) = tests.join_next(), if !tests.is_empty() => {}
            () = parta_common::shutdown::stopped(&mut shutdown) => break,
        }
    }
    tests.abort_all();
}

async fn handle(ctx: Arc<SpeedTestCtx>, incoming: quinn::Incoming) {
    let Ok(Ok(conn)) = tokio::time::timeout(REQUEST_TIMEOUT, incoming).await else { return };
    let peer = conn.remote_address();
    // The endpoint requires a certificate of the device CA; this is its SHA-256.
    let certificate = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok())
        .and_then(|chain| chain.first().map(|c| sha256(c)));
    let Ok(Ok((mut send, mut recv))) = tokio::time::timeout(REQUEST_TIMEOUT, conn.accept_bi()).await else {
        conn.close(quinn::VarInt::from_u32(0), b"no request");
        return;
    };
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut recv)).await {
        Ok(Ok(r)) => r,
        Ok(Err(why)) => {
            tracing::warn!(%peer, reason = %why, "speed test refused: bad request");
            refuse(&mut send, &why, 0).await;
            conn.close(quinn::VarInt::from_u32(0), b"");
            return;
        }
        Err(_) => {
            conn.close(quinn::VarInt::from_u32(0), b"no request in time");
            return;
        }
    };
    let auth = match certificate {
        Some(fp) => ctx.book.authenticate(&ctx.store, &fp).await,
        None => Err(parta_protocol::RejectReason::NotEnrolled),
    };
    let school = match auth {
        Ok(a) => a.school,
        Err(reason) => {
            tracing::warn!(%peer, %reason, "speed test refused: device");
            let retry = if reason == parta_protocol::RejectReason::Internal { 60 } else { 0 };
            refuse(&mut send, &format!("device not accepted: {reason}"), retry).await;
            return;
        }
    };
    let admitted = match ctx.admissions.admit(&school, Instant::now()) {
        Ok(a) => a,
        Err((why, retry)) => {
            tracing::info!(%peer, %school, reason = %why, "speed test refused: limit");
            refuse(&mut send, &why, retry).await;
            return;
        }
    };
    let max_bytes = request.max_bytes.min(ctx.admissions.limits().max_bytes);
    let max_ms = request.max_ms.min(MAX_MS);
    let go = encode_control(&SpeedTestReply::Go { max_bytes, max_ms });
    let result = match send.write_all(&go).await {
        Err(e) => Err(e.to_string()),
        Ok(()) => match request.direction {
            Direction::Download => send_payload(&mut send, max_bytes, max_ms).await,
            Direction::Upload => receive_payload(&mut send, &mut recv, max_bytes, max_ms).await,
        },
    };
    drop(admitted);
    match result {
        Ok(bytes) => {
            tracing::info!(%peer, %school, direction = request.direction.as_str(), bytes, "speed test done")
        }
        Err(e) => {
            tracing::info!(%peer, %school, direction = request.direction.as_str(), error = %e, "speed test ended early")
        }
    }
    // Let the last bytes and the close reach the agent.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
}

async fn read_request(recv: &mut quinn::RecvStream) -> Result<SpeedTestRequest, String> {
    parta_common::quic::read_control(recv).await.map_err(|e| format!("reading the request: {e}"))
}

async fn refuse(send: &mut quinn::SendStream, reason: &str, retry_after_s: u32) {
    let msg = encode_control(&SpeedTestReply::Refused { reason: reason.to_owned(), retry_after_s });
    let _ = send.write_all(&msg).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
}

/// Download: zeros for `max_ms` or `max_bytes`, whichever comes first; the agent may stop
/// reading earlier.
async fn send_payload(send: &mut quinn::SendStream, max_bytes: u64, max_ms: u32) -> Result<u64, String> {
    let chunk = vec![0u8; CHUNK];
    let until = Instant::now() + Duration::from_millis(u64::from(max_ms));
    let mut sent = 0u64;
    while sent < max_bytes && Instant::now() < until {
        let n = usize::try_from((max_bytes - sent).min(CHUNK as u64)).unwrap_or(CHUNK);
        match tokio::time::timeout_at(until.into(), send.write_all(&chunk[..n])).await {
            Ok(Ok(())) => sent += n as u64,
            Ok(Err(e)) => return Err(format!("after {sent} bytes: {e}")),
            Err(_) => break,
        }
    }
    let _ = send.finish();
    Ok(sent)
}

/// Upload: counts what arrives for `max_ms` (and a second's grace), then returns the measured
/// rate.
async fn receive_payload(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    max_bytes: u64,
    max_ms: u32,
) -> Result<u64, String> {
    let until = Instant::now() + Duration::from_millis(u64::from(max_ms) + 1000);
    let mut samples: Vec<(u64, u64)> = Vec::with_capacity(4096);
    let mut first: Option<Instant> = None;
    let mut total = 0u64;
    loop {
        match tokio::time::timeout_at(until.into(), recv.read_chunk(CHUNK, true)).await {
            Ok(Ok(Some(c))) => {
                let start = *first.get_or_insert_with(Instant::now);
                total += c.bytes.len() as u64;
                let t = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                samples.push((t, total));
                if total > max_bytes {
                    let _ = recv.stop(quinn::VarInt::from_u32(0));
                    break;
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(format!("after {total} bytes: {e}")),
            Err(_) => {
                let _ = recv.stop(quinn::VarInt::from_u32(0));
                break;
            }
        }
    }
    let (bytes, micros) = speedtest::measure(&samples).unwrap_or((0, 0));
    let msg = encode_control(&SpeedTestReply::Measured { bytes, micros, total_bytes: total });
    send.write_all(&msg).await.map_err(|e| e.to_string())?;
    let _ = send.finish();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_school_gets_its_hourly_tests_one_at_a_time() {
        let a = Admissions::new(SpeedTestLimits { per_school_per_hour: 2, concurrent: 4, max_bytes: 1000 });
        let t0 = Instant::now();
        let first = a.admit("74-0012", t0).unwrap();
        // One at a time: a second test while the first runs is refused, and costs nothing.
        let (why, retry) = a.admit("74-0012", t0).unwrap_err();
        assert!(why.contains("is running"), "{why}");
        assert_eq!(retry, 10);
        drop(first);
        drop(a.admit("74-0012", t0 + Duration::from_secs(60)).unwrap());
        // The hour's two are used: refused until the first is an hour old.
        let (why, retry) = a.admit("74-0012", t0 + Duration::from_secs(600)).unwrap_err();
        assert_eq!(why, "school 74-0012 ran 2 speed tests in the last hour");
        assert_eq!(retry, 3000);
        // Other schools are not affected; an hour later the school may test again.
        drop(a.admit("74-0345", t0 + Duration::from_secs(600)).unwrap());
        drop(a.admit("74-0012", t0 + Duration::from_secs(3601)).unwrap());
    }

    #[test]
    fn a_busy_service_refuses_without_using_a_schools_hour() {
        let a = Admissions::new(SpeedTestLimits { per_school_per_hour: 1, concurrent: 1, max_bytes: 1000 });
        let t0 = Instant::now();
        let running = a.admit("74-0012", t0).unwrap();
        let (why, retry) = a.admit("74-0345", t0).unwrap_err();
        assert_eq!(why, "the speed-test service is busy (its limit of 1 tests at a time is reached)");
        assert_eq!(retry, 30);
        drop(running);
        // The refused school still has its one test of the hour.
        drop(a.admit("74-0345", t0).unwrap());
        assert!(a.admit("74-0345", t0).is_err());
    }
}
