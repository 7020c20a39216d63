#!/usr/bin/env bash
# Quorum read/write throughput and latency: a single node (the baseline) against
# the three-node dev cluster (N=3, W=2, R=2), for 50/50 and 95/5 read/write mixes,
# 100-byte values, 64 clients. Prints each run and the cluster/single ratios.
#
#   benches/quorum.sh [seconds]      (default 10 s per run)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
. benches/common.sh

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
PIDS+=($!)
wait_http http://127.0.0.1:8400/health
run single-balanced http://127.0.0.1:8400 balanced
run single-read-mostly http://127.0.0.1:8400 read-mostly
stop_last

"$BIN" dev --nodes 3 --data-dir "$WORK/cluster" >"$WORK/dev.log" 2>&1 &
PIDS+=($!)
for p in 8001 8002 8003; do wait_http "http://127.0.0.1:$p/health"; done
# Until the ring settles, partitions are in transit and writes need every replica.
for _ in $(seq 1 300); do settled 8001 8002 8003 2>/dev/null && break; sleep 0.2; done
NODES=http://127.0.0.1:8001,http://127.0.0.1:8002,http://127.0.0.1:8003
run cluster-balanced "$NODES" balanced
run cluster-read-mostly "$NODES" read-mostly

# One replica down: n3 paused (SIGSTOP, as a hung machine), load on the other
# two. Every write then needs its hint stored, as Dynamo's sloppy quorum does.
DEV=${PIDS[-1]}
N3=$(pgrep -P "$DEV" | while read -r c; do tr '\0' ' ' </proc/"$c"/cmdline | grep -q -- '--name n3 ' && echo "$c"; done | head -1)
run cluster-write-only "$NODES" write-only
kill -STOP "$N3"
trap 'kill -CONT "$N3" 2>/dev/null; cleanup' EXIT
for _ in $(seq 1 300); do
  curl -s http://127.0.0.1:8001/admin/status | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if any(m["name"]=="n3" and m["status"]=="down" for m in s["members"]) else 1)' && break
  sleep 0.1
done
run cluster-write-only-n3-down http://127.0.0.1:8001,http://127.0.0.1:8002 write-only
kill -CONT "$N3"

python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
t = lambda n: json.load(open(f"{w}/{n}.json"))["total_ops_per_s"]
for mix in ["balanced", "read-mostly"]:
    print(f"{mix}: 3-node cluster / single node throughput = {t('cluster-'+mix)/t('single-'+mix):.2f}")
print(f"write-only: n3 down / all up = {t('cluster-write-only-n3-down')/t('cluster-write-only'):.2f}")
PY
