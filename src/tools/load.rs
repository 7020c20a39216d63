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
//! memory holds one partition at a time. It is one replica's copy: run
//! `dynakv repair` first for an export that reflects every replica.
//!
//! **Load --sst** reads the whole input first (a malformed line stops it
//! before anything is sent), groups the records by partition and the
//! partitions by replica set, and sends each batch to one of its replicas
//! (`POST /admin/ingest`), which gives every key a dot of a freshly minted
//! actor, skips values it already holds, and has every replica ingest the
//! batch as SST files, or merge where a partition already holds data
//! (`crate::server::replication::ingest`). A replica that is down gets its share from
//! anti-entropy; the summary names it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use dynakv_client::records::IngestBatch;
use dynakv_client::{Client, ClientBuilder, Error, Options, Quorum, Record, Sibling};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};

use crate::tools::common::{CliError, NodeList, failure, usage};
use crate::tools::sst::{BLOCK_BYTES, IngestTally, Packer, by_replica_set, send_batches};

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
    /// The nodes; each record goes to one of its key's replicas.
    #[command(flatten)]
    pub nodes: NodeList,
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
    /// Load by SST ingestion: records are grouped by partition and each
    /// partition's replicas ingest them as SST files (merging where the
    /// partition already holds data).
    #[arg(long)]
    pub sst: bool,
    /// Batches (of partitions sharing their replicas) loaded at once with
    /// --sst.
    #[arg(long, default_value_t = 2)]
    pub batches_in_flight: usize,
    /// Admin bearer token (--sst uses an admin endpoint).
    #[arg(long, env = "DYNAKV_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// `dynakv export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The nodes (the ring is read from the first that answers).
    #[command(flatten)]
    pub nodes: NodeList,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Admin bearer token (export reads through an admin endpoint).
    #[arg(long, env = "DYNAKV_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
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

/// One input line, parsed.
enum Parsed {
    Record(Record),
    /// A blank line or a CSV header.
    Nothing,
    /// A malformed line: why.
    Bad(String),
    /// The input could not be read: the load stops, even with `--skip-bad`.
    Unreadable(String),
}

/// Where the input's line breaks are, so a CSV record's line number is the
/// line of its first byte. (The csv crate's own count lags after a `\r\n`
/// or blank lines: it places a record at the line break before it.)
#[derive(Default)]
struct Breaks {
    /// Bytes read so far.
    read: u64,
    /// Offsets of `\r` and `\n` bytes not yet passed by a query.
    pending: std::collections::VecDeque<(u64, u8)>,
    /// `\n`s before the last query.
    lines_before: u64,
}

impl Breaks {
    /// The 1-based line of the first byte at or after `offset` that is not a
    /// line break. Offsets must come in increasing order.
    fn line_at(&mut self, mut offset: u64) -> u64 {
        while let Some(&(at, byte)) = self.pending.front() {
            if at > offset {
                break;
            }
            if byte == b'\n' {
                self.lines_before += 1;
            }
            if at == offset {
                offset += 1;
            }
            self.pending.pop_front();
        }
        self.lines_before + 1
    }
}

/// A reader noting the line breaks it passes on (see [`Breaks`]).
struct Tracked<R> {
    inner: R,
    breaks: std::rc::Rc<std::cell::RefCell<Breaks>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut breaks = self.breaks.borrow_mut();
        let start = breaks.read;
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                breaks.pending.push_back((start + i as u64, b));
            }
        }
        breaks.read += n as u64;
        Ok(n)
    }
}

type Input = Box<dyn BufRead + Send>;

/// Reads records one line at a time, each with its line number.
enum Records {
    Jsonl(std::io::Lines<Input>),
    Csv {
        rows: csv::StringRecordsIntoIter<Tracked<Input>>,
        breaks: std::rc::Rc<std::cell::RefCell<Breaks>>,
    },
}

impl Records {
    fn open(input: Input, format: Format) -> Records {
        match format {
            Format::Jsonl => Records::Jsonl(input.lines()),
            Format::Csv => {
                let breaks = std::rc::Rc::new(std::cell::RefCell::new(Breaks::default()));
                let tracked = Tracked {
                    inner: input,
                    breaks: std::rc::Rc::clone(&breaks),
                };
                Records::Csv {
                    rows: csv::ReaderBuilder::new()
                        .has_headers(false)
                        .flexible(true)
                        .from_reader(tracked)
                        .into_records(),
                    breaks,
                }
            }
        }
    }

    /// The next line and its number; `None` at the end.
    fn next(&mut self, line: &mut u64) -> Option<Parsed> {
        match self {
            Records::Jsonl(lines) => {
                let next = lines.next()?;
                *line += 1;
                let text = match next {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        return Some(Parsed::Bad("not UTF-8 text".into()));
                    }
                    Err(e) => return Some(Parsed::Unreadable(format!("cannot read: {e}"))),
                };
                if text.trim().is_empty() {
                    return Some(Parsed::Nothing);
                }
                Some(match Record::from_json(&text) {
                    Ok(r) => Parsed::Record(r),
                    Err(e) => Parsed::Bad(e),
                })
            }
            Records::Csv { rows, breaks } => {
                let row = match rows.next()? {
                    Ok(r) => r,
                    Err(e) => {
                        if let Some(p) = e.position() {
                            *line = breaks.borrow_mut().line_at(p.byte());
                        }
                        return Some(match e.kind() {
                            csv::ErrorKind::Io(io) => {
                                Parsed::Unreadable(format!("cannot read: {io}"))
                            }
                            _ => Parsed::Bad(format!("bad CSV: {e}")),
                        });
                    }
                };
                if let Some(p) = row.position() {
                    *line = breaks.borrow_mut().line_at(p.byte());
                }
                let fields: Vec<&str> = row.iter().collect();
                let header = *line == 1
                    && fields
                        .first()
                        .is_some_and(|f| f.eq_ignore_ascii_case("key"))
                    && fields
                        .get(1)
                        .is_some_and(|f| f.eq_ignore_ascii_case("value"));
                if header || (fields.len() == 1 && fields[0].is_empty()) {
                    return Some(Parsed::Nothing);
                }
                let parsed = match fields.as_slice() {
                    [key, value] | [key, value, ""] => csv_record(key, value, None),
                    [key, value, content_type] => csv_record(key, value, Some(content_type)),
                    _ => Err(format!(
                        "expected key,value[,content_type], got {} fields",
                        fields.len()
                    )),
                };
                Some(match parsed {
                    Ok(r) => Parsed::Record(r),
                    Err(e) => Parsed::Bad(e),
                })
            }
        }
    }
}

fn csv_record(key: &str, value: &str, content_type: Option<&str>) -> Result<Record, String> {
    if key.is_empty() || key.len() > dynakv_client::records::MAX_KEY_BYTES {
        return Err(format!(
            "a key is 1-{} bytes, not {}",
            dynakv_client::records::MAX_KEY_BYTES,
            key.len()
        ));
    }
    Ok(Record {
        bucket: None,
        key: key.as_bytes().to_vec(),
        siblings: vec![Sibling::new(
            value.to_string(),
            content_type.unwrap_or(dynakv_client::records::DEFAULT_CONTENT_TYPE),
        )],
    })
}

/// Why storing a record failed, and whether trying again is safe: only when
/// no write of it may have reached a node (the read before the writes failed,
/// or a write could not connect). A write that may have been stored is never
/// sent again, which could store it twice.
struct Failed {
    error: Error,
    safe_to_retry: bool,
}

/// Stores one record's values; returns how many were new.
async fn store(
    client: &Client,
    record: &Record,
    read: &Options,
    write: &Options,
    blind: bool,
) -> Result<u64, Failed> {
    let mut stored = Vec::new();
    if !blind {
        match client.get_with(&record.key, read).await {
            Ok(o) => stored = o.siblings,
            Err(Error::NotFound { .. }) => {}
            Err(error) => {
                return Err(Failed {
                    error,
                    safe_to_retry: true,
                });
            }
        }
    }
    let mut new = 0;
    for sibling in &record.siblings {
        if stored.contains(sibling) {
            continue;
        }
        if let Err(error) = client
            .put_with(&record.key, sibling.clone(), None, write)
            .await
        {
            let safe_to_retry = matches!(error, Error::Unreachable { .. }) && !blind;
            return Err(Failed {
                error,
                safe_to_retry,
            });
        }
        stored.push(sibling.clone());
        new += 1;
    }
    Ok(new)
}

/// Stores a record, trying again (up to three times) only when that is safe
/// (see [`Failed`]): the retry reads first and skips what did get stored.
async fn store_with_retries(
    client: Client,
    record: Record,
    read: Arc<Options>,
    write: Arc<Options>,
    blind: bool,
) -> (usize, Result<u64, Error>) {
    let values = record.siblings.len();
    // A record of another bucket than the native API's names it.
    let (read, write) = match &record.bucket {
        None => (read, write),
        Some(b) => (
            Arc::new(Options {
                bucket: Some(b.clone()),
                ..(*read).clone()
            }),
            Arc::new(Options {
                bucket: Some(b.clone()),
                ..(*write).clone()
            }),
        ),
    };
    let mut attempt = 1u64;
    loop {
        match store(&client, &record, &read, &write, blind).await {
            Ok(new) => return (values, Ok(new)),
            Err(f) if f.safe_to_retry && f.error.is_retryable() && attempt < 3 => {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                attempt += 1;
            }
            Err(f) => return (values, Err(f.error)),
        }
    }
}

/// `dynakv load`.
pub fn load(args: LoadArgs) -> Result<(), CliError> {
    if args.concurrency == 0 || args.batches_in_flight == 0 {
        return Err(usage(
            "--concurrency and --batches-in-flight must be at least 1",
        ));
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
    let write = Arc::new(Options {
        quorum,
        ..Options::default()
    });
    // The read that finds values already stored uses the node's R: with
    // R + W > N it sees every write that was acknowledged.
    let read = Arc::new(Options::default());
    let (input, size): (Box<dyn Read + Send>, Option<u64>) = if args.file.as_os_str() == "-" {
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
    if args.sst {
        return load_sst(&args, format, counted, bar);
    }
    let client = ClientBuilder::new(args.nodes.node.clone())
        .ca_pem(args.nodes.access.ca_pem()?)
        .basic_auth(args.nodes.access.credentials()?)
        .connections(args.concurrency)
        .timeout(Duration::from_secs(30))
        .route_to_replicas(true)
        .build()
        .map_err(|e| usage(e.to_string()))?;

    // The input is read and parsed on a thread of its own, so a slow
    // producer on standard input never holds up writes already sent (they
    // are driven by the loop below while it waits for the next line).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Parsed)>(1024);
    let reader = std::thread::spawn(move || {
        let input: Input = Box::new(BufReader::with_capacity(1 << 20, counted));
        let mut records = Records::open(input, format);
        let mut line = 0u64;
        while let Some(parsed) = records.next(&mut line) {
            let last = matches!(parsed, Parsed::Unreadable(_));
            if tx.blocking_send((line, parsed)).is_err() || last {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut tally = Tally::default();
    let mut line = 0u64;
    let mut stopped: Option<String> = None;
    let settle = |tally: &mut Tally, (values, result): (usize, Result<u64, Error>)| match result {
        Ok(new) => {
            tally.loaded += new;
            tally.already_stored += values as u64 - new;
        }
        Err(e) => {
            tally.failed += 1;
            tally.first_failure.get_or_insert_with(|| e.to_string());
        }
    };
    runtime()?.block_on(async {
        let mut in_flight = FuturesUnordered::new();
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        let mut reading = true;
        while reading || !in_flight.is_empty() {
            tokio::select! {
                _ = &mut ctrl_c, if reading => {
                    stopped = Some(format!("interrupted after line {line}"));
                    reading = false;
                }
                Some(done) = in_flight.next(), if !in_flight.is_empty() => settle(&mut tally, done),
                next = rx.recv(), if reading && in_flight.len() < args.concurrency => {
                    let Some((at, parsed)) = next else {
                        reading = false;
                        continue;
                    };
                    line = at;
                    match parsed {
                        Parsed::Record(record) => in_flight.push(store_with_retries(
                            client.clone(),
                            record,
                            Arc::clone(&read),
                            Arc::clone(&write),
                            args.blind,
                        )),
                        Parsed::Nothing => {}
                        Parsed::Bad(reason) if args.skip_bad => {
                            tally.bad += 1;
                            bar.suspend(|| eprintln!("skipping line {line}: {reason}"));
                        }
                        Parsed::Bad(reason) | Parsed::Unreadable(reason) => {
                            stopped = Some(format!("line {line}: {reason}"));
                            reading = false;
                        }
                    }
                    if line.is_multiple_of(1024) {
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        bar.set_message(format!("{line} lines, {:.0} records/s", line as f64 / secs));
                    }
                }
            }
        }
    });
    // Stops the reader (its next send fails) if the load ended early.
    drop(rx);
    let _ = reader.join();
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
                "{reason} (nothing after it was loaded; --skip-bad skips malformed lines)"
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

/// `record` with its key as the node stores it: the bucket type and bucket
/// encoded in front of it (`dynakv_buckets::encode_key`), plain for the
/// default bucket.
fn stored_key(record: Record) -> Result<Record, String> {
    let Some((bucket_type, bucket)) = record.bucket else {
        if !dynakv_buckets::is_plain_key(&record.key) {
            return Err("a key of the default bucket may not begin with a zero byte".into());
        }
        return Ok(record);
    };
    let ns = dynakv_buckets::Namespace::new(bucket_type, bucket);
    ns.validate()?;
    Ok(Record {
        bucket: None,
        key: dynakv_buckets::encode_key(&ns, &record.key),
        siblings: record.siblings,
    })
}

/// `dynakv load --sst`: reads and checks every line first (a malformed one
/// stops the load before anything is sent), groups the records by partition
/// in token order, then has each partition ingested by its replicas
/// (`Client::ingest`), a few partitions at a time.
fn load_sst(
    args: &LoadArgs,
    format: Format,
    input: CountingReader,
    bar: ProgressBar,
) -> Result<(), CliError> {
    use std::collections::BTreeMap;
    let started = Instant::now();
    let client = ClientBuilder::new(args.nodes.node.clone())
        .ca_pem(args.nodes.access.ca_pem()?)
        .basic_auth(args.nodes.access.credentials()?)
        .timeout(Duration::from_secs(300))
        .route_to_replicas(true)
        .admin_token(args.admin_token.clone())
        .build()
        .map_err(|e| usage(e.to_string()))?;
    let rt = runtime()?;
    // The node's value limit, checked line by line (a batch the node refused
    // for one value would fail many records far from their line).
    let max_value = rt
        .block_on(client.status())
        .map_err(|e| failure(format!("reading the node's settings: {e}")))?["config"]
        ["max_value_bytes"]
        .as_u64()
        .unwrap_or(1 << 20) as usize;
    let mut records = Records::open(Box::new(BufReader::with_capacity(1 << 20, input)), format);
    // Each partition's records, encoded as they are read (compact: no
    // allocation per record is kept), in blocks of BLOCK_BYTES: blocks
    // never move once written, where one growing buffer per partition would
    // copy (and the kernel zero) its bytes several times over.
    let mut partitions: BTreeMap<usize, Vec<IngestBatch>> = BTreeMap::new();
    let (mut line, mut bad, mut read) = (0u64, 0u64, 0u64);
    while let Some(parsed) = records.next(&mut line) {
        let parsed = match parsed {
            Parsed::Record(r) if r.siblings.iter().any(|s| s.value.len() > max_value) => {
                Parsed::Bad(format!(
                    "a value is over the node's max_value_bytes ({max_value})"
                ))
            }
            // Records travel with the key the node stores, which names
            // their bucket (and places them).
            Parsed::Record(r) => match stored_key(r) {
                Ok(r) => Parsed::Record(r),
                Err(reason) => Parsed::Bad(reason),
            },
            other => other,
        };
        match parsed {
            Parsed::Record(r) => {
                let p = dynakv_ring::Ring::partition_of(dynakv_ring::token(&r.key));
                let blocks = partitions.entry(p).or_default();
                if blocks.last().is_none_or(|b| b.size() >= BLOCK_BYTES) {
                    blocks.push(IngestBatch::with_capacity(BLOCK_BYTES + 1024));
                }
                blocks.last_mut().expect("one block at least").push(&r);
                read += 1;
            }
            Parsed::Nothing => {}
            Parsed::Bad(reason) if args.skip_bad => {
                bad += 1;
                bar.suspend(|| eprintln!("skipping line {line}: {reason}"));
            }
            Parsed::Bad(reason) | Parsed::Unreadable(reason) => {
                bar.finish_and_clear();
                return Err(usage(format!(
                    "line {line}: {reason} (nothing was loaded; --skip-bad skips malformed lines)"
                )));
            }
        }
    }
    bar.finish_and_clear();
    let groups = rt.block_on(by_replica_set(&client, partitions))?;
    let batches = groups
        .into_values()
        .flat_map(|parts| Packer::pack(parts.into_iter()));
    let progress = ProgressBar::new(read).with_style(
        ProgressStyle::with_template("ingest {bar:40} {pos}/{len} records {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let IngestTally {
        stored,
        sst,
        merged,
        failed,
        skipped,
        first_failure,
    } = rt.block_on(send_batches(
        &client,
        batches,
        args.batches_in_flight,
        &progress,
    ));
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {read} records from {line} lines ({bad} bad lines skipped) in {secs:.1} s ({:.0} records/s): \
         {stored} keys took new values; {sst} key copies ingested as SST files, {merged} merged into existing data",
        read as f64 / secs.max(0.001)
    );
    if !skipped.is_empty() {
        let list: Vec<String> = skipped
            .iter()
            .map(|(n, c)| format!("{n} ({c} batches)"))
            .collect();
        eprintln!(
            "replicas that missed their share (down or failing): {}; anti-entropy gives it to them when they are back (`dynakv repair` runs it now)",
            list.join(", ")
        );
    }
    if failed > 0 {
        return Err(failure(format!(
            "{failed} records failed to load, the first error: {}",
            first_failure.unwrap_or_default()
        )));
    }
    Ok(())
}

/// Moves the progress bar as input bytes are read.
struct CountingReader {
    inner: Box<dyn Read + Send>,
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
    let client = ClientBuilder::new(args.nodes.node.clone())
        .ca_pem(args.nodes.access.ca_pem()?)
        .basic_auth(args.nodes.access.credentials()?)
        .timeout(Duration::from_secs(120))
        .route_to_replicas(true)
        .admin_token(args.admin_token.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &'static str, format: Format) -> Vec<(u64, String)> {
        let input: Input = Box::new(std::io::Cursor::new(text.as_bytes()));
        let mut records = Records::open(input, format);
        let mut line = 0;
        let mut out = Vec::new();
        while let Some(parsed) = records.next(&mut line) {
            let what = match parsed {
                Parsed::Record(r) => String::from_utf8_lossy(&r.key).into_owned(),
                Parsed::Nothing => continue,
                Parsed::Bad(_) => "bad".into(),
                Parsed::Unreadable(e) => e,
            };
            out.push((line, what));
        }
        out
    }

    #[test]
    fn csv_lines_are_numbered_by_their_first_byte_across_crlf_blank_lines_and_quoted_newlines() {
        let text = "key,value\r\na,1\r\n\r\nb,2\r\nc,1,2,3\r\n\"multi\nline\",v\r\nd,x,y,z\r\n";
        assert_eq!(
            parse_all(text, Format::Csv),
            [
                (2, "a".to_string()),
                (4, "b".into()),
                (5, "bad".into()),
                (6, "multi\nline".into()),
                (8, "bad".into())
            ]
        );
        // Without a header, the first line is a record.
        assert_eq!(
            parse_all("key2,value\n", Format::Csv),
            [(1, "key2".to_string())]
        );
    }

    #[test]
    fn json_lines_are_numbered_with_blank_lines_counted() {
        let text =
            "{\"key\":\"a\",\"value\":\"1\"}\n\n{\"key\":\"b\"}\n{\"key\":\"c\",\"value\":\"3\"}\n";
        assert_eq!(
            parse_all(text, Format::Jsonl),
            [(1, "a".to_string()), (3, "bad".into()), (4, "c".into())]
        );
    }
}
