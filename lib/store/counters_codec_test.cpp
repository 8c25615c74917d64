#include "store/counters_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "store/dedupe_codec.h"
#include "store/record_codec.h"
#include "store/slice_codec.h"
#include "store/testing/codec_testing.h"
#include "store/varint.h"

namespace tally::store {
namespace {

TEST(CodecTest, KeysDoNotCollideAcrossComponents) {
  // ("ab", "c") and ("a", "bc") must give different keys.
  std::string k1, k2, id1, id2;
  ScopeIdProject("c", &id1);
  ScopeIdProject("bc", &id2);
  CounterKey(Scope::kProject, "ab", Granularity::kDay, 1, id1, &k1);
  CounterKey(Scope::kProject, "a", Granularity::kDay, 1, id2, &k2);
  EXPECT_NE(k1, k2);
  std::string prefix, uid, ukey;
  ScopeIdUser(42, &uid);
  CounterKey(Scope::kUser, "ab", Granularity::kDay, 1, uid, &ukey);
  CounterBucketPrefix(Scope::kUser, "ab", Granularity::kDay, 1, &prefix);
  ASSERT_TRUE(ukey.starts_with(prefix));
  uint32_t user;
  ASSERT_TRUE(testing::DecodeScopeIdUser(std::string_view(ukey).substr(prefix.size()), &user));
  EXPECT_EQ(user, 42u);
}

TEST(CodecTest, CountersAddAndRejectMalformed) {
  Counters a;
  a.i[3] = 5;
  a.i[Counters::kAgentTokens] = -2;
  a.d[Counters::kAgentCost] = 0.25;
  Counters sum;
  ASSERT_TRUE(AddEncodedCounters(EncodeCounters(a), &sum));
  ASSERT_TRUE(AddEncodedCounters(EncodeCounters(a), &sum));
  EXPECT_EQ(sum.i[3], 10);
  EXPECT_EQ(sum.i[Counters::kAgentTokens], -4);
  EXPECT_DOUBLE_EQ(sum.d[Counters::kAgentCost], 0.5);
  Counters before = sum;
  std::string bad = EncodeCounters(a);
  bad.pop_back();
  EXPECT_FALSE(AddEncodedCounters(bad, &sum));
  EXPECT_EQ(sum.i[3], before.i[3]);
  EXPECT_FALSE(AddEncodedCounters("\xff\xff\xff\xff\x0f", &sum));
  EXPECT_TRUE(EncodeCounters(Counters{}).size() == 2 && Counters{}.IsZero());
}

// Random sparse counters (small and large, negative ints; doubles) round-trip through the codec
// and add field-wise; every truncation or extension of a valid value is refused and leaves the
// sum unchanged.
TEST(CodecTest, CountersRandomRoundTripAndTruncations) {
  std::mt19937_64 rng(7);
  Counters expected, sum;
  for (int round = 0; round < 2000; ++round) {
    Counters c;
    for (int k = 0; k < Counters::kInts; ++k) {
      switch (rng() % 4) {
        case 0:
          c.i[k] = static_cast<int64_t>(rng() % 60);  // one-byte varints
          break;
        case 1:
          c.i[k] = static_cast<int64_t>(rng()) >> (rng() % 63);  // any size, either sign
          break;
        default:
          break;  // absent
      }
    }
    for (int k = 0; k < Counters::kDoubles; ++k)
      if (rng() % 2) c.d[k] = static_cast<double>(rng() % 100000) / 7.0;
    const std::string enc = EncodeCounters(c);
    Counters one;
    ASSERT_TRUE(AddEncodedCounters(enc, &one));
    for (int k = 0; k < Counters::kInts; ++k) ASSERT_EQ(one.i[k], c.i[k]) << round << " " << k;
    for (int k = 0; k < Counters::kDoubles; ++k) ASSERT_EQ(one.d[k], c.d[k]) << round;
    ASSERT_TRUE(AddEncodedCounters(enc, &sum));
    expected.Add(c);
    const Counters before = sum;
    for (size_t len = 0; len < enc.size(); ++len) {
      ASSERT_FALSE(AddEncodedCounters(std::string_view(enc).substr(0, len), &sum)) << len;
    }
    ASSERT_FALSE(AddEncodedCounters(enc + '\x01', &sum));
    for (int k = 0; k < Counters::kInts; ++k) ASSERT_EQ(sum.i[k], before.i[k]);
    for (int k = 0; k < Counters::kDoubles; ++k) ASSERT_EQ(sum.d[k], before.d[k]);
  }
  for (int k = 0; k < Counters::kInts; ++k) EXPECT_EQ(sum.i[k], expected.i[k]);
  for (int k = 0; k < Counters::kDoubles; ++k) EXPECT_DOUBLE_EQ(sum.d[k], expected.d[k]);
}

// Decodes a pack into a map (the reference form); false if malformed.
bool PackToMap(std::string_view pack, std::map<uint32_t, Counters>* out) {
  out->clear();
  uint32_t last = 0;
  bool first = true, ordered = true;
  bool ok = ForEachUserPackEntry(pack, [&](uint32_t user, std::string_view c) {
    if (!first && user <= last) ordered = false;
    first = false;
    last = user;
    EXPECT_TRUE(AddEncodedCounters(c, &(*out)[user]));
  });
  return ok && ordered;
}

std::string PackOf(const std::map<uint32_t, Counters>& m) {
  std::string out;
  UserPackWriter w(&out);
  for (const auto& [user, c] : m) w.Add(user, c);
  return out;
}

TEST(CodecTest, UserPackKeysSortLikeTheirBuckets) {
  // Pack keys sort like their buckets.
  std::string a, b;
  UserPackKey("ws", Granularity::kDay, 9, &a);
  UserPackKey("ws", Granularity::kDay, 10, &b);
  EXPECT_LT(a, b);
}

TEST(CodecTest, UserPacksRoundTripAndMergeLikeAMapOfCounters) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    const int inputs = 1 + static_cast<int>(rng() % 6);
    std::map<uint32_t, Counters> want;
    std::vector<std::string> packs(inputs);
    for (int k = 0; k < inputs; ++k) {
      std::map<uint32_t, Counters> m;
      const int n = static_cast<int>(rng() % 40);
      for (int e = 0; e < n; ++e) {
        // Small and huge indexes (multi-byte deltas), some shared across inputs.
        uint32_t user = rng() % 4 == 0 ? UINT32_MAX - rng() % 3 : rng() % 200;
        Counters c;
        c.i[rng() % Counters::kInts] = static_cast<int64_t>(rng() % 1000) - 10;
        if (rng() % 3 == 0) c.d[rng() % Counters::kDoubles] = 0.25 * (rng() % 100);
        if (rng() % 10 == 0) {  // an encoding longer than 127 bytes
          for (int f = 0; f < Counters::kInts; ++f) c.i[f] = INT64_MIN + f;
          for (int f = 0; f < Counters::kDoubles; ++f) c.d[f] = 1.5;
        }
        m[user].Add(c);
      }
      for (const auto& [user, c] : m) want[user].Add(c);
      packs[k] = PackOf(m);
      std::map<uint32_t, Counters> back;
      ASSERT_TRUE(PackToMap(packs[k], &back));
      ASSERT_EQ(back.size(), m.size());
      for (const auto& [user, c] : m) {
        EXPECT_EQ(back[user].i, c.i);
        EXPECT_EQ(back[user].d, c.d);
      }
    }
    std::vector<std::string_view> views(packs.begin(), packs.end());
    std::string merged;
    EXPECT_EQ(MergeUserPacks(views.data(), views.size(), &merged), 0);
    std::map<uint32_t, Counters> got;
    ASSERT_TRUE(PackToMap(merged, &got));
    ASSERT_EQ(got.size(), want.size()) << "round " << round;
    for (const auto& [user, c] : want) {
      EXPECT_EQ(got[user].i, c.i) << "user " << user;
      EXPECT_EQ(got[user].d, c.d) << "user " << user;
    }
  }
}

TEST(CodecTest, MalformedUserPacksContributeTheirValidPrefix) {
  Counters one;
  one.i[0] = 1;
  std::string good = PackOf({{5, one}, {9, one}});
  std::string bad = PackOf({{5, one}, {7, one}});
  bad.back() = '\x7f';  // the last entry's counters no longer decode
  std::string unordered;
  UserPackWriter w(&unordered);
  w.Add(3, one);
  unordered += '\x00';  // delta 0: not strictly increasing
  std::string truncated = good.substr(0, good.size() - 1);
  std::vector<std::string_view> views = {good, bad, unordered, truncated, {}};
  std::string merged;
  EXPECT_GE(MergeUserPacks(views.data(), views.size(), &merged), 2);
  std::map<uint32_t, Counters> got;
  ASSERT_TRUE(ForEachUserPackEntry(
      merged, [&](uint32_t user, std::string_view c) { AddEncodedCounters(c, &got[user]); }));
  EXPECT_EQ(got[3].i[0], 1);  // unordered: its first entry
  EXPECT_EQ(got[5].i[0], 3);  // good, bad, truncated
  EXPECT_EQ(got[9].i[0], 1);  // good only (truncated lost its last entry)
  EXPECT_FALSE(ForEachUserPackEntry(truncated, [](uint32_t, std::string_view) {}));
}

// Found by tests/fuzz/user_pack_fuzz: an index delta so large that adding it to the previous
// index wrapped around 64 bits decoded as a smaller index, and merging such a pack wrote a
// malformed one.
TEST(CodecTest, AnIndexDeltaThatWrapsAroundIsMalformed) {
  Counters one;
  one.i[0] = 1;
  std::string pack = PackOf({{2, one}});
  PutVarint64(&pack, UINT64_MAX);  // 2 + delta wraps to 1
  PutLengthPrefixed(&pack, EncodeCounters(one));
  std::vector<uint32_t> users;
  EXPECT_FALSE(
      ForEachUserPackEntry(pack, [&](uint32_t u, std::string_view) { users.push_back(u); }));
  EXPECT_EQ(users, std::vector<uint32_t>{2});
  std::string other = PackOf({{1, one}, {3, one}});
  std::vector<std::string_view> views = {pack, other};
  std::string merged;
  EXPECT_EQ(MergeUserPacks(views.data(), views.size(), &merged), 1);
  users.clear();
  EXPECT_TRUE(
      ForEachUserPackEntry(merged, [&](uint32_t u, std::string_view) { users.push_back(u); }));
  EXPECT_EQ(users, (std::vector<uint32_t>{1, 2, 3}));
}

TEST(CodecTest, CounterSumsSaturateInsteadOfWrapping) {
  const uint64_t before = SaturatedSums();
  Counters big;
  big.i[Counters::kAgentTokens] = INT64_MAX;
  big.d[Counters::kAgentCost] = 1.7e308;
  Counters sum;
  sum.Add(big);
  EXPECT_EQ(SaturatedSums(), before);
  sum.Add(big);
  EXPECT_EQ(sum.i[Counters::kAgentTokens], INT64_MAX);
  EXPECT_EQ(sum.d[Counters::kAgentCost], DBL_MAX);
  EXPECT_EQ(SaturatedSums(), before + 2);
  // The same through the encoding (what the merge operator does).
  Counters decoded;
  const std::string enc = EncodeCounters(big);
  ASSERT_TRUE(AddEncodedCounters(enc, &decoded));
  ASSERT_TRUE(AddEncodedCounters(enc, &decoded));
  ASSERT_TRUE(AddEncodedCounters(EncodeCounters(sum), &decoded));
  EXPECT_EQ(decoded.i[Counters::kAgentTokens], INT64_MAX);
  EXPECT_EQ(decoded.d[Counters::kAgentCost], DBL_MAX);
  EXPECT_TRUE(std::isfinite(decoded.d[Counters::kAgentCost]));
  EXPECT_GT(SaturatedSums(), before + 2);

  // User packs: the merge of two packs of one user saturates too.
  std::string p1, p2, merged;
  UserPackWriter(&p1).Add(5, big);
  UserPackWriter(&p2).Add(5, big);
  const std::string_view packs[] = {p1, p2};
  EXPECT_EQ(MergeUserPacks(packs, 2, &merged), 0);
  std::string_view counters;
  ASSERT_TRUE(FindUserPackEntry(merged, 5, &counters));
  Counters user;
  ASSERT_TRUE(AddEncodedCounters(counters, &user));
  EXPECT_EQ(user.i[Counters::kAgentTokens], INT64_MAX);
  EXPECT_EQ(user.d[Counters::kAgentCost], DBL_MAX);
}

// Every bucketed day key rolls up into the keys its constructor builds for the week and the month
// of the day (across a week and a year boundary); other keys do not roll up.
TEST(CodecTest, DayKeysRollUpIntoTheirWeekAndMonthKeys) {
  const std::string_view project = "p\x01\xff";
  std::string id;
  ScopeIdEntity(event::EntityKind::kWorkflow, "flow 7", &id);
  using Make = std::function<void(Granularity, int32_t, std::string*)>;
  const std::vector<Make> makes = {
      [&](Granularity g, int32_t b, std::string* k) {
        CounterKey(Scope::kWorkspace, "w", g, b, "", k);
      },
      [&](Granularity g, int32_t b, std::string* k) {
        CounterKey(Scope::kEntity, "ws", g, b, id, k);
      },
      [&](Granularity g, int32_t b, std::string* k) {
        BitmapKey(Scope::kEntity, "ws", g, b, id, k);
      },
      [&](Granularity g, int32_t b, std::string* k) { UserPackKey("", g, b, k); },
      [&](Granularity g, int32_t b, std::string* k) {
        RequestsSliceKey("org", kAllAgents, &project, g, b, k);
      },
      [&](Granularity g, int32_t b, std::string* k) {
        RequestsUsersKey("org", 3, nullptr, g, b, k);
      },
      [&](Granularity g, int32_t b, std::string* k) { RequestsPairsKey("org", &project, g, b, k); },
  };
  std::string day, week, month, want;
  for (const DayNumber d : {DaysFromCivil(2023, 12, 31), DaysFromCivil(2024, 1, 1),
                            DaysFromCivil(1969, 12, 31), DaysFromCivil(2026, 2, 28)}) {
    for (size_t i = 0; i < makes.size(); ++i) {
      makes[i](Granularity::kDay, d, &day);
      ASSERT_TRUE(RollUpKeys(day, &week, &month)) << i;
      makes[i](Granularity::kWeek, WeekOfDay(d), &want);
      EXPECT_EQ(week, want) << i << " day " << d;
      makes[i](Granularity::kMonth, MonthOfDay(d), &want);
      EXPECT_EQ(month, want) << i << " day " << d;
      EXPECT_FALSE(RollUpKeys(week, &day, &want)) << i;  // only day rows roll up
      EXPECT_FALSE(RollUpKeys(month, &day, &want)) << i;
      if (i <= 3) {  // a scoped or pack key cut inside its bucket does not roll up
        const size_t bucket_end = day.size() - ((i == 1 || i == 2) ? id.size() : 0);
        for (size_t cut = 1; cut <= 4; ++cut) {
          EXPECT_FALSE(RollUpKeys(std::string_view(day).substr(0, bucket_end - cut), &week, &month))
              << i << " " << cut;
        }
      }
    }
  }
  std::string key;
  UserProfileKey("ws", "u", &key);
  EXPECT_FALSE(RollUpKeys(key, &week, &month));
  DedupeKey("src", "id", &key);
  EXPECT_FALSE(RollUpKeys(key, &week, &month));
  EXPECT_FALSE(RollUpKeys("", &week, &month));
  EXPECT_FALSE(RollUpKeys("C", &week, &month));
  EXPECT_FALSE(RollUpKeys(std::string("K\x05") + "ab", &week, &month));  // truncated
}

}  // namespace
}  // namespace tally::store
