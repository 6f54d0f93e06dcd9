#!/usr/bin/env bash
# Starts the README's three-node local cluster from config.yaml.dist in one
# terminal. Ctrl-C stops all three nodes gracefully. Data stays in ./data.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x ./raftogram ] || { echo "run 'make build' first" >&2; exit 1; }

pids=()
stop() {
  trap - INT TERM
  echo "stopping nodes..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
  exit 0
}
trap stop INT TERM

for i in 1 2 3; do
  p=$((i - 1))
  cfg="config.node$i.yaml"
  if [ ! -f "$cfg" ]; then
    sed -e "s/^node_id: node1\$/node_id: node$i/" \
        -e "s/^raft_bind_addr: 127.0.0.1:7000\$/raft_bind_addr: 127.0.0.1:700$p/" \
        -e "s/^grpc_bind_addr: 127.0.0.1:9000\$/grpc_bind_addr: 127.0.0.1:900$p/" \
        -e "s/^health_bind_addr: 127.0.0.1:8080\$/health_bind_addr: 127.0.0.1:808$p/" \
        -e "s#^data_dir: ./data/node1\$#data_dir: ./data/node$i#" \
        config.yaml.dist > "$cfg"
    echo "wrote $cfg"
  fi
  ./raftogram -config "$cfg" -dev > >(sed -u "s/^/[node$i] /") 2>&1 &
  pids+=($!)
done
echo "three nodes starting; health on :8080 :8081 :8082, gRPC on :9000 :9001 :9002. Ctrl-C stops them."
wait
