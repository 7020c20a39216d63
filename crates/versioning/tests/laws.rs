//! The laws of causal versioning, as properties over simulated replica histories.
//!
//! States are never generated at random directly: a random *history* (writes at
//! replicas with or without a context read from some replica, and state exchanges
//! between replicas) is replayed, so every state is one a real cluster could reach.

use std::collections::BTreeSet;

use dynakv_versioning::{ActorId, CausalContext, DvvSet, VersionVector};
use proptest::prelude::*;

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// A client write coordinated by replica `at`, with the context of a read
    /// from replica `read_from` (or no context).
    Write { at: usize, read_from: Option<usize> },
    /// Replica `to` merges the state of replica `from`.
    Sync { from: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..REPLICAS, proptest::option::of(0..REPLICAS))
            .prop_map(|(at, read_from)| Op::Write { at, read_from }),
        (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn actor(i: usize) -> ActorId {
    ActorId(i as u64 + 1)
}

/// Replays a history; values are unique integers so every write is recognisable.
fn replay(ops: &[Op]) -> (Vec<DvvSet<u32>>, u32) {
    let mut replicas = vec![DvvSet::new(); REPLICAS];
    let mut next = 0u32;
    for op in ops {
        match *op {
            Op::Write { at, read_from } => {
                let ctx = read_from.map(|r| replicas[r].context()).unwrap_or_default();
                replicas[at].update(&ctx, actor(at), next);
                next += 1;
            }
            Op::Sync { from, to } => {
                let src = replicas[from].clone();
                replicas[to].sync(&src);
            }
        }
    }
    (replicas, next)
}

fn values(s: &DvvSet<u32>) -> BTreeSet<u32> {
    s.values().copied().collect()
}

fn history() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 0..40)
}

proptest! {
    #[test]
    fn sync_is_commutative(ops in history(), a in 0..REPLICAS, b in 0..REPLICAS) {
        let (r, _) = replay(&ops);
        prop_assert_eq!(r[a].synced(&r[b]), r[b].synced(&r[a]));
    }

    #[test]
    fn sync_is_associative(ops in history()) {
        let (r, _) = replay(&ops);
        let left = r[0].synced(&r[1]).synced(&r[2]);
        let right = r[0].synced(&r[1].synced(&r[2]));
        prop_assert_eq!(left, right);
    }

    #[test]
    fn sync_is_idempotent(ops in history(), a in 0..REPLICAS, b in 0..REPLICAS) {
        let (r, _) = replay(&ops);
        prop_assert_eq!(r[a].synced(&r[a]), r[a].clone());
        let once = r[a].synced(&r[b]);
        prop_assert_eq!(once.synced(&r[b]), once.clone());
    }

    #[test]
    fn replicas_that_exchange_state_converge(ops in history()) {
        let (mut r, _) = replay(&ops);
        let mut all = DvvSet::new();
        for s in &r { all.sync(s); }
        for s in r.iter_mut() { s.sync(&all); }
        prop_assert!(r.iter().all(|s| *s == all));
    }

    /// A write carrying the context of a read supersedes exactly the values that
    /// read returned: whatever arrived at the replica after the read survives.
    #[test]
    fn read_context_supersedes_exactly_what_was_read(
        ops in history(), at in 0..REPLICAS, other in 0..REPLICAS, later in history()
    ) {
        let (mut r, next) = replay(&ops);
        let read_ctx = r[at].context();
        let read_vals = values(&r[at]);
        // Concurrent activity reaches the replica between the read and the write.
        let (concurrent, _) = replay(&later);
        let mut unseen = concurrent[other].clone();
        // Give the concurrent writes distinct values and an actor of their own.
        unseen = relabel(&unseen, next + 1000);
        r[at].sync(&unseen);
        let before_write = values(&r[at]);
        r[at].update(&read_ctx, actor(at), next);
        let mut expected: BTreeSet<u32> = before_write.difference(&read_vals).copied().collect();
        expected.insert(next);
        prop_assert_eq!(values(&r[at]), expected);
    }

    #[test]
    fn two_writes_with_the_same_context_both_survive(ops in history(), a in 0..REPLICAS, b in 0..REPLICAS) {
        let (mut r, next) = replay(&ops);
        let ctx = r[a].context();
        r[a].update(&ctx, actor(a), next);
        r[b].update(&ctx, actor(b), next + 1);
        let merged = r[a].synced(&r[b]);
        let vals = values(&merged);
        prop_assert!(vals.contains(&next) && vals.contains(&(next + 1)));
    }

    #[test]
    fn a_write_without_context_survives_alongside_everything(ops in history(), at in 0..REPLICAS) {
        let (mut r, next) = replay(&ops);
        let mut expected = values(&r[at]);
        r[at].update(&VersionVector::new(), actor(at), next);
        expected.insert(next);
        prop_assert_eq!(values(&r[at]), expected);
    }

    #[test]
    fn token_round_trips(entries in proptest::collection::btree_map(any::<u64>(), 1..=dynakv_versioning::MAX_COUNTER, 0..12)) {
        let vv: VersionVector = entries.into_iter().map(|(a, c)| (ActorId(a), c)).collect();
        let ctx = CausalContext(vv);
        let key = dynakv_versioning::ContextSigner::new(std::sync::Arc::new(dynakv_versioning::ContextKey::derive(b"k", 1)), bytes::Bytes::from_static(b"key"));
        prop_assert_eq!(CausalContext::decode(&ctx.encode(&key), &key), Ok(ctx));
    }

    #[test]
    fn any_flipped_character_is_rejected(
        entries in proptest::collection::btree_map(any::<u64>(), 1..=dynakv_versioning::MAX_COUNTER, 0..6),
        pos in any::<prop::sample::Index>(),
        replacement in any::<prop::sample::Index>(),
    ) {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let vv: VersionVector = entries.into_iter().map(|(a, c)| (ActorId(a), c)).collect();
        let key = dynakv_versioning::ContextSigner::new(std::sync::Arc::new(dynakv_versioning::ContextKey::derive(b"k", 1)), bytes::Bytes::from_static(b"key"));
        let token = CausalContext(vv).encode(&key).into_bytes();
        let i = pos.index(token.len());
        let mut c = ALPHABET[replacement.index(ALPHABET.len())];
        if c == token[i] {
            c = if c == b'A' { b'B' } else { b'A' };
        }
        let mut tampered = token.clone();
        tampered[i] = c;
        let tampered = String::from_utf8(tampered).expect("ascii");
        prop_assert!(CausalContext::decode(&tampered, &key).is_err());
    }
}

/// Moves a state onto a separate actor and value space (actor + 100, value + offset),
/// modelling writes coordinated by replicas the first history never heard of.
fn relabel(s: &DvvSet<u32>, offset: u32) -> DvvSet<u32> {
    let mut out = DvvSet::new();
    // Rebuild through the public API: replay each actor's surviving dots in order.
    let ctx = s.context();
    let mut per_actor: std::collections::BTreeMap<ActorId, Vec<(u64, u32)>> = Default::default();
    for (dot, v) in s.dotted_values() {
        per_actor
            .entry(dot.actor)
            .or_default()
            .push((dot.counter, *v));
    }
    for (a, counter) in ctx.iter() {
        let new_actor = ActorId(a.0 + 100);
        let mut dots = per_actor.remove(&a).unwrap_or_default();
        dots.sort();
        let floor = counter - dots.len() as u64;
        let seen: VersionVector = [(new_actor, floor)].into_iter().collect();
        out.discard(&seen);
        for (_, v) in dots {
            out.event(new_actor, v + offset);
        }
    }
    out
}

proptest! {
    /// Any context a client can get past the token decoder, applied to any
    /// state, leaves a set that keeps obeying the laws: no panic, no overflow.
    #[test]
    fn adversarial_contexts_never_break_a_set(
        entries in proptest::collection::vec((0u64..4, prop_oneof![0u64..10, Just(dynakv_versioning::MAX_COUNTER)]), 0..6),
        writes in 1usize..5,
    ) {
        use dynakv_versioning::{ActorId, CausalContext, Object, Version, VersionVector};
        let vv: VersionVector = entries.into_iter().map(|(a, c)| (ActorId(a), c)).collect();
        let key = dynakv_versioning::ContextSigner::new(std::sync::Arc::new(dynakv_versioning::ContextKey::derive(b"k", 1)), bytes::Bytes::from_static(b"key"));
        let token = CausalContext(vv).encode(&key);
        let ctx = CausalContext::decode(&token, &key).expect("within bounds").0;
        let mut o = Object::new();
        for i in 0..writes {
            o.update(&ctx, ActorId(i as u64 % 4), Version::value(vec![i as u8], "", i as u64));
            o.update(&o.context(), ActorId(1), Version::value(vec![9], "", 9));
        }
        let copy = o.clone();
        prop_assert_eq!(o.synced(&copy), o.clone());
        prop_assert!(!o.live().is_empty());
        // Every counter stays within what decoding accepts... when the actor
        // is chosen by an incarnation (the coordinator's path).
        let inc = dynakv_versioning::Incarnation::with_id(77);
        let mut p = Object::new();
        for i in 0..writes {
            let actor = inc.actor_for(0, &p);
            p.update(&ctx, actor, Version::value(vec![i as u8], "", i as u64));
        }
        prop_assert!(p.context().iter().all(|(_, c)| c <= dynakv_versioning::MAX_COUNTER));
    }
}
