#include "query/workspace_metrics.h"

#include <algorithm>
#include <unordered_map>

#include "common/saturating.h"
#include "query/range.h"
#include "store/store.h"

namespace tally::query {
namespace {

using event::Action;
using event::EntityKind;
using store::Counters;
using store::Scope;

// Count and measure sum of one metric over some set of events.
struct Acc {
  int64_t count = 0;
  double sum = 0;
  void Add(const Acc& o) {  // saturating: a total never wraps or becomes infinite
    SatAddTo(&count, o.count);
    SatAddTo(&sum, o.sum);
  }
};

// How a metric reads a Counters row.
struct MetricReader {
  int count_field;
  int sum_field;  // -1: the measure is 1 per event (sum == count)
  Acc Read(const Counters& c) const {
    Acc a;
    a.count = c.i[count_field];
    a.sum = sum_field < 0 ? static_cast<double>(a.count) : c.d[sum_field];
    return a;
  }
};

MetricReader ReaderFor(EntityKind kind, Metric m) {
  switch (m) {
    case Metric::kExecutions:
      return {Counters::CountField(kind, Action::kExecuted), -1};
    case Metric::kCreated:
      return {Counters::CountField(kind, Action::kCreated), -1};
    case Metric::kCopies:
      return {Counters::CountField(kind, Action::kCopied), -1};
    case Metric::kShares:
      return {Counters::CountField(kind, Action::kShared), -1};
    case Metric::kAvgDuration:
      return {Counters::kWorkflowDurationCount, Counters::kWorkflowDurationSum};
  }
  return {0, -1};
}

double ValueOf(Aggregation a, const Acc& acc) {
  switch (a) {
    case Aggregation::kCount:
      return static_cast<double>(acc.count);
    case Aggregation::kSum:
      return acc.sum;
    case Aggregation::kAvg:
      return acc.count ? acc.sum / static_cast<double>(acc.count) : 0;
  }
  return 0;
}

class Engine {
 public:
  Engine(const store::ReadView& view, const WorkspaceMetricsRequest& req)
      : view_(view), req_(req), reader_(ReaderFor(req.entity, req.metric)) {
    if (req.user_id) {
      by_user_ = true;
      known_user_ = view.LookupUser(*req.user_id, &user_);
    }
  }

  // Sum over [from, to] of the scope (workspace, or the filtered user).
  Acc SumRange(DayNumber from, DayNumber to) {
    Acc acc;
    if (!known_user_) return acc;
    for (const BucketRef& b : DecomposeRange(from, to)) {
      Counters c;
      if (by_user_) {
        store::UserPackKey(req_.workspace_id, b.granularity, b.bucket, &key_);
        view_.AddUserCounters(key_, user_, &c);
        acc.Add(reader_.Read(c));
        continue;
      }
      store::CounterKey(Scope::kWorkspace, req_.workspace_id, b.granularity, b.bucket, {}, &key_);
      if (view_.AddCounters(key_, &c)) acc.Add(reader_.Read(c));
    }
    return acc;
  }

  // Per-user sums over [from, to], keyed by user dictionary index: one user pack per bucket.
  void SumByUser(DayNumber from, DayNumber to, std::unordered_map<uint32_t, Acc>* out) {
    for (const BucketRef& b : DecomposeRange(from, to)) {
      store::UserPackKey(req_.workspace_id, b.granularity, b.bucket, &key_);
      view_.ForEachUserCounters(key_, [&](uint32_t user, const Counters& c) {
        Acc a = reader_.Read(c);
        if (a.count == 0 && a.sum == 0) return;
        (*out)[user].Add(a);
      });
    }
  }

  std::string UserId(uint32_t index) {
    std::string id;
    view_.UserIdOf(index, &id);
    return id;
  }

  std::string UserName(std::string_view user_id) {
    store::UserProfileKey(req_.workspace_id, user_id, &key_);
    store::Record r;
    if (!view_.GetRecord(key_, &r)) return {};
    const store::Field* f = store::FindField(r, store::field::kUserName);
    return f ? f->value : std::string();
  }

 private:
  const store::ReadView& view_;
  const WorkspaceMetricsRequest& req_;
  MetricReader reader_;
  bool by_user_ = false;    // a user_id filter: read that user's entries of the user packs
  bool known_user_ = true;  // false: the filtered user has no data anywhere
  uint32_t user_ = 0;       // dictionary index of the filtered user
  std::string key_;
};

// First day with data of a workspace, if any.
std::optional<DayNumber> FirstDay(const store::ReadView& view, std::string_view ws) {
  std::string key;
  store::WorkspaceKey(ws, &key);
  store::Record r;
  if (!view.GetRecord(key, &r)) return std::nullopt;
  const store::Field* f = store::FindField(r, store::field::kWorkspaceFirstEvent);
  if (!f) return std::nullopt;
  return BucketDay(f->time_ms, ws);
}

}  // namespace

const char* MetricName(Metric m) {
  switch (m) {
    case Metric::kExecutions:
      return "executions";
    case Metric::kCreated:
      return "created";
    case Metric::kCopies:
      return "copies";
    case Metric::kShares:
      return "shares";
    case Metric::kAvgDuration:
      return "avg_duration";
  }
  return "";
}

const char* AggregationName(Aggregation a) {
  switch (a) {
    case Aggregation::kCount:
      return "count";
    case Aggregation::kSum:
      return "sum";
    case Aggregation::kAvg:
      return "avg";
  }
  return "";
}

const char* GroupByName(GroupBy g) {
  switch (g) {
    case GroupBy::kNone:
      return "";
    case GroupBy::kUser:
      return "user";
    case GroupBy::kDate:
      return "date";
  }
  return "";
}

const char* GranularityName(Granularity g) {
  switch (g) {
    case Granularity::kDay:
      return "daily";
    case Granularity::kWeek:
      return "weekly";
    case Granularity::kMonth:
      return "monthly";
  }
  return "";
}

bool WorkspaceKnown(const store::Store& store, std::string_view workspace_id) {
  std::string key;
  store::WorkspaceKey(workspace_id, &key);
  store::Record r;
  return store.NewReadView()->GetRecord(key, &r);
}

namespace {

// The total and one row per bucket of req.granularity over [out->from, out->to] (partial buckets
// clipped to the period), in the requested order.
void GroupByDate(Engine& engine, const WorkspaceMetricsRequest& req, WorkspaceMetricsResult* out) {
  const Granularity g = *req.granularity;
  Acc total;
  std::vector<std::pair<int32_t, double>> buckets;
  for (int32_t b = BucketOf(out->from, g); b <= BucketOf(out->to, g); ++b) {
    DayNumber lo = std::max(BucketFirstDay(b, g), out->from);
    DayNumber hi = std::min(BucketLastDay(b, g), out->to);
    Acc acc = engine.SumRange(lo, hi);
    total.Add(acc);
    buckets.emplace_back(b, ValueOf(req.aggregation, acc));
  }
  out->total = ValueOf(req.aggregation, total);
  const OrderBy order = req.order_by.value_or(OrderBy::kDate);
  const bool desc = req.descending.value_or(order != OrderBy::kDate);
  // By value: ties in date order. By date (or name, meaningless here): date order.
  std::sort(buckets.begin(), buckets.end(), [&](const auto& a, const auto& b) {
    if (order == OrderBy::kValue && a.second != b.second) {
      return desc ? a.second > b.second : a.second < b.second;
    }
    if (order == OrderBy::kValue) return a.first < b.first;
    return desc ? a.first > b.first : a.first < b.first;
  });
  out->rows.reserve(buckets.size());
  for (const auto& [b, v] : buckets) {
    MetricsRow row;
    row.date = FormatBucket(b, g);
    row.value = v;
    out->rows.push_back(std::move(row));
  }
}

// The total and the first req.limit users over [out->from, out->to] (or req.user_id alone), in
// the requested order with ties by user id.
void GroupByUser(Engine& engine, const store::ReadView& view, const WorkspaceMetricsRequest& req,
                 WorkspaceMetricsResult* out) {
  std::unordered_map<uint32_t, Acc> per_user;
  per_user.reserve(1024);
  if (req.user_id) {
    uint32_t index;
    Acc a = engine.SumRange(out->from, out->to);
    if ((a.count != 0 || a.sum != 0) && view.LookupUser(*req.user_id, &index)) {
      per_user.emplace(index, a);
    }
  } else {
    engine.SumByUser(out->from, out->to, &per_user);
  }
  struct Item {
    uint32_t index;
    double value;
    std::string user_id;  // resolved lazily: only rows that are returned or tie for the cut
    std::string name;     // only for order_by=name
  };
  std::vector<Item> items;
  items.reserve(per_user.size());
  Acc total;
  for (const auto& [index, acc] : per_user) {
    total.Add(acc);
    items.push_back({index, ValueOf(req.aggregation, acc), {}, {}});
  }
  out->total = ValueOf(req.aggregation, total);
  const OrderBy order = req.order_by.value_or(OrderBy::kValue);
  const bool desc = req.descending.value_or(true);
  const size_t n = std::min(items.size(), static_cast<size_t>(req.limit));
  // Rows are ordered by value (or name), ties by user id ascending, so a page is
  // deterministic and the same after a rebuild. User ids are fetched only where needed.
  auto user_less = [](const Item& a, const Item& b) { return a.user_id < b.user_id; };
  if (order == OrderBy::kName) {
    for (Item& it : items) {
      it.user_id = engine.UserId(it.index);
      it.name = engine.UserName(it.user_id);
    }
    std::sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
      if (a.name != b.name) return desc ? a.name > b.name : a.name < b.name;
      return user_less(a, b);
    });
  } else {
    auto better = [&](const Item& a, const Item& b) {
      return desc ? a.value > b.value : a.value < b.value;
    };
    std::sort(items.begin(), items.end(), better);
    if (n > 0) {
      // Everything tied with the last returned row competes on user id.
      const double cut = items[n - 1].value;
      size_t lo = n - 1, hi = n;
      while (lo > 0 && items[lo - 1].value == cut) --lo;
      while (hi < items.size() && items[hi].value == cut) ++hi;
      for (size_t i = 0; i < hi; ++i) items[i].user_id = engine.UserId(items[i].index);
      for (size_t i = 0; i < lo;) {  // ties inside the page
        size_t j = i + 1;
        while (j < lo && items[j].value == items[i].value) ++j;
        std::sort(items.begin() + i, items.begin() + j, user_less);
        i = j;
      }
      std::sort(items.begin() + lo, items.begin() + hi, user_less);
    }
  }
  out->rows.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    MetricsRow row;
    row.user_name =
        order == OrderBy::kName ? std::move(items[i].name) : engine.UserName(items[i].user_id);
    row.user_id = std::move(items[i].user_id);
    row.value = items[i].value;
    out->rows.push_back(std::move(row));
  }
}

}  // namespace

Result<WorkspaceMetricsResult> RunWorkspaceMetrics(const store::Store& store, const Clock& clock,
                                                   const WorkspaceMetricsRequest& req) {
  if (req.metric == Metric::kAvgDuration) {
    if (req.entity != EntityKind::kWorkflow) {
      return Fail(ErrorCode::kInvalidArgument,
                  "The avg_duration metric is only available for workflows.", "metric");
    }
    if (req.group_by != GroupBy::kNone) {
      return Fail(ErrorCode::kInvalidArgument, "The avg_duration metric does not support grouping.",
                  "group_by");
    }
  }
  if (req.group_by == GroupBy::kDate && !req.granularity) {
    return Fail(ErrorCode::kInvalidArgument,
                "The granularity field is required when group by is date.", "granularity");
  }
  if (req.limit < 1 || req.limit > 100) {
    return Fail(ErrorCode::kInvalidArgument, "The limit field must be between 1 and 100.", "limit");
  }

  auto view = store.NewReadView();
  const DayNumber today = clock.Today();
  WorkspaceMetricsResult out;
  out.to = today;
  switch (req.period) {
    case Period::k7d:
      out.from = today - 6;
      break;
    case Period::k30d:
      out.from = today - 29;
      break;
    case Period::k90d:
      out.from = today - 89;
      break;
    case Period::kAll:
      out.from = std::min(FirstDay(*view, req.workspace_id).value_or(today), today);
      break;
  }

  Engine engine(*view, req);
  switch (req.group_by) {
    case GroupBy::kNone: {
      out.total = ValueOf(req.aggregation, engine.SumRange(out.from, out.to));
      break;
    }
    case GroupBy::kDate:
      GroupByDate(engine, req, &out);
      break;
    case GroupBy::kUser:
      GroupByUser(engine, *view, req, &out);
      break;
  }
  return out;
}

}  // namespace tally::query
