//! The operations endpoints: health, status, ring, metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use dynakv_ring::{PARTITIONS, Ring};

use super::ApiError;
use crate::node::Node;
use crate::rpc::faults::FaultSpec;

/// `GET /health`: `200 ok` once the node serves requests.
pub async fn health() -> &'static str {
    "ok"
}

/// Checks `Authorization: Bearer <admin_token>` when an admin token is set.
pub fn authorize(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &node.config.admin_token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token must not leak through timing.
    let ok = given.is_some_and(|g| {
        g.len() == expected.len()
            && g.bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

fn config_json(node: &Node) -> Value {
    let mut c = serde_json::to_value(&node.config).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut c {
        map.insert(
            "cluster_secret_set".into(),
            json!(node.config.cluster_secret.is_some()),
        );
        map.insert(
            "admin_token_set".into(),
            json!(node.config.admin_token.is_some()),
        );
    }
    c
}

/// `GET /admin/status`: this node's view of itself and the cluster.
pub async fn status(State(node): State<Arc<Node>>) -> Json<Value> {
    let stats = node.storage.stats();
    let view = node.cluster.view();
    let ring = node.cluster.ring();
    let members: Vec<Value> = view
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "rpc_addr": m.rpc_addr.to_string(),
                "http_addr": m.http_addr.to_string(),
                "zone": m.zone,
                "weight": m.weight,
                "status": m.status,
                "generation": m.generation,
                "heartbeat": m.heartbeat,
                "last_heartbeat_ms_ago": m.last_heartbeat_ms_ago,
            })
        })
        .collect();
    let mut warnings = Vec::new();
    let in_ring = ring.nodes().len();
    if in_ring < node.config.n {
        warnings.push(format!(
            "the cluster has {in_ring} member(s), fewer than n = {}: every key is kept on every member and R and W are capped at {in_ring}",
            node.config.n
        ));
    }
    Json(json!({
        "node": node.identity.name,
        "actor": node.identity.actor.to_string(),
        "members": members,
        "ownership": ring.ownership(),
        "keys": stats.keys,
        "hints_pending": stats.hints,
        "anti_entropy": node.anti_entropy_status(),
        "warnings": warnings,
        "config": config_json(&node),
    }))
}

/// `GET /admin/ring`: every partition's token range and preference list
/// (replicas first, then fallbacks); with `?key=K`, just that key's.
pub async fn ring(
    State(node): State<Arc<Node>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    let ring = node.cluster.ring();
    let replicas = ring.replica_count();
    if let Some(key) = query.get("key") {
        let token = dynakv_ring::token(key.as_bytes());
        let p = Ring::partition_of(token);
        let prefs: Vec<&str> = ring.preference_list(p).collect();
        let split = replicas.min(prefs.len());
        return Json(json!({
            "key": key,
            "token": format!("{token:016x}"),
            "partition": p,
            "replicas": &prefs[..split],
            "fallbacks": &prefs[split..],
        }));
    }
    let ranges: Vec<Value> = (0..PARTITIONS)
        .map(|p| {
            let range = Ring::range_of(p);
            let prefs: Vec<&str> = ring.preference_list(p).collect();
            json!({
                "partition": p,
                "start": format!("{:016x}", range.start),
                "end": format!("{:016x}", range.end),
                "replicas": &prefs[..replicas.min(prefs.len())],
                "fallbacks": &prefs[replicas.min(prefs.len())..],
            })
        })
        .collect();
    Json(json!({
        "partitions": PARTITIONS,
        "n": ring.n(),
        "ownership": ring.ownership(),
        "ranges": ranges,
    }))
}

/// `POST /admin/faults` (only with `--fault-injection`): drop node-to-node
/// traffic to and from named members; `{}` heals.
pub async fn faults(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    if !node.config.fault_injection {
        return Err(ApiError::not_found(
            "fault injection is disabled; start the node with --fault-injection",
        ));
    }
    let spec: FaultSpec = if body.iter().all(u8::is_ascii_whitespace) {
        FaultSpec::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("bad fault spec: {e}")))?
    };
    tracing::warn!(?spec, "fault injection changed");
    node.faults().set(spec.clone());
    Ok(Json(serde_json::to_value(spec).unwrap_or(Value::Null)))
}

/// `POST /admin/repair`: run one anti-entropy pass now, unthrottled.
pub async fn repair(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    let summary = node.repair_pass(false).await;
    Ok(Json(serde_json::to_value(summary).unwrap_or(Value::Null)))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let stats = node.storage.stats();
    let body = node.metrics.render(&stats);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `POST /admin/<unknown>`.
pub async fn unknown_admin(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> ApiError {
    if let Err(e) = authorize(&node, &headers) {
        return e;
    }
    ApiError::not_found(format!("no such admin endpoint: {}", uri.path()))
}
