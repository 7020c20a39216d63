//! A node: the parts of `server` wired together over one [`Core`], and the
//! dispatch of node-to-node requests to them.

use std::sync::Arc;

use anyhow::Context;
use dynakv_membership::{ClusterRing, Entry, GossipConfig, MemberInfo, MemberState, Membership};
use dynakv_storage::{Storage, StorageConfig};
use tokio_util::sync::CancellationToken;

use crate::server::clock::now_ms;
use crate::server::cluster::rpc::{Faults, Handler, Request, Response, RpcClient, RpcShared};
use crate::server::cluster::{Cluster, META_CLUSTER_ID, META_MEMBERS, META_RING};
use crate::server::config::Config;
use crate::server::core::Core;
use crate::server::gossip;
use crate::server::handoff_budget::HandoffBudget;
use crate::server::metrics::Metrics;
use crate::server::replication::anti_entropy::AntiEntropy;
use crate::server::replication::coordinator::Coordinator;
use crate::server::replication::ingest;
use crate::server::replication::ownership_handoff::{self, Transfers};
use crate::server::worker::Workers;

/// A node: its shared services ([`Core`]) and the parts that work through
/// them, wired together. It answers node-to-node requests by handing each to
/// its part.
pub struct Node {
    /// Configuration, identity, storage, cluster view, RPC, metrics.
    pub core: Arc<Core>,
    /// Quorum reads and writes.
    pub coordinator: Arc<Coordinator>,
    /// Merkle-tree repair.
    pub ae: Arc<AntiEntropy>,
    /// Ownership handoff.
    pub transfers: Arc<Transfers>,
    /// Background workers and their status.
    pub workers: Workers,
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
            .get_meta(ownership_handoff::META_HANDED_OFF)
            .ok()
            .flatten()
            .unwrap_or_default();
        let now = now_ms();
        let me = MemberInfo {
            name: identity.name.clone(),
            rpc_addr: config.rpc_advertise(),
            http_addr: config.http_advertise(),
            zone: config.zone.clone(),
            weight: config.weight,
        };
        let mut membership = Membership::new(
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
        // The cluster this node belongs to: kept from an earlier run, made
        // now by a node that founds a cluster alone, or derived from a ring
        // made before clusters had ids.
        let persisted_id = storage.get_meta::<u64>(META_CLUSTER_ID)?;
        membership.set_cluster_id(persisted_id);
        if persisted_id.is_none() && membership.cluster_id() != 0 {
            storage.put_meta(META_CLUSTER_ID, &membership.cluster_id())?;
        }
        let metrics = Arc::new(Metrics::new());
        // Peers check that a node's certificate names it: one that does not
        // could never join, so it does not start.
        let tls = match (&config.tls_cert, &config.tls_key, &config.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(Arc::new(
                crate::server::tls::Tls::load_for(
                    crate::server::tls::TlsFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                        ca: ca.clone(),
                    },
                    &identity.name,
                )
                .map_err(|e| anyhow::anyhow!("TLS: {e}"))?,
            )),
            _ => None,
        };
        let rpc_shared = Arc::new(
            RpcShared::new(
                identity.name.clone(),
                config.cluster_secret.clone(),
                Faults::default(),
                Arc::clone(&metrics),
            )
            .with_tls(tls),
        );
        let handoff_budget = HandoffBudget::new(config.transfer_rate_mb_s);
        let bucket_map = storage
            .get_meta(crate::server::buckets::META_BUCKETS)?
            .unwrap_or_default();
        let buckets = crate::server::buckets::Buckets::new(&config, &identity.name, bucket_map);
        let security = crate::server::security::Security::new(
            &identity.name,
            storage
                .get_meta(crate::server::security::META_SECURITY)?
                .unwrap_or_default(),
        );
        let core = Arc::new(Core {
            buckets,
            cluster: Cluster::new(membership),
            stop: CancellationToken::new(),
            rpc: RpcClient::new(Arc::clone(&rpc_shared), config.listen.ip()),
            rpc_shared,
            identity,
            storage,
            metrics,
            config,
            persist_lock: parking_lot::Mutex::new(()),
            ring_changed: tokio::sync::Notify::new(),
            handoff_budget,
            context_key: parking_lot::Mutex::new(None),
            security,
        });
        let ae = Arc::new(AntiEntropy::new(Arc::clone(&core)));
        let transfers = Arc::new(Transfers::new(Arc::clone(&core), Arc::clone(&ae)));
        transfers.restore_handed_off(handed_off);
        Ok(Arc::new(Node {
            coordinator: Arc::new(Coordinator::new(Arc::clone(&core))),
            core,
            ae,
            transfers,
            workers: Workers::default(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// True once the node began shutting down.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the node as shutting down (health answers 503 from then on).
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Handler for Node {
    /// Replica reads, and replica writes when they are not fsynced, touch
    /// RocksDB for microseconds and wait on nothing (see [`Core::read_now`]).
    /// A write can still wait behind a key's stripe lock (held by a transfer
    /// batch merging up to a few MiB) or a RocksDB write stall; it then holds
    /// up the requests behind it on that connection, as it would otherwise
    /// hold an async worker thread.
    fn is_quick(&self, request: &Request) -> bool {
        match request {
            Request::ReplicaRead { .. } | Request::Ping => true,
            Request::ReplicaWrite { .. } => !self.core.config.sync_writes,
            _ => false,
        }
    }

    /// Replica writes of the run (valid, not hints) are merged together, one
    /// storage write for all of them, before the other requests are answered
    /// one by one: a read in the run sees every write that came with it.
    async fn handle_quick_run(
        self: Arc<Self>,
        peer: String,
        requests: Vec<Request>,
    ) -> Vec<Response> {
        let mut answers: Vec<Option<Response>> = vec![None; requests.len()];
        let mut writes = Vec::new();
        let mut slots = Vec::new();
        let mut rest = Vec::new();
        for (slot, request) in requests.into_iter().enumerate() {
            let mergeable = matches!(request, Request::ReplicaWrite { hint_for: None, .. })
                && request.validate().is_ok();
            match request {
                Request::ReplicaWrite { key, object, .. } if mergeable => {
                    slots.push(slot);
                    writes.push((key, object));
                }
                other => rest.push((slot, other)),
            }
        }
        if !writes.is_empty() {
            let written = self.coordinator.on_replica_writes(writes).await;
            for (slot, answer) in slots.into_iter().zip(written) {
                answers[slot] = Some(answer);
            }
        }
        for (slot, request) in rest {
            answers[slot] = Some(Arc::clone(&self).handle(peer.clone(), request).await);
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Response::Error("request not answered".into())))
            .collect()
    }

    async fn handle(self: Arc<Self>, peer: String, request: Request) -> Response {
        if let Err(kind) = request.validate() {
            self.core
                .metrics
                .rpc_invalid
                .get_or_create(&crate::server::metrics::Reason::from(kind))
                .inc();
            tracing::warn!(%peer, kind, "refused an invalid node-to-node request");
            return Response::Error(format!("invalid {kind} request"));
        }
        match request {
            Request::Ping => Response::Pong,
            Request::Gossip(message) => gossip::on_gossip(&self.core, message).await,
            Request::Buckets { digest, map } => {
                gossip::on_metadata::<gossip::BucketTypes>(&self.core, digest, map).await
            }
            Request::Security { digest, map } => {
                gossip::on_metadata::<gossip::Users>(&self.core, digest, map).await
            }
            Request::ListKeys {
                partition,
                prefix,
                after,
                limit,
            } => {
                self.coordinator
                    .on_list_keys(partition, prefix, after, limit)
                    .await
            }
            Request::Ingest { items } => ingest::on_ingest(&self.core, items).await,
            Request::ReplicaWrite {
                key,
                object,
                hint_for,
            } => {
                self.coordinator
                    .on_replica_write(key, object, hint_for)
                    .await
            }
            Request::ReplicaRead { key, hints_for } => {
                self.coordinator.on_replica_read(key, hints_for).await
            }
            Request::AeCompare {
                partitions,
                summary,
                tier,
            } => self.ae.on_ae_compare(partitions, summary, tier).await,
            Request::AeRoots { partitions, tier } => self.ae.on_ae_roots(partitions, tier).await,
            Request::AeNodes { nodes, tier } => self.ae.on_ae_nodes(nodes, tier).await,
            Request::AeFetch { keys } => self.ae.on_ae_fetch(keys).await,
            Request::AeHandOver { items } => self.ae.on_hand_over(items).await,
            Request::AePush { items } => self.ae.on_ae_push(items).await,
            Request::AePurge { items } => self.ae.on_ae_purge(items).await,
            Request::TransferFetch {
                partition,
                after,
                max_bytes,
            } => {
                self.transfers
                    .on_transfer_fetch(peer, partition, after, max_bytes)
                    .await
            }
            Request::CoordinateWrite(write) => self.coordinator.on_coordinate_write(write).await,
        }
    }
}
