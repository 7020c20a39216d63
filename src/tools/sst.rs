//! The `--sst` bulk-load path shared by `dynakv load` and `dynakv bench`'s
//! preload: records grouped by partition in blocks, partitions grouped by
//! replica set, packed into batches of whole partitions, and sent to the
//! nodes with a few batches in flight (`Client::ingest`).

use std::time::Instant;

use dynakv_client::Client;
use dynakv_client::records::IngestBatch;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::ProgressBar;

use crate::tools::common::{CliError, failure};

/// Most keys in one `--sst` batch (a node-to-node request carries at most
/// 65,536 items).
const BATCH_KEYS: usize = 50_000;

/// Most bytes of keys and values in one `--sst` batch: well inside the
/// node's 256 MiB body limit once base64-encoded, and its 96 MiB
/// node-to-node frames.
const BATCH_BYTES: usize = 32 << 20;

/// The size of the blocks `--sst` keeps each partition's records in.
pub(crate) const BLOCK_BYTES: usize = 64 << 10;

/// A batch being formed: whole partitions' blocks, concatenated only when
/// the batch is sent (so only the batches in flight take memory twice).
#[derive(Default)]
pub(crate) struct Pending {
    /// Its first partition (the batch goes to one of its replicas).
    partition: usize,
    /// Its last partition.
    last: usize,
    /// It carries the rest of a partition the batch before it began (one
    /// over the limits by itself): it is sent only after that one is done,
    /// so the receiving replica sees what the first part stored.
    continues: bool,
    blocks: Vec<IngestBatch>,
    records: usize,
    size: usize,
}

impl Pending {
    fn fits(&self, records: usize, size: usize) -> bool {
        self.records == 0
            || (self.records + records <= BATCH_KEYS && self.size + size <= BATCH_BYTES)
    }

    fn add(&mut self, partition: usize, block: IngestBatch) {
        if self.records == 0 {
            self.partition = partition;
        }
        self.last = partition;
        self.records += block.len();
        self.size += block.size();
        self.blocks.push(block);
    }

    fn into_batch(self) -> (usize, IngestBatch) {
        let mut batch = IngestBatch::with_capacity(self.size);
        for block in &self.blocks {
            batch.append(block);
        }
        (self.partition, batch)
    }
}

/// Groups partitions by their replica set (sorted: the set, not the
/// preference order). Partitions with the same replicas travel together, so
/// in a 3-node cluster every partition falls in one group, and each batch is
/// one run of the ring that overlaps no other batch's files.
pub(crate) async fn by_replica_set<T>(
    client: &Client,
    partitions: impl IntoIterator<Item = (usize, T)>,
) -> Result<std::collections::BTreeMap<Vec<String>, Vec<(usize, T)>>, CliError> {
    let mut groups: std::collections::BTreeMap<Vec<String>, Vec<(usize, T)>> = Default::default();
    for (p, item) in partitions {
        let mut replicas = client
            .replica_set(p)
            .await
            .map_err(|e| failure(format!("reading the ring: {e}")))?;
        replicas.sort();
        groups.entry(replicas).or_default().push((p, item));
    }
    Ok(groups)
}

/// Packs one replica set's partitions, in ring order, into batches of up to
/// BATCH_KEYS records and BATCH_BYTES: each replica then ingests a whole
/// batch at once, a pair of SST files per run of partitions (an ingestion costs a few fsyncs,
/// whatever its size). A batch ends at a partition's end, so a fresh
/// partition is filed whole: split, its second part would be merged key by
/// key into the first. Lazy: a partition's blocks are asked for only when
/// the batches before them were taken.
pub(crate) struct Packer<I> {
    parts: I,
    open: Pending,
    ready: std::collections::VecDeque<Pending>,
}

impl<I: Iterator<Item = (usize, Vec<IngestBatch>)>> Packer<I> {
    /// Packs the partitions `parts` yields, in their order.
    pub(crate) fn pack(parts: I) -> Packer<I> {
        Packer {
            parts,
            open: Pending::default(),
            ready: Default::default(),
        }
    }
}

impl<I: Iterator<Item = (usize, Vec<IngestBatch>)>> Iterator for Packer<I> {
    type Item = Pending;

    fn next(&mut self) -> Option<Pending> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Some(batch);
            }
            let Some((p, blocks)) = self.parts.next() else {
                let last = std::mem::take(&mut self.open);
                return (last.records > 0).then_some(last);
            };
            let records: usize = blocks.iter().map(IngestBatch::len).sum();
            let size: usize = blocks.iter().map(IngestBatch::size).sum();
            if !self.open.fits(records, size) {
                self.ready.push_back(std::mem::take(&mut self.open));
            }
            for block in blocks {
                // Only a partition over the limits by itself is split.
                if !self.open.fits(block.len(), block.size()) {
                    let full = std::mem::take(&mut self.open);
                    self.open.continues = full.records > 0 && full.last == p;
                    self.ready.push_back(full);
                }
                self.open.add(p, block);
            }
        }
    }
}

/// What the replicas said about a bulk load.
#[derive(Default)]
pub(crate) struct IngestTally {
    /// Keys that took new values.
    pub stored: u64,
    /// Key copies ingested as SST files.
    pub sst: u64,
    /// Key copies merged into existing data.
    pub merged: u64,
    /// Records whose batch failed.
    pub failed: u64,
    /// Replicas that missed their share, and in how many batches.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// The first failure.
    pub first_failure: Option<String>,
}

/// Sends `batches` with `in_flight` of them at a time (`Client::ingest`),
/// advancing `progress` by records.
pub(crate) async fn send_batches(
    client: &Client,
    batches: impl Iterator<Item = Pending>,
    in_flight: usize,
    progress: &ProgressBar,
) -> IngestTally {
    let started = Instant::now();
    let mut tally = IngestTally::default();
    let mut running = FuturesUnordered::new();
    let mut queue = batches;
    let mut waiting: Option<Pending> = None;
    loop {
        while running.len() < in_flight.max(1) {
            let Some(pending) = waiting.take().or_else(|| queue.next()) else {
                break;
            };
            if pending.continues && !running.is_empty() {
                waiting = Some(pending);
                break;
            }
            let client = client.clone();
            running.push(async move {
                let n = pending.records as u64;
                let (partition, batch) = pending.into_batch();
                (n, client.ingest(partition, batch).await)
            });
        }
        let Some((n, outcome)) = running.next().await else {
            break;
        };
        match outcome {
            Ok(answer) => {
                tally.stored += answer["keys"].as_u64().unwrap_or(0);
                for r in answer["replicas"].as_array().into_iter().flatten() {
                    tally.sst += r["sst"].as_u64().unwrap_or(0);
                    tally.merged += r["merged"].as_u64().unwrap_or(0);
                }
                for s in answer["skipped"].as_array().into_iter().flatten() {
                    let node = s["node"].as_str().unwrap_or("?").to_string();
                    *tally.skipped.entry(node).or_default() += 1;
                }
            }
            Err(e) => {
                tally.failed += n;
                tally.first_failure.get_or_insert_with(|| e.to_string());
            }
        }
        progress.inc(n);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        progress.set_message(format!(
            "{:.0} records/s",
            progress.position() as f64 / secs
        ));
    }
    tally
}
