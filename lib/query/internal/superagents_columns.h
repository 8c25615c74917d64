#pragma once
// The usage columns of the Super Agents engine (query/superagents.h): credits over a range and
// active users of the last 30 days, either for a whole agent table (one merged forward pass over
// the bucket rows: ReadView::MergeScanCounters / MergeScanBitmaps) or for one agent (point
// reads), and the sort order they give.
//
//   std::shared_ptr<CreditColumn> credits = AllCredits(rd, ws, *inv, from, to);
//   Credits one = AgentCredits(rd, ws, inv->agents[i], DecomposeRange(from, to));
//
// Internal to tally_query. Pure functions of the reader's snapshot; thread-safe.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "query/internal/superagents_table.h"
#include "query/range.h"
#include "query/superagents.h"

namespace tally::query::internal {

// Credits of every agent of `inv` over the buckets of [from, to] (added in bucket order).
std::shared_ptr<CreditColumn> AllCredits(const Reader& rd, const std::string& ws,
                                         const Inventory& inv, DayNumber from, DayNumber to);

// Credits of one agent over `buckets`: point reads.
Credits AgentCredits(const Reader& rd, const std::string& ws, const Agent& a,
                     const std::vector<BucketRef>& buckets);

// Distinct users of every agent of `inv` over `buckets`: the union of its bitmaps, kept per
// agent for refreshes.
std::shared_ptr<ActiveColumn> AllActive(const Reader& rd, const std::string& ws,
                                        const Inventory& inv,
                                        const std::vector<BucketRef>& buckets);

// Adds the users of agent `a` in `buckets` to *users (point reads).
void OrAgentUsers(const Reader& rd, const std::string& ws, const Agent& a,
                  const std::vector<BucketRef>& buckets, store::UserBitmap* users);

// Distinct users of agent `a` over `buckets` (point reads).
int64_t AgentActive(const Reader& rd, const std::string& ws, const Agent& a,
                    const std::vector<BucketRef>& buckets);

// Whether point reads for `listed` agents over `buckets` beat whole-table scans (which are
// cached for the next requests): roughly, a point read costs what scanning ~8 rows does.
inline bool UsePointReads(size_t listed, size_t buckets, size_t table) {
  return listed <= 32 || listed * std::max<size_t>(buckets, 1) * 8 < table;
}

inline bool IsColumnSort(SuperagentSortField f) {
  return f == SuperagentSortField::kActiveUsers || f == SuperagentSortField::kMessageCredits ||
         f == SuperagentSortField::kIntegrationCredits || f == SuperagentSortField::kTotalCredits;
}

// The sort key of agent i for a field that depends on the columns.
inline double ColumnKey(SuperagentSortField f, const CreditColumn& credits,
                        const ActiveColumn& active, uint32_t i) {
  switch (f) {
    case SuperagentSortField::kActiveUsers:
      return static_cast<double>(active[i]);
    case SuperagentSortField::kMessageCredits:
      return credits[i].message;
    case SuperagentSortField::kIntegrationCredits:
      return credits[i].integration;
    default:
      return credits[i].message + credits[i].integration;
  }
}

// Whether `reads` point reads to bring a column forward beat recomputing it by scans over a
// table of `table` agents (when it is next needed).
inline bool PatchColumn(size_t reads, size_t table) { return UsePointReads(reads, 1, table); }

// A strict weak order on agent indexes of `inv` for one sort (ties by index, i.e. by id), given
// the columns it needs (null for the fields that need none).
struct SortLess {
  const Inventory* inv;
  SuperagentSortField field;
  bool descending;
  const CreditColumn* credits;
  const ActiveColumn* active;

  std::string_view Text(uint32_t i) const {
    const Agent& a = inv->agents[i];
    switch (field) {
      case SuperagentSortField::kName:
        return a.name;
      case SuperagentSortField::kCreatedByEmail:
        return inv->EmailAt(a.email);
      default:
        return a.owner;
    }
  }
  bool operator()(uint32_t x, uint32_t y) const {
    if (IsColumnSort(field) || field == SuperagentSortField::kCreatedAt) {
      const double kx = field == SuperagentSortField::kCreatedAt
                            ? static_cast<double>(inv->agents[x].created_at_ms)
                            : ColumnKey(field, *credits, *active, x);
      const double ky = field == SuperagentSortField::kCreatedAt
                            ? static_cast<double>(inv->agents[y].created_at_ms)
                            : ColumnKey(field, *credits, *active, y);
      if (kx != ky) return descending ? kx > ky : kx < ky;
    } else {
      const int c = Text(x).compare(Text(y));
      if (c != 0) return descending ? c > 0 : c < 0;
    }
    return x < y;
  }
};

}  // namespace tally::query::internal
