//! Requests: the messages a client sends.

use bytes::BytesMut;

use crate::codes;
use crate::error::WireError;
use crate::frame::{self, Body};
use crate::messages::*;

/// A request from a client, decoded from one frame.
///
/// Each variant is answered with one [`Response`](crate::Response) (or, for
/// `ListBuckets` with `stream` and `ListKeys`, several), or with
/// [`Response::ErrorResp`](crate::Response::ErrorResp) on failure.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `RpbPingReq` (1), no body. Answer: `PingResp`.
    Ping,
    /// `RpbGetClientIdReq` (3), no body. Answer: `GetClientIdResp`.
    GetClientId,
    /// `RpbSetClientIdReq` (5). Answer: `SetClientIdResp`.
    SetClientId(RpbSetClientIdReq),
    /// `RpbGetServerInfoReq` (7), no body. Answer: `GetServerInfoResp`.
    GetServerInfo,
    /// `RpbGetReq` (9). Answer: `GetResp`.
    Get(RpbGetReq),
    /// `RpbPutReq` (11). Answer: `PutResp`.
    Put(RpbPutReq),
    /// `RpbDelReq` (13). Answer: `DelResp`.
    Del(RpbDelReq),
    /// `RpbListBucketsReq` (15). Answer: `ListBucketsResp`, several if `stream`
    /// is set, the last with `done`.
    ListBuckets(RpbListBucketsReq),
    /// `RpbListKeysReq` (17). Answer: one or more `ListKeysResp`, the last with
    /// `done`.
    ListKeys(RpbListKeysReq),
    /// `RpbGetBucketReq` (19). Answer: `GetBucketResp`.
    GetBucket(RpbGetBucketReq),
    /// `RpbSetBucketReq` (21). Answer: `SetBucketResp`.
    SetBucket(RpbSetBucketReq),
    /// `RpbResetBucketReq` (29). Answer: `ResetBucketResp`.
    ResetBucket(RpbResetBucketReq),
    /// `RpbGetBucketTypeReq` (31). Answer: `GetBucketResp`.
    GetBucketType(RpbGetBucketTypeReq),
    /// `RpbSetBucketTypeReq` (32). Answer: `SetBucketResp` (Riak has no
    /// separate response for it).
    SetBucketType(RpbSetBucketTypeReq),
    /// `RpbGetBucketKeyPreflistReq` (33). Answer: `GetBucketKeyPreflistResp`.
    GetBucketKeyPreflist(RpbGetBucketKeyPreflistReq),
    /// `RpbCounterUpdateReq` (50). Answer: `CounterUpdateResp`.
    CounterUpdate(RpbCounterUpdateReq),
    /// `RpbCounterGetReq` (52). Answer: `CounterGetResp`.
    CounterGet(RpbCounterGetReq),
    /// Any other request Riak defines (MapReduce, secondary index, search, data
    /// types, time series, `RpbAuthReq`, `RpbStartTls`, …; see
    /// [`codes::is_request`]). The body is not decoded. A server answers
    /// `ErrorResp` ("not supported") and reads on.
    Other {
        /// The message code.
        code: u8,
    },
}

impl Request {
    /// Decodes the request in a frame with message `code` and `body`.
    ///
    /// Fails with [`WireError::UnknownCode`] if `code` is not a request Riak
    /// defines, and with [`WireError::Malformed`] if the body is not a valid
    /// message of that code (bad protobuf, or a `required` field missing).
    /// Neither error closes the connection.
    pub fn decode(code: u8, body: &[u8]) -> Result<Request, WireError> {
        use frame::{check_empty_body, decode_body};
        const BUCKET: (u32, &str) = (1, "bucket");
        const KEY: (u32, &str) = (2, "key");

        let request = match code {
            codes::PING_REQ => {
                check_empty_body(code, body)?;
                Request::Ping
            }
            codes::GET_CLIENT_ID_REQ => {
                check_empty_body(code, body)?;
                Request::GetClientId
            }
            codes::SET_CLIENT_ID_REQ => {
                Request::SetClientId(decode_body(code, body, &[(1, "client_id")])?)
            }
            codes::GET_SERVER_INFO_REQ => {
                check_empty_body(code, body)?;
                Request::GetServerInfo
            }
            codes::GET_REQ => Request::Get(decode_body(code, body, &[BUCKET, KEY])?),
            codes::PUT_REQ => Request::Put(decode_body(code, body, &[BUCKET, (4, "content")])?),
            codes::DEL_REQ => Request::Del(decode_body(code, body, &[BUCKET, KEY])?),
            codes::LIST_BUCKETS_REQ => Request::ListBuckets(decode_body(code, body, &[])?),
            codes::LIST_KEYS_REQ => Request::ListKeys(decode_body(code, body, &[BUCKET])?),
            codes::GET_BUCKET_REQ => Request::GetBucket(decode_body(code, body, &[BUCKET])?),
            codes::SET_BUCKET_REQ => {
                Request::SetBucket(decode_body(code, body, &[BUCKET, (2, "props")])?)
            }
            codes::RESET_BUCKET_REQ => Request::ResetBucket(decode_body(code, body, &[BUCKET])?),
            codes::GET_BUCKET_TYPE_REQ => {
                Request::GetBucketType(decode_body(code, body, &[(1, "type")])?)
            }
            codes::SET_BUCKET_TYPE_REQ => {
                Request::SetBucketType(decode_body(code, body, &[(1, "type"), (2, "props")])?)
            }
            codes::GET_BUCKET_KEY_PREFLIST_REQ => {
                Request::GetBucketKeyPreflist(decode_body(code, body, &[BUCKET, KEY])?)
            }
            codes::COUNTER_UPDATE_REQ => {
                Request::CounterUpdate(decode_body(code, body, &[BUCKET, KEY, (3, "amount")])?)
            }
            codes::COUNTER_GET_REQ => Request::CounterGet(decode_body(code, body, &[BUCKET, KEY])?),
            code if codes::is_request(code) => Request::Other { code },
            code => return Err(WireError::UnknownCode(code)),
        };
        Ok(request)
    }

    /// The message code of this request.
    pub fn code(&self) -> u8 {
        self.parts().0
    }

    /// Appends the whole frame of this request — length prefix, code, body — to
    /// `dst`. An `Other` request is sent with an empty body.
    ///
    /// # Panics
    ///
    /// If the frame is over 4 GiB, more than its `u32` length prefix can say.
    /// ([`RiakCodec`](crate::RiakCodec)'s `Encoder` returns an error instead.)
    pub fn encode_frame(&self, dst: &mut BytesMut) {
        let (code, body) = self.parts();
        frame::write_frame(dst, code, body);
    }

    /// The value of this request's length prefix: 1 (the code) plus the body.
    pub fn frame_len(&self) -> usize {
        frame::frame_len(self.parts().1)
    }

    /// The message code and the body.
    fn parts(&self) -> (u8, &dyn Body) {
        match self {
            Request::Ping => (codes::PING_REQ, &()),
            Request::GetClientId => (codes::GET_CLIENT_ID_REQ, &()),
            Request::SetClientId(m) => (codes::SET_CLIENT_ID_REQ, m),
            Request::GetServerInfo => (codes::GET_SERVER_INFO_REQ, &()),
            Request::Get(m) => (codes::GET_REQ, m),
            Request::Put(m) => (codes::PUT_REQ, m),
            Request::Del(m) => (codes::DEL_REQ, m),
            Request::ListBuckets(m) => (codes::LIST_BUCKETS_REQ, m),
            Request::ListKeys(m) => (codes::LIST_KEYS_REQ, m),
            Request::GetBucket(m) => (codes::GET_BUCKET_REQ, m),
            Request::SetBucket(m) => (codes::SET_BUCKET_REQ, m),
            Request::ResetBucket(m) => (codes::RESET_BUCKET_REQ, m),
            Request::GetBucketType(m) => (codes::GET_BUCKET_TYPE_REQ, m),
            Request::SetBucketType(m) => (codes::SET_BUCKET_TYPE_REQ, m),
            Request::GetBucketKeyPreflist(m) => (codes::GET_BUCKET_KEY_PREFLIST_REQ, m),
            Request::CounterUpdate(m) => (codes::COUNTER_UPDATE_REQ, m),
            Request::CounterGet(m) => (codes::COUNTER_GET_REQ, m),
            Request::Other { code } => (*code, &()),
        }
    }
}
