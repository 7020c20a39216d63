//! Helpers shared by [`Request`](crate::Request) and [`Response`](crate::Response):
//! writing a frame, and decoding a body with its `required` fields checked.

use bytes::{BufMut, BytesMut};
use prost::Message;

use crate::error::WireError;

/// A message body that can be written into a frame: any prost message, `()`
/// for the messages that have no body. (prost's `Message` itself cannot be a
/// trait object.)
pub(crate) trait Body {
    fn body_len(&self) -> usize;
    fn write_body(&self, dst: &mut BytesMut);
}

impl<M: Message> Body for M {
    fn body_len(&self) -> usize {
        self.encoded_len()
    }

    fn write_body(&self, dst: &mut BytesMut) {
        // prost only fails when the buffer has less room than the message, and
        // a BytesMut grows as needed.
        let written = self.encode(dst);
        debug_assert!(written.is_ok(), "encoding into a BytesMut cannot fail");
    }
}

/// The value of the length prefix of a frame: the code byte plus the body.
pub(crate) fn frame_len(body: &dyn Body) -> usize {
    1 + body.body_len()
}

/// Appends a whole frame — length prefix, code, body — to `dst`.
///
/// # Panics
///
/// If the frame is longer than a `u32` length prefix can say (4 GiB).
pub(crate) fn write_frame(dst: &mut BytesMut, code: u8, body: &dyn Body) {
    let len = frame_len(body);
    let prefix = u32::try_from(len).expect("a Riak PB frame is at most u32::MAX bytes long");
    dst.reserve(4 + len);
    dst.put_u32(prefix);
    dst.put_u8(code);
    body.write_body(dst);
}

/// Decodes the body of a `code` frame, then checks that the message's
/// `required` fields, given as `(tag, name)`, are present (prost does not).
///
/// Only top-level fields are checked: a missing required field inside a
/// nested message (say `RpbContent.value` in an `RpbPutReq`) decodes as empty.
pub(crate) fn decode_body<M: Message + Default>(
    code: u8,
    body: &[u8],
    required: &[(u32, &str)],
) -> Result<M, WireError> {
    let message = M::decode(body).map_err(|e| WireError::malformed(code, e))?;
    for &(tag, name) in required {
        if !has_field(body, tag) {
            return Err(WireError::malformed(
                code,
                format!("required field `{name}` ({tag}) is missing"),
            ));
        }
    }
    Ok(message)
}

/// Checks that a body with no fields of its own (`RpbPingReq` …) is at least
/// valid protobuf; an empty body, the usual case, is.
pub(crate) fn check_empty_body(code: u8, body: &[u8]) -> Result<(), WireError> {
    decode_body::<()>(code, body, &[])
}

/// Whether the top level of the protobuf message `body` holds a field tagged
/// `wanted`. Walks the fields the way every protobuf decoder does: a varint key
/// (tag and wire type), then a value whose size the wire type gives.
fn has_field(mut body: &[u8], wanted: u32) -> bool {
    while let Some(key) = read_varint(&mut body) {
        if key >> 3 == u64::from(wanted) {
            return true;
        }
        let value_len = match key & 7 {
            // varint
            0 => match read_varint(&mut body) {
                Some(_) => 0,
                None => return false,
            },
            // 64-bit
            1 => 8,
            // length-delimited
            2 => match read_varint(&mut body) {
                Some(len) => len,
                None => return false,
            },
            // 32-bit
            5 => 4,
            // groups (3, 4) are not used by riak_pb, and 6, 7 do not exist
            _ => return false,
        };
        match usize::try_from(value_len) {
            Ok(len) if len <= body.len() => body = &body[len..],
            _ => return false,
        }
    }
    false
}

/// Reads a base-128 varint from the front of `buf`, or `None` if it is cut off
/// or longer than 10 bytes.
fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut buf: &[u8] = &[0x96, 0x01, 0x07];
        assert_eq!(read_varint(&mut buf), Some(150));
        assert_eq!(buf, &[0x07]);
        let mut cut: &[u8] = &[0x96];
        assert_eq!(read_varint(&mut cut), None);
        let mut max: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&mut max), Some(u64::MAX));
    }

    #[test]
    fn finds_fields_of_every_wire_type() {
        // 1: varint 5, 2: fixed64, 3: bytes "ab", 4: fixed32
        let body = [
            0x08, 0x05, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0x1a, 0x02, b'a', b'b', 0x25, 0, 0, 0, 0,
        ];
        for tag in 1..=4 {
            assert!(has_field(&body, tag), "tag {tag}");
        }
        assert!(!has_field(&body, 5));
        assert!(!has_field(&[], 1));
    }
}
