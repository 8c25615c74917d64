#pragma once
// The listing of one Super Agents request (query/superagents.h): which agents of a cached table
// match the search and visibility filter, their order (a cached order of the whole table, or the
// listed agents sorted on their own), and the rows, built on demand.
//
//   std::vector<uint8_t> match;
//   if (MatchAgents(*listing->inv, request, &match) == 0) { /* nothing listed */ }
//   OrderListing(cache, key, rd, ws, order_key, match, count, range, last30, listing.get());
//
// Internal to tally_query. A finished Listing is immutable and thread-safe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/saturating.h"
#include "query/internal/superagents_cache.h"
#include "query/internal/superagents_table.h"
#include "query/range.h"
#include "query/superagents.h"

namespace tally::query::internal {

// The listing of one request: references to the (shared, immutable) inventory and columns and
// the listed agents in order; rows are built on demand.
class Listing final : public SuperagentsListing {
 public:
  size_t size() const override { return listed.size(); }
  SuperagentRow Row(size_t k) const override {
    SuperagentRow row;
    Fill(k, &row);
    return row;
  }
  void Fill(size_t k, SuperagentRow* row) const {
    const uint32_t i = listed[k];
    const Agent& a = inv->agents[i];
    const Credits c = point_credits.empty() ? (*credits)[i] : point_credits[k];
    row->superagent_id.assign(a.id);
    if (a.has_name) row->superagent_name.emplace(a.name);
    row->active_users_last_30d = point_active.empty() ? (*active)[i] : point_active[k];
    row->message_credits_consumed = c.message;
    row->integration_credits_consumed = c.integration;
    row->total_credits_consumed = SatAdd(c.message, c.integration);
    row->owner_user_id.assign(a.owner);
    if (a.email != kNoEmail) row->created_by_email.emplace(inv->emails[a.email]);
    row->created_at_ms = a.created_at_ms;
  }
  DayNumber from() const override { return from_; }
  DayNumber to() const override { return to_; }
  size_t OwnBytes() const override {
    return sizeof(*this) + listed.capacity() * sizeof(uint32_t) +
           point_credits.capacity() * sizeof(Credits) + point_active.capacity() * sizeof(int64_t);
  }
  const void* SharedTable() const override { return inv.get(); }
  // The table plus its two columns (shared with the listings of the same store state).
  size_t SharedTableBytes() const override {
    return inv ? inv->bytes + inv->agents.size() * (sizeof(Credits) + sizeof(int64_t)) : 0;
  }

  DayNumber from_ = 0, to_ = 0;
  std::shared_ptr<const Inventory> inv;
  std::shared_ptr<const CreditColumn> credits;  // null when point_credits is used
  std::shared_ptr<const ActiveColumn> active;   // null when point_active is used
  std::vector<uint32_t> listed;                 // agent indexes, in listing order
  std::vector<Credits> point_credits;           // by position in `listed`, without a column
  std::vector<int64_t> point_active;
};

// Sets (*match)[i] = 1 for every agent of `inv` that the request's search and visibility filter
// list, 0 for the others; returns how many are listed.
size_t MatchAgents(const Inventory& inv, const SuperagentsRequest& req,
                   std::vector<uint8_t>* match);

// The listing order of the agents `match` lists (`listed_count` of them) into out->listed, with
// their point-read usage in out->point_credits and out->point_active when out->credits or
// out->active is null: a cached order of the whole table (entry `key` of `cache`, at the reader's
// version) filtered by `match`, or the listed agents sorted here; the whole table's order is
// sorted and cached when many agents are listed. `range` and `last30` are the buckets of the
// credit range and of the last 30 days. out->inv, credits and active are set.
void OrderListing(Cache& cache, const std::string& key, const Reader& rd, const std::string& ws,
                  const OrderKey& order_key, const std::vector<uint8_t>& match, size_t listed_count,
                  const std::vector<BucketRef>& range, const std::vector<BucketRef>& last30,
                  Listing* out);

}  // namespace tally::query::internal
