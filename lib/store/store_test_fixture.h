#pragma once
// The fixture of the Store tests (store_test.cpp, store_open_test.cpp, store_read_test.cpp): a
// store in a fresh directory per test, reopened on demand, with its RocksDB objects at hand.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "store/internal/store_rep.h"
#include "store/store.h"

namespace tally::store {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tally_store_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    auto s = Store::Open({.path = dir_.string()});
    ASSERT_TRUE(s.has_value()) << s.error().message;
    store_ = std::move(*s);
  }
  // The RocksDB objects, for what only tests do (flushes and compactions on demand, raw reads).
  rocksdb::DB* Db() const { return internal::Access::Db(*store_); }
  rocksdb::ColumnFamilyHandle* Cf(internal::Family f) const {
    return internal::Access::Cf(*store_, f);
  }
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace tally::store
