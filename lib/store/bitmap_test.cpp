#include "store/bitmap.h"

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

#include "store/counters_codec.h"

namespace tally::store {
namespace {

// The union's cardinality equals a std::set's, with sparse and dense (bitset) bitmaps, empty and
// malformed values among them.
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
