//! Bucket types over HTTP, shaped like `riak-admin bucket-type`:
//! `GET /admin/bucket-types` (list), `GET /admin/bucket-types/{name}`
//! (status and properties), `POST /admin/bucket-types/{name}` with
//! `{"props": {...}}` (create), `POST /admin/bucket-types/{name}/activate`,
//! and `PUT /admin/bucket-types/{name}` (update). Changes need the admin
//! token when one is set; like bucket properties, they are cluster metadata,
//! pushed to every member and gossiped.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dynakv_buckets::TypeStatus;
use dynakv_buckets::props::overlay_from_body;
use serde_json::{Value, json};

use super::ApiError;
use super::admin::authorize;
use super::riak::{change_metadata, metadata_error};
use crate::server::node::Node;

/// The type named in the path (`/admin/bucket-types/{name}[/activate]`),
/// percent-decoded to bytes.
fn type_name(uri: &Uri) -> Result<String, ApiError> {
    let raw = uri
        .path()
        .strip_prefix("/admin/bucket-types/")
        .unwrap_or_default();
    let raw = raw.strip_suffix("/activate").unwrap_or(raw);
    let name: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    if name.is_empty() || name.len() > 255 || name.contains(&b'/') {
        return Err(ApiError::bad_request(
            "a bucket type name is 1 to 255 bytes",
        ));
    }
    String::from_utf8(name).map_err(|_| ApiError::bad_request("a bucket type name is UTF-8 text"))
}

fn status_name(s: TypeStatus) -> &'static str {
    match s {
        TypeStatus::Active => "active",
        TypeStatus::Created => "created",
    }
}

fn describe(node: &Node, name: &[u8]) -> Result<Value, ApiError> {
    let props = node.core.buckets.type_props(name).map_err(metadata_error)?;
    let status = node
        .core
        .buckets
        .snapshot()
        .type_status(name)
        .map_or("unknown", status_name);
    let name = String::from_utf8_lossy(name);
    Ok(json!({"name": name, "status": status, "props": props.to_json(&name)}))
}

/// `GET /admin/bucket-types`.
pub async fn list(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    let types = node.core.buckets.snapshot().types();
    let out: Vec<Value> = types
        .iter()
        .map(|(name, _)| describe(&node, name))
        .collect::<Result<_, _>>()?;
    Ok(axum::Json(json!({ "types": out })).into_response())
}

/// `GET /admin/bucket-types/{name}`.
pub async fn status(State(node): State<Arc<Node>>, uri: Uri) -> Result<Response, ApiError> {
    let name = type_name(&uri)?;
    Ok(axum::Json(describe(&node, name.as_bytes())?).into_response())
}

fn overlay(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    overlay_from_body(body).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A change of a type's properties (create or update): authorizes, reads
/// the overlay, applies and spreads the change; the type as it is now.
async fn change_props(
    node: &Arc<Node>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    change: impl FnOnce(
        &mut dynakv_buckets::BucketMetadata,
        &[u8],
        &Value,
        usize,
        dynakv_buckets::Stamp,
    ) -> Result<(), dynakv_buckets::MetadataError>,
) -> Result<Value, ApiError> {
    authorize(node, headers)?;
    let name = type_name(uri)?;
    let body = body.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
    let props = overlay(&body)?;
    change_metadata(node, |m, stamp, n| {
        change(m, name.as_bytes(), &props, n, stamp)
    })
    .await?;
    describe(node, name.as_bytes())
}

/// `POST /admin/bucket-types/{name}`: create.
pub async fn create(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let t = change_props(&node, &uri, &headers, body, |m, name, props, n, stamp| {
        m.create_type(name, props, n, stamp)
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(t)).into_response())
}

/// `POST /admin/bucket-types/{name}/activate`.
pub async fn activate(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&node, &headers)?;
    let name = type_name(&uri)?;
    change_metadata(&node, |m, stamp, _| m.activate_type(name.as_bytes(), stamp)).await?;
    Ok(axum::Json(describe(&node, name.as_bytes())?).into_response())
}

/// `PUT /admin/bucket-types/{name}`: update.
pub async fn update(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let t = change_props(&node, &uri, &headers, body, |m, name, props, n, stamp| {
        m.update_type(name, props, n, stamp)
    })
    .await?;
    Ok(axum::Json(t).into_response())
}
