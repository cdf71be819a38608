//! Length-prefixed framing: `[length: u32 big-endian][envelope of `length` bytes]`.
//!
//! The length is checked against a hard maximum before any of the body is buffered, so a peer
//! cannot make the receiver allocate more than the limit.

use crate::codec::{self, DecodeError, EncodeError};
use crate::message::Message;

/// Hard upper bound of an envelope's length, 1 MiB. A typical report is a few hundred bytes;
/// the largest legitimate one (first report with full host identity and many interfaces) is
/// well below 64 KiB, so the limit leaves room without letting a peer exhaust memory.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Largest frame accepted before the peer is authenticated: a `Hello` or an `Enroll` (a token
/// and a public key) is a few hundred bytes, so nothing bigger is read, let alone decoded,
/// from a peer nobody knows.
pub const PRE_AUTH_MAX_FRAME_LEN: usize = 4096;

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more than the limit. The stream cannot be resynchronised.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit in force.
        max: usize,
    },
    /// The frame arrived whole but its envelope is invalid.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message of a type the receiver does not accept at this point (before
    /// authentication, anything but `Hello` or `Enroll`); its body was not decoded.
    #[error("message type {tag} is not accepted here")]
    NotAllowed {
        /// The variant index found.
        tag: u32,
    },
}

/// Encodes a message as one frame.
pub fn encode_frame(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![0; LEN_PREFIX];
    codec::encode_into(msg, &mut out)?;
    let len = out.len() - LEN_PREFIX;
    if len > MAX_FRAME_LEN {
        return Err(EncodeError::TooLarge { message: msg.name(), len, max: MAX_FRAME_LEN });
    }
    // The check above bounds `len` by MAX_FRAME_LEN, which fits in a u32.
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    out[..LEN_PREFIX].copy_from_slice(&len32.to_be_bytes());
    Ok(out)
}

/// Incremental decoder for a byte stream of frames. Push bytes as they arrive, then pull frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of unread bytes in `buf`; compacted lazily to keep pulls O(frame).
    start: usize,
    max_len: usize,
    /// Size on the wire (prefix included) of the frame last returned.
    last_len: usize,
    /// Set after `TooLarge`: the stream is out of sync and every later pull fails the same way.
    poisoned: Option<FrameError>,
    /// When set, only messages with these variant indexes are decoded.
    allowed: Option<&'static [u32]>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder enforcing [`MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self::with_max_len(MAX_FRAME_LEN)
    }

    /// A decoder enforcing a lower limit (values above [`MAX_FRAME_LEN`] are capped).
    pub fn with_max_len(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_len: max_len.min(MAX_FRAME_LEN),
            last_len: 0,
            poisoned: None,
            allowed: None,
        }
    }

    /// Changes the frame limit (capped at [`MAX_FRAME_LEN`]) for the frames still to come, e.g.
    /// from [`PRE_AUTH_MAX_FRAME_LEN`] to the full limit once the peer is authenticated.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len.min(MAX_FRAME_LEN);
    }

    /// Decodes only messages of these types (see [`crate::message::tag`]); others end in
    /// [`FrameError::NotAllowed`] without their body being decoded. `None` accepts all.
    pub fn set_allowed(&mut self, tags: Option<&'static [u32]>) {
        self.allowed = tags;
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Size on the wire, length prefix included, of the frame [`Self::next_frame`] last returned.
    pub fn last_frame_len(&self) -> usize {
        self.last_len
    }

    /// Returns the next complete frame's message, `Ok(None)` when more bytes are needed.
    ///
    /// A [`FrameError::Decode`] consumes the bad frame, so the caller may go on; a
    /// [`FrameError::TooLarge`] poisons the decoder.
    pub fn next_frame(&mut self) -> Result<Option<Message>, FrameError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let pending = &self.buf[self.start..];
        let Some(header) = pending.first_chunk::<LEN_PREFIX>() else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_be_bytes(*header)).unwrap_or(usize::MAX);
        if len > self.max_len {
            let err = FrameError::TooLarge { len, max: self.max_len };
            self.poisoned = Some(err.clone());
            return Err(err);
        }
        let Some(body) = pending.get(LEN_PREFIX..LEN_PREFIX + len) else {
            return Ok(None);
        };
        let result = match self.allowed {
            Some(tags) => match codec::peek_tag(body) {
                Ok(tag) if tags.contains(&tag) => codec::decode(body).map_err(FrameError::from),
                Ok(tag) => Err(FrameError::NotAllowed { tag }),
                Err(e) => Err(FrameError::from(e)),
            },
            None => codec::decode(body).map_err(FrameError::from),
        };
        self.last_len = LEN_PREFIX + len;
        self.start += LEN_PREFIX + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(result?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Ack;

    fn ack(n: u64) -> Message {
        Message::Ack(Ack::range(1, n))
    }

    #[test]
    fn frames_split_at_every_byte_boundary() {
        let mut stream = Vec::new();
        for i in 0..5 {
            stream.extend(encode_frame(&ack(i * 1000)).unwrap());
        }
        for chunk in 1..stream.len() {
            let mut dec = FrameDecoder::new();
            let mut got = Vec::new();
            for part in stream.chunks(chunk) {
                dec.push(part);
                while let Some(m) = dec.next_frame().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, (0..5).map(|i| ack(i * 1000)).collect::<Vec<_>>());
            assert_eq!(dec.last_frame_len(), encode_frame(&ack(4000)).unwrap().len());
            assert_eq!(dec.buffered(), 0);
        }
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut dec = FrameDecoder::with_max_len(16);
        dec.push(&17u32.to_be_bytes());
        assert_eq!(dec.next_frame(), Err(FrameError::TooLarge { len: 17, max: 16 }));
        // Poisoned: the same error again, even with more bytes.
        dec.push(&[0; 32]);
        assert!(matches!(dec.next_frame(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn bad_frame_is_consumed_and_the_next_one_decodes() {
        let mut dec = FrameDecoder::new();
        dec.push(&3u32.to_be_bytes());
        dec.push(&[0xde, 0xad, 0xbe]);
        dec.push(&encode_frame(&ack(7)).unwrap());
        assert!(matches!(dec.next_frame(), Err(FrameError::Decode(_))));
        assert_eq!(dec.next_frame().unwrap(), Some(ack(7)));
    }

    #[test]
    fn only_allowed_messages_are_decoded() {
        let mut dec = FrameDecoder::with_max_len(PRE_AUTH_MAX_FRAME_LEN);
        dec.set_allowed(Some(&[crate::message::tag::HELLO, crate::message::tag::ENROLL]));
        // A report frame is refused by its type, before its body is decoded: a body that would
        // not even decode proves it.
        let mut frame = 8u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&crate::PROTOCOL_VERSION.to_le_bytes());
        frame.extend_from_slice(&[2, 0xff, 0xff, 0xff, 0xff, 0xff]);
        dec.push(&frame);
        assert_eq!(dec.next_frame(), Err(FrameError::NotAllowed { tag: 2 }));
        dec.set_allowed(None);
        dec.push(&encode_frame(&ack(3)).unwrap());
        assert_eq!(dec.next_frame().unwrap(), Some(ack(3)));
        // The pre-authentication limit applies until raised.
        dec.push(&u32::try_from(PRE_AUTH_MAX_FRAME_LEN + 1).unwrap().to_be_bytes());
        assert!(matches!(dec.next_frame(), Err(FrameError::TooLarge { max: PRE_AUTH_MAX_FRAME_LEN, .. })));
    }

    #[test]
    fn zero_length_frame_is_a_decode_error() {
        let mut dec = FrameDecoder::new();
        dec.push(&0u32.to_be_bytes());
        assert_eq!(dec.next_frame(), Err(FrameError::Decode(DecodeError::Truncated { len: 0 })));
    }

    #[test]
    fn max_len_is_capped_at_the_hard_limit() {
        let mut dec = FrameDecoder::with_max_len(usize::MAX);
        dec.push(&u32::try_from(MAX_FRAME_LEN + 1).unwrap().to_be_bytes());
        assert!(matches!(dec.next_frame(), Err(FrameError::TooLarge { .. })));
    }
}
