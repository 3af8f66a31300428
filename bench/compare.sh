#!/usr/bin/env bash
# Throughput of two commits on this machine, alternating: A, B, A, B ... (TESTING.md: compare
# in one run, alternating, quote medians). Each side runs from its own git worktree in /tmp.
#   bench/compare.sh REF_A REF_B [ROUNDS]     e.g. bench/compare.sh 159e005 HEAD 2
# Needs the stack up (make up). Prints batched and one-transaction-per-command cmd/s per run;
# the full JSON of each run is copied to .state/bench/compare-<side>-<round>.json.
# Both sides run this tree's bench/ (copied into each worktree: one measuring code for both,
# billy's code from the side, compiled where the side has a compiled hot path). BENCH_ARGS adds
# options (e.g. "--no-plain"); PYTHON picks the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
a=${1:?REF_A} b=${2:?REF_B} rounds=${3:-2}
python=${PYTHON:-$repo/.venv/bin/python}
read -ra extra <<<"${BENCH_ARGS:-}"
mkdir -p .state/bench
for side in "$a" "$b"; do
  dir=/tmp/billy-bench-$(git rev-parse --short "$side")
  [ -d "$dir" ] || git worktree add -q --detach "$dir" "$side"
  cp -r "$repo"/bench/. "$dir/bench/"
  # A side with a compiled hot path (billy_core/compiled.py) runs it compiled, as make builds
  # it; BILLY_COMPILE=0 runs its sources instead.
  if [ -f "$dir/billy_core/compiled.py" ]; then
    if [ "${BILLY_COMPILE:-1}" = 0 ]; then
      (cd "$dir" && "$python" -m billy_core.compiled clean >/dev/null)
    else
      (cd "$dir" && "$python" -m billy_core.compiled build >"$dir/compile.log" 2>&1) ||
        { cat "$dir/compile.log"; exit 1; }
    fi
  fi
done
for round in $(seq 1 "$rounds"); do
  for side in "$a" "$b"; do
    short=$(git rev-parse --short "$side")
    echo "=== round $round: $side ($short) $(date +%T)"
    (cd "/tmp/billy-bench-$short" && "$python" -m bench.run --only throughput --rounds 1 "${extra[@]}" 2>&1 |
      grep -E "cmd/s|disturb|batched \(|plain \(|hot path" | tail -5)
    cp "/tmp/billy-bench-$short/.state/bench/latest.json" ".state/bench/compare-$short-$round.json"
  done
done
