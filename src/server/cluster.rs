//! The cluster as this node sees it: the gossip state machine of
//! `dynakv-membership` driven over the RPC layer, and the ring every node
//! computes from the same membership.
//!
//! Membership changes (a join, an address change, a leave) and the cluster ring
//! are persisted in the node's metadata, so a restarted node rejoins with no
//! seeds. Heartbeats alone are not persisted: they only drive liveness.
//!
//! The ring does not depend on any wall clock: it is the replay of the change
//! log the claimant keeps (see `dynakv_membership::claim`). Clocks only measure
//! silences (liveness) and stamp incarnations.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynakv_membership::{
    ClusterRing, Entry, GossipMessage, MemberState, MemberView, Membership, Outgoing, RingStamp,
    Status, Transition,
};
use dynakv_ring::Ring;
use parking_lot::{Mutex, RwLock};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio_util::sync::CancellationToken;

use crate::server::metrics::{Reason, StatusLabel};
use crate::server::node::{Node, jittered_pause};
use crate::server::rpc::{Request, Response};
use crate::server::worker::WorkerHandle;

/// The metadata record holding the member table.
pub const META_MEMBERS: &str = "members.v2";
/// The metadata record holding the cluster ring.
pub const META_RING: &str = "ring";

/// Test-only shift of this process's wall clock (`DYNAKV_TEST_CLOCK_OFFSET_MS`),
/// to show that a node whose clock is far off changes nothing in the ring.
fn clock_offset_ms() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var("DYNAKV_TEST_CLOCK_OFFSET_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// Wall-clock milliseconds: gossip generations and liveness (never placement).
pub fn now_ms() -> u64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    real.saturating_add_signed(clock_offset_ms())
}

/// The ring as request handlers and workers read it: shared, replaced whole
/// when a new version arrives.
struct Shared {
    placement: Arc<Ring>,
    state: Arc<ClusterRing>,
    stamp: RingStamp,
}

impl Shared {
    fn of(m: &Membership) -> Shared {
        Shared {
            placement: Arc::new(m.placement().clone()),
            state: Arc::new(m.ring().clone()),
            stamp: m.ring_stamp(),
        }
    }
}

/// Membership and the ring derived from it.
pub struct Cluster {
    membership: Mutex<Membership>,
    shared: RwLock<Shared>,
}

impl Cluster {
    /// Wraps a membership state machine.
    pub fn new(membership: Membership) -> Cluster {
        let shared = Shared::of(&membership);
        Cluster {
            membership: Mutex::new(membership),
            shared: RwLock::new(shared),
        }
    }

    /// The current ring (placement, partitions in transit included).
    pub fn ring(&self) -> Arc<Ring> {
        Arc::clone(&self.shared.read().placement)
    }

    /// The cluster ring state (change log, partitions in transit).
    pub fn ring_state(&self) -> Arc<ClusterRing> {
        Arc::clone(&self.shared.read().state)
    }

    /// The stamp of the ring this node serves.
    pub fn stamp(&self) -> RingStamp {
        self.shared.read().stamp
    }

    /// Applies `f` to the membership state machine and refreshes the shared
    /// ring if the cluster ring changed.
    fn with<T>(&self, f: impl FnOnce(&mut Membership) -> T) -> T {
        let mut m = self.membership.lock();
        let before = m.ring_stamp();
        let out = f(&mut m);
        if m.ring_stamp() != before {
            *self.shared.write() = Shared::of(&m);
        }
        out
    }

    /// This node's own table row.
    pub fn own(&self) -> Entry {
        self.membership.lock().own().clone()
    }

    /// A member's table row.
    pub fn entry(&self, name: &str) -> Option<Entry> {
        self.membership.lock().entry(name).cloned()
    }

    /// The claimant, in this node's view.
    pub fn claimant(&self) -> Option<String> {
        self.membership.lock().claimant(now_ms())
    }

    /// Starts decommissioning this node.
    pub fn leave(&self) {
        self.with(|m| m.leave(now_ms()));
    }

    /// Marks this node as gone (its handoff is complete).
    pub fn set_left(&self) {
        self.with(|m| m.set_left(now_ms()));
    }

    /// Drops a member for good.
    pub fn remove(&self, name: &str) -> bool {
        self.with(|m| m.remove(name, now_ms()))
    }

    /// Publishes the partitions in transit this node holds a full copy of.
    pub fn set_received(&self, received: std::collections::BTreeMap<u16, u64>) {
        self.with(|m| m.set_received(received));
    }

    /// True if every member that is not gone — down ones included — serves
    /// exactly the ring `stamp` (as their gossiped entries say).
    pub fn all_members_at(&self, stamp: RingStamp) -> bool {
        let m = self.membership.lock();
        m.entries()
            .filter(|e| matches!(e.state, MemberState::Active | MemberState::Leaving))
            .all(|e| e.ring == stamp)
    }

    /// This node's administrative state.
    pub fn own_state(&self) -> MemberState {
        self.membership.lock().own().state
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

    /// This node's table, to send to `peer` (with the ring if it may lack it).
    pub fn message_for(&self, peer: &str) -> GossipMessage {
        self.membership.lock().message_for(Some(peer))
    }

    /// Merges a peer's table (and ring); returns true on a structural change,
    /// and the addresses of members that came back as a new incarnation.
    pub fn receive(&self, message: &GossipMessage) -> (bool, Vec<std::net::SocketAddr>) {
        self.with(|m| {
            let before: std::collections::HashMap<String, u64> = m
                .entries()
                .map(|e| (e.info.name.clone(), e.generation))
                .collect();
            let structural = m.receive(message, now_ms());
            let returned = m
                .entries()
                .filter(|e| {
                    e.info.name != m.me()
                        && before.get(&e.info.name).is_some_and(|&g| g != e.generation)
                })
                .map(|e| e.info.rpc_addr)
                .collect();
            (structural, returned)
        })
    }

    /// One gossip round: messages to send, liveness changes seen, and whether
    /// this node (as claimant) changed the ring.
    pub fn tick(&self, rng: &mut StdRng) -> (Vec<Outgoing>, Vec<Transition>, bool) {
        self.with(|m| {
            let before = m.ring_stamp();
            let (out, transitions) = m.tick(now_ms(), rng);
            (out, transitions, m.ring_stamp() != before)
        })
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
                node.storage
                    .put_meta(META_MEMBERS, &node.cluster.entries())?;
                node.storage
                    .put_meta(META_RING, &*node.cluster.ring_state())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot persist the member table");
        }
    }

    /// Answers a gossip message from a peer with this node's table.
    pub async fn on_gossip(self: &Arc<Self>, message: GossipMessage) -> Response {
        let (structural, returned) = self.cluster.receive(&message);
        for addr in returned {
            self.rpc.reset_backoff(addr);
        }
        if structural {
            tracing::info!(from = %message.from, ring = self.cluster.stamp().version, "membership changed");
            self.persist_members().await;
            self.transfers.wake();
        }
        Response::Gossip(self.cluster.message_for(&message.from))
    }
}

/// Runs a gossip round every `gossip_interval_ms` (with ±10% jitter, so nodes
/// started together do not gossip in lockstep) until `shutdown`.
pub async fn gossip_worker(node: Arc<Node>, worker: WorkerHandle, shutdown: CancellationToken) {
    let mut rng = StdRng::from_os_rng();
    while jittered_pause(&shutdown, node.config.gossip_interval_ms).await {
        worker.busy();
        let (outgoing, transitions, claimed) = node.cluster.tick(&mut rng);
        node.metrics.gossip_rounds.inc();
        if claimed {
            let ring = node.cluster.ring_state();
            tracing::info!(
                version = ring.version,
                moving = ring.moving.len(),
                "claimant: new ring version"
            );
            node.persist_members().await;
            node.transfers.wake();
        }
        for t in transitions {
            tracing::info!(member = %t.name, from = ?t.from, to = ?t.to, "member liveness changed");
            if t.to == Status::Up
                && let Some(addr) = node.cluster.rpc_addr(&t.name)
            {
                node.rpc.reset_backoff(addr);
            }
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
        worker.idle();
    }
}

fn refresh_member_gauges(node: &Node) {
    let view = node.cluster.view();
    for status in ["up", "suspect", "down", "joining", "leaving", "left"] {
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
            let (structural, returned) = node.cluster.receive(&reply);
            for addr in returned {
                node.rpc.reset_backoff(addr);
            }
            if structural {
                tracing::info!(from = %reply.from, ring = node.cluster.stamp().version, "membership changed");
                node.persist_members().await;
                node.transfers.wake();
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
