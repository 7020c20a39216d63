//! Riak KV's Protocol Buffers API (SPEC §5), on `--pb` (port 8087 by
//! default): the protocol most of Riak's client libraries speak.
//!
//! Each connection is a stream of frames (`dynakv_riakpb::RiakCodec`), one
//! request at a time, answered in order. A frame whose body does not decode,
//! or whose code is unknown, gets an `RpbErrorResp` and the connection goes
//! on; a frame that breaks the framing itself (a length over the limit, a
//! zero length, a stream cut mid-frame) gets an `RpbErrorResp` where it can
//! and closes the connection, since the next frame boundary is unknown.
//!
//! Requests share the semantics of the Riak HTTP API (`api::riak`): the same
//! namespaces, properties, quorum parameters, sibling rules and metadata.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use dynakv_buckets::{Namespace, Props, QuorumProp, decode_key};
use dynakv_riakpb::messages::{
    RpbAuthReq, RpbBucketKeyPreflistItem, RpbBucketProps, RpbContent, RpbCounterGetResp,
    RpbCounterUpdateResp, RpbGetBucketKeyPreflistResp, RpbGetBucketResp, RpbGetClientIdResp,
    RpbGetResp, RpbGetServerInfoResp, RpbLink, RpbListBucketsResp, RpbListKeysResp, RpbModFun,
    RpbPair, RpbPutResp,
};
use dynakv_riakpb::{PbQuorum, Request, Response, RiakCodec, WireError, codes};
use dynakv_storage::clock::now_ms;
use dynakv_versioning::{
    CausalContext, ContextSigner, Link, Metadata, Object, Version, VersionVector,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::ApiError;
use super::riak::object::{read_options, stored_key, visible, vtag, write_options};
use super::riak::{RIAK_KV_VERSION, bucket_props, change_metadata, next_batch};
use crate::server::cluster::rpc::BoxIo;
use crate::server::node::Node;
use crate::server::security::Perm;

/// Room for a frame's protobuf fields around the largest value.
const FRAME_HEADROOM: usize = 64 << 10;

type Conn = Framed<BoxIo, RiakCodec>;

/// How long a connection may sit idle between requests (a client's pool
/// reconnects), and before it has authenticated (or started TLS) when the
/// node requires it.
const IDLE: std::time::Duration = std::time::Duration::from_secs(300);
const IDLE_UNAUTHENTICATED: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts Protocol Buffers connections until `shutdown`, at most
/// `max_connections` at once: one over the cap gets an `RpbErrorResp` and
/// is closed at once.
pub async fn serve(node: Arc<Node>, listener: TcpListener, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(
        node.core.config.max_connections,
    ));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((mut stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    tokio::spawn(async move {
                        use tokio::io::AsyncWriteExt;
                        let mut frame = bytes::BytesMut::new();
                        Response::error("too many connections; retry").encode_frame(&mut frame);
                        let _ = tokio::time::timeout(
                            std::time::Duration::from_secs(1),
                            stream.write_all(&frame),
                        )
                        .await;
                    });
                    continue;
                };
                let node = Arc::clone(&node);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = connection(node, stream) => {}
                    }
                    drop(slot);
                    tracing::debug!(%peer, "riak pb connection closed");
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a riak pb connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(node: Arc<Node>, stream: TcpStream) {
    let max = node.core.config.max_value_bytes + FRAME_HEADROOM;
    // With TLS, nothing but `RpbStartTls` is served before the handshake,
    // and no frame larger than a small one is read.
    let tls = node.core.rpc_shared.tls.clone();
    let mut secured = tls.is_none();
    let first_max = if secured { max } else { 64 << 10 };
    let mut conn: Conn = Framed::new(Box::new(stream), RiakCodec::new(first_max));
    // A client id of printable characters: clients decode it as text.
    let mut client_id = super::riak::object::new_key()[..8].to_vec();
    // The user authenticated on this connection (`RpbAuthReq`).
    let mut user: Option<String> = None;
    loop {
        // Idle connections are closed: briefly before the client proved
        // anything the node asks for, after a few minutes otherwise.
        let idle = if !secured || (node.core.security.enabled() && user.is_none()) {
            IDLE_UNAUTHENTICATED
        } else {
            IDLE
        };
        let Ok(Some(frame)) = tokio::time::timeout(idle, conn.next()).await else {
            return;
        };
        let (code, body) = match frame {
            Ok(f) => f,
            Err(e) => {
                if !matches!(e, WireError::Io(_)) {
                    let _ = conn.send(Response::error(e.to_string())).await;
                }
                return;
            }
        };
        if let Some(tls) = tls.as_ref().filter(|_| !secured) {
            if code != codes::START_TLS {
                // Riak's words, which clients recognise.
                let refused = Response::error("Security is enabled, please STARTTLS first");
                if conn.send(refused).await.is_err() {
                    return;
                }
                continue;
            }
            if conn.send((codes::START_TLS, Bytes::new())).await.is_err() {
                return;
            }
            // The client starts the TLS handshake once it reads the answer:
            // bytes it sent before are not a handshake this can resume.
            let parts = conn.into_parts();
            if !parts.read_buf.is_empty() {
                return;
            }
            let io = parts.io;
            let accepted = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                tls.for_clients().accept(io),
            )
            .await;
            let Ok(Ok(stream)) = accepted else {
                return;
            };
            conn = Framed::new(Box::new(stream), RiakCodec::new(max));
            secured = true;
            continue;
        }
        // Riak's RpbAuthReq: a user's name and password, once per connection.
        if code == codes::AUTH_REQ {
            use prost::Message;
            let authenticated = RpbAuthReq::decode(&body[..]).ok().and_then(|a| {
                let name = String::from_utf8(a.user).ok()?;
                let password = String::from_utf8(a.password).ok()?;
                node.core
                    .security
                    .check_password(&name, &password)
                    .then_some(name)
            });
            let answer = match authenticated {
                Some(name) => {
                    user = Some(name);
                    conn.send((codes::AUTH_RESP, Bytes::new())).await
                }
                None => conn.send(Response::error("Authentication failed")).await,
            };
            if answer.is_err() {
                return;
            }
            continue;
        }
        if node.core.security.enabled() && user.is_none() {
            let refused = Response::error("Security is enabled, please authenticate first");
            if conn.send(refused).await.is_err() {
                return;
            }
            continue;
        }
        let request = match Request::decode(code, &body) {
            Ok(r) => r,
            Err(e) => {
                let closes = e.closes_connection();
                if conn.send(Response::error(e.to_string())).await.is_err() || closes {
                    return;
                }
                continue;
            }
        };
        if node.core.security.enabled()
            && let Some((perm, on)) = required(&request)
            && !user.as_deref().is_some_and(|u| {
                node.core.security.permits(
                    u,
                    perm,
                    on.as_ref().map(|(t, b)| (t.as_str(), b.as_str())),
                )
            })
        {
            let refused = Response::error(format!("Permission denied: {} needed", perm.name()));
            if conn.send(refused).await.is_err() {
                return;
            }
            continue;
        }
        let result = handle(&node, request, &mut client_id, &mut conn).await;
        let sent = match result {
            Ok(Some(response)) => conn.send(response).await,
            Ok(None) => Ok(()),
            Err(e) => conn.send(Response::error(e.message)).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// What a request needs with security on: a permission on a (type,
/// bucket), on a type (bucket empty) or on the node; `None`: nothing.
fn required(request: &Request) -> Option<(Perm, Option<(String, String)>)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let ns = |t: &Option<Vec<u8>>, b: &[u8]| {
        Some((
            t.as_deref().map_or_else(|| "default".to_string(), text),
            text(b),
        ))
    };
    Some(match request {
        Request::Get(r) => (Perm::Read, ns(&r.r#type, &r.bucket)),
        Request::Put(r) => (Perm::Write, ns(&r.r#type, &r.bucket)),
        Request::Del(r) => (Perm::Delete, ns(&r.r#type, &r.bucket)),
        Request::ListBuckets(r) => (Perm::List, ns(&r.r#type, b"")),
        Request::ListKeys(r) => (Perm::List, ns(&r.r#type, &r.bucket)),
        Request::GetBucket(r) => (Perm::Read, ns(&r.r#type, &r.bucket)),
        Request::GetBucketType(r) => (Perm::Read, Some((text(&r.r#type), String::new()))),
        Request::GetBucketKeyPreflist(r) => (Perm::Read, ns(&r.r#type, &r.bucket)),
        Request::CounterUpdate(r) => (Perm::Write, ns(&None, &r.bucket)),
        Request::CounterGet(r) => (Perm::Read, ns(&None, &r.bucket)),
        Request::SetBucket(_) | Request::ResetBucket(_) | Request::SetBucketType(_) => {
            (Perm::Admin, None)
        }
        _ => return None,
    })
}

fn namespace(bucket_type: Option<Vec<u8>>, bucket: Vec<u8>) -> Namespace {
    Namespace::new(
        bucket_type.unwrap_or_else(|| dynakv_buckets::DEFAULT.to_vec()),
        bucket,
    )
}

/// A request's quorum fields as the HTTP API's query parameters.
fn params(fields: &[(&str, Option<u32>)], timeout: Option<u32>) -> HashMap<String, String> {
    let mut p = HashMap::new();
    for (name, value) in fields {
        if let Some(v) = value {
            let text = match PbQuorum::from_wire(*v) {
                PbQuorum::One => "one".to_string(),
                PbQuorum::Quorum => "quorum".to_string(),
                PbQuorum::All => "all".to_string(),
                PbQuorum::Default => "default".to_string(),
                PbQuorum::Exactly(k) => k.to_string(),
            };
            p.insert(name.to_string(), text);
        }
    }
    if let Some(t) = timeout {
        p.insert("timeout".into(), t.to_string());
    }
    p
}

fn vclock_of(key: &ContextSigner, vv: &VersionVector) -> Vec<u8> {
    CausalContext(vv.clone()).to_bytes(key)
}

fn context_from(key: &ContextSigner, vclock: Option<&[u8]>) -> Result<VersionVector, ApiError> {
    match vclock {
        None | Some([]) => Ok(VersionVector::new()),
        Some(bytes) => CausalContext::from_bytes(bytes, key)
            .map(|c| c.0)
            .map_err(|e| ApiError::bad_request(format!("bad vclock: {e}"))),
    }
}

fn content_of(v: &Version, head: bool) -> RpbContent {
    let meta = v.metadata();
    RpbContent {
        value: if head {
            Vec::new()
        } else {
            v.data.as_deref().unwrap_or_default().to_vec()
        },
        content_type: Some(v.content_type.clone().into_bytes()),
        charset: meta.charset.clone().map(String::into_bytes),
        content_encoding: meta.content_encoding.clone().map(String::into_bytes),
        vtag: Some(vtag(v).into_bytes()),
        links: meta
            .links
            .iter()
            .map(|l| RpbLink {
                bucket: Some(l.bucket.to_vec()),
                key: Some(l.key.to_vec()),
                tag: Some(l.tag.to_vec()),
            })
            .collect(),
        last_mod: Some((v.timestamp_ms / 1000) as u32),
        last_mod_usecs: Some(((v.timestamp_ms % 1000) * 1000) as u32),
        usermeta: meta
            .user
            .iter()
            .map(|(k, v)| RpbPair {
                key: k.clone().into_bytes(),
                value: Some(v.to_vec()),
            })
            .collect(),
        indexes: meta
            .indexes
            .iter()
            .map(|(k, v)| RpbPair {
                key: k.clone().into_bytes(),
                value: Some(v.to_vec()),
            })
            .collect(),
        deleted: v.is_tombstone().then_some(true),
    }
}

fn version_from(content: RpbContent) -> Version {
    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
    let meta = Metadata {
        charset: text(content.charset),
        content_encoding: text(content.content_encoding),
        user: content
            .usermeta
            .into_iter()
            .map(|p| {
                (
                    String::from_utf8_lossy(&p.key).into_owned(),
                    Bytes::from(p.value.unwrap_or_default()),
                )
            })
            .collect(),
        links: content
            .links
            .into_iter()
            .map(|l| Link {
                bucket: Bytes::from(l.bucket.unwrap_or_default()),
                key: Bytes::from(l.key.unwrap_or_default()),
                tag: Bytes::from(l.tag.unwrap_or_default()),
            })
            .collect(),
        indexes: content
            .indexes
            .into_iter()
            .map(|p| {
                (
                    String::from_utf8_lossy(&p.key).into_owned(),
                    Bytes::from(p.value.unwrap_or_default()),
                )
            })
            .collect(),
    };
    let content_type = text(content.content_type)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "application/octet-stream".into());
    Version::value(content.value, content_type, now_ms()).with_meta(meta)
}

fn get_resp(key: &ContextSigner, object: &Object, props: &Props, head: bool) -> RpbGetResp {
    RpbGetResp {
        content: visible(object, props)
            .into_iter()
            .map(|v| content_of(v, head))
            .collect(),
        vclock: (!object.is_empty()).then(|| vclock_of(key, &object.context())),
        unchanged: None,
    }
}

/// When a listing must end: `timeout` milliseconds from now, if given.
fn listing_deadline(timeout: Option<u32>) -> Option<tokio::time::Instant> {
    timeout
        .filter(|&ms| ms > 0)
        .map(|ms| tokio::time::Instant::now() + std::time::Duration::from_millis(u64::from(ms)))
}

fn error(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

async fn handle(
    node: &Arc<Node>,
    request: Request,
    client_id: &mut Vec<u8>,
    conn: &mut Conn,
) -> Result<Option<Response>, ApiError> {
    Ok(Some(match request {
        Request::Ping => Response::PingResp,
        Request::GetClientId => Response::GetClientIdResp(RpbGetClientIdResp {
            client_id: client_id.clone(),
        }),
        Request::SetClientId(r) => {
            *client_id = r.client_id;
            Response::SetClientIdResp
        }
        Request::GetServerInfo => Response::GetServerInfoResp(RpbGetServerInfoResp {
            node: Some(node.core.me().as_bytes().to_vec()),
            server_version: Some(RIAK_KV_VERSION.as_bytes().to_vec()),
        }),
        Request::Get(r) => {
            let ns = namespace(r.r#type, r.bucket);
            let stored = stored_key(&ns, &r.key)?;
            let signer = node.core.context_signer(&stored);
            let props = bucket_props(node, &ns)?;
            let opts = read_options(
                node,
                &props,
                &params(&[("r", r.r), ("pr", r.pr)], r.timeout),
            )?;
            let object = node.coordinator.coordinate_get(stored, opts).await?;
            if let Some(since) = r.if_modified
                && !object.is_empty()
                && vclock_of(&signer, &object.context()) == since
            {
                return Ok(Some(Response::GetResp(RpbGetResp {
                    unchanged: Some(true),
                    ..RpbGetResp::default()
                })));
            }
            let mut resp = get_resp(&signer, &object, &props, r.head.unwrap_or(false));
            if resp.content.is_empty() && !r.deletedvclock.unwrap_or(false) {
                resp.vclock = None;
            }
            Response::GetResp(resp)
        }
        Request::Put(r) => {
            let ns = namespace(r.r#type, r.bucket);
            let made = r.key.is_none();
            let key = r.key.unwrap_or_else(super::riak::object::new_key);
            let stored = stored_key(&ns, &key)?;
            let signer = node.core.context_signer(&stored);
            let props = bucket_props(node, &ns)?;
            let q = params(&[("w", r.w), ("dw", r.dw), ("pw", r.pw)], r.timeout);
            let opts = write_options(node, &props, &q)?;
            if r.content.value.len() > node.core.config.max_value_bytes {
                return Err(error(format!(
                    "the value is {} bytes; the limit is {} bytes",
                    r.content.value.len(),
                    node.core.config.max_value_bytes
                )));
            }
            let context = context_from(&signer, r.vclock.as_deref())?;
            if r.if_none_match.unwrap_or(false) || r.if_not_modified.unwrap_or(false) {
                let read = read_options(node, &props, &q)?;
                let current = node
                    .coordinator
                    .coordinate_get(stored.clone(), read)
                    .await?;
                if r.if_none_match.unwrap_or(false) && !visible(&current, &props).is_empty() {
                    return Err(error("match_found"));
                }
                if r.if_not_modified.unwrap_or(false) && current.context() != context {
                    return Err(error("modified"));
                }
            }
            let version = version_from(r.content);
            // As Riak: the vclock only with the body (or head) asked for.
            node.coordinator
                .coordinate_put(stored.clone(), context, version, opts)
                .await?;
            let mut resp = RpbPutResp {
                key: made.then_some(key),
                vclock: None,
                content: Vec::new(),
            };
            if r.return_body.unwrap_or(false) || r.return_head.unwrap_or(false) {
                let object = super::riak::object::read_back(node, stored, &props, &q).await?;
                let body = get_resp(&signer, &object, &props, !r.return_body.unwrap_or(false));
                resp.content = body.content;
                resp.vclock = body.vclock;
            }
            Response::PutResp(resp)
        }
        Request::Del(r) => {
            let ns = namespace(r.r#type, r.bucket);
            let stored = stored_key(&ns, &r.key)?;
            let signer = node.core.context_signer(&stored);
            let props = bucket_props(node, &ns)?;
            let q = params(
                &[
                    ("rw", r.rw),
                    ("r", r.r),
                    ("w", r.w),
                    ("pr", r.pr),
                    ("pw", r.pw),
                    ("dw", r.dw),
                ],
                r.timeout,
            );
            let opts = write_options(node, &props, &q)?;
            let context = match r.vclock.as_deref() {
                Some(v) if !v.is_empty() => context_from(&signer, Some(v))?,
                _ => {
                    let read = read_options(node, &props, &q)?;
                    let current = node
                        .coordinator
                        .coordinate_get(stored.clone(), read)
                        .await?;
                    if visible(&current, &props).is_empty() {
                        return Ok(Some(Response::DelResp));
                    }
                    current.context()
                }
            };
            node.coordinator
                .coordinate_put(stored, context, Version::tombstone(now_ms()), opts)
                .await?;
            Response::DelResp
        }
        Request::ListKeys(r) => {
            let ns = namespace(r.r#type, r.bucket);
            ns.validate().map_err(error)?;
            let props = bucket_props(node, &ns)?;
            let default = ns.is_default_bucket();
            let mut rx = node.coordinator.list_keys(ns.key_prefix(), props.n_val);
            let deadline = listing_deadline(r.timeout);
            while let Some(batch) = next_batch(&mut rx, deadline).await {
                let keys: Vec<Vec<u8>> = batch
                    .map_err(error)?
                    .iter()
                    .map(|k| decode_key(k))
                    .filter(|k| !default || k.is_default_bucket())
                    .map(|k| k.key.to_vec())
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                send(
                    conn,
                    Response::ListKeysResp(RpbListKeysResp { keys, done: None }),
                )
                .await?;
            }
            Response::ListKeysResp(RpbListKeysResp {
                keys: Vec::new(),
                done: Some(true),
            })
        }
        Request::ListBuckets(r) => {
            let bucket_type = r.r#type.unwrap_or_else(|| dynakv_buckets::DEFAULT.to_vec());
            node.core
                .buckets
                .usable(&bucket_type)
                .map_err(super::riak::metadata_error)?;
            let prefix = dynakv_buckets::type_prefix(&bucket_type);
            let stream = r.stream.unwrap_or(false);
            let mut rx = node.coordinator.list_keys(prefix, node.core.buckets.n());
            let deadline = listing_deadline(r.timeout);
            let mut seen = std::collections::BTreeSet::new();
            let mut all = Vec::new();
            while let Some(batch) = next_batch(&mut rx, deadline).await {
                let fresh: Vec<Vec<u8>> = batch
                    .map_err(error)?
                    .iter()
                    .map(|k| decode_key(k))
                    .filter(|k| k.bucket_type == bucket_type.as_slice())
                    .filter(|k| seen.insert(k.bucket.to_vec()))
                    .map(|k| k.bucket.to_vec())
                    .collect();
                if stream && !fresh.is_empty() {
                    send(
                        conn,
                        Response::ListBucketsResp(RpbListBucketsResp {
                            buckets: fresh,
                            done: None,
                        }),
                    )
                    .await?;
                } else {
                    all.extend(fresh);
                }
            }
            Response::ListBucketsResp(RpbListBucketsResp {
                buckets: all,
                done: Some(true),
            })
        }
        Request::GetBucket(r) => {
            let ns = namespace(r.r#type, r.bucket);
            let props = bucket_props(node, &ns)?;
            Response::GetBucketResp(RpbGetBucketResp {
                props: props_to_pb(&props),
            })
        }
        Request::SetBucket(r) => {
            let ns = namespace(r.r#type, r.bucket);
            let overlay = props_from_pb(&r.props);
            change_metadata(node, |m, stamp, n| m.set_bucket(&ns, &overlay, n, stamp)).await?;
            Response::SetBucketResp
        }
        Request::ResetBucket(r) => {
            let ns = namespace(r.r#type, r.bucket);
            change_metadata(node, |m, stamp, _| m.reset_bucket(&ns, stamp)).await?;
            Response::ResetBucketResp
        }
        Request::GetBucketType(r) => {
            let props = node
                .core
                .buckets
                .type_props(&r.r#type)
                .map_err(super::riak::metadata_error)?;
            Response::GetBucketResp(RpbGetBucketResp {
                props: props_to_pb(&props),
            })
        }
        Request::SetBucketType(r) => {
            let overlay = props_from_pb(&r.props);
            change_metadata(node, |m, stamp, n| {
                m.update_type(&r.r#type, &overlay, n, stamp)
            })
            .await?;
            Response::SetBucketResp
        }
        Request::GetBucketKeyPreflist(r) => {
            let ns = namespace(r.r#type, r.bucket);
            let preflist = super::riak::object::preflist(node, &ns, &r.key)?
                .into_iter()
                .map(|(partition, name, primary)| RpbBucketKeyPreflistItem {
                    partition,
                    node: name.into_bytes(),
                    primary,
                })
                .collect();
            Response::GetBucketKeyPreflistResp(RpbGetBucketKeyPreflistResp { preflist })
        }
        Request::CounterUpdate(r) => {
            let ns = namespace(None, r.bucket);
            let q = params(&[("w", r.w), ("dw", r.dw), ("pw", r.pw)], None);
            let value = super::riak::counter::update(
                node,
                &ns,
                &r.key,
                r.amount,
                &q,
                r.returnvalue.unwrap_or(false),
            )
            .await?;
            Response::CounterUpdateResp(RpbCounterUpdateResp { value })
        }
        Request::CounterGet(r) => {
            let ns = namespace(None, r.bucket);
            let q = params(&[("r", r.r), ("pr", r.pr)], None);
            let value = super::riak::counter::get(node, &ns, &r.key, &q).await?;
            Response::CounterGetResp(RpbCounterGetResp { value })
        }
        Request::Other { code } => {
            return Err(error(format!(
                "{} is not supported",
                dynakv_riakpb::codes::name(code).unwrap_or("this request")
            )));
        }
    }))
}

async fn send(conn: &mut Conn, response: Response) -> Result<(), ApiError> {
    conn.send(response)
        .await
        .map_err(|e| error(format!("the client went away: {e}")))
}

fn quorum_to_pb(q: QuorumProp) -> u32 {
    match q {
        QuorumProp::One => PbQuorum::One.to_wire(),
        QuorumProp::Quorum => PbQuorum::Quorum.to_wire(),
        QuorumProp::All => PbQuorum::All.to_wire(),
        QuorumProp::Default => PbQuorum::Default.to_wire(),
        QuorumProp::Count(k) => k,
    }
}

fn quorum_json(v: u32) -> Value {
    match PbQuorum::from_wire(v) {
        PbQuorum::One => json!("one"),
        PbQuorum::Quorum => json!("quorum"),
        PbQuorum::All => json!("all"),
        PbQuorum::Default => json!("default"),
        PbQuorum::Exactly(k) => json!(k),
    }
}

fn props_to_pb(p: &Props) -> RpbBucketProps {
    let modfun = |m: &str, f: &str| {
        Some(RpbModFun {
            module: m.as_bytes().to_vec(),
            function: f.as_bytes().to_vec(),
        })
    };
    RpbBucketProps {
        n_val: Some(p.n_val as u32),
        allow_mult: Some(p.allow_mult),
        last_write_wins: Some(p.last_write_wins),
        has_precommit: Some(false),
        has_postcommit: Some(false),
        chash_keyfun: modfun("riak_core_util", "chash_std_keyfun"),
        linkfun: modfun("riak_kv_wm_link_walker", "mapreduce_linkfun"),
        old_vclock: Some(86400),
        young_vclock: Some(20),
        big_vclock: Some(50),
        small_vclock: Some(50),
        pr: Some(quorum_to_pb(p.pr)),
        r: Some(quorum_to_pb(p.r)),
        w: Some(quorum_to_pb(p.w)),
        pw: Some(quorum_to_pb(p.pw)),
        dw: Some(quorum_to_pb(p.dw)),
        rw: Some(quorum_to_pb(p.rw)),
        basic_quorum: Some(p.basic_quorum),
        notfound_ok: Some(p.notfound_ok),
        datatype: p.datatype.clone().map(String::into_bytes),
        consistent: Some(false),
        write_once: Some(p.write_once),
        ..RpbBucketProps::default()
    }
}

/// The properties a client set, as an overlay (only the fields present).
fn props_from_pb(p: &RpbBucketProps) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("n_val", p.n_val.map(|v| json!(v)));
    put("allow_mult", p.allow_mult.map(|v| json!(v)));
    put("last_write_wins", p.last_write_wins.map(|v| json!(v)));
    put("write_once", p.write_once.map(|v| json!(v)));
    put("basic_quorum", p.basic_quorum.map(|v| json!(v)));
    put("notfound_ok", p.notfound_ok.map(|v| json!(v)));
    for (name, value) in [
        ("r", p.r),
        ("w", p.w),
        ("pr", p.pr),
        ("pw", p.pw),
        ("dw", p.dw),
        ("rw", p.rw),
    ] {
        put(name, value.map(quorum_json));
    }
    put(
        "datatype",
        p.datatype
            .as_ref()
            .map(|d| json!(String::from_utf8_lossy(d))),
    );
    put("consistent", p.consistent.filter(|c| *c).map(|c| json!(c)));
    for (name, value) in [
        ("old_vclock", p.old_vclock),
        ("young_vclock", p.young_vclock),
        ("big_vclock", p.big_vclock),
        ("small_vclock", p.small_vclock),
    ] {
        put(name, value.map(|v| json!(v)));
    }
    Value::Object(m)
}
