//! The HTTP API (SPEC §5): object endpoints, operations endpoints, and the server
//! that carries them (connection cap, body limits, graceful shutdown).

mod admin;
mod bucket_types;
mod error;
mod kv;
mod listener;
mod ops;
pub mod pb;
mod riak;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use listener::CappedListener;

use crate::server::config::Config;
use crate::server::metrics::{Op, OpLabels, RequestLabels};
use crate::server::node::Node;

/// Binds the HTTP listener, with the configured connection cap.
pub async fn bind(config: &Config) -> anyhow::Result<CappedListener> {
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {}: {e}", config.http))?;
    Ok(CappedListener::new(listener, config.max_connections))
}

/// The routes.
pub fn router(node: Arc<Node>) -> Router {
    // Values are checked against max_value_bytes in the handler, so the body limit
    // here only needs to let a value of exactly the limit through.
    let body_limit = node.core.config.max_value_bytes + 1;
    Router::new()
        .route("/kv/{key}", get(kv::get).put(kv::put).delete(kv::delete))
        .route("/health", get(ops::health))
        .route("/health/live", get(ops::health))
        .route("/health/ready", get(ops::ready))
        .route("/admin/status", get(admin::status))
        .route("/admin/ring", get(admin::ring))
        .route("/metrics", get(ops::metrics))
        .route("/admin/faults", post(admin::faults))
        .route("/admin/repair", post(admin::repair))
        .route("/admin/leave", post(admin::leave))
        .route("/admin/remove/{name}", post(admin::remove))
        .route("/admin/plan", get(admin::plan))
        .route("/admin/export", get(admin::export))
        .route(
            "/admin/ingest",
            post(admin::ingest).layer(DefaultBodyLimit::max(admin::INGEST_BODY_LIMIT)),
        )
        .route("/admin/bucket-types", get(bucket_types::list))
        .route(
            "/admin/bucket-types/{name}",
            get(bucket_types::status)
                .post(bucket_types::create)
                .put(bucket_types::update),
        )
        .route(
            "/admin/bucket-types/{name}/activate",
            post(bucket_types::activate),
        )
        .route("/admin/{*rest}", post(admin::unknown_admin))
        .merge(riak::routes())
        .fallback(kv::fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(Arc::clone(&node), track))
        .with_state(node)
}

/// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    node: Arc<Node>,
    listener: CappedListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = router(node);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// Counts every request and its latency, by operation and status.
async fn track(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let op = match (req.method().as_str(), req.uri().path().starts_with("/kv/")) {
        ("GET", true) => Op::Get,
        ("PUT", true) => Op::Put,
        ("DELETE", true) => Op::Delete,
        _ => Op::Other,
    };
    let start = Instant::now();
    // A panicking handler is a bug, not a reason to drop the connection
    // silently: answer 500 with a JSON error, log and count it.
    let response = match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(_) => {
            node.core.metrics.handler_panics.inc();
            tracing::error!(?op, "a request handler panicked");
            ApiError {
                status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal_error",
                message: "the request failed on a bug in the node; it was logged".into(),
            }
            .into_response()
        }
    };
    let status = response.status().as_u16();
    node.core
        .metrics
        .requests
        .get_or_create(&RequestLabels { op, status })
        .inc();
    node.core
        .metrics
        .latency
        .get_or_create(&OpLabels { op })
        .observe(start.elapsed().as_secs_f64());
    response
}
