#pragma once
// The kinds of data a store keeps, one RocksDB column family each. Internal to tally::store.

namespace tally::store::internal {

// Column families, in the order Store::Open opens them (index into StoreRep::cf).
enum Family : int {
  kMeta = 0,  // "default": offsets, schema version, newest event time
  kCounters,
  kBitmaps,
  kRecords,
  kDedupe,
  kDict,
  kRequests,
  kUserPacks,
  kFamilyCount,
};

// Families whose writes replace the value (the others combine with it).
constexpr bool IsPutFamily(Family f) { return f == kMeta || f == kDedupe || f == kDict; }

}  // namespace tally::store::internal
