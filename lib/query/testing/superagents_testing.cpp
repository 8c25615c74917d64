#include "query/testing/superagents_testing.h"

#include <cstdint>

#include "query/internal/superagents_listing.h"

namespace tally::query {

Result<SuperagentsResult> ListSuperagents(const store::Store& store, SuperagentsCache& cache,
                                          const Clock& clock, const SuperagentsRequest& req) {
  Result<std::shared_ptr<const SuperagentsListing>> listing =
      OpenSuperagents(store, cache, clock, req);
  if (!listing) return std::unexpected(listing.error());
  const auto& l = static_cast<const internal::Listing&>(**listing);
  SuperagentsResult out;
  out.from = l.from();
  out.to = l.to();
  const size_t n = l.size();
  if (n == 0) return out;
  out.rows.resize(n);
  // Fill the rows in agent (memory) order rather than in listing order: the agent table is then
  // read sequentially, and only the writes land at random places.
  std::vector<uint32_t> row_of(l.inv->agents.size(), UINT32_MAX);
  for (size_t k = 0; k < n; ++k) row_of[l.listed[k]] = static_cast<uint32_t>(k);
  for (uint32_t k : row_of)
    if (k != UINT32_MAX) l.Fill(k, &out.rows[k]);
  return out;
}

}  // namespace tally::query
