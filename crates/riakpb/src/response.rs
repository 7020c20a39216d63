//! Responses: the messages a server sends.

use bytes::BytesMut;

use crate::codes;
use crate::error::WireError;
use crate::frame::{self, Body};
use crate::messages::*;

/// A response to a [`Request`](crate::Request), encoded into one frame.
///
/// The variants without a payload are sent as a bare message code, as Riak does.
/// `GetResp`, `PutResp`, `CounterUpdateResp` and `CounterGetResp` with every
/// field unset are also just the code on the wire.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a response is built once and written out; boxing the bucket properties would only make it clumsier to build"
)]
pub enum Response {
    /// `RpbErrorResp` (0): the request failed. See [`Response::error`].
    ErrorResp(RpbErrorResp),
    /// `RpbPingResp` (2), no body.
    PingResp,
    /// `RpbGetClientIdResp` (4).
    GetClientIdResp(RpbGetClientIdResp),
    /// `RpbSetClientIdResp` (6), no body.
    SetClientIdResp,
    /// `RpbGetServerInfoResp` (8).
    GetServerInfoResp(RpbGetServerInfoResp),
    /// `RpbGetResp` (10); empty for not found.
    GetResp(RpbGetResp),
    /// `RpbPutResp` (12).
    PutResp(RpbPutResp),
    /// `RpbDelResp` (14), no body.
    DelResp,
    /// `RpbListBucketsResp` (16).
    ListBucketsResp(RpbListBucketsResp),
    /// `RpbListKeysResp` (18).
    ListKeysResp(RpbListKeysResp),
    /// `RpbGetBucketResp` (20): the answer to `GetBucket` and `GetBucketType`.
    GetBucketResp(RpbGetBucketResp),
    /// `RpbSetBucketResp` (22), no body: the answer to `SetBucket` and
    /// `SetBucketType`.
    SetBucketResp,
    /// `RpbResetBucketResp` (30), no body.
    ResetBucketResp,
    /// `RpbGetBucketKeyPreflistResp` (34).
    GetBucketKeyPreflistResp(RpbGetBucketKeyPreflistResp),
    /// `RpbCounterUpdateResp` (51).
    CounterUpdateResp(RpbCounterUpdateResp),
    /// `RpbCounterGetResp` (53).
    CounterGetResp(RpbCounterGetResp),
}

impl Response {
    /// An `RpbErrorResp` with this message and `errcode` 0, which is what Riak
    /// sends for every error.
    pub fn error(message: impl Into<Vec<u8>>) -> Response {
        Response::ErrorResp(RpbErrorResp {
            errmsg: message.into(),
            errcode: 0,
        })
    }

    /// Decodes the response in a frame with message `code` and `body` (the
    /// client side).
    ///
    /// Fails with [`WireError::UnknownCode`] for a code that is not one of the
    /// responses above (including responses Riak defines for requests this
    /// crate does not decode, such as `RpbMapRedResp`), and with
    /// [`WireError::Malformed`] if the body does not decode.
    pub fn decode(code: u8, body: &[u8]) -> Result<Response, WireError> {
        use frame::{check_empty_body, decode_body};

        let response = match code {
            codes::ERROR_RESP => {
                Response::ErrorResp(decode_body(code, body, &[(1, "errmsg"), (2, "errcode")])?)
            }
            codes::PING_RESP => {
                check_empty_body(code, body)?;
                Response::PingResp
            }
            codes::GET_CLIENT_ID_RESP => {
                Response::GetClientIdResp(decode_body(code, body, &[(1, "client_id")])?)
            }
            codes::SET_CLIENT_ID_RESP => {
                check_empty_body(code, body)?;
                Response::SetClientIdResp
            }
            codes::GET_SERVER_INFO_RESP => {
                Response::GetServerInfoResp(decode_body(code, body, &[])?)
            }
            codes::GET_RESP => Response::GetResp(decode_body(code, body, &[])?),
            codes::PUT_RESP => Response::PutResp(decode_body(code, body, &[])?),
            codes::DEL_RESP => {
                check_empty_body(code, body)?;
                Response::DelResp
            }
            codes::LIST_BUCKETS_RESP => Response::ListBucketsResp(decode_body(code, body, &[])?),
            codes::LIST_KEYS_RESP => Response::ListKeysResp(decode_body(code, body, &[])?),
            codes::GET_BUCKET_RESP => {
                Response::GetBucketResp(decode_body(code, body, &[(1, "props")])?)
            }
            codes::SET_BUCKET_RESP => {
                check_empty_body(code, body)?;
                Response::SetBucketResp
            }
            codes::RESET_BUCKET_RESP => {
                check_empty_body(code, body)?;
                Response::ResetBucketResp
            }
            codes::GET_BUCKET_KEY_PREFLIST_RESP => {
                Response::GetBucketKeyPreflistResp(decode_body(code, body, &[])?)
            }
            codes::COUNTER_UPDATE_RESP => {
                Response::CounterUpdateResp(decode_body(code, body, &[])?)
            }
            codes::COUNTER_GET_RESP => Response::CounterGetResp(decode_body(code, body, &[])?),
            code => return Err(WireError::UnknownCode(code)),
        };
        Ok(response)
    }

    /// The message code of this response.
    pub fn code(&self) -> u8 {
        self.parts().0
    }

    /// Appends the whole frame of this response — length prefix, code, body —
    /// to `dst`.
    ///
    /// # Panics
    ///
    /// If the frame is over 4 GiB, more than its `u32` length prefix can say.
    /// ([`RiakCodec`](crate::RiakCodec)'s `Encoder` returns an error instead.)
    pub fn encode_frame(&self, dst: &mut BytesMut) {
        let (code, body) = self.parts();
        frame::write_frame(dst, code, body);
    }

    /// The value of this response's length prefix: 1 (the code) plus the body.
    pub fn frame_len(&self) -> usize {
        frame::frame_len(self.parts().1)
    }

    /// The message code and the body.
    fn parts(&self) -> (u8, &dyn Body) {
        match self {
            Response::ErrorResp(m) => (codes::ERROR_RESP, m),
            Response::PingResp => (codes::PING_RESP, &()),
            Response::GetClientIdResp(m) => (codes::GET_CLIENT_ID_RESP, m),
            Response::SetClientIdResp => (codes::SET_CLIENT_ID_RESP, &()),
            Response::GetServerInfoResp(m) => (codes::GET_SERVER_INFO_RESP, m),
            Response::GetResp(m) => (codes::GET_RESP, m),
            Response::PutResp(m) => (codes::PUT_RESP, m),
            Response::DelResp => (codes::DEL_RESP, &()),
            Response::ListBucketsResp(m) => (codes::LIST_BUCKETS_RESP, m),
            Response::ListKeysResp(m) => (codes::LIST_KEYS_RESP, m),
            Response::GetBucketResp(m) => (codes::GET_BUCKET_RESP, m),
            Response::SetBucketResp => (codes::SET_BUCKET_RESP, &()),
            Response::ResetBucketResp => (codes::RESET_BUCKET_RESP, &()),
            Response::GetBucketKeyPreflistResp(m) => (codes::GET_BUCKET_KEY_PREFLIST_RESP, m),
            Response::CounterUpdateResp(m) => (codes::COUNTER_UPDATE_RESP, m),
            Response::CounterGetResp(m) => (codes::COUNTER_GET_RESP, m),
        }
    }
}
