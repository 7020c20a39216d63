//! The member table and its gossip and liveness rules.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use dynakv_ring::NodeSpec;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};

/// What a member tells the cluster about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Unique name.
    pub name: String,
    /// Node-to-node address.
    pub rpc_addr: SocketAddr,
    /// HTTP address.
    pub http_addr: SocketAddr,
    /// Availability zone.
    pub zone: Option<String>,
    /// Ring weight.
    pub weight: f64,
    /// When the member first joined (ms); fixes its place in the ring history.
    pub joined_at: u64,
}

/// A member's administrative state (gossiped, unlike liveness).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// A full member.
    Active,
    /// Handing its data off before leaving.
    Leaving,
    /// Left the cluster for good.
    Left,
    /// Removed by an operator (dead for good).
    Removed,
}

/// One row of the member table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The member's self-description.
    pub info: MemberInfo,
    /// Start time of the member's current process (ms): a restart increases it.
    pub generation: u64,
    /// Incremented by the member every gossip interval.
    pub heartbeat: u64,
    /// Administrative state.
    pub state: MemberState,
    /// When the state last changed (ms): the ring's leave time for Left/Removed.
    pub state_changed_at: u64,
}

impl Entry {
    /// Ordering of entries of one member: later incarnation first, then a removal
    /// (which must win over the removed process's own heartbeats), then the
    /// higher heartbeat.
    fn version(&self) -> (u64, bool, u64) {
        (
            self.generation,
            self.state == MemberState::Removed,
            self.heartbeat,
        )
    }

    fn is_gone(&self) -> bool {
        matches!(self.state, MemberState::Left | MemberState::Removed)
    }
}

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
    /// Decommissioning.
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
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            fanout: 2,
            failure_timeout_ms: 5000,
        }
    }
}

/// A gossip message: the sender's whole table (small: one row per member).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GossipMessage {
    /// Sender's name.
    pub from: String,
    /// Its table.
    pub entries: Vec<Entry>,
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
}

impl Membership {
    /// A node starting with `me`, a fresh `generation` (its start time, larger
    /// than any earlier incarnation's), the table it persisted last time (empty
    /// for a new node), and seed addresses to contact.
    pub fn new(
        me: MemberInfo,
        generation: u64,
        persisted: Vec<Entry>,
        seeds: Vec<SocketAddr>,
        config: GossipConfig,
        now_ms: u64,
    ) -> Membership {
        let mut m = Membership {
            me: me.name.clone(),
            config,
            seeds: seeds.into_iter().filter(|s| *s != me.rpc_addr).collect(),
            entries: BTreeMap::new(),
            last_rise: BTreeMap::new(),
            last_status: BTreeMap::new(),
        };
        let mut me = me;
        let mut generation = generation;
        for e in persisted {
            if e.info.name == me.name {
                // Keep our place in the ring history, and never go back in time.
                me.joined_at = me.joined_at.min(e.info.joined_at);
                generation = generation.max(e.generation + 1);
            } else {
                m.last_rise.insert(e.info.name.clone(), now_ms);
                m.entries.insert(e.info.name.clone(), e);
            }
        }
        m.entries.insert(
            me.name.clone(),
            Entry {
                info: me,
                generation,
                heartbeat: 0,
                state: MemberState::Active,
                state_changed_at: now_ms,
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

    /// The whole table (to persist, or to answer a gossip message).
    pub fn message(&self) -> GossipMessage {
        GossipMessage {
            from: self.me.clone(),
            entries: self.entries.values().cloned().collect(),
        }
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
        let message = self.message();
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
        let mut out: Vec<Outgoing> = live
            .choose_multiple(rng, self.config.fanout)
            .map(|e| Outgoing {
                to: e.info.rpc_addr,
                name: Some(e.info.name.clone()),
                message: message.clone(),
            })
            .collect();
        if !down.is_empty() && rng.random_ratio(1, 2) {
            let e = down.choose(rng).expect("non-empty");
            out.push(Outgoing {
                to: e.info.rpc_addr,
                name: Some(e.info.name.clone()),
                message: message.clone(),
            });
        }
        let lonely = live.is_empty();
        if !self.seeds.is_empty() && (lonely || rng.random_ratio(1, 10)) {
            let seed = *self.seeds.choose(rng).expect("non-empty");
            if !out.iter().any(|o| o.to == seed) {
                out.push(Outgoing {
                    to: seed,
                    name: None,
                    message,
                });
            }
        }
        (out, transitions)
    }

    /// Merges a received table, keeping the newer entry of every member. Returns
    /// true if the table changed structurally (a member, address, weight or state
    /// changed: worth persisting and recomputing the ring), not just heartbeats.
    pub fn receive(&mut self, message: &GossipMessage, now_ms: u64) -> bool {
        let mut structural = false;
        for theirs in &message.entries {
            let name = &theirs.info.name;
            if *name == self.me {
                self.absorb_own(theirs);
                continue;
            }
            match self.entries.get(name) {
                Some(ours) if ours.version() >= theirs.version() => {}
                ours => {
                    structural |=
                        ours.is_none_or(|o| o.info != theirs.info || o.state != theirs.state);
                    self.last_rise.insert(name.clone(), now_ms);
                    self.entries.insert(name.clone(), theirs.clone());
                }
            }
        }
        structural
    }

    /// Another node's view of this node. A node whose data was wiped adopts its
    /// older join time, so it takes back its own place in the ring. If the other
    /// view is newer than ours (our clock went back), we outrank it with a new
    /// incarnation; a removal by an operator is accepted.
    fn absorb_own(&mut self, theirs: &Entry) {
        let me = self.my_entry();
        me.info.joined_at = me.info.joined_at.min(theirs.info.joined_at);
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
        match e.state {
            MemberState::Left | MemberState::Removed => return Status::Left,
            MemberState::Leaving => return Status::Leaving,
            MemberState::Active => {}
        }
        if name == self.me {
            return Status::Up;
        }
        let silent = now_ms.saturating_sub(self.last_rise.get(name).copied().unwrap_or(0));
        if silent >= self.config.failure_timeout_ms {
            Status::Down
        } else if silent >= self.config.failure_timeout_ms / 2 {
            Status::Suspect
        } else {
            Status::Up
        }
    }

    /// Recomputes every member's status, returning the changes since last time.
    pub fn refresh(&mut self, now_ms: u64) -> Vec<Transition> {
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

    /// The membership history the ring is computed from (members that left keep
    /// their leave time, so the ring replays their departure).
    pub fn ring_history(&self) -> Vec<NodeSpec> {
        self.entries
            .values()
            .map(|e| NodeSpec {
                name: e.info.name.clone(),
                weight: e.info.weight,
                zone: e.info.zone.clone(),
                joined_at: e.info.joined_at,
                left_at: e.is_gone().then_some(e.state_changed_at),
            })
            .collect()
    }

    /// The address of a member.
    pub fn rpc_addr(&self, name: &str) -> Option<SocketAddr> {
        self.entries.get(name).map(|e| e.info.rpc_addr)
    }
}
