//! A simulated cluster of ten membership state machines: virtual time, a seeded
//! RNG, and a network that can drop messages between chosen nodes. Each test runs
//! in milliseconds and is deterministic.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use dynakv_membership::{GossipConfig, MemberInfo, Membership, Status};
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
        joined_at: i as u64,
    }
}

struct Sim {
    nodes: Vec<Membership>,
    /// Nodes that neither tick nor answer (dead or paused).
    silent: BTreeSet<usize>,
    /// Pairs (a, b) whose messages are dropped both ways.
    cut: BTreeSet<(usize, usize)>,
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
                    vec![addr(0)],
                    GossipConfig {
                        fanout: 2,
                        failure_timeout_ms: TIMEOUT,
                    },
                    0,
                )
            })
            .collect();
        Sim {
            nodes,
            silent: BTreeSet::new(),
            cut: BTreeSet::new(),
            now: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        !self.silent.contains(&b) && !self.cut.contains(&(a, b)) && !self.cut.contains(&(b, a))
    }

    /// One gossip interval: every live node ticks; each message is delivered and
    /// answered (push-pull) unless the network drops it.
    fn round(&mut self) {
        self.now += INTERVAL;
        for i in 0..self.nodes.len() {
            if self.silent.contains(&i) {
                continue;
            }
            let (out, _) = self.nodes[i].tick(self.now, &mut self.rng);
            for msg in out {
                let j = (msg.to.port() - 7000) as usize;
                if !self.connected(i, j) {
                    continue;
                }
                self.nodes[j].receive(&msg.message, self.now);
                let reply = self.nodes[j].message();
                self.nodes[i].receive(&reply, self.now);
            }
        }
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
        // Every node computes the same ring history.
        let h0 = sim.nodes[0].ring_history();
        assert!(sim.nodes.iter().all(|n| n.ring_history() == h0));
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
        vec![addr(0)],
        GossipConfig::default(),
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
    let now = sim.now + 10_000;
    sim.now = now;
    sim.nodes = (0..3)
        .map(|i| {
            Membership::new(
                info(i),
                now,
                saved[i].clone(),
                Vec::new(),
                GossipConfig::default(),
                now,
            )
        })
        .collect();
    sim.until(10, |s| s.all_see(0..3, &[0, 1, 2], Status::Up))
        .expect("re-formed");
}
