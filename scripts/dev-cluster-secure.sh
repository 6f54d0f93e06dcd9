#!/usr/bin/env bash
# Starts the README's three local nodes with TLS on gRPC and health, mutual
# TLS on Raft and token auth (docs/security.md). The first run generates a
# throwaway CA, node and client certificates, tokens and configs under
# ./data/secure/. Ctrl-C stops all three nodes gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x ./raftogram ] || { echo "run 'make build' first" >&2; exit 1; }
dir=data/secure
if [ ! -f "$dir/ca.pem" ]; then
  ${GO:-go} run ./scripts/devsecure -dir "$dir"
  echo "wrote a throwaway CA, certificates, tokens and configs to $dir/"
fi

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
  ./raftogram -config "$dir/node$i.yaml" -dev > >(sed -u "s/^/[node$i] /") 2>&1 &
  pids+=($!)
done
cat <<MSG
three secure nodes starting; gRPC (TLS) on :9000 :9001 :9002, health (TLS) on :8080 :8081 :8082.
Try, as the writer:
  grpcurl -cacert $dir/ca.pem -H "authorization: Bearer \$(cat $dir/writer.token)" \\
    -import-path api/proto -proto raftogram/v1/messaging.proto \\
    -d '{"channel_id":"general","name":"General"}' 127.0.0.1:9000 raftogram.v1.Messenger/CreateChannel
or with the client certificate: -cacert $dir/ca.pem -cert $dir/client.pem -key $dir/client-key.pem
and the CLI: ./raftogram channel list -cacert $dir/ca.pem -token "\$(cat $dir/reader.token)"
Ctrl-C stops them.
MSG
wait
