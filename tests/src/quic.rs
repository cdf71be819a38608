//! A raw QUIC client speaking the Parta wire protocol, for tests that send what a correct agent
//! never would, and devices enrolled without an agent process (benchmarks, attacks).

use std::net::SocketAddr;
use std::path::Path;

use parta_agent::credential::Identity;
use parta_agent::enroll::EnrollError;
use parta_agent::tls::{Present, Trust};
use parta_common::quic::{FramedRecv, RecvError, close_reason};
use parta_protocol::{DeviceId, DeviceKind, Hello, Message, RejectReason, encode_frame};

/// A device enrolled by the test itself: its key and certificate in a directory of its own.
pub struct RawDevice {
    _dir: tempfile::TempDir,
    /// Key and credential.
    pub identity: Identity,
}

impl RawDevice {
    /// Enrolls a new device at the collector `addr` (trusting `ca`) with `token`, offering
    /// `offered` as its id.
    pub async fn enroll(
        addr: &str,
        ca: &Path,
        token: &str,
        offered: Option<DeviceId>,
    ) -> Result<Self, EnrollError> {
        let dir = tempfile::tempdir().unwrap();
        if let Some(id) = offered {
            parta_agent::identity::store(dir.path(), id).unwrap();
        }
        let identity = Identity::load(dir.path()).unwrap();
        let collector = parta_agent::config::parse_collector(addr).unwrap();
        let c = parta_agent::enroll::enroll(
            &[collector],
            Some("localhost"),
            Trust::CaFile(ca),
            dir.path(),
            &identity.key,
            token,
            DeviceKind::Computer,
        )
        .await?;
        identity.set(Some(c));
        Ok(Self { _dir: dir, identity })
    }

    /// Enrolls `n` new devices with `token`, `at_once` at a time.
    pub async fn enroll_many(addr: &str, ca: &Path, token: &str, n: usize, at_once: usize) -> Vec<Self> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..at_once.min(n - out.len()) {
                let (addr, ca, token) = (addr.to_owned(), ca.to_owned(), token.to_owned());
                set.spawn(async move { Self::enroll(&addr, &ca, &token, None).await.unwrap() });
            }
            out.extend(set.join_all().await);
        }
        out
    }

    /// Its id.
    pub fn id(&self) -> DeviceId {
        self.identity.credential().map(|c| c.device_id).unwrap()
    }
}

/// One connection with one open stream.
pub struct RawClient {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: FramedRecv,
}

impl RawClient {
    /// Connects to `addr`, trusting `ca`, without a client certificate, and opens the stream.
    pub async fn connect(addr: &str, ca: &Path) -> Self {
        Self::connect_with(addr, ca, None).await
    }

    /// Connects as `device` (its certificate), and opens the stream.
    pub async fn connect_as(addr: &str, ca: &Path, device: &RawDevice) -> Self {
        Self::connect_with(addr, ca, Some(device)).await
    }

    async fn connect_with(addr: &str, ca: &Path, device: Option<&RawDevice>) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let credential = device.and_then(|d| d.identity.credential());
        let present = match (device, &credential) {
            (Some(d), Some(c)) => Present::Device(c, &d.identity.key),
            _ => Present::Nothing,
        };
        endpoint
            .set_default_client_config(parta_agent::tls::client_config(Trust::CaFile(ca), present).unwrap());
        let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        Self { _endpoint: endpoint, conn, send, recv: FramedRecv::new(recv, parta_protocol::MAX_FRAME_LEN) }
    }

    /// Writes raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        // The collector may already have closed the stream; that is what some tests expect.
        let _ = self.send.write_all(bytes).await;
    }

    /// Writes one framed message.
    pub async fn send(&mut self, msg: &Message) {
        self.send_bytes(&encode_frame(msg).unwrap()).await;
    }

    /// The next message from the collector.
    pub async fn next(&mut self) -> Result<Option<Message>, RecvError> {
        self.recv.next().await
    }

    /// Reads until the collector rejects the session; returns the reason from the `Reject`
    /// frame, or from the close code when the frame did not arrive.
    pub async fn rejection(&mut self) -> RejectReason {
        self.rejection_with_detail().await.0
    }

    /// As [`Self::rejection`], with the collector's words when the frame arrived.
    pub async fn rejection_with_detail(&mut self) -> (RejectReason, String) {
        loop {
            match self.next().await {
                Ok(Some(Message::Reject(r))) => {
                    self.conn.close(quinn::VarInt::from_u32(r.reason.code()), b"");
                    return (r.reason, r.detail);
                }
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => {
                    if let Some(r) = e.reject_reason() {
                        return (r, String::new());
                    }
                    break;
                }
            }
        }
        let err = self.conn.closed().await;
        (
            close_reason(&err).unwrap_or_else(|| panic!("connection closed without a reason: {err}")),
            String::new(),
        )
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.conn.close(quinn::VarInt::from_u32(0), b"");
    }
}

/// A `Hello` (the device is the connection's certificate).
pub fn hello() -> Message {
    Message::Hello(Hello { agent_version: "test".into(), kind: DeviceKind::Computer, running_policy: None })
}
