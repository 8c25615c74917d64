#include "query/range.h"

#include <gtest/gtest.h>

namespace tally::query {
namespace {

// Every decomposition must cover [from, to] exactly once, in order.
void ExpectExactCover(DayNumber from, DayNumber to) {
  DayNumber next = from;
  for (const BucketRef& b : DecomposeRange(from, to)) {
    ASSERT_EQ(BucketFirstDay(b.bucket, b.granularity), next) << from << ".." << to;
    next = BucketLastDay(b.bucket, b.granularity) + 1;
  }
  EXPECT_EQ(next, to + 1) << from << ".." << to;
}

TEST(RangeTest, CoversExactly) {
  DayNumber base = *ParseDay("2025-11-20");
  for (DayNumber from = base; from < base + 40; ++from) {
    for (DayNumber len = 0; len < 130; len += 3) ExpectExactCover(from, from + len);
  }
  EXPECT_TRUE(DecomposeRange(10, 9).empty());
}

TEST(RangeTest, UsesFewBuckets) {
  // 90 days ending 2026-03-01: Dec 2 .. Mar 1 -> days/weeks of Dec, Jan, Feb, Mar 1.
  DayNumber to = *ParseDay("2026-03-01");
  auto parts = DecomposeRange(to - 89, to);
  // 6 days + 3 weeks + 3 days of December, 2 months, 1 day.
  EXPECT_EQ(parts.size(), 15u);
  int months = 0;
  for (const auto& p : parts) months += p.granularity == Granularity::kMonth;
  EXPECT_EQ(months, 2);  // January and February whole
}

}  // namespace
}  // namespace tally::query
