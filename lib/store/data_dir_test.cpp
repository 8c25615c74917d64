#include "store/data_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

namespace tally::store {
namespace {

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (std::filesystem::temp_directory_path() /
             ("tally_data_dir_test_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_;
};

// Regression: two rebuilds started in the same second got the same name, so the second opened
// (and wrote into) the first one's store.
TEST_F(DataDirTest, RebuildNamesAreNeverReused) {
  std::set<std::string> names;
  for (int i = 0; i < 5; ++i) {
    auto name = NewRebuildDbName(root_);
    ASSERT_TRUE(name.has_value()) << name.error().message;
    EXPECT_TRUE(ValidDbName(*name)) << *name;
    EXPECT_EQ(name->rfind("db.rebuild-", 0), 0u) << *name;
    EXPECT_TRUE(std::filesystem::is_directory(root_ + "/" + *name));
    EXPECT_TRUE(std::filesystem::is_empty(root_ + "/" + *name));
    EXPECT_TRUE(names.insert(*name).second) << "reused " << *name;
  }
  EXPECT_FALSE(NewRebuildDbName(root_ + "/missing").has_value());
}

TEST_F(DataDirTest, CurrentSwitchesAtomicallyAndRejectsBadNames) {
  EXPECT_EQ(CurrentDbName(root_), "db");
  ASSERT_TRUE(SetCurrentDbName(root_, "db.rebuild-x").has_value());
  EXPECT_EQ(CurrentDbName(root_), "db.rebuild-x");
  for (const char* bad : {"", ".", "..", "a/b", "a b"}) {
    auto s = SetCurrentDbName(root_, bad);
    ASSERT_FALSE(s.has_value()) << bad;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(CurrentDbName(root_), "db.rebuild-x");
}

}  // namespace
}  // namespace tally::store
