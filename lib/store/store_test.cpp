#include "store/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <filesystem>
#include <map>

#include "common/saturating.h"
#include "store/directory.h"

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
    rocksdb::WriteBatch batch;
    batch.Merge(store_->counters(), key, EncodeCounters(delta));
    UserBitmap b;
    b.Add(static_cast<uint32_t>(round));
    std::string enc;
    b.AppendEncoded(&enc);
    batch.Merge(store_->bitmaps(), bkey, enc);
    // Out-of-order event times: the latest time must win whatever the arrival order.
    Record r;
    int64_t t = round == 1 ? 300 : 100 + round;
    MergeField({field::kUserName, t, "name" + std::to_string(round)}, &r);
    std::string renc;
    AppendRecord(r, &renc);
    batch.Merge(store_->records(), rkey, renc);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    if (round == 1) {
      Reopen();
      store_->db()->CompactRange({}, store_->counters(), nullptr, nullptr);
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
  EXPECT_EQ(Store::MalformedOperands(), 0u);
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
    rocksdb::WriteBatch batch;
    batch.Merge(store_->requests(), key, enc);
    // Labels: out-of-order event times, the latest wins.
    std::string lkey;
    UserLabelKey("org", 0, &lkey);
    Record r;
    MergeField({field::kLabel, round == 1 ? 500 : 100 + round, "mail" + std::to_string(round)}, &r);
    std::string renc;
    AppendRecord(r, &renc);
    batch.Merge(store_->records(), lkey, renc);
    // The same user in another organization, with a later email: never shown for "org".
    UserLabelKey("other", 0, &lkey);
    Record o;
    MergeField({field::kLabel, 900, "x@other"}, &o);
    renc.clear();
    AppendRecord(o, &renc);
    batch.Merge(store_->records(), lkey, renc);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    if (round == 1) {
      Reopen();
      store_->db()->CompactRange({}, store_->requests(), nullptr, nullptr);
    }
  }
  rocksdb::WriteBatch dict;
  std::string k;
  UserDictReverseKey(0, &k);
  dict.Put(store_->dict(), k, "u0");
  UserDictReverseKey(1, &k);
  dict.Put(store_->dict(), k, "u1");
  AgentDictReverseKey(4, &k);
  dict.Put(store_->dict(), k, EncodeAgentRef("ws", "agent4"));
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
  EXPECT_EQ(Store::MalformedOperands(), 0u);
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
    rocksdb::WriteBatch batch;
    batch.Merge(store_->counters(), ckey, EncodeCounters(big));
    batch.Merge(store_->userpacks(), pkey, pack);
    // 1,000 max-cost requests (10^15 nanos each) per round: 10,000 saturate cost_nanos.
    for (int i = 0; i < 1000; ++i) batch.Merge(store_->requests(), skey, senc);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    if (round == 3) ASSERT_TRUE(store_->db()->Flush({}).ok());
    if (round == 5) Reopen();
    if (round == 7) {
      store_->db()->CompactRange({}, store_->counters(), nullptr, nullptr);
      store_->db()->CompactRange({}, store_->userpacks(), nullptr, nullptr);
      store_->db()->CompactRange({}, store_->requests(), nullptr, nullptr);
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
  EXPECT_EQ(Store::MalformedOperands(), 0u);
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
  rocksdb::WriteBatch batch;
  batch.Put(store_->dedupe(), old_recent, EncodeDedupeValue(1000 * day, now));
  batch.Put(store_->dedupe(), old_old, EncodeDedupeValue(1000 * day, now - 30 * day));
  batch.Put(store_->dedupe(), fresh, EncodeDedupeValue(2000 * day, now - 30 * day));
  ASSERT_TRUE(store_->Write(&batch).has_value());
  store_->ObserveEventTime(2000 * day);
  ASSERT_TRUE(store_->db()->Flush({}, store_->dedupe()).ok());
  ASSERT_TRUE(store_->db()->CompactRange({}, store_->dedupe(), nullptr, nullptr).ok());
  std::string v;
  // A backfilled (old) event written just now is kept: re-running the backfill is a no-op.
  EXPECT_TRUE(store_->db()->Get({}, store_->dedupe(), old_recent, &v).ok());
  EXPECT_FALSE(store_->db()->Get({}, store_->dedupe(), old_old, &v).ok());
  EXPECT_TRUE(store_->db()->Get({}, store_->dedupe(), fresh, &v).ok());
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
  rocksdb::WriteBatch b1;
  b1.Merge(store_->counters(), key, EncodeCounters(one));
  ASSERT_TRUE(store_->Write(&b1).has_value());
  auto view = store_->NewReadView();
  rocksdb::WriteBatch b2;
  b2.Merge(store_->counters(), key, EncodeCounters(one));
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
    rocksdb::WriteBatch b;
    b.Merge(store_->counters(), key, EncodeCounters(c));
    ASSERT_TRUE(store_->Write(&b).has_value());
  }
  // A neighbouring bucket must not show up.
  std::string id, other;
  ScopeIdUser(8, &id);
  CounterKey(Scope::kUser, "ws", Granularity::kMonth, 6, id, &other);
  rocksdb::WriteBatch b;
  b.Merge(store_->counters(), other, EncodeCounters(Counters{}));
  ASSERT_TRUE(store_->Write(&b).has_value());

  std::string prefix;
  CounterBucketPrefix(Scope::kUser, "ws", Granularity::kMonth, 5, &prefix);
  std::vector<uint32_t> users;
  store_->NewReadView()->ScanCounters(prefix, [&](std::string_view rest, const Counters& c) {
    uint32_t u;
    ASSERT_TRUE(DecodeScopeIdUser(rest, &u));
    users.push_back(u);
    EXPECT_EQ(c.i[1], 7);
  });
  EXPECT_EQ(users, (std::vector<uint32_t>{7, 300, 70000}));  // numeric order
}

TEST_F(StoreTest, OffsetsPersist) {
  std::string key;
  OffsetKey("t", 2, &key);
  rocksdb::WriteBatch b;
  b.Put(store_->meta(), key, EncodeOffset({"c1", 99}));
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
    rocksdb::WriteBatch batch;
    batch.Merge(store_->userpacks(), key, pack);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    if (round == 10) ASSERT_TRUE(store_->db()->Flush({}, store_->userpacks()).ok());
    if (round == 20) Reopen();
    if (round == 30) store_->db()->CompactRange({}, store_->userpacks(), nullptr, nullptr);
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
    rocksdb::WriteBatch batch;
    batch.Merge(store_->userpacks(), key, p);
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
  EXPECT_EQ(Store::MalformedOperands(), 0u);
}

TEST_F(StoreTest, UserPackWithMorePartsThanPinnedIsReadMerged) {
  // 34 operands in 34 L0 files (compactions off): more than ReadView pins unmerged (32), so the
  // read falls back to one merged part, with the same per-user sums.
  ASSERT_TRUE(
      store_->db()->SetOptions(store_->userpacks(), {{"disable_auto_compactions", "true"}}).ok());
  std::string key;
  UserPackKey("ws", Granularity::kDay, 3, &key);
  for (uint32_t round = 0; round < 34; ++round) {
    Counters c;
    c.i[1] = round + 1;
    std::string pack;
    UserPackWriter w(&pack);
    w.Add(round % 3, c);
    rocksdb::WriteBatch batch;
    batch.Merge(store_->userpacks(), key, pack);
    ASSERT_TRUE(store_->Write(&batch).has_value());
    ASSERT_TRUE(store_->db()->Flush({}, store_->userpacks()).ok());
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
  ASSERT_TRUE(store_->db()->Get({}, store_->meta(), SchemaVersionKey(), &value).ok());
  EXPECT_EQ(value, EncodeUint32(kSchemaVersion));
  Reopen();
  // A store with data and no stamp was written before versions existed (version 1).
  std::string ckey;
  CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 1, {}, &ckey);
  rocksdb::WriteBatch batch;
  batch.Merge(store_->counters(), ckey, EncodeCounters(Counters()));
  batch.Delete(store_->meta(), SchemaVersionKey());
  ASSERT_TRUE(store_->Write(&batch).has_value());
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
  rocksdb::WriteBatch batch;
  batch.Merge((*nowal)->counters(), ckey, EncodeCounters(one));
  batch.Merge((*nowal)->userpacks(), pkey, pack);
  batch.Put((*nowal)->meta(), "offset", "42");
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
  std::string offset;
  ASSERT_TRUE(store_->db()->Get({}, store_->meta(), "offset", &offset).ok());
  EXPECT_EQ(offset, "42");
}

TEST_F(StoreTest, SecondOpenOfSameDirectoryFailsClearly) {
  auto second = Store::Open({.path = dir_.string()});
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().message.find(dir_.string()), std::string::npos);
}

}  // namespace
}  // namespace tally::store
