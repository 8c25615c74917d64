// ReadView and the writer's reads (read_view.cpp, store_lookup.cpp).
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

TEST_F(StoreTest, UserPacksMergePerUserAcrossWritesFlushesAndCompaction) {
  std::string key;
  UserPackKey("ws", Granularity::kMonth, 7, &key);
  // 40 writes (well past max_successive_merges), each adding one to users round % 5 and 1000.
  std::map<uint32_t, int64_t> want;
  for (int round = 0; round < 40; ++round) {
    Counters one;
    one.i[3] = 1;
    std::string pack;
    UserPackWriter w(&pack);
    w.Add(static_cast<uint32_t>(round % 5), one);
    w.Add(1000, one);
    ++want[static_cast<uint32_t>(round % 5)];
    ++want[1000];
    WriteSet batch(*store_);
    batch.AddUserPack(key, pack);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    if (round == 10) {
      ASSERT_TRUE(Db()->Flush({}, Cf(internal::kUserPacks)).ok());
    }
    if (round == 20) Reopen();
    if (round == 30) Db()->CompactRange({}, Cf(internal::kUserPacks), nullptr, nullptr);
  }
  std::string pack;
  ASSERT_TRUE(store_->NewReadView()->GetUserPack(key, &pack));
  std::map<uint32_t, int64_t> got;
  ASSERT_TRUE(ForEachUserPackEntry(pack, [&](uint32_t user, std::string_view c) {
    Counters counters;
    EXPECT_TRUE(AddEncodedCounters(c, &counters));
    got[user] += counters.i[3];
  }));
  EXPECT_EQ(got, want);
  // The unmerged parts sum to the same, and a single user is found in them.
  for (int extra = 0; extra < 3; ++extra) {  // operands on top of the compacted value
    Counters one;
    one.i[3] = 1;
    std::string p;
    UserPackWriter w(&p);
    w.Add(1000, one);
    ++want[1000];
    WriteSet batch(*store_);
    batch.AddUserPack(key, p);
    ASSERT_TRUE(store_->Write(&batch).has_value());
  }
  auto view = store_->NewReadView();
  std::map<uint32_t, int64_t> from_parts;
  int64_t user_1000 = 0;
  size_t parts = 0;
  ASSERT_TRUE(view->ForEachUserPackPart(key, [&](std::string_view part) {
    ++parts;
    ForEachUserPackEntry(part, [&](uint32_t user, std::string_view c) {
      Counters counters;
      EXPECT_TRUE(AddEncodedCounters(c, &counters));
      from_parts[user] += counters.i[3];
    });
    std::string_view c;
    Counters counters;
    if (FindUserPackEntry(part, 1000, &c)) AddEncodedCounters(c, &counters);
    user_1000 += counters.i[3];
    EXPECT_FALSE(FindUserPackEntry(part, 999, &c));
  }));
  EXPECT_GT(parts, 1u);
  EXPECT_EQ(from_parts, want);
  EXPECT_EQ(user_1000, want[1000]);
  std::string absent;
  UserPackKey("ws", Granularity::kMonth, 8, &absent);
  EXPECT_FALSE(view->ForEachUserPackPart(absent, [](std::string_view) { FAIL(); }));
  EXPECT_EQ(store_->MalformedOperands(), 0u);
}

TEST_F(StoreTest, UserPackWithMorePartsThanPinnedIsReadMerged) {
  // 34 operands in 34 L0 files (compactions off): more than ReadView pins unmerged (32), so the
  // read falls back to one merged part, with the same per-user sums.
  ASSERT_TRUE(
      Db()->SetOptions(Cf(internal::kUserPacks), {{"disable_auto_compactions", "true"}}).ok());
  std::string key;
  UserPackKey("ws", Granularity::kDay, 3, &key);
  for (uint32_t round = 0; round < 34; ++round) {
    Counters c;
    c.i[1] = round + 1;
    std::string pack;
    UserPackWriter w(&pack);
    w.Add(round % 3, c);
    WriteSet batch(*store_);
    batch.AddUserPack(key, pack);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    ASSERT_TRUE(Db()->Flush({}, Cf(internal::kUserPacks)).ok());
  }
  std::map<uint32_t, int64_t> want;
  for (uint32_t round = 0; round < 34; ++round) want[round % 3] += round + 1;
  std::map<uint32_t, int64_t> got;
  size_t parts = 0;
  ASSERT_TRUE(store_->NewReadView()->ForEachUserPackPart(key, [&](std::string_view part) {
    ++parts;
    ForEachUserPackEntry(part, [&](uint32_t user, std::string_view c) {
      Counters counters;
      EXPECT_TRUE(AddEncodedCounters(c, &counters));
      got[user] += counters.i[1];
    });
  }));
  EXPECT_EQ(parts, 1u);
  EXPECT_EQ(got, want);
}

TEST_F(StoreTest, WriterReadsSeeTheLatestState) {
  auto next = store_->LoadDictionaryNext();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->user, 0u);
  WriteSet set(*store_);
  set.PutUser("u7", 7);
  set.PutUserNext(8);
  set.PutAgent("ws", "a3", 3);
  set.PutAgentNext(4);
  set.PutPair(3, 7, 11);
  set.PutPairNext(12);
  std::string d1, d2;
  DedupeKey("s", "e1", &d1);
  DedupeKey("s", "e2", &d2);
  set.PutDedupe(d2, 1, 1);
  std::string wkey;
  WorkspaceKey("ws", &wkey);
  Record row;
  MergeField({field::kWorkspaceOrganization, 5, "org"}, &row);
  std::string enc;
  AppendRecord(row, &enc);
  set.MergeRecord(wkey, enc);
  ASSERT_TRUE(store_->Write(&set).has_value());

  next = store_->LoadDictionaryNext();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->user, 8u);
  EXPECT_EQ(next->agent, 4u);
  EXPECT_EQ(next->pair, 12u);
  EXPECT_EQ(store_->LookupUserIndex("u7").value(), std::optional<uint32_t>(7));
  EXPECT_EQ(store_->LookupUserIndex("u8").value(), std::nullopt);
  EXPECT_EQ(store_->LookupAgentIndex("ws", "a3").value(), std::optional<uint32_t>(3));
  EXPECT_EQ(store_->LookupPairIndex(3, 7).value(), std::optional<uint32_t>(11));
  EXPECT_EQ(store_->LookupPairIndex(7, 3).value(), std::nullopt);
  uint32_t u;
  ASSERT_TRUE(store_->NewReadView()->LookupUser("u7", &u));
  EXPECT_EQ(u, 7u);
  std::string id;
  ASSERT_TRUE(store_->NewReadView()->UserIdOf(7, &id));
  EXPECT_EQ(id, "u7");

  const std::vector<std::string_view> keys = {d1, d2};
  std::vector<uint8_t> stored;
  ASSERT_TRUE(store_->FindDedupeKeys(keys, &stored).has_value());
  EXPECT_EQ(stored, (std::vector<uint8_t>{0, 1}));
  std::vector<std::string> scanned;
  ASSERT_TRUE(store_
                  ->ScanDedupeKeys([&](std::string_view k) {
                    scanned.emplace_back(k);
                    return true;
                  })
                  .has_value());
  EXPECT_EQ(scanned, (std::vector<std::string>{d2}));
  std::vector<std::pair<std::string, std::string>> workspaces;
  ASSERT_TRUE(store_
                  ->ScanWorkspaceRecords([&](std::string_view ws, const Record& r) {
                    const Field* f = FindField(r, field::kWorkspaceOrganization);
                    workspaces.emplace_back(ws, f ? f->value : "");
                  })
                  .has_value());
  EXPECT_EQ(workspaces, (std::vector<std::pair<std::string, std::string>>{{"ws", "org"}}));
}

TEST_F(StoreTest, ViewsBatchReadsAndMergeScans) {
  // Entity bitmaps of two buckets; agents a1 (both buckets), a2 (first), a3 (second).
  std::string p1, p2;
  BitmapKey(Scope::kEntity, "ws", Granularity::kDay, 1, "", &p1);
  BitmapKey(Scope::kEntity, "ws", Granularity::kDay, 2, "", &p2);
  WriteSet set(*store_);
  auto put = [&](int32_t bucket, std::string_view agent, std::vector<uint32_t> users) {
    std::string id, key, enc;
    ScopeIdEntity(event::EntityKind::kAgent, agent, &id);
    BitmapKey(Scope::kEntity, "ws", Granularity::kDay, bucket, id, &key);
    UserBitmap b;
    for (uint32_t u : users) b.Add(u);
    b.AppendEncoded(&enc);
    set.OrBitmap(key, enc);
    return key;
  };
  const std::string k11 = put(1, "a1", {1, 2});
  const std::string k12 = put(2, "a1", {2, 3});
  put(1, "a2", {4});
  put(2, "a3", {5, 6, 7});
  ASSERT_TRUE(store_->Write(&set).has_value());
  auto view = store_->NewReadView();
  const uint64_t version = view->version();
  EXPECT_EQ(store_->NewReadView()->version(), version);  // nothing written in between

  std::string absent;
  BitmapKey(Scope::kEntity, "ws", Granularity::kDay, 9, "x", &absent);
  EXPECT_EQ(view->UnionCardinalities({{k11, k12}, {k11}, {absent}, {}}),
            (std::vector<uint64_t>{3, 2, 0, 0}));

  const std::vector<std::string> prefixes = {p1, p2};
  std::vector<std::string> got;
  view->MergeScanBitmaps(prefixes,
                         [&](std::string_view suffix, std::span<const ReadView::ScanRow> rows) {
                           std::string line(suffix.substr(1));  // past the kind byte
                           UserBitmap users;
                           for (const ReadView::ScanRow& r : rows) {
                             line += " " + std::to_string(r.prefix);
                             users.OrEncoded(r.value);
                           }
                           got.push_back(line + " = " + std::to_string(users.Cardinality()));
                         });
  std::vector<std::string> want;
  for (auto [agent, rows] : {std::pair{"a1", " 0 1 = 3"}, {"a2", " 0 = 1"}, {"a3", " 1 = 3"}}) {
    std::string id;
    ScopeIdEntity(event::EntityKind::kAgent, agent, &id);
    want.push_back(id.substr(1) + rows);
  }
  EXPECT_EQ(got, want);

  // A later write changes the version of later views, not of this one.
  WriteSet more(*store_);
  more.PutNewestEventTime(1);
  ASSERT_TRUE(store_->Write(&more).has_value());
  EXPECT_EQ(view->version(), version);
  EXPECT_GT(store_->NewReadView()->version(), version);
}

}  // namespace
}  // namespace tally::store
