#!/usr/bin/env bash
# Bulk load and export (issue 12): RECORDS records of 100-byte values into a
# fresh 3-node dev cluster (N=3) through the write path, once reading each
# key first (the default: a reload adds nothing) and once --blind, then the
# export of everything, in one run. Prints records/s for each.
#
#   benches/load.sh [records]        (default 1000000)
#
# Then the same records through --sst into a second, fresh cluster (empty
# partitions take SST files), and the ratios to the write path.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-1000000}
. benches/common.sh
python3 - "$RECORDS" "$WORK" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
v = "v" * 100
with open(f"{work}/a.jsonl", "w") as a, open(f"{work}/b.jsonl", "w") as b:
    for i in range(n):
        a.write(json.dumps({"key": f"a-{i:09d}", "value": v}) + "\n")
        b.write(json.dumps({"key": f"b-{i:09d}", "value": v}) + "\n")
PY
start_cluster() { # data dir
  "$BIN" dev --nodes 3 --data-dir "$1" >"$WORK/dev.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do grep -q "Ctrl-C stops" "$WORK/dev.log" && break; sleep 0.1; done
}
start_cluster "$WORK/cluster"
NODES=http://127.0.0.1:8001,http://127.0.0.1:8002,http://127.0.0.1:8003
rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):,.0f}')" "$@"; }
timed() { local t0=$(date +%s.%N); "$@" 2>"$WORK/last.err" >/dev/null || { cat "$WORK/last.err" >&2; exit 1; }; python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(date +%s.%N)"; }
t_read=$(timed "$BIN" load "$WORK/a.jsonl" --node "$NODES")
t_blind=$(timed "$BIN" load "$WORK/b.jsonl" --node "$NODES" --blind)
t_again=$(timed "$BIN" load "$WORK/a.jsonl" --node "$NODES")
t_export=$(timed "$BIN" export --node http://127.0.0.1:8001 --out "$WORK/export.jsonl")
exported=$(wc -l < "$WORK/export.jsonl")
stop_last
start_cluster "$WORK/cluster2"
t_sst=$(timed "$BIN" load "$WORK/a.jsonl" --node "$NODES" --sst)
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$@"; }
echo "| step | records | seconds | records/s |"
echo "|---|---:|---:|---:|"
echo "| load (reads each key first) | $RECORDS | $t_read | $(rate "$RECORDS" "$t_read") |"
echo "| load --blind | $RECORDS | $t_blind | $(rate "$RECORDS" "$t_blind") |"
echo "| load again (everything already stored) | $RECORDS | $t_again | $(rate "$RECORDS" "$t_again") |"
echo "| export | $exported | $t_export | $(rate "$exported" "$t_export") |"
echo "| load --sst (fresh cluster) | $RECORDS | $t_sst | $(rate "$RECORDS" "$t_sst") |"
echo
echo "--sst / write path: $(ratio "$t_read" "$t_sst")x (reading first), $(ratio "$t_blind" "$t_sst")x (--blind)"
