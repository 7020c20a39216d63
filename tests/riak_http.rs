//! Riak's HTTP API against a real three-node cluster: objects with metadata,
//! links and indexes, siblings as `multipart/mixed` resolved with the vclock,
//! buckets that resolve siblings (`allow_mult = false`, `last_write_wins`),
//! conditional requests, bucket properties, listing, and bad input.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

fn put(c: &Client, url: &str, body: &[u8], headers: &[(&str, &str)]) -> Response {
    let mut req = c.put(url).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("put")
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The parts of a `multipart/mixed` body: (headers, body) each.
fn parts(r: Response) -> Vec<(String, Vec<u8>)> {
    let ct = header(&r, "content-type");
    let boundary = ct.split("boundary=").nth(1).expect("boundary").to_string();
    let body = r.bytes().expect("body").to_vec();
    let text = String::from_utf8_lossy(&body).into_owned();
    let sep = format!("\r\n--{boundary}");
    text.split(&sep)
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .map(|p| {
            let p = p.trim_start_matches("\r\n");
            let (head, body) = p.split_once("\r\n\r\n").expect("part headers");
            (head.to_string(), body.as_bytes().to_vec())
        })
        .collect()
}

fn set_props(c: &Client, url: &str, props: Value) {
    let r = c
        .put(url)
        .header("content-type", "application/json")
        .body(json!({ "props": props }).to_string())
        .send()
        .expect("props");
    assert_eq!(r.status(), 204, "{:?}", r.text());
}

#[test]
fn riak_http_objects_siblings_resolution_conditions_and_listing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let c = http();
    let (n1, n2, n3) = (nodes[0].url(), nodes[1].url(), nodes[2].url());

    // The resource map, ping and stats clients probe.
    let map: Value = c
        .get(format!("{n1}/"))
        .header("accept", "application/json")
        .send()
        .expect("map")
        .json()
        .expect("json");
    assert_eq!(map["riak_kv_wm_buckets"], "/buckets");
    assert_eq!(
        c.get(format!("{n1}/ping"))
            .send()
            .expect("ping")
            .text()
            .expect("t"),
        "OK"
    );
    let stats: Value = c
        .get(format!("{n2}/stats"))
        .send()
        .expect("s")
        .json()
        .expect("j");
    assert!(
        stats["riak_kv_version"]
            .as_str()
            .is_some_and(|v| v.starts_with('2'))
    );

    // A binary value and a unicode one, with metadata, links and indexes, read
    // back through every node.
    let binary: Vec<u8> = (0..=255u8).collect();
    let url = format!("{n1}/types/default/buckets/photos/keys/raw%2Fbytes");
    let r = put(
        &c,
        &url,
        &binary,
        &[
            ("content-type", "image/x-test"),
            ("x-riak-meta-camera", "pinhole"),
            ("x-riak-index-year_int", "1999"),
            ("x-riak-index-tag_bin", "sea, sky"),
            ("link", "</buckets/people/keys/ann>; riaktag=\"owner\""),
        ],
    );
    assert_eq!(r.status(), 204);
    let unicode = "naïve café — 東京 🚀".as_bytes();
    let r = put(
        &c,
        &format!("{n2}/buckets/words/keys/%E6%9D%B1"),
        unicode,
        &[("content-type", "text/plain; charset=utf-8")],
    );
    assert_eq!(r.status(), 204);
    for node in [&n1, &n2, &n3] {
        let r = c
            .get(format!("{node}/buckets/photos/keys/raw%2Fbytes"))
            .send()
            .expect("get");
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-type"), "image/x-test");
        assert_eq!(header(&r, "x-riak-meta-camera"), "pinhole");
        assert_eq!(header(&r, "x-riak-index-year_int"), "1999");
        assert_eq!(header(&r, "x-riak-index-tag_bin"), "sea, sky");
        assert!(header(&r, "link").contains("</buckets/people/keys/ann>; riaktag=\"owner\""));
        assert!(!header(&r, "x-riak-vclock").is_empty());
        assert!(!header(&r, "etag").is_empty() && !header(&r, "last-modified").is_empty());
        assert_eq!(r.bytes().expect("b").to_vec(), binary);
        let r = c
            .get(format!("{node}/riak/words/%E6%9D%B1"))
            .send()
            .expect("legacy get");
        assert_eq!(header(&r, "content-type"), "text/plain; charset=utf-8");
        assert_eq!(r.bytes().expect("b").to_vec(), unicode);
    }

    // Siblings: a bucket that keeps them gets two blind writes through two
    // nodes; the read is a 300 with one part per sibling.
    set_props(
        &c,
        &format!("{n1}/buckets/sibs/props"),
        json!({"allow_mult": true}),
    );
    let key = format!("{n1}/buckets/sibs/keys/k");
    assert_eq!(put(&c, &key, b"left", &[]).status(), 204);
    assert_eq!(
        put(&c, &format!("{n3}/buckets/sibs/keys/k"), b"right", &[]).status(),
        204
    );
    let r = c
        .get(&key)
        .header("accept", "multipart/mixed")
        .send()
        .expect("get");
    assert_eq!(r.status(), 300);
    let vclock = header(&r, "x-riak-vclock");
    let got = parts(r);
    let bodies: BTreeSet<Vec<u8>> = got.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(bodies, [b"left".to_vec(), b"right".to_vec()].into());
    // One sibling by its vtag.
    let etag = got[0]
        .0
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .expect("etag");
    let one = c
        .get(format!("{key}?vtag={}", etag.trim_matches('"')))
        .send()
        .expect("vtag");
    assert_eq!(one.status(), 200);
    assert_eq!(one.bytes().expect("b").to_vec(), got[0].1);
    // Writing back with the vclock resolves them.
    assert_eq!(
        put(&c, &key, b"merged", &[("x-riak-vclock", &vclock)]).status(),
        204
    );
    let r = c
        .get(format!("{n2}/buckets/sibs/keys/k"))
        .send()
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("t"), "merged");

    // Buckets of the default type resolve siblings: the newest write shows.
    let nosib = format!("{n1}/buckets/plain/keys/k");
    assert_eq!(put(&c, &nosib, b"first", &[]).status(), 204);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(
        put(&c, &format!("{n2}/buckets/plain/keys/k"), b"second", &[]).status(),
        204
    );
    let r = c.get(&nosib).send().expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("t"), "second");
    // last_write_wins: a write with a stale vclock still replaces.
    set_props(
        &c,
        &format!("{n1}/types/default/buckets/lww/props"),
        json!({"last_write_wins": true, "allow_mult": true}),
    );
    let lww = format!("{n1}/buckets/lww/keys/k");
    assert_eq!(put(&c, &lww, b"a", &[]).status(), 204);
    let stale = header(&c.get(&lww).send().expect("get"), "x-riak-vclock");
    assert_eq!(put(&c, &lww, b"b", &[]).status(), 204);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(
        put(&c, &lww, b"c", &[("x-riak-vclock", &stale)]).status(),
        204
    );
    let r = c.get(&lww).send().expect("get");
    assert_eq!(
        (r.status().as_u16(), r.text().expect("t")),
        (200, "c".to_string())
    );

    // Conditional requests.
    let cond = format!("{n1}/buckets/cond/keys/k");
    assert_eq!(
        put(&c, &cond, b"v1", &[("if-none-match", "*")]).status(),
        204
    );
    assert_eq!(
        put(&c, &cond, b"v2", &[("if-none-match", "*")]).status(),
        412
    );
    let r = c.get(&cond).send().expect("get");
    let etag = header(&r, "etag");
    let modified = header(&r, "last-modified");
    assert_eq!(
        put(&c, &cond, b"v2", &[("if-match", "\"nope\"")]).status(),
        412
    );
    let r = c
        .get(&cond)
        .header("if-none-match", &etag)
        .send()
        .expect("get");
    assert_eq!(r.status(), 304);
    let r = c
        .get(&cond)
        .header("if-modified-since", &modified)
        .send()
        .expect("get");
    assert_eq!(r.status(), 304);
    assert_eq!(put(&c, &cond, b"v2", &[("if-match", &etag)]).status(), 204);
    assert_eq!(c.get(&cond).send().expect("get").text().expect("t"), "v2");

    // returnbody, and POST to a bucket making a key.
    let r = c
        .put(format!("{n2}/buckets/rb/keys/k?returnbody=true"))
        .body("body")
        .send()
        .expect("put");
    assert_eq!(
        (r.status().as_u16(), r.text().expect("t")),
        (200, "body".to_string())
    );
    let r = c
        .post(format!("{n3}/buckets/rb/keys"))
        .body("made")
        .send()
        .expect("post");
    assert_eq!(r.status(), 201);
    let location = header(&r, "location");
    assert!(location.starts_with("/buckets/rb/keys/"), "{location}");
    assert_eq!(
        c.get(format!("{n1}{location}"))
            .send()
            .expect("get")
            .text()
            .expect("t"),
        "made"
    );

    // Delete: a tombstone that reads 404 with X-Riak-Deleted.
    let r = c.delete(&cond).send().expect("delete");
    assert_eq!(r.status(), 204);
    let r = c.get(&cond).send().expect("get");
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "x-riak-deleted"), "true");
    assert_eq!(c.delete(&cond).send().expect("delete").status(), 404);

    // Listing keys (whole and streamed) and buckets.
    for i in 0..30 {
        assert_eq!(
            put(&c, &format!("{n1}/buckets/many/keys/k{i}"), b"x", &[]).status(),
            204
        );
    }
    let all: Value = c
        .get(format!("{n2}/buckets/many/keys?keys=true"))
        .send()
        .expect("keys")
        .json()
        .expect("j");
    let keys: BTreeSet<String> = all["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("s").to_string())
        .collect();
    assert_eq!(keys, (0..30).map(|i| format!("k{i}")).collect());
    let streamed = c
        .get(format!("{n3}/buckets/many/keys?keys=stream"))
        .send()
        .expect("stream")
        .text()
        .expect("t");
    let mut count = 0;
    for chunk in serde_json::Deserializer::from_str(&streamed).into_iter::<Value>() {
        count += chunk.expect("chunk")["keys"]
            .as_array()
            .expect("keys")
            .len();
    }
    assert_eq!(count, 30);
    let buckets: Value = c
        .get(format!("{n1}/buckets?buckets=true"))
        .send()
        .expect("b")
        .json()
        .expect("j");
    let buckets: BTreeSet<&str> = buckets["buckets"]
        .as_array()
        .expect("b")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for b in ["photos", "words", "sibs", "plain", "lww", "rb", "many"] {
        assert!(buckets.contains(b), "{b} missing from {buckets:?}");
    }

    // Properties: set, read on another node, reset to the type's.
    set_props(
        &c,
        &format!("{n1}/buckets/many/props"),
        json!({"n_val": 2, "r": "one"}),
    );
    let p: Value = c
        .get(format!("{n3}/buckets/many/props"))
        .send()
        .expect("p")
        .json()
        .expect("j");
    assert_eq!(
        (p["props"]["n_val"].clone(), p["props"]["r"].clone()),
        (json!(2), json!("one"))
    );
    assert_eq!(
        c.delete(format!("{n1}/buckets/many/props"))
            .send()
            .expect("d")
            .status(),
        204
    );
    let p: Value = c
        .get(format!("{n2}/buckets/many/props"))
        .send()
        .expect("p")
        .json()
        .expect("j");
    assert_eq!(p["props"]["n_val"], json!(3));

    // Bad input: a clear 4xx, and the node goes on.
    let bad = [
        c.put(&key)
            .header("x-riak-vclock", "!!!")
            .body("x")
            .send()
            .expect("r"),
        c.put(&key)
            .header("x-riak-vclock", "AAAA")
            .body("x")
            .send()
            .expect("r"),
        c.get(format!("{n1}/buckets/b/keys/k?r=most"))
            .send()
            .expect("r"),
        c.put(format!("{n1}/buckets/b/props"))
            .body("{not json")
            .send()
            .expect("r"),
        c.put(format!("{n1}/buckets/b/props"))
            .body(r#"{"props":{"n_val":9}}"#)
            .send()
            .expect("r"),
        c.put(&key)
            .header("x-riak-index-age_int", "old")
            .body("x")
            .send()
            .expect("r"),
        c.put(&key)
            .header("link", "<nowhere")
            .body("x")
            .send()
            .expect("r"),
        c.get(format!("{n1}/types/default/buckets/default/keys/%00k"))
            .send()
            .expect("r"),
    ];
    for r in bad {
        assert_eq!(r.status(), 400, "{:?}", r.text());
    }
    let r = c
        .get(format!("{n1}/types/nosuch/buckets/b/keys/k"))
        .send()
        .expect("r");
    assert_eq!(r.status(), 404);
    let r = c
        .put(format!("{n1}/buckets/b/keys/big"))
        .body(vec![0u8; 1024 * 1024 + 1])
        .send()
        .expect("r");
    assert_eq!(r.status(), 413);
    assert_eq!(
        c.get(format!("{n1}/ping")).send().expect("ping").status(),
        200
    );
}
