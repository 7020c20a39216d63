//! Nodes on separate hosts: one network namespace per node, joined by veth
//! pairs to a bridge this test creates (and deletes), each node binding
//! `0.0.0.0` on the same ports and advertising its own address, as nodes on
//! real hosts do. Writes, a partition made by firewall rules between two
//! namespaces, a join and a leave; then every key has N copies, per node.
//!
//! Needs root and iproute2 (CI runs as root); skipped, saying so, where a
//! namespace cannot be made.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{BIN, wait_until};
use serde_json::Value;

/// The namespaces, bridge and processes of one run, removed when dropped
/// (also when the test fails).
struct Hosts {
    tag: String,
    subnet: String,
    namespaces: Vec<String>,
    bridge: String,
    nodes: Vec<(String, Child)>,
    dir: tempfile::TempDir,
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Hosts {
    /// A bridge on a subnet of its own, or why not.
    fn new() -> Result<Hosts, String> {
        let id = std::process::id() % 10_000;
        let tag = format!("dkh{id}");
        let hosts = Hosts {
            subnet: format!("10.213.{}", id % 250),
            bridge: format!("{tag}br"),
            tag,
            namespaces: Vec::new(),
            nodes: Vec::new(),
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
        };
        sh(&["ip", "link", "add", &hosts.bridge, "type", "bridge"])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}.1/24", hosts.subnet),
            "dev",
            &hosts.bridge,
        ])?;
        sh(&["ip", "link", "set", &hosts.bridge, "up"])?;
        Ok(hosts)
    }

    fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 10 + i)
    }

    fn url(&self, i: usize) -> String {
        format!("http://{}:8000", self.addr(i))
    }

    /// Host `i`: a namespace with one veth into the bridge.
    fn add_host(&mut self, i: usize) -> Result<(), String> {
        let ns = format!("{}n{i}", self.tag);
        sh(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        let (outside, inside) = (format!("{}v{i}", self.tag), format!("{}p{i}", self.tag));
        sh(&[
            "ip", "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ])?;
        sh(&["ip", "link", "set", &inside, "netns", &ns])?;
        sh(&["ip", "link", "set", &outside, "master", &self.bridge])?;
        sh(&["ip", "link", "set", &outside, "up"])?;
        let exec = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", ns.as_str()];
            all.extend_from_slice(args);
            sh(&all)
        };
        exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", self.addr(i)),
            "dev",
            &inside,
        ])?;
        exec(&["ip", "link", "set", &inside, "up"])?;
        exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Starts node `i` in its namespace on 0.0.0.0, advertising its address.
    fn start(&mut self, i: usize, seeds: &[usize]) {
        let ns = &self.namespaces[i - 1];
        let seeds: Vec<String> = seeds
            .iter()
            .map(|s| format!("{}:7000", self.addr(*s)))
            .collect();
        let log = std::fs::File::create(self.dir.path().join(format!("n{i}.log"))).expect("log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, BIN, "node", "--name"])
            .arg(format!("n{i}"))
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("n{i}")))
            .args(["--listen", "0.0.0.0:7000", "--http", "0.0.0.0:8000"])
            .args(["--pb", "0.0.0.0:8087", "--advertise"])
            .arg(format!("{}:7000", self.addr(i)))
            .args([
                "--gossip-interval-ms",
                "200",
                "--failure-timeout-ms",
                "2000",
            ])
            .env("DYNAKV_CLUSTER_SECRET", "hosts-test")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        if !seeds.is_empty() {
            cmd.arg("--seeds").arg(seeds.join(","));
        }
        let child = cmd.spawn().expect("spawn");
        self.nodes.push((format!("n{i}"), child));
        let url = format!("{}/health", self.url(i));
        assert!(
            wait_until(Duration::from_secs(30), || reqwest::blocking::get(&url)
                .is_ok_and(|r| r.status().is_success())),
            "n{i} did not answer: {}",
            self.log(i)
        );
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{i}.log"))).unwrap_or_default()
    }

    fn stop(&mut self, name: &str) {
        if let Some(pos) = self.nodes.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.nodes.remove(pos);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Drops traffic between hosts `a` and `b`, both ways, in `a`'s firewall.
    fn cut(&self, a: usize, b: usize) -> Result<(), String> {
        let ns = &self.namespaces[a - 1];
        let peer = self.addr(b);
        for (chain, dir) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
            sh(&[
                "ip", "netns", "exec", ns, "iptables", "-A", chain, dir, &peer, "-j", "DROP",
            ])?;
        }
        Ok(())
    }

    fn heal(&self, a: usize) -> Result<(), String> {
        let ns = &self.namespaces[a - 1];
        for chain in ["INPUT", "OUTPUT"] {
            sh(&["ip", "netns", "exec", ns, "iptables", "-F", chain])?;
        }
        Ok(())
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            let _ = sh(&["ip", "netns", "delete", ns]);
        }
        let _ = sh(&["ip", "link", "delete", &self.bridge]);
    }
}

fn status(c: &reqwest::blocking::Client, url: &str) -> Option<Value> {
    c.get(format!("{url}/admin/status"))
        .send()
        .ok()?
        .json()
        .ok()
}

/// Every node of `urls` sees exactly `names` up, on one settled ring.
fn formed(c: &reqwest::blocking::Client, urls: &[String], names: &[&str]) -> bool {
    let mut epochs = Vec::new();
    for url in urls {
        let Some(s) = status(c, url) else {
            return false;
        };
        let up: Vec<&str> = s["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["status"] == "up")
            .filter_map(|m| m["name"].as_str())
            .collect();
        if up.len() != names.len() || !names.iter().all(|n| up.contains(n)) {
            return false;
        }
        if s["partitions_moving"] != 0 || s["transfers_pending"] != 0 {
            return false;
        }
        epochs.push(s["ring_epoch"].clone());
    }
    epochs.windows(2).all(|w| w[0] == w[1])
}

#[test]
fn nodes_on_separate_hosts_binding_every_address_keep_n_copies() {
    let mut hosts = match Hosts::new() {
        Ok(h) => h,
        Err(why) => {
            eprintln!(
                "skipping: cannot make network namespaces here ({why}); run as root with iproute2"
            );
            return;
        }
    };
    for i in 1..=4 {
        if let Err(why) = hosts.add_host(i) {
            eprintln!("skipping: cannot make network namespaces here ({why})");
            return;
        }
    }
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    hosts.start(1, &[2, 3]);
    hosts.start(2, &[1, 3]);
    hosts.start(3, &[1, 2]);
    let three: Vec<String> = (1..=3).map(|i| hosts.url(i)).collect();
    assert!(
        wait_until(Duration::from_secs(30), || formed(
            &c,
            &three,
            &["n1", "n2", "n3"]
        )),
        "the three hosts did not form a cluster: {:?}",
        status(&c, &three[0])
    );
    // Every member is listed at the address it advertised.
    let s = status(&c, &three[0]).expect("status");
    for m in s["members"].as_array().expect("members") {
        let addr = m["rpc_addr"].as_str().unwrap_or_default();
        assert!(addr.starts_with(&hosts.subnet), "{m}");
    }

    let put = |via: usize, key: &str| -> bool {
        c.put(format!("{}/kv/{key}?w=2", hosts.url(via)))
            .body(format!("value of {key}"))
            .send()
            .is_ok_and(|r| r.status().is_success())
    };
    let mut keys = Vec::new();
    for i in 0..300 {
        let key = format!("k{i}");
        assert!(put(1, &key), "write {key} through n1 was refused");
        keys.push(key);
    }
    // A partition between hosts 1 and 3, by firewall: writes through n2
    // (which reaches both) are all acknowledged.
    if let Err(why) = hosts.cut(3, 1) {
        eprintln!("skipping the partition: no firewall here ({why})");
    } else {
        std::thread::sleep(Duration::from_secs(1));
        for i in 0..100 {
            let key = format!("p{i}");
            assert!(put(2, &key), "write {key} during the partition was refused");
            keys.push(key);
        }
        hosts.heal(3).expect("heal");
    }
    // A fourth host joins, then the second leaves.
    hosts.start(4, &[1]);
    let four: Vec<String> = (1..=4).map(|i| hosts.url(i)).collect();
    assert!(
        wait_until(Duration::from_secs(90), || formed(
            &c,
            &four,
            &["n1", "n2", "n3", "n4"]
        )),
        "n4 did not join: {:?}",
        status(&c, &four[0])
    );
    let left = c
        .post(format!("{}/admin/leave", hosts.url(2)))
        .send()
        .expect("leave");
    assert!(left.status().is_success(), "{:?}", left.text());
    let rest: Vec<String> = [1, 3, 4].iter().map(|&i| hosts.url(i)).collect();
    let gone = |url: &String| {
        status(&c, url).is_some_and(|s| {
            s["members"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|m| m["name"] != "n2" || m["status"] == "left")
        })
    };
    assert!(
        wait_until(Duration::from_secs(90), || rest.iter().all(gone)
            && formed(&c, &rest, &["n1", "n3", "n4"])),
        "n2 did not leave: {:?}",
        status(&c, &rest[0])
    );
    hosts.stop("n2");
    // Three copies of every key, per node: each of the three holds all.
    for url in &rest {
        let _ = c.post(format!("{url}/admin/repair")).send();
    }
    for url in &rest {
        let whole = wait_until(Duration::from_secs(60), || {
            status(&c, url).is_some_and(|s| s["keys"] == keys.len())
        });
        assert!(
            whole,
            "{url} holds {:?} of {} keys",
            status(&c, url).map(|s| s["keys"].clone()),
            keys.len()
        );
    }
    for key in &keys {
        for url in &rest {
            let r = c.get(format!("{url}/kv/{key}?r=3")).send().expect("get");
            let text = r.text().expect("text");
            assert_eq!(
                text,
                format!("value of {key}"),
                "{url}: {:?}\n{}",
                status(&c, url),
                hosts.log(1)
            );
        }
    }
}
