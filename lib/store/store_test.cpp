#include "store/store.h"

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
#include "store/testing/codec_testing.h"
#include "store/testing/store_testing.h"
#include "store/write_set.h"

namespace tally::store {
namespace {

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

TEST_F(StoreTest, MergesSurviveReopenAndCompaction) {
  std::string key;
  CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 10, {}, &key);
  Counters delta;
  delta.i[0] = 2;
  delta.d[1] = 1.5;
  std::string bkey;
  BitmapKey(Scope::kWorkspace, "ws", Granularity::kDay, 10, {}, &bkey);
  std::string rkey;
  UserProfileKey("ws", "u1", &rkey);
  for (int round = 0; round < 3; ++round) {
    WriteSet batch(*store_);
    batch.AddCounters(key, EncodeCounters(delta));
    UserBitmap b;
    b.Add(static_cast<uint32_t>(round));
    std::string enc;
    b.AppendEncoded(&enc);
    batch.OrBitmap(bkey, enc);
    // Out-of-order event times: the latest time must win whatever the arrival order.
    Record r;
    int64_t t = round == 1 ? 300 : 100 + round;
    MergeField({field::kUserName, t, "name" + std::to_string(round)}, &r);
    std::string renc;
    AppendRecord(r, &renc);
    batch.MergeRecord(rkey, renc);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    if (round == 1) {
      Reopen();
      Db()->CompactRange({}, Cf(internal::kCounters), nullptr, nullptr);
    }
  }
  auto view = store_->NewReadView();
  Counters c;
  ASSERT_TRUE(view->AddCounters(key, &c));
  EXPECT_EQ(c.i[0], 6);
  EXPECT_DOUBLE_EQ(c.d[1], 4.5);
  UserBitmap b;
  ASSERT_TRUE(view->OrBitmap(bkey, &b));
  EXPECT_EQ(b.Cardinality(), 3u);
  Record r;
  ASSERT_TRUE(view->GetRecord(rkey, &r));
  EXPECT_EQ(FindField(r, field::kUserName)->value, "name1");
  EXPECT_EQ(store_->MalformedOperands(), 0u);
}

TEST_F(StoreTest, SliceMergesAndDirectoryReload) {
  std::string key;
  RequestsSliceKey("org", kAllAgents, nullptr, Granularity::kMonth, 600, &key);
  for (int round = 0; round < 3; ++round) {
    Slice s;
    s.totals = {1, 0, 10, 500};
    s.users = {{static_cast<uint32_t>(round % 2), 1, 10, 500}};
    s.agents = {{4, 1, 10}};
    std::string enc;
    AppendSlice(s, &enc);
    WriteSet batch(*store_);
    batch.AddSlice(key, enc);
    // Labels: out-of-order event times, the latest wins.
    std::string lkey;
    UserLabelKey("org", 0, &lkey);
    Record r;
    MergeField({field::kLabel, round == 1 ? 500 : 100 + round, "mail" + std::to_string(round)}, &r);
    std::string renc;
    AppendRecord(r, &renc);
    batch.MergeRecord(lkey, renc);
    // The same user in another organization, with a later email: never shown for "org".
    UserLabelKey("other", 0, &lkey);
    Record o;
    MergeField({field::kLabel, 900, "x@other"}, &o);
    renc.clear();
    AppendRecord(o, &renc);
    batch.MergeRecord(lkey, renc);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    if (round == 1) {
      Reopen();
      Db()->CompactRange({}, Cf(internal::kRequests), nullptr, nullptr);
    }
  }
  WriteSet dict(*store_);
  dict.PutUser("u0", 0);
  dict.PutUser("u1", 1);
  dict.PutAgent("ws", "agent4", 4);
  ASSERT_TRUE(store_->Write(&dict).has_value());

  auto view = store_->NewReadView();
  bool read = view->ReadSlice(key, [](const SliceView& s) {
    EXPECT_EQ(s.totals().requests, 3u);
    ASSERT_EQ(s.user_count(), 2u);
    EXPECT_EQ(s.user(0).requests, 2u);
    ASSERT_EQ(s.agent_count(), 1u);
    EXPECT_EQ(s.agent(0).requests, 3u);
  });
  EXPECT_TRUE(read);

  auto dir = Directory::Load(*store_);
  ASSERT_TRUE(dir.has_value());
  Directory::Reader r(**dir);
  const std::vector<uint32_t> org = r.Organizations({"org"});
  EXPECT_EQ(r.UserLabel(org, 0), "mail1");
  EXPECT_EQ(r.UserLabel(org, 1), "u1");  // no email: the id
  EXPECT_EQ(r.UserLabel(r.Organizations({"other"}), 0), "x@other");
  EXPECT_EQ(r.UserLabel(r.Organizations({"org", "other"}), 0), "x@other");  // the latest
  EXPECT_EQ(r.UserLabel(r.Organizations({"unknown"}), 0), "u0");
  EXPECT_EQ(r.AgentName(4), "agent4");  // never named: the id
  ASSERT_NE(r.AgentsNamed("agent4"), nullptr);
  EXPECT_EQ(store_->MalformedOperands(), 0u);
}

// The merge operators (tally.counters, tally.user_counters, tally.slices) saturate sums that
// would overflow, across writes, flushes, reopen and compaction, and never fail.
TEST_F(StoreTest, MergeOperatorsSaturateAndNeverFail) {
  const uint64_t before = tally::SaturatedSums();
  std::string ckey, pkey, skey;
  CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 10, {}, &ckey);
  UserPackKey("ws", Granularity::kDay, 10, &pkey);
  RequestsSliceKey("org", kAllAgents, nullptr, Granularity::kDay, 10, &skey);
  Counters big;
  big.i[Counters::kAgentTokens] = INT64_MAX / 2;
  big.d[Counters::kAgentMessageCredits] = 1.7e308;
  std::string pack;
  UserPackWriter(&pack).Add(3, big);
  Slice slice;
  slice.totals = {1, 0, 1'000'000'000'000, 1'000'000'000'000'000};
  slice.users = {{3, 1, 1'000'000'000'000, 1'000'000'000'000'000}};
  slice.agents = {{4, 1, 1'000'000'000'000}};
  std::string senc;
  AppendSlice(slice, &senc);
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    WriteSet batch(*store_);
    batch.AddCounters(ckey, EncodeCounters(big));
    batch.AddUserPack(pkey, pack);
    // 1,000 max-cost requests (10^15 nanos each) per round: 10,000 saturate cost_nanos.
    for (int i = 0; i < 1000; ++i) batch.AddSlice(skey, senc);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    if (round == 3) {
      ASSERT_TRUE(Db()->Flush({}).ok());
    }
    if (round == 5) Reopen();
    if (round == 7) {
      Db()->CompactRange({}, Cf(internal::kCounters), nullptr, nullptr);
      Db()->CompactRange({}, Cf(internal::kUserPacks), nullptr, nullptr);
      Db()->CompactRange({}, Cf(internal::kRequests), nullptr, nullptr);
    }
  }
  auto view = store_->NewReadView();
  Counters c;
  ASSERT_TRUE(view->AddCounters(ckey, &c));
  EXPECT_EQ(c.i[Counters::kAgentTokens], INT64_MAX);
  EXPECT_EQ(c.d[Counters::kAgentMessageCredits], DBL_MAX);
  Counters u;
  ASSERT_TRUE(view->AddUserCounters(pkey, 3, &u));
  EXPECT_EQ(u.i[Counters::kAgentTokens], INT64_MAX);
  EXPECT_EQ(u.d[Counters::kAgentMessageCredits], DBL_MAX);
  bool read = view->ReadSlice(skey, [](const SliceView& s) {
    EXPECT_EQ(s.totals().requests, static_cast<uint64_t>(kRounds * 1000));
    EXPECT_EQ(s.totals().tokens, static_cast<uint64_t>(kRounds) * 1000 * 1'000'000'000'000);
    EXPECT_EQ(s.totals().cost_nanos, INT64_MAX);
    ASSERT_EQ(s.user_count(), 1u);
    EXPECT_EQ(s.user(0).cost_nanos, INT64_MAX);
    EXPECT_EQ(s.user(0).requests, static_cast<uint64_t>(kRounds * 1000));
  });
  EXPECT_TRUE(read);
  EXPECT_GT(tally::SaturatedSums(), before);
  EXPECT_EQ(store_->MalformedOperands(), 0u);
}

TEST(DirectoryTest, RenamesMoveTheNameIndexAndLatestWins) {
  Directory d;
  using K = Directory::Update::Kind;
  d.Apply({{K::kNewAgent, 2, 0, "ws", "a2"},
           {K::kAgentName, 2, 100, "Old", ""},
           {K::kAgentName, 2, 300, "New", ""},
           {K::kAgentName, 2, 200, "Stale", ""},  // older than "New": ignored
           {K::kNewAgent, 5, 0, "ws", "a5"},
           {K::kAgentName, 5, 50, "New", ""}});
  Directory::Reader r(d);
  EXPECT_EQ(r.AgentName(2), "New");
  EXPECT_EQ(r.AgentsNamed("Old"), nullptr);
  EXPECT_EQ(r.AgentsNamed("Stale"), nullptr);
  ASSERT_NE(r.AgentsNamed("New"), nullptr);
  EXPECT_EQ(*r.AgentsNamed("New"), (std::vector<uint32_t>{2, 5}));
  EXPECT_EQ(r.AgentsNamed("a2"), nullptr);  // named agents are not found by id
  EXPECT_EQ(r.AgentRef(5).second, "a5");
  EXPECT_EQ(r.UserLabel({}, 99), "");
}

TEST(DirectoryTest, UserLabelsComeOnlyFromTheScopesOrganizations) {
  Directory d;
  using K = Directory::Update::Kind;
  d.Apply({{K::kNewUser, 0, 0, "u0", ""},
           {K::kUserEmail, 0, 100, "real@org2", "org_2"},
           {K::kUserEmail, 0, 200, "x@evil", "org_1"},       // later, but another organization
           {K::kUserEmail, 0, 50, "stale@org2", "org_2"}});  // older than real@org2: ignored
  Directory::Reader r(d);
  EXPECT_EQ(r.UserLabel(r.Organizations({"org_2"}), 0), "real@org2");
  EXPECT_EQ(r.UserLabel(r.Organizations({"org_1"}), 0), "x@evil");
  EXPECT_EQ(r.UserLabel(r.Organizations({"org_3"}), 0), "u0");  // no email there: the id
  EXPECT_EQ(r.UserLabel(r.Organizations({"org_1", "org_2"}), 0), "x@evil");
}

TEST_F(StoreTest, DedupeEntriesExpireByEventTimeAndWallClock) {
  const int64_t day = 86'400'000;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::string old_recent, old_old, fresh;
  DedupeKey("s", "old-event-written-now", &old_recent);
  DedupeKey("s", "old-event-written-long-ago", &old_old);
  DedupeKey("s", "fresh-event", &fresh);
  WriteSet batch(*store_);
  batch.PutDedupe(old_recent, 1000 * day, now);
  batch.PutDedupe(old_old, 1000 * day, now - 30 * day);
  batch.PutDedupe(fresh, 2000 * day, now - 30 * day);
  ASSERT_TRUE(store_->Write(&batch).has_value());
  store_->ObserveEventTime(2000 * day);
  ASSERT_TRUE(Db()->Flush({}, Cf(internal::kDedupe)).ok());
  ASSERT_TRUE(Db()->CompactRange({}, Cf(internal::kDedupe), nullptr, nullptr).ok());
  std::string v;
  // A backfilled (old) event written just now is kept: re-running the backfill is a no-op.
  EXPECT_TRUE(Db()->Get({}, Cf(internal::kDedupe), old_recent, &v).ok());
  EXPECT_FALSE(Db()->Get({}, Cf(internal::kDedupe), old_old, &v).ok());
  EXPECT_TRUE(Db()->Get({}, Cf(internal::kDedupe), fresh, &v).ok());
  int64_t t, inserted;
  ASSERT_TRUE(DecodeDedupeValue(v, &t, &inserted));
  EXPECT_EQ(t, 2000 * day);
  // Entries of the previous format (event time only) still decode.
  std::string legacy;
  PutFixed64(&legacy, 42);
  ASSERT_TRUE(DecodeDedupeValue(legacy, &t, &inserted));
  EXPECT_EQ(t, 42);
  EXPECT_EQ(inserted, 0);
}

TEST_F(StoreTest, SnapshotIsolatesReads) {
  std::string key;
  CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 1, {}, &key);
  Counters one;
  one.i[0] = 1;
  WriteSet b1(*store_);
  b1.AddCounters(key, EncodeCounters(one));
  ASSERT_TRUE(store_->Write(&b1).has_value());
  auto view = store_->NewReadView();
  WriteSet b2(*store_);
  b2.AddCounters(key, EncodeCounters(one));
  ASSERT_TRUE(store_->Write(&b2).has_value());
  Counters c;
  view->AddCounters(key, &c);
  EXPECT_EQ(c.i[0], 1);
}

TEST_F(StoreTest, ScanCountersListsScopeIds) {
  for (uint32_t user : {7u, 300u, 70000u}) {
    std::string id, key;
    ScopeIdUser(user, &id);
    CounterKey(Scope::kUser, "ws", Granularity::kMonth, 5, id, &key);
    Counters c;
    c.i[1] = 7;
    WriteSet b(*store_);
    b.AddCounters(key, EncodeCounters(c));
    ASSERT_TRUE(store_->Write(&b).has_value());
  }
  // A neighbouring bucket must not show up.
  std::string id, other;
  ScopeIdUser(8, &id);
  CounterKey(Scope::kUser, "ws", Granularity::kMonth, 6, id, &other);
  WriteSet b(*store_);
  b.AddCounters(other, EncodeCounters(Counters{}));
  ASSERT_TRUE(store_->Write(&b).has_value());

  std::string prefix;
  CounterBucketPrefix(Scope::kUser, "ws", Granularity::kMonth, 5, &prefix);
  std::vector<uint32_t> users;
  store_->NewReadView()->ScanCounters(prefix, [&](std::string_view rest, const Counters& c) {
    uint32_t u;
    ASSERT_TRUE(testing::DecodeScopeIdUser(rest, &u));
    users.push_back(u);
    EXPECT_EQ(c.i[1], 7);
  });
  EXPECT_EQ(users, (std::vector<uint32_t>{7, 300, 70000}));  // numeric order
}

TEST_F(StoreTest, OffsetsPersist) {
  WriteSet b(*store_);
  b.PutOffset("t", 2, {"c1", 99});
  ASSERT_TRUE(store_->Write(&b).has_value());
  Reopen();
  auto offsets = store_->LoadOffsets();
  ASSERT_TRUE(offsets.has_value());
  ASSERT_EQ(offsets->size(), 1u);
  EXPECT_EQ((*offsets)[0].topic, "t");
  EXPECT_EQ((*offsets)[0].partition, 2);
  EXPECT_EQ((*offsets)[0].offset.next_offset, 99);
  EXPECT_EQ((*offsets)[0].offset.cluster_id, "c1");
}

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

TEST_F(StoreTest, SecondOpenOfSameDirectoryFailsClearly) {
  auto second = Store::Open({.path = dir_.string()});
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().message.find(dir_.string()), std::string::npos);
}

}  // namespace
}  // namespace tally::store
