//! A running node: its configuration, identity, storage and metrics, and the
//! lifecycle that starts and stops its servers.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use dynakv_storage::{Identity, Storage, StorageConfig};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http;
use crate::metrics::Metrics;

/// Everything a node's request handlers and workers share.
pub struct Node {
    /// The validated configuration.
    pub config: Config,
    /// Name and actor id of this data directory.
    pub identity: Identity,
    /// The RocksDB store.
    pub storage: Storage,
    /// Exported metrics.
    pub metrics: Metrics,
    /// When the node started.
    pub started: Instant,
}

impl Node {
    /// Opens the data directory and loads (or creates) the node's identity.
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
        Ok(Arc::new(Node {
            config,
            identity,
            storage,
            metrics: Metrics::new(),
            started: Instant::now(),
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
}

/// Starts a node and serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let node = Node::open(config)?;
    tracing::info!(
        node = %node.identity.name,
        actor = %node.identity.actor,
        data_dir = %node.config.data_dir.display(),
        keys = node.storage.stats().keys,
        "node opened"
    );
    if node.config.cluster_secret.is_none() {
        tracing::warn!(
            "no cluster_secret set: any process that can reach {} can join the cluster",
            node.config.listen
        );
    }
    let listener = http::bind(&node.config).await?;
    tracing::info!(http = %node.config.http, "serving HTTP");
    http::serve(node, listener, shutdown).await
}
