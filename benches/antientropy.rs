//! Anti-entropy at scale (SPEC §7): `cargo bench --profile dev --bench antientropy`
//! (`AE_BENCH_KEYS` sets the key count, default 1,000,000).
//!
//! 1. Tree build from disk: Merkle trees of all 1,024 partitions built from the
//!    digest column family, against a bare scan of the same column family in the
//!    same run (the ratio is the tree's own cost).
//! 2. Real nodes: two `dynakv` processes (N = 2) started on pre-loaded data
//!    directories; `POST /admin/repair` reports the bytes exchanged for identical
//!    replicas, then for 1, 100 and 10,000 keys changed on one replica.

#![allow(missing_docs)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynakv_antientropy::Tree;
use dynakv_ring::{PARTITIONS, Ring, TokenRange};
use dynakv_storage::{ObjectStore, Storage, StorageConfig};
use dynakv_versioning::{ActorId, Version, VersionVector};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dynakv");

fn open(dir: &Path) -> Storage {
    Storage::open(&StorageConfig {
        path: dir.join("db"),
        block_cache_mb: 64,
        sync_writes: false,
    })
    .expect("open storage")
}

fn key(i: usize) -> String {
    format!("user:{i:010}")
}

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, name: &str, rpc: u16, http: u16, seed: u16) -> Proc {
    let log = std::fs::File::create(dir.with_extension("log")).expect("log");
    let child = Command::new(BIN)
        .args(["node", "--name", name, "--n", "2", "--r", "1", "--w", "1"])
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{rpc}"),
            "--http",
            &format!("127.0.0.1:{http}"),
        ])
        .args(["--seeds", &format!("127.0.0.1:{seed}")])
        .args([
            "--gossip-interval-ms",
            "200",
            "--failure-timeout-ms",
            "2000",
        ])
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn dynakv");
    Proc(child)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()
        .expect("client")
}

fn wait_formed(http: u16) {
    let c = client();
    for _ in 0..600 {
        let up = c
            .get(format!("http://127.0.0.1:{http}/admin/status"))
            .send()
            .and_then(|r| r.json::<Value>())
            .map(|s| {
                s["members"]
                    .as_array()
                    .map(|m| m.iter().filter(|m| m["status"] == "up").count())
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        if up == 2 {
            // Let liveness settle past a gossip round.
            std::thread::sleep(Duration::from_millis(500));
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cluster did not form");
}

fn wait_healthy(http: u16) {
    let c = client();
    for _ in 0..600 {
        if c.get(format!("http://127.0.0.1:{http}/health"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("node on {http} did not become healthy");
}

fn repair(http: u16) -> Value {
    let s: Value = client()
        .post(format!("http://127.0.0.1:{http}/admin/repair"))
        .send()
        .and_then(|r| r.json())
        .expect("repair");
    assert_eq!(
        s["peers_skipped"],
        serde_json::json!([]),
        "the peer was not compared: {s}"
    );
    s
}

fn main() {
    let keys: usize = std::env::var("AE_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = tempfile::tempdir().expect("tempdir");
    let (dir_a, dir_b) = (root.path().join("a"), root.path().join("b"));

    // Load replica A directly through the storage engine.
    let t = Instant::now();
    {
        let store = open(&dir_a);
        let value = Bytes::from(vec![b'v'; 100]);
        for i in 0..keys {
            store
                .update(key(i).as_bytes(), |o| -> Result<(), ()> {
                    o.update(
                        &VersionVector::new(),
                        ActorId(1),
                        Version::value(value.clone(), "", 1),
                    );
                    Ok(())
                })
                .expect("storage")
                .expect("update");
        }
        store.flush().expect("flush");
    }
    println!("loaded {keys} keys in {:.1} s", t.elapsed().as_secs_f64());

    // 1. Tree build from disk vs a bare scan of the digest column family.
    {
        let store = open(&dir_a);
        let t = Instant::now();
        let mut n = 0u64;
        store
            .for_each_digest(TokenRange::FULL, &mut |_, _, _| {
                n += 1;
                true
            })
            .expect("scan");
        let scan = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut built = 0usize;
        for p in 0..PARTITIONS {
            let mut items = Vec::new();
            store
                .for_each_digest(Ring::range_of(p), &mut |tok, k, e| {
                    items.push((tok, k.to_vec(), e.digest));
                    true
                })
                .expect("scan");
            built += Tree::build(Ring::range_of(p), items).len();
        }
        let build = t.elapsed().as_secs_f64();
        assert_eq!(built as u64, n);
        println!(
            "bare scan of the digest column: {n} keys in {scan:.2} s ({:.0} keys/s)",
            n as f64 / scan
        );
        println!(
            "tree build, 1,024 partitions:   {built} keys in {build:.2} s ({:.0} keys/s), {:.2}x the bare scan",
            built as f64 / build,
            build / scan
        );
    }

    // 2. Real nodes on identical copies.
    copy_dir(&dir_a, &dir_b);
    let (rpc_a, http_a, rpc_b, http_b) = (port(), port(), port(), port());
    let _a = start(&dir_a, "a", rpc_a, http_a, rpc_b);
    let mut b = start(&dir_b, "b", rpc_b, http_b, rpc_a);
    wait_healthy(http_a);
    wait_healthy(http_b);
    wait_formed(http_a);
    let s = repair(http_a);
    println!(
        "identical replicas of {keys} keys: {} B sent, {} B received, {} keys repaired, {} ms",
        s["bytes_sent"], s["bytes_received"], s["keys_repaired"], s["ms"]
    );

    for k in [1usize, 100, 10_000] {
        drop(b);
        {
            let store = open(&dir_b);
            for i in 0..k {
                let idx = (i * 7919) % keys;
                store
                    .update(key(idx).as_bytes(), |o| -> Result<(), ()> {
                        let ctx = o.context();
                        o.update(
                            &ctx,
                            ActorId(2),
                            Version::value(format!("changed-{k}-{i}"), "", 2),
                        );
                        Ok(())
                    })
                    .expect("storage")
                    .expect("update");
            }
        }
        b = start(&dir_b, "b", rpc_b, http_b, rpc_a);
        wait_healthy(http_b);
        wait_formed(http_a);
        let s = repair(http_a);
        println!(
            "{k:>6} differing keys: {} B sent, {} B received, {} keys repaired, {} ranges differing, {} ms",
            s["bytes_sent"],
            s["bytes_received"],
            s["keys_repaired"],
            s["ranges_differing"],
            s["ms"]
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
