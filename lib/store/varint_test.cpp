#include "store/varint.h"

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

}  // namespace
}  // namespace tally::store
