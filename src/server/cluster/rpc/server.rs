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
use rustls::pki_types::CertificateDer;

use super::BoxIo;
use crate::server::limits::{LogLimiter, PerIpLimit, Slot, truncated};
use crate::server::metrics::Metrics;
use crate::server::tls::Tls;

/// How long a connecting peer has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests served concurrently per connection before reading pauses.
const IN_FLIGHT_PER_CONNECTION: usize = 512;
/// Node-to-node connections served at once; one over it is closed at once.
const MAX_CONNECTIONS: usize = 1024;
/// Handshakes in progress at once from one address, and in all: a peer that
/// proved nothing holds few slots, and one that stalls cannot hold them all.
const HANDSHAKES_PER_IP: usize = 8;
const HANDSHAKES: usize = 64;
/// How long a connecting peer has to prove the secret before it is dropped.
const SERVER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Quick requests answered together at most (see [`Handler::handle_quick_run`]).
const MAX_QUICK_RUN: usize = 64;
/// A run stops growing once its values add up to this: its replica writes
/// become one storage write, holding their keys' lock stripes until it is in
/// the log.
const MAX_QUICK_RUN_BYTES: usize = 4 << 20;

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
    /// Refused handshakes are logged at most this often.
    pub refusal_log: LogLimiter,
    /// TLS for node-to-node connections (mutual, against the cluster CA).
    pub tls: Option<Arc<Tls>>,
}

impl RpcShared {
    /// What both sides share, for the node named `name`.
    pub fn new(
        name: String,
        secret: Option<String>,
        faults: Faults,
        metrics: Arc<Metrics>,
    ) -> RpcShared {
        RpcShared {
            name,
            secret,
            faults,
            metrics,
            refusal_log: LogLimiter::new(Duration::from_secs(10)),
            tls: None,
        }
    }

    /// The same, speaking TLS to peers.
    pub fn with_tls(mut self, tls: Option<Arc<Tls>>) -> RpcShared {
        self.tls = tls;
        self
    }
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

    /// Answers a run of quick requests that arrived together (decoded from
    /// the same reads), one answer per request, in order. The default answers
    /// them one by one; a handler may serve some together, as [`crate::server::node::Node`]
    /// does with replica writes (one storage write for the run). Requests of
    /// one run were all sent before any was answered, so they are concurrent
    /// and any order of applying them is one the caller could have seen.
    fn handle_quick_run(
        self: Arc<Self>,
        peer: String,
        requests: Vec<Request>,
    ) -> impl Future<Output = Vec<Response>> + Send {
        async move {
            let mut answers = Vec::with_capacity(requests.len());
            for request in requests {
                answers.push(Arc::clone(&self).handle(peer.clone(), request).await);
            }
            answers
        }
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
    let handshakes = PerIpLimit::new(HANDSHAKES_PER_IP, HANDSHAKES);
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                backoff = Duration::from_millis(5);
                // Over a limit, the connection closes at once (the peer
                // retries with backoff) rather than waiting in the backlog.
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                    shared.metrics.handshake_refused.inc();
                    continue;
                };
                let Some(slot) = handshakes.try_take(addr.ip()) else {
                    shared.metrics.handshake_refused.inc();
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                let handler = Arc::clone(&handler);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = connection(stream, shared, handler, shutdown, slot).await {
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
    framed: &mut Framed<BoxIo, FrameCodec>,
    shared: &RpcShared,
    from: &str,
    cert: Option<&CertificateDer<'static>>,
) -> Result<String, ConnError> {
    let nonce = auth::nonce();
    framed
        .send(Frame::Hello(Hello::Challenge { nonce }))
        .await?;
    let reply = tokio::time::timeout(SERVER_HANDSHAKE_TIMEOUT, framed.next())
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
    if !auth::verify(
        shared.secret.as_deref(),
        Role::Client,
        &nonce,
        &name,
        &proof,
    ) {
        shared.metrics.handshake_refused.inc();
        // The name is the peer's word, unproven: quoted, cut short, and
        // logged at most once per interval however often it is tried.
        if let Some(suppressed) = shared.refusal_log.allow() {
            tracing::warn!(%from, claimed = ?truncated(&name, 64), suppressed, "refused a node-to-node connection: it cannot prove the cluster secret");
        }
        let _ = framed
            .send(Frame::Hello(Hello::Reject {
                reason: "cluster secret mismatch".into(),
            }))
            .await;
        return Err(ConnError::Handshake(format!(
            "{from} failed authentication"
        )));
    }
    // A node that dials itself (a member advertised at an address that
    // reaches this node) must not count as another replica; nor may two
    // nodes share a name.
    if name == shared.name {
        let _ = framed
            .send(Frame::Hello(Hello::Reject {
                reason: format!("{name} is the node that answers at this address"),
            }))
            .await;
        return Err(ConnError::Handshake(format!(
            "{from} connected with this node's own name"
        )));
    }
    // Under TLS, the name proven must be one the peer's certificate (signed
    // by the cluster CA) carries: a node cannot speak for another.
    if shared.tls.is_some() && !cert.is_some_and(|c| crate::server::tls::names(c, &name)) {
        shared.metrics.handshake_refused.inc();
        if let Some(suppressed) = shared.refusal_log.allow() {
            tracing::warn!(%from, claimed = ?truncated(&name, 64), suppressed, "refused a node-to-node connection: its certificate does not name it");
        }
        let _ = framed
            .send(Frame::Hello(Hello::Reject {
                reason: "the certificate does not name this node".into(),
            }))
            .await;
        return Err(ConnError::Handshake(format!(
            "{from}: a certificate for another name"
        )));
    }
    let proof = auth::prove(
        shared.secret.as_deref(),
        Role::Server,
        &client_nonce,
        &shared.name,
    );
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
    handshake_slot: Slot,
) -> Result<(), ConnError> {
    let from = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let (io, cert): (BoxIo, Option<CertificateDer<'static>>) = match &shared.tls {
        None => (Box::new(stream), None),
        Some(tls) => {
            let accepted =
                tokio::time::timeout(SERVER_HANDSHAKE_TIMEOUT, tls.for_peers_in().accept(stream))
                    .await
                    .map_err(|_| ConnError::Handshake("TLS handshake timed out".into()))?
                    .map_err(|e| {
                        shared.metrics.handshake_refused.inc();
                        if let Some(suppressed) = shared.refusal_log.allow() {
                            tracing::warn!(%from, error = %e, suppressed, "refused a node-to-node connection: TLS");
                        }
                        ConnError::Handshake(format!("TLS: {e}"))
                    })?;
            let cert = accepted
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned());
            (Box::new(accepted), cert)
        }
    };
    let mut framed = Framed::new(io, FrameCodec::handshake());
    let peer = handshake(&mut framed, &shared, &from, cert.as_ref())
        .await
        .inspect_err(|e| {
            if let ConnError::Frame(f) = e {
                shared
                    .metrics
                    .frame_errors
                    .get_or_create(&f.label().into())
                    .inc();
            }
        })?;
    drop(handshake_slot);
    framed.codec_mut().authenticated();
    let (sink, mut frames) = framed.split();
    let (tx, rx) = mpsc::channel::<Frame>(IN_FLIGHT_PER_CONNECTION);
    let mut writer = tokio::spawn(write_batched(sink, rx, |_| {}));
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION));
    let mut writer_done = false;
    // A frame read while gathering a run of quick requests that does not
    // belong to the run: handled on the next turn.
    let mut carried = None;
    let result = loop {
        let next = if let Some(next) = carried.take() {
            next
        } else {
            tokio::select! {
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
            }
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
            // The frames already read join this one: a peer's writer sends
            // many per write system call, and answered together a run of
            // replica writes is one storage write instead of one each.
            let (ids, bodies, next) = gather_run(
                (id, body),
                &mut frames,
                |r| handler.is_quick(r),
                || shared.faults.drops_from(&peer),
            );
            carried = next;
            let answers =
                answer_run(Arc::clone(&handler), peer.clone(), bodies, &shared.metrics).await;
            for (id, body) in ids.into_iter().zip(answers) {
                // If the writer is gone, its error ends the loop on the next turn.
                let _ = tx.send(Frame::Response { id, body }).await;
            }
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

/// Runs the handler on a run of quick requests: one answer per request, in
/// order, whatever the handler does (a panic answers every request with an
/// error, as [`answer`] does for one).
async fn answer_run<H: Handler>(
    handler: Arc<H>,
    peer: String,
    bodies: Vec<Request>,
    metrics: &Metrics,
) -> Vec<Response> {
    if bodies.len() == 1 {
        let body = bodies.into_iter().next().expect("one request");
        return vec![answer(handler, peer, body, metrics).await];
    }
    let n = bodies.len();
    let kinds: Vec<&'static str> = bodies.iter().map(Request::kind).collect();
    match AssertUnwindSafe(handler.handle_quick_run(peer, bodies))
        .catch_unwind()
        .await
    {
        Ok(answers) if answers.len() == n => answers,
        Ok(answers) => {
            tracing::error!(
                asked = n,
                answered = answers.len(),
                "a node-to-node handler answered a run with the wrong number of answers"
            );
            kinds
                .iter()
                .map(|kind| Response::Error(format!("{kind} failed on a bug in the node")))
                .collect()
        }
        Err(_) => {
            metrics.handler_panics.inc();
            tracing::error!(requests = n, "a node-to-node request handler panicked");
            kinds
                .iter()
                .map(|kind| Response::Error(format!("{kind} failed on a bug in the node")))
                .collect()
        }
    }
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

/// What reading a connection's next frame gives: a frame, an error, or the
/// end of the stream (`None`).
type Read<E> = Option<Result<Frame, E>>;

/// A run of quick requests: `first`, then the quick requests among the frames
/// already decoded (ready without waiting), until the run holds
/// [`MAX_QUICK_RUN`] requests or [`MAX_QUICK_RUN_BYTES`] of values. Requests
/// `dropped` (fault injection) are left out. Returns the run's ids and bodies,
/// and what ended it if that still needs handling (a frame that is not a quick
/// request, an error, the end of the stream): the connection's next turn.
fn gather_run<S, E>(
    first: (u64, Request),
    frames: &mut S,
    is_quick: impl Fn(&Request) -> bool,
    dropped: impl Fn() -> bool,
) -> (Vec<u64>, Vec<Request>, Option<Read<E>>)
where
    S: futures::Stream<Item = Result<Frame, E>> + Unpin,
{
    let (id, body) = first;
    let mut bytes = body.value_bytes();
    let mut ids = vec![id];
    let mut bodies = vec![body];
    while ids.len() < MAX_QUICK_RUN && bytes < MAX_QUICK_RUN_BYTES {
        match frames.next().now_or_never() {
            None => break,
            Some(Some(Ok(Frame::Request { id, body }))) if is_quick(&body) => {
                if !dropped() {
                    bytes += body.value_bytes();
                    ids.push(id);
                    bodies.push(body);
                }
            }
            Some(other) => return (ids, bodies, Some(other)),
        }
    }
    (ids, bodies, None)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use parking_lot::Mutex;

    use super::*;
    use crate::server::cluster::rpc::{RpcClient, RpcError};

    /// Answers a replica read with its key (as an error text, so the answer
    /// names its request) and records the runs it was given (a read answered
    /// alone is a run of one). A read of key
    /// "panic" panics, alone or in a run; pings are not quick.
    #[derive(Default)]
    struct Echo {
        runs: Mutex<Vec<usize>>,
    }

    fn key_of(request: &Request) -> String {
        match request {
            Request::ReplicaRead { key, .. } => String::from_utf8_lossy(key).into_owned(),
            _ => "ping".into(),
        }
    }

    impl Handler for Echo {
        async fn handle(self: Arc<Self>, _peer: String, request: Request) -> Response {
            match request {
                Request::Ping => Response::Pong,
                r => {
                    assert!(key_of(&r) != "panic", "asked to");
                    self.runs.lock().push(1);
                    Response::Error(key_of(&r))
                }
            }
        }

        fn is_quick(&self, request: &Request) -> bool {
            matches!(request, Request::ReplicaRead { .. })
        }

        async fn handle_quick_run(
            self: Arc<Self>,
            _peer: String,
            requests: Vec<Request>,
        ) -> Vec<Response> {
            self.runs.lock().push(requests.len());
            assert!(!requests.iter().any(|r| key_of(r) == "panic"), "asked to");
            requests
                .iter()
                .map(|r| Response::Error(key_of(r)))
                .collect()
        }
    }

    /// A server with `handler`, and a client already connected to it.
    async fn pair(handler: Arc<Echo>) -> (RpcClient, SocketAddr, CancellationToken) {
        let shared = |name: &str| shared(name, "test");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, shared("server"), handler, stop.clone()));
        let client = RpcClient::new(shared("client"), "127.0.0.1".parse().expect("ip"));
        // Connected before the tests' bursts, so those leave together.
        let pong = client
            .call(addr, None, Request::Ping, Duration::from_secs(10))
            .await;
        assert!(matches!(pong, Ok(Response::Pong)), "{pong:?}");
        (client, addr, stop)
    }

    fn read(key: &str) -> Request {
        Request::ReplicaRead {
            key: Bytes::from(key.to_owned()),
            hints_for: Vec::new(),
        }
    }

    fn shared(name: &str, secret: &str) -> Arc<RpcShared> {
        Arc::new(RpcShared::new(
            name.into(),
            Some(secret.into()),
            Faults::default(),
            Arc::new(Metrics::new()),
        ))
    }

    /// A node that reaches itself (an address advertised wrongly) is refused
    /// by both sides, and a call meant for one member never reaches another:
    /// no node counts twice toward a quorum.
    #[tokio::test]
    async fn a_peer_is_the_member_dialled_and_never_this_node() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            shared("n1", "s"),
            Arc::new(Echo::default()),
            stop.clone(),
        ));
        let ip = "127.0.0.1".parse().expect("ip");
        let timeout = Duration::from_secs(5);
        let itself = RpcClient::new(shared("n1", "s"), ip);
        let answer = itself.call(addr, None, Request::Ping, timeout).await;
        assert!(matches!(answer, Err(RpcError::Auth(_))), "{answer:?}");
        let other = RpcClient::new(shared("n2", "s"), ip);
        let answer = other.call(addr, Some("n3"), Request::Ping, timeout).await;
        assert!(
            matches!(&answer, Err(RpcError::Auth(m)) if m.contains("not n3")),
            "{answer:?}"
        );
        let answer = other.call(addr, Some("n1"), Request::Ping, timeout).await;
        assert!(matches!(answer, Ok(Response::Pong)), "{answer:?}");
        // A wrong secret is refused.
        let stranger = RpcClient::new(shared("n4", "other"), ip);
        let answer = stranger.call(addr, None, Request::Ping, timeout).await;
        assert!(matches!(answer, Err(RpcError::Auth(_))), "{answer:?}");
        stop.cancel();
    }

    /// Many quick requests sent at once are answered in runs, and every
    /// caller gets its own request's answer, with a slow request (not quick)
    /// among them.
    #[tokio::test]
    async fn requests_answered_in_runs_each_get_their_own_answer() {
        let handler = Arc::new(Echo::default());
        let (client, addr, stop) = pair(Arc::clone(&handler)).await;
        let timeout = Duration::from_secs(10);
        let calls = (0..300).map(|i| {
            let request = if i % 50 == 25 {
                Request::Ping
            } else {
                read(&format!("k{i}"))
            };
            let client = &client;
            async move { (i, client.call(addr, None, request, timeout).await) }
        });
        for (i, answer) in futures::future::join_all(calls).await {
            match answer.expect("answered") {
                Response::Pong => assert_eq!(i % 50, 25),
                Response::Error(key) => assert_eq!(key, format!("k{i}")),
                other => panic!("unexpected {other:?}"),
            }
        }
        let runs = handler.runs.lock().clone();
        assert_eq!(runs.iter().sum::<usize>(), 294, "runs: {runs:?}");
        assert!(
            runs.iter().any(|&n| n > 1),
            "no request joined a run: {runs:?}"
        );
        assert!(runs.iter().all(|&n| n <= MAX_QUICK_RUN));
        stop.cancel();
    }

    /// A run takes the quick requests already decoded, up to its request and
    /// byte limits, and hands back the frame that ended it.
    #[test]
    fn a_run_gathers_ready_quick_requests_up_to_its_limits() {
        use dynakv_versioning::{ActorId, Object, Version, VersionVector};

        let quick = |r: &Request| {
            matches!(
                r,
                Request::ReplicaRead { .. } | Request::ReplicaWrite { .. }
            )
        };
        let frame = |id: u64, body: Request| Ok::<_, FrameError>(Frame::Request { id, body });
        let ids = |ids: &[u64]| ids.to_vec();

        // At most MAX_QUICK_RUN requests; the rest wait for the next turn.
        let mut frames = futures::stream::iter((1..100).map(|i| frame(i, read("k"))));
        let (run, bodies, ended) = gather_run((0, read("k")), &mut frames, quick, || false);
        assert_eq!(run, (0..MAX_QUICK_RUN as u64).collect::<Vec<_>>());
        assert_eq!(bodies.len(), MAX_QUICK_RUN);
        assert!(ended.is_none());

        // Large writes: the run stops once its values reach the byte limit.
        const VALUE: usize = 512 << 10;
        let mut object = Object::new();
        object.update(
            &VersionVector::new(),
            ActorId(1),
            Version::value(vec![b'v'; VALUE], "", 0),
        );
        let write = |i: u64| Request::ReplicaWrite {
            key: Bytes::from(format!("k{i}")),
            object: object.clone(),
            hint_for: None,
        };
        let mut frames = futures::stream::iter((1..20).map(|i| frame(i, write(i))));
        let (run, bodies, _) = gather_run((0, write(0)), &mut frames, quick, || false);
        let bytes: usize = bodies.iter().map(Request::value_bytes).sum();
        assert_eq!(
            run.len(),
            MAX_QUICK_RUN_BYTES.div_ceil(VALUE),
            "{bytes} bytes"
        );
        assert!((MAX_QUICK_RUN_BYTES..MAX_QUICK_RUN_BYTES + VALUE + 8).contains(&bytes));

        // A request that is not quick ends the run and is handed back, as is
        // the end of the stream; dropped requests are left out.
        let mut frames = futures::stream::iter(vec![
            frame(1, read("a")),
            frame(2, Request::Ping),
            frame(3, read("b")),
        ]);
        let (run, _, ended) = gather_run((0, read("k")), &mut frames, quick, || false);
        assert_eq!(run, ids(&[0, 1]));
        assert!(matches!(
            ended,
            Some(Some(Ok(Frame::Request { id: 2, .. })))
        ));
        let (run, _, ended) = gather_run((9, read("c")), &mut frames, quick, || false);
        assert_eq!(run, ids(&[9, 3]));
        assert!(matches!(ended, Some(None)), "the end of the stream");
        let mut frames = futures::stream::iter(vec![frame(1, read("a"))]);
        let (run, _, _) = gather_run((0, read("k")), &mut frames, quick, || true);
        assert_eq!(run, ids(&[0]), "the first is the caller's to drop");
    }

    /// A handler that panics on a run answers each of its requests with an
    /// error, and the connection goes on serving.
    #[tokio::test]
    async fn a_run_that_panics_answers_every_request_with_an_error() {
        let handler = Arc::new(Echo::default());
        let (client, addr, stop) = pair(Arc::clone(&handler)).await;
        let timeout = Duration::from_secs(10);
        let calls = (0..64).map(|i| {
            let key = if i == 10 {
                "panic".into()
            } else {
                format!("k{i}")
            };
            let client = &client;
            async move {
                (
                    key.clone(),
                    client.call(addr, None, read(&key), timeout).await,
                )
            }
        });
        let mut errors = 0;
        for (key, answer) in futures::future::join_all(calls).await {
            match answer.expect("answered") {
                Response::Error(text) if text == key => {}
                Response::Error(text) => {
                    assert!(text.contains("bug in the node"), "{text}");
                    errors += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(errors >= 1, "the panicking request was answered normally");
        assert!(
            handler.runs.lock().iter().any(|&n| n > 1),
            "no run: the panic was only tested alone"
        );
        assert!(matches!(
            client.call(addr, None, read("after"), timeout).await,
            Ok(Response::Error(k)) if k == "after"
        ));
        stop.cancel();
    }
}
