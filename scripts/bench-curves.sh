#!/usr/bin/env bash
# Scale curves: throughput and latency of SendMessage (closed loop, a fresh
# three-node cluster per cell, scripts/bench-cluster.sh) versus clients,
# channels and payload size, one axis at a time around the 64-client,
# 64-channel, 128-byte point. Prints a Markdown table; the JSON lines are
# kept in $OUT (default bench-curves.jsonl).
#
#   make build && scripts/bench-curves.sh            # about 5 minutes
#   DURATION=10s scripts/bench-curves.sh
#   BENCH_CURVES_ARGS="-workload publish -inflight 64" scripts/bench-curves.sh   # pipelined
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-8s}
read -r -a extra <<<"${BENCH_CURVES_ARGS:-}"
out=${OUT:-bench-curves.jsonl}
: >"$out"

cell() { # axis clients channels payload
  local axis=$1 c=$2 k=$3 p=$4
  echo "[$(date -u +%H:%M:%S)] $axis: clients=$c channels=$k payload=$p" >&2
  scripts/bench-cluster.sh -json -label "$axis" -clients "$c" -channels "$k" -payload "$p" \
    -duration "$duration" "${extra[@]}" 2>/dev/null >>"$out" || echo "cell failed: $axis $c $k $p" >&2
}

for c in 1 4 16 64 256; do cell clients "$c" 64 128; done
for k in 1 1000 10000; do cell channels 64 "$k" 128; done
for p in 1024 16384 65536; do cell payload 64 64 "$p"; done

python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| axis | clients | channels | payload B | ops/s | MB/s | p50 ms | p99 ms | server CPU µs/op |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print("| %s | %d | %d | %d | %.0f | %.1f | %.2f | %.2f | %.0f |" % (
        r.get("label", ""), r["clients"], r["channels"], r["payload"], r["ops_per_sec"],
        r["ops_per_sec"] * r["payload"] / 1e6, r["p50_ms"], r["p99_ms"], r.get("server_cpu_us_per_op", 0)))
PY
