# bench/common.sh: what bench/ops.sh and bench/chaos.sh share. Source it after setting NAME.
# It checks for the named tools, builds tollgate and tollgate-echo (release), and gives:
#   log MSG          a line on stderr, prefixed with [NAME]
#   $bin             where the release binaries are
#   $work            a temporary directory, removed on exit
#   pids+=(PID)      processes stopped on exit
#   free_port        a free loopback port

log() { echo "[$NAME] $*" >&2; }
# $1...: tools that must be installed (bench/run.sh installs them).
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { log "$tool is missing: run bench/run.sh once (it installs it)"; exit 1; }
  done
}
cargo build --release -q -p tollgate -p tollgate-echo
bin=target/release

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
