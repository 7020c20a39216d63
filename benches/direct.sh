#!/usr/bin/env bash
# Client-driven coordination (Dynamo §6.4, issue 10): `dynakv bench` against a
# 5-node dev cluster (N=3, so a node is a replica of 3/5 of the keys), in one
# run, routing round-robin over all nodes (a non-replica forwards each write
# it gets) and with --direct (each request goes to one of its key's replicas).
# Prints ops/s and p99 per mode and the forwarded writes the nodes counted.
#
#   benches/direct.sh [seconds per row]        (default 8)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
. benches/common.sh
"$BIN" dev --nodes 5 --data-dir "$WORK/cluster" >"$WORK/dev.log" 2>&1 &
PIDS+=($!)
for p in 8001 8002 8003 8004 8005; do wait_http "http://127.0.0.1:$p/health"; done
NODES=http://127.0.0.1:8001,http://127.0.0.1:8002,http://127.0.0.1:8003,http://127.0.0.1:8004,http://127.0.0.1:8005
forwarded() {
  local t=0
  for p in 8001 8002 8003 8004 8005; do
    v=$(curl -s "http://127.0.0.1:$p/metrics" | awk '/^dynakv_forwarded_writes_total/{print $2}')
    t=$((t + ${v%.*}))
  done
  echo $t
}
PORTS=(8001 8002 8003 8004 8005)
for _ in $(seq 1 600); do settled "${PORTS[@]}" 2>/dev/null && break; sleep 0.2; done
settled "${PORTS[@]}" || { echo "the cluster did not settle; see $WORK/dev.log" >&2; exit 1; }
# Preload once; the measured runs reuse the keys.
"$BIN" bench --node "$NODES" --direct --workload read-only --keys 100000 --clients 64 --duration 1 --json >/dev/null
# Each mode runs twice in A-B-B-A order (later runs pay earlier runs'
# compaction debt), and the table shows the mean of the two.
ROWS="$WORK/rows"
: > "$ROWS"
for workload in write-only read-only; do
  for mode in round-robin direct direct round-robin; do
    flag=()
    [ "$mode" = direct ] && flag=(--direct)
    before=$(forwarded)
    out=$("$BIN" bench --node "$NODES" "${flag[@]}" --workload "$workload" --keys 100000 --clients 64 --duration "$SECS" --load never --json)
    after=$(forwarded)
    echo "$workload $mode $((after - before)) $out" >> "$ROWS"
    echo "  $workload $mode done" >&2
  done
done
python3 - "$ROWS" <<'PY'
import json, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    workload, mode, fwd, out = line.split(" ", 3)
    r = json.loads(out)
    op = [o for o in r["ops"] if o.get("count")][0]
    runs[(workload, mode)].append((r["total_ops_per_s"], op["p99_ms"], int(fwd)))
print(f"| workload | routing | ops/s (mean of 2) | p99 ms | writes forwarded | direct / round-robin |")
print(f"|---|---|---:|---:|---:|---:|")
for workload in ("write-only", "read-only"):
    base = sum(x[0] for x in runs[(workload, "round-robin")]) / 2
    for mode in ("round-robin", "direct"):
        rs = runs[(workload, mode)]
        ops = sum(x[0] for x in rs) / len(rs)
        p99 = sum(x[1] for x in rs) / len(rs)
        fwd = sum(x[2] for x in rs)
        ratio = f"{ops / base:.2f}" if mode == "direct" else ""
        print(f"| {workload} | {mode} | {ops:,.0f} | {p99:.2f} | {fwd} | {ratio} |")
PY
