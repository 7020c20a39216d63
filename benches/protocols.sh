#!/usr/bin/env bash
# Riak's Protocol Buffers API against dynakv's native HTTP API and Riak's
# HTTP API (issue 26): the same records (bucket default of type default),
# GET of preloaded keys and PUT over them, 100-byte values, 64 clients,
# closed loop, through `dynakv bench --protocol`. Single node, then a 3-node
# cluster (N=3, W=2, R=2, load on all three). Each row runs once per round,
# rounds interleave the protocols, and the table gives medians, with each
# protocol's throughput as a ratio of the native API's measured in the same
# round.
#
#   benches/protocols.sh [seconds per row] [rounds]     (default 10, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-3}
RECORDS=100000
. benches/common.sh

start_node() { # i seeds
  local i=$1 seeds=$2
  "$BIN" node --name "n$i" --data-dir "$WORK/n$i" --listen "127.0.0.1:$((17100 + i))" \
    --http "127.0.0.1:$((18100 + i))" --pb "127.0.0.1:$((18200 + i))" ${seeds:+--seeds "$seeds"} \
    --gossip-interval-ms 200 --failure-timeout-ms 2000 >"$WORK/n$i.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$((18100 + i))/health/ready"
}

# row NODES HTTP-URLS PB-ADDRS PROTOCOL WORKLOAD -> "ops/s p99ms"
row() {
  "$BIN" bench --node "$2" --pb "$3" --protocol "$4" --workload "$5" --records "$RECORDS" \
    --value-size 100 --clients 64 --duration "$SECS" --load never --json 2>/dev/null |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
op = "read" if sys.argv[1] == "read-only" else "update"
o = next(x for x in r["ops"] if x["op"] == op)
errors = sum(x["errors"] for x in r["ops"])
print("%.0f %.2f %d" % (r["total_ops_per_s"], o["p99_ms"], errors))' "$5"
}

RESULTS="$WORK/results"
: >"$RESULTS"
for cluster in 1 3; do
  rm -rf "$WORK"/n*
  start_node 1 ""
  for i in $(seq 2 "$cluster"); do start_node "$i" "127.0.0.1:17101"; done
  urls=""; pbs=""
  for i in $(seq 1 "$cluster"); do
    urls="$urls${urls:+,}http://127.0.0.1:$((18100 + i))"
    pbs="$pbs${pbs:+,}127.0.0.1:$((18200 + i))"
  done
  if [ "$cluster" -gt 1 ]; then
    for _ in $(seq 1 300); do settled $(seq -s' ' 18101 $((18100 + cluster))) && break; sleep 0.2; done
  fi
  "$BIN" bench --node "$urls" --records "$RECORDS" --value-size 100 --load always --operations 1 >/dev/null 2>&1
  for round in $(seq 1 "$ROUNDS"); do
    for workload in read-only update-only; do
      wl=$workload; [ "$wl" = update-only ] && wl=write-only
      for proto in http pb riak-http; do
        echo "$cluster $round $workload $proto $(row "$cluster" "$urls" "$pbs" "$proto" "$wl")" >>"$RESULTS"
      done
    done
  done
  for _ in $(seq 1 "$cluster"); do stop_last; done
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
table = {}
for cluster, rnd, wl, proto, ops, p99, err in rows:
    table.setdefault((cluster, wl, proto), []).append((int(rnd), float(ops), float(p99), int(err)))
print(f"{'nodes':>5} {'workload':<12} {'protocol':<10} {'ops/s':>9} {'p99 ms':>8} {'vs native':>10} {'errors':>7}")
for (cluster, wl, proto), runs in sorted(table.items()):
    native = {r: o for r, o, _, _ in table[(cluster, wl, "http")]}
    ratios = [o / native[r] for r, o, _, _ in runs if native.get(r)]
    print(f"{cluster:>5} {wl:<12} {proto:<10} {statistics.median(o for _, o, _, _ in runs):>9.0f} "
          f"{statistics.median(p for _, _, p, _ in runs):>8.2f} "
          f"{statistics.median(ratios):>9.2f}x {sum(e for *_, e in runs):>7}")
PY
