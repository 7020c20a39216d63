//! The command line (SPEC §4): one binary, `dynakv`, with subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::server::config::{Config, ConfigError, QuorumMode};
use crate::tools::commands::{DeleteArgs, GetArgs, PlanArgs, PutArgs, RemoveArgs};
use crate::tools::common::{AdminArgs, NodeUrl};

/// dynakv: a leaderless, replicated, persistent key-value store (Dynamo-style).
#[derive(Parser, Debug)]
#[command(name = "dynakv", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a storage node.
    Node(Box<NodeArgs>),
    /// Run a local cluster on 127.0.0.1 (ports 7001.. and 8001..).
    Dev(crate::tools::dev::DevArgs),
    /// Read a key.
    Get(GetArgs),
    /// Write a key (reads it first and writes with its context unless --blind).
    Put(PutArgs),
    /// Delete a key.
    Delete(DeleteArgs),
    /// Show the node's view of the cluster.
    Status(NodeUrl),
    /// Run anti-entropy on a node now and print what it did.
    Repair(AdminArgs),
    /// Decommission the node: hand its partitions off, then leave.
    Leave(AdminArgs),
    /// Drop a dead member for good; the survivors restore its replicas.
    Remove(RemoveArgs),
    /// Preview a membership change: partitions and bytes that would move.
    Plan(PlanArgs),
    /// Generate load and report throughput and latency percentiles.
    Bench(crate::tools::bench::BenchArgs),
    /// Bulk-load JSON Lines or CSV records (writes without context).
    Load(crate::tools::load::LoadArgs),
    /// Write every key with its live siblings as JSON Lines.
    Export(crate::tools::load::ExportArgs),
    /// Bucket types, as riak-admin bucket-type: create, activate, update, status, list.
    #[command(name = "bucket-type")]
    BucketType(crate::tools::buckets::BucketTypeArgs),
    /// A bucket's properties: get, set, reset.
    Bucket(crate::tools::buckets::BucketArgs),
    /// TLS certificates: a CA for the cluster (init), one per node (node).
    Certs(crate::tools::certs::CertsArgs),
    /// Users and grants, as riak-admin security.
    Security(crate::tools::security::SecurityArgs),
}

/// `dynakv node`: every setting of SPEC §3 as a flag; each flag also reads the
/// `DYNAKV_<NAME>` environment variable. Flags beat the environment, which beats
/// the config file, which beats the defaults.
#[derive(Args, Debug, Default)]
pub struct NodeArgs {
    /// TOML config file (see dynakv.example.toml).
    #[arg(long, env = "DYNAKV_CONFIG")]
    pub config: Option<PathBuf>,
    /// Node name, unique in the cluster (default: host name).
    #[arg(long, env = "DYNAKV_NAME")]
    pub name: Option<String>,
    /// Data directory.
    #[arg(long, env = "DYNAKV_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Node-to-node address (default 127.0.0.1:7000).
    #[arg(long, env = "DYNAKV_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// HTTP address (default 127.0.0.1:8000).
    #[arg(long, env = "DYNAKV_HTTP")]
    pub http: Option<SocketAddr>,
    /// Riak Protocol Buffers address (default 127.0.0.1:8087).
    #[arg(long, env = "DYNAKV_PB")]
    pub pb: Option<SocketAddr>,
    /// This node's TLS certificate (PEM); with --tls-key and --tls-ca every
    /// listener speaks TLS only (reloaded on SIGHUP).
    #[arg(long, env = "DYNAKV_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, env = "DYNAKV_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The cluster CA certificate (PEM) peers are checked against.
    #[arg(long, env = "DYNAKV_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Node-to-node address other members dial (default: --listen; required
    /// when --listen is 0.0.0.0 or `[::]`).
    #[arg(long, env = "DYNAKV_ADVERTISE")]
    pub advertise: Option<SocketAddr>,
    /// HTTP address clients are told to use for this node (default: --http,
    /// or the --advertise host with its port when --http binds every address).
    #[arg(long, env = "DYNAKV_HTTP_ADVERTISE")]
    pub http_advertise: Option<SocketAddr>,
    /// Comma-separated node-to-node addresses of members to join through.
    #[arg(long, env = "DYNAKV_SEEDS", value_delimiter = ',')]
    pub seeds: Option<Vec<SocketAddr>>,
    /// Replicas per key.
    #[arg(long, env = "DYNAKV_N")]
    pub n: Option<usize>,
    /// Default read quorum.
    #[arg(long, env = "DYNAKV_R")]
    pub r: Option<usize>,
    /// Default write quorum.
    #[arg(long, env = "DYNAKV_W")]
    pub w: Option<usize>,
    /// Quorum mode: sloppy (AP, hinted handoff) or strict.
    #[arg(long, env = "DYNAKV_QUORUM")]
    pub quorum: Option<QuorumMode>,
    /// Availability zone.
    #[arg(long, env = "DYNAKV_ZONE")]
    pub zone: Option<String>,
    /// Relative ring share.
    #[arg(long, env = "DYNAKV_WEIGHT")]
    pub weight: Option<f64>,
    /// Gossip period in ms.
    #[arg(long, env = "DYNAKV_GOSSIP_INTERVAL_MS")]
    pub gossip_interval_ms: Option<u64>,
    /// Failure detection timeout in ms.
    #[arg(long, env = "DYNAKV_FAILURE_TIMEOUT_MS")]
    pub failure_timeout_ms: Option<u64>,
    /// Anti-entropy period in seconds.
    #[arg(long, env = "DYNAKV_ANTI_ENTROPY_INTERVAL_S")]
    pub anti_entropy_interval_s: Option<u64>,
    /// How long hints are kept for a down node, in seconds.
    #[arg(long, env = "DYNAKV_HINT_WINDOW_S")]
    pub hint_window_s: Option<u64>,
    /// How long tombstones are kept, in seconds.
    #[arg(long, env = "DYNAKV_TOMBSTONE_GRACE_S")]
    pub tombstone_grace_s: Option<u64>,
    /// Fsync the write-ahead log before acknowledging writes.
    #[arg(long, env = "DYNAKV_SYNC_WRITES", num_args = 0..=1, default_missing_value = "true")]
    pub sync_writes: Option<bool>,
    /// RocksDB block cache in MiB.
    #[arg(long, env = "DYNAKV_BLOCK_CACHE_MB")]
    pub block_cache_mb: Option<usize>,
    /// Cluster secret (prefer --cluster-secret-file or DYNAKV_CLUSTER_SECRET).
    #[arg(long, env = "DYNAKV_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secret.
    #[arg(long, env = "DYNAKV_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Admin bearer token (prefer --admin-token-file or DYNAKV_ADMIN_TOKEN).
    #[arg(long, env = "DYNAKV_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin token.
    #[arg(long, env = "DYNAKV_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Largest accepted value in bytes.
    #[arg(long, env = "DYNAKV_MAX_VALUE_BYTES")]
    pub max_value_bytes: Option<usize>,
    /// Most live siblings a write may leave.
    #[arg(long, env = "DYNAKV_MAX_SIBLINGS")]
    pub max_siblings: Option<usize>,
    /// Most concurrent HTTP connections.
    #[arg(long, env = "DYNAKV_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Default quorum wait in ms.
    #[arg(long, env = "DYNAKV_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Partitions sent or received at once during ownership handoff.
    #[arg(long, env = "DYNAKV_TRANSFER_LIMIT")]
    pub transfer_limit: Option<usize>,
    /// Cap on outgoing handoff traffic in MB/s.
    #[arg(long, env = "DYNAKV_TRANSFER_RATE_MB_S")]
    pub transfer_rate_mb_s: Option<f64>,
    /// Enable POST /admin/faults (for tests).
    #[arg(long, env = "DYNAKV_FAULT_INJECTION", num_args = 0..=1, default_missing_value = "true")]
    pub fault_injection: Option<bool>,
}

fn read_secret(path: &PathBuf) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))
}

impl NodeArgs {
    /// Builds the configuration: defaults, then the file, then environment and flags.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                Config::from_toml(&path.display().to_string(), &text)?
            }
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = &self.$field { c.$field = v.clone(); }
            )*};
        }
        set!(
            name,
            data_dir,
            listen,
            http,
            pb,
            seeds,
            n,
            r,
            w,
            quorum,
            weight,
            gossip_interval_ms,
            failure_timeout_ms,
            anti_entropy_interval_s,
            hint_window_s,
            tombstone_grace_s,
            sync_writes,
            block_cache_mb,
            max_value_bytes,
            max_siblings,
            max_connections,
            request_timeout_ms,
            transfer_limit,
            transfer_rate_mb_s,
            fault_injection
        );
        if let Some(z) = &self.zone {
            c.zone = Some(z.clone());
        }
        if let Some(a) = self.advertise {
            c.advertise = Some(a);
        }
        if let Some(p) = &self.tls_cert {
            c.tls_cert = Some(p.clone());
        }
        if let Some(p) = &self.tls_key {
            c.tls_key = Some(p.clone());
        }
        if let Some(p) = &self.tls_ca {
            c.tls_ca = Some(p.clone());
        }
        if let Some(a) = self.http_advertise {
            c.http_advertise = Some(a);
        }
        if let Some(s) = &self.cluster_secret {
            c.cluster_secret = Some(s.clone());
        }
        if let Some(p) = &self.cluster_secret_file {
            c.cluster_secret = Some(read_secret(p)?);
        }
        if let Some(s) = &self.admin_token {
            c.admin_token = Some(s.clone());
        }
        if let Some(p) = &self.admin_token_file {
            c.admin_token = Some(read_secret(p)?);
        }
        if c.name.is_empty() {
            c.name = gethostname::gethostname().to_string_lossy().into_owned();
        }
        c.validate()?;
        Ok(c)
    }
}
