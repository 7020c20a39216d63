//! Fault injection for tests (`--fault-injection`, `POST /admin/faults`).

use std::collections::BTreeSet;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// The faults in force: node-to-node traffic to and from the named members is
/// dropped, and every outgoing request is delayed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    /// Drop requests this node sends to these members.
    pub drop_to: BTreeSet<String>,
    /// Ignore requests (and responses) from these members.
    pub drop_from: BTreeSet<String>,
    /// Delay every outgoing request by this much.
    pub delay_ms: u64,
}

/// The live fault settings of a node.
#[derive(Debug, Default)]
pub struct Faults(RwLock<FaultSpec>);

impl Faults {
    /// Replaces the faults in force (`{}` heals).
    pub fn set(&self, spec: FaultSpec) {
        *self.0.write() = spec;
    }

    /// The faults in force.
    pub fn get(&self) -> FaultSpec {
        self.0.read().clone()
    }

    /// True if traffic to `name` is dropped.
    pub fn drops_to(&self, name: &str) -> bool {
        self.0.read().drop_to.contains(name)
    }

    /// True if traffic from `name` is dropped.
    pub fn drops_from(&self, name: &str) -> bool {
        self.0.read().drop_from.contains(name)
    }

    /// The delay before each outgoing request.
    pub fn delay(&self) -> Option<Duration> {
        let ms = self.0.read().delay_ms;
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}
