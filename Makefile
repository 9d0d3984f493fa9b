.PHONY: run test check bench

# Run the gateway on config/tollgate.yaml with two local echo upstreams.
run:
	scripts/run-example.sh

# Every test: unit and end-to-end.
test:
	scripts/test.sh

# What CI checks besides the tests.
check:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Tollgate against Envoy, same route, same machine.
bench:
	bench/run.sh
