//! `dynakv load` and `dynakv export`: bulk data in and out, as JSON Lines (or
//! CSV for `load`), through the HTTP API.
//!
//! **Load** streams the input (constant memory) and keeps `--concurrency`
//! writes in flight. Every record is a write *without* context, so it never
//! removes a version already stored: a key that holds other values gains a
//! sibling. Before writing, a record's key is read, and a value already stored
//! there as a live sibling (same bytes, same content type) is skipped, so
//! loading the same file twice changes nothing and a failed write can be
//! retried without storing the value twice. (`--blind` skips that read: twice
//! the speed, but a reload adds identical siblings.) A malformed line stops
//! the load with its line number before anything after it is sent, unless
//! `--skip-bad` counts and skips it. Ctrl-C stops reading, lets the writes in
//! flight finish, and reports the last line read.
//!
//! **Export** reads the ring, then each partition from one of its replicas
//! (a consistent scan there, failing over to the next replica), and writes
//! every key with its live siblings as one JSON line, partition by partition:
//! memory holds one partition at a time.
//!
//! The SST path (`load --sst`, SPEC §4) is not built yet.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use dynakv_client::{Client, ClientBuilder, Error, Options, Quorum, Record, Sibling};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};

use crate::tools::commands::CliError;

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// `key,value[,content_type]`, with an optional header line.
    Csv,
}

/// `dynakv load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The input file, or `-` for standard input.
    pub file: PathBuf,
    /// Input format (default: from the file name, `.csv` or else JSON Lines).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Comma-separated node URLs; each record goes to one of its key's
    /// replicas.
    #[arg(
        long,
        env = "DYNAKV_NODE",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8000"
    )]
    pub node: Vec<String>,
    /// Count and skip malformed lines instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// Write without reading first: faster, but loading a record again adds
    /// an identical sibling.
    #[arg(long)]
    pub blind: bool,
    /// Writes in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Write quorum.
    #[arg(long)]
    pub w: Option<String>,
    /// Load by writing SST files and ingesting them (not built yet).
    #[arg(long)]
    pub sst: bool,
}

/// `dynakv export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Comma-separated node URLs (the ring is read from the first that
    /// answers).
    #[arg(
        long,
        env = "DYNAKV_NODE",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8000"
    )]
    pub node: Vec<String>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn failure(message: impl Into<String>) -> CliError {
    CliError {
        code: 1,
        message: message.into(),
    }
}

fn usage(message: impl Into<String>) -> CliError {
    CliError {
        code: 2,
        message: message.into(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failure(format!("cannot start a runtime: {e}")))
}

/// What happened to the records.
#[derive(Debug, Default)]
struct Tally {
    loaded: u64,
    already_stored: u64,
    bad: u64,
    failed: u64,
    first_failure: Option<String>,
}

/// Reads records one line at a time, each with its line number.
enum Records {
    Jsonl(std::io::Lines<Box<dyn BufRead>>),
    Csv(csv::StringRecordsIntoIter<Box<dyn BufRead>>),
}

impl Records {
    fn open(input: Box<dyn BufRead>, format: Format) -> Records {
        match format {
            Format::Jsonl => Records::Jsonl(input.lines()),
            Format::Csv => Records::Csv(
                csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(input)
                    .into_records(),
            ),
        }
    }

    /// The next line: `Ok(None)` for a blank line or a CSV header, `Err` for a
    /// malformed one. `None` at the end.
    fn next(&mut self, line: &mut u64) -> Option<Result<Option<Record>, String>> {
        match self {
            Records::Jsonl(lines) => {
                let next = lines.next()?;
                *line += 1;
                let text = match next {
                    Ok(t) => t,
                    Err(e) => return Some(Err(format!("cannot read: {e}"))),
                };
                if text.trim().is_empty() {
                    return Some(Ok(None));
                }
                Some(Record::from_json(&text).map(Some))
            }
            Records::Csv(rows) => {
                let row = match rows.next()? {
                    Ok(r) => r,
                    Err(e) => {
                        *line = e.position().map_or(*line + 1, |p| p.line());
                        return Some(Err(format!("bad CSV: {e}")));
                    }
                };
                *line = row.position().map_or(*line + 1, |p| p.line());
                let fields: Vec<&str> = row.iter().collect();
                let header = *line == 1
                    && fields
                        .first()
                        .is_some_and(|f| f.eq_ignore_ascii_case("key"))
                    && fields
                        .get(1)
                        .is_some_and(|f| f.eq_ignore_ascii_case("value"));
                if header || (fields.len() == 1 && fields[0].is_empty()) {
                    return Some(Ok(None));
                }
                Some(match fields.as_slice() {
                    [key, value] | [key, value, ""] => csv_record(key, value, None),
                    [key, value, content_type] => csv_record(key, value, Some(content_type)),
                    _ => Err(format!(
                        "expected key,value[,content_type], got {} fields",
                        fields.len()
                    )),
                })
            }
        }
    }
}

fn csv_record(
    key: &str,
    value: &str,
    content_type: Option<&str>,
) -> Result<Option<Record>, String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    Ok(Some(Record {
        key: key.as_bytes().to_vec(),
        siblings: vec![Sibling::new(
            value.to_string(),
            content_type.unwrap_or(dynakv_client::records::DEFAULT_CONTENT_TYPE),
        )],
    }))
}

/// Stores one record's values; returns how many were new.
async fn store(client: &Client, record: Record, opts: &Options, blind: bool) -> Result<u64, Error> {
    let mut stored = Vec::new();
    if !blind {
        match client.get_with(&record.key, opts).await {
            Ok(o) => stored = o.siblings,
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut new = 0;
    for sibling in record.siblings {
        if stored.contains(&sibling) {
            continue;
        }
        client
            .put_with(&record.key, sibling.clone(), None, opts)
            .await?;
        stored.push(sibling);
        new += 1;
    }
    Ok(new)
}

/// A write that failed in a way that retrying may fix is retried (safe: the
/// retry reads first and skips what did get stored), up to three times.
async fn store_with_retries(
    client: Client,
    record: Record,
    opts: Arc<Options>,
    blind: bool,
) -> (usize, Result<u64, Error>) {
    let values = record.siblings.len();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store(&client, record.clone(), &opts, blind).await {
            Err(e) if e.is_retryable() && !blind && attempt < 3 => {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            result => return (values, result),
        }
    }
}

/// `dynakv load`.
pub fn load(args: LoadArgs) -> Result<(), CliError> {
    if args.sst {
        return Err(usage(
            "--sst (SST files ingested on the replicas) is not built yet; load without it",
        ));
    }
    if args.concurrency == 0 {
        return Err(usage("--concurrency must be at least 1"));
    }
    let format = args.format.unwrap_or(
        if args
            .file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            Format::Csv
        } else {
            Format::Jsonl
        },
    );
    let quorum = args
        .w
        .as_deref()
        .map(str::parse::<Quorum>)
        .transpose()
        .map_err(usage)?;
    let opts = Arc::new(Options {
        quorum,
        ..Options::default()
    });
    let (input, size): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| usage(format!("cannot open {}: {e}", args.file.display())))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let bar = match size {
        Some(bytes) => ProgressBar::new(bytes).with_style(
            ProgressStyle::with_template("load {bar:40} {bytes}/{total_bytes} {msg} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("load {spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    let counted = CountingReader {
        inner: input,
        bar: bar.clone(),
    };
    let mut records = Records::open(Box::new(BufReader::with_capacity(1 << 20, counted)), format);
    let client = ClientBuilder::new(args.node.clone())
        .connections(args.concurrency)
        .timeout(Duration::from_secs(30))
        .route_to_replicas(true)
        .build()
        .map_err(|e| usage(e.to_string()))?;

    let rt = runtime()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        });
    }
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut line = 0u64;
    let mut stopped: Option<String> = None;
    rt.block_on(async {
        let mut in_flight = FuturesUnordered::new();
        let settle = |tally: &mut Tally, (values, result): (usize, Result<u64, Error>)| match result
        {
            Ok(new) => {
                tally.loaded += new;
                tally.already_stored += values as u64 - new;
            }
            Err(e) => {
                tally.failed += 1;
                tally.first_failure.get_or_insert_with(|| e.to_string());
            }
        };
        loop {
            if interrupted.load(Ordering::Relaxed) {
                stopped = Some(format!("interrupted after line {line}"));
                break;
            }
            let Some(next) = records.next(&mut line) else {
                break;
            };
            let record = match next {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(reason) if args.skip_bad => {
                    tally.bad += 1;
                    bar.suspend(|| eprintln!("skipping line {line}: {reason}"));
                    continue;
                }
                Err(reason) => {
                    stopped = Some(format!("line {line}: {reason}"));
                    break;
                }
            };
            while in_flight.len() >= args.concurrency {
                if let Some(done) = in_flight.next().await {
                    settle(&mut tally, done);
                }
            }
            in_flight.push(store_with_retries(
                client.clone(),
                record,
                Arc::clone(&opts),
                args.blind,
            ));
            if line.is_multiple_of(1024) {
                let secs = started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!("{line} lines, {:.0} records/s", line as f64 / secs));
                bar.tick();
            }
        }
        while let Some(done) = in_flight.next().await {
            settle(&mut tally, done);
        }
    });
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {} values ({} already stored, {} bad lines skipped, {} failed) from {} lines in {:.1} s ({:.0} lines/s)",
        tally.loaded,
        tally.already_stored,
        tally.bad,
        tally.failed,
        line,
        secs,
        line as f64 / secs.max(0.001)
    );
    if let Some(reason) = stopped {
        return Err(if reason.starts_with("interrupted") {
            failure(format!("{reason}; the lines before it are loaded"))
        } else {
            usage(format!(
                "{reason} (nothing after it was loaded; --skip-bad skips such lines)"
            ))
        });
    }
    if tally.failed > 0 {
        return Err(failure(format!(
            "{} records failed to load, the first with: {}",
            tally.failed,
            tally.first_failure.unwrap_or_default()
        )));
    }
    Ok(())
}

/// Moves the progress bar as input bytes are read.
struct CountingReader {
    inner: Box<dyn Read>,
    bar: ProgressBar,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// `dynakv export`.
pub fn export(args: ExportArgs) -> Result<(), CliError> {
    let client = ClientBuilder::new(args.node.clone())
        .timeout(Duration::from_secs(120))
        .route_to_replicas(true)
        .build()
        .map_err(|e| usage(e.to_string()))?;
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| usage(format!("cannot create {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = ProgressBar::new(dynakv_ring::PARTITIONS as u64).with_style(
        ProgressStyle::with_template("export {bar:40} {pos}/{len} partitions {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut keys = 0u64;
    let rt = runtime()?;
    for partition in 0..dynakv_ring::PARTITIONS {
        let records = rt
            .block_on(client.export_partition(partition))
            .map_err(|e| failure(format!("partition {partition}: {e}")))?;
        for r in &records {
            writeln!(out, "{}", r.to_json()).map_err(|e| failure(format!("writing: {e}")))?;
        }
        keys += records.len() as u64;
        bar.inc(1);
        bar.set_message(format!("{keys} keys"));
    }
    out.flush().map_err(|e| failure(format!("writing: {e}")))?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "exported {keys} keys in {secs:.1} s ({:.0} keys/s)",
        keys as f64 / secs.max(0.001)
    );
    Ok(())
}
