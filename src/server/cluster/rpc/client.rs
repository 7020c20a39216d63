//! The connecting side: one multiplexed connection per peer address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::BoxIo;
use super::auth::{self, Role};
use super::frame::{Frame, FrameCodec, write_batched};
use super::message::{Hello, Request, Response};
use super::server::{HANDSHAKE_TIMEOUT, RpcShared};

/// Requests in flight to one peer before callers wait.
const IN_FLIGHT_PER_PEER: usize = 256;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Why a call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RpcError {
    /// No connection could be made (refused, unreachable, or backing off).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The connection closed before the answer came.
    #[error("connection lost")]
    ConnectionLost,
    /// The peer could not prove the cluster secret, or refused ours.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Dropped by fault injection.
    #[error("dropped by fault injection")]
    Dropped,
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl RpcError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RpcError::Unreachable(_) => "unreachable",
            RpcError::Timeout => "timeout",
            RpcError::ConnectionLost => "connection_lost",
            RpcError::Auth(_) => "auth",
            RpcError::Dropped => "dropped",
            RpcError::Protocol(_) => "protocol",
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// A live, authenticated connection.
struct Conn {
    tx: mpsc::Sender<Frame>,
    pending: Pending,
    next_id: AtomicU64,
    closed: Arc<AtomicBool>,
    /// The peer's name, as proven in the handshake.
    peer: String,
}

struct Peer {
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    /// After a failed connect, calls fail fast until this instant.
    retry_at: Mutex<(Instant, Duration)>,
    in_flight: Semaphore,
}

/// Calls other nodes.
pub struct RpcClient {
    shared: Arc<RpcShared>,
    local_ip: IpAddr,
    peers: Mutex<HashMap<SocketAddr, Arc<Peer>>>,
}

impl RpcClient {
    /// A client whose connections originate from `local_ip` (the `--listen` IP).
    pub fn new(shared: Arc<RpcShared>, local_ip: IpAddr) -> Self {
        RpcClient {
            shared,
            local_ip,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn peer(&self, addr: SocketAddr) -> Arc<Peer> {
        Arc::clone(self.peers.lock().entry(addr).or_insert_with(|| {
            Arc::new(Peer {
                conn: tokio::sync::Mutex::new(None),
                retry_at: Mutex::new((Instant::now(), MIN_BACKOFF)),
                in_flight: Semaphore::new(IN_FLIGHT_PER_PEER),
            })
        }))
    }

    /// Forgets the reconnect backoff to `addr`: gossip shows the peer back (up
    /// again, or a new incarnation), so the next call connects at once.
    pub fn reset_backoff(&self, addr: SocketAddr) {
        if let Some(peer) = self.peers.lock().get(&addr) {
            *peer.retry_at.lock() = (Instant::now(), MIN_BACKOFF);
        }
    }

    /// Sends `request` to the node at `addr` (named `name` when known) and waits at
    /// most `timeout` for its answer, connecting first if needed.
    pub async fn call(
        &self,
        addr: SocketAddr,
        name: Option<&str>,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        // Whether the request left this node: a call that times out before
        // (still connecting) is `Unreachable`, so a caller knows it was never
        // applied and may try elsewhere; after, it is a `Timeout`.
        let sent = AtomicBool::new(false);
        let result = match tokio::time::timeout(
            timeout,
            self.call_inner(addr, name, request, &sent),
        )
        .await
        {
            Ok(r) => r,
            Err(_) if !sent.load(Ordering::Relaxed) => Err(RpcError::Unreachable(format!(
                "{addr}: no connection within {} ms",
                timeout.as_millis()
            ))),
            Err(_) => Err(RpcError::Timeout),
        };
        if let Err(e) = &result {
            self.shared
                .metrics
                .rpc_errors
                .get_or_create(&e.label().into())
                .inc();
        }
        result
    }

    async fn call_inner(
        &self,
        addr: SocketAddr,
        name: Option<&str>,
        request: Request,
        sent: &AtomicBool,
    ) -> Result<Response, RpcError> {
        let faults = &self.shared.faults;
        if name.is_some_and(|n| faults.drops_to(n)) {
            return Err(RpcError::Dropped);
        }
        if let Some(d) = faults.delay() {
            tokio::time::sleep(d).await;
        }
        let peer = self.peer(addr);
        let _permit = peer.in_flight.acquire().await.expect("never closed");
        let conn = self.connection(&peer, addr).await?;
        // The member this call is for, and no other, answers it: an address
        // that now reaches another node (restarted elsewhere, or advertised
        // wrongly) is not that member.
        if let Some(expected) = name
            && conn.peer != expected
        {
            return Err(RpcError::Auth(format!(
                "{addr} is {}, not {expected}",
                conn.peer
            )));
        }
        if faults.drops_to(&conn.peer) {
            return Err(RpcError::Dropped);
        }
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(id, tx);
        // Removes the pending entry however this call ends (answer, timeout, drop).
        struct Forget<'a>(&'a Pending, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.lock().remove(&self.1);
            }
        }
        let _forget = Forget(&conn.pending, id);
        if conn.closed.load(Ordering::Relaxed) {
            // The connection ended between looking it up and registering this
            // call: nothing was sent.
            return Err(RpcError::Unreachable(format!("{addr}: connection closed")));
        }
        if conn
            .tx
            .send(Frame::Request { id, body: request })
            .await
            .is_err()
        {
            // The writer is gone: the request never left this node.
            conn.closed.store(true, Ordering::Relaxed);
            return Err(RpcError::Unreachable(format!(
                "{addr}: connection closed before sending"
            )));
        }
        sent.store(true, Ordering::Relaxed);
        self.shared.metrics.rpc_requests.inc();
        rx.await.map_err(|_| RpcError::ConnectionLost)
    }

    /// The live connection to `addr`, connecting (with backoff) if there is none.
    async fn connection(&self, peer: &Peer, addr: SocketAddr) -> Result<Arc<Conn>, RpcError> {
        let mut slot = peer.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.closed.load(Ordering::Relaxed)
        {
            return Ok(Arc::clone(c));
        }
        let (retry_at, _) = *peer.retry_at.lock();
        if Instant::now() < retry_at {
            return Err(RpcError::Unreachable(format!(
                "{addr}: backing off after a failed connect"
            )));
        }
        match self.connect(addr).await {
            Ok(conn) => {
                *peer.retry_at.lock() = (Instant::now(), MIN_BACKOFF);
                let conn = Arc::new(conn);
                *slot = Some(Arc::clone(&conn));
                Ok(conn)
            }
            Err(e) => {
                let mut r = peer.retry_at.lock();
                let delay = r.1;
                *r = (Instant::now() + delay, (delay * 2).min(MAX_BACKOFF));
                *slot = None;
                Err(e)
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Conn, RpcError> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| RpcError::Unreachable(e.to_string()))?;
        // Connections originate from our own listen IP (SPEC §6), so nodes on
        // 127.0.0.2, 127.0.0.3, … can be partitioned by address.
        if addr.is_ipv4() == self.local_ip.is_ipv4() && !self.local_ip.is_unspecified() {
            socket
                .bind(SocketAddr::new(self.local_ip, 0))
                .map_err(|e| RpcError::Unreachable(format!("bind {}: {e}", self.local_ip)))?;
        }
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| RpcError::Unreachable(format!("{addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (io, cert): (BoxIo, _) = match &self.shared.tls {
            None => (Box::new(stream), None),
            Some(tls) => {
                // Any name: the peer's certificate is checked against the
                // CA here, and against the name it proves below.
                let sni =
                    rustls::pki_types::ServerName::try_from("dynakv-peer").expect("a DNS name");
                let connected = tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    tls.for_peers_out().connect(sni, stream),
                )
                .await
                .map_err(|_| RpcError::Auth(format!("{addr}: TLS handshake timed out")))?
                .map_err(|e| RpcError::Auth(format!("{addr}: TLS: {e}")))?;
                let cert = connected
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.clone().into_owned());
                (Box::new(connected), cert)
            }
        };
        let mut framed = Framed::new(io, FrameCodec::handshake());
        let peer = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake(&mut framed))
            .await
            .map_err(|_| RpcError::Auth(format!("{addr}: handshake timed out")))??;
        if self.shared.tls.is_some() && !cert.is_some_and(|c| crate::server::tls::names(&c, &peer))
        {
            return Err(RpcError::Auth(format!(
                "{addr}: its certificate does not name {peer}"
            )));
        }
        framed.codec_mut().authenticated();

        let (sink, mut frames) = framed.split();
        let (tx, rx) = mpsc::channel::<Frame>(IN_FLIGHT_PER_PEER);
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let closed_w = Arc::clone(&closed);
        // A writer that stops (a request too large to send, a broken socket)
        // closes the whole connection: the reader stops too, every waiting call
        // fails at once, and the peer sees the connection end.
        let stop_reader = CancellationToken::new();
        let stop = stop_reader.clone();
        let shared_w = Arc::clone(&self.shared);
        let pending_w = Arc::clone(&pending);
        let peer_w = peer.clone();
        tokio::spawn(async move {
            // Whichever side ends first (this writer, or the reader below)
            // stops the other, so the socket closes and no task is left behind.
            let written = tokio::select! {
                w = write_batched(sink, rx, |id| {
                    if let Some(tx) = pending_w.lock().remove(&id) {
                        let _ = tx.send(Response::Error(
                            "the request is larger than a node-to-node frame; not sent".into(),
                        ));
                    }
                }) => w,
                _ = stop.cancelled() => Ok(()),
            };
            if let Err(e) = written {
                shared_w
                    .metrics
                    .frame_errors
                    .get_or_create(&e.label().into())
                    .inc();
                tracing::warn!(peer = %peer_w, error = %e, "cannot send a node-to-node frame; closing the connection");
            }
            closed_w.store(true, Ordering::Relaxed);
            stop.cancel();
        });
        let pending_r = Arc::clone(&pending);
        let closed_r = Arc::clone(&closed);
        let shared = Arc::clone(&self.shared);
        let peer_name = peer.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    _ = stop_reader.cancelled() => break,
                    f = frames.next() => match f {
                        Some(f) => f,
                        None => break,
                    },
                };
                match frame {
                    Ok(Frame::Response { id, body }) => {
                        if shared.faults.drops_from(&peer_name) {
                            continue;
                        }
                        if let Some(tx) = pending_r.lock().remove(&id) {
                            let _ = tx.send(body);
                        }
                    }
                    Ok(_) => {
                        tracing::warn!(peer = %peer_name, "unexpected frame on a client connection; closing");
                        break;
                    }
                    Err(e) => {
                        shared
                            .metrics
                            .frame_errors
                            .get_or_create(&e.label().into())
                            .inc();
                        tracing::warn!(peer = %peer_name, error = %e, "rejected a node-to-node frame; closing");
                        break;
                    }
                }
            }
            closed_r.store(true, Ordering::Relaxed);
            stop_reader.cancel();
            // Fail every waiting call now rather than at its timeout.
            pending_r.lock().clear();
        });
        Ok(Conn {
            tx,
            pending,
            next_id: AtomicU64::new(1),
            closed,
            peer,
        })
    }

    async fn handshake(&self, framed: &mut Framed<BoxIo, FrameCodec>) -> Result<String, RpcError> {
        let protocol = |e: super::frame::FrameError| RpcError::Protocol(e.to_string());
        let Some(first) = framed.next().await else {
            return Err(RpcError::ConnectionLost);
        };
        let Frame::Hello(Hello::Challenge { nonce }) = first.map_err(protocol)? else {
            return Err(RpcError::Protocol("expected a challenge".into()));
        };
        let secret = self.shared.secret.as_deref();
        let mine = auth::nonce();
        framed
            .send(Frame::Hello(Hello::Proof {
                name: self.shared.name.clone(),
                proof: auth::prove(secret, Role::Client, &nonce, &self.shared.name),
                nonce: mine,
            }))
            .await
            .map_err(protocol)?;
        let Some(answer) = framed.next().await else {
            return Err(RpcError::Auth(
                "peer closed the connection during the handshake".into(),
            ));
        };
        match answer.map_err(protocol)? {
            Frame::Hello(Hello::Accept { name, proof })
                if auth::verify(secret, Role::Server, &mine, &name, &proof) =>
            {
                if name == self.shared.name {
                    return Err(RpcError::Auth(format!(
                        "the address reaches this node itself ({name})"
                    )));
                }
                Ok(name)
            }
            Frame::Hello(Hello::Accept { .. }) => {
                self.shared.metrics.handshake_refused.inc();
                Err(RpcError::Auth(
                    "the peer cannot prove the cluster secret".into(),
                ))
            }
            Frame::Hello(Hello::Reject { reason }) => Err(RpcError::Auth(reason)),
            _ => Err(RpcError::Protocol("expected accept or reject".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::cluster::rpc::Faults;
    use crate::server::metrics::Metrics;

    #[tokio::test]
    async fn a_call_that_times_out_before_it_was_sent_is_unreachable_not_a_timeout() {
        // A peer that accepts connections and never says a word: the call
        // times out in the handshake, before its request could leave.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = silent.local_addr().expect("addr");
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                open.push(s);
            }
        });
        let client = RpcClient::new(
            Arc::new(RpcShared::new(
                "caller".into(),
                None,
                Faults::default(),
                Arc::new(Metrics::new()),
            )),
            "127.0.0.1".parse().expect("ip"),
        );
        let result = client
            .call(addr, None, Request::Ping, Duration::from_millis(300))
            .await;
        assert!(
            matches!(result, Err(RpcError::Unreachable(_))),
            "{result:?}"
        );
        held.abort();
    }
}
