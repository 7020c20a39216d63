//! `dynakv bench`: a load generator for a running cluster, reporting like
//! the tools operators know (YCSB's workloads, cassandra-stress's progress
//! lines, HdrHistogram logs).
//!
//! 1. **Load.** `--records` records of `--value-size` random bytes are
//!    bulk-loaded first, through the SST path (`POST /admin/ingest`, as `dynakv
//!    load --sst`), with a progress bar. `--load auto` (the default) skips it
//!    when the first and last records are already there.
//! 2. **Run.** `--clients` clients issue the workload's operations
//!    ([`workload`]) for `--duration` seconds or `--operations` in all. A
//!    client's operations come from a seeded generator (`--seed`), so a run
//!    can be repeated. Updates carry the causal context the run last saw for
//!    the key, as a careful client does, so they replace values instead of
//!    piling up siblings; read-modify-writes read and write back with the
//!    read's context.
//! 3. **Report.** Per operation: count, throughput, p50 / p95 / p99 / p99.9 /
//!    max latency and errors by kind; a progress line every `--interval`
//!    seconds while running; `--json` for scripts; `--hdr FILE` writes an
//!    HdrHistogram interval log, one histogram per operation per interval.
//!
//! **Open and closed loop.** Without `--rate` each client sends its next
//! request when the last one is answered (a closed loop): a slow answer
//! delays the requests behind it, and their latency never shows that wait
//! (coordinated omission). With `--rate OPS` requests leave on a fixed
//! schedule, and each latency is measured from when its request was meant
//! to leave, as wrk2 does: a stall shows up in every request it held back.
//!
//! **Routing.** Requests rotate over `--node` (one node: a fixed
//! coordinator), or with `--direct` each goes to one of its key's replicas
//! (Dynamo §6.4, client-driven coordination), from `/admin/ring`.

mod driver;
mod report;
mod riak;
pub mod workload;

pub use driver::{ByOp, Driven, HdrLog, OpSource, OpStats, Plan, Recorder, Stop, drive};
use report::report;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use dynakv_client::records::IngestBatch;
use dynakv_client::{Client, ClientBuilder, Context, Error, Options, Quorum, Record, Sibling};
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use rand::RngCore;

use crate::tools::common::{CliError, NodeList, failure, usage};
use workload::{Distribution, Generator, Keyspace, Op, Workload};

/// Which API the run speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// dynakv's native HTTP API (`/kv/`).
    Http,
    /// Riak's Protocol Buffers API (`--pb`), on the same records.
    Pb,
    /// Riak's HTTP API (`/types/default/buckets/default/keys/`), on the same records.
    RiakHttp,
}

/// Whether to load the records first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LoadMode {
    /// Load unless the first and last records are already there.
    Auto,
    /// Always load.
    Always,
    /// Never load (the records are there, or the run inserts them).
    Never,
}

/// `dynakv bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The nodes; requests rotate over them (one node: a fixed coordinator).
    #[command(flatten)]
    pub nodes: NodeList,
    /// Operation mix: YCSB's core workloads a, b, c, d, f, or a plain mix.
    #[arg(long, value_enum, default_value = "balanced")]
    pub workload: Workload,
    /// Key distribution (default: the workload's, as YCSB defines it; the
    /// plain mixes are uniform).
    #[arg(long, value_enum)]
    pub distribution: Option<Distribution>,
    /// Records loaded first, over which the workload runs.
    #[arg(long, visible_alias = "keys", default_value_t = 10_000)]
    pub records: u64,
    /// Load the records first: auto (unless already loaded), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub load: LoadMode,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds to run (default 10 unless --operations is given).
    #[arg(long, conflicts_with = "operations")]
    pub duration: Option<u64>,
    /// Operations to run, over all clients.
    #[arg(long)]
    pub operations: Option<u64>,
    /// Open loop: send this many operations per second in all, on a fixed
    /// schedule, and measure latency from each one's scheduled start.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Seed of the operation generators.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Read quorum (default: the node's).
    #[arg(long)]
    pub r: Option<String>,
    /// Write quorum (default: the node's).
    #[arg(long)]
    pub w: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write an HdrHistogram interval log (one histogram per operation per
    /// interval, values in microseconds) to this file.
    #[arg(long)]
    pub hdr: Option<PathBuf>,
    /// Seconds between progress lines (0: none).
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
    /// Send each request straight to one of the key's replicas (read from
    /// the first node's `/admin/ring`) instead of rotating over `--node`.
    #[arg(long)]
    pub direct: bool,
    /// Admin bearer token (loading uses an admin endpoint).
    #[arg(long, env = "DYNAKV_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The API the run speaks (loading always uses the native one).
    #[arg(long, value_enum, default_value = "http")]
    pub protocol: Protocol,
    /// Comma-separated Protocol Buffers addresses, for `--protocol pb`.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8087")]
    pub pb: Vec<std::net::SocketAddr>,
}

/// The key of record `i`.
pub fn key_name(i: u64) -> String {
    format!("bench-{i:08}")
}

/// A failed request's kind, as the report counts them.
fn error_kind(e: &Error) -> String {
    match e {
        Error::NotFound { .. } => "not_found".into(),
        Error::QuorumUnavailable { .. } => "quorum_unavailable".into(),
        Error::TooManySiblings { .. } => "too_many_siblings".into(),
        Error::BadRequest { status, .. } => format!("bad_request ({status})"),
        Error::Unreachable { .. } => "unreachable".into(),
        Error::Timeout { .. } => "timeout".into(),
        Error::Conflict { .. } => "conflict".into(),
        Error::Api { status, code, .. } => format!("{code} ({status})"),
        Error::InvalidResponse(_) => "invalid_response".into(),
    }
}

/// Runs the benchmark and prints the report.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    if args.nodes.node.is_empty() || args.clients == 0 || args.records == 0 {
        return Err(usage(
            "--node, --clients and --records must be non-empty / positive",
        ));
    }
    if args.duration == Some(0) || args.operations == Some(0) {
        return Err(usage("--duration and --operations must be positive"));
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(usage(
            "--rate must be a positive number of operations per second",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failure(e.to_string()))?;
    runtime.block_on(run_async(args))
}

fn options(quorum: &Option<String>) -> Result<Options, CliError> {
    let quorum = quorum
        .as_deref()
        .map(str::parse::<Quorum>)
        .transpose()
        .map_err(usage)?;
    Ok(Options {
        quorum,
        ..Options::default()
    })
}

async fn run_async(args: BenchArgs) -> Result<(), CliError> {
    let client: Client = ClientBuilder::new(args.nodes.node.clone())
        .ca_pem(args.nodes.access.ca_pem()?)
        .basic_auth(args.nodes.access.credentials()?)
        .connections(args.clients)
        .timeout(Duration::from_secs(30))
        .route_to_replicas(args.direct)
        .admin_token(args.admin_token.clone())
        .build()
        .map_err(|e| failure(e.to_string()))?;
    if args.direct {
        let ring = client.ring().await.map_err(|e| failure(e.to_string()))?;
        let status = client.status().await.map_err(|e| failure(e.to_string()))?;
        dynakv_client::Router::from_answers(&ring, &status)
            .map_err(|e| failure(format!("--direct cannot route: {e}")))?;
    }
    let loaded = load(&args, &client).await?;
    let run = Run {
        client,
        workload: args.workload,
        distribution: plan_distribution(&args),
        keys: Keyspace::new(args.records),
        value: Sibling::new(vec![b'x'; args.value_size], "application/octet-stream"),
        contexts: Mutex::new(HashMap::new()),
        read: options(&args.r)?,
        write: options(&args.w)?,
        riak: match args.protocol {
            Protocol::Http => None,
            Protocol::Pb => Some(riak::RiakClient::pb(args.pb.clone(), args.clients)),
            Protocol::RiakHttp => Some(riak::RiakClient::http(
                args.nodes.node.clone(),
                args.clients,
            )),
        },
        vclocks: Mutex::new(HashMap::new()),
    };
    let plan = Plan {
        clients: args.clients,
        seed: args.seed,
        stop: match (args.operations, args.duration) {
            (Some(n), _) => Stop::Operations(n),
            (None, d) => Stop::After(Duration::from_secs(d.unwrap_or(10))),
        },
        rate: args.rate,
        interval: Duration::from_secs(args.interval),
    };
    let recorder = Arc::new(Recorder::new());
    let log = match &args.hdr {
        Some(path) => Some(HdrLog::create(path)?),
        None => None,
    };
    let run = Arc::new(run);
    let driven = drive(&plan, Arc::clone(&recorder), log, {
        let run = Arc::clone(&run);
        move |generator_seed, client_index| {
            let run = Arc::clone(&run);
            let generator = Generator::new(
                run.workload,
                run.distribution,
                Arc::clone(&run.keys),
                generator_seed,
                client_index,
            );
            (generator, move |op| {
                let run = Arc::clone(&run);
                async move { run.execute(op).await }
            })
        }
    })
    .await?;
    report(&args, &plan, loaded, driven, &recorder.totals());
    Ok(())
}

/// What a run's clients share.
struct Run {
    client: Client,
    workload: Workload,
    distribution: Distribution,
    keys: Arc<Keyspace>,
    value: Sibling,
    /// The context last seen per record, so an update replaces the value it
    /// read or wrote last instead of adding a sibling.
    contexts: Mutex<HashMap<u64, Context>>,
    read: Options,
    write: Options,
    /// A Riak protocol's client, when the run speaks one.
    riak: Option<riak::RiakClient>,
    /// The vclock last seen per record (Riak protocols).
    vclocks: Mutex<HashMap<u64, Vec<u8>>>,
}

impl Run {
    /// Performs one operation through a Riak protocol.
    async fn execute_riak(&self, riak: &riak::RiakClient, op: Op) -> Result<(), String> {
        let record = op.record();
        let key = key_name(record);
        let value = self.value.value.clone();
        let vclock = match op {
            Op::Read(_) => riak.get(&key).await?,
            Op::Update(_) => {
                let seen = self.vclocks.lock().get(&record).cloned();
                riak.put(&key, &value, seen).await?
            }
            Op::Insert(_) => {
                let r = riak.put(&key, &value, None).await;
                self.keys.inserted(record);
                r?
            }
            Op::ReadModifyWrite(_) => {
                let seen = match riak.get(&key).await {
                    Ok(v) => Some(v),
                    Err(e) if e == "not_found" => None,
                    Err(e) => return Err(e),
                };
                riak.put(&key, &value, seen).await?
            }
        };
        self.vclocks.lock().insert(record, vclock);
        Ok(())
    }

    /// Writes the run's value under `key` with `ctx`; the new context.
    async fn write(&self, key: &str, ctx: Option<Context>) -> Result<Option<Context>, Error> {
        self.client
            .put_with(
                key.as_bytes(),
                self.value.clone(),
                ctx.as_ref(),
                &self.write,
            )
            .await
            .map(Some)
    }

    /// Performs one operation.
    async fn execute(&self, op: Op) -> Result<(), String> {
        if let Some(riak) = &self.riak {
            return self.execute_riak(riak, op).await;
        }
        let record = op.record();
        let key = key_name(record);
        let outcome = match op {
            // A record the run loaded or inserted that reads as missing is
            // an error (`not_found`).
            Op::Read(_) => self
                .client
                .get_with(key.as_bytes(), &self.read)
                .await
                .map(|o| Some(o.context)),
            Op::Update(_) => {
                let ctx = self.contexts.lock().get(&record).cloned();
                self.write(&key, ctx).await
            }
            Op::Insert(_) => {
                let r = self.write(&key, None).await;
                // Done either way, as in YCSB: a failed insert leaves a hole
                // that later reads report as not_found.
                self.keys.inserted(record);
                r
            }
            Op::ReadModifyWrite(_) => {
                let ctx = match self.client.get_with(key.as_bytes(), &self.read).await {
                    Ok(o) => Some(o.context),
                    Err(Error::NotFound { context, .. }) => context,
                    Err(e) => return Err(error_kind(&e)),
                };
                self.write(&key, ctx).await
            }
        };
        match outcome {
            Ok(Some(ctx)) => {
                self.contexts.lock().insert(record, ctx);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(error_kind(&e)),
        }
    }
}

/// Loads the records (see the module docs); returns how many were loaded
/// now (0 when skipped).
async fn load(args: &BenchArgs, client: &Client) -> Result<u64, CliError> {
    let present = |i: u64| async move {
        client
            .get(key_name(i).as_bytes())
            .await
            .is_ok_and(|o| o.siblings.iter().any(|s| s.value.len() == args.value_size))
    };
    match args.load {
        LoadMode::Never => return Ok(0),
        LoadMode::Auto if present(0).await && present(args.records - 1).await => {
            eprintln!(
                "records 0..{} are already loaded; not loading (--load always reloads)",
                args.records
            );
            return Ok(0);
        }
        _ => {}
    }
    // Each partition's record numbers; the records themselves are made
    // when their batch is about to be sent, so memory holds two batches,
    // not the data set.
    let mut partitions: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for i in 0..args.records {
        let p = dynakv_ring::Ring::partition_of(dynakv_ring::token(key_name(i).as_bytes()));
        partitions.entry(p).or_default().push(i);
    }
    let groups = crate::tools::sst::by_replica_set(client, partitions).await?;
    let value_size = args.value_size;
    let batches = groups.into_values().flat_map(move |parts| {
        let blocks = parts.into_iter().map(move |(p, records)| {
            let mut rng = rand::rng();
            let mut blocks = vec![IngestBatch::new()];
            for i in records {
                if blocks
                    .last()
                    .is_some_and(|b| b.size() >= crate::tools::sst::BLOCK_BYTES)
                {
                    blocks.push(IngestBatch::new());
                }
                // Random bytes: a value RocksDB cannot compress away, so
                // the data set takes its full size on disk.
                let mut value = vec![0u8; value_size];
                rng.fill_bytes(&mut value);
                if let Some(b) = blocks.last_mut() {
                    b.push(&Record {
                        bucket: None,
                        key: key_name(i).into_bytes(),
                        siblings: vec![Sibling::new(value, "application/octet-stream")],
                    });
                }
            }
            (p, blocks)
        });
        crate::tools::sst::Packer::pack(blocks)
    });
    let bar = ProgressBar::new(args.records).with_style(
        ProgressStyle::with_template("load {bar:40} {pos}/{len} records {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let tally = crate::tools::sst::send_batches(client, batches, 2, &bar).await;
    bar.finish_and_clear();
    if tally.failed > 0 {
        return Err(failure(format!(
            "loading the records failed for {} of them: {}",
            tally.failed,
            tally.first_failure.unwrap_or_default()
        )));
    }
    eprintln!(
        "loaded {} records of {} B in {:.1} s",
        args.records,
        args.value_size,
        started.elapsed().as_secs_f64()
    );
    Ok(args.records)
}

pub(super) fn plan_distribution(args: &BenchArgs) -> Distribution {
    args.distribution
        .unwrap_or_else(|| args.workload.distribution())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operations that each take `service`, in an open loop of one client at
    /// `rate`: the latency of each is measured from its scheduled start.
    async fn open_loop(service: Duration, rate: f64, seconds: u64) -> (Duration, OpStats) {
        struct Reads;
        impl OpSource for Reads {
            fn next_op(&mut self) -> Op {
                Op::Read(0)
            }
        }
        let plan = Plan {
            clients: 1,
            seed: 1,
            stop: Stop::After(Duration::from_secs(seconds)),
            rate: Some(rate),
            interval: Duration::ZERO,
        };
        let recorder = Arc::new(Recorder::new());
        let driven = drive(&plan, Arc::clone(&recorder), None, |_, _| {
            (Reads, move |_op| async move {
                tokio::time::sleep(service).await;
                Ok(())
            })
        })
        .await
        .expect("run");
        let stats = recorder.totals().remove("read").expect("reads");
        (driven.elapsed, stats)
    }

    #[tokio::test]
    async fn an_open_loop_keeps_its_rate_when_the_service_keeps_up() {
        let (elapsed, stats) = open_loop(Duration::from_millis(1), 200.0, 2).await;
        let rate = stats.latency.len() as f64 / elapsed.as_secs_f64();
        assert!((rate - 200.0).abs() < 200.0 * 0.05, "{rate} ops/s");
        // Each took about its service time.
        assert!(
            stats.latency.value_at_quantile(0.5) < 20_000,
            "{}",
            stats.latency.value_at_quantile(0.5)
        );
    }

    #[tokio::test]
    async fn an_open_loop_counts_the_wait_of_requests_held_back() {
        // 20 ms per request, 100 scheduled per second: the client falls
        // behind by 10 ms per request. A closed loop would report 20 ms;
        // measured from the schedule, the last requests waited ~1 s.
        let (_, stats) = open_loop(Duration::from_millis(20), 100.0, 2).await;
        let p50 = stats.latency.value_at_quantile(0.5);
        let max = stats.latency.max();
        assert!(p50 > 200_000, "p50 {p50} µs does not include the wait");
        assert!(max > 700_000, "max {max} µs does not include the wait");
    }
}
