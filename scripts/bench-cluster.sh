#!/usr/bin/env bash
# Starts a fresh three-node cluster from ./raftogram in a temporary directory,
# runs `raftogram bench` against it with the arguments given, prints the
# result, and stops the cluster. Every figure in docs/performance.md is
# produced this way, e.g.
#
#   make build && scripts/bench-cluster.sh -json -clients 64 -channels 64 -payload 128 -duration 10s
#
# Environment:
#   BENCH_BIN        the binary to run (default ./raftogram)
#   BENCH_DATA_DIR   where the nodes keep their data (default: a new directory
#                    under ${TMPDIR:-/tmp}, removed afterwards)
#   BENCH_BASE_PORT  moves the ports (default 17000: raft 17000-2, gRPC
#                    19000-2, health 18080-2)
#   BENCH_NODE_ENV   more environment for every node, e.g.
#                    "RAFTOGRAM_RAFT_MAX_APPEND_ENTRIES=512"
#   BENCH_RSS=1      print each node's peak RSS (VmHWM) after the run
#   BENCH_METRICS    an extended regular expression: after the run, print each
#                    node's /metrics lines that match it, e.g.
#                    "^raftogram_fanout_delivery_lag_seconds_count"
#   BENCH_RESTART=1  after the run, report the data sizes and the snapshots
#                    the nodes took, stop the cluster (SIGTERM), start it
#                    again on the same data and time it until every node
#                    knows the leader and has applied the whole log
# Reports other than the bench result go to stderr.
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
health() { echo "127.0.0.1:$((base + 1080 + $1 - 1))"; }

pids=()
stop_nodes() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_nodes
  if [ -n "$cleanup_dir" ]; then rm -rf "$cleanup_dir"; fi
}
trap cleanup EXIT

start_nodes() {
  for i in 1 2 3; do
    mkdir -p "$dir/node$i"
    # shellcheck disable=SC2086
    env RAFTOGRAM_NODE_ID="node$i" RAFTOGRAM_CLUSTER_PEERS="$peers" \
      RAFTOGRAM_RAFT_BIND_ADDR="127.0.0.1:$((base + i - 1))" \
      RAFTOGRAM_GRPC_BIND_ADDR="127.0.0.1:$((base + 2000 + i - 1))" \
      RAFTOGRAM_HEALTH_BIND_ADDR="$(health "$i")" \
      RAFTOGRAM_DATA_DIR="$dir/node$i/data" RAFTOGRAM_LOG_LEVEL=info ${BENCH_NODE_ENV:-} \
      "$bin" >>"$dir/node$i/log" 2>&1 &
    pids+=($!)
  done
}

# ready TARGET succeeds when every node knows the leader and has applied
# at least index TARGET, and exactly one of them leads.
ready() {
  local leaders=0 i h
  for i in 1 2 3; do
    h=$(curl -fsS "$(health "$i")/health" 2>/dev/null) || return 1
    python3 -c '
import json, sys
h = json.loads(sys.argv[1])
sys.exit(0 if h.get("leader_id") and h["applied_index"] >= int(sys.argv[2]) else 1)' "$h" "$1" || return 1
    case $h in *'"is_leader": true'*) leaders=$((leaders + 1)) ;; esac
  done
  [ "$leaders" = 1 ]
}

# applied prints the highest applied_index among the nodes.
applied() {
  local best=0 i a
  for i in 1 2 3; do
    a=$(curl -fsS "$(health "$i")/health" | python3 -c 'import json, sys; print(json.load(sys.stdin)["applied_index"])')
    [ "$a" -gt "$best" ] && best=$a
  done
  echo "$best"
}

wait_ready() { # seconds target
  local deadline=$((SECONDS + $1))
  until ready "$2"; do
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

start_nodes
wait_ready 20 0 || { echo "cluster did not come up with one leader; logs in $dir" >&2; cleanup_dir=""; exit 1; }

addrs="127.0.0.1:$((base + 2000)),127.0.0.1:$((base + 2001)),127.0.0.1:$((base + 2002))"
status=0
# The write-stage breakdown, when the binary's bench has it (an older
# binary under scripts/bench-ab.sh may not).
metrics=()
if "$bin" bench -h 2>&1 | grep -q -- -metrics-urls; then
  metrics=(-metrics-urls "http://$(health 1)/metrics,http://$(health 2)/metrics,http://$(health 3)/metrics")
fi
"$bin" bench -addrs "$addrs" "${metrics[@]}" -server-pids "$(IFS=,; echo "${pids[*]}")" "$@" || status=$?
if [ "${BENCH_RSS:-0}" = 1 ]; then
  for i in 0 1 2; do echo "node$((i + 1)) $(grep VmHWM "/proc/${pids[$i]}/status")" >&2; done
fi
if [ -n "${BENCH_METRICS:-}" ]; then
  for i in 1 2 3; do
    curl -fsS "$(health "$i")/metrics" | grep -E "$BENCH_METRICS" | sed "s/^/node$i /" >&2 || true
  done
fi
if [ "${BENCH_RESTART:-0}" = 1 ]; then
  for i in 1 2 3; do
    d=$dir/node$i/data
    echo "node$i: projection $(du -cb "$d"/projection.db* | tail -1 | cut -f1) B, raft.db $(stat -c %s "$d/raft.db") B" >&2
    grep -h '"snapshot persisted"' "$dir/node$i/log" | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print("node'"$i"': snapshot %s: %s bytes in %s" % (r["id"], r["bytes"], r["duration"]), file=sys.stderr)' || true
  done
  target=$(applied)
  stop_nodes
  t0=$(date +%s.%N)
  start_nodes
  wait_ready 300 "$target" || { echo "cluster did not recover after restart; logs in $dir" >&2; cleanup_dir=""; exit 1; }
  echo "restart: all three nodes serving with index $target applied after $(python3 -c "import time; print(round(time.time() - $t0, 2))") s" >&2
fi
exit $status
