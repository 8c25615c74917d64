#!/usr/bin/env bash
# The run command: installs what is missing, builds, starts tallyd on its embedded Kafka broker
# and streams realistic synthetic events into it. Ctrl-C stops everything.
#   scripts/demo.sh [--port 8080] [--events 200000]
set -euo pipefail
cd "$(dirname "$0")/.."
port=8080
events=200000
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

scripts/build.sh
data=data/demo
mkdir -p "$data"
rm -f "$data/broker.addr" "$data/port"
token="dev-token-change-me"   # the development admin key of config/keys.dev.toml

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

build/cmd/tallyd/tallyd --brokers embedded --data-dir "$data" --listen "127.0.0.1:$port" \
  --port-file "$data/port" --keys config/keys.dev.toml --cache-ttl 5 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$data/port" ] && [ -s "$data/broker.addr" ] && break; sleep 0.1; done
[ -s "$data/port" ] || { echo "tallyd did not start; see the log above" >&2; exit 1; }
addr="$(cat "$data/port")"
for _ in $(seq 1 100); do curl -sf "http://$addr/readyz" >/dev/null && break; sleep 0.2; done

echo "demo: generating $events events (120 days ending today, 20 workspaces)..." >&2
build/cmd/tally/tally gen --events "$events" --days 120 --duplicates 0.01 --malformed 0.001 \
  -o "$data/events.ndjson"
# As fast as tallyd takes them: on the embedded broker `tally produce` waits for tallyd rather
# than let the broker trim events it has not read yet.
build/cmd/tally/tally produce --broker-addr-file "$data/broker.addr" "$data/events.ndjson"
# Keep a live stream going: today's events, a few hundred per second.
(build/cmd/tally/tally gen --seed "$RANDOM$RANDOM" --events 100000000 --days 1 |
  build/cmd/tally/tally produce --broker-addr-file "$data/broker.addr" --rate 200 2>/dev/null) &
pids+=($!)

ws="$(grep -m1 -o '"workspace_id":"[^"]*"' "$data/events.ndjson" | cut -d'"' -f4 || true)"
org="$(grep -m1 -o '"organization_id":"[^"]*"' "$data/events.ndjson" | cut -d'"' -f4 || true)"
since="$(date -u -d '-89 days' +%Y-%m-%d)"
today="$(date -u +%Y-%m-%d)"
echo "demo: waiting for tallyd to catch up..." >&2
for _ in $(seq 1 300); do
  consumed="$(curl -s "http://$addr/metrics" | awk '/^tally_events_consumed_total/ {print $2}')"
  [ "${consumed:-0}" -ge "$events" ] 2>/dev/null && break
  sleep 0.5
done

cat <<MSG

tally is running.
  HTTP API:   http://$addr
  API token:  $token   (development admin key from config/keys.dev.toml)
  Workspace:  $ws

Try:
  curl -s 'http://$addr/api/v1/workspaces/metrics?workspace_uuid=$ws&entity=agents&metric=executions&aggregation=count&group_by=date&granularity=weekly&period=90d' -H 'Authorization: Bearer $token'
  curl -s 'http://$addr/api/v1/workspaces/metrics?workspace_uuid=$ws&entity=workflows&metric=executions&aggregation=count&group_by=user&limit=5' -H 'Authorization: Bearer $token'
  curl -s -X POST 'http://$addr/api/v1/workspaces/metrics' -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' -d '{"workspace_uuid":"$ws","entity":"workflows","metric":"avg_duration","aggregation":"avg","filters":{"period":"30d"}}'
  curl -s 'http://$addr/api/agents/leaderboard?workspace_uuid=$ws&limit=5' -H 'Authorization: Bearer $token'
  curl -s 'http://$addr/v1/analytics/requests/top-10-agents-by-requests?startDate=$since&endDate=$today' -H 'Authorization: Bearer $token' -H 'organization-id: $org'
  curl -s 'http://$addr/v1/analytics/requests/total-active-users?startDate=$since&endDate=$today' -H 'Authorization: Bearer $token'
  curl -s http://$addr/metrics | grep ^tally_events

Press Ctrl-C to stop.
MSG
wait "${pids[0]}"
