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
#include "store/store_test_fixture.h"
#include "store/testing/codec_testing.h"
#include "store/testing/store_testing.h"
#include "store/write_set.h"

namespace tally::store {
namespace {

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

}  // namespace
}  // namespace tally::store
