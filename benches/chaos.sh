#!/usr/bin/env bash
# A long fault-injection run (issue 14): clients run the set and register
# workloads against a 4-node cluster (N=3, R=2, W=2) while a seeded nemesis
# kills, pauses, partitions and wipes nodes, one joins, one leaves and one
# is removed; then the faults heal, anti-entropy runs, and the checker
# prints its table (tests/chaos.rs). The same seed gives the same schedule.
#
#   benches/chaos.sh [seconds] [seed]        (defaults: 300, 1)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-300}
SEED=${2:-1}
# The nemesis prints each step as it happens; the checker's table comes last.
DYNAKV_CHAOS_SECS="$SECS" DYNAKV_CHAOS_SEED="$SEED" \
  exec cargo test --quiet --test chaos long_run -- --ignored --nocapture
