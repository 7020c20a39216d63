//! A single durable node driven over HTTP and through the CLI, as a user would.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use common::*;
use serde_json::Value;

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A raw `PUT`: this file tests the HTTP API itself (status codes, headers,
/// error bodies, malformed requests), so it builds its requests by hand where
/// the other suites go through `dynakv-client`.
fn put(
    client: &reqwest::blocking::Client,
    url: &str,
    value: impl Into<Vec<u8>>,
    ctx: Option<&str>,
) -> reqwest::blocking::Response {
    let mut req = client.put(url).body(value.into());
    if let Some(c) = ctx {
        req = req.header(CONTEXT, c);
    }
    req.send().expect("PUT")
}

fn started(root: &std::path::Path, args: &[&str]) -> TestNode {
    let mut node = TestNode::new(root, "solo", LOCAL).with_args(args);
    node.start();
    node
}

#[test]
fn values_round_trip_with_content_types_and_encoded_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = started(dir.path(), &[]);
    let c = http();

    // Binary value with every byte, and a content type.
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let resp = c
        .put(node.key_url("bin"))
        .header("content-type", "image/x-test")
        .body(binary.clone())
        .send()
        .expect("put");
    assert_eq!(resp.status(), 204);
    assert!(!ctx_of(&resp).is_empty());
    let resp = c.get(node.key_url("bin")).send().expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/x-test");
    ctx_of(&resp);
    assert_eq!(resp.bytes().expect("body").to_vec(), binary);

    // Empty value, default content type.
    assert_eq!(
        put(&c, &node.key_url("empty"), Vec::new(), None).status(),
        204
    );
    let resp = c.get(node.key_url("empty")).send().expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert!(resp.bytes().expect("body").is_empty());

    // Keys with '/', spaces, non-ASCII, and raw non-UTF-8 bytes are distinct keys.
    let keys = [
        "a%2Fb",
        "a%20b%20c",
        "%C3%A9t%C3%A9%2F%E6%97%A5%E6%9C%AC",
        "%FF%00%01",
        "plus+sign",
    ];
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            put(&c, &node.key_url(k), format!("value-{i}"), None).status(),
            204,
            "{k}"
        );
    }
    for (i, k) in keys.iter().enumerate() {
        let resp = c.get(node.key_url(k)).send().expect("get");
        assert_eq!(resp.status(), 200, "{k}");
        assert_eq!(resp.text().expect("text"), format!("value-{i}"), "{k}");
    }
    // "a/b" (encoded) and "a b" are not confused with raw paths.
    assert_eq!(c.get(node.key_url("a")).send().expect("get").status(), 404);

    // The JSON form for a single value.
    let resp = c
        .get(node.key_url("a%2Fb"))
        .header("accept", "application/json")
        .send()
        .expect("get");
    assert_eq!(resp.status(), 200);
    let ctx = ctx_of(&resp);
    let body: Value = resp.json().expect("json");
    assert_eq!(body["context"], ctx.as_str());
    assert_eq!(body["siblings"].as_array().expect("array").len(), 1);
    assert_eq!(
        body["siblings"][0]["content_type"],
        "application/octet-stream"
    );
}

#[test]
fn concurrent_writes_become_siblings_and_a_context_resolves_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = started(dir.path(), &[]);
    let c = http();
    let url = node.key_url("cart");

    let first = put(&c, &url, "v1", None);
    let ctx1 = ctx_of(&first);
    // Two writers that both read v1.
    assert_eq!(put(&c, &url, "alice", Some(&ctx1)).status(), 204);
    assert_eq!(put(&c, &url, "bob", Some(&ctx1)).status(), 204);

    let resp = c.get(&url).send().expect("get");
    assert_eq!(resp.status(), 300);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let header_ctx = ctx_of(&resp);
    let body: Value = resp.json().expect("json");
    assert_eq!(body["context"], header_ctx.as_str());
    assert_eq!(values(&c, &url), vec!["alice", "bob"]);

    // Writing back with the 300's context resolves the siblings.
    assert_eq!(put(&c, &url, "alice+bob", Some(&header_ctx)).status(), 204);
    let resp = c.get(&url).send().expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().expect("text"), "alice+bob");

    // A write without context onto an existing key adds a sibling.
    assert_eq!(put(&c, &url, "blind", None).status(), 204);
    assert_eq!(values(&c, &url), vec!["alice+bob", "blind"]);
}

#[test]
fn deletes_hide_the_key_and_a_stale_delete_keeps_the_concurrent_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = started(dir.path(), &[]);
    let c = http();

    let url = node.key_url("doomed");
    put(&c, &url, "x", None);
    let resp = c.delete(&url).send().expect("delete");
    assert_eq!(resp.status(), 204);
    let resp = c.get(&url).send().expect("get");
    assert_eq!(resp.status(), 404);
    let tomb_ctx = ctx_of(&resp);
    let body: Value = resp.json().expect("json");
    assert_eq!(body["error"], "not_found");
    // Writing with the tombstone's context brings the key back as one value.
    assert_eq!(put(&c, &url, "reborn", Some(&tomb_ctx)).status(), 204);
    assert_eq!(values(&c, &url), vec!["reborn"]);

    // A delete carrying a stale context leaves the value it never saw.
    let url = node.key_url("contested");
    let stale = ctx_of(&put(&c, &url, "old", None));
    put(&c, &url, "new", Some(&stale));
    let resp = c
        .delete(&url)
        .header(CONTEXT, &stale)
        .send()
        .expect("delete");
    assert_eq!(resp.status(), 204);
    assert_eq!(values(&c, &url), vec!["new"]);

    // Deleting a key that never existed succeeds and writes nothing.
    assert_eq!(
        c.delete(node.key_url("never"))
            .send()
            .expect("delete")
            .status(),
        204
    );
    assert_eq!(
        c.get(node.key_url("never")).send().expect("get").status(),
        404
    );
}

#[test]
fn acknowledged_writes_survive_sigkill_and_the_node_keeps_its_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = started(dir.path(), &[]);
    let before = node.status();

    // 5,000 acknowledged writes from 4 concurrent clients.
    std::thread::scope(|s| {
        for t in 0..4 {
            let node = &node;
            s.spawn(move || {
                let c = http();
                for i in (t..5000).step_by(4) {
                    let resp = put(
                        &c,
                        &node.key_url(&format!("key-{i}")),
                        format!("value-{i}"),
                        None,
                    );
                    assert_eq!(resp.status(), 204, "write {i} not acknowledged");
                }
            });
        }
    });
    node.kill();
    node.start();

    let after = node.status();
    assert_eq!(after["node"], before["node"]);
    assert_eq!(after["actor"], before["actor"]);
    assert_eq!(after["keys"], 5000);
    let c = http();
    for i in 0..5000 {
        let resp = c
            .get(node.key_url(&format!("key-{i}")))
            .send()
            .expect("get");
        assert_eq!(resp.status(), 200, "key-{i} lost after SIGKILL");
        assert_eq!(resp.text().expect("text"), format!("value-{i}"));
    }
}

/// SIGKILL while 8 clients write as fast as they can: concurrent writes
/// share storage writes (group commit), and every one that was acknowledged
/// before the kill is there after the restart.
#[test]
fn writes_acknowledged_while_the_node_is_killed_mid_stream_survive() {
    writes_acknowledged_mid_stream_survive(|node| node.kill());
}

/// The same with SIGTERM: the node stops cleanly with writes in flight
/// (queued updates are answered, not abandoned), and loses none it
/// acknowledged.
#[test]
fn writes_acknowledged_while_the_node_stops_mid_stream_survive() {
    writes_acknowledged_mid_stream_survive(|node| {
        let status = node.stop();
        assert!(status.success(), "exit status {status}");
    });
}

fn writes_acknowledged_mid_stream_survive(stop: impl FnOnce(&mut TestNode)) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = started(dir.path(), &[]);
    let url = node.key_url("");
    let acked = Mutex::new(Vec::new());
    let count = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (url, acked, count) = (&url, &acked, &count);
            s.spawn(move || {
                let c = http();
                // Until the node is gone (bounded in count either way).
                for i in 0..20_000 {
                    let key = format!("t{t}-{i}");
                    let sent = c.put(format!("{url}{key}")).body(format!("v-{key}")).send();
                    match sent {
                        Ok(r) if r.status() == 204 => {
                            acked.lock().expect("acked").push(key);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
            });
        }
        let going = wait_until(Duration::from_secs(30), || {
            count.load(Ordering::Relaxed) >= 2000
        });
        let batches = metric(&node, "dynakv_local_write_batches_total");
        // Stopped before any assertion: the clients end when the node does.
        stop(&mut node);
        assert!(going, "the clients did not get going");
        assert!(batches >= 1.0, "the writes went through the group commit");
    });
    node.start();
    let acked = acked.into_inner().expect("acked");
    assert!(acked.len() >= 2000);
    let c = http();
    for key in &acked {
        let resp = c.get(node.key_url(key)).send().expect("get");
        assert_eq!(
            resp.status(),
            200,
            "{key} acknowledged, lost after the stop"
        );
        assert_eq!(resp.text().expect("text"), format!("v-{key}"));
    }
}

fn assert_error(resp: reqwest::blocking::Response, status: u16, code: &str) {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().expect("JSON error body");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[test]
fn bad_input_gets_its_status_and_json_error_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = started(dir.path(), &["--max-value-bytes", "1000"]);
    let c = http();
    let url = node.key_url("k");
    let good_ctx = ctx_of(&put(&c, &url, "v", None));

    for q in ["r=0", "r=4", "r=abc", "r=", "timeout_ms=0", "timeout_ms=x"] {
        assert_error(
            c.get(format!("{url}?{q}")).send().expect("get"),
            400,
            "bad_request",
        );
    }
    for q in ["w=0", "w=7", "w=most", "quorum=maybe"] {
        assert_error(
            c.put(format!("{url}?{q}")).body("v").send().expect("put"),
            400,
            "bad_request",
        );
    }
    // Accepted spellings of quorums.
    for q in ["r=1", "r=3", "r=one", "r=quorum", "r=all"] {
        assert_eq!(
            c.get(format!("{url}?{q}")).send().expect("get").status(),
            200,
            "{q}"
        );
    }

    // Malformed and tampered contexts.
    assert_error(put(&c, &url, "v", Some("not a token!")), 400, "bad_request");
    let mut tampered = good_ctx.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert_error(put(&c, &url, "v", Some(&tampered)), 400, "bad_request");
    assert_error(
        c.delete(&url)
            .header(CONTEXT, &tampered)
            .send()
            .expect("delete"),
        400,
        "bad_request",
    );

    // Key length: 1,024 bytes is fine, 1,025 is not.
    let ok_key = "k".repeat(1024);
    assert_eq!(put(&c, &node.key_url(&ok_key), "v", None).status(), 204);
    let long_key = "k".repeat(1025);
    assert_error(
        put(&c, &node.key_url(&long_key), "v", None),
        400,
        "bad_request",
    );
    assert_error(
        c.get(node.key_url(&long_key)).send().expect("get"),
        400,
        "bad_request",
    );
    // Encoded bytes count after decoding: 342 three-byte characters = 1,026 bytes.
    let wide_key = "%E2%82%AC".repeat(342);
    assert_error(
        put(&c, &node.key_url(&wide_key), "v", None),
        400,
        "bad_request",
    );
    // An unencoded '/' and an empty key.
    assert_error(put(&c, &node.key_url("a/b"), "v", None), 400, "bad_request");
    assert_error(
        put(&c, &format!("{}/kv/", node.url()), "v", None),
        400,
        "bad_request",
    );

    // Values: exactly the limit is fine, one byte more is 413.
    assert_eq!(put(&c, &url, vec![b'x'; 1000], None).status(), 204);
    assert_error(
        put(&c, &url, vec![b'x'; 1001], None),
        413,
        "value_too_large",
    );

    // Unknown routes and methods.
    assert_error(
        c.get(format!("{}/nope", node.url())).send().expect("get"),
        404,
        "not_found",
    );
    assert_error(
        c.post(format!("{}/admin/nope", node.url()))
            .send()
            .expect("post"),
        404,
        "not_found",
    );
    assert_error(
        c.post(&url).body("v").send().expect("post"),
        405,
        "method_not_allowed",
    );

    // Still serving, and every request was counted.
    assert_eq!(
        c.get(format!("{}/health", node.url()))
            .send()
            .expect("health")
            .status(),
        200
    );
    let metrics = c
        .get(format!("{}/metrics", node.url()))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("dynakv_http_requests_total{op=\"Put\",status=\"413\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dynakv_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("dynakv_keys "), "{metrics}");
}

#[test]
fn too_many_siblings_is_refused_with_409() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = started(dir.path(), &["--max-siblings", "3"]);
    let c = http();
    let url = node.key_url("crowded");
    for i in 0..3 {
        assert_eq!(put(&c, &url, format!("v{i}"), None).status(), 204);
    }
    assert_error(
        put(&c, &url, "one too many", None),
        409,
        "too_many_siblings",
    );
    assert_eq!(values(&c, &url).len(), 3);
    // Resolving with the current context is always accepted.
    let ctx = ctx_of(&c.get(&url).send().expect("get"));
    assert_eq!(put(&c, &url, "merged", Some(&ctx)).status(), 204);
    assert_eq!(values(&c, &url), vec!["merged"]);
}

#[test]
fn invalid_configuration_stops_the_node_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("node")
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .args(args)
            .env_remove("DYNAKV_NODE")
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "n = 3\nbogus_setting = true\n").expect("write");
    let (code, err) = run(&["--config", cfg.to_str().expect("utf8")]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bogus_setting") && err.contains("line 2"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let (code, err) = run(&["--r", "4"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("r = 4"), "{err}");

    let (code, err) = run(&["--listen", "not-an-address"]);
    assert_eq!(code, Some(2), "{err}");

    // The environment is read too, and flags beat it.
    let out = Command::new(BIN)
        .args(["node", "--data-dir", "x"])
        .env("DYNAKV_W", "9")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("w = 9"));
}

#[test]
fn config_file_environment_and_flags_layer_in_that_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "n = 5\nr = 3\nw = 3\nmax_siblings = 7\n").expect("write");
    let mut node = TestNode::new(dir.path(), "layered", LOCAL).with_args(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "--w",
        "4",
    ]);
    node.args.push("--max-siblings".into());
    node.args.push("9".into());
    node.env.retain(|(k, _)| k != "DYNAKV_CLUSTER_SECRET");
    node.env.push(("DYNAKV_R".into(), "2".into()));
    node.env.push(("DYNAKV_MAX_SIBLINGS".into(), "8".into()));
    node.start();
    let config = &node.status()["config"];
    assert_eq!(config["n"], 5, "from the file");
    assert_eq!(config["r"], 2, "the environment beats the file");
    assert_eq!(config["w"], 4);
    assert_eq!(config["max_siblings"], 9, "flags beat the environment");
    assert_eq!(config["cluster_secret_set"], false);
    assert!(config.get("cluster_secret").is_none());
}

#[test]
fn sigterm_stops_the_node_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = started(dir.path(), &[]);
    put(&http(), &node.key_url("k"), "v", None);
    let status = node.stop();
    assert!(status.success(), "exit status {status}");
    node.start();
    assert_eq!(values(&http(), &node.key_url("k")), vec!["v"]);
}

fn cli(node: &TestNode, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--node", &node.url()])
        .output()
        .expect("run cli");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_reads_writes_and_deletes_with_clear_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = started(dir.path(), &[]);

    let (code, ctx, _) = cli(&node, &["put", "greeting/en", "hello"]);
    assert_eq!(code, Some(0));
    assert!(!ctx.trim().is_empty());
    // A second put reads first, so it replaces instead of adding a sibling.
    assert_eq!(
        cli(&node, &["put", "greeting/en", "hello again"]).0,
        Some(0)
    );
    let (code, out, err) = cli(&node, &["get", "greeting/en"]);
    assert_eq!(code, Some(0));
    assert_eq!(out, "hello again");
    assert!(err.contains("context: "));

    // --blind adds a sibling; get shows both.
    assert_eq!(
        cli(&node, &["put", "--blind", "greeting/en", "hi"]).0,
        Some(0)
    );
    let (code, out, _) = cli(&node, &["get", "greeting/en"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("2 siblings"), "{out}");

    // --file and --context.
    let file = dir.path().join("value.bin");
    std::fs::write(&file, b"from a file").expect("write");
    let ctx_line = out
        .lines()
        .last()
        .expect("context line")
        .trim_start_matches("context: ")
        .to_string();
    let (code, _, _) = cli(
        &node,
        &[
            "put",
            "greeting/en",
            "--file",
            file.to_str().expect("utf8"),
            "--context",
            &ctx_line,
        ],
    );
    assert_eq!(code, Some(0));
    assert_eq!(cli(&node, &["get", "greeting/en"]).1, "from a file");

    assert_eq!(cli(&node, &["delete", "greeting/en"]).0, Some(0));
    let (code, _, err) = cli(&node, &["get", "greeting/en"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");

    // Usage errors exit 2, operational failures 1.
    let (code, _, err) = cli(&node, &["put", "k", "v", "--w", "9"]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(cli(&node, &["get"]).0, Some(2));
    let out = Command::new(BIN)
        .args([
            "get",
            "k",
            "--node",
            &format!("http://127.0.0.1:{}", free_port(LOCAL)),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));

    let (code, out, _) = cli(&node, &["status"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("solo") && out.contains("up"), "{out}");
}

#[test]
fn the_bench_command_loads_runs_a_ycsb_workload_and_reports_percentiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = started(dir.path(), &[]);
    let url = node.url();
    // Workload F loads the records, and its read-modify-writes go through
    // the causal context: one client's leave no siblings behind (concurrent
    // clients' may, as concurrent writes do).
    let report = bench_json(&[
        "--node",
        &url,
        "--workload",
        "f",
        "--records",
        "300",
        "--operations",
        "300",
        "--clients",
        "1",
        "--json",
    ]);
    assert_eq!(report["loaded"], 300);
    for op in report["ops"].as_array().expect("ops") {
        assert_eq!(op["errors"], 0, "{op}");
    }
    let client = node.client();
    for i in 0..300 {
        let key = format!("bench-{i:08}");
        let object = client.get(key.as_bytes()).expect("record");
        assert_eq!(object.siblings.len(), 1, "{key} has siblings");
    }

    let hdr = dir.path().join("run.hdr");
    let report = bench_json(&[
        "--node",
        &url,
        "--workload",
        "a",
        "--records",
        "300",
        "--operations",
        "400",
        "--clients",
        "4",
        "--interval",
        "1",
        "--hdr",
        hdr.to_str().expect("utf8"),
        "--json",
    ]);
    assert_eq!(report["workload"], "a");
    assert_eq!(report["distribution"], "zipfian");
    assert_eq!(report["loop"], "closed");
    assert_eq!(report["routing"], "fixed coordinator");
    // The records are there: nothing is loaded again.
    assert_eq!(report["loaded"], 0);
    assert_eq!(node.status()["keys"], 300);
    let ops = report["ops"].as_array().expect("ops");
    let names: Vec<&str> = ops.iter().filter_map(|o| o["op"].as_str()).collect();
    assert_eq!(names, ["read", "update"]);
    let mut total = 0;
    for op in ops {
        assert!(op["count"].as_u64().expect("count") > 0, "{op}");
        assert_eq!(op["errors"], 0, "{op}");
        for (lo, hi) in [
            ("p50_ms", "p95_ms"),
            ("p95_ms", "p99_ms"),
            ("p99_ms", "p999_ms"),
            ("p999_ms", "max_ms"),
        ] {
            assert!(
                op[lo].as_f64().expect(lo) <= op[hi].as_f64().expect(hi),
                "{op}"
            );
        }
        total += op["count"].as_u64().unwrap_or(0);
    }
    assert_eq!(total, 400, "--operations counts every operation");
    // An HdrHistogram interval log, tagged by operation.
    let log = std::fs::read_to_string(&hdr).expect("hdr log");
    assert!(log.contains("#[StartTime:"), "{log}");
    assert!(log.lines().any(|l| l.starts_with("Tag=read,")), "{log}");
    assert!(log.lines().any(|l| l.starts_with("Tag=update,")), "{log}");

    // The human report says how latency was measured, with progress lines
    // on stderr while it runs.
    let out = bench(&[
        "--node",
        &url,
        "--workload",
        "d",
        "--records",
        "300",
        "--duration",
        "2",
        "--clients",
        "2",
        "--interval",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("closed loop"), "{text}");
    assert!(text.contains("insert"), "{text}");
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress
            .lines()
            .any(|l| l.contains("ops/s") && l.contains("p99")),
        "{progress}"
    );
}

#[test]
fn bench_with_a_rate_holds_it_on_an_idle_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = started(dir.path(), &[]);
    let report = bench_json(&[
        "--node",
        &node.url(),
        "--workload",
        "c",
        "--records",
        "100",
        "--rate",
        "300",
        "--duration",
        "2",
        "--clients",
        "4",
        "--json",
    ]);
    assert_eq!(report["loop"], "open");
    let rate = report["total_ops_per_s"].as_f64().expect("rate");
    assert!((rate - 300.0).abs() < 300.0 * 0.05, "{rate} ops/s, not 300");
}

#[test]
fn admin_posts_require_the_admin_token_when_one_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").expect("token");
    let node = started(
        dir.path(),
        &["--admin-token-file", token.to_str().expect("utf8")],
    );
    let c = http();
    let url = format!("{}/admin/repair", node.url());
    assert_error(c.post(&url).send().expect("post"), 401, "unauthorized");
    assert_error(
        c.post(&url).bearer_auth("wrong").send().expect("post"),
        401,
        "unauthorized",
    );
    let resp = c
        .post(&url)
        .bearer_auth("s3cret-token")
        .send()
        .expect("post");
    assert_eq!(resp.status(), 200);
    let summary: Value = resp.json().expect("summary");
    assert!(summary.get("keys_repaired").is_some(), "{summary}");
    // Reads stay open, and the token never appears in the status.
    let status = node.status();
    assert_eq!(status["config"]["admin_token_set"], true);
    assert!(!status.to_string().contains("s3cret-token"));
    // The CLI passes the token from the environment.
    let out = Command::new(BIN)
        .args(["repair", "--node", &node.url()])
        .env("DYNAKV_ADMIN_TOKEN", "s3cret-token")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("compared"));
}

#[test]
fn with_sync_writes_acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = started(dir.path(), &["--sync-writes"]);
    assert_eq!(node.status()["config"]["sync_writes"], true);
    let c = http();
    for i in 0..300 {
        assert_eq!(
            put(&c, &node.key_url(&format!("s{i}")), format!("v{i}"), None).status(),
            204
        );
    }
    node.kill();
    node.start();
    for i in 0..300 {
        assert_eq!(
            values(&c, &node.key_url(&format!("s{i}"))),
            vec![format!("v{i}")]
        );
    }
}

/// The key a test node signs contexts with: its cluster secret (the
/// harness's) and its cluster id. Only a party holding the secret has it.
fn context_signer_of(
    node: &TestNode,
    root: &std::path::Path,
    key: &str,
) -> dynakv_versioning::ContextSigner {
    let id = node.status()["cluster_id"]
        .as_str()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .expect("cluster id");
    let secret = format!("test-{}", root.display());
    dynakv_versioning::ContextSigner::new(
        std::sync::Arc::new(dynakv_versioning::ContextKey::derive(secret.as_bytes(), id)),
        bytes::Bytes::copy_from_slice(key.as_bytes()),
    )
}

/// A context raising a known actor's counter would make a replica that
/// missed it drop that actor's later, acknowledged writes. Contexts are
/// signed: a client cannot make one, whatever it knows of the key.
#[test]
fn a_forged_context_raising_an_actors_counter_is_refused() {
    use dynakv_versioning::{ActorId, CausalContext, ContextKey, ContextSigner, VersionVector};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(dir.path(), "n1", std::net::Ipv4Addr::LOCALHOST);
    node.start();
    let c = http();
    let url = node.key_url("victim");
    assert_eq!(put(&c, &url, "v1", None).status(), 204);
    let actor = u64::from_str_radix(node.status()["actor"].as_str().expect("actor"), 16)
        .expect("hex actor");
    let raised: VersionVector = [(ActorId(actor), 1000)].into_iter().collect();
    let id =
        u64::from_str_radix(node.status()["cluster_id"].as_str().expect("id"), 16).expect("hex id");
    // Signed with a guessed key (no secret, the right cluster id), and in
    // the unsigned format of earlier versions.
    let guessed = CausalContext(raised.clone()).encode(&ContextSigner::new(
        std::sync::Arc::new(ContextKey::derive(b"", id)),
        bytes::Bytes::from_static(b"victim"),
    ));
    let unsigned = {
        use base64::Engine;
        let mut b = vec![1u8, 1];
        b.extend_from_slice(&actor.to_le_bytes());
        b.extend_from_slice(&[0xe8, 0x07]);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    for forged in [guessed, unsigned] {
        let resp = put(&c, &url, "forged", Some(&forged));
        assert_eq!(resp.status(), 400, "a forged context was taken");
    }
    // A genuine context, of another key whose counters are higher: it would
    // make the victim's replicas drop its later writes. Refused.
    let hot = node.key_url("hot");
    let mut hot_ctx = None;
    for i in 0..20 {
        hot_ctx = Some(ctx_of(&put(&c, &hot, format!("h{i}"), hot_ctx.as_deref())));
    }
    let resp = put(&c, &url, "forged", hot_ctx.as_deref());
    assert_eq!(resp.status(), 400, "another key's context was taken");
    // A context altered by one character is refused too.
    let real = ctx_of(&c.get(&url).send().expect("get"));
    let mut altered = real.clone().into_bytes();
    altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    assert_eq!(put(&c, &url, "forged", Some(&altered)).status(), 400);
    assert_eq!(values(&c, &url), vec!["v1"]);
    // The real one works.
    assert_eq!(put(&c, &url, "v2", Some(&real)).status(), 204);
    assert_eq!(values(&c, &url), vec!["v2"]);
}

#[test]
fn a_crafted_context_cannot_grow_a_clock_without_bound() {
    use dynakv_versioning::{ActorId, CausalContext, VersionVector};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = TestNode::new(dir.path(), "n1", std::net::Ipv4Addr::LOCALHOST);
    node.start();
    let c = http();
    let url = node.key_url("bloated");
    assert_eq!(put(&c, &url, "v", None).status(), 204);
    // Signed with the cluster's own key (as only a node, or someone with
    // the secret, can): each token names 300 actors no replica ever had, and
    // every write that carries one grows the clock, until the cap (1,024)
    // refuses with a JSON 400.
    let key = context_signer_of(&node, dir.path(), "bloated");
    let forged = |base: u64| {
        let vv: VersionVector = (0..300u64).map(|i| (ActorId(base + i), 1)).collect();
        CausalContext(vv).encode(&key)
    };
    let mut accepted = 0;
    let mut refused = None;
    for round in 1..=10u64 {
        let resp = put(&c, &url, "x", Some(&forged(round << 40)));
        if resp.status() == 204 {
            accepted += 1;
            continue;
        }
        refused = Some((resp.status(), resp.json::<serde_json::Value>().ok()));
        break;
    }
    let (status, body) = refused.expect("the clock grew past 1,024 actors");
    assert_eq!(status, 400);
    assert_eq!(body.expect("json body")["error"], "bad_request");
    assert_eq!(accepted, 3, "refused at the cap, not before");
    // The key still reads and takes ordinary writes.
    let ctx = ctx_of(&c.get(&url).send().expect("get"));
    assert_eq!(put(&c, &url, "fine", Some(&ctx)).status(), 204);
    assert_eq!(values(&c, &url), vec!["fine"]);
}
