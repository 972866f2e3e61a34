#!/usr/bin/env bash
# The package works for users: Engram installed into a scratch prefix, and
# the build tree itself, each found by find_package(Engram) from a program
# that links the core and from an agent program (two nodes, an instance
# learns, another reads) that links the actor runtime; both run.
set -euo pipefail
build_dir=$1
source_dir=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build_dir" --prefix "$scratch/prefix" > /dev/null
# No internal header is installed.
if find "$scratch/prefix/include" -path '*internal*' | grep -q .; then
  echo "internal headers were installed:" >&2
  find "$scratch/prefix/include" -path '*internal*' >&2
  exit 1
fi
for how in installed build-tree; do
  if [ "$how" = installed ]; then
    locate=(-DCMAKE_PREFIX_PATH="$scratch/prefix")
  else
    locate=(-DEngram_DIR="$build_dir")
  fi
  cmake -S "$source_dir/consumer" -B "$scratch/$how" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "${locate[@]}" > "$scratch/$how.log" ||
    { cat "$scratch/$how.log" >&2; exit 1; }
  cmake --build "$scratch/$how" > "$scratch/$how.build.log" 2>&1 ||
    { cat "$scratch/$how.build.log" >&2; exit 1; }
  "$scratch/$how/consumer"
  "$scratch/$how/agent_program" "$scratch/$how-data"
  echo "$how package: ok"
done
