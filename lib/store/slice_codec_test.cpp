#include "store/slice_codec.h"

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

#include "common/saturating.h"
#include "store/testing/codec_testing.h"

namespace tally::store {
namespace {

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

}  // namespace
}  // namespace tally::store
