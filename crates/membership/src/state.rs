//! The member table and its gossip and liveness rules.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use dynakv_ring::{Change, Ring};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};

use crate::claim::claim;
use crate::member::{Entry, MemberInfo, MemberState};
use crate::ring::{ClusterRing, RingStamp};

/// A member's liveness in this node's opinion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Heartbeat rising.
    Up,
    /// Silent for over half the failure timeout.
    Suspect,
    /// Silent for over the failure timeout.
    Down,
    /// Alive, asking to join, not in the ring yet.
    Joining,
    /// Alive and decommissioning: handing its partitions off.
    Leaving,
    /// Gone (left or removed).
    Left,
}

/// Gossip tuning.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// Peers gossiped to per round.
    pub fanout: usize,
    /// Silence after which a member is down.
    pub failure_timeout_ms: u64,
    /// Replicas per key (N): the claimant needs it to place partitions.
    pub n: usize,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            fanout: 2,
            failure_timeout_ms: 5000,
            n: 3,
        }
    }
}

/// Most members a table holds: entries of members beyond it are ignored.
pub const MAX_MEMBERS: usize = 1024;

/// How long a member that left or was removed stays in the table (so every
/// node learns it left, and it cannot start again on its old data), before
/// it is forgotten: a week.
pub const FORGET_AFTER_MS: u64 = 7 * 24 * 3600 * 1000;

/// A gossip message: the sender's whole table (small: one row per member).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GossipMessage {
    /// Sender's name.
    pub from: String,
    /// Its table.
    pub entries: Vec<Entry>,
    /// Its cluster ring, when the receiver may not have it (its gossiped stamp
    /// differs from the sender's).
    pub ring: Option<ClusterRing>,
    /// The id of its cluster (0: it belongs to none yet). A node never
    /// merges the table or ring of another cluster.
    pub cluster: u64,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// Node-to-node address of the target.
    pub to: SocketAddr,
    /// Target's name, when it is a known member (not a bare seed address).
    pub name: Option<String>,
    /// The message.
    pub message: GossipMessage,
}

/// A change of liveness seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The member.
    pub name: String,
    /// Its previous status.
    pub from: Status,
    /// Its new status.
    pub to: Status,
}

/// A member as shown by status endpoints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberView {
    /// Name.
    pub name: String,
    /// Node-to-node address.
    pub rpc_addr: SocketAddr,
    /// HTTP address.
    pub http_addr: SocketAddr,
    /// Zone.
    pub zone: Option<String>,
    /// Weight.
    pub weight: f64,
    /// Liveness in this node's opinion.
    pub status: Status,
    /// Current incarnation.
    pub generation: u64,
    /// Last heartbeat seen.
    pub heartbeat: u64,
    /// Time since the heartbeat last rose (0 for this node).
    pub last_heartbeat_ms_ago: u64,
}

/// One node's membership state machine.
#[derive(Clone, Debug)]
pub struct Membership {
    me: String,
    config: GossipConfig,
    seeds: Vec<SocketAddr>,
    entries: BTreeMap<String, Entry>,
    /// When each member's heartbeat last rose, in this node's clock.
    last_rise: BTreeMap<String, u64>,
    /// Last computed status, to report transitions.
    last_status: BTreeMap<String, Status>,
    /// The cluster ring, and the placement it gives.
    ring: ClusterRing,
    /// The ring's stamp, computed once per version.
    stamp: RingStamp,
    placement: Ring,
    /// When this incarnation started (its own clock).
    started_ms: u64,
    /// Members whose entry this incarnation received newer than it had (not
    /// merely persisted last time): the ones founding a ring may count on.
    heard: std::collections::BTreeSet<String>,
    /// The cluster's id, made by the node that founded it (0: none yet).
    cluster_id: u64,
}

/// A cluster id for a ring founded by `founder` at `now_ms` with `members`:
/// never 0, and two clusters founded apart differ.
fn mint_cluster_id(founder: &str, now_ms: u64, members: &[&str]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(founder.as_bytes());
    h.update(&now_ms.to_le_bytes());
    for m in members {
        h.update(&[0]);
        h.update(m.as_bytes());
    }
    h.digest().max(1)
}

impl Membership {
    /// A node starting with `me`, a fresh `generation` (its start time, larger
    /// than any earlier incarnation's), the table and ring it persisted last time
    /// (empty for a new node), and seed addresses to contact.
    ///
    /// A node with no seeds and no ring founds a cluster of its own: the ring's
    /// first version holds it alone. A node with seeds waits to hear the ring;
    /// if none of the live members it hears of has one either (every node was
    /// started with the others as seeds), the one with the smallest name founds
    /// it with every live member it heard from in it, once it heard from all
    /// its seeds (see `maybe_found`).
    pub fn new(
        me: MemberInfo,
        generation: u64,
        persisted: Vec<Entry>,
        ring: ClusterRing,
        seeds: Vec<SocketAddr>,
        config: GossipConfig,
        now_ms: u64,
    ) -> Membership {
        let seeds: Vec<SocketAddr> = seeds.into_iter().filter(|s| *s != me.rpc_addr).collect();
        let (ring, cluster_id) = if ring.is_empty() && seeds.is_empty() {
            let id = mint_cluster_id(&me.name, now_ms, &[]);
            (
                ClusterRing::bootstrap(&me.name, me.weight, me.zone.clone()),
                id,
            )
        } else {
            (ring, 0)
        };
        let placement = ring.ring(config.n);
        let mut m = Membership {
            me: me.name.clone(),
            config,
            seeds,
            entries: BTreeMap::new(),
            last_rise: BTreeMap::new(),
            last_status: BTreeMap::new(),
            stamp: ring.stamp(),
            ring,
            placement,
            started_ms: now_ms,
            heard: std::collections::BTreeSet::new(),
            cluster_id,
        };
        let mut generation = generation;
        let mut state = MemberState::Active;
        let mut received = BTreeMap::new();
        for e in persisted {
            if e.info.name == me.name {
                // Never go back in time; a decommission in progress goes on.
                generation = generation.max(e.generation + 1);
                if e.state == MemberState::Leaving {
                    state = MemberState::Leaving;
                }
                received = e.received;
            } else {
                m.last_rise.insert(e.info.name.clone(), now_ms);
                m.entries.insert(e.info.name.clone(), e);
            }
        }
        let stamp = m.stamp;
        m.entries.insert(
            me.name.clone(),
            Entry {
                info: me,
                generation,
                heartbeat: 0,
                state,
                state_changed_at: now_ms,
                ring: stamp,
                received,
            },
        );
        m.refresh(now_ms);
        m
    }

    /// This node's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    fn my_entry(&mut self) -> &mut Entry {
        self.entries
            .get_mut(&self.me)
            .expect("a node's own entry is always in its table")
    }

    /// This node's own entry.
    pub fn own(&self) -> &Entry {
        &self.entries[&self.me]
    }

    /// The whole table, with the ring (to persist, or to answer a gossip message).
    pub fn message(&self) -> GossipMessage {
        GossipMessage {
            from: self.me.clone(),
            entries: self.entries.values().cloned().collect(),
            ring: Some(self.ring.clone()),
            cluster: self.cluster_id,
        }
    }

    /// The table for `peer`, with the ring only if `peer` may not have it.
    pub fn message_for(&self, peer: Option<&str>) -> GossipMessage {
        let theirs = peer.and_then(|p| self.entries.get(p)).map(|e| e.ring);
        GossipMessage {
            from: self.me.clone(),
            entries: self.entries.values().cloned().collect(),
            ring: (theirs != Some(self.stamp)).then(|| self.ring.clone()),
            cluster: self.cluster_id,
        }
    }

    /// The id of this node's cluster (0: none yet).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// Restores the cluster id persisted by an earlier run (`None`: there
    /// was none). A node that holds a ring made before clusters had ids
    /// derives it from the ring's first change, the founding join, which
    /// every member of that cluster holds: they all agree on it without a
    /// word exchanged.
    pub fn set_cluster_id(&mut self, id: Option<u64>) {
        match id {
            Some(id) if id != 0 => self.cluster_id = id,
            _ if self.cluster_id == 0 => {
                if let Some(first) = self.ring.log.first() {
                    let (weight, zone) = match &first.change {
                        Change::Join { weight, zone } | Change::Update { weight, zone } => {
                            (weight.to_bits(), zone.as_deref().unwrap_or(""))
                        }
                        Change::Leave => (0, ""),
                    };
                    let founding = format!("{}\0{weight}\0{zone}", first.name);
                    self.cluster_id = mint_cluster_id(&founding, 0, &[]);
                }
            }
            _ => {}
        }
    }

    /// True if `message` comes from a node of another cluster: both have an
    /// id and they differ. Such a message must not be merged.
    pub fn is_foreign(&self, message: &GossipMessage) -> bool {
        message.cluster != 0 && self.cluster_id != 0 && message.cluster != self.cluster_id
    }

    /// The cluster ring.
    pub fn ring(&self) -> &ClusterRing {
        &self.ring
    }

    /// The placement the cluster ring gives (partitions in transit included).
    pub fn placement(&self) -> &Ring {
        &self.placement
    }

    fn set_ring(&mut self, ring: ClusterRing) {
        self.placement = ring.ring(self.config.n);
        self.stamp = ring.stamp();
        self.ring = ring;
        let stamp = self.stamp;
        self.my_entry().ring = stamp;
    }

    /// The stamp of the cluster ring (cached).
    pub fn ring_stamp(&self) -> RingStamp {
        self.stamp
    }

    /// The claimant: the live, active ring member with the smallest name (in
    /// this node's view of liveness).
    pub fn claimant(&self, now_ms: u64) -> Option<String> {
        self.placement
            .nodes()
            .iter()
            .map(|n| n.name.as_str())
            .find(|name| {
                self.entries
                    .get(*name)
                    .is_some_and(|e| e.state == MemberState::Active)
                    && matches!(self.status_at(name, now_ms), Status::Up | Status::Suspect)
            })
            .map(str::to_string)
    }

    /// If this node is the claimant, applies what the member table asks of the
    /// ring (see [`crate::claim`]). Returns true if the ring changed.
    pub fn claim(&mut self, now_ms: u64) -> bool {
        if self.claimant(now_ms).as_deref() != Some(self.me.as_str()) {
            return false;
        }
        let live: std::collections::BTreeSet<String> = self
            .entries
            .keys()
            .filter(|name| {
                matches!(
                    self.status_at(name, now_ms),
                    Status::Up | Status::Suspect | Status::Joining | Status::Leaving
                )
            })
            .cloned()
            .collect();
        match claim(&self.ring, &self.entries, &live, &self.me, self.config.n) {
            Some(next) => {
                self.set_ring(next);
                true
            }
            None => false,
        }
    }

    /// Founds the cluster's first ring when this node was started with seeds
    /// and nobody it hears of has a ring: the live member with the smallest
    /// name founds it, with **every** live member it heard from in this run
    /// (a member table persisted by an earlier run proves nothing) in it,
    /// once it has heard from every seed it was given and half a failure
    /// timeout has passed (gossip brings a ring founded meanwhile), or after a
    /// whole failure timeout with those it heard from. So nodes started
    /// together agree on one first ring that holds them all, with nothing in
    /// transit; a member heard of later joins it as any joiner does.
    fn maybe_found(&mut self, now_ms: u64) {
        let since_start = now_ms.saturating_sub(self.started_ms);
        if !self.ring.is_empty() || since_start < self.config.failure_timeout_ms / 2 {
            return;
        }
        let live: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| {
                let name = &e.info.name;
                (*name == self.me || self.heard.contains(name))
                    && e.state == MemberState::Active
                    && matches!(
                        self.status_at(name, now_ms),
                        Status::Up | Status::Suspect | Status::Joining
                    )
            })
            .collect();
        // Never found a cluster before reaching anyone: the seeds may belong to
        // one that already has a ring.
        if live.len() < 2 {
            return;
        }
        let heard_every_seed = self
            .seeds
            .iter()
            .all(|s| live.iter().any(|e| e.info.rpc_addr == *s));
        let waited = since_start >= self.config.failure_timeout_ms;
        if !heard_every_seed && !waited {
            return;
        }
        let nobody_has_one = live.iter().all(|e| e.ring.version == 0);
        let smallest = live.iter().map(|e| e.info.name.as_str()).min() == Some(self.me.as_str());
        if nobody_has_one && smallest {
            let members: Vec<(String, f64, Option<String>)> = live
                .iter()
                .map(|e| (e.info.name.clone(), e.info.weight, e.info.zone.clone()))
                .collect();
            let me = self.me.clone();
            let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
            self.cluster_id = mint_cluster_id(&me, now_ms, &names);
            self.set_ring(ClusterRing::found(&me, &members));
        }
    }

    /// Starts decommissioning this node: the claimant takes it out of the ring,
    /// and its partitions are handed off before it leaves.
    pub fn leave(&mut self, now_ms: u64) {
        let me = self.my_entry();
        if me.state == MemberState::Active {
            me.state = MemberState::Leaving;
            me.state_changed_at = now_ms;
        }
    }

    /// Marks this node as gone: it handed every partition off.
    pub fn set_left(&mut self, now_ms: u64) {
        let me = self.my_entry();
        me.state = MemberState::Left;
        me.state_changed_at = now_ms;
    }

    /// Drops another member for good (an operator's `remove`): the entry is
    /// marked removed, which outranks the member's own entries of the same
    /// incarnation. Returns false if the member is unknown or is this node.
    pub fn remove(&mut self, name: &str, now_ms: u64) -> bool {
        if name == self.me {
            return false;
        }
        match self.entries.get_mut(name) {
            Some(e) => {
                e.state = MemberState::Removed;
                e.state_changed_at = now_ms;
                true
            }
            None => false,
        }
    }

    /// Records the partitions in transit this node holds a full copy of.
    pub fn set_received(&mut self, received: BTreeMap<u16, u64>) {
        self.my_entry().received = received;
    }

    /// A member's table row.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// The table rows.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// One gossip round at `now_ms`: increments this node's heartbeat, recomputes
    /// liveness, and returns the messages to send — `fanout` random live peers,
    /// sometimes a down member (to notice its return), and a seed while this node
    /// knows no live peer or now and then (to heal partitions of the gossip graph).
    pub fn tick(&mut self, now_ms: u64, rng: &mut impl Rng) -> (Vec<Outgoing>, Vec<Transition>) {
        self.my_entry().heartbeat += 1;
        let transitions = self.refresh(now_ms);
        let had_ring = !self.ring.is_empty();
        self.maybe_found(now_ms);
        let founded = !had_ring && !self.ring.is_empty();
        self.claim(now_ms);
        let mut live = Vec::new();
        let mut down = Vec::new();
        for (name, e) in &self.entries {
            if *name == self.me || e.is_gone() {
                continue;
            }
            match self.status_at(name, now_ms) {
                Status::Down => down.push(e),
                _ => live.push(e),
            }
        }
        // The founder tells every live member of the first ring at once:
        // until it arrives they cannot place a key.
        let fanout = if founded {
            live.len()
        } else {
            self.config.fanout
        };
        let mut out: Vec<Outgoing> = live
            .choose_multiple(rng, fanout)
            .map(|e| Outgoing {
                to: e.info.rpc_addr,
                name: Some(e.info.name.clone()),
                message: self.message_for(Some(&e.info.name)),
            })
            .collect();
        if !down.is_empty() && rng.random_ratio(1, 2) {
            let e = down.choose(rng).expect("non-empty");
            out.push(Outgoing {
                to: e.info.rpc_addr,
                name: Some(e.info.name.clone()),
                message: self.message_for(Some(&e.info.name)),
            });
        }
        // Until the cluster has a ring, every seed is asked each round: nodes
        // started together must all hear of each other before one founds the
        // ring, and gossip among the first few that met (an island that is no
        // longer lonely) would otherwise leave the rest unheard.
        if self.ring.is_empty() {
            for &seed in &self.seeds {
                if !out.iter().any(|o| o.to == seed) {
                    out.push(Outgoing {
                        to: seed,
                        name: None,
                        message: self.message(),
                    });
                }
            }
        }
        let lonely = live.is_empty();
        if !self.seeds.is_empty() && (lonely || rng.random_ratio(1, 10)) {
            let seed = *self.seeds.choose(rng).expect("non-empty");
            if !out.iter().any(|o| o.to == seed) {
                out.push(Outgoing {
                    to: seed,
                    name: None,
                    message: self.message(),
                });
            }
        }
        (out, transitions)
    }

    /// Merges a received table, keeping the newer entry of every member, and
    /// adopts the sender's ring if it is newer (higher version, then digest).
    /// Returns true if the table changed structurally (a member, address,
    /// weight or state changed, or the ring: worth persisting), not just
    /// heartbeats.
    ///
    /// A message of another cluster ([`Membership::is_foreign`]) changes
    /// nothing; a node with no id yet (a joiner) takes the sender's.
    pub fn receive(&mut self, message: &GossipMessage, now_ms: u64) -> bool {
        if self.is_foreign(message) {
            return false;
        }
        let mut structural = false;
        if self.cluster_id == 0 && message.cluster != 0 {
            self.cluster_id = message.cluster;
            structural = true;
        }
        if let Some(ring) = &message.ring
            && ring.version >= self.stamp.version
            && ring.stamp() > self.stamp
            && ring.invalid().is_none()
        {
            self.set_ring(ring.clone());
            structural = true;
        }
        for theirs in &message.entries {
            let name = &theirs.info.name;
            // Checked field by field; a table bigger than any cluster is
            // taken no further.
            if theirs.invalid().is_some()
                || (!self.entries.contains_key(name) && self.entries.len() >= MAX_MEMBERS)
            {
                continue;
            }
            // A member gone for longer than the grace period is forgotten,
            // and not learned again from a node that still lists it.
            if theirs.is_gone()
                && *name != self.me
                && now_ms.saturating_sub(theirs.state_changed_at) > FORGET_AFTER_MS
            {
                continue;
            }
            if *name == self.me {
                self.absorb_own(theirs);
                continue;
            }
            match self.entries.get(name) {
                Some(ours) if ours.version() >= theirs.version() => {}
                ours => {
                    structural |= ours.is_none_or(|o| {
                        o.info != theirs.info
                            || o.state != theirs.state
                            || o.received != theirs.received
                    });
                    self.last_rise.insert(name.clone(), now_ms);
                    self.heard.insert(name.clone());
                    self.entries.insert(name.clone(), theirs.clone());
                }
            }
        }
        structural
    }

    /// Another node's view of this node. If the other view is newer than ours
    /// (our clock went back), we outrank it with a new incarnation; a removal
    /// by an operator is accepted.
    fn absorb_own(&mut self, theirs: &Entry) {
        let me = self.my_entry();
        if theirs.version() > me.version() {
            if theirs.state == MemberState::Removed {
                me.state = MemberState::Removed;
                me.state_changed_at = theirs.state_changed_at;
                me.generation = theirs.generation;
                me.heartbeat = theirs.heartbeat;
            } else {
                me.generation = theirs.generation + 1;
                me.heartbeat = 0;
            }
        }
    }

    fn status_at(&self, name: &str, now_ms: u64) -> Status {
        let Some(e) = self.entries.get(name) else {
            return Status::Down;
        };
        if matches!(e.state, MemberState::Left | MemberState::Removed) {
            return Status::Left;
        }
        let silent = if name == self.me {
            0
        } else {
            now_ms.saturating_sub(self.last_rise.get(name).copied().unwrap_or(0))
        };
        let alive = if silent >= self.config.failure_timeout_ms {
            Status::Down
        } else if silent >= self.config.failure_timeout_ms / 2 {
            Status::Suspect
        } else {
            Status::Up
        };
        match (alive, e.state) {
            (Status::Down, _) => Status::Down,
            (_, MemberState::Leaving) => Status::Leaving,
            _ if !self.placement.is_member(name) => Status::Joining,
            _ => alive,
        }
    }

    /// Recomputes every member's status, returning the changes since last
    /// time, and forgets members that left (or were removed) more than
    /// [`FORGET_AFTER_MS`] ago and are no longer in the ring.
    pub fn refresh(&mut self, now_ms: u64) -> Vec<Transition> {
        let ring_members = self.ring.members();
        let me = self.me.clone();
        self.entries.retain(|name, e| {
            *name == me
                || !e.is_gone()
                || ring_members.contains_key(name)
                || now_ms.saturating_sub(e.state_changed_at) <= FORGET_AFTER_MS
        });
        let entries = &self.entries;
        self.last_status
            .retain(|name, _| entries.contains_key(name));
        self.last_rise.retain(|name, _| entries.contains_key(name));
        let mut changes = Vec::new();
        let names: Vec<String> = self.entries.keys().cloned().collect();
        for name in names {
            let now = self.status_at(&name, now_ms);
            let before = self.last_status.insert(name.clone(), now);
            if let Some(from) = before
                && from != now
            {
                changes.push(Transition {
                    name,
                    from,
                    to: now,
                });
            }
        }
        changes
    }

    /// A member's status at `now_ms` (unknown members are down).
    pub fn status(&self, name: &str, now_ms: u64) -> Status {
        self.status_at(name, now_ms)
    }

    /// Every member with its liveness, by name.
    pub fn view(&self, now_ms: u64) -> Vec<MemberView> {
        self.entries
            .values()
            .map(|e| {
                let name = &e.info.name;
                MemberView {
                    name: name.clone(),
                    rpc_addr: e.info.rpc_addr,
                    http_addr: e.info.http_addr,
                    zone: e.info.zone.clone(),
                    weight: e.info.weight,
                    status: self.status_at(name, now_ms),
                    generation: e.generation,
                    heartbeat: e.heartbeat,
                    last_heartbeat_ms_ago: if *name == self.me {
                        0
                    } else {
                        now_ms.saturating_sub(self.last_rise.get(name).copied().unwrap_or(0))
                    },
                }
            })
            .collect()
    }

    /// The address of a member.
    pub fn rpc_addr(&self, name: &str) -> Option<SocketAddr> {
        self.entries.get(name).map(|e| e.info.rpc_addr)
    }
}
