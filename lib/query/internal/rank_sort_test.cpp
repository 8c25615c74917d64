// Unit tests of the radix sort of full rankings against std::sort with the whole order.
#include "query/internal/rank_sort.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace tally::query::internal {
namespace {

TEST(RankSortTest, MatchesStdSortWithTheWholeOrder) {
  struct Row {
    uint64_t value;
    uint32_t tie;  // the order among equal values: tie, then id
    uint32_t id;
  };
  std::mt19937_64 rng(5);
  for (size_t n : std::vector<size_t>{0, 1, 2, 3, 9, 100, 2695, 5000}) {
    // Value ranges from all-equal to full 64-bit (every radix pass), many ties in between.
    for (uint64_t range : {uint64_t{1}, uint64_t{7}, uint64_t{300}, uint64_t{1} << 20,
                           uint64_t{1} << 40, UINT64_MAX}) {
      std::vector<Row> rows(n);
      for (size_t i = 0; i < n; ++i) {
        const uint64_t v = range == UINT64_MAX ? rng() : rng() % range;
        rows[i] = {v, static_cast<uint32_t>(rng() % 5), static_cast<uint32_t>(i)};
      }
      auto tie_less = [](const Row& a, const Row& b) {
        return a.tie != b.tie ? a.tie < b.tie : a.id < b.id;
      };
      std::vector<Row> want = rows;
      std::sort(want.begin(), want.end(), [&](const Row& a, const Row& b) {
        return a.value != b.value ? a.value > b.value : tie_less(a, b);
      });
      SortByValueDescending(
          &rows, [](const Row& r) { return r.value; }, tie_less);
      ASSERT_EQ(rows.size(), want.size());
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(rows[i].id, want[i].id) << "n " << n << " range " << range << " at " << i;
    }
  }
}

}  // namespace
}  // namespace tally::query::internal
