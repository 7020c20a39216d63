#!/usr/bin/env bash
# Forming a cluster: starts K nodes at once on 127.0.0.1 (each seeded with the
# others, default timing: gossip 1 s, failure timeout 5 s) while 8 writers
# send new keys (w=2) round-robin to every node from the first moment.
# Reports the time from the start to every node answering GET /health/ready
# (and to the ring settling), and the writes refused before and after
# readiness, by error code.
#
#   benches/forming.sh [K=3] [SECONDS_AFTER_READY=10] [ROUNDS=3]
#
# DYNAKV_BIN measures another build (an older commit, for a before/after;
# a build without /health/ready is timed to every node showing every member
# up with nothing moving instead).
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-3}
AFTER=${2:-10}
ROUNDS=${3:-3}
source benches/common.sh

for round in $(seq 1 "$ROUNDS"); do
  rm -rf "$WORK"/n*
  seeds() { local me=$1 out=(); for j in $(seq 1 "$K"); do [ "$j" = "$me" ] || out+=("127.0.0.1:$((7100 + j))"); done; (IFS=,; echo "${out[*]}"); }
  for i in $(seq 1 "$K"); do
    "$BIN" node --name "n$i" --data-dir "$WORK/n$i" --listen "127.0.0.1:$((7100 + i))" \
      --http "127.0.0.1:$((8100 + i))" --seeds "$(seeds "$i")" >"$WORK/n$i.log" 2>&1 &
    PIDS+=($!)
  done
  python3 - "$K" "$AFTER" "$round" <<'PY'
import json, sys, threading, time, urllib.request, urllib.error
k, after, rnd = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ports = [8100 + i for i in range(1, k + 1)]
t0 = time.monotonic()

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception:
        return None, b""

def ready(port):
    status, _ = get(f"http://127.0.0.1:{port}/health/ready")
    if status == 200:
        return True
    if status == 404:  # an older build: every member up, nothing moving
        status, body = get(f"http://127.0.0.1:{port}/admin/status")
        if status != 200:
            return False
        s = json.loads(body)
        return len(s["members"]) == k and all(m["status"] == "up" for m in s["members"]) and s["partitions_moving"] == 0
    return False

def settled():
    states = []
    for p in ports:
        status, body = get(f"http://127.0.0.1:{p}/admin/status")
        if status != 200:
            return False
        states.append(json.loads(body))
    return all(s["partitions_moving"] == 0 and s["ring_epoch"] == states[0]["ring_epoch"] and len(s["ownership"]) == k for s in states)

ready_at = {}
settled_at = [None]
stop = threading.Event()
results = []  # (t, port, status, code)
lock = threading.Lock()

def writer(w):
    i = 0
    while not stop.is_set():
        port = ports[(w + i) % k]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/kv/form-{rnd}-{w}-{i}?w=2", data=b"v" * 100, method="PUT")
        t = time.monotonic() - t0
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                res = (t, port, r.status, "")
        except urllib.error.HTTPError as e:
            try:
                code = json.loads(e.read()).get("error", "?")
            except Exception:
                code = "?"
            res = (t, port, e.code, code)
        except Exception:
            res = (t, port, None, "no_answer")
            time.sleep(0.02)
        with lock:
            results.append(res)
        i += 1

threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
for t in threads:
    t.start()
deadline = t0 + 120
while time.monotonic() < deadline and (len(ready_at) < k or settled_at[0] is None):
    now = time.monotonic() - t0
    for p in ports:
        if p not in ready_at and ready(p):
            ready_at[p] = time.monotonic() - t0
    if len(ready_at) == k and settled_at[0] is None and settled():
        settled_at[0] = now
    time.sleep(0.02)
all_ready = max(ready_at.values()) if len(ready_at) == k else None
if all_ready is not None:
    time.sleep(max(0.0, all_ready + after - (time.monotonic() - t0)))
stop.set()
for t in threads:
    t.join()

def summary(rows):
    acked = sum(1 for r in rows if r[2] == 204)
    refused = {}
    for r in rows:
        if r[2] is not None and r[2] != 204:
            refused[f"{r[2]} {r[3]}"] = refused.get(f"{r[2]} {r[3]}", 0) + 1
    unanswered = sum(1 for r in rows if r[2] is None)
    return f"{acked} acknowledged, {sum(refused.values())} refused {refused or ''}, {unanswered} not answered (process not listening yet)"

cut = all_ready if all_ready is not None else float("inf")
before = [r for r in results if r[0] < cut]
after_rows = [r for r in results if r[0] >= cut]
print(f"round {rnd}: {k} nodes started at once")
print(f"  every node ready after {all_ready:.2f} s" if all_ready is not None else "  NOT all ready within 120 s")
print(f"  ring settled after {settled_at[0]:.2f} s" if settled_at[0] is not None else "  ring NOT settled within 120 s")
print(f"  writes before ready: {summary(before)}")
print(f"  writes after ready ({after:.0f} s): {summary(after_rows)}")
PY
  for _ in $(seq 1 "$K"); do stop_last; done
done
