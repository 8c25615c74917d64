#include "replay/replayer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace tally::replay {
namespace {

std::string Event(const std::string& id, const std::string& ws = "ws1") {
  return R"({"specversion":"1.0","id":")" + id +
         R"(","source":"s","type":"agent.executed","time":"2026-01-15T10:00:00Z","data":{"workspace_id":")" +
         ws + R"(","organization_id":"org","user":{"id":"u1"},"agent":{"id":"a1"},"tokens":5}})";
}

class ReplayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tally_replayer_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto s = store::Store::Open({.path = dir_.string()});
    ASSERT_TRUE(s.has_value()) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(ReplayerTest, CountsAppliedDuplicatesAndRejectedByReason) {
  auto r = Replayer::Create(store_.get(), {.batch_size = 3});
  ASSERT_TRUE(r.has_value());
  for (const std::string& line :
       {Event("1"), Event("2"), Event("1"), std::string("{not json"), Event("3"),
        std::string(R"({"specversion":"1.0"})"), Event("2"), Event("4")}) {
    ASSERT_TRUE((*r)->Add(line).has_value());
  }
  ASSERT_TRUE((*r)->Finish().has_value());
  const ReplayStats& st = (*r)->stats();
  EXPECT_EQ(st.read, 8u);
  EXPECT_EQ(st.applied, 4u);
  EXPECT_EQ(st.duplicates, 2u);
  EXPECT_EQ(st.rejected, 2u);
  uint64_t by_reason = 0;
  for (const auto& [reason, n] : st.rejected_by_reason) by_reason += n;
  EXPECT_EQ(by_reason, 2u);

  // A second run over the same lines (a re-run backfill) changes nothing.
  auto again = Replayer::Create(store_.get(), {.batch_size = 5});
  for (const std::string& line : {Event("1"), Event("2"), Event("3"), Event("4")}) {
    ASSERT_TRUE((*again)->Add(line).has_value());
  }
  ASSERT_TRUE((*again)->Finish().has_value());
  EXPECT_EQ((*again)->stats().applied, 0u);
  EXPECT_EQ((*again)->stats().duplicates, 4u);
}

TEST_F(ReplayerTest, TopicOffsetsAreStoredWithTheViews) {
  auto r = Replayer::Create(store_.get(), {.batch_size = 2, .cluster_id = "cluster-x"});
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE((*r)->Add(Event("1"), LineOrigin{"usage-events", 0, 10}).has_value());
  ASSERT_TRUE((*r)->Add(Event("2"), LineOrigin{"usage-events", 1, 4}).has_value());
  ASSERT_TRUE((*r)->Add("garbage", LineOrigin{"usage-events", 0, 11}).has_value());
  ASSERT_TRUE((*r)->Finish().has_value());
  auto offsets = store_->LoadOffsets();
  ASSERT_TRUE(offsets.has_value());
  ASSERT_EQ(offsets->size(), 2u);
  for (const auto& o : *offsets) {
    EXPECT_EQ(o.offset.cluster_id, "cluster-x");
    EXPECT_EQ(o.offset.next_offset, o.partition == 0 ? 12 : 5);  // a rejected line counts too
  }
}

std::string EventAt(const std::string& id, const std::string& time) {
  return R"({"specversion":"1.0","id":")" + id +
         R"(","source":"s","type":"agent.executed","time":")" + time +
         R"(","data":{"workspace_id":"ws1","organization_id":"org","user":{"id":"u1"},"agent":{"id":"a1"}}})";
}

// Late events (older than the 7-day window before the newest event) under both policies: the
// same input, two stores.
TEST_F(ReplayerTest, LateEventsAppliedOrRejectedByPolicy) {
  const std::vector<std::string> lines = {
      EventAt("new", "2026-03-20T00:00:00Z"),
      EventAt("in-window", "2026-03-14T00:00:00Z"),  // 6 days before the newest: on time
      EventAt("late", "2026-03-01T00:00:00Z"),       // 19 days before: late
      EventAt("newer", "2026-03-25T00:00:00Z"),
      EventAt("late2", "2026-03-17T00:00:00Z"),  // 8 days before the new newest: late
  };
  for (auto policy : {aggregate::LatePolicy::kApply, aggregate::LatePolicy::kReject}) {
    std::filesystem::path d =
        dir_.string() + (policy == aggregate::LatePolicy::kApply ? "_a" : "_r");
    std::filesystem::remove_all(d);
    auto s = store::Store::Open({.path = d.string()});
    ASSERT_TRUE(s.has_value());
    // Two batches: the newest time must carry over between them (and across a reopen).
    auto r = Replayer::Create(s->get(), {.batch_size = 2, .late_policy = policy});
    for (const auto& line : lines) ASSERT_TRUE((*r)->Add(line).has_value());
    ASSERT_TRUE((*r)->Finish().has_value());
    if (policy == aggregate::LatePolicy::kApply) {
      EXPECT_EQ((*r)->stats().applied, 5u);
      EXPECT_EQ((*r)->stats().rejected, 0u);
    } else {
      EXPECT_EQ((*r)->stats().applied, 3u);
      EXPECT_EQ((*r)->stats().rejected, 2u);
      EXPECT_EQ((*r)->stats().rejected_by_reason.at("late_event"), 2u);
    }
    r->reset();
    s->reset();
    // After a reopen the newest time is still known: a late event stays late.
    auto again = store::Store::Open({.path = d.string()});
    ASSERT_TRUE(again.has_value());
    auto r2 = Replayer::Create(again->get(), {.batch_size = 2, .late_policy = policy});
    ASSERT_TRUE((*r2)->Add(EventAt("late3", "2026-03-02T00:00:00Z")).has_value());
    ASSERT_TRUE((*r2)->Finish().has_value());
    EXPECT_EQ((*r2)->stats().rejected, policy == aggregate::LatePolicy::kReject ? 1u : 0u);
    r2->reset();
    again->reset();
    std::filesystem::remove_all(d);
  }
}

}  // namespace
}  // namespace tally::replay
