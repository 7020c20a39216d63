//! The operations endpoints an orchestrator and a monitoring system call:
//! liveness (`/health`, `/health/live`), readiness (`/health/ready`) and
//! Prometheus metrics (`/metrics`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dynakv_membership::MemberState;
use serde_json::json;

use super::ApiError;
use crate::server::node::Node;

/// `GET /health`: `200 ok` while the node serves requests; `503` with the
/// reason while it shuts down or when its store cannot take a write (a disk
/// error made RocksDB read-only, the disk is full), found by writing a tiny
/// metadata record.
pub async fn health(State(node): State<Arc<Node>>) -> Result<&'static str, ApiError> {
    let unavailable = |code: &'static str, message: String| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code,
        message,
    };
    if node.core.stop.is_cancelled() || node.shutting_down() {
        return Err(unavailable(
            "shutting_down",
            "the node is shutting down".into(),
        ));
    }
    let probe = node
        .core
        .blocking(|n| {
            n.storage
                .put_meta_lazy("health", &crate::server::clock::now_ms())
        })
        .await;
    match probe {
        Ok(()) => Ok("ok"),
        Err(e) => Err(unavailable(
            "store_unavailable",
            format!("the store cannot take writes: {e}"),
        )),
    }
}

/// `GET /health/ready`: `200` with `{"ready": true, …}` once this node can
/// take client requests for the cluster: it serves a ring that holds it (a
/// node started with seeds has found its cluster; nodes started together
/// have founded one ring holding them all), it is not leaving, and its store
/// takes writes. Otherwise `503` with `{"ready": false, "error", "message"}`.
/// Partitions in transit do not make a node unready: writes to them are
/// taken (see the coordinator); `settled` says whether the cluster has
/// finished changing.
pub async fn ready(State(node): State<Arc<Node>>) -> Response {
    let settling = node.core.cluster.settling();
    let answer = match readiness(&node).await {
        Ok(()) => (StatusCode::OK, json!({"ready": true})),
        Err(e) => (
            e.status,
            json!({"ready": false, "error": e.code, "message": e.message}),
        ),
    };
    let (status, mut body) = answer;
    body["settled"] = json!(settling.is_settled());
    body["ring_epoch"] = json!(settling.ring_version);
    (status, Json(body)).into_response()
}

/// Why this node is not ready, if it is not (see [`ready`]), the store probe
/// of [`health`] included.
async fn readiness(node: &Arc<Node>) -> Result<(), ApiError> {
    ring_readiness(node)?;
    health(State(Arc::clone(node))).await.map(|_| ())
}

/// [`readiness`] without the store probe (no write): the ring holds this
/// node and it is not leaving.
pub(super) fn ring_readiness(node: &Node) -> Result<(), ApiError> {
    let unready = |code: &'static str, message: String| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code,
        message,
    };
    let ring = node.core.cluster.ring();
    if ring.is_empty() {
        return Err(unready(
            "not_ready",
            "this node has not joined a cluster ring yet: it is still finding its seeds".into(),
        ));
    }
    match node.core.cluster.own_state() {
        MemberState::Active => {}
        other => {
            return Err(unready(
                "leaving",
                format!("this node is {other:?} and takes no new requests").to_lowercase(),
            ));
        }
    }
    if !ring.is_member(node.core.me()) {
        return Err(unready(
            "joining",
            "this node is not in the ring yet: the claimant takes it in once gossip has seen it up"
                .into(),
        ));
    }
    Ok(())
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let stats = node.core.storage.stats();
    for w in node.workers.statuses() {
        node.core
            .metrics
            .worker_restarts
            .get_or_create(&crate::server::metrics::Reason::from(w.name))
            .set(w.restarts as i64);
    }
    let body = node.core.metrics.render(&stats);
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
