//! The `ObjectStore` contract, run against every implementation.

mod common;

use common::live;
use dynakv_ring::{TokenRange, token};
use dynakv_storage::{MemStore, ObjectStore, Storage, StorageConfig};
use dynakv_versioning::{ActorId, Object, Version, VersionVector};

fn write(store: &impl ObjectStore, key: &[u8], actor: u64, value: &str) -> Object {
    let ((), object) = store
        .update(key, |o| -> Result<(), ()> {
            let ctx = o.context();
            o.update(
                &ctx,
                ActorId(actor),
                Version::value(value.to_string(), "text/plain", 1),
            );
            Ok(())
        })
        .expect("storage")
        .expect("update");
    object
}

fn reads_see_writes(store: &impl ObjectStore) {
    assert_eq!(store.get(b"missing").expect("get"), None);
    let written = write(store, b"k", 1, "v1");
    assert_eq!(store.get(b"k").expect("get"), Some(written));
    write(store, b"k", 1, "v2");
    assert_eq!(
        live(&store.get(b"k").expect("get").expect("present")),
        vec!["v2"]
    );
    assert_eq!(store.key_count(), 1);
}

fn failed_update_writes_nothing(store: &impl ObjectStore) {
    let r = store.update(b"k", |o| {
        o.update(
            &VersionVector::new(),
            ActorId(1),
            Version::value("x", "", 1),
        );
        Err::<(), _>("refused")
    });
    assert_eq!(r.expect("storage"), Err("refused"));
    assert_eq!(store.get(b"k").expect("get"), None);
    assert_eq!(store.key_count(), 0);
}

fn merge_is_sync_and_reports_change(store: &impl ObjectStore) {
    write(store, b"k", 1, "ours");
    let mut theirs = Object::new();
    theirs.update(
        &VersionVector::new(),
        ActorId(2),
        Version::value("theirs", "", 1),
    );
    let out = store.merge(b"k", &theirs).expect("merge");
    assert!(out.changed);
    assert_eq!(live(&out.object), vec!["ours", "theirs"]);
    // Redelivery is harmless and changes nothing.
    let again = store.merge(b"k", &theirs).expect("merge");
    assert!(!again.changed);
    assert_eq!(again.object, out.object);
    // Merging into a missing key stores the incoming object.
    let fresh = store.merge(b"new", &theirs).expect("merge");
    assert!(fresh.changed);
    assert_eq!(store.get(b"new").expect("get"), Some(theirs));
    assert_eq!(store.key_count(), 2);
}

fn remove_deletes_object_and_digest(store: &impl ObjectStore) {
    write(store, b"k", 1, "v");
    store.remove(b"k").expect("remove");
    assert_eq!(store.get(b"k").expect("get"), None);
    let mut n = 0;
    store
        .for_each_digest(TokenRange::FULL, &mut |_, _, _| {
            n += 1;
            true
        })
        .expect("scan");
    assert_eq!(n, 0);
    assert_eq!(store.key_count(), 0);
}

fn digests_scan_in_token_order_and_follow_the_object(store: &impl ObjectStore) {
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        write(store, k.as_bytes(), 1, k);
    }
    let mut seen = Vec::new();
    store
        .for_each_digest(TokenRange::FULL, &mut |t, k, d| {
            seen.push((t, k.to_vec(), d.digest));
            true
        })
        .expect("scan");
    assert_eq!(seen.len(), keys.len());
    assert!(
        seen.windows(2)
            .all(|w| (w[0].0, &w[0].1) < (w[1].0, &w[1].1))
    );
    assert!(seen.iter().all(|(t, k, _)| *t == token(k)));

    // A sub-range returns exactly the keys whose tokens fall in it.
    let range = TokenRange {
        start: u64::MAX / 4,
        end: u64::MAX / 2,
    };
    let mut inside = Vec::new();
    store
        .for_each_digest(range, &mut |_, k, _| {
            inside.push(k.to_vec());
            true
        })
        .expect("scan");
    let expected: Vec<Vec<u8>> = seen
        .iter()
        .filter(|(t, _, _)| range.contains(*t))
        .map(|(_, k, _)| k.clone())
        .collect();
    assert_eq!(inside, expected);

    // A changed object changes its digest; an identical one keeps it.
    let before = seen[0].2;
    let key = seen[0].1.clone();
    write(store, &key, 2, "changed");
    let mut after = None;
    store
        .for_each_digest(TokenRange::FULL, &mut |_, k, d| {
            if k == key.as_slice() {
                after = Some(d.digest);
            }
            true
        })
        .expect("scan");
    assert_ne!(after, Some(before));
}

/// The tombstone time the digest column records for `key`.
fn tombstone_flag(store: &impl ObjectStore, key: &[u8]) -> Option<u64> {
    let mut flag = None;
    store
        .for_each_digest(TokenRange::FULL, &mut |_, k, e| {
            if k == key {
                flag = e.tombstone_since;
            }
            true
        })
        .expect("scan");
    flag
}

fn tombstone_only_objects_are_flagged_in_the_digest_column(store: &impl ObjectStore) {
    write(store, b"k", 1, "v");
    assert_eq!(
        tombstone_flag(store, b"k"),
        None,
        "a live value is not a tombstone"
    );
    store
        .update(b"k", |o| -> Result<(), ()> {
            let ctx = o.context();
            o.update(&ctx, ActorId(1), Version::tombstone(1234));
            Ok(())
        })
        .expect("storage")
        .expect("delete");
    assert_eq!(tombstone_flag(store, b"k"), Some(1234));
}

fn concurrent_updates_of_one_key_are_all_kept(store: &impl ObjectStore) {
    std::thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                for i in 0..50 {
                    store
                        .update(b"hot", |o| -> Result<(), ()> {
                            // Blind writes: every one must survive as a sibling.
                            o.update(
                                &VersionVector::new(),
                                ActorId(1),
                                Version::value(format!("{t}-{i}"), "", 1),
                            );
                            Ok(())
                        })
                        .expect("storage")
                        .expect("update");
                }
            });
        }
    });
    assert_eq!(
        store
            .get(b"hot")
            .expect("get")
            .expect("present")
            .live()
            .len(),
        200
    );
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod mem {
            $(#[test] fn $name() { super::$name(&dynakv_storage::MemStore::new()); })*
        }
        mod rocks {
            $(#[test] fn $name() {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = super::open(dir.path());
                super::$name(&store);
            })*
        }
    };
}

fn open(path: &std::path::Path) -> Storage {
    Storage::open(&StorageConfig {
        path: path.to_path_buf(),
        block_cache_mb: 8,
        sync_writes: false,
    })
    .expect("open")
}

contract!(
    reads_see_writes,
    failed_update_writes_nothing,
    merge_is_sync_and_reports_change,
    remove_deletes_object_and_digest,
    digests_scan_in_token_order_and_follow_the_object,
    concurrent_updates_of_one_key_are_all_kept,
    tombstone_only_objects_are_flagged_in_the_digest_column,
);

#[test]
fn rocks_objects_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = open(dir.path());
        for i in 0..100 {
            write(&s, format!("k{i}").as_bytes(), 1, "v");
        }
    }
    let s = open(dir.path());
    assert_eq!(s.key_count(), 100);
    for i in 0..100 {
        assert!(s.get(format!("k{i}").as_bytes()).expect("get").is_some());
    }
    let _ = MemStore::new();
}
