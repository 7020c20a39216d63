//! Riak 1.4 counters: `GET` and `POST /buckets/B/counters/K`. A counter is a
//! PN-counter stored as the key's value (`dynakv_versioning::PnCounter`);
//! an increment is merged into the counter by the coordinating replica under
//! the key's lock, and concurrent increments through different nodes become
//! siblings whose merge counts them all. As in Riak, the bucket must keep
//! siblings (`allow_mult = true`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use bytes::Bytes;
use dynakv_buckets::{Namespace, Props};
use dynakv_storage::clock::now_ms;
use dynakv_versioning::{Object, PnCounter, Version};

use super::object::{read_options, stored_key, write_options};
use super::{ApiError, bucket_props};
use crate::server::node::Node;

type Params = HashMap<String, String>;

fn counter_bucket(node: &Node, ns: &Namespace) -> Result<Arc<Props>, ApiError> {
    let props = bucket_props(node, ns)?;
    if !props.allow_mult {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "allow_mult_required",
            message: "Counters require bucket property 'allow_mult=true'".into(),
        });
    }
    Ok(props)
}

/// The value of the counter in `object`: the merge of its live siblings
/// (`None` when it has none).
pub(crate) fn value_of(object: &Object) -> Option<i64> {
    let live = object.live();
    if live.is_empty() {
        return None;
    }
    let mut counter = PnCounter::default();
    for v in live {
        if let Some(c) = v.data.as_deref().and_then(PnCounter::decode) {
            counter.merge(&c);
        }
    }
    Some(counter.value())
}

/// Reads counter `key` of `ns`.
pub(crate) async fn get(
    node: &Arc<Node>,
    ns: &Namespace,
    key: &[u8],
    query: &Params,
) -> Result<Option<i64>, ApiError> {
    let stored = stored_key(ns, key)?;
    let props = counter_bucket(node, ns)?;
    let opts = read_options(node, &props, query)?;
    let object = node.coordinator.coordinate_get(stored, opts).await?;
    Ok(value_of(&object))
}

/// Adds `by` to counter `key` of `ns`; the new value when `returnvalue`.
pub(crate) async fn update(
    node: &Arc<Node>,
    ns: &Namespace,
    key: &[u8],
    by: i64,
    query: &Params,
    returnvalue: bool,
) -> Result<Option<i64>, ApiError> {
    let stored = stored_key(ns, key)?;
    let props = counter_bucket(node, ns)?;
    let mut opts = write_options(node, &props, query)?;
    opts.increment = Some(by);
    opts.replace = false;
    node.coordinator
        .coordinate_put(
            stored.clone(),
            Default::default(),
            Version::value(Bytes::new(), "", now_ms()),
            opts,
        )
        .await?;
    if !returnvalue {
        return Ok(None);
    }
    get(node, ns, key, query).await
}

/// Parses an increment (a signed integer as text).
pub(crate) fn parse_amount(body: &[u8]) -> Result<i64, ApiError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| ApiError::bad_request("a counter increment is an integer"))
}
