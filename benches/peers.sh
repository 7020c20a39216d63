#!/usr/bin/env bash
# The yardstick of the request path (SPEC §7, issue 10): one load generator
# (wrk, 2 threads, 64 connections), one machine, side by side:
#   - nginx serving a small static file: the machine's HTTP ceiling;
#   - a single dynakv node: PUT of fresh keys and GET of 100,000 preloaded
#     keys, 100-byte values;
#   - a 3-node dynakv dev cluster (N=3, W=2, R=2), load on one node;
#   - a 3-member etcd cluster: puts and serializable reads through its v3 JSON
#     gateway, the same keys and values.
# Prints one table with req/s, p99 and the ratios the targets are stated in.
#
#   benches/peers.sh [seconds per row] [rounds]        (default 10, 3)
#
# Every row runs once per round, each round from fresh stores, and the table
# gives medians: this machine's speed drifts by 10-20% within minutes. Each
# ratio is taken within a round (dynakv against the nginx or etcd measured
# moments before or after it), and the table gives their median and range.
#
# Needs nginx, etcd and wrk: apt-get install -y nginx-light etcd-server wrk
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-3}
missing=()
for tool in nginx etcd wrk python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}; install with: apt-get install -y nginx-light etcd-server wrk" >&2
  exit 1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
. benches/common.sh

# --- wrk scripts -------------------------------------------------------------
cat > "$WORK/common.lua" <<'LUA'
local b = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
function b64(data)
  return ((data:gsub('.', function(x)
    local r, byte = '', x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
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
cat > "$WORK/etcd_put.lua" <<LUA
dofile('$WORK/common.lua')
vb64 = b64(value)
request = function()
  return wrk.format('POST', '/v3/kv/put', { ['Content-Type'] = 'application/json' },
    '{"key":"' .. b64(fresh()) .. '","value":"' .. vb64 .. '"}')
end
LUA
cat > "$WORK/etcd_get.lua" <<LUA
dofile('$WORK/common.lua')
request = function()
  return wrk.format('POST', '/v3/kv/range', { ['Content-Type'] = 'application/json' },
    '{"key":"' .. b64(preloaded()) .. '","serializable":true}')
end
LUA

ROWS="$WORK/rows"
: > "$ROWS"
run() { # label url [script]
  local label=$1 url=$2 script=${3:-}
  local args=(-t2 -c64 "-d${SECS}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  wrk "${args[@]}" "$url" > "$WORK/$label.out" 2>&1 || true
  python3 - "$WORK/$label.out" "$label" >> "$ROWS" <<'PY'
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
  tail -1 "$ROWS" | awk '{printf "  %-16s %10.0f req/s  p99 %7.2f ms  errors %d\n", $1, $2, $3, $4}'
}

# --- nginx: the ceiling ------------------------------------------------------
mkdir -p "$WORK/www"
printf 'hello, this is a small static file\n' > "$WORK/www/index.html"
# nginx workers drop to an unprivileged user: they must be able to read it.
chmod 755 "$WORK" "$WORK/www"
chmod 644 "$WORK/www/index.html"
cat > "$WORK/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/tmp;
  server { listen 127.0.0.1:8901; root $WORK/www; }
}
CONF
mkdir -p "$WORK/tmp"
"$NGINX" -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_http http://127.0.0.1:8901/index.html

# --- dynakv and etcd: each round starts from fresh stores ---------------------
# A PUT row measured on a store that earlier rows grew by millions of keys
# pays for their compactions: every round starts the same way instead.
dynakv_rows() { # row-prefix url title: preload, the PUT and GET rows, stop
  "$BIN" bench --node "$2" --workload write-only --keys 100000 --value-size 100 --duration 1 --json >/dev/null
  echo "$3"
  run "$1_put" "$2" "$WORK/kv_put.lua"
  run "$1_get" "$2" "$WORK/kv_get.lua"
  stop_last
}
single_node() { # round
  rm -rf "$WORK/single"
  "$BIN" node --name single --data-dir "$WORK/single" --listen 127.0.0.1:7910 --http 127.0.0.1:8910 >"$WORK/single.log" 2>&1 &
  PIDS+=($!)
  wait_http http://127.0.0.1:8910/health
  dynakv_rows single http://127.0.0.1:8910 "round $1: a single dynakv node"
}
dynakv_cluster() { # round
  rm -rf "$WORK/cluster"
  "$BIN" dev --nodes 3 --data-dir "$WORK/cluster" >"$WORK/dev.log" 2>&1 &
  PIDS+=($!)
  for p in 8001 8002 8003; do wait_http "http://127.0.0.1:$p/health"; done
  for _ in $(seq 1 300); do settled 8001 8002 8003 && break; sleep 0.2; done
  dynakv_rows cluster http://127.0.0.1:8001 "round $1: dynakv, 3 nodes (N=3, W=2, R=2), load on one node"
}
etcd_cluster() { # round
  local cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
  for i in 1 2 3; do
    rm -rf "$WORK/etcd$i"
    etcd --name "e$i" --data-dir "$WORK/etcd$i" \
      --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
      --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "peers-bench-$1" \
      --log-level error >"$WORK/etcd$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in 1 2 3; do wait_http "http://127.0.0.1:2379$i/health"; done
  python3 - <<'PY'
# Preload the same 100,000 keys, 16 connections at a time.
import base64, http.client, json, threading
def load(start):
    c = http.client.HTTPConnection("127.0.0.1", 23791)
    v = base64.b64encode(b"v" * 100).decode()
    for i in range(start, 100000, 16):
        k = base64.b64encode(b"bench-%08d" % i).decode()
        c.request("POST", "/v3/kv/put", json.dumps({"key": k, "value": v}), {"Content-Type": "application/json"})
        c.getresponse().read()
ts = [threading.Thread(target=load, args=(s,)) for s in range(16)]
[t.start() for t in ts]
[t.join() for t in ts]
PY
  echo "round $1: etcd 3.4, 3 members, load on one member"
  run etcd_put http://127.0.0.1:23791 "$WORK/etcd_put.lua"
  run etcd_get http://127.0.0.1:23791 "$WORK/etcd_get.lua"
  stop_last; stop_last; stop_last
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round: nginx (static file)"
  run nginx http://127.0.0.1:8901/index.html
  single_node "$round"
  dynakv_cluster "$round"
  etcd_cluster "$round"
done
stop_last # nginx

# --- the table ---------------------------------------------------------------
python3 - "$ROWS" <<'PY'
import sys
from statistics import median
rows = {}
for line in open(sys.argv[1]):
    label, rps, p99, errors = line.split()
    rows.setdefault(label, []).append((float(rps), float(p99), int(errors)))
def med(label, i):
    return median(r[i] for r in rows[label])
def errors(label):
    return sum(r[2] for r in rows[label])
rounds = len(rows["nginx"])
print()
print(f"Medians of {rounds} round(s); ratio ranges are over the rounds; errors are summed.")
print()
print("| row | req/s | p99 ms | errors | ratio | ratio range | target |")
print("|---|---:|---:|---:|---:|---:|---|")
def line(label, ratio_to, what, target):
    # Within each round: the row against its peer measured in that round.
    ratios = [r[0] / c[0] if c[0] else 0 for r, c in zip(rows[label], rows[ratio_to])]
    ratio = median(ratios)
    print(f"| {label} | {med(label, 0):,.0f} | {med(label, 1):.2f} | {errors(label)} "
          f"| {ratio:.2f} x {what} | {min(ratios):.2f}-{max(ratios):.2f} | {target} |")
print(f"| nginx | {med('nginx', 0):,.0f} | {med('nginx', 1):.2f} | {errors('nginx')} | 1.00 | | ceiling |")
line("single_put", "nginx", "nginx", ">= 0.50")
line("single_get", "nginx", "nginx", ">= 0.50")
line("cluster_put", "etcd_put", "etcd put", ">= 3, lower p99")
line("cluster_get", "etcd_get", "etcd get", ">= 3, lower p99")
for label in ("etcd_put", "etcd_get"):
    print(f"| {label} | {med(label, 0):,.0f} | {med(label, 1):.2f} | {errors(label)} | | | |")
PY
