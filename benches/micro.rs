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
        // Choosing the actor of a write (SPEC §2: no dot issued twice): an
        // object this incarnation already wrote, and one it never did.
        let inc = dynakv_versioning::Incarnation::with_id(9);
        let mut mine = base.clone();
        let a = inc.actor_for(0, &mine);
        mine.update(&mine.context(), a, value.clone());
        g.bench_with_input(
            BenchmarkId::new("actor_for_continue", siblings),
            &siblings,
            |b, _| b.iter(|| inc.actor_for(0, black_box(&mine))),
        );
        g.bench_with_input(
            BenchmarkId::new("actor_for_mint", siblings),
            &siblings,
            |b, _| b.iter(|| inc.actor_for(0, black_box(&base))),
        );
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
    // The coordinator's path: the actor comes from this process's incarnation
    // (no dot reissued after a restore or a lost log tail), against the fixed
    // actor above, in the same run.
    g.bench_function("engine_put_incarnation_actor", |b| {
        b.iter(|| {
            n += 1;
            let k = key(n);
            store
                .update(k.as_bytes(), |o| -> Result<(), ()> {
                    let actor = store.actor_for(k.as_bytes(), o);
                    o.update(
                        &VersionVector::new(),
                        actor,
                        Version::value(value.clone(), "", 0),
                    );
                    Ok(())
                })
                .expect("storage")
                .expect("update");
        })
    });
    let mut n = PRELOAD + 10_000_000;
    // A fixed actor of a realistic size (a random 64-bit id, as the
    // per-directory actor of earlier releases): the baseline for the above.
    g.bench_function("engine_put", |b| {
        b.iter(|| {
            n += 1;
            store
                .update(key(n).as_bytes(), |o| -> Result<(), ()> {
                    o.update(
                        &VersionVector::new(),
                        ActorId(0x9e37_79b9_7f4a_7c15),
                        Version::value(value.clone(), "", 0),
                    );
                    Ok(())
                })
                .expect("storage")
                .expect("update");
        })
    });
    // Two decompositions of the engine's put, for the closing ratios: what
    // writing the digest beside the object costs (one batch, two column
    // families, as the engine writes), and that plus the read every Dynamo
    // put makes first (the new version's dots depend on the stored ones).
    let (mut two_opts, _two_cache) = db_options(&config);
    two_opts.create_missing_column_families(true);
    let mut digest_opts = two_opts.clone();
    digest_opts.set_write_buffer_size(4 << 20);
    digest_opts.set_memtable_prefix_bloom_ratio(0.0);
    let two = rocksdb::DB::open_cf_descriptors(
        &two_opts,
        dir.path().join("two"),
        vec![
            rocksdb::ColumnFamilyDescriptor::new("objects", two_opts.clone()),
            rocksdb::ColumnFamilyDescriptor::new("digests", digest_opts),
        ],
    )
    .expect("open two");
    let (objects, digests) = (
        two.cf_handle("objects").expect("cf"),
        two.cf_handle("digests").expect("cf"),
    );
    let two_put = |k: &[u8]| {
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(digests, k, 0u64.to_be_bytes());
        batch.put_cf(objects, k, &value);
        two.write(batch).expect("two put");
    };
    for i in 0..PRELOAD {
        two_put(&storage_key(key(i).as_bytes()));
    }
    let mut n = PRELOAD;
    g.bench_function("rocksdb_put_two_cf", |b| {
        b.iter(|| {
            n += 1;
            two_put(&storage_key(key(n).as_bytes()));
        })
    });
    let mut n = PRELOAD + 10_000_000;
    g.bench_function("rocksdb_get_put_two_cf", |b| {
        b.iter(|| {
            n += 1;
            let k = storage_key(key(n).as_bytes());
            black_box(two.get_pinned_cf(objects, &k).expect("get").is_some());
            two_put(&k);
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

fn ring(c: &mut Criterion) {
    use dynakv_ring::{NodeSpec, Ring, token};
    let mut g = c.benchmark_group("ring");
    for nodes in [3usize, 16] {
        let history = (0..nodes)
            .map(|i| NodeSpec::new(format!("node-{i}")).joined_at(i as u64))
            .collect();
        let ring = Ring::new(history, 3);
        let keys: Vec<String> = (0..1024).map(|i| format!("user:{i:08}")).collect();
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("preference_list_lookup", nodes), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let t = token(black_box(keys[i].as_bytes()));
                ring.replicas_for_token(t).for_each(|r| {
                    black_box(r);
                });
            })
        });
    }
    g.bench_function("build_16_nodes", |b| {
        let history: Vec<NodeSpec> = (0..16)
            .map(|i| NodeSpec::new(format!("node-{i}")).joined_at(i as u64))
            .collect();
        b.iter(|| Ring::new(black_box(history.clone()), 3))
    });
    g.finish();
}

mod rpc_bench {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use dynakv::server::cluster::rpc::{
        self, Faults, Handler, Request, Response, RpcClient, RpcShared,
    };
    use dynakv::server::metrics::Metrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;

    pub struct Pong;

    impl Handler for Pong {
        async fn handle(self: Arc<Self>, _peer: String, _request: Request) -> Response {
            Response::Pong
        }
    }

    fn shared(name: &str) -> Arc<RpcShared> {
        Arc::new(RpcShared::new(
            name.into(),
            Some("bench".into()),
            Faults::default(),
            Arc::new(Metrics::new()),
        ))
    }

    /// An RPC server answering pings, and a client connected to it.
    pub async fn rpc_pair() -> (RpcClient, SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        tokio::spawn(rpc::serve(
            listener,
            shared("server"),
            Arc::new(Pong),
            stop.clone(),
        ));
        let client = RpcClient::new(shared("client"), "127.0.0.1".parse().expect("ip"));
        client
            .call(addr, None, Request::Ping, Duration::from_secs(5))
            .await
            .expect("first call");
        (client, addr, stop)
    }

    /// The baseline: a TCP server echoing 4-byte-length-prefixed frames.
    pub async fn echo_pair() -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.set_nodelay(true).expect("nodelay");
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s
    }

    /// Sends `k` small frames back to back and reads `k` echoes.
    pub async fn echo_round(s: &mut TcpStream, k: usize) {
        const FRAME: [u8; 16] = [0, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let out: Vec<u8> = FRAME.iter().copied().cycle().take(16 * k).collect();
        s.write_all(&out).await.expect("write");
        let mut back = vec![0u8; 16 * k];
        s.read_exact(&mut back).await.expect("read");
    }
}

fn rpc(c: &mut Criterion) {
    use std::time::Duration;

    use dynakv::server::cluster::rpc::Request;
    use rpc_bench::*;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (client, addr, _stop) = rt.block_on(rpc_pair());
    let client = std::sync::Arc::new(client);
    let echo = std::sync::Arc::new(tokio::sync::Mutex::new(rt.block_on(echo_pair())));
    let mut g = c.benchmark_group("rpc");
    for in_flight in [1usize, 64] {
        g.throughput(Throughput::Elements(in_flight as u64));
        g.bench_function(BenchmarkId::new("tcp_echo_baseline", in_flight), |b| {
            b.to_async(&rt).iter(|| {
                let echo = std::sync::Arc::clone(&echo);
                async move { echo_round(&mut *echo.lock().await, in_flight).await }
            })
        });
        g.bench_function(BenchmarkId::new("round_trip", in_flight), |b| {
            b.to_async(&rt).iter(|| {
                let client = std::sync::Arc::clone(&client);
                async move {
                    let calls = (0..in_flight)
                        .map(|_| client.call(addr, None, Request::Ping, Duration::from_secs(5)));
                    for r in futures::future::join_all(calls).await {
                        r.expect("ping");
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, dvvset, storage, ring, rpc);
criterion_main!(benches);
