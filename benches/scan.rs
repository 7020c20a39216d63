//! The baseline for ownership-handoff throughput: a bare, sequential scan of a
//! data directory's `objects` column family with the engine's own RocksDB
//! options (no decoding, no network, no merging). Used by
//! `benches/membership.sh`, which points it at a copy of a node's directory:
//!
//!   DYNAKV_SCAN_DIR=/path/to/node/db cargo bench --profile dev --bench scan
//!
//! Prints one JSON line: keys, bytes, seconds, MB/s, keys/s.

use std::time::Instant;

use dynakv_storage::{StorageConfig, db_options};
use rocksdb::{DB, IteratorMode, ReadOptions};

fn main() {
    let Ok(dir) = std::env::var("DYNAKV_SCAN_DIR") else {
        eprintln!("set DYNAKV_SCAN_DIR to a node's db directory (a copy: it is opened read-only)");
        return;
    };
    let (opts, _cache) = db_options(&StorageConfig {
        path: dir.clone().into(),
        block_cache_mb: 64,
        sync_writes: false,
    });
    let db = match DB::open_cf_for_read_only(
        &opts,
        &dir,
        ["objects", "digests", "hints", "meta"],
        false,
    ) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("cannot open {dir}: {e}");
            std::process::exit(1);
        }
    };
    let Some(cf) = db.cf_handle("objects") else {
        eprintln!("{dir} has no objects column family");
        std::process::exit(1);
    };
    let mut ro = ReadOptions::default();
    ro.fill_cache(false);
    let started = Instant::now();
    let (mut keys, mut bytes) = (0u64, 0u64);
    for item in db.iterator_cf_opt(cf, ro, IteratorMode::Start) {
        let Ok((k, v)) = item else {
            eprintln!("scan failed");
            std::process::exit(1);
        };
        keys += 1;
        bytes += (k.len() + v.len()) as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"keys\": {keys}, \"bytes\": {bytes}, \"secs\": {secs:.3}, \"mb_per_s\": {:.1}, \"keys_per_s\": {:.0}}}",
        bytes as f64 / secs / 1e6,
        keys as f64 / secs
    );
}
