//! TLS on every listener: HTTP (TLS only), Riak PB (after `RpbStartTls`),
//! and node-to-node (mutual, against the cluster CA, the name each node
//! proves checked against its certificate). Certificates come from
//! `dynakv certs`, as an operator makes them.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dynakv::server::cluster::rpc::{Faults, Request, Response, RpcClient, RpcError, RpcShared};
use dynakv::server::metrics::Metrics;
use dynakv::server::tls::{Tls, TlsFiles};

#[test]
fn every_listener_speaks_tls_only_and_the_cluster_forms_over_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    make_certs(
        &certs,
        &[("n1", ip(2).to_string()), ("n2", ip(3).to_string())],
    );
    let mut n1 = tls_node(dir.path(), "n1", ip(2), &certs);
    let mut n2 = tls_node(dir.path(), "n2", ip(3), &certs);
    n1.args.extend(["--seeds".to_string(), n2.rpc_addr()]);
    n2.args.extend(["--seeds".to_string(), n1.rpc_addr()]);
    n1.start();
    n2.start();
    assert!(
        wait_until(Duration::from_secs(30), || all_up(&[&n1, &n2], 2)),
        "the TLS nodes did not form a cluster:\n{}",
        n1.log_text()
    );
    // Writes travel node to node over mutual TLS: a write through n1 reads
    // back through n2 with both replicas' answers.
    let c = n1.http();
    let r = c.put(n1.key_url("k")).body("over tls").send().expect("put");
    assert_eq!(r.status(), 204);
    let got = c
        .get(format!("{}?r=2", n2.key_url("k")))
        .send()
        .expect("get")
        .text()
        .expect("text");
    assert_eq!(got, "over tls");

    // Plain HTTP to the TLS port is refused.
    let plain = http()
        .get(format!("http://{}:{}/health", n1.ip, n1.http_port))
        .send();
    assert!(plain.is_err(), "plain HTTP was served: {plain:?}");
    // A client that trusts another CA is refused.
    let other = dir.path().join("other");
    make_certs(&other, &[]);
    let wrong = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(other.join("ca.pem")).expect("pem"))
                .expect("cert"),
        )
        .build()
        .expect("client");
    assert!(wrong.get(format!("{}/health", n1.url())).send().is_err());

    // The CLI verifies the node with --ca, and fails without it.
    let ca = certs.join("ca.pem");
    let out = cli_output(&[
        "get",
        "--node",
        &n2.url(),
        "--ca",
        ca.to_str().expect("utf8"),
        "k",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over tls");
    let out = cli_output(&["get", "--node", &n2.url(), "k"]);
    assert_eq!(out.status.code(), Some(1));

    // Riak PB: before RpbStartTls only Riak's STARTTLS error; after it, TLS.
    let mut s = TcpStream::connect(n1.pb_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(&pb_frame(1, b"")).expect("ping");
    let (code, body) = read_pb(&mut s);
    assert_eq!(code, 0, "an RpbErrorResp");
    assert!(String::from_utf8_lossy(&body).contains("STARTTLS"));
    s.write_all(&pb_frame(255, b"")).expect("starttls");
    assert_eq!(read_pb(&mut s).0, 255);
    let mut tls = tls_client(&ca, s, n1.ip);
    tls.write_all(&pb_frame(1, b"")).expect("ping over tls");
    assert_eq!(read_pb(&mut tls).0, 2, "RpbPingResp over TLS");
}

/// The RPC port: a peer must present a certificate of the cluster CA that
/// names the node it proves to be.
#[test]
fn a_peer_with_a_certificate_for_another_name_or_of_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    make_certs(
        &certs,
        &[
            ("n1", ip(4).to_string()),
            ("n2", "127.0.0.1".to_string()),
            ("n9", "127.0.0.1".to_string()),
        ],
    );
    let other = dir.path().join("other");
    make_certs(&other, &[("n2", "127.0.0.1".to_string())]);
    let mut n1 = tls_node(dir.path(), "n1", ip(4), &certs);
    n1.start();
    let secret = format!("test-{}", dir.path().display());
    let addr: std::net::SocketAddr = n1.rpc_addr().parse().expect("addr");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let call = |claim: &str, cert_dir: &Path, cert: &str| -> Result<Response, RpcError> {
        let file = |f: &str| -> PathBuf { cert_dir.join(f) };
        let tls = Tls::load(TlsFiles {
            cert: file(&format!("{cert}.pem")),
            key: file(&format!("{cert}.key")),
            ca: file("ca.pem"),
        })
        .expect("tls");
        let shared = RpcShared::new(
            claim.to_string(),
            Some(secret.clone()),
            Faults::default(),
            Arc::new(Metrics::new()),
        )
        .with_tls(Some(Arc::new(tls)));
        let client = RpcClient::new(Arc::new(shared), "127.0.0.1".parse().expect("ip"));
        runtime.block_on(client.call(addr, None, Request::Ping, Duration::from_secs(5)))
    };
    // The right certificate for the name it proves: served.
    assert!(matches!(call("n2", &certs, "n2"), Ok(Response::Pong)));
    // A certificate of the cluster CA, for another name: refused.
    let r = call("n2", &certs, "n9");
    assert!(matches!(r, Err(RpcError::Auth(_))), "{r:?}");
    // A certificate naming n2, from another CA: refused.
    let r = call("n2", &other, "n2");
    assert!(matches!(r, Err(RpcError::Auth(_))), "{r:?}");
    // And a node whose own certificate does not name it does not start.
    let n2_cert = certs.join("n2.pem");
    let out = std::process::Command::new(BIN)
        .args(["node", "--name", "n9", "--data-dir"])
        .arg(dir.path().join("n9"))
        .args([
            "--listen",
            "127.0.0.5:0",
            "--http",
            "127.0.0.5:1",
            "--pb",
            "127.0.0.5:2",
        ])
        .args(["--tls-cert", n2_cert.to_str().expect("utf8")])
        .args(["--tls-key", certs.join("n2.key").to_str().expect("utf8")])
        .args(["--tls-ca", certs.join("ca.pem").to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not name this node"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
