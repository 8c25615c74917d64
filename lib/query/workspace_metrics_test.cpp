// Unit tests of the metrics engine on hand-computed expectations. The end-to-end comparison with
// an independent reference over generated data lives in tests/integration.
#include "query/workspace_metrics.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <filesystem>

#include "aggregate/aggregator.h"
#include "common/saturating.h"
#include "query/internal/views_test_base.h"
#include "query/range.h"
#include "store/codec.h"
#include "store/store.h"

namespace tally::query {
namespace {

using event::Action;
using event::EntityKind;
using event::UsageEvent;

class WorkspaceMetricsTest : public internal::ViewsTestBase {
 protected:
  UsageEvent Ev(std::string id, EntityKind kind, Action action, const char* day, std::string user,
                std::string name = "") {
    UsageEvent e;
    e.id = std::move(id);
    e.source = "test";
    e.kind = kind;
    e.action = action;
    e.time_ms = int64_t{*ParseDay(day)} * 86'400'000 + 3'600'000;
    e.workspace_id = "ws";
    e.user_id = std::move(user);
    e.user_name = std::move(name);
    e.entity_id = "ent1";
    return e;
  }

  WorkspaceMetricsResult Run(const WorkspaceMetricsRequest& r) {
    auto res = RunWorkspaceMetrics(*store_, clock_, r);
    EXPECT_TRUE(res.has_value()) << res.error().message;
    return res.value_or(WorkspaceMetricsResult{});
  }

  // Today = Sunday 2026-03-01.
  Clock clock_ = Clock::Fixed(int64_t{*ParseDay("2026-03-01")} * 86'400'000 + 5'000);
};

TEST_F(WorkspaceMetricsTest, CountsSumsAveragesAndPeriods) {
  std::vector<UsageEvent> evs = {
      Ev("1", EntityKind::kAgent, Action::kExecuted, "2026-03-01", "u1", "Ann"),
      Ev("2", EntityKind::kAgent, Action::kExecuted, "2026-02-24", "u1"),
      Ev("3", EntityKind::kAgent, Action::kExecuted, "2026-02-23", "u2", "Bob"),
      Ev("4", EntityKind::kAgent, Action::kExecuted, "2026-01-10", "u2"),
      Ev("5", EntityKind::kAgent, Action::kCreated, "2026-02-28", "u1"),
      Ev("6", EntityKind::kWorkflow, Action::kExecuted, "2026-02-27", "u1"),
      Ev("7", EntityKind::kWorkflow, Action::kExecuted, "2026-02-26", "u2"),
      Ev("8", EntityKind::kWorkflow, Action::kExecuted, "2026-02-25", "u2"),
  };
  evs[5].duration_ms = 100;
  evs[6].duration_ms = 300;  // evs[7] carries no duration
  Apply(evs);
  Apply({evs[0], evs[1]});  // redelivery: changes nothing

  WorkspaceMetricsRequest r;
  r.workspace_id = "ws";
  r.entity = EntityKind::kAgent;
  r.metric = Metric::kExecutions;
  r.period = Period::k7d;  // 2026-02-23 .. 2026-03-01
  auto res = Run(r);
  EXPECT_EQ(res.total, 3);
  EXPECT_EQ(FormatDay(res.from), "2026-02-23");
  EXPECT_EQ(FormatDay(res.to), "2026-03-01");
  r.period = Period::kAll;
  res = Run(r);
  EXPECT_EQ(res.total, 4);
  EXPECT_EQ(FormatDay(res.from), "2026-01-10");

  r.entity = EntityKind::kWorkflow;
  r.metric = Metric::kAvgDuration;
  r.aggregation = Aggregation::kAvg;
  EXPECT_DOUBLE_EQ(Run(r).total, 200);
  r.aggregation = Aggregation::kSum;
  EXPECT_DOUBLE_EQ(Run(r).total, 400);
  r.aggregation = Aggregation::kCount;
  EXPECT_DOUBLE_EQ(Run(r).total, 2);
  r.group_by = GroupBy::kUser;
  EXPECT_FALSE(RunWorkspaceMetrics(*store_, clock_, r).has_value());
}

// Stored counters near their largest values (saturated sums): the totals across buckets
// saturate too, and are never negative or infinite.
TEST_F(WorkspaceMetricsTest, SumsAcrossBucketsSaturate) {
  const DayNumber today = clock_.Today();
  store::Counters big;
  big.i[store::Counters::CountField(EntityKind::kWorkflow, Action::kExecuted)] = INT64_MAX / 2 + 1;
  big.i[store::Counters::kWorkflowDurationCount] = INT64_MAX / 2 + 1;
  big.d[store::Counters::kWorkflowDurationSum] = 1.7e308;
  store::WriteSet set(*store_);
  std::string key;
  size_t buckets = 0;
  for (const BucketRef& b : DecomposeRange(today - 29, today)) {  // the buckets of period 30d
    store::CounterKey(store::Scope::kWorkspace, "ws", b.granularity, b.bucket, {}, &key);
    set.AddCounters(key, store::EncodeCounters(big));
    ++buckets;
  }
  ASSERT_GE(buckets, 2u);
  ASSERT_TRUE(store_->Write(&set).has_value());

  const uint64_t before = SaturatedSums();
  WorkspaceMetricsRequest r;
  r.workspace_id = "ws";
  r.entity = EntityKind::kWorkflow;
  r.metric = Metric::kExecutions;
  EXPECT_EQ(Run(r).total, static_cast<double>(INT64_MAX));
  r.metric = Metric::kAvgDuration;
  r.aggregation = Aggregation::kSum;
  EXPECT_EQ(Run(r).total, DBL_MAX);
  r.aggregation = Aggregation::kAvg;
  const double avg = Run(r).total;
  EXPECT_TRUE(std::isfinite(avg) && avg > 0) << avg;
  EXPECT_EQ(avg, DBL_MAX / static_cast<double>(INT64_MAX));
  r.aggregation = Aggregation::kCount;
  EXPECT_EQ(Run(r).total, static_cast<double>(INT64_MAX));
  EXPECT_GT(SaturatedSums(), before);
}

TEST_F(WorkspaceMetricsTest, GroupByDateZeroFillsAndClipsWeeks) {
  Apply({Ev("1", EntityKind::kAgent, Action::kExecuted, "2026-02-23", "u1"),
         Ev("2", EntityKind::kAgent, Action::kExecuted, "2026-02-23", "u1"),
         Ev("3", EntityKind::kAgent, Action::kExecuted, "2026-02-20", "u1"),  // before 7d
         Ev("4", EntityKind::kAgent, Action::kExecuted, "2026-03-01", "u2")});
  WorkspaceMetricsRequest r;
  r.workspace_id = "ws";
  r.group_by = GroupBy::kDate;
  r.granularity = Granularity::kDay;
  r.period = Period::k7d;
  auto res = Run(r);
  ASSERT_EQ(res.rows.size(), 7u);
  EXPECT_EQ(res.rows[0].date, "2026-02-23");
  EXPECT_EQ(res.rows[0].value, 2);
  EXPECT_EQ(res.rows[1].value, 0);
  EXPECT_EQ(res.rows[6].date, "2026-03-01");
  EXPECT_EQ(res.rows[6].value, 1);
  EXPECT_EQ(res.total, 3);

  r.period = Period::k30d;  // 2026-01-31 (Saturday) .. 2026-03-01
  r.granularity = Granularity::kWeek;
  res = Run(r);
  ASSERT_EQ(res.rows.size(), 5u);  // weeks 2026-05 (clipped to Jan 31..Feb 1) .. 2026-09
  EXPECT_EQ(res.rows.front().date, "2026-05");
  EXPECT_EQ(res.rows[3].date, "2026-08");
  EXPECT_EQ(res.rows[3].value, 1);  // 2026-02-20 (Friday of week 8)
  EXPECT_EQ(res.rows[4].value, 3);
  EXPECT_EQ(res.total, 4);

  r.granularity = Granularity::kMonth;
  r.order_by = OrderBy::kValue;
  res = Run(r);
  ASSERT_EQ(res.rows.size(), 3u);  // 2026-01 (one day), 2026-02, 2026-03
  EXPECT_EQ(res.rows[0].date, "2026-02");
  EXPECT_EQ(res.rows[0].value, 3);
}

TEST_F(WorkspaceMetricsTest, GroupByUserOrdersAndLimits) {
  Apply({Ev("1", EntityKind::kAgent, Action::kShared, "2026-02-28", "u1", "Zed"),
         Ev("2", EntityKind::kAgent, Action::kShared, "2026-02-27", "u2", "Amy"),
         Ev("3", EntityKind::kAgent, Action::kShared, "2026-02-26", "u2", "Amy B"),
         Ev("4", EntityKind::kAgent, Action::kShared, "2026-02-25", "u3", "Cy"),
         Ev("5", EntityKind::kAgent, Action::kExecuted, "2026-02-25", "u4", "Dee")});
  WorkspaceMetricsRequest r;
  r.workspace_id = "ws";
  r.metric = Metric::kShares;
  r.group_by = GroupBy::kUser;
  auto res = Run(r);
  ASSERT_EQ(res.rows.size(), 3u);
  EXPECT_EQ(res.rows[0].user_id, "u2");
  EXPECT_EQ(res.rows[0].user_name, "Amy");  // latest event time wins: 02-27
  EXPECT_EQ(res.rows[0].value, 2);
  EXPECT_EQ(res.rows[1].user_id, "u1");  // tie on 1 broken by user id
  EXPECT_EQ(res.total, 4);
  r.limit = 1;
  r.order_by = OrderBy::kName;
  r.descending = false;
  res = Run(r);
  ASSERT_EQ(res.rows.size(), 1u);
  EXPECT_EQ(res.rows[0].user_name, "Amy");
  EXPECT_EQ(res.total, 4);
  r.user_id = "u3";
  r.limit = 10;
  res = Run(r);
  ASSERT_EQ(res.rows.size(), 1u);
  EXPECT_EQ(res.rows[0].user_id, "u3");
  EXPECT_EQ(res.total, 1);
  EXPECT_TRUE(WorkspaceKnown(*store_, "ws"));
  EXPECT_FALSE(WorkspaceKnown(*store_, "other"));
}

}  // namespace
}  // namespace tally::query
