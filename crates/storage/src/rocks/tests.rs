//! Tests of the RocksDB engine against its own details (the shared
//! contract suite is `tests/contract.rs`).

use std::path::Path;

use super::*;
use dynakv_versioning::{Version, VersionVector};

use dynakv_ring::TokenRange;

use crate::{ObjectStore, storage_key};

fn open(dir: &Path) -> Storage {
    Storage::open(&StorageConfig {
        path: dir.to_path_buf(),
        block_cache_mb: 8,
        sync_writes: false,
    })
    .expect("open")
}

#[test]
fn corrupt_record_is_an_error_never_data_and_a_merge_repairs_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    s.put_raw(Cf::Objects, &storage_key(b"k"), b"\x01garbage");
    assert!(matches!(s.get(b"k"), Err(StorageError::Corrupt { .. })));
    // Coordinated writes refuse to build on a corrupt record …
    let r = s.update(b"k", |o| -> Result<(), ()> {
        o.update(
            &VersionVector::new(),
            ActorId(1),
            Version::value("x", "", 1),
        );
        Ok(())
    });
    assert!(matches!(r, Err(StorageError::Corrupt { .. })));
    // … but a replica's copy replaces it.
    let mut good = Object::new();
    good.update(
        &VersionVector::new(),
        ActorId(2),
        Version::value("y", "", 2),
    );
    let out = s.merge(b"k", &good).expect("merge");
    assert!(out.changed);
    assert_eq!(s.get(b"k").expect("get"), Some(good));
}

#[test]
fn range_scans_resume_where_they_stopped_and_drops_remove_only_their_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let mut o = Object::new();
    o.update(
        &VersionVector::new(),
        ActorId(1),
        Version::value(vec![7u8; 100], "", 1),
    );
    for i in 0..3000 {
        s.merge(format!("k{i}").as_bytes(), &o).expect("merge");
    }
    let p = Ring::partition_of(dynakv_ring::token(b"k0"));
    let range = Ring::range_of(p);
    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    for _ in 0..100 {
        let b = s.scan_objects(range, after.as_deref(), 150).expect("scan");
        seen.extend(b.items.iter().map(|(k, _, _)| k.clone()));
        after = b.resume_after.clone();
        if b.done {
            break;
        }
    }
    let expected: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("k{i}").into_bytes())
        .filter(|k| Ring::partition_of(dynakv_ring::token(k)) == p)
        .collect();
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no key twice");
    let mut want = expected.clone();
    want.sort();
    assert_eq!(sorted, want);
    assert!(
        !s.scan_objects(range, None, 1)
            .expect("scan")
            .items
            .is_empty()
    );
    let before = s.key_count();
    assert_eq!(s.drop_range(range).expect("drop"), expected.len() as u64);
    assert!(
        s.scan_objects(range, None, 1)
            .expect("scan")
            .items
            .is_empty()
    );
    assert_eq!(s.key_count(), before - expected.len() as u64);
    assert!(s.get(b"k0").expect("get").is_none());
    // The last partition's range ends at the last token.
    let last = Ring::range_of(PARTITIONS - 1);
    s.drop_range(last).expect("drop last");
    assert!(
        s.scan_objects(last, None, 1)
            .expect("scan")
            .items
            .is_empty()
    );
}

#[test]
fn a_batch_merge_equals_merging_one_by_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, many) = (open(&dir.path().join("a")), open(&dir.path().join("b")));
    let version = |v: &str, actor: u64| {
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            ActorId(actor),
            Version::value(v.as_bytes().to_vec(), "", 1),
        );
        o
    };
    // Both stores already hold some keys, concurrently written elsewhere.
    for i in 0..50 {
        let o = version(&format!("old{i}"), 1);
        one.merge(format!("k{i}").as_bytes(), &o).expect("merge");
        many.merge(format!("k{i}").as_bytes(), &o).expect("merge");
    }
    let mut items: Vec<(Vec<u8>, Object)> = (0..100)
        .map(|i| (format!("k{i}").into_bytes(), version(&format!("new{i}"), 2)))
        .collect();
    items.push((b"k3".to_vec(), version("again", 3)));
    for (k, o) in &items {
        one.merge(k, o).expect("merge");
    }
    assert_eq!(many.merge_batch(&items).expect("batch"), 100);
    for i in 0..100 {
        let k = format!("k{i}");
        assert_eq!(
            one.get(k.as_bytes()).expect("get"),
            many.get(k.as_bytes()).expect("get"),
            "{k}"
        );
    }
    assert_eq!(
        many.get(b"k3").expect("get").expect("k3").live().len(),
        3,
        "nothing overwritten"
    );
    assert_eq!(many.key_count(), 100);
    assert_eq!(many.merge_batch(&items).expect("again"), 0, "idempotent");
}

#[test]
fn a_batch_merge_that_would_wait_for_a_busy_stripe_does_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut o = Object::new();
    o.update(
        &VersionVector::new(),
        ActorId(7),
        Version::value(b"v".to_vec(), "", 1),
    );
    let items = vec![(b"a".to_vec(), o.clone()), (b"b".to_vec(), o.clone())];
    {
        let _busy = store.lock(&storage_key(b"b"));
        assert!(store.try_merge_batch(&items).is_none());
        assert_eq!(store.get(b"a").expect("get"), None, "nothing written");
    }
    assert_eq!(
        store
            .try_merge_batch(&items)
            .expect("free")
            .expect("merged"),
        2
    );
    assert_eq!(store.get(b"a").expect("get"), Some(o.clone()));
    assert_eq!(store.get(b"b").expect("get"), Some(o));
}

/// An update of [`Storage::try_update_batch`] writing `value` with a
/// fixed actor, or (`refuse`) scribbling on the object and then refusing.
fn batch_update(key: &[u8], value: u8, refuse: bool) -> BatchUpdate<u8> {
    BatchUpdate {
        key: bytes::Bytes::copy_from_slice(key),
        apply: Box::new(move |o: &mut Object| {
            o.update(
                &VersionVector::new(),
                ActorId(9),
                Version::value(vec![value], "", u64::from(value)),
            );
            if refuse { Err(value) } else { Ok(()) }
        }),
    }
}

#[test]
fn a_batch_of_updates_is_written_whole_and_busy_keys_refusals_and_corrupt_keys_stay_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.put_raw(Cf::Objects, &storage_key(b"bad"), b"\x01garbage");
    let updates = vec![
        batch_update(b"a", 1, false),
        batch_update(b"bad", 2, false),
        batch_update(b"a", 3, false),
        batch_update(b"c", 4, false),
        batch_update(b"c", 5, true),
        batch_update(b"d", 6, true),
    ];
    assert!(
        ["a", "bad", "d"]
            .iter()
            .all(|k| stripe_of(&storage_key(k.as_bytes())) != stripe_of(&storage_key(b"c"))),
        "the test needs `c` alone on its stripe"
    );
    let busy = store.lock(&storage_key(b"c"));
    let answers = store.try_update_batch(updates);
    drop(busy);
    // The updates of the busy key come back untouched; the others are
    // applied without waiting for it.
    let mut outcomes = Vec::new();
    let mut back = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Updated::Done(outcome) => outcomes.push((i, outcome)),
            Updated::Busy(update) => back.push((i, update)),
        }
    }
    assert_eq!(back.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3, 4]);
    let (indices, updates): (Vec<usize>, Vec<_>) = back.into_iter().unzip();
    for (i, answer) in indices.into_iter().zip(store.try_update_batch(updates)) {
        let Updated::Done(outcome) = answer else {
            panic!("no stripe is busy now")
        };
        outcomes.push((i, outcome));
    }
    outcomes.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<_> = outcomes.into_iter().map(|(_, o)| o).collect();
    let values = |o: &Object| -> Vec<Vec<u8>> {
        o.live()
            .iter()
            .map(|v| v.data.as_deref().unwrap_or_default().to_vec())
            .collect()
    };
    let ok = |i: usize| match &outcomes[i] {
        Ok(Ok(o)) => values(o),
        other => panic!("update {i}: {other:?}"),
    };
    assert_eq!(ok(0), vec![vec![1]]);
    assert!(matches!(outcomes[1], Err(StorageError::Corrupt { .. })));
    // The second update of `a` builds on the first (a blind write:
    // siblings), as two `update` calls would.
    assert_eq!(ok(2), vec![vec![1], vec![3]]);
    assert_eq!(ok(3), vec![vec![4]]);
    assert!(matches!(outcomes[4], Ok(Err(5))));
    assert!(matches!(outcomes[5], Ok(Err(6))));
    let stored = |k: &[u8]| store.get(k).expect("get").map(|o| values(&o));
    assert_eq!(stored(b"a"), Some(vec![vec![1], vec![3]]));
    // A refusal after scribbling keeps what came before it.
    assert_eq!(stored(b"c"), Some(vec![vec![4]]));
    assert_eq!(stored(b"d"), None);
    assert_eq!(store.key_count(), 2);
    let mut digests = 0;
    store
        .for_each_digest(TokenRange::FULL, &mut |_, _, _| {
            digests += 1;
            true
        })
        .expect("digests");
    assert_eq!(digests, 2, "each written object has its digest");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// A batch leaves the store, and answers each update, exactly as the
    /// same updates applied one by one.
    #[test]
    fn a_batch_of_updates_is_the_same_as_one_by_one(
        ops in proptest::collection::vec((0u8..4, proptest::bool::weighted(0.25)), 1..24)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let batched = open(&dir.path().join("batched"));
        let single = open(&dir.path().join("single"));
        let keys = [b"k0", b"k1", b"k2", b"k3"];
        for k in [b"k1", b"k3"] {
            for s in [&batched, &single] {
                s.update(k, |o| -> Result<(), ()> {
                    o.update(&VersionVector::new(), ActorId(1), Version::value("old", "", 0));
                    Ok(())
                }).expect("storage").expect("seed");
            }
        }
        let updates = ops
            .iter()
            .enumerate()
            .map(|(i, &(k, refuse))| batch_update(keys[k as usize], i as u8, refuse))
            .collect();
        let outcomes: Vec<_> = batched
            .try_update_batch(updates)
            .into_iter()
            .map(|answer| match answer {
                Updated::Done(outcome) => outcome,
                Updated::Busy(_) => panic!("no stripe is busy"),
            })
            .collect();
        for (i, &(k, refuse)) in ops.iter().enumerate() {
            let one = batch_update(keys[k as usize], i as u8, refuse);
            let expected = single
                .update(&one.key, |o| (one.apply)(o))
                .expect("storage")
                .map(|((), o)| o);
            proptest::prop_assert_eq!(outcomes[i].as_ref().expect("storage"), &expected);
        }
        for k in keys {
            proptest::prop_assert_eq!(batched.get(k).expect("get"), single.get(k).expect("get"));
        }
        proptest::prop_assert_eq!(batched.key_count(), single.key_count());
        let digests = |s: &Storage| {
            let mut all = Vec::new();
            s.for_each_digest(TokenRange::FULL, &mut |t, k, e| {
                all.push((t, k.to_vec(), e));
                true
            })
            .expect("digests");
            all
        };
        proptest::prop_assert_eq!(digests(&batched), digests(&single));
    }
}

#[test]
fn identity_is_created_once_and_guards_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = {
        let s = open(dir.path());
        s.load_or_create_identity("n1").expect("identity")
    };
    let s = open(dir.path());
    assert_eq!(s.load_or_create_identity("n1").expect("identity"), first);
    assert!(matches!(
        s.load_or_create_identity("n2"),
        Err(StorageError::WrongNode { .. })
    ));
}

#[test]
fn hints_are_kept_per_target_and_deleted_once_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let o = Object::new();
    s.put_hint("n2", b"a", &o).expect("hint");
    s.put_hint("n3", b"b", &o).expect("hint");
    s.put_hint("n2", b"c", &o).expect("hint");
    assert_eq!(s.stats().hints, 3);
    assert_eq!(
        s.hint_targets().expect("targets"),
        vec!["n2".to_string(), "n3".to_string()]
    );
    let for_n2 = s.hints_for("n2", 10).expect("hints");
    let mut keys: Vec<Vec<u8>> = for_n2
        .iter()
        .map(|(_, h)| h.as_ref().expect("decodes").key.clone())
        .collect();
    keys.sort();
    assert_eq!(keys, vec![b"a".to_vec(), b"c".to_vec()]);
    for (id, h) in &for_n2 {
        let h = h.as_ref().expect("decodes");
        assert!(s.delete_hint(id, Some(&h.object)).expect("delete"));
    }
    assert!(s.hints_for("n2", 10).expect("hints").is_empty());
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.stats().hints, 1, "hint count is rebuilt at open");
}

#[test]
fn a_merged_hint_is_as_young_as_its_newest_write_and_a_cursor_walks_past_any_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    s.put_hint("n2", b"k", &Object::new()).expect("hint");
    let first = s
        .get_hint("n2", b"k")
        .expect("get")
        .expect("hint")
        .created_ms;
    std::thread::sleep(std::time::Duration::from_millis(5));
    s.put_hint("n2", b"k", &Object::new()).expect("hint");
    let merged = s
        .get_hint("n2", b"k")
        .expect("get")
        .expect("hint")
        .created_ms;
    assert!(merged > first, "age refreshed by the merge");
    for i in 0..10 {
        s.put_hint("n2", format!("x{i}").as_bytes(), &Object::new())
            .expect("hint");
    }
    // Walking three at a time visits every hint once, in order.
    let mut seen = Vec::new();
    let mut after: Option<HintId> = None;
    loop {
        let batch = s.hints_after("n2", after.as_ref(), 3).expect("hints");
        if batch.is_empty() {
            break;
        }
        after = batch.last().map(|(id, _)| id.clone());
        seen.extend(batch.into_iter().map(|(_, h)| h.expect("decodes").key));
    }
    assert_eq!(seen.len(), 11);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 11);
}

#[test]
fn hint_targets_are_listed_once_whatever_the_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    // Enough keys that some tokens start with 0xff.
    for i in 0..2000 {
        s.put_hint("n2", format!("k{i}").as_bytes(), &Object::new())
            .expect("hint");
    }
    s.put_hint("n3", b"x", &Object::new()).expect("hint");
    assert_eq!(
        s.hint_targets().expect("targets"),
        vec!["n2".to_string(), "n3".to_string()]
    );
    assert_eq!(prefix_successor(&[1, 0xff, 0xff]), Some(vec![2]));
    assert_eq!(prefix_successor(&[0xff]), None);
}

#[test]
fn hints_for_one_key_merge_and_a_changed_hint_is_not_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let mut a = Object::new();
    a.update(
        &VersionVector::new(),
        ActorId(1),
        Version::value("a", "", 1),
    );
    let mut b = Object::new();
    b.update(
        &VersionVector::new(),
        ActorId(2),
        Version::value("b", "", 2),
    );
    s.put_hint("n2", b"k", &a).expect("hint");
    let (id, read) = s.hints_for("n2", 10).expect("hints").remove(0);
    let read = read.expect("decodes");
    s.put_hint("n2", b"k", &b).expect("hint");
    assert_eq!(s.stats().hints, 1, "one hint per (target, key)");
    let merged = s.get_hint("n2", b"k").expect("get").expect("present");
    assert_eq!(merged.object.live().len(), 2);
    assert!(
        !s.delete_hint(&id, Some(&read.object)).expect("delete"),
        "changed since read"
    );
    assert!(s.delete_hint(&id, Some(&merged.object)).expect("delete"));
    assert_eq!(s.stats().hints, 0);
}
