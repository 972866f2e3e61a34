#!/usr/bin/env bash
# engram-swarm's figures: every write of the workload is accounted for; the
# CSV's cumulative columns never go back (a crash restarts a node's links);
# --csv/--plot work with the simulated network and with --real; a plot that
# cannot be written fails the run with the reason.
set -euo pipefail
swarm=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

check_series() { # $1: report, $2: csv, $3: writes
  local line
  line=$(grep '^writes=' "$1")
  eval "$(echo "$line" | sed 's/ (node down)//' | tr ' ' '\n' | grep '=' )"
  [ "$writes" -eq "$3" ] || { echo "writes=$writes, not $3" >&2; exit 1; }
  [ $((issued + not_issued)) -eq "$writes" ] ||
    { echo "issued + not_issued != writes: $line" >&2; exit 1; }
  [ $((acked + refused + not_confirmed + unknown)) -eq "$issued" ] ||
    { echo "outcomes do not add up to the issued writes: $line" >&2; exit 1; }
  awk -F, 'NR > 1 {
      for (c = 2; c <= 9; c++) {
        if ($c != "" && (c in last) && $c + 0 < last[c]) {
          print "column " c " went back at t=" $1 ": " last[c] " -> " $c
          bad = 1
        }
        if ($c != "") last[c] = $c + 0
      }
    } END { exit bad }' "$2"
}

"$swarm" --seed 3 --agents 30 --nodes 5 --writes 600 --loss 0.05 --dup 0.05 \
  --partition --crash --csv "$dir/sim.csv" --plot "$dir/sim.png" --quiet \
  > "$dir/sim.txt"
check_series "$dir/sim.txt" "$dir/sim.csv" 600
grep -q ',1,' "$dir/sim.csv" # fault windows are in the series
test -s "$dir/sim.png"

"$swarm" --real --agents 10 --nodes 3 --writes 200 --crash --partition \
  --csv "$dir/real.csv" --plot "$dir/real.png" > "$dir/real.txt"
check_series "$dir/real.txt" "$dir/real.csv" 200
test -s "$dir/real.png"

if "$swarm" --seed 3 --agents 5 --nodes 3 --writes 50 --quiet \
     --plot "$dir/no/such/dir/x.png" > "$dir/bad.txt" 2> "$dir/bad.err"; then
  echo "a plot that cannot be written did not fail the run" >&2
  exit 1
fi
grep -q "no plot written to $dir/no/such/dir/x.png" "$dir/bad.err"
echo "swarm series: ok"
