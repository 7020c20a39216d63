//! Errors of framing and message decoding.

use std::io;

/// What can go wrong reading the protocol.
///
/// Two kinds: a *framing* error ([`EmptyFrame`](WireError::EmptyFrame),
/// [`FrameTooLarge`](WireError::FrameTooLarge), [`Truncated`](WireError::Truncated),
/// [`Io`](WireError::Io)) leaves the position of the next frame unknown, so the
/// connection must be closed; a *message* error ([`UnknownCode`](WireError::UnknownCode),
/// [`Malformed`](WireError::Malformed)) concerns one complete frame, and the
/// server answers it with an `RpbErrorResp` and reads on. See
/// [`WireError::closes_connection`].
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A length prefix of 0: a frame must at least hold its message code.
    #[error("empty frame: the length prefix is 0")]
    EmptyFrame,

    /// A length prefix over the codec's limit. Reported as soon as the prefix
    /// is read, before any of the body is buffered.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    FrameTooLarge {
        /// The length prefix: message code plus body, in bytes.
        len: usize,
        /// The codec's limit.
        max: usize,
    },

    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,

    /// A message code this crate has no message for, or a response code where a
    /// request was expected (and vice versa).
    #[error("unknown message code {0}")]
    UnknownCode(u8),

    /// A known message code whose body does not decode: bad protobuf, or a
    /// `required` field missing.
    #[error("malformed {} (code {code}): {reason}", crate::codes::name(*code).unwrap_or("message"))]
    Malformed {
        /// The frame's message code.
        code: u8,
        /// What is wrong with the body.
        reason: String,
    },

    /// Reading the socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl WireError {
    /// Whether the connection must be closed after this error.
    ///
    /// `true` for framing errors and I/O errors: the byte stream can no longer
    /// be trusted to be at a frame boundary. `false` for [`UnknownCode`] and
    /// [`Malformed`]: the whole frame was consumed, so the server can answer with
    /// an `RpbErrorResp` and go on to the next request, as Riak does.
    ///
    /// [`UnknownCode`]: WireError::UnknownCode
    /// [`Malformed`]: WireError::Malformed
    pub fn closes_connection(&self) -> bool {
        match self {
            WireError::EmptyFrame
            | WireError::FrameTooLarge { .. }
            | WireError::Truncated
            | WireError::Io(_) => true,
            WireError::UnknownCode(_) | WireError::Malformed { .. } => false,
        }
    }

    pub(crate) fn malformed(code: u8, reason: impl ToString) -> WireError {
        WireError::Malformed {
            code,
            reason: reason.to_string(),
        }
    }
}
