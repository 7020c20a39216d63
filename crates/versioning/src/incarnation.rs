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
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{ActorId, Object};

/// The actors of one process, and those it retired.
#[derive(Debug)]
pub struct Incarnation {
    id: u32,
    next: AtomicU32,
    retired: Mutex<Retired>,
}

#[derive(Debug, Default)]
struct Retired {
    /// Actors retired one by one (a purged or replaced key).
    actors: HashSet<ActorId>,
    /// Per scope (a ring partition), actors minted before this sequence number
    /// are retired (the partition was dropped).
    floors: HashMap<u32, u32>,
}

impl Incarnation {
    /// A new incarnation with a random id.
    pub fn random() -> Incarnation {
        Incarnation::with_id(rand::random_range(1..=u32::MAX))
    }

    /// An incarnation with a given id (tests).
    pub fn with_id(id: u32) -> Incarnation {
        Incarnation {
            id,
            next: AtomicU32::new(1),
            retired: Mutex::new(Retired::default()),
        }
    }

    /// This incarnation's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// True if this incarnation minted `actor`.
    pub fn owns(&self, actor: ActorId) -> bool {
        (actor.0 >> 32) as u32 == self.id
    }

    fn sequence(actor: ActorId) -> u32 {
        actor.0 as u32
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Retired> {
        // A panic while holding this lock cannot leave the sets inconsistent
        // (each change is one insert), so a poisoned lock is still usable.
        self.retired.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The actor to issue the next dot of a key with: an actor of this
    /// incarnation already in the key's local clock and not retired, else a
    /// freshly minted one. `scope` is the key's ring partition.
    pub fn actor_for(&self, scope: u32, local: &Object) -> ActorId {
        let context = local.context();
        let continuing = {
            let retired = self.lock();
            let floor = retired.floors.get(&scope).copied().unwrap_or(0);
            context
                .iter()
                .filter(|&(a, _)| {
                    self.owns(a) && Self::sequence(a) >= floor && !retired.actors.contains(&a)
                })
                .max_by_key(|&(a, counter)| (counter, a))
                .map(|(a, _)| a)
        };
        continuing.unwrap_or_else(|| self.mint())
    }

    fn mint(&self) -> ActorId {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        // 2^32 keys written by one process: a broken invariant, not input.
        assert!(
            seq != u32::MAX,
            "incarnation {} minted every actor",
            self.id
        );
        ActorId(((self.id as u64) << 32) | seq as u64)
    }

    /// Retires this incarnation's actors in `history` (a key's object whose
    /// local copy is being removed or replaced).
    pub fn retire(&self, history: &Object) {
        let mine: Vec<ActorId> = history
            .context()
            .iter()
            .map(|(a, _)| a)
            .filter(|&a| self.owns(a))
            .collect();
        if !mine.is_empty() {
            self.lock().actors.extend(mine);
        }
    }

    /// Retires every actor minted so far for keys of `scope` (its local copy
    /// was deleted wholesale).
    pub fn retire_scope(&self, scope: u32) {
        let now = self.next.load(Ordering::Relaxed);
        self.lock().floors.insert(scope, now);
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
        inc.retire(&o);
        let b = inc.actor_for(0, &o);
        assert_ne!(a, b);
        let mut p = Object::new();
        let c = write(&mut p, &inc, false);
        inc.retire_scope(0);
        assert_ne!(inc.actor_for(0, &p), c);
        assert_eq!(inc.actor_for(1, &p), c, "another scope is untouched");
    }
}
