//! What can go wrong, typed so a caller can decide whether to retry.

use reqwest::StatusCode;

use crate::Context;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key has no live version (it was never written, or deleted). The
    /// context, when the key has tombstones, lets a write supersede them.
    #[error("not found")]
    NotFound {
        /// The tombstones' context, if any.
        context: Option<Context>,
    },
    /// Fewer than R (or W) replicas answered in time. A write refused this way
    /// may still have been stored on the replicas that acknowledged it.
    #[error("quorum unavailable: {message}")]
    QuorumUnavailable {
        /// The node's explanation.
        message: String,
    },
    /// The write would leave more live siblings than the node allows: read,
    /// resolve (for example with [`crate::Client::modify`]) and write back.
    #[error("too many siblings: {message}")]
    TooManySiblings {
        /// The node's explanation.
        message: String,
    },
    /// The request is malformed: a bad key, quorum, context or value size.
    #[error("bad request ({status}): {message}")]
    BadRequest {
        /// 400 or 413.
        status: u16,
        /// The node's explanation.
        message: String,
    },
    /// No node could be reached (every one was tried).
    #[error("unreachable: {message}")]
    Unreachable {
        /// The last connection error.
        message: String,
    },
    /// A request was sent and no answer came in time. A write may have been
    /// applied.
    #[error("timed out: {message}")]
    Timeout {
        /// What timed out.
        message: String,
    },
    /// A read-modify-write kept meeting concurrent writers.
    #[error("{attempts} attempts left concurrent siblings each time")]
    Conflict {
        /// Attempts made.
        attempts: usize,
    },
    /// Any other answer: the HTTP status, the API's error code and message
    /// (admin refusals such as `member_up`, a node shutting down, a bug).
    #[error("{code} ({status}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code (`member_up`, `internal_error`, …).
        code: String,
        /// The node's explanation.
        message: String,
    },
    /// The node answered something this client does not understand.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}

impl Error {
    /// True if the same request may succeed later unchanged: a quorum that
    /// was short, an unreachable node, a timeout, a node that was stopping.
    /// Note that retrying a *write* after [`Error::Timeout`] or
    /// [`Error::QuorumUnavailable`] can store it twice (as two siblings).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::QuorumUnavailable { .. }
            | Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::Conflict { .. } => true,
            Error::Api { status, .. } => *status == 503,
            Error::NotFound { .. }
            | Error::TooManySiblings { .. }
            | Error::BadRequest { .. }
            | Error::InvalidResponse(_) => false,
        }
    }

    /// The typed error for an error answer (`{"error": code, "message": …}`).
    pub(crate) fn from_answer(status: StatusCode, body: &[u8], context: Option<Context>) -> Error {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let code = json["error"].as_str().unwrap_or("error").to_string();
        let message = json["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        match (status.as_u16(), code.as_str()) {
            (404, "not_found") => Error::NotFound { context },
            (503, "quorum_unavailable") => Error::QuorumUnavailable { message },
            (409, "too_many_siblings") => Error::TooManySiblings { message },
            (400 | 413, _) => Error::BadRequest {
                status: status.as_u16(),
                message,
            },
            (status, _) => Error::Api {
                status,
                code,
                message,
            },
        }
    }
}

/// A request's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
