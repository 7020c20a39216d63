//! What `dynakv bench` asks for: YCSB's core workloads and key choosers.
//!
//! A workload is a mix of operations ([`Op`]) over record numbers, each drawn
//! from a key distribution: uniform, zipfian (YCSB's constant 0.99,
//! scrambled so the popular records are spread over the key space) or latest
//! (the most recently inserted records are the most popular, workload D). A
//! [`Generator`] turns a seed into the same operations every time, so two
//! runs with one seed ask for the same keys in the same order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::BTreeSet;

use clap::ValueEnum;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The read/write mixes: YCSB's core workloads and the plain mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// YCSB A, update heavy: 50% reads, 50% updates, zipfian.
    A,
    /// YCSB B, read mostly: 95% reads, 5% updates, zipfian.
    B,
    /// YCSB C, read only: 100% reads, zipfian.
    C,
    /// YCSB D, read latest: 95% reads, 5% inserts, reads favour new records.
    D,
    /// YCSB F, read-modify-write: 50% reads, 50% read-modify-writes through
    /// the causal context, zipfian.
    F,
    /// 50% reads, 50% updates, uniform.
    Balanced,
    /// 95% reads, 5% updates, uniform.
    ReadMostly,
    /// Reads only, uniform.
    ReadOnly,
    /// Updates only, uniform.
    WriteOnly,
}

/// How record numbers are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    /// Every record equally likely.
    Uniform,
    /// A few records take most requests (YCSB's zipfian, constant 0.99,
    /// scrambled over the key space).
    Zipfian,
    /// The most recently inserted records take most requests.
    Latest,
}

/// The share of each operation in a workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    /// Reads.
    pub read: f64,
    /// Updates: a write carrying the last context the client saw for the key.
    pub update: f64,
    /// Inserts of new records.
    pub insert: f64,
    /// Read-modify-writes: a read, then a write with the context it returned.
    pub rmw: f64,
}

impl Workload {
    /// The workload's operation mix.
    pub fn mix(self) -> Mix {
        let mix = |read, update, insert, rmw| Mix {
            read,
            update,
            insert,
            rmw,
        };
        match self {
            Workload::A | Workload::Balanced => mix(0.5, 0.5, 0.0, 0.0),
            Workload::B | Workload::ReadMostly => mix(0.95, 0.05, 0.0, 0.0),
            Workload::C | Workload::ReadOnly => mix(1.0, 0.0, 0.0, 0.0),
            Workload::D => mix(0.95, 0.0, 0.05, 0.0),
            Workload::F => mix(0.5, 0.0, 0.0, 0.5),
            Workload::WriteOnly => mix(0.0, 1.0, 0.0, 0.0),
        }
    }

    /// The distribution YCSB gives the workload.
    pub fn distribution(self) -> Distribution {
        match self {
            Workload::A | Workload::B | Workload::C | Workload::F => Distribution::Zipfian,
            Workload::D => Distribution::Latest,
            _ => Distribution::Uniform,
        }
    }
}

/// One operation on a record number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read the record.
    Read(u64),
    /// Overwrite the record.
    Update(u64),
    /// Write a new record.
    Insert(u64),
    /// Read the record and write it back changed, with the read's context.
    ReadModifyWrite(u64),
}

impl Op {
    /// The operation's name in reports (YCSB's).
    pub fn name(self) -> &'static str {
        match self {
            Op::Read(_) => "read",
            Op::Update(_) => "update",
            Op::Insert(_) => "insert",
            Op::ReadModifyWrite(_) => "rmw",
        }
    }

    /// The record it touches.
    pub fn record(self) -> u64 {
        match self {
            Op::Read(r) | Op::Update(r) | Op::Insert(r) | Op::ReadModifyWrite(r) => r,
        }
    }
}

/// YCSB's zipfian constant.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

/// YCSB's scrambled zipfian draws ranks over this many items, whatever the
/// record count, then hashes each rank onto the records.
pub const SCRAMBLED_ITEMS: u64 = 10_000_000_000;

/// zeta(SCRAMBLED_ITEMS, 0.99), as YCSB precomputes it.
pub const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// Zipfian ranks over `0..n` (Gray et al., "Quickly generating
/// billion-record synthetic databases", as YCSB implements it): rank 0 is
/// the most popular. `n` may grow (workload D's inserts); the normalising
/// sum grows with it instead of being recomputed.
#[derive(Clone, Debug)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zeta2: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// Ranks over `0..n` (at least one item) with YCSB's constant.
    pub fn new(n: u64) -> Zipfian {
        let theta = ZIPFIAN_CONSTANT;
        let n = n.max(1);
        let zeta2 = zeta(0, 2, theta);
        let mut z = Zipfian {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2,
            zetan: zeta(0, n, theta),
            eta: 0.0,
        };
        z.eta = z.eta_for();
        z
    }

    fn eta_for(&self) -> f64 {
        (1.0 - (2.0 / self.n as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2 / self.zetan)
    }

    /// Ranks over `0..n` whose normalising sum `zetan` is already known
    /// (YCSB's scrambled zipfian: 10^10 items, too many to sum).
    pub fn with_zetan(n: u64, zetan: f64) -> Zipfian {
        let theta = ZIPFIAN_CONSTANT;
        let mut z = Zipfian {
            n: n.max(2),
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2: zeta(0, 2, theta),
            zetan,
            eta: 0.0,
        };
        z.eta = z.eta_for();
        z
    }

    /// Extends the ranks to `0..n` (never shrinks).
    pub fn grow_to(&mut self, n: u64) {
        if n > self.n {
            self.zetan += zeta(self.n, n, self.theta);
            self.n = n;
            self.eta = self.eta_for();
        }
    }

    /// The next rank.
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// `sum(1 / i^theta)` for `i` in `from+1 ..= to`.
fn zeta(from: u64, to: u64, theta: f64) -> f64 {
    (from + 1..=to).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// FNV-1a of a number's bytes: YCSB's scrambling hash.
pub fn fnv1a(x: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in x.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The records of a run, shared by its clients: the loaded ones, then
/// inserts, numbered in the order they are claimed.
#[derive(Debug)]
pub struct Keyspace {
    loaded: u64,
    claimed: AtomicU64,
    /// Records `0..readable` exist: the loaded ones and every insert up to
    /// the first still in flight (YCSB's acknowledged counter), with the
    /// inserts done beyond it.
    done: Mutex<(u64, BTreeSet<u64>)>,
    readable: AtomicU64,
    /// The plain zipfian over the loaded records, computed once (a sum over
    /// every record) and copied into each client's generator.
    zipfian: Zipfian,
}

impl Keyspace {
    /// Records `0..loaded` exist.
    pub fn new(loaded: u64) -> Arc<Keyspace> {
        let loaded = loaded.max(1);
        Arc::new(Keyspace {
            loaded,
            claimed: AtomicU64::new(loaded),
            done: Mutex::new((loaded, BTreeSet::new())),
            readable: AtomicU64::new(loaded),
            zipfian: Zipfian::new(loaded),
        })
    }

    /// The number of a new record.
    fn claim(&self) -> u64 {
        self.claimed.fetch_add(1, Ordering::Relaxed)
    }

    /// The insert of `record` is done (stored or failed, as YCSB counts it).
    pub fn inserted(&self, record: u64) {
        let mut done = self.done.lock();
        let (prefix, beyond) = &mut *done;
        beyond.insert(record);
        while beyond.remove(prefix) {
            *prefix += 1;
        }
        self.readable.store(*prefix, Ordering::Relaxed);
    }

    /// Records that can be read: none is still being inserted.
    fn existing(&self) -> u64 {
        self.readable.load(Ordering::Relaxed)
    }
}

/// Turns a seed into a client's operations.
pub struct Generator {
    mix: Mix,
    distribution: Distribution,
    zipfian: Zipfian,
    scrambled: Zipfian,
    rng: ChaCha8Rng,
    keys: Arc<Keyspace>,
}

impl Generator {
    /// The operations of client `client` of a run seeded with `seed`, over
    /// the run's `keys`.
    pub fn new(
        workload: Workload,
        distribution: Distribution,
        keys: Arc<Keyspace>,
        seed: u64,
        client: u64,
    ) -> Generator {
        Generator {
            mix: workload.mix(),
            distribution,
            zipfian: keys.zipfian.clone(),
            scrambled: Zipfian::with_zetan(SCRAMBLED_ITEMS, SCRAMBLED_ZETAN),
            // One stream per client, the same for the same seed.
            rng: ChaCha8Rng::seed_from_u64(seed ^ fnv1a(client)),
            keys,
        }
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Op {
        let p: f64 = self.rng.random();
        let m = self.mix;
        if p < m.insert {
            return Op::Insert(self.keys.claim());
        }
        let record = self.choose();
        if p < m.insert + m.read {
            Op::Read(record)
        } else if p < m.insert + m.read + m.update {
            Op::Update(record)
        } else {
            Op::ReadModifyWrite(record)
        }
    }

    /// A record that exists.
    fn choose(&mut self) -> u64 {
        match self.distribution {
            Distribution::Uniform => self.rng.random_range(0..self.keys.existing()),
            // YCSB's ScrambledZipfianGenerator: a rank among 10^10 items,
            // hashed onto the loaded records (`Math.abs(fnv) % n`).
            Distribution::Zipfian => {
                (fnv1a(self.scrambled.sample(&mut self.rng)) as i64).unsigned_abs()
                    % self.keys.loaded
            }
            Distribution::Latest => {
                let existing = self.keys.existing();
                self.zipfian.grow_to(existing);
                existing - 1 - self.zipfian.sample(&mut self.rng)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first `n` operations of client 0 of a run seeded 42 over 1,000
    /// records, every insert completing at once.
    fn first_ops(workload: Workload, n: usize) -> Vec<Op> {
        let keys = Keyspace::new(1000);
        let mut g = Generator::new(workload, workload.distribution(), Arc::clone(&keys), 42, 0);
        (0..n)
            .map(|_| {
                let op = g.next_op();
                if let Op::Insert(r) = op {
                    keys.inserted(r);
                }
                op
            })
            .collect()
    }

    #[test]
    fn a_seed_gives_the_same_operations_every_time() {
        // Pinned: a change here changes what every seeded run asks for.
        use Op::*;
        let pinned: [(Workload, [Op; 6]); 5] = [
            (
                Workload::A,
                [
                    Update(220),
                    Update(899),
                    Read(396),
                    Update(30),
                    Update(113),
                    Read(620),
                ],
            ),
            (
                Workload::B,
                [
                    Read(220),
                    Read(899),
                    Read(396),
                    Read(30),
                    Read(113),
                    Read(620),
                ],
            ),
            (
                Workload::C,
                [
                    Read(220),
                    Read(899),
                    Read(396),
                    Read(30),
                    Read(113),
                    Read(620),
                ],
            ),
            (
                Workload::D,
                [
                    Read(959),
                    Read(998),
                    Read(978),
                    Read(995),
                    Read(998),
                    Read(999),
                ],
            ),
            (
                Workload::F,
                [
                    ReadModifyWrite(220),
                    ReadModifyWrite(899),
                    Read(396),
                    ReadModifyWrite(30),
                    ReadModifyWrite(113),
                    Read(620),
                ],
            ),
        ];
        for (workload, ops) in pinned {
            assert_eq!(first_ops(workload, 6), ops, "{workload:?}");
            assert_eq!(first_ops(workload, 50), first_ops(workload, 50));
        }
        // Another client of the same run asks for something else.
        let mut other = Generator::new(
            Workload::A,
            Distribution::Zipfian,
            Keyspace::new(1000),
            42,
            1,
        );
        let theirs: Vec<Op> = (0..50).map(|_| other.next_op()).collect();
        assert_ne!(theirs, first_ops(Workload::A, 50));
    }

    #[test]
    fn each_workload_keeps_its_mix() {
        for workload in [
            Workload::A,
            Workload::B,
            Workload::C,
            Workload::D,
            Workload::F,
        ] {
            let ops = first_ops(workload, 20_000);
            let share = |name: &str| {
                ops.iter().filter(|o| o.name() == name).count() as f64 / ops.len() as f64
            };
            let mix = workload.mix();
            for (name, want) in [
                ("read", mix.read),
                ("update", mix.update),
                ("insert", mix.insert),
                ("rmw", mix.rmw),
            ] {
                assert!(
                    (share(name) - want).abs() < 0.02,
                    "{workload:?} {name}: {} vs {want}",
                    share(name)
                );
            }
        }
    }

    #[test]
    fn zipfian_ranks_are_skewed_as_the_formula_says() {
        // P(rank k) = 1 / ((k+1)^0.99 * zeta(n)); over 1,000 ranks,
        // zeta = 7.3, so rank 0 takes about 13.7%.
        let n = 1000;
        let z = Zipfian::new(n);
        let zetan = zeta(0, n, ZIPFIAN_CONSTANT);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let samples = 200_000;
        let mut counts = vec![0u64; n as usize];
        for _ in 0..samples {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        let want = |k: usize| 1.0 / ((k as f64 + 1.0).powf(ZIPFIAN_CONSTANT) * zetan);
        let got = |k: usize| counts[k] as f64 / samples as f64;
        // Ranks 0 and 1 are exact: within 5 standard deviations of a
        // binomial count.
        for k in [0, 1] {
            let sd = (want(k) * (1.0 - want(k)) / samples as f64).sqrt();
            assert!(
                (got(k) - want(k)).abs() < 5.0 * sd,
                "rank {k}: {} vs {}",
                got(k),
                want(k)
            );
        }
        // The rest follow the power law within the method's approximation
        // (Gray et al.'s inversion is not exact for the first few ranks).
        for k in [2, 9, 99] {
            let ratio = got(k) / want(k);
            assert!(
                (0.75..1.25).contains(&ratio),
                "rank {k}: {} vs {}",
                got(k),
                want(k)
            );
        }
        // The top 10% of ranks take the bulk of the requests.
        let top: u64 = counts[..100].iter().sum();
        assert!(top as f64 / samples as f64 > 0.65, "{top}");
    }

    #[test]
    fn scrambled_zipfian_spreads_the_popular_records_but_keeps_the_skew() {
        let mut g = Generator::new(
            Workload::C,
            Distribution::Zipfian,
            Keyspace::new(10_000),
            3,
            0,
        );
        let mut counts = std::collections::HashMap::<u64, u64>::new();
        for _ in 0..100_000 {
            *counts.entry(g.next_op().record()).or_default() += 1;
        }
        let mut by_count: Vec<(u64, u64)> = counts.into_iter().collect();
        by_count.sort_by_key(|&(r, c)| (std::cmp::Reverse(c), r));
        // The most popular record takes ~3.8% (1 / zeta(10^10, 0.99), as in
        // YCSB), and it is not record 0: the ranks are scrambled.
        let (hottest, count) = by_count[0];
        assert!(
            (0.03..0.05).contains(&(count as f64 / 100_000.0)),
            "{count}"
        );
        assert_ne!(hottest, 0);
        // The ten hottest records are spread over the key space.
        let spread = by_count[..10].iter().map(|&(r, _)| r).max().unwrap_or(0)
            - by_count[..10].iter().map(|&(r, _)| r).min().unwrap_or(0);
        assert!(spread > 1_000, "{:?}", &by_count[..10]);
    }

    #[test]
    fn reads_wait_for_every_insert_before_them() {
        let keys = Keyspace::new(10);
        let (a, b) = (keys.claim(), keys.claim());
        assert_eq!((a, b), (10, 11));
        keys.inserted(b);
        assert_eq!(keys.existing(), 10, "11 is done but 10 is still in flight");
        keys.inserted(a);
        assert_eq!(keys.existing(), 12);
    }

    #[test]
    fn latest_favours_the_newest_records_as_they_are_inserted() {
        let keys = Keyspace::new(1000);
        let mut g = Generator::new(Workload::D, Distribution::Latest, Arc::clone(&keys), 5, 0);
        let mut reads = Vec::new();
        let mut inserts = Vec::new();
        for _ in 0..20_000 {
            match g.next_op() {
                Op::Insert(r) => {
                    keys.inserted(r);
                    inserts.push(r)
                }
                Op::Read(r) => {
                    let existing = 1000 + inserts.len() as u64;
                    assert!(r < existing, "a read of {r} with {existing} records");
                    reads.push(r)
                }
                other => panic!("{other:?}"),
            }
        }
        // Inserts take consecutive new numbers.
        assert_eq!(inserts.first(), Some(&1000));
        assert!(inserts.windows(2).all(|w| w[1] == w[0] + 1));
        // Reads follow the inserts: most are of records inserted during the
        // run, none of the oldest half of the loaded ones is popular.
        let new = reads.iter().filter(|&&r| r >= 1000).count();
        assert!(
            new as f64 / reads.len() as f64 > 0.8,
            "{new} of {}",
            reads.len()
        );
    }
}
