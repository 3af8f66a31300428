#!/usr/bin/env bash
# The local broker's garbage collector against one hot wallet's tail latency (bench/README.md,
# "The broker's garbage collector"). For each setting named: restart the stack's broker with
# it, warm it (a throughput run and a latency run: a fresh broker's JIT makes its first runs
# slow), switch its GC log on, then ROUNDS latency runs; prints each run's p50/p99 and the
# pauses the GC log counted. Leaves the broker restarted with the stack's default.
#   bench/broker_gc.sh [ROUNDS] SETTING...      SETTING: g1-small | g1 | g1-50 | parallel
# BENCH_ARGS is passed to each latency run (default "--clients 1": both scenarios on one hot
# wallet). Needs the stack up (make up); never run it beside other work (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
rounds=2
if [[ ${1:-} =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
read -ra extra <<<"${BENCH_ARGS:---clients 1}"
g1="-XX:+UseG1GC -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent"
logs=.state/bench/gc
mkdir -p "$logs"
restart() {
  deploy/stack.sh kafka-down >/dev/null
  BILLY_KAFKA_HEAP="$1" BILLY_KAFKA_GC="$2" deploy/stack.sh kafka-up | tail -1
}
for setting in "$@"; do
  case $setting in
    g1-small) heap="-Xms128m -Xmx512m" gc="$g1 -XX:MaxGCPauseMillis=20" ;;
    g1) heap="-Xms768m -Xmx768m" gc="$g1 -XX:MaxGCPauseMillis=20" ;;
    g1-50) heap="-Xms768m -Xmx768m" gc="$g1 -XX:MaxGCPauseMillis=50" ;;
    parallel) heap="-Xms768m -Xmx768m -Xmn384m" gc="-XX:+UseParallelGC" ;;
    *) echo "unknown setting $setting (g1-small, g1, g1-50, parallel)" >&2; exit 2 ;;
  esac
  restart "$heap" "$gc"
  "$python" -m bench.run --only throughput --no-plain --rounds 1 >/dev/null 2>&1
  "$python" -m bench.run --only latency --rounds 1 "${extra[@]}" >/dev/null 2>&1
  log="$logs/$setting-$(date +%H%M%S).log"
  jcmd "$(cat .state/kafka/kafka.pid)" VM.log output="$log" what=gc=info decorators=uptime >/dev/null
  for round in $(seq 1 "$rounds"); do
    "$python" -m bench.run --only latency --rounds 1 "${extra[@]}" >/dev/null 2>&1
    "$python" - "$setting" "$round" <<'PY'
import json, sys
d = json.load(open(".state/bench/latest.json"))
for k in ("latency_spread", "latency_hot"):
    e, c = d[k]["e2e_ms"], d[k]["cpu_s"]
    print(f"{sys.argv[1]} round {sys.argv[2]} {k}: p50 {e['p50']} p99 {e['p99']} max {e['max']} ms,"
          f" broker {c['kafka']} CPU-s, busy {c['machine_busy_pct']} %")
PY
  done
  jcmd "$(cat .state/kafka/kafka.pid)" VM.log disable >/dev/null
  awk -v s="$setting" '/Pause/ { n++; ms = $NF + 0; sum += ms; if (ms > max) max = ms }
    END { printf "%s GC pauses: %d, longest %.1f ms, in all %.0f ms (%s)\n", s, n, max, sum, FILENAME }' "$log"
done
restart "" ""
