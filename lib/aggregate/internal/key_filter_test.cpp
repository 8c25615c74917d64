#include "aggregate/internal/key_filter.h"

#include <gtest/gtest.h>

#include <string>

namespace tally::aggregate::internal {
namespace {

std::string Key(int i) {
  return "\x05"
         "athena/console"
         "evt_" +
         std::to_string(i);
}

TEST(KeyFilterTest, NoFalseNegativesAndFewFalsePositivesAtTheSizedCount) {
  constexpr int kKeys = 200'000;
  KeyFilter f(kKeys);
  for (int i = 0; i < kKeys; ++i) f.Add(Key(i));
  EXPECT_EQ(f.added(), size_t{kKeys});
  EXPECT_FALSE(f.Saturated());
  for (int i = 0; i < kKeys; ++i) ASSERT_TRUE(f.MayContain(Key(i))) << i;
  int positives = 0;
  for (int i = kKeys; i < 2 * kKeys; ++i) positives += f.MayContain(Key(i)) ? 1 : 0;
  // About 1 % expected; 3 % leaves room for the hash's seed.
  EXPECT_LT(positives, kKeys * 3 / 100);
}

TEST(KeyFilterTest, SaturatesPastTwiceItsSize) {
  KeyFilter f(100);
  for (int i = 0; i < 200; ++i) f.Add(Key(i));
  EXPECT_FALSE(f.Saturated());
  f.Add(Key(200));
  EXPECT_TRUE(f.Saturated());
  for (int i = 0; i <= 200; ++i) EXPECT_TRUE(f.MayContain(Key(i)));
}

TEST(KeyFilterTest, EmptyFilterContainsNothing) {
  KeyFilter f(0);
  EXPECT_FALSE(f.MayContain(""));
  EXPECT_FALSE(f.MayContain(Key(1)));
  f.Add("");
  EXPECT_TRUE(f.MayContain(""));
}

}  // namespace
}  // namespace tally::aggregate::internal
