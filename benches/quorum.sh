#!/usr/bin/env bash
# Quorum read/write throughput and latency: a single node (the baseline) against
# the three-node dev cluster (N=3, W=2, R=2), for 50/50 and 95/5 read/write mixes,
# 100-byte values, 64 clients. Prints each run and the cluster/single ratios.
#
#   benches/quorum.sh [seconds]      (default 10 s per run)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
cargo build --quiet
BIN=target/debug/dynakv
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

wait_healthy() { for _ in $(seq 1 100); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.1; done; echo "no $1" >&2; exit 1; }

run() { # label nodes workload
  "$BIN" bench --node "$2" --workload "$3" --clients 64 --keys 10000 --value-size 100 --duration "$SECS" --json > "$WORK/$1.json"
  python3 - "$WORK/$1.json" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}: {r['total_ops_per_s']:.0f} ops/s")
for o in r["ops"]:
    if o["count"]:
        print(f"  {o['op']}: {o['ops_per_s']:.0f}/s p50 {o['p50_ms']:.2f} p95 {o['p95_ms']:.2f} p99 {o['p99_ms']:.2f} p99.9 {o['p999_ms']:.2f} max {o['max_ms']:.2f} ms, errors {o['errors']}")
PY
}

"$BIN" node --data-dir "$WORK/single" --listen 127.0.0.1:7400 --http 127.0.0.1:8400 >"$WORK/single.log" 2>&1 &
SINGLE=$!
wait_healthy http://127.0.0.1:8400
run single-balanced http://127.0.0.1:8400 balanced
run single-read-mostly http://127.0.0.1:8400 read-mostly
kill $SINGLE; wait $SINGLE || true

"$BIN" dev --nodes 3 --data-dir "$WORK/cluster" >"$WORK/dev.log" 2>&1 &
for p in 8001 8002 8003; do wait_healthy "http://127.0.0.1:$p"; done
# Until the ring settles, partitions are in transit and writes need every replica.
for _ in $(seq 1 300); do
  python3 -c '
import json, sys, urllib.request
s = [json.load(urllib.request.urlopen(f"http://127.0.0.1:{p}/admin/status")) for p in (8001, 8002, 8003)]
sys.exit(0 if all(x["partitions_moving"] == 0 and x["transfers_pending"] == 0 and x["ring_epoch"] == s[0]["ring_epoch"] and len(x["ownership"]) == 3 for x in s) else 1)
' 2>/dev/null && break
  sleep 0.2
done
NODES=http://127.0.0.1:8001,http://127.0.0.1:8002,http://127.0.0.1:8003
run cluster-balanced "$NODES" balanced
run cluster-read-mostly "$NODES" read-mostly

python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
t = lambda n: json.load(open(f"{w}/{n}.json"))["total_ops_per_s"]
for mix in ["balanced", "read-mostly"]:
    print(f"{mix}: 3-node cluster / single node throughput = {t('cluster-'+mix)/t('single-'+mix):.2f}")
PY
