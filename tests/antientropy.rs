//! Merkle-tree anti-entropy on a real three-node cluster: a wiped replica is
//! refilled, a partitioned replica catches up, identical replicas prove it
//! cheaply, and tombstones are purged once every replica holds them.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn repair(node: &TestNode) -> Value {
    node.client().repair().expect("repair")
}

/// Writes `count` keys `prefix-i` with `value(i)` through rotating coordinators,
/// from four threads, with `w=all`.
fn load(nodes: &[TestNode], prefix: &str, count: usize, value: impl Fn(usize) -> String + Sync) {
    std::thread::scope(|s| {
        for t in 0..4 {
            let value = &value;
            s.spawn(move || {
                let c = http();
                for i in (t..count).step_by(4) {
                    let url = format!(
                        "{}?w=all",
                        nodes[i % nodes.len()].key_url(&format!("{prefix}-{i}"))
                    );
                    let resp = put(&c, &url, value(i), None);
                    assert_eq!(resp.status(), 204, "write {i}");
                }
            });
        }
    });
}

fn value_of(i: usize) -> String {
    format!("{i:0>200}")
}

#[test]
fn a_wiped_replica_is_refilled_without_copying_more_than_it_lacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    const KEYS: usize = 20_000;
    load(&nodes, "k", KEYS, value_of);
    let lacked: usize = (0..KEYS)
        .map(|i| format!("k-{i}").len() + value_of(i).len())
        .sum();

    nodes[2].kill();
    std::fs::remove_dir_all(&nodes[2].data_dir).expect("wipe");
    nodes[2].start();
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    assert_eq!(nodes[2].status()["keys"], 0);

    let summary = repair(&nodes[2]);
    assert_eq!(summary["keys_repaired"], KEYS as u64, "{summary}");
    let bytes = summary["bytes_sent"].as_u64().expect("sent")
        + summary["bytes_received"].as_u64().expect("received");
    assert!(
        bytes <= 2 * lacked as u64,
        "repair moved {bytes} bytes for {lacked} bytes of missing data"
    );
    assert_eq!(nodes[2].status()["keys"], KEYS as u64);

    // Alone, the refilled replica serves every key.
    nodes[0].pause();
    nodes[1].pause();
    std::thread::scope(|s| {
        for t in 0..4 {
            let n3 = &nodes[2];
            s.spawn(move || {
                for i in (t..KEYS).step_by(4) {
                    let resp = get(&format!("{}?r=1", n3.key_url(&format!("k-{i}"))));
                    assert_eq!(resp.status(), 200, "k-{i} missing after repair");
                    assert_eq!(resp.text(), value_of(i));
                }
            });
        }
    });
    nodes[0].resume();
    nodes[1].resume();
}

#[test]
fn a_replica_that_drifted_during_a_partition_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &["--hint-window-s", "0"]);
    load(&nodes, "d", 500, |i| format!("old-{i}"));
    set_faults(
        &nodes[2],
        &json!({"drop_to": ["n1", "n2"], "drop_from": ["n1", "n2"]}),
    );
    for n in &nodes[..2] {
        set_faults(n, &json!({"drop_to": ["n3"], "drop_from": ["n3"]}));
    }
    let c = http();
    for i in 0..500 {
        let url = nodes[i % 2].key_url(&format!("d-{i}"));
        let ctx = ctx_of(&get(&url));
        assert_eq!(put(&c, &url, format!("new-{i}"), Some(&ctx)).status(), 204);
    }
    // n3 is back, but n1 and n2 still never call it, so none of their hints
    // reach it: only n3's own anti-entropy pass (its calls are answered) can
    // bring it up to date.
    set_faults(&nodes[2], &json!({}));
    for n in &nodes[..2] {
        set_faults(n, &json!({"drop_to": ["n3"]}));
    }
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    let summary = repair(&nodes[2]);
    assert!(
        summary["keys_repaired"].as_u64().expect("repaired") >= 500,
        "{summary}"
    );
    for n in &nodes {
        set_faults(n, &json!({}));
    }

    set_faults(&nodes[2], &json!({"drop_to": ["n1", "n2"]}));
    for i in 0..500 {
        let vals = values(&c, &format!("{}?r=1", nodes[2].key_url(&format!("d-{i}"))));
        assert_eq!(vals, vec![format!("new-{i}")], "d-{i} on n3");
    }
    set_faults(&nodes[2], &json!({}));
}

#[test]
fn identical_replicas_prove_it_with_a_few_kilobytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    load(&nodes, "same", 5_000, |i| format!("v{i}"));
    let summary = repair(&nodes[0]);
    assert_eq!(summary["keys_repaired"], 0, "{summary}");
    assert_eq!(summary["ranges_differing"], 0, "{summary}");
    assert!(
        summary["ranges_compared"].as_u64().expect("compared") >= 2048,
        "{summary}"
    );
    let bytes = summary["bytes_sent"].as_u64().expect("sent")
        + summary["bytes_received"].as_u64().expect("received");
    assert!(bytes < 4096, "identical replicas exchanged {bytes} bytes");
    let status = nodes[0].status();
    assert_eq!(
        status["anti_entropy"]["partitions_never_compared"], 0,
        "{status}"
    );
    assert!(metric(&nodes[0], "dynakv_anti_entropy_passes_total") >= 1.0);
}

#[test]
fn tombstones_are_purged_once_every_replica_holds_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(
        dir.path(),
        &["--tombstone-grace-s", "1", "--hint-window-s", "0"],
    );
    load(&nodes, "t", 100, |i| format!("v{i}"));
    let c = http();
    for i in 0..50 {
        let resp = delete(
            &format!("{}?w=all", nodes[0].key_url(&format!("t-{i}"))),
            None,
        );
        assert_eq!(resp.status(), 204);
    }
    std::thread::sleep(Duration::from_millis(1100));
    let summary = repair(&nodes[0]);
    assert_eq!(summary["tombstones_purged"], 50, "{summary}");
    for n in &nodes {
        assert_eq!(n.status()["keys"], 50, "{} still holds tombstones", n.name);
    }
    // Deleted keys stay deleted; the others are untouched.
    assert_eq!(
        get(&format!("{}?r=3", nodes[1].key_url("t-0"))).status(),
        404
    );
    assert_eq!(
        values(&c, &format!("{}?r=3", nodes[1].key_url("t-99"))),
        vec!["v99"]
    );
}

#[test]
fn anti_entropy_repairs_keys_whose_values_are_900_kib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    // 110 values of 900 KiB: about 99 MB, more than one node-to-node frame
    // (96 MiB) holds, so fetches must be cut by bytes, not by key count.
    const KEYS: usize = 110;
    let big = |i: usize| format!("{i:0>8}").repeat(115_200);
    load(&nodes, "big", KEYS, big);
    nodes[2].kill();
    std::fs::remove_dir_all(&nodes[2].data_dir).expect("wipe");
    nodes[2].start();
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    let summary = repair(&nodes[2]);
    assert_eq!(summary["keys_repaired"], KEYS as u64, "{summary}");
    let others: Vec<&TestNode> = nodes[..2].iter().collect();
    for i in (0..KEYS).step_by(11) {
        let vals = local_values(&nodes[2], &others, &format!("big-{i}"));
        assert!(vals.len() == 1 && vals[0] == big(i), "big-{i} not repaired");
    }
}
