#!/usr/bin/env bash
# The cost of TLS on the request path (issue 27): the same rows as
# benches/peers.sh (wrk, 2 threads, 64 kept-alive connections, PUT of fresh
# keys and GET of 100,000 preloaded keys, 100-byte values), each measured
# plain and with TLS on every listener (client HTTP and node-to-node), in the
# same round:
#   - a single dynakv node;
#   - a 3-node dynakv dev cluster (N=3, W=2, R=2), load on one node.
# Prints req/s and p99 per row, and TLS/plain ratios (median and range over
# the rounds).
#
#   benches/tls.sh [seconds per row] [rounds]        (default 10, 3)
#
# Needs wrk (apt-get install -y wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-3}
command -v wrk >/dev/null 2>&1 || { echo "missing: wrk; install with: apt-get install -y wrk" >&2; exit 1; }
. benches/common.sh

cat > "$WORK/common.lua" <<'LUA'
value = string.rep('v', 100)
counter = 0
thread_id = 0
local threads = 0
function setup(thread) thread:set('thread_id', threads); threads = threads + 1 end
function init(args) math.randomseed(os.time() + thread_id * 7919) end
function preloaded() return string.format('bench-%08d', math.random(0, 99999)) end
function fresh() counter = counter + 1; return string.format('fresh-%d-%d', thread_id, counter) end
LUA
cat > "$WORK/kv_put.lua" <<LUA
dofile('$WORK/common.lua')
request = function() return wrk.format('PUT', '/kv/' .. fresh(), { ['Content-Type'] = 'application/octet-stream' }, value) end
LUA
cat > "$WORK/kv_get.lua" <<LUA
dofile('$WORK/common.lua')
request = function() return wrk.format('GET', '/kv/' .. preloaded()) end
LUA

ROWS="$WORK/rows"
: > "$ROWS"
run() { # label url script
  wrk -t2 -c64 "-d${SECS}s" --latency -s "$3" "$2" > "$WORK/$1.out" 2>&1 || true
  python3 - "$WORK/$1.out" "$1" >> "$ROWS" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", text)
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
print(sys.argv[2], float(rps.group(1)) if rps else 0.0,
      float(p99.group(1)) * scale[p99.group(2)] if p99 else 0.0,
      int(non2xx.group(1)) if non2xx else 0)
PY
  tail -1 "$ROWS" | awk '{printf "  %-18s %10.0f req/s  p99 %7.2f ms  errors %d\n", $1, $2, $3, $4}'
}

CERTS="$WORK/certs"
"$BIN" certs init --dir "$CERTS" >/dev/null
"$BIN" certs node single --dir "$CERTS" --host 127.0.0.1 >/dev/null
CA="$CERTS/ca.pem"

rows() { # prefix url ca-or-empty: preload, PUT and GET rows
  local ca=()
  [ -n "$3" ] && ca=(--ca "$3")
  "$BIN" bench --node "$2" "${ca[@]}" --workload write-only --keys 100000 --value-size 100 --duration 1 --json >/dev/null
  run "$1_put" "$2" "$WORK/kv_put.lua"
  run "$1_get" "$2" "$WORK/kv_get.lua"
}
single() { # round tls(0|1)
  rm -rf "$WORK/single"
  local tls=() scheme=http label=single_plain
  if [ "$2" = 1 ]; then
    tls=(--tls-cert "$CERTS/single.pem" --tls-key "$CERTS/single.key" --tls-ca "$CA")
    scheme=https; label=single_tls
  fi
  "$BIN" node --name single --data-dir "$WORK/single" --listen 127.0.0.1:7910 --http 127.0.0.1:8910 --pb 127.0.0.1:8911 "${tls[@]}" >"$WORK/single.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do curl -sf --cacert "$CA" -o /dev/null "$scheme://127.0.0.1:8910/health" && break; sleep 0.1; done
  echo "round $1: a single node, $label"
  rows "$label" "$scheme://127.0.0.1:8910" "$([ "$2" = 1 ] && echo "$CA")"
  stop_last
}
cluster() { # round tls(0|1)
  rm -rf "$WORK/cluster"
  local tls=() scheme=http label=cluster_plain
  if [ "$2" = 1 ]; then tls=(--tls); scheme=https; label=cluster_tls; fi
  "$BIN" dev --nodes 3 --data-dir "$WORK/cluster" "${tls[@]}" >"$WORK/dev.log" 2>&1 &
  PIDS+=($!)
  local ca="$WORK/cluster/certs/ca.pem"
  for _ in $(seq 1 300); do grep -q "ready in" "$WORK/dev.log" && break; sleep 0.2; done
  echo "round $1: 3 nodes, $label"
  rows "$label" "$scheme://127.0.0.1:8001" "$([ "$2" = 1 ] && echo "$ca")"
  stop_last
}

for round in $(seq 1 "$ROUNDS"); do
  single "$round" 0
  single "$round" 1
  cluster "$round" 0
  cluster "$round" 1
done

python3 - "$ROWS" "$ROUNDS" <<'PY'
import sys
from statistics import median
rows = {}
for line in open(sys.argv[1]):
    label, rps, p99, errors = line.split()
    rows.setdefault(label, []).append((float(rps), float(p99), int(errors)))
print()
print(f"{'row':<18} {'req/s':>10} {'p99 ms':>8} {'errors':>7}   TLS/plain req/s (median, range)   p99")
for setup in ("single", "cluster"):
    for op in ("put", "get"):
        plain, tls = rows.get(f"{setup}_plain_{op}", []), rows.get(f"{setup}_tls_{op}", [])
        for label, r in ((f"{setup}_plain_{op}", plain), (f"{setup}_tls_{op}", tls)):
            if r:
                print(f"{label:<18} {median(x[0] for x in r):>10.0f} {median(x[1] for x in r):>8.2f} {sum(x[2] for x in r):>7}")
        ratios = [t[0] / p[0] for p, t in zip(plain, tls) if p[0] > 0]
        p99s = [t[1] / p[1] for p, t in zip(plain, tls) if p[1] > 0]
        if ratios:
            print(f"{'':<38}   {setup} {op}: {median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})   {median(p99s):.2f}x")
PY
