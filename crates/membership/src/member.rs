//! A member as the cluster knows it: its self-description, its
//! administrative state and its row of the gossiped member table.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ring::RingStamp;

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
    /// When the state last changed (ms, the member's clock; informational).
    pub state_changed_at: u64,
    /// The cluster ring this member serves.
    pub ring: RingStamp,
    /// Partitions in transit this member holds a full copy of, each with the
    /// transit version it was copied for (see [`crate::Transit::since`]).
    pub received: BTreeMap<u16, u64>,
}

impl Entry {
    /// Ordering of entries of one member: later incarnation first, then a removal
    /// (which must win over the removed process's own heartbeats), then the
    /// higher heartbeat.
    pub(crate) fn version(&self) -> (u64, bool, u64) {
        (
            self.generation,
            self.state == MemberState::Removed,
            self.heartbeat,
        )
    }

    pub(crate) fn is_gone(&self) -> bool {
        matches!(self.state, MemberState::Left | MemberState::Removed)
    }

    /// Why this entry cannot be a member's, if it cannot: gossip is checked
    /// field by field before anything of it is merged (a weight of -1 would
    /// break the ring's arithmetic on every node).
    pub fn invalid(&self) -> Option<String> {
        self.info.invalid()
    }
}

/// Longest zone name.
pub const MAX_ZONE_LEN: usize = 64;

/// True if `name` is a valid member name: 1-64 characters of `A-Z a-z 0-9 -
/// _ .` (as a node's configuration requires).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// True if `weight` is a valid ring weight: finite, in (0, 100].
pub fn valid_weight(weight: f64) -> bool {
    weight.is_finite() && weight > 0.0 && weight <= 100.0
}

/// True if `zone` is a valid zone name.
pub fn valid_zone(zone: Option<&str>) -> bool {
    zone.is_none_or(|z| (1..=MAX_ZONE_LEN).contains(&z.len()))
}

impl MemberInfo {
    /// Why this description cannot be a member's, if it cannot.
    pub fn invalid(&self) -> Option<String> {
        if !valid_name(&self.name) {
            return Some("a member name is 1-64 characters of A-Z a-z 0-9 - _ .".into());
        }
        if !valid_weight(self.weight) {
            return Some(format!(
                "{}: weight {} is not in (0, 100]",
                self.name, self.weight
            ));
        }
        if !valid_zone(self.zone.as_deref()) {
            return Some(format!("{}: a zone is 1-{MAX_ZONE_LEN} bytes", self.name));
        }
        if self.rpc_addr.ip().is_unspecified() || self.rpc_addr.port() == 0 {
            return Some(format!(
                "{}: {} cannot be dialled",
                self.name, self.rpc_addr
            ));
        }
        None
    }
}
