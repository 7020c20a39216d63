//! `dynakv load` and `dynakv export` against a real three-node cluster:
//! JSON Lines and CSV in, every record read back; a malformed line stops the
//! load at its line number (or is skipped with `--skip-bad`); loading twice
//! adds nothing and removes nothing; export → load into a fresh cluster →
//! export gives the same keys and siblings.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use dynakv_client::{ClientBuilder, Error, Sibling};

/// Runs `dynakv` with `args`; returns exit code, stdout and stderr.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run dynakv");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn urls(nodes: &[TestNode]) -> String {
    nodes.iter().map(|n| n.url()).collect::<Vec<_>>().join(",")
}

fn siblings(nodes: &[TestNode], key: &[u8]) -> Vec<Sibling> {
    let client = ClientBuilder::new([nodes[1].url()])
        .build_blocking()
        .expect("client");
    match client.get(key) {
        Ok(o) => {
            let mut s = o.siblings;
            s.sort_by(|a, b| a.value.cmp(&b.value));
            s
        }
        Err(Error::NotFound { .. }) => Vec::new(),
        Err(e) => panic!("get: {e}"),
    }
}

#[test]
fn json_lines_and_csv_load_and_every_record_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let jsonl = dir.path().join("in.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            "{\"key\": \"j1\", \"value\": \"one\"}\n",
            "\n",
            "{\"key\": \"j2\", \"value\": \"two\", \"content_type\": \"text/plain\"}\n",
            "{\"key_base64\": \"/wA=\", \"value_base64\": \"AAEC\", \"content_type\": \"application/x-bin\"}\n",
            "{\"key\": \"j3\", \"siblings\": [{\"value_base64\": \"YQ==\", \"content_type\": \"text/plain\"}, {\"value\": \"b\"}]}\n",
        ),
    )
    .expect("write");
    let (code, _, err) = run(&[
        "load",
        jsonl.to_str().expect("utf8"),
        "--node",
        &urls(&nodes),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("loaded 5 values"), "{err}");
    assert_eq!(
        siblings(&nodes, b"j1"),
        [Sibling::new("one", "application/octet-stream")]
    );
    assert_eq!(siblings(&nodes, b"j2"), [Sibling::new("two", "text/plain")]);
    assert_eq!(
        siblings(&nodes, &[0xff, 0]),
        [Sibling::new(vec![0u8, 1, 2], "application/x-bin")]
    );
    assert_eq!(
        siblings(&nodes, b"j3"),
        [
            Sibling::new("a", "text/plain"),
            Sibling::new("b", "application/octet-stream")
        ]
    );

    // CSV with a header, quoting (a comma, a quote, a newline) and a content
    // type column; then one without a header, from standard input.
    let csv = dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "key,value,content_type\nc1,plain,\nc2,\"a, b \"\"quoted\"\"\nline\",text/csv\n",
    )
    .expect("write");
    let (code, _, err) = run(&["load", csv.to_str().expect("utf8"), "--node", &urls(&nodes)]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        siblings(&nodes, b"c1"),
        [Sibling::new("plain", "application/octet-stream")]
    );
    assert_eq!(
        siblings(&nodes, b"c2"),
        [Sibling::new("a, b \"quoted\"\nline", "text/csv")]
    );
    let mut child = Command::new(BIN)
        .args(["load", "-", "--format", "csv", "--node", &urls(&nodes)])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"s1,first\ns2,second\n").expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        siblings(&nodes, b"s2"),
        [Sibling::new("second", "application/octet-stream")]
    );
}

#[test]
fn a_malformed_line_stops_the_load_at_its_number_unless_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"key\": \"before\", \"value\": \"v\"}\n{\"key\": \"broken\", \"value\": \n{\"key\": \"after\", \"value\": \"v\"}\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf8");
    let (code, _, err) = run(&["load", path, "--node", &urls(&nodes)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(siblings(&nodes, b"before").len(), 1);
    assert!(
        siblings(&nodes, b"after").is_empty(),
        "a line after the bad one was loaded"
    );

    let (code, _, err) = run(&["load", path, "--skip-bad", "--node", &urls(&nodes)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("1 bad lines skipped") && err.contains("skipping line 2"),
        "{err}"
    );
    assert_eq!(siblings(&nodes, b"after").len(), 1);
}

#[test]
fn loading_twice_adds_nothing_and_never_removes_a_stored_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let client = nodes[0].client();
    client
        .put(b"k1", Sibling::new("already here", "text/plain"), None)
        .expect("put");
    let file = dir.path().join("in.jsonl");
    let lines: String = (0..50)
        .map(|i| format!("{{\"key\": \"k{i}\", \"value\": \"loaded {i}\"}}\n"))
        .collect();
    std::fs::write(&file, lines).expect("write");
    let path = file.to_str().expect("utf8");
    for round in 0..2 {
        let (code, _, err) = run(&["load", path, "--node", &urls(&nodes)]);
        assert_eq!(code, Some(0), "{err}");
        let expected = if round == 0 {
            "loaded 50 values (0 already stored"
        } else {
            "loaded 0 values (50 already stored"
        };
        assert!(err.contains(expected), "round {round}: {err}");
    }
    // The version stored before the load is still there, next to the loaded one.
    assert_eq!(
        siblings(&nodes, b"k1"),
        [
            Sibling::new("already here", "text/plain"),
            Sibling::new("loaded 1", "application/octet-stream")
        ]
    );
    assert_eq!(siblings(&nodes, b"k7").len(), 1);
}

fn export(nodes: &[TestNode], out: &std::path::Path) -> BTreeSet<String> {
    let (code, _, err) = run(&[
        "export",
        "--node",
        &nodes[0].url(),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(code, Some(0), "{err}");
    // Siblings come in no particular order: compare each line with its
    // siblings sorted.
    std::fs::read_to_string(out)
        .expect("read export")
        .lines()
        .map(|l| {
            let mut r = dynakv_client::Record::from_json(l).expect("export line");
            r.siblings.sort_by(|a, b| a.value.cmp(&b.value));
            r.to_json()
        })
        .collect()
}

#[test]
fn export_then_load_into_a_fresh_cluster_gives_the_same_keys_and_siblings() {
    let dir = tempfile::tempdir().expect("tempdir");
    for side in ["a", "b"] {
        std::fs::create_dir_all(dir.path().join(side)).expect("mkdir");
    }
    let source = formed(&dir.path().join("a"), &[]);
    let client = ClientBuilder::new([source[0].url()])
        .build_blocking()
        .expect("client");
    for i in 0..300 {
        client
            .put(
                format!("key-{i}").as_bytes(),
                Sibling::new(format!("v{i}"), "text/plain"),
                None,
            )
            .expect("put");
    }
    client
        .put(b"key-7", Sibling::new("concurrent", "text/other"), None)
        .expect("sibling");
    client
        .put(
            &[0xfe, 0xff],
            Sibling::new(vec![0u8; 3], "application/x-bin"),
            None,
        )
        .expect("binary key");
    let ctx = client.get(b"key-8").expect("get").context;
    client.delete(b"key-8", Some(&ctx)).expect("delete");

    let first = export(&source, &dir.path().join("first.jsonl"));
    assert_eq!(first.len(), 300, "300 live keys (one deleted, one binary)");
    drop(source);

    let target = formed(&dir.path().join("b"), &[]);
    let (code, _, err) = run(&[
        "load",
        dir.path().join("first.jsonl").to_str().expect("utf8"),
        "--node",
        &urls(&target),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let second = export(&target, &dir.path().join("second.jsonl"));
    assert_eq!(first, second);
}

#[test]
fn records_from_a_slow_producer_are_written_while_it_is_still_producing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let mut child = Command::new(BIN)
        .args(["load", "-", "--node", &urls(&nodes)])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    {
        use std::io::Write;
        for i in 0..3 {
            writeln!(stdin, "{{\"key\": \"slow-{i}\", \"value\": \"v\"}}").expect("write");
        }
        stdin.flush().expect("flush");
    }
    // The producer has not finished (standard input is still open), yet the
    // records it gave are stored.
    let stored = wait_until(std::time::Duration::from_secs(10), || {
        (0..3).all(|i| siblings(&nodes, format!("slow-{i}").as_bytes()).len() == 1)
    });
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(stored, "records waited for the end of the input");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_jsonl(path: &std::path::Path, records: &[(String, &str)]) {
    let text: String = records
        .iter()
        .map(|(k, v)| {
            format!("{{\"key\": \"{k}\", \"value\": \"{v}\", \"content_type\": \"text/plain\"}}\n")
        })
        .collect();
    std::fs::write(path, text).expect("write");
}

#[test]
fn an_sst_load_into_a_cluster_that_holds_some_keys_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let client = nodes[0].client();
    client
        .put(b"held", Sibling::new("old", "text/plain"), None)
        .expect("put");
    client
        .put(b"forked", Sibling::new("left", "text/plain"), None)
        .expect("put");
    client
        .put(b"forked", Sibling::new("right", "text/plain"), None)
        .expect("sibling");
    let mut records: Vec<(String, &str)> =
        (0..300).map(|i| (format!("fresh-{i}"), "new")).collect();
    records.push(("held".into(), "loaded"));
    records.push(("forked".into(), "loaded"));
    let file = dir.path().join("sst.jsonl");
    write_jsonl(&file, &records);
    let path = file.to_str().expect("utf8");
    for _ in 0..2 {
        let (code, _, err) = run(&["load", path, "--sst", "--node", &urls(&nodes)]);
        assert_eq!(code, Some(0), "{err}");
        assert!(err.contains("ingested as SST files"), "{err}");
    }
    let text = |v: &str| Sibling::new(v.to_string(), "text/plain");
    assert_eq!(siblings(&nodes, b"held"), [text("loaded"), text("old")]);
    assert_eq!(
        siblings(&nodes, b"forked"),
        [text("left"), text("loaded"), text("right")]
    );
    for i in 0..300 {
        assert_eq!(
            siblings(&nodes, format!("fresh-{i}").as_bytes()),
            [text("new")]
        );
    }
}

#[test]
fn a_replica_down_during_an_sst_load_gets_its_share_after_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = formed(dir.path(), &["--hint-window-s", "0"]);
    nodes[2].kill();
    assert!(
        wait_until(std::time::Duration::from_secs(10), || sees(
            &nodes[0], "n3", "down"
        ) && sees(
            &nodes[1], "n3", "down"
        )),
        "n3 not seen down"
    );
    let records: Vec<(String, &str)> = (0..200).map(|i| (format!("late-{i}"), "v")).collect();
    let file = dir.path().join("late.jsonl");
    write_jsonl(&file, &records);
    let live = format!("{},{}", nodes[0].url(), nodes[1].url());
    let (code, _, err) = run(&[
        "load",
        file.to_str().expect("utf8"),
        "--sst",
        "--node",
        &live,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("n3") && err.contains("anti-entropy"), "{err}");

    nodes[2].start();
    wait_formed(&nodes.iter().collect::<Vec<_>>());
    nodes[2].client().repair().expect("repair");
    let others: Vec<&TestNode> = nodes[..2].iter().collect();
    for i in 0..200 {
        assert_eq!(
            local_values(&nodes[2], &others, &format!("late-{i}")),
            ["v"],
            "n3 lacks late-{i}"
        );
    }
}
