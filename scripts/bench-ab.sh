#!/usr/bin/env bash
# A/B comparison of two raftogram binaries: N interleaved runs of
# scripts/bench-cluster.sh each (A, B, A, B, ...), each on a fresh cluster,
# then the medians. Interleaving spreads the machine's noise over both.
#
#   git stash && make build && cp raftogram /tmp/raftogram.A && git stash pop
#   make build && cp raftogram /tmp/raftogram.B
#   scripts/bench-ab.sh /tmp/raftogram.A /tmp/raftogram.B 4 -clients 64 -channels 64 -payload 128
#
# The remaining arguments go to `raftogram bench` (-json and -duration 8s are
# added; a later -duration wins). BENCH_NODE_ENV_A / BENCH_NODE_ENV_B give
# the nodes of each side their own environment (for example GOGC=200), so
# one binary can be compared with itself under two settings. BENCH_AB_FIELDS
# names the result's JSON keys to take medians of (default "ops_per_sec
# p50_ms p99_ms server_cpu_us_per_op"; e.g. "server_cpu_pct
# accept_delivery_p99_ms subscribers_complete" for a subscribe run).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
a=$1 b=$2 n=$3
shift 3
fields=${BENCH_AB_FIELDS:-}
keys=${fields:-ops_per_sec p50_ms p99_ms server_cpu_us_per_op}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$n"); do
  for side in A B; do
    if [ "$side" = A ]; then bin=$a env=${BENCH_NODE_ENV_A:-}; else bin=$b env=${BENCH_NODE_ENV_B:-}; fi
    BENCH_BIN=$bin BENCH_NODE_ENV=$env scripts/bench-cluster.sh -json -duration 8s "$@" 2>/dev/null |
      python3 -c 'import json, sys; d = json.loads(sys.stdin.read()); print(sys.argv[1], *(d.get(k, 0) for k in sys.argv[2].split()))' "$side" "$keys" |
      tee -a "$out"
  done
done
python3 - "$out" "$fields" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
keys = sys.argv[2].split()
for side in "AB":
    cols = list(zip(*[map(float, r[1:]) for r in rows if r[0] == side]))
    if not cols:
        continue
    med = [statistics.median(c) for c in cols]
    if keys:
        print("%s median: %s (%d runs)" % (side, ", ".join("%s %g" % kv for kv in zip(keys, med)), len(cols[0])))
    else:
        print("%s median: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, %.0f µs server CPU/op (%d runs)" % (side, *med, len(cols[0])))
PY
