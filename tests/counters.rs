//! Riak 1.4 counters on three nodes: increments through every node at once,
//! over HTTP, all count.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn concurrent_increments_through_every_node_all_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let c = http();
    let r = c
        .put(format!("{}/buckets/likes/props", nodes[0].url()))
        .header("content-type", "application/json")
        .body(r#"{"props":{"allow_mult":true}}"#)
        .send()
        .expect("props");
    assert_eq!(r.status(), 204);
    // A bucket that drops siblings cannot hold a counter.
    let r = c
        .post(format!("{}/buckets/plain/counters/k", nodes[0].url()))
        .body("1")
        .send()
        .expect("post");
    assert_eq!(r.status(), 409);
    assert_eq!(
        c.get(format!("{}/buckets/likes/counters/page", nodes[1].url()))
            .send()
            .expect("get")
            .status(),
        404
    );

    const PER_THREAD: i64 = 60;
    std::thread::scope(|s| {
        for (t, node) in nodes.iter().enumerate() {
            for lane in 0..2 {
                let url = format!("{}/buckets/likes/counters/page", node.url());
                let c = http();
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        // +2 then -1, alternating: each pair adds 1.
                        let by = if (i + t as i64 + lane) % 2 == 0 {
                            2
                        } else {
                            -1
                        };
                        let r = c.post(&url).body(by.to_string()).send().expect("post");
                        assert_eq!(r.status(), 204, "{:?}", r.text());
                    }
                });
            }
        }
    });
    // 6 lanes of 60 increments, 30 of +2 and 30 of -1 each: 6 * 30 = 180.
    for node in &nodes {
        let url = format!("{}/buckets/likes/counters/page?r=3", node.url());
        let ok = wait_until(Duration::from_secs(10), || {
            c.get(&url)
                .send()
                .ok()
                .and_then(|r| r.text().ok())
                .as_deref()
                == Some("180")
        });
        assert!(
            ok,
            "{} reads {:?}",
            node.name,
            c.get(&url).send().expect("get").text()
        );
    }
    let r = c
        .post(format!(
            "{}/buckets/likes/counters/page?returnvalue=true",
            nodes[2].url()
        ))
        .body("-80")
        .send()
        .expect("post");
    assert_eq!(r.text().expect("t"), "100");
    let r = c
        .post(format!("{}/buckets/likes/counters/page", nodes[2].url()))
        .body("one")
        .send()
        .expect("post");
    assert_eq!(r.status(), 400);
}
