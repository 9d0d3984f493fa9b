#!/usr/bin/env bash
# Installs what building and testing Tollgate needs on a Debian machine with Rust, and nothing
# that is already there. Safe to run again. `scripts/deps.sh build`: only what building needs.
set -euo pipefail
cd "$(dirname "$0")/.."

install() {
  [ $# -gt 0 ] || return 0
  echo "installing: $*" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)        # pingora's libz-ng-sys
command -v cc >/dev/null 2>&1 || need+=(build-essential)
if [ "${1:-}" = build ]; then
  install "${need[@]}"
  exit 0
fi
command -v curl >/dev/null 2>&1 || need+=(curl)          # TLS and HTTP/2 tests
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # shared rate limits
command -v node >/dev/null 2>&1 || need+=(nodejs)         # the tests' real OIDC issuers
command -v npm >/dev/null 2>&1 || need+=(npm)

install "${need[@]}"

# The end-to-end tests' real peers from PyPI (grpcio), in a venv of the project's own.
venv=target/test-venv
if ! "$venv/bin/python" -c 'import grpc, h2' >/dev/null 2>&1; then
  echo "setting up $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/grpc/requirements.txt
fi

# The end-to-end tests' real identity providers from npm (oidc-provider, oauth2-mock-server),
# installed from the lockfile again whenever it changed.
idp=tests/idp
if [ ! -f "$idp/node_modules/.package-lock.json" ] || [ "$idp/package-lock.json" -nt "$idp/node_modules/.package-lock.json" ]; then
  echo "npm ci in $idp" >&2
  (cd "$idp" && npm ci --no-audit --no-fund --loglevel=error)
fi
