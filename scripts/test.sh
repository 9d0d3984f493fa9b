#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the end-to-end tests in tests/, which start
# the real tollgate binary against real upstreams on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
# Property tests (proptest) draw the same cases on every run, so that a run is reproducible;
# set another seed to explore new cases (PROPTEST_RNG_SEED=$RANDOM scripts/test.sh).
export PROPTEST_RNG_SEED=${PROPTEST_RNG_SEED:-20261123}
# The end-to-end tests run the debug binary: build it first.
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  # Runs test binaries in parallel, and applies .config/nextest.toml.
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
