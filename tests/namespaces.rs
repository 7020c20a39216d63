//! Namespaces on a real cluster: a bucket's `n_val` decides how many copies
//! its keys have (anti-entropy included), bucket types and properties are
//! cluster metadata that survive restarts and reach a node that joins later,
//! and a key listing streams with bounded memory.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn set_props(c: &Client, url: &str, props: Value) {
    let r = c
        .put(url)
        .header("content-type", "application/json")
        .body(json!({ "props": props }).to_string())
        .send()
        .expect("props");
    assert_eq!(r.status(), 204, "{:?}", r.text());
}

fn local_keys(n: &TestNode) -> u64 {
    n.status()["keys"].as_u64().expect("keys")
}

/// A repair pass on every node that compared ranges with all its peers.
fn repair_all(nodes: &[TestNode]) {
    for n in nodes {
        let ok = wait_until(Duration::from_secs(60), || {
            n.client().repair().is_ok_and(|p| {
                p["ranges_compared"].as_u64().unwrap_or(0) > 0
                    && p["peers_skipped"].as_array().is_some_and(Vec::is_empty)
            })
        });
        assert!(ok, "{} could not repair with every peer", n.name);
    }
}

fn first_replica(c: &Client, node: &TestNode, bucket: &str, key: &str) -> String {
    let p: Value = c
        .get(format!(
            "{}/buckets/{bucket}/keys/{key}/preflist",
            node.url()
        ))
        .send()
        .expect("preflist")
        .json()
        .expect("json");
    p["preflist"][0]["node"].as_str().expect("node").to_string()
}

#[test]
fn n_val_sets_the_copies_and_anti_entropy_keeps_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    let c = http();
    set_props(
        &c,
        &format!("{}/buckets/one/props", nodes[0].url()),
        json!({"n_val": 1}),
    );
    set_props(
        &c,
        &format!("{}/buckets/two/props", nodes[1].url()),
        json!({"n_val": 2}),
    );
    const K: usize = 60;
    for i in 0..K {
        for bucket in ["one", "two"] {
            let url = format!("{}/buckets/{bucket}/keys/k{i}", nodes[i % 3].url());
            let r = c
                .put(url)
                .body(format!("{bucket}-{i}"))
                .send()
                .expect("put");
            assert_eq!(r.status(), 204);
        }
    }
    // One copy of each key of `one`, two of each of `two`, and anti-entropy
    // spreads them no further.
    let total = |nodes: &[TestNode]| nodes.iter().map(local_keys).sum::<u64>();
    assert_eq!(total(&nodes), (K + 2 * K) as u64);
    repair_all(&nodes);
    assert_eq!(total(&nodes), (K + 2 * K) as u64);
    for i in 0..K {
        for bucket in ["one", "two"] {
            let url = format!("{}/buckets/{bucket}/keys/k{i}", nodes[(i + 1) % 3].url());
            let r = c.get(url).send().expect("get");
            assert_eq!(r.text().expect("t"), format!("{bucket}-{i}"));
        }
    }

    // Lowering a bucket's n_val: the copies outside it go to the replica
    // that keeps the key, and only then leave.
    for i in 0..K {
        let url = format!("{}/buckets/shrink/keys/k{i}", nodes[i % 3].url());
        assert_eq!(
            c.put(url)
                .body(format!("s-{i}"))
                .send()
                .expect("put")
                .status(),
            204
        );
    }
    assert_eq!(total(&nodes), (K + 2 * K + 3 * K) as u64);
    set_props(
        &c,
        &format!("{}/buckets/shrink/props", nodes[2].url()),
        json!({"n_val": 1}),
    );
    repair_all(&nodes);
    assert_eq!(total(&nodes), (K + 2 * K + K) as u64);
    for i in 0..K {
        let url = format!("{}/buckets/shrink/keys/k{i}", nodes[i % 3].url());
        assert_eq!(
            c.get(url).send().expect("get").text().expect("t"),
            format!("s-{i}")
        );
    }
    let r = c
        .delete(format!("{}/buckets/shrink/props", nodes[0].url()))
        .send()
        .expect("reset");
    assert_eq!(r.status(), 204);
    repair_all(&nodes);
    assert_eq!(total(&nodes), (K + 2 * K + 3 * K) as u64);
    set_props(
        &c,
        &format!("{}/buckets/shrink/props", nodes[2].url()),
        json!({"n_val": 1}),
    );
    repair_all(&nodes);
    assert_eq!(total(&nodes), (K + 2 * K + K) as u64);

    // n3 loses its disk. Its copies of `two` come back from the other
    // replica through anti-entropy; keys of `one` whose only copy it held
    // are gone, as n_val = 1 says.
    let lost_ones: usize = (0..K)
        .filter(|i| first_replica(&c, &nodes[0], "one", &format!("k{i}")) == "n3")
        .count();
    assert!(lost_ones > 0 && lost_ones < K, "{lost_ones}");
    nodes[2].kill();
    std::fs::remove_dir_all(&nodes[2].data_dir).expect("wipe");
    nodes[2].start();
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    repair_all(&nodes);
    let lost_shrunk = (0..K)
        .filter(|i| first_replica(&c, &nodes[0], "shrink", &format!("k{i}")) == "n3")
        .count();
    assert_eq!(
        total(&nodes),
        (K - lost_ones + 2 * K + K - lost_shrunk) as u64
    );
    for i in 0..K {
        let url = format!("{}/buckets/two/keys/k{i}?r=2", nodes[2].url());
        assert_eq!(
            c.get(url).send().expect("get").text().expect("t"),
            format!("two-{i}")
        );
    }
}

#[test]
fn bucket_types_and_props_survive_a_restart_and_reach_a_joiner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    let c = http();
    let url0 = nodes[0].url();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("DYNAKV_NODE", &url0)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    cli(&[
        "bucket-type",
        "create",
        "pairs",
        r#"{"props":{"n_val":2,"allow_mult":false}}"#,
    ]);
    // A created type is not usable until it is active.
    let r = c
        .put(format!("{}/types/pairs/buckets/b/keys/k", nodes[1].url()))
        .body("v")
        .send()
        .expect("put");
    assert_eq!(r.status(), 409, "{:?}", r.text());
    assert!(cli(&["bucket-type", "list"]).contains("pairs (not active)"));
    cli(&["bucket-type", "activate", "pairs"]);
    cli(&[
        "bucket",
        "props",
        "set",
        "pairs/b",
        r#"{"props":{"r":"one"}}"#,
    ]);
    cli(&[
        "bucket",
        "props",
        "set",
        "keep",
        r#"{"props":{"allow_mult":true}}"#,
    ]);
    // The datatype of an active type is fixed.
    let out = std::process::Command::new(BIN)
        .args([
            "bucket-type",
            "update",
            "pairs",
            r#"{"props":{"datatype":"set"}}"#,
        ])
        .env("DYNAKV_NODE", nodes[0].url())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));

    let check = |n: &TestNode| -> bool {
        let get = |path: &str| -> Value {
            c.get(format!("{}{path}", n.url()))
                .send()
                .ok()
                .and_then(|r| r.json().ok())
                .unwrap_or(Value::Null)
        };
        let p = get("/types/pairs/buckets/b/props");
        let k = get("/buckets/keep/props");
        p["props"]["n_val"] == json!(2)
            && p["props"]["r"] == json!("one")
            && p["props"]["allow_mult"] == json!(false)
            && k["props"]["allow_mult"] == json!(true)
    };
    for n in &nodes {
        assert!(
            wait_until(Duration::from_secs(10), || check(n)),
            "{}",
            n.name
        );
    }
    let r = c
        .put(format!("{}/types/pairs/buckets/b/keys/k", nodes[1].url()))
        .body("v")
        .send()
        .expect("put");
    assert_eq!(r.status(), 204);

    // A full restart: every node reads the metadata back from its disk.
    for n in nodes.iter_mut() {
        n.stop();
    }
    for n in nodes.iter_mut() {
        n.start();
    }
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    for n in &nodes {
        assert!(check(n), "{} lost its bucket metadata in a restart", n.name);
    }

    // A node that joins later gets it by gossip.
    let mut n4 = TestNode::new(dir.path(), "n4", ip(5));
    n4.args.extend(timing());
    n4.args.extend(["--seeds".to_string(), nodes[0].rpc_addr()]);
    n4.start();
    assert!(
        wait_until(Duration::from_secs(20), || check(&n4)),
        "n4 never got the bucket metadata"
    );
    let r = c
        .get(format!("{}/types/pairs/buckets/b/keys/k", n4.url()))
        .send()
        .expect("get");
    assert_eq!(r.text().expect("t"), "v");
    let types = cli(&["bucket-type", "status", "pairs"]);
    assert!(types.contains("pairs is active"), "{types}");

    // get, put and delete of a key of another bucket from the command line.
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env("DYNAKV_NODE", n4.url())
            .output()
            .expect("run")
    };
    let out = run(&["put", "--type", "pairs", "--bucket", "b", "cli", "hello"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "no context printed"
    );
    let out = run(&["put", "--type", "pairs", "--bucket", "b", "cli", "again"]);
    assert!(out.status.success());
    let out = run(&["get", "--type", "pairs", "--bucket", "b", "cli"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "again");
    let r = c
        .get(format!("{}/types/pairs/buckets/b/keys/cli", nodes[0].url()))
        .send()
        .expect("get");
    assert_eq!(r.text().expect("t"), "again");
    assert!(
        run(&["delete", "--type", "pairs", "--bucket", "b", "cli"])
            .status
            .success()
    );
    let out = run(&["get", "--type", "pairs", "--bucket", "b", "cli"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = run(&["get", "--type", "nosuch", "--bucket", "b", "cli"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Export names the bucket and type of a key outside the default bucket,
    // and load writes it back there.
    let out = run(&["export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = exported
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .find(|r| r["bucket"] == json!("b"))
        .unwrap_or_else(|| panic!("no record of bucket b in {exported}"));
    assert_eq!(
        (line["type"].clone(), line["key"].clone()),
        (json!("pairs"), json!("k"))
    );
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &exported).expect("write");
    let k_url = format!("{}/types/pairs/buckets/b/keys/k", nodes[0].url());
    assert_eq!(c.delete(&k_url).send().expect("delete").status(), 204);
    assert_eq!(c.get(&k_url).send().expect("get").status(), 404);
    let out = run(&["load", file.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.get(&k_url).send().expect("get").text().expect("t"), "v");
    // Loading again adds nothing.
    let out = run(&["load", file.to_str().expect("utf8")]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && err.contains("loaded 0 values"),
        "{err}"
    );

    // load --sst writes records back to their bucket too, placed by the
    // bucket's n_val: a new key of `pairs` (n_val 2) takes two copies.
    let all: Vec<&TestNode> = nodes.iter().chain(std::iter::once(&n4)).collect();
    let copies = || all.iter().map(|n| local_keys(n)).sum::<u64>();
    let before = copies();
    assert_eq!(c.delete(&k_url).send().expect("delete").status(), 204);
    let sst_file = dir.path().join("sst.jsonl");
    std::fs::write(
        &sst_file,
        format!("{exported}{{\"type\":\"pairs\",\"bucket\":\"b\",\"key\":\"bulk\",\"value\":\"loaded\"}}\n"),
    )
    .expect("write");
    let out = run(&["load", sst_file.to_str().expect("utf8"), "--sst"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.get(&k_url).send().expect("get").text().expect("t"), "v");
    let bulk = format!("{}/types/pairs/buckets/b/keys/bulk", n4.url());
    assert_eq!(
        c.get(&bulk).send().expect("get").text().expect("t"),
        "loaded"
    );
    assert_eq!(copies(), before + 2, "copies of one new key of n_val 2");
    // A record of a bucket type the cluster does not have is refused.
    std::fs::write(
        &sst_file,
        "{\"type\":\"nosuch\",\"bucket\":\"b\",\"key\":\"x\",\"value\":\"y\"}\n",
    )
    .expect("write");
    let out = run(&["load", sst_file.to_str().expect("utf8"), "--sst"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuch"), "{err}");
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_streamed_listing_of_many_keys_holds_memory_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    const KEYS: usize = 100_000;
    let file = dir.path().join("keys.csv");
    let csv: String = (0..KEYS).map(|i| format!("key{i:06},v\n")).collect();
    std::fs::write(&file, csv).expect("write");
    let urls: Vec<String> = nodes.iter().map(TestNode::url).collect();
    let out = std::process::Command::new(BIN)
        .args([
            "load",
            file.to_str().expect("utf8"),
            "--format",
            "csv",
            "--sst",
            "--node",
            &urls.join(","),
        ])
        .output()
        .expect("load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let pid = nodes[0].pid().as_raw() as u32;
    let before = rss_kib(pid);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (count, peak) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        let mut r = Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .expect("client")
            .get(format!(
                "{}/buckets/default/keys?keys=stream",
                nodes[0].url()
            ))
            .send()
            .expect("list");
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut body).expect("read");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut seen = BTreeSet::new();
        for chunk in serde_json::Deserializer::from_slice(&body).into_iter::<Value>() {
            for k in chunk.expect("chunk")["keys"].as_array().expect("keys") {
                seen.insert(k.as_str().expect("str").to_string());
            }
        }
        (seen.len(), sampler.join().expect("sampler"))
    });
    assert_eq!(count, KEYS);
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "listing {KEYS} keys: rss before {} MiB, peak {} MiB",
        before / 1024,
        peak / 1024
    );
    assert!(grew_mib < 64, "the node grew {grew_mib} MiB while listing");
}

#[test]
fn a_node_that_leaves_hands_over_the_keys_it_alone_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    // Four nodes, so one can leave with N = 3 kept.
    let mut n4 = TestNode::new(dir.path(), "n4", ip(5));
    n4.args.extend(timing());
    n4.args.extend([
        "--fault-injection".to_string(),
        "--seeds".to_string(),
        nodes[0].rpc_addr(),
    ]);
    n4.start();
    nodes.push(n4);
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    let c = http();
    set_props(
        &c,
        &format!("{}/buckets/solo/props", nodes[0].url()),
        json!({"n_val": 1}),
    );
    const K: usize = 90;
    for i in 0..K {
        let url = format!("{}/buckets/solo/keys/k{i}", nodes[i % 4].url());
        assert_eq!(
            c.put(url)
                .body(format!("v{i}"))
                .send()
                .expect("put")
                .status(),
            204
        );
    }
    let on_n3 = (0..K)
        .filter(|i| first_replica(&c, &nodes[0], "solo", &format!("k{i}")) == "n3")
        .count();
    assert!(on_n3 > 0, "no key of n3 to hand over");
    // n3 leaves: every key whose only copy it held goes to its new replica
    // before n3 stops.
    nodes[2].client().leave().expect("leave");
    assert!(
        wait_until(Duration::from_secs(120), || !nodes[2].alive()),
        "n3 did not stop after leaving"
    );
    nodes.remove(2);
    let rest: Vec<&TestNode> = nodes.iter().collect();
    wait_settled(&rest, Duration::from_secs(60));
    for i in 0..K {
        let url = format!("{}/buckets/solo/keys/k{i}", nodes[i % 3].url());
        let r = c.get(url).send().expect("get");
        assert_eq!(r.status(), 200, "k{i} lost when n3 left");
        assert_eq!(r.text().expect("t"), format!("v{i}"));
    }
    repair_all(&nodes);
    let total: u64 = nodes.iter().map(local_keys).sum();
    assert_eq!(total, K as u64, "one copy of each key, no more");
}

#[test]
fn after_a_removal_the_keys_of_an_n_val_2_bucket_are_whole_when_the_ring_settles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    let mut n4 = TestNode::new(dir.path(), "n4", ip(5));
    n4.args.extend(timing());
    n4.args.extend([
        "--fault-injection".to_string(),
        "--seeds".to_string(),
        nodes[0].rpc_addr(),
    ]);
    n4.start();
    nodes.push(n4);
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    let c = http();
    set_props(
        &c,
        &format!("{}/buckets/pair/props", nodes[0].url()),
        json!({"n_val": 2}),
    );
    const K: usize = 120;
    for i in 0..K {
        let url = format!("{}/buckets/pair/keys/k{i}", nodes[i % 4].url());
        assert_eq!(
            c.put(url)
                .body(format!("v{i}"))
                .send()
                .expect("put")
                .status(),
            204
        );
    }
    // n4 dies for good and is removed: for the partitions it was a first or
    // second replica of, another node moves up and has to get those keys.
    nodes[3].kill();
    assert!(wait_until(Duration::from_secs(20), || sees(
        &nodes[0], "n4", "down"
    )));
    let before = ring_state(&nodes[0]).expect("status").0;
    nodes[0].client().remove("n4").expect("remove");
    nodes.truncate(3);
    assert!(wait_until(Duration::from_secs(20), || {
        ring_state(&nodes[0]).is_some_and(|(epoch, _, _)| epoch > before)
    }));
    wait_settled(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(60));
    // A node moved up a partition's list is in transit like a new replica:
    // the partition switches only once it holds the keys its new place
    // needs. So the moment the ring settles (not an anti-entropy pass
    // later), both replicas of every key hold it: at least two copies a
    // key (a node moved down may still hold a stray copy).
    let copies = nodes.iter().map(local_keys).sum::<u64>();
    assert!(
        copies >= 2 * K as u64,
        "{copies} copies of {K} keys of an n_val=2 bucket when the ring settled"
    );
    // The anti-entropy pass the settled ring starts hands the strays to
    // their replicas: exactly two copies a key, within seconds.
    assert!(
        wait_until(Duration::from_secs(30), || {
            nodes.iter().map(local_keys).sum::<u64>() == 2 * K as u64
        }),
        "{} copies of {K} keys of an n_val=2 bucket",
        nodes.iter().map(local_keys).sum::<u64>()
    );
    for i in 0..K {
        for n in &nodes {
            let url = format!("{}/buckets/pair/keys/k{i}?r=1", n.url());
            assert_eq!(
                c.get(url).send().expect("get").text().expect("t"),
                format!("v{i}")
            );
        }
    }
}
