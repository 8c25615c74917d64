#include "store/meta_codec.h"

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

}  // namespace
}  // namespace tally::store
