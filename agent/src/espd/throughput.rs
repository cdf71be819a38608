//! Download and upload throughput against the collector's speed-test service (QUIC, its own
//! port, the collector's CA, the device's certificate): bounded in time and bytes, measured
//! leaving out the warm-up — download at the agent, upload at the collector.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use parta_protocol::espd::ThroughputStats;
use parta_protocol::speedtest::{
    Direction, SpeedTestReply, SpeedTestRequest, bits_per_s, encode_control, ip_bytes, ip_rate, measure,
};

/// Where and as whom to test.
#[derive(Debug, Clone)]
pub struct SpeedTestTarget {
    /// Collector host (name or address).
    pub host: String,
    /// Speed-test port.
    pub port: u16,
    /// Name in the collector's certificate.
    pub server_name: String,
    /// CA of the collector's certificate.
    pub ca: PathBuf,
    /// The device's key and credential (renewed while the probe runs).
    pub identity: std::sync::Arc<crate::credential::Identity>,
}

impl SpeedTestTarget {
    /// `host:port` for people.
    pub fn display(&self) -> String {
        crate::config::host_port(&self.host, self.port)
    }
}

async fn read_reply(recv: &mut quinn::RecvStream) -> Result<SpeedTestReply, String> {
    parta_common::quic::read_control(recv).await.map_err(|e| format!("reading the collector's answer: {e}"))
}

async fn test(
    t: &SpeedTestTarget,
    direction: Direction,
    max_bytes: u64,
    max_ms: u32,
) -> Result<ThroughputStats, String> {
    let addr = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", t.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", t.host))?;
    let bind: std::net::SocketAddr =
        if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let credential = t.identity.credential().ok_or("the device has not enrolled yet")?;
    endpoint.set_default_client_config(
        crate::tls::speedtest_client_config(&t.ca, &credential, &t.identity.key)
            .map_err(|e| e.to_string())?,
    );
    let conn = endpoint
        .connect(addr, &t.server_name)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| format!("cannot connect to the speed-test service at {}: {e}", t.display()))?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let request = SpeedTestRequest { direction, max_bytes, max_ms };
    send.write_all(&encode_control(&request)).await.map_err(|e| e.to_string())?;
    let (max_bytes, max_ms) = match read_reply(&mut recv).await? {
        SpeedTestReply::Go { max_bytes, max_ms } => (max_bytes, max_ms),
        SpeedTestReply::Refused { reason, retry_after_s } => {
            return Err(format!("the collector refused the test: {reason} (retry after {retry_after_s} s)"));
        }
        SpeedTestReply::Measured { .. } => return Err("unexpected answer from the collector".into()),
    };
    let stats = match direction {
        Direction::Download => {
            let mut samples = Vec::with_capacity(8192);
            let mut first: Option<Instant> = None;
            let mut total = 0u64;
            let deadline = Instant::now() + Duration::from_millis(u64::from(max_ms) + 3000);
            loop {
                match tokio::time::timeout_at(deadline.into(), recv.read_chunk(64 * 1024, true)).await {
                    Ok(Ok(Some(c))) => {
                        let start = *first.get_or_insert_with(Instant::now);
                        total += c.bytes.len() as u64;
                        samples.push((u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX), total));
                    }
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => return Err(format!("download broke after {total} bytes: {e}")),
                    Err(_) => break,
                }
            }
            let (bytes, micros) =
                measure(&samples).ok_or_else(|| format!("too little data to measure ({total} bytes)"))?;
            stats(&conn, direction, bytes, micros, total)
        }
        Direction::Upload => {
            let chunk = vec![0u8; 64 * 1024];
            let until = Instant::now() + Duration::from_millis(u64::from(max_ms));
            let mut sent = 0u64;
            while sent < max_bytes && Instant::now() < until {
                let n = usize::try_from((max_bytes - sent).min(chunk.len() as u64)).unwrap_or(chunk.len());
                match tokio::time::timeout_at(until.into(), send.write_all(&chunk[..n])).await {
                    Ok(Ok(())) => sent += n as u64,
                    Ok(Err(e)) => return Err(format!("upload broke after {sent} bytes: {e}")),
                    Err(_) => break,
                }
            }
            let _ = send.finish();
            match tokio::time::timeout(Duration::from_secs(10), read_reply(&mut recv)).await {
                Ok(Ok(SpeedTestReply::Measured { bytes, micros, total_bytes })) => {
                    if micros == 0 {
                        return Err(format!("too little data to measure ({total_bytes} bytes)"));
                    }
                    stats(&conn, direction, bytes, micros, total_bytes)
                }
                Ok(Ok(_)) => return Err("unexpected answer from the collector".into()),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err("no result from the collector".into()),
            }
        }
    };
    conn.close(quinn::VarInt::from_u32(0), b"done");
    endpoint.wait_idle().await;
    Ok(stats)
}

/// The figures of a test that measured `bytes` in `micros` of `payload` payload bytes moved,
/// with the IP-layer rate and cost from the connection's own datagram counts.
fn stats(
    conn: &quinn::Connection,
    direction: Direction,
    bytes: u64,
    micros: u64,
    payload: u64,
) -> ThroughputStats {
    let s = conn.stats();
    let v6 = conn.remote_address().is_ipv6();
    let rx = ip_bytes(s.udp_rx.bytes, s.udp_rx.datagrams, v6);
    let tx = ip_bytes(s.udp_tx.bytes, s.udp_tx.datagrams, v6);
    let carried = match direction {
        Direction::Download => rx,
        Direction::Upload => tx,
    };
    let payload_rate = bits_per_s(bytes, micros);
    ThroughputStats {
        bytes,
        micros,
        bits_per_s: payload_rate,
        ip_bits_per_s: ip_rate(payload_rate, payload, carried),
        total_bytes: rx.saturating_add(tx),
    }
}

/// Runs one test, blocking: on the agent's runtime when called from one of its blocking
/// threads (the probe role), else (`check espd`) on a runtime of its own.
pub fn run(
    t: &SpeedTestTarget,
    direction: Direction,
    max_bytes: u64,
    max_ms: u32,
) -> Result<ThroughputStats, String> {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return handle.block_on(test(t, direction, max_bytes, max_ms));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(test(t, direction, max_bytes, max_ms))
}
