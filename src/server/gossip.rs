//! Gossip (Dynamo §4.8): every `gossip_interval_ms` a node exchanges its
//! member table, and the cluster ring when the peer may lack it, with a
//! random peer; liveness follows from the heartbeats it learns, and the
//! claimant's ring changes spread the same way. The state machine itself is
//! `dynakv_membership`; this module drives it over RPC.

use std::sync::Arc;
use std::time::Duration;

use dynakv_buckets::BucketMetadata;
use dynakv_membership::{GossipMessage, Outgoing, Status};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::server::cluster::rpc::{Request, Response};
use crate::server::core::Core;
use crate::server::metrics::{Reason, StatusLabel};
use crate::server::security::SecurityMetadata;
use crate::server::worker::{Next, Worker, WorkerHandle, jittered};

/// Answers a gossip message from a peer with this node's table.
pub async fn on_gossip(core: &Arc<Core>, message: GossipMessage) -> Response {
    if core.cluster.is_foreign(&message) {
        refuse_foreign(core, &message);
        return Response::Error(format!(
            "{} belongs to another cluster (id {:016x})",
            core.me(),
            core.cluster.cluster_id()
        ));
    }
    let (structural, returned) = core.cluster.receive(&message);
    for addr in returned {
        core.rpc.reset_backoff(addr);
    }
    if structural {
        tracing::info!(from = %message.from, ring = core.cluster.stamp().version, "membership changed");
        core.persist_members().await;
        core.ring_changed.notify_one();
    }
    Response::Gossip(core.cluster.message_for(&message.from))
}

/// Logs (at most every few seconds) that a node of another cluster
/// gossiped with this one; nothing of its table or ring is taken.
fn refuse_foreign(core: &Core, message: &GossipMessage) {
    core.metrics
        .gossip_exchanges
        .get_or_create(&Reason::from("foreign"))
        .inc();
    if let Some(suppressed) = core.cluster.foreign_log.allow() {
        tracing::warn!(
            from = ?crate::server::limits::truncated(&message.from, 64),
            theirs = %format!("{:016x}", message.cluster),
            ours = %format!("{:016x}", core.cluster.cluster_id()),
            suppressed,
            "refused gossip from a node of another cluster: two clusters never merge; check its --seeds"
        );
    }
}

/// Gossip (Dynamo §4.8): every `gossip_interval_ms` (jittered), one round of
/// the membership state machine — heartbeat, liveness, the claimant's ring
/// changes — and its messages sent to a few peers.
pub struct GossipWorker {
    core: Arc<Core>,
    rng: StdRng,
}

impl GossipWorker {
    /// A gossip worker over `core`.
    pub fn new(core: Arc<Core>) -> GossipWorker {
        GossipWorker {
            core,
            rng: StdRng::from_os_rng(),
        }
    }
}

impl Worker for GossipWorker {
    const NAME: &'static str = "gossip";

    async fn wait_for_work(&mut self) {
        tokio::time::sleep(jittered(self.core.config.gossip_interval_ms)).await;
    }

    async fn work(&mut self, status: &WorkerHandle) -> Next {
        status.busy();
        let core = &self.core;
        let (outgoing, transitions, claimed) = core.cluster.tick(&mut self.rng);
        core.metrics.gossip_rounds.inc();
        if claimed {
            let ring = core.cluster.ring_state();
            tracing::info!(
                version = ring.version,
                moving = ring.moving.len(),
                "claimant: new ring version"
            );
            core.persist_members().await;
            core.ring_changed.notify_one();
        }
        for t in transitions {
            tracing::info!(member = %t.name, from = ?t.from, to = ?t.to, "member liveness changed");
            if t.to == Status::Up
                && let Some(addr) = core.cluster.rpc_addr(&t.name)
            {
                core.rpc.reset_backoff(addr);
            }
            let status = format!("{:?}", t.to).to_lowercase();
            core.metrics
                .liveness_changes
                .get_or_create(&StatusLabel { status })
                .inc();
        }
        refresh_member_gauges(core);
        for message in outgoing {
            tokio::spawn(exchange(Arc::clone(core), message));
        }
        status.idle();
        Next::Wait
    }
}

fn refresh_member_gauges(core: &Core) {
    let view = core.cluster.view();
    for status in ["up", "suspect", "down", "joining", "leaving", "left"] {
        let count = view
            .iter()
            .filter(|m| format!("{:?}", m.status).to_lowercase() == status)
            .count();
        core.metrics
            .members
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .set(count as i64);
    }
}

/// Cluster metadata every node holds whole and gossip keeps equal on all
/// of them: bucket types and properties ([`BucketTypes`]), users and grants
/// ([`Users`]). A node sends its digest each gossip round (the whole map
/// when it pushes a change); the peer merges a pushed map and answers with
/// its own when the digests differ.
pub trait Metadata {
    /// The map.
    type Map: Send + 'static;
    /// What it is, for logs.
    const WHAT: &'static str;
    /// This node's digest.
    fn digest(core: &Core) -> u64;
    /// A map's digest.
    fn digest_of(map: &Self::Map) -> u64;
    /// This node's map.
    fn snapshot(core: &Core) -> Self::Map;
    /// Merges a peer's map; true if this node's changed.
    fn merge(core: &Core, map: &Self::Map) -> bool;
    /// The request carrying a digest (and a map).
    fn request(digest: u64, map: Option<Self::Map>) -> Request;
    /// The answer carrying a map (when the digests differ).
    fn answer(map: Option<Self::Map>) -> Response;
    /// The map an answer carries, if it is this metadata's answer.
    fn answered(response: Response) -> Option<Option<Self::Map>>;
    /// Persists this node's map.
    fn persist(core: &Arc<Core>) -> impl std::future::Future<Output = ()> + Send;
}

/// Bucket types and bucket properties.
pub struct BucketTypes;

impl Metadata for BucketTypes {
    type Map = BucketMetadata;
    const WHAT: &'static str = "bucket metadata";
    fn digest(core: &Core) -> u64 {
        core.buckets.digest()
    }
    fn digest_of(map: &BucketMetadata) -> u64 {
        map.digest()
    }
    fn snapshot(core: &Core) -> BucketMetadata {
        core.buckets.snapshot()
    }
    fn merge(core: &Core, map: &BucketMetadata) -> bool {
        core.buckets.merge(map)
    }
    fn request(digest: u64, map: Option<BucketMetadata>) -> Request {
        Request::Buckets { digest, map }
    }
    fn answer(map: Option<BucketMetadata>) -> Response {
        Response::Buckets(map)
    }
    fn answered(response: Response) -> Option<Option<BucketMetadata>> {
        match response {
            Response::Buckets(map) => Some(map),
            _ => None,
        }
    }
    async fn persist(core: &Arc<Core>) {
        core.persist_buckets().await;
    }
}

/// Users and grants.
pub struct Users;

impl Metadata for Users {
    type Map = SecurityMetadata;
    const WHAT: &'static str = "security metadata";
    fn digest(core: &Core) -> u64 {
        core.security.digest()
    }
    fn digest_of(map: &SecurityMetadata) -> u64 {
        map.digest()
    }
    fn snapshot(core: &Core) -> SecurityMetadata {
        core.security.snapshot()
    }
    fn merge(core: &Core, map: &SecurityMetadata) -> bool {
        core.security.merge(map)
    }
    fn request(digest: u64, map: Option<SecurityMetadata>) -> Request {
        Request::Security { digest, map }
    }
    fn answer(map: Option<SecurityMetadata>) -> Response {
        Response::Security(map)
    }
    fn answered(response: Response) -> Option<Option<SecurityMetadata>> {
        match response {
            Response::Security(map) => Some(map),
            _ => None,
        }
    }
    async fn persist(core: &Arc<Core>) {
        core.persist_security().await;
    }
}

/// Answers a peer's digest (and map, when pushed): merges a pushed map, and
/// answers with this node's map when the digests differ.
pub async fn on_metadata<M: Metadata>(
    core: &Arc<Core>,
    digest: u64,
    map: Option<M::Map>,
) -> Response {
    if let Some(map) = map
        && M::merge(core, &map)
    {
        tracing::info!("{} changed (pushed by a peer)", M::WHAT);
        M::persist(core).await;
    }
    let ours = M::digest(core);
    M::answer((ours != digest).then(|| M::snapshot(core)))
}

/// Sends this node's metadata to `to` (whole, when `push`), merges the
/// answer, and pushes ours if the peer still lacks some of it.
pub async fn sync<M: Metadata>(
    core: &Arc<Core>,
    to: std::net::SocketAddr,
    name: Option<&str>,
    push: bool,
) {
    let timeout = Duration::from_millis(core.config.gossip_interval_ms.max(500));
    let request = M::request(M::digest(core), push.then(|| M::snapshot(core)));
    let Ok(answer) = core.rpc.call(to, name, request, timeout).await else {
        return;
    };
    let Some(Some(theirs)) = M::answered(answer) else {
        return;
    };
    if M::merge(core, &theirs) {
        tracing::info!("{} changed (from a peer)", M::WHAT);
        M::persist(core).await;
    }
    if !push && M::digest(core) != M::digest_of(&theirs) {
        let request = M::request(M::digest(core), Some(M::snapshot(core)));
        let _ = core.rpc.call(to, name, request, timeout).await;
    }
}

/// Pushes this node's metadata to every member (after a change made here),
/// and waits for them, at most a few seconds.
pub async fn push<M: Metadata>(core: &Arc<Core>) {
    let peers: Vec<(String, std::net::SocketAddr)> = core
        .cluster
        .view()
        .into_iter()
        .filter(|m| m.name != core.me() && !core.is_down(&m.name))
        .map(|m| (m.name.clone(), m.rpc_addr))
        .collect();
    let sends = peers
        .iter()
        .map(|(name, addr)| sync::<M>(core, *addr, Some(name), true));
    let _ = tokio::time::timeout(Duration::from_secs(3), futures::future::join_all(sends)).await;
}

/// One push-pull exchange: send our table, merge the answer.
async fn exchange(core: Arc<Core>, out: Outgoing) {
    let timeout = Duration::from_millis(core.config.gossip_interval_ms.max(200));
    let result = core
        .rpc
        .call(
            out.to,
            out.name.as_deref(),
            Request::Gossip(out.message),
            timeout,
        )
        .await;
    let outcome = match result {
        Ok(Response::Gossip(reply)) if core.cluster.is_foreign(&reply) => {
            refuse_foreign(&core, &reply);
            "foreign"
        }
        Ok(Response::Error(reason)) => {
            if let Some(suppressed) = core.cluster.foreign_log.allow() {
                tracing::warn!(to = %out.to, %reason, suppressed, "a node refused this node's gossip");
            }
            "refused"
        }
        Ok(Response::Gossip(reply)) => {
            let (structural, returned) = core.cluster.receive(&reply);
            for addr in returned {
                core.rpc.reset_backoff(addr);
            }
            if structural {
                tracing::info!(from = %reply.from, ring = core.cluster.stamp().version, "membership changed");
                core.persist_members().await;
                core.ring_changed.notify_one();
            }
            "ok"
        }
        Ok(_) => "protocol",
        Err(e) => {
            tracing::debug!(to = %out.to, error = %e, "gossip exchange failed");
            e.label()
        }
    };
    core.metrics
        .gossip_exchanges
        .get_or_create(&Reason::from(outcome))
        .inc();
    if outcome == "ok" {
        sync::<BucketTypes>(&core, out.to, out.name.as_deref(), false).await;
        sync::<Users>(&core, out.to, out.name.as_deref(), false).await;
    }
}
