#pragma once
// The engine behind GET /api/v1/workspaces/metrics (schemas/openapi.yaml).
//
//   tally::query::WorkspaceMetricsRequest req;
//   req.workspace_id = "8360bf61-...";
//   req.entity = tally::event::EntityKind::kAgent;
//   req.metric = tally::query::Metric::kExecutions;
//   req.group_by = tally::query::GroupBy::kDate;
//   req.granularity = tally::Granularity::kDay;
//   tally::Result<tally::query::WorkspaceMetricsResult> r =
//       tally::query::RunWorkspaceMetrics(store, clock, req);
//
// The request is expected to be validated already (lib/http does that and answers 422); the
// engine still refuses impossible combinations with kInvalidArgument instead of guessing.
// Thread-safe: any number of concurrent calls on one Store.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/calendar.h"
#include "common/clock.h"
#include "common/result.h"
#include "event/usage_event.h"

namespace tally::store {
class Store;
}

namespace tally::query {

enum class Metric : uint8_t { kExecutions, kCreated, kCopies, kShares, kAvgDuration };
enum class Aggregation : uint8_t { kCount, kSum, kAvg };
enum class GroupBy : uint8_t { kNone, kUser, kDate };
enum class OrderBy : uint8_t { kValue, kName, kDate };
enum class Period : uint8_t { k7d, k30d, k90d, kAll };

struct WorkspaceMetricsRequest {
  std::string workspace_id;
  event::EntityKind entity = event::EntityKind::kAgent;
  Metric metric = Metric::kExecutions;
  Aggregation aggregation = Aggregation::kCount;
  GroupBy group_by = GroupBy::kNone;
  std::optional<Granularity> granularity;  // required for kDate; echoed otherwise
  Period period = Period::k30d;
  std::optional<std::string> user_id;  // filters.user_id
  // Ordering of `rows`. When unset: value for group_by=user, date for group_by=date.
  std::optional<OrderBy> order_by;
  // Direction. When unset: descending, except ascending when the rows are ordered by date.
  std::optional<bool> descending;
  int limit = 10;  // 1..100; bounds group_by=user lists
};

struct MetricsRow {
  std::string user_id;    // group_by=user
  std::string user_name;  // group_by=user; latest profile name, "" when unknown
  std::string date;       // group_by=date: bucket label (YYYY-MM-DD, YYYY-WW or YYYY-MM)
  double value = 0;
};

struct WorkspaceMetricsResult {
  double total = 0;  // over the whole period (not only the returned rows)
  std::vector<MetricsRow> rows;
  DayNumber from = 0;  // meta.period, inclusive
  DayNumber to = 0;
};

Result<WorkspaceMetricsResult> RunWorkspaceMetrics(const store::Store& store, const Clock& clock,
                                                   const WorkspaceMetricsRequest& request);

// "executions" / "created" / "copies" / "shares" / "avg_duration", etc.
const char* MetricName(Metric m);
const char* AggregationName(Aggregation a);
const char* GroupByName(GroupBy g);          // "user" / "date"; "" for kNone
const char* GranularityName(Granularity g);  // "daily" / "weekly" / "monthly"

}  // namespace tally::query

namespace tally::query {

// True if the workspace has been seen in any event. Thread-safe.
bool WorkspaceKnown(const store::Store& store, std::string_view workspace_id);

}  // namespace tally::query
