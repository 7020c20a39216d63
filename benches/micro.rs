//! Criterion micro-benchmarks, one suite per layer, under one `main`.
//!
//! Run with `cargo bench --profile dev --bench micro` (the dev profile optimises
//! dependencies and shares the RocksDB build with the tests).
//!
//! Baselines are measured in the same run so figures can be read as ratios:
//! `storage/engine_put` against `storage/rocksdb_put`, and so on.

#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dynakv_storage::{ObjectStore, Storage, StorageConfig, db_options, storage_key};
use dynakv_versioning::{ActorId, Object, Version, VersionVector};

/// An object with `siblings` concurrent values from three actors.
fn object_with_siblings(siblings: usize) -> Object {
    let mut o = Object::new();
    for i in 0..siblings {
        o.update(
            &VersionVector::new(),
            ActorId(1 + (i % 3) as u64),
            Version::value(
                Bytes::from(vec![b'x'; 100]),
                "application/octet-stream",
                i as u64,
            ),
        );
    }
    o
}

fn dvvset(c: &mut Criterion) {
    let mut g = c.benchmark_group("dvvset");
    for siblings in [1usize, 3, 10] {
        let base = object_with_siblings(siblings);
        let ctx = base.context();
        let value = Version::value(Bytes::from(vec![b'y'; 100]), "application/octet-stream", 99);
        g.bench_with_input(
            BenchmarkId::new("update_with_context", siblings),
            &siblings,
            |b, _| {
                b.iter_batched(
                    || base.clone(),
                    |mut o| {
                        o.update(black_box(&ctx), ActorId(1), value.clone());
                        o
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        // Two replicas that diverged: each holds the common siblings plus one write
        // of its own.
        let mut left = base.clone();
        left.update(&VersionVector::new(), ActorId(10), value.clone());
        let mut right = base.clone();
        right.update(&VersionVector::new(), ActorId(11), value.clone());
        g.bench_with_input(BenchmarkId::new("sync", siblings), &siblings, |b, _| {
            b.iter(|| black_box(&left).synced(black_box(&right)))
        });
    }
    g.finish();
}

const PRELOAD: usize = 100_000;

fn storage(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig {
        path: dir.path().join("engine"),
        block_cache_mb: 256,
        sync_writes: false,
    };
    let store = Storage::open(&config).expect("open engine");
    // The baseline: bare RocksDB with the engine's exact options, one column
    // family, the same key layout and 100-byte values, so the ratio is the
    // engine's own overhead (read-modify-write, codec, digest, locking).
    let (raw_opts, _raw_cache) = db_options(&config);
    let raw = rocksdb::DB::open(&raw_opts, dir.path().join("raw")).expect("open raw");
    let value = Bytes::from(vec![b'v'; 100]);
    let key = |i: usize| format!("user:{i:08}");

    for i in 0..PRELOAD {
        let k = key(i);
        raw.put(storage_key(k.as_bytes()), &value).expect("raw put");
        store
            .update(k.as_bytes(), |o| -> Result<(), ()> {
                o.update(
                    &VersionVector::new(),
                    ActorId(1),
                    Version::value(value.clone(), "", 0),
                );
                Ok(())
            })
            .expect("storage")
            .expect("update");
    }

    let mut g = c.benchmark_group("storage");
    g.throughput(Throughput::Elements(1));
    let mut n = PRELOAD;
    g.bench_function("rocksdb_put", |b| {
        b.iter(|| {
            n += 1;
            raw.put(storage_key(key(n).as_bytes()), &value)
                .expect("raw put");
        })
    });
    let mut n = PRELOAD;
    g.bench_function("engine_put", |b| {
        b.iter(|| {
            n += 1;
            store
                .update(key(n).as_bytes(), |o| -> Result<(), ()> {
                    o.update(
                        &VersionVector::new(),
                        ActorId(1),
                        Version::value(value.clone(), "", 0),
                    );
                    Ok(())
                })
                .expect("storage")
                .expect("update");
        })
    });
    let mut i = 0usize;
    g.bench_function("rocksdb_get", |b| {
        b.iter(|| {
            i = (i + 7919) % PRELOAD;
            black_box(raw.get(storage_key(key(i).as_bytes())).expect("raw get"));
        })
    });
    let mut i = 0usize;
    g.bench_function("engine_get", |b| {
        b.iter(|| {
            i = (i + 7919) % PRELOAD;
            black_box(store.get(key(i).as_bytes()).expect("get"));
        })
    });
    g.finish();
}

criterion_group!(benches, dvvset, storage);
criterion_main!(benches);
