#include "query/internal/superagents_orders.h"

#include <algorithm>
#include <utility>

namespace tally::query::internal {
namespace {

// Merges `count` sorted items into `size` kept ones, also sorted (no item compares equal to a
// kept one): each item's place by binary search from the previous item's place, then block
// copies, so a few items cost a few searches, not a comparison per kept one. before(k, p): item
// k sorts before kept p; copy(from, to): emit kept [from, to); place(k): emit item k.
template <typename Before, typename Copy, typename Place>
void PlaceSorted(size_t count, size_t size, Before before, Copy copy, Place place) {
  size_t from = 0;
  for (size_t k = 0; k < count; ++k) {
    size_t lo = from, hi = size;
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (before(k, mid)) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    copy(from, lo);
    place(k);
    from = lo;
  }
  copy(from, size);
}

}  // namespace

std::shared_ptr<Order> PatchOrder(const Order& order, const SortLess& less, bool by_column,
                                  const std::vector<uint32_t>& to_place,
                                  const std::vector<uint8_t>& placed,
                                  const std::vector<uint32_t>& old_to_new, size_t n) {
  auto new_index = [&](uint32_t j) { return old_to_new.empty() ? j : old_to_new[j]; };
  auto patched = std::make_shared<Order>();
  if (by_column) {
    // By (key, index), on the keys kept with the order: sequential reads, except for the moved
    // agents' new keys.
    const bool desc = less.descending;
    auto before = [desc](double ka, uint32_t ia, double kb, uint32_t ib) {
      if (ka != kb) return desc ? ka > kb : ka < kb;
      return ia < ib;
    };
    std::vector<std::pair<double, uint32_t>> sorted;
    sorted.reserve(to_place.size());
    for (uint32_t i : to_place)
      sorted.emplace_back(ColumnKey(less.field, *less.credits, *less.active, i), i);
    std::sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) {
      return before(a.first, a.second, b.first, b.second);
    });
    Order kept;
    kept.index.reserve(n);
    kept.key.reserve(n);
    for (size_t p = 0; p < order.index.size(); ++p) {
      const uint32_t i = new_index(order.index[p]);
      if (i == kGone || placed[i]) continue;
      kept.index.push_back(i);
      kept.key.push_back(order.key[p]);
    }
    patched->index.reserve(n);
    patched->key.reserve(n);
    PlaceSorted(
        sorted.size(), kept.index.size(),
        [&](size_t k, size_t p) {
          return before(sorted[k].first, sorted[k].second, kept.key[p], kept.index[p]);
        },
        [&](size_t from, size_t to) {
          patched->index.insert(patched->index.end(), kept.index.begin() + from,
                                kept.index.begin() + to);
          patched->key.insert(patched->key.end(), kept.key.begin() + from, kept.key.begin() + to);
        },
        [&](size_t k) {
          patched->index.push_back(sorted[k].second);
          patched->key.push_back(sorted[k].first);
        });
    return patched;
  }
  std::vector<uint32_t> sorted = to_place;
  std::sort(sorted.begin(), sorted.end(), less);
  std::vector<uint32_t> kept;
  kept.reserve(n);
  for (uint32_t j : order.index) {
    const uint32_t i = new_index(j);
    if (i != kGone && !placed[i]) kept.push_back(i);
  }
  patched->index.reserve(n);
  PlaceSorted(
      sorted.size(), kept.size(), [&](size_t k, size_t p) { return less(sorted[k], kept[p]); },
      [&](size_t from, size_t to) {
        patched->index.insert(patched->index.end(), kept.begin() + from, kept.begin() + to);
      },
      [&](size_t k) { patched->index.push_back(sorted[k]); });
  return patched;
}

}  // namespace tally::query::internal
