//! `dynakv bench`: a load generator for a running cluster.
//!
//! `--clients` concurrent clients, each with keep-alive connections, issue reads
//! and writes of random keys (uniform over `--keys`) against the given nodes in
//! turn for `--duration` seconds, and the command prints throughput, latency
//! percentiles (p50 / p95 / p99 / p99.9 / max) and errors per operation.
//!
//! Writes behave like a careful client: each carries the causal context the
//! client last saw for the key, so the benchmark measures ordinary updates rather
//! than piling up siblings. Keys are written once first (`--preload`, with a
//! progress bar) so reads find data.
//!
//! With `--direct` the client routes each request itself (Dynamo §6.4,
//! client-driven coordination): it reads the ring from `/admin/ring` and the
//! members' HTTP addresses from `/admin/status`, and sends every request to one
//! of the key's serving replicas, so no request pays a forwarding hop. Without
//! it, requests rotate over the `--node` list and a node that is not a replica
//! of the key forwards writes to one that is.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use dynakv_client::{Client, ClientBuilder, Context, Error, Options, Quorum, Sibling};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use rand::Rng;
use serde_json::json;

use crate::tools::commands::CliError;

/// Read/write mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 50% reads, 50% writes.
    Balanced,
    /// 95% reads, 5% writes.
    ReadMostly,
    /// Reads only.
    ReadOnly,
    /// Writes only.
    WriteOnly,
}

impl Workload {
    fn read_fraction(self) -> f64 {
        match self {
            Workload::Balanced => 0.5,
            Workload::ReadMostly => 0.95,
            Workload::ReadOnly => 1.0,
            Workload::WriteOnly => 0.0,
        }
    }
}

/// `dynakv bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The nodes; requests rotate over them.
    #[command(flatten)]
    pub nodes: crate::tools::cli::NodeList,
    /// Read/write mix.
    #[arg(long, value_enum, default_value = "balanced")]
    pub workload: Workload,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Write every key once before measuring.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub preload: bool,
    /// Read quorum (default: the node's).
    #[arg(long)]
    pub r: Option<String>,
    /// Write quorum (default: the node's).
    #[arg(long)]
    pub w: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Send each request straight to one of the key's replicas (read from
    /// the first node's `/admin/ring`) instead of rotating over `--node`.
    #[arg(long)]
    pub direct: bool,
}

#[derive(Default)]
struct OpStats {
    latency: Option<Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl OpStats {
    fn record(&mut self, micros: u64) {
        let h = self.latency.get_or_insert_with(|| {
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
        });
        let _ = h.record(micros.max(1));
    }

    fn merge(&mut self, other: OpStats) {
        if let Some(h) = other.latency {
            match &mut self.latency {
                Some(mine) => {
                    let _ = mine.add(&h);
                }
                None => self.latency = Some(h),
            }
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

fn failure(message: impl Into<String>) -> CliError {
    CliError {
        code: 1,
        message: message.into(),
    }
}

fn key_name(i: usize) -> String {
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
    if args.nodes.node.is_empty() || args.clients == 0 || args.keys == 0 || args.duration == 0 {
        return Err(CliError {
            code: 2,
            message: "--node, --clients, --keys and --duration must be non-empty / positive".into(),
        });
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
        .map_err(|message| CliError { code: 2, message })?;
    Ok(Options {
        quorum,
        ..Options::default()
    })
}

async fn run_async(args: BenchArgs) -> Result<(), CliError> {
    // Round-robin over the nodes, or (--direct) each request to one of its
    // key's replicas: the client library's routing.
    let client: Client = ClientBuilder::new(args.nodes.node.clone())
        .connections(args.clients)
        .timeout(Duration::from_secs(30))
        .route_to_replicas(args.direct)
        .build()
        .map_err(|e| failure(e.to_string()))?;
    if args.direct {
        let ring = client.ring().await.map_err(|e| failure(e.to_string()))?;
        let status = client.status().await.map_err(|e| failure(e.to_string()))?;
        dynakv_client::Router::from_answers(&ring, &status)
            .map_err(|e| failure(format!("--direct cannot route: {e}")))?;
    }
    let value = Sibling::new(vec![b'x'; args.value_size], "application/octet-stream");
    // The context each client last saw per key, shared so any client's write
    // carries what the cluster last told us.
    let contexts: Arc<Mutex<HashMap<usize, Context>>> = Arc::new(Mutex::new(HashMap::new()));
    let wq = Arc::new(options(&args.w)?);
    let rq = Arc::new(options(&args.r)?);

    if args.preload {
        let bar = ProgressBar::new(args.keys as u64);
        bar.set_style(
            ProgressStyle::with_template("preload {bar:40} {pos}/{len} keys {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..args.clients.min(args.keys) {
            let (client, value, next, bar, contexts, wq) = (
                client.clone(),
                value.clone(),
                Arc::clone(&next),
                bar.clone(),
                Arc::clone(&contexts),
                Arc::clone(&wq),
            );
            let keys = args.keys;
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= keys {
                        return Ok::<(), String>(());
                    }
                    let key = key_name(i);
                    let ctx = client
                        .put_with(key.as_bytes(), value.clone(), None, &wq)
                        .await
                        .map_err(|e| format!("preload: {e}"))?;
                    contexts.lock().insert(i, ctx);
                    bar.inc(1);
                }
            }));
        }
        for t in tasks {
            t.await
                .map_err(|e| failure(e.to_string()))?
                .map_err(failure)?;
        }
        bar.finish_and_clear();
    }

    let read_fraction = args.workload.read_fraction();
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, value, contexts, done) = (
            client.clone(),
            value.clone(),
            Arc::clone(&contexts),
            Arc::clone(&done),
        );
        let (rq, wq, keys) = (Arc::clone(&rq), Arc::clone(&wq), args.keys);
        tasks.push(tokio::spawn(async move {
            let mut reads = OpStats::default();
            let mut writes = OpStats::default();
            while Instant::now() < deadline {
                let (i, is_read) = {
                    let mut rng = rand::rng();
                    (rng.random_range(0..keys), rng.random_bool(read_fraction))
                };
                let key = key_name(i);
                let t0 = Instant::now();
                let (result, stats) = if is_read {
                    let r = client
                        .get_with(key.as_bytes(), &rq)
                        .await
                        .map(|o| o.context);
                    (r, &mut reads)
                } else {
                    let ctx = contexts.lock().get(&i).cloned();
                    let r = client
                        .put_with(key.as_bytes(), value.clone(), ctx.as_ref(), &wq)
                        .await;
                    (r, &mut writes)
                };
                let micros = t0.elapsed().as_micros() as u64;
                match result {
                    Ok(ctx) => {
                        contexts.lock().insert(i, ctx);
                        stats.record(micros);
                    }
                    // A read of a key nobody wrote yet is an answer, not an error.
                    Err(Error::NotFound { .. }) if is_read => stats.record(micros),
                    Err(e) => *stats.errors.entry(error_kind(&e)).or_default() += 1,
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (reads, writes)
        }));
    }
    let ticker = {
        let (spinner, done) = (spinner.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let n = done.load(std::sync::atomic::Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                spinner.set_message(format!("{n} requests, {:.0}/s", n as f64 / secs));
                spinner.tick();
            }
        })
    };
    let mut reads = OpStats::default();
    let mut writes = OpStats::default();
    for t in tasks {
        let (r, w) = t.await.map_err(|e| failure(e.to_string()))?;
        reads.merge(r);
        writes.merge(w);
    }
    ticker.abort();
    spinner.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    report(&args, elapsed, &reads, &writes);
    Ok(())
}

fn summary(name: &str, s: &OpStats, elapsed: f64) -> serde_json::Value {
    let errors: u64 = s.errors.values().sum();
    match &s.latency {
        None => json!({"op": name, "count": 0, "errors": errors, "error_kinds": s.errors}),
        Some(h) => {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            json!({
                "op": name,
                "count": h.len(),
                "ops_per_s": h.len() as f64 / elapsed,
                "p50_ms": ms(0.50),
                "p95_ms": ms(0.95),
                "p99_ms": ms(0.99),
                "p999_ms": ms(0.999),
                "max_ms": h.max() as f64 / 1000.0,
                "errors": errors,
                "error_kinds": s.errors,
            })
        }
    }
}

fn routing(args: &BenchArgs) -> &'static str {
    if args.direct {
        "direct (to a replica)"
    } else {
        "round-robin"
    }
}

fn report(args: &BenchArgs, elapsed: f64, reads: &OpStats, writes: &OpStats) {
    let rows = [
        summary("get", reads, elapsed),
        summary("put", writes, elapsed),
    ];
    let total: f64 = rows.iter().filter_map(|r| r["ops_per_s"].as_f64()).sum();
    if args.json {
        let out = json!({
            "nodes": args.nodes.node, "routing": routing(args), "workload": format!("{:?}", args.workload), "clients": args.clients,
            "keys": args.keys, "value_size": args.value_size, "seconds": elapsed,
            "total_ops_per_s": total, "ops": rows,
        });
        println!("{out}");
        return;
    }
    println!(
        "{} node(s), {} routing, workload {:?}, {} clients, {} keys, {} B values, {:.1} s",
        args.nodes.node.len(),
        routing(args),
        args.workload,
        args.clients,
        args.keys,
        args.value_size,
        elapsed
    );
    println!(
        "{:<4} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "op", "count", "ops/s", "p50 ms", "p95 ms", "p99 ms", "p99.9", "max ms", "errors"
    );
    for r in &rows {
        let f = |k: &str| r[k].as_f64().map_or("-".to_string(), |v| format!("{v:.2}"));
        println!(
            "{:<4} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            r["op"].as_str().unwrap_or(""),
            r["count"],
            r["ops_per_s"]
                .as_f64()
                .map_or("-".to_string(), |v| format!("{v:.0}")),
            f("p50_ms"),
            f("p95_ms"),
            f("p99_ms"),
            f("p999_ms"),
            f("max_ms"),
            r["errors"]
        );
        if let Some(kinds) = r["error_kinds"].as_object()
            && !kinds.is_empty()
        {
            println!("     errors: {}", serde_json::Value::Object(kinds.clone()));
        }
    }
    println!("total {total:.0} ops/s");
}
