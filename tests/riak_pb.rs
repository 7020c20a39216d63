//! Riak's Protocol Buffers API against a real three-node cluster: objects
//! with metadata, siblings resolved with the vclock, conditional puts,
//! bucket properties, streamed listing, and frames that are malformed,
//! unknown, oversized or cut short.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use dynakv_riakpb::messages::*;
use dynakv_riakpb::{PbQuorum, Request, Response};

/// A blocking Protocol Buffers connection.
struct Pb(TcpStream);

impl Pb {
    fn connect(addr: &str) -> Pb {
        let s = TcpStream::connect(addr).expect("connect pb");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        Pb(s)
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).expect("write");
    }

    fn send(&mut self, r: &Request) {
        let mut buf = BytesMut::new();
        r.encode_frame(&mut buf);
        self.send_raw(&buf);
    }

    /// The next response; `None` if the node closed the connection.
    fn recv(&mut self) -> Option<Response> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).ok()?;
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut frame).ok()?;
        Some(Response::decode(frame[0], &frame[1..]).expect("a valid response"))
    }

    fn call(&mut self, r: Request) -> Response {
        self.send(&r);
        self.recv().expect("an answer")
    }
}

fn content(value: &[u8]) -> RpbContent {
    RpbContent {
        value: value.to_vec(),
        content_type: Some(b"application/octet-stream".to_vec()),
        ..Default::default()
    }
}

fn get(pb: &mut Pb, bucket: &str, key: &str) -> RpbGetResp {
    match pb.call(Request::Get(RpbGetReq {
        bucket: bucket.into(),
        key: key.into(),
        ..Default::default()
    })) {
        Response::GetResp(r) => r,
        other => panic!("get: {other:?}"),
    }
}

fn put(pb: &mut Pb, bucket: &str, key: &str, c: RpbContent, vclock: Option<Vec<u8>>) -> Response {
    pb.call(Request::Put(RpbPutReq {
        bucket: bucket.into(),
        key: Some(key.into()),
        vclock,
        content: c,
        w: Some(PbQuorum::Quorum.to_wire()),
        ..Default::default()
    }))
}

fn error_text(r: &Response) -> String {
    match r {
        Response::ErrorResp(e) => String::from_utf8_lossy(&e.errmsg).into_owned(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn riak_pb_objects_siblings_props_listing_and_bad_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = formed(dir.path(), &[]);
    let mut a = Pb::connect(&nodes[0].pb_addr());
    let mut b = Pb::connect(&nodes[1].pb_addr());

    assert_eq!(a.call(Request::Ping), Response::PingResp);
    match a.call(Request::GetServerInfo) {
        Response::GetServerInfoResp(i) => {
            assert_eq!(i.node.as_deref(), Some(&b"n1"[..]));
            assert!(i.server_version.is_some_and(|v| v.starts_with(b"2.")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        a.call(Request::SetClientId(RpbSetClientIdReq {
            client_id: b"\0\0\0\0".to_vec()
        })),
        Response::SetClientIdResp
    );

    // A value with metadata, links and indexes, read through another node.
    let mut c = content(&(0..=255u8).collect::<Vec<_>>());
    c.usermeta.push(RpbPair {
        key: b"camera".to_vec(),
        value: Some(b"pinhole".to_vec()),
    });
    c.indexes.push(RpbPair {
        key: b"year_int".to_vec(),
        value: Some(b"1999".to_vec()),
    });
    c.links.push(RpbLink {
        bucket: Some(b"people".to_vec()),
        key: Some(b"ann".to_vec()),
        tag: Some(b"owner".to_vec()),
    });
    assert!(matches!(
        put(&mut a, "photos", "raw", c.clone(), None),
        Response::PutResp(_)
    ));
    let got = get(&mut b, "photos", "raw");
    assert_eq!(got.content.len(), 1);
    let g = &got.content[0];
    assert_eq!(g.value, c.value);
    assert_eq!(g.usermeta, c.usermeta);
    assert_eq!(g.indexes, c.indexes);
    assert_eq!(g.links, c.links);
    assert!(g.vtag.is_some() && g.last_mod.is_some());
    assert!(got.vclock.is_some());
    // Not found: no content, no vclock.
    let none = get(&mut b, "photos", "absent");
    assert!(none.content.is_empty() && none.vclock.is_none());

    // Siblings in a bucket that keeps them, resolved with the vclock.
    let props = RpbBucketProps {
        allow_mult: Some(true),
        ..Default::default()
    };
    assert_eq!(
        a.call(Request::SetBucket(RpbSetBucketReq {
            bucket: b"sibs".to_vec(),
            props,
            r#type: None
        })),
        Response::SetBucketResp
    );
    match b.call(Request::GetBucket(RpbGetBucketReq {
        bucket: b"sibs".to_vec(),
        r#type: None,
    })) {
        Response::GetBucketResp(p) => assert_eq!(p.props.allow_mult, Some(true)),
        other => panic!("{other:?}"),
    }
    put(&mut a, "sibs", "k", content(b"left"), None);
    put(&mut b, "sibs", "k", content(b"right"), None);
    let s = get(&mut a, "sibs", "k");
    let values: BTreeSet<Vec<u8>> = s.content.iter().map(|c| c.value.clone()).collect();
    assert_eq!(values, [b"left".to_vec(), b"right".to_vec()].into());
    match a.call(Request::Put(RpbPutReq {
        bucket: b"sibs".to_vec(),
        key: Some(b"k".to_vec()),
        vclock: s.vclock.clone(),
        content: content(b"merged"),
        return_body: Some(true),
        ..Default::default()
    })) {
        Response::PutResp(p) => {
            assert_eq!(p.content.len(), 1);
            assert_eq!(p.content[0].value, b"merged");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(get(&mut b, "sibs", "k").content.len(), 1);

    // Conditional puts, and a put without a key making one.
    let r = a.call(Request::Put(RpbPutReq {
        bucket: b"sibs".to_vec(),
        key: Some(b"k".to_vec()),
        content: content(b"x"),
        if_none_match: Some(true),
        ..Default::default()
    }));
    assert_eq!(error_text(&r), "match_found");
    let r = a.call(Request::Put(RpbPutReq {
        bucket: b"sibs".to_vec(),
        key: Some(b"k".to_vec()),
        vclock: s.vclock.clone(),
        content: content(b"x"),
        if_not_modified: Some(true),
        ..Default::default()
    }));
    assert_eq!(error_text(&r), "modified");
    let made = match a.call(Request::Put(RpbPutReq {
        bucket: b"made".to_vec(),
        content: content(b"m"),
        ..Default::default()
    })) {
        Response::PutResp(p) => p.key.expect("a key"),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        get(&mut b, "made", std::str::from_utf8(&made).expect("utf8")).content[0].value,
        b"m"
    );

    // Delete.
    assert_eq!(
        a.call(Request::Del(RpbDelReq {
            bucket: b"made".to_vec(),
            key: made.clone(),
            ..Default::default()
        })),
        Response::DelResp
    );
    assert!(
        get(&mut b, "made", std::str::from_utf8(&made).expect("utf8"))
            .content
            .is_empty()
    );

    // Streamed key listing, ended by `done`.
    for i in 0..25 {
        put(&mut a, "many", &format!("k{i}"), content(b"v"), None);
    }
    b.send(&Request::ListKeys(RpbListKeysReq {
        bucket: b"many".to_vec(),
        ..Default::default()
    }));
    let mut keys = BTreeSet::new();
    loop {
        match b.recv().expect("list answer") {
            Response::ListKeysResp(r) => {
                keys.extend(r.keys);
                if r.done == Some(true) {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        keys,
        (0..25).map(|i| format!("k{i}").into_bytes()).collect()
    );
    match a.call(Request::ListBuckets(RpbListBucketsReq::default())) {
        Response::ListBucketsResp(r) => {
            for bucket in ["photos", "sibs", "many"] {
                assert!(r.buckets.contains(&bucket.as_bytes().to_vec()), "{bucket}");
            }
        }
        other => panic!("{other:?}"),
    }
    // Preflist: the key's n_val replicas.
    match a.call(Request::GetBucketKeyPreflist(RpbGetBucketKeyPreflistReq {
        bucket: b"many".to_vec(),
        key: b"k1".to_vec(),
        r#type: None,
    })) {
        Response::GetBucketKeyPreflistResp(p) => assert_eq!(p.preflist.len(), 3),
        other => panic!("{other:?}"),
    }

    // Bad input. An unknown bucket type and a bad vclock are errors; the
    // connection goes on.
    let r = a.call(Request::Get(RpbGetReq {
        bucket: b"b".to_vec(),
        key: b"k".to_vec(),
        r#type: Some(b"nosuch".to_vec()),
        ..Default::default()
    }));
    assert!(error_text(&r).contains("nosuch"));
    let r = put(&mut a, "b", "k", content(b"v"), Some(b"garbage".to_vec()));
    assert!(error_text(&r).contains("vclock"));
    // An unknown code and a malformed body: an error, and the connection goes on.
    a.send_raw(&[0, 0, 0, 1, 199]);
    assert!(!error_text(&a.recv().expect("answer")).is_empty());
    a.send_raw(&[0, 0, 0, 3, 9, 0x0a, 0x7f]);
    assert!(!error_text(&a.recv().expect("answer")).is_empty());
    assert_eq!(a.call(Request::Ping), Response::PingResp);
    // A frame over the limit: an error, then the connection closes.
    a.send_raw(&[0x7f, 0xff, 0xff, 0xff, 9]);
    assert!(!error_text(&a.recv().expect("answer")).is_empty());
    assert!(
        a.recv().is_none(),
        "the connection stays open after a bad length"
    );
    // A zero-length frame closes too.
    let mut z = Pb::connect(&nodes[2].pb_addr());
    z.send_raw(&[0, 0, 0, 0]);
    let _ = z.recv();
    assert!(z.recv().is_none());
    // A frame cut short by the client: nothing applied, the node is fine.
    let mut cut = Pb::connect(&nodes[2].pb_addr());
    let mut buf = BytesMut::new();
    Request::Put(RpbPutReq {
        bucket: b"cut".to_vec(),
        key: Some(b"k".to_vec()),
        content: content(b"half"),
        ..Default::default()
    })
    .encode_frame(&mut buf);
    cut.send_raw(&buf[..buf.len() - 3]);
    drop(cut);
    let mut c3 = Pb::connect(&nodes[2].pb_addr());
    assert_eq!(c3.call(Request::Ping), Response::PingResp);
    assert!(get(&mut c3, "cut", "k").content.is_empty());
}
