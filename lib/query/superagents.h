#pragma once
// The engine behind GET /api/v1/monitoring/{workspace_id}/superagents
// (schemas/openapi.yaml): the inventory of a workspace's live agents with their usage.
//
//   tally::query::SuperagentsCache cache;          // kept across requests (tallyd: one)
//   tally::query::SuperagentsRequest req;
//   req.workspace_id = "ws_1";
//   req.sort = *tally::query::ParseSuperagentSort("-total_credits_consumed");
//   req.search = "support";                        // optional
//   auto listing = tally::query::OpenSuperagents(store, cache, clock, req);
//   for (size_t i = 0; i < (*listing)->size(); ++i) {
//     tally::query::SuperagentRow row = (*listing)->Row(i);   // full list, sorted
//   }
//
// Semantics (docs/design.md "API semantics"):
//  - Inventory: agents with a created/copied event (field kEntityCreated) that are not deleted
//    (no kEntityDeleted, or a later kEntityRevived); latest name and visibility.
//  - active_users_last_30d: distinct users with agent.executed on the agent in the 30 days ending
//    today (always that window, whatever from/to).
//  - message/integration credits: sums over [from, to] (default: first day of the current UTC
//    month .. today); total = message + integration.
//  - owner_user_id: the latest owner field, else the creator (created_by).
//  - created_by_email: the creator's latest profile email in this workspace; nullopt if unknown.
//  - search: case-insensitive (ASCII) substring of the name or of the creator email.
//  - visibility: exact kind, or kPublic = public_with_login or public_without_login.
//  - Order: by the sort field (strings in byte order, absent name/email as ""), then always by
//    superagent_id ascending.
// Cost: the workspace's agent table (one scan of its agent rows and of its user profiles), the
// credits over [from, to] (one pass over the counter rows of DecomposeRange(from, to)) and the
// active users (one pass over the bitmap rows of the last 30 days) are computed from one store
// snapshot and cached in the caller's SuperagentsCache, tagged with the snapshot's version
// (store::ReadView::version): a request whose snapshot has the same version reuses them. After each
// write, the store runs the cache's follower (store::Store::Follow) on the writing thread: it
// brings the store's tables that requests used in the last 5 minutes forward to the new state, so
// requests find them current; a request that finds its table behind (the follower was busy, or
// skipped it) brings it forward itself, or waits for the refresh in progress. A request computes
// what it caches (a table, a refresh, a column) from a stable view
// (store::Store::NewStableReadView), which holds staging off meanwhile: a batch staged during the
// computation would otherwise be in the cached result and again in the next refresh. A request that
// finds everything cached uses a plain view and holds nothing. Bringing forward replays what the
// store's change log (store/change_log.h) says the writes did to the workspace: each touched
// agent's credits are added to the cached columns and its new users ORed into per-agent user sets
// (no store reads); an agent row is re-read only when a write merged a field the listing shows with
// another value, or created, deleted or revived the agent, and a creator's profile only when a
// write named another email; the table is then patched in memory (unchanged agents keep their
// strings), and the moved agents are placed back into the cached sort orders. Only a log that
// cannot prove what changed (too far behind, or a write without a note) rebuilds everything. A
// refreshed answer equals a recomputed one, except that its credits are the same amounts added in
// another order, so they may differ in the last bits of a double (as staged and persisted rows
// may: store.h Persist). A request that lists few agents reads their credits and users with
// point reads instead. Then: the search over the table (one memmem pass over the names, one
// find per distinct creator email), the sort (the whole table's order is cached per sort field
// and range), and one row per listed agent. So with an idle store a request costs O(agents of
// the workspace) for the filter plus O(listed agents) for the rows; after writes, O(changes
// logged) in memory plus O(agents) to copy the columns and orders it patches, plus a point read
// per agent whose shown fields or liveness changed.
//
// Thread-safe: any number of concurrent calls on one Store and one SuperagentsCache.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/calendar.h"
#include "common/clock.h"
#include "common/result.h"

namespace tally::store {
class Store;
}
namespace tally::query::internal {
class Cache;
}

namespace tally::query {

inline constexpr int32_t kSuperagentsMaxDays = 3660;
inline constexpr size_t kSuperagentsMaxSearch = 100;  // characters (code points)

enum class SuperagentSortField {
  kName,
  kCreatedAt,
  kCreatedByEmail,
  kOwnerUserId,
  kActiveUsers,
  kMessageCredits,
  kIntegrationCredits,
  kTotalCredits,
};

struct SuperagentSort {
  SuperagentSortField field = SuperagentSortField::kTotalCredits;
  bool descending = true;
};

// "superagent_name", "-created_at", ... (the 8 documented field names, optional "-" prefix for
// descending). nullopt for anything else. Pure; inline so that tally_http needs no tally_query.
inline std::optional<SuperagentSort> ParseSuperagentSort(std::string_view text);

enum class VisibilityFilter {
  kAny,
  kPrivate,
  kWorkspace,
  kPublicWithLogin,
  kPublicWithoutLogin,
  kPublic,  // both public kinds
};

// "private", "workspace", "public_with_login", "public_without_login", "public"; nullopt
// otherwise. Pure; inline like ParseSuperagentSort.
inline std::optional<VisibilityFilter> ParseVisibilityFilter(std::string_view text);

struct SuperagentsRequest {
  std::string workspace_id;
  // Inclusive credit range. Both set, or both unset (= first day of this UTC month .. today).
  std::optional<DayNumber> from;
  std::optional<DayNumber> to;
  SuperagentSort sort;
  std::string search;  // empty = no search; UTF-8, at most kSuperagentsMaxSearch characters
  VisibilityFilter visibility = VisibilityFilter::kAny;
};

struct SuperagentRow {
  std::string superagent_id;
  std::optional<std::string> superagent_name;  // nullopt when never sent
  int64_t active_users_last_30d = 0;
  double message_credits_consumed = 0;
  double integration_credits_consumed = 0;
  double total_credits_consumed = 0;
  std::string owner_user_id;
  std::optional<std::string> created_by_email;
  int64_t created_at_ms = 0;
};

// The list OpenSuperagents gives: every matching agent, filtered and sorted, with rows built on
// demand. Opening it costs the filter and the sort, not the rows, so a caller that shows one page
// of a long list (and keeps the listing for the next pages) pays for that page only. Immutable and
// thread-safe; it keeps the workspace's agent table it was cut from alive (about 300 bytes per
// agent of the workspace, shared by every listing of the same store state), plus 4 bytes per listed
// agent.
class SuperagentsListing {
 public:
  virtual ~SuperagentsListing() = default;
  virtual size_t size() const = 0;
  // Row i of the sorted list, 0 <= i < size().
  virtual SuperagentRow Row(size_t i) const = 0;
  // The credit range used.
  virtual DayNumber from() const = 0;
  virtual DayNumber to() const = 0;
  // Memory kept alive, for callers that bound a cache of listings: OwnBytes() is this listing's
  // alone; SharedTable() identifies a table shared by every listing cut from the same store
  // state (nullptr if none) and SharedTableBytes() is its size, to be counted once per table.
  virtual size_t OwnBytes() const = 0;
  virtual const void* SharedTable() const { return nullptr; }
  virtual size_t SharedTableBytes() const { return 0; }
};

// What a SuperagentsCache has done and holds (SuperagentsCache::Stats).
struct SuperagentsCacheStats {
  uint64_t builds = 0;
  uint64_t refreshes = 0;
  uint64_t column_scans = 0;
  uint64_t workspaces = 0;
  uint64_t bytes = 0;
};

// The per-workspace tables, columns and sort orders OpenSuperagents computes, kept between
// requests (see "Cost" above). Bounded: 16 workspaces, 1M agents and `max_bytes` estimated bytes
// (least recently used workspaces evicted first; the most recently used one is always kept, even
// alone above the bound). Entries are keyed by store (identity and path) and workspace, so one
// cache may serve several stores, e.g. the live store and the one a switch brings in. While it
// lives, the writes of every store it served bring that store's recently used tables forward
// (store::Store::Follow); destroying it stops that (the store may outlive it). Thread-safe.
class SuperagentsCache {
 public:
  // The default bound on estimated bytes (agent tables with the columns and sort orders computed
  // from them).
  static constexpr size_t kDefaultMaxBytes = size_t{1} << 30;

  explicit SuperagentsCache(size_t max_bytes = kDefaultMaxBytes);
  ~SuperagentsCache();
  SuperagentsCache(const SuperagentsCache&) = delete;
  SuperagentsCache& operator=(const SuperagentsCache&) = delete;

  // Counts since this cache was made, over all stores it served (for tests and monitoring):
  // agent tables built from a store snapshot, cached tables brought forward to a newer snapshot
  // from the store's change log (without a rebuild), and whole-table credit or active-user
  // columns computed by scans. Also its current size: workspaces cached and their estimated
  // bytes.
  SuperagentsCacheStats Stats() const;

  // Sets the bound on estimated bytes and evicts least recently used workspaces down to it.
  void SetMaxBytes(size_t max_bytes);

 private:
  friend Result<std::shared_ptr<const SuperagentsListing>> OpenSuperagents(
      const store::Store& store, SuperagentsCache& cache, const Clock& clock,
      const SuperagentsRequest& request);
  // Shared with the followers registered on the stores (weakly: they end with the cache).
  std::shared_ptr<internal::Cache> cache_;
};

// The list for `request`, from `store`'s latest state, with `cache`'s tables (computed and cached
// there when missing). kInvalidArgument (with `field`) when only one of from/to is set ("to" /
// "from"), from > to ("to"), the range is longer than kSuperagentsMaxDays ("from") or search is
// too long (in characters) or not UTF-8 ("search"). An unknown workspace gives an empty listing.
// The caller keeps `cache` alive for the call.
Result<std::shared_ptr<const SuperagentsListing>> OpenSuperagents(
    const store::Store& store, SuperagentsCache& cache, const Clock& clock,
    const SuperagentsRequest& request);

// ---------------------------------------------------------------------------------------------
// Inline definitions.

inline std::optional<SuperagentSort> ParseSuperagentSort(std::string_view text) {
  SuperagentSort s;
  s.descending = !text.empty() && text.front() == '-';
  if (s.descending) text.remove_prefix(1);
  static constexpr std::pair<std::string_view, SuperagentSortField> kFields[] = {
      {"superagent_name", SuperagentSortField::kName},
      {"created_at", SuperagentSortField::kCreatedAt},
      {"created_by_email", SuperagentSortField::kCreatedByEmail},
      {"owner_user_id", SuperagentSortField::kOwnerUserId},
      {"active_users_last_30d", SuperagentSortField::kActiveUsers},
      {"message_credits_consumed", SuperagentSortField::kMessageCredits},
      {"integration_credits_consumed", SuperagentSortField::kIntegrationCredits},
      {"total_credits_consumed", SuperagentSortField::kTotalCredits},
  };
  for (const auto& [name, field] : kFields) {
    if (text == name) {
      s.field = field;
      return s;
    }
  }
  return std::nullopt;
}

inline std::optional<VisibilityFilter> ParseVisibilityFilter(std::string_view text) {
  if (text == "private") return VisibilityFilter::kPrivate;
  if (text == "workspace") return VisibilityFilter::kWorkspace;
  if (text == "public_with_login") return VisibilityFilter::kPublicWithLogin;
  if (text == "public_without_login") return VisibilityFilter::kPublicWithoutLogin;
  if (text == "public") return VisibilityFilter::kPublic;
  return std::nullopt;
}

}  // namespace tally::query
