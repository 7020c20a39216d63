//! Users and grants: with security enabled every endpoint but `/health`
//! needs a credential (checked before the body is read) and the grant its
//! request needs; `dynakv security` sets them up as riak-admin does.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

#[test]
fn with_security_on_every_endpoint_needs_a_credential_and_a_grant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    make_certs(&certs, &[("n1", ip(2).to_string())]);
    let mut n1 = tls_node(dir.path(), "n1", ip(2), &certs);
    n1.args
        .extend(["--admin-token".to_string(), "tok".to_string()]);
    let file = |f: &str| certs.join(f).to_str().expect("utf8").to_string();
    n1.start();
    let url = n1.url();
    let ca = file("ca.pem");
    let sec = |args: &[&str]| {
        let mut all = vec![
            "security",
            "--node",
            &url,
            "--ca",
            &ca,
            "--admin-token",
            "tok",
        ];
        all.extend_from_slice(args);
        let out = cli_output(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    sec(&["add-user", "ann", "--password", "ann-pw"]);
    sec(&["add-user", "bob", "--password", "bob-pw"]);
    sec(&["grant", "read,write", "on", "default", "to", "ann"]);
    sec(&["grant", "read", "on", "t", "b", "to", "bob"]);
    assert!(sec(&["print-grants"]).contains("ann"));
    assert!(sec(&["print-users"]).contains("bob"));
    let c = n1.http();
    // Before security is on, a request needs nothing.
    assert_eq!(
        c.get(format!("{url}/kv/k")).send().expect("get").status(),
        404
    );
    sec(&["enable"]);

    let status =
        |req: reqwest::blocking::RequestBuilder| req.send().expect("send").status().as_u16();
    // No credential: 401 everywhere but /health.
    for (method, path) in [
        ("GET", "/kv/k"),
        ("PUT", "/kv/k"),
        ("DELETE", "/kv/k"),
        ("GET", "/buckets/b/keys/k"),
        ("GET", "/buckets/b/keys?keys=true"),
        ("GET", "/types/default/buckets/b/props"),
        ("GET", "/admin/status"),
        ("GET", "/admin/export?partition=1"),
        ("GET", "/admin/security"),
        ("GET", "/metrics"),
        ("GET", "/ping"),
    ] {
        let req = c.request(method.parse().expect("method"), format!("{url}{path}"));
        assert_eq!(status(req), 401, "{method} {path}");
    }
    assert_eq!(status(c.get(format!("{url}/health"))), 200);
    // A wrong password is 401; a user without the grant, 403.
    assert_eq!(
        status(c.get(format!("{url}/kv/k")).basic_auth("ann", Some("nope"))),
        401
    );
    assert_eq!(
        status(
            c.get(format!("{url}/kv/k"))
                .basic_auth("bob", Some("bob-pw"))
        ),
        403
    );
    assert_eq!(
        status(
            c.get(format!("{url}/types/t/buckets/b/keys/k"))
                .basic_auth("bob", Some("bob-pw"))
        ),
        404,
        "bob reads bucket b of type t"
    );
    assert_eq!(
        status(
            c.get(format!("{url}/types/t/buckets/other/keys/k"))
                .basic_auth("bob", Some("bob-pw"))
        ),
        403
    );
    // ann reads and writes the default type, and nothing more.
    assert_eq!(
        status(
            c.put(format!("{url}/kv/k"))
                .basic_auth("ann", Some("ann-pw"))
                .body("v")
        ),
        204
    );
    assert_eq!(
        status(
            c.get(format!("{url}/kv/k"))
                .basic_auth("ann", Some("ann-pw"))
        ),
        200
    );
    assert_eq!(
        status(
            c.delete(format!("{url}/kv/k"))
                .basic_auth("ann", Some("ann-pw"))
        ),
        403
    );
    assert_eq!(
        status(
            c.get(format!("{url}/admin/status"))
                .basic_auth("ann", Some("ann-pw"))
        ),
        403
    );
    assert_eq!(
        status(
            c.get(format!("{url}/metrics"))
                .basic_auth("ann", Some("ann-pw"))
        ),
        403
    );
    // The admin token (tools) may do anything.
    assert_eq!(
        status(c.get(format!("{url}/admin/status")).bearer_auth("tok")),
        200
    );
    // The CLI authenticates with --user and --password.
    let out = cli_output(&[
        "get",
        "--node",
        &url,
        "--ca",
        &ca,
        "--user",
        "ann",
        "--password",
        "ann-pw",
        "k",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v");

    // A 200 MB ingest body without a credential is refused before it is read.
    let addr = url.trim_start_matches("https://").to_string();
    let sock = std::net::TcpStream::connect(&addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = tls_client(&certs.join("ca.pem"), sock, ip(2));
    tls.write_all(
        b"POST /admin/ingest HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-dynakv-records\r\ncontent-length: 209715200\r\n\r\n",
    )
    .expect("write");
    let mut buf = [0u8; 256];
    let n = tls.read(&mut buf).expect("an answer before the body");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));

    // Riak PB: after STARTTLS, nothing before RpbAuthReq; then the grants.
    {
        use dynakv_riakpb::messages::{RpbAuthReq, RpbDelReq, RpbGetReq};
        use prost::Message;
        let mut s = std::net::TcpStream::connect(n1.pb_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(&pb_frame(255, b"")).expect("starttls");
        assert_eq!(read_pb(&mut s).0, 255);
        let mut pb = tls_client(&certs.join("ca.pem"), s, ip(2));
        let get = RpbGetReq {
            bucket: b"default".to_vec(),
            key: b"k".to_vec(),
            ..RpbGetReq::default()
        }
        .encode_to_vec();
        pb.write_all(&pb_frame(9, &get)).expect("get");
        let (code, body) = read_pb(&mut pb);
        assert_eq!(code, 0);
        assert!(String::from_utf8_lossy(&body).contains("authenticate"));
        let auth = |password: &str| {
            RpbAuthReq {
                user: b"ann".to_vec(),
                password: password.as_bytes().to_vec(),
            }
            .encode_to_vec()
        };
        pb.write_all(&pb_frame(253, &auth("nope"))).expect("auth");
        assert_eq!(read_pb(&mut pb).0, 0, "a wrong password is refused");
        pb.write_all(&pb_frame(253, &auth("ann-pw"))).expect("auth");
        assert_eq!(read_pb(&mut pb).0, 254, "RpbAuthResp");
        pb.write_all(&pb_frame(9, &get)).expect("get");
        assert_eq!(read_pb(&mut pb).0, 10, "ann reads over PB");
        let del = RpbDelReq {
            bucket: b"default".to_vec(),
            key: b"k".to_vec(),
            ..RpbDelReq::default()
        }
        .encode_to_vec();
        pb.write_all(&pb_frame(13, &del)).expect("del");
        let (code, body) = read_pb(&mut pb);
        assert_eq!(code, 0);
        assert!(String::from_utf8_lossy(&body).contains("Permission denied"));
    }

    // Revoked, refused; disabled, open again.
    sec(&["revoke", "write", "on", "default", "from", "ann"]);
    assert_eq!(
        status(
            c.put(format!("{url}/kv/k"))
                .basic_auth("ann", Some("ann-pw"))
                .body("w")
        ),
        403
    );
    sec(&["disable"]);
    assert_eq!(status(c.get(format!("{url}/kv/k"))), 200);
}

#[test]
fn security_cannot_be_enabled_without_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = TestNode::new(dir.path(), "n1", ip(3));
    n.start();
    let out = cli_output(&["security", "--node", &n.url(), "enable"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));
}
