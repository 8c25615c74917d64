#include "pipeline/batch_pipeline.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace tally::pipeline {
namespace {

std::string Event(const std::string& id, const std::string& time = "2026-01-15T10:00:00Z",
                  const std::string& org = "org") {
  return R"({"specversion":"1.0","id":")" + id +
         R"(","source":"s","type":"agent.executed","time":")" + time +
         R"(","data":{"workspace_id":"ws1","organization_id":")" + org +
         R"(","user":{"id":"u1"},"agent":{"id":"a1"},"tokens":5}})";
}

class BatchPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tally_pipeline_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto s = store::Store::Open({.path = dir_.string()});
    ASSERT_TRUE(s.has_value()) << s.error().message;
    store_ = std::move(*s);
    auto agg = aggregate::Aggregator::Create(store_.get());
    ASSERT_TRUE(agg.has_value());
    aggregator_ = std::move(*agg);
  }
  void TearDown() override {
    aggregator_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  int64_t StoredNextOffset(int32_t partition) {
    auto offsets = store_->LoadOffsets();
    if (!offsets) return -2;
    for (const auto& o : *offsets) {
      if (o.partition == partition) return o.offset.next_offset;
    }
    return -1;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<aggregate::Aggregator> aggregator_;
};

// What the done callback saw of one batch.
struct Seen {
  size_t events = 0;
  std::vector<std::string> refused = {};  // category of each refused line
  std::vector<int> refused_sources = {};
  BatchOutcome outcome = {};
};

TEST_F(BatchPipelineTest, BatchesAreStoredInOrderWithTheirOffsetsAndRefusals) {
  std::vector<std::vector<std::string>> delivered;  // refused categories per delivery (worker)
  PipelineOptions options;
  options.hooks.deliver_refused = [&](const EventBatch& b) {
    std::vector<std::string> cats;
    for (const RefusedLine& r : b.refused) cats.emplace_back(r.category);
    delivered.push_back(cats);
    return true;
  };
  BatchPipeline pipeline(aggregator_.get(), std::move(options));
  std::vector<Seen> seen;
  auto done = [&](EventBatch& b, const BatchOutcome& o) {
    Seen s{.events = b.events.size(), .outcome = o};
    for (const RefusedLine& r : b.refused) {
      s.refused.emplace_back(r.category);
      s.refused_sources.push_back(*static_cast<const int*>(r.source));
    }
    seen.push_back(std::move(s));
  };

  const int handles[] = {0, 1, 2, 3, 4};
  LineOrigin origin{"usage-events", 3, 100};
  EXPECT_EQ(pipeline.Add(Event("1"), &handles[0], &origin), nullptr);
  origin.offset = 101;
  const RefusedLine* refused = pipeline.Add("{not json", &handles[1], &origin);
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->source, &handles[1]);
  EXPECT_FALSE(refused->reason.empty());
  origin.offset = 102;
  EXPECT_EQ(pipeline.Add(Event("1"), &handles[2], &origin), nullptr);  // a duplicate
  EXPECT_EQ(pipeline.filling().lines, 3u);
  EXPECT_EQ(pipeline.filling().events.size(), 2u);
  ASSERT_TRUE(pipeline.Submit(done));
  EXPECT_TRUE(seen.empty()) << "the first batch has no batch before it";
  EXPECT_EQ(pipeline.filling().lines, 0u) << "a new batch starts";

  origin.offset = 103;
  EXPECT_EQ(pipeline.Add(Event("2"), &handles[3], &origin), nullptr);
  ASSERT_TRUE(pipeline.Submit(done));
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_TRUE(pipeline.Wait(done));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_FALSE(pipeline.in_flight());

  EXPECT_TRUE(seen[0].outcome.stored);
  EXPECT_EQ(seen[0].outcome.stats.applied, 1u);
  EXPECT_EQ(seen[0].outcome.stats.duplicates, 1u);
  EXPECT_EQ(seen[0].refused, std::vector<std::string>{"invalid_json"});
  EXPECT_EQ(seen[0].refused_sources, std::vector<int>{1});
  EXPECT_EQ(seen[1].outcome.stats.applied, 1u);
  EXPECT_TRUE(seen[1].refused.empty());
  // Refusals were delivered before their batch was stored, and only for batches with some.
  EXPECT_EQ(delivered, std::vector<std::vector<std::string>>{{"invalid_json"}});
  EXPECT_EQ(StoredNextOffset(3), 104);
}

TEST_F(BatchPipelineTest, ABatchWhoseRefusalsAreNotDeliveredIsNotStoredNorAnyAfterIt) {
  PipelineOptions options;
  options.hooks.deliver_refused = [](const EventBatch&) { return false; };
  BatchPipeline pipeline(aggregator_.get(), std::move(options));
  std::vector<BatchOutcome> outcomes;
  auto done = [&](EventBatch&, const BatchOutcome& o) { outcomes.push_back(o); };

  LineOrigin origin{"usage-events", 0, 7};
  pipeline.Add(Event("1"), nullptr, &origin);
  origin.offset = 8;
  pipeline.Add("garbage", nullptr, &origin);
  ASSERT_TRUE(pipeline.Submit(done));
  EXPECT_FALSE(pipeline.Wait(done));
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_FALSE(outcomes[0].stored);
  EXPECT_EQ(StoredNextOffset(0), -1) << "the unstored batch's offsets were stored";

  // Nothing after it may be stored, or its offsets would skip the unstored batch.
  origin.offset = 9;
  pipeline.Add(Event("2"), nullptr, &origin);
  EXPECT_FALSE(pipeline.Submit(done));
  EXPECT_FALSE(pipeline.Wait(done));
  EXPECT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(StoredNextOffset(0), -1);
}

TEST_F(BatchPipelineTest, LateEventsAreRefusedUnderTheRejectPolicy) {
  BatchPipeline pipeline(aggregator_.get(), {.late_policy = aggregate::LatePolicy::kReject});
  std::vector<Seen> seen;
  auto done = [&](EventBatch& b, const BatchOutcome& o) {
    Seen s{.events = b.events.size(), .outcome = o};
    for (const RefusedLine& r : b.refused) s.refused.emplace_back(r.category);
    seen.push_back(std::move(s));
  };
  pipeline.Add(Event("new", "2026-03-01T00:00:00Z"), nullptr);
  ASSERT_TRUE(pipeline.Submit(done));
  pipeline.Add(Event("old", "2025-06-01T00:00:00Z"), nullptr);  // far behind the newest
  pipeline.Add(Event("new2", "2026-03-01T00:00:01Z"), nullptr);
  ASSERT_TRUE(pipeline.Submit(done));
  ASSERT_TRUE(pipeline.Wait(done));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].outcome.late, 1u);
  EXPECT_EQ(seen[1].outcome.stats.applied, 1u);
  EXPECT_EQ(seen[1].refused, std::vector<std::string>{"late_event"});
  EXPECT_EQ(seen[1].events, 1u);
}

TEST_F(BatchPipelineTest, MismatchesAreRefusedOrSkippedByApply) {
  for (bool refuse : {true, false}) {
    SCOPED_TRACE(refuse ? "refused" : "skipped by Apply");
    TearDown();
    SetUp();
    BatchPipeline pipeline(aggregator_.get(), {.refuse_mismatches = refuse});
    BatchOutcome outcome;
    std::vector<std::string> refused;
    auto done = [&](EventBatch& b, const BatchOutcome& o) {
      outcome = o;
      for (const RefusedLine& r : b.refused) refused.emplace_back(r.category);
    };
    pipeline.Add(Event("1", "2026-01-15T10:00:00Z", "org-a"), nullptr);
    pipeline.Add(Event("2", "2026-01-15T10:00:00Z", "org-b"), nullptr);  // ws1 is org-a's
    ASSERT_TRUE(pipeline.Submit(done));
    ASSERT_TRUE(pipeline.Wait(done));
    EXPECT_TRUE(outcome.stored);
    EXPECT_EQ(outcome.mismatched, 1u);
    EXPECT_EQ(outcome.stats.applied, 1u);
    EXPECT_EQ(refused, refuse ? std::vector<std::string>{"organization_mismatch"}
                              : std::vector<std::string>{});
  }
}

TEST_F(BatchPipelineTest, AfterStoreRunsOnceTheBatchIsStored) {
  std::vector<bool> persist_flags;
  PipelineOptions options;
  options.hooks.after_store = [&](const EventBatch& b, BatchOutcome* out) {
    persist_flags.push_back(b.persist);
    out->persisted = b.persist;
  };
  BatchPipeline pipeline(aggregator_.get(), std::move(options));
  std::vector<bool> persisted;
  auto done = [&](EventBatch&, const BatchOutcome& o) { persisted.push_back(o.persisted); };
  pipeline.Add(Event("1"), nullptr);
  pipeline.filling().persist = true;
  ASSERT_TRUE(pipeline.Submit(done));
  pipeline.Add(Event("2"), nullptr);
  ASSERT_TRUE(pipeline.Submit(done));
  ASSERT_TRUE(pipeline.Wait(done));
  EXPECT_EQ(persist_flags, (std::vector<bool>{true, false}));
  EXPECT_EQ(persisted, (std::vector<bool>{true, false}));
  // An empty batch is not submitted.
  EXPECT_TRUE(pipeline.Submit(done));
  EXPECT_FALSE(pipeline.in_flight());
}

}  // namespace
}  // namespace tally::pipeline
