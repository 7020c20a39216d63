//! The admin endpoints: status, ring, plan, membership changes (leave,
//! remove), repair, faults, export and bulk ingest. Liveness, readiness and
//! metrics are in `ops.rs`.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use dynakv_membership::{MemberState, Status, claim};
use dynakv_ring::{Change, PARTITIONS, Ring, RingEvent};

use super::ApiError;
use crate::server::cluster::rpc::faults::FaultSpec;
use crate::server::node::Node;

/// Checks `Authorization: Bearer <admin_token>` when an admin token is set.
pub fn authorize(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &node.core.config.admin_token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| token_matches(g, expected))
        || super::security::is_admin_user(node, headers);
    if ok {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Compares a given token with the expected one in constant time: the
/// token must not leak through timing.
pub fn token_matches(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn config_json(node: &Node) -> Value {
    let mut c = serde_json::to_value(&node.core.config).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut c {
        map.insert(
            "cluster_secret_set".into(),
            json!(node.core.config.cluster_secret.is_some()),
        );
        map.insert(
            "admin_token_set".into(),
            json!(node.core.config.admin_token.is_some()),
        );
    }
    c
}

/// `GET /admin/status`: this node's view of itself and the cluster.
pub async fn status(State(node): State<Arc<Node>>) -> Json<Value> {
    let stats = node.core.storage.stats();
    let view = node.core.cluster.view();
    let snapshot = node.core.cluster.snapshot();
    let ring = &snapshot.placement;
    let members: Vec<Value> = view
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "rpc_addr": m.rpc_addr.to_string(),
                "http_addr": m.http_addr.to_string(),
                "zone": m.zone,
                "weight": m.weight,
                "status": m.status,
                "generation": m.generation,
                "heartbeat": m.heartbeat,
                "last_heartbeat_ms_ago": m.last_heartbeat_ms_ago,
            })
        })
        .collect();
    let mut warnings = Vec::new();
    let in_ring = ring.nodes().len();
    if in_ring < node.core.config.n {
        warnings.push(format!(
            "the cluster has {in_ring} member(s), fewer than n = {}: every key is kept on every member and R and W are capped at {in_ring}",
            node.core.config.n
        ));
    }
    let pending = node.transfers.pending_in(&snapshot);
    let stamp = snapshot.stamp;
    let settling = node.core.cluster.settling();
    Json(json!({
        "node": node.core.identity.name,
        "actor": node.core.identity.actor.to_string(),
        "incarnation": format!("{:08x}", node.core.storage.incarnation().id()),
        "cluster_id": format!("{:016x}", node.core.cluster.cluster_id()),
        "state": format!("{:?}", node.core.cluster.own_state()).to_lowercase(),
        "members": members,
        "ownership": ring.ownership(),
        "ring_epoch": stamp.version,
        "ring_digest": format!("{:016x}", stamp.digest),
        "claimant": node.core.cluster.claimant(),
        "partitions_moving": ring.moving().count(),
        "ready": super::ops::ring_readiness(&node).is_ok(),
        "settled": settling.is_settled(),
        "settling": settling,
        "transfers_pending": pending.receive.len() + pending.send.len(),
        "transfers": node.transfers.views(),
        "keys": stats.keys,
        "hints_pending": stats.hints,
        "anti_entropy": node.ae.anti_entropy_status(),
        "workers": node.workers.statuses(),
        "warnings": warnings,
        "config": config_json(&node),
    }))
}

/// `GET /admin/ring`: every partition's token range and preference list
/// (replicas first, then fallbacks); with `?key=K`, just that key's.
pub async fn ring(
    State(node): State<Arc<Node>>,
    query: Result<Query<std::collections::HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    // The placement and the stamp printed with it are of one ring version.
    let snapshot = node.core.cluster.snapshot();
    let ring = &snapshot.placement;
    // Serving replicas, pending ones (receiving the partition), then fallbacks.
    let placement = |p: usize| {
        let serving: Vec<&str> = ring.replicas(p).collect();
        let pending: Vec<&str> = ring.pending(p).collect();
        let fallbacks: Vec<&str> = ring
            .preference_list(p)
            .filter(|n| !serving.contains(n) && !pending.contains(n))
            .collect();
        json!({"partition": p, "replicas": serving, "pending": pending, "fallbacks": fallbacks})
    };
    if let Some(key) = query.get("key") {
        let token = dynakv_ring::token(key.as_bytes());
        let mut out = placement(Ring::partition_of(token));
        out["key"] = json!(key);
        out["token"] = json!(format!("{token:016x}"));
        return Ok(Json(out));
    }
    let ranges: Vec<Value> = (0..PARTITIONS)
        .map(|p| {
            let range = Ring::range_of(p);
            let mut out = placement(p);
            out["start"] = json!(format!("{:016x}", range.start));
            out["end"] = json!(format!("{:016x}", range.end));
            out
        })
        .collect();
    let stamp = snapshot.stamp;
    Ok(Json(json!({
        "partitions": PARTITIONS,
        "n": ring.n(),
        "epoch": stamp.version,
        "digest": format!("{:016x}", stamp.digest),
        "ownership": ring.ownership(),
        "ranges": ranges,
    })))
}

/// `POST /admin/faults` (only with `--fault-injection`): drop node-to-node
/// traffic to and from named members; `{}` heals.
pub async fn faults(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    if !node.core.config.fault_injection {
        return Err(ApiError::not_found(
            "fault injection is disabled; start the node with --fault-injection",
        ));
    }
    let spec: FaultSpec = if body.iter().all(u8::is_ascii_whitespace) {
        FaultSpec::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("bad fault spec: {e}")))?
    };
    tracing::warn!(?spec, "fault injection changed");
    node.core.faults().set(spec.clone());
    Ok(Json(serde_json::to_value(spec).unwrap_or(Value::Null)))
}

/// `POST /admin/repair`: run one anti-entropy pass now, unthrottled.
pub async fn repair(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    let summary = node.ae.repair_pass(false).await;
    Ok(Json(serde_json::to_value(summary).unwrap_or(Value::Null)))
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        code,
        message: message.into(),
    }
}

/// Ring members that are not leaving or gone.
fn staying_members(node: &Node) -> Vec<String> {
    node.core
        .cluster
        .ring()
        .nodes()
        .iter()
        .filter(|n| {
            node.core
                .cluster
                .entry(&n.name)
                .is_some_and(|e| e.state == MemberState::Active)
        })
        .map(|n| n.name.clone())
        .collect()
}

/// `POST /admin/leave`: decommission this node. Its partitions are streamed to
/// their new replicas; then it reports `left` and stops.
pub async fn leave(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    let me = node.core.identity.name.clone();
    let state = node.core.cluster.own_state();
    if state == MemberState::Active {
        let ring = node.core.cluster.ring();
        if !ring.is_member(&me) {
            return Err(conflict(
                "not_a_member",
                format!("{me} has not joined the ring yet; stop it instead"),
            ));
        }
        let remaining = staying_members(&node).len().saturating_sub(1);
        if remaining < node.core.config.n {
            return Err(conflict(
                "too_few_members",
                format!(
                    "leaving would leave {remaining} member(s), fewer than n = {}: keys would lose replicas",
                    node.core.config.n
                ),
            ));
        }
        node.core.cluster.leave();
        node.core.persist_members().await;
        tracing::warn!("decommission requested: handing every partition off, then leaving");
    }
    let held = node.core.cluster.ring().partitions_of(&me).len();
    Ok(Json(json!({
        "node": me,
        "state": format!("{:?}", node.core.cluster.own_state()).to_lowercase(),
        "partitions_to_hand_off": held,
    })))
}

/// `POST /admin/remove/{name}`: drop a dead member for good; the survivors
/// restore full replication of its partitions from the remaining replicas.
pub async fn remove(
    State(node): State<Arc<Node>>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&node, &headers)?;
    let Path(name) = name.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Some(entry) = node.core.cluster.entry(&name) else {
        return Err(ApiError::not_found(format!("no member named {name:?}")));
    };
    if matches!(entry.state, MemberState::Left | MemberState::Removed) {
        return Err(conflict(
            "not_a_member",
            format!("{name} already left the cluster"),
        ));
    }
    if name == node.core.identity.name || node.core.cluster.status(&name) != Status::Down {
        return Err(conflict(
            "member_up",
            format!(
                "{name} is up; only a member that is down can be removed (use `dynakv leave` on a live node)"
            ),
        ));
    }
    let ring = node.core.cluster.ring();
    let orphaned: Vec<usize> = (0..PARTITIONS)
        .filter(|&p| {
            ring.replicas(p).any(|r| r == name)
                && !ring.replicas(p).any(|r| r != name && !node.core.is_down(r))
        })
        .collect();
    if !orphaned.is_empty() {
        return Err(conflict(
            "last_copy",
            format!(
                "{name} holds the only copy of {} partition(s) (e.g. {}) that no live replica can restore; bring a replica back first",
                orphaned.len(),
                orphaned[0]
            ),
        ));
    }
    if staying_members(&node).len().saturating_sub(1) == 0 {
        return Err(conflict("last_copy", "no member would remain"));
    }
    node.core.cluster.remove(&name);
    node.core.persist_members().await;
    tracing::warn!(member = %name, "member removed; restoring its replicas from the survivors");
    Ok(Json(json!({
        "removed": name,
        "partitions_to_restore": ring.partitions_of(&name).len(),
    })))
}

/// `GET /admin/plan?join=NAME[&weight=W][&zone=Z] | ?leave=NAME | ?remove=NAME`:
/// what the change would move, computed by the claimant's own rules, without
/// doing it.
pub async fn plan(
    State(node): State<Arc<Node>>,
    query: Result<Query<std::collections::HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    // The plan compares the ring after the change with the ring it is applied
    // to: both from one version.
    let snapshot = node.core.cluster.snapshot();
    let state = &snapshot.state;
    let members = state.members();
    let (change, event) = match (query.get("join"), query.get("leave"), query.get("remove")) {
        (Some(name), None, None) => {
            if members.contains_key(name) {
                return Err(conflict(
                    "already_member",
                    format!("{name} is already in the ring"),
                ));
            }
            let weight = match query.get("weight") {
                None => 1.0,
                Some(w) => match w.parse::<f64>() {
                    Ok(w) if w.is_finite() && w > 0.0 && w <= 100.0 => w,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "weight {w:?} must be in (0, 100]"
                        )));
                    }
                },
            };
            let zone = query.get("zone").filter(|z| !z.is_empty()).cloned();
            (
                format!("join {name}"),
                RingEvent {
                    name: name.clone(),
                    change: Change::Join { weight, zone },
                },
            )
        }
        (None, Some(name), None) | (None, None, Some(name)) => {
            if !members.contains_key(name) {
                return Err(ApiError::not_found(format!(
                    "no ring member named {name:?}"
                )));
            }
            let verb = if query.contains_key("leave") {
                "leave"
            } else {
                "remove"
            };
            (
                format!("{verb} {name}"),
                RingEvent {
                    name: name.clone(),
                    change: Change::Leave,
                },
            )
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of join=NAME (with optional weight and zone), leave=NAME or remove=NAME",
            ));
        }
    };
    let next = claim::apply(state, &[event], node.core.config.n);
    let after = next.ring(node.core.config.n);
    let before = &snapshot.placement;
    // Estimates from this node's own data: tokens are uniform, so every
    // partition holds about the same number of keys and bytes.
    let stats = node.core.storage.stats();
    let held = before.partitions_of(&node.core.identity.name).len().max(1) as f64;
    let keys_per_partition = stats.keys as f64 / held;
    let bytes_per_partition = (stats.sst_bytes + stats.memtable_bytes) as f64 / held;
    let mut moves = Vec::new();
    let mut flows: std::collections::BTreeMap<(String, String), usize> = Default::default();
    let mut per_node: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for (&p, transit) in &next.moving {
        let p = usize::from(p);
        let from: Vec<&str> = transit.from.iter().map(String::as_str).collect();
        let to: Vec<&str> = after.target_replicas(p).collect();
        let gained: Vec<&str> = to.iter().copied().filter(|t| !from.contains(t)).collect();
        let lost: Vec<&str> = from.iter().copied().filter(|f| !to.contains(f)).collect();
        // The sender a new replica would pick: one giving the partition up first.
        let sender = lost
            .iter()
            .chain(from.iter())
            .find(|f| !node.core.is_down(f))
            .copied()
            .unwrap_or("");
        for g in &gained {
            *flows
                .entry((sender.to_string(), g.to_string()))
                .or_default() += 1;
            per_node.entry(g.to_string()).or_default().0 += 1;
        }
        for l in &lost {
            per_node.entry(l.to_string()).or_default().1 += 1;
        }
        moves.push(json!({"partition": p, "from": from, "to": to, "gained": gained, "lost": lost}));
    }
    let transfers: Vec<Value> = flows
        .iter()
        .map(|((from, to), parts)| {
            json!({
                "from": from,
                "to": to,
                "partitions": parts,
                "estimated_keys": (*parts as f64 * keys_per_partition).round() as u64,
                "estimated_bytes": (*parts as f64 * bytes_per_partition).round() as u64,
            })
        })
        .collect();
    let nodes: Value = per_node
        .iter()
        .map(|(n, (g, l))| (n.clone(), json!({"gains": g, "loses": l})))
        .collect::<serde_json::Map<String, Value>>()
        .into();
    Ok(Json(json!({
        "change": change,
        "ring_epoch": state.version,
        "partitions_moving": next.moving.len(),
        "ownership_after": after.ownership(),
        "nodes": nodes,
        "transfers": transfers,
        "moves": moves,
    })))
}

/// `POST /admin/<unknown>`.
pub async fn unknown_admin(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> ApiError {
    if let Err(e) = authorize(&node, &headers) {
        return e;
    }
    ApiError::not_found(format!("no such admin endpoint: {}", uri.path()))
}

/// `GET /admin/export?partition=P`: the partition's keys with their live
/// siblings, as JSON Lines (`application/x-ndjson`), streamed from batches
/// of about 1 MiB of records, so memory holds one batch whatever the
/// partition's size. The last line is `{"done": true, "records": N}`: a
/// stream that ends without it was cut short. Each batch is read on its own
/// (not one snapshot of the whole partition): a key written meanwhile may be
/// in it or not. This node must serve the partition.
pub async fn export(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    query: Result<Query<std::collections::HashMap<String, String>>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    // It reads whole partitions: the admin token guards it like any write.
    authorize(&node, &headers)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let partition = query
        .get("partition")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|&p| p < PARTITIONS)
        .ok_or_else(|| ApiError::bad_request(format!("partition must be 0..{}", PARTITIONS - 1)))?;
    if !node
        .core
        .cluster
        .ring()
        .replicas(partition)
        .any(|r| r == node.core.identity.name)
    {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "not_a_replica",
            message: format!(
                "{} does not serve partition {partition}",
                node.core.identity.name
            ),
        });
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut after: Option<Vec<u8>> = None;
        let mut records = 0u64;
        loop {
            let from = after.clone();
            let scanned = node
                .core
                .blocking(move |n| {
                    n.storage
                        .scan_objects(Ring::range_of(partition), from.as_deref(), 1 << 20)
                })
                .await;
            let batch = match scanned {
                Ok(b) => b,
                Err(e) => {
                    let line = format!("{}\n", json!({"error": e.to_string()}));
                    let _ = tx.send(Ok(line.into())).await;
                    return;
                }
            };
            let mut chunk = Vec::with_capacity(1 << 20);
            for (key, object, _) in &batch.items {
                if let Some(record) = export_record(key, object) {
                    records += 1;
                    chunk.extend_from_slice(record.to_string().as_bytes());
                    chunk.push(b'\n');
                }
            }
            if batch.done {
                chunk.extend_from_slice(
                    format!("{}\n", json!({"done": true, "records": records})).as_bytes(),
                );
            }
            // The client went away: stop reading.
            if tx.send(Ok(chunk.into())).await.is_err() || batch.done {
                return;
            }
            match batch.resume_after {
                Some(next) => after = Some(next),
                None => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = axum::body::Body::from_stream(stream);
    Ok(axum::response::IntoResponse::into_response((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )))
}

/// One exported key: its live siblings (none: not exported), and, for a
/// key of another bucket than the native API's, its bucket and type.
fn export_record(key: &[u8], object: &dynakv_versioning::Object) -> Option<Value> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let siblings: Vec<Value> = object
        .live()
        .into_iter()
        .filter_map(|v| {
            let data = v.data.as_ref()?;
            Some(json!({"value_base64": STANDARD.encode(data), "content_type": v.content_type}))
        })
        .collect();
    if siblings.is_empty() {
        return None;
    }
    let nk = dynakv_buckets::decode_key(key);
    let text = |field: &str, bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(s) => (field.to_string(), json!(s)),
        Err(_) => (format!("{field}_base64"), json!(STANDARD.encode(bytes))),
    };
    let mut record = serde_json::Map::new();
    let (k, v) = text("key", nk.key);
    record.insert(k, v);
    if !nk.is_default_bucket() {
        for (field, bytes) in [("type", nk.bucket_type), ("bucket", nk.bucket)] {
            let (k, v) = text(field, bytes);
            record.insert(k, v);
        }
    }
    let mut record = Value::Object(record);
    record["siblings"] = Value::Array(siblings);
    Some(record)
}

/// Largest body of `POST /admin/ingest` (a batch of partitions' records;
/// `dynakv load --sst` sends at most 32 MiB).
pub const INGEST_BODY_LIMIT: usize = 256 << 20;
/// Most records in one `POST /admin/ingest` (`dynakv load --sst` sends at
/// most 50,000).
const INGEST_MAX_RECORDS: usize = 65_536;

/// `POST /admin/ingest`: bulk-loads records (`dynakv load --sst`). The body
/// is a binary batch (`dynakv_client::records::IngestBatch`, content type
/// `application/x-dynakv-records`); this node must serve every key's
/// partition. Every replica ingests the records as SST files where its copy
/// of a partition is empty, and merges them elsewhere. Answers `{"keys",
/// "replicas": [{"node", "sst", "merged"}], "skipped": [{"node",
/// "reason"}]}`; a skipped replica gets its share from anti-entropy.
pub async fn ingest(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    use dynakv_client::records::{INGEST_BATCH_TYPE, MAX_KEY_BYTES, decode_ingest_batch};
    // The credential first: a body of up to 256 MiB is read only for a
    // caller that may send it.
    authorize(&node, &headers)?;
    let body = axum::body::to_bytes(body, INGEST_BODY_LIMIT)
        .await
        .map_err(|_| ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "body_too_large",
            message: format!("an ingest body is at most {INGEST_BODY_LIMIT} bytes"),
        })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != INGEST_BATCH_TYPE {
        return Err(ApiError::bad_request(format!(
            "the body is a batch of records of type {INGEST_BATCH_TYPE} (dynakv load --sst sends it)"
        )));
    }
    let raw = decode_ingest_batch(&body, INGEST_MAX_RECORDS).map_err(ApiError::bad_request)?;
    let mut records = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let bad = |what: &str| ApiError::bad_request(format!("record {}: {what}", i + 1));
        // The key as stored: a plain key of the default bucket, or a
        // namespaced one of a bucket type that exists and is active.
        let nk = dynakv_buckets::decode_key(r.key);
        if nk.key.is_empty() || nk.key.len() > MAX_KEY_BYTES {
            return Err(bad(&format!("a key is 1-{MAX_KEY_BYTES} bytes")));
        }
        if nk.is_default_bucket() && !dynakv_buckets::is_plain_key(r.key) {
            return Err(bad(
                "a key of the default bucket may not begin with a zero byte",
            ));
        }
        if !nk.is_default_bucket() {
            nk.namespace()
                .validate()
                .and_then(|()| {
                    node.core
                        .buckets
                        .usable(nk.bucket_type)
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| bad(&e))?;
        }
        if r.values.is_empty() {
            return Err(bad("no values"));
        }
        let values = r
            .values
            .into_iter()
            .map(|(value, content_type)| {
                if value.len() > node.core.config.max_value_bytes {
                    return Err(bad("a value is over max_value_bytes"));
                }
                if content_type.is_empty() || content_type.len() > 256 {
                    return Err(bad("a content_type is 1-256 characters"));
                }
                Ok((body.slice_ref(value), content_type.to_string()))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        records.push((body.slice_ref(r.key), values));
    }
    crate::server::replication::ingest::load(&node.core, records)
        .await
        .map(Json)
        .map_err(|e| match e {
            crate::server::replication::ingest::LoadError::NotReplica(m) => {
                conflict("not_a_replica", m)
            }
            crate::server::replication::ingest::LoadError::Invalid(m) => ApiError::bad_request(m),
            crate::server::replication::ingest::LoadError::Failed(message) => ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "storage_error",
                message,
            },
        })
}
