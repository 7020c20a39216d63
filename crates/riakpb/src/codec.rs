//! Framing: [`RiakCodec`], a `tokio_util::codec` decoder and encoder.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::WireError;
use crate::request::Request;
use crate::response::Response;

/// Splits a byte stream into Riak PB frames, and writes them.
///
/// A frame is a 4-byte big-endian length, the 1-byte message code, then the
/// body; the length counts the code and the body. The decoder yields
/// `(code, body)` and leaves the body to [`Request::decode`] or
/// [`Response::decode`]; the encoder takes a [`Request`] or [`Response`] (or
/// a raw `(code, body)` pair).
///
/// The limit, `max_frame_bytes`, applies to frames read (the length prefix,
/// code included), not to frames written.
#[derive(Clone, Debug)]
pub struct RiakCodec {
    max_frame_bytes: usize,
}

impl RiakCodec {
    /// A codec that refuses to read frames whose length prefix is over
    /// `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> RiakCodec {
        RiakCodec { max_frame_bytes }
    }

    /// The largest length prefix the decoder accepts.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }
}

impl Decoder for RiakCodec {
    type Item = (u8, Bytes);
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<(u8, Bytes)>, WireError> {
        let Some(prefix) = src.first_chunk::<4>() else {
            return Ok(None);
        };
        // u32 always fits in usize on the platforms tokio supports; saturating
        // keeps an absurd prefix "too large" on any other.
        let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
        if len == 0 {
            return Err(WireError::EmptyFrame);
        }
        if len > self.max_frame_bytes {
            return Err(WireError::FrameTooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }
        if src.len() - 4 < len {
            // Make room for the rest of the frame; `len` is within the limit.
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let code = src.get_u8();
        let body = src.split_to(len - 1).freeze();
        Ok(Some((code, body)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<(u8, Bytes)>, WireError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(WireError::Truncated),
        }
    }
}

/// The length prefix of a frame of `len` bytes (code plus body), or
/// [`WireError::FrameTooLarge`] if it is over `u32::MAX`, more than a length
/// prefix can say.
fn length_prefix(len: usize) -> Result<u32, WireError> {
    u32::try_from(len).map_err(|_| WireError::FrameTooLarge {
        len,
        max: u32::MAX as usize,
    })
}

impl Encoder<&Response> for RiakCodec {
    type Error = WireError;

    fn encode(&mut self, response: &Response, dst: &mut BytesMut) -> Result<(), WireError> {
        length_prefix(response.frame_len())?;
        response.encode_frame(dst);
        Ok(())
    }
}

impl Encoder<Response> for RiakCodec {
    type Error = WireError;

    fn encode(&mut self, response: Response, dst: &mut BytesMut) -> Result<(), WireError> {
        self.encode(&response, dst)
    }
}

impl Encoder<&Request> for RiakCodec {
    type Error = WireError;

    fn encode(&mut self, request: &Request, dst: &mut BytesMut) -> Result<(), WireError> {
        length_prefix(request.frame_len())?;
        request.encode_frame(dst);
        Ok(())
    }
}

impl Encoder<Request> for RiakCodec {
    type Error = WireError;

    fn encode(&mut self, request: Request, dst: &mut BytesMut) -> Result<(), WireError> {
        self.encode(&request, dst)
    }
}

/// A raw frame: the message code and an already encoded body.
impl Encoder<(u8, Bytes)> for RiakCodec {
    type Error = WireError;

    fn encode(&mut self, (code, body): (u8, Bytes), dst: &mut BytesMut) -> Result<(), WireError> {
        let len = 1 + body.len();
        let prefix = length_prefix(len)?;
        dst.reserve(4 + len);
        dst.put_u32(prefix);
        dst.put_u8(code);
        dst.extend_from_slice(&body);
        Ok(())
    }
}
