#pragma once
// The cache behind query::SuperagentsCache (query/superagents.h): per (store, workspace), the
// agent table and the columns and sort orders computed from it, all tagged with the store state
// they describe (store::ReadView::version), bounded in workspaces, agents and estimated bytes
// (least recently used entries evicted first), and the counts of builds, refreshes and column
// scans reported by SuperagentsCache::Stats.
//
//   internal::Cache cache(SuperagentsCache::kDefaultMaxBytes);
//   cache.Put(key, std::move(entry));                        // entry.seq = the view's version
//   std::shared_ptr<const Inventory> inv = cache.FindInventory(key, rd.version());
//
// Internal to tally_query. Thread-safe: every method locks the cache (briefly; entries are
// copied or shared out, never referenced under the lock by callers).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/calendar.h"
#include "query/internal/superagents_table.h"
#include "query/superagents.h"

namespace tally::query::internal {

constexpr size_t kCacheWorkspaces = 16;
constexpr size_t kCacheAgents = 1'000'000;  // agents of all cached inventories together
constexpr size_t kCacheColumnsPerKind = 4;  // credit ranges / active-user days per workspace
constexpr size_t kCacheOrders = 16;         // sort orders per workspace
// Besides the counts above, the estimated bytes of all entries (EntryBytes) are bounded by
// the cache's max_bytes (SuperagentsCache::kDefaultMaxBytes unless set): agent names and emails
// of up to a few KB each make the agent count alone a weak bound on memory.

// A sort order of the whole inventory.
struct Order {
  std::vector<uint32_t> index;  // agent indexes in listing order
  // For a sort on a column: each agent's sort key (ColumnKey), in listing order, so that a
  // refresh places moved agents without a random read of the columns per comparison. Empty for
  // the other sorts.
  std::vector<double> key;
};
struct OrderKey {
  SuperagentSortField field;
  bool descending;
  DayNumber from, to, today;  // the columns it was computed from
  bool operator==(const OrderKey&) const = default;
};

// The cached state of one workspace: the inventory and the columns and orders computed from
// it, all describing the store at version `seq` (store::ReadView::version; the inventory may have
// been built at an earlier one and carried forward by Refresh when no listed row changed since).
struct CacheEntry {
  uint64_t seq = 0;
  std::shared_ptr<const Inventory> inventory;
  std::list<std::pair<std::pair<DayNumber, DayNumber>, std::shared_ptr<const CreditColumn>>>
      credits;  // most recent first
  std::list<std::pair<DayNumber, std::shared_ptr<const ActiveColumn>>> active;
  std::list<std::pair<OrderKey, std::shared_ptr<const Order>>> orders;
  uint64_t last_use = 0;
  // When a request last found the entry (the follower keeps following it for a while).
  std::chrono::steady_clock::time_point used_at{};
  // Held while the entry is brought forward or rebuilt (shared by every state of the entry), so
  // that a request waits for a refresh in progress instead of repeating it.
  std::shared_ptr<std::mutex> refresh_mu;
};

// Estimated memory of the user set of one agent of an active-user column (a small CRoaring
// bitmap: its header, container arrays and a few dozen ids, with allocator overhead).
constexpr size_t kActiveSetBytes = 256;

// Estimated memory of a cache entry over `inv`: the inventory, and the most columns (with the
// user sets behind active-user columns) and sort orders the entry can hold.
inline size_t EntryBytes(const Inventory& inv) {
  return inv.bytes +
         inv.agents.size() *
             (kCacheColumnsPerKind * (sizeof(Credits) + sizeof(int64_t) + kActiveSetBytes) +
              kCacheOrders * (sizeof(uint32_t) + sizeof(double)));
}

class Cache {
 public:
  explicit Cache(size_t max_bytes) : max_bytes_(max_bytes) {}

  std::shared_ptr<const Inventory> FindInventory(const std::string& key, uint64_t seq);

  // The store state the entry of `key` describes; 0 if none.
  uint64_t Seq(const std::string& key);

  // A copy of the entry of `key` (empty inventory if none).
  CacheEntry Copy(const std::string& key);

  // The mutex held while the entry of `key` is brought forward or rebuilt; null if no entry.
  std::shared_ptr<std::mutex> RefreshMutex(const std::string& key);

  // The keys starting with `prefix` whose entries a request found within `recent`.
  std::vector<std::string> RecentlyUsed(std::string_view prefix,
                                        std::chrono::steady_clock::duration recent);

  // Replaces the entry of `key` by `entry` unless the cached one describes a later state.
  void Put(const std::string& key, CacheEntry entry);

  // The columns and orders of the entry of `key` if it describes the store state `seq` (Find*:
  // null otherwise; Put*: nothing stored otherwise). Each kind keeps its most recent few.
  std::shared_ptr<const CreditColumn> FindCredits(const std::string& key, uint64_t seq,
                                                  DayNumber from, DayNumber to);
  void PutCredits(const std::string& key, uint64_t seq, DayNumber from, DayNumber to,
                  std::shared_ptr<const CreditColumn> col);
  std::shared_ptr<const ActiveColumn> FindActive(const std::string& key, uint64_t seq,
                                                 DayNumber today);
  void PutActive(const std::string& key, uint64_t seq, DayNumber today,
                 std::shared_ptr<const ActiveColumn> col);
  std::shared_ptr<const Order> FindOrder(const std::string& key, uint64_t seq, const OrderKey& ok);
  void PutOrder(const std::string& key, uint64_t seq, const OrderKey& ok,
                std::shared_ptr<const Order> order);

  // Changes the bound on bytes and evicts down to it (the most recently used entry stays).
  void SetMaxBytes(size_t max_bytes);

  // Counted by the callers: tables built from a snapshot, brought forward from the change log,
  // and whole-table columns computed by scans.
  void CountBuild() { builds_.fetch_add(1, std::memory_order_relaxed); }
  void CountRefresh() { refreshes_.fetch_add(1, std::memory_order_relaxed); }
  void CountColumnScan() { column_scans_.fetch_add(1, std::memory_order_relaxed); }

  // Those counts, and the entries with their estimated bytes.
  SuperagentsCacheStats Stats();

 private:
  // The entry of `key` if it describes exactly the store state `seq`.
  CacheEntry* Entry(const std::string& key, uint64_t seq);
  // Drops the least recently used entries (never `keep`) beyond the bounds; moves them to
  // `evicted` when given (to be destroyed outside the lock).
  void Evict(const std::string& keep, std::vector<CacheEntry>* evicted = nullptr);

  std::mutex mu_;
  std::unordered_map<std::string, CacheEntry> entries_;  // key: db identity, path, workspace
  size_t agents_ = 0;
  size_t bytes_ = 0;  // EntryBytes of every entry's inventory
  size_t max_bytes_;
  uint64_t clock_ = 0;
  std::atomic<uint64_t> builds_{0}, refreshes_{0}, column_scans_{0};
};

}  // namespace tally::query::internal
