#!/usr/bin/env bash
# billy's end-to-end throughput beside pgledger's own `performance_check.go` on the same
# PostgreSQL, alternating in one window (issue 12): pgledger, billy, pgledger, billy ...
#   bench/pgledger.sh PATH_TO_PGLEDGER_CHECKOUT [ROUNDS] [DURATION]     e.g. /tmp/pgledger 2 20s
# pgledger (github.com/pgr0ss/pgledger) stays out of billy's tree: its SQL is loaded into a
# fresh database of the stack's PostgreSQL, its Go check is built from a copy in a temporary
# folder with the connection string pointed there (it is a constant in `main`), and run with
# 20 workers over 50 accounts, without its VACUUM FULL (size estimates only). billy's side is
# `python -m bench.run --only throughput --rounds 1 --no-plain` (30,000 commands, 1,000 clients).
# Needs the stack up, Go, psql. PYTHON picks the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(cd "${1:?PATH_TO_PGLEDGER_CHECKOUT}" && pwd)
rounds=${2:-2}
duration=${3:-20s}
python=${PYTHON:-$(pwd)/.venv/bin/python}
if [[ -z ${BILLY_DATABASE_URL:-} && -f .state/stack.env ]]; then
  # shellcheck disable=SC1091
  source .state/stack.env
fi
admin_url=${BILLY_DATABASE_URL:?BILLY_DATABASE_URL (or .state/stack.env)}
db=pgledger_bench_$$
db_url=${admin_url%/*}/$db
work=$(mktemp -d /tmp/pgledger-bench.XXXXXX)
cleanup() {
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql -q "$admin_url" -c "CREATE DATABASE $db" >/dev/null
psql -q -v ON_ERROR_STOP=1 --single-transaction "$db_url" \
  -f "$checkout/vendor/scoville-pgsql-ulid/ulid-to-uuid.sql" \
  -f "$checkout/vendor/scoville-pgsql-ulid/uuid-to-ulid.sql" \
  -f "$checkout/pgledger.sql" >/dev/null
cp "$checkout"/go/go.mod "$checkout"/go/go.sum "$checkout"/go/performance_check.go "$work/"
sed -i -e "s#postgres://pgledger:pgledger@localhost:5432/pgledger#${db_url/postgresql:/postgres:}#" \
  -e "s#pg_database_size('pgledger')#pg_database_size(current_database())#g" \
  "$work/performance_check.go"
(cd "$work" && go build -o perfcheck performance_check.go)
echo "pgledger $(git -C "$checkout" rev-parse --short HEAD 2>/dev/null || echo '?'), database $db;" \
  "billy $(git rev-parse --short HEAD); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

for round in $(seq 1 "$rounds"); do
  echo "=== round $round: pgledger $(date +%T)"
  "$work/perfcheck" --accounts 50 --workers 20 --duration "$duration" --vacuum=false |
    grep -E "Completed transfers|Transfers/second|Milliseconds/transfer"
  echo "=== round $round: billy $(date +%T)"
  "$python" -m bench.run --only throughput --rounds 1 --no-plain 2>&1 | grep -E "batched \(|disturb"
done
echo "load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
