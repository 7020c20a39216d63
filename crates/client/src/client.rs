//! The asynchronous client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use parking_lot::Mutex;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use crate::object::Wire;
use crate::records::{INGEST_BATCH_TYPE, IngestBatch};
use crate::routing::Router;
use crate::{Context, Error, Object, Result, Sibling};

/// The causal context header.
pub const CONTEXT_HEADER: &str = "x-causal-context";

/// Header on an error answer that applied nothing and that another node may
/// serve (`503 not_ready`: the node has no ring yet; `503 ring_changing`):
/// even a write is sent again, to the next node.
pub const NOT_APPLIED_HEADER: &str = "x-dynakv-not-applied";

/// Characters left unencoded in a key's path segment: RFC 3986 unreserved.
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How long a ring read for routing is trusted before it is read again.
const ROUTER_TTL: Duration = Duration::from_secs(10);

/// How many times [`Client::modify`] reads, merges and writes before giving up.
pub const MODIFY_ATTEMPTS: usize = 5;

/// The URL of `key` on the node at `base`.
pub fn key_url(base: &str, key: &[u8]) -> String {
    format!(
        "{}/kv/{}",
        base.trim_end_matches('/'),
        percent_encode(key, KEY_SET)
    )
}

/// How many replicas must answer: `r` for reads, `w` for writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quorum {
    /// One replica.
    One,
    /// A majority of N.
    Majority,
    /// All N.
    All,
    /// Exactly this many.
    Exactly(usize),
}

impl Quorum {
    /// The number of replies this quorum needs with `n` replicas per key,
    /// capped at `replicas` (a cluster smaller than N keeps every key on
    /// every member, SPEC §3), and at least one.
    pub fn resolve(self, n: usize, replicas: usize) -> usize {
        let k = match self {
            Quorum::One => 1,
            Quorum::Majority => n / 2 + 1,
            Quorum::All => n,
            Quorum::Exactly(k) => k,
        };
        k.min(replicas).max(1)
    }
}

impl std::str::FromStr for Quorum {
    type Err = String;

    /// `one`, `quorum`, `all` or a count.
    fn from_str(s: &str) -> std::result::Result<Quorum, String> {
        match s {
            "one" => Ok(Quorum::One),
            "quorum" => Ok(Quorum::Majority),
            "all" => Ok(Quorum::All),
            _ => s
                .parse()
                .ok()
                .filter(|&k| k > 0)
                .map(Quorum::Exactly)
                .ok_or_else(|| format!("a quorum is one, quorum, all or a count, not {s:?}")),
        }
    }
}

impl std::fmt::Display for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quorum::One => f.write_str("one"),
            Quorum::Majority => f.write_str("quorum"),
            Quorum::All => f.write_str("all"),
            Quorum::Exactly(k) => write!(f, "{k}"),
        }
    }
}

/// Per-request settings; what is left out takes the node's defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// R for a read, W for a write or delete.
    pub quorum: Option<Quorum>,
    /// `Some(true)` for a strict quorum (only the key's own replicas count).
    pub strict: Option<bool>,
    /// How long the coordinating node waits for its quorum.
    pub timeout: Option<Duration>,
    /// The bucket type and bucket of the key, when not the native API's
    /// bucket (`default` of type `default`).
    pub bucket: Option<(Vec<u8>, Vec<u8>)>,
}

impl Options {
    /// Options with this quorum.
    pub fn quorum(quorum: Quorum) -> Options {
        Options {
            quorum: Some(quorum),
            ..Options::default()
        }
    }

    fn query(&self, name: &str) -> String {
        let mut parts = Vec::new();
        if let Some(q) = self.quorum {
            parts.push(format!("{name}={q}"));
        }
        if let Some(strict) = self.strict {
            parts.push(format!(
                "quorum={}",
                if strict { "strict" } else { "sloppy" }
            ));
        }
        if let Some(t) = self.timeout {
            parts.push(format!("timeout_ms={}", t.as_millis().max(1)));
        }
        if let Some((t, b)) = &self.bucket {
            parts.push(format!(
                "type={}&bucket={}",
                percent_encode(t, KEY_SET),
                percent_encode(b, KEY_SET)
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// Parses an export stream (JSON Lines, then `{"done": true, "records":
/// N}`); a stream without that last line was cut short, and is an error.
fn parse_export(body: &[u8]) -> std::result::Result<Vec<crate::Record>, String> {
    let mut records = Vec::new();
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = std::str::from_utf8(line).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if let Some(error) = v["error"].as_str() {
            return Err(format!("the node failed mid-export: {error}"));
        }
        if v["done"] == true {
            if v["records"].as_u64() != Some(records.len() as u64) {
                return Err(format!(
                    "{} records received, the node sent {}",
                    records.len(),
                    v["records"]
                ));
            }
            return Ok(records);
        }
        records.push(crate::Record::from_json(line)?);
    }
    Err("the export stream ended before its last line".into())
}

/// Builds a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    nodes: Vec<String>,
    timeout: Duration,
    route_to_replicas: bool,
    admin_token: Option<String>,
    connections: usize,
    ca_pem: Option<Vec<u8>>,
    basic_auth: Option<(String, String)>,
}

impl ClientBuilder {
    /// A client of these nodes (base URLs such as `http://127.0.0.1:8001`).
    pub fn new<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> ClientBuilder {
        ClientBuilder {
            nodes: nodes
                .into_iter()
                .map(|n| n.into().trim_end_matches('/').to_string())
                .collect(),
            timeout: Duration::from_secs(10),
            route_to_replicas: false,
            admin_token: None,
            connections: 16,
            ca_pem: None,
            basic_auth: None,
        }
    }

    /// A user and password every request carries (HTTP Basic), for a
    /// cluster with security enabled.
    pub fn basic_auth(mut self, credentials: Option<(String, String)>) -> Self {
        self.basic_auth = credentials;
        self
    }

    /// The CA (PEM) that `https://` nodes' certificates must be signed by
    /// (`dynakv certs init` makes one). Without it, an `https://` node is
    /// trusted by nothing and every request to it fails.
    pub fn ca_pem(mut self, pem: Option<Vec<u8>>) -> Self {
        self.ca_pem = pem;
        self
    }

    /// How long one HTTP exchange may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends each request to one of its key's replicas, read from the
    /// cluster's ring (refreshed every 10 s), instead of rotating over the
    /// given nodes. Falls back to rotating when the ring cannot be read.
    pub fn route_to_replicas(mut self, yes: bool) -> Self {
        self.route_to_replicas = yes;
        self
    }

    /// The bearer token admin requests carry.
    pub fn admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token;
        self
    }

    /// Idle connections kept per node (default 16; a load generator wants
    /// one per concurrent client).
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n;
        self
    }

    /// The asynchronous client.
    pub fn build(self) -> Result<Client> {
        if self.nodes.is_empty() {
            return Err(Error::BadRequest {
                status: 0,
                message: "a client needs at least one node URL".into(),
            });
        }
        let mut http = reqwest::Client::builder();
        if let Some(pem) = &self.ca_pem {
            for cert in
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::BadRequest {
                    status: 0,
                    message: format!("the CA file: {e}"),
                })?
            {
                http = http.add_root_certificate(cert);
            }
        }
        if let Some((user, password)) = &self.basic_auth {
            let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                AUTHORIZATION,
                value.parse().map_err(|_| Error::BadRequest {
                    status: 0,
                    message: "the user or password cannot travel in a header".into(),
                })?,
            );
            http = http.default_headers(headers);
        }
        let http = http
            .timeout(self.timeout)
            .pool_max_idle_per_host(self.connections)
            // Nodes close a connection idle for 15 s: drop ours first, so a
            // request never goes out on one the node is closing.
            .pool_idle_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::InvalidResponse(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                nodes: self.nodes,
                route_to_replicas: self.route_to_replicas,
                admin_token: self.admin_token,
                router: Mutex::new(None),
                turn: AtomicUsize::new(0),
            }),
        })
    }

    /// The blocking facade, for scripts and tests (not for use inside an
    /// async runtime).
    pub fn build_blocking(self) -> Result<crate::blocking::Client> {
        crate::blocking::Client::new(self)
    }
}

/// An asynchronous dynakv client; cheap to clone (clones share connections).
///
/// **Retries.** A request that could not be sent (no connection) moves on to
/// the next node: for reads and writes alike, since nothing was sent. A read
/// also moves on after a timeout or a 5xx answer, since reading twice is
/// harmless. A write or delete that was sent is never resent: after a timeout,
/// a lost connection or a `503`, it may have been stored, and sending it again
/// would store it twice (as two siblings), unless the node said it applied
/// nothing ([`NOT_APPLIED_HEADER`]: a node with no ring yet, replicas
/// changing), which moves any request on. The error says which
/// ([`Error::is_retryable`]); the caller decides.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    nodes: Vec<String>,
    route_to_replicas: bool,
    admin_token: Option<String>,
    /// The routing table and when it was read (`None`: the last read failed).
    router: Mutex<Option<(Option<Arc<Router>>, Instant)>>,
    turn: AtomicUsize,
}

impl Client {
    /// The nodes this client was given.
    pub fn nodes(&self) -> &[String] {
        &self.inner.nodes
    }

    /// Reads `key` with the node's default R.
    pub async fn get(&self, key: &[u8]) -> Result<Object> {
        self.get_with(key, &Options::default()).await
    }

    /// Reads `key`: its live siblings and their context, or
    /// [`Error::NotFound`].
    pub async fn get_with(&self, key: &[u8], opts: &Options) -> Result<Object> {
        let query = opts.query("r");
        let http = &self.inner.http;
        let resp = self
            .send(Some(key), true, |base| {
                http.get(format!("{}{query}", key_url(base, key)))
                    .header(ACCEPT, "application/json")
            })
            .await?;
        let (status, context, body) = read_answer(resp).await?;
        match status {
            StatusCode::OK | StatusCode::MULTIPLE_CHOICES => {
                let wire: Wire = serde_json::from_slice(&body)
                    .map_err(|e| Error::InvalidResponse(format!("a read's JSON: {e}")))?;
                let siblings = wire
                    .siblings
                    .into_iter()
                    .map(|s| {
                        let value = STANDARD.decode(s.value).map_err(|e| {
                            Error::InvalidResponse(format!("a sibling's base64: {e}"))
                        })?;
                        Ok(Sibling::new(value, s.content_type))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Object {
                    siblings,
                    context: Context::from_token(wire.context),
                })
            }
            _ => Err(Error::from_answer(status, &body, context)),
        }
    }

    /// Writes `value` superseding what `context` covers (None: a blind write,
    /// which adds a sibling to whatever is stored). Returns the new context.
    pub async fn put(
        &self,
        key: &[u8],
        value: Sibling,
        context: Option<&Context>,
    ) -> Result<Context> {
        self.put_with(key, value, context, &Options::default())
            .await
    }

    /// [`Client::put`] with per-request options.
    pub async fn put_with(
        &self,
        key: &[u8],
        value: Sibling,
        context: Option<&Context>,
        opts: &Options,
    ) -> Result<Context> {
        let query = opts.query("w");
        let http = &self.inner.http;
        let resp = self
            .send(Some(key), false, |base| {
                let req = http
                    .put(format!("{}{query}", key_url(base, key)))
                    .header(CONTENT_TYPE, &value.content_type)
                    .body(value.value.clone());
                with_context(req, context)
            })
            .await?;
        let (status, context, body) = read_answer(resp).await?;
        match (status, context) {
            (StatusCode::NO_CONTENT, Some(c)) => Ok(c),
            (StatusCode::NO_CONTENT, None) => Err(Error::InvalidResponse(
                "a write answered without a causal context".into(),
            )),
            (status, context) => Err(Error::from_answer(status, &body, context)),
        }
    }

    /// Deletes what `context` covers (None: what a quorum read finds).
    pub async fn delete(&self, key: &[u8], context: Option<&Context>) -> Result<()> {
        self.delete_with(key, context, &Options::default()).await
    }

    /// [`Client::delete`] with per-request options.
    pub async fn delete_with(
        &self,
        key: &[u8],
        context: Option<&Context>,
        opts: &Options,
    ) -> Result<()> {
        let query = opts.query("w");
        let http = &self.inner.http;
        let resp = self
            .send(Some(key), false, |base| {
                with_context(
                    http.delete(format!("{}{query}", key_url(base, key))),
                    context,
                )
            })
            .await?;
        let (status, context, body) = read_answer(resp).await?;
        if status == StatusCode::NO_CONTENT {
            Ok(())
        } else {
            Err(Error::from_answer(status, &body, context))
        }
    }

    /// Read-modify-write: reads `key`, calls `merge` with its live siblings
    /// (empty if it has none) and writes the result with the read's context,
    /// so every sibling the read saw is replaced by the merge. It then reads
    /// the key again: if a concurrent writer left a sibling next to this
    /// write, it merges again (the sibling included), up to
    /// [`MODIFY_ATTEMPTS`] times, then fails with [`Error::Conflict`] (nothing
    /// is lost: the siblings stay). `merge` must be a pure function of the
    /// siblings (a set union, a counter's maximum, …), since it may run more
    /// than once. The check reads with the same options, so it sees a
    /// concurrent writer only when R + W > N. Returns the context of the
    /// resolved value.
    pub async fn modify<F>(&self, key: &[u8], opts: &Options, mut merge: F) -> Result<Context>
    where
        F: FnMut(&[Sibling]) -> Sibling,
    {
        for _ in 0..MODIFY_ATTEMPTS {
            let (siblings, context) = match self.get_with(key, opts).await {
                Ok(o) => (o.siblings, Some(o.context)),
                Err(Error::NotFound { context }) => (Vec::new(), context),
                Err(e) => return Err(e),
            };
            let merged = merge(&siblings);
            self.put_with(key, merged, context.as_ref(), opts).await?;
            match self.get_with(key, opts).await {
                Ok(o) if !o.has_siblings() => return Ok(o.context),
                Ok(_) | Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            attempts: MODIFY_ATTEMPTS,
        })
    }

    /// `GET /admin/status` of the first node.
    pub async fn status(&self) -> Result<Value> {
        self.admin(reqwest::Method::GET, "/admin/status").await
    }

    /// `GET /admin/ring` of the first node.
    pub async fn ring(&self) -> Result<Value> {
        self.admin(reqwest::Method::GET, "/admin/ring").await
    }

    /// `GET /admin/ring?key=K` of the first node: the key's partition, token,
    /// serving replicas, pending replicas and fallbacks.
    pub async fn placement(&self, key: &str) -> Result<Value> {
        let path = format!(
            "/admin/ring?key={}",
            percent_encode(key.as_bytes(), KEY_SET)
        );
        self.admin(reqwest::Method::GET, &path).await
    }

    /// `POST /admin/repair`: one anti-entropy pass on the first node now.
    pub async fn repair(&self) -> Result<Value> {
        self.admin(reqwest::Method::POST, "/admin/repair").await
    }

    /// `POST /admin/leave`: decommissions the first node.
    pub async fn leave(&self) -> Result<Value> {
        self.admin(reqwest::Method::POST, "/admin/leave").await
    }

    /// `POST /admin/remove/{name}`: drops a dead member for good.
    pub async fn remove(&self, name: &str) -> Result<Value> {
        let path = format!("/admin/remove/{}", percent_encode(name.as_bytes(), KEY_SET));
        self.admin(reqwest::Method::POST, &path).await
    }

    /// `GET /admin/plan?…`: what a membership change would move.
    pub async fn plan(&self, query: &[(&str, String)]) -> Result<Value> {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v.as_bytes(), KEY_SET)))
            .collect();
        self.admin(
            reqwest::Method::GET,
            &format!("/admin/plan?{}", q.join("&")),
        )
        .await
    }

    /// One partition's keys with their live siblings, from a consistent scan
    /// on one of its replicas (`GET /admin/export`), trying the next replica
    /// when one fails. Reads the ring first if this client has not.
    pub async fn export_partition(&self, partition: usize) -> Result<Vec<crate::Record>> {
        let router = self.ring_router().await?;
        let mut last = None;
        for base in router.partition(partition) {
            let url = format!("{base}/admin/export?partition={partition}");
            let mut req = self.inner.http.get(&url);
            if let Some(token) = &self.inner.admin_token {
                req = req.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(transport(base, &e));
                    continue;
                }
            };
            let (status, context, body) = match read_answer(resp).await {
                Ok(answer) => answer,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            if !status.is_success() {
                last = Some(Error::from_answer(status, &body, context));
                continue;
            }
            let records = parse_export(&body);
            match records {
                Ok(records) => return Ok(records),
                Err(e) => last = Some(Error::InvalidResponse(format!("{url}: {e}"))),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unreachable {
            message: format!("partition {partition} has no replica that is up"),
        }))
    }

    /// The serving replicas of a partition (base URLs), from the ring.
    pub async fn replica_set(&self, partition: usize) -> Result<Vec<String>> {
        let router = self.ring_router().await?;
        Ok(router.partition(partition).to_vec())
    }

    /// The ring, for calls that need it whatever the routing (bulk loads,
    /// exports, replica sets): the same cached copy routing uses.
    async fn ring_router(&self) -> Result<Arc<Router>> {
        self.cached_router()
            .await
            .ok_or_else(|| Error::Unreachable {
                message: "cannot read the ring from any node".into(),
            })
    }

    /// Bulk-loads a batch of records (`POST /admin/ingest`) whose partitions
    /// share one replica set (see [`Client::replica_set`]), `partition`
    /// among them: sent to one of those
    /// replicas, which has every replica ingest them as SST files (or merge
    /// them where a partition already holds data). Moves on to the next
    /// replica only when nothing was sent or the replica refused (its ring
    /// moved): a load resent after it may have been applied would store the
    /// values twice. Returns the node's answer.
    pub async fn ingest(&self, partition: usize, batch: IngestBatch) -> Result<Value> {
        if batch.is_empty() {
            return Ok(serde_json::json!({"keys": 0, "replicas": [], "skipped": []}));
        }
        let router = self.ring_router().await?;
        let body = Bytes::from(batch.into_bytes());
        let mut last = None;
        for base in router.partition(partition) {
            let mut req = self
                .inner
                .http
                .post(format!("{base}/admin/ingest"))
                .header(CONTENT_TYPE, INGEST_BATCH_TYPE)
                .body(body.clone());
            if let Some(token) = &self.inner.admin_token {
                req = req.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if e.is_connect() => {
                    last = Some(transport(base, &e));
                    continue;
                }
                Err(e) => return Err(transport(base, &e)),
            };
            let (status, context, answer) = read_answer(resp).await?;
            if status.is_success() {
                return serde_json::from_slice(&answer)
                    .map_err(|e| Error::InvalidResponse(format!("ingest: {e}")));
            }
            let error = Error::from_answer(status, &answer, context);
            match &error {
                Error::Api { code, .. } if code == "not_a_replica" => last = Some(error),
                _ => return Err(error),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unreachable {
            message: format!("partition {partition} has no replica that is up"),
        }))
    }

    /// `GET /health` of the first node: `Ok` while it serves requests;
    /// [`Error::Api`] with status 503 and the reason (`shutting_down`,
    /// `store_unavailable`) otherwise.
    pub async fn health(&self) -> Result<()> {
        self.first_node(reqwest::Method::GET, "/health", None)
            .await
            .map(|_| ())
    }

    /// `GET /metrics` of the first node: Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        let body = self
            .first_node(reqwest::Method::GET, "/metrics", None)
            .await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST /admin/faults` on the first node (only a node started with
    /// `--fault-injection` accepts it; for tests): drops node-to-node
    /// traffic to and from the named members, `{}` heals.
    pub async fn set_faults(&self, spec: &Value) -> Result<()> {
        self.first_node(reqwest::Method::POST, "/admin/faults", Some(spec))
            .await
            .map(|_| ())
    }

    /// An admin request to the first node, its JSON answer.
    async fn admin(&self, method: reqwest::Method, path: &str) -> Result<Value> {
        let body = self.first_node(method, path, None).await?;
        serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse(format!("{path}: {e}")))
    }

    /// A request to the first node (operations answers are about that node,
    /// so there is no failover), with the admin token; the body of a
    /// success, the typed error otherwise.
    async fn first_node(
        &self,
        method: reqwest::Method,
        path: &str,
        json: Option<&Value>,
    ) -> Result<Bytes> {
        let base = &self.inner.nodes[0];
        let mut req = self.inner.http.request(method, format!("{base}{path}"));
        if let Some(token) = &self.inner.admin_token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(json) = json {
            req = req.json(json);
        }
        let resp = req.send().await.map_err(|e| transport(base, &e))?;
        let (status, context, body) = read_answer(resp).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(Error::from_answer(status, &body, context))
        }
    }

    /// The nodes to try for a request, in order: the key's replicas first
    /// when routing, then the given nodes from a rotating start. Borrowed
    /// from the routing table and the node list (no copies: this runs once
    /// per request).
    fn candidates<'a>(&'a self, router: Option<&'a Router>, key: Option<&[u8]>) -> Vec<&'a str> {
        let nodes = &self.inner.nodes;
        let turn = self.inner.turn.fetch_add(1, Ordering::Relaxed);
        let mut out: Vec<&str> = Vec::with_capacity(nodes.len() + 3);
        if let (Some(router), Some(key)) = (router, key) {
            out.extend(router.replicas(key, turn));
        }
        for i in 0..nodes.len() {
            let n = nodes[(turn + i) % nodes.len()].as_str();
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }

    /// The routing table, read again when older than [`ROUTER_TTL`].
    async fn router(&self) -> Option<Arc<Router>> {
        if !self.inner.route_to_replicas {
            return None;
        }
        self.cached_router().await
    }

    /// The ring read at most every ROUTER_TTL.
    async fn cached_router(&self) -> Option<Arc<Router>> {
        if let Some((r, at)) = self.inner.router.lock().as_ref()
            && at.elapsed() < ROUTER_TTL
        {
            return r.clone();
        }
        // A failed read is remembered too, so a cluster whose ring cannot be
        // read does not cost every request two extra calls (requests then
        // rotate over the given nodes until the next read).
        let fresh = self.read_router().await.map(Arc::new);
        let mut slot = self.inner.router.lock();
        let kept = fresh.or_else(|| slot.as_ref().and_then(|(r, _)| r.clone()));
        *slot = Some((kept.clone(), Instant::now()));
        kept
    }

    async fn read_router(&self) -> Option<Router> {
        for base in &self.inner.nodes {
            let get = |path: &str| self.inner.http.get(format!("{base}{path}")).send();
            let (Ok(ring), Ok(status)) = (get("/admin/ring").await, get("/admin/status").await)
            else {
                continue;
            };
            let (Ok(ring), Ok(status)) = (ring.json::<Value>().await, status.json::<Value>().await)
            else {
                continue;
            };
            // The members are reached the way this node was.
            let scheme = if base.starts_with("https://") {
                "https"
            } else {
                "http"
            };
            if let Ok(router) = Router::from_answers_with(&ring, &status, scheme) {
                return Some(router);
            }
        }
        None
    }

    /// Sends a request to the candidates in turn (see the retry rules on
    /// [`Client`]); `idempotent` requests (reads) may be sent more than once.
    async fn send(
        &self,
        key: Option<&[u8]>,
        idempotent: bool,
        build: impl Fn(&str) -> RequestBuilder,
    ) -> Result<reqwest::Response> {
        let router = match key {
            Some(_) => self.router().await,
            None => None,
        };
        let candidates = self.candidates(router.as_deref(), key);
        let mut last = None;
        for (i, base) in candidates.iter().enumerate() {
            let more = i + 1 < candidates.len();
            match build(base).send().await {
                // Nothing was applied: any request may go elsewhere.
                Ok(resp) if more && resp.headers().contains_key(NOT_APPLIED_HEADER) => {
                    last = Some(Error::Api {
                        status: resp.status().as_u16(),
                        code: "not_applied".into(),
                        message: format!("{base} answered {} and applied nothing", resp.status()),
                    });
                }
                Ok(resp) if idempotent && more && resp.status().is_server_error() => {
                    last = Some(Error::Api {
                        status: resp.status().as_u16(),
                        code: "server_error".into(),
                        message: format!("{base} answered {}", resp.status()),
                    });
                }
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_connect() => {
                    // Nothing was sent: any request may go elsewhere. The
                    // routing table may name a node that is gone.
                    if self.inner.route_to_replicas {
                        *self.inner.router.lock() = None;
                    }
                    last = Some(transport(base, &e));
                }
                Err(e) if idempotent => last = Some(transport(base, &e)),
                Err(e) => return Err(transport(base, &e)),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unreachable {
            message: "no node to send to".into(),
        }))
    }
}

fn with_context(req: RequestBuilder, context: Option<&Context>) -> RequestBuilder {
    match context {
        Some(c) => req.header(CONTEXT_HEADER, c.as_str()),
        None => req,
    }
}

/// Status, causal context and body of an answer.
async fn read_answer(resp: reqwest::Response) -> Result<(StatusCode, Option<Context>, Bytes)> {
    let status = resp.status();
    let context = resp
        .headers()
        .get(CONTEXT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(Context::from_token);
    let body = resp.bytes().await.map_err(|e| Error::Timeout {
        message: format!("reading the answer: {e}"),
    })?;
    Ok((status, context, body))
}

fn transport(base: &str, e: &reqwest::Error) -> Error {
    if e.is_connect() {
        Error::Unreachable {
            message: format!("{base}: {e}"),
        }
    } else {
        // Sent (or partly sent) with no answer: the node may have acted on it.
        Error::Timeout {
            message: format!("{base}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_export;

    #[test]
    fn an_export_stream_is_whole_only_with_its_last_line() {
        let whole = b"{\"key\":\"a\",\"siblings\":[{\"value_base64\":\"dg==\",\"content_type\":\"x\"}]}\n{\"done\":true,\"records\":1}\n";
        assert_eq!(parse_export(whole).expect("whole").len(), 1);
        let cut =
            b"{\"key\":\"a\",\"siblings\":[{\"value_base64\":\"dg==\",\"content_type\":\"x\"}]}\n";
        assert!(parse_export(cut).is_err(), "a stream cut short");
        let miscounted = b"{\"done\":true,\"records\":3}\n";
        assert!(parse_export(miscounted).is_err());
        let failed = b"{\"error\":\"disk\"}\n";
        assert!(parse_export(failed).expect_err("failed").contains("disk"));
    }
}
