#include "http/internal/response_cache.h"

#include <gtest/gtest.h>

#include <string>

#include "common/metrics.h"

namespace tally::http::internal {
namespace {

std::string Body(size_t n) { return std::string(n, 'b'); }

TEST(ResponseCacheTest, HitsWithinTtlOnly) {
  ResponseCache cache({.ttl_ms = 1000, .max_bytes = 1 << 20});
  cache.Put("k", "v", 100);
  ASSERT_TRUE(cache.Get("k", 1099).has_value());
  EXPECT_EQ(cache.Get("k", 1099)->body, "v");
  EXPECT_EQ(cache.Get("k", 1099)->computed_at_ms, 100);
  EXPECT_FALSE(cache.Get("k", 1100).has_value());
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(ResponseCacheTest, DisabledByTtlOrBytes) {
  ResponseCache no_ttl({.ttl_ms = 0, .max_bytes = 1 << 20});
  no_ttl.Put("k", "v", 0);
  EXPECT_FALSE(no_ttl.Get("k", 0));
  ResponseCache no_bytes({.ttl_ms = 1000, .max_bytes = 0});
  EXPECT_FALSE(no_bytes.enabled());
  no_bytes.Put("k", "v", 0);
  EXPECT_FALSE(no_bytes.Get("k", 0));
}

TEST(ResponseCacheTest, BoundedInBytesOldestFirst) {
  const size_t entry = ResponseCache::EntryBytes("k0", Body(1000));
  ResponseCache cache({.ttl_ms = 1000, .max_bytes = 4 * entry, .max_entry_bytes = entry});
  for (int i = 0; i < 10; ++i) cache.Put("k" + std::to_string(i), Body(1000), 0);
  EXPECT_EQ(cache.size(), 4u);
  EXPECT_LE(cache.bytes(), 4 * entry);
  EXPECT_FALSE(cache.Get("k5", 1));
  EXPECT_TRUE(cache.Get("k6", 1));
  EXPECT_TRUE(cache.Get("k9", 1));
}

TEST(ResponseCacheTest, EntryOverTheLimitIsNotCachedAndDropsTheOldValue) {
  ResponseCache cache({.ttl_ms = 1000, .max_bytes = 80'000});  // entries up to 10,000 bytes
  cache.Put("small", Body(100), 0);
  cache.Put("big", Body(9'000), 0);
  EXPECT_TRUE(cache.Get("big", 1));
  cache.Put("big", Body(10'001), 0);  // replaced by a value too large to keep
  EXPECT_FALSE(cache.Get("big", 1));
  EXPECT_TRUE(cache.Get("small", 1));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), ResponseCache::EntryBytes("small", Body(100)));
}

TEST(ResponseCacheTest, ExpiredEntriesAreSweptByAnyGetOrPut) {
  MetricsRegistry registry;
  Gauge* bytes = registry.GetGauge("b", "b");
  Gauge* entries = registry.GetGauge("e", "e");
  ResponseCache cache(
      {.ttl_ms = 1000, .max_bytes = 1 << 20, .bytes_gauge = bytes, .entries_gauge = entries});
  for (int i = 0; i < 5; ++i) cache.Put("old" + std::to_string(i), Body(500), 10 * i);
  cache.Put("new", Body(500), 900);
  EXPECT_EQ(entries->Value(), 6);
  EXPECT_EQ(bytes->Value(), static_cast<double>(cache.bytes()));
  EXPECT_FALSE(cache.Get("unrelated", 1030));  // old0..old3 expired (computed at 0..30)
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(entries->Value(), 2);
  cache.Put("other", Body(10), 1899);  // old4 (40) expired; "new" (900) still live
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.Get("new", 1899));
  EXPECT_EQ(bytes->Value(), static_cast<double>(cache.bytes()));
  EXPECT_EQ(cache.bytes(), ResponseCache::EntryBytes("new", Body(500)) +
                               ResponseCache::EntryBytes("other", Body(10)));
}

TEST(ResponseCacheTest, ReplacingAKeyKeepsTheAccountExact) {
  ResponseCache cache({.ttl_ms = 1000, .max_bytes = 1 << 20});
  cache.Put("k", Body(100), 0);
  cache.Put("k", Body(300), 1);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), ResponseCache::EntryBytes("k", Body(300)));
  EXPECT_EQ(cache.Get("k", 2)->body.size(), 300u);
}

TEST(ResponseCacheTest, CountIsASecondBound) {
  ResponseCache cache({.ttl_ms = 1000, .max_bytes = 1 << 20, .max_entries = 2});
  cache.Put("a", "1", 0);
  cache.Put("b", "2", 0);
  cache.Put("c", "3", 0);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_FALSE(cache.Get("a", 1));
}

}  // namespace
}  // namespace tally::http::internal
