#!/usr/bin/env bash
# bench/chaos.sh: availability under steady load (the hardening issue). wrk sends a bearer
# token for DURATION (default 30 s) through Tollgate to a pool of two echo upstreams, with a
# rate limit on Redis (on_error: local) and keys from a JWKS server; meanwhile Redis, the JWKS
# server and one upstream are killed and started again, one after the other. Reported: the
# answers by status, wrk's socket errors, and checks after the run (a request answers 200,
# Redis counts again, the killed upstream is back in rotation).
#
# Expected: 200s, and only the documented answers while something is down: Redis down falls
# back to local counting, the keys outlive the JWKS server, the pool retries a refused
# connection on the other target; a request already sent to the upstream that dies is a 502
# (never retried: it may have had an effect). Any other status is a finding.
#
# Usage: bench/chaos.sh   (DURATION=30 CONNECTIONS=32). Needs wrk and bench/.venv (run
# bench/run.sh once), redis-server; builds tollgate and tollgate-echo (release).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-32}
NAME=chaos
. bench/common.sh
need wrk redis-server redis-cli
[ -x bench/.venv/bin/python ] || { log "bench/.venv is missing: run bench/run.sh once"; exit 1; }
p_redis=$(free_port); p_jwks=$(free_port); p_a=$(free_port); p_b=$(free_port)
p_http=$(free_port); p_admin=$(free_port)

bench/.venv/bin/python bench/mint.py "$work/jwks.json" "$work/token"
TOKEN=$(cat "$work/token"); export TOKEN

start_redis() { redis-server --bind 127.0.0.1 --port "$p_redis" --save "" --appendonly no >/dev/null & redis_pid=$!; pids+=($redis_pid); }
start_jwks() { (cd "$work" && exec python3 -m http.server "$p_jwks" --bind 127.0.0.1 >/dev/null 2>&1) & jwks_pid=$!; pids+=($jwks_pid); }
start_a() { $bin/tollgate-echo "127.0.0.1:$p_a" echo-a 2>/dev/null & a_pid=$!; pids+=($a_pid); }
start_redis; start_jwks; start_a
$bin/tollgate-echo "127.0.0.1:$p_b" echo-b 2>/dev/null & pids+=($!)

cat >"$work/tollgate.yaml" <<YAML
listen: { http: "127.0.0.1:$p_http" }
admin: { listen: "127.0.0.1:$p_admin" }
server: { grace_period: 0s }
auth:
  jwks: { refresh_interval: 2s, max_stale: 1h, min_refetch_interval: 1s }
  providers:
    - { name: bench, issuer: https://issuer.bench.test, jwks_uri: "http://127.0.0.1:$p_jwks/jwks.json", audiences: [https://api.bench.test] }
redis: { url: "redis://127.0.0.1:$p_redis", timeout: 50ms, on_error: local }
rate_limits:
  shared: { key: subject, backend: redis, tiers: [ { name: all, limit: 100000000/second } ] }
upstreams:
  pool:
    targets: ["127.0.0.1:$p_a", "127.0.0.1:$p_b"]
    health_check: { path: /healthz, interval: 1s }
routes:
  - { name: api, match: { path: /* }, upstream: pool, rate_limit: shared }
YAML
$bin/tollgate validate -c "$work/tollgate.yaml" >/dev/null
$bin/tollgate run -c "$work/tollgate.yaml" >/dev/null 2>"$work/stderr" & gw=$!; pids+=($gw)
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_admin/readyz")" = 200 ]; do sleep 0.05; done
get() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$p_http/x"; }
[ "$(get)" = 200 ] || { log "the token is refused before the run"; exit 1; }

log "wrk for ${DURATION}s; Redis down at 5 s (back at 10 s), the JWKS server at 12 s (back at 17 s), upstream A at 20 s (back at 25 s)"
wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s bench/statuses.lua "http://127.0.0.1:$p_http/x" >"$work/wrk.txt" & wrk_pid=$!
at() { sleep "$1"; }   # the schedule of the chaos, not synchronisation
events=()
at 5;  kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; events+=("5 s: Redis killed")
at 5;  start_redis; events+=("10 s: Redis started")
at 2;  kill "$jwks_pid"; wait "$jwks_pid" 2>/dev/null || true; events+=("12 s: JWKS server killed")
at 5;  start_jwks; events+=("17 s: JWKS server started")
at 3;  kill "$a_pid"; wait "$a_pid" 2>/dev/null || true; events+=("20 s: upstream A killed")
at 5;  start_a; events+=("25 s: upstream A started")
wait "$wrk_pid"

after=$(get)
redis_keys=$(redis-cli -p "$p_redis" --scan --pattern 'tollgate:rl:*' | wc -l)
metric() { curl -s "http://127.0.0.1:$p_admin/metrics" | awk -v s="$1" '$1 == s {print $2}'; }
cat <<REPORT

## Availability under load (bench/chaos.sh)

wrk -t1 -c$CONNECTIONS for ${DURATION} s with one RS256 token through Tollgate (rate limit on Redis with
\`on_error: local\`, keys from a JWKS server with \`refresh_interval: 2s\`, a pool of two echo
upstreams with health checks every second). Machine: $(nproc) CPUs.

Events: ${events[*]}.

Answers by status (and wrk's socket errors):

\`\`\`
$(grep -E '^(status|errors)' "$work/wrk.txt")
\`\`\`

$(awk '/Requests\/sec/ {print "req/s: " $2}' "$work/wrk.txt"); latency: $(awk '$1 == "Latency" {print "avg " $2 ", max " $4}' "$work/wrk.txt").

After the run: a request answers $after; Redis holds $redis_keys rate-limit key(s) again;
Redis errors counted: $(metric tollgate_ratelimit_redis_errors_total); JWKS fetch errors:
$(metric 'tollgate_jwks_refresh_total{provider="bench",result="error"}'); keys: $(metric 'tollgate_jwks_keys{provider="bench"}').
REPORT
