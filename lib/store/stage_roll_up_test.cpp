// Store::Stage of sets whose day rows roll up into their weeks and months.

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/stage_test_model.h"
#include "store/testing/store_testing.h"

namespace tally::store::stage_test {
namespace {

enum Kind { kCounter, kBitmap, kPack, kSlice };

// One key of each bucketed row layout, at (g, bucket).
std::vector<std::pair<Kind, std::string>> KeysAt(Granularity g, int32_t bucket) {
  const std::string_view project = "p0";
  std::vector<std::pair<Kind, std::string>> out;
  std::string key, id;
  ScopeIdEntity(event::EntityKind::kAgent, "a0", &id);
  CounterKey(Scope::kEntity, "w0", g, bucket, id, &key);
  out.emplace_back(kCounter, key);
  CounterKey(Scope::kWorkspace, "w1", g, bucket, "", &key);
  out.emplace_back(kCounter, key);
  ScopeIdProject(project, &id);
  BitmapKey(Scope::kProject, "w0", g, bucket, id, &key);
  out.emplace_back(kBitmap, key);
  UserPackKey("w0", g, bucket, &key);
  out.emplace_back(kPack, key);
  RequestsSliceKey("o0", kAllAgents, nullptr, g, bucket, &key);
  out.emplace_back(kSlice, key);
  RequestsSliceKey("o0", 1, &project, g, bucket, &key);
  out.emplace_back(kSlice, key);
  RequestsUsersKey("o0", 1, &project, g, bucket, &key);
  out.emplace_back(kBitmap, key);
  RequestsPairsKey("o0", nullptr, g, bucket, &key);
  out.emplace_back(kBitmap, key);
  return out;
}

// The rows the test writes and reads back.
struct RollUp {
  // rows[d][i]: the day, week and month keys of layout i on day first + d.
  std::vector<std::vector<std::array<std::string, 3>>> rows;
  Universe u;               // every key read back, plus a week and a month nothing rolls into
  std::vector<Kind> kinds;  // by layout
};

// The rows of four days from `first`, and the scans over their weeks and months.
RollUp MakeRollUp(DayNumber first) {
  RollUp out;
  auto& rows = out.rows;
  Universe& u = out.u;
  auto& kinds = out.kinds;
  u.pack_users = 6;
  const std::array<std::vector<std::string>*, 4> lists = {&u.counters, &u.bitmaps, &u.packs,
                                                          &u.slices};  // by Kind
  auto read_back = [&](Kind kind, const std::string& key) { lists[kind]->push_back(key); };
  for (const auto& [kind, key] : KeysAt(Granularity::kDay, first)) kinds.push_back(kind);
  for (DayNumber day = first; day < first + 4; ++day) {
    const auto days = KeysAt(Granularity::kDay, day);
    const auto weeks = KeysAt(Granularity::kWeek, WeekOfDay(day));
    const auto months = KeysAt(Granularity::kMonth, MonthOfDay(day));
    rows.emplace_back();
    for (size_t i = 0; i < days.size(); ++i) {
      rows.back().push_back({days[i].second, weeks[i].second, months[i].second});
      for (const auto& keys : {days, weeks, months}) read_back(kinds[i], keys[i].second);
    }
  }
  for (const auto& [kind, key] : KeysAt(Granularity::kWeek, WeekOfDay(first + 7))) {
    read_back(kind, key);
  }
  for (const auto& [kind, key] : KeysAt(Granularity::kMonth, MonthOfDay(first) - 1)) {
    read_back(kind, key);
  }
  // Scans over a week and a month bucket of counters and bitmaps see the rolled-up rows.
  std::string prefix;
  CounterBucketPrefix(Scope::kEntity, "w0", Granularity::kWeek, WeekOfDay(first + 3), &prefix);
  u.counter_prefixes.push_back(prefix);
  CounterBucketPrefix(Scope::kEntity, "w0", Granularity::kMonth, MonthOfDay(first), &prefix);
  u.counter_prefixes.push_back(prefix);
  BitmapKey(Scope::kProject, "w0", Granularity::kMonth, MonthOfDay(first + 3), "", &prefix);
  u.bitmap_merge_scans.push_back({prefix});
  RequestsProjectsPrefix("o0", 1, &prefix);
  u.slice_scans.push_back({prefix, "", 100});
  return out;
}

// Day rows of sets that roll up (WriteSet::set_roll_up_days) read, at their day, week and month
// keys, as the sums of the deltas written to each: for every bucketed view, over days that
// straddle a week and a month boundary, staged, persisted, written and reopened. The keys of the
// weeks and months come from codec.h's key constructors, not from the roll-up.
TEST_F(StageTest, DayRowsOfARollingUpSetAddUpIntoTheirWeeksAndMonths) {
  // Saturday 2023-12-30 to Tuesday 2024-01-02: two ISO weeks and two months.
  const DayNumber first = DaysFromCivil(2023, 12, 30);
  RollUp roll_up = MakeRollUp(first);
  const auto& rows = roll_up.rows;
  const Universe& u = roll_up.u;
  const auto& kinds = roll_up.kinds;
  std::unique_ptr<Store> store = Open("rollup");
  ASSERT_TRUE(store);
  Model model;
  Generator gen(u, 20261206);
  auto compare = [&](const std::string& when) {
    ExpectSameLines(ModelViewLines(model, u), ViewLines(*store->NewReadView(), u), when);
  };
  int writes = 0, persists = 0;
  for (int i = 0; i < 240; ++i) {
    WriteSet set(*store);
    set.set_roll_up_days(true);
    for (int k = gen.Uniform(1, 6); k > 0; --k) {
      const auto& row = rows[gen.Uniform(0, 3)];
      const size_t at = static_cast<size_t>(gen.Uniform(0, static_cast<int>(row.size()) - 1));
      const auto& [day, week, month] = row[at];
      switch (kinds[at]) {
        case kCounter:
          set.AddCounters(day, gen.CountersOp(&model, {day, week, month}));
          break;
        case kBitmap:
          set.OrBitmap(day, gen.BitmapOp(&model, {day, week, month}));
          break;
        case kPack:
          set.AddUserPack(day, gen.PackOp(&model, {day, week, month}));
          break;
        case kSlice:
          set.AddSlice(day, gen.SliceOp(&model, {day, week, month}));
          break;
      }
    }
    if (gen.Chance(0.1)) {
      auto s = store->Write(&set);  // stages it, then persists everything
      ASSERT_TRUE(s.has_value()) << s.error().message;
      EXPECT_EQ(store->staged().rows, 0u);
      ++writes;
    } else {
      auto s = store->Stage(&set);
      ASSERT_TRUE(s.has_value()) << s.error().message;
    }
    if (gen.Chance(0.1)) {
      Persist(*store);
      ++persists;
    }
    if (i % 10 == 9) compare("after set " + std::to_string(i));
    if (i == 120) {
      Persist(*store);
      Reopen(&store);
      ASSERT_TRUE(store);
      compare("reopened");
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(writes, 5);
  EXPECT_GT(persists, 10);
  Persist(*store);
  Reopen(&store);
  ASSERT_TRUE(store);
  compare("at the end, reopened");
  EXPECT_EQ(store->MalformedOperands(), 0u);
}

}  // namespace
}  // namespace tally::store::stage_test
