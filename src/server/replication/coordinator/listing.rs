//! Key listing: every partition walked once, in ring order, on one replica
//! that holds the namespace's keys, in batches of at most `LIST_BATCH` keys.
//! The batches go to the caller through a channel of a few batches, so a
//! listing of any size holds a bounded number of keys in memory, and a
//! client that reads slowly slows the walk instead of growing a buffer.
//!
//! What it costs: a scan of the digest column family of every partition on
//! one replica (a few bytes per stored key, of every bucket, since a
//! bucket's keys are spread over the whole ring), as in Riak, where listing
//! keys is meant for maintenance, not for requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynakv_ring::{PARTITIONS, Ring};
use tokio::sync::mpsc;

use crate::server::cluster::rpc::{Request, Response};

use super::{CoordError, Coordinator};

/// Most keys per step of a listing (one RPC answer, one channel message).
pub const LIST_BATCH: usize = 1000;

/// How long one step may take on a replica.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

impl Coordinator {
    /// Lists the stored keys that start with `prefix` (an encoded
    /// namespace; empty for every key), whose bucket keeps `n_val` replicas:
    /// batches of keys (as stored) arrive on the returned channel, then the
    /// channel closes; a partition no replica could list ends it with an
    /// error.
    pub fn list_keys(
        self: &Arc<Self>,
        prefix: Vec<u8>,
        n_val: usize,
    ) -> mpsc::Receiver<Result<Vec<Bytes>, CoordError>> {
        let (tx, rx) = mpsc::channel(4);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            for partition in 0..PARTITIONS {
                if let Err(e) = this.list_partition(partition, &prefix, n_val, &tx).await {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        rx
    }

    /// Lists one partition on the first replica (of the key's first `n_val`)
    /// that answers, resuming on the next one where a replica fails.
    async fn list_partition(
        &self,
        partition: usize,
        prefix: &[u8],
        n_val: usize,
        tx: &mpsc::Sender<Result<Vec<Bytes>, CoordError>>,
    ) -> Result<(), CoordError> {
        let ring = self.core.cluster.ring();
        if ring.is_empty() {
            return Err(CoordError::NotReady);
        }
        let replicas: Vec<String> = ring
            .replicas(partition)
            .take(n_val.max(1))
            .map(str::to_string)
            .collect();
        let mut after: Option<Bytes> = None;
        let mut tried = 0;
        let mut candidates = replicas.iter().filter(|r| !self.core.is_down(r));
        let mut replica = candidates.next();
        while let Some(name) = replica {
            let step = self.list_step(name, partition, prefix, after.clone()).await;
            match step {
                Some((keys, resume, done)) => {
                    if !keys.is_empty() && tx.send(Ok(keys)).await.is_err() {
                        return Ok(());
                    }
                    if done {
                        return Ok(());
                    }
                    after = resume;
                }
                None => {
                    tried += 1;
                    replica = candidates.next();
                }
            }
        }
        Err(CoordError::QuorumUnavailable {
            needed: 1,
            acked: 0,
        })
        .inspect_err(|_| {
            tracing::warn!(partition, tried, "no replica could list a partition");
        })
    }

    /// One step of a partition's listing on `name` (this node or a peer).
    async fn list_step(
        &self,
        name: &str,
        partition: usize,
        prefix: &[u8],
        after: Option<Bytes>,
    ) -> Option<(Vec<Bytes>, Option<Bytes>, bool)> {
        if name == self.core.me() {
            return self
                .scan_keys(partition, prefix, after, LIST_BATCH)
                .await
                .ok();
        }
        let addr = self.core.cluster.rpc_addr(name)?;
        let request = Request::ListKeys {
            partition: partition as u16,
            prefix: Bytes::copy_from_slice(prefix),
            after,
            limit: LIST_BATCH as u32,
        };
        match self
            .core
            .rpc
            .call(addr, Some(name), request, STEP_TIMEOUT)
            .await
        {
            Ok(Response::Keys {
                keys,
                resume_after,
                done,
            }) => Some((keys, resume_after, done)),
            _ => None,
        }
    }

    async fn scan_keys(
        &self,
        partition: usize,
        prefix: &[u8],
        after: Option<Bytes>,
        limit: usize,
    ) -> Result<(Vec<Bytes>, Option<Bytes>, bool), String> {
        let prefix = prefix.to_vec();
        self.core
            .blocking(move |core| {
                core.storage
                    .scan_keys(Ring::range_of(partition), &prefix, after.as_deref(), limit)
                    .map(|b| {
                        (
                            b.keys.into_iter().map(Bytes::from).collect(),
                            b.resume_after.map(Bytes::from),
                            b.done,
                        )
                    })
                    .map_err(|e| e.to_string())
            })
            .await
    }

    /// Serves `ListKeys` from a peer.
    pub async fn on_list_keys(
        &self,
        partition: u16,
        prefix: Bytes,
        after: Option<Bytes>,
        limit: u32,
    ) -> Response {
        let limit = (limit as usize).clamp(1, LIST_BATCH);
        match self
            .scan_keys(partition as usize, &prefix, after, limit)
            .await
        {
            Ok((keys, resume_after, done)) => Response::Keys {
                keys,
                resume_after,
                done,
            },
            Err(e) => Response::Error(e),
        }
    }
}
