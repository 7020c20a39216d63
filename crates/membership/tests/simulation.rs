//! A simulated cluster of ten membership state machines: virtual time, a seeded
//! RNG, and a network that can drop messages between chosen nodes. Each test runs
//! in milliseconds and is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use dynakv_membership::claim::wanted_changes;
use dynakv_membership::{ClusterRing, GossipConfig, MemberInfo, MemberState, Membership, Status};
use dynakv_ring::PARTITIONS;
use rand::SeedableRng;
use rand::rngs::StdRng;

const INTERVAL: u64 = 1000;
const TIMEOUT: u64 = 5000;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

fn info(i: usize) -> MemberInfo {
    MemberInfo {
        name: format!("n{i}"),
        rpc_addr: addr(i),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 8000 + i as u16)),
        zone: None,
        weight: 1.0,
    }
}

fn config() -> GossipConfig {
    GossipConfig {
        fanout: 2,
        failure_timeout_ms: TIMEOUT,
        n: 3,
    }
}

struct Sim {
    nodes: Vec<Membership>,
    /// Nodes that neither tick nor answer (dead or paused).
    silent: BTreeSet<usize>,
    /// Pairs (a, b) whose messages are dropped both ways.
    cut: BTreeSet<(usize, usize)>,
    /// Per node, how far its clock is ahead (negative: behind) of true time.
    skew: BTreeMap<usize, i64>,
    now: u64,
    rng: StdRng,
}

impl Sim {
    /// `k` nodes, each started with node 0 as its only seed.
    fn new(k: usize, seed: u64) -> Sim {
        let nodes = (0..k)
            .map(|i| {
                Membership::new(
                    info(i),
                    1,
                    Vec::new(),
                    ClusterRing::default(),
                    vec![addr(0)],
                    config(),
                    0,
                )
            })
            .collect();
        Sim {
            nodes,
            silent: BTreeSet::new(),
            cut: BTreeSet::new(),
            skew: BTreeMap::new(),
            now: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        !self.silent.contains(&b) && !self.cut.contains(&(a, b)) && !self.cut.contains(&(b, a))
    }

    /// Node `i`'s clock.
    fn clock(&self, i: usize) -> u64 {
        self.now
            .saturating_add_signed(self.skew.get(&i).copied().unwrap_or(0))
    }

    /// One gossip interval: every live node ticks; each message is delivered and
    /// answered (push-pull) unless the network drops it.
    fn round(&mut self) {
        self.now += INTERVAL;
        for i in 0..self.nodes.len() {
            if self.silent.contains(&i) {
                continue;
            }
            let t = self.clock(i);
            let (out, _) = self.nodes[i].tick(t, &mut self.rng);
            for msg in out {
                let j = (msg.to.port() - 7000) as usize;
                if !self.connected(i, j) {
                    continue;
                }
                let (ti, tj) = (self.clock(i), self.clock(j));
                self.nodes[j].receive(&msg.message, tj);
                let reply = self.nodes[j].message_for(Some(&format!("n{i}")));
                self.nodes[i].receive(&reply, ti);
            }
        }
    }

    /// Every live node reports a full copy of each partition it is pending for
    /// or moves up in (what the node binary's transfer worker does once a copy is complete).
    fn copy_pending(&mut self) {
        for i in 0..self.nodes.len() {
            if self.silent.contains(&i) {
                continue;
            }
            let me = format!("n{i}");
            let node = &self.nodes[i];
            let ring = node.placement();
            let received: BTreeMap<u16, u64> = node
                .ring()
                .moving
                .iter()
                .filter(|&(&p, _)| {
                    let p = usize::from(p);
                    ring.pending(p).chain(ring.promoted(p)).any(|g| g == me)
                })
                .map(|(&p, t)| (p, t.since))
                .collect();
            self.nodes[i].set_received(received);
        }
    }

    /// Rounds (copying pending partitions after each) until every live node
    /// serves the same ring with nothing in transit.
    fn settle(&mut self, max: usize) -> Option<usize> {
        for r in 0..=max {
            if self.settled() {
                return Some(r);
            }
            self.round();
            self.copy_pending();
        }
        None
    }

    fn settled(&self) -> bool {
        let live: Vec<&Membership> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.silent.contains(i))
            .map(|(_, n)| n)
            .collect();
        let stamp = live[0].ring().stamp();
        // Nothing the member table asks for is missing from the ring.
        let table: BTreeMap<String, _> = live[0]
            .entries()
            .map(|e| (e.info.name.clone(), e.clone()))
            .collect();
        wanted_changes(live[0].ring(), &table).is_empty()
            && live.iter().all(|n| {
                n.own().state != MemberState::Active || live[0].placement().is_member(n.me())
            })
            && live
                .iter()
                .all(|n| n.ring().stamp() == stamp && n.ring().moving.is_empty())
    }

    fn status(&self, observer: usize, member: usize) -> Status {
        self.nodes[observer].status(&format!("n{member}"), self.now)
    }

    /// Runs rounds until `done` holds, at most `max` rounds; returns rounds used.
    fn until(&mut self, max: usize, done: impl Fn(&Sim) -> bool) -> Option<usize> {
        for r in 0..=max {
            if done(self) {
                return Some(r);
            }
            self.round();
        }
        None
    }

    fn all_see(
        &self,
        observers: impl Iterator<Item = usize> + Clone,
        members: &[usize],
        want: Status,
    ) -> bool {
        observers
            .clone()
            .all(|o| members.iter().all(|&m| self.status(o, m) == want))
    }
}

impl Sim {
    /// `k` nodes, each started with every other as a seed (nodes started
    /// together, as `dynakv dev` and most deployments start them).
    fn seeded_with_each_other(k: usize, seed: u64) -> Sim {
        let mut sim = Sim::new(k, seed);
        sim.nodes = (0..k)
            .map(|i| {
                Membership::new(
                    info(i),
                    1,
                    Vec::new(),
                    ClusterRing::default(),
                    (0..k).filter(|&j| j != i).map(addr).collect(),
                    config(),
                    0,
                )
            })
            .collect();
        sim
    }
}

/// Nodes started together, each seeded with the others, found one first ring
/// that holds them all, with nothing in transit: no partition waits on a copy
/// from a lone founder, so no write waits on one either.
#[test]
fn nodes_started_together_found_one_ring_holding_them_all() {
    for seed in 0..100 {
        let mut sim = Sim::seeded_with_each_other(5, seed);
        let rounds = sim
            .until(10, |s| s.nodes.iter().all(|n| !n.ring().is_empty()))
            .unwrap_or_else(|| panic!("seed {seed}: no ring after 10 rounds"));
        // Every seed is asked each round until there is a ring: all heard of
        // each other well before the failure timeout that founds without them.
        assert!(
            (rounds as u64) * INTERVAL < TIMEOUT,
            "seed {seed}: {rounds} rounds"
        );
        for n in &sim.nodes {
            assert_eq!(
                n.ring().version,
                1,
                "seed {seed}: {} serves a later ring",
                n.me()
            );
            assert!(
                n.ring().moving.is_empty(),
                "seed {seed}: partitions in transit"
            );
            assert_eq!(n.placement().nodes().len(), 5, "seed {seed}: {}", n.me());
            assert_eq!(n.ring().stamp(), sim.nodes[0].ring().stamp());
        }
    }
}

/// A node that never comes up does not hold the others back for ever: they
/// found the ring without it after a failure timeout, and it joins as any
/// joiner once it starts.
#[test]
fn a_silent_seed_delays_the_founding_by_a_failure_timeout_at_most() {
    let mut sim = Sim::seeded_with_each_other(3, 3);
    sim.silent.insert(2);
    let rounds = sim
        .until(20, |s| {
            s.nodes[..2]
                .iter()
                .all(|n| n.placement().nodes().len() == 2)
        })
        .expect("the two live nodes found a ring");
    assert!(
        rounds as u64 * INTERVAL <= TIMEOUT + 2 * INTERVAL,
        "{rounds} rounds"
    );
    assert!(sim.nodes[0].ring().moving.is_empty());
    sim.silent.clear();
    sim.settle(40)
        .expect("the late node joins and the ring settles");
    assert_eq!(sim.nodes[2].placement().nodes().len(), 3);
}

#[test]
fn ten_nodes_converge_from_one_seed_within_a_bounded_number_of_rounds() {
    for seed in 0..20 {
        let mut sim = Sim::new(10, seed);
        let all: Vec<usize> = (0..10).collect();
        let rounds = sim
            .until(15, |s| {
                s.nodes.iter().all(|n| n.view(s.now).len() == 10)
                    && s.all_see(0..10, &all, Status::Up)
            })
            .unwrap_or_else(|| panic!("seed {seed}: no convergence in 15 rounds"));
        assert!(rounds <= 15);
        // Every node converges on the same ring, every member in it.
        sim.settle(30)
            .unwrap_or_else(|| panic!("seed {seed}: ring did not settle"));
        assert_eq!(sim.nodes[0].placement().nodes().len(), 10);
    }
}

#[test]
fn a_silent_member_is_declared_down_by_all_and_up_again_when_it_returns() {
    let mut sim = Sim::new(10, 7);
    sim.until(15, |s| s.nodes.iter().all(|n| n.view(s.now).len() == 10))
        .expect("converged");
    sim.until(3, |_| false);
    sim.silent.insert(3);
    let others: Vec<usize> = (0..10).filter(|&i| i != 3).collect();
    // Suspect from half the timeout, down from the timeout, within two intervals.
    let rounds = sim
        .until(10, |s| {
            s.all_see(others.iter().copied(), &[3], Status::Down)
        })
        .expect("declared down");
    assert!(
        rounds as u64 * INTERVAL <= TIMEOUT + 2 * INTERVAL,
        "took {rounds} rounds"
    );
    for &o in &others {
        assert!(others.iter().all(|&m| sim.status(o, m) == Status::Up));
    }
    sim.silent.remove(&3);
    let rounds = sim
        .until(10, |s| s.all_see(0..10, &[3], Status::Up))
        .expect("up again");
    assert!(rounds <= 6, "returning member took {rounds} rounds");
}

#[test]
fn a_restarted_member_with_a_reset_heartbeat_is_not_mistaken_for_an_old_one() {
    let mut sim = Sim::new(4, 3);
    sim.until(15, |s| s.nodes.iter().all(|n| n.view(s.now).len() == 4))
        .expect("converged");
    for _ in 0..20 {
        sim.round();
    }
    // Restart n2: new process, heartbeat from 0, later generation, no table.
    sim.nodes[2] = Membership::new(
        info(2),
        sim.now,
        Vec::new(),
        ClusterRing::default(),
        vec![addr(0)],
        config(),
        sim.now,
    );
    sim.until(10, |s| {
        s.all_see(0..4, &[2], Status::Up) && s.nodes.iter().all(|n| n.view(s.now).len() == 4)
    })
    .expect("restart recognised");
    let gen_seen = sim.nodes[0]
        .view(sim.now)
        .into_iter()
        .find(|v| v.name == "n2")
        .expect("n2")
        .generation;
    assert_eq!(gen_seen, sim.nodes[2].own().generation);
}

#[test]
fn a_split_is_seen_from_both_sides_and_heals() {
    let mut sim = Sim::new(10, 11);
    sim.until(15, |s| s.nodes.iter().all(|n| n.view(s.now).len() == 10))
        .expect("converged");
    let left: Vec<usize> = (0..5).collect();
    let right: Vec<usize> = (5..10).collect();
    for &a in &left {
        for &b in &right {
            sim.cut.insert((a, b));
        }
    }
    sim.until(10, |s| {
        s.all_see(left.iter().copied(), &right, Status::Down)
            && s.all_see(right.iter().copied(), &left, Status::Down)
    })
    .expect("both halves see the other down");
    // Each half still sees its own side up.
    assert!(sim.all_see(left.iter().copied(), &left, Status::Up));
    assert!(sim.all_see(right.iter().copied(), &right, Status::Up));
    sim.cut.clear();
    let rounds = sim
        .until(15, |s| {
            s.all_see(0..10, &(0..10).collect::<Vec<_>>(), Status::Up)
        })
        .expect("healed");
    assert!(rounds <= 15);
}

#[test]
fn a_restarted_node_rejoins_from_its_persisted_table_without_seeds() {
    let mut sim = Sim::new(3, 5);
    sim.until(15, |s| s.nodes.iter().all(|n| n.view(s.now).len() == 3))
        .expect("converged");
    let saved: Vec<Vec<_>> = sim
        .nodes
        .iter()
        .map(|n| n.entries().cloned().collect())
        .collect();
    let rings: Vec<ClusterRing> = sim.nodes.iter().map(|n| n.ring().clone()).collect();
    let now = sim.now + 10_000;
    sim.now = now;
    sim.nodes = (0..3)
        .map(|i| {
            Membership::new(
                info(i),
                now,
                saved[i].clone(),
                rings[i].clone(),
                Vec::new(),
                config(),
                now,
            )
        })
        .collect();
    sim.until(10, |s| s.all_see(0..3, &[0, 1, 2], Status::Up))
        .expect("re-formed");
}

/// The partitions whose target replica set differs between two nodes' views.
fn moved(a: &Membership, b: &Membership) -> usize {
    let (a, b) = (a.placement(), b.placement());
    (0..PARTITIONS)
        .filter(|&p| {
            a.target_replicas(p).collect::<BTreeSet<_>>()
                != b.target_replicas(p).collect::<BTreeSet<_>>()
        })
        .count()
}

/// A simulation whose first `k` nodes formed a settled ring; the others are
/// silent (not started yet).
fn formed(k: usize, total: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(total, seed);
    sim.silent = (k..total).collect();
    sim.settle(40).expect("initial ring settles");
    sim
}

#[test]
fn two_nodes_joining_through_different_seeds_at_once_end_in_one_ring() {
    for seed in 0..10 {
        let mut sim = formed(3, 5, seed);
        // n3 knows only n1, n4 only n2.
        sim.nodes[3] = Membership::new(
            info(3),
            1,
            Vec::new(),
            ClusterRing::default(),
            vec![addr(1)],
            config(),
            sim.now,
        );
        sim.nodes[4] = Membership::new(
            info(4),
            1,
            Vec::new(),
            ClusterRing::default(),
            vec![addr(2)],
            config(),
            sim.now,
        );
        sim.silent.clear();
        sim.settle(40)
            .unwrap_or_else(|| panic!("seed {seed}: no single settled ring"));
        let ring = sim.nodes[0].placement();
        assert_eq!(ring.nodes().len(), 5, "seed {seed}");
        let fair = 1.0 / 5.0;
        for share in ring.ownership().values() {
            assert!((share / fair - 1.0).abs() <= 0.1, "seed {seed}: {share}");
        }
    }
}

#[test]
fn a_joiner_whose_clock_is_hours_off_moves_what_any_joiner_moves() {
    let before = formed(3, 4, 1);
    let mut normal = formed(3, 4, 1);
    normal.silent.clear();
    normal.settle(40).expect("normal join settles");
    let mut skewed = formed(3, 4, 1);
    skewed.skew.insert(3, -6 * 3_600_000);
    skewed.nodes[3] = Membership::new(
        info(3),
        1,
        Vec::new(),
        ClusterRing::default(),
        vec![addr(0)],
        config(),
        0,
    );
    skewed.silent.clear();
    skewed.settle(40).expect("skewed join settles");
    assert_eq!(
        moved(&normal.nodes[0], &skewed.nodes[0]),
        0,
        "same ring whatever the clock"
    );
    // Replica slots gained by the joiner: at most 1.2 x 1/(S+1) of all slots.
    let (old, new) = (before.nodes[0].placement(), skewed.nodes[0].placement());
    let gained: usize = dynakv_ring::diff(old, new)
        .iter()
        .map(|m| m.gained.len())
        .sum();
    let slots = PARTITIONS * 3;
    assert!(
        gained as f64 <= 1.2 * slots as f64 / 4.0,
        "{gained} of {slots} slots moved"
    );
}

#[test]
fn partitions_switch_only_once_every_new_replica_has_a_copy() {
    let mut sim = formed(3, 4, 2);
    sim.silent.clear();
    // Without copies, the new member joins the ring but serves nothing.
    sim.until(20, |s| {
        s.nodes.iter().all(|n| n.placement().nodes().len() == 4)
    })
    .expect("n3 joins the ring");
    for _ in 0..5 {
        sim.round();
    }
    let ring = sim.nodes[0].placement().clone();
    let moving: Vec<usize> = ring.moving().collect();
    assert!(!moving.is_empty());
    assert!(moving.iter().all(|&p| ring.pending(p).any(|g| g == "n3")));
    assert!(
        ring.partitions_of("n3").is_empty(),
        "serves nothing before a copy"
    );
    // A report for another transit of the partitions does not count.
    let stale: BTreeMap<u16, u64> = moving.iter().map(|&p| (p as u16, 999)).collect();
    sim.nodes[3].set_received(stale);
    for _ in 0..5 {
        sim.round();
    }
    assert_eq!(sim.nodes[0].placement().moving().count(), moving.len());
    sim.settle(20).expect("copies reported, the ring settles");
    assert!(!sim.nodes[0].placement().partitions_of("n3").is_empty());
}

#[test]
fn a_leaving_member_hands_off_then_holds_nothing() {
    let mut sim = formed(4, 4, 3);
    sim.nodes[3].leave(sim.now);
    sim.until(20, |s| {
        s.nodes.iter().all(|n| !n.placement().is_member("n3"))
    })
    .expect("n3 taken out of the ring");
    // Until the copies are made, n3 still serves its partitions.
    assert!(!sim.nodes[0].placement().partitions_of("n3").is_empty());
    assert_eq!(sim.status(0, 3), Status::Leaving);
    sim.settle(20).expect("handoff completes");
    assert!(sim.nodes[0].placement().partitions_of("n3").is_empty());
    assert_eq!(sim.nodes[0].placement().nodes().len(), 3);
}

#[test]
fn a_removed_member_is_replaced_from_the_survivors() {
    let mut sim = formed(4, 4, 4);
    sim.silent.insert(2);
    sim.until(10, |s| s.all_see([0, 1, 3].into_iter(), &[2], Status::Down))
        .expect("n2 seen down");
    assert!(sim.nodes[0].remove("n2", sim.now));
    assert!(
        !sim.nodes[0].remove("n0", sim.now),
        "a node cannot remove itself"
    );
    assert!(!sim.nodes[0].remove("n9", sim.now), "unknown member");
    sim.settle(30).expect("survivors settle");
    let ring = sim.nodes[1].placement();
    assert!(!ring.is_member("n2"));
    for p in 0..PARTITIONS {
        assert_eq!(
            ring.replicas(p).count(),
            3,
            "partition {p} back to N replicas"
        );
        assert!(ring.replicas(p).all(|r| r != "n2"));
    }
    assert_eq!(sim.status(1, 2), Status::Left);
}
