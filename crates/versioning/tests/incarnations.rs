//! No dot is issued twice, whatever happens to a replica's local copies: a
//! model of one coordinating replica whose disk loses history in every way a
//! real one can (a tombstone purge, a restored backup, a lost write-ahead-log
//! tail, a wiped directory, a handed-off partition, a corrupt record replaced
//! by a replica's copy), next to "elsewhere": the merge of everything it ever
//! acknowledged, as the other replicas, hints and repairs hold it.

use std::collections::{BTreeMap, HashSet};

use dynakv_versioning::{Dot, Incarnation, Object, Version, VersionVector};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Coordinate a write of `key`, with the local context (`true`) or blind.
    Write(u8, bool),
    /// Delete `key` (a tombstone with the local context).
    Delete(u8),
    /// Purge `key`'s local copy (its tombstone passed the grace period).
    Purge(u8),
    /// Take a backup of the whole local store.
    Backup,
    /// Restart from the last backup (an operator restored it).
    Restore,
    /// Restart after a crash lost the last local write of `key`.
    WalLoss(u8),
    /// Restart with an empty directory.
    Wipe,
    /// Drop the local copy of `key`'s partition (handed off).
    Drop(u8),
    /// A replica's copy of `key` arrives (read repair, transfer, hint).
    Receive(u8),
    /// The local record of `key` was corrupt and is replaced by a replica's copy.
    ReplaceCorrupt(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..3;
    prop_oneof![
        6 => (key.clone(), any::<bool>()).prop_map(|(k, c)| Op::Write(k, c)),
        2 => key.clone().prop_map(Op::Delete),
        2 => key.clone().prop_map(Op::Purge),
        1 => Just(Op::Backup),
        1 => Just(Op::Restore),
        1 => key.clone().prop_map(Op::WalLoss),
        1 => Just(Op::Wipe),
        1 => key.clone().prop_map(Op::Drop),
        2 => key.clone().prop_map(Op::Receive),
        1 => key.prop_map(Op::ReplaceCorrupt),
    ]
}

struct Model {
    incarnation: Incarnation,
    next_id: u32,
    local: BTreeMap<u8, Object>,
    /// The local copy of each key before its last local write.
    previous: BTreeMap<u8, Object>,
    backup: BTreeMap<u8, Object>,
    elsewhere: BTreeMap<u8, Object>,
    issued: HashSet<(u8, Dot)>,
    ts: u64,
}

impl Model {
    fn restart(&mut self) {
        self.next_id += 1;
        self.incarnation = Incarnation::with_id(self.next_id);
    }

    fn coordinate(&mut self, key: u8, context: Option<VersionVector>, version: Version) {
        let mut o = self.local.get(&key).cloned().unwrap_or_default();
        let ctx = context.unwrap_or_default();
        let actor = self.incarnation.actor_for(u32::from(key), &o);
        let dot = o.update(&ctx, actor, version.clone());
        assert!(
            self.issued.insert((key, dot)),
            "dot {dot:?} of key {key} issued twice"
        );
        // The acknowledged write survives a merge with everything elsewhere.
        let merged = self
            .elsewhere
            .get(&key)
            .cloned()
            .unwrap_or_default()
            .synced(&o);
        assert!(
            merged.values().any(|v| v == &version),
            "write {dot:?} of key {key} is dominated by an older version"
        );
        self.previous
            .insert(key, self.local.get(&key).cloned().unwrap_or_default());
        self.elsewhere.insert(key, merged);
        self.local.insert(key, o);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn no_dot_is_issued_twice_and_no_acknowledged_write_is_dominated(ops in proptest::collection::vec(op(), 1..60)) {
        let mut m = Model {
            incarnation: Incarnation::with_id(1),
            next_id: 1,
            local: BTreeMap::new(),
            previous: BTreeMap::new(),
            backup: BTreeMap::new(),
            elsewhere: BTreeMap::new(),
            issued: HashSet::new(),
            ts: 0,
        };
        for op in ops {
            m.ts += 1;
            match op {
                Op::Write(k, with_context) => {
                    let ctx = with_context.then(|| m.local.get(&k).map(Object::context).unwrap_or_default());
                    let v = Version::value(format!("{k}-{}", m.ts), "", m.ts);
                    m.coordinate(k, ctx, v);
                }
                Op::Delete(k) => {
                    let ctx = m.local.get(&k).map(Object::context);
                    m.coordinate(k, ctx, Version::tombstone(m.ts));
                }
                Op::Purge(k) => {
                    if let Some(o) = m.local.remove(&k) {
                        m.incarnation.retire(u32::from(k), &o);
                    }
                }
                Op::Backup => m.backup = m.local.clone(),
                Op::Restore => {
                    m.local = m.backup.clone();
                    m.restart();
                }
                Op::WalLoss(k) => {
                    if let Some(p) = m.previous.get(&k) {
                        m.local.insert(k, p.clone());
                    }
                    m.restart();
                }
                Op::Wipe => {
                    m.local.clear();
                    m.restart();
                }
                Op::Drop(k) => {
                    m.local.remove(&k);
                    m.incarnation.retire_scope(u32::from(k));
                }
                Op::Receive(k) => {
                    // A replica's (possibly stale) copy: the previous local state.
                    if let Some(p) = m.previous.get(&k).cloned() {
                        let merged = m.local.get(&k).cloned().unwrap_or_default().synced(&p);
                        m.local.insert(k, merged);
                    }
                }
                Op::ReplaceCorrupt(k) => {
                    if let Some(p) = m.previous.get(&k).cloned() {
                        m.incarnation.retire(u32::from(k), &p);
                        m.local.insert(k, p);
                    }
                }
            }
        }
    }
}

#[test]
fn a_node_restarted_many_times_without_writing_a_key_adds_nothing_to_its_clock() {
    let mut o = Object::new();
    let writer = Incarnation::with_id(1);
    let a = writer.actor_for(0, &o);
    o.update(&VersionVector::new(), a, Version::value("x", "", 1));
    let size = o.context().iter().count();
    for id in 2..100 {
        // Each restart of another node (or this one) that only reads or merges.
        let idle = Incarnation::with_id(id);
        let copy = o.clone();
        o.sync(&copy);
        let _ = idle.id();
    }
    assert_eq!(o.context().iter().count(), size);
}
