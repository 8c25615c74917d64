#pragma once
// Super Agents helpers for tests and benchmarks (not for production code):
//
//   tally::query::SuperagentsCache cache;
//   tally::Result<tally::query::SuperagentsResult> r =
//       tally::query::ListSuperagents(store, cache, clock, req);   // every row, built at once
//   auto listing = std::make_shared<const tally::query::RowsListing>(*r);   // a fixed listing
//
// RowsListing is header-only (handler tests use it without linking tally_query);
// ListSuperagents is in target tally_query_testing.

#include <memory>
#include <utility>
#include <vector>

#include "query/superagents.h"

namespace tally::query {

struct SuperagentsResult {
  std::vector<SuperagentRow> rows;  // every matching agent, sorted
  DayNumber from = 0;               // the credit range actually used
  DayNumber to = 0;
};

// OpenSuperagents with every Row() built, in agent (memory) order. Errors as OpenSuperagents.
// Thread-safe like it.
Result<SuperagentsResult> ListSuperagents(const store::Store& store, SuperagentsCache& cache,
                                          const Clock& clock, const SuperagentsRequest& request);

// A listing over rows built beforehand (for tests and adapters).
class RowsListing final : public SuperagentsListing {
 public:
  explicit RowsListing(SuperagentsResult result) : result_(std::move(result)) {}
  size_t size() const override { return result_.rows.size(); }
  SuperagentRow Row(size_t i) const override { return result_.rows[i]; }
  DayNumber from() const override { return result_.from; }
  DayNumber to() const override { return result_.to; }
  size_t OwnBytes() const override { return result_.rows.size() * sizeof(SuperagentRow); }

 private:
  SuperagentsResult result_;
};

}  // namespace tally::query
