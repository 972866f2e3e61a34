#!/usr/bin/env bash
# Soak of the Raft simulator: many more schedules (and longer ones) than the
# 100 000 of each CI run, from a seed range of your choice. A failing seed
# prints the command that replays it.
#
#   scripts/raft-soak.sh [schedules (default 2000000)] [first seed] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
schedules=${1:-2000000}
first=${2:-1000001}
steps=${3:-300}
bin="$BUILD_DIR/tests/consensus/engram_consensus_tests"
[ -x "$bin" ] || cmake --build "$BUILD_DIR" -j2 --target engram_consensus_tests
ENGRAM_RAFT_SCHEDULES=$schedules ENGRAM_RAFT_SEED=$first \
  ENGRAM_RAFT_STEPS=$steps \
  "$bin" --run_test=raft_simulation --log_level=message
