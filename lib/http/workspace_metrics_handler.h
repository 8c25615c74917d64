#pragma once
// GET/POST /api/v1/workspaces/metrics (schemas/openapi.yaml): auth, validation,
// response cache and rendering around an injected query backend.
//
//   tally::http::MetricsBackend backend{
//       .run = [&](const tally::query::WorkspaceMetricsRequest& r) {
//         return tally::query::RunWorkspaceMetrics(store, clock, r);
//       },
//       .workspace_known = [&](std::string_view ws) {
//         return tally::query::WorkspaceKnown(store, ws);
//       }};
//   auto handler = std::make_shared<tally::http::WorkspaceMetricsHandler>(keys, backend, &clock,
//                                                                         options, &registry);
//   router.Add("GET", "/api/v1/workspaces/metrics",
//              [handler](const tally::http::Request& r) { return handler->Handle(r); });
//
// Order of checks: 401 (no/unknown token) -> 422 (validation) -> 403 when a non-admin key does
// not hold the workspace at all (whether it exists is not revealed) -> 404
// {"error": "Workspace not found"} when no event and no key names the workspace -> 403 when the
// key holds the workspace only as member (owner needed; admin passes) -> cache -> backend.
// Authorization always happens before the cache lookup, so a key never reads another
// workspace's cached response.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/result.h"
#include "http/auth.h"
#include "http/router.h"
#include "query/workspace_metrics.h"

namespace tally::http {

namespace internal {
class ResponseCache;
}

// Where the handler gets its data. Both functions must be set and thread-safe.
struct MetricsBackend {
  // Runs a validated request. Errors are mapped with error_mapping.h (kInvalidArgument -> 422...).
  std::function<Result<query::WorkspaceMetricsResult>(const query::WorkspaceMetricsRequest&)> run;
  // True if the workspace has been seen in any event.
  std::function<bool(std::string_view)> workspace_known;
  // Optional: where the request is answered (unset: here). Checked before the response cache.
  ScopeRoute route;
};

struct WorkspaceMetricsOptions {
  int cache_ttl_s = 300;  // meta.cache_ttl; 0 disables the cache
  // Bound on the bytes of all cached responses (keys and bookkeeping included); oldest entries
  // are evicted beyond it, a response larger than 1/8 of it is not cached; 0 disables the cache.
  size_t cache_max_bytes = 64u << 20;
  size_t cache_max_entries = 10000;  // a second bound, on the number of entries
};

class WorkspaceMetricsHandler {
 public:
  // `keys` must be non-null. `clock` must be non-null and outlive the handler (read on every
  // request: cached_at and cache expiry). `metrics` may be null; otherwise it records
  // tally_http_metrics_cache_total{result="hit"|"miss"} and the gauges
  // tally_http_metrics_cache_bytes and tally_http_metrics_cache_entries (the cache's accounted
  // bytes and entry count, expired entries being swept on every lookup and store).
  WorkspaceMetricsHandler(std::shared_ptr<const KeyStore> keys, MetricsBackend backend,
                          const Clock* clock, WorkspaceMetricsOptions options = {},
                          MetricsRegistry* metrics = nullptr);
  ~WorkspaceMetricsHandler();
  WorkspaceMetricsHandler(const WorkspaceMetricsHandler&) = delete;
  WorkspaceMetricsHandler& operator=(const WorkspaceMetricsHandler&) = delete;

  // Thread-safe. Never throws on bad input (only on allocation failure).
  Response Handle(const Request& request) const;

 private:
  std::shared_ptr<const KeyStore> keys_;
  MetricsBackend backend_;
  const Clock* clock_;
  WorkspaceMetricsOptions options_;
  std::unique_ptr<internal::ResponseCache> cache_;
  Counter* cache_hits_ = nullptr;
  Counter* cache_misses_ = nullptr;
};

// The 200 body of the contract for `request` answered by `result`:
// {"data":{"entity","metric","aggregation","group_by","granularity","total","results":[...]},
//  "meta":{"period":{"from","to"},"cached_at","cache_ttl","unit"}}. Rows are {"user_id",
// "user_name","value"} for group_by=user and {"date","value"} for group_by=date. Pure.
std::string RenderWorkspaceMetrics(const query::WorkspaceMetricsRequest& request,
                                   const query::WorkspaceMetricsResult& result,
                                   int64_t cached_at_ms, int cache_ttl_s);

}  // namespace tally::http
