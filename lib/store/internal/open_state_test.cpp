#include "store/internal/open_state.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace tally::store::internal {
namespace {

// Random deltas staged into an OpenState must read back as the plain sums / unions / merges of
// the same deltas computed here with std containers.
class OpenStateTest : public ::testing::Test {
 protected:
  std::mt19937_64 rng_{7};
  uint32_t Pick(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
  std::string Key(char tag, uint32_t i) { return std::string(1, tag) + std::to_string(i); }
};

TEST_F(OpenStateTest, CountersAndPacksAddUp) {
  OpenState s;
  std::map<std::string, Counters> want;
  std::map<std::string, std::map<uint32_t, Counters>> want_packs;
  for (int round = 0; round < 500; ++round) {
    Counters c;
    c.i[Pick(Counters::kInts)] = Pick(1000);
    c.d[Pick(Counters::kDoubles)] = Pick(1000) / 8.0;
    const std::string key = Key('c', Pick(20));
    s.AddCounters(key, EncodeCounters(c));
    want[key].Add(c);

    std::map<uint32_t, Counters> part;
    for (int k = 0; k < 5; ++k) part[Pick(300)].Add(c);
    std::string pack;
    UserPackWriter w(&pack);
    for (const auto& [user, uc] : part) w.Add(user, uc);
    const std::string pack_key = Key('p', Pick(5));
    s.AddUserPack(pack_key, pack);
    for (const auto& [user, uc] : part) want_packs[pack_key][user].Add(uc);
  }
  std::string v;
  for (const auto& [key, c] : want) {
    ASSERT_TRUE(s.Get(kCounters, key, &v));
    Counters got;
    ASSERT_TRUE(AddEncodedCounters(v, &got));
    EXPECT_EQ(got.i, c.i) << key;
    EXPECT_EQ(got.d, c.d) << key;
  }
  for (const auto& [key, users] : want_packs) {
    ASSERT_TRUE(s.Get(kUserPacks, key, &v));
    std::map<uint32_t, Counters> got;
    ASSERT_TRUE(ForEachUserPackEntry(v, [&](uint32_t user, std::string_view enc) {
      ASSERT_TRUE(got.find(user) == got.end()) << "a user appears twice";
      ASSERT_TRUE(AddEncodedCounters(enc, &got[user]));
    }));
    ASSERT_EQ(got.size(), users.size());
    for (const auto& [user, c] : users) EXPECT_EQ(got[user].i, c.i) << key << " user " << user;
  }
  EXPECT_FALSE(s.Get(kCounters, "absent", &v));
  EXPECT_EQ(s.rows(), want.size() + want_packs.size());
}

TEST_F(OpenStateTest, BitmapsUnionAndSlicesSum) {
  OpenState s;
  std::map<std::string, std::set<uint32_t>> want_bits;
  std::map<std::string, Slice> want_slices;
  for (int round = 0; round < 300; ++round) {
    UserBitmap b;
    std::set<uint32_t> ids;
    for (int k = 0; k < 10; ++k) ids.insert(Pick(100000));
    for (uint32_t id : ids) b.Add(id);
    std::string enc;
    b.AppendEncoded(&enc);
    const std::string key = Key('b', Pick(10));
    s.OrBitmap(key, enc);
    want_bits[key].insert(ids.begin(), ids.end());

    Slice delta;
    delta.totals = {Pick(10) + 1u, Pick(2), Pick(500), static_cast<int64_t>(Pick(9999))};
    for (int k = 0; k < 3; ++k) delta.users.push_back({Pick(50), 1, Pick(100), 5});
    delta.agents.push_back({Pick(8), 2, Pick(100)});
    delta.Normalize();
    std::string slice_enc;
    AppendSlice(delta, &slice_enc);
    const std::string slice_key = Key('s', Pick(4));
    s.AddSlice(slice_key, slice_enc);
    want_slices[slice_key].Append(delta);
  }
  std::string v;
  for (const auto& [key, ids] : want_bits) {
    ASSERT_TRUE(s.Get(kBitmaps, key, &v));
    UserBitmap got;
    ASSERT_TRUE(got.OrEncoded(v));
    std::set<uint32_t> got_ids;
    got.ForEach([&](uint32_t id) { got_ids.insert(id); });
    EXPECT_EQ(got_ids, ids) << key;
    UserBitmap native;
    ASSERT_TRUE(s.OrBitmapInto(key, &native));
    EXPECT_EQ(native.Cardinality(), ids.size());
  }
  for (auto& [key, want] : want_slices) {
    want.Normalize();
    ASSERT_TRUE(s.Get(kRequests, key, &v));
    SliceView got;
    ASSERT_TRUE(got.Parse(v));
    EXPECT_EQ(got.totals().requests, want.totals.requests);
    EXPECT_EQ(got.totals().cost_nanos, want.totals.cost_nanos);
    ASSERT_EQ(got.user_count(), want.users.size());
    for (size_t i = 0; i < want.users.size(); ++i) {
      EXPECT_EQ(got.user(i).user, want.users[i].user);
      EXPECT_EQ(got.user(i).tokens, want.users[i].tokens);
    }
    ASSERT_EQ(got.agent_count(), want.agents.size());
    for (size_t i = 0; i < want.agents.size(); ++i) {
      EXPECT_EQ(got.agent(i).requests, want.agents[i].requests);
    }
  }
}

TEST_F(OpenStateTest, RecordsFollowFieldPolicyAndPutsKeepTheLast) {
  OpenState s;
  std::map<std::string, Record> want;
  for (int round = 0; round < 400; ++round) {
    Record update;
    const uint8_t id = round % 2 ? field::kUserEmail : field::kEntityCreated;  // latest / earliest
    MergeField(id, Pick(50), "v" + std::to_string(round), &update);
    std::string enc;
    AppendRecord(update, &enc);
    const std::string key = Key('r', Pick(6));
    s.MergeRecord(key, enc);
    MergeRecord(update, &want[key]);
    s.Put(kDict, Key('d', Pick(3)), std::to_string(round));
  }
  std::string v;
  for (const auto& [key, r] : want) {
    ASSERT_TRUE(s.Get(kRecords, key, &v));
    Record got;
    ASSERT_TRUE(DecodeRecord(v, &got));
    ASSERT_EQ(got.size(), r.size());
    for (size_t i = 0; i < r.size(); ++i) {
      EXPECT_EQ(got[i].value, r[i].value) << key;
      EXPECT_EQ(got[i].time_ms, r[i].time_ms) << key;
    }
  }
  ASSERT_TRUE(s.Get(kDict, Key('d', 0), &v) || s.Get(kDict, Key('d', 1), &v));
  EXPECT_EQ(s.Get(kDict, Key('d', 9), &v), false);
}

TEST_F(OpenStateTest, ScansInKeyOrderFromStartWithinPrefix) {
  OpenState s;
  Counters one;
  one.i[0] = 1;
  for (const char* k : {"a1", "b3", "b1", "b2", "c1"}) s.AddCounters(k, EncodeCounters(one));
  std::vector<std::string> seen;
  s.Scan(kCounters, "b", "", [&](std::string_view k, std::string_view) {
    seen.emplace_back(k);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"b1", "b2", "b3"}));
  seen.clear();
  s.Scan(kCounters, "b", "b2", [&](std::string_view k, std::string_view) {
    seen.emplace_back(k);
    return false;  // stop after the first
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"b2"}));
  size_t n = 0;
  s.ForEach([&](Family f, std::string_view, std::string_view) {
    EXPECT_EQ(f, kCounters);
    ++n;
  });
  EXPECT_EQ(n, 5u);
  s.Clear();
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.approximate_bytes(), 0u);
}

TEST_F(OpenStateTest, KeysKeepTheirBytesAcrossChunksAndAfterClear) {
  // Keys are packed into chunks: many rows fill several, and a key longer than a chunk gets its
  // own. Every key must read back whole, in order, with its own value, also after a Clear.
  for (int pass = 0; pass < 2; ++pass) {
    OpenState s;
    std::map<std::string, int64_t> want;
    for (int i = 0; i < 20000; ++i) {
      std::string key = Key('k', Pick(15000));
      if (i % 997 == 0) key += std::string(70000 + Pick(1000), static_cast<char>('a' + i % 26));
      Counters c;
      c.i[0] = i + 1;
      s.AddCounters(key, EncodeCounters(c));
      want[key] += i + 1;
    }
    std::map<std::string, int64_t> got;
    s.ForEach([&](Family f, std::string_view key, std::string_view value) {
      EXPECT_EQ(f, kCounters);
      Counters c;
      EXPECT_TRUE(AddEncodedCounters(value, &c));
      EXPECT_TRUE(got.emplace(std::string(key), c.i[0]).second) << "twice: " << key.substr(0, 20);
    });
    EXPECT_EQ(got, want);
    for (const auto& [key, sum] : want) {
      Counters c;
      ASSERT_TRUE(s.AddCountersTo(key, &c)) << key.substr(0, 20);
      EXPECT_EQ(c.i[0], sum);
    }
    s.Clear();
    EXPECT_TRUE(s.empty());
    Counters one;
    one.i[0] = 1;
    s.AddCounters("after", EncodeCounters(one));
    s.AddCounters("", EncodeCounters(one));  // an empty key is a row like any other
    EXPECT_EQ(s.rows(), 2u);
    Counters empty_key;
    EXPECT_TRUE(s.AddCountersTo("", &empty_key));
    EXPECT_EQ(empty_key.i[0], 1);
  }
}

TEST_F(OpenStateTest, MalformedOperandsAreSkippedAndCounted) {
  OpenState s;
  OpenState other;
  s.AddCounters("k", std::string("\xff\xff\xff", 3));
  s.AddSlice("s", "junk");
  s.OrBitmap("b", "junk");
  EXPECT_EQ(s.MalformedOperands(), 3u);
  EXPECT_EQ(other.MalformedOperands(), 0u);  // each open state counts its own
  s.Clear();
  EXPECT_EQ(s.MalformedOperands(), 3u);
  std::string v;
  EXPECT_FALSE(s.Get(kCounters, "k", &v));
}

}  // namespace
}  // namespace tally::store::internal
