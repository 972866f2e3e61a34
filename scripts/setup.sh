#!/usr/bin/env bash
# Installs every Debian package Engram needs (idempotent: does nothing when all
# are present), then configures and builds the project in ./build.
#
#   scripts/setup.sh            install + configure + build
#   scripts/setup.sh --deps     install only
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libcaf-dev libprotobuf-dev protobuf-compiler librocksdb-dev
  libssl-dev libsodium-dev libspdlog-dev libfmt-dev
  libboost-test-dev libbenchmark-dev
  libcli11-dev libtoml11-dev libcpp-httplib-dev nlohmann-json3-dev
  clang clang-format libclang-rt-14-dev gnuplot-nox iproute2 procps
  faketime openssl python3 libboost-dev redis-server redis-tools curl
  softhsm2 libp11-kit-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--deps" ] && exit 0

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    ${ENGRAM_CMAKE_ARGS:-}
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
