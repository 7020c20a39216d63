//! The node: everything that runs inside `dynakv node`. The folders are its
//! three jobs: [`cluster`] (the member table and the ring as this node sees
//! them, node-to-node RPC), [`replication`] (the Dynamo machinery over each
//! key's replicas) and [`api`] (the client-facing front-ends); the files
//! beside them are what those share, and [`gossip`], the worker that keeps
//! the cluster view current.
//!
//! Read it in this order; each module depends only on those above it:
//!
//! 1. [`config`] — the validated settings, from defaults, a TOML file,
//!    environment and flags; [`clock`], the one clock;
//! 2. [`metrics`] — what the node counts, exported at `/metrics`; [`error`],
//!    the error of a coordinated request, shared by every layer it crosses;
//!    [`limits`], the bounds on what unauthenticated peers can make it do;
//!    [`tls`], the certificates every listener speaks TLS with;
//! 3. [`cluster::rpc`] — the node-to-node protocol: framing,
//!    authentication, connections, the request and response types;
//! 4. [`cluster`] — the member table and the ring every node derives from
//!    the cluster's agreed change log;
//! 5. [`worker`] — background loops as named, supervised workers;
//! 6. [`core`] — what every part works through: storage, the cluster view
//!    and RPC (with configuration, identity and metrics), the cluster
//!    metadata ([`buckets`], [`security`]), and the [`handoff_budget`] that
//!    paces ownership and hinted handoff together;
//! 7. the parts, each over a [`core::Core`] and nothing of one another:
//!    [`gossip`] (membership and liveness), and in [`replication`]:
//!    the [`replication::coordinator`] (quorum reads and writes, sloppy
//!    quorum, read repair: the request path) with its
//!    [`replication::group_commit`], [`replication::hinted_handoff`],
//!    [`replication::anti_entropy`] (Merkle-tree repair and tombstone purge),
//!    [`replication::ownership_handoff`] (which runs anti-entropy exchanges
//!    after a copy) and [`replication::ingest`] (bulk load as SST files);
//! 8. [`node`] — the parts wired together, and node-to-node requests handed
//!    to them;
//! 9. [`api`] — the client-facing HTTP API (native and admin) over a
//!    [`node::Node`];
//! 10. [`run`] — opening the node and serving until shutdown.

pub mod api;
pub mod buckets;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod core;
pub mod error;
pub mod gossip;
pub mod handoff_budget;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod replication;
pub mod security;
pub mod tls;
pub mod worker;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use config::Config;
use node::Node;

/// Says, once at start, what of the node is open to whoever reaches its
/// ports.
fn warn_what_is_open(config: &Config, security_on: bool) {
    let mut open = Vec::new();
    if config.cluster_secret.is_none() {
        open.push(format!(
            "no cluster_secret: any process that reaches {} can join the cluster",
            config.listen
        ));
    }
    if config.tls_cert.is_none() {
        open.push("no TLS: client, PB and node-to-node traffic is plain text".to_string());
    }
    if config.admin_token.is_none() {
        open.push("no admin_token: POST /admin/* and export are open".to_string());
    }
    if !security_on {
        open.push("security is off: requests need no credential (dynakv security enable)".into());
    }
    if open.is_empty() {
        return;
    }
    tracing::warn!(open = %open.join("; "), "what this node leaves open");
}

/// Starts a node and serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::info!(data_dir = %config.data_dir.display(), "opening the data directory");
    let node = Node::open(config)?;
    tracing::info!(
        node = %node.core.identity.name,
        actor = %node.core.identity.actor,
        data_dir = %node.core.config.data_dir.display(),
        keys = node.core.storage.stats().keys,
        members = node.core.cluster.view().len(),
        "node opened"
    );
    warn_what_is_open(&node.core.config, node.core.security.enabled());
    if let Some(tls) = node.core.rpc_shared.tls.clone() {
        // SIGHUP reads the certificate files again (renewed certificates
        // take effect for new connections without a restart).
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!("TLS certificates reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS certificates not reloaded; the old ones stay in use")
                    }
                }
            }
        });
    }
    let rpc_listener = tokio::net::TcpListener::bind(node.core.config.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen for nodes on {}: {e}",
                node.core.config.listen
            )
        })?;
    let http_listener = api::bind(&node.core.config, node.core.rpc_shared.tls.clone()).await?;
    let pb_listener = tokio::net::TcpListener::bind(node.core.config.pb)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen for Riak Protocol Buffers on {}: {e}",
                node.core.config.pb
            )
        })?;
    node.core.persist_members().await;

    let rpc_shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(cluster::rpc::serve(
        rpc_listener,
        Arc::clone(&node.core.rpc_shared),
        Arc::clone(&node),
        rpc_shutdown.clone(),
    ));
    // The node's workers, each a value holding its state (server::worker).
    let core = Arc::clone(&node.core);
    node.workers
        .start(move || gossip::GossipWorker::new(Arc::clone(&core)));
    let core = Arc::clone(&node.core);
    node.workers
        .start(move || replication::hinted_handoff::HintedHandoffWorker::new(Arc::clone(&core)));
    let ae = Arc::clone(&node.ae);
    node.workers
        .start(move || replication::anti_entropy::AntiEntropyWorker::new(Arc::clone(&ae)));
    let transfers = Arc::clone(&node.transfers);
    node.workers.start(move || {
        replication::ownership_handoff::OwnershipHandoffWorker::new(Arc::clone(&transfers))
    });
    {
        // A node that left the cluster stops itself.
        let (stop, on_stop) = (node.core.stop.clone(), shutdown.clone());
        tasks.spawn(async move {
            stop.cancelled().await;
            on_stop.cancel();
        });
        // From the first shutdown signal on, health says so.
        let (n, shutdown) = (Arc::clone(&node), shutdown.clone());
        tasks.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = n.core.stop.cancelled() => {}
            }
            n.begin_shutdown();
        });
    }
    tasks.spawn(api::pb::serve(
        Arc::clone(&node),
        pb_listener,
        shutdown.clone(),
    ));
    tracing::info!(rpc = %node.core.config.listen, http = %node.core.config.http, pb = %node.core.config.pb, "serving");

    let served = api::serve(Arc::clone(&node), http_listener, shutdown).await;
    node.workers.stop().await;
    rpc_shutdown.cancel();
    node.core.stop.cancel();
    while tasks.join_next().await.is_some() {}
    node.core.persist_members().await;
    served
}
