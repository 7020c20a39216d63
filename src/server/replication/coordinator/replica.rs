//! What this node serves to peers as a replica: replica writes (one by one
//! or a run merged in one storage write), replica reads (with the hints it
//! holds, as a fallback), and writes forwarded by a node that is not a
//! replica.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynakv_storage::{ObjectStore, StorageError};
use dynakv_versioning::Object;

use crate::server::cluster::rpc::{ForwardedWrite, Response};
use crate::server::config::QuorumMode;

use super::{Coordinator, Placement, Quorum, RequestOptions};

impl Coordinator {
    /// Serves a replica write from a peer: merge, or hold as a hint. A write for
    /// a partition this node does not hold (the sender's ring is older, or
    /// newer) is refused, so it is not counted and lands where it belongs.
    pub async fn on_replica_write(
        self: &Arc<Self>,
        key: Bytes,
        object: Object,
        hint_for: Option<String>,
    ) -> Response {
        if hint_for.is_none() && !self.holds_key(&key) {
            return Response::NotReplica;
        }
        let result = self
            .core
            .write_now(move |core| match hint_for {
                Some(target) if target != core.identity.name => {
                    core.storage.put_hint(&target, &key, &object).map(|()| true)
                }
                _ => core.storage.merge(&key, &object).map(|_| false),
            })
            .await;
        match result {
            Ok(hinted) => {
                if hinted {
                    self.core.metrics.hints_stored.inc();
                }
                Response::Ack
            }
            Err(e) => {
                self.core.note_storage_error(&e);
                Response::Error(e.to_string())
            }
        }
    }

    /// Serves replica writes that arrived together from one peer (none a
    /// hint): merged in one storage write, so the run costs one write-ahead
    /// log append instead of one per write. Answers in order; a write for a
    /// partition this node does not hold is refused, as in
    /// [`Coordinator::on_replica_write`]. When a key's lock stripe is busy (a
    /// transfer or bulk load holds it) or the batch fails, the writes are
    /// served one by one instead: a run never waits holding other stripes,
    /// and one bad key does not fail the others.
    pub async fn on_replica_writes(
        self: &Arc<Self>,
        writes: Vec<(Bytes, Object)>,
    ) -> Vec<Response> {
        let held: Vec<bool> = writes.iter().map(|(key, _)| self.holds_key(key)).collect();
        // The writes this node holds, moved (not copied) into the storage
        // call and handed back for the one-by-one path.
        let items: Vec<(Bytes, Object)> = writes
            .into_iter()
            .zip(&held)
            .filter_map(|(w, &h)| h.then_some(w))
            .collect();
        let (merged, items) = if items.len() > 1 {
            self.core
                .write_now(move |core| (core.storage.try_merge_batch(&items), items))
                .await
        } else {
            (None, items)
        };
        match merged {
            Some(Ok(_)) => {
                self.core
                    .metrics
                    .replica_writes_merged
                    .inc_by(items.len() as u64);
                return held
                    .into_iter()
                    .map(|h| {
                        if h {
                            Response::Ack
                        } else {
                            Response::NotReplica
                        }
                    })
                    .collect();
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, writes = items.len(), "a run of replica writes failed; serving them one by one");
            }
            None => {}
        }
        let mut items = items.into_iter();
        let mut answers = Vec::with_capacity(held.len());
        for h in held {
            answers.push(match h.then(|| items.next()).flatten() {
                Some((key, object)) => self.on_replica_write(key, object, None).await,
                None => Response::NotReplica,
            });
        }
        answers
    }

    /// Serves a replica read from a peer (with the hints it holds, as a fallback).
    pub async fn on_replica_read(self: &Arc<Self>, key: Bytes, hints_for: Vec<String>) -> Response {
        if hints_for.is_empty() && !self.holds_key(&key) {
            return Response::NotReplica;
        }
        let result = self
            .core
            .read_now(move |core| -> Result<Option<Object>, StorageError> {
                let mut object = core.storage.get(&key)?;
                for target in &hints_for {
                    if let Some(h) = core.storage.get_hint(target, &key)? {
                        object.get_or_insert_with(Object::new).sync(&h.object);
                    }
                }
                Ok(object)
            })
            .await;
        match result {
            Ok(o) => Response::Object(o),
            Err(e) => {
                self.core.note_storage_error(&e);
                Response::Error(e.to_string())
            }
        }
    }

    /// Serves a write forwarded by a non-replica.
    pub async fn on_coordinate_write(self: &Arc<Self>, write: ForwardedWrite) -> Response {
        let ForwardedWrite {
            key,
            context,
            version,
            w,
            strict,
            replace,
            increment,
            timeout_ms,
        } = write;
        let opts = RequestOptions {
            quorum: Quorum::Exactly(w),
            mode: if strict {
                QuorumMode::Strict
            } else {
                QuorumMode::Sloppy
            },
            timeout: Duration::from_millis(timeout_ms.clamp(1, 120_000)),
            replace,
            increment,
        };
        let ring = self.core.cluster.ring();
        let placement = Placement::of(&ring, &key, self.core.buckets.n_val_of(&key));
        // Only a serving replica coordinates: one that gave the partition up
        // (the forwarder's ring is older) must not count itself toward W.
        if !placement.replicas.iter().any(|r| r == self.core.me()) {
            return Response::NotReplica;
        }
        match self
            .put_as_replica(placement, key, context, version, opts)
            .await
        {
            Ok(ctx) => Response::Written(ctx),
            Err(e) => Response::Failed(e),
        }
    }
}
