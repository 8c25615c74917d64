// MergeBound: hot rows of the bounded families never collect more than kMaxOperands - 1 merge
// operands in the active memtable, whether they are written (Store::Write) or staged and
// persisted, and folding never changes what a row reads. Values are checked against a reference
// kept here with a plain std::set; operands are counted with RocksDB's GetMergeOperands.

#include "store/internal/merge_bound.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "store/bitmap.h"
#include "store/codec.h"
#include "store/internal/store_rep.h"
#include "store/store.h"
#include "store/write_set.h"

namespace tally::store::internal {
namespace {

TEST(MergeBoundTest, FoldsEveryKthOperandOfABoundedFamilyOnly) {
  MergeBound bound({kBitmaps});
  int folds = 0;
  for (int i = 1; i <= 3 * MergeBound::kMaxOperands; ++i) {
    const bool fold = bound.Fold(kBitmaps, "hot");
    EXPECT_EQ(fold, i % MergeBound::kMaxOperands == 0) << i;
    folds += fold;
    EXPECT_FALSE(bound.Fold(kCounters, "hot"));
  }
  EXPECT_EQ(folds, 3);
  EXPECT_FALSE(bound.Fold(kBitmaps, "cold"));
  EXPECT_EQ(bound.counted(kBitmaps), 2u);
  EXPECT_EQ(bound.counted(kCounters), 0u);
}

class MergeBoundStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tally_merge_bound_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open(bool disable_wal = false) {
    auto s = Store::Open({.path = dir_.string(), .disable_wal = disable_wal});
    ASSERT_TRUE(s.has_value()) << s.error().message;
    store_ = std::move(*s);
  }
  static std::string Key(int i) {
    std::string key;
    BitmapKey(Scope::kWorkspace, "ws-" + std::to_string(i), Granularity::kMonth, 680, "", &key);
    return key;
  }
  // Adds user `id` to the bitmap at key(i) in `set` and in the reference.
  void Or(WriteSet* set, int i, uint32_t id) {
    UserBitmap b;
    b.Add(id);
    std::string encoded;
    b.AppendEncoded(&encoded);
    set->OrBitmap(Key(i), encoded);
    want_[i].insert(id);
  }
  // How many entries RocksDB keeps for key(i): merge operands, plus one for a base value.
  int Operands(int i) {
    std::vector<rocksdb::PinnableSlice> values(1000);
    rocksdb::GetMergeOperandsOptions options{.expected_max_number_of_operands = 1000};
    int n = 0;
    const StoreRep& rep = Access::Rep(*store_);
    rocksdb::Status s = rep.db->GetMergeOperands(rocksdb::ReadOptions(), rep.family(kBitmaps),
                                                 Key(i), values.data(), &options, &n);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return n;
  }
  void ExpectReads(int i) {
    auto view = store_->NewReadView();
    UserBitmap b;
    ASSERT_TRUE(view->OrBitmap(Key(i), &b));
    std::set<uint32_t> got;
    b.ForEach([&](uint32_t id) { got.insert(id); });
    EXPECT_EQ(got, want_[i]) << "row " << i;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::map<int, std::set<uint32_t>> want_;
};

TEST_F(MergeBoundStoreTest, PersistsFoldHotRowsAndKeepTheirValues) {
  Open();
  for (uint32_t round = 0; round < 40; ++round) {
    WriteSet set(*store_);
    Or(&set, 0, round);                      // hot: every persist
    if (round % 3 == 0) Or(&set, 1, round);  // warm
    ASSERT_TRUE(store_->Stage(&set).has_value());
    ASSERT_TRUE(store_->Persist().has_value());
    EXPECT_LT(Operands(0), MergeBound::kMaxOperands + 1) << "after persist " << round;
    ExpectReads(0);
    ExpectReads(1);
  }
  EXPECT_LT(Operands(1), MergeBound::kMaxOperands + 1);
}

TEST_F(MergeBoundStoreTest, WritesFoldHotRowsAndKeepTheirValues) {
  Open();
  for (uint32_t round = 0; round < 40; ++round) {
    WriteSet set(*store_);
    Or(&set, 0, round);
    // The same row twice in one set: neither of its operands may be lost by a fold.
    if (round % 5 == 0) Or(&set, 0, 1000 + round);
    Or(&set, 2, round % 4);
    ASSERT_TRUE(store_->Write(&set).has_value());
    EXPECT_LE(Operands(0), MergeBound::kMaxOperands + 3) << "after write " << round;
    ExpectReads(0);
    ExpectReads(2);
  }
}

TEST_F(MergeBoundStoreTest, AFlushedMemtableStartsTheCountsAgain) {
  Open();
  auto persist_hot_row = [&](uint32_t id) {
    WriteSet set(*store_);
    Or(&set, 0, id);
    ASSERT_TRUE(store_->Stage(&set).has_value());
    ASSERT_TRUE(store_->Persist().has_value());
  };
  persist_hot_row(1);
  persist_hot_row(2);
  EXPECT_EQ(Access::Rep(*store_).merge_bound.counted(kBitmaps), 1u);
  ASSERT_TRUE(store_->Flush().has_value());
  persist_hot_row(3);  // this write finds a new, empty memtable: the old count is forgotten
  EXPECT_EQ(Access::Rep(*store_).merge_bound.counted(kBitmaps), 1u);
  for (uint32_t id = 4; id < 30; ++id) persist_hot_row(id);
  ExpectReads(0);
}

TEST_F(MergeBoundStoreTest, AStoreWithoutAWalFoldsNothing) {
  Open(/*disable_wal=*/true);
  for (uint32_t round = 0; round < 20; ++round) {
    WriteSet set(*store_);
    Or(&set, 0, round);
    ASSERT_TRUE(store_->Write(&set).has_value());
  }
  EXPECT_EQ(Operands(0), 20);
  ExpectReads(0);
}

}  // namespace
}  // namespace tally::store::internal
