//! The ring the cluster agrees on, and the claimant that advances it.
//!
//! # Why a log, not clocks
//!
//! The ring is a replay of membership changes ([`dynakv_ring::Ring::replay`]).
//! If the order of that replay came from wall clocks (each node's join time), a
//! joiner whose clock is behind would be replayed *before* older members and
//! reshuffle hundreds of partitions. Instead the order is a **change log** kept
//! in a versioned [`ClusterRing`] that is gossiped like the member table.
//!
//! # The claimant (Riak's `riak_core_claimant`)
//!
//! Members only *ask* for changes by gossiping their own state: a node started
//! with seeds is `Active` but not yet in the log (joining); `dynakv leave` sets
//! `Leaving`; `dynakv remove` sets another member `Removed`. One member, the
//! **claimant** — the live ring member with the smallest name — turns those
//! wishes into log entries ([`claim`]), bumps the version, and gossips the new
//! ring. Every node adopts the highest `(version, digest)` it hears of, so all
//! converge on one ring; two nodes joining through different seeds at once are
//! simply appended by the one claimant. If a partition of the network ever makes
//! two claimants, their rings are ordered by digest, the loser's wishes are still
//! in the member table, and the next claim re-applies them.
//!
//! # Partitions in transit
//!
//! A change moves some partitions to new replicas. The claimant records, for
//! each such partition, the replicas that served it before ([`ClusterRing::moving`]);
//! they keep serving until every new (pending) replica reports, in its gossiped
//! [`Entry::received`](crate::Entry::received), that it holds a full copy made
//! for that transit. A replica that only moves up the partition's list (its
//! set is unchanged, its place earlier) is in transit the same way: with
//! buckets of fewer replicas than N it lacks their keys for its new place.
//! Then
//! the claimant drops the partition from `moving`, and the new replicas take
//! over. The node binary does the copying; this module only decides.

use std::collections::{BTreeMap, BTreeSet};

use dynakv_ring::{Change, PARTITIONS, Ring, RingEvent};

use crate::member::{Entry, MemberState};
use crate::ring::{ClusterRing, Transit};

/// The ring that applying `wanted` to `ring` would give, before any transfer:
/// the log gains the changes, and every partition whose replica set changes is
/// recorded as moving from the replicas that serve it now.
pub fn apply(ring: &ClusterRing, wanted: &[RingEvent], n: usize) -> ClusterRing {
    let before = ring.ring(n);
    let mut next = ring.clone();
    next.log.extend(wanted.iter().cloned());
    let target = Ring::replay(&next.log, n);
    next.moving.clear();
    if !before.is_empty() {
        for p in 0..PARTITIONS {
            let from: Vec<String> = before.replicas(p).map(str::to_string).collect();
            // Compared in order: a replica moving up the list is in transit
            // too (see `Ring::promoted`).
            let placed: Vec<&str> = target.target_replicas(p).collect();
            if from.iter().map(String::as_str).eq(placed.iter().copied()) {
                continue;
            }
            // A transit whose source and destination did not change keeps its
            // version, so copies already complete for it stay valid.
            let unchanged = ring
                .moving
                .get(&(p as u16))
                .filter(|t| t.from == from && before.target_replicas(p).eq(placed.iter().copied()));
            let since = unchanged.map_or(ring.version + 1, |t| t.since);
            next.moving.insert(p as u16, Transit { from, since });
        }
    }
    next
}

/// The changes the member table asks of the ring: joins of `Active` members
/// not in it, weight or zone updates, and departures of members leaving or
/// gone. Sorted: departures, then updates, then joins, each by name.
pub fn wanted_changes(ring: &ClusterRing, entries: &BTreeMap<String, Entry>) -> Vec<RingEvent> {
    wanted(ring, entries, None)
}

/// [`wanted_changes`], joining only members in `live` when given (a joiner
/// that gossiped once and died must not leave partitions in transit forever).
fn wanted(
    ring: &ClusterRing,
    entries: &BTreeMap<String, Entry>,
    live: Option<&BTreeSet<String>>,
) -> Vec<RingEvent> {
    let members = ring.members();
    let mut leaves = Vec::new();
    let mut updates = Vec::new();
    let mut joins = Vec::new();
    for (name, e) in entries {
        let wants_in = e.state == MemberState::Active;
        match (members.get(name), wants_in) {
            (None, true) if live.is_none_or(|l| l.contains(name)) => joins.push(RingEvent {
                name: name.clone(),
                change: Change::Join {
                    weight: e.info.weight,
                    zone: e.info.zone.clone(),
                },
            }),
            (Some((w, z)), true) if *w != e.info.weight || *z != e.info.zone => {
                updates.push(RingEvent {
                    name: name.clone(),
                    change: Change::Update {
                        weight: e.info.weight,
                        zone: e.info.zone.clone(),
                    },
                })
            }
            (Some(_), false) => leaves.push(RingEvent {
                name: name.clone(),
                change: Change::Leave,
            }),
            _ => {}
        }
    }
    leaves.into_iter().chain(updates).chain(joins).collect()
}

/// One step of the claimant, named `me`, given the members it believes alive:
/// applies the changes the member table asks for (joining only live members),
/// and switches every partition in transit whose pending replicas all hold a
/// full copy, once every live member serves a ring that knows of the transit
/// (so every coordinator sends the partition's writes to the new replicas too).
/// A partition no live member can send any more is switched as it is. Returns
/// the next version, or `None` if nothing changed.
pub fn claim(
    ring: &ClusterRing,
    entries: &BTreeMap<String, Entry>,
    live: &BTreeSet<String>,
    me: &str,
    n: usize,
) -> Option<ClusterRing> {
    let wanted = wanted(ring, entries, Some(live));
    let mut next = if wanted.is_empty() {
        ring.clone()
    } else {
        apply(ring, &wanted, n)
    };
    let view = next.ring(n);
    let holds_copy = |name: &str, p: usize, since: u64| {
        entries
            .get(name)
            .is_some_and(|e| e.received.get(&(p as u16)) == Some(&since))
    };
    let can_send = |name: &str| {
        entries
            .get(name)
            .is_some_and(|e| matches!(e.state, MemberState::Active | MemberState::Leaving))
    };
    let everyone_knows = |since: u64| {
        entries
            .iter()
            .filter(|(name, e)| {
                live.contains(*name)
                    && matches!(e.state, MemberState::Active | MemberState::Leaving)
            })
            .all(|(_, e)| e.ring.version >= since)
    };
    let settled: Vec<u16> = next
        .moving
        .iter()
        .filter(|&(&p, t)| {
            let p = usize::from(p);
            (view
                .pending(p)
                .chain(view.promoted(p))
                .all(|g| holds_copy(g, p, t.since))
                && everyone_knows(t.since))
                || !view.replicas(p).any(can_send)
        })
        .map(|(&p, _)| p)
        .collect();
    for p in settled {
        next.moving.remove(&p);
    }
    if wanted.is_empty() && next.moving == ring.moving {
        return None;
    }
    next.version = ring.version + 1;
    next.claimant = me.to_string();
    Some(next)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::member::MemberInfo;
    use crate::ring::RingStamp;

    fn entry(name: &str, state: MemberState, ring: RingStamp) -> Entry {
        Entry {
            info: MemberInfo {
                name: name.into(),
                rpc_addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
                http_addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
                zone: None,
                weight: 1.0,
            },
            generation: 1,
            heartbeat: 1,
            state,
            state_changed_at: 0,
            ring,
            received: BTreeMap::new(),
        }
    }

    fn table(names: &[&str], ring: RingStamp) -> BTreeMap<String, Entry> {
        names
            .iter()
            .map(|n| (n.to_string(), entry(n, MemberState::Active, ring)))
            .collect()
    }

    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// A settled ring of a, b, c.
    fn settled() -> ClusterRing {
        let mut ring = ClusterRing::bootstrap("a", 1.0, None);
        let entries = table(&["a", "b", "c"], ring.stamp());
        ring = claim(&ring, &entries, &live(&["a", "b", "c"]), "a", 3).expect("joins");
        ring.moving.clear();
        ring
    }

    #[test]
    fn a_dead_joiner_is_not_taken_into_the_ring() {
        let ring = settled();
        let entries = table(&["a", "b", "c", "d"], ring.stamp());
        assert!(claim(&ring, &entries, &live(&["a", "b", "c"]), "a", 3).is_none());
        let next = claim(&ring, &entries, &live(&["a", "b", "c", "d"]), "a", 3).expect("join");
        assert!(next.members().contains_key("d"));
        assert!(!next.moving.is_empty());
    }

    #[test]
    fn a_transit_switches_only_with_every_copy_and_once_every_live_member_knows_it() {
        let ring = settled();
        let all = live(&["a", "b", "c", "d"]);
        let next = claim(
            &ring,
            &table(&["a", "b", "c", "d"], ring.stamp()),
            &all,
            "a",
            3,
        )
        .expect("join");
        let view = next.ring(3);
        let mut entries = table(&["a", "b", "c", "d"], next.stamp());
        // Every node reports a copy of every partition it is pending for or
        // moves up in.
        for (name, e) in entries.iter_mut() {
            e.received = next
                .moving
                .iter()
                .filter(|(p, _)| {
                    let p = usize::from(**p);
                    view.pending(p).chain(view.promoted(p)).any(|g| g == name)
                })
                .map(|(&p, t)| (p, t.since))
                .collect();
        }
        // b still serves the older ring: it may route writes without d.
        entries.get_mut("b").expect("b").ring = ring.stamp();
        assert!(claim(&next, &entries, &all, "a", 3).is_none());
        // Once b knows (or is down), the transit settles.
        let without_b = live(&["a", "c", "d"]);
        let settled = claim(&next, &entries, &without_b, "a", 3).expect("switch");
        assert!(settled.moving.is_empty());
        entries.get_mut("b").expect("b").ring = next.stamp();
        assert!(claim(&next, &entries, &all, "a", 3).is_some_and(|r| r.moving.is_empty()));
        // A copy made for another transit of the partition does not count.
        for since in entries.values_mut().flat_map(|e| e.received.values_mut()) {
            *since += 1;
        }
        assert!(claim(&next, &entries, &all, "a", 3).is_none());
    }

    #[test]
    fn the_stamp_changes_with_any_content() {
        let ring = settled();
        let mut other = ring.clone();
        other.claimant = "b".into();
        assert_ne!(ring.stamp(), other.stamp());
        assert_eq!(ring.stamp().version, other.stamp().version);
        assert_eq!(ring.stamp(), ring.clone().stamp());
    }
}
