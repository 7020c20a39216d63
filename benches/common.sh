# Shared by the benchmark scripts that start processes: sourced after
# `cd` to the repository root. Builds dynakv, makes a work directory, and
# stops every pid in PIDS and removes the directory on exit.
cargo build --quiet
# DYNAKV_BIN: another build to measure (an older commit, for a before/after).
BIN=${DYNAKV_BIN:-target/debug/dynakv}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# stop_last: stops the most recently started pid in PIDS and forgets it.
stop_last() {
  kill "${PIDS[-1]}" 2>/dev/null || true; wait "${PIDS[-1]}" 2>/dev/null || true
  unset 'PIDS[-1]'
}

# wait_http URL: until it answers 2xx (bounded), or exit.
wait_http() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# settled PORT...: true when the nodes on these HTTP ports agree on the ring
# and nothing is moving.
settled() {
  python3 - "$@" <<'PY'
import json, sys, urllib.request
s = [json.load(urllib.request.urlopen(f"http://127.0.0.1:{p}/admin/status")) for p in sys.argv[1:]]
ok = all(x["partitions_moving"] == 0 and x["transfers_pending"] == 0 and x["ring_epoch"] == s[0]["ring_epoch"] and len(x["ownership"]) == len(s) for x in s)
sys.exit(0 if ok else 1)
PY
}
