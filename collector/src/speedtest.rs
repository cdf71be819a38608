//! The speed-test service for ЕСПД probes: its own QUIC endpoint (ALPN `parta-speedtest/1`),
//! one test per connection. The request carries the school's enrollment token, checked like a
//! `Hello`; tests are bounded in bytes and time, one at a time per school, [`PER_SCHOOL_PER_HOUR`]
//! per school and hour, and [`CONCURRENT`] at a time in all, so the service cannot be turned
//! into a traffic source. Download: the collector sends for the test's time. Upload: it
//! receives, measures (leaving out the warm-up) and returns the figures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parta_protocol::speedtest::{self, Direction, SpeedTestReply, SpeedTestRequest, encode_control};
use tokio::sync::{Semaphore, watch};

use crate::storage::Store;
use crate::tokens::TokenCache;

/// Most payload bytes per test (500 Mbit/s for 10 s, and some).
pub const MAX_BYTES: u64 = 700_000_000;
/// Longest test, ms.
pub const MAX_MS: u32 = 10_000;
/// Tests per school and hour (both directions count).
pub const PER_SCHOOL_PER_HOUR: usize = 12;
/// Tests at a time, all schools together.
pub const CONCURRENT: usize = 4;
const CHUNK: usize = 64 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the service shares.
#[derive(Debug)]
pub struct SpeedTestCtx {
    /// Storage, for token look-ups.
    pub store: Store,
    /// Enrollment tokens.
    pub tokens: Arc<TokenCache>,
    slots: Semaphore,
    schools: Mutex<HashMap<String, SchoolTests>>,
}

/// A school's tests: when they started in the last hour, and whether one runs.
#[derive(Debug, Default)]
struct SchoolTests {
    recent: Vec<Instant>,
    running: bool,
}

impl SpeedTestCtx {
    /// A service with the default limits.
    pub fn new(store: Store, tokens: Arc<TokenCache>) -> Self {
        Self { store, tokens, slots: Semaphore::new(CONCURRENT), schools: Mutex::new(HashMap::new()) }
    }

    /// Admits a test of `school`, or says when to come back.
    fn admit(&self, school: &str) -> Result<(), (String, u32)> {
        let now = Instant::now();
        let mut schools = self.schools.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tests = schools.entry(school.to_owned()).or_default();
        tests.recent.retain(|t| now.duration_since(*t) < Duration::from_secs(3600));
        if tests.recent.len() >= PER_SCHOOL_PER_HOUR {
            let wait = 3600u64.saturating_sub(now.duration_since(tests.recent[0]).as_secs()).max(1);
            return Err((
                format!("school {school} ran {PER_SCHOOL_PER_HOUR} speed tests in the last hour"),
                u32::try_from(wait).unwrap_or(3600),
            ));
        }
        if tests.running {
            return Err((format!("a speed test of school {school} is running"), 10));
        }
        tests.running = true;
        tests.recent.push(now);
        Ok(())
    }

    fn done(&self, school: &str) {
        let mut schools = self.schools.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tests) = schools.get_mut(school) {
            tests.running = false;
        }
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
    let Ok(conn) = incoming.await else { return };
    let peer = conn.remote_address();
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
    if let Err(e) = parta_protocol::validate::validate_school_id(&request.school_id) {
        refuse(&mut send, &format!("school: {e}"), 0).await;
        return;
    }
    if let Err(reason) = ctx.tokens.check(&ctx.store, &request.token, &request.school_id).await {
        tracing::warn!(%peer, school = %request.school_id, %reason, "speed test refused: token");
        refuse(&mut send, &format!("enrollment token refused for school {}: {reason}", request.school_id), 0)
            .await;
        return;
    }
    if let Err((why, retry)) = ctx.admit(&request.school_id) {
        tracing::info!(%peer, school = %request.school_id, reason = %why, "speed test refused: limit");
        refuse(&mut send, &why, retry).await;
        return;
    }
    let Ok(_slot) = ctx.slots.try_acquire() else {
        ctx.done(&request.school_id);
        refuse(&mut send, "the speed-test service is busy", 30).await;
        return;
    };
    let max_bytes = request.max_bytes.min(MAX_BYTES);
    let max_ms = request.max_ms.min(MAX_MS);
    let go = encode_control(&SpeedTestReply::Go { max_bytes, max_ms });
    let result = match send.write_all(&go).await {
        Err(e) => Err(e.to_string()),
        Ok(()) => match request.direction {
            Direction::Download => send_payload(&mut send, max_bytes, max_ms).await,
            Direction::Upload => receive_payload(&mut send, &mut recv, max_bytes, max_ms).await,
        },
    };
    ctx.done(&request.school_id);
    match result {
        Ok(bytes) => {
            tracing::info!(%peer, school = %request.school_id, direction = request.direction.as_str(), bytes, "speed test done")
        }
        Err(e) => {
            tracing::info!(%peer, school = %request.school_id, direction = request.direction.as_str(), error = %e, "speed test ended early")
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
