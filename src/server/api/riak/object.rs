//! Objects over Riak's HTTP API: `GET`, `PUT`/`POST` and `DELETE` of
//! `/buckets/B/keys/K` (and the typed and legacy forms).
//!
//! - The vclock (`X-Riak-Vclock`) is dynakv's causal context, in standard
//!   base64 (the bytes Protocol Buffers carry raw).
//! - Siblings answer `300 Multiple Choices` as `multipart/mixed`, one part per
//!   sibling with its own headers; `?vtag=` picks one.
//! - A bucket with `allow_mult = false` (or `last_write_wins`) shows only its
//!   newest version (by timestamp), as Riak resolves it.
//! - Metadata (`X-Riak-Meta-*`), links (`Link`) and index entries
//!   (`X-Riak-Index-*`) are stored with the value and returned with it.
//! - Conditional requests (`If-None-Match`, `If-Match`, `If-Modified-Since`,
//!   `If-Unmodified-Since`) compare against a quorum read made just before:
//!   like Riak's, they are checks, not transactions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dynakv_buckets::{Namespace, Props, encode_key, is_plain_key};
use dynakv_storage::clock::now_ms;
use dynakv_versioning::{
    CausalContext, ContextSigner, Link, Metadata, Object, Version, VersionVector,
};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rand::Rng;

use super::{ApiError, bucket_props};
pub(crate) use crate::server::api::kv::{body_error, too_large};
use crate::server::config::QuorumMode;
use crate::server::node::Node;
use crate::server::replication::coordinator::{Quorum, RequestOptions};

const VCLOCK: &str = "x-riak-vclock";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
const MAX_TIMEOUT_MS: u64 = 120_000;

type Params = HashMap<String, String>;

/// The stored key of `key` in `ns`, after checking both.
pub(crate) fn stored_key(ns: &Namespace, key: &[u8]) -> Result<bytes::Bytes, ApiError> {
    ns.validate().map_err(ApiError::bad_request)?;
    let max = crate::server::api::kv::MAX_KEY_BYTES;
    if key.is_empty() || key.len() > max {
        return Err(ApiError::bad_request(format!(
            "a key is 1 to {max} bytes, not {}",
            key.len()
        )));
    }
    if ns.is_default_bucket() && !is_plain_key(key) {
        return Err(ApiError::bad_request(
            "keys of the default bucket may not begin with a zero byte",
        ));
    }
    Ok(bytes::Bytes::from(encode_key(ns, key)))
}

/// The vclock header's value for a context.
pub(crate) fn vclock_value(key: &ContextSigner, vv: &VersionVector) -> HeaderValue {
    HeaderValue::from_str(&STANDARD.encode(CausalContext(vv.clone()).to_bytes(key)))
        .expect("base64 is always a valid header value")
}

/// The context in an `X-Riak-Vclock` header; a malformed one is a 400.
fn vclock(key: &ContextSigner, headers: &HeaderMap) -> Result<Option<VersionVector>, ApiError> {
    let Some(v) = headers.get(VCLOCK) else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| ApiError::bad_request("X-Riak-Vclock is not base64"))?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| ApiError::bad_request("X-Riak-Vclock is not base64"))?;
    CausalContext::from_bytes(&bytes, key)
        .map(|c| Some(c.0))
        .map_err(|e| ApiError::bad_request(format!("X-Riak-Vclock rejected: {e}")))
}

/// One quorum parameter: the request's, else the bucket's, else the node's.
fn quorum_param(
    query: &Params,
    name: &str,
    prop: dynakv_buckets::QuorumProp,
    n_val: usize,
    node_default: usize,
) -> Result<usize, ApiError> {
    let asked = match query.get(name) {
        Some(v) => dynakv_buckets::QuorumProp::parse_str(v)
            .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))?,
        None => dynakv_buckets::QuorumProp::Default,
    };
    let q = if asked == dynakv_buckets::QuorumProp::Default {
        prop
    } else {
        asked
    };
    Ok(q.count(n_val, node_default))
}

fn timeout(node: &Node, query: &Params) -> Result<Duration, ApiError> {
    match query.get("timeout") {
        None => Ok(Duration::from_millis(node.core.config.request_timeout_ms)),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => Ok(Duration::from_millis(ms)),
            _ => Err(ApiError::bad_request(format!(
                "timeout must be 1..{MAX_TIMEOUT_MS} ms, not {v:?}"
            ))),
        },
    }
}

fn mode(props: &Props, primaries: usize) -> QuorumMode {
    if primaries > 0 || props.quorum == dynakv_buckets::QuorumMode::Strict {
        QuorumMode::Strict
    } else {
        QuorumMode::Sloppy
    }
}

/// Read options: `r` (and `pr`, which makes the read count only the key's
/// own replicas), from the request, the bucket, then the node.
pub(crate) fn read_options(
    node: &Node,
    props: &Props,
    query: &Params,
) -> Result<RequestOptions, ApiError> {
    let c = &node.core.config;
    let r = quorum_param(query, "r", props.r, props.n_val, c.r)?;
    let pr = quorum_param(query, "pr", props.pr, props.n_val, 0)?;
    Ok(RequestOptions {
        quorum: Quorum::Exactly(r.max(pr).max(1)),
        mode: mode(props, pr),
        timeout: timeout(node, query)?,
        replace: false,
        increment: None,
    })
}

/// Write options: `w`, `dw` (at least), `pw` (strict), or for a delete `rw`.
pub(crate) fn write_options(
    node: &Node,
    props: &Props,
    query: &Params,
) -> Result<RequestOptions, ApiError> {
    let c = &node.core.config;
    let w = if query.contains_key("rw") {
        quorum_param(query, "rw", props.rw, props.n_val, c.w)?
    } else {
        quorum_param(query, "w", props.w, props.n_val, c.w)?
    };
    let dw = quorum_param(query, "dw", props.dw, props.n_val, c.w)?;
    let pw = quorum_param(query, "pw", props.pw, props.n_val, 0)?;
    Ok(RequestOptions {
        quorum: Quorum::Exactly(w.max(dw).max(pw).max(1)),
        mode: mode(props, pw),
        timeout: timeout(node, query)?,
        replace: props.replaces_on_write(),
        increment: None,
    })
}

/// The versions a read shows: every live sibling, or, in a bucket that
/// resolves siblings, the newest version (none if it is a tombstone).
pub(crate) fn visible<'a>(object: &'a Object, props: &Props) -> Vec<&'a Version> {
    if props.resolves_siblings() {
        return object
            .newest()
            .filter(|v| !v.is_tombstone())
            .into_iter()
            .collect();
    }
    object.live()
}

/// A version's tag: the same on every replica, different for different
/// versions (a hash of what it holds).
pub(crate) fn vtag(v: &Version) -> String {
    let mut buf = Vec::new();
    buf.extend_from_slice(&v.timestamp_ms.to_be_bytes());
    buf.extend_from_slice(v.content_type.as_bytes());
    buf.push(0);
    buf.extend_from_slice(v.data.as_deref().unwrap_or_default());
    buf.extend_from_slice(&dynakv_storage::codec::encode(&v.meta));
    let h = xxhash_rust::xxh3::xxh3_128(&buf);
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = h;
    let mut out = Vec::with_capacity(22);
    for _ in 0..22 {
        out.push(alphabet[(n % 62) as usize]);
        n /= 62;
    }
    String::from_utf8(out).expect("ascii")
}

fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

fn parse_date(headers: &HeaderMap, name: HeaderName) -> Option<u64> {
    let v = headers.get(name)?.to_str().ok()?;
    let t: SystemTime = httpdate::parse_http_date(v).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
}

fn path_of(ns: &Namespace, key: Option<&[u8]>) -> String {
    let enc =
        |b: &[u8]| utf8_percent_encode(&String::from_utf8_lossy(b), NON_ALPHANUMERIC).to_string();
    let mut p = if ns.bucket_type == dynakv_buckets::DEFAULT {
        format!("/buckets/{}", enc(&ns.bucket))
    } else {
        format!(
            "/types/{}/buckets/{}",
            enc(&ns.bucket_type),
            enc(&ns.bucket)
        )
    };
    if let Some(k) = key {
        p.push_str("/keys/");
        p.push_str(&enc(k));
    }
    p
}

/// The headers of one version (a response's, or one part of a multipart body).
fn version_headers(ns: &Namespace, v: &Version) -> Vec<(String, String)> {
    let meta = v.metadata();
    let mut h = Vec::new();
    let ct = match &meta.charset {
        Some(cs) => format!("{}; charset={cs}", v.content_type),
        None => v.content_type.clone(),
    };
    h.push(("Content-Type".into(), ct));
    if let Some(e) = &meta.content_encoding {
        h.push(("Content-Encoding".into(), e.clone()));
    }
    h.push(("ETag".into(), format!("\"{}\"", vtag(v))));
    h.push(("Last-Modified".into(), http_date(v.timestamp_ms)));
    let mut links = vec![format!("<{}>; rel=\"up\"", path_of(ns, None))];
    for l in &meta.links {
        let target = Namespace::new(ns.bucket_type.clone(), l.bucket.to_vec());
        links.push(format!(
            "<{}>; riaktag=\"{}\"",
            path_of(&target, Some(&l.key)),
            utf8_percent_encode(&String::from_utf8_lossy(&l.tag), NON_ALPHANUMERIC)
        ));
    }
    h.push(("Link".into(), links.join(", ")));
    for (name, value) in &meta.user {
        h.push((
            format!("X-Riak-Meta-{name}"),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    let mut indexes: Vec<(&String, Vec<String>)> = Vec::new();
    for (name, value) in &meta.indexes {
        let value = String::from_utf8_lossy(value).into_owned();
        match indexes.iter_mut().find(|(n, _)| *n == name) {
            Some((_, vs)) => vs.push(value),
            None => indexes.push((name, vec![value])),
        }
    }
    for (name, values) in indexes {
        h.push((format!("X-Riak-Index-{name}"), values.join(", ")));
    }
    if v.is_tombstone() {
        h.push(("X-Riak-Deleted".into(), "true".into()));
    }
    h
}

fn with_headers(mut resp: Response, headers: Vec<(String, String)>) -> Response {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

/// The answer to a read (or a write with `returnbody`) of `object`.
fn render(
    key: &ContextSigner,
    ns: &Namespace,
    object: &Object,
    props: &Props,
    query: &Params,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let ctx = object.context();
    let mut versions = visible(object, props);
    if let Some(tag) = query.get("vtag") {
        versions.retain(|v| vtag(v) == *tag);
    }
    let mut resp = if versions.is_empty() {
        let mut r = ApiError::not_found("not found").into_response();
        if object.values().next().is_some() {
            r.headers_mut()
                .insert("x-riak-deleted", HeaderValue::from_static("true"));
        }
        r
    } else if versions.len() == 1 {
        let v = versions[0];
        if let Some(status) = not_modified(v, headers) {
            status.into_response()
        } else {
            let body = if head {
                Bytes::new()
            } else {
                v.data.clone().unwrap_or_default()
            };
            with_headers(
                (StatusCode::OK, body).into_response(),
                version_headers(ns, v),
            )
        }
    } else {
        siblings(ns, &versions, headers)
    };
    if !object.is_empty() {
        resp.headers_mut().insert(VCLOCK, vclock_value(key, &ctx));
    }
    resp.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    resp
}

/// `304` for a conditional GET the version satisfies.
fn not_modified(v: &Version, headers: &HeaderMap) -> Option<StatusCode> {
    let etag = format!("\"{}\"", vtag(v));
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        && inm
            .split(',')
            .any(|t| t.trim() == etag || t.trim() == etag.trim_matches('"'))
    {
        return Some(StatusCode::NOT_MODIFIED);
    }
    if let Some(since) = parse_date(headers, header::IF_MODIFIED_SINCE)
        && v.timestamp_ms / 1000 <= since / 1000
    {
        return Some(StatusCode::NOT_MODIFIED);
    }
    None
}

/// `300 Multiple Choices`: every sibling as one part of a `multipart/mixed`
/// body, or their tags as text when the client asks for `text/plain` only.
fn siblings(ns: &Namespace, versions: &[&Version], headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if accept.contains("text/plain")
        && !accept.contains("multipart/mixed")
        && !accept.contains("*/*")
    {
        let body: String = std::iter::once("Siblings:".to_string())
            .chain(versions.iter().map(|v| vtag(v)))
            .map(|l| l + "\n")
            .collect();
        return (
            StatusCode::MULTIPLE_CHOICES,
            [(header::CONTENT_TYPE, "text/plain")],
            body,
        )
            .into_response();
    }
    let boundary = format!("{:016x}", rand::rng().random::<u64>());
    let mut body = Vec::new();
    for v in versions {
        body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        // Only what would be a valid header (stored metadata may hold any
        // byte, and a line break would forge a header of the part).
        for (name, value) in version_headers(ns, v) {
            if HeaderName::from_bytes(name.as_bytes()).is_ok()
                && HeaderValue::from_str(&value).is_ok()
            {
                body.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(v.data.as_deref().unwrap_or_default());
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        StatusCode::MULTIPLE_CHOICES,
        [(
            header::CONTENT_TYPE,
            format!("multipart/mixed; boundary={boundary}"),
        )],
        body,
    )
        .into_response()
}

/// `GET` (or `HEAD`) of an object.
pub async fn get(
    node: &Arc<Node>,
    ns: Namespace,
    key: Vec<u8>,
    query: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let stored = stored_key(&ns, &key)?;
    let signer = node.core.context_signer(&stored);
    let props = bucket_props(node, &ns)?;
    let opts = read_options(node, &props, query)?;
    let object = node.coordinator.coordinate_get(stored, opts).await?;
    Ok(render(&signer, &ns, &object, &props, query, headers, false))
}

/// Reads `Link` headers (Riak's forms) into links.
fn parse_links(headers: &HeaderMap) -> Result<Vec<Link>, ApiError> {
    let mut links = Vec::new();
    for value in headers.get_all(header::LINK) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::bad_request("a Link header is not text"))?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((url, params)) = part.strip_prefix('<').and_then(|p| p.split_once('>')) else {
                return Err(ApiError::bad_request(format!(
                    "malformed Link header: {part}"
                )));
            };
            let Some(tag) = params
                .split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("riaktag="))
            else {
                continue; // rel="up" and other links are not stored
            };
            let segs: Vec<&str> = url.trim_matches('/').split('/').collect();
            let (bucket, key) = match segs.as_slice() {
                ["buckets", b, "keys", k]
                | ["types", _, "buckets", b, "keys", k]
                | ["riak", b, k] => (*b, *k),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "malformed Link target: {url}"
                    )));
                }
            };
            let dec = |s: &str| bytes::Bytes::from(percent_decode_str(s).collect::<Vec<u8>>());
            links.push(Link {
                bucket: dec(bucket),
                key: dec(key),
                tag: dec(tag.trim_matches('"')),
            });
        }
    }
    Ok(links)
}

/// The metadata a write's headers carry.
fn metadata(headers: &HeaderMap, charset: Option<String>) -> Result<Metadata, ApiError> {
    let mut meta = Metadata {
        charset,
        content_encoding: headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        links: parse_links(headers)?,
        ..Metadata::default()
    };
    for (name, value) in headers {
        let name = name.as_str();
        if let Some(m) = name.strip_prefix("x-riak-meta-") {
            meta.user.push((
                m.to_string(),
                bytes::Bytes::copy_from_slice(value.as_bytes()),
            ));
        } else if let Some(index) = name.strip_prefix("x-riak-index-") {
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request("an index value is not text"))?;
            for v in text.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                if index.ends_with("_int") && v.parse::<i64>().is_err() {
                    return Err(ApiError::bad_request(format!(
                        "index {index} takes integers, not {v:?}"
                    )));
                }
                if !index.ends_with("_int") && !index.ends_with("_bin") {
                    return Err(ApiError::bad_request(format!(
                        "index {index}: names end with _bin or _int"
                    )));
                }
                meta.indexes.push((
                    index.to_string(),
                    bytes::Bytes::copy_from_slice(v.as_bytes()),
                ));
            }
        }
    }
    Ok(meta)
}

/// Checks a write's preconditions against what a quorum read finds now.
async fn preconditions(
    node: &Arc<Node>,
    stored: &bytes::Bytes,
    props: &Props,
    query: &Params,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let im = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let ius = parse_date(headers, header::IF_UNMODIFIED_SINCE);
    if inm.is_none() && im.is_none() && ius.is_none() {
        return Ok(());
    }
    let opts = read_options(node, props, query)?;
    let current = node
        .coordinator
        .coordinate_get(stored.clone(), opts)
        .await?;
    let live = visible(&current, props);
    let failed = |m: &str| ApiError {
        status: StatusCode::PRECONDITION_FAILED,
        code: "precondition_failed",
        message: m.to_string(),
    };
    let tags: Vec<String> = live.iter().map(|v| format!("\"{}\"", vtag(v))).collect();
    let listed = |h: &str| {
        h.split(',').map(str::trim).any(|t| {
            t == "*" && !live.is_empty() || tags.iter().any(|g| g == t || g.trim_matches('"') == t)
        })
    };
    if let Some(h) = inm
        && listed(h)
    {
        return Err(failed("match_found"));
    }
    if let Some(h) = im
        && !listed(h)
    {
        return Err(failed("modified"));
    }
    if let Some(since) = ius
        && live.iter().any(|v| v.timestamp_ms / 1000 > since / 1000)
    {
        return Err(failed("modified"));
    }
    Ok(())
}

/// `PUT`/`POST` of an object (`key` none: a `POST` to the bucket, which
/// makes a key and answers `201` with its `Location`).
pub async fn put(
    node: &Arc<Node>,
    ns: Namespace,
    key: Option<Vec<u8>>,
    query: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let made = key.is_none();
    let key = key.unwrap_or_else(new_key);
    let stored = stored_key(&ns, &key)?;
    let signer = node.core.context_signer(&stored);
    let props = bucket_props(node, &ns)?;
    let opts = write_options(node, &props, query)?;
    if body.len() > node.core.config.max_value_bytes {
        return Err(too_large(node, body.len()));
    }
    let (content_type, charset) = match headers.get(header::CONTENT_TYPE) {
        None => (DEFAULT_CONTENT_TYPE.to_string(), None),
        Some(v) => {
            let text = v
                .to_str()
                .ok()
                .filter(|s| !s.is_empty() && s.len() <= 256)
                .ok_or_else(|| {
                    ApiError::bad_request("Content-Type must be 1-256 visible ASCII characters")
                })?;
            let mut parts = text.split(';').map(str::trim);
            let ct = parts.next().unwrap_or_default().to_string();
            let cs = parts
                .find_map(|p| p.strip_prefix("charset="))
                .map(|c| c.trim_matches('"').to_string());
            (ct, cs)
        }
    };
    let meta = metadata(headers, charset)?;
    let context = vclock(&signer, headers)?.unwrap_or_default();
    preconditions(node, &stored, &props, query, headers).await?;
    let version = Version::value(body, content_type, now_ms()).with_meta(meta);
    // As Riak: the vclock comes with the body only. Without it, the context
    // of the object as the coordinator holds it would cover siblings the
    // client never saw, and writing back with it would replace them.
    node.coordinator
        .coordinate_put(stored.clone(), context, version, opts)
        .await?;
    let location = path_of(&ns, Some(&key));
    let returnbody = query.get("returnbody").is_some_and(|v| v == "true");
    let mut resp = if returnbody {
        let object = read_back(node, stored, &props, query).await?;
        let mut r = render(&signer, &ns, &object, &props, query, headers, false);
        if made && r.status() == StatusCode::OK {
            *r.status_mut() = StatusCode::CREATED;
        }
        r
    } else if made {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    if made && let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The object after a write, for `returnbody`: the coordinator's copy when
/// this node coordinated the write; otherwise a read at the bucket's R.
pub(crate) async fn read_back(
    node: &Arc<Node>,
    stored: bytes::Bytes,
    props: &Props,
    query: &Params,
) -> Result<Object, ApiError> {
    match node.coordinator.local_copy(&stored) {
        Some(o) => Ok(o),
        None => {
            let read = read_options(node, props, query)?;
            Ok(node.coordinator.coordinate_get(stored, read).await?)
        }
    }
}

/// The preference list of `key` in `ns`: (partition, node, primary) for
/// each of its `n_val` replicas; a replica is primary while it is up.
pub(crate) fn preflist(
    node: &Node,
    ns: &Namespace,
    key: &[u8],
) -> Result<Vec<(i64, String, bool)>, ApiError> {
    let stored = stored_key(ns, key)?;
    let props = bucket_props(node, ns)?;
    let ring = node.core.cluster.ring();
    let partition = dynakv_ring::Ring::partition_of(dynakv_ring::token(&stored));
    Ok(ring
        .replicas(partition)
        .take(props.n_val)
        .map(|name| (partition as i64, name.to_string(), !node.core.is_down(name)))
        .collect())
}

/// A key for a `POST` to a bucket: 20 random alphanumerics.
pub(crate) fn new_key() -> Vec<u8> {
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
        .collect()
}

/// `DELETE` of an object: a tombstone over what the vclock covers (without
/// one, over what a quorum read finds); `404` if nothing live was there.
pub async fn delete(
    node: &Arc<Node>,
    ns: Namespace,
    key: Vec<u8>,
    query: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let stored = stored_key(&ns, &key)?;
    let signer = node.core.context_signer(&stored);
    let props = bucket_props(node, &ns)?;
    let opts = write_options(node, &props, query)?;
    let context = match vclock(&signer, headers)? {
        Some(ctx) => ctx,
        None => {
            let read = read_options(node, &props, query)?;
            let current = node
                .coordinator
                .coordinate_get(stored.clone(), read)
                .await?;
            if visible(&current, &props).is_empty() {
                return Err(ApiError::not_found("not found"));
            }
            current.context()
        }
    };
    node.coordinator
        .coordinate_put(stored, context, Version::tombstone(now_ms()), opts)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
