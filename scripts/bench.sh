#!/usr/bin/env bash
# Runs one benchmark, building what it needs first (docs/benchmarks.md has the results).
#   scripts/bench.sh ingest   [ingest_bench flags]  end-to-end ingest of 1M events through the
#                                                   embedded broker (events/s, vs a raw baseline)
#   scripts/bench.sh query    [query_bench flags]   GET /api/v1/workspaces/metrics p50/p99 over
#                                                   90 days / 1M events
#   scripts/bench.sh pipeline [--events 1000000] [--runs 3] [--mix default|executions]
#                             [--days 90] [--batch 20000] [--persist-every 0]
#                                                   parse + aggregate + store in one process, no
#                                                   Kafka: time per phase and CPU per event;
#                                                   --persist-every N stages batches and persists
#                                                   every N (live ingest: --batch 200
#                                                   --persist-every 25 is 1,000 events/s);
#                                                   BASE_BUILD=DIR alternates with DIR's build
#   scripts/bench.sh replay [events] [runs] [mix]   `tally replay --mode rebuild` of a .zst file
#                                                   of the executions mix (or `tally gen`'s
#                                                   default mix: mix=default; default 10000000
#                                                   events, 3 runs): wall time, events/s,
#                                                   peak memory, median; BASE_BUILD=DIR also runs
#                                                   DIR's tally alternately and gives the ratio
#   scripts/bench.sh requests [requests_bench flags] GET /v1/analytics/requests/* (11 endpoints)
#                                                   p50/p99 at 1M and 10M events, and their ratio
#   scripts/bench.sh superagents [superagents_bench flags]  GET .../superagents p50/p99, 50-row
#                                                   pages of a workspace with ~100k agents, 10M events
#   scripts/bench.sh cluster [cluster_bench flags]  3 tallyd on one consumer group (`tally
#                                                   broker`, 12 partitions): query p50/p90/p99
#                                                   local vs forwarded, request analytics
#                                                   gathered vs one instance, failover time after
#                                                   SIGKILL, CPU per event with 1 and 3 instances
#   scripts/bench.sh newcomer [events] [runs]       `tally broker` + tallyd + `tally produce` of a
#                                                   generated file, as a new user runs them: time
#                                                   to all consumed, held back, trimmed; baseline
#                                                   --no-hold-back (default 1000000 events, 3 runs)
#   scripts/bench.sh live [--rates 1000,10000,30000,max] [--runs 3] [--mix executions|default]
#                         [--seconds 25] [--events N] [--perf S] [--keep] [--floor] [--now]
#                                                   tallyd's own CPU per stored event (µs) at fixed
#                                                   produce rates, on `tally broker`; --seconds of
#                                                   events per rate (--events N: N each; max = no
#                                                   --rate, 1000000 events); median of --runs;
#                                                   --floor also runs the same streams into a
#                                                   consumer that only counts (consume_floor);
#                                                   --now stamps every event with the time it is
#                                                   generated at, as a live stream's events are
#                                                   (by default they spread over --days 90)
#   scripts/bench.sh fresh [--rates 1000,30000] [--probes 60] [--runs 3]
#                                                   freshness: from POST /v1/events of a probe
#                                                   event to the first query that counts it, while
#                                                   `tally produce --rate R` streams the executions
#                                                   mix; p50/p99/max per rate, all runs pooled;
#                                                   a held-back POST (503) is sent again, counted
#   scripts/bench.sh load [--rate 30000] [--history 1000000] [--seconds 20] [--connections 8]
#                         [--soak-minutes M]
#                                                   `wrk` against each endpoint family while
#                                                   ingest streams at --rate: requests/s, p50,
#                                                   p99, errors, tallyd's RSS (scripts/load.sh;
#                                                   --soak-minutes 10 is the soak)
# Flags: `scripts/bench.sh ingest --help`. BUILD_DIR overrides the build directory (./build).
# TALLYD_ARGS adds tallyd flags for newcomer, live and fresh (e.g. TALLYD_ARGS="--persist-ms 0").
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
case "$what" in
  ingest | query | pipeline | replay | requests | superagents | cluster | newcomer | live | fresh | load) shift ;;
  *)
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0" >&2
    exit 2
    ;;
esac
build="${BUILD_DIR:-build}"
scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=("${what}_bench")
if [ "$what" = pipeline ]; then targets+=(tally); fi
if [ "$what" = replay ]; then targets=(tally); fi
if [ "$what" = newcomer ] || [ "$what" = live ] || [ "$what" = fresh ] || [ "$what" = load ]; then
  targets=(tally tallyd)
fi
if [ "$what" = live ]; then targets+=(consume_floor); fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ local changes)')"
# A shared working tree: say which files differ from the commit measured.
git diff --stat HEAD 2>/dev/null | sed -n '$!s/^/  changed: /p' | head -20 || true

# A temporary directory in $tmp, removed on exit (kept if $keep is 1) after the background
# processes listed in $pids are stopped.
make_tmp() {
  tmp="$(mktemp -d)"
  pids=()
  trap 'stop_and_clean' EXIT
}
stop_and_clean() {
  [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  if [ "${keep:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}

# Starts `tally broker` with its defaults under directory $1 (broker.addr) and waits for its
# address. Sets pids to it.
start_broker() {
  mkdir -p "$1" && rm -f "$1/broker.addr"
  "$build/cmd/tally/tally" broker --addr-file "$1/broker.addr" >/dev/null 2>&1 &
  pids=($!)
  while [ ! -s "$1/broker.addr" ]; do sleep 0.05; done
}

# Starts `tally broker` with its defaults and a tallyd against it, both under directory $1
# (broker.addr, data/, port, tallyd.log), and waits until tallyd is ready. Sets pids (both),
# tallyd_pid and addr (tallyd's HOST:PORT). Uses $build.
start_broker_and_tallyd() {
  local d="$1"
  start_broker "$d"
  "$build/cmd/tallyd/tallyd" --brokers "$(cat "$d/broker.addr")" --data-dir "$d/data" \
    --listen 127.0.0.1:0 --port-file "$d/port" --keys config/keys.dev.toml ${TALLYD_ARGS:-} >"$d/tallyd.log" 2>&1 &
  tallyd_pid=$!
  pids+=("$tallyd_pid")
  while [ ! -s "$d/port" ]; do sleep 0.05; done
  addr="$(cat "$d/port")"
  until curl -sf "http://$addr/readyz" >/dev/null; do sleep 0.05; done
}

case "$what" in
  load) BUILD_DIR="$build" exec scripts/load.sh "$@" ;;
  ingest) exec "$build/bench/ingest_bench" "$@" ;;
  query) exec "$build/bench/query_bench" "$@" ;;
  requests) exec "$build/bench/requests_bench" "$@" ;;
  superagents) exec "$build/bench/superagents_bench" "$@" ;;
  cluster) exec "$build/bench/cluster_bench" "$@" ;;
  replay)
    events="${1:-10000000}"
    runs="${2:-3}"
    mix="${3:-executions}"  # tally gen checks it
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "generating $events events ($mix mix)..." >&2
    "$build/cmd/tally/tally" gen --events "$events" --mix "$mix" --end-day 2026-01-31 \
      --duplicates 0.01 --malformed 0.001 | zstd -q -T0 -o "$tmp/events.ndjson.zst"
    zbytes=$(stat -c %s "$tmp/events.ndjson.zst")
    rawbytes=$(zstd -q -dc "$tmp/events.ndjson.zst" | wc -c)
    echo "file: $(awk -v b="$zbytes" 'BEGIN{printf "%.1f", b/1e6}') MB zstd, $(awk -v b="$rawbytes" 'BEGIN{printf "%.1f", b/1e6}') MB NDJSON; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
    : >"$tmp/times"
    variants=(new)
    [ -n "${BASE_BUILD:-}" ] && variants+=(base)
    for run in $(seq "$runs"); do
      for variant in "${variants[@]}"; do
        bin="$build/cmd/tally/tally"
        [ "$variant" = base ] && bin="$BASE_BUILD/cmd/tally/tally"
        start=$(date +%s.%N)
        out="$("$bin" replay --mode rebuild --data-dir "$tmp/data" --no-switch \
          "$tmp/events.ndjson.zst" 2>/dev/null)"
        end=$(date +%s.%N)
        peak=$(echo "$out" | sed -n 's/.*peak memory \([0-9,]*\) MiB.*/\1/p' | tr -d ,)
        awk -v s="$start" -v e="$end" -v n="$events" -v run="$run" -v v="$variant" -v p="${peak:-?}" \
          'BEGIN{t=e-s; printf "run %d %-4s: %.1f s  %.0f events/s  peak %s MiB\n", run, v, t, n/t, p}'
        echo "$variant $(awk -v s="$start" -v e="$end" 'BEGIN{print e-s}')" >>"$tmp/times"
        rm -rf "$tmp/data"
      done
    done
    median() { grep "^$1 " "$tmp/times" | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
    awk -v n="$events" -v m="$(median new)" 'BEGIN{printf "median %.1f s (%.0f events/s)\n", m, n/m}'
    if [ -n "${BASE_BUILD:-}" ]; then
      awk -v n="$events" -v m="$(median new)" -v b="$(median base)" \
        'BEGIN{printf "median base %.1f s (%.0f events/s); base/new %.2fx\n", b, n/b, b/m}'
    fi
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
        start_broker_and_tallyd "$d"
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
  live)
    # tallyd's own CPU (utime + stime of /proc/<pid>/stat) per stored event at fixed produce rates.
    rates=1000,10000,30000,max runs=3 mix=executions seconds=25 events="" perf=0 keep=0 floor=0 now=0
    while [ $# -gt 0 ]; do
      case "$1" in
        --rates) rates="$2" && shift 2 ;;
        --runs) runs="$2" && shift 2 ;;
        --mix) mix="$2" && shift 2 ;;
        --seconds) seconds="$2" && shift 2 ;;
        --events) events="$2" && shift 2 ;;
        --perf) perf="$2" && shift 2 ;;
        --keep) keep=1 && shift ;;
        --floor) floor=1 && shift ;;
        --now) now=1 && shift ;;
        *)
          echo "usage: scripts/bench.sh live [--rates 1000,10000,30000,max] [--runs 3]" \
            "[--mix executions|default] [--seconds 25] [--events N] [--perf S] [--keep] [--floor] [--now]" >&2
          exit 2
          ;;
      esac
    done
    IFS=, read -r -a rate_list <<<"$rates"
    counts=()
    for r in "${rate_list[@]}"; do
      if [ -n "$events" ]; then
        counts+=("$events")
      elif [ "$r" = max ]; then
        counts+=(1000000)
      elif [[ "$r" =~ ^[1-9][0-9]*$ ]]; then
        counts+=($((r * seconds)))
      else
        echo "scripts/bench.sh live: a rate is a positive integer or max, not '$r'" >&2
        exit 2
      fi
    done
    tally="$build/cmd/tally/tally"
    make_tmp
    hz=$(getconf CLK_TCK)
    # CPU seconds used so far by process $1, all its threads (fields 14 and 15 after the name).
    cpu_of() { sed 's/^.*) //' "/proc/$1/stat" | awk -v hz="$hz" '{printf "%.2f", ($12 + $13) / hz}'; }
    metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2; f = 1} END {if (!f) print 0}'; }
    now() { date +%s.%N; }
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
      "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); mix $mix; rates ${rate_list[*]}; events ${counts[*]}; $runs runs$([ "$now" = 1 ] && echo '; events stamped now')"
    # One stream, cut into consecutive slices, one per rate: each rate gets new events (dedupe
    # would skip repeats) that continue the same workspaces, users and agents forward in time.
    total=0
    for n in "${counts[@]}"; do total=$((total + n)); done
    echo "generating $total events..." >&2
    "$tally" gen --mix "$mix" --events "$total" |
      awk -v dir="$tmp" -v counts="${counts[*]}" '
        BEGIN { k = split(counts, c, " "); i = 1; left = c[1] }
        { while (left == 0 && i < k) { i++; left = c[i] } print > (dir "/slice" i ".ndjson"); left-- }'
    if [ "$now" = 1 ]; then
      # The first "time" of a line is the CloudEvents attribute (it comes before "data").
      stamp="$(date -u +%Y-%m-%dT%H:%M:%S).000Z"
      sed -i -E "s/\"time\":\"[^\"]*\"/\"time\":\"$stamp\"/" "$tmp"/slice*.ndjson
    fi
    echo "| run | rate | events | stored | batches | persists | seconds | achieved events/s | tallyd CPU s | CPU % | µs/event | of which idle | settle CPU s | µs/event incl. settle |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    results="$tmp/results"
    : >"$results"
    invalid=0
    for run in $(seq "$runs"); do
      d="$tmp/run$run"
      start_broker_and_tallyd "$d"
      # Idle baseline: what tallyd burns with nothing to read.
      sleep 2
      c0=$(cpu_of "$tallyd_pid") t0=$(now)
      sleep 5
      idle=$(awk -v c0="$c0" -v c1="$(cpu_of "$tallyd_pid")" -v t0="$t0" -v t1="$(now)" \
        'BEGIN {printf "%.4f", (c1 - c0) / (t1 - t0)}')
      echo "run $run: tallyd pid $tallyd_pid, idle CPU $(awk -v i="$idle" 'BEGIN {printf "%.1f", i * 1000}') ms/s, load $(cut -d' ' -f1-3 /proc/loadavg)"
      for i in "${!rate_list[@]}"; do
        r="${rate_list[$i]}" n="${counts[$i]}" slice="$tmp/slice$((i + 1)).ndjson"
        rate_flag=()
        [ "$r" != max ] && rate_flag=(--rate "$r")
        consumed0=$(metric "$addr" tally_events_consumed_total)
        applied0=$(metric "$addr" tally_events_applied_total)
        batches0=$(metric "$addr" tally_batches_applied_total)
        persists0=$(metric "$addr" tally_persist_seconds_count)
        perf_pid=""
        if [ "$perf" != 0 ] && [ "$run" = 1 ] && [ "$i" = 0 ]; then
          (sleep 2 && exec perf record -e cpu-clock -g -p "$tallyd_pid" -o "$tmp/perf.data" \
            -- sleep "$perf") >"$tmp/perf.log" 2>&1 &
          perf_pid=$!
        fi
        # The window: from starting the producer until /metrics shows every event consumed.
        # /metrics is not polled while the producer runs, so that polling costs tallyd nothing.
        c0=$(cpu_of "$tallyd_pid") t0=$(now)
        "$tally" produce --broker-addr-file "$d/broker.addr" "${rate_flag[@]}" "$slice" \
          2>"$d/produce-$r.log" || echo "run $run rate $r: tally produce failed" >&2
        last=-1 still=0
        while :; do
          consumed=$(metric "$addr" tally_events_consumed_total)
          [ "$((consumed - consumed0))" -ge "$n" ] && break
          if [ "$consumed" = "$last" ]; then still=$((still + 1)); else still=0; fi
          if [ "$still" -ge 600 ] || ! kill -0 "$tallyd_pid" 2>/dev/null; then break; fi
          last="$consumed"
          sleep 0.05
        done
        c1=$(cpu_of "$tallyd_pid") t1=$(now)
        applied=$(metric "$addr" tally_events_applied_total)
        batches=$(($(metric "$addr" tally_batches_applied_total) - batches0))
        persists=$(($(metric "$addr" tally_persist_seconds_count) - persists0))
        trimmed=$(metric "$addr" tally_log_trimmed_total)
        # Settle: tallyd persists what it staged 1 s after the last batch, and RocksDB flushes
        # and compactions go on after that; wait until tallyd is back to its idle CPU (at least
        # 2 s, at most 30 s) and report that CPU too.
        ca=$c1 ta=$t1
        for k in $(seq 60); do
          sleep 0.5
          cb=$(cpu_of "$tallyd_pid") tb=$(now)
          if [ "$k" -ge 4 ] && awk -v a="$ca" -v b="$cb" -v ta="$ta" -v tb="$tb" -v i="$idle" \
            'BEGIN {exit !(b - a <= i * (tb - ta) + 0.011)}'; then break; fi
          ca=$cb ta=$tb
        done
        c2=$(cpu_of "$tallyd_pid") t2=$(now)
        [ -n "$perf_pid" ] && wait "$perf_pid"
        ok=1 note=""
        if [ "$((consumed - consumed0))" -lt "$n" ]; then
          ok=0 note="$note; only $((consumed - consumed0)) of $n consumed"
        fi
        if [ "$trimmed" -gt 0 ]; then ok=0 note="$note; tally_log_trimmed_total $trimmed"; fi
        [ -n "$perf_pid" ] && note="$note; perf attached"
        [ "$ok" = 1 ] || invalid=1
        stored=$((applied - applied0))
        awk -v run="$run" -v r="$r" -v n="$n" -v s="$stored" -v b="$batches" -v p="$persists" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
          -v c0="$c0" -v c1="$c1" -v c2="$c2" -v idle="$idle" -v note="$note" -v ok="$ok" \
          -v perf="$([ -n "$perf_pid" ] && echo 1 || echo 0)" -v out="$results" 'BEGIN {
            sub(/^; /, "", note)
            w = t1 - t0; cpu = c1 - c0; settle = c2 - c1 - idle * (t2 - t1)
            if (settle < 0) settle = 0
            us = s > 0 ? cpu / s * 1e6 : 0; us2 = s > 0 ? (cpu + settle) / s * 1e6 : 0
            printf "| %d | %s | %d | %d | %d | %d | %.1f | %.0f | %.2f | %.0f | %.2f | %.2f | %.2f | %.2f |%s\n",
              run, r, n, s, b, p, w, n / w, cpu, cpu / w * 100, us, (s > 0 ? idle * w / s * 1e6 : 0),
              settle, us2, (ok ? "" : " INVALID") (note == "" ? "" : " " note)
            if (ok && !perf) print r, n / w, cpu / w * 100, us, us2 >> out
          }'
      done
      # tallyd first, so that it does not log the broker's going away.
      kill "$tallyd_pid" 2>/dev/null
      wait "$tallyd_pid" 2>/dev/null || true
      kill "${pids[@]}" 2>/dev/null
      wait "${pids[@]}" 2>/dev/null || true
      pids=()
      [ "$keep" = 1 ] || rm -rf "$d/data"
      [ "$floor" = 1 ] || continue
      # The floor: the same slices at the same rates into a consumer that only counts, on a
      # fresh broker each (it commits nothing, so the producer does not wait for it).
      for i in "${!rate_list[@]}"; do
        r="${rate_list[$i]}" n="${counts[$i]}" slice="$tmp/slice$((i + 1)).ndjson" f="$tmp/floor$run"
        start_broker "$f"
        rate_flag=()
        [ "$r" != max ] && rate_flag=(--rate "$r")
        "$build/bench/consume_floor" --brokers "$(cat "$f/broker.addr")" --events "$n" >"$f/out" &
        floor_pid=$!
        sleep 1
        "$tally" produce --no-hold-back --broker-addr-file "$f/broker.addr" "${rate_flag[@]}" "$slice" \
          2>"$f/produce-$r.log" || echo "run $run rate $r: tally produce failed" >&2
        if wait "$floor_pid"; then
          us=$(awk '{print $6}' "$f/out")
          echo "run $run: floor at $r events/s: $(cat "$f/out")"
          echo "$r $us" >>"$tmp/floors"
        else
          echo "run $run: floor at $r events/s INVALID: $(cat "$f/out")" >&2
        fi
        kill "${pids[@]}" 2>/dev/null
        wait "${pids[@]}" 2>/dev/null || true
        pids=()
      done
    done
    echo
    echo "Medians over valid runs (µs/event: tallyd CPU from the producer's start until all consumed / including the settle after):"
    echo
    echo "| rate | runs | achieved events/s | tallyd CPU % | µs/event | µs/event incl. settle | floor µs/event |"
    echo "|---|---|---|---|---|---|---|"
    touch "$tmp/floors"
    for r in "${rate_list[@]}"; do
      awk -v r="$r" -v floors="$tmp/floors" '
        function median(a, n,   i, j, t) {
          for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
          return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $1 == r { n++; ach[n] = $2; pct[n] = $3; us[n] = $4; us2[n] = $5 }
        END {
          while ((getline line < floors) > 0) { split(line, f, " "); if (f[1] == r) fl[++k] = f[2] }
          fs = k ? sprintf("%.2f", median(fl, k)) : "-"
          if (n == 0) { printf "| %s | 0 | | | | | %s |\n", r, fs; exit }
          printf "| %s | %d | %.0f | %.0f | %.2f | %.2f | %s |\n", r, n, median(ach, n), median(pct, n), median(us, n), median(us2, n), fs
        }' "$results"
    done
    echo
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "$perf" != 0 ] && [ -s "$tmp/perf.data" ]; then
      set +o pipefail # head closes the pipes early
      echo
      echo "perf: tallyd, run 1, ${rate_list[0]} events/s, $perf s (cpu-clock), top symbols (self):"
      perf report -i "$tmp/perf.data" --no-children --sort sym --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -30
      echo
      echo "tally frames, inclusive (children):"
      perf report -i "$tmp/perf.data" --children --sort sym --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+% +[0-9.]+%.*tally::' | head -20
      echo
      echo "by thread (comm):"
      perf report -i "$tmp/perf.data" --no-children --sort comm --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -15
    elif [ "$perf" != 0 ]; then
      echo "perf record did not run:" >&2
      cat "$tmp/perf.log" >&2
    fi
    if [ "$invalid" = 1 ]; then
      echo "INVALID: some events were not consumed or the broker trimmed unread events" >&2
      exit 1
    fi
    ;;
  fresh)
    rates=1000,30000 probes=60 runs=3
    while [ $# -gt 0 ]; do
      case "$1" in
        --rates) rates="$2" && shift 2 ;;
        --probes) probes="$2" && shift 2 ;;
        --runs) runs="$2" && shift 2 ;;
        *)
          echo "usage: scripts/bench.sh fresh [--rates 1000,30000] [--probes 60] [--runs 3]" >&2
          exit 2
          ;;
      esac
    done
    IFS=, read -r -a rate_list <<<"$rates"
    tally="$build/cmd/tally/tally"
    keep=0
    make_tmp
    token=dev-token-change-me
    # The workspace-metrics API serves a response cache with a TTL by contract (cached_at,
    # cache_ttl); freshness is about the views, so it is off here.
    TALLYD_ARGS="--cache-ttl 0 ${TALLYD_ARGS:-}"
    now_ms() { echo $(($(date +%s%N) / 1000000)); }
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); rates ${rate_list[*]}; $probes probes per rate and run, 4 per second; $runs runs"
    # The background stream: enough for the probes at the highest rate (they take probes/4 s).
    seconds=$((probes / 4 + 8))
    max_rate=0
    for r in "${rate_list[@]}"; do [ "$r" -gt "$max_rate" ] && max_rate=$r; done
    "$tally" gen --mix executions --events $((max_rate * seconds)) -o "$tmp/stream.ndjson"
    for run in $(seq "$runs"); do
      for r in "${rate_list[@]}"; do
        d="$tmp/run$run-$r"
        start_broker_and_tallyd "$d"
        "$tally" produce --broker-addr-file "$d/broker.addr" --rate "$r" "$tmp/stream.ndjson" \
          >/dev/null 2>&1 &
        producer=$!
        pids+=("$producer")
        sleep 3  # the stream is flowing and tallyd is ingesting it
        ws="fresh-probe-$run-$r"
        url="http://$addr/api/v1/workspaces/metrics?workspace_uuid=$ws&entity=agents&metric=executions&aggregation=count&period=7d"
        for i in $(seq "$probes"); do
          t0=$(now_ms)
          body=$(printf '{"specversion":"1.0","id":"probe-%s-%s-%d","source":"bench/fresh","type":"agent.executed","time":"%s","data":{"workspace_id":"%s","user":{"id":"probe"},"agent":{"id":"probe-agent"},"status":"ok"}}' \
            "$run" "$r" "$i" "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$ws")
          # 503: the embedded broker's producers wait while a partition holds 2.5 MiB that
          # tallyd has not committed; a client sends the same request again (counted, and the
          # wait is part of the probe's time).
          while :; do
            code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$addr/v1/events" \
              -H "Authorization: Bearer $token" -H 'Content-Type: application/cloudevents+json' \
              -d "$body")
            [ "$code" = 503 ] || break
            echo "$r" >>"$tmp/held_back"
            sleep 0.1
          done
          [ "$code" = 200 ] || [ "$code" = 202 ] || echo "probe $i: POST answered $code" >&2
          while :; do
            total=$(curl -s "$url" -H "Authorization: Bearer $token" |
              sed -n 's/.*"total":[[:space:]]*\([0-9]*\).*/\1/p')
            [ "${total:-0}" -ge "$i" ] && break
            [ $(($(now_ms) - t0)) -gt 30000 ] && echo "probe $i: not visible after 30 s" >&2 && break
            sleep 0.005
          done
          t1=$(now_ms)
          echo "$r $((t1 - t0))" >>"$tmp/latencies"
          left=$((250 - (t1 - t0)))
          [ "$left" -gt 0 ] && sleep "$(awk -v l="$left" 'BEGIN {printf "%.3f", l / 1000}')"
        done
        kill -9 "$producer" 2>/dev/null || true  # it would wait for the stopped consumer
        kill "${pids[@]}" 2>/dev/null || true
        wait 2>/dev/null || true
        pids=()
      done
    done
    echo "| rate (events/s) | probes | p50 ms | p99 ms | max ms | POSTs held back (503) |"
    echo "|---|---|---|---|---|---|"
    touch "$tmp/held_back"
    for r in "${rate_list[@]}"; do
      held=$(grep -cx "$r" "$tmp/held_back" || true)
      awk -v r="$r" '$1 == r {print $2}' "$tmp/latencies" | sort -n |
        awk -v r="$r" -v h="$held" '{v[NR] = $1} END {
          p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
          printf "| %s | %d | %d | %d | %d | %d |\n", r, NR, p50, p99, v[NR], h }'
    done
    ;;
  pipeline)
    events=1000000 runs=3 mix=default days=90 batch=20000 persist_every=0
    while [ $# -gt 0 ]; do
      case "$1" in
        --events) events="$2" && shift 2 ;;
        --runs) runs="$2" && shift 2 ;;
        --mix) mix="$2" && shift 2 ;;
        --days) days="$2" && shift 2 ;;
        --batch) batch="$2" && shift 2 ;;
        --persist-every) persist_every="$2" && shift 2 ;;
        *)
          echo "usage: scripts/bench.sh pipeline [--events N] [--runs N] [--mix default|executions]" \
            "[--days N] [--batch N] [--persist-every N]" >&2
          exit 2
          ;;
      esac
    done
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$build/cmd/tally/tally" gen --mix "$mix" --events "$events" --end-day 2026-01-31 \
      --days "$days" -o "$tmp/events.ndjson" >&2
    builds=("$build")
    if [ -n "${BASE_BUILD:-}" ]; then
      cmake --build "$BASE_BUILD" -j"$(nproc)" --target pipeline_bench >/dev/null
      builds+=("$BASE_BUILD")
    fi
    for run in $(seq "$runs"); do
      for b in "${builds[@]}"; do
        echo "run $run, $b:"
        "$b/bench/pipeline_bench" "$tmp/events.ndjson" "$batch" "$tmp/db" "$persist_every" |
          tee -a "$tmp/results.$(echo "$b" | tr / _)"
      done
    done
    for b in "${builds[@]}"; do
      sed -n 's/.*cpu [0-9.]* s (\([0-9.]*\) us\/event).*/\1/p' "$tmp/results.$(echo "$b" | tr / _)" |
        sort -n | awk -v b="$b" '{v[NR] = $1} END {
          printf "median CPU per event, %s: %s us (%d runs)\n", b, v[int((NR + 1) / 2)], NR }'
    done
    ;;
esac
