#pragma once
// Builds tally's whole HTTP API (the Router) from its dependencies, so cmd/tallyd only wires.
//
//   tally::http::ServiceDeps deps;
//   deps.keys = std::make_shared<const tally::http::KeyStore>(std::move(*keys));
//   deps.metrics = &registry;
//   deps.clock = &clock;
//   deps.workspace_metrics = {.run = ..., .workspace_known = ...};
//   deps.leaderboard = {.run = ..., .resolve_organization = ..., .workspace_known = ...};
//   deps.superagents = {.run = ..., .workspace_known = ...};
//   deps.ready = [&] { return tally::http::ReadyState{consumer.Caught(), R"({"lag":0})"}; };
//   auto router = tally::http::BuildRouter(std::move(deps));
//   if (!router) die(router.error().message);
//   auto server = tally::http::Server::Start(options, *router);
//
// Routes: GET /healthz, GET /readyz, GET /metrics (no auth), GET and POST
// /api/v1/workspaces/metrics, GET /api/agents/leaderboard,
// GET /api/v1/monitoring/{workspace_id}/superagents (API key, see auth.h), POST /v1/events
// (events_handler.h) when deps.events is set.

#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/result.h"
#include "http/admin_handler.h"
#include "http/auth.h"
#include "http/events_handler.h"
#include "http/leaderboard_handler.h"
#include "http/requests_handler.h"
#include "http/router.h"
#include "http/superagents_handler.h"
#include "http/workspace_metrics_handler.h"

namespace tally::http {

struct ReadyState {
  bool ready = false;
  // Pre-rendered JSON value (usually an object) with details, sent as "details"; may be empty.
  std::string details_json;
};
using ReadyFn = std::function<ReadyState()>;

struct ServiceDeps {
  std::shared_ptr<const KeyStore> keys;  // required
  MetricsRegistry* metrics = nullptr;    // required; must outlive the router
  const Clock* clock = nullptr;          // required; must outlive the router
  MetricsBackend workspace_metrics;      // both functions required
  // All three functions, or none (then GET /api/agents/leaderboard is not routed: 404).
  LeaderboardBackend leaderboard;
  // Both functions, or none (then GET /api/v1/monitoring/{workspace_id}/superagents is not
  // routed: 404).
  SuperagentsBackend superagents;
  SuperagentsOptions superagents_options;  // cursor result-set cache
  // All three functions, or none (then GET /v1/analytics/requests/* is not routed: 404).
  RequestsBackend requests;
  // Both functions, or none (then POST /admin/v1/switch and /admin/v1/snapshot are 404).
  AdminBackend admin;
  // POST /v1/events (HTTP ingest) when `events.publish` is set; not routed (404) otherwise.
  EventsBackend events;
  EventsOptions events_options;
  ReadyFn ready;                       // optional: absent = always ready
  int cache_ttl_s = 300;               // workspace-metrics cache; 0 disables
  size_t cache_max_bytes = 64u << 20;  // its bound in bytes (WorkspaceMetricsOptions); 0 disables
  size_t cache_max_entries = 10000;
  // Every handled response carries a Server-Timing header (RouterOptions::server_timing).
  bool server_timing = false;
};

// kInvalidArgument naming the missing dependency (also for a partly set leaderboard or
// superagents backend). The router is immutable and thread-safe.
//   /healthz -> 200 {"status":"ok"}
//   /readyz  -> 200 {"status":"ready","details":...} or 503 {"status":"not_ready",...}
//   /metrics -> 200 Prometheus text (text/plain; version=0.0.4)
Result<std::shared_ptr<const Router>> BuildRouter(ServiceDeps deps);

}  // namespace tally::http
