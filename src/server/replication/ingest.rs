//! Bulk load through SST ingestion (`dynakv load --sst`, `POST
//! /admin/ingest`): records become versioned objects on one replica of their
//! keys, and every replica (the first `n_val` of the key's partition, its
//! bucket's) takes them as SST files where its copy of a
//! partition is empty, or merges them elsewhere
//! (`dynakv_storage::Storage::ingest`). A batch covers many partitions with
//! the same replicas, so each replica ingests it at once (a pair of files per
//! run of consecutive partitions).
//!
//! A loaded value is an ordinary version: the replica that receives the
//! records gives each key a dot of an actor it mints for that key (as for any
//! new key), so siblings, read repair and anti-entropy treat it like a write.
//! A value the receiving replica already holds as a live version of its key
//! is not loaded again. A replica that is down does not get its share now;
//! anti-entropy gives it later, and the answer lists it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynakv_ring::{Ring, token};
use dynakv_storage::{IngestItem, ObjectStore};
use dynakv_versioning::{Object, Version, VersionVector};
use serde_json::{Value, json};

use crate::server::cluster::rpc::{Request, Response};
use crate::server::core::Core;

/// How long a replica may take to ingest one batch.
const INGEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A record to load: a key and its values (value, content type).
pub type LoadRecord = (Bytes, Vec<(Bytes, String)>);

/// Why a load was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// This node does not serve some of the partitions (its ring moved):
    /// nothing was stored; send the load to a replica.
    #[error("{0}")]
    NotReplica(String),
    /// A replica's storage failed, or no replica took part of the load.
    #[error("{0}")]
    Failed(String),
    /// The records break a limit: nothing was stored.
    #[error("{0}")]
    Invalid(String),
}

fn partition_of(key: &[u8]) -> usize {
    Ring::partition_of(token(key))
}

/// Turns `records` into objects on this node (a serving replica of every
/// record's partition) and has every replica of those partitions ingest
/// them. Returns the per-replica outcome as JSON.
pub async fn load(core: &Arc<Core>, records: Vec<LoadRecord>) -> Result<Value, LoadError> {
    let ring = core.cluster.ring();
    // A key lives on the first `n_val` replicas of its partition (its
    // bucket's): this node must be one of them, since it mints the key's
    // dot and skips the values its copy already holds.
    if let Some((key, _)) = records.iter().find(|(k, _)| {
        !ring
            .replicas(partition_of(k))
            .take(core.buckets.n_val_of(k))
            .any(|r| r == core.me())
    }) {
        return Err(LoadError::NotReplica(format!(
            "{} is not a replica of key {:?} (partition {})",
            core.me(),
            String::from_utf8_lossy(key),
            partition_of(key),
        )));
    }
    let now = crate::server::clock::now_ms();
    // A key given twice is one key with the values of both.
    let records = {
        let mut at: std::collections::HashMap<Bytes, usize> = Default::default();
        let mut merged: Vec<LoadRecord> = Vec::with_capacity(records.len());
        for (key, values) in records {
            match at.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    merged[*e.get()].1.extend(values);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    let key = e.key().clone();
                    e.insert(merged.len());
                    merged.push((key, values));
                }
            }
        }
        // The same value twice is loaded once.
        for (_, values) in merged.iter_mut().filter(|(_, v)| v.len() > 1) {
            let mut seen = std::collections::HashSet::with_capacity(values.len());
            values.retain(|v| seen.insert(v.clone()));
        }
        merged
    };
    // One object carries every value of its key: more than a key may hold
    // would be refused by any write, and could outgrow a node-to-node frame.
    let limit = core.config.max_siblings;
    if let Some((key, values)) = records.iter().find(|(_, v)| v.len() > limit) {
        return Err(LoadError::Invalid(format!(
            "key {:?} has {} values, over max_siblings ({limit})",
            String::from_utf8_lossy(key),
            values.len()
        )));
    }
    // Values this replica already holds are dropped, then every key gets a
    // dot of an actor minted for it, and is encoded once for every replica.
    let items = core
        .blocking(
            move |c| -> Result<Vec<IngestItem>, dynakv_storage::StorageError> {
                let mut items = Vec::with_capacity(records.len());
                // Keys of partitions this replica holds nothing of cannot be
                // stored yet: no read for them.
                let mut held: BTreeMap<usize, bool> = BTreeMap::new();
                for (key, _) in &records {
                    let p = partition_of(key);
                    if let std::collections::btree_map::Entry::Vacant(slot) = held.entry(p) {
                        slot.insert(c.storage.range_has_objects(Ring::range_of(p))?);
                    }
                }
                for (key, mut values) in records {
                    if held[&partition_of(&key)]
                        && let Some(stored) = c.storage.get(&key)?
                    {
                        let live = stored.live();
                        values.retain(|(v, ct)| {
                            !live
                                .iter()
                                .any(|l| l.data.as_ref() == Some(v) && &l.content_type == ct)
                        });
                    }
                    if values.is_empty() {
                        continue;
                    }
                    let actor = c.storage.actor_for(&key, &Object::new());
                    let mut object = Object::new();
                    for (value, content_type) in values {
                        object.update(
                            &VersionVector::new(),
                            actor,
                            Version::value(value, content_type, now),
                        );
                    }
                    items.push(IngestItem::new(key, &object));
                }
                Ok(items)
            },
        )
        .await
        .map_err(|e| LoadError::Failed(format!("reading the stored values: {e}")))?;
    let keys = items.len();
    // The items go to every replica of their key (the first `n_val` of its
    // partition's serving and target lists): grouped by replica set, each
    // group is one request per replica.
    let mut groups: BTreeMap<Vec<String>, Vec<IngestItem>> = BTreeMap::new();
    for item in items {
        let p = partition_of(&item.key);
        let n = core.buckets.n_val_of(&item.key);
        let mut targets: Vec<String> = ring
            .replicas(p)
            .take(n)
            .chain(ring.target_replicas(p).take(n))
            .map(str::to_string)
            .collect();
        targets.sort();
        targets.dedup();
        // The set (sorted above), not the preference order: partitions
        // with the same replicas in another order would otherwise make
        // interleaved groups, whose files overlap and must be compacted.
        groups.entry(targets).or_default().push(item);
    }
    let mut replicas: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut skipped: BTreeMap<String, String> = BTreeMap::new();
    for (mut targets, items) in groups {
        // This node first: if its own ingestion fails, nothing went to the
        // others, so the load can be sent again without storing a value twice.
        targets.sort_by_key(|t| t != core.me());
        let items = Arc::new(items);
        for target in targets {
            let outcome = if target == core.me() {
                let items = Arc::clone(&items);
                core.blocking(move |c| c.storage.ingest(&items))
                    .await
                    .map(|i| (i.sst as u64, i.merged as u64))
                    .map_err(|e| LoadError::Failed(format!("{}: {e}", core.me())))?
            } else {
                match send(core, &target, items.as_ref().clone()).await {
                    Ok(counts) => counts,
                    Err(reason) => {
                        tracing::warn!(replica = %target, %reason, "a replica missed a bulk load; anti-entropy will give it its share");
                        skipped.insert(target, reason);
                        continue;
                    }
                }
            };
            let entry = replicas.entry(target).or_default();
            entry.0 += outcome.0;
            entry.1 += outcome.1;
        }
    }
    let replicas: Vec<Value> = replicas
        .into_iter()
        .map(|(node, (sst, merged))| json!({"node": node, "sst": sst, "merged": merged}))
        .collect();
    let skipped: Vec<Value> = skipped
        .into_iter()
        .map(|(node, reason)| json!({"node": node, "reason": reason}))
        .collect();
    Ok(json!({"keys": keys, "replicas": replicas, "skipped": skipped}))
}

/// Most items, and bytes of encoded objects, in one `Ingest` request:
/// inside the protocol's 65,536 items and 96 MiB frames.
const CHUNK_ITEMS: usize = 50_000;
const CHUNK_BYTES: usize = 64 << 20;

/// Has another replica ingest `items`, in chunks the protocol carries:
/// (keys as SST, keys merged).
async fn send(core: &Core, target: &str, items: Vec<IngestItem>) -> Result<(u64, u64), String> {
    if core.is_down(target) {
        return Err("down".into());
    }
    let addr = core
        .cluster
        .rpc_addr(target)
        .ok_or_else(|| "no address".to_string())?;
    let mut chunks: Vec<Vec<IngestItem>> = vec![Vec::new()];
    let mut bytes = 0;
    for item in items {
        let size = item.key.len() + item.record.len() + item.digest.len();
        let last = chunks.last().map_or(0, Vec::len);
        if last > 0 && (last >= CHUNK_ITEMS || bytes + size > CHUNK_BYTES) {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(item);
        }
    }
    let (mut sst, mut merged) = (0, 0);
    for items in chunks.into_iter().filter(|c| !c.is_empty()) {
        match core
            .rpc
            .call(
                addr,
                Some(target),
                Request::Ingest { items },
                INGEST_TIMEOUT,
            )
            .await
        {
            Ok(Response::Ingested { sst: s, merged: m }) => {
                sst += s;
                merged += m;
            }
            Ok(other) => return Err(format!("{other:?}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((sst, merged))
}

/// Serves `Ingest` from the replica that built the objects.
///
/// The records are stored as the sender encoded them: it proved the cluster
/// secret, the frame's checksum held, and it stored the same bytes itself.
/// What is checked here is their shape (a digest entry that parses, a record
/// that is not empty); decoding and re-hashing every object on every replica
/// would cost a load a fifth of its speed.
pub async fn on_ingest(core: &Arc<Core>, items: Vec<IngestItem>) -> Response {
    if let Some(bad) = items
        .iter()
        .find(|i| i.record.is_empty() || dynakv_storage::DigestEntry::decode(&i.digest).is_none())
    {
        return Response::Error(format!(
            "a malformed ingest item for key {:?}",
            String::from_utf8_lossy(&bad.key)
        ));
    }
    let ring = core.cluster.ring();
    if items
        .iter()
        .any(|i| !ring.holds(core.me(), partition_of(&i.key)))
    {
        return Response::NotReplica;
    }
    match core.blocking(move |c| c.storage.ingest(&items)).await {
        Ok(i) => Response::Ingested {
            sst: i.sst as u64,
            merged: i.merged as u64,
        },
        Err(e) => {
            core.note_storage_error(&e);
            Response::Error(e.to_string())
        }
    }
}
