//! The load driver: clients issuing operations in a closed or an open loop
//! (wrk2's correction for coordinated omission), latencies recorded per
//! operation into HdrHistograms.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::report::progress_line;
use super::workload::{Generator, Op};
use crate::tools::common::{CliError, failure, usage};

/// When a run stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many operations in all.
    Operations(u64),
}

/// How a run is driven.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Concurrent clients.
    pub clients: usize,
    /// Seed of the generators.
    pub seed: u64,
    /// When to stop.
    pub stop: Stop,
    /// Open loop at this many operations per second in all; `None`: closed
    /// loop.
    pub rate: Option<f64>,
    /// Between progress lines (zero: none).
    pub interval: Duration,
}

/// One operation's measurements.
#[derive(Clone)]
pub struct OpStats {
    /// Latencies of the successful ones, in microseconds.
    pub latency: Histogram<u64>,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
}

impl OpStats {
    pub(super) fn new() -> OpStats {
        OpStats {
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            errors: BTreeMap::new(),
        }
    }

    pub(super) fn add(&mut self, other: &OpStats) {
        let _ = self.latency.add(&other.latency);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// Measurements by operation name.
pub type ByOp = BTreeMap<&'static str, OpStats>;

/// Measurements, per operation name: the whole run, and the current
/// interval (for progress lines and the HDR log).
pub struct Recorder {
    inner: Mutex<(ByOp, ByOp)>,
}

impl Recorder {
    pub(super) fn new() -> Recorder {
        Recorder {
            inner: Mutex::new((BTreeMap::new(), BTreeMap::new())),
        }
    }

    pub(super) fn record(&self, op: &'static str, micros: u64, outcome: Result<(), String>) {
        let mut inner = self.inner.lock();
        let stats = inner.1.entry(op).or_insert_with(OpStats::new);
        match outcome {
            Ok(()) => {
                stats.latency.saturating_record(micros.max(1));
            }
            Err(kind) => *stats.errors.entry(kind).or_default() += 1,
        }
    }

    /// Ends the current interval: returns its measurements and folds them
    /// into the run's.
    pub(super) fn take_interval(&self) -> ByOp {
        let mut inner = self.inner.lock();
        let interval = std::mem::take(&mut inner.1);
        for (op, s) in &interval {
            inner.0.entry(op).or_insert_with(OpStats::new).add(s);
        }
        interval
    }

    /// The whole run's measurements.
    pub fn totals(&self) -> ByOp {
        self.take_interval();
        self.inner.lock().0.clone()
    }
}

/// An HdrHistogram interval log (the format HistogramLogProcessor and the
/// HdrHistogram plotter read).
pub struct HdrLog {
    file: std::io::BufWriter<std::fs::File>,
    serializer: hdrhistogram::serialization::V2DeflateSerializer,
    started: bool,
    path: PathBuf,
}

impl HdrLog {
    pub(super) fn create(path: &std::path::Path) -> Result<HdrLog, CliError> {
        let file = std::fs::File::create(path)
            .map_err(|e| usage(format!("--hdr {}: {e}", path.display())))?;
        Ok(HdrLog {
            file: std::io::BufWriter::new(file),
            serializer: hdrhistogram::serialization::V2DeflateSerializer::new(),
            started: false,
            path: path.to_path_buf(),
        })
    }

    pub(super) fn write(
        &mut self,
        base: SystemTime,
        since_base: Duration,
        length: Duration,
        interval: &ByOp,
    ) -> Result<(), CliError> {
        use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
        let failed = |e: String| failure(format!("writing {}: {e}", self.path.display()));
        let mut builder = IntervalLogWriterBuilder::new();
        if !self.started {
            builder
                .add_comment("dynakv bench: latencies in microseconds, tagged by operation")
                .with_start_time(base)
                .with_base_time(base)
                .with_max_value_divisor(1000.0);
        }
        let mut writer = builder
            .begin_log_with(&mut self.file, &mut self.serializer)
            .map_err(|e| failed(e.to_string()))?;
        self.started = true;
        for (op, s) in interval {
            if s.latency.is_empty() {
                continue;
            }
            writer
                .write_histogram(&s.latency, since_base, length, Tag::new(op))
                .map_err(|e| failed(format!("{e:?}")))?;
        }
        drop(writer);
        std::io::Write::flush(&mut self.file).map_err(|e| failed(e.to_string()))
    }
}

/// Runs `plan`: each client gets a generator and an operation from
/// `make(seed, client)`, and its operations' latencies go to `recorder`.
/// Returns the run's length.
pub async fn drive<G, F, Fut>(
    plan: &Plan,
    recorder: Arc<Recorder>,
    mut log: Option<HdrLog>,
    make: impl Fn(u64, u64) -> (G, F),
) -> Result<Driven, CliError>
where
    G: OpSource + Send + 'static,
    F: Fn(Op) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    // Every client's generator is made before the clock starts.
    let clients: Vec<(G, F)> = (0..plan.clients)
        .map(|c| make(plan.seed, c as u64))
        .collect();
    let started = Instant::now();
    let wall = SystemTime::now();
    let issued = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    let deadline = match plan.stop {
        Stop::After(d) => Some(started + d),
        Stop::Operations(_) => None,
    };
    let limit = match plan.stop {
        Stop::Operations(n) => n,
        Stop::After(_) => u64::MAX,
    };
    let mut tasks = Vec::new();
    for (c, (mut generator, op)) in clients.into_iter().enumerate() {
        let (recorder, issued, stopping) = (
            Arc::clone(&recorder),
            Arc::clone(&issued),
            Arc::clone(&stopping),
        );
        // Open loop: client c sends at start + (k * clients + c) / rate, so
        // the clients together keep the rate on an even schedule.
        let schedule = plan.rate.map(|rate| {
            let gap = Duration::from_secs_f64(plan.clients as f64 / rate);
            let offset = Duration::from_secs_f64(c as f64 / rate);
            (gap, offset)
        });
        let missed = Arc::clone(&missed);
        tasks.push(tokio::spawn(async move {
            let mut k: u64 = 0;
            loop {
                // Nothing left to send: no sleeping to the next slot.
                if stopping.load(Ordering::Relaxed) || issued.load(Ordering::Relaxed) >= limit {
                    break;
                }
                let intended = match schedule {
                    Some((gap, offset)) => {
                        let at = started + offset + gap.mul_f64(k as f64);
                        if let Some(d) = deadline
                            && at >= d
                        {
                            break;
                        }
                        if Instant::now() < at {
                            tokio::time::sleep_until(at.into()).await;
                            // On schedule: latency counts from the send (a
                            // late timer is the generator's, not the
                            // cluster's).
                            Instant::now()
                        } else {
                            // Behind: the wait counts (coordinated omission).
                            at
                        }
                    }
                    None => Instant::now(),
                };
                // Past the end: an open-loop slot due before it is still sent
                // when only the timer made it late, not when the client was
                // behind.
                let behind = schedule.is_none() || intended.elapsed() > Duration::from_millis(10);
                if let Some(d) = deadline
                    && Instant::now() >= d
                    && behind
                {
                    // The slots this client had left before the end were
                    // never sent: the cluster fell behind the rate.
                    if let Some((gap, offset)) = schedule {
                        let due = ((d - (started + offset)).as_secs_f64() / gap.as_secs_f64())
                            .ceil() as u64;
                        missed.fetch_add(due.saturating_sub(k), Ordering::Relaxed);
                    }
                    break;
                }
                if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                let next = generator.next_op();
                let outcome = op(next).await;
                let micros = intended.elapsed().as_micros() as u64;
                recorder.record(next.name(), micros, outcome);
                k += 1;
            }
        }));
    }
    // Progress lines (and HDR intervals) until every client is done.
    let all = futures::future::join_all(tasks);
    tokio::pin!(all);
    let mut last = Instant::now();
    let tick = if !plan.interval.is_zero() {
        plan.interval
    } else if log.is_some() {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(3600)
    };
    let done = loop {
        tokio::select! {
            joined = &mut all => break joined,
            _ = tokio::time::sleep_until((last + tick).into()) => {
                let now = Instant::now();
                let interval = recorder.take_interval();
                if let Some(log) = &mut log {
                    log.write(wall, last - started, now - last, &interval)?;
                }
                if !plan.interval.is_zero() {
                    eprintln!("{}", progress_line(now - started, now - last, &interval, &issued));
                }
                last = now;
            }
        }
    };
    stopping.store(true, Ordering::Relaxed);
    for joined in done {
        joined.map_err(|e| failure(format!("a client failed: {e}")))?;
    }
    let elapsed = started.elapsed();
    let interval = recorder.take_interval();
    if let Some(log) = &mut log {
        log.write(wall, last - started, Instant::now() - last, &interval)?;
    }
    Ok(Driven {
        elapsed,
        missed: missed.load(Ordering::Relaxed),
    })
}

/// How a run went.
#[derive(Clone, Copy, Debug)]
pub struct Driven {
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Open loop: scheduled requests never sent because the clients were
    /// still waiting for answers when the run ended.
    pub missed: u64,
}

/// Where a client's operations come from.
pub trait OpSource {
    /// The next operation.
    fn next_op(&mut self) -> Op;
}

impl OpSource for Generator {
    fn next_op(&mut self) -> Op {
        Generator::next_op(self)
    }
}
