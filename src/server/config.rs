//! Node configuration (SPEC §3): one documented struct with defaults, loaded from a
//! TOML file, overridden by `DYNAKV_*` environment variables, overridden by flags,
//! and validated before the node starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How replicas count toward a quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum QuorumMode {
    /// AP: fallback nodes holding hints count toward W and R.
    Sloppy,
    /// CP-leaning: only the key's own first N replicas count.
    Strict,
}

impl std::str::FromStr for QuorumMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sloppy" => Ok(QuorumMode::Sloppy),
            "strict" => Ok(QuorumMode::Strict),
            other => Err(format!("quorum must be sloppy or strict, not {other:?}")),
        }
    }
}

/// Everything a node is configured with. Field docs are the reference; the
/// commented example is `dynakv.example.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Node name, unique in the cluster (default: the host name).
    pub name: String,
    /// Data directory (required).
    pub data_dir: PathBuf,
    /// Node-to-node address; outgoing connections are also opened from its IP.
    pub listen: SocketAddr,
    /// HTTP API address (dynakv's and Riak's HTTP API).
    pub http: SocketAddr,
    /// Riak Protocol Buffers API address.
    pub pb: SocketAddr,
    /// The node-to-node address other members reach this node at (default:
    /// `listen`). Required when `listen` binds every address (0.0.0.0, ::).
    pub advertise: Option<SocketAddr>,
    /// The HTTP address clients and other members are told to use for this
    /// node (default: `http`, or the `advertise` host with `http`'s port when
    /// `http` binds every address).
    pub http_advertise: Option<SocketAddr>,
    /// Node-to-node addresses of existing members to join through.
    pub seeds: Vec<SocketAddr>,
    /// Replicas per key.
    pub n: usize,
    /// Default read quorum.
    pub r: usize,
    /// Default write quorum.
    pub w: usize,
    /// Default quorum mode.
    pub quorum: QuorumMode,
    /// Availability zone of this node.
    pub zone: Option<String>,
    /// Relative share of the ring this node takes.
    pub weight: f64,
    /// Heartbeat and gossip period.
    pub gossip_interval_ms: u64,
    /// Silence after which a member is `down` (`suspect` from half of it).
    pub failure_timeout_ms: u64,
    /// How often each range is compared with its other replicas.
    pub anti_entropy_interval_s: u64,
    /// How long hints are kept for a down node.
    pub hint_window_s: u64,
    /// How long tombstones are kept once every replica holds them.
    pub tombstone_grace_s: u64,
    /// Fsync the write-ahead log before acknowledging writes.
    pub sync_writes: bool,
    /// RocksDB block cache size.
    pub block_cache_mb: usize,
    /// Shared secret node-to-node connections must prove.
    #[serde(skip_serializing)]
    pub cluster_secret: Option<String>,
    /// Bearer token required by `POST /admin/*`.
    #[serde(skip_serializing)]
    pub admin_token: Option<String>,
    /// Largest value accepted.
    pub max_value_bytes: usize,
    /// Most live siblings a write may leave.
    pub max_siblings: usize,
    /// Most concurrent HTTP connections.
    pub max_connections: usize,
    /// Default time a coordinator waits for a quorum.
    pub request_timeout_ms: u64,
    /// Partitions this node sends or receives at once during ownership handoff.
    pub transfer_limit: usize,
    /// Cap on this node's outgoing handoff bytes (MB/s: partitions streamed and
    /// hints delivered, together), so client latency holds.
    pub transfer_rate_mb_s: f64,
    /// Enables `POST /admin/faults` (tests only).
    pub fault_injection: bool,
    /// This node's TLS certificate (PEM). With `tls_key` and `tls_ca`, every
    /// listener speaks TLS only: HTTP, PB (after `RpbStartTls`) and
    /// node-to-node (mutual, against the CA). Reloaded on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The cluster CA's certificate (PEM).
    pub tls_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: String::new(),
            data_dir: PathBuf::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            http: SocketAddr::from(([127, 0, 0, 1], 8000)),
            pb: SocketAddr::from(([127, 0, 0, 1], 8087)),
            advertise: None,
            http_advertise: None,
            seeds: Vec::new(),
            n: 3,
            r: 2,
            w: 2,
            quorum: QuorumMode::Sloppy,
            zone: None,
            weight: 1.0,
            gossip_interval_ms: 1000,
            failure_timeout_ms: 5000,
            anti_entropy_interval_s: 600,
            hint_window_s: 10_800,
            tombstone_grace_s: 86_400,
            sync_writes: false,
            block_cache_mb: 256,
            cluster_secret: None,
            admin_token: None,
            max_value_bytes: 1 << 20,
            max_siblings: 64,
            max_connections: 1024,
            request_timeout_ms: 5000,
            transfer_limit: 2,
            transfer_rate_mb_s: 64.0,
            fault_injection: false,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
        }
    }
}

/// A setting that stops the node at start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

impl Config {
    /// Parses a TOML config file's text; unknown keys are errors.
    pub fn from_toml(path: &str, text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| {
                text.as_bytes()[..s.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            });
            let msg = e.message().replace('\n', " ");
            match line {
                Some(l) => invalid(format!("config file {path}, line {l}: {msg}")),
                None => invalid(format!("config file {path}: {msg}")),
            }
        })
    }

    /// The node-to-node address members dial: `advertise`, or `listen`.
    pub fn rpc_advertise(&self) -> SocketAddr {
        self.advertise.unwrap_or(self.listen)
    }

    /// The HTTP address this node advertises: `http_advertise`, or `http`
    /// (with the `advertise` host when `http` binds every address).
    pub fn http_advertise(&self) -> SocketAddr {
        match (self.http_advertise, self.advertise) {
            (Some(a), _) => a,
            (None, Some(rpc)) if self.http.ip().is_unspecified() => {
                SocketAddr::new(rpc.ip(), self.http.port())
            }
            _ => self.http,
        }
    }

    /// Checks every setting; the error is one line naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("--data-dir is required"));
        }
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(format!(
                "name {:?} must be 1-64 characters of A-Z a-z 0-9 - _ .",
                self.name
            )));
        }
        if self.n == 0 || self.n > 16 {
            return Err(invalid(format!("n = {} must be between 1 and 16", self.n)));
        }
        if self.r == 0 || self.r > self.n {
            return Err(invalid(format!(
                "r = {} must be between 1 and n = {}",
                self.r, self.n
            )));
        }
        if self.w == 0 || self.w > self.n {
            return Err(invalid(format!(
                "w = {} must be between 1 and n = {}",
                self.w, self.n
            )));
        }
        if self.listen == self.http {
            return Err(invalid(format!(
                "listen and http must differ (both {})",
                self.listen
            )));
        }
        if self.pb == self.http || self.pb == self.listen {
            return Err(invalid(format!(
                "pb ({}) must differ from listen and http",
                self.pb
            )));
        }
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) | (Some(_), Some(_), Some(_)) => {}
            _ => {
                return Err(invalid(
                    "TLS needs all three of tls_cert, tls_key and tls_ca (dynakv certs makes them)",
                ));
            }
        }
        if self.tls_cert.is_some()
            && (rustls::pki_types::ServerName::try_from(self.name.as_str()).is_err()
                || self.name.contains('_'))
        {
            return Err(invalid(format!(
                "with TLS, name {:?} must be a DNS name (letters, digits, - and .): peers check it against the node's certificate",
                self.name
            )));
        }
        // Members dial what a node advertises: an address that means "every
        // address here" would have them dial themselves.
        if self.rpc_advertise().ip().is_unspecified() {
            return Err(invalid(format!(
                "listen = {} binds every address, which other nodes cannot dial: give --advertise HOST:PORT, the address they reach this node at",
                self.listen
            )));
        }
        if self.http_advertise().ip().is_unspecified() {
            return Err(invalid(format!(
                "{} is not an address clients can reach: give --http-advertise HOST:PORT",
                self.http_advertise()
            )));
        }
        if self.advertise.is_some_and(|a| a.port() == 0)
            || self.http_advertise.is_some_and(|a| a.port() == 0)
        {
            return Err(invalid("an advertised address needs a port"));
        }
        if !(self.weight.is_finite() && self.weight > 0.0 && self.weight <= 100.0) {
            return Err(invalid(format!(
                "weight = {} must be in (0, 100]",
                self.weight
            )));
        }
        if self.gossip_interval_ms == 0 {
            return Err(invalid("gossip_interval_ms must be positive"));
        }
        if self.failure_timeout_ms < 2 * self.gossip_interval_ms {
            return Err(invalid(format!(
                "failure_timeout_ms = {} must be at least twice gossip_interval_ms = {}",
                self.failure_timeout_ms, self.gossip_interval_ms
            )));
        }
        if self.anti_entropy_interval_s == 0 {
            return Err(invalid("anti_entropy_interval_s must be positive"));
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > 64 << 20 {
            return Err(invalid(format!(
                "max_value_bytes = {} must be between 1 and 67108864",
                self.max_value_bytes
            )));
        }
        if self.max_siblings == 0 {
            return Err(invalid("max_siblings must be positive"));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections must be positive"));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("request_timeout_ms must be positive"));
        }
        if self.hint_window_s >= self.tombstone_grace_s {
            return Err(invalid(format!(
                "hint_window_s = {} must be below tombstone_grace_s = {}: a hint delivered after its key's tombstones were purged could bring a deleted value back",
                self.hint_window_s, self.tombstone_grace_s
            )));
        }
        if self.transfer_limit == 0 || self.transfer_limit > 64 {
            return Err(invalid(format!(
                "transfer_limit = {} must be between 1 and 64",
                self.transfer_limit
            )));
        }
        if !(self.transfer_rate_mb_s.is_finite() && self.transfer_rate_mb_s > 0.0) {
            return Err(invalid(format!(
                "transfer_rate_mb_s = {} must be positive",
                self.transfer_rate_mb_s
            )));
        }
        if self.block_cache_mb == 0 {
            return Err(invalid("block_cache_mb must be positive"));
        }
        if let Some(z) = &self.zone
            && z.is_empty()
        {
            return Err(invalid("zone must not be empty"));
        }
        if matches!(&self.cluster_secret, Some(s) if s.is_empty()) {
            return Err(invalid("cluster_secret must not be empty"));
        }
        if matches!(&self.admin_token, Some(s) if s.is_empty()) {
            return Err(invalid("admin_token must not be empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Config {
        Config {
            name: "n1".into(),
            data_dir: "/tmp/x".into(),
            ..Config::default()
        }
    }

    #[test]
    fn defaults_are_valid_once_a_data_dir_is_given() {
        valid().validate().expect("valid");
        assert!(Config::default().validate().is_err());
    }

    #[test]
    fn hints_must_expire_before_tombstones_are_purged() {
        let c = Config {
            hint_window_s: 100,
            tombstone_grace_s: 100,
            ..valid()
        };
        assert!(
            c.validate()
                .expect_err("window >= grace")
                .0
                .contains("hint_window_s")
        );
    }

    #[test]
    fn quorums_above_n_are_refused() {
        let c = Config { r: 4, ..valid() };
        assert!(c.validate().expect_err("r > n").0.contains("r = 4"));
        let c = Config { w: 0, ..valid() };
        assert!(c.validate().is_err());
    }

    #[test]
    fn an_address_of_every_interface_is_never_advertised() {
        let any: SocketAddr = "0.0.0.0:7000".parse().expect("addr");
        let c = Config {
            listen: any,
            ..valid()
        };
        let err = c.validate().expect_err("0.0.0.0 advertised").0;
        assert!(err.contains("--advertise"), "{err}");
        assert!(!err.contains('\n'));
        let c = Config {
            listen: any,
            http: "0.0.0.0:8000".parse().expect("addr"),
            advertise: Some("10.1.2.3:7000".parse().expect("addr")),
            ..valid()
        };
        c.validate().expect("advertised");
        assert_eq!(c.rpc_advertise(), "10.1.2.3:7000".parse().expect("addr"));
        assert_eq!(c.http_advertise(), "10.1.2.3:8000".parse().expect("addr"));
        let c = Config {
            advertise: Some("[::]:7000".parse().expect("addr")),
            ..valid()
        };
        assert!(c.validate().is_err(), "[::] as advertise");
        let c = Config {
            http_advertise: Some("0.0.0.0:8000".parse().expect("addr")),
            ..valid()
        };
        assert!(c.validate().is_err(), "0.0.0.0 as http advertise");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused_with_a_line() {
        let err = Config::from_toml("x.toml", "n = 3\nbogus = 1\n").expect_err("unknown key");
        assert!(err.0.contains("line 2"), "{}", err.0);
        assert!(err.0.contains("bogus"), "{}", err.0);
        assert!(!err.0.contains('\n'));
    }

    #[test]
    fn the_example_file_is_valid_and_matches_the_defaults() {
        let text = include_str!("../../dynakv.example.toml");
        let mut c = Config::from_toml("dynakv.example.toml", text).expect("example parses");
        c.name = "n1".into();
        c.validate().expect("example is valid");
        let d = Config::default();
        assert_eq!((c.n, c.r, c.w, c.quorum), (d.n, d.r, d.w, d.quorum));
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.tombstone_grace_s, d.tombstone_grace_s);
        assert_eq!(c.max_value_bytes, d.max_value_bytes);
    }

    #[test]
    fn file_values_parse() {
        let c = Config::from_toml(
            "x.toml",
            "n = 5\nquorum = \"strict\"\nseeds = [\"127.0.0.1:7002\"]\n",
        )
        .expect("parses");
        assert_eq!(c.n, 5);
        assert_eq!(c.quorum, QuorumMode::Strict);
        assert_eq!(c.seeds.len(), 1);
    }
}
