#include "common/saturating.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>

namespace tally {
namespace {

TEST(SaturatingTest, Int64ClampsAndCounts) {
  const uint64_t before = SaturatedSums();
  EXPECT_EQ(SatAdd(int64_t{2}, int64_t{3}), 5);
  EXPECT_EQ(SatAdd(INT64_MAX - 1, int64_t{1}), INT64_MAX);
  EXPECT_EQ(SaturatedSums(), before);
  EXPECT_EQ(SatAdd(INT64_MAX, INT64_MAX), INT64_MAX);
  EXPECT_EQ(SatAdd(INT64_MAX, int64_t{1}), INT64_MAX);
  EXPECT_EQ(SatAdd(INT64_MIN, int64_t{-1}), INT64_MIN);
  EXPECT_EQ(SaturatedSums(), before + 3);
}

TEST(SaturatingTest, Uint64StaysWithinInt64) {
  const uint64_t before = SaturatedSums();
  constexpr uint64_t kMax = static_cast<uint64_t>(INT64_MAX);
  EXPECT_EQ(SatAdd(kMax - 1, uint64_t{1}), kMax);
  EXPECT_EQ(SaturatedSums(), before);
  EXPECT_EQ(SatAdd(kMax, uint64_t{1}), kMax);
  EXPECT_EQ(SatAdd(UINT64_MAX, UINT64_MAX), kMax);
  EXPECT_EQ(SaturatedSums(), before + 2);
}

TEST(SaturatingTest, DoublesStayFinite) {
  const uint64_t before = SaturatedSums();
  EXPECT_EQ(SatAdd(1.5, 2.25), 3.75);
  EXPECT_EQ(SatAdd(1.7e308, 1e300), 1.7e308 + 1e300);  // still finite
  EXPECT_EQ(SaturatedSums(), before);
  EXPECT_EQ(SatAdd(1.7e308, 1.7e308), DBL_MAX);
  EXPECT_EQ(SatAdd(DBL_MAX, DBL_MAX), DBL_MAX);
  EXPECT_EQ(SatAdd(-DBL_MAX, -DBL_MAX), -DBL_MAX);
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(SatAdd(inf, -inf), 0.0);
  EXPECT_EQ(SaturatedSums(), before + 4);
  double acc = 0;
  for (int i = 0; i < 4; ++i) SatAddTo(&acc, 1.7e308);
  EXPECT_EQ(acc, DBL_MAX);
}

}  // namespace
}  // namespace tally
