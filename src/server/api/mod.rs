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
mod security;

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Binds the HTTP listener, with the configured connection cap (and TLS,
/// for the answers over it).
pub async fn bind(
    config: &Config,
    tls: Option<Arc<crate::server::tls::Tls>>,
) -> anyhow::Result<CappedListener> {
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {}: {e}", config.http))?;
    Ok(CappedListener::new(listener, config.max_connections).with_tls(tls))
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
            post(admin::ingest).layer(DefaultBodyLimit::disable()),
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
        .route("/admin/security", get(security::show))
        .route(
            "/admin/security/users/{name}",
            axum::routing::put(security::put_user).delete(security::delete_user),
        )
        .route(
            "/admin/security/enable",
            post(|s: State<Arc<Node>>, h: axum::http::HeaderMap| security::set_enabled(s, true, h)),
        )
        .route(
            "/admin/security/disable",
            post(|s: State<Arc<Node>>, h: axum::http::HeaderMap| {
                security::set_enabled(s, false, h)
            }),
        )
        .route(
            "/admin/security/grant",
            post(
                |s: State<Arc<Node>>, h: axum::http::HeaderMap, b: bytes::Bytes| {
                    security::change_grant(s, true, h, b)
                },
            ),
        )
        .route(
            "/admin/security/revoke",
            post(
                |s: State<Arc<Node>>, h: axum::http::HeaderMap, b: bytes::Bytes| {
                    security::change_grant(s, false, h, b)
                },
            ),
        )
        .route("/admin/{*rest}", post(admin::unknown_admin))
        .merge(riak::routes())
        .fallback(kv::fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&node),
            security::gate,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&node), track))
        .with_state(node)
}

/// How long a connection may take to send a request's headers, and stay
/// idle between requests: a connection that sends half a header, or nothing,
/// is closed after it (hyper's `header_read_timeout`, which also runs while a
/// kept-alive connection waits for its next request).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves until `shutdown` is cancelled, then lets in-flight requests finish
/// (for at most 30 s).
pub async fn serve(
    node: Arc<Node>,
    mut listener: CappedListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use tower::Service;
    let tls = node.core.rpc_shared.tls.clone();
    let app = router(node);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |request| app.clone().call(request));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    watcher.watch(http.serve_connection(io, service)).await
                }
                // With TLS, only TLS: a plaintext request fails the
                // handshake, which must end within the header timeout.
                Some(tls) => {
                    let accepted =
                        tokio::time::timeout(HEADER_TIMEOUT, tls.for_clients().accept(stream))
                            .await;
                    let Ok(Ok(stream)) = accepted else {
                        tracing::debug!("HTTP connection without a TLS handshake; closed");
                        return;
                    };
                    let io = hyper_util::rt::TokioIo::new(stream);
                    watcher.watch(http.serve_connection(io, service)).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {} s; stopping anyway",
            DRAIN.as_secs()
        );
    }
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
