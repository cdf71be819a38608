//! A raw QUIC client speaking the Parta wire protocol, for tests that send what a correct agent
//! never would.

use std::net::SocketAddr;
use std::path::Path;

use parta_common::quic::{FramedRecv, RecvError, close_reason};
use parta_protocol::{Credentials, DeviceId, DeviceKind, Hello, Message, RejectReason, encode_frame};

/// One connection with one open stream.
pub struct RawClient {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: FramedRecv,
}

impl RawClient {
    /// Connects to `addr`, trusting `ca`, and opens the stream.
    pub async fn connect(addr: &str, ca: &Path) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(parta_agent::tls::client_config(ca).unwrap());
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
        loop {
            match self.next().await {
                Ok(Some(Message::Reject(r))) => {
                    self.conn.close(quinn::VarInt::from_u32(r.reason.code()), b"");
                    return r.reason;
                }
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => {
                    if let Some(r) = e.reject_reason() {
                        return r;
                    }
                    break;
                }
            }
        }
        let err = self.conn.closed().await;
        close_reason(&err).unwrap_or_else(|| panic!("connection closed without a reason: {err}"))
    }
}

/// A `Hello` for a fresh device.
pub fn hello(school: &str, token: &str) -> Message {
    Message::Hello(Hello {
        agent_version: "test".into(),
        device_id: DeviceId::random(),
        school_id: school.into(),
        kind: DeviceKind::Computer,
        credentials: Credentials::EnrollToken(token.into()),
    })
}
