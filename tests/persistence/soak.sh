#!/usr/bin/env bash
# Long crash soak: many SIGKILL cycles of the store's crash test.
#   tests/persistence/soak.sh [cycles] [build dir]
set -euo pipefail
cycles=${1:-500}
build=${2:-build}
ENGRAM_CRASH_CYCLES=$cycles exec "$build/tests/persistence/engram_persistence_tests" \
  --run_test=store_crash --log_level=message
