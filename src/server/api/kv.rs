//! The object endpoints: `PUT`, `GET` and `DELETE /kv/{key}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dynakv_storage::clock::now_ms;
use dynakv_versioning::{CausalContext, ContextSigner, Object, Version, VersionVector};
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::ApiError;
use crate::server::config::QuorumMode;
use crate::server::node::Node;
use crate::server::replication::coordinator::{Quorum, RequestOptions, parse_quorum};

/// The header carrying causal-context tokens both ways.
pub const CONTEXT_HEADER: &str = "x-causal-context";
/// Longest key, in bytes (SPEC §2).
pub const MAX_KEY_BYTES: usize = 1024;
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
const MAX_TIMEOUT_MS: u64 = 120_000;

type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Extracts the key from the raw (still percent-encoded) path: one segment.
fn parse_key(uri: &Uri) -> Result<Bytes, ApiError> {
    let raw = uri.path().strip_prefix("/kv/").unwrap_or_default();
    if raw.is_empty() {
        return Err(ApiError::bad_request("the key is empty"));
    }
    if raw.contains('/') {
        return Err(ApiError::bad_request(
            "a key is one path segment: percent-encode '/' in keys as %2F",
        ));
    }
    let key: Vec<u8> = percent_decode_str(raw).collect();
    if !dynakv_buckets::is_plain_key(&key) {
        return Err(ApiError::bad_request(
            "keys may not begin with a zero byte (it marks a key of another bucket)",
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(format!(
            "the key is {} bytes; keys are at most {MAX_KEY_BYTES} bytes",
            key.len()
        )));
    }
    Ok(Bytes::from(key))
}

/// The query string's parameters; a malformed one is a 400.
fn params(query: QueryParams) -> Result<HashMap<String, String>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    Ok(q)
}

/// The stored key a request addresses: the path's key, in bucket `default`
/// of type `default` unless `?bucket=` (and `?type=`) name another, whose
/// type must be active.
fn stored_key(node: &Node, uri: &Uri, q: &HashMap<String, String>) -> Result<Bytes, ApiError> {
    let key = parse_key(uri)?;
    let ns = match (q.get("type"), q.get("bucket")) {
        (None, None) => return Ok(key),
        (t, Some(b)) => dynakv_buckets::Namespace::new(
            t.map_or(dynakv_buckets::DEFAULT.to_vec(), |t| t.as_bytes().to_vec()),
            b.as_bytes(),
        ),
        (Some(_), None) => return Err(ApiError::bad_request("type is given without bucket")),
    };
    node.core
        .buckets
        .usable(&ns.bucket_type)
        .map_err(super::riak::metadata_error)?;
    super::riak::object::stored_key(&ns, &key)
}

/// Request options from the query string (`r` or `w`, `quorum`, `timeout_ms`)
/// with the node's defaults.
fn options(
    node: &Node,
    q: &HashMap<String, String>,
    which: &str,
) -> Result<RequestOptions, ApiError> {
    let n = node.core.config.n;
    let default = if which == "r" {
        node.core.config.r
    } else {
        node.core.config.w
    };
    let quorum = match q.get(which) {
        Some(v) => parse_quorum(v, n).map_err(|e| ApiError::bad_request(format!("{which} {e}")))?,
        None => Quorum::Exactly(default),
    };
    let mode = match q.get("quorum") {
        Some(v) => v.parse::<QuorumMode>().map_err(ApiError::bad_request)?,
        None => node.core.config.quorum,
    };
    let timeout_ms = match q.get("timeout_ms") {
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => ms,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "timeout_ms must be 1..{MAX_TIMEOUT_MS}, not {v:?}"
                )));
            }
        },
        None => node.core.config.request_timeout_ms,
    };
    Ok(RequestOptions {
        quorum,
        mode,
        timeout: Duration::from_millis(timeout_ms),
        replace: false,
        increment: None,
    })
}

/// The causal context a client sent, if any; a malformed one is a 400.
fn context(key: &ContextSigner, headers: &HeaderMap) -> Result<Option<VersionVector>, ApiError> {
    let Some(value) = headers.get(CONTEXT_HEADER) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .map_err(|_| ApiError::bad_request("X-Causal-Context is not a valid token"))?
        .trim();
    if token.is_empty() {
        return Ok(None);
    }
    CausalContext::decode(token, key)
        .map(|c| Some(c.0))
        .map_err(|e| ApiError::bad_request(format!("X-Causal-Context rejected: {e}")))
}

fn context_value(key: &ContextSigner, vv: &VersionVector) -> HeaderValue {
    HeaderValue::from_str(&CausalContext(vv.clone()).encode(key))
        .expect("tokens are URL-safe base64, always a valid header value")
}

/// `PUT /kv/{key}`: store the body as a new version.
pub async fn put(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    query: QueryParams,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = params(query)?;
    let key = stored_key(&node, &uri, &q)?;
    let signer = node.core.context_signer(&key);
    let opts = options(&node, &q, "w")?;
    let ctx = context(&signer, &headers)?.unwrap_or_default();
    let body = body.map_err(|e| body_error(&node, e))?;
    if body.len() > node.core.config.max_value_bytes {
        return Err(too_large(&node, body.len()));
    }
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => DEFAULT_CONTENT_TYPE.to_string(),
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= 256 => s.to_string(),
            _ => {
                return Err(ApiError::bad_request(
                    "Content-Type must be 1-256 visible ASCII characters",
                ));
            }
        },
    };
    let version = Version::value(body, content_type, now_ms());
    let new_ctx = node
        .coordinator
        .coordinate_put(key, ctx, version, opts)
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(CONTEXT_HEADER, context_value(&signer, &new_ctx))],
    )
        .into_response())
}

/// `413 value_too_large`, for a value of `len` bytes or more.
pub(crate) fn too_large(node: &Node, len: usize) -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "value_too_large",
        message: format!(
            "the value is {len} bytes or more; the limit is {} bytes",
            node.core.config.max_value_bytes
        ),
    }
}

/// The answer to a body that could not be read.
pub(crate) fn body_error(node: &Node, e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(node, node.core.config.max_value_bytes + 1)
    } else {
        ApiError::bad_request(format!("cannot read the request body: {e}"))
    }
}

/// `GET /kv/{key}`: the live versions, one raw or several as `300` JSON.
pub async fn get(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let q = params(query)?;
    let key = stored_key(&node, &uri, &q)?;
    let signer = node.core.context_signer(&key);
    let opts = options(&node, &q, "r")?;
    let object = node.coordinator.coordinate_get(key, opts).await?;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    Ok(render(&signer, &object, wants_json))
}

/// The response for a read: `404`, one raw value, or the JSON sibling form.
fn render(key: &ContextSigner, object: &Object, wants_json: bool) -> Response {
    let ctx = object.context();
    let live = object.live();
    if live.is_empty() {
        let mut resp = ApiError::not_found("no live version of this key").into_response();
        if !object.is_empty() {
            resp.headers_mut()
                .insert(CONTEXT_HEADER, context_value(key, &ctx));
        }
        return resp;
    }
    if live.len() == 1 && !wants_json {
        let v = live[0];
        let ct = HeaderValue::from_str(&v.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
        let body = v.data.clone().unwrap_or_default();
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, ct),
                (
                    CONTEXT_HEADER.parse().expect("static"),
                    context_value(key, &ctx),
                ),
            ],
            body,
        )
            .into_response();
    }
    let token = CausalContext(ctx.clone()).encode(key);
    let siblings: Vec<_> = live
        .iter()
        .map(|v| {
            json!({
                "value": STANDARD.encode(v.data.as_deref().unwrap_or_default()),
                "content_type": v.content_type,
            })
        })
        .collect();
    let status = if live.len() > 1 {
        StatusCode::MULTIPLE_CHOICES
    } else {
        StatusCode::OK
    };
    (
        status,
        [(CONTEXT_HEADER, context_value(key, &ctx))],
        Json(json!({"context": token, "siblings": siblings})),
    )
        .into_response()
}

/// `DELETE /kv/{key}`: write a tombstone superseding what the context covers
/// (without one, what a quorum read finds).
pub async fn delete(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let q = params(query)?;
    let key = stored_key(&node, &uri, &q)?;
    let signer = node.core.context_signer(&key);
    let opts = options(&node, &q, "w")?;
    let ctx = match context(&signer, &headers)? {
        Some(ctx) => ctx,
        None => {
            let read = RequestOptions {
                quorum: Quorum::Exactly(node.core.config.r),
                ..opts
            };
            let current = node.coordinator.coordinate_get(key.clone(), read).await?;
            if current.is_deleted() {
                // Nothing live to delete: succeed without writing another tombstone.
                let mut resp = StatusCode::NO_CONTENT.into_response();
                if !current.is_empty() {
                    resp.headers_mut()
                        .insert(CONTEXT_HEADER, context_value(&signer, &current.context()));
                }
                return Ok(resp);
            }
            current.context()
        }
    };
    let new_ctx = node
        .coordinator
        .coordinate_put(key, ctx, Version::tombstone(now_ms()), opts)
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(CONTEXT_HEADER, context_value(&signer, &new_ctx))],
    )
        .into_response())
}

/// Requests no route matched: a malformed key (`/kv/`, `/kv/a/b`) is a 400,
/// anything else an unknown endpoint.
pub async fn fallback(uri: Uri) -> ApiError {
    if uri.path().starts_with("/kv/")
        && let Err(e) = parse_key(&uri)
    {
        return e;
    }
    super::error::unknown_route(uri).await
}
