#!/usr/bin/env bash
# YCSB core workloads against disk-backed data (issue 13): A (50/50
# read/update), B (95/5), C (read only), F (read-modify-write) and D (read
# latest, 5% inserts; last, since it adds records), each for SECONDS, against
# a single node and then a 3-node cluster (N=3, R=2, W=2, requests rotating
# over the nodes). Every node runs with a 64 MiB block cache under a data set
# many times larger (default 2,000,000 records of 1 KiB, random bytes that do
# not compress), and each row shows the block-cache hit ratio over the row
# from the nodes' /metrics, so a reader can see the reads left the cache.
#
#   benches/ycsb.sh [records] [seconds per row] [value bytes] [clients]
#
# Defaults: 2000000 records, 30 s, 1024 B, 64 clients. The records are
# bulk-loaded once per configuration through the SST path (`dynakv bench`'s
# load phase). A block-cache miss is served by the kernel's page cache when
# the files are there (this machine's RAM holds the whole data set after its
# first touch), so a "disk" read here costs a system call, a copy, a
# checksum and decompression, not a device seek; see the README.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-2000000}
SECS=${2:-30}
VALUE=${3:-1024}
CLIENTS=${4:-64}
CACHE_MB=64
. benches/common.sh
cache_counts() { # http ports... -> "hits misses" summed over the nodes
  python3 - "$@" <<'PY'
import sys, urllib.request
hits = misses = 0
for p in sys.argv[1:]:
    for line in urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics").read().decode().splitlines():
        if line.startswith("dynakv_rocksdb_block_cache_hits "):
            hits += float(line.split()[1])
        elif line.startswith("dynakv_rocksdb_block_cache_misses "):
            misses += float(line.split()[1])
print(int(hits), int(misses))
PY
}

row() { # config nodes-csv ports workload
  local config=$1 nodes=$2 ports=$3 workload=$4
  read -r h0 m0 < <(cache_counts $ports)
  "$BIN" bench --node "$nodes" --workload "$workload" --records "$RECORDS" --value-size "$VALUE" \
    --clients "$CLIENTS" --duration "$SECS" --load never --interval 10 --json \
    > "$WORK/$config-$workload.json"
  read -r h1 m1 < <(cache_counts $ports)
  echo "$config $workload $((h1 - h0)) $((m1 - m0))" >> "$WORK/cache.txt"
}

run_config() { # config nodes-csv ports
  local config=$1 nodes=$2 ports=$3
  echo "[$config] loading $RECORDS records of $VALUE B" >&2
  "$BIN" bench --node "$nodes" --records "$RECORDS" --value-size "$VALUE" --load always \
    --operations 1 --clients 1 --json > /dev/null
  for w in a b c f d; do
    echo "[$config] workload $w, $SECS s" >&2
    row "$config" "$nodes" "$ports" "$w"
  done
}

# --- a single node ------------------------------------------------------------
"$BIN" node --name solo --data-dir "$WORK/single" --listen 127.0.0.1:7600 --http 127.0.0.1:8600 \
  --block-cache-mb "$CACHE_MB" >"$WORK/single.log" 2>&1 &
PIDS+=($!)
wait_http http://127.0.0.1:8600/health
run_config single http://127.0.0.1:8600 "8600"
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true

# --- a 3-node cluster -----------------------------------------------------------
for i in 1 2 3; do
  seeds=(); [ "$i" != 1 ] && seeds=(--seeds 127.0.0.1:7601)
  "$BIN" node --name "n$i" --data-dir "$WORK/n$i" --listen "127.0.0.1:760$i" --http "127.0.0.1:860$i" \
    --block-cache-mb "$CACHE_MB" "${seeds[@]}" >"$WORK/n$i.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:860$i/health"
done
for _ in $(seq 1 600); do settled 8601 8602 8603 && break; sleep 0.2; done
run_config cluster http://127.0.0.1:8601,http://127.0.0.1:8602,http://127.0.0.1:8603 "8601 8602 8603"

python3 - "$WORK" "$RECORDS" "$VALUE" "$CACHE_MB" "$SECS" "$CLIENTS" <<'PY'
import json, sys
work, records, value, cache, secs, clients = sys.argv[1:]
hit = {}
for line in open(f"{work}/cache.txt"):
    config, w, h, m = line.split()
    h, m = int(h), int(m)
    hit[(config, w)] = f"{100 * h / (h + m):.1f}%" if h + m else "-"
print(f"{int(records):,} records of {value} B, {cache} MiB block cache per node, {clients} clients, {secs} s per row, closed loop")
print()
print("| config | workload | ops/s | read p50 ms | read p99 ms | read p99.9 ms | write op | write p99 ms | errors | block cache hits |")
print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|")
for config in ("single", "cluster"):
    for w in "abcfd":
        r = json.load(open(f"{work}/{config}-{w}.json"))
        ops = {o["op"]: o for o in r["ops"]}
        read = ops.get("read", {})
        write_name = next((n for n in ("update", "rmw", "insert") if n in ops), None)
        write = ops.get(write_name, {})
        errors = sum(o["errors"] for o in r["ops"])
        f = lambda o, k: f"{o[k]:.2f}" if k in o else "-"
        label = "1 node" if config == "single" else "3 nodes"
        print(f"| {label} | {w.upper()} | {r['total_ops_per_s']:,.0f} | {f(read, 'p50_ms')} | {f(read, 'p99_ms')} | {f(read, 'p999_ms')} | {write_name or '-'} | {f(write, 'p99_ms')} | {errors} | {hit[(config, w)]} |")
PY
