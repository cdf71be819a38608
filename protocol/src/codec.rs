//! The versioned envelope: `[version: u16 little-endian][postcard body]`.
//!
//! The version comes first and in a fixed-width encoding so that a peer can always tell an
//! unknown version apart from garbage, whatever the body layout of that version is.

use crate::PROTOCOL_VERSION;
use crate::message::Message;

/// Size of the version prefix.
pub const VERSION_LEN: usize = 2;

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// postcard refused the value (cannot happen for the types of this crate, kept for safety).
    #[error("cannot encode {message}: {error}")]
    Postcard {
        /// Message type name.
        message: &'static str,
        /// Underlying error.
        error: postcard::Error,
    },
    /// The encoded message is larger than the frame limit.
    #[error("{message} of {len} bytes exceeds the frame limit of {max} bytes")]
    TooLarge {
        /// Message type name.
        message: &'static str,
        /// Encoded length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

/// Why bytes could not be decoded into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the version prefix.
    #[error("envelope truncated: {len} bytes, the version alone takes {VERSION_LEN}")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The peer speaks a protocol version this build does not.
    #[error("unsupported protocol version {got} (this build speaks version {supported})")]
    UnknownVersion {
        /// Version found in the envelope.
        got: u16,
        /// Version this build speaks.
        supported: u16,
    },
    /// The body is not a valid message of this version.
    #[error("malformed message body: {reason}")]
    Malformed {
        /// What postcard found wrong.
        reason: String,
    },
    /// A valid message was followed by extra bytes.
    #[error("{count} unexpected bytes after the message")]
    TrailingBytes {
        /// How many extra bytes.
        count: usize,
    },
}

/// Encodes a message into a new envelope (without the frame length prefix).
pub fn encode(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(128);
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Bytes a sample takes inside a report's body: what an agent adds up to keep a report well
/// inside a frame (0 if it cannot be encoded at all, which postcard only does for maps and
/// sequences of unknown length, none of which a sample has).
pub fn sample_len(sample: &crate::Sample) -> usize {
    postcard::to_allocvec(sample).map_or(0, |v| v.len())
}

/// Appends the envelope of a message to `out`.
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    let body = postcard::to_extend(msg, std::mem::take(out))
        .map_err(|error| EncodeError::Postcard { message: msg.name(), error })?;
    *out = body;
    Ok(())
}

/// The postcard body of an envelope of this protocol version.
fn body_of(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let (version, body) = match bytes {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => return Err(DecodeError::Truncated { len: bytes.len() }),
    };
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion { got: version, supported: PROTOCOL_VERSION });
    }
    Ok(body)
}

/// The variant index of the message in an envelope, read without decoding the body: a receiver
/// that accepts only some messages (before authentication, only `Hello` or `Enroll`) refuses the
/// others before they cost anything. See [`crate::message::tag`].
pub fn peek_tag(bytes: &[u8]) -> Result<u32, DecodeError> {
    let body = body_of(bytes)?;
    // A postcard varint: 7 bits per byte, least significant first, at most 5 bytes for a u32.
    let mut tag: u32 = 0;
    for (i, byte) in body.iter().take(5).enumerate() {
        tag |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(tag);
        }
    }
    Err(DecodeError::Malformed { reason: "no message type".into() })
}

/// Decodes one envelope. Never panics, whatever the input; allocations are bounded by the input
/// length.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let body = body_of(bytes)?;
    let (msg, rest) = postcard::take_from_bytes::<Message>(body)
        .map_err(|e| DecodeError::Malformed { reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Ack, Report};

    #[test]
    fn round_trip() {
        let msg = Message::Ack(Ack::range(1, 42));
        assert_eq!(decode(&encode(&msg).unwrap()).unwrap(), msg);
    }

    #[test]
    fn short_input_is_truncated() {
        assert_eq!(decode(&[]), Err(DecodeError::Truncated { len: 0 }));
        assert_eq!(decode(&[1]), Err(DecodeError::Truncated { len: 1 }));
    }

    #[test]
    fn unknown_version_is_typed() {
        let mut bytes = encode(&Message::Ack(Ack::range(1, 1))).unwrap();
        bytes[0] = 9;
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownVersion { got: 9, supported: PROTOCOL_VERSION }));
    }

    #[test]
    fn garbage_body_is_malformed() {
        let mut bytes = PROTOCOL_VERSION.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(decode(&bytes), Err(DecodeError::Malformed { .. })));
    }

    #[test]
    fn peek_tag_reads_the_variant_without_decoding() {
        let bytes = encode(&Message::Ack(Ack::range(1, 1))).unwrap();
        assert_eq!(peek_tag(&bytes), Ok(3));
        assert_eq!(peek_tag(&bytes[..2]), Err(DecodeError::Malformed { reason: "no message type".into() }));
        assert!(matches!(peek_tag(&[9, 0, 0]), Err(DecodeError::UnknownVersion { .. })));
        let mut big = PROTOCOL_VERSION.to_le_bytes().to_vec();
        big.extend_from_slice(&[0x80, 0x01]);
        assert_eq!(peek_tag(&big), Ok(128));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&Message::Ack(Ack::range(1, 1))).unwrap();
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes { count: 1 }));
    }

    #[test]
    fn huge_declared_vector_does_not_allocate_wildly() {
        // Report with seq=1, time=0 and a samples vector that claims u32::MAX elements.
        let mut bytes = PROTOCOL_VERSION.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[2, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(decode(&bytes), Err(DecodeError::Malformed { .. })));
        let ok = Message::Report(Report { seq: 1, agent_time_ms: 0, samples: vec![] });
        assert_eq!(decode(&encode(&ok).unwrap()).unwrap(), ok);
    }
}
