//! A running node: its configuration, identity, storage, cluster view and RPC,
//! and the lifecycle that starts and stops its servers and workers.

use std::sync::Arc;

use anyhow::Context;
use dynakv_membership::{ClusterRing, Entry, GossipConfig, MemberInfo, MemberState, Membership};
use dynakv_storage::{Identity, Storage, StorageConfig};
use tokio_util::sync::CancellationToken;

use crate::server::antientropy::{self, AntiEntropy};
use crate::server::cluster::{self, Cluster, META_MEMBERS, META_RING, now_ms};
use crate::server::config::Config;
use crate::server::metrics::Metrics;
use crate::server::rpc::{self, Faults, Handler, Request, Response, RpcClient, RpcShared};
use crate::server::transfer::{self, Transfers};
use crate::server::worker::Workers;
use crate::server::{handoff, http};

/// Everything a node's request handlers and workers share.
pub struct Node {
    /// The validated configuration.
    pub config: Config,
    /// Name and actor id of this data directory.
    pub identity: Identity,
    /// The RocksDB store.
    pub storage: Storage,
    /// Exported metrics.
    pub metrics: Arc<Metrics>,
    /// Membership and ring.
    pub cluster: Cluster,
    /// Calls to other nodes.
    pub rpc: RpcClient,
    /// Protocol state shared by the RPC client and server (name, secret, faults).
    pub rpc_shared: Arc<RpcShared>,
    /// Serialises metadata writes of the member table.
    pub persist_lock: parking_lot::Mutex<()>,
    /// Anti-entropy trees and status.
    pub ae: AntiEntropy,
    /// Ownership handoff progress and limits.
    pub transfers: Transfers,
    /// Cancelled to stop the node from inside (after it left the cluster).
    pub stop: CancellationToken,
    /// Background workers and their status.
    pub workers: Workers,
    /// When a read asks one more replica (speculative retry).
    pub read_hedge: crate::server::coordinator::ReadHedge,
    /// Set once a shutdown began (health answers 503 from then on).
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Node {
    /// Opens the data directory, loads (or creates) the node's identity and its
    /// persisted member table.
    pub fn open(config: Config) -> anyhow::Result<Arc<Node>> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        let storage = Storage::open(&StorageConfig {
            path: config.data_dir.join("db"),
            block_cache_mb: config.block_cache_mb,
            sync_writes: config.sync_writes,
        })
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
        let identity = storage.load_or_create_identity(&config.name)?;
        if storage.has_meta("members")? && !storage.has_meta(META_RING)? {
            anyhow::bail!(
                "{} holds a member table from an older dynakv without a cluster ring; \
                 this version cannot adopt it safely: move the directory aside and rejoin the node with --seeds",
                config.data_dir.display()
            );
        }
        let persisted: Vec<Entry> = storage.get_meta(META_MEMBERS)?.unwrap_or_default();
        let ring: ClusterRing = storage.get_meta(META_RING)?.unwrap_or_default();
        if let Some(me) = persisted.iter().find(|e| e.info.name == identity.name)
            && matches!(me.state, MemberState::Left | MemberState::Removed)
        {
            anyhow::bail!(
                "{} belongs to node {} which {} the cluster; to join again, start it with an empty data directory and --seeds",
                config.data_dir.display(),
                identity.name,
                if me.state == MemberState::Left {
                    "left"
                } else {
                    "was removed from"
                }
            );
        }
        let handed_off: std::collections::BTreeSet<u16> = storage
            .get_meta(transfer::META_HANDED_OFF)
            .ok()
            .flatten()
            .unwrap_or_default();
        let now = now_ms();
        let me = MemberInfo {
            name: identity.name.clone(),
            rpc_addr: config.listen,
            http_addr: config.http,
            zone: config.zone.clone(),
            weight: config.weight,
        };
        let membership = Membership::new(
            me,
            now,
            persisted,
            ring,
            config.seeds.clone(),
            GossipConfig {
                fanout: 2,
                failure_timeout_ms: config.failure_timeout_ms,
                n: config.n,
            },
            now,
        );
        let metrics = Arc::new(Metrics::new());
        let rpc_shared = Arc::new(RpcShared {
            name: identity.name.clone(),
            secret: config.cluster_secret.clone(),
            faults: Faults::default(),
            metrics: Arc::clone(&metrics),
        });
        let transfers = Transfers::new(config.transfer_limit, config.transfer_rate_mb_s);
        transfers.restore_handed_off(handed_off);
        Ok(Arc::new(Node {
            cluster: Cluster::new(membership),
            transfers,
            stop: CancellationToken::new(),
            workers: Workers::default(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            read_hedge: Default::default(),
            rpc: RpcClient::new(Arc::clone(&rpc_shared), config.listen.ip()),
            rpc_shared,
            identity,
            storage,
            metrics,
            config,
            persist_lock: parking_lot::Mutex::new(()),
            ae: AntiEntropy::default(),
        }))
    }

    /// Runs blocking storage work off the async runtime.
    pub async fn blocking<T, F>(self: &Arc<Self>, f: F) -> T
    where
        F: FnOnce(&Node) -> T + Send + 'static,
        T: Send + 'static,
    {
        let node = Arc::clone(self);
        match tokio::task::spawn_blocking(move || f(&node)).await {
            Ok(t) => t,
            // The closure panicked: a broken invariant, not bad input.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// True once the node began shutting down.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs a point storage read on the calling task. A RocksDB point read
    /// takes microseconds (memtable, block cache or page cache), while a hop to
    /// the blocking pool and back costs two thread wake-ups: the profile of a
    /// single-node GET run showed two thirds of the node's cycles in the kernel
    /// switching threads. Scans and anything that may fsync stay on
    /// [`Node::blocking`].
    pub async fn read_now<T, F>(self: &Arc<Self>, f: F) -> T
    where
        F: FnOnce(&Node) -> T + Send + 'static,
        T: Send + 'static,
    {
        f(self)
    }

    /// Runs a single-key storage write: on the calling task when writes are
    /// not fsynced (a write-ahead-log append takes microseconds, see
    /// [`Node::read_now`]), on the blocking pool when they are (`sync_writes`:
    /// an fsync takes milliseconds and must not stall the async workers).
    pub async fn write_now<T, F>(self: &Arc<Self>, f: F) -> T
    where
        F: FnOnce(&Node) -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.config.sync_writes {
            self.blocking(f).await
        } else {
            f(self)
        }
    }

    /// Injected faults (tests).
    pub fn faults(&self) -> &Faults {
        &self.rpc_shared.faults
    }
}

impl Handler for Node {
    /// Replica reads, and replica writes when they are not fsynced, touch
    /// RocksDB for microseconds and wait on nothing (see [`Node::read_now`]).
    /// A write can still wait behind a key's stripe lock (held by a transfer
    /// batch merging up to a few MiB) or a RocksDB write stall; it then holds
    /// up the requests behind it on that connection, as it would otherwise
    /// hold an async worker thread.
    fn is_quick(&self, request: &Request) -> bool {
        match request {
            Request::ReplicaRead { .. } | Request::Ping => true,
            Request::ReplicaWrite { .. } => !self.config.sync_writes,
            _ => false,
        }
    }

    async fn handle(self: Arc<Self>, peer: String, request: Request) -> Response {
        if let Err(kind) = request.validate() {
            self.metrics
                .rpc_invalid
                .get_or_create(&crate::server::metrics::Reason::from(kind))
                .inc();
            tracing::warn!(%peer, kind, "refused an invalid node-to-node request");
            return Response::Error(format!("invalid {kind} request"));
        }
        match request {
            Request::Ping => Response::Pong,
            Request::Gossip(message) => self.on_gossip(message).await,
            Request::ReplicaWrite {
                key,
                object,
                hint_for,
            } => self.on_replica_write(key, object, hint_for).await,
            Request::ReplicaRead { key, hints_for } => self.on_replica_read(key, hints_for).await,
            Request::AeCompare {
                partitions,
                summary,
            } => self.on_ae_compare(partitions, summary).await,
            Request::AeRoots { partitions } => self.on_ae_roots(partitions).await,
            Request::AeNodes { nodes } => self.on_ae_nodes(nodes).await,
            Request::AeFetch { keys } => self.on_ae_fetch(keys).await,
            Request::AePush { items } => self.on_ae_push(items).await,
            Request::AePurge { items } => self.on_ae_purge(items).await,
            Request::TransferFetch {
                partition,
                after,
                max_bytes,
            } => {
                self.on_transfer_fetch(peer, partition, after, max_bytes)
                    .await
            }
            Request::CoordinateWrite {
                key,
                context,
                version,
                w,
                strict,
                timeout_ms,
            } => {
                self.on_coordinate_write(key, context, version, w, strict, timeout_ms)
                    .await
            }
        }
    }
}

/// Waits `interval_ms` ±10% (so nodes started together do not work in
/// lockstep); returns false if `shutdown` came first.
pub async fn jittered_pause(shutdown: &CancellationToken, interval_ms: u64) -> bool {
    let jitter = rand::random_range(0..=interval_ms / 5);
    let wait = std::time::Duration::from_millis(interval_ms - interval_ms / 10 + jitter);
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// Starts a node and serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::info!(data_dir = %config.data_dir.display(), "opening the data directory");
    let node = Node::open(config)?;
    tracing::info!(
        node = %node.identity.name,
        actor = %node.identity.actor,
        data_dir = %node.config.data_dir.display(),
        keys = node.storage.stats().keys,
        members = node.cluster.view().len(),
        "node opened"
    );
    if node.config.cluster_secret.is_none() {
        tracing::warn!(
            "no cluster_secret set: any process that can reach {} can join the cluster",
            node.config.listen
        );
    }
    let rpc_listener = tokio::net::TcpListener::bind(node.config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for nodes on {}: {e}", node.config.listen))?;
    let http_listener = http::bind(&node.config).await?;
    node.persist_members().await;

    let rpc_shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(rpc::serve(
        rpc_listener,
        Arc::clone(&node.rpc_shared),
        Arc::clone(&node),
        rpc_shutdown.clone(),
    ));
    let n = Arc::clone(&node);
    node.workers.spawn("gossip", move |h, sd| {
        cluster::gossip_worker(Arc::clone(&n), h, sd)
    });
    let n = Arc::clone(&node);
    node.workers.spawn("hinted_handoff", move |h, sd| {
        handoff::handoff_worker(Arc::clone(&n), h, sd)
    });
    let n = Arc::clone(&node);
    node.workers.spawn("anti_entropy", move |h, sd| {
        antientropy::anti_entropy_worker(Arc::clone(&n), h, sd)
    });
    let n = Arc::clone(&node);
    node.workers.spawn("ownership_handoff", move |h, sd| {
        transfer::transfer_worker(Arc::clone(&n), h, sd)
    });
    {
        // A node that left the cluster stops itself.
        let (stop, on_stop) = (node.stop.clone(), shutdown.clone());
        tasks.spawn(async move {
            stop.cancelled().await;
            on_stop.cancel();
        });
        // From the first shutdown signal on, health says so.
        let (n, shutdown) = (Arc::clone(&node), shutdown.clone());
        tasks.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = n.stop.cancelled() => {}
            }
            n.shutting_down
                .store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    tracing::info!(rpc = %node.config.listen, http = %node.config.http, "serving");

    let served = http::serve(Arc::clone(&node), http_listener, shutdown).await;
    node.workers.stop().await;
    rpc_shutdown.cancel();
    node.stop.cancel();
    while tasks.join_next().await.is_some() {}
    node.persist_members().await;
    served
}
