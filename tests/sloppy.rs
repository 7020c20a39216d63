//! Sloppy quorum with a spare node (four nodes, N = 3): a write for a down
//! replica is held as a hint by the next node of the preference list, counts
//! toward W, is read back from there, and is handed off when the replica returns.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

#[test]
fn a_fallback_node_holds_the_hint_counts_toward_w_and_hands_it_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<TestNode> = (0..4)
        .map(|i| TestNode::new(dir.path(), &format!("n{}", i + 1), ip(i as u8 + 2)))
        .collect();
    let seed = nodes[0].rpc_addr();
    for n in nodes.iter_mut() {
        n.args.extend(timing());
        n.args.extend([
            "--fault-injection".to_string(),
            "--seeds".to_string(),
            seed.clone(),
        ]);
        n.start();
    }
    wait_formed(&nodes.iter().collect::<Vec<_>>());

    let placement: Value = nodes[0].client().placement("sloppy").expect("ring");
    let name = |v: &Value| v.as_str().expect("name").to_string();
    let replicas: Vec<String> = placement["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(name)
        .collect();
    let fallback = name(&placement["fallbacks"][0]);
    assert_eq!(replicas.len(), 3);
    let index = |n: &str| nodes.iter().position(|t| t.name == n).expect("member");
    let (down, coordinator) = (index(&replicas[2]), index(&replicas[0]));
    let spare = index(&fallback);

    nodes[down].kill();
    assert!(wait_until(Duration::from_secs(10), || sees(
        &nodes[coordinator],
        &replicas[2],
        "down"
    )));

    // Strict mode cannot reach three replicas; sloppy mode can, through the spare.
    let c = http();
    let url = nodes[coordinator].key_url("sloppy");
    assert_eq!(
        put(&c, &format!("{url}?w=3&quorum=strict"), "v", None).status(),
        503
    );
    assert_eq!(put(&c, &format!("{url}?w=3"), "v", None).status(), 204);
    assert!(
        nodes[spare].status()["hints_pending"]
            .as_u64()
            .expect("hints")
            >= 1
    );
    // A sloppy read of R = 3 counts the spare's hinted copy.
    assert_eq!(values(&c, &format!("{url}?r=3")), vec!["v"]);

    nodes[down].start();
    assert!(
        wait_until(
            Duration::from_secs(30),
            || nodes[spare].status()["hints_pending"] == 0
        ),
        "the spare kept its hint"
    );
    // The returned replica holds the write on its own.
    let others: Vec<&TestNode> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != down)
        .map(|(_, n)| n)
        .collect();
    assert_eq!(local_values(&nodes[down], &others, "sloppy"), vec!["v"]);
}
