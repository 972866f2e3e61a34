#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in $BUILD_DIR-fuzz (packages are
# installed by setup.sh). Only the fuzzers and what they link are built.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
FUZZ_DIR="$BUILD_DIR-fuzz"
JOBS=${JOBS:-2}
if [ ! -f "$FUZZ_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DENGRAM_ENABLE_FUZZING=ON -DENGRAM_BUILD_APPS=OFF \
    -DENGRAM_BUILD_BENCHMARKS=OFF
fi
cmake --build "$FUZZ_DIR" -j "$JOBS" --target fuzzers
