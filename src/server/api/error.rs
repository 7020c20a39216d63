//! API errors: every error response is `{"error": code, "message": text}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::replication::coordinator::CoordError;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// A `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    /// A `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// A `401 unauthorized`.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "this endpoint requires Authorization: Bearer <admin_token>".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code, "message": self.message});
        let mut response = (self.status, Json(body)).into_response();
        // Nothing was applied, and another node may serve it: a client can
        // send even a write there (dynakv-client does).
        if matches!(self.code, "not_ready" | "ring_changing") {
            response.headers_mut().insert(
                dynakv_client::NOT_APPLIED_HEADER,
                axum::http::HeaderValue::from_static("true"),
            );
        }
        response
    }
}

impl From<CoordError> for ApiError {
    fn from(e: CoordError) -> Self {
        let (status, code) = match &e {
            CoordError::QuorumUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "quorum_unavailable")
            }
            CoordError::TooManySiblings(_) => (StatusCode::CONFLICT, "too_many_siblings"),
            CoordError::ClockTooLarge { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            CoordError::ObjectTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "object_too_large")
            }
            CoordError::Corrupt => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_record"),
            CoordError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
            CoordError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            CoordError::RingChanging => (StatusCode::SERVICE_UNAVAILABLE, "ring_changing"),
            CoordError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        };
        let message = match &e {
            CoordError::QuorumUnavailable { .. } => format!(
                "{e}; a write may have been stored on the replicas that answered and is not rolled back"
            ),
            _ => e.to_string(),
        };
        ApiError {
            status,
            code,
            message,
        }
    }
}

/// The fallback for paths no route matches.
pub async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

/// The fallback for a known path with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!("{method} is not supported on {}", uri.path()),
    }
}
