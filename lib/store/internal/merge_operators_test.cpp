#include "store/internal/merge_operators.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/clock.h"
#include "store/codec.h"
#include "store/internal/store_rep.h"
#include "store/store.h"
#include "store/write_set.h"

namespace tally::store::internal {
namespace {

class MergeOperatorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tally_merge_operators_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Store> Open(const std::string& name, Clock clock = Clock()) {
    auto s = Store::Open({.path = (dir_ / name).string(), .clock = clock});
    EXPECT_TRUE(s.has_value()) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }
  // Merges a malformed operand into the counters family of `store` behind the WriteSet's back
  // and reads it, so that the merge operator meets it.
  static void ReadMalformedCounter(Store& store, const std::string& key) {
    rocksdb::DB* db = Access::Db(store);
    rocksdb::ColumnFamilyHandle* cf = Access::Cf(store, kCounters);
    ASSERT_TRUE(db->Merge(rocksdb::WriteOptions(), cf, key, std::string("\xff\xff\xff", 3)).ok());
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), cf, key, &value).ok());
  }

  std::filesystem::path dir_;
};

TEST_F(MergeOperatorsTest, EachStoreCountsItsOwnMalformedOperands) {
  std::unique_ptr<Store> a = Open("a");
  std::unique_ptr<Store> b = Open("b");
  ASSERT_TRUE(a && b);
  ReadMalformedCounter(*a, "k1");
  EXPECT_EQ(a->MalformedOperands(), 1u);
  EXPECT_EQ(b->MalformedOperands(), 0u);
  ReadMalformedCounter(*b, "k2");
  ReadMalformedCounter(*b, "k3");
  EXPECT_EQ(a->MalformedOperands(), 1u);
  EXPECT_EQ(b->MalformedOperands(), 2u);
}

// The dedupe expiry keeps an old event's entry while it was written less than a window ago by
// the store's clock: with a clock 30 days ahead, an entry written now by the system clock is a
// month old and goes, and one written at the clock's now stays.
TEST_F(MergeOperatorsTest, DedupeExpiryReadsTheInjectedClock) {
  constexpr int64_t kDay = 24LL * 3600 * 1000;
  const int64_t real_now = Clock().NowMillis();
  const int64_t clock_now = real_now + 30 * kDay;
  std::unique_ptr<Store> store = Open("s", Clock::Fixed(clock_now));
  ASSERT_TRUE(store);
  std::string stale, fresh;
  DedupeKey("src", "stale", &stale);
  DedupeKey("src", "fresh", &fresh);
  WriteSet set(*store);
  set.PutDedupe(stale, /*event_time_ms=*/0, /*written_ms=*/real_now);
  set.PutDedupe(fresh, /*event_time_ms=*/0, /*written_ms=*/clock_now);
  ASSERT_TRUE(store->Write(&set).has_value());
  store->ObserveEventTime(clock_now);  // event time 0 is far outside the window
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  ASSERT_TRUE(Access::Db(*store)
                  ->CompactRange(options, Access::Cf(*store, kDedupe), nullptr, nullptr)
                  .ok());
  const std::string_view keys[] = {fresh, stale};  // sorted
  std::vector<uint8_t> stored;
  ASSERT_TRUE(store->FindDedupeKeys(keys, &stored).has_value());
  EXPECT_EQ(stored, (std::vector<uint8_t>{1, 0}));
}

}  // namespace
}  // namespace tally::store::internal
