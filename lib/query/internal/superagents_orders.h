#pragma once
// Patching a cached sort order of a Super Agents table (query/superagents.h) to a refreshed
// table: the agents whose sort keys did not change keep their relative order, the others are
// sorted and placed back by binary search, so a few moved agents cost a few searches and block
// copies, not a sort of the whole table.
//
//   std::shared_ptr<Order> next = PatchOrder(*order, less, by_column, moved, is_moved,
//                                            old_to_new, n);
//
// Internal to tally_query. Pure; thread-safe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "query/internal/superagents_cache.h"
#include "query/internal/superagents_columns.h"

namespace tally::query::internal {

// `order` (of the previous table) at the new one, of `n` agents, sorted by `less` (its columns
// set for a sort on a column, `by_column`: then the keys kept with the order are patched too).
// old_to_new maps the previous table's indexes to the new ones (kGone: removed; empty: the
// identity); `to_place` are the new indexes to place (placed[i] = 1 for each of them).
std::shared_ptr<Order> PatchOrder(const Order& order, const SortLess& less, bool by_column,
                                  const std::vector<uint32_t>& to_place,
                                  const std::vector<uint8_t>& placed,
                                  const std::vector<uint32_t>& old_to_new, size_t n);

}  // namespace tally::query::internal
