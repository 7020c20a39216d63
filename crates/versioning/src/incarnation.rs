//! Who issues dots: incarnations and the actors they mint (SPEC §2, "No actor
//! ever issues the same dot twice"; Riak's kv679).
//!
//! # The danger
//!
//! A coordinator issues the next dot of its actor for a key from the counter in
//! its **local** copy of the key. If that copy is behind what other replicas
//! have seen — the data directory was restored from a backup, the unsynced tail
//! of the write-ahead log was lost in a crash, the key's tombstone was purged
//! while a copy of it survives elsewhere, the record was corrupt and replaced by
//! a replica's older copy — the coordinator hands out a dot that already exists.
//! The new write then looks like an old one, and every replica silently drops
//! it in favour of the version it already holds.
//!
//! # The mechanism
//!
//! * Every process start is a new **incarnation**, with a random 32-bit id.
//!   Dots are issued by actors the current incarnation **mints** (incarnation id
//!   in the high 32 bits, a per-incarnation sequence number in the low 32), so
//!   no two incarnations share an actor: whatever a restart finds on disk
//!   (a restored backup, a shortened log, an empty directory), it never
//!   continues a counter an earlier incarnation issued.
//! * Within an incarnation, a write of a key continues an actor of this
//!   incarnation already in the key's local clock (its counter there is the
//!   newest this incarnation issued, because this process wrote it), and mints
//!   a new actor otherwise. So a key's clock gains an actor only when a node
//!   coordinates a write for it: restarts of a node that writes nothing for the
//!   key add nothing.
//! * When this process loses part of a key's history — purging its tombstone,
//!   replacing a corrupt record with a replica's copy, deleting a partition it
//!   handed off — the actors of this incarnation in that history are
//!   **retired** (for a whole partition, every actor minted before the drop),
//!   and the next write of the key mints a fresh one.
//!
//! The cost is one actor per (incarnation, key written), instead of one per
//! node: a key written through a node that restarted k times carries up to k
//! entries for it, each a counter and no value once superseded.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::{ActorId, MAX_COUNTER, Object};

/// Retired actors of one scope kept one by one; past this, the whole scope is
/// retired (its next writes mint fresh actors), so memory stays bounded.
const RETIRED_PER_SCOPE: usize = 1024;
/// An actor this close to the counter bound is not continued (a forged
/// context can set a counter to the bound; the next write mints instead).
const COUNTER_HEADROOM: u64 = 1 << 20;

/// The actors of one process, and those it retired.
#[derive(Debug)]
pub struct Incarnation {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The current incarnation id (a new one is drawn if the sequence runs out).
    id: u32,
    /// Next sequence number to mint.
    next: u32,
    /// Ids this process used before the current one (their actors are its own).
    earlier: Vec<u32>,
    /// Per scope (a ring partition), actors retired one by one (a purged or
    /// replaced key).
    actors: HashMap<u32, HashSet<ActorId>>,
    /// Per scope, the minting position before which every actor is retired
    /// (the partition was dropped, or too many of its keys were purged).
    floors: HashMap<u32, (usize, u32)>,
}

impl Incarnation {
    /// A new incarnation with a random id.
    pub fn random() -> Incarnation {
        Incarnation::with_id(rand::random_range(1..=u32::MAX))
    }

    /// An incarnation with a given id (tests).
    pub fn with_id(id: u32) -> Incarnation {
        Incarnation {
            state: Mutex::new(State {
                id,
                next: 1,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change under this lock is a single insert or assignment, so a
        // poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This incarnation's id.
    pub fn id(&self) -> u32 {
        self.lock().id
    }

    /// True if this incarnation minted `actor`.
    pub fn owns(&self, actor: ActorId) -> bool {
        Self::order(&self.lock(), actor).is_some()
    }

    /// Position of an actor of this process in minting order (id generation,
    /// sequence); `None` for another process's actor.
    fn order(st: &State, actor: ActorId) -> Option<(usize, u32)> {
        let id = (actor.0 >> 32) as u32;
        let generation = if id == st.id {
            st.earlier.len()
        } else {
            st.earlier.iter().position(|&e| e == id)?
        };
        Some((generation, actor.0 as u32))
    }

    /// The actor to issue the next dot of a key with: an actor of this
    /// incarnation already in the key's local clock, not retired and not near
    /// the counter bound, else a freshly minted one. `scope` is the key's ring
    /// partition.
    pub fn actor_for(&self, scope: u32, local: &Object) -> ActorId {
        let context = local.context();
        let mut st = self.lock();
        let floor = st.floors.get(&scope).copied();
        let continuing = context
            .iter()
            .filter(|&(a, counter)| {
                counter < MAX_COUNTER - COUNTER_HEADROOM
                    && Self::order(&st, a).is_some_and(|o| floor.is_none_or(|f| o >= f))
                    && !st.actors.get(&scope).is_some_and(|r| r.contains(&a))
            })
            .max_by_key(|&(a, counter)| (counter, a))
            .map(|(a, _)| a);
        continuing.unwrap_or_else(|| Self::mint(&mut st))
    }

    fn mint(st: &mut State) -> ActorId {
        if st.next == u32::MAX {
            // The sequence ran out: continue under a fresh id.
            let old = st.id;
            st.earlier.push(old);
            st.id = loop {
                let id = rand::random_range(1..=u32::MAX);
                if id != old && !st.earlier.contains(&id) {
                    break id;
                }
            };
            st.next = 1;
        }
        let seq = st.next;
        st.next += 1;
        ActorId(((st.id as u64) << 32) | seq as u64)
    }

    /// The minting position reached so far.
    fn now(st: &State) -> (usize, u32) {
        (st.earlier.len(), st.next)
    }

    /// Retires this incarnation's actors in `history`, a key of `scope` whose
    /// local copy is being removed or replaced.
    pub fn retire(&self, scope: u32, history: &Object) {
        let mut st = self.lock();
        let mine: Vec<ActorId> = history
            .context()
            .iter()
            .map(|(a, _)| a)
            .filter(|&a| Self::order(&st, a).is_some())
            .collect();
        if mine.is_empty() {
            return;
        }
        let set = st.actors.entry(scope).or_default();
        set.extend(mine);
        if set.len() > RETIRED_PER_SCOPE {
            st.actors.remove(&scope);
            let now = Self::now(&st);
            st.floors.insert(scope, now);
        }
    }

    /// Retires every actor minted so far for keys of `scope` (its local copy
    /// was deleted wholesale).
    pub fn retire_scope(&self, scope: u32) {
        let mut st = self.lock();
        let now = Self::now(&st);
        st.floors.insert(scope, now);
        st.actors.remove(&scope);
    }

    #[cfg(test)]
    fn exhaust(&self) {
        self.lock().next = u32::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Version, VersionVector};

    fn write(o: &mut Object, inc: &Incarnation, with_context: bool) -> ActorId {
        let ctx = if with_context {
            o.context()
        } else {
            VersionVector::new()
        };
        let actor = inc.actor_for(0, o);
        o.update(&ctx, actor, Version::value("v", "", 1));
        actor
    }

    #[test]
    fn a_key_keeps_one_actor_per_incarnation_and_restarts_add_none() {
        let inc = Incarnation::with_id(7);
        let mut o = Object::new();
        let a = write(&mut o, &inc, false);
        let b = write(&mut o, &inc, true);
        assert_eq!(a, b);
        assert!(inc.owns(a));
        // Restarts that write nothing for the key leave its clock alone.
        for id in 8..20 {
            let _other = Incarnation::with_id(id);
        }
        assert_eq!(o.context().iter().count(), 1);
        // A new incarnation that writes adds exactly one actor.
        let next = Incarnation::with_id(20);
        let c = write(&mut o, &next, true);
        assert_ne!(c, a);
        write(&mut o, &next, true);
        assert_eq!(o.context().iter().count(), 2);
    }

    #[test]
    fn retired_actors_and_scopes_are_never_continued() {
        let inc = Incarnation::with_id(1);
        let mut o = Object::new();
        let a = write(&mut o, &inc, false);
        inc.retire(0, &o);
        let b = inc.actor_for(0, &o);
        assert_ne!(a, b);
        let mut p = Object::new();
        let c = write(&mut p, &inc, false);
        inc.retire_scope(0);
        assert_ne!(inc.actor_for(0, &p), c);
        assert_eq!(inc.actor_for(1, &p), c, "another scope is untouched");
    }

    #[test]
    fn an_exhausted_sequence_continues_under_a_new_id_and_old_actors_stay_its_own() {
        let inc = Incarnation::with_id(5);
        let mut o = Object::new();
        let a = write(&mut o, &inc, false);
        inc.exhaust();
        let mut p = Object::new();
        let b = write(&mut p, &inc, false);
        assert_ne!(a.0 >> 32, b.0 >> 32, "a new id");
        assert!(inc.owns(a) && inc.owns(b));
        assert_eq!(
            inc.actor_for(0, &o),
            a,
            "keys written before keep their actor"
        );
        inc.retire_scope(0);
        assert_ne!(inc.actor_for(0, &o), a);
        assert_ne!(inc.actor_for(0, &p), b, "the floor spans both ids");
    }

    #[test]
    fn an_actor_at_the_counter_bound_is_not_continued() {
        let inc = Incarnation::with_id(3);
        let mut o = Object::new();
        let a = write(&mut o, &inc, false);
        // A forged context claims the actor reached the bound.
        let mut forged = VersionVector::new();
        forged.observe(a, MAX_COUNTER);
        o.discard(&forged);
        let next = inc.actor_for(0, &o);
        assert_ne!(next, a);
        o.update(&o.context(), next, Version::value("y", "", 3));
        assert!(o.context().iter().all(|(_, c)| c <= MAX_COUNTER));
    }

    #[test]
    fn retiring_many_keys_of_a_scope_folds_into_a_floor() {
        let inc = Incarnation::with_id(4);
        let mut objects = Vec::new();
        for _ in 0..=RETIRED_PER_SCOPE + 1 {
            let mut o = Object::new();
            write(&mut o, &inc, false);
            objects.push(o);
        }
        for o in &objects {
            inc.retire(0, o);
        }
        let st = inc.lock();
        assert!(
            st.actors
                .get(&0)
                .is_none_or(|s| s.len() <= RETIRED_PER_SCOPE)
        );
        assert!(st.floors.contains_key(&0));
    }
}
