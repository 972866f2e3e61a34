#!/usr/bin/env bash
# Fails (and names the files) when a tracked C++ file is not clang-formatted
# according to the committed .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check-format: clang-format is not installed" >&2
  exit 1
fi
bad=()
while IFS= read -r f; do
  [ -f "$f" ] || continue
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.hpp' '*.cpp' 2>/dev/null || find . -name '*.[ch]pp' -not -path './build*')
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format: not formatted: ${bad[*]}" >&2
  echo "check-format: run 'make format'" >&2
  exit 1
fi
echo "check-format: all files formatted"
