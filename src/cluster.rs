//! The cluster as this node sees it: the gossip state machine of
//! `dynakv-membership` driven over the RPC layer, and the ring every node
//! computes from the same membership.
//!
//! Membership changes (a join, an address change, a leave) are persisted in the
//! node's metadata, so a restarted node rejoins with no seeds, and trigger a ring
//! recomputation. Heartbeats alone are not persisted: they only drive liveness.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynakv_membership::{
    Entry, GossipMessage, MemberView, Membership, Outgoing, Status, Transition,
};
use dynakv_ring::Ring;
use parking_lot::{Mutex, RwLock};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Reason, StatusLabel};
use crate::node::{Node, jittered_pause};
use crate::rpc::{Request, Response};

/// The metadata record holding the member table.
pub const META_MEMBERS: &str = "members";

/// Wall-clock milliseconds: gossip generations, join times and liveness.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Membership and the ring derived from it.
pub struct Cluster {
    membership: Mutex<Membership>,
    ring: RwLock<Arc<Ring>>,
    n: usize,
}

impl Cluster {
    /// Wraps a membership state machine; `n` is the replication factor.
    pub fn new(membership: Membership, n: usize) -> Cluster {
        let ring = Arc::new(Ring::new(membership.ring_history(), n));
        Cluster {
            membership: Mutex::new(membership),
            ring: RwLock::new(ring),
            n,
        }
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        Arc::clone(&self.ring.read())
    }

    fn recompute_ring(&self) {
        let history = self.membership.lock().ring_history();
        let ring = Arc::new(Ring::new(history, self.n));
        *self.ring.write() = ring;
    }

    /// Every member with its liveness.
    pub fn view(&self) -> Vec<MemberView> {
        self.membership.lock().view(now_ms())
    }

    /// A member's liveness.
    pub fn status(&self, name: &str) -> Status {
        self.membership.lock().status(name, now_ms())
    }

    /// The member table, to persist.
    pub fn entries(&self) -> Vec<Entry> {
        self.membership.lock().entries().cloned().collect()
    }

    /// This node's table, to send.
    pub fn message(&self) -> GossipMessage {
        self.membership.lock().message()
    }

    /// Merges a peer's table; returns true (and recomputes the ring) on a
    /// structural change.
    pub fn receive(&self, message: &GossipMessage) -> bool {
        let structural = self.membership.lock().receive(message, now_ms());
        if structural {
            self.recompute_ring();
        }
        structural
    }

    /// One gossip round: messages to send and liveness changes seen.
    pub fn tick(&self, rng: &mut StdRng) -> (Vec<Outgoing>, Vec<Transition>) {
        self.membership.lock().tick(now_ms(), rng)
    }

    /// The address of a member.
    pub fn rpc_addr(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.membership.lock().rpc_addr(name)
    }
}

impl Node {
    /// Persists the member table (serialised, so an older snapshot never
    /// overwrites a newer one).
    pub async fn persist_members(self: &Arc<Self>) {
        let result = self
            .blocking(|node| {
                let _order = node.persist_lock.lock();
                node.storage.put_meta(META_MEMBERS, &node.cluster.entries())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot persist the member table");
        }
    }

    /// Answers a gossip message from a peer with this node's table.
    pub async fn on_gossip(self: &Arc<Self>, message: GossipMessage) -> Response {
        if self.cluster.receive(&message) {
            tracing::info!(from = %message.from, "membership changed");
            self.persist_members().await;
        }
        Response::Gossip(self.cluster.message())
    }
}

/// Runs a gossip round every `gossip_interval_ms` (with ±10% jitter, so nodes
/// started together do not gossip in lockstep) until `shutdown`.
pub async fn gossip_worker(node: Arc<Node>, shutdown: CancellationToken) {
    let mut rng = StdRng::from_os_rng();
    while jittered_pause(&shutdown, node.config.gossip_interval_ms).await {
        let (outgoing, transitions) = node.cluster.tick(&mut rng);
        node.metrics.gossip_rounds.inc();
        for t in transitions {
            tracing::info!(member = %t.name, from = ?t.from, to = ?t.to, "member liveness changed");
            let status = format!("{:?}", t.to).to_lowercase();
            node.metrics
                .liveness_changes
                .get_or_create(&StatusLabel { status })
                .inc();
        }
        refresh_member_gauges(&node);
        for message in outgoing {
            tokio::spawn(exchange(Arc::clone(&node), message));
        }
    }
}

fn refresh_member_gauges(node: &Node) {
    let view = node.cluster.view();
    for status in ["up", "suspect", "down", "leaving", "left"] {
        let count = view
            .iter()
            .filter(|m| format!("{:?}", m.status).to_lowercase() == status)
            .count();
        node.metrics
            .members
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .set(count as i64);
    }
}

/// One push-pull exchange: send our table, merge the answer.
async fn exchange(node: Arc<Node>, out: Outgoing) {
    let timeout = Duration::from_millis(node.config.gossip_interval_ms.max(200));
    let result = node
        .rpc
        .call(
            out.to,
            out.name.as_deref(),
            Request::Gossip(out.message),
            timeout,
        )
        .await;
    let outcome = match result {
        Ok(Response::Gossip(reply)) => {
            if node.cluster.receive(&reply) {
                tracing::info!(from = %reply.from, "membership changed");
                node.persist_members().await;
            }
            "ok"
        }
        Ok(_) => "protocol",
        Err(e) => {
            tracing::debug!(to = %out.to, error = %e, "gossip exchange failed");
            e.label()
        }
    };
    node.metrics
        .gossip_exchanges
        .get_or_create(&Reason::from(outcome))
        .inc();
}
