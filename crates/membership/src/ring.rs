//! The ring state the cluster agrees on: the change log the ring is
//! replayed from, the partitions in transit, and the stamp that orders two
//! versions. Gossiped like the member table; advanced only by the claimant
//! ([`crate::claim`]).

use std::collections::BTreeMap;

use dynakv_ring::{Change, Ring, RingEvent};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

/// Most changes a ring's log may hold (each join, update and leave is one).
pub const MAX_LOG: usize = 65_536;

/// Identifies one version of the cluster ring: higher versions win, and two
/// different rings of one version (two claimants at once) are ordered by digest.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RingStamp {
    /// Bumped by every change the claimant makes.
    pub version: u64,
    /// Hash of the ring's contents.
    pub digest: u64,
}

/// The ring state every node converges on: the membership change log the ring
/// is replayed from, and the partitions still being handed off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterRing {
    /// Bumped by every change.
    pub version: u64,
    /// The member that made this version.
    pub claimant: String,
    /// Joins, weight changes and departures in the order the claimant applied them.
    pub log: Vec<RingEvent>,
    /// Partitions in transit: the replicas that serve them until every new
    /// replica holds a full copy.
    pub moving: BTreeMap<u16, Transit>,
}

/// A partition in transit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transit {
    /// The replicas serving the partition until the handoff completes.
    pub from: Vec<String>,
    /// The ring version that started this transit. A new replica reports a copy
    /// complete *for this version*, so a report about an earlier transit of the
    /// same partition (a copy that has since gone stale) never switches it.
    pub since: u64,
}

impl ClusterRing {
    /// The first ring of a cluster: `name` alone.
    pub fn bootstrap(name: &str, weight: f64, zone: Option<String>) -> ClusterRing {
        ClusterRing {
            version: 1,
            claimant: name.to_string(),
            log: vec![RingEvent {
                name: name.to_string(),
                change: Change::Join { weight, zone },
            }],
            moving: BTreeMap::new(),
        }
    }

    /// The first ring of a cluster whose members started together, each
    /// with the others as seeds: every one of `members` (name, weight, zone)
    /// joins in the first version, so no partition starts in transit from a
    /// lone founder to the others. `founder` is the member that made it.
    pub fn found(founder: &str, members: &[(String, f64, Option<String>)]) -> ClusterRing {
        let mut members = members.to_vec();
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members.dedup_by(|a, b| a.0 == b.0);
        ClusterRing {
            version: 1,
            claimant: founder.to_string(),
            log: members
                .into_iter()
                .map(|(name, weight, zone)| RingEvent {
                    name,
                    change: Change::Join { weight, zone },
                })
                .collect(),
            moving: BTreeMap::new(),
        }
    }

    /// This version's stamp.
    pub fn stamp(&self) -> RingStamp {
        let mut h = Xxh3::new();
        h.update(self.claimant.as_bytes());
        h.update(&[0]);
        for e in &self.log {
            h.update(e.name.as_bytes());
            h.update(&[0]);
            match &e.change {
                Change::Join { weight, zone } | Change::Update { weight, zone } => {
                    h.update(if matches!(e.change, Change::Join { .. }) {
                        b"j"
                    } else {
                        b"u"
                    });
                    h.update(&weight.to_le_bytes());
                    h.update(zone.as_deref().unwrap_or("").as_bytes());
                    h.update(&[0]);
                }
                Change::Leave => h.update(b"l"),
            }
        }
        for (p, transit) in &self.moving {
            h.update(&p.to_le_bytes());
            h.update(&transit.since.to_le_bytes());
            for name in &transit.from {
                h.update(name.as_bytes());
                h.update(&[0]);
            }
        }
        RingStamp {
            version: self.version,
            digest: h.digest(),
        }
    }

    /// Why this ring cannot be adopted, if it cannot: a member name, weight
    /// or zone no member could have, or a transit of a partition that does
    /// not exist.
    pub fn invalid(&self) -> Option<String> {
        use crate::member::{valid_name, valid_weight, valid_zone};
        if self.log.len() > MAX_LOG {
            return Some(format!("a ring log of {} changes", self.log.len()));
        }
        for e in &self.log {
            if !valid_name(&e.name) {
                return Some("a ring change names an invalid member".into());
            }
            if let Change::Join { weight, zone } | Change::Update { weight, zone } = &e.change
                && (!valid_weight(*weight) || !valid_zone(zone.as_deref()))
            {
                return Some(format!("{}: weight {weight} or zone is invalid", e.name));
            }
        }
        if self
            .moving
            .keys()
            .any(|&p| usize::from(p) >= dynakv_ring::PARTITIONS)
        {
            return Some("a transit of a partition that does not exist".into());
        }
        None
    }

    /// True if no member ever joined.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// The ring with `n` replicas per key, partitions in transit included.
    pub fn ring(&self, n: usize) -> Ring {
        let serving: BTreeMap<u16, Vec<String>> = self
            .moving
            .iter()
            .map(|(&p, t)| (p, t.from.clone()))
            .collect();
        Ring::replay(&self.log, n).with_serving(&serving)
    }

    /// The members the log leaves in the ring, with their weight and zone.
    pub fn members(&self) -> BTreeMap<String, (f64, Option<String>)> {
        let mut members = BTreeMap::new();
        for e in &self.log {
            match &e.change {
                Change::Join { weight, zone } | Change::Update { weight, zone } => {
                    if matches!(e.change, Change::Join { .. }) || members.contains_key(&e.name) {
                        members.insert(e.name.clone(), (*weight, zone.clone()));
                    }
                }
                Change::Leave => {
                    members.remove(&e.name);
                }
            }
        }
        members
    }
}
