//! The accepting side: handshake, then concurrent dispatch of requests.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Role};
use super::faults::Faults;
use super::frame::{Frame, FrameCodec, FrameError, write_batched};
use super::message::{Hello, Request, Response};
use crate::server::metrics::Metrics;

/// How long a connecting peer has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests served concurrently per connection before reading pauses.
const IN_FLIGHT_PER_CONNECTION: usize = 512;
/// Node-to-node connections accepted at once.
const MAX_CONNECTIONS: usize = 1024;

/// What both sides of the protocol share: this node's name, the cluster
/// secret, fault injection and metrics.
pub struct RpcShared {
    /// This node's name, sent in handshakes.
    pub name: String,
    /// The cluster secret (none: the empty key).
    pub secret: Option<String>,
    /// Injected faults.
    pub faults: Faults,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// Serves requests from authenticated peers.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request from the member `peer`.
    fn handle(
        self: Arc<Self>,
        peer: String,
        request: Request,
    ) -> impl Future<Output = Response> + Send;

    /// True if `request` completes in microseconds without waiting on
    /// anything (a point read, an unsynced single-key write): the connection
    /// then answers it inline instead of spawning a task for it. A spawn costs
    /// a task allocation and a wake-up, a large share of such a request.
    /// Anything that may wait (an fsync, a scan, a call to another node) must
    /// return false, or it would hold up every request behind it on the
    /// connection.
    fn is_quick(&self, _request: &Request) -> bool {
        false
    }
}

/// Accepts node-to-node connections until `shutdown`.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    shared: Arc<RpcShared>,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = Arc::clone(&limit).acquire_owned() => p.expect("never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                backoff = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                let handler = Arc::clone(&handler);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = connection(stream, shared, handler, shutdown).await {
                        tracing::debug!(peer = %addr, error = %e, "node-to-node connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "node-to-node accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

async fn handshake(
    framed: &mut Framed<TcpStream, FrameCodec>,
    shared: &RpcShared,
) -> Result<String, ConnError> {
    let nonce = auth::nonce();
    framed
        .send(Frame::Hello(Hello::Challenge { nonce }))
        .await?;
    let reply = tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.next())
        .await
        .map_err(|_| ConnError::Handshake("timed out".into()))?;
    let Some(reply) = reply else {
        return Err(ConnError::Handshake("closed".into()));
    };
    let Frame::Hello(Hello::Proof {
        name,
        proof,
        nonce: client_nonce,
    }) = reply?
    else {
        return Err(ConnError::Protocol("expected a handshake proof"));
    };
    if !auth::verify(shared.secret.as_deref(), Role::Client, &nonce, &proof) {
        shared.metrics.handshake_refused.inc();
        tracing::warn!(peer = %name, "refused a node-to-node connection: it cannot prove the cluster secret");
        let _ = framed
            .send(Frame::Hello(Hello::Reject {
                reason: "cluster secret mismatch".into(),
            }))
            .await;
        return Err(ConnError::Handshake(format!(
            "{name} failed authentication"
        )));
    }
    let proof = auth::prove(shared.secret.as_deref(), Role::Server, &client_nonce);
    framed
        .send(Frame::Hello(Hello::Accept {
            name: shared.name.clone(),
            proof,
        }))
        .await?;
    Ok(name)
}

async fn connection<H: Handler>(
    stream: TcpStream,
    shared: Arc<RpcShared>,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> Result<(), ConnError> {
    let mut framed = Framed::new(stream, FrameCodec::handshake());
    let peer = handshake(&mut framed, &shared).await.inspect_err(|e| {
        if let ConnError::Frame(f) = e {
            shared
                .metrics
                .frame_errors
                .get_or_create(&f.label().into())
                .inc();
        }
    })?;
    framed.codec_mut().authenticated();
    let (sink, mut frames) = framed.split();
    let (tx, rx) = mpsc::channel::<Frame>(IN_FLIGHT_PER_CONNECTION);
    let mut writer = tokio::spawn(write_batched(sink, rx));
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION));
    let mut writer_done = false;
    let result = loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            w = &mut writer => {
                // The writer stopped: an answer too large to send, or a broken
                // connection. Close the connection so the peer's calls fail now.
                writer_done = true;
                let e = match w {
                    Ok(Err(e)) => e,
                    _ => FrameError::Io(std::io::Error::other("writer ended")),
                };
                shared.metrics.frame_errors.get_or_create(&e.label().into()).inc();
                tracing::warn!(peer = %peer, error = %e, "cannot send a node-to-node frame; closing the connection");
                break Err(e.into());
            }
            n = frames.next() => n,
        };
        let frame = match next {
            None => break Ok(()),
            Some(Err(e)) => {
                shared
                    .metrics
                    .frame_errors
                    .get_or_create(&e.label().into())
                    .inc();
                tracing::warn!(peer = %peer, error = %e, "rejected a node-to-node frame; closing the connection");
                break Err(e.into());
            }
            Some(Ok(frame)) => frame,
        };
        let Frame::Request { id, body } = frame else {
            break Err(ConnError::Protocol("expected a request"));
        };
        if shared.faults.drops_from(&peer) {
            continue;
        }
        if handler.is_quick(&body) {
            let body = answer(Arc::clone(&handler), peer.clone(), body, &shared.metrics).await;
            // If the writer is gone, its error ends the loop on the next turn.
            let _ = tx.send(Frame::Response { id, body }).await;
            continue;
        }
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .expect("never closed");
        let handler = Arc::clone(&handler);
        let tx = tx.clone();
        let peer = peer.clone();
        let metrics = Arc::clone(&shared.metrics);
        tokio::spawn(async move {
            let body = answer(handler, peer, body, &metrics).await;
            let _ = tx.send(Frame::Response { id, body }).await;
            drop(permit);
        });
    };
    drop(tx);
    if !writer_done {
        let _ = writer.await;
    }
    result
}

/// Runs the handler on one request. A panicking handler (a bug) answers an
/// error instead of leaving the caller to time out; it is logged and counted.
async fn answer<H: Handler>(
    handler: Arc<H>,
    peer: String,
    body: Request,
    metrics: &Metrics,
) -> Response {
    let kind = body.kind();
    match AssertUnwindSafe(handler.handle(peer, body))
        .catch_unwind()
        .await
    {
        Ok(body) => body,
        Err(_) => {
            metrics.handler_panics.inc();
            tracing::error!(kind, "a node-to-node request handler panicked");
            Response::Error(format!("{kind} failed on a bug in the node"))
        }
    }
}
