#!/usr/bin/env bash
# bench/ops.sh: how fast Tollgate starts and reloads (issue 10's operational targets).
#
#   startup: from exec to `/readyz` answering 200, with every provider's keys fetched from a
#            JWKS server on loopback (target < 200 ms). Median of RUNS starts.
#   reload:  a config of ROUTES routes and PROVIDERS providers (each with its own jwks_uri on
#            loopback, so a reload that rebuilt them would refetch), reloaded RELOADS times by
#            SIGHUP with one route changed each time; the gateway logs each reload's `took_ms`
#            (target < 100 ms). Meanwhile wrk sends keep-alive traffic to an `auth: none`
#            route: its p99 and max latency, and its errors, are compared with a run of the same
#            length without reloads (target: no latency spike, no errors).
#
# Usage: bench/ops.sh   (RUNS=10 ROUTES=1000 PROVIDERS=20 RELOADS=20 DURATION=10s)
# Needs what bench/run.sh installs (wrk, python3); builds tollgate and tollgate-echo (release).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-10}
ROUTES=${ROUTES:-1000}
PROVIDERS=${PROVIDERS:-20}
RELOADS=${RELOADS:-20}
DURATION=${DURATION:-10s}

NAME=ops
. bench/common.sh
need wrk
ms_now() { date +%s%N | cut -b1-13; }

# A JWKS on loopback (one RSA key; nothing is verified here, the keys only have to load).
python3 - "$work/jwks.json" <<'PY'
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric import rsa
n = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()
b64 = lambda i: base64.urlsafe_b64encode(i.to_bytes((i.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
json.dump({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": b64(n.n), "e": b64(n.e)}]}, open(sys.argv[1], "w"))
PY
p_jwks=$(free_port); p_echo=$(free_port); p_http=$(free_port); p_admin=$(free_port)
# `python3 -m http.server` listens with a backlog of 5: twenty providers connecting at once
# overflow it and wait out a SYN retry (1 s). This one takes them all.
(cd "$work" && exec python3 -c '
import http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
Server(("127.0.0.1", int(sys.argv[1])), Quiet).serve_forever()
' "$p_jwks") & pids+=($!)
$bin/tollgate-echo "127.0.0.1:$p_echo" ops-echo 2>/dev/null & pids+=($!)

# $1: a number that changes one route (so that each reload has something to do).
config() {
  local i
  echo "listen: { http: \"127.0.0.1:$p_http\" }"
  echo "admin: { listen: \"127.0.0.1:$p_admin\" }"
  echo "server: { threads: 1, grace_period: 0s }"
  echo "auth:"
  echo "  providers:"
  for ((i = 0; i < PROVIDERS; i++)); do
    echo "    - { name: p$i, issuer: \"https://issuer-$i.ops.test\", jwks_uri: \"http://127.0.0.1:$p_jwks/jwks.json?p=$i\" }"
  done
  echo "upstreams:"
  echo "  u: { targets: [\"127.0.0.1:$p_echo\"] }"
  echo "routes:"
  echo "  - { name: hot, match: { path: /hot }, upstream: u, auth: none }"
  for ((i = 0; i < ROUTES - 1; i++)); do
    local path="/r$i/*"
    ((i == 0)) && path="/changed-$1/*"
    echo "  - { name: r$i, match: { path: \"$path\" }, upstream: u, allow: { roles: [user] } }"
  done
}

config 0 >"$work/tollgate.yaml"
$bin/tollgate validate -c "$work/tollgate.yaml" >/dev/null
until curl -sf "http://127.0.0.1:$p_jwks/jwks.json" >/dev/null; do sleep 0.05; done

log "startup: $RUNS starts of a config with $ROUTES routes and $PROVIDERS providers"
starts=()
for ((r = 0; r < RUNS; r++)); do
  t0=$(ms_now)
  $bin/tollgate run -c "$work/tollgate.yaml" >/dev/null 2>"$work/stderr" & gw=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_admin/readyz")" = 200 ]; do
    kill -0 "$gw" 2>/dev/null || { log "tollgate exited:"; cat "$work/stderr" >&2; exit 1; }
  done
  starts+=($(($(ms_now) - t0)))
  kill "$gw"; wait "$gw" 2>/dev/null || true
done
startup_median=$(printf '%s\n' "${starts[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
log "startup to ready (ms): ${starts[*]}; median $startup_median"

# Reloads under load.
$bin/tollgate run -c "$work/tollgate.yaml" >"$work/access.log" 2>"$work/stderr" & gw=$!; pids+=($gw)
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_admin/readyz")" = 200 ]; do sleep 0.01; done
url="http://127.0.0.1:$p_http/hot"
wrk -t1 -c32 -d2s "$url" >/dev/null
wrk -t1 -c32 -d"$DURATION" --latency "$url" >"$work/quiet.txt"
secs=${DURATION%s}
# The configs are written before the load, so that writing them (1000 routes in shell) takes no
# CPU from the run; each is moved into place, whole, just before its SIGHUP.
for ((i = 1; i <= RELOADS; i++)); do config "$i" >"$work/next-$i.yaml"; done
wrk -t1 -c32 -d"$DURATION" --latency "$url" >"$work/reloading.txt" & wrk_pid=$!
interval=$(python3 -c "print($secs / ($RELOADS + 1))")
for ((i = 1; i <= RELOADS; i++)); do
  sleep "$interval"  # spacing the reloads over the wrk run, not synchronisation
  mv "$work/next-$i.yaml" "$work/tollgate.yaml"
  kill -HUP "$gw"
done
wait "$wrk_pid"
# SIGHUPs that arrive during a reload are one reload (signals coalesce); the last one must
# still take effect: wait (bounded) for the route it changed.
for ((w = 0; w < 100; w++)); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_http/changed-$RELOADS/x")" = 401 ] && break
  sleep 0.1
done
reloads=$(grep -c 'config reloaded' "$work/stderr" || true)
took=$(grep -o 'took_ms=[0-9.]*' "$work/stderr" | cut -d= -f2 | sort -n)
took_median=$(echo "$took" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
took_max=$(echo "$took" | tail -1)
refused=$(grep -c 'reload refused' "$work/stderr" || true)
# The route changed by the last reload answers (401: it needs a token), the old one is gone.
last=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_http/changed-$RELOADS/x")
stat() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
line() {
  local f=$1
  local rps p99 max errs
  rps=$(awk '/Requests\/sec/ {print $2}' "$f")
  p99=$(awk '$1 == "99%" {print $2}' "$f")
  max=$(awk '$1 == "Latency" {print $4}' "$f")
  errs=$(grep -Eo 'Non-2xx or 3xx responses: [0-9]+|Socket errors: .*' "$f" | tr '\n' ' ')
  echo "| $2 | $rps | $p99 | $max | ${errs:-none} |"
}
cat <<REPORT

## Startup and reload (bench/ops.sh)

Config: $ROUTES routes, $PROVIDERS providers with a jwks_uri each (one RSA key, served by a
threaded Python HTTP server on loopback with a listen backlog of 128), \`server.threads: 1\`. Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //').

**Startup to ready** (exec to \`/readyz\` 200, every provider's keys fetched), $RUNS starts:
${starts[*]} ms; **median $startup_median ms** (target < 200 ms).

**Reload** by SIGHUP, one route changed each time: $RELOADS signals, $reloads reloads logged
($refused refused; signals that arrive during a reload make one reload),
took_ms median **$took_median**, max **$took_max** (target < 100 ms). After the last one, the
changed route answered $last (expected 401: it exists and needs a token).

Traffic to an \`auth: none\` route meanwhile (wrk -t1 -c32 -d$DURATION), against the same run
without reloads:

| run | req/s | p99 | max | errors |
|---|---:|---:|---:|---|
$(line "$work/quiet.txt" "no reloads")
$(line "$work/reloading.txt" "$RELOADS reloads")
REPORT
