#!/usr/bin/env bash
# Query load while ingest runs: `wrk` against each endpoint family of a tallyd that ingests a
# live stream at a fixed rate. Run through `scripts/bench.sh load [flags]`, which builds tally
# and tallyd first (BUILD_DIR as there).
#
#   --rate N           events/s streamed while the queries run (default 30000)
#   --history N        events of history ingested first (default 1000000)
#   --seconds S        wrk time per endpoint family (default 20)
#   --connections C    wrk connections (default 8; one wrk thread)
#   --families LIST    comma-separated subset of metrics,leaderboard,superagents,requests,events
#   --soak-minutes M   instead of one run per family: all families mixed for M minutes, tallyd's
#                      RSS sampled every 10 s (the soak; e.g. --soak-minutes 10)
#   --keep             keep the temporary directory (logs, data)
#   --check            a test, not a measurement: exit 1 unless every family answered without a
#                      single non-2xx response or socket error, tallyd consumed at least 90% of
#                      --rate meanwhile, and, once the stream stops, tallyd consumes every event
#                      written (history + stream + POSTs it acknowledged) and applies each exactly
#                      once (none rejected, none a duplicate, none trimmed unread). The test
#                      suite runs it as a short version (--history 200000 --seconds 5)
#
# What it does: `tally broker` (32 partitions) and tallyd with its defaults except
# --cache-ttl 0 (every query reaches the views; TALLYD_ARGS adds flags); the history (the
# executions mix: every event an agent.executed with organization, project, user and agent
# profiles, tokens, cost and credits; 20 workspaces, 5 organizations, 10,000 users, 90 days) is
# produced and consumed; then a stream of new events of the same mix starts at --rate, and each
# family gets --seconds of wrk: workspace metrics (rotating over workspaces, periods, group_by
# user/date), the leaderboard, Super Agents pages, the eleven request-analytics endpoints (every
# organization, and each one by organization-id), and POST /v1/events (one event per request).
# Prints one table row per family (requests/s, p50, p99, non-2xx responses, socket errors),
# tallyd's RSS (largest sample and VmHWM), and the ingest rate achieved meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build}"
rate=30000 history=1000000 seconds=20 connections=8 soak=0 keep=0 check=0
families_flag=metrics,leaderboard,superagents,requests,events
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate="$2"; shift 2 ;;
    --history) history="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --soak-minutes) soak="$2"; shift 2 ;;
    --families) families_flag="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --check) check=1; shift ;;
    *) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || scripts/install-deps.sh
tally="$build/cmd/tally/tally"
tallyd="$build/cmd/tallyd/tallyd"
token="dev-token-change-me"  # config/keys.dev.toml's admin key

tmp="$(mktemp -d)"
pids=()
cleanup() {
  # tallyd first, while the broker still answers its last commits and close.
  [ -n "${tallyd_pid:-}" ] && kill "$tallyd_pid" 2>/dev/null && wait "$tallyd_pid" 2>/dev/null
  [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

"$tally" broker --addr-file "$tmp/broker.addr" >"$tmp/broker.log" 2>&1 &
pids+=($!)
# Waits (polling every $2 s) until the command after the first two arguments succeeds; after
# $1 s it gives up, names what it waited for and fails (the logs are kept).
wait_for() {
  local limit="$1" step="$2" end=$(($(date +%s) + $1))
  shift 2
  until "$@"; do
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "load: gave up after ${limit} s waiting for: $*" >&2
      keep=1
      exit 1
    fi
    sleep "$step"
  done
}
wait_for 30 0.05 test -s "$tmp/broker.addr"
"$tallyd" --brokers "$(cat "$tmp/broker.addr")" --data-dir "$tmp/data" --listen 127.0.0.1:0 \
  --port-file "$tmp/port" --keys config/keys.dev.toml --cache-ttl 0 ${TALLYD_ARGS:-} \
  >"$tmp/tallyd.log" 2>&1 &
tallyd_pid=$!
pids+=("$tallyd_pid")
wait_for 60 0.05 test -s "$tmp/port"
addr="$(cat "$tmp/port")"
wait_for 60 0.05 curl -sf -o /dev/null "http://$addr/readyz"

# The sum of a metric's samples (0 when absent).
metric() {
  curl -s "http://$addr/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { n += $2 }
    END { printf "%d", n }'
}
consumed() { metric tally_events_consumed_total; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$tallyd_pid/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$tallyd_pid/status"; }

echo "history: $history events of the executions mix" >&2
gen=("$tally" gen --mix executions --seed 42)
"${gen[@]}" --events "$history" | "$tally" produce --broker-addr-file "$tmp/broker.addr" \
  2>"$tmp/produce-history.log"
history_consumed() { [ "$(consumed)" -ge "$history" ]; }
wait_for 600 0.5 history_consumed
echo "history consumed; tallyd RSS $(( $(rss_kib) / 1024 )) MiB" >&2

# The workspaces and organizations of the stream, and the date ranges asked.
mapfile -t workspaces < <("${gen[@]}" --events 5000 | grep -o '"workspace_id":"[^"]*"' |
  cut -d'"' -f4 | sort -u)
# Each workspace's organization, for the events POSTed into it (spread over every workspace, as
# many clients' would be).
mapfile -t ws_orgs < <("${gen[@]}" --events 5000 |
  sed -n 's/.*"organization_id":"\([^"]*\)","workspace_id":"\([^"]*\)".*/{"\2", "\1"},/p' |
  sort -u)
orgs=(org_1 org_2 org_3 org_4 org_5)
today="$(date -u +%F)"
d30="$(date -u -d "$today - 29 days" +%F)"
d90="$(date -u -d "$today - 89 days" +%F)"

# Lua scripts for wrk: each request takes the next entry of a list (path, header value).
lua_get() {  # $1 file, then lines "PATH<TAB>ORGANIZATION-OR-EMPTY" on stdin
  {
    echo 'local list = {'
    while IFS=$'\t' read -r path org; do printf '  {"%s", "%s"},\n' "$path" "$org"; done
    echo '}'
    cat <<EOF
local i = 0
request = function()
  i = i + 1
  local e = list[(i % #list) + 1]
  local h = { ["Authorization"] = "Bearer $token" }
  if e[2] ~= "" then h["organization-id"] = e[2] end
  return wrk.format("GET", e[1], h)
end
EOF
  } >"$1"
}
{
  for ws in "${workspaces[@]}"; do
    for period in 7d 30d 90d; do
      base="/api/v1/workspaces/metrics?workspace_uuid=$ws&entity=agents&aggregation=count&period=$period"
      printf '%s\t\n' "$base&metric=executions"
      printf '%s\t\n' "$base&metric=executions&group_by=user"
      printf '%s\t\n' "$base&metric=executions&group_by=date&granularity=daily"
    done
  done
} | lua_get "$tmp/metrics.lua"
for ws in "${workspaces[@]}"; do
  printf '%s\t\n' "/api/agents/leaderboard?workspace_uuid=$ws&date_from=$d30&date_to=$today"
  printf '%s\t\n' "/api/agents/leaderboard?workspace_uuid=$ws&date_from=$d90&date_to=$today"
done | lua_get "$tmp/leaderboard.lua"
for ws in "${workspaces[@]}"; do
  printf '%s\t\n' "/api/v1/monitoring/$ws/superagents?limit=50&from=$d30&to=$today"
  printf '%s\t\n' "/api/v1/monitoring/$ws/superagents?limit=50&from=$d90&to=$today&sort=-total_credits_consumed"
done | lua_get "$tmp/superagents.lua"
for e in total-active-users total-active-projects total-active-agents average-requests-per-day \
  average-users-per-project average-users-per-agent top-10-agents-by-requests \
  top-10-users-by-requests top-10-agents-by-tokens total-requests-per-day agent-usage-per-user; do
  for org in "" "${orgs[@]}"; do
    printf '%s\t%s\n' "/v1/analytics/requests/$e?startDate=$d30&endDate=$today" "$org"
  done
done | lua_get "$tmp/requests.lua"
run_id="$(date +%s)"
cat >"$tmp/events.lua" <<EOF
local n = 0
local scopes = { ${ws_orgs[*]} }
request = function()
  n = n + 1
  local s = scopes[(n % #scopes) + 1]
  local body = string.format('{"specversion":"1.0","id":"load-$run_id-%d","source":"load/wrk",'
    .. '"type":"agent.executed","time":"${today}T00:00:00Z","data":{"organization_id":"%s",'
    .. '"workspace_id":"%s","project_id":"proj_1","user":{"id":"u_1"},'
    .. '"agent":{"id":"agent_load","name":"Load agent"},"tokens":100,"cost_usd":0.001,'
    .. '"message_credits":1}}', n, s[2], s[1])
  return wrk.format("POST", "/v1/events", { ["Authorization"] = "Bearer $token",
    ["Content-Type"] = "application/cloudevents+json" }, body)
end
EOF
# Every script keeps the first non-2xx answer (status and body) in FAMILY-first-error.txt.
for f in metrics leaderboard superagents requests events; do
  cat >>"$tmp/$f.lua" <<EOF
local kept = false
response = function(status, headers, body)
  if status >= 300 and not kept then
    kept = true
    local out = io.open("$tmp/$f-first-error.txt", "w")
    out:write(status, " ", body)
    out:close()
  end
end
EOF
done
# The live stream: new events (ids after the history's) at --rate, for as long as needed.
IFS=, read -r -a families <<<"$families_flag"
if [ "$soak" -gt 0 ]; then total=$((soak * 60 + 60)); else total=$((${#families[@]} * (seconds + 5) + 60)); fi
"${gen[@]}" --first-id "$history" --events $((rate * total)) |
  "$tally" produce --broker-addr-file "$tmp/broker.addr" --rate "$rate" \
    2>"$tmp/produce-stream.log" &
stream_pid=$!
pids+=("$stream_pid")
sleep 5  # the stream settles

max_rss=0
failures=()
sample_rss() { local r; r="$(rss_kib)"; [ "$r" -gt "$max_rss" ] && max_rss="$r"; echo "$r"; }

# "STATUS:COUNT ..." of tallyd's non-2xx answers so far (tally_http_requests_total).
statuses() {
  curl -s "http://$addr/metrics" | awk -F'"' '/^tally_http_requests_total\{/ {
      for (i = 2; i < NF; i += 2) if ($(i - 1) ~ /status=$/) st = $i
      split($0, v, " "); if (st !~ /^2/) n[st] += v[2] }
    END { for (k in n) printf "%s:%d ", k, n[k] }'
}

# wrk output -> "requests/s p50 p99 non2xx socket_errors"
summarize() {
  awk '
    /Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
    /Non-2xx or 3xx responses:/ { bad = $5 }
    /Socket errors:/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
    END { printf "%s %s %s %d %d\n", rps, p50, p99, bad + 0, err + 0 }' "$1"
}

echo "commit: $(git rev-parse --short HEAD 2>/dev/null)  machine: $(nproc) vCPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "tallyd --cache-ttl 0; stream --rate $rate; wrk -t1 -c$connections"
if [ "$soak" -gt 0 ]; then
  # The soak: the families in turn, a minute each, for --soak-minutes; RSS every 10 s.
  c0="$(consumed)"; t0="$(date +%s)"
  end=$((t0 + soak * 60))
  i=0
  echo "minute | family | requests/s | p50 | p99 | non-2xx | socket errors | RSS MiB"
  while [ "$(date +%s)" -lt "$end" ]; do
    f="${families[$((i % ${#families[@]}))]}"
    wrk -t1 -c"$connections" -d60s --latency -s "$tmp/$f.lua" "http://$addr" >"$tmp/wrk-soak-$i.txt" 2>&1 &
    w=$!
    for _ in 1 2 3 4 5 6; do sleep 10; sample_rss >/dev/null; done
    wait "$w"
    read -r rps p50 p99 bad err < <(summarize "$tmp/wrk-soak-$i.txt")
    echo "$((i + 1)) | $f | $rps | $p50 | $p99 | $bad | $err | $(( $(rss_kib) / 1024 ))"
    i=$((i + 1))
  done
  c1="$(consumed)"; t1="$(date +%s)"
else
  echo "family | requests/s | p50 | p99 | non-2xx | socket errors"
  c0="$(consumed)"; t0="$(date +%s)"
  for f in "${families[@]}"; do
    wrk -t1 -c"$connections" -d"${seconds}s" --latency -s "$tmp/$f.lua" "http://$addr" >"$tmp/wrk-$f.txt" 2>&1 &
    w=$!
    while kill -0 "$w" 2>/dev/null; do sample_rss >/dev/null; sleep 1; done
    wait "$w" || true
    read -r rps p50 p99 bad err < <(summarize "$tmp/wrk-$f.txt")
    echo "$f | $rps | $p50 | $p99 | $bad | $err"
    if [ "$bad" -gt 0 ]; then
      echo "  tallyd's non-2xx answers so far, by status: $(statuses)"
      echo "  the first: $(head -c 600 "$tmp/$f-first-error.txt" 2>/dev/null)"
      failures+=("$f: $bad non-2xx responses")
    fi
    [ "$err" -gt 0 ] && failures+=("$f: $err socket errors")
  done
  c1="$(consumed)"; t1="$(date +%s)"
fi
achieved=$(( (c1 - c0) / (t1 - t0) ))
echo "ingest meanwhile: $achieved events/s consumed (stream --rate $rate)"
echo "tallyd RSS: largest sample $((max_rss / 1024)) MiB, VmHWM $(( $(hwm_kib) / 1024 )) MiB"
[ "$check" = 1 ] || exit 0

# The check: nothing refused or lost under load, and every event counted once.
[ "$achieved" -ge $((rate * 9 / 10)) ] ||
  failures+=("ingest kept $achieved events/s, under 90% of --rate $rate")
kill -TERM "$stream_pid"
stream_status=0
wait "$stream_pid" || stream_status=$?
[ "$stream_status" = 130 ] ||  # 130: stopped by the signal, everything sent delivered
  failures+=("the stream's producer failed: $(tail -3 "$tmp/produce-stream.log")")
streamed="$(sed -n 's/^produced \([0-9]*\) messages.*/\1/p' "$tmp/produce-stream.log")"
posted="$(metric tally_http_events_published_total)"
written=$((history + ${streamed:-0} + posted))
deadline=$(($(date +%s) + 120))
while [ "$(consumed)" -lt "$written" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.5; done
sleep 1  # anything beyond what was written would show now
got="$(consumed)" applied="$(metric tally_events_applied_total)"
echo "written: $history history + ${streamed:-?} streamed + $posted POSTed = $written;" \
  "consumed $got, applied $applied"
[ "$got" -eq "$written" ] || failures+=("consumed $got events of the $written written")
[ "$applied" -eq "$written" ] || failures+=("applied $applied events of the $written written")
for m in tally_events_duplicate_total tally_events_rejected_total tally_log_trimmed_total \
  tally_http_events_publish_failed_total; do
  v="$(metric "$m")"
  [ "$v" -eq 0 ] || failures+=("$m is $v")
done
if [ "${#failures[@]}" -gt 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}" >&2
  keep=1  # the logs tell why
  exit 1
fi
echo "check passed: no error responses, nothing lost, nothing counted twice"
