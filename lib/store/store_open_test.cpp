// Opening a store (schema version, exclusive lock), flushing without a WAL, write sets.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <filesystem>
#include <map>

#include "common/saturating.h"
#include "store/directory.h"
#include "store/internal/store_rep.h"
#include "store/store.h"
#include "store/store_test_fixture.h"
#include "store/testing/codec_testing.h"
#include "store/testing/store_testing.h"
#include "store/write_set.h"

namespace tally::store {
namespace {

TEST_F(StoreTest, OnlyTheCurrentSchemaVersionOpens) {
  // A new store is stamped with the current version and reopens.
  std::string value;
  ASSERT_TRUE(Db()->Get({}, Cf(internal::kMeta), SchemaVersionKey(), &value).ok());
  EXPECT_EQ(value, EncodeUint32(kSchemaVersion));
  Reopen();
  // A store with data and no stamp was written before versions existed (version 1).
  std::string ckey;
  CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 1, {}, &ckey);
  WriteSet batch(*store_);
  batch.AddCounters(ckey, EncodeCounters(Counters()));
  ASSERT_TRUE(store_->Write(&batch).has_value());
  ASSERT_TRUE(testing::EraseSchemaVersion(*store_).has_value());
  store_.reset();
  auto old = Store::Open({.path = dir_.string()});
  ASSERT_FALSE(old.has_value());
  EXPECT_EQ(old.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(old.error().message.find("version 1"), std::string::npos) << old.error().message;
  EXPECT_NE(old.error().message.find("tally replay --mode rebuild"), std::string::npos);
  // So is a store of a newer version.
  {
    rocksdb::DB* db = nullptr;
    rocksdb::Options o;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(o, dir_.string(), &names).ok());
    for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir_.string(), cfs, &handles, &db).ok());
    const size_t meta = std::find(names.begin(), names.end(), "default") - names.begin();
    ASSERT_LT(meta, names.size());
    ASSERT_TRUE(
        db->Put({}, handles[meta], SchemaVersionKey(), EncodeUint32(kSchemaVersion + 1)).ok());
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  auto newer = Store::Open({.path = dir_.string()});
  ASSERT_FALSE(newer.has_value());
  EXPECT_EQ(newer.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(newer.error().message.find("version " + std::to_string(kSchemaVersion + 1)),
            std::string::npos);
}

TEST_F(StoreTest, WithoutWalAFlushPersistsEveryFamily) {
  store_.reset();
  std::filesystem::remove_all(dir_);
  auto nowal = Store::Open({.path = dir_.string(), .disable_wal = true});
  ASSERT_TRUE(nowal.has_value()) << nowal.error().message;
  std::string ckey, pkey;
  CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 1, {}, &ckey);
  UserPackKey("ws", Granularity::kDay, 1, &pkey);
  Counters one;
  one.i[0] = 1;
  std::string pack;
  UserPackWriter(&pack).Add(7, one);
  WriteSet batch(**nowal);
  batch.AddCounters(ckey, EncodeCounters(one));
  batch.AddUserPack(pkey, pack);
  batch.PutOffset("t", 0, {"c", 42});
  ASSERT_TRUE((*nowal)->Write(&batch).has_value());
  ASSERT_TRUE((*nowal)->Flush().has_value());
  nowal->reset();
  Reopen();
  auto view = store_->NewReadView();
  Counters c;
  ASSERT_TRUE(view->AddCounters(ckey, &c));
  EXPECT_EQ(c.i[0], 1);
  std::string got;
  ASSERT_TRUE(view->GetUserPack(pkey, &got));
  EXPECT_EQ(got, pack);
  auto offsets = store_->LoadOffsets();
  ASSERT_TRUE(offsets.has_value());
  ASSERT_EQ(offsets->size(), 1u);
  EXPECT_EQ((*offsets)[0].offset.next_offset, 42);
}

TEST_F(StoreTest, WriteSetsAreBoundToTheirStoreAndReusable) {
  const auto other_dir = dir_.string() + "_other";
  std::filesystem::remove_all(other_dir);
  auto other = Store::Open({.path = other_dir});
  ASSERT_TRUE(other.has_value()) << other.error().message;
  WriteSet set(**other);
  std::string key;
  CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 1, {}, &key);
  Counters one;
  one.i[0] = 1;
  set.AddCounters(key, EncodeCounters(one));
  auto refused = store_->Write(&set);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  // Cleared, a set writes nothing of what it held before.
  ASSERT_TRUE((*other)->Write(&set).has_value());
  set.Clear();
  EXPECT_TRUE(set.empty());
  set.AddCounters(key, EncodeCounters(one));
  ASSERT_TRUE((*other)->Write(&set).has_value());
  Counters c;
  ASSERT_TRUE((*other)->NewReadView()->AddCounters(key, &c));
  EXPECT_EQ(c.i[0], 2);
  other->reset();
  std::filesystem::remove_all(other_dir);
}

TEST_F(StoreTest, SecondOpenOfSameDirectoryFailsClearly) {
  auto second = Store::Open({.path = dir_.string()});
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().message.find(dir_.string()), std::string::npos);
}

}  // namespace
}  // namespace tally::store
