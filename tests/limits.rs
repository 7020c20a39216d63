//! What a client that proves nothing can make a node do is bounded: a
//! connection that sends half a header is closed, thousands of idle
//! connections neither hide `/health` nor stop writes for long, and a huge
//! ingest body without the token is refused before it is read.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Reads what the server sends until it closes the connection or `within`
/// passes; `None` if it was still open then.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(String::from_utf8_lossy(&got).into_owned()),
        }
    }
    None
}

fn http_addr(node: &TestNode) -> String {
    node.url().trim_start_matches("http://").to_string()
}

#[test]
fn a_connection_sending_half_a_header_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(dir.path(), "n1", ip(2));
    node.start();
    let mut s = TcpStream::connect(http_addr(&node)).expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("write");
    let closed = read_until_closed(&mut s, Duration::from_secs(30));
    assert!(
        closed.is_some(),
        "a half-sent header still held its connection after 30 s"
    );
}

#[test]
fn thousands_of_idle_connections_hide_neither_health_nor_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(dir.path(), "n1", ip(3));
    node.start();
    let addr = http_addr(&node);
    let idle: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    // Over the cap (1,024): /health answers at once all the same.
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let started = Instant::now();
    let health = c
        .get(format!("{}/health", node.url()))
        .send()
        .expect("health");
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    // A write over the cap is refused (not applied) rather than left
    // hanging, and is served once the idle connections time out.
    let put = || {
        c.put(node.key_url("k"))
            .body("v")
            .send()
            .map(|r| r.status().as_u16())
    };
    let first = put();
    assert!(
        matches!(first, Ok(503) | Ok(204) | Ok(200)),
        "a write over the cap: {first:?}"
    );
    assert!(
        wait_until(Duration::from_secs(40), || put()
            .is_ok_and(|s| s == 204 || s == 200)),
        "writes were not served again"
    );
    drop(idle);
}

#[test]
fn a_huge_ingest_body_without_the_token_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(dir.path(), "n1", ip(4));
    node.args
        .extend(["--admin-token".to_string(), "s3cret".to_string()]);
    node.start();
    let mut s = TcpStream::connect(http_addr(&node)).expect("connect");
    // 200 MB announced, none of it sent: the answer must come anyway.
    s.write_all(
        b"POST /admin/ingest HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-dynakv-records\r\ncontent-length: 209715200\r\n\r\n",
    )
    .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("an answer before the body");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // Export reads whole partitions: it needs the token too.
    let c = http();
    let r = c
        .get(format!("{}/admin/export?partition=1", node.url()))
        .send()
        .expect("export");
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/admin/export?partition=1", node.url()))
        .bearer_auth("s3cret")
        .send()
        .expect("export");
    assert_eq!(r.status(), 200);
}

#[test]
fn an_object_larger_than_a_frame_is_refused_at_write_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(dir.path(), "n1", ip(5));
    node.args
        .extend(["--max-value-bytes".to_string(), (64 << 20).to_string()]);
    node.start();
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let value = vec![b'x'; 45 << 20];
    // Two writes without a context are siblings: together 90 MiB, more than
    // one node-to-node frame carries. The second is refused, nothing stored.
    let first = c
        .put(node.key_url("big"))
        .body(value.clone())
        .send()
        .expect("put");
    assert_eq!(first.status(), 204);
    let second = c.put(node.key_url("big")).body(value).send().expect("put");
    assert_eq!(second.status(), 413);
    let body = second.text().expect("text");
    assert!(body.contains("object_too_large"), "{body}");
    let read = c.get(node.key_url("big")).send().expect("get");
    assert_eq!(read.status(), 200, "one value, as before the refused write");
    assert_eq!(read.bytes().expect("bytes").len(), 45 << 20);
}

#[test]
fn a_pb_connection_over_the_cap_is_told_and_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(dir.path(), "n1", ip(6));
    node.args
        .extend(["--max-connections".to_string(), "2".to_string()]);
    node.start();
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(node.pb_addr()).expect("connect"))
        .collect();
    // Give the node a moment to take both.
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(node.pb_addr()).expect("connect");
    let answer = read_until_closed(&mut third, Duration::from_secs(5)).expect("closed");
    assert!(
        answer.as_bytes().get(4) == Some(&0) && answer.contains("too many connections"),
        "{answer:?}"
    );
    drop(held);
    // Once one closes, a new connection is served (RpbPingReq → RpbPingResp).
    let ok = wait_until(Duration::from_secs(5), || {
        let Ok(mut s) = TcpStream::connect(node.pb_addr()) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(&[0, 0, 0, 1, 1]);
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).is_ok() && buf[4] == 2
    });
    assert!(ok, "PB was not served again");
}
