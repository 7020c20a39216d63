//! The wire format: round trips of every request and response, exact bytes of
//! a few frames, framing errors, and fuzzing of the decoders.

use bytes::{BufMut, Bytes, BytesMut};
use dynakv_riakpb::messages::rpb_bucket_props::RpbReplMode;
use dynakv_riakpb::messages::*;
use dynakv_riakpb::{PbQuorum, RW_ONE, RW_QUORUM, Request, Response, RiakCodec, WireError, codes};
use futures::StreamExt;
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder, FramedRead};

const MAX: usize = 1 << 20;

fn content(value: &[u8]) -> RpbContent {
    RpbContent {
        value: value.to_vec(),
        content_type: Some(b"application/json".to_vec()),
        charset: Some(b"utf-8".to_vec()),
        content_encoding: Some(b"identity".to_vec()),
        vtag: Some(b"4Rz3".to_vec()),
        links: vec![RpbLink {
            bucket: Some(b"people".to_vec()),
            key: Some(b"bob".to_vec()),
            tag: Some(b"friend".to_vec()),
        }],
        last_mod: Some(1_700_000_000),
        last_mod_usecs: Some(123_456),
        usermeta: vec![RpbPair {
            key: b"colour".to_vec(),
            value: Some(b"blue".to_vec()),
        }],
        indexes: vec![RpbPair {
            key: b"age_int".to_vec(),
            value: Some(b"42".to_vec()),
        }],
        deleted: Some(false),
    }
}

fn modfun() -> RpbModFun {
    RpbModFun {
        module: b"riak_core_util".to_vec(),
        function: b"chash_std_keyfun".to_vec(),
    }
}

/// Every field set.
fn bucket_props() -> RpbBucketProps {
    RpbBucketProps {
        n_val: Some(3),
        allow_mult: Some(true),
        last_write_wins: Some(false),
        precommit: vec![RpbCommitHook {
            modfun: Some(modfun()),
            name: None,
        }],
        has_precommit: Some(true),
        postcommit: vec![RpbCommitHook {
            modfun: None,
            name: Some(b"Riak.mapValues".to_vec()),
        }],
        has_postcommit: Some(true),
        chash_keyfun: Some(modfun()),
        linkfun: Some(modfun()),
        old_vclock: Some(86_400),
        young_vclock: Some(20),
        big_vclock: Some(50),
        small_vclock: Some(50),
        pr: Some(0),
        r: Some(RW_QUORUM),
        w: Some(RW_QUORUM),
        pw: Some(0),
        dw: Some(RW_QUORUM),
        rw: Some(RW_QUORUM),
        basic_quorum: Some(false),
        notfound_ok: Some(true),
        backend: Some(b"leveldb".to_vec()),
        search: Some(false),
        repl: Some(RpbReplMode::Realtime as i32),
        search_index: Some(b"idx".to_vec()),
        datatype: Some(b"map".to_vec()),
        consistent: Some(false),
        write_once: Some(false),
        hll_precision: Some(14),
    }
}

fn all_requests() -> Vec<Request> {
    vec![
        Request::Ping,
        Request::GetClientId,
        Request::SetClientId(RpbSetClientIdReq {
            client_id: b"client-1".to_vec(),
        }),
        Request::GetServerInfo,
        Request::Get(RpbGetReq {
            bucket: b"b".to_vec(),
            key: b"k".to_vec(),
            r: Some(RW_QUORUM),
            pr: Some(RW_ONE),
            basic_quorum: Some(true),
            notfound_ok: Some(false),
            if_modified: Some(b"vclock".to_vec()),
            head: Some(true),
            deletedvclock: Some(true),
            timeout: Some(5_000),
            sloppy_quorum: Some(true),
            n_val: Some(3),
            r#type: Some(b"maps".to_vec()),
            node_confirms: Some(2),
        }),
        // Only the required fields.
        Request::Get(RpbGetReq {
            bucket: b"b".to_vec(),
            key: Vec::new(),
            ..Default::default()
        }),
        Request::Put(RpbPutReq {
            bucket: b"b".to_vec(),
            key: Some(b"k".to_vec()),
            vclock: Some(b"vclock".to_vec()),
            content: content(b"{\"a\":1}"),
            w: Some(2),
            dw: Some(RW_ONE),
            return_body: Some(true),
            pw: Some(1),
            if_not_modified: Some(false),
            if_none_match: Some(true),
            return_head: Some(false),
            timeout: Some(1_000),
            asis: Some(false),
            sloppy_quorum: Some(true),
            n_val: Some(3),
            r#type: Some(b"default".to_vec()),
            node_confirms: Some(1),
        }),
        // No key (the server makes one), an empty value.
        Request::Put(RpbPutReq {
            bucket: b"b".to_vec(),
            content: RpbContent::default(),
            ..Default::default()
        }),
        Request::Del(RpbDelReq {
            bucket: b"b".to_vec(),
            key: b"k".to_vec(),
            rw: Some(RW_QUORUM),
            vclock: Some(b"vclock".to_vec()),
            r: Some(1),
            w: Some(2),
            pr: Some(0),
            pw: Some(0),
            dw: Some(1),
            timeout: Some(100),
            sloppy_quorum: Some(false),
            n_val: Some(3),
            r#type: Some(b"t".to_vec()),
        }),
        Request::ListBuckets(RpbListBucketsReq::default()),
        Request::ListBuckets(RpbListBucketsReq {
            timeout: Some(60_000),
            stream: Some(true),
            r#type: Some(b"t".to_vec()),
        }),
        Request::ListKeys(RpbListKeysReq {
            bucket: b"b".to_vec(),
            timeout: Some(60_000),
            r#type: Some(b"t".to_vec()),
        }),
        Request::GetBucket(RpbGetBucketReq {
            bucket: b"b".to_vec(),
            r#type: Some(b"t".to_vec()),
        }),
        Request::SetBucket(RpbSetBucketReq {
            bucket: b"b".to_vec(),
            props: bucket_props(),
            r#type: None,
        }),
        // Setting no property at all: props is required, so it is still sent.
        Request::SetBucket(RpbSetBucketReq {
            bucket: b"b".to_vec(),
            props: RpbBucketProps::default(),
            r#type: None,
        }),
        Request::ResetBucket(RpbResetBucketReq {
            bucket: b"b".to_vec(),
            r#type: Some(b"t".to_vec()),
        }),
        Request::GetBucketType(RpbGetBucketTypeReq {
            r#type: b"t".to_vec(),
        }),
        Request::SetBucketType(RpbSetBucketTypeReq {
            r#type: b"t".to_vec(),
            props: bucket_props(),
        }),
        Request::GetBucketKeyPreflist(RpbGetBucketKeyPreflistReq {
            bucket: b"b".to_vec(),
            key: b"k".to_vec(),
            r#type: Some(b"t".to_vec()),
        }),
        Request::CounterUpdate(RpbCounterUpdateReq {
            bucket: b"b".to_vec(),
            key: b"k".to_vec(),
            amount: -7,
            w: Some(RW_QUORUM),
            dw: Some(1),
            pw: Some(0),
            returnvalue: Some(true),
            node_confirms: Some(1),
        }),
        Request::CounterUpdate(RpbCounterUpdateReq {
            bucket: b"b".to_vec(),
            key: b"k".to_vec(),
            amount: 0,
            ..Default::default()
        }),
        Request::CounterGet(RpbCounterGetReq {
            bucket: b"b".to_vec(),
            key: b"k".to_vec(),
            r: Some(RW_ONE),
            pr: Some(0),
            basic_quorum: Some(false),
            notfound_ok: Some(true),
            node_confirms: Some(1),
        }),
        Request::Other {
            code: codes::MAP_RED_REQ,
        },
        Request::Other {
            code: codes::INDEX_REQ,
        },
        Request::Other {
            code: codes::AUTH_REQ,
        },
        Request::Other {
            code: codes::START_TLS,
        },
        Request::Other {
            code: codes::YOKOZUNA_INDEX_GET_REQ,
        },
        Request::Other {
            code: codes::DT_FETCH_REQ,
        },
        Request::Other {
            code: codes::TS_QUERY_REQ,
        },
    ]
}

fn all_responses() -> Vec<Response> {
    vec![
        Response::error("no such bucket type"),
        Response::ErrorResp(RpbErrorResp {
            errmsg: Vec::new(),
            errcode: 17,
        }),
        Response::PingResp,
        Response::GetClientIdResp(RpbGetClientIdResp {
            client_id: b"client-1".to_vec(),
        }),
        Response::SetClientIdResp,
        Response::GetServerInfoResp(RpbGetServerInfoResp {
            node: Some(b"dynakv@127.0.0.1".to_vec()),
            server_version: Some(b"2.9.10".to_vec()),
        }),
        // Not found.
        Response::GetResp(RpbGetResp::default()),
        Response::GetResp(RpbGetResp {
            content: vec![content(b"one"), content(b"two")],
            vclock: Some(b"vclock".to_vec()),
            unchanged: None,
        }),
        Response::GetResp(RpbGetResp {
            content: Vec::new(),
            vclock: None,
            unchanged: Some(true),
        }),
        Response::PutResp(RpbPutResp::default()),
        Response::PutResp(RpbPutResp {
            content: vec![content(b"v")],
            vclock: Some(b"vclock".to_vec()),
            key: Some(b"generated".to_vec()),
        }),
        Response::DelResp,
        Response::ListBucketsResp(RpbListBucketsResp {
            buckets: vec![b"a".to_vec(), b"b".to_vec(), Vec::new()],
            done: None,
        }),
        Response::ListBucketsResp(RpbListBucketsResp {
            buckets: Vec::new(),
            done: Some(true),
        }),
        Response::ListKeysResp(RpbListKeysResp {
            keys: vec![b"k1".to_vec(), b"k2".to_vec()],
            done: Some(false),
        }),
        Response::ListKeysResp(RpbListKeysResp {
            keys: Vec::new(),
            done: Some(true),
        }),
        Response::GetBucketResp(RpbGetBucketResp {
            props: bucket_props(),
        }),
        Response::GetBucketResp(RpbGetBucketResp {
            props: RpbBucketProps::default(),
        }),
        Response::SetBucketResp,
        Response::ResetBucketResp,
        Response::GetBucketKeyPreflistResp(RpbGetBucketKeyPreflistResp {
            preflist: vec![
                RpbBucketKeyPreflistItem {
                    partition: 0,
                    node: b"a@host".to_vec(),
                    primary: true,
                },
                RpbBucketKeyPreflistItem {
                    partition: 1023,
                    node: b"b@host".to_vec(),
                    primary: false,
                },
            ],
        }),
        Response::CounterUpdateResp(RpbCounterUpdateResp::default()),
        Response::CounterUpdateResp(RpbCounterUpdateResp { value: Some(-3) }),
        Response::CounterGetResp(RpbCounterGetResp {
            value: Some(i64::MAX),
        }),
        Response::CounterGetResp(RpbCounterGetResp { value: None }),
    ]
}

/// Reads every frame in `buf`, which must hold only whole frames.
fn read_frames(buf: &mut BytesMut) -> Vec<(u8, Bytes)> {
    let mut codec = RiakCodec::new(MAX);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(buf).expect("valid frames") {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

#[test]
fn every_request_round_trips() {
    let requests = all_requests();
    let mut wire = BytesMut::new();
    let mut codec = RiakCodec::new(MAX);
    for request in &requests {
        let mut frame = BytesMut::new();
        request.encode_frame(&mut frame);
        assert_eq!(frame.len(), 4 + request.frame_len());
        // The Encoder writes the same bytes, by reference or by value.
        let mut by_ref = BytesMut::new();
        codec.encode(request, &mut by_ref).expect("encode");
        let mut by_value = BytesMut::new();
        codec
            .encode(request.clone(), &mut by_value)
            .expect("encode");
        assert_eq!(frame, by_ref);
        assert_eq!(frame, by_value);
        wire.extend_from_slice(&frame);
    }

    let frames = read_frames(&mut wire);
    assert_eq!(frames.len(), requests.len());
    for (request, (code, body)) in requests.iter().zip(frames) {
        assert_eq!(code, request.code());
        let decoded = Request::decode(code, &body).expect("decode");
        assert_eq!(&decoded, request);
    }
}

#[test]
fn every_response_round_trips() {
    let responses = all_responses();
    let mut wire = BytesMut::new();
    let mut codec = RiakCodec::new(MAX);
    for response in &responses {
        let mut frame = BytesMut::new();
        response.encode_frame(&mut frame);
        assert_eq!(frame.len(), 4 + response.frame_len());
        let mut by_ref = BytesMut::new();
        codec.encode(response, &mut by_ref).expect("encode");
        let mut by_value = BytesMut::new();
        codec
            .encode(response.clone(), &mut by_value)
            .expect("encode");
        assert_eq!(frame, by_ref);
        assert_eq!(frame, by_value);
        wire.extend_from_slice(&frame);
    }

    let frames = read_frames(&mut wire);
    assert_eq!(frames.len(), responses.len());
    for (response, (code, body)) in responses.iter().zip(frames) {
        assert_eq!(code, response.code());
        let decoded = Response::decode(code, &body).expect("decode");
        assert_eq!(&decoded, response);
    }
}

#[test]
fn codes_of_requests_and_responses() {
    let request_codes: Vec<u8> = all_requests().iter().map(Request::code).collect();
    for code in [
        1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 29, 31, 32, 33, 50, 52,
    ] {
        assert!(request_codes.contains(&code), "no request with code {code}");
    }
    let response_codes: Vec<u8> = all_responses().iter().map(Response::code).collect();
    for code in [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 30, 34, 51, 53] {
        assert!(
            response_codes.contains(&code),
            "no response with code {code}"
        );
    }
}

#[test]
fn ping_frame_is_five_bytes() {
    let mut buf = BytesMut::new();
    Request::Ping.encode_frame(&mut buf);
    assert_eq!(&buf[..], &[0x00, 0x00, 0x00, 0x01, 0x01]);
}

#[test]
fn empty_messages_are_the_code_alone() {
    let cases = [
        (Response::PingResp, 2),
        (Response::SetClientIdResp, 6),
        (Response::DelResp, 14),
        (Response::SetBucketResp, 22),
        (Response::ResetBucketResp, 30),
        (Response::GetResp(RpbGetResp::default()), 10),
        (Response::PutResp(RpbPutResp::default()), 12),
        (
            Response::CounterUpdateResp(RpbCounterUpdateResp::default()),
            51,
        ),
    ];
    for (response, code) in cases {
        let mut buf = BytesMut::new();
        response.encode_frame(&mut buf);
        assert_eq!(&buf[..], &[0, 0, 0, 1, code], "{response:?}");
    }
    for (request, code) in [(Request::GetClientId, 3), (Request::GetServerInfo, 7)] {
        let mut buf = BytesMut::new();
        request.encode_frame(&mut buf);
        assert_eq!(&buf[..], &[0, 0, 0, 1, code], "{request:?}");
    }
}

#[test]
fn error_resp_bytes() {
    let mut buf = BytesMut::new();
    Response::error("oops").encode_frame(&mut buf);
    #[rustfmt::skip]
    let expected = [
        0x00, 0x00, 0x00, 0x09, // length: code + 8 bytes of body
        0x00,                   // RpbErrorResp
        0x0a, 0x04, b'o', b'o', b'p', b's', // 1: errmsg
        0x10, 0x00,             // 2: errcode = 0, written although 0: it is required
    ];
    assert_eq!(&buf[..], &expected);
}

/// Pins the tags of a few fields, including ones past 15 (two-byte keys) and a
/// zigzag-encoded sint64, against bytes worked out by hand from riak_kv.proto.
#[test]
fn field_tags_match_riak_pb() {
    let put = RpbPutReq {
        bucket: b"b".to_vec(),
        key: Some(b"k".to_vec()),
        content: RpbContent {
            value: b"v".to_vec(),
            ..Default::default()
        },
        w: Some(3),
        return_body: Some(true),
        r#type: Some(b"t".to_vec()),
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    Request::Put(put).encode_frame(&mut buf);
    #[rustfmt::skip]
    let body = [
        0x0a, 0x01, b'b',             // 1: bucket
        0x12, 0x01, b'k',             // 2: key
        0x22, 0x03, 0x0a, 0x01, b'v', // 4: content { 1: value }
        0x28, 0x03,                   // 5: w
        0x38, 0x01,                   // 7: return_body
        0x82, 0x01, 0x01, b't',       // 16: type
    ];
    assert_eq!(buf[4], codes::PUT_REQ);
    assert_eq!(&buf[5..], &body);

    let counter = RpbCounterUpdateReq {
        bucket: b"b".to_vec(),
        key: b"k".to_vec(),
        amount: -1,
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    Request::CounterUpdate(counter).encode_frame(&mut buf);
    // 3: amount, sint64 -1 zigzags to 1
    assert_eq!(&buf[5..], &[0x0a, 0x01, b'b', 0x12, 0x01, b'k', 0x18, 0x01]);

    let props = RpbBucketProps {
        hll_precision: Some(14),
        repl: Some(RpbReplMode::Fullsync as i32),
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    Response::GetBucketResp(RpbGetBucketResp { props }).encode_frame(&mut buf);
    // 1: props { 24: repl = 2, 29: hll_precision = 14 }
    assert_eq!(&buf[5..], &[0x0a, 0x06, 0xc0, 0x01, 0x02, 0xe8, 0x01, 0x0e]);

    let item = RpbBucketKeyPreflistItem {
        partition: 5,
        node: b"n".to_vec(),
        primary: false,
    };
    let mut buf = BytesMut::new();
    Response::GetBucketKeyPreflistResp(RpbGetBucketKeyPreflistResp {
        preflist: vec![item],
    })
    .encode_frame(&mut buf);
    // 1: item { 1: partition, 2: node, 3: primary = false, written: required }
    assert_eq!(
        &buf[5..],
        &[0x0a, 0x07, 0x08, 0x05, 0x12, 0x01, b'n', 0x18, 0x00]
    );
}

#[test]
fn get_req_with_symbolic_quorum() {
    #[rustfmt::skip]
    let body = [
        0x0a, 0x06, b'u', b's', b'e', b'r', b's', b'!', // 1: bucket (6 bytes: "users!")
        0x12, 0x03, b'b', b'o', b'b',                   // 2: key
        0x18, 0xfd, 0xff, 0xff, 0xff, 0x0f,             // 3: r = 4294967293, "quorum"
        0x20, 0xfe, 0xff, 0xff, 0xff, 0x0f,             // 4: pr = 4294967294, "one"
    ];
    // Through the codec, as a server reads it.
    let mut wire = BytesMut::new();
    wire.put_u32(1 + body.len() as u32);
    wire.put_u8(codes::GET_REQ);
    wire.extend_from_slice(&body);
    let (code, frame_body) = RiakCodec::new(MAX)
        .decode(&mut wire)
        .expect("frame")
        .expect("whole frame");

    let Request::Get(get) = Request::decode(code, &frame_body).expect("decode") else {
        panic!("not a get");
    };
    assert_eq!(get.bucket, b"users!");
    assert_eq!(get.key, b"bob");
    assert_eq!(get.r, Some(4_294_967_293));
    assert_eq!(get.r.map(PbQuorum::from_wire), Some(PbQuorum::Quorum));
    assert_eq!(get.pr.map(PbQuorum::from_wire), Some(PbQuorum::One));
    assert_eq!(get.n_val, None);
}

#[test]
fn partial_frame_waits_for_more_bytes() {
    let mut whole = BytesMut::new();
    Request::GetBucket(RpbGetBucketReq {
        bucket: b"bucket".to_vec(),
        r#type: None,
    })
    .encode_frame(&mut whole);

    let mut codec = RiakCodec::new(MAX);
    let mut buf = BytesMut::new();
    for (i, byte) in whole.iter().enumerate() {
        buf.put_u8(*byte);
        let frame = codec.decode(&mut buf).expect("no error");
        if i + 1 < whole.len() {
            assert_eq!(frame, None, "after {} bytes", i + 1);
        } else {
            let (code, body) = frame.expect("whole frame");
            assert_eq!(code, codes::GET_BUCKET_REQ);
            assert_eq!(body.len(), whole.len() - 5);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(codec.decode_eof(&mut buf).expect("clean end"), None);
}

#[test]
fn truncated_frame_at_eof() {
    let mut codec = RiakCodec::new(MAX);
    // Claims 5 bytes, has 2.
    let mut buf = BytesMut::from(&[0x00, 0x00, 0x00, 0x05, 0x09, 0x0a][..]);
    assert_eq!(codec.decode(&mut buf).expect("waits"), None);
    let err = codec.decode_eof(&mut buf).expect_err("truncated");
    assert!(matches!(err, WireError::Truncated), "{err:?}");
    assert!(err.closes_connection());

    // Even a cut-off length prefix.
    let mut buf = BytesMut::from(&[0x00, 0x00][..]);
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(WireError::Truncated)
    ));
}

#[tokio::test]
async fn framed_read_yields_frames_then_truncated() {
    let mut wire = BytesMut::new();
    Request::Ping.encode_frame(&mut wire);
    Request::GetServerInfo.encode_frame(&mut wire);
    wire.extend_from_slice(&[0x00, 0x00, 0x00, 0x09, codes::GET_REQ]);
    let bytes = wire.freeze();

    let mut frames = FramedRead::new(&bytes[..], RiakCodec::new(MAX));
    let (code, body) = frames.next().await.expect("frame").expect("ok");
    assert_eq!(Request::decode(code, &body).expect("ping"), Request::Ping);
    let (code, body) = frames.next().await.expect("frame").expect("ok");
    assert_eq!(
        Request::decode(code, &body).expect("info"),
        Request::GetServerInfo
    );
    let err = frames
        .next()
        .await
        .expect("an error")
        .expect_err("truncated");
    assert!(matches!(err, WireError::Truncated), "{err:?}");
}

#[test]
fn oversized_length_is_refused_before_reading_the_body() {
    let mut codec = RiakCodec::new(1024);
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x09]);
    let err = codec.decode(&mut buf).expect_err("too large");
    match err {
        WireError::FrameTooLarge { len, max } => {
            assert_eq!(len, u32::MAX as usize);
            assert_eq!(max, 1024);
        }
        other => panic!("{other:?}"),
    }
    assert!(err_closes(&mut codec, &[0xff, 0xff, 0xff, 0xff]));
    // Nothing was reserved for the 4 GiB the prefix claims.
    assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());

    // One over the limit is refused; the limit itself is waited for.
    let mut buf = BytesMut::from(&1025u32.to_be_bytes()[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(WireError::FrameTooLarge {
            len: 1025,
            max: 1024
        })
    ));
    let mut buf = BytesMut::from(&1024u32.to_be_bytes()[..]);
    assert_eq!(codec.decode(&mut buf).expect("within the limit"), None);
}

fn err_closes(codec: &mut RiakCodec, bytes: &[u8]) -> bool {
    let mut buf = BytesMut::from(bytes);
    codec
        .decode(&mut buf)
        .expect_err("an error")
        .closes_connection()
}

#[test]
fn zero_length_frame_is_an_error() {
    let mut codec = RiakCodec::new(MAX);
    let mut buf = BytesMut::from(&[0x00, 0x00, 0x00, 0x00, 0x01][..]);
    let err = codec.decode(&mut buf).expect_err("empty frame");
    assert!(matches!(err, WireError::EmptyFrame), "{err:?}");
    assert!(err.closes_connection());
}

#[test]
fn unknown_codes() {
    for code in [35, 150, codes::TS_RANGE] {
        let err = Request::decode(code, &[]).expect_err("unknown");
        assert!(
            matches!(err, WireError::UnknownCode(c) if c == code),
            "{err:?}"
        );
        assert!(!err.closes_connection());
    }
    // A response code sent as a request.
    assert!(matches!(
        Request::decode(codes::PING_RESP, &[]),
        Err(WireError::UnknownCode(2))
    ));
    // A request code, or a response this crate does not decode, sent as a response.
    assert!(matches!(
        Response::decode(codes::PING_REQ, &[]),
        Err(WireError::UnknownCode(1))
    ));
    assert!(matches!(
        Response::decode(codes::MAP_RED_RESP, &[]),
        Err(WireError::UnknownCode(24))
    ));
}

#[test]
fn unsupported_requests_are_other_whatever_their_body() {
    for code in [
        codes::MAP_RED_REQ,
        codes::INDEX_REQ,
        codes::CS_BUCKET_REQ,
        codes::SEARCH_QUERY_REQ,
        codes::YOKOZUNA_SCHEMA_PUT_REQ,
        codes::COVERAGE_REQ,
        codes::DT_UPDATE_REQ,
        codes::TS_QUERY_REQ,
        codes::TS_TTB_MSG,
        codes::AUTH_REQ,
        codes::START_TLS,
        codes::AAE_FOLD_ERASE_KEYS_REQ,
    ] {
        assert_eq!(
            Request::decode(code, &[0xff, 0xff, 0xff]).expect("known"),
            Request::Other { code }
        );
    }
}

#[test]
fn malformed_bodies() {
    // A bytes field whose length runs past the end of the body.
    let err = Request::decode(codes::GET_REQ, &[0x0a, 0x05, b'b']).expect_err("malformed");
    assert!(
        matches!(err, WireError::Malformed { code: 9, .. }),
        "{err:?}"
    );
    assert!(!err.closes_connection());

    // A required field missing: a get without a key.
    let err = Request::decode(codes::GET_REQ, &[0x0a, 0x01, b'b']).expect_err("no key");
    let WireError::Malformed { code, reason } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*code, codes::GET_REQ);
    assert!(reason.contains("`key`"), "{reason}");
    assert_eq!(
        err.to_string(),
        "malformed RpbGetReq (code 9): required field `key` (2) is missing"
    );

    // A put without content, a counter update without amount.
    assert!(matches!(
        Request::decode(codes::PUT_REQ, &[0x0a, 0x01, b'b']),
        Err(WireError::Malformed { code: 11, .. })
    ));
    assert!(matches!(
        Request::decode(
            codes::COUNTER_UPDATE_REQ,
            &[0x0a, 0x01, b'b', 0x12, 0x01, b'k']
        ),
        Err(WireError::Malformed { code: 50, .. })
    ));

    // An invalid wire type (7) in a message that should have no fields.
    assert!(matches!(
        Request::decode(codes::PING_REQ, &[0x0f]),
        Err(WireError::Malformed { code: 1, .. })
    ));
    // Unknown fields are skipped, as protobuf wants.
    assert_eq!(
        Request::decode(codes::PING_REQ, &[0xf8, 0x01, 0x01]).expect("unknown field"),
        Request::Ping
    );

    // An error response without errcode.
    assert!(matches!(
        Response::decode(codes::ERROR_RESP, &[0x0a, 0x01, b'x']),
        Err(WireError::Malformed { code: 0, .. })
    ));
}

#[test]
fn a_bad_message_does_not_lose_the_next_frame() {
    let mut wire = BytesMut::new();
    // Unknown code 150 with a body, a malformed get, then a ping.
    RiakCodec::new(MAX)
        .encode((150, Bytes::from_static(b"whatever")), &mut wire)
        .expect("raw frame");
    RiakCodec::new(MAX)
        .encode(
            (codes::GET_REQ, Bytes::from_static(&[0x0a, 0x05])),
            &mut wire,
        )
        .expect("raw frame");
    Request::Ping.encode_frame(&mut wire);

    let frames = read_frames(&mut wire);
    let results: Vec<_> = frames
        .iter()
        .map(|(code, body)| Request::decode(*code, body))
        .collect();
    assert!(matches!(results[0], Err(WireError::UnknownCode(150))));
    assert!(matches!(
        results[1],
        Err(WireError::Malformed { code: 9, .. })
    ));
    assert!(matches!(results[2], Ok(Request::Ping)));
}

/// Reads `bytes` as a stream delivered in chunks of `chunk` bytes, as a server
/// would, stopping at the first error.
fn read_stream(bytes: &[u8], chunk: usize, max: usize) {
    let mut codec = RiakCodec::new(max);
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some((code, body))) => {
                    assert!(body.len() < max);
                    let _ = Request::decode(code, &body);
                    let _ = Response::decode(code, &body);
                }
                Ok(None) => break,
                Err(err) => {
                    assert!(err.closes_connection());
                    return;
                }
            }
        }
    }
    if let Err(err) = codec.decode_eof(&mut buf) {
        assert!(err.closes_connection());
    }
}

proptest! {
    #[test]
    fn codec_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                          chunk in 1usize..64,
                          max in 1usize..256) {
        read_stream(&bytes, chunk, max);
    }

    /// Streams of mostly plausible frames: small length prefixes.
    #[test]
    fn codec_never_panics_on_plausible_frames(
        frames in proptest::collection::vec(
            (0u8..40, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)),
            0..8,
        ),
        chunk in 1usize..16,
    ) {
        let mut bytes = Vec::new();
        for (len, code, body) in frames {
            bytes.extend_from_slice(&u32::from(len).to_be_bytes());
            bytes.push(code);
            bytes.extend_from_slice(&body);
        }
        read_stream(&bytes, chunk, 64);
    }

    #[test]
    fn message_decoders_never_panic(code in any::<u8>(),
                                    body in proptest::collection::vec(any::<u8>(), 0..256)) {
        // Whatever decodes re-encodes to something that decodes to the same.
        if let Ok(request) = Request::decode(code, &body) {
            let mut wire = BytesMut::new();
            request.encode_frame(&mut wire);
            let frames = read_frames(&mut wire);
            prop_assert_eq!(frames.len(), 1);
            let (code, body) = &frames[0];
            prop_assert_eq!(Request::decode(*code, body).expect("re-decode"), request);
        }
        if let Ok(response) = Response::decode(code, &body) {
            let mut wire = BytesMut::new();
            response.encode_frame(&mut wire);
            let frames = read_frames(&mut wire);
            let (code, body) = &frames[0];
            prop_assert_eq!(Response::decode(*code, body).expect("re-decode"), response);
        }
    }
}
