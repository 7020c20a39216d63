//! The cluster as this node sees it: the member table of `dynakv-membership`
//! and the ring every node computes from the same membership. [`crate::server::gossip`]
//! drives it over RPC and `Core::persist_members` stores it.
//!
//! Membership changes (a join, an address change, a leave) and the cluster ring
//! are persisted in the node's metadata, so a restarted node rejoins with no
//! seeds. Heartbeats alone are not persisted: they only drive liveness.
//!
//! The ring does not depend on any wall clock: it is the replay of the change
//! log the claimant keeps (see `dynakv_membership::claim`). Clocks only measure
//! silences (liveness) and stamp incarnations.
//!
//! Inside: [`rpc`], the node-to-node protocol every part speaks. The worker
//! that gossips member tables over it is [`crate::server::gossip`], one of the
//! parts over [`crate::server::core::Core`].

pub mod rpc;

use std::sync::Arc;

use dynakv_membership::{
    ClusterRing, Entry, GossipMessage, MemberState, MemberView, Membership, Outgoing, RingStamp,
    Status, Transition,
};
use dynakv_ring::Ring;
use parking_lot::{Mutex, RwLock};
use rand::rngs::StdRng;

use crate::server::clock::now_ms;

/// The metadata record holding the member table.
pub const META_MEMBERS: &str = "members.v2";
/// The metadata record holding the cluster ring.
pub const META_RING: &str = "ring";
/// The metadata record holding the cluster's id.
pub const META_CLUSTER_ID: &str = "cluster_id";

/// One version of the ring as request handlers and workers read it: the
/// placement, the ring state it was computed from, and their stamp.
///
/// The three are replaced together, behind one pointer, when a new version
/// arrives. Code that needs two of them takes one snapshot
/// ([`Cluster::snapshot`]) rather than reading each on its own: between two
/// separate reads the ring can change, and a placement of one version judged
/// against the transits or the stamp of another (say, dropping a partition
/// every member has confirmed handing off, by a newer placement nobody has
/// confirmed yet) is a decision made on a ring that never existed.
#[derive(Debug)]
pub struct RingSnapshot {
    /// The placement (partitions in transit included).
    pub placement: Arc<Ring>,
    /// The cluster ring state: change log, partitions in transit.
    pub state: Arc<ClusterRing>,
    /// The stamp of this version.
    pub stamp: RingStamp,
}

impl RingSnapshot {
    fn of(m: &Membership) -> RingSnapshot {
        RingSnapshot {
            placement: Arc::new(m.placement().clone()),
            state: Arc::new(m.ring().clone()),
            stamp: m.ring_stamp(),
        }
    }
}

/// How far the cluster is from settled, as one node sees it (`settled` in
/// `/admin/status`): a settled cluster has every live member in the ring,
/// every live member serving the same ring version, and nothing in transit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Settling {
    /// The version of the ring this node serves (0: none yet).
    pub ring_version: u64,
    /// Live members asking to join that the ring does not hold yet.
    pub joining: Vec<String>,
    /// Live members serving another ring than this node, with its version.
    pub other_ring: Vec<(String, u64)>,
    /// Partitions whose replicas are changing.
    pub partitions_moving: usize,
}

impl Settling {
    /// True if the cluster has settled: a ring, every live member in it and
    /// on it, nothing moving.
    pub fn is_settled(&self) -> bool {
        self.ring_version > 0
            && self.joining.is_empty()
            && self.other_ring.is_empty()
            && self.partitions_moving == 0
    }
}

/// Membership and the ring derived from it.
pub struct Cluster {
    membership: Mutex<Membership>,
    shared: RwLock<Arc<RingSnapshot>>,
    /// Gossip refused from another cluster is logged at most this often.
    pub foreign_log: crate::server::limits::LogLimiter,
}

impl Cluster {
    /// Wraps a membership state machine.
    pub fn new(membership: Membership) -> Cluster {
        let shared = Arc::new(RingSnapshot::of(&membership));
        Cluster {
            membership: Mutex::new(membership),
            shared: RwLock::new(shared),
            foreign_log: crate::server::limits::LogLimiter::new(std::time::Duration::from_secs(10)),
        }
    }

    /// The id of this node's cluster (0: none yet).
    pub fn cluster_id(&self) -> u64 {
        self.membership.lock().cluster_id()
    }

    /// True if `message` comes from a node of another cluster.
    pub fn is_foreign(&self, message: &GossipMessage) -> bool {
        self.membership.lock().is_foreign(message)
    }

    /// The current ring version: placement, state and stamp of one version.
    pub fn snapshot(&self) -> Arc<RingSnapshot> {
        Arc::clone(&self.shared.read())
    }

    /// The current ring (placement, partitions in transit included). To read
    /// it with the ring state or the stamp, take a [`Cluster::snapshot`].
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
            *self.shared.write() = Arc::new(RingSnapshot::of(&m));
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

    /// How far the cluster is from settled, in this node's view: live members
    /// the ring does not hold yet, live members serving another ring
    /// version, and partitions in transit.
    pub fn settling(&self) -> Settling {
        let m = self.membership.lock();
        let now = now_ms();
        let stamp = m.ring_stamp();
        let mut settling = Settling {
            ring_version: stamp.version,
            joining: Vec::new(),
            other_ring: Vec::new(),
            partitions_moving: m.ring().moving.len(),
        };
        for e in m.entries() {
            let name = &e.info.name;
            let status = m.status(name, now);
            if matches!(status, Status::Down | Status::Left) {
                continue;
            }
            if status == Status::Joining {
                settling.joining.push(name.clone());
            }
            if e.ring != stamp {
                settling.other_ring.push((name.clone(), e.ring.version));
            }
        }
        settling
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use dynakv_membership::{ClusterRing, GossipConfig, MemberInfo};
    use rand::SeedableRng;

    use super::*;

    const N: usize = 3;

    fn info(i: u16) -> MemberInfo {
        MemberInfo {
            name: format!("n{i}"),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8000 + i)),
            zone: None,
            weight: 1.0,
        }
    }

    fn member(i: u16, seeds: Vec<SocketAddr>) -> Membership {
        let config = GossipConfig {
            n: N,
            ..GossipConfig::default()
        };
        Membership::new(
            info(i),
            1,
            Vec::new(),
            ClusterRing::default(),
            seeds,
            config,
            now_ms(),
        )
    }

    /// Every partition's serving and pending replicas.
    fn placement(ring: &Ring) -> Vec<(Vec<String>, Vec<String>)> {
        (0..dynakv_ring::PARTITIONS)
            .map(|p| {
                let names = |it: &mut dyn Iterator<Item = &str>| it.map(String::from).collect();
                (names(&mut ring.replicas(p)), names(&mut ring.pending(p)))
            })
            .collect()
    }

    /// What a request or worker reads in one snapshot is one ring version:
    /// the placement is the one its state computes, and the stamp is that
    /// state's, however the ring changes while it reads. Nodes join the
    /// claimant one after another (each join is a new version with partitions
    /// in transit) while a reader takes snapshots as fast as it can; the
    /// writer goes on only once the reader has seen its last version, so the
    /// reader is there for every change.
    #[test]
    fn a_snapshot_is_one_ring_version_while_the_ring_changes() {
        for _ in 0..10 {
            let cluster = Arc::new(Cluster::new(member(0, Vec::new())));
            let done = Arc::new(AtomicBool::new(false));
            let seen = Arc::new(AtomicU64::new(0));
            let reader = {
                let (cluster, done, seen) =
                    (Arc::clone(&cluster), Arc::clone(&done), Arc::clone(&seen));
                std::thread::spawn(move || {
                    // Per version seen, the placement its state computes.
                    let mut expected = std::collections::BTreeMap::new();
                    let mut last = 0;
                    while !done.load(Ordering::Acquire) {
                        let s = cluster.snapshot();
                        assert_eq!(s.stamp, s.state.stamp(), "stamp of another version");
                        let want = expected
                            .entry(s.stamp.version)
                            .or_insert_with(|| placement(&s.state.ring(N)));
                        assert!(
                            *want == placement(&s.placement),
                            "placement of another version"
                        );
                        assert!(s.stamp.version >= last, "the ring went back");
                        last = s.stamp.version;
                        seen.store(last, Ordering::Release);
                    }
                    expected.len()
                })
            };
            let seen_by_reader = |version: u64| {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                // A reader that failed an assertion has stopped: its panic
                // surfaces at the join below.
                while seen.load(Ordering::Acquire) < version && !reader.is_finished() {
                    assert!(std::time::Instant::now() < deadline, "the reader is stuck");
                    std::thread::yield_now();
                }
            };
            seen_by_reader(cluster.stamp().version);
            let mut rng = StdRng::seed_from_u64(7);
            for i in 1..=6 {
                let joiner = member(i, vec![info(0).rpc_addr]);
                cluster.receive(&joiner.message());
                let (_, _, changed) = cluster.tick(&mut rng);
                assert!(changed, "n{i}'s join did not change the ring");
                seen_by_reader(cluster.stamp().version);
            }
            done.store(true, Ordering::Release);
            let versions = reader.join().expect("reader");
            assert_eq!(versions, 7, "the founding version and one per join");
        }
    }
}
