//! Bulk loads (`Storage::ingest`): an empty partition takes SST files whole;
//! a partition that holds data merges, so no stored version is lost.

mod common;

use common::live;
use dynakv_ring::{Ring, token};
use dynakv_storage::{IngestItem, Ingested, ObjectStore, Storage, StorageConfig};
use dynakv_versioning::{ActorId, Object, Version, VersionVector};

fn open(dir: &std::path::Path) -> Storage {
    Storage::open(&StorageConfig {
        path: dir.join("db"),
        block_cache_mb: 8,
        sync_writes: false,
    })
    .expect("open")
}

/// `count` keys that fall in `partition`.
fn keys_in(partition: usize, count: usize) -> Vec<Vec<u8>> {
    (0u64..)
        .map(|i| format!("key-{i}").into_bytes())
        .filter(|k| Ring::partition_of(token(k)) == partition)
        .take(count)
        .collect()
}

fn loaded(value: &str, actor: u64) -> Object {
    let mut o = Object::new();
    o.update(
        &VersionVector::new(),
        ActorId(actor),
        Version::value(value.to_string(), "text/plain", 1),
    );
    o
}

fn item(key: &[u8], object: &Object) -> IngestItem {
    IngestItem::new(bytes::Bytes::copy_from_slice(key), object)
}

#[test]
fn a_key_given_twice_in_one_ingestion_keeps_both_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let keys = keys_in(5, 3);
    let (a, b) = (loaded("first", 1 << 40), loaded("second", 2 << 40));
    let outcome = store
        .ingest(&[
            item(&keys[0], &a),
            item(&keys[1], &a),
            item(&keys[0], &b),
            item(&keys_in(6, 1)[0], &a),
        ])
        .expect("ingest");
    // Partition 5 (a key twice) was merged; partition 6 took a file.
    assert_eq!(outcome, Ingested { sst: 1, merged: 2 });
    let both = live(&store.get(&keys[0]).expect("get").expect("present"));
    assert_eq!(both, ["first", "second"]);
    assert_eq!(store.stats().keys, 3);
}

#[test]
fn an_empty_partition_takes_sst_files_and_a_full_one_merges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let range = Ring::range_of(7);
    let keys = keys_in(7, 200);
    let elsewhere = keys_in(9, 50);

    let items: Vec<IngestItem> = keys
        .iter()
        .chain(&elsewhere)
        .map(|k| item(k, &loaded(&format!("v-{}", k.len()), 1 << 40)))
        .collect();
    // Two empty partitions in one ingestion.
    assert_eq!(
        store.ingest(&items).expect("ingest"),
        Ingested {
            sst: 250,
            merged: 0
        }
    );
    for k in &keys {
        let o = store.get(k).expect("get").expect("loaded key present");
        assert_eq!(live(&o).len(), 1);
    }
    assert_eq!(store.stats().keys, 250);
    // The digests were ingested too: anti-entropy sees every key.
    let mut digests = 0;
    store
        .for_each_digest(range, &mut |_, _, _| {
            digests += 1;
            true
        })
        .expect("digests");
    assert_eq!(digests, 200);

    // The partition now holds data: a second load merges. A key written
    // meanwhile with two siblings keeps both, and gains the loaded value.
    let k = &keys[0];
    for (actor, value) in [(1, "mine"), (2, "theirs")] {
        store
            .update(k, |o| -> Result<(), ()> {
                o.update(
                    &VersionVector::new(),
                    ActorId(actor),
                    Version::value(value, "text/plain", 2),
                );
                Ok(())
            })
            .expect("storage")
            .expect("write");
    }
    let before = live(&store.get(k).expect("get").expect("present"));
    // Partition 7 holds data (merged); partition 11 is empty (SST).
    let again = vec![
        item(k, &loaded("reloaded", 2 << 40)),
        item(&keys_in(11, 1).remove(0), &loaded("new", 2 << 40)),
    ];
    assert_eq!(
        store.ingest(&again).expect("ingest"),
        Ingested { sst: 1, merged: 1 }
    );
    let after = live(&store.get(k).expect("get").expect("present"));
    for v in &before {
        assert!(after.contains(v), "{v} lost: {after:?}");
    }
    assert!(after.contains(&"reloaded".to_string()), "{after:?}");
    assert_eq!(store.stats().keys, 251);
}

#[test]
fn an_object_left_without_its_digest_is_repaired_by_the_next_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keys_in(3, 1).remove(0);
    let object = loaded("v", 1 << 40);
    {
        let store = open(dir.path());
        store.ingest(&[item(&key, &object)]).expect("ingest");
    }
    // A crash between the two ingestions: the object is there, its digest
    // is not.
    {
        let config = StorageConfig {
            path: dir.path().join("db"),
            block_cache_mb: 8,
            sync_writes: false,
        };
        let (opts, _cache) = dynakv_storage::db_options(&config);
        let db = rocksdb::DB::open_cf(&opts, &config.path, ["objects", "digests", "hints", "meta"])
            .expect("raw open");
        let digests = db.cf_handle("digests").expect("digests");
        db.delete_cf(digests, dynakv_storage::storage_key(&key))
            .expect("delete digest");
    }
    let store = open(dir.path());
    assert_eq!(store.stats().keys, 0, "keys are counted by their digests");
    // Anti-entropy brings the same object from a peer: the merge changes
    // nothing in the object, and writes the digest back.
    store.merge(&key, &object).expect("merge");
    assert_eq!(store.stats().keys, 1);
    let mut digests = 0;
    store
        .for_each_digest(Ring::range_of(3), &mut |_, _, _| {
            digests += 1;
            true
        })
        .expect("digests");
    assert_eq!(digests, 1);
}
