//! No input crashes a node (SPEC §5): thousands of random requests — methods,
//! paths, query strings, headers, bodies, and raw bytes that are not HTTP at
//! all — against a live node. Every answer is a valid status, every error
//! carries a JSON `{"error", "message"}` body, and the node keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const SEED: u64 = 0x5eed_f00d;
const REQUESTS: usize = 3000;

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max);
    (0..len).map(|_| rng.random()).collect()
}

fn percent(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn random_segment(rng: &mut StdRng) -> String {
    match rng.random_range(0..6) {
        0 => String::new(),
        1 => percent(&random_bytes(rng, 40)),
        2 => "a".repeat(rng.random_range(1000..1100)),
        3 => "..".into(),
        4 => "kv".into(),
        _ => (0..rng.random_range(1..12))
            .map(|_| rng.random_range(b'a'..=b'z') as char)
            .collect(),
    }
}

fn random_path(rng: &mut StdRng) -> String {
    let prefixes = [
        "/kv/",
        "/admin/",
        "/admin/status",
        "/admin/ring",
        "/admin/plan",
        "/admin/remove/",
        "/metrics",
        "/health",
        "/",
        "/kv",
        "/admin/repair",
        "/admin/bucket-types/",
        "/buckets",
        "/buckets/",
        "/buckets/b/keys/",
        "/buckets/b/props",
        "/buckets/b/counters/",
        "/types/",
        "/types/default/buckets/b/keys/",
        "/riak/",
        "/riak/b/",
        "/ping",
        "/stats",
    ];
    let mut path = prefixes[rng.random_range(0..prefixes.len())].to_string();
    for _ in 0..rng.random_range(0..3) {
        path.push_str(&random_segment(rng));
        if rng.random_bool(0.3) {
            path.push('/');
        }
    }
    if rng.random_bool(0.5) {
        path.push('?');
        let keys = [
            "r",
            "w",
            "quorum",
            "timeout_ms",
            "key",
            "join",
            "leave",
            "remove",
            "weight",
            "zone",
            "x",
            "returnbody",
            "keys",
            "buckets",
            "vtag",
            "pr",
            "pw",
            "dw",
            "rw",
            "timeout",
            "props",
            "returnvalue",
        ];
        for i in 0..rng.random_range(1..4) {
            if i > 0 {
                path.push('&');
            }
            path.push_str(keys[rng.random_range(0..keys.len())]);
            path.push('=');
            let values = [
                "0",
                "1",
                "2",
                "3",
                "99",
                "-1",
                "one",
                "quorum",
                "all",
                "strict",
                "sloppy",
                "18446744073709551616",
                "nan",
                "1e308",
                "",
                "true",
                "stream",
            ];
            if rng.random_bool(0.7) {
                path.push_str(values[rng.random_range(0..values.len())]);
            } else {
                path.push_str(&percent(&random_bytes(rng, 12)));
            }
        }
    }
    path
}

fn assert_valid(resp: reqwest::blocking::Response, what: &str) {
    let status = resp.status().as_u16();
    assert!((100..600).contains(&status), "{what}: status {status}");
    if status >= 400 {
        let body = resp.bytes().unwrap_or_default();
        let json: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{what}: error {status} without a JSON body: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        });
        assert!(
            json["error"].is_string() && json["message"].is_string(),
            "{what}: error {status} body {json}"
        );
    }
}

#[test]
fn random_requests_never_crash_a_node_and_errors_are_json() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(root.path(), "fuzz", ip(1));
    node.args
        .extend(["--max-value-bytes".to_string(), "65536".to_string()]);
    node.start();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut rng = StdRng::seed_from_u64(SEED);
    let methods = [
        "GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS", "FOO", "TRACE",
    ];
    let headers = [
        "x-causal-context",
        "content-type",
        "accept",
        "authorization",
        "x-random",
        "x-riak-vclock",
        "x-riak-meta-m",
        "x-riak-index-i_int",
        "x-riak-index-i_bin",
        "link",
        "if-none-match",
        "if-match",
        "if-modified-since",
        "if-unmodified-since",
    ];
    for i in 0..REQUESTS {
        let method = methods[rng.random_range(0..methods.len())];
        let path = random_path(&mut rng);
        let url = format!("{}{path}", node.url());
        let mut req = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            &url,
        );
        for _ in 0..rng.random_range(0..3) {
            let name = headers[rng.random_range(0..headers.len())];
            let value: String = match rng.random_range(0..3) {
                0 => "application/json".into(),
                1 => (0..rng.random_range(0..80))
                    .map(|_| rng.random_range(b' '..=b'~') as char)
                    .collect(),
                _ => "AQAAAAAAAAAA".into(),
            };
            req = req.header(name, value);
        }
        if rng.random_bool(0.5) {
            let max = if rng.random_bool(0.05) { 70_000 } else { 300 };
            req = req.body(random_bytes(&mut rng, max));
        }
        let what = format!("request {i}: {method} {path}");
        let retry = req.try_clone();
        // A pooled keep-alive connection the node closed after the previous
        // answer (a refused oversized body) fails on the client side; one
        // retry on a fresh connection tells that from a node that stopped
        // answering.
        let resp = match req.send() {
            Ok(r) => r,
            Err(first) => {
                assert!(node.alive(), "{what}: the node died ({first})");
                let again = retry.unwrap_or_else(|| panic!("{what}: no answer: {first:?}"));
                std::thread::sleep(Duration::from_millis(50));
                again
                    .send()
                    .unwrap_or_else(|e| panic!("{what}: no answer twice: {first:?} / {e:?}"))
            }
        };
        if method != "HEAD" {
            assert_valid(resp, &what);
        }
        if i % 500 == 0 {
            // Raw bytes that are not HTTP at all: the connection closes, the
            // node goes on.
            if let Ok(mut s) = TcpStream::connect(format!("{}:{}", node.ip, node.http_port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(&random_bytes(&mut rng, 2000));
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }
    }
    // Still serving, and still storing.
    let resp = put(&client, &node.key_url("after-fuzz"), "alive", None);
    assert_eq!(resp.status(), 204, "seed {SEED}");
    assert_eq!(values(&client, &node.key_url("after-fuzz")), vec!["alive"]);
    assert!(node.alive(), "seed {SEED}: the node died");
    assert_eq!(metric(&node, "dynakv_handler_panics_total"), 0.0);
}

/// A Protocol Buffers frame: random, or a real message with random fields,
/// or a broken length.
fn random_frame(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..4) {
        // A known or unknown code with a random body.
        0 | 1 => {
            let body = random_bytes(rng, 200);
            let code: u8 = if rng.random_bool(0.7) {
                rng.random_range(0..40)
            } else {
                rng.random()
            };
            let mut f = ((body.len() + 1) as u32).to_be_bytes().to_vec();
            f.push(code);
            f.extend(body);
            f
        }
        // A well-formed request with random names and values.
        2 => {
            use dynakv_riakpb::Request;
            use dynakv_riakpb::messages::*;
            let bucket = random_bytes(rng, 300);
            let key = random_bytes(rng, 1100);
            let req = match rng.random_range(0..6) {
                0 => Request::Get(RpbGetReq {
                    bucket,
                    key,
                    r: Some(rng.random()),
                    ..Default::default()
                }),
                1 => Request::Put(RpbPutReq {
                    bucket,
                    key: Some(key),
                    vclock: rng.random_bool(0.5).then(|| random_bytes(rng, 40)),
                    content: RpbContent {
                        value: random_bytes(rng, 100),
                        ..Default::default()
                    },
                    w: Some(rng.random()),
                    ..Default::default()
                }),
                2 => Request::Del(RpbDelReq {
                    bucket,
                    key,
                    rw: Some(rng.random()),
                    ..Default::default()
                }),
                3 => Request::ListKeys(RpbListKeysReq {
                    bucket,
                    timeout: Some(rng.random_range(0..50)),
                    r#type: None,
                }),
                4 => Request::SetBucket(RpbSetBucketReq {
                    bucket,
                    props: RpbBucketProps {
                        n_val: Some(rng.random_range(0..6)),
                        r: Some(rng.random()),
                        ..Default::default()
                    },
                    r#type: rng.random_bool(0.5).then(|| random_bytes(rng, 10)),
                }),
                _ => Request::CounterUpdate(RpbCounterUpdateReq {
                    bucket,
                    key,
                    amount: rng.random(),
                    ..Default::default()
                }),
            };
            let mut buf = bytes::BytesMut::new();
            req.encode_frame(&mut buf);
            buf.to_vec()
        }
        // A length prefix that lies.
        _ => {
            let mut f = rng.random::<u32>().to_be_bytes().to_vec();
            f.extend(random_bytes(rng, 20));
            f
        }
    }
}

#[test]
fn random_protocol_buffers_frames_never_crash_a_node() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(root.path(), "pbfuzz", ip(1));
    node.args
        .extend(["--max-value-bytes".to_string(), "65536".to_string()]);
    node.start();
    let mut rng = StdRng::seed_from_u64(SEED);
    for conn in 0..150 {
        let mut s = TcpStream::connect(node.pb_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        for _ in 0..rng.random_range(1..8) {
            if s.write_all(&random_frame(&mut rng)).is_err() {
                break;
            }
        }
        // Half the time, read what comes back: every answer a valid frame.
        if rng.random_bool(0.5) {
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut answers = Vec::new();
            let _ = s.read_to_end(&mut answers);
            let mut rest = &answers[..];
            while rest.len() >= 5 {
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                assert!(
                    len >= 1 && rest.len() >= 4 + len,
                    "connection {conn}: a broken answer frame"
                );
                dynakv_riakpb::Response::decode(rest[4], &rest[5..4 + len])
                    .unwrap_or_else(|e| panic!("connection {conn}: an undecodable answer: {e}"));
                rest = &rest[4 + len..];
            }
        }
        assert!(
            node.alive(),
            "seed {SEED}: the node died at connection {conn}"
        );
    }
    // Still serving both APIs.
    let mut s = TcpStream::connect(node.pb_addr()).expect("connect");
    s.write_all(&[0, 0, 0, 1, 1]).expect("ping");
    let mut pong = [0u8; 5];
    s.read_exact(&mut pong).expect("pong");
    assert_eq!(pong, [0, 0, 0, 1, 2]);
    let client = http();
    assert_eq!(
        put(&client, &node.key_url("after"), "alive", None).status(),
        204
    );
    assert_eq!(metric(&node, "dynakv_handler_panics_total"), 0.0);
}
