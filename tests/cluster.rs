//! A real three-node cluster on 127.0.0.2–127.0.0.4: forming from seeds, failure
//! detection of killed and paused processes, restarts, re-forming from persisted
//! state, and refusing a node without the cluster secret.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
fn three_nodes_form_a_cluster_detect_failures_and_recover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = three(dir.path(), &[]);
    wait_formed(&nodes.iter().collect::<Vec<_>>());

    // Every node computes the same ring with a third each.
    let rings: Vec<Value> = nodes
        .iter()
        .map(|n| n.client().ring().expect("ring"))
        .collect();
    assert!(rings.iter().all(|r| r["ranges"] == rings[0]["ranges"]));
    for share in rings[0]["ownership"]
        .as_object()
        .expect("ownership")
        .values()
    {
        let share = share.as_f64().expect("share");
        assert!((share - 1.0 / 3.0).abs() < 0.02, "{share}");
    }

    // SIGKILL n3: n1 and n2 see it down within failure_timeout + two intervals.
    nodes[2].kill();
    let killed = Instant::now();
    let bound = Duration::from_millis(FAILURE_MS + 2 * GOSSIP_MS) + SLACK;
    assert!(
        wait_until(bound, || sees(&nodes[0], "n3", "down")
            && sees(&nodes[1], "n3", "down")),
        "n3 not down after {:?}: {:?}",
        killed.elapsed(),
        statuses(&nodes[0])
    );
    assert!(sees(&nodes[0], "n2", "up") && sees(&nodes[1], "n1", "up"));

    // Restarted, it is up again.
    nodes[2].start();
    wait_formed(&nodes.iter().collect::<Vec<_>>());

    // SIGSTOP n2: a paused process is detected as down like a dead one.
    nodes[1].pause();
    assert!(
        wait_until(bound, || sees(&nodes[0], "n2", "down")
            && sees(&nodes[2], "n2", "down")),
        "paused n2 not detected: {:?}",
        statuses(&nodes[0])
    );
    nodes[1].resume();
    wait_formed(&nodes.iter().collect::<Vec<_>>());

    let metrics = nodes[0].client().metrics().expect("metrics");
    assert!(
        metrics.contains("dynakv_liveness_changes_total{status=\"down\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("dynakv_gossip_rounds_total"), "{metrics}");
}

/// Remote IPv4 addresses of established TCP connections to `ip:port`, read
/// from /proc/net/tcp (addresses are little-endian hex there).
fn peers_of(ip: std::net::Ipv4Addr, port: u16) -> Vec<std::net::Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let parse = |field: &str| -> Option<(std::net::Ipv4Addr, u16)> {
        let (addr, port) = field.split_once(':')?;
        let addr = u32::from_str_radix(addr, 16).ok()?;
        Some((
            std::net::Ipv4Addr::from(addr.swap_bytes()),
            u16::from_str_radix(port, 16).ok()?,
        ))
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (parse(f.get(1)?)?, parse(f.get(2)?)?, *f.get(3)?);
            (local == (ip, port) && state == "01").then_some(remote.0)
        })
        .collect()
}

#[test]
fn node_to_node_connections_come_from_each_nodes_listen_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = three(dir.path(), &[]);
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    let from = peers_of(nodes[0].ip, nodes[0].rpc_port);
    assert!(!from.is_empty(), "no connections to n1 seen");
    for addr in &from {
        assert!(
            *addr == nodes[1].ip || *addr == nodes[2].ip,
            "a connection to n1 came from {addr}, not from a node's listen address"
        );
    }
}

#[test]
fn a_stopped_cluster_reforms_from_persisted_state_without_seeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = three(dir.path(), &[]);
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    for n in nodes.iter_mut() {
        assert!(n.stop().success());
    }
    for n in nodes.iter_mut() {
        if let Some(seeds) = n.args.iter().position(|a| a == "--seeds") {
            n.args.drain(seeds..seeds + 2);
        }
        n.start();
    }
    // Restored members count as up until the failure timeout, so wait past it and
    // require every node to see every other's new incarnation: gossip flowed.
    std::thread::sleep(Duration::from_millis(FAILURE_MS + 2 * GOSSIP_MS));
    let generation = |observer: &TestNode, member: &str| -> Option<u64> {
        observer.status()["members"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == member)?["generation"]
            .as_u64()
    };
    let reformed = wait_until(Duration::from_secs(20), || {
        all_up(&nodes.iter().collect::<Vec<_>>(), 3)
            && nodes.iter().all(|observer| {
                nodes.iter().all(|member| {
                    let own = generation(member, &member.name);
                    own.is_some() && generation(observer, &member.name) == own
                })
            })
    });
    assert!(
        reformed,
        "{:?}",
        nodes.iter().map(statuses).collect::<Vec<_>>()
    );
}

#[test]
fn a_wiped_node_takes_back_its_place_with_a_new_actor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = three(dir.path(), &[]);
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    let ring_before: Value = nodes[0].client().ring().expect("ring");
    let actor_before = nodes[2].status()["actor"].clone();

    nodes[2].kill();
    std::fs::remove_dir_all(&nodes[2].data_dir).expect("wipe");
    nodes[2].start();
    wait_formed(&nodes.iter().collect::<Vec<_>>());

    assert_ne!(
        nodes[2].status()["actor"],
        actor_before,
        "a wiped node needs a new actor id"
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            nodes.iter().all(|n| {
                n.client()
                    .ring()
                    .is_ok_and(|r| r["ranges"] == ring_before["ranges"])
            })
        }),
        "the ring changed after the wiped node came back"
    );
}

#[test]
fn a_node_without_the_cluster_secret_is_refused_and_never_becomes_a_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "correct horse battery staple\n").expect("secret");
    let secret_arg = secret.to_str().expect("utf8").to_string();
    let mut good = three(dir.path(), &["--cluster-secret-file", &secret_arg]);
    wait_formed(&good.iter().collect::<Vec<_>>());

    let mut intruder = TestNode::new(dir.path(), "intruder", ip(5));
    intruder.args.extend(timing());
    intruder
        .args
        .extend(["--seeds".to_string(), good[0].rpc_addr()]);
    intruder
        .env
        .push(("DYNAKV_CLUSTER_SECRET".into(), "wrong".into()));
    intruder.start();

    // Give gossip many rounds to (wrongly) spread it.
    std::thread::sleep(Duration::from_millis(10 * GOSSIP_MS));
    for n in &good {
        assert!(!statuses(n).contains_key("intruder"), "{:?}", statuses(n));
    }
    assert_eq!(
        statuses(&intruder).len(),
        1,
        "the intruder learned the cluster"
    );
    let metrics = good[0].client().metrics().expect("metrics");
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dynakv_rpc_handshake_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(refused > 0, "refusals not counted:\n{metrics}");
    good[0].kill();
    intruder.kill();
}

/// Two clusters (same secret) whose nodes are seeded with each other's
/// addresses never merge: each refuses the other's gossip, and says so.
#[test]
fn a_node_of_another_cluster_is_refused_and_the_clusters_never_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = TestNode::new(dir.path(), "a1", ip(2));
    a.args.extend(timing());
    a.start();
    let mut b = TestNode::new(dir.path(), "b1", ip(3));
    b.args.extend(timing());
    b.start();
    let id = |n: &TestNode| n.status()["cluster_id"].as_str().expect("id").to_string();
    let (id_a, id_b) = (id(&a), id(&b));
    assert_ne!(id_a, id_b, "two clusters founded apart share an id");
    assert_ne!(id_a, "0000000000000000");
    // b restarts seeded with a: it is a cluster of its own, with its ring.
    b.stop();
    b.args.extend(["--seeds".to_string(), a.rpc_addr()]);
    b.start();
    std::thread::sleep(Duration::from_millis(10 * GOSSIP_MS));
    assert_eq!(statuses(&a).keys().collect::<Vec<_>>(), ["a1"]);
    assert_eq!(statuses(&b).keys().collect::<Vec<_>>(), ["b1"]);
    assert_eq!((id(&a), id(&b)), (id_a.clone(), id_b.clone()));
    assert!(
        a.log_text().contains("another cluster"),
        "no log line on a1:\n{}",
        a.log_text()
    );
    assert!(metric(&a, "dynakv_gossip_exchanges_total{reason=\"foreign\"}") > 0.0);
    // The id survives a restart.
    a.stop();
    a.start();
    assert_eq!(id(&a), id_a);
}

/// An address that means "every interface" is never advertised: the node
/// refuses to start and says which flag to give.
#[test]
fn binding_every_address_needs_an_advertised_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(BIN)
        .args([
            "node",
            "--name",
            "n1",
            "--listen",
            "0.0.0.0:7999",
            "--data-dir",
        ])
        .arg(dir.path().join("n1"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--advertise"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn corrupted_and_oversized_frames_close_the_connection_and_are_counted() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(dir.path(), "n1", ip(2));
    node.start();
    let frames = |metric_name: &str| {
        metric(
            &node,
            &format!("dynakv_rpc_frame_errors_total{{reason=\"{metric_name}\"}}"),
        )
    };

    // A frame whose CRC-32 does not match its body.
    let mut s = TcpStream::connect(node.rpc_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut challenge = [0u8; 256];
    let _ = s.read(&mut challenge).expect("challenge");
    let body = b"\x01definitely not a proof";
    let mut frame = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&(crc32fast::hash(body) ^ 1).to_le_bytes());
    frame.extend_from_slice(body);
    s.write_all(&frame).expect("send");
    let mut rest = Vec::new();
    // Closed: the end of the stream, or a reset (a close with bytes of ours
    // still unread sends one); a timeout means the node kept it open.
    let closed_by_node = |s: &mut TcpStream, rest: &mut Vec<u8>| match s.read_to_end(rest) {
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    };
    let closed = closed_by_node(&mut s, &mut rest);
    assert!(
        closed,
        "the node kept a connection that sent a corrupt frame"
    );
    assert!(wait_until(Duration::from_secs(5), || frames("checksum") >= 1.0));

    // A length prefix beyond the frame limit.
    let mut s = TcpStream::connect(node.rpc_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.read(&mut challenge).expect("challenge");
    s.write_all(&u32::MAX.to_be_bytes()).expect("send");
    let _ = s.read_to_end(&mut rest);
    assert!(wait_until(Duration::from_secs(5), || frames("too_large") >= 1.0));

    // Before the handshake, a frame of more than a few KiB is refused at once:
    // an unauthenticated peer cannot make the node buffer megabytes.
    let mut s = TcpStream::connect(node.rpc_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.read(&mut challenge).expect("challenge");
    s.write_all(&(64u32 << 10).to_be_bytes()).expect("send");
    s.write_all(&[0u8; 1024]).expect("send part of it");
    let started = std::time::Instant::now();
    let closed = closed_by_node(&mut s, &mut rest);
    assert!(
        closed && started.elapsed() < Duration::from_secs(4),
        "a 64 KiB frame before the handshake was waited for"
    );
    assert!(wait_until(Duration::from_secs(5), || frames("too_large") >= 2.0));

    // Still serving.
    node.client().health().expect("health");
}

#[test]
fn restarted_peers_are_reachable_as_soon_as_gossip_shows_them_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    let client = http();
    // Make n1 talk to both peers, so it holds connections to them.
    for i in 0..20 {
        let r = put(
            &client,
            &format!("{}?w=3", nodes[0].key_url(&format!("warm-{i}"))),
            "x",
            None,
        );
        assert_eq!(r.status(), 204);
    }
    // Restart n2 and n3 (new incarnations on the same addresses): n1's
    // connections break, and its reconnect attempts during the restart fail.
    for n in nodes.iter_mut().skip(1) {
        n.kill();
    }
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..5 {
        // Failed attempts while they are down put n1 in reconnect backoff.
        let _ = put(
            &client,
            &format!(
                "{}?w=3&timeout_ms=200",
                nodes[0].key_url(&format!("down-{i}"))
            ),
            "x",
            None,
        );
    }
    for n in nodes.iter_mut().skip(1) {
        n.start();
    }
    // The moment n1 sees both back (their gossip reaches it on their own
    // connections), while its own reconnect attempts may still be backing off.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(sees(&nodes[0], "n2", "up") && sees(&nodes[0], "n3", "up")) {
        assert!(std::time::Instant::now() < deadline, "peers not back");
        std::thread::sleep(Duration::from_millis(5));
    }
    // At once: a write that needs every replica.
    let r = put(
        &client,
        &format!("{}?w=3&timeout_ms=2000", nodes[0].key_url("right-after")),
        "x",
        None,
    );
    assert_eq!(
        r.status(),
        204,
        "a w=3 write failed right after every member was up"
    );
}

/// Runs `dynakv bench` for a second of writes; returns its JSON report.
fn bench_writes(nodes: &[String], direct: bool) -> Value {
    let nodes = nodes.join(",");
    let mut args = vec![
        "--node",
        &nodes,
        "--workload",
        "write-only",
        "--duration",
        "1",
        "--keys",
        "300",
        "--clients",
        "4",
        "--json",
    ];
    if direct {
        args.push("--direct");
    }
    bench_json(&args)
}

fn forwarded(nodes: &[TestNode]) -> f64 {
    nodes
        .iter()
        .map(|n| metric(n, "dynakv_forwarded_writes_total"))
        .sum()
}

#[test]
fn bench_direct_sends_every_request_to_a_replica_of_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    // N = 2 of three nodes: a third of the keys have each node as a non-replica.
    let nodes = formed(dir.path(), &["--n", "2", "--r", "1", "--w", "1"]);
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();

    // Round-robin over every node: some writes land on a non-replica and are
    // forwarded (the control: the counter does see forwarding).
    let report = bench_writes(&urls, false);
    assert_eq!(report["routing"], "round-robin");
    assert!(forwarded(&nodes) > 0.0, "no write was forwarded");

    let before = forwarded(&nodes);
    let report = bench_writes(&urls[..1], true);
    assert_eq!(report["routing"], "direct (to a replica)");
    let put = report["ops"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["op"] == "update"))
        .expect("updates");
    assert!(put["count"].as_u64().expect("count") > 0, "{put}");
    assert_eq!(put["errors"], 0, "{put}");
    assert_eq!(
        forwarded(&nodes),
        before,
        "a directly routed write reached a node that is not its replica"
    );
}
