//! After a switch: partitions this node handed off are deleted once every
//! member serves the ring that switched them (step 5), and a node that left
//! stops.

use std::collections::BTreeSet;
use std::sync::Arc;

use dynakv_membership::MemberState;
use dynakv_ring::{PARTITIONS, Ring};
use dynakv_storage::Storage;

use super::{META_HANDED_OFF, Transfers};

impl Transfers {
    /// Notes the partitions this node is handing off (it serves them in a
    /// transit whose target leaves it out): only those may be deleted later.
    pub(super) async fn note_handoffs(self: &Arc<Self>) {
        let me = self.core.identity.name.as_str();
        let snapshot = self.core.cluster.snapshot();
        let (ring, state) = (&snapshot.placement, &snapshot.state);
        let mut giving: BTreeSet<u16> = state
            .moving
            .iter()
            .filter(|(p, t)| {
                t.from.iter().any(|f| f == me)
                    && !ring.target_replicas(usize::from(**p)).any(|r| r == me)
            })
            .map(|(&p, _)| p)
            .collect();
        let before = self.handed_off.lock().clone();
        giving.extend(before.iter().copied());
        if giving != before {
            *self.handed_off.lock() = giving.clone();
            let _ = self
                .core
                .blocking(move |core| core.storage.put_meta_lazy(META_HANDED_OFF, &giving))
                .await;
        }
    }

    /// Deletes partitions this node handed off, once their transit settled
    /// and every member — down ones included — serves exactly this ring, so no
    /// coordinator still reads from or writes to this copy. Partitions this
    /// node did not hand off itself (it adopted a ring from a different
    /// history, say) are never deleted here.
    pub(super) async fn drop_handed_off(self: &Arc<Self>) {
        // The placement judged is the one every member confirmed serving.
        let snapshot = self.core.cluster.snapshot();
        if !self.core.cluster.all_members_at(snapshot.stamp) {
            return;
        }
        let ring = &snapshot.placement;
        let me = self.core.identity.name.clone();
        let candidates: Vec<usize> = self
            .handed_off
            .lock()
            .iter()
            .map(|&p| usize::from(p))
            .filter(|&p| !ring.is_moving(p) && !ring.holds(&me, p))
            .collect();
        if candidates.is_empty() {
            return;
        }
        // Keys of buckets with fewer replicas than N may be held by no other
        // node that keeps the partition (this node was their first replica):
        // each goes to its replicas under this ring before the copy goes.
        let mut pushed = Vec::with_capacity(candidates.len());
        for p in candidates {
            if !self.core.buckets.sets_n_val() || self.push_short_keys(ring, p).await {
                pushed.push(p);
            }
        }
        let candidates = pushed;
        let judged = snapshot.stamp;
        let dropped = self
            .core
            .blocking(move |core| {
                // A ring change while partitions are dropped may hand one of
                // them back to this node, and its writes would land here just
                // before the delete. Checking before each partition narrows
                // that window to one partition's delete (what is left is
                // judged again, against the new ring, in a later round). It
                // does not close it, and need not for safety: a write to a
                // pending replica needs W acknowledgements besides it, and
                // the pull that makes this node a replica again copies them.
                drop_partitions(&core.storage, candidates, || {
                    core.cluster.snapshot().stamp == judged
                })
            })
            .await;
        let remaining = {
            let mut h = self.handed_off.lock();
            for (p, _) in &dropped {
                h.remove(&(*p as u16));
            }
            h.clone()
        };
        let _ = self
            .core
            .blocking(move |core| core.storage.put_meta_lazy(META_HANDED_OFF, &remaining))
            .await;
        for (p, keys) in dropped {
            self.core.metrics.partitions_dropped.inc();
            self.core.metrics.keys_dropped.inc_by(keys);
            tracing::info!(
                partition = p,
                keys,
                "partition handed off; local copy deleted"
            );
        }
    }

    /// A leaving node that holds nothing any more has left.
    pub(super) async fn finish_leaving(self: &Arc<Self>) -> bool {
        if self.core.cluster.own_state() == MemberState::Removed {
            tracing::warn!("an operator removed this node from the cluster");
            self.core.persist_members().await;
            return true;
        }
        if self.core.cluster.own_state() != MemberState::Leaving {
            return false;
        }
        // Hints held here for others are delivered (or rehomed) first.
        if self.core.storage.stats().hints > 0 {
            return false;
        }
        let ring = self.core.cluster.ring();
        let me = self.core.identity.name.as_str();
        if ring.is_member(me) || (0..PARTITIONS).any(|p| ring.holds(me, p)) {
            return false;
        }
        // Keys of buckets with fewer replicas than N may have their only
        // copies here until the handed-off partitions are pushed and dropped.
        if self.core.buckets.sets_n_val() && !self.handed_off.lock().is_empty() {
            return false;
        }
        self.core.cluster.set_left();
        self.core.persist_members().await;
        tracing::info!("every partition handed off: this node has left the cluster");
        true
    }
}

impl Transfers {
    /// Sends every key of partition `p` whose bucket keeps fewer than N
    /// replicas to those replicas under `ring` (a merge: what they hold
    /// already is unchanged). True once all of them acknowledged.
    async fn push_short_keys(self: &Arc<Self>, ring: &Ring, p: usize) -> bool {
        use crate::server::replication::anti_entropy::{AfterPush, push_to_replicas};
        let n = ring.n();
        let core = &self.core;
        push_to_replicas(
            core,
            p,
            |key| core.buckets.n_val_of(key) < n,
            AfterPush::Keep,
        )
        .await
        .is_some()
    }
}

/// Deletes each candidate partition's local copy, stopping at the first one
/// for which `still_judged` says the ring it was judged against has changed.
/// Returns the partitions dropped, each with the number of keys deleted.
pub(super) fn drop_partitions(
    storage: &Storage,
    candidates: Vec<usize>,
    still_judged: impl Fn() -> bool,
) -> Vec<(usize, u64)> {
    let mut dropped = Vec::new();
    for p in candidates {
        if !still_judged() {
            tracing::info!(
                partition = p,
                "ring changed while dropping handed-off partitions; the rest wait"
            );
            break;
        }
        match storage.drop_range(Ring::range_of(p)) {
            Ok(keys) => dropped.push((p, keys)),
            Err(e) => tracing::error!(partition = p, error = %e, "cannot drop a partition"),
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use dynakv_ring::token;
    use dynakv_storage::{ObjectStore, StorageConfig};
    use dynakv_versioning::{ActorId, Version, VersionVector};

    use super::*;

    /// One key in each of two partitions.
    fn keys_in_two_partitions() -> [(String, usize); 2] {
        let first = ("k0".to_string(), Ring::partition_of(token(b"k0")));
        let second = (0..)
            .map(|i| format!("k{i}"))
            .map(|k| {
                let p = Ring::partition_of(token(k.as_bytes()));
                (k, p)
            })
            .find(|(_, p)| *p != first.1)
            .expect("some key falls in another partition");
        [first, second]
    }

    #[test]
    fn dropping_stops_at_the_first_partition_judged_against_an_old_ring() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&StorageConfig {
            path: dir.path().to_path_buf(),
            block_cache_mb: 8,
            sync_writes: false,
        })
        .expect("open");
        let keys = keys_in_two_partitions();
        for (k, _) in &keys {
            storage
                .update(k.as_bytes(), |o| -> Result<(), ()> {
                    o.update(
                        &VersionVector::new(),
                        ActorId(1),
                        Version::value(b"v".to_vec(), "", 0),
                    );
                    Ok(())
                })
                .expect("storage")
                .expect("update");
        }
        // The ring changes after the first partition is dropped.
        let checks = Cell::new(0);
        let dropped = drop_partitions(&storage, vec![keys[0].1, keys[1].1], || {
            checks.set(checks.get() + 1);
            checks.get() == 1
        });
        assert_eq!(dropped, vec![(keys[0].1, 1)]);
        assert!(storage.get(keys[0].0.as_bytes()).expect("get").is_none());
        assert!(
            storage.get(keys[1].0.as_bytes()).expect("get").is_some(),
            "a partition judged against an old ring was dropped"
        );
        // With the ring unchanged, both go.
        let dropped = drop_partitions(&storage, vec![keys[1].1], || true);
        assert_eq!(dropped, vec![(keys[1].1, 1)]);
        assert!(storage.get(keys[1].0.as_bytes()).expect("get").is_none());
    }
}
