//! Riak KV's HTTP API (SPEC §5, "Riak-compatible API"), so applications and
//! client libraries written for Riak work unchanged: objects under
//! `/types/T/buckets/B/keys/K`, `/buckets/B/keys/K` and the legacy
//! `/riak/B/K`; bucket properties; key and bucket listing; `/ping`, `/stats`
//! and the resource map at `/`.
//!
//! A path is parsed once into a [`Target`] (`path.rs`); objects are served
//! by `object.rs` (headers, siblings as `multipart/mixed`, conditional
//! requests), the rest here.

pub(crate) mod counter;
pub(crate) mod object;
mod path;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use dynakv_buckets::props::overlay_from_body;
use dynakv_buckets::{MetadataError, Namespace, Props, decode_key};
use serde_json::{Value, json};

use self::path::Target;
use super::ApiError;
use crate::server::gossip;
use crate::server::node::Node;

/// The Riak KV release whose client-visible features this API implements:
/// clients switch features on by it.
pub const RIAK_KV_VERSION: &str = "2.2.3";

/// The routes of the Riak HTTP API.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/", get(resources))
        .route("/ping", get(ping))
        .route("/stats", get(stats))
        .route("/buckets", any(dispatch))
        .route("/buckets/{*rest}", any(dispatch))
        .route("/types/{*rest}", any(dispatch))
        .route("/riak", any(dispatch))
        .route("/riak/{*rest}", any(dispatch))
}

/// `GET /ping`.
async fn ping() -> &'static str {
    "OK"
}

/// `GET /`: the resource map clients probe to learn the paths.
async fn resources(headers: HeaderMap) -> Response {
    let map = json!({
        "riak_kv_wm_buckets": "/buckets",
        "riak_kv_wm_bucket_type": "/types",
        "riak_kv_wm_counter": "/buckets",
        "riak_kv_wm_index": "/buckets",
        "riak_kv_wm_keylist": "/buckets",
        "riak_kv_wm_link_walker": "/riak",
        "riak_kv_wm_object": "/buckets",
        "riak_kv_wm_ping": "/ping",
        "riak_kv_wm_preflist": "/buckets",
        "riak_kv_wm_props": "/buckets",
        "riak_kv_wm_stats": "/stats",
    });
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if wants_json {
        return axum::Json(map).into_response();
    }
    let links: Vec<String> = map
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("<{}>; rel=\"{k}\"", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let body: String = links
        .iter()
        .map(|l| format!("<li>{}</li>", l.replace('<', "&lt;").replace('>', "&gt;")))
        .collect();
    (
        [
            (header::LINK, links.join(", ")),
            (header::CONTENT_TYPE, "text/html".to_string()),
        ],
        format!("<html><body><ul>{body}</ul></body></html>"),
    )
        .into_response()
}

/// `GET /stats`: the node's counters, with the version fields clients read.
async fn stats(State(node): State<Arc<Node>>) -> Response {
    let status = node.core.storage.stats();
    let ring = node.core.cluster.ring();
    let members: Vec<String> = node
        .core
        .cluster
        .view()
        .into_iter()
        .map(|m| m.name)
        .collect();
    axum::Json(json!({
        "nodename": node.core.me(),
        "riak_kv_version": RIAK_KV_VERSION,
        "riak_core_version": RIAK_KV_VERSION,
        "riak_pb_version": RIAK_KV_VERSION,
        "riak_api_version": RIAK_KV_VERSION,
        "dynakv_version": env!("CARGO_PKG_VERSION"),
        "ring_members": members,
        "ring_num_partitions": dynakv_ring::PARTITIONS,
        "ring_creation_size": dynakv_ring::PARTITIONS,
        "n_val": ring.n(),
        "keys": status.keys,
        "connected_nodes": node.core.cluster.view().len().saturating_sub(1),
    }))
    .into_response()
}

type Params = HashMap<String, String>;

/// Every path under `/buckets`, `/types` and `/riak`.
async fn dispatch(
    State(node): State<Arc<Node>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Params>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let target = Target::parse(uri.path())?;
    let body = || body.map_err(|e| object::body_error(&node, e));
    match (target, method) {
        (Target::Buckets { bucket_type }, Method::GET) => {
            list_buckets(&node, bucket_type, &query).await
        }
        (Target::TypeProps { bucket_type }, Method::GET) => {
            let props = node
                .core
                .buckets
                .type_props(&bucket_type)
                .map_err(metadata_error)?;
            Ok(props_response(
                &props,
                &String::from_utf8_lossy(&bucket_type),
            ))
        }
        (Target::TypeProps { bucket_type }, Method::PUT) => {
            let overlay =
                overlay_from_body(&body()?).map_err(|e| ApiError::bad_request(e.to_string()))?;
            change_metadata(&node, |m, stamp, n| {
                m.update_type(&bucket_type, &overlay, n, stamp)
            })
            .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Target::Props { ns }, Method::GET) => {
            let props = bucket_props(&node, &ns)?;
            Ok(props_response(&props, &ns.bucket_name()))
        }
        (Target::Props { ns }, Method::PUT | Method::POST) => {
            let overlay =
                overlay_from_body(&body()?).map_err(|e| ApiError::bad_request(e.to_string()))?;
            change_metadata(&node, |m, stamp, n| m.set_bucket(&ns, &overlay, n, stamp)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Target::Props { ns }, Method::DELETE) => {
            change_metadata(&node, |m, stamp, _| m.reset_bucket(&ns, stamp)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Target::Keys { ns }, Method::GET) => {
            if query.get("props").is_some_and(|v| v == "true") || !query.contains_key("keys") {
                // Legacy `/riak/B`: the properties, with keys if asked.
                if query.get("keys").is_none_or(|k| k == "false") {
                    let props = bucket_props(&node, &ns)?;
                    return Ok(props_response(&props, &ns.bucket_name()));
                }
            }
            list_keys(&node, ns, &query).await
        }
        (Target::Keys { ns }, Method::PUT) => {
            // Legacy `PUT /riak/B`: set properties.
            let overlay =
                overlay_from_body(&body()?).map_err(|e| ApiError::bad_request(e.to_string()))?;
            change_metadata(&node, |m, stamp, n| m.set_bucket(&ns, &overlay, n, stamp)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Target::Keys { ns }, Method::POST) => {
            object::put(&node, ns, None, &query, &headers, body()?).await
        }
        (Target::Object { ns, key }, Method::GET | Method::HEAD) => {
            object::get(&node, ns, key, &query, &headers).await
        }
        (Target::Object { ns, key }, Method::PUT | Method::POST) => {
            object::put(&node, ns, Some(key), &query, &headers, body()?).await
        }
        (Target::Object { ns, key }, Method::DELETE) => {
            object::delete(&node, ns, key, &query, &headers).await
        }
        (Target::Counter { ns, key }, Method::GET) => {
            match counter::get(&node, &ns, &key, &query).await? {
                Some(v) => Ok(v.to_string().into_response()),
                None => Err(ApiError::not_found("not found")),
            }
        }
        (Target::Counter { ns, key }, Method::POST) => {
            let by = counter::parse_amount(&body()?)?;
            let returnvalue = query.get("returnvalue").is_some_and(|v| v == "true");
            match counter::update(&node, &ns, &key, by, &query, returnvalue).await? {
                Some(v) => Ok(v.to_string().into_response()),
                None => Ok(StatusCode::NO_CONTENT.into_response()),
            }
        }
        (Target::Preflist { ns, key }, Method::GET) => {
            let items: Vec<Value> = object::preflist(&node, &ns, &key)?
                .into_iter()
                .map(|(partition, name, primary)| {
                    json!({"partition": partition, "node": name, "primary": primary})
                })
                .collect();
            Ok(axum::Json(json!({ "preflist": items })).into_response())
        }
        (_, method) => Err(ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: format!("{method} is not allowed on {}", uri.path()),
        }),
    }
}

/// The answer to a metadata change the map refused.
pub(crate) fn metadata_error(e: MetadataError) -> ApiError {
    match e {
        MetadataError::NoSuchType(_) => ApiError {
            status: StatusCode::NOT_FOUND,
            code: "no_such_bucket_type",
            message: e.to_string(),
        },
        MetadataError::TypeExists(_) => ApiError {
            status: StatusCode::CONFLICT,
            code: "bucket_type_exists",
            message: e.to_string(),
        },
        MetadataError::NotActive(_) => ApiError {
            status: StatusCode::CONFLICT,
            code: "bucket_type_not_active",
            message: e.to_string(),
        },
        _ => ApiError::bad_request(e.to_string()),
    }
}

/// Applies a change to the bucket metadata here, persists it, and pushes it
/// to every member before answering (a member that misses the push gets it
/// from gossip).
pub(crate) async fn change_metadata(
    node: &Arc<Node>,
    f: impl FnOnce(
        &mut dynakv_buckets::BucketMetadata,
        dynakv_buckets::Stamp,
        usize,
    ) -> Result<(), MetadataError>,
) -> Result<(), ApiError> {
    node.core.buckets.change(f).map_err(metadata_error)?;
    node.core.persist_buckets().await;
    gossip::push::<gossip::BucketTypes>(&node.core).await;
    Ok(())
}

/// The properties of bucket `ns`, a 404 for an unknown type.
pub(crate) fn bucket_props(node: &Node, ns: &Namespace) -> Result<Arc<Props>, ApiError> {
    node.core.buckets.props(ns).map_err(metadata_error)
}

fn props_response(props: &Props, name: &str) -> Response {
    axum::Json(json!({"props": props.to_json(name)})).into_response()
}

/// Streams a body of JSON objects `{"<field>": [..]}`, one per batch, as
/// Riak's `?keys=stream` does; or gathers one object for `?keys=true`.
async fn list_keys(node: &Arc<Node>, ns: Namespace, query: &Params) -> Result<Response, ApiError> {
    ns.validate().map_err(ApiError::bad_request)?;
    let props = bucket_props(node, &ns)?;
    let stream = match query.get("keys").map(String::as_str) {
        Some("stream") => true,
        Some("true") => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "keys must be true or stream, not {other:?}"
            )));
        }
    };
    let prefix = ns.key_prefix();
    let rx = node.coordinator.list_keys(prefix, props.n_val);
    let deadline = listing_deadline(query)?;
    let default = ns.is_default_bucket();
    let names = move |batch: Vec<bytes::Bytes>| -> Vec<String> {
        batch
            .iter()
            .map(|k| decode_key(k))
            // The default bucket's keys are every plain key: skip the rest.
            .filter(|k| !default || k.is_default_bucket())
            .map(|k| String::from_utf8_lossy(k.key).into_owned())
            .collect()
    };
    listing_response(rx, deadline, "keys", stream, names).await
}

/// When a listing must end: `?timeout=` milliseconds from now, if given.
fn listing_deadline(query: &Params) -> Result<Option<tokio::time::Instant>, ApiError> {
    match query.get("timeout") {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&ms| ms > 0)
            .map(|ms| Some(tokio::time::Instant::now() + std::time::Duration::from_millis(ms)))
            .ok_or_else(|| {
                ApiError::bad_request(format!("timeout must be milliseconds, not {v:?}"))
            }),
    }
}

/// The next batch of a listing, or a timeout error once `deadline` passed.
pub(crate) async fn next_batch(
    rx: &mut tokio::sync::mpsc::Receiver<
        Result<Vec<bytes::Bytes>, crate::server::error::CoordError>,
    >,
    deadline: Option<tokio::time::Instant>,
) -> Option<Result<Vec<bytes::Bytes>, String>> {
    let next = match deadline {
        None => rx.recv().await,
        Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
            Ok(n) => n,
            Err(_) => return Some(Err("timeout".to_string())),
        },
    };
    next.map(|r| r.map_err(|e| e.to_string()))
}

async fn list_buckets(
    node: &Arc<Node>,
    bucket_type: Vec<u8>,
    query: &Params,
) -> Result<Response, ApiError> {
    node.core
        .buckets
        .usable(&bucket_type)
        .map_err(metadata_error)?;
    let stream = match query.get("buckets").map(String::as_str) {
        Some("stream") => true,
        Some("true") => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "buckets must be true or stream, not {other:?}"
            )));
        }
    };
    let prefix = dynakv_buckets::type_prefix(&bucket_type);
    let rx = node.coordinator.list_keys(prefix, node.core.buckets.n());
    let deadline = listing_deadline(query)?;
    let mut seen = std::collections::BTreeSet::new();
    let names = move |batch: Vec<bytes::Bytes>| -> Vec<String> {
        batch
            .iter()
            .map(|k| decode_key(k))
            .filter(|k| k.bucket_type == bucket_type.as_slice())
            .filter(|k| seen.insert(k.bucket.to_vec()))
            .map(|k| String::from_utf8_lossy(k.bucket).into_owned())
            .collect()
    };
    listing_response(rx, deadline, "buckets", stream, names).await
}

async fn listing_response(
    mut rx: tokio::sync::mpsc::Receiver<
        Result<Vec<bytes::Bytes>, crate::server::error::CoordError>,
    >,
    deadline: Option<tokio::time::Instant>,
    field: &'static str,
    stream: bool,
    mut names: impl FnMut(Vec<bytes::Bytes>) -> Vec<String> + Send + 'static,
) -> Result<Response, ApiError> {
    if !stream {
        let mut all = Vec::new();
        while let Some(batch) = next_batch(&mut rx, deadline).await {
            let batch = batch.map_err(|e| ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "listing_failed",
                message: e,
            })?;
            all.extend(names(batch));
        }
        return Ok(axum::Json(json!({ field: all })).into_response());
    }
    let body = futures::stream::unfold(
        (rx, names, false),
        move |(mut rx, mut names, ended)| async move {
            if ended {
                return None;
            }
            match next_batch(&mut rx, deadline).await {
                Some(Ok(batch)) => {
                    let chunk = json!({ field: names(batch) }).to_string();
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(chunk)),
                        (rx, names, false),
                    ))
                }
                Some(Err(e)) => {
                    let chunk = json!({ "error": e }).to_string();
                    Some((Ok(Bytes::from(chunk)), (rx, names, true)))
                }
                None => None,
            }
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}
