//! Gossip (Dynamo §4.8): every `gossip_interval_ms` a node exchanges its
//! member table, and the cluster ring when the peer may lack it, with a
//! random peer; liveness follows from the heartbeats it learns, and the
//! claimant's ring changes spread the same way. The state machine itself is
//! `dynakv_membership`; this module drives it over RPC.

use std::sync::Arc;
use std::time::Duration;

use dynakv_membership::{GossipMessage, Outgoing, Status};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio_util::sync::CancellationToken;

use crate::server::cluster::rpc::{Request, Response};
use crate::server::core::Core;
use crate::server::metrics::{Reason, StatusLabel};
use crate::server::worker::{WorkerHandle, jittered_pause};

/// Answers a gossip message from a peer with this node's table.
pub async fn on_gossip(core: &Arc<Core>, message: GossipMessage) -> Response {
    let (structural, returned) = core.cluster.receive(&message);
    for addr in returned {
        core.rpc.reset_backoff(addr);
    }
    if structural {
        tracing::info!(from = %message.from, ring = core.cluster.stamp().version, "membership changed");
        core.persist_members().await;
        core.ring_changed.notify_one();
    }
    Response::Gossip(core.cluster.message_for(&message.from))
}

/// Runs a gossip round every `gossip_interval_ms` (with ±10% jitter, so nodes
/// started together do not gossip in lockstep) until `shutdown`.
pub async fn gossip_worker(node: Arc<Core>, worker: WorkerHandle, shutdown: CancellationToken) {
    let mut rng = StdRng::from_os_rng();
    while jittered_pause(&shutdown, node.config.gossip_interval_ms).await {
        worker.busy();
        let (outgoing, transitions, claimed) = node.cluster.tick(&mut rng);
        node.metrics.gossip_rounds.inc();
        if claimed {
            let ring = node.cluster.ring_state();
            tracing::info!(
                version = ring.version,
                moving = ring.moving.len(),
                "claimant: new ring version"
            );
            node.persist_members().await;
            node.ring_changed.notify_one();
        }
        for t in transitions {
            tracing::info!(member = %t.name, from = ?t.from, to = ?t.to, "member liveness changed");
            if t.to == Status::Up
                && let Some(addr) = node.cluster.rpc_addr(&t.name)
            {
                node.rpc.reset_backoff(addr);
            }
            let status = format!("{:?}", t.to).to_lowercase();
            node.metrics
                .liveness_changes
                .get_or_create(&StatusLabel { status })
                .inc();
        }
        refresh_member_gauges(&node);
        for message in outgoing {
            tokio::spawn(exchange(Arc::clone(&node), message));
        }
        worker.idle();
    }
}

fn refresh_member_gauges(node: &Core) {
    let view = node.cluster.view();
    for status in ["up", "suspect", "down", "joining", "leaving", "left"] {
        let count = view
            .iter()
            .filter(|m| format!("{:?}", m.status).to_lowercase() == status)
            .count();
        node.metrics
            .members
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .set(count as i64);
    }
}

/// One push-pull exchange: send our table, merge the answer.
async fn exchange(node: Arc<Core>, out: Outgoing) {
    let timeout = Duration::from_millis(node.config.gossip_interval_ms.max(200));
    let result = node
        .rpc
        .call(
            out.to,
            out.name.as_deref(),
            Request::Gossip(out.message),
            timeout,
        )
        .await;
    let outcome = match result {
        Ok(Response::Gossip(reply)) => {
            let (structural, returned) = node.cluster.receive(&reply);
            for addr in returned {
                node.rpc.reset_backoff(addr);
            }
            if structural {
                tracing::info!(from = %reply.from, ring = node.cluster.stamp().version, "membership changed");
                node.persist_members().await;
                node.ring_changed.notify_one();
            }
            "ok"
        }
        Ok(_) => "protocol",
        Err(e) => {
            tracing::debug!(to = %out.to, error = %e, "gossip exchange failed");
            e.label()
        }
    };
    node.metrics
        .gossip_exchanges
        .get_or_create(&Reason::from(outcome))
        .inc();
}
