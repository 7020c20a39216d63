//! Quorum reads and writes on a real three-node cluster (N=3, W=2, R=2): read
//! your writes through any coordinator, siblings from concurrent writers,
//! sloppy quorum with hinted handoff across a crash, strict mode, read repair,
//! and a 2|1 partition healing with nothing lost.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn others(nodes: &[TestNode], i: usize) -> Vec<&TestNode> {
    nodes
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, n)| n)
        .collect()
}

fn hints_pending(node: &TestNode) -> u64 {
    node.status()["hints_pending"]
        .as_u64()
        .expect("hints_pending")
}

#[test]
fn every_read_through_another_coordinator_returns_the_latest_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let c = http();
    let mut contexts: Vec<Option<String>> = vec![None; 200];
    for i in 0..1000 {
        let k = i % 200;
        let key = format!("key-{k}");
        let writer = &nodes[i % 3];
        let reader = &nodes[(i + 1) % 3];
        let value = format!("value-{i}");
        let resp = put(
            &c,
            &writer.key_url(&key),
            value.clone(),
            contexts[k].as_deref(),
        );
        assert_eq!(resp.status(), 204, "write {i} via {}", writer.name);
        let resp = get(&reader.key_url(&key));
        assert_eq!(
            resp.status(),
            200,
            "read {i} via {} (siblings or missing)",
            reader.name
        );
        contexts[k] = Some(ctx_of(&resp));
        assert_eq!(resp.text(), value, "read {i} via {} is stale", reader.name);
    }
}

#[test]
fn concurrent_writes_through_two_coordinators_are_siblings_on_every_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let c = http();
    let base = ctx_of(&put(&c, &nodes[0].key_url("cart"), "v0", None));
    assert_eq!(
        put(&c, &nodes[0].key_url("cart"), "alice", Some(&base)).status(),
        204
    );
    assert_eq!(
        put(&c, &nodes[1].key_url("cart"), "bob", Some(&base)).status(),
        204
    );
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            wait_until(Duration::from_secs(10), || local_values(
                node,
                &others(&nodes, i),
                "cart"
            ) == ["alice", "bob"]),
            "{} holds {:?}",
            node.name,
            local_values(node, &others(&nodes, i), "cart")
        );
    }
    // A write with the merged context resolves them everywhere.
    let resp = get(&format!("{}?r=3", nodes[2].key_url("cart")));
    assert_eq!(resp.status(), 300);
    let merged = ctx_of(&resp);
    assert_eq!(
        put(&c, &nodes[2].key_url("cart"), "alice+bob", Some(&merged)).status(),
        204
    );
    for (i, node) in nodes.iter().enumerate() {
        assert!(wait_until(Duration::from_secs(10), || {
            local_values(node, &others(&nodes, i), "cart") == ["alice+bob"]
        }));
    }
}

/// Concurrent blind writes of the same keys through one coordinator: it
/// applies them locally in shared batches (group commit), the replicas
/// receive them in runs, both often naming one key several times. Every
/// acknowledged value ends up a sibling on every replica.
#[test]
fn concurrent_blind_writes_of_the_same_keys_keep_every_value_on_every_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let url = |key: &str| nodes[0].key_url(key);
    std::thread::scope(|s| {
        for t in 0..16 {
            let url = &url;
            s.spawn(move || {
                let c = http();
                for j in 0..8 {
                    let resp = put(
                        &c,
                        &url(&format!("hot-{}", j % 4)),
                        format!("{t}-{j}"),
                        None,
                    );
                    assert_eq!(resp.status(), 204, "write {t}-{j}");
                }
            });
        }
    });
    for k in 0..4 {
        let mut expected: Vec<String> = (0..16)
            .flat_map(|t| {
                (0..8)
                    .filter(move |j| j % 4 == k)
                    .map(move |j| format!("{t}-{j}"))
            })
            .collect();
        expected.sort();
        for (i, node) in nodes.iter().enumerate() {
            let held = || {
                let mut v = local_values(node, &others(&nodes, i), &format!("hot-{k}"));
                v.sort();
                v
            };
            assert!(
                wait_until(Duration::from_secs(10), || held() == expected),
                "{} holds {:?} of hot-{k}",
                node.name,
                held()
            );
        }
    }
    // The local updates went through the coordinator's group commit (how
    // many shared a batch depends on timing).
    let batches = metric(&nodes[0], "dynakv_local_write_batches_total");
    assert!(batches >= 1.0, "{batches} local write batches");
}

/// A run of replica writes sent to one node together, as a coordinator's
/// connection sends them: versions of one key from eight coordinators that
/// never saw each other, and writes of other keys. Every write is
/// acknowledged, the node holds every version, and the writes were stored as
/// runs (one storage write each).
#[test]
fn a_run_of_replica_writes_is_acknowledged_and_stored_whole() {
    use std::sync::Arc;

    use dynakv::server::cluster::rpc::{Faults, Request, Response, RpcClient, RpcShared};
    use dynakv::server::metrics::Metrics;
    use dynakv_versioning::{ActorId, Object, Version, VersionVector};

    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let object = |actor: u64, value: String| {
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            ActorId(actor),
            Version::value(value.into_bytes(), "text/plain", 1),
        );
        o
    };
    let mut writes: Vec<(String, Object)> = (1..=8)
        .map(|a| ("merged".to_string(), object(1000 + a, format!("v{a}"))))
        .collect();
    writes.extend((0..24).map(|i| (format!("other-{i}"), object(2000 + i, format!("o{i}")))));
    let addr: std::net::SocketAddr = nodes[0].rpc_addr().parse().expect("addr");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = RpcClient::new(
        Arc::new(RpcShared::new(
            "tester".into(),
            Some(format!("test-{}", dir.path().display())),
            Faults::default(),
            Arc::new(Metrics::new()),
        )),
        "127.0.0.1".parse().expect("ip"),
    );
    let timeout = Duration::from_secs(10);
    let pong = runtime.block_on(client.call(addr, None, Request::Ping, timeout));
    assert!(matches!(pong, Ok(Response::Pong)), "{pong:?}");
    // The writes are sent at once, and usually arrive together; on a loaded
    // machine the client may flush them in several writes that the node reads
    // one by one. Sending them again (merging an object twice changes
    // nothing) until the node served a run keeps the test about runs.
    for attempt in 1..=5 {
        let calls = writes.iter().map(|(key, object)| {
            let request = Request::ReplicaWrite {
                key: key.clone().into(),
                object: object.clone(),
                hint_for: None,
            };
            client.call(addr, None, request, timeout)
        });
        let answers = runtime.block_on(futures::future::join_all(calls));
        for ((key, _), answer) in writes.iter().zip(&answers) {
            assert!(matches!(answer, Ok(Response::Ack)), "{key}: {answer:?}");
        }
        if metric(&nodes[0], "dynakv_replica_writes_merged_total") > 0.0 {
            break;
        }
        assert!(attempt < 5, "no run of replica writes in 5 attempts");
    }
    let others = others(&nodes, 0);
    let mut merged = local_values(&nodes[0], &others, "merged");
    merged.sort();
    assert_eq!(merged, (1..=8).map(|a| format!("v{a}")).collect::<Vec<_>>());
    for i in 0..24 {
        assert_eq!(
            local_values(&nodes[0], &others, &format!("other-{i}")),
            [format!("o{i}")]
        );
    }
}

#[test]
fn a_killed_replica_misses_nothing_thanks_to_hinted_handoff() {
    // More than one delivery batch (500) per coordinator.
    const KEYS: usize = 1_100;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    let c = http();
    nodes[2].kill();
    // Writes and reads keep succeeding with one of three replicas down.
    for i in 0..KEYS {
        let coordinator = &nodes[i % 2];
        let resp = put(
            &c,
            &coordinator.key_url(&format!("k{i}")),
            format!("v{i}"),
            None,
        );
        assert_eq!(resp.status(), 204, "write {i} with n3 down");
        let resp = get(&nodes[(i + 1) % 2].key_url(&format!("k{i}")));
        assert_eq!(resp.status(), 200, "read {i} with n3 down");
    }
    let held = hints_pending(&nodes[0]) + hints_pending(&nodes[1]);
    assert!(held >= KEYS as u64, "only {held} hints held for n3");

    nodes[2].start();
    assert!(
        wait_until(Duration::from_secs(30), || hints_pending(&nodes[0]) == 0
            && hints_pending(&nodes[1]) == 0),
        "hints not drained: {} and {}",
        hints_pending(&nodes[0]),
        hints_pending(&nodes[1])
    );
    assert!(
        metric(&nodes[0], "dynakv_hints_delivered_total")
            + metric(&nodes[1], "dynakv_hints_delivered_total")
            >= KEYS as f64
    );

    // Alone, the returned node has every write it missed.
    nodes[0].pause();
    nodes[1].pause();
    for i in 0..KEYS {
        let resp = get(&format!("{}?r=1", nodes[2].key_url(&format!("k{i}"))));
        assert_eq!(resp.status(), 200, "k{i} missing on the returned node");
        assert_eq!(resp.text(), format!("v{i}"));
    }
    nodes[0].resume();
    nodes[1].resume();
}

#[test]
fn hints_a_replica_refuses_are_kept_until_it_takes_them() {
    const KEYS: usize = 600;
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let c = http();
    // n3 is up, but nothing n1 sends reaches it: n1 keeps a hint per write,
    // and every delivery fails.
    set_faults(&nodes[0], &json!({"drop_to": ["n3"]}));
    for i in 0..KEYS {
        let resp = put(
            &c,
            &nodes[0].key_url(&format!("r{i}")),
            format!("v{i}"),
            None,
        );
        assert_eq!(resp.status(), 204, "write {i}");
    }
    assert!(sees(&nodes[0], "n3", "up"));
    assert_eq!(hints_pending(&nodes[0]), KEYS as u64);
    // Delivery rounds come and go (250 ms apart); none deletes a hint.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(hints_pending(&nodes[0]), KEYS as u64);
    assert_eq!(metric(&nodes[0], "dynakv_hints_delivered_total"), 0.0);

    set_faults(&nodes[0], &json!({}));
    assert!(
        wait_until(Duration::from_secs(30), || hints_pending(&nodes[0]) == 0),
        "hints not drained: {}",
        hints_pending(&nodes[0])
    );
    assert_eq!(
        metric(&nodes[0], "dynakv_hints_delivered_total"),
        KEYS as f64
    );
    let others = others(&nodes, 2);
    for i in (0..KEYS).step_by(37) {
        assert_eq!(
            local_values(&nodes[2], &others, &format!("r{i}")),
            [format!("v{i}")],
            "r{i} on n3"
        );
    }
}

#[test]
fn strict_mode_refuses_without_a_quorum_and_sloppy_mode_accepts_w1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    let c = http();
    nodes[1].kill();
    nodes[2].kill();
    assert!(wait_until(Duration::from_secs(10), || {
        sees(&nodes[0], "n2", "down") && sees(&nodes[0], "n3", "down")
    }));

    let resp = put(
        &c,
        &format!("{}?quorum=strict", nodes[0].key_url("strict")),
        "v",
        None,
    );
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.error(), Some("quorum_unavailable"));
    // Refused before anything was stored.
    assert_eq!(
        get(&format!("{}?r=1", nodes[0].key_url("strict"))).status(),
        404
    );

    let resp = put(
        &c,
        &format!("{}?w=1", nodes[0].key_url("sloppy")),
        "v",
        None,
    );
    assert_eq!(resp.status(), 204);
    assert_eq!(
        values(&c, &format!("{}?r=1", nodes[0].key_url("sloppy"))),
        vec!["v"]
    );
    // The default w=2 cannot be met by one live node.
    assert_eq!(put(&c, &nodes[0].key_url("w2"), "v", None).status(), 503);
    assert!(metric(&nodes[0], "dynakv_quorum_failures_total{op=\"Put\"}") >= 2.0);
}

#[test]
fn a_replica_that_missed_a_write_holds_it_after_one_r3_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let c = http();
    let n3 = &nodes[2];
    set_faults(
        n3,
        &json!({"drop_to": ["n1", "n2"], "drop_from": ["n1", "n2"]}),
    );
    for n in &nodes[..2] {
        set_faults(n, &json!({"drop_to": ["n3"], "drop_from": ["n3"]}));
    }
    assert_eq!(
        put(&c, &nodes[0].key_url("missed"), "important", None).status(),
        204
    );
    // n1 coordinated the write and keeps a hint for n3 (hints for a replica
    // that is up are delivered whatever their age): n1 and n3 stay cut off
    // from each other (n1's faults cut both ways), so only n2's read repair
    // can bring n3 the write.
    set_faults(n3, &json!({}));
    set_faults(&nodes[1], &json!({}));
    assert!(
        local_values(n3, &others(&nodes, 2), "missed").is_empty(),
        "n3 got the write anyway"
    );

    let resp = get(&format!("{}?r=3", nodes[1].key_url("missed")));
    assert_eq!(resp.status(), 200);
    assert!(
        wait_until(Duration::from_secs(5), || local_values(
            n3,
            &others(&nodes, 2),
            "missed"
        ) == ["important"]),
        "read repair did not reach n3"
    );
    // Counted once n3's acknowledgement reaches n2.
    assert!(wait_until(Duration::from_secs(5), || metric(
        &nodes[1],
        "dynakv_read_repairs_total"
    ) >= 1.0));
    for n in &nodes {
        set_faults(n, &json!({}));
    }
}

#[test]
fn writes_on_both_sides_of_a_partition_become_siblings_everywhere_after_it_heals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let c = http();
    let keys: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    for k in &keys {
        assert_eq!(
            put(
                &c,
                &format!("{}?w=all", nodes[0].key_url(k)),
                "before",
                None
            )
            .status(),
            204
        );
    }
    // n3 alone on one side, n1 and n2 on the other.
    set_faults(
        &nodes[2],
        &json!({"drop_to": ["n1", "n2"], "drop_from": ["n1", "n2"]}),
    );
    for n in &nodes[..2] {
        set_faults(n, &json!({"drop_to": ["n3"], "drop_from": ["n3"]}));
    }
    for k in &keys {
        for (node, side) in [(&nodes[0], "majority"), (&nodes[2], "minority")] {
            let read = get(&format!("{}?r=1", node.key_url(k)));
            let ctx = ctx_of(&read);
            let resp = put(&c, &format!("{}?w=1", node.key_url(k)), side, Some(&ctx));
            assert_eq!(resp.status(), 204, "{side} write of {k}");
        }
    }
    for n in &nodes {
        set_faults(n, &json!({}));
    }
    assert!(
        wait_until(Duration::from_secs(30), || nodes
            .iter()
            .all(|n| hints_pending(n) == 0)),
        "hints not drained after the heal"
    );
    for (i, node) in nodes.iter().enumerate() {
        for k in &keys {
            assert_eq!(
                local_values(node, &others(&nodes, i), k),
                vec!["majority", "minority"],
                "{} lost a side's write of {k}",
                node.name
            );
        }
    }
}

#[test]
fn a_quorum_read_asks_r_replicas_not_all_n() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let c = http();
    for i in 0..20 {
        let url = nodes[0].key_url(&format!("r-{i}"));
        assert_eq!(put(&c, &url, "v", None).status(), 204);
    }
    let before = metric(&nodes[0], "dynakv_rpc_requests_total");
    let reads = 100;
    for i in 0..reads {
        let url = format!("{}?r=2", nodes[0].key_url(&format!("r-{}", i % 20)));
        assert_eq!(values(&c, &url), ["v"]);
    }
    let sent = metric(&nodes[0], "dynakv_rpc_requests_total") - before;
    // One remote read per GET (the coordinator is a replica and reads its own
    // copy), plus gossip and the odd speculative read; asking all three
    // replicas would send two per GET.
    assert!(
        sent >= reads as f64 && sent < 1.5 * reads as f64,
        "{sent} node-to-node requests for {reads} r=2 reads"
    );
}

#[test]
fn a_silent_replica_costs_a_read_a_speculative_retry_not_a_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let c = http();
    for i in 0..10 {
        let url = nodes[0].key_url(&format!("s-{i}"));
        assert_eq!(put(&c, &url, "v", None).status(), 204);
    }
    // n2 ignores n1's requests without closing anything: to n1 it is up (its
    // gossip still arrives) but never answers.
    set_faults(&nodes[1], &json!({"drop_from": ["n1"]}));
    for i in 0..20 {
        // Without a speculative read, a read that picked n2 would wait the
        // whole timeout for its second answer and fail.
        let url = format!(
            "{}?r=2&timeout_ms=3000",
            nodes[0].key_url(&format!("s-{}", i % 10))
        );
        assert_eq!(values(&c, &url), ["v"], "read {i}");
    }
    assert!(
        metric(&nodes[0], "dynakv_speculative_reads_total") >= 1.0,
        "no read asked a third replica (n2 was picked with probability 1/2 each time)"
    );
    set_faults(&nodes[1], &json!({}));
}

#[test]
fn a_replica_stopped_under_write_load_keeps_every_write_it_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    let coordinator = nodes[0].url();
    let stop_at = std::time::Instant::now() + Duration::from_millis(2500);
    // w=3 strict: a 204 means n3 itself acknowledged the write (a hint kept
    // elsewhere never counts), so each one must be on n3's disk.
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let node = coordinator.clone();
            std::thread::spawn(move || {
                let c = http();
                let mut acked = Vec::new();
                for j in 0.. {
                    if std::time::Instant::now() > stop_at {
                        break;
                    }
                    let key = format!("w{t}-{j}");
                    let url = format!("{node}/kv/{key}?w=3&quorum=strict");
                    if put(&c, &url, key.as_str(), None).status() == 204 {
                        acked.push(key);
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    // SIGTERM with replica writes in flight on n3's connections.
    assert!(nodes[2].stop().success(), "n3 did not stop cleanly");
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());

    nodes[2].start();
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    let n3 = &nodes[2];
    set_faults(n3, &json!({"drop_to": ["n1", "n2"]}));
    let c = http();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|k| values(&c, &format!("{}?r=1", n3.key_url(k))) != [k.as_str()])
        .collect();
    set_faults(n3, &json!({}));
    assert!(
        lost.is_empty(),
        "n3 acknowledged {} writes and lost {}: {:?}",
        acked.len(),
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}
