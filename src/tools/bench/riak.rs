//! The bench's Riak clients (`--protocol pb|riak-http`): the same records
//! (bucket `default` of type `default`, which is the native API's keyspace)
//! through Riak's Protocol Buffers or HTTP API, so one run compares the
//! protocols on the same data. PB keeps one open connection per client
//! slot, as Riak's client libraries pool them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use dynakv_riakpb::messages::{RpbContent, RpbGetReq, RpbPutReq};
use dynakv_riakpb::{Request, Response, RiakCodec};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_util::codec::Framed;

/// A Riak client of the bench.
pub enum RiakClient {
    /// Protocol Buffers: a pool of open connections.
    Pb {
        /// The connections, each used by one request at a time.
        pool: Vec<Mutex<Option<Framed<TcpStream, RiakCodec>>>>,
        /// The nodes' PB addresses.
        addrs: Vec<SocketAddr>,
        /// Round robin over the pool.
        next: AtomicUsize,
    },
    /// Riak's HTTP API.
    Http {
        /// The HTTP client (keeps connections open).
        client: reqwest::Client,
        /// The nodes' URLs.
        urls: Vec<String>,
        /// Round robin over the nodes.
        next: AtomicUsize,
    },
}

/// The bucket path of the native keyspace in Riak's HTTP API.
const BUCKET: &str = "/types/default/buckets/default/keys/";

impl RiakClient {
    /// PB connections (`slots` of them, spread over `addrs`), opened lazily.
    pub fn pb(addrs: Vec<SocketAddr>, slots: usize) -> RiakClient {
        RiakClient::Pb {
            pool: (0..slots.max(1)).map(|_| Mutex::new(None)).collect(),
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    /// An HTTP client of Riak's API on `urls`.
    pub fn http(urls: Vec<String>, slots: usize) -> RiakClient {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(slots)
            .pool_idle_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("an HTTP client builds");
        RiakClient::Http {
            client,
            urls,
            next: AtomicUsize::new(0),
        }
    }

    async fn call(&self, request: Request) -> Result<Response, String> {
        let RiakClient::Pb { pool, addrs, next } = self else {
            return Err("not a PB client".into());
        };
        let i = next.fetch_add(1, Ordering::Relaxed);
        let mut slot = pool[i % pool.len()].lock().await;
        if slot.is_none() {
            let addr = addrs[i % addrs.len()];
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|_| "unreachable".to_string())?;
            let _ = stream.set_nodelay(true);
            *slot = Some(Framed::new(stream, RiakCodec::new(64 << 20)));
        }
        let conn = slot.as_mut().expect("just opened");
        let answer = async {
            conn.send(request).await.map_err(|e| e.to_string())?;
            let (code, body) = conn
                .next()
                .await
                .ok_or("closed")?
                .map_err(|e| e.to_string())?;
            Response::decode(code, &body).map_err(|e| e.to_string())
        }
        .await;
        if answer.is_err() {
            *slot = None;
        }
        answer.map_err(|_| "unreachable".to_string())
    }

    /// Reads `key`; its vclock (`not_found` when it has no value).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        match self {
            RiakClient::Pb { .. } => {
                let r = self
                    .call(Request::Get(RpbGetReq {
                        bucket: b"default".to_vec(),
                        key: key.as_bytes().to_vec(),
                        ..Default::default()
                    }))
                    .await?;
                match r {
                    Response::GetResp(g) if !g.content.is_empty() => {
                        Ok(g.vclock.unwrap_or_default())
                    }
                    Response::GetResp(_) => Err("not_found".into()),
                    Response::ErrorResp(e) => Err(error_kind(&e.errmsg)),
                    _ => Err("invalid_response".into()),
                }
            }
            RiakClient::Http { client, urls, next } => {
                let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
                let r = client
                    .get(format!("{url}{BUCKET}{key}"))
                    .send()
                    .await
                    .map_err(|_| "unreachable".to_string())?;
                let status = r.status().as_u16();
                let vclock = r
                    .headers()
                    .get("x-riak-vclock")
                    .and_then(|v| STANDARD.decode(v.as_bytes()).ok())
                    .unwrap_or_default();
                let _ = r.bytes().await;
                match status {
                    200 | 300 => Ok(vclock),
                    404 => Err("not_found".into()),
                    s => Err(format!("http ({s})")),
                }
            }
        }
    }

    /// Writes `value` under `key` over `vclock`; the new vclock.
    pub async fn put(
        &self,
        key: &str,
        value: &Bytes,
        vclock: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        match self {
            RiakClient::Pb { .. } => {
                let r = self
                    .call(Request::Put(RpbPutReq {
                        bucket: b"default".to_vec(),
                        key: Some(key.as_bytes().to_vec()),
                        vclock,
                        content: RpbContent {
                            value: value.to_vec(),
                            content_type: Some(b"application/octet-stream".to_vec()),
                            ..Default::default()
                        },
                        return_head: Some(true),
                        ..Default::default()
                    }))
                    .await?;
                match r {
                    Response::PutResp(p) => Ok(p.vclock.unwrap_or_default()),
                    Response::ErrorResp(e) => Err(error_kind(&e.errmsg)),
                    _ => Err("invalid_response".into()),
                }
            }
            RiakClient::Http { client, urls, next } => {
                let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
                let mut req = client
                    .put(format!("{url}{BUCKET}{key}?returnbody=true"))
                    .header("content-type", "application/octet-stream")
                    .body(value.clone());
                if let Some(v) = vclock.filter(|v| !v.is_empty()) {
                    req = req.header("x-riak-vclock", STANDARD.encode(v));
                }
                let r = req.send().await.map_err(|_| "unreachable".to_string())?;
                let status = r.status().as_u16();
                let vclock = r
                    .headers()
                    .get("x-riak-vclock")
                    .and_then(|v| STANDARD.decode(v.as_bytes()).ok())
                    .unwrap_or_default();
                let _ = r.bytes().await;
                match status {
                    200 | 204 | 300 => Ok(vclock),
                    s => Err(format!("http ({s})")),
                }
            }
        }
    }
}

fn error_kind(message: &[u8]) -> String {
    let m = String::from_utf8_lossy(message);
    if m.contains("replicas") {
        "quorum_unavailable".into()
    } else {
        format!("riak_error ({})", m.chars().take(40).collect::<String>())
    }
}
