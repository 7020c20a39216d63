//! A data directory written by the version before namespaces (object
//! records in format 1, whose versions carry no metadata) opens, and its
//! keys read back through the native API and the Riak API's default bucket.

mod common;

use common::*;
use dynakv_storage::{DigestEntry, codec};
use dynakv_versioning::DvvSet;

/// A version as format 1 stored it.
#[derive(Clone, serde::Serialize)]
struct VersionV1 {
    data: Option<bytes::Bytes>,
    content_type: String,
    timestamp_ms: u64,
}

/// Rewrites every object record of a stopped node's store in format 1.
fn downgrade_records(data_dir: &std::path::Path) -> usize {
    let opts = rocksdb::Options::default();
    let db = rocksdb::DB::open_cf(
        &opts,
        data_dir.join("db"),
        ["objects", "digests", "hints", "meta"],
    )
    .expect("open the store");
    let objects = db.cf_handle("objects").expect("objects");
    let digests = db.cf_handle("digests").expect("digests");
    let records: Vec<(Vec<u8>, Vec<u8>)> = db
        .iterator_cf(objects, rocksdb::IteratorMode::Start)
        .map(|r| r.expect("read"))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    for (skey, record) in &records {
        let object = codec::decode_object(record).expect("a current record");
        let old: DvvSet<VersionV1> = object.clone().map_values(|v| VersionV1 {
            data: v.data,
            content_type: v.content_type,
            timestamp_ms: v.timestamp_ms,
        });
        let mut bytes = codec::encode(&old);
        bytes[0] = codec::FORMAT_V1;
        db.put_cf(digests, skey, DigestEntry::of(&object, &bytes).encode())
            .expect("digest");
        db.put_cf(objects, skey, &bytes).expect("object");
    }
    db.flush_cf(objects).expect("flush");
    records.len()
}

#[test]
fn a_data_directory_of_the_format_before_namespaces_opens_with_its_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(dir.path(), "n1", ip(2));
    node.start();
    let c = http();
    for i in 0..20 {
        let r = c
            .put(node.key_url(&format!("k{i}")))
            .header("content-type", "text/plain")
            .body(format!("v{i}"))
            .send()
            .expect("put");
        assert_eq!(r.status(), 204);
    }
    node.stop();
    assert_eq!(downgrade_records(&node.data_dir), 20);

    node.start();
    for i in 0..20 {
        let r = c.get(node.key_url(&format!("k{i}"))).send().expect("get");
        assert_eq!(r.status(), 200, "k{i}");
        assert_eq!(r.text().expect("t"), format!("v{i}"));
        let r = c
            .get(format!("{}/buckets/default/keys/k{i}", node.url()))
            .send()
            .expect("riak get");
        assert_eq!(r.text().expect("t"), format!("v{i}"));
    }
    // An old record takes a write with its context, and a sibling without.
    let r = c.get(node.key_url("k0")).send().expect("get");
    let ctx = r.headers()[CONTEXT].to_str().expect("ctx").to_string();
    let r = c
        .put(node.key_url("k0"))
        .header(CONTEXT, ctx)
        .body("new")
        .send()
        .expect("put");
    assert_eq!(r.status(), 204);
    assert_eq!(
        c.get(node.key_url("k0"))
            .send()
            .expect("get")
            .text()
            .expect("t"),
        "new"
    );
    node.stop();
}
