#pragma once
// Range decomposition: the fewest stored buckets that cover a day range exactly.
//
//   for (const tally::query::BucketRef& b : tally::query::DecomposeRange(from, to)) {
//     // read the counters of (b.granularity, b.bucket)
//   }
//
// Whole months first, then whole ISO weeks, then single days, so a 90-day range costs about
// 2 months + a few weeks + a few days of point reads, whatever the number of events.

#include <cstdint>
#include <vector>

#include "common/calendar.h"

namespace tally::query {

struct BucketRef {
  Granularity granularity;
  int32_t bucket;
};

// Buckets whose union is exactly [from, to] (inclusive), disjoint, in increasing day order.
// Empty when from > to.
std::vector<BucketRef> DecomposeRange(DayNumber from, DayNumber to);

}  // namespace tally::query
