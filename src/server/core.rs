//! What every part of a node works through: its storage, its view of the
//! cluster, and its calls to other nodes (with the configuration, identity
//! and metrics they need). The coordinator, hinted handoff, gossip,
//! anti-entropy and ownership handoff each work through an `Arc<Core>` and
//! nothing of one another, except ownership handoff, which runs anti-entropy
//! exchanges; [`crate::server::node::Node`] wires them together.

use std::sync::Arc;

use dynakv_membership::Status;
use dynakv_storage::{Identity, Storage, StorageError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::server::buckets::{Buckets, META_BUCKETS};
use crate::server::cluster::rpc::{Faults, RpcClient, RpcShared};
use dynakv_versioning::{ContextKey, ContextSigner};

use crate::server::cluster::{Cluster, META_CLUSTER_ID, META_MEMBERS, META_RING};
use crate::server::config::Config;
use crate::server::handoff_budget::HandoffBudget;
use crate::server::metrics::Metrics;

/// A node's shared services.
pub struct Core {
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
    /// Cancelled to stop the node from inside (after it left the cluster).
    pub stop: CancellationToken,
    /// Notified when the cluster ring changes (ownership handoff looks again).
    pub ring_changed: Notify,
    /// Outgoing handoff bytes, ownership and hinted handoff together.
    pub handoff_budget: HandoffBudget,
    /// Bucket types and bucket properties (each key's `n_val`).
    pub buckets: Buckets,
    /// The key causal contexts are signed with, for the cluster id it was
    /// derived for ([`Core::context_key`]).
    pub context_key: parking_lot::Mutex<Option<(u64, Arc<ContextKey>)>>,
    /// Users and grants.
    pub security: crate::server::security::Security,
}

impl Core {
    /// Signs and checks the causal contexts of the object stored under
    /// `object` (see [`ContextSigner`]).
    pub fn context_signer(&self, object: &[u8]) -> ContextSigner {
        ContextSigner::new(self.context_key(), bytes::Bytes::copy_from_slice(object))
    }

    /// The key this cluster signs causal contexts with: derived from the
    /// cluster secret and the cluster's id, the same on every member.
    pub fn context_key(&self) -> Arc<ContextKey> {
        let id = self.cluster.cluster_id();
        let mut cached = self.context_key.lock();
        match &*cached {
            Some((for_id, key)) if *for_id == id => Arc::clone(key),
            _ => {
                let secret = self.config.cluster_secret.as_deref().unwrap_or("");
                let key = Arc::new(ContextKey::derive(secret.as_bytes(), id));
                *cached = Some((id, Arc::clone(&key)));
                key
            }
        }
    }

    /// This node's name.
    pub fn me(&self) -> &str {
        &self.identity.name
    }

    /// True if gossip says `name` is down or gone (never this node).
    pub fn is_down(&self, name: &str) -> bool {
        name != self.me() && matches!(self.cluster.status(name), Status::Down | Status::Left)
    }

    /// Injected faults (tests).
    pub fn faults(&self) -> &Faults {
        &self.rpc_shared.faults
    }

    /// Runs blocking storage work off the async runtime.
    pub async fn blocking<T, F>(self: &Arc<Self>, f: F) -> T
    where
        F: FnOnce(&Core) -> T + Send + 'static,
        T: Send + 'static,
    {
        let core = Arc::clone(self);
        match tokio::task::spawn_blocking(move || f(&core)).await {
            Ok(t) => t,
            // The closure panicked: a broken invariant, not bad input.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Runs a point storage read on the calling task. A RocksDB point read
    /// takes microseconds (memtable, block cache or page cache), while a hop to
    /// the blocking pool and back costs two thread wake-ups: the profile of a
    /// single-node GET run showed two thirds of the node's cycles in the kernel
    /// switching threads. Scans and anything that may fsync stay on
    /// [`Core::blocking`].
    pub async fn read_now<T, F>(self: &Arc<Self>, f: F) -> T
    where
        F: FnOnce(&Core) -> T + Send + 'static,
        T: Send + 'static,
    {
        f(self)
    }

    /// Runs a single-key storage write: on the calling task when writes are
    /// not fsynced (a write-ahead-log append takes microseconds, see
    /// [`Core::read_now`]), on the blocking pool when they are (`sync_writes`:
    /// an fsync takes milliseconds and must not stall the async workers).
    pub async fn write_now<T, F>(self: &Arc<Self>, f: F) -> T
    where
        F: FnOnce(&Core) -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.config.sync_writes {
            self.blocking(f).await
        } else {
            f(self)
        }
    }

    /// Persists the member table and the cluster ring (serialised, so an
    /// older snapshot never overwrites a newer one).
    pub async fn persist_members(self: &Arc<Self>) {
        let result = self
            .blocking(|core| {
                let _order = core.persist_lock.lock();
                core.storage
                    .put_meta(META_MEMBERS, &core.cluster.entries())?;
                let id = core.cluster.cluster_id();
                if id != 0 {
                    core.storage.put_meta(META_CLUSTER_ID, &id)?;
                }
                core.storage
                    .put_meta(META_RING, &*core.cluster.ring_state())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot persist the member table");
        }
    }

    /// Persists the bucket metadata (serialised with the member table's
    /// writes, so an older map never overwrites a newer one).
    pub async fn persist_buckets(self: &Arc<Self>) {
        let result = self
            .blocking(|core| {
                let _order = core.persist_lock.lock();
                core.storage
                    .put_meta(META_BUCKETS, &core.buckets.snapshot())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot persist the bucket metadata");
        }
    }

    /// Persists the security metadata (serialised with the member table's
    /// writes).
    pub async fn persist_security(self: &Arc<Self>) {
        let result = self
            .blocking(|core| {
                let _order = core.persist_lock.lock();
                core.storage.put_meta(
                    crate::server::security::META_SECURITY,
                    &core.security.snapshot(),
                )
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot persist the security metadata");
        }
    }

    /// Logs a storage error, counting a corrupt record.
    pub fn note_storage_error(&self, e: &StorageError) {
        if let StorageError::Corrupt { key, reason } = e {
            self.metrics.corrupt_records.inc();
            tracing::error!(key = ?String::from_utf8_lossy(key), %reason, "corrupt record on disk; it will be repaired from a replica");
        } else {
            tracing::error!(error = %e, "storage error");
        }
    }
}
