#include "store/codec.h"

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

#include "store/bitmap.h"
#include "store/testing/codec_testing.h"

namespace tally::store {
namespace {

TEST(CodecTest, VarintAndLengthPrefixRoundTrip) {
  std::string s;
  for (uint64_t v : {0ull, 1ull, 127ull, 128ull, 300ull, ~0ull}) PutVarint64(&s, v);
  PutLengthPrefixed(&s, std::string("a\0b", 3));
  std::string_view in = s;
  for (uint64_t want : {0ull, 1ull, 127ull, 128ull, 300ull, ~0ull}) {
    uint64_t v;
    ASSERT_TRUE(GetVarint64(&in, &v));
    EXPECT_EQ(v, want);
  }
  std::string_view str;
  ASSERT_TRUE(GetLengthPrefixed(&in, &str));
  EXPECT_EQ(str, std::string_view("a\0b", 3));
  EXPECT_TRUE(in.empty());
  std::string_view truncated =
      "\x05"
      "ab";
  EXPECT_FALSE(GetLengthPrefixed(&truncated, &str));
}

TEST(CodecTest, OrderedInt32SortsNumerically) {
  std::string a, b, c;
  PutOrderedInt32(&a, -5);
  PutOrderedInt32(&b, 3);
  PutOrderedInt32(&c, 70000);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

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

// The union's cardinality equals a std::set's, with sparse and dense (bitset) bitmaps, empty and
// malformed values among them.
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

TEST(CodecTest, UnionCardinalityOfEncodedBitmaps) {
  std::mt19937 rng(11);
  for (int round = 0; round < 50; ++round) {
    std::set<uint32_t> all;
    std::vector<std::string> encoded;
    const int parts = 1 + round % 7;
    for (int p = 0; p < parts; ++p) {
      UserBitmap b;
      const int n = (p % 3 == 0) ? 6000 : 40;  // dense (bitset containers) or sparse
      const uint32_t span = (p % 2) ? 70000 : 9000;
      for (int k = 0; k < n; ++k) {
        const uint32_t id = rng() % span;
        b.Add(id);
        all.insert(id);
      }
      std::string e;
      b.AppendEncoded(&e);
      encoded.push_back(std::move(e));
    }
    encoded.push_back("");                         // empty: nothing
    encoded.push_back("\x3b\x30\x00\x00garbage");  // malformed: nothing
    std::vector<std::string_view> views(encoded.begin(), encoded.end());
    EXPECT_EQ(UnionCardinalityOfEncoded(views), all.size()) << round;
    // The same union with the first part unencoded (a staged delta), alone or with the rest.
    UserBitmap first;
    ASSERT_TRUE(first.OrEncoded(encoded[0]));
    const UserBitmap* staged[] = {&first};
    EXPECT_EQ(UnionCardinalityOfEncoded(std::span(views).subspan(1), staged), all.size()) << round;
    EXPECT_EQ(UnionCardinalityOfEncoded({}, staged), first.Cardinality()) << round;
  }
  EXPECT_EQ(UnionCardinalityOfEncoded({}), 0u);
}

TEST(CodecTest, RecordPolicies) {
  Record r;
  MergeField({field::kUserName, 200, "new"}, &r);
  MergeField({field::kUserName, 100, "old"}, &r);  // older: ignored
  MergeField({field::kEntityCreated, 50, "u1"}, &r);
  MergeField({field::kEntityCreated, 60, "u2"}, &r);  // later created: ignored
  MergeField({field::kEntityCreated, 40, "u3"}, &r);  // earlier: wins
  std::string enc;
  AppendRecord(r, &enc);
  Record back;
  ASSERT_TRUE(DecodeRecord(enc, &back));
  ASSERT_NE(FindField(back, field::kUserName), nullptr);
  EXPECT_EQ(FindField(back, field::kUserName)->value, "new");
  EXPECT_EQ(FindField(back, field::kEntityCreated)->value, "u3");
  EXPECT_EQ(FindField(back, field::kUserEmail), nullptr);
}

TEST(CodecTest, OffsetsRoundTrip) {
  std::string key;
  OffsetKey("usage-events", 3, &key);
  std::string topic;
  int32_t p;
  ASSERT_TRUE(DecodeOffsetKey(key, &topic, &p));
  EXPECT_EQ(topic, "usage-events");
  EXPECT_EQ(p, 3);
  StoredOffset o;
  ASSERT_TRUE(DecodeOffset(EncodeOffset({"cluster-x", 12345}), &o));
  EXPECT_EQ(o.cluster_id, "cluster-x");
  EXPECT_EQ(o.next_offset, 12345);
}

// Normalize against a map: entries made of sorted parts one after another (how merges and roll-
// ups build them: merged part by part) and shuffled entries (how a batch builds them: sorted),
// with repeated indexes inside and across parts.
TEST(CodecTest, SliceNormalizeCombinesLikeAMap) {
  std::mt19937 rng(17);
  for (int round = 0; round < 300; ++round) {
    Slice s;
    std::map<uint32_t, SliceUser> users;
    std::map<uint32_t, SliceAgent> agents;
    const int parts = 1 + static_cast<int>(rng() % (round % 3 == 0 ? 40 : 6));
    const uint32_t range = 1 + rng() % 200;
    for (int p = 0; p < parts; ++p) {
      std::vector<uint32_t> ids(rng() % 30);
      for (uint32_t& id : ids) id = rng() % range;
      if (round % 4 != 1) std::sort(ids.begin(), ids.end());  // else: not sorted at all
      for (uint32_t id : ids) {
        const SliceUser u{id, 1 + rng() % 5, rng() % 100, static_cast<int64_t>(rng() % 1000)};
        s.users.push_back(u);
        SliceUser& want = users.try_emplace(id, SliceUser{id, 0, 0, 0}).first->second;
        want.requests += u.requests;
        want.tokens += u.tokens;
        want.cost_nanos += u.cost_nanos;
        const SliceAgent a{id, 1 + rng() % 5, rng() % 100};
        s.agents.push_back(a);
        SliceAgent& want_agent = agents.try_emplace(id, SliceAgent{id, 0, 0}).first->second;
        want_agent.requests += a.requests;
        want_agent.tokens += a.tokens;
      }
    }
    s.Normalize();
    ASSERT_EQ(s.users.size(), users.size()) << "round " << round;
    size_t i = 0;
    for (const auto& [id, want] : users) {
      EXPECT_EQ(s.users[i].user, id);
      EXPECT_EQ(s.users[i].requests, want.requests);
      EXPECT_EQ(s.users[i].tokens, want.tokens);
      EXPECT_EQ(s.users[i].cost_nanos, want.cost_nanos);
      ++i;
    }
    ASSERT_EQ(s.agents.size(), agents.size()) << "round " << round;
    i = 0;
    for (const auto& [id, want] : agents) {
      EXPECT_EQ(s.agents[i].agent, id);
      EXPECT_EQ(s.agents[i].requests, want.requests);
      EXPECT_EQ(s.agents[i].tokens, want.tokens);
      ++i;
    }
    if (HasFailure()) return;
  }
}

TEST(CodecTest, SlicesRoundTripAndCombine) {
  Slice a;
  a.totals = {3, 1, 30, 500'000'000};
  a.users = {{7, 2, 20, 250'000'000}, {3, 1, 10, 250'000'000}, {7, 0, 0, 0}};
  a.agents = {{9, 3, 30}};
  a.Normalize();
  ASSERT_EQ(a.users.size(), 2u);
  EXPECT_EQ(a.users[0].user, 3u);
  EXPECT_EQ(a.users[1].requests, 2u);
  std::string enc;
  AppendSlice(a, &enc);
  SliceView v;
  ASSERT_TRUE(v.Parse(enc));
  EXPECT_EQ(v.totals().requests, 3u);
  EXPECT_EQ(v.totals().tokens, 30u);
  EXPECT_EQ(v.totals().cost_nanos, 500'000'000);
  EXPECT_EQ(CostNanos(0.0123), 12'300'000);
  ASSERT_EQ(v.user_count(), 2u);
  EXPECT_EQ(v.user(1).user, 7u);
  EXPECT_EQ(v.user(1).tokens, 20u);
  ASSERT_EQ(v.agent_count(), 1u);
  EXPECT_EQ(v.agent(0).agent, 9u);

  Slice sum;
  ASSERT_TRUE(AppendEncodedSlice(enc, &sum));
  ASSERT_TRUE(AppendEncodedSlice(enc, &sum));
  sum.Normalize();
  EXPECT_EQ(sum.totals.requests, 6u);
  ASSERT_EQ(sum.users.size(), 2u);
  EXPECT_EQ(sum.users[1].requests, 4u);
  EXPECT_EQ(sum.agents[0].tokens, 60u);

  // Malformed input never decodes (truncated, wrong version, trailing bytes).
  EXPECT_FALSE(v.Parse(std::string_view(enc).substr(0, enc.size() - 1)));
  EXPECT_FALSE(v.Parse("\x02" + enc.substr(1)));
  EXPECT_FALSE(v.Parse(enc + "x"));
  EXPECT_FALSE(AppendEncodedSlice("", &sum));
  EXPECT_EQ(sum.totals.requests, 6u);
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

TEST(CodecTest, SliceSumsSaturateAtInt64Max) {
  // 10^6 USD per event is 10^15 nanos: ~9,223 such events reach INT64_MAX.
  EXPECT_EQ(CostNanos(1e6), 1'000'000'000'000'000);
  const uint64_t before = SaturatedSums();
  EXPECT_EQ(CostNanos(1e300), INT64_MAX);
  EXPECT_EQ(CostNanos(std::numeric_limits<double>::infinity()), INT64_MAX);
  EXPECT_EQ(SaturatedSums(), before + 2);
  EXPECT_EQ(CostNanos(-1), 0);
  EXPECT_EQ(CostNanos(std::numeric_limits<double>::quiet_NaN()), 0);

  constexpr uint64_t kMax = static_cast<uint64_t>(INT64_MAX);
  Slice big;
  big.totals = {kMax, kMax, kMax, INT64_MAX};
  big.users = {{1, kMax, kMax, INT64_MAX}};
  big.agents = {{2, kMax, kMax}};
  std::string enc;
  AppendSlice(big, &enc);
  Slice sum;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(AppendEncodedSlice(enc, &sum));
  sum.Append(big);
  sum.Normalize();
  EXPECT_EQ(sum.totals.requests, kMax);
  EXPECT_EQ(sum.totals.errors, kMax);
  EXPECT_EQ(sum.totals.tokens, kMax);
  EXPECT_EQ(sum.totals.cost_nanos, INT64_MAX);
  ASSERT_EQ(sum.users.size(), 1u);
  EXPECT_EQ(sum.users[0].requests, kMax);
  EXPECT_EQ(sum.users[0].tokens, kMax);
  EXPECT_EQ(sum.users[0].cost_nanos, INT64_MAX);
  ASSERT_EQ(sum.agents.size(), 1u);
  EXPECT_EQ(sum.agents[0].requests, kMax);
  EXPECT_EQ(sum.agents[0].tokens, kMax);
  // 9,224 max-cost events: saturated, never negative.
  Slice costs;
  Slice one;
  one.totals = {1, 0, 1, CostNanos(1e6)};
  for (int i = 0; i < 9'224; ++i) costs.Append(one);
  EXPECT_EQ(costs.totals.cost_nanos, INT64_MAX);
  EXPECT_EQ(costs.totals.requests, 9'224u);
  EXPECT_GT(SaturatedSums(), before + 2);
}

TEST(CodecTest, RequestsKeysRebucketAndListProjects) {
  std::string_view project = "p1";
  std::string day, month, prefix;
  RequestsSliceKey("org", 5, &project, Granularity::kDay, 20000, &day);
  ASSERT_TRUE(testing::RequestsRebucket(day, Granularity::kMonth, 657, &month));
  Granularity g;
  int32_t bucket;
  ASSERT_TRUE(RequestsKeyBucket(month, &g, &bucket));
  EXPECT_EQ(g, Granularity::kMonth);
  EXPECT_EQ(bucket, 657);
  RequestsProjectsPrefix("org", 5, &prefix);
  ASSERT_TRUE(day.starts_with(prefix));
  std::string_view got;
  ASSERT_TRUE(
      DecodeRequestsProject(std::string_view(day).substr(prefix.size()), &got, &g, &bucket));
  EXPECT_EQ(got, "p1");
  EXPECT_EQ(bucket, 20000);
  // All-agents and all-projects keys never share the per-project prefix.
  std::string all;
  RequestsSliceKey("org", kAllAgents, nullptr, Granularity::kDay, 20000, &all);
  RequestsProjectsPrefix("org", kAllAgents, &prefix);
  EXPECT_FALSE(all.starts_with(prefix));
  // An organization's keys never prefix another organization's.
  std::string other;
  RequestsOrgPrefix("or", &other);
  EXPECT_FALSE(all.starts_with(other));
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

TEST(BitmapTest, UnionAndSerialization) {
  UserBitmap a, b;
  a.Add(1);
  a.Add(5);
  b.Add(5);
  b.Add(1000000);
  std::string enc;
  b.AppendEncoded(&enc);
  ASSERT_TRUE(a.OrEncoded(enc));
  EXPECT_EQ(a.Cardinality(), 3u);
  EXPECT_FALSE(a.OrEncoded("garbage!"));
  EXPECT_EQ(a.Cardinality(), 3u);
}

}  // namespace
}  // namespace tally::store
