//! Elastic membership with real processes (SPEC §6 "Membership changes"): nodes
//! join, leave and are removed while clients write and read, and no read of an
//! acknowledged write ever answers 404.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use dynakv_client::{ClientBuilder, Error, Options, Quorum, Sibling};
use serde_json::{Value, json};

/// A node that joins the cluster seeded by `seed`.
fn joiner(
    root: &std::path::Path,
    name: &str,
    ipn: u8,
    seed: &TestNode,
    extra: &[&str],
) -> TestNode {
    let mut n = TestNode::new(root, name, ip(ipn));
    n.args.extend(timing());
    n.args.push("--fault-injection".into());
    n.args.extend(extra.iter().map(|s| s.to_string()));
    n.args.push("--seeds".into());
    n.args.push(seed.rpc_addr());
    n
}

/// Writes `count` keys (`{prefix}{i}`) at w=2 round-robin through `urls`.
fn preload(urls: &[String], prefix: &str, count: usize) -> Vec<String> {
    let client = http();
    (0..count)
        .map(|i| {
            let key = format!("{prefix}{i}");
            let url = format!("{}/kv/{key}?w=2", urls[i % urls.len()]);
            let resp = put(&client, &url, format!("value-{i}"), None);
            assert_eq!(resp.status(), 204, "preload {key}");
            key
        })
        .collect()
}

/// Clients writing new keys (w=2) and reading acknowledged ones (r=2) through
/// `urls` until stopped; every acknowledged key is recorded, every 404 of one
/// is a lost write.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Vec<String>>>,
    reads: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(urls: Vec<String>, initial: Vec<String>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(initial));
        let lost = Arc::new(Mutex::new(Vec::new()));
        let reads = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut threads = Vec::new();
        {
            let (stop, acked, urls) = (stop.clone(), acked.clone(), urls.clone());
            threads.push(std::thread::spawn(move || {
                // Requests rotate over every node (round-robin in the client).
                let client = ClientBuilder::new(urls).build_blocking().expect("client");
                let w2 = Options::quorum(Quorum::Exactly(2));
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && i < 200_000 {
                    let key = format!("live-{i}");
                    let value = Sibling::new(format!("v{i}"), "application/octet-stream");
                    if client.put_with(key.as_bytes(), value, None, &w2).is_ok() {
                        acked.lock().expect("acked").push(key);
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        for t in 0..2 {
            let (stop, acked, lost, reads, urls) = (
                stop.clone(),
                acked.clone(),
                lost.clone(),
                reads.clone(),
                urls.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let client = ClientBuilder::new(urls).build_blocking().expect("client");
                let r2 = Options::quorum(Quorum::Exactly(2));
                let mut i = t;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && i < 2_000_000 {
                    let key = {
                        let a = acked.lock().expect("acked");
                        if a.is_empty() {
                            None
                        } else {
                            Some(a[(i * 7919) % a.len()].clone())
                        }
                    };
                    i += 2;
                    let Some(key) = key else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    match client.get_with(key.as_bytes(), &r2) {
                        Ok(_) => {
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::NotFound { .. }) => {
                            reads.fetch_add(1, Ordering::Relaxed);
                            lost.lock().expect("lost").push(key);
                        }
                        // Unavailable for a moment: not an answer either way.
                        Err(_) => {}
                    }
                }
            }));
        }
        Load {
            stop,
            acked,
            lost,
            reads,
            threads,
        }
    }

    /// Stops the clients; returns the acknowledged keys. Panics if any read of
    /// an acknowledged key answered 404.
    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let lost = self.lost.lock().expect("lost").clone();
        let reads = self.reads.load(Ordering::Relaxed);
        assert!(reads > 0, "the readers made no read");
        assert!(
            lost.is_empty(),
            "{} of {reads} reads of acknowledged keys answered 404: {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        self.acked.lock().expect("acked").clone()
    }
}

fn status_json(node: &TestNode) -> Value {
    node.status()
}

/// Every key reads back (r=2) through `node`.
fn assert_all_readable(node: &TestNode, keys: &[String]) {
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| get(&format!("{}?r=2", node.key_url(k))).status() != 200)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} keys not readable: {:?}",
        missing.len(),
        keys.len(),
        &missing[..missing.len().min(10)]
    );
}

fn ownership_is_fair(node: &TestNode, members: usize) {
    let s = status_json(node);
    let own = s["ownership"].as_object().expect("ownership").clone();
    assert_eq!(own.len(), members, "{own:?}");
    let fair = 1.0 / members as f64;
    for (name, share) in own {
        let share = share.as_f64().expect("share");
        assert!(
            (share / fair - 1.0).abs() <= 0.1,
            "{name} owns {share}, fair is {fair}"
        );
    }
}

#[test]
fn growing_three_to_five_under_load_loses_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = formed(root.path(), &[]);
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let initial = preload(&urls, "pre-", 1500);
    let load = Load::start(urls.clone(), initial);
    std::thread::sleep(Duration::from_millis(500));
    let mut n4 = joiner(root.path(), "n4", 5, &nodes[0], &[]);
    let mut n5 = joiner(root.path(), "n5", 6, &nodes[1], &[]);
    n4.start();
    n5.start();
    let all: Vec<&TestNode> = nodes.iter().chain([&n4, &n5]).collect();
    assert!(
        wait_until(Duration::from_secs(30), || all_up(&all, 5)),
        "joiners not seen up"
    );
    wait_settled(&all, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    let acked = load.finish();
    for n in &all {
        ownership_is_fair(n, 5);
        assert_eq!(
            ring_state(n).map(|s| s.2),
            Some(0),
            "{} transfers pending",
            n.name
        );
    }
    // The new nodes really hold data, and the old ones handed theirs off.
    for n in [&n4, &n5] {
        assert!(
            metric(n, "dynakv_transfer_keys_received_total") > 0.0,
            "{}",
            n.name
        );
    }
    assert!(
        wait_until(Duration::from_secs(30), || nodes
            .iter()
            .map(|n| metric(n, "dynakv_partitions_dropped_total"))
            .sum::<f64>()
            > 0.0),
        "no old replica dropped a handed-off partition"
    );
    assert_all_readable(&n5, &acked);
}

#[test]
fn shrinking_by_leave_and_by_remove_under_load_keeps_every_key_on_every_survivor() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(root.path(), &[]);
    let mut n4 = joiner(root.path(), "n4", 5, &nodes[0], &[]);
    let mut n5 = joiner(root.path(), "n5", 6, &nodes[0], &[]);
    n4.start();
    n5.start();
    {
        let all: Vec<&TestNode> = nodes.iter().chain([&n4, &n5]).collect();
        assert!(wait_until(Duration::from_secs(30), || all_up(&all, 5)));
        wait_settled(&all, Duration::from_secs(120));
    }
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let initial = preload(&urls, "pre-", 1500);
    let load = Load::start(urls, initial);

    // n5 decommissions itself: it hands everything off, reports left, stops.
    n5.client().leave().expect("leave");
    assert!(
        wait_until(Duration::from_secs(120), || !n5.alive()),
        "n5 did not stop after leaving"
    );
    assert!(sees(&nodes[0], "n5", "left"), "{:?}", statuses(&nodes[0]));

    // n4 dies and is removed; the survivors restore its replicas.
    n4.kill();
    assert!(
        wait_until(Duration::from_secs(20), || sees(&nodes[0], "n4", "down")),
        "n4 not seen down"
    );
    nodes[0].client().remove("n4").expect("remove");
    let survivors: Vec<&TestNode> = nodes.iter().collect();
    assert!(
        wait_until(Duration::from_secs(30), || survivors
            .iter()
            .all(|n| sees(n, "n4", "left"))),
        "the removal did not spread"
    );
    assert!(
        wait_until(Duration::from_secs(30), || survivors
            .iter()
            .all(|n| n.status()["ownership"]
                .as_object()
                .is_some_and(|o| o.len() == 3))),
        "n4 still in the ring"
    );
    wait_settled(&survivors, Duration::from_secs(120));
    let acked = load.finish();
    for n in &survivors {
        ownership_is_fair(n, 3);
    }

    // Each survivor alone (the others paused) holds every key: N = 3 of 3.
    for i in 0..nodes.len() {
        for (j, other) in nodes.iter_mut().enumerate() {
            if j != i {
                other.pause();
            }
        }
        let missing: Vec<&String> = acked
            .iter()
            .filter(|k| get(&format!("{}?r=1", nodes[i].key_url(k))).status() != 200)
            .collect();
        for (j, other) in nodes.iter_mut().enumerate() {
            if j != i {
                other.resume();
            }
        }
        assert!(
            missing.is_empty(),
            "{} alone lacks {} of {} keys: {:?}",
            nodes[i].name,
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(10)]
        );
    }
}

/// Keys that fall in `partitions`, `per_partition` of each.
fn keys_in(partitions: &[usize], per_partition: usize) -> Vec<String> {
    let wanted: BTreeSet<usize> = partitions.iter().copied().collect();
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    let mut keys = Vec::new();
    let mut i = 0u64;
    while keys.len() < partitions.len() * per_partition && i < 50_000_000 {
        let key = format!("bulk-{i}");
        let p = dynakv_ring::Ring::partition_of(dynakv_ring::token(key.as_bytes()));
        if wanted.contains(&p) {
            let c = counts.entry(p).or_default();
            if *c < per_partition {
                *c += 1;
                keys.push(key);
            }
        }
        i += 1;
    }
    keys
}

/// Partitions `plan` says a joining `name` gains.
fn planned_gains(node: &TestNode, name: &str) -> BTreeSet<usize> {
    let plan: Value = node
        .client()
        .plan(&[("join", name.to_string())])
        .expect("plan");
    plan["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .filter(|m| {
            m["gained"]
                .as_array()
                .is_some_and(|g| g.iter().any(|x| x == name))
        })
        .map(|m| m["partition"].as_u64().expect("partition") as usize)
        .collect()
}

/// The partitions `name` replicates, as `node` sees the ring.
fn replicated_by(node: &TestNode, name: &str) -> BTreeSet<usize> {
    let ring: Value = node.client().ring().expect("ring");
    ring["ranges"]
        .as_array()
        .expect("ranges")
        .iter()
        .filter(|r| {
            r["replicas"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|x| x == name))
        })
        .map(|r| r["partition"].as_u64().expect("partition") as usize)
        .collect()
}

/// A transfer to n4 interrupted by SIGKILL of one side resumes from its
/// checkpoint: the keys sent (or received) in all add up to the partition's
/// keys plus at most the unconfirmed batches, never a second full copy.
fn interrupted_transfer(kill_receiver: bool) {
    let root = tempfile::tempdir().expect("tempdir");
    // Slow senders, so the kill lands mid-transfer.
    let throttle = ["--transfer-rate-mb-s", "0.2", "--transfer-limit", "1"];
    let mut nodes = formed(root.path(), &throttle);
    let gains: Vec<usize> = planned_gains(&nodes[0], "n4").into_iter().take(3).collect();
    assert_eq!(gains.len(), 3);
    let keys = keys_in(&gains, 300);
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let client = http();
    let value = "x".repeat(1000);
    for (i, key) in keys.iter().enumerate() {
        let url = format!("{}/kv/{key}?w=3", urls[i % urls.len()]);
        assert_eq!(put(&client, &url, value.clone(), None).status(), 204);
    }
    let mut n4 = joiner(root.path(), "n4", 5, &nodes[0], &throttle);
    n4.start();
    // Wait until some of those keys arrived, then kill one side.
    assert!(
        wait_until(Duration::from_secs(60), || metric(
            &n4,
            "dynakv_transfer_keys_received_total"
        ) >= 100.0),
        "transfer did not start"
    );
    let before_kill_received = metric(&n4, "dynakv_transfer_keys_received_total");
    if kill_receiver {
        n4.kill();
        std::thread::sleep(Duration::from_millis(500));
        n4.start();
    } else {
        let mut sender = None;
        wait_until(Duration::from_secs(30), || {
            sender = n4.status()["transfers"].as_array().and_then(|ts| {
                ts.iter()
                    .find(|t| t["state"] == "receiving" && t["keys"].as_u64() > Some(0))
                    .and_then(|t| t["from"].as_str().map(str::to_string))
            });
            sender.is_some()
        });
        let sender = sender.expect("a transfer in progress");
        let victim = nodes.iter_mut().find(|n| n.name == sender).expect("sender");
        victim.kill();
        std::thread::sleep(Duration::from_millis(500));
        victim.start();
    }
    let all: Vec<&TestNode> = nodes.iter().chain([&n4]).collect();
    wait_settled(&all, Duration::from_secs(180));
    // The gained partitions hold exactly these keys (nothing else was written).
    let expected = keys.len() as f64;
    let batch_slack = 60.0; // one unconfirmed batch (~200 KB / 1 KB values) at most
    if kill_receiver {
        let sent: f64 = nodes
            .iter()
            .map(|n| metric(n, "dynakv_transfer_keys_sent_total"))
            .sum();
        assert!(
            sent <= expected + batch_slack,
            "senders sent {sent} keys for {expected} (received {before_kill_received} before the kill)"
        );
    } else {
        let received = metric(&n4, "dynakv_transfer_keys_received_total");
        assert!(
            received <= expected + batch_slack,
            "n4 received {received} keys for {expected}"
        );
    }
    assert!(
        before_kill_received < expected,
        "the kill came after the transfer"
    );
    // And n4 now serves them.
    let held = replicated_by(&n4, "n4");
    assert!(gains.iter().all(|p| held.contains(p)));
    assert_all_readable(&n4, &keys);
}

#[test]
fn a_transfer_interrupted_by_killing_the_sender_resumes_from_its_checkpoint() {
    interrupted_transfer(false);
}

#[test]
fn a_transfer_interrupted_by_killing_the_receiver_resumes_from_its_checkpoint() {
    interrupted_transfer(true);
}

#[test]
fn concurrent_joins_agree_and_a_skewed_clock_moves_exactly_what_plan_predicts() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = formed(root.path(), &[]);
    // n4's clock is six hours behind; plan predicts its join alone.
    let predicted = planned_gains(&nodes[0], "n4");
    assert!(!predicted.is_empty());
    let mut n4 = joiner(root.path(), "n4", 5, &nodes[1], &[]);
    n4.env.push((
        "DYNAKV_TEST_CLOCK_OFFSET_MS".into(),
        (-6 * 3_600_000i64).to_string(),
    ));
    n4.start();
    let four: Vec<&TestNode> = nodes.iter().chain([&n4]).collect();
    assert!(wait_until(Duration::from_secs(30), || all_up(&four, 4)));
    wait_settled(&four, Duration::from_secs(120));
    assert_eq!(
        replicated_by(&nodes[0], "n4"),
        predicted,
        "the skewed joiner took other partitions than plan predicted"
    );
    drop(four);

    // Two more join at once, through different seeds.
    let mut n5 = joiner(root.path(), "n5", 6, &nodes[1], &[]);
    let mut n6 = joiner(root.path(), "n6", 7, &nodes[2], &[]);
    n5.start();
    n6.start();
    let all: Vec<&TestNode> = nodes.iter().chain([&n4, &n5, &n6]).collect();
    assert!(wait_until(Duration::from_secs(30), || all_up(&all, 6)));
    wait_settled(&all, Duration::from_secs(120));
    let rings: Vec<Value> = all
        .iter()
        .map(|n| n.client().ring().expect("ring"))
        .collect();
    for (n, r) in all.iter().zip(&rings) {
        assert_eq!(
            r["digest"], rings[0]["digest"],
            "{} serves another ring",
            n.name
        );
        assert_eq!(
            r["ranges"], rings[0]["ranges"],
            "{} places partitions differently",
            n.name
        );
    }
    for n in &all {
        ownership_is_fair(n, 6);
    }
}

/// An admin answer as status and body: the JSON of a success, or
/// `{"error": code}` of a refusal.
fn outcome(result: Result<Value, Error>) -> (u16, Value) {
    match result {
        Ok(body) => (200, body),
        Err(Error::NotFound { .. }) => (404, json!({"error": "not_found"})),
        Err(Error::BadRequest { status, .. }) => (status, json!({"error": "bad_request"})),
        Err(Error::Api { status, code, .. }) => (status, json!({ "error": code })),
        Err(e) => panic!("admin request: {e}"),
    }
}

#[test]
fn membership_changes_that_would_lose_data_or_make_no_sense_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(root.path(), &[]);
    let n1 = nodes[0].url();
    // Leaving would leave 2 members for n = 3.
    let (code, body) = outcome(client_of(&n1).leave());
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("too_few_members")),
        "{body}"
    );
    // A member that is up cannot be removed, nor can a node remove itself.
    let (code, body) = outcome(client_of(&n1).remove("n2"));
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("member_up")),
        "{body}"
    );
    let (code, body) = outcome(client_of(&n1).remove("n1"));
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("member_up")),
        "{body}"
    );
    let (code, body) = outcome(client_of(&n1).remove("nobody"));
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    // Plans: one change at a time, of members that exist.
    let plan = |q: &[(&str, &str)]| {
        let q: Vec<(&str, String)> = q.iter().map(|(k, v)| (*k, v.to_string())).collect();
        outcome(client_of(&n1).plan(&q))
    };
    assert_eq!(plan(&[]).0, 400);
    assert_eq!(plan(&[("join", "n2")]).0, 409);
    assert_eq!(plan(&[("leave", "nobody")]).0, 404);
    assert_eq!(plan(&[("join", "n9"), ("weight", "-1")]).0, 400);
    let (code, plan) = plan(&[("leave", "n3")]);
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["change"], "leave n3");
    // Nothing changed.
    assert!(settled(&nodes.iter().collect::<Vec<_>>()));

    // With n = 1, a dead node holds the only copy of its partitions.
    let root1 = tempfile::tempdir().expect("tempdir");
    let one = ["--n", "1", "--r", "1", "--w", "1"];
    let mut a = TestNode::new(root1.path(), "a", ip(8));
    a.args.extend(timing());
    a.args.extend(one.iter().map(|s| s.to_string()));
    a.start();
    let mut b = joiner(root1.path(), "b", 9, &a, &one);
    b.start();
    wait_formed(&[&a, &b]);
    b.kill();
    assert!(wait_until(Duration::from_secs(20), || sees(
        &a, "b", "down"
    )));
    let (code, body) = outcome(a.client().remove("b"));
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("last_copy")),
        "{body}"
    );
    // The CLI says the same, with exit code 1.
    let out = std::process::Command::new(BIN)
        .args(["remove", "b", "--node", &a.url()])
        .output()
        .expect("dynakv remove");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("last_copy"));
    nodes[2].kill();
}
