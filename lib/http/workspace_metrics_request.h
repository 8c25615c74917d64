#pragma once
// Parsing and validation of GET/POST /api/v1/workspaces/metrics
// (schemas/openapi.yaml) into a query::WorkspaceMetricsRequest. Pure functions.
//
//   auto req = tally::http::ParseWorkspaceMetricsRequest(request.body, request.query);
//   if (!req) return tally::http::ValidationErrorResponse(req.error());   // Laravel-shaped 422
//   run(*req);
//
// Sources: the JSON body (may be empty) and the query string, field by field; when a field is in
// both, the body wins. Query names: workspace_uuid, entity, metric, aggregation, group_by,
// granularity, filters[period] (or period), filters[user_id] (or user_id), order_by, order_dir,
// limit. In the body, `filters.period` / `filters.user_id` (a top-level `period` / `user_id` is
// accepted as an alias; `filters` wins). An empty string counts as null (as Laravel's
// ConvertEmptyStringsToNull does), so `group_by=` means "no grouping".
//
// Rules, in the order errors are reported (field: rule):
//   workspace_uuid: required, string, at most 255 characters
//   entity: required, agents | workflows
//   metric: required, executions | created | copies | shares | avg_duration;
//           avg_duration only with entity=workflows
//   aggregation: required, count | sum | avg
//   group_by: optional, user | date; not allowed with metric=avg_duration
//   granularity: daily | weekly | monthly; required when group_by=date (echoed otherwise)
//   filters: optional object (body only)
//   filters.period: 7d | 30d | 90d | all, default 30d
//   filters.user_id: string or integer (at most 255 characters)
//   order_by: value | name | date; name needs group_by=user, date needs group_by=date
//   order_dir: asc | desc
//   limit: integer 1..100, default 10 (JSON numbers with an integral value and numeric strings
//          are accepted, as Laravel's `integer` rule does)
// A body that is not valid JSON, or not a JSON object, gives the single error
// {"body": ["The request body must be a JSON object."]} (422, not 400: the client sent a
// request the API understood as HTTP but cannot process). A malformed number or an integer beyond
// 64 bits in the body gives {"body": ["The request body contains a number that is malformed or does
// not fit in 64 bits."]}.

#include <expected>
#include <string>
#include <string_view>

#include "http/error_mapping.h"
#include "http/router.h"
#include "query/workspace_metrics.h"

namespace tally::http {

// Returns the validated request, or every validation error (never an empty list).
// Thread-safe (uses a thread-local JSON parser).
std::expected<query::WorkspaceMetricsRequest, FieldErrors> ParseWorkspaceMetricsRequest(
    std::string_view body, const StringPairs& query);

// A key identifying the normalized request (every parsed field, unambiguous: free strings are
// length-prefixed). Equal requests give equal keys, whatever their source (body or query).
std::string CanonicalCacheKey(const query::WorkspaceMetricsRequest& request);

// API spellings: "agents"/"workflows", "executions"/.../"avg_duration", "count"/"sum"/"avg",
// "user"/"date" (nullptr for kNone), "daily"/"weekly"/"monthly", "7d"/"30d"/"90d"/"all".
const char* EntityApiName(event::EntityKind entity);
const char* MetricApiName(query::Metric metric);
const char* AggregationApiName(query::Aggregation aggregation);
const char* GroupByApiName(query::GroupBy group_by);
const char* GranularityApiName(Granularity granularity);
const char* PeriodApiName(query::Period period);

}  // namespace tally::http
