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
#   scripts/bench.sh newcomer [events] [runs]       `tally broker` + tallyd + `tally produce` of a
#                                                   generated file, as a new user runs them: time
#                                                   to all consumed, held back, trimmed; baseline
#                                                   --no-hold-back (default 1000000 events, 3 runs)
# Flags: `scripts/bench.sh ingest --help`. BUILD_DIR overrides the build directory (./build).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
case "$what" in
  ingest | query | pipeline | replay | requests | superagents | newcomer) shift ;;
  *)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
build="${BUILD_DIR:-build}"
scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=("${what}_bench")
if [ "$what" = pipeline ]; then targets+=(tally); fi
if [ "$what" = replay ]; then targets=(tally); fi
if [ "$what" = newcomer ]; then targets=(tally tallyd); fi
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
  newcomer)
    events="${1:-1000000}"
    runs="${2:-3}"
    tmp="$(mktemp -d)"
    pids=()
    trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
    "$build/cmd/tally/tally" gen --events "$events" -o "$tmp/events.ndjson" >&2
    echo "$(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $events events, $(stat -c %s "$tmp/events.ndjson") bytes"
    metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
    for run in $(seq "$runs"); do
      for mode in hold-back no-hold-back; do
        d="$tmp/$mode-$run"
        mkdir -p "$d"
        "$build/cmd/tally/tally" broker --addr-file "$d/broker.addr" 2>/dev/null >/dev/null &
        pids=($!)
        while [ ! -s "$d/broker.addr" ]; do sleep 0.05; done
        "$build/cmd/tallyd/tallyd" --brokers "$(cat "$d/broker.addr")" --data-dir "$d/data" \
          --listen 127.0.0.1:0 --port-file "$d/port" --keys config/keys.dev.toml >"$d/tallyd.log" 2>&1 &
        tallyd_pid=$!
        pids+=("$tallyd_pid")
        while [ ! -s "$d/port" ]; do sleep 0.05; done
        addr="$(cat "$d/port")"
        until curl -sf "http://$addr/readyz" >/dev/null; do sleep 0.05; done
        flag=()
        if [ "$mode" = no-hold-back ]; then flag=(--no-hold-back); fi
        start=$(date +%s.%N)
        "$build/cmd/tally/tally" produce --broker-addr-file "$d/broker.addr" "${flag[@]}" \
          "$tmp/events.ndjson" 2>"$d/produce.log"
        produced=$(date +%s.%N)
        # Done when every event is consumed, or when nothing moved for 3 s (the rest was trimmed).
        last=-1 still=0
        while :; do
          consumed="$(metric "$addr" tally_events_consumed_total)"
          [ "${consumed:-0}" -ge "$events" ] && break
          if [ "$consumed" = "$last" ]; then still=$((still + 1)); else still=0; fi
          [ "$still" -ge 60 ] && break
          last="$consumed"
          sleep 0.05
        done
        end=$(date +%s.%N)
        trimmed="$(metric "$addr" tally_log_trimmed_total)"
        cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$tallyd_pid/stat")
        held="$(sed -n 's/^held back \([0-9.]*\) s.*/\1/p' "$d/produce.log")"
        awk -v m="$mode" -v r="$run" -v s="$start" -v p="$produced" -v e="$end" -v c="$consumed" \
          -v n="$events" -v t="${trimmed:-0}" -v cpu="$cpu" -v h="${held:-0}" \
          'BEGIN{printf "run %d %-12s produce %.1f s, all consumed after %.1f s: %d of %d events (%.0f events/s), lost %d, trimmed %d times, held back %.1f s, tallyd CPU %.1f s\n", r, m, p-s, e-s, c, n, c/(e-s), n-c, t, h, cpu}'
        kill "${pids[@]}" 2>/dev/null
        wait 2>/dev/null || true
        rm -rf "$d/data"
      done
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
