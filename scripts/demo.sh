#!/usr/bin/env bash
# `tollgate demo`: builds Tollgate (installing cmake and a C compiler if missing), then runs
# the embedded demo: a demo issuer, an echo upstream and a built-in config, with curl lines to
# paste. Arguments go to `tollgate demo` (e.g. --port 8081 --admin-port 9902).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
cargo build --release -p tollgate
exec "${CARGO_TARGET_DIR:-target}/release/tollgate" demo "$@"
