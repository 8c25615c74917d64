#!/usr/bin/env bash
# Runs one benchmark, building what it needs first (docs/benchmarks.md has the results).
#   scripts/bench.sh ingest   [ingest_bench flags]  end-to-end ingest of 1M events through the
#                                                   embedded broker (events/s, vs a raw baseline)
#   scripts/bench.sh query    [query_bench flags]   GET /api/v1/workspaces/metrics p50/p99 over
#                                                   90 days / 1M events
#   scripts/bench.sh pipeline [events] [runs]       parse + aggregate + RocksDB in one process,
#                                                   no Kafka (default 1000000 events, 3 runs)
#   scripts/bench.sh replay [events] [runs]         `tally replay --mode rebuild` from a .zst
#                                                   file (default 10000000 events, 3 runs)
#   scripts/bench.sh requests [requests_bench flags] GET /v1/analytics/requests/* (11 endpoints)
#                                                   p50/p99 at 1M and 10M events, and their ratio
#   scripts/bench.sh superagents [superagents_bench flags]  GET .../superagents p50/p99, 50-row
#                                                   pages of a workspace with ~100k agents, 10M events
# Flags: `scripts/bench.sh ingest --help`. BUILD_DIR overrides the build directory (./build).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
case "$what" in
  ingest | query | pipeline | replay | requests | superagents) shift ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
build="${BUILD_DIR:-build}"
scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=("${what}_bench")
if [ "$what" = pipeline ]; then targets+=(tally); fi
if [ "$what" = replay ]; then targets=(tally); fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ local changes)')"
# A shared working tree: say which files differ from the commit measured.
git diff --stat HEAD 2>/dev/null | sed -n '$!s/^/  changed: /p' | head -20 || true

case "$what" in
  ingest) exec "$build/bench/ingest_bench" "$@" ;;
  query) exec "$build/bench/query_bench" "$@" ;;
  requests) exec "$build/bench/requests_bench" "$@" ;;
  superagents) exec "$build/bench/superagents_bench" "$@" ;;
  replay)
    events="${1:-10000000}"
    runs="${2:-3}"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "generating $events events..." >&2
    "$build/cmd/tally/tally" gen --events "$events" --end-day 2026-01-31 --days 90 \
      --duplicates 0.01 --malformed 0.001 | zstd -q -T0 -o "$tmp/events.ndjson.zst"
    zbytes=$(stat -c %s "$tmp/events.ndjson.zst")
    rawbytes=$(zstd -q -dc "$tmp/events.ndjson.zst" | wc -c)
    echo "file: $(awk -v b="$zbytes" 'BEGIN{printf "%.1f", b/1e6}') MB zstd, $(awk -v b="$rawbytes" 'BEGIN{printf "%.1f", b/1e6}') MB NDJSON; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
    for run in $(seq "$runs"); do
      start=$(date +%s.%N)
      "$build/cmd/tally/tally" replay --mode rebuild --data-dir "$tmp/data$run" --no-switch \
        "$tmp/events.ndjson.zst" 2>/dev/null | grep '^replay summary'
      end=$(date +%s.%N)
      awk -v s="$start" -v e="$end" -v n="$events" -v z="$zbytes" -v r="$rawbytes" -v run="$run" \
        'BEGIN{t=e-s; printf "run %d: %.1f s  %.0f events/s  %.1f MB/s zstd  %.1f MB/s NDJSON\n", run, t, n/t, z/1e6/t, r/1e6/t}'
      rm -rf "$tmp/data$run"
    done
    ;;
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
