//! Framed messages over QUIC streams, shared by agent, collector and tests.

use parta_protocol::{FrameDecoder, FrameError, Message, RejectReason, encode_frame};
use quinn::{ConnectionError, ReadError, RecvStream, SendStream, WriteError};

/// Largest chunk read from a stream at once; bounds the decoder's buffer growth per read.
const READ_CHUNK: usize = 64 * 1024;

/// Why a message could not be received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The peer sent bytes that are not a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream or connection failed.
    #[error("{}", describe_read(.0))]
    Read(#[from] ReadError),
}

impl RecvError {
    /// The typed reason when the peer closed the connection with one of our close codes.
    pub fn reject_reason(&self) -> Option<RejectReason> {
        match self {
            Self::Read(ReadError::ConnectionLost(e)) => close_reason(e),
            _ => None,
        }
    }
}

/// The reason carried by an application close, if it is one of ours.
pub fn close_reason(e: &ConnectionError) -> Option<RejectReason> {
    match e {
        ConnectionError::ApplicationClosed(close) => RejectReason::from_code(close.error_code.into_inner()),
        _ => None,
    }
}

fn describe_read(e: &ReadError) -> String {
    match e {
        ReadError::ConnectionLost(ConnectionError::ApplicationClosed(c)) => {
            let reason = String::from_utf8_lossy(&c.reason);
            match RejectReason::from_code(c.error_code.into_inner()) {
                Some(r) => format!("peer closed the connection: {r}: {reason}"),
                None if c.error_code.into_inner() == 0 => format!("peer closed the connection: {reason}"),
                None => format!("peer closed the connection with code {}: {reason}", c.error_code),
            }
        }
        other => other.to_string(),
    }
}

/// A receive stream that yields decoded messages.
#[derive(Debug)]
pub struct FramedRecv {
    stream: RecvStream,
    decoder: FrameDecoder,
}

impl FramedRecv {
    /// Wraps a stream; frames above `max_frame` bytes are refused.
    pub fn new(stream: RecvStream, max_frame: usize) -> Self {
        Self { stream, decoder: FrameDecoder::with_max_len(max_frame) }
    }

    /// The next message; `Ok(None)` when the peer finished the stream cleanly between frames.
    /// Cancel-safe: bytes already read stay buffered.
    pub async fn next(&mut self) -> Result<Option<Message>, RecvError> {
        loop {
            if let Some(msg) = self.decoder.next_frame()? {
                return Ok(Some(msg));
            }
            match self.stream.read_chunk(READ_CHUNK, true).await? {
                Some(chunk) => self.decoder.push(&chunk.bytes),
                None if self.decoder.buffered() == 0 => return Ok(None),
                None => {
                    return Err(RecvError::Frame(FrameError::Decode(
                        parta_protocol::DecodeError::Truncated { len: self.decoder.buffered() },
                    )));
                }
            }
        }
    }

    /// Changes the frame limit for the frames still to come (see
    /// [`parta_protocol::FrameDecoder::set_max_len`]).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.decoder.set_max_len(max_frame);
    }

    /// Decodes only these message types from now on (see
    /// [`parta_protocol::FrameDecoder::set_allowed`]).
    pub fn set_allowed(&mut self, tags: Option<&'static [u32]>) {
        self.decoder.set_allowed(tags);
    }

    /// Size on the wire of the message [`Self::next`] last returned.
    pub fn last_frame_len(&self) -> usize {
        self.decoder.last_frame_len()
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The message could not be encoded.
    #[error(transparent)]
    Encode(#[from] parta_protocol::EncodeError),
    /// The stream or connection failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Encodes and writes one message.
pub async fn send_message(stream: &mut SendStream, msg: &Message) -> Result<(), SendError> {
    let frame = encode_frame(msg)?;
    stream.write_all(&frame).await?;
    Ok(())
}

/// Reads one speed-test control message (a length prefix checked against the limit, then the
/// postcard body; see [`parta_protocol::speedtest`]). The error says what went wrong, for
/// the caller to put in context.
pub async fn read_control<T: for<'de> serde::Deserialize<'de>>(recv: &mut RecvStream) -> Result<T, String> {
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await.map_err(|e| e.to_string())?;
    let len = parta_protocol::speedtest::control_len(prefix).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    parta_protocol::speedtest::decode_control(&body).map_err(|e| e.to_string())
}
