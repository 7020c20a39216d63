#!/usr/bin/env bash
# Adding a node to a loaded cluster (SPEC §7 "Membership change"): three nodes
# (N=3, W=2, R=2) hold KEYS keys of 100 bytes; a fourth joins while clients
# keep reading and writing. Prints:
#   - time until the ring settles (every transfer done, every node on one ring);
#   - bytes streamed against the ring's predicted share (partitions the joiner
#     gains x bytes per partition, from a bare scan of a node's data);
#   - transfer rate against that bare scan of the objects column family,
#     measured in the same run on a copy of a node's data directory;
#   - client p50/p99 before and during the transfer.
#
#   benches/membership.sh [keys] [transfer_rate_mb_s]   (default 1000000, 1000 = unthrottled)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
RATE=${2:-1000}
cargo build --quiet
cargo bench --profile dev --bench scan --no-run --quiet 2>/dev/null
BIN=target/debug/dynakv
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_healthy() { for _ in $(seq 1 300); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.1; done; echo "no $1" >&2; exit 1; }
start() { # i [seed]
  local i=$1; shift
  "$BIN" node --name "n$i" --data-dir "$WORK/n$i" --listen "127.0.0.1:76$((i))0" --http "127.0.0.1:86$((i))0" \
    --transfer-rate-mb-s "$RATE" "$@" >"$WORK/n$i.log" 2>&1 &
  PIDS+=($!)
  wait_healthy "http://127.0.0.1:86$((i))0"
}
status() { curl -s "http://127.0.0.1:86$10/admin/status"; }
settled() { # nodes...
  python3 - "$@" <<'PY'
import json, sys, urllib.request
s = [json.load(urllib.request.urlopen(f"http://127.0.0.1:86{i}0/admin/status")) for i in sys.argv[1:]]
ok = all(x["partitions_moving"] == 0 and x["transfers_pending"] == 0 and x["ring_epoch"] == s[0]["ring_epoch"] for x in s)
ok = ok and all(len(x["ownership"]) == len(sys.argv) - 1 for x in s)
sys.exit(0 if ok else 1)
PY
}
metric() { curl -s "http://127.0.0.1:86$10/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

start 1
start 2 --seeds 127.0.0.1:7610
start 3 --seeds 127.0.0.1:7610
until settled 1 2 3; do sleep 0.5; done
NODES=http://127.0.0.1:8610,http://127.0.0.1:8620,http://127.0.0.1:8630

echo "loading $KEYS keys of 100 bytes (w=2)..."
"$BIN" bench --node "$NODES" --workload write-only --keys "$KEYS" --value-size 100 --clients 64 --duration 1 --json >/dev/null
PLAN=$(curl -s "http://127.0.0.1:8610/admin/plan?join=n4")

# Bare scan of a copy of n3's data (stopped for the copy, then restarted).
kill "${PIDS[2]}"; wait "${PIDS[2]}" 2>/dev/null || true
cp -r "$WORK/n3/db" "$WORK/scan-copy"
start 3 --seeds 127.0.0.1:7610
until settled 1 2 3; do sleep 0.5; done
DYNAKV_SCAN_DIR="$WORK/scan-copy" cargo bench --profile dev --bench scan --quiet 2>/dev/null | tail -1 > "$WORK/scan.json"
rm -rf "$WORK/scan-copy"

# Client load: quorum reads (r=2) of loaded keys. Reads keep the data set
# fixed, so the bytes streamed can be compared with the predicted share; writes
# during a handoff are covered by tests/membership.rs.
echo "client load before the change (15 s)..."
"$BIN" bench --node "$NODES" --workload read-only --keys "$KEYS" --load never --clients 16 --duration 15 --json > "$WORK/before.json"

echo "adding n4 under client load..."
"$BIN" bench --node "$NODES" --workload read-only --keys "$KEYS" --load never --clients 16 --duration 30 --json > "$WORK/during.json" &
BENCH=$!
T0=$(date +%s.%N)
start 4 --seeds 127.0.0.1:7620
until settled 1 2 3 4; do sleep 0.2; done
T1=$(date +%s.%N)
wait $BENCH

python3 - "$WORK" "$T0" "$T1" "$KEYS" "$PLAN" <<'PY'
import json, sys, urllib.request
w, t0, t1, keys, plan = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
def metric(i, name):
    for line in urllib.request.urlopen(f"http://127.0.0.1:86{i}0/metrics").read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
scan = json.load(open(f"{w}/scan.json"))
gained = sum(1 for m in plan["moves"] if "n4" in m["gained"])
predicted = scan["bytes"] * gained / 1024
sent = sum(metric(i, "dynakv_transfer_bytes_sent_total") for i in (1, 2, 3))
received = metric(4, "dynakv_transfer_bytes_received_total")
rkeys = metric(4, "dynakv_transfer_keys_received_total")
secs = t1 - t0
rate = received / secs / 1e6
print(f"\n{keys} keys x 100 B on 3 nodes; n4 joins and gains {gained} of 1024 partitions")
print(f"time to settle:            {secs:.1f} s")
print(f"bytes streamed:            {sent/1e6:.1f} MB sent, {received/1e6:.1f} MB received ({rkeys:.0f} keys)")
print(f"ring's predicted share:    {predicted/1e6:.1f} MB  -> streamed / predicted = {sent/predicted:.2f}")
print(f"bare scan (same run):      {scan['mb_per_s']:.1f} MB/s, {scan['keys_per_s']:.0f} keys/s ({scan['keys']} keys in {scan['secs']:.2f} s)")
print(f"handoff rate:              {rate:.1f} MB/s over the whole settle -> {rate/scan['mb_per_s']:.2f} of the bare scan")
for label in ("before", "during"):
    r = json.load(open(f"{w}/{label}.json"))
    for o in r["ops"]:
        if o["count"]:
            print(f"client {label:<6} {o['op']:<6} {o['ops_per_s']:>8.0f}/s  p50 {o['p50_ms']:.2f} ms  p99 {o['p99_ms']:.2f} ms  errors {o['errors']}")
b = {o["op"]: o for o in json.load(open(f"{w}/before.json"))["ops"]}
d = {o["op"]: o for o in json.load(open(f"{w}/during.json"))["ops"]}
for op in b:
    if b[op]["count"] and d[op]["count"]:
        print(f"p99 during / before ({op}): {d[op]['p99_ms']/b[op]['p99_ms']:.2f}")
PY
