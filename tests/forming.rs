//! Always writable (SPEC §6 "Membership changes"): a cluster that is forming
//! or changing takes every write that W live replicas can take.
//!
//! Three nodes started at once with each other as seeds form one first ring
//! before they report ready, so the first writes are not refused; a pending
//! replica (a node receiving a partition) that dies adds no requirement to W,
//! so a transit to a dead node never makes a key unwritable; and the ring
//! settles again once the dead node is removed or comes back.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use dynakv_client::{ClientBuilder, Error, Options, Quorum, Sibling};

/// The failure timeout of these tests' nodes: long enough that a loaded
/// machine does not make a live node look down (with two survivors, W = 2
/// needs both for every write), short enough to pass within each test.
const FAILURE_TIMEOUT_MS: u64 = 3000;

/// Gossip every 200 ms, failure timeout [`FAILURE_TIMEOUT_MS`].
fn forming_timing() -> Vec<String> {
    vec![
        "--gossip-interval-ms".into(),
        GOSSIP_MS.to_string(),
        "--failure-timeout-ms".into(),
        FAILURE_TIMEOUT_MS.to_string(),
    ]
}

/// Nodes on `ips`, each seeded with the others, started at once (each start
/// waits only for its own `/health`).
fn started_together(root: &std::path::Path, ips: &[u8], extra: &[&str]) -> Vec<TestNode> {
    let mut nodes: Vec<TestNode> = ips
        .iter()
        .enumerate()
        .map(|(i, &ipn)| TestNode::new(root, &format!("n{}", i + 1), ip(ipn)))
        .collect();
    for n in nodes.iter_mut() {
        n.args.extend(forming_timing());
        n.args.extend(extra.iter().map(|s| s.to_string()));
    }
    let founders = nodes.len();
    seed_with_each_other(&mut nodes, founders);
    start_together(&mut nodes);
    nodes
}

/// The value written to `key`: named after it, 1 KB, so a transfer of a few
/// thousand keys takes long enough at a throttled rate to be interrupted.
fn value_of(key: &str) -> String {
    format!("v-{key}-{}", ".".repeat(1000))
}

/// What a run of writers saw: the keys acknowledged and the refusals (key,
/// error), in the order they came.
#[derive(Default)]
struct Writes {
    acked: Vec<String>,
    refused: Vec<(String, String)>,
}

/// `clients` threads writing new keys (`{prefix}{thread}-{i}`) at w=2 through
/// `urls` (round-robin), each until it made `per_client` writes or `time`
/// passed.
fn write_new_keys(
    urls: &[String],
    prefix: &str,
    clients: usize,
    per_client: usize,
    time: Duration,
) -> Writes {
    let out = Mutex::new(Writes::default());
    let deadline = Instant::now() + time;
    std::thread::scope(|s| {
        for c in 0..clients {
            let out = &out;
            s.spawn(move || {
                let client = ClientBuilder::new(urls.iter().cloned())
                    .timeout(Duration::from_secs(10))
                    .build_blocking()
                    .expect("client");
                let w2 = Options::quorum(Quorum::Exactly(2));
                for i in 0..per_client {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let key = format!("{prefix}{c}-{i}");
                    let value = Sibling::new(value_of(&key), "text/plain");
                    let result = client.put_with(key.as_bytes(), value, None, &w2);
                    let mut out = out.lock().expect("writes");
                    match result {
                        Ok(_) => out.acked.push(key),
                        Err(e) => out.refused.push((key, e.to_string())),
                    }
                }
            });
        }
    });
    out.into_inner().expect("writes")
}

/// Writes through `urls` while `dead` was just killed: eight clients until
/// `observer` sees it down (at most twice the failure timeout), then as many
/// again once it does, so writes both before and after gossip notices the
/// death are tried.
fn writes_around_a_death(urls: &[String], prefix: &str, observer: &TestNode, dead: &str) -> Writes {
    let window = Duration::from_millis(2 * FAILURE_TIMEOUT_MS);
    let mut writes = Writes::default();
    let deadline = Instant::now() + window;
    let mut round = 0;
    while !sees(observer, dead, "down") && Instant::now() < deadline && round < 100 {
        let w = write_new_keys(urls, &format!("{prefix}a{round}-"), 8, 25, window);
        writes.acked.extend(w.acked);
        writes.refused.extend(w.refused);
        round += 1;
    }
    assert!(
        wait_until(window, || sees(observer, dead, "down")),
        "{dead} was not seen down"
    );
    let w = write_new_keys(urls, &format!("{prefix}b-"), 8, 100, window);
    writes.acked.extend(w.acked);
    writes.refused.extend(w.refused);
    writes
}

fn assert_none_refused(writes: &Writes, what: &str) {
    let total = writes.acked.len() + writes.refused.len();
    assert!(
        writes.refused.is_empty(),
        "{what}: {} of {total} w=2 writes refused, first: {:?}",
        writes.refused.len(),
        &writes.refused[..writes.refused.len().min(5)]
    );
    assert!(total > 0, "{what}: no write was made");
}

/// Every key reads back at r=2 through `node`, with the value written.
fn assert_readable(node: &TestNode, keys: &[String]) {
    let client = node.client();
    let r2 = Options::quorum(Quorum::Exactly(2));
    let missing: Vec<(&String, String)> = keys
        .iter()
        .filter_map(|k| match client.get_with(k.as_bytes(), &r2) {
            Ok(o) if o.siblings.iter().any(|s| s.value == value_of(k).as_bytes()) => None,
            Ok(o) => Some((
                k,
                format!("{} siblings, not the value written", o.siblings.len()),
            )),
            Err(Error::NotFound { .. }) => Some((k, "404".into())),
            Err(e) => Some((k, e.to_string())),
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged keys not readable at r=2 through {}: {:?}",
        missing.len(),
        keys.len(),
        node.name,
        &missing[..missing.len().min(10)]
    );
}

fn wait_all_up(nodes: &[&TestNode], count: usize) {
    assert!(
        wait_until(Duration::from_secs(30), || all_up(nodes, count)),
        "the members did not all show up: {:?}",
        nodes.iter().map(|n| statuses(n)).collect::<Vec<_>>()
    );
}

/// Every node serves the founding ring (version 1) with nothing in transit:
/// the nodes started together founded one ring holding them all.
fn assert_founded_together(nodes: &[&TestNode]) {
    for n in nodes {
        let state = ring_state(n);
        assert!(
            matches!(state, Some((1, 0, _))),
            "{} serves ring (epoch, moving, pending) {state:?}, not the founding ring",
            n.name
        );
    }
}

/// Three nodes started at once, seeded with each other: from the moment every
/// node shows every member `up`, eight clients writing new keys through all
/// three get every w=2 write acknowledged, and every one reads back.
#[test]
fn three_nodes_started_together_take_every_write_once_all_show_up() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = started_together(root.path(), &[31, 32, 33], &[]);
    let all: Vec<&TestNode> = nodes.iter().collect();
    wait_all_up(&all, 3);
    assert_founded_together(&all);
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let writes = write_new_keys(&urls, "formed-", 8, 250, Duration::from_secs(60));
    assert_none_refused(&writes, "three nodes started together");
    wait_settled(&all, Duration::from_secs(60));
    assert_readable(&nodes[1], &writes.acked);
}

/// The same start with the third node SIGKILLed the moment every member shows
/// `up`: the two survivors acknowledge every w=2 write for as long as it
/// stays down (before and after gossip notices); `remove` of it settles the
/// ring, and every acknowledged key reads back at r=2.
#[test]
fn a_node_killed_as_the_cluster_forms_leaves_it_writable_and_remove_settles_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = started_together(root.path(), &[34, 35, 36], &[]);
    wait_all_up(&nodes.iter().collect::<Vec<_>>(), 3);
    assert_founded_together(&nodes.iter().collect::<Vec<_>>());
    nodes[2].kill();
    let urls: Vec<String> = nodes[..2].iter().map(|n| n.url()).collect();
    let writes = writes_around_a_death(&urls, "survivor-", &nodes[0], "n3");
    assert_none_refused(&writes, "n3 killed as the cluster formed");
    nodes[0].client().remove("n3").expect("remove n3");
    let survivors: Vec<&TestNode> = nodes[..2].iter().collect();
    wait_settled(&survivors, Duration::from_secs(60));
    assert_readable(&nodes[0], &writes.acked);
    assert_readable(&nodes[1], &writes.acked);
}

/// A joiner killed while it receives partitions from `existing` nodes
/// (N = 3): its partitions stay in transit to a dead node, and still every
/// w=2 write through the serving nodes is acknowledged, before and after
/// gossip notices the death. Restarted, it finishes its transfers, the ring
/// settles, and every acknowledged key reads back at r=2 through it.
fn joiner_killed_mid_transfer(existing: usize, ips: &[u8]) {
    let root = tempfile::tempdir().expect("tempdir");
    // Slow senders, so the kill lands mid-transfer.
    let throttle = ["--transfer-rate-mb-s", "1", "--transfer-limit", "1"];
    let nodes = started_together(root.path(), &ips[..existing], &throttle);
    let members: Vec<&TestNode> = nodes.iter().collect();
    wait_all_up(&members, existing);
    wait_settled(&members, Duration::from_secs(60));
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let preloaded = write_new_keys(&urls, "pre-", 4, 300, Duration::from_secs(60));
    assert_none_refused(&preloaded, "preload");
    let mut joiner = TestNode::new(root.path(), "n9", ip(ips[existing]));
    joiner.args.extend(forming_timing());
    joiner.args.extend(throttle.iter().map(|s| s.to_string()));
    joiner.args.push("--seeds".into());
    joiner.args.push(nodes[0].rpc_addr());
    joiner.start();
    assert!(
        wait_until(Duration::from_secs(60), || metric(
            &joiner,
            "dynakv_transfer_keys_received_total"
        ) > 0.0),
        "the transfer to the joiner did not start"
    );
    joiner.kill();
    let writes = writes_around_a_death(&urls, "during-", &nodes[0], "n9");
    assert_none_refused(&writes, "joiner killed mid-transfer");
    let moving = ring_state(&nodes[0]).map_or(0, |(_, m, _)| m);
    assert!(
        moving > 0,
        "the joiner's partitions were no longer in transit"
    );
    joiner.start();
    let all: Vec<&TestNode> = nodes.iter().chain([&joiner]).collect();
    wait_settled(&all, Duration::from_secs(180));
    let mut keys = preloaded.acked;
    keys.extend(writes.acked);
    assert_readable(&joiner, &keys);
}

/// Two nodes taking in a third: with it dead, the two are every serving
/// replica and W of them is all the quorum there is.
#[test]
fn a_third_node_killed_mid_transfer_blocks_no_write_and_settles_when_it_returns() {
    joiner_killed_mid_transfer(2, &[40, 41, 42]);
}

/// Three nodes taking in a fourth.
#[test]
fn a_fourth_node_killed_mid_transfer_blocks_no_write_and_settles_when_it_returns() {
    joiner_killed_mid_transfer(3, &[43, 44, 45, 46]);
}

/// A node on 127.0.0.`ipn` seeded only with a port nobody listens on (on
/// 127.0.0.`nowhere`): it never finds a cluster, so it never has a ring.
fn lone_node(root: &std::path::Path, name: &str, ipn: u8, nowhere: u8) -> TestNode {
    let mut lone = TestNode::new(root, name, ip(ipn));
    lone.args.extend(forming_timing());
    lone.args.push("--seeds".into());
    lone.args
        .push(format!("{}:{}", ip(nowhere), free_port(ip(nowhere))));
    lone.start();
    lone
}

/// A node started with seeds it cannot reach has no ring: it is live but not
/// ready, and answers a write or a read with a clear `503 not_ready` (nothing
/// written), never a quorum failure of "0 of 0 replicas".
#[test]
fn a_node_that_found_no_cluster_yet_is_not_ready_and_says_so() {
    let root = tempfile::tempdir().expect("tempdir");
    let lone = lone_node(root.path(), "n1", 39, 38);
    let client = http();
    let ready = client
        .get(format!("{}/health/ready", lone.url()))
        .send()
        .expect("GET /health/ready");
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().expect("json");
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["error"], "not_ready", "{body}");
    let put = client.put(lone.key_url("k")).body("v").send().expect("PUT");
    assert_eq!(put.status().as_u16(), 503);
    let body: serde_json::Value = put.json().expect("json");
    assert_eq!(body["error"], "not_ready", "{body}");
    let get = client.get(lone.key_url("k")).send().expect("GET");
    assert_eq!(get.status().as_u16(), 503);
    let body: serde_json::Value = get.json().expect("json");
    assert_eq!(body["error"], "not_ready", "{body}");
    let status = lone.status();
    assert_eq!(status["ready"], false, "{status}");
    assert_eq!(status["settled"], false, "{status}");
}

/// A client given a node that has no ring yet and one that serves sends
/// every write on to the one that serves: `not_ready` applied nothing, so
/// even a write may go elsewhere. The answer says so in a header.
#[test]
fn a_client_moves_a_write_on_from_a_node_that_is_not_ready() {
    let root = tempfile::tempdir().expect("tempdir");
    let lone = lone_node(root.path(), "lone", 48, 47);
    let mut single = TestNode::new(root.path(), "single", ip(49));
    single.args.extend(forming_timing());
    single.start();
    let answer = http().put(lone.key_url("k")).body("v").send().expect("PUT");
    assert_eq!(answer.status().as_u16(), 503);
    assert!(
        answer
            .headers()
            .contains_key(dynakv_client::NOT_APPLIED_HEADER),
        "no {} header on a not_ready answer",
        dynakv_client::NOT_APPLIED_HEADER
    );
    // Round-robin over both: every write lands, whichever node comes first.
    let client = ClientBuilder::new([lone.url(), single.url()])
        .timeout(Duration::from_secs(10))
        .build_blocking()
        .expect("client");
    for i in 0..6 {
        let key = format!("moved-{i}");
        client
            .put_with(
                key.as_bytes(),
                Sibling::new(value_of(&key), "text/plain"),
                None,
                &Options::default(),
            )
            .unwrap_or_else(|e| panic!("write {i} through the client: {e}"));
    }
    assert_readable(
        &single,
        &(0..6).map(|i| format!("moved-{i}")).collect::<Vec<_>>(),
    );
}
