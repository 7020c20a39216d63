//! Prometheus metrics (`GET /metrics`): what the node does, in counters,
//! histograms and gauges refreshed at scrape time.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use dynakv_storage::StorageStats;

/// The client-facing operations.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Op {
    /// GET /kv/{key}
    Get,
    /// PUT /kv/{key}
    Put,
    /// DELETE /kv/{key}
    Delete,
    /// Everything else (admin, health, metrics).
    Other,
}

/// Labels of per-operation metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// The operation.
    pub op: Op,
}

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The operation.
    pub op: Op,
    /// The HTTP status answered.
    pub status: u16,
}

/// A free-form reason label (error kinds, frame rejections, statuses).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The reason.
    pub reason: String,
}

impl From<&str> for Reason {
    fn from(s: &str) -> Self {
        Reason {
            reason: s.to_string(),
        }
    }
}

/// A member-status label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// up, suspect, down, leaving or left.
    pub status: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by operation and status.
    pub requests: Family<RequestLabels, Counter>,
    /// HTTP request latency by operation.
    pub latency: Family<OpLabels, Histogram, fn() -> Histogram>,
    /// Requests that failed for want of a quorum.
    pub quorum_failures: Family<OpLabels, Counter>,
    /// Stale or missing replicas repaired after a read.
    pub read_repairs: Counter,
    /// Reads that asked one more replica because the first ones were slow.
    pub speculative_reads: Counter,
    /// Writes this node received without being a replica of the key, and
    /// forwarded to one.
    pub forwarded_writes: Counter,
    /// Requests whose key the ring gave no replica (a bug: answered 500).
    pub placement_errors: Counter,
    /// Replica writes stored as part of a run merged in one storage write.
    pub replica_writes_merged: Counter,
    /// Storage writes of the coordinator's group commit: each holds the
    /// local updates of one or more coordinated writes.
    pub local_write_batches: Counter,
    /// Records that failed to decode on disk.
    pub corrupt_records: Counter,
    /// Hints stored (on this node, for other replicas).
    pub hints_stored: Counter,
    /// Hints delivered to their replica and deleted.
    pub hints_delivered: Counter,
    /// Hints dropped after `hint_window_s` (anti-entropy repairs those keys).
    pub hints_expired: Counter,
    /// Anti-entropy passes run.
    pub ae_passes: Counter,
    /// (partition, peer) pairs compared.
    pub ae_ranges_compared: Counter,
    /// Pairs whose trees differed.
    pub ae_ranges_differing: Counter,
    /// Keys repaired by anti-entropy.
    pub ae_keys_repaired: Counter,
    /// Anti-entropy bytes sent.
    pub ae_bytes_sent: Counter,
    /// Anti-entropy bytes received.
    pub ae_bytes_received: Counter,
    /// Tombstones purged.
    pub ae_tombstones_purged: Counter,
    /// Duration of the last pass.
    pub ae_last_pass_ms: Gauge,
    /// Node-to-node requests sent.
    pub rpc_requests: Counter,
    /// Node-to-node calls that failed, by kind.
    pub rpc_errors: Family<Reason, Counter>,
    /// Node-to-node frames rejected (corrupt, oversized, undecodable), by reason.
    pub frame_errors: Family<Reason, Counter>,
    /// Peers refused because they could not prove the cluster secret.
    pub handshake_refused: Counter,
    /// Gossip rounds run.
    pub gossip_rounds: Counter,
    /// Gossip exchanges, by outcome.
    pub gossip_exchanges: Family<Reason, Counter>,
    /// Liveness changes seen, by new status.
    pub liveness_changes: Family<StatusLabel, Counter>,
    /// Members by liveness, as seen by this node.
    pub members: Family<StatusLabel, Gauge>,
    /// Partitions fully received by ownership handoff.
    pub transfer_partitions_received: Counter,
    /// Partitions fully sent by ownership handoff (last batch served).
    pub transfer_partitions_sent: Counter,
    /// Keys received by ownership handoff.
    pub transfer_keys_received: Counter,
    /// Keys sent by ownership handoff.
    pub transfer_keys_sent: Counter,
    /// Bytes of records received by ownership handoff.
    pub transfer_bytes_received: Counter,
    /// Bytes of records sent by ownership handoff.
    pub transfer_bytes_sent: Counter,
    /// Time to receive one partition, first batch to confirmed copy.
    pub transfer_duration: Histogram,
    /// Handoff attempts that failed, by reason (they are retried).
    pub transfer_failures: Family<Reason, Counter>,
    /// Partitions this node stopped replicating and deleted after handoff.
    pub partitions_dropped: Counter,
    /// Keys deleted with them.
    pub keys_dropped: Counter,
    /// Version of the cluster ring this node serves.
    pub ring_version: Gauge,
    /// Partitions this node still has to send or receive.
    pub transfers_pending: Gauge,
    /// Background workers restarted after a panic, by worker.
    pub worker_restarts: Family<Reason, Gauge>,
    /// Request handlers that panicked (answered 500; the node kept serving).
    pub handler_panics: Counter,
    /// Node-to-node requests refused as invalid (numbers or lengths out of
    /// bounds), by kind.
    pub rpc_invalid: Family<Reason, Counter>,
    keys: Gauge,
    hints_pending: Gauge,
    sst_bytes: Gauge,
    memtable_bytes: Gauge,
    block_cache_hits: Gauge,
    block_cache_misses: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dynakv");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            quorum_failures: Family::default(),
            read_repairs: Counter::default(),
            speculative_reads: Counter::default(),
            forwarded_writes: Counter::default(),
            placement_errors: Counter::default(),
            replica_writes_merged: Counter::default(),
            local_write_batches: Counter::default(),
            corrupt_records: Counter::default(),
            hints_stored: Counter::default(),
            hints_delivered: Counter::default(),
            hints_expired: Counter::default(),
            ae_passes: Counter::default(),
            ae_ranges_compared: Counter::default(),
            ae_ranges_differing: Counter::default(),
            ae_keys_repaired: Counter::default(),
            ae_bytes_sent: Counter::default(),
            ae_bytes_received: Counter::default(),
            ae_tombstones_purged: Counter::default(),
            ae_last_pass_ms: Gauge::default(),
            rpc_requests: Counter::default(),
            rpc_errors: Family::default(),
            frame_errors: Family::default(),
            handshake_refused: Counter::default(),
            gossip_rounds: Counter::default(),
            gossip_exchanges: Family::default(),
            liveness_changes: Family::default(),
            members: Family::default(),
            transfer_partitions_received: Counter::default(),
            transfer_partitions_sent: Counter::default(),
            transfer_keys_received: Counter::default(),
            transfer_keys_sent: Counter::default(),
            transfer_bytes_received: Counter::default(),
            transfer_bytes_sent: Counter::default(),
            transfer_duration: Histogram::new(exponential_buckets(0.001, 4.0, 12)),
            transfer_failures: Family::default(),
            partitions_dropped: Counter::default(),
            keys_dropped: Counter::default(),
            ring_version: Gauge::default(),
            transfers_pending: Gauge::default(),
            worker_restarts: Family::default(),
            handler_panics: Counter::default(),
            rpc_invalid: Family::default(),
            keys: Gauge::default(),
            hints_pending: Gauge::default(),
            sst_bytes: Gauge::default(),
            memtable_bytes: Gauge::default(),
            block_cache_hits: Gauge::default(),
            block_cache_misses: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by operation and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by operation",
            m.latency.clone(),
        );
        registry.register(
            "quorum_failures",
            "Requests that could not reach their quorum",
            m.quorum_failures.clone(),
        );
        registry.register(
            "read_repairs",
            "Replicas repaired after a read",
            m.read_repairs.clone(),
        );
        registry.register(
            "speculative_reads",
            "Reads that asked one more replica because the first ones were slow",
            m.speculative_reads.clone(),
        );
        registry.register(
            "forwarded_writes",
            "Writes received by a node that is not a replica of the key, forwarded to one",
            m.forwarded_writes.clone(),
        );
        registry.register(
            "placement_errors",
            "Requests whose key the ring gave no replica (a bug; answered 500)",
            m.placement_errors.clone(),
        );
        registry.register(
            "replica_writes_merged",
            "Replica writes that arrived together and were stored in one storage write",
            m.replica_writes_merged.clone(),
        );
        registry.register(
            "local_write_batches",
            "Storage writes holding the local updates of one or more coordinated writes (group commit)",
            m.local_write_batches.clone(),
        );
        registry.register(
            "corrupt_records",
            "Records that failed to decode on disk",
            m.corrupt_records.clone(),
        );
        registry.register(
            "anti_entropy_passes",
            "Anti-entropy passes run",
            m.ae_passes.clone(),
        );
        registry.register(
            "anti_entropy_ranges_compared",
            "Ranges compared with a peer",
            m.ae_ranges_compared.clone(),
        );
        registry.register(
            "anti_entropy_ranges_differing",
            "Ranges that differed",
            m.ae_ranges_differing.clone(),
        );
        registry.register(
            "anti_entropy_keys_repaired",
            "Keys repaired by anti-entropy",
            m.ae_keys_repaired.clone(),
        );
        registry.register(
            "anti_entropy_bytes_sent",
            "Anti-entropy bytes sent",
            m.ae_bytes_sent.clone(),
        );
        registry.register(
            "anti_entropy_bytes_received",
            "Anti-entropy bytes received",
            m.ae_bytes_received.clone(),
        );
        registry.register(
            "tombstones_purged",
            "Tombstones purged",
            m.ae_tombstones_purged.clone(),
        );
        registry.register(
            "anti_entropy_last_pass_ms",
            "Duration of the last pass",
            m.ae_last_pass_ms.clone(),
        );
        registry.register(
            "hints_stored",
            "Hints stored for other replicas",
            m.hints_stored.clone(),
        );
        registry.register(
            "hints_delivered",
            "Hints delivered and deleted",
            m.hints_delivered.clone(),
        );
        registry.register(
            "hints_expired",
            "Hints dropped after hint_window_s",
            m.hints_expired.clone(),
        );
        registry.register(
            "rpc_requests",
            "Node-to-node requests sent",
            m.rpc_requests.clone(),
        );
        registry.register(
            "rpc_errors",
            "Node-to-node calls that failed, by kind",
            m.rpc_errors.clone(),
        );
        registry.register(
            "rpc_frame_errors",
            "Node-to-node frames rejected, by reason",
            m.frame_errors.clone(),
        );
        registry.register(
            "rpc_handshake_refused",
            "Peers refused for failing to prove the cluster secret",
            m.handshake_refused.clone(),
        );
        registry.register(
            "gossip_rounds",
            "Gossip rounds run",
            m.gossip_rounds.clone(),
        );
        registry.register(
            "gossip_exchanges",
            "Gossip exchanges by outcome",
            m.gossip_exchanges.clone(),
        );
        registry.register(
            "liveness_changes",
            "Member liveness changes, by new status",
            m.liveness_changes.clone(),
        );
        registry.register("members", "Members by liveness", m.members.clone());
        for (name, help, c) in [
            (
                "transfer_partitions_received",
                "Partitions fully received by ownership handoff",
                &m.transfer_partitions_received,
            ),
            (
                "transfer_partitions_sent",
                "Partitions fully sent by ownership handoff",
                &m.transfer_partitions_sent,
            ),
            (
                "transfer_keys_received",
                "Keys received by ownership handoff",
                &m.transfer_keys_received,
            ),
            (
                "transfer_keys_sent",
                "Keys sent by ownership handoff",
                &m.transfer_keys_sent,
            ),
            (
                "transfer_bytes_received",
                "Record bytes received by ownership handoff",
                &m.transfer_bytes_received,
            ),
            (
                "transfer_bytes_sent",
                "Record bytes sent by ownership handoff",
                &m.transfer_bytes_sent,
            ),
            (
                "partitions_dropped",
                "Partitions deleted after their new replicas confirmed them",
                &m.partitions_dropped,
            ),
            (
                "keys_dropped",
                "Keys deleted with dropped partitions",
                &m.keys_dropped,
            ),
        ] {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "transfer_duration_seconds",
            "Time to receive one partition",
            m.transfer_duration.clone(),
        );
        registry.register(
            "transfer_failures",
            "Ownership handoff attempts that failed, by reason",
            m.transfer_failures.clone(),
        );
        registry.register(
            "ring_version",
            "Version of the cluster ring this node serves",
            m.ring_version.clone(),
        );
        registry.register(
            "worker_restarts",
            "Background workers restarted after a panic, by worker",
            m.worker_restarts.clone(),
        );
        registry.register(
            "rpc_invalid_requests",
            "Node-to-node requests refused as invalid, by kind",
            m.rpc_invalid.clone(),
        );
        registry.register(
            "handler_panics",
            "Request handlers that panicked and answered 500",
            m.handler_panics.clone(),
        );
        registry.register(
            "transfers_pending",
            "Partitions this node still has to send or receive",
            m.transfers_pending.clone(),
        );
        registry.register("keys", "Keys stored on this node", m.keys.clone());
        registry.register(
            "hints_pending",
            "Hints held for other nodes",
            m.hints_pending.clone(),
        );
        registry.register(
            "rocksdb_sst_bytes",
            "Size of live SST files",
            m.sst_bytes.clone(),
        );
        registry.register(
            "rocksdb_memtable_bytes",
            "Size of memtables",
            m.memtable_bytes.clone(),
        );
        registry.register(
            "rocksdb_block_cache_hits",
            "Block cache hits since start",
            m.block_cache_hits.clone(),
        );
        registry.register(
            "rocksdb_block_cache_misses",
            "Block cache misses since start",
            m.block_cache_misses.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition, with storage gauges refreshed from `stats`.
    pub fn render(&self, stats: &StorageStats) -> String {
        let g = |v: u64| v.min(i64::MAX as u64) as i64;
        self.keys.set(g(stats.keys));
        self.hints_pending.set(g(stats.hints));
        self.sst_bytes.set(g(stats.sst_bytes));
        self.memtable_bytes.set(g(stats.memtable_bytes));
        self.block_cache_hits.set(g(stats.block_cache_hits));
        self.block_cache_misses.set(g(stats.block_cache_misses));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
