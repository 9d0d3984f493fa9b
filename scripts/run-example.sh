#!/usr/bin/env bash
# Runs Tollgate on config/tollgate.yaml in front of two echo upstreams on 127.0.0.1:9001 and
# :9002 that this script starts (and stops when you press Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo build --release -p tollgate -p tollgate-echo

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

target/release/tollgate-echo 127.0.0.1:9001 echo-a & pids+=($!)
target/release/tollgate-echo 127.0.0.1:9002 echo-b & pids+=($!)

cat >&2 <<'MSG'

Tollgate on http://127.0.0.1:8080, admin on http://127.0.0.1:9901. Try:
  curl -i http://127.0.0.1:8080/api/public/hello
  curl -i http://127.0.0.1:8080/status
  curl -i -X POST http://127.0.0.1:8080/status       # 405 with Allow
  curl -i http://127.0.0.1:8080/nowhere              # 404
  curl -s http://127.0.0.1:9901/metrics | grep tollgate_
Reload after editing config/tollgate.yaml:  kill -HUP $(pgrep -f 'tollgate run')

MSG
target/release/tollgate run -c config/tollgate.yaml & pids+=($!)
wait "${pids[-1]}"
