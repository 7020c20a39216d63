//! The operations endpoints: health, status, ring, metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiError;
use crate::node::Node;

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
    let members = vec![json!({
        "name": node.identity.name,
        "rpc_addr": node.config.listen.to_string(),
        "http_addr": node.config.http.to_string(),
        "zone": node.config.zone,
        "status": "up",
        "heartbeat": node.started.elapsed().as_millis() as u64 / node.config.gossip_interval_ms,
        "last_heartbeat_ms_ago": 0,
    })];
    let mut warnings = Vec::new();
    if members.len() < node.config.n {
        warnings.push(format!(
            "the cluster has {} member(s), fewer than n = {}: every key is kept on every member and R and W are capped at {}",
            members.len(),
            node.config.n,
            members.len()
        ));
    }
    Json(json!({
        "node": node.identity.name,
        "actor": node.identity.actor.to_string(),
        "members": members,
        "ownership": {node.identity.name.clone(): 1.0},
        "keys": stats.keys,
        "hints_pending": stats.hints,
        "warnings": warnings,
        "config": config_json(&node),
    }))
}

/// `GET /admin/ring`: ranges, owners and preference lists.
pub async fn ring(State(node): State<Arc<Node>>) -> Json<Value> {
    Json(json!({
        "partitions": 1,
        "ranges": [{
            "start": format!("{:016x}", 0u64),
            "end": format!("{:016x}", u64::MAX),
            "owner": node.identity.name,
            "preference_list": [node.identity.name],
        }],
    }))
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
