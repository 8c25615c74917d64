#include "common/saturating.h"

namespace tally::internal {

std::atomic<uint64_t> g_saturated_sums{0};

void NoteSaturated() { g_saturated_sums.fetch_add(1, std::memory_order_relaxed); }

}  // namespace tally::internal
