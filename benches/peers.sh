#!/usr/bin/env bash
# The yardstick of the request path (SPEC §7, issue 10): one load generator
# (wrk, 2 threads, 64 connections), one machine, one run, side by side:
#   - nginx serving a small static file: the machine's HTTP ceiling;
#   - a single dynakv node: PUT of fresh keys and GET of 100,000 preloaded
#     keys, 100-byte values;
#   - a 3-node dynakv dev cluster (N=3, W=2, R=2), load on one node;
#   - a 3-member etcd cluster: puts and serializable reads through its v3 JSON
#     gateway, the same keys and values.
# Prints one table with req/s, p99 and the ratios the targets are stated in.
#
#   benches/peers.sh [seconds per row]        (default 10)
#
# Needs nginx, etcd and wrk: apt-get install -y nginx-light etcd-server wrk
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
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
echo "nginx (static file)"
run nginx http://127.0.0.1:8901/index.html
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

# --- a single dynakv node ----------------------------------------------------
"$BIN" node --name single --data-dir "$WORK/single" --listen 127.0.0.1:7910 --http 127.0.0.1:8910 >"$WORK/single.log" 2>&1 &
PIDS+=($!)
wait_http http://127.0.0.1:8910/health
"$BIN" bench --node http://127.0.0.1:8910 --workload write-only --keys 100000 --value-size 100 --duration 1 --json >/dev/null
echo "dynakv, single node"
run single_put http://127.0.0.1:8910 "$WORK/kv_put.lua"
run single_get http://127.0.0.1:8910 "$WORK/kv_get.lua"
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

# --- a 3-node dynakv cluster -------------------------------------------------
"$BIN" dev --nodes 3 --data-dir "$WORK/cluster" >"$WORK/dev.log" 2>&1 &
PIDS+=($!)
for p in 8001 8002 8003; do wait_http "http://127.0.0.1:$p/health"; done
for _ in $(seq 1 300); do settled 8001 8002 8003 && break; sleep 0.2; done
"$BIN" bench --node http://127.0.0.1:8001 --workload write-only --keys 100000 --value-size 100 --duration 1 --json >/dev/null
echo "dynakv, 3 nodes (N=3, W=2, R=2), load on one node"
run cluster_put http://127.0.0.1:8001 "$WORK/kv_put.lua"
run cluster_get http://127.0.0.1:8001 "$WORK/kv_get.lua"
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

# --- a 3-member etcd cluster -------------------------------------------------
CLUSTER="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$WORK/etcd$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token peers-bench \
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
echo "etcd 3.4, 3 members, load on one member"
run etcd_put http://127.0.0.1:23791 "$WORK/etcd_put.lua"
run etcd_get http://127.0.0.1:23791 "$WORK/etcd_get.lua"

# --- the table ---------------------------------------------------------------
python3 - "$ROWS" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    label, rps, p99, errors = line.split()
    rows[label] = (float(rps), float(p99), int(errors))
ceiling = rows["nginx"][0]
print()
print(f"| row | req/s | p99 ms | errors | ratio | target |")
print(f"|---|---:|---:|---:|---:|---|")
def line(label, ratio_to, what, target):
    rps, p99, err = rows[label]
    ratio = rps / rows[ratio_to][0] if rows[ratio_to][0] else 0
    print(f"| {label} | {rps:,.0f} | {p99:.2f} | {err} | {ratio:.2f} x {what} | {target} |")
print(f"| nginx | {ceiling:,.0f} | {rows['nginx'][1]:.2f} | {rows['nginx'][2]} | 1.00 | ceiling |")
line("single_put", "nginx", "nginx", ">= 0.50")
line("single_get", "nginx", "nginx", ">= 0.50")
line("cluster_put", "etcd_put", "etcd put", ">= 3, lower p99")
line("cluster_get", "etcd_get", "etcd get", ">= 3, lower p99")
print(f"| etcd_put | {rows['etcd_put'][0]:,.0f} | {rows['etcd_put'][1]:.2f} | {rows['etcd_put'][2]} | | |")
print(f"| etcd_get | {rows['etcd_get'][0]:,.0f} | {rows['etcd_get'][1]:.2f} | {rows['etcd_get'][2]} | | |")
PY
