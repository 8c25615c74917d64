#!/usr/bin/env bash
# Runs one benchmark, building what it needs first (docs/benchmarks.md has the results).
#   scripts/bench.sh ingest   [ingest_bench flags]  end-to-end ingest of 1M events through the
#                                                   embedded broker (events/s, vs a raw baseline)
#   scripts/bench.sh query    [query_bench flags]   GET /api/v1/workspaces/metrics p50/p99 over
#                                                   90 days / 1M events
#   scripts/bench.sh pipeline [events] [runs]       parse + aggregate + RocksDB in one process,
#                                                   no Kafka (default 1000000 events, 3 runs)
# Flags: `scripts/bench.sh ingest --help`. BUILD_DIR overrides the build directory (./build).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
case "$what" in
  ingest | query | pipeline) shift ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
build="${BUILD_DIR:-build}"
scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=("${what}_bench")
if [ "$what" = pipeline ]; then targets+=(tally); fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ local changes)')"

case "$what" in
  ingest) exec "$build/bench/ingest_bench" "$@" ;;
  query) exec "$build/bench/query_bench" "$@" ;;
  pipeline)
    events="${1:-1000000}"
    runs="${2:-3}"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$build/cmd/tally/tally" gen --events "$events" --end-day 2026-01-31 --days 90 \
      -o "$tmp/events.ndjson" >&2
    for run in $(seq "$runs"); do
      echo "run $run:"
      "$build/bench/pipeline_bench" "$tmp/events.ndjson" 20000 "$tmp/db"
    done
    ;;
esac
