// State per partition: a partitioned store (a group's) indexes which workspaces each partition
// brought, and Store::DropPartition removes exactly what consuming the partition again restores.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "aggregate/aggregator.h"
#include "store/testing/store_testing.h"

namespace tally::aggregate {
namespace {

using event::Action;
using event::EntityKind;
using event::UsageEvent;

constexpr std::string_view kTopic = "usage-events";
constexpr int64_t kDayMs = 86'400'000;

// An event with its partition; the workspaces of partition 0 are "w0" and "w1", of partition 1
// "w2" and "w10" (a name that "w1" begins). Users and agent ids are shared across workspaces.
struct Sent {
  UsageEvent event;
  int32_t partition = 0;
};

std::vector<Sent> MakeEvents(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  const std::pair<const char*, const char*> workspaces[] = {
      {"w0", "o1"}, {"w1", "o2"}, {"w2", "o1"}, {"w10", ""}};
  std::vector<Sent> out;
  for (int i = 0; i < n; ++i) {
    const int w = static_cast<int>(rng() % 4);
    Sent s;
    s.partition = w < 2 ? 0 : 1;
    UsageEvent& e = s.event;
    // Now and then a copy of an earlier event of the same workspace (a producer's retry).
    if (i > 10 && rng() % 8 == 0) {
      const Sent& earlier = out[rng() % out.size()];
      out.push_back(earlier);
      continue;
    }
    e.id = "e" + std::to_string(i);
    e.source = "src";
    e.workspace_id = workspaces[w].first;
    e.organization_id = workspaces[w].second;
    e.kind = rng() % 5 == 0 ? EntityKind::kWorkflow : EntityKind::kAgent;
    const uint32_t a = rng() % 10;
    e.action = a < 6 ? Action::kExecuted : a < 8 ? Action::kCreated : Action::kShared;
    e.time_ms = static_cast<int64_t>(100 + rng() % 45) * kDayMs + rng() % kDayMs;
    e.user_id = "u" + std::to_string(rng() % 7);
    e.user_name = "User " + e.user_id;
    e.user_email = e.user_id + std::to_string(rng() % 2) + "@example.com";
    e.entity_id = "a" + std::to_string(rng() % 5);
    e.entity_name = "Agent " + std::to_string(rng() % 3);
    if (rng() % 3 != 0) e.project_id = "p" + std::to_string(rng() % 3);
    e.tokens = static_cast<int64_t>(rng() % 1000);
    e.cost_usd = static_cast<double>(rng() % 1000) / 997.0;
    e.message_credits = static_cast<double>(rng() % 7);
    e.duration_ms = static_cast<double>(rng() % 5000);
    out.push_back(std::move(s));
  }
  return out;
}

class PartitionStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tally_partition_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    store_ = std::move(*store::Store::Open({.path = dir_.string()}));
    ASSERT_TRUE(store_->BindRequestScopes(store::Store::RequestScopes::kWorkspace).has_value());
    NewAggregator();
  }
  void TearDown() override {
    agg_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void NewAggregator() {
    agg_ = std::move(*Aggregator::Create(store_.get()));
    agg_->set_stage(true);  // as live ingest does
    agg_->set_request_scope_by_workspace(true);
  }

  // Applies `events` (those of `only` when >= 0) in batches of `batch`, each with its origins
  // and the next offset of every partition it holds; returns the events applied.
  size_t Apply(const std::vector<Sent>& events, int32_t only, size_t batch = 37) {
    size_t applied = 0;
    std::map<int32_t, int64_t> next;  // offset per partition: position in that partition
    std::map<int32_t, int64_t> position;
    for (size_t start = 0; start < events.size(); start += batch) {
      std::vector<const UsageEvent*> ptrs;
      std::vector<int32_t> partitions;
      std::map<int32_t, int64_t> offsets;
      for (size_t i = start; i < std::min(events.size(), start + batch); ++i) {
        const int32_t p = events[i].partition;
        const int64_t offset = position[p]++;
        if (only >= 0 && p != only) continue;
        ptrs.push_back(&events[i].event);
        partitions.push_back(p);
        offsets[p] = offset + 1;
      }
      if (ptrs.empty()) continue;
      std::vector<PartitionOffset> offs;
      for (const auto& [p, o] : offsets) offs.push_back({std::string(kTopic), p, o});
      auto stats = agg_->Apply(ptrs, offs, "cluster", {kTopic, partitions});
      EXPECT_TRUE(stats.has_value());
      if (stats) applied += stats->applied;
    }
    EXPECT_TRUE(store_->Persist().has_value());
    return applied;
  }

  Status Drop(int32_t partition) {
    auto index = store_->LoadPartitionIndex(kTopic);
    EXPECT_TRUE(index.has_value());
    std::vector<std::string> workspaces;
    std::vector<store::Store::DroppedWorkspace> dropped;
    for (const auto& [p, ws] : *index) {
      if (p != partition) continue;
      workspaces.push_back(ws);
      dropped.push_back({ws, std::string(agg_->OrganizationOf(ws))});
    }
    auto rows = store_->DropPartition(kTopic, partition, dropped);
    if (!rows) return std::unexpected(rows.error());
    EXPECT_GT(*rows, 0u);
    agg_->ForgetPartition(kTopic, partition, workspaces);
    return Ok();
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Aggregator> agg_;
};

TEST_F(PartitionStateTest, AStoreBoundToWorkspaceScopesWhileEmptyIsPartitioned) {
  EXPECT_TRUE(store_->partitioned());
  EXPECT_EQ(store_->PartitionsSeparable().value_or(false), true);
  const auto events = MakeEvents(1, 60);
  Apply(events, -1);
  auto index = store_->LoadPartitionIndex(kTopic);
  ASSERT_TRUE(index.has_value());
  // In key order: ids are length-prefixed.
  const std::vector<std::pair<int32_t, std::string>> want = {
      {0, "w0"}, {0, "w1"}, {1, "w2"}, {1, "w10"}};
  EXPECT_EQ(*index, want);
  // Kept across a restart, and never written twice.
  agg_.reset();
  store_.reset();
  store_ = std::move(*store::Store::Open({.path = dir_.string()}));
  EXPECT_TRUE(store_->partitioned());
  NewAggregator();
  Apply(MakeEvents(2, 60), -1);
  auto reloaded = store_->LoadPartitionIndex(kTopic);
  ASSERT_TRUE(reloaded.has_value());
  EXPECT_EQ(*reloaded, want);
}

TEST_F(PartitionStateTest, DroppingAPartitionRemovesWhatConsumingItAgainRestores) {
  const auto events = MakeEvents(7, 900);
  const size_t applied = Apply(events, -1);
  const auto full = store::testing::DumpRows(*store_);

  ASSERT_TRUE(Drop(0).has_value());
  // The other partition's rows are all still there, the dropped one's workspaces are gone.
  const auto after = store::testing::DumpRows(*store_);
  for (const auto& [key, value] : after) {
    auto it = full.find(key);
    ASSERT_NE(it, full.end()) << "family " << key.first;
    EXPECT_EQ(it->second, value) << "family " << key.first;
  }
  // No row names a dropped workspace (length-prefixed, or in a request scope), except the
  // shared dictionaries (family 5) and the bookkeeping (family 0, checked below).
  for (const auto& [key, value] : after) {
    if (key.first == 0 || key.first == 5) continue;
    for (std::string_view id : {std::string_view("\x02w0"), std::string_view("\x02w1"),
                                std::string_view("o1w0"), std::string_view("o2w1")}) {
      EXPECT_EQ(key.second.find(id), std::string::npos) << "family " << key.first;
    }
  }
  auto index = store_->LoadPartitionIndex(kTopic);
  ASSERT_TRUE(index.has_value());
  EXPECT_EQ(index->size(), 2u);
  auto offsets = store_->LoadOffsets();
  ASSERT_TRUE(offsets.has_value());
  ASSERT_EQ(offsets->size(), 1u);
  EXPECT_EQ((*offsets)[0].partition, 1);
  EXPECT_EQ(agg_->OrganizationOf("w0"), "");
  EXPECT_EQ(agg_->OrganizationOf("w2"), "o1");
  EXPECT_LT(after.size(), full.size());

  // Consuming partition 0 again counts each of its events once more, and leaves the store
  // exactly as it was: nothing of the partition was left behind, nothing else was taken.
  const size_t again = Apply(events, 0);
  std::set<std::string> distinct[2];
  for (const Sent& e : events) distinct[e.partition].insert(e.event.id);
  EXPECT_EQ(applied, distinct[0].size() + distinct[1].size());
  EXPECT_EQ(again, distinct[0].size());
  EXPECT_EQ(store::testing::DumpRows(*store_), full);
}

TEST_F(PartitionStateTest, EventsWithoutOriginsMakePartitionsInseparable) {
  Apply(MakeEvents(3, 40), -1);
  UsageEvent e = MakeEvents(4, 1)[0].event;
  std::vector<const UsageEvent*> ptrs = {&e};
  PartitionOffset off{std::string(kTopic), 0, 100};
  ASSERT_TRUE(agg_->Apply(ptrs, {&off, 1}, "cluster").has_value());
  ASSERT_TRUE(store_->Persist().has_value());
  EXPECT_TRUE(store_->partitioned());
  EXPECT_EQ(store_->PartitionsSeparable().value_or(true), false);
  auto dropped = Drop(0);
  ASSERT_FALSE(dropped.has_value());
  EXPECT_EQ(dropped.error().code, ErrorCode::kFailedPrecondition);
}

TEST(PartitionLayoutTest, SingleInstanceAndNonEmptyStoresAreNotPartitioned) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("tally_partition_layout_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    auto store = std::move(*store::Store::Open({.path = dir.string() + "_org"}));
    ASSERT_TRUE(store->BindRequestScopes(store::Store::RequestScopes::kOrganization).has_value());
    EXPECT_FALSE(store->partitioned());
    EXPECT_EQ(store->PartitionsSeparable().value_or(true), false);
  }
  {
    // A store with views (an older group store) bound afterwards keeps its layout.
    auto store = std::move(*store::Store::Open({.path = dir.string() + "_old"}));
    auto agg = std::move(*Aggregator::Create(store.get()));
    UsageEvent e = MakeEvents(5, 1)[0].event;
    e.organization_id.clear();
    std::vector<const UsageEvent*> ptrs = {&e};
    ASSERT_TRUE(agg->Apply(ptrs, {}, "cluster").has_value());
    ASSERT_TRUE(store->BindRequestScopes(store::Store::RequestScopes::kWorkspace).has_value());
    EXPECT_FALSE(store->partitioned());
  }
  std::filesystem::remove_all(dir.string() + "_org");
  std::filesystem::remove_all(dir.string() + "_old");
}

}  // namespace
}  // namespace tally::aggregate
