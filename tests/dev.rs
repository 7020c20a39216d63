//! `dynakv dev`, the README's run command: three nodes on 127.0.0.1:7001.. and
//! 8001.., a printed guide, and a clean stop on Ctrl-C (SIGINT).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// One test on purpose: `dev` uses fixed ports, so its scenarios must not run
/// concurrently.
#[test]
fn dev_runs_a_cluster_and_stops_its_nodes_on_ctrl_c_and_sigterm() {
    three_nodes_then_ctrl_c();
    one_node_then_sigterm();
}

fn three_nodes_then_ctrl_c() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = Command::new(BIN)
        .args(["dev", "--nodes", "3", "--data-dir"])
        .arg(dir.path().join("cluster"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dev");
    let stdout = dev.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let ready = loop {
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(line) => {
                let done = line.contains("Ctrl-C stops the cluster");
                printed.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    if !ready {
        let _ = dev.kill();
        panic!("dev did not come up: {printed:?}");
    }
    let guide = printed.join("\n");
    for port in [8001, 8002, 8003] {
        assert!(
            guide.contains(&format!("http://127.0.0.1:{port}")),
            "{guide}"
        );
    }
    assert!(guide.contains("curl"), "{guide}");
    // Printed once every node is ready: started together, they founded one
    // ring holding all three (its first version, nothing in transit).
    for port in [8001, 8002, 8003] {
        let ready = http()
            .get(format!("http://127.0.0.1:{port}/health/ready"))
            .send()
            .expect("GET /health/ready");
        assert_eq!(ready.status().as_u16(), 200, "{port} not ready");
        let status: Value = client_of(&format!("http://127.0.0.1:{port}"))
            .status()
            .expect("status");
        assert_eq!(status["ring_epoch"], 1, "{port}: {status}");
        assert_eq!(status["partitions_moving"], 0, "{port}: {status}");
    }

    let formed = wait_until(Duration::from_secs(20), || {
        client_of("http://127.0.0.1:8002").status().is_ok_and(|s| {
            s["members"]
                .as_array()
                .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["status"] == "up"))
        })
    });
    assert!(formed, "the dev nodes did not see each other");
    let status: Value = client_of("http://127.0.0.1:8001").status().expect("status");
    assert!(
        status["config"]["data_dir"]
            .as_str()
            .is_some_and(|d| d.starts_with(dir.path().to_str().expect("utf8"))),
        "port 8001 is answered by another cluster: {status}"
    );
    let c = http();
    assert_eq!(
        put(&c, "http://127.0.0.1:8001/kv/dev-key", "hello", None).status(),
        204
    );
    assert_eq!(
        values(&c, "http://127.0.0.1:8003/kv/dev-key"),
        vec!["hello"]
    );

    kill(Pid::from_raw(dev.id() as i32), Signal::SIGINT).expect("SIGINT");
    let stopped = wait_until(Duration::from_secs(30), || {
        matches!(dev.try_wait(), Ok(Some(_)))
    });
    if !stopped {
        let _ = dev.kill();
        panic!("dev did not stop on Ctrl-C");
    }
    assert!(dev.wait().expect("status").success());
    // Its nodes are gone too.
    for port in [8001, 8002, 8003] {
        assert!(
            wait_until(Duration::from_secs(10), || matches!(
                client_of(&format!("http://127.0.0.1:{port}")).health(),
                Err(dynakv_client::Error::Unreachable { .. })
            )),
            "a dev node on {port} outlived dev"
        );
    }
}

fn one_node_then_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = Command::new(BIN)
        .args(["dev", "--nodes", "1", "--data-dir"])
        .arg(dir.path().join("solo"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dev");
    let up = wait_until(Duration::from_secs(60), || {
        client_of("http://127.0.0.1:8001").status().is_ok_and(|s| {
            s["config"]["data_dir"]
                .as_str()
                .is_some_and(|d| d.contains("solo"))
        })
    });
    if !up {
        let _ = dev.kill();
        panic!("dev did not start its node");
    }
    kill(Pid::from_raw(dev.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    assert!(wait_until(Duration::from_secs(30), || matches!(
        dev.try_wait(),
        Ok(Some(_))
    )));
    assert!(
        wait_until(Duration::from_secs(10), || matches!(
            client_of("http://127.0.0.1:8001").health(),
            Err(dynakv_client::Error::Unreachable { .. })
        )),
        "the node outlived dev after SIGTERM"
    );
}
