#include "http/service.h"

#include <initializer_list>
#include <memory>
#include <mutex>

#include "common/json_writer.h"
#include "common/saturating.h"

namespace tally::http {

namespace {

// Counts how many of a backend's functions are set.
int PartsOf(std::initializer_list<bool> parts) {
  int n = 0;
  for (bool p : parts) n += p ? 1 : 0;
  return n;
}

// kInvalidArgument naming the first missing or inconsistent dependency.
Status CheckDeps(const ServiceDeps& deps) {
  if (!deps.keys) return Fail(ErrorCode::kInvalidArgument, "http service: keys missing", "keys");
  if (!deps.metrics) {
    return Fail(ErrorCode::kInvalidArgument, "http service: metrics registry missing", "metrics");
  }
  if (!deps.clock) return Fail(ErrorCode::kInvalidArgument, "http service: clock missing", "clock");
  if (!deps.workspace_metrics.run || !deps.workspace_metrics.workspace_known) {
    return Fail(ErrorCode::kInvalidArgument, "http service: workspace metrics backend missing",
                "workspace_metrics");
  }
  const int leaderboard_parts = PartsOf({static_cast<bool>(deps.leaderboard.run),
                                         static_cast<bool>(deps.leaderboard.resolve_organization),
                                         static_cast<bool>(deps.leaderboard.workspace_known)});
  if (leaderboard_parts != 0 && leaderboard_parts != 3) {
    return Fail(ErrorCode::kInvalidArgument, "http service: leaderboard backend incomplete",
                "leaderboard");
  }
  if (PartsOf({static_cast<bool>(deps.superagents.run),
               static_cast<bool>(deps.superagents.workspace_known)}) == 1) {
    return Fail(ErrorCode::kInvalidArgument, "http service: superagents backend incomplete",
                "superagents");
  }
  if (deps.cache_ttl_s < 0) {
    return Fail(ErrorCode::kInvalidArgument, "http service: cache_ttl_s must be >= 0",
                "cache_ttl_s");
  }
  const int requests_parts = PartsOf({static_cast<bool>(deps.requests.run),
                                      static_cast<bool>(deps.requests.organization_known),
                                      static_cast<bool>(deps.requests.all_organizations)});
  if (requests_parts != 0 && requests_parts != 3) {
    return Fail(ErrorCode::kInvalidArgument, "http service: requests backend incomplete",
                "requests");
  }
  if (deps.events.publish) {
    const EventsOptions& eo = deps.events_options;
    if (eo.max_body_bytes == 0 || eo.max_events == 0 || eo.max_concurrent_publishes < 0) {
      return Fail(ErrorCode::kInvalidArgument,
                  "http service: events limits must be positive (max_concurrent_publishes >= 0)",
                  "events_options");
    }
  }
  if (static_cast<bool>(deps.admin.switch_db) != static_cast<bool>(deps.admin.snapshot)) {
    return Fail(ErrorCode::kInvalidArgument, "http service: admin backend incomplete", "admin");
  }
  return Ok();
}

// GET /healthz, /readyz and /metrics (no auth).
void AddOperationalRoutes(Router* router, ReadyFn ready, MetricsRegistry* registry) {
  router->Add("GET", "/healthz",
              [](const Request&) { return JsonResponse(200, R"({"status":"ok"})"); });

  router->Add("GET", "/readyz", [ready = std::move(ready)](const Request&) {
    ReadyState state = ready ? ready() : ReadyState{true, {}};
    std::string body;
    JsonWriter w(&body);
    w.BeginObject();
    w.Key("status").String(state.ready ? "ready" : "not_ready");
    if (!state.details_json.empty()) {
      w.Key("details").Raw(state.details_json);
    }
    w.EndObject();
    return JsonResponse(state.ready ? 200 : 503, std::move(body));
  });

  // Saturated sums happen anywhere (folds, RocksDB merges, queries): the process-wide count is
  // copied into the registry when it is rendered.
  Counter* saturated = registry->GetCounter(
      "tally_sum_saturated_total",
      "Sums clamped at their largest value (INT64_MAX or the largest finite double) instead of "
      "overflowing, in folds, merge operators and queries.");
  auto saturated_mu = std::make_shared<std::mutex>();
  router->Add("GET", "/metrics", [registry, saturated, saturated_mu](const Request&) {
    {
      std::lock_guard lock(*saturated_mu);
      const double d = static_cast<double>(SaturatedSums()) - saturated->Value();
      if (d > 0) saturated->Add(d);
    }
    Response r;
    r.status = 200;
    r.content_type = "text/plain; version=0.0.4";
    r.body = registry->RenderPrometheus();
    return r;
  });
}

// The optional API routes, each when its backend is set (CheckDeps has accepted `deps`).
void AddOptionalRoutes(Router* router, ServiceDeps* deps) {
  if (deps->leaderboard.run) {
    auto leaderboard =
        std::make_shared<const LeaderboardHandler>(deps->keys, std::move(deps->leaderboard));
    router->Add("GET", "/api/agents/leaderboard",
                [leaderboard](const Request& r) { return leaderboard->Handle(r); });
  }
  if (deps->superagents.run) {
    auto superagents = std::make_shared<const SuperagentsHandler>(
        deps->keys, std::move(deps->superagents), deps->superagents_options);
    router->Add("GET", "/api/v1/monitoring/{workspace_id}/superagents",
                [superagents](const Request& r) { return superagents->Handle(r); });
  }
  if (deps->requests.run) {
    auto requests = std::make_shared<const RequestsHandler>(deps->keys, std::move(deps->requests));
    router->Add("GET", "/v1/analytics/requests/{metric}",
                [requests](const Request& r) { return requests->Handle(r); });
  }
  if (deps->events.publish) {
    auto events = std::make_shared<const EventsHandler>(deps->keys, std::move(deps->events),
                                                        deps->events_options, deps->metrics);
    router->Add("POST", "/v1/events", [events](const Request& r) { return events->Handle(r); });
  }
  if (deps->admin.switch_db) {
    auto admin = std::make_shared<const AdminHandler>(deps->keys, std::move(deps->admin));
    router->Add("POST", "/admin/v1/switch", [admin](const Request& r) { return admin->Switch(r); });
    router->Add("POST", "/admin/v1/snapshot",
                [admin](const Request& r) { return admin->Snapshot(r); });
  }
}

}  // namespace

Result<std::shared_ptr<const Router>> BuildRouter(ServiceDeps deps) {
  if (Status s = CheckDeps(deps); !s) return std::unexpected(s.error());
  auto router =
      std::make_shared<Router>(deps.metrics, RouterOptions{.server_timing = deps.server_timing});
  AddOperationalRoutes(router.get(), std::move(deps.ready), deps.metrics);
  AddOptionalRoutes(router.get(), &deps);

  WorkspaceMetricsOptions options;
  options.cache_ttl_s = deps.cache_ttl_s;
  options.cache_max_bytes = deps.cache_max_bytes;
  options.cache_max_entries = deps.cache_max_entries;
  auto metrics_handler = std::make_shared<const WorkspaceMetricsHandler>(
      deps.keys, std::move(deps.workspace_metrics), deps.clock, options, deps.metrics);
  Handler handle = [metrics_handler](const Request& r) { return metrics_handler->Handle(r); };
  router->Add("GET", "/api/v1/workspaces/metrics", handle);
  router->Add("POST", "/api/v1/workspaces/metrics", handle);

  return std::shared_ptr<const Router>(std::move(router));
}

}  // namespace tally::http
