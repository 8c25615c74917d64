#pragma once
// Test-only fixture for the query engines' unit tests: a RocksDB store in a temp directory and
// the Aggregator that loads events into it, as ingest would.
//
//   class MyEngineTest : public tally::query::internal::ViewsTestBase {};
//   TEST_F(MyEngineTest, X) { Apply({event1, event2}); ... RunSomething(*store_, ...); }

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "aggregate/aggregator.h"
#include "event/usage_event.h"
#include "store/store.h"

namespace tally::query::internal {

class ViewsTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tally_query_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_suite()->name() + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto store = store::Store::Open({.path = dir_.string()});
    ASSERT_TRUE(store.has_value()) << store.error().message;
    store_ = std::move(*store);
    agg_ = std::move(*aggregate::Aggregator::Create(store_.get()));
  }
  void TearDown() override {
    agg_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Applies `events` as one consumed batch (one WriteBatch with its offset).
  void Apply(const std::vector<event::UsageEvent>& events) {
    std::vector<const event::UsageEvent*> ptrs;
    for (const auto& e : events) ptrs.push_back(&e);
    aggregate::PartitionOffset off{"t", 0, ++offset_};
    ASSERT_TRUE(agg_->Apply(ptrs, {&off, 1}, "c").has_value());
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<aggregate::Aggregator> agg_;
  int64_t offset_ = 0;
};

}  // namespace tally::query::internal
