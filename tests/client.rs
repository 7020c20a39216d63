//! The typed client library (`dynakv-client`) against live nodes: round
//! trips, siblings resolved with the read-modify-write helper, each typed
//! error, failover past a node that is down, and routing to a key's replicas.

mod common;

use std::net::Ipv4Addr;

use common::*;
use dynakv_client::{ClientBuilder, Error, Options, Quorum, Sibling};

fn solo(root: &std::path::Path, args: &[&str]) -> TestNode {
    let mut node = TestNode::new(root, "solo", Ipv4Addr::LOCALHOST).with_args(args);
    node.start();
    node
}

fn text(s: &str) -> Sibling {
    Sibling::new(s.to_string(), "text/plain")
}

/// The merge function of a set: the union of the siblings, plus `element`.
fn add(element: &str) -> impl FnMut(&[Sibling]) -> Sibling + '_ {
    move |siblings| {
        let mut items = set_elements(siblings);
        items.insert(element.to_string());
        text(&items.into_iter().collect::<Vec<_>>().join(","))
    }
}

#[test]
fn values_round_trip_with_their_context_and_content_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = solo(dir.path(), &[]);
    let client = ClientBuilder::new([node.url()])
        .build_blocking()
        .expect("client");

    let key = b"a key/with odd bytes \xff";
    let first = client.put(key, text("one"), None).expect("put");
    let object = client.get(key).expect("get");
    assert_eq!(object.siblings, [text("one")]);
    assert_eq!(object.context, first);

    // Writing with the read's context replaces; the binary value and its
    // content type come back as written.
    let binary = Sibling::new(vec![0u8, 159, 146, 150], "application/x-thing");
    client
        .put(key, binary.clone(), Some(&object.context))
        .expect("put with context");
    assert_eq!(client.get(key).expect("get").value(), Some(&binary));

    let object = client.get(key).expect("get");
    client.delete(key, Some(&object.context)).expect("delete");
    match client.get(key) {
        Err(Error::NotFound { context }) => {
            assert!(context.is_some(), "a tombstone's context is returned")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn concurrent_writes_are_siblings_and_modify_resolves_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = solo(dir.path(), &[]);
    let client = ClientBuilder::new([node.url()])
        .build_blocking()
        .expect("client");
    client.put(b"set", text("a"), None).expect("put");
    client.put(b"set", text("b"), None).expect("blind put");
    let object = client.get(b"set").expect("get");
    assert!(object.has_siblings());
    assert_eq!(object.value(), None);

    client
        .modify(b"set", &Options::default(), add("c"))
        .expect("modify");
    assert_eq!(client.get(b"set").expect("get").siblings, [text("a,b,c")]);
}

#[test]
fn concurrent_modifies_lose_no_element() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = solo(dir.path(), &[]);
    let url = node.url();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let client = ClientBuilder::new([url]).build_blocking().expect("client");
                for i in 0..10 {
                    let element = format!("{t}-{i}");
                    client
                        .modify(b"shared", &Options::default(), add(&element))
                        .or_else(|e| match e {
                            // Siblings stay when attempts run out: nothing lost.
                            Error::Conflict { .. } => Ok(dynakv_client::Context::from_token("")),
                            other => Err(other),
                        })
                        .expect("modify");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let client = ClientBuilder::new([url]).build_blocking().expect("client");
    let object = client.get(b"shared").expect("get");
    let items = set_elements(&object.siblings);
    for t in 0..4 {
        for i in 0..10 {
            assert!(
                items.contains(&format!("{t}-{i}")),
                "lost {t}-{i}: {items:?}"
            );
        }
    }
}

#[test]
fn each_failure_has_its_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = solo(dir.path(), &["--max-siblings", "2"]);
    let client = ClientBuilder::new([node.url()])
        .build_blocking()
        .expect("client");

    let missing = client.get(b"missing").expect_err("absent");
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");
    assert!(!missing.is_retryable());

    let bad = client
        .get_with(b"k", &Options::quorum(Quorum::Exactly(9)))
        .expect_err("r=9 on one node");
    assert!(
        matches!(bad, Error::BadRequest { status: 400, .. }),
        "{bad:?}"
    );
    assert!(!bad.is_retryable());

    client.put(b"k", text("1"), None).expect("put");
    client.put(b"k", text("2"), None).expect("put");
    let many = client
        .put(b"k", text("3"), None)
        .expect_err("third sibling");
    assert!(matches!(many, Error::TooManySiblings { .. }), "{many:?}");
    assert!(!many.is_retryable());

    let dead = format!("http://127.0.0.1:{}", free_port(Ipv4Addr::LOCALHOST));
    let nobody = ClientBuilder::new([dead])
        .build_blocking()
        .expect("client")
        .get(b"k")
        .expect_err("nobody listens");
    assert!(matches!(nobody, Error::Unreachable { .. }), "{nobody:?}");
    assert!(nobody.is_retryable());
}

#[test]
fn a_short_quorum_is_a_retryable_error_and_a_dead_first_node_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &[]);
    nodes[2].kill();
    // The first node in the list is down: requests fail over to the next.
    let client = ClientBuilder::new([nodes[2].url(), nodes[0].url()])
        .build_blocking()
        .expect("client");
    client
        .put(b"k", text("v"), None)
        .expect("put past a dead node");
    assert_eq!(client.get(b"k").expect("get").siblings, [text("v")]);

    let strict_all = Options {
        quorum: Some(Quorum::All),
        strict: Some(true),
        timeout: Some(std::time::Duration::from_millis(500)),
        bucket: None,
    };
    let short = client
        .put_with(b"k2", text("v"), None, &strict_all)
        .expect_err("w=all strict with a replica down");
    assert!(
        matches!(short, Error::QuorumUnavailable { .. }),
        "{short:?}"
    );
    assert!(short.is_retryable());
}

#[test]
fn replica_routing_sends_every_write_to_one_of_its_replicas() {
    let dir = tempfile::tempdir().expect("tempdir");
    // N = 2 of three nodes: each node is a non-replica for a third of the keys.
    let nodes = formed(dir.path(), &["--n", "2", "--r", "1", "--w", "1"]);
    let forwarded = || -> f64 {
        nodes
            .iter()
            .map(|n| metric(n, "dynakv_forwarded_writes_total"))
            .sum()
    };
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();

    let plain = ClientBuilder::new(urls.clone())
        .build_blocking()
        .expect("client");
    for i in 0..60 {
        plain
            .put(format!("k{i}").as_bytes(), text("v"), None)
            .expect("put");
    }
    let before = forwarded();
    assert!(
        before > 0.0,
        "round-robin forwarded nothing: the control failed"
    );

    let routed = ClientBuilder::new(urls)
        .route_to_replicas(true)
        .build_blocking()
        .expect("client");
    for i in 0..60 {
        routed
            .put(format!("r{i}").as_bytes(), text("v"), None)
            .expect("put");
    }
    assert_eq!(forwarded(), before, "a routed write reached a non-replica");
}
