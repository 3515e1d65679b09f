#!/usr/bin/env bash
# Sustained-load run against a calseta server started here (release build), e.g.
#   scripts/load/run.sh sqlite 60            # SQLite, api+worker roles, 60 s
#   ROLES=api scripts/load/run.sh postgres 30 # durable ingest only on PostgreSQL
# Env: CONNS (32), THREADS (2), ROLES (api,worker), PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/test), KEEP_DB,
#      BIN (target/release/calseta), EXTRA_ENV ("K=V K=V" passed to the server),
#      WORKER_PROCS (0; PostgreSQL only: that many `serve --roles worker` processes share the database,
#      e.g. ROLES=api WORKER_PROCS=1 for a split deployment; their CPU counts as the server's).
# Prints: wrk's CSV line, the server's RSS idle / peak, the jobs still queued at the end and 10 s later,
# /health/live and /health/ready latency sampled during the run, and the server's CPU per accepted alert. Never for CI: it needs wrk.
set -euo pipefail
backend=${1:-sqlite}; seconds=${2:-30}
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
bin=$(realpath "${BIN:-$root/target/release/calseta}")
work=$(mktemp -d /tmp/calseta-load.XXXXXX)
if [ "$backend" = postgres ]; then
  admin=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/test}
  name=calseta_load_$(date +%s)_$$
  psql "$admin" -qc "CREATE DATABASE $name" >/dev/null
  db_url="${admin%/*}/$name"
else
  db_url="sqlite://$work/calseta.db"
fi
( cd "$work" && env -i PATH="$PATH" HOME="$HOME" DATABASE_URL="$db_url" LOG_LEVEL=warn LOG_FORMAT=json \
    RATE_LIMIT_INGEST_PER_MINUTE=0 RATE_LIMIT_DEFAULT_PER_MINUTE=0 ENRICHMENT_MOCK_MODE=true \
    ${EXTRA_ENV:-} "$bin" serve --bind 127.0.0.1:0 --roles "${ROLES:-api,worker}" 2>"$work/stderr" >"$work/stdout" & echo $! >"$work/pid" )
for _ in $(seq 50); do pid=$(pgrep -n -f "^$bin serve" || true); [ -n "$pid" ] && break; sleep 0.1; done
workers=""
if [ "${WORKER_PROCS:-0}" -gt 0 ]; then
  [ "$backend" = postgres ] || { echo "WORKER_PROCS needs postgres" >&2; kill "$pid"; exit 2; }
  for i in $(seq "$WORKER_PROCS"); do
    # exec: the pid is the worker's own (its CPU is read, and it is stopped, by pid).
    ( cd "$work" && exec env -i PATH="$PATH" HOME="$HOME" DATABASE_URL="$db_url" LOG_LEVEL=warn LOG_FORMAT=json \
        ENRICHMENT_MOCK_MODE=true ${EXTRA_ENV:-} "$bin" serve --roles worker 2>"$work/worker$i.stderr" >/dev/null ) &
    workers="$workers $!"
  done
fi
# Stop the server, then drop the run's PostgreSQL database (KEEP_DB=1 keeps it for a look).
cleanup() {
  kill "$pid" $workers 2>/dev/null || true
  if [ "$backend" = postgres ] && [ -z "${KEEP_DB:-}" ]; then
    for p in $pid $workers; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
    psql "$admin" -qc "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q "calseta listening on" "$work/stderr" && break; sleep 0.1; done
base=$(sed -n 's/^calseta listening on //p' "$work/stderr" | head -1)
export API_KEY=$(sed -n 's/^CALSETA_BOOTSTRAP_ADMIN_KEY=//p' "$work/stderr" | head -1)
rss() { awk "/^$1:/ {printf \"%.1f\", \$2/1024}" /proc/$pid/status; }
sleep 2
echo "idle RSS MiB: $(rss VmRSS)   (uptime: $(uptime | sed 's/.*load/load/'))"
probe() { # prints the slowest of /health/live and /health/ready latencies every second
  local worst_live=0 worst_ready=0 bad=0
  while kill -0 "$1" 2>/dev/null; do
    l=$(curl -s -o /dev/null -w '%{time_total}' "$base/health/live"); r=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$base/health/ready")
    worst_live=$(echo "$l $worst_live" | awk '{print ($1>$2)?$1:$2}'); rt=${r#* }; [ "${r%% *}" = 200 ] || bad=$((bad+1))
    worst_ready=$(echo "$rt $worst_ready" | awk '{print ($1>$2)?$1:$2}'); sleep 1
  done
  echo "probes during load: worst /health/live ${worst_live}s, worst /health/ready ${worst_ready}s, non-200 ready: $bad"
}
cpu() { local t=0; for p in $pid $workers; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
# PostgreSQL's own CPU (every postgres process; the pool's backends live through the run).
pg_cpu() { local t=0; for p in $(pgrep -x postgres); do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
cpu_start=$(cpu); pg_cpu_start=$(pg_cpu)
wrk -t"${THREADS:-2}" -c"${CONNS:-32}" -d"${seconds}s" --latency -s "$here/generic_alert.lua" "$base" >"$work/wrk.out" &
wrk_pid=$!
probe $wrk_pid &
probe_pid=$!
wait $wrk_pid; wait $probe_pid || true
grep -E "Requests/sec|Non-2xx|Socket errors" "$work/wrk.out" || true
grep '^CSV' "$work/wrk.out"
echo "peak RSS MiB: $(awk '/^VmHWM:/ {printf "%.1f", $2/1024}' /proc/$pid/status)   (uptime: $(uptime | sed 's/.*load/load/'))"
depth() { curl -s "$base/health" | sed -n 's/.*"queue_depth":\([0-9]*\).*/\1/p'; }
echo "queued at end: $(depth)"; sleep 10; echo "queued 10 s later: $(depth)"; echo "RSS after 10 s: $(rss VmRSS) MiB"
# CPU per alert: the server's CPU from the start of the load until its queue is empty (at most 60 s
# more), over the alerts accepted; includes the enrichment of every one of them.
case "${ROLES:-api,worker}${WORKER_PROCS:-0}" in *worker*|*[1-9]*) for _ in $(seq 60); do [ "$(depth)" = 0 ] && break; sleep 1; done ;; esac
requests=$(grep '^CSV' "$work/wrk.out" | cut -d, -f8); refused=$(grep '^CSV' "$work/wrk.out" | cut -d, -f6)
awk -v t="$(( $(cpu) - cpu_start ))" -v hz="$(getconf CLK_TCK)" -v n="$(( requests - refused ))" -v q="$(depth)" \
  'BEGIN { printf "server CPU per accepted alert: %.3f ms (%.1f s over %d alerts; %s still queued)\n", 1000*t/hz/n, t/hz, n, q }'
if [ "$backend" = postgres ]; then awk -v t="$(( $(pg_cpu) - pg_cpu_start ))" -v hz="$(getconf CLK_TCK)" -v n="$(( requests - refused ))" \
  'BEGIN { printf "PostgreSQL CPU per accepted alert: %.3f ms (%.1f s)\n", 1000*t/hz/n, t/hz }'; fi
echo "server dir: $work"
