#include "http/workspace_metrics_handler.h"

#include "common/calendar.h"
#include "common/json_writer.h"
#include "http/error_mapping.h"
#include "http/internal/response_cache.h"
#include "http/workspace_metrics_request.h"

namespace tally::http {

WorkspaceMetricsHandler::WorkspaceMetricsHandler(std::shared_ptr<const KeyStore> keys,
                                                 MetricsBackend backend, const Clock* clock,
                                                 WorkspaceMetricsOptions options,
                                                 MetricsRegistry* metrics)
    : keys_(std::move(keys)), backend_(std::move(backend)), clock_(clock), options_(options) {
  internal::ResponseCacheOptions cache_options;
  cache_options.ttl_ms = static_cast<int64_t>(options.cache_ttl_s) * 1000;
  cache_options.max_bytes = options.cache_max_bytes;
  cache_options.max_entries = options.cache_max_entries;
  if (metrics) {
    const char* help = "Workspace-metrics response cache lookups.";
    cache_hits_ = metrics->GetCounter("tally_http_metrics_cache_total", help, {{"result", "hit"}});
    cache_misses_ =
        metrics->GetCounter("tally_http_metrics_cache_total", help, {{"result", "miss"}});
    cache_options.bytes_gauge = metrics->GetGauge(
        "tally_http_metrics_cache_bytes",
        "Bytes held by the workspace-metrics response cache (keys, bodies, bookkeeping).");
    cache_options.entries_gauge = metrics->GetGauge(
        "tally_http_metrics_cache_entries", "Entries of the workspace-metrics response cache.");
  }
  cache_ = std::make_unique<internal::ResponseCache>(cache_options);
}

WorkspaceMetricsHandler::~WorkspaceMetricsHandler() = default;

Response WorkspaceMetricsHandler::Handle(const Request& request) const {
  std::optional<std::string_view> token = ExtractToken(request);
  const ApiKey* key = token ? keys_->Authenticate(*token) : nullptr;
  if (!key) return UnauthenticatedResponse();

  auto parsed = ParseWorkspaceMetricsRequest(request.body, request.query);
  if (!parsed) return ValidationErrorResponse(parsed.error());
  const query::WorkspaceMetricsRequest& req = *parsed;
  const std::string& ws = req.workspace_id;

  // A key that does not hold the workspace learns nothing about it, not even whether it exists.
  if (!key->admin && !key->IsMember(ws)) return ForbiddenResponse();
  if (!backend_.workspace_known(ws) && !keys_->AnyKeyNamesWorkspace(ws)) {
    return WorkspaceNotFoundResponse();
  }
  if (!key->admin && !key->CanOwn(ws)) return ForbiddenResponse();
  if (backend_.route) {
    if (auto elsewhere = backend_.route(request, ws)) return std::move(*elsewhere);
  }

  const int64_t now_ms = clock_->NowMillis();
  std::string cache_key;
  if (cache_->enabled()) {
    cache_key = CanonicalCacheKey(req);
    if (auto hit = cache_->Get(cache_key, now_ms)) {
      if (cache_hits_) cache_hits_->Add(1);
      return JsonResponse(200, std::move(hit->body));
    }
    if (cache_misses_) cache_misses_->Add(1);
  }

  Result<query::WorkspaceMetricsResult> result = backend_.run(req);
  if (!result) {
    if (result.error().code == ErrorCode::kInvalidArgument) {
      std::string field = result.error().field.empty() ? "request" : result.error().field;
      return ValidationErrorResponse({FieldError{std::move(field), result.error().message}});
    }
    return ErrorResponse(result.error());
  }
  std::string body = RenderWorkspaceMetrics(req, *result, now_ms, options_.cache_ttl_s);
  if (cache_->enabled()) cache_->Put(cache_key, body, now_ms);
  return JsonResponse(200, std::move(body));
}

std::string RenderWorkspaceMetrics(const query::WorkspaceMetricsRequest& request,
                                   const query::WorkspaceMetricsResult& result,
                                   int64_t cached_at_ms, int cache_ttl_s) {
  std::string out;
  out.reserve(256 + result.rows.size() * 64);
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("data").BeginObject();
  w.Key("entity").String(EntityApiName(request.entity));
  w.Key("metric").String(MetricApiName(request.metric));
  w.Key("aggregation").String(AggregationApiName(request.aggregation));
  w.Key("group_by");
  if (const char* g = GroupByApiName(request.group_by)) {
    w.String(g);
  } else {
    w.Null();
  }
  w.Key("granularity");
  if (request.granularity) {
    w.String(GranularityApiName(*request.granularity));
  } else {
    w.Null();
  }
  w.Key("total").Double(result.total);
  w.Key("results").BeginArray();
  if (request.group_by == query::GroupBy::kUser) {
    for (const query::MetricsRow& row : result.rows) {
      w.BeginObject();
      w.Key("user_id").String(row.user_id);
      w.Key("user_name").String(row.user_name);
      w.Key("value").Double(row.value);
      w.EndObject();
    }
  } else if (request.group_by == query::GroupBy::kDate) {
    for (const query::MetricsRow& row : result.rows) {
      w.BeginObject();
      w.Key("date").String(row.date);
      w.Key("value").Double(row.value);
      w.EndObject();
    }
  }
  w.EndArray();
  w.EndObject();
  w.Key("meta").BeginObject();
  w.Key("period").BeginObject();
  w.Key("from").String(FormatDay(result.from));
  w.Key("to").String(FormatDay(result.to));
  w.EndObject();
  w.Key("cached_at").String(FormatRfc3339Millis(cached_at_ms));
  w.Key("cache_ttl").Int(cache_ttl_s);
  w.Key("unit");
  if (request.metric == query::Metric::kAvgDuration) {
    w.String("milliseconds");
  } else {
    w.Null();
  }
  w.EndObject();
  w.EndObject();
  return out;
}

}  // namespace tally::http
