#!/usr/bin/env bash
# Starts a fresh three-node cluster from ./raftogram in a temporary directory,
# runs `raftogram bench` against it with the arguments given, prints the
# result, and stops the cluster. Every figure in design.md "Performance" is
# produced this way, e.g.
#
#   make build && scripts/bench-cluster.sh -json -clients 64 -channels 64 -payload 128 -duration 10s
#
# BENCH_BIN names the binary to run (default ./raftogram). BENCH_DATA_DIR overrides where the nodes keep their data (default: a new
# directory under ${TMPDIR:-/tmp}, removed afterwards). BENCH_BASE_PORT moves
# the ports (default 17000: raft 17000-2, gRPC 19000-2, health 18080-2).
# BENCH_NODE_ENV adds environment to every node (e.g.
# "RAFTOGRAM_RAFT_MAX_APPEND_ENTRIES=512"). BENCH_RSS=1 prints each node's
# peak RSS (VmHWM) after the run on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BENCH_BIN:-./raftogram}
[ -x "$bin" ] || { echo "$bin not found: run 'make build' first" >&2; exit 1; }

base=${BENCH_BASE_PORT:-17000}
dir=${BENCH_DATA_DIR:-}
cleanup_dir=""
if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/raftogram-bench.XXXXXX"); cleanup_dir=$dir; fi

peers=""
for i in 1 2 3; do
  peers+="${peers:+,}node$i=127.0.0.1:$((base + i - 1))/127.0.0.1:$((base + 2000 + i - 1))"
done

pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "$cleanup_dir" ] && rm -rf "$cleanup_dir"
}
trap stop EXIT

for i in 1 2 3; do
  mkdir -p "$dir/node$i"
  # shellcheck disable=SC2086
  env RAFTOGRAM_NODE_ID="node$i" RAFTOGRAM_CLUSTER_PEERS="$peers" \
    RAFTOGRAM_RAFT_BIND_ADDR="127.0.0.1:$((base + i - 1))" \
    RAFTOGRAM_GRPC_BIND_ADDR="127.0.0.1:$((base + 2000 + i - 1))" \
    RAFTOGRAM_HEALTH_BIND_ADDR="127.0.0.1:$((base + 1080 + i - 1))" \
    RAFTOGRAM_DATA_DIR="$dir/node$i/data" RAFTOGRAM_LOG_LEVEL=warn ${BENCH_NODE_ENV:-} \
    "$bin" >"$dir/node$i/log" 2>&1 &
  pids+=($!)
done

# Wait (20 s at most) for a leader that every node knows.
for _ in $(seq 200); do
  ok=0
  for i in 1 2 3; do
    "$bin" healthcheck -addr "127.0.0.1:$((base + 1080 + i - 1))" >/dev/null 2>&1 && ok=$((ok + 1))
  done
  [ "$ok" = 3 ] && break
  sleep 0.1
done
[ "$ok" = 3 ] || { echo "cluster did not elect a leader; logs in $dir" >&2; cleanup_dir=""; exit 1; }
# Refuse to measure anything but one three-node cluster.
leaders=$(for i in 1 2 3; do curl -fsS "127.0.0.1:$((base + 1080 + i - 1))/health"; done | grep -c '"is_leader": true' || true)
[ "$leaders" = 1 ] || { echo "expected one leader among three nodes, found $leaders; logs in $dir" >&2; cleanup_dir=""; exit 1; }

addrs="127.0.0.1:$((base + 2000)),127.0.0.1:$((base + 2001)),127.0.0.1:$((base + 2002))"
status=0
"$bin" bench -addrs "$addrs" -server-pids "$(IFS=,; echo "${pids[*]}")" "$@" || status=$?
if [ "${BENCH_RSS:-0}" = 1 ]; then
  for i in 0 1 2; do echo "node$((i + 1)) $(grep VmHWM /proc/${pids[$i]}/status)" >&2; done
fi
exit $status
