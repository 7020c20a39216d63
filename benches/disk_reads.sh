#!/usr/bin/env bash
# Disk-backed reads: the same data set (default 200,000 keys of 1 KiB, ~200 MB)
# read by a node whose block cache holds a small part of it (8 MiB) and, as the
# baseline in the same run, by a node whose cache holds all of it (1 GiB).
#
#   benches/disk_reads.sh [keys] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-200000}
SECS=${2:-10}
cargo build --quiet
BIN=target/debug/dynakv
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

wait_healthy() { for _ in $(seq 1 300); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.1; done; echo "no $1" >&2; exit 1; }

# Load once through a node, then reopen the same data with each cache size.
"$BIN" node --data-dir "$WORK/data" --listen 127.0.0.1:7500 --http 127.0.0.1:8500 >"$WORK/load.log" 2>&1 &
wait_healthy http://127.0.0.1:8500
"$BIN" bench --node http://127.0.0.1:8500 --workload write-only --keys "$KEYS" --value-size 1024 --duration 1 --json >/dev/null
kill %1; wait %1 || true

for cache in 8 1024; do
  "$BIN" node --data-dir "$WORK/data" --listen 127.0.0.1:7500 --http 127.0.0.1:8500 --block-cache-mb "$cache" >"$WORK/node-$cache.log" 2>&1 &
  wait_healthy http://127.0.0.1:8500
  # Warm the large cache so the baseline really is in memory.
  [ "$cache" = 1024 ] && "$BIN" bench --node http://127.0.0.1:8500 --workload read-only --keys "$KEYS" --duration 5 --load never >/dev/null
  "$BIN" bench --node http://127.0.0.1:8500 --workload read-only --keys "$KEYS" --value-size 1024 --duration "$SECS" --load never --json > "$WORK/cache-$cache.json"
  curl -s http://127.0.0.1:8500/metrics | grep -E '^dynakv_rocksdb_block_cache_(hits|misses) ' | sed "s/^/  cache ${cache} MiB: /"
  kill %1; wait %1 || true
done

python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
r = {c: json.load(open(f"{w}/cache-{c}.json")) for c in (8, 1024)}
for c, label in ((8, "8 MiB cache (disk-backed)"), (1024, "1 GiB cache (in memory)")):
    g = next(o for o in r[c]["ops"] if o["op"] == "read")
    print(f"{label}: {g['ops_per_s']:.0f} reads/s, p50 {g['p50_ms']:.2f} p95 {g['p95_ms']:.2f} p99 {g['p99_ms']:.2f} p99.9 {g['p999_ms']:.2f} ms, errors {g['errors']}")
print(f"disk-backed / in-memory read throughput = {r[8]['total_ops_per_s'] / r[1024]['total_ops_per_s']:.2f}")
PY
