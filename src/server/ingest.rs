//! Bulk load through SST ingestion (`dynakv load --sst`, `POST
//! /admin/ingest`): one partition's records become versioned objects on one
//! of its replicas, and every replica of the partition takes them as SST
//! files when its copy is empty, or merges them otherwise
//! (`dynakv_storage::Storage::ingest`).
//!
//! A loaded value is an ordinary version: the replica that receives the
//! records gives each key a dot of an actor it mints for that key (as for any
//! new key), so siblings, read repair and anti-entropy treat it like a write.
//! A replica that is down does not get its share now; anti-entropy gives it
//! later, and the answer lists it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynakv_ring::Ring;
use dynakv_storage::{Ingested, ObjectStore};
use dynakv_versioning::{Object, Version, VersionVector};
use serde_json::{Value, json};

use crate::server::core::Core;
use crate::server::rpc::{Request, Response};

/// How long a replica may take to ingest one partition.
const INGEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a partition's load was refused.
#[derive(Debug)]
pub enum LoadError {
    /// This node does not serve the partition (its ring moved): nothing was
    /// stored; send the load to a replica.
    NotReplica(String),
    /// No replica took the load.
    NoReplica(String),
}

/// A record to load: a key and its values (value, content type).
pub type LoadRecord = (Bytes, Vec<(Bytes, String)>);

/// Turns records of `partition` into objects (on this node, a serving
/// replica) and has every replica of the partition ingest them. Returns the
/// per-replica outcome as JSON, or why the load was refused.
pub async fn load_partition(
    core: &Arc<Core>,
    partition: usize,
    records: Vec<LoadRecord>,
) -> Result<Value, LoadError> {
    let ring = core.cluster.ring();
    if !ring.replicas(partition).any(|r| r == core.me()) {
        return Err(LoadError::NotReplica(format!(
            "{} does not serve partition {partition}",
            core.me()
        )));
    }
    let now = crate::server::cluster::now_ms();
    // A value this replica already holds as a live version of its key is
    // not loaded again (as `dynakv load` does on the write path), so loading
    // a file twice adds nothing.
    let records = core
        .blocking(
            move |c| -> Result<Vec<LoadRecord>, dynakv_storage::StorageError> {
                let mut fresh = Vec::with_capacity(records.len());
                for (key, mut values) in records {
                    if let Some(stored) = c.storage.get(&key)? {
                        let live = stored.live();
                        values.retain(|(v, ct)| {
                            !live
                                .iter()
                                .any(|l| l.data.as_ref() == Some(v) && &l.content_type == ct)
                        });
                    }
                    if !values.is_empty() {
                        fresh.push((key, values));
                    }
                }
                Ok(fresh)
            },
        )
        .await
        .map_err(|e| LoadError::NoReplica(format!("reading partition {partition}: {e}")))?;
    if records.is_empty() {
        return Ok(json!({"partition": partition, "keys": 0, "replicas": [], "skipped": []}));
    }
    let items: Vec<(Bytes, Object)> = records
        .into_iter()
        .map(|(key, values)| {
            let actor = core.storage.actor_for(&key, &Object::new());
            let mut object = Object::new();
            for (value, content_type) in values {
                object.update(
                    &VersionVector::new(),
                    actor,
                    Version::value(value, content_type, now),
                );
            }
            (key, object)
        })
        .collect();
    let keys = items.len();
    let items = Arc::new(items);
    let targets: Vec<String> = ring
        .replicas(partition)
        .chain(ring.pending(partition))
        .map(str::to_string)
        .collect();
    let mut replicas = Vec::new();
    let mut skipped = Vec::new();
    for target in targets {
        let outcome = if target == core.me() {
            let items = Arc::clone(&items);
            let range = Ring::range_of(partition);
            core.blocking(move |c| c.storage.ingest(range, &items))
                .await
                .map(|i| match i {
                    Ingested::Sst(n) => (true, n as u64),
                    Ingested::Merged(n) => (false, n as u64),
                })
                .map_err(|e| e.to_string())
        } else if core.is_down(&target) {
            Err("down".to_string())
        } else {
            match core.cluster.rpc_addr(&target) {
                None => Err("no address".to_string()),
                Some(addr) => {
                    let request = Request::Ingest {
                        partition: partition as u16,
                        items: items.as_ref().clone(),
                    };
                    match core
                        .rpc
                        .call(addr, Some(&target), request, INGEST_TIMEOUT)
                        .await
                    {
                        Ok(Response::Ingested { sst, keys }) => Ok((sst, keys)),
                        Ok(other) => Err(format!("{other:?}")),
                        Err(e) => Err(e.to_string()),
                    }
                }
            }
        };
        match outcome {
            Ok((sst, n)) => replicas.push(json!({"node": target, "sst": sst, "keys": n})),
            Err(reason) => {
                tracing::warn!(partition, replica = %target, %reason, "a replica missed a bulk load; anti-entropy will give it its share");
                skipped.push(json!({"node": target, "reason": reason}));
            }
        }
    }
    if replicas.is_empty() {
        return Err(LoadError::NoReplica(format!(
            "no replica of partition {partition} took the load"
        )));
    }
    Ok(json!({"partition": partition, "keys": keys, "replicas": replicas, "skipped": skipped}))
}

/// Serves `Ingest` from the replica that built the objects.
pub async fn on_ingest(core: &Arc<Core>, partition: u16, items: Vec<(Bytes, Object)>) -> Response {
    let p = usize::from(partition);
    if !core.cluster.ring().holds(core.me(), p) {
        return Response::NotReplica;
    }
    let range = Ring::range_of(p);
    match core
        .blocking(move |c| c.storage.ingest(range, &items))
        .await
    {
        Ok(Ingested::Sst(n)) => Response::Ingested {
            sst: true,
            keys: n as u64,
        },
        Ok(Ingested::Merged(n)) => Response::Ingested {
            sst: false,
            keys: n as u64,
        },
        Err(e) => {
            core.note_storage_error(&e);
            Response::Error(e.to_string())
        }
    }
}
