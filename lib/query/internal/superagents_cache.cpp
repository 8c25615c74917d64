#include "query/internal/superagents_cache.h"

#include <algorithm>

namespace tally::query::internal {

std::shared_ptr<const Inventory> Cache::FindInventory(const std::string& key, uint64_t seq) {
  std::lock_guard lock(mu_);
  CacheEntry* e = Entry(key, seq);
  return e ? e->inventory : nullptr;
}

// The store state the entry of `key` describes; 0 if none.
uint64_t Cache::Seq(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() || !it->second.inventory ? 0 : it->second.seq;
}

// A copy of the entry of `key` (empty inventory if none).
CacheEntry Cache::Copy(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? CacheEntry{} : it->second;
}

// The mutex held while the entry of `key` is brought forward or rebuilt; null if no entry.
std::shared_ptr<std::mutex> Cache::RefreshMutex(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second.refresh_mu;
}

// The keys starting with `prefix` whose entries a request found within `recent`.
std::vector<std::string> Cache::RecentlyUsed(std::string_view prefix,
                                             std::chrono::steady_clock::duration recent) {
  std::vector<std::string> keys;
  const auto since = std::chrono::steady_clock::now() - recent;
  std::lock_guard lock(mu_);
  for (const auto& [key, e] : entries_) {
    if (e.inventory && e.used_at >= since && key.starts_with(prefix)) keys.push_back(key);
  }
  return keys;
}

// Replaces the entry of `key` by `entry` unless the cached one describes a later state.
void Cache::Put(const std::string& key, CacheEntry entry) {
  CacheEntry old;  // destroyed after the lock is released
  std::lock_guard lock(mu_);
  CacheEntry& e = entries_[key];
  if (e.inventory && e.seq >= entry.seq) return;  // keep the newer one
  if (!entry.refresh_mu) {
    entry.refresh_mu = e.refresh_mu ? e.refresh_mu : std::make_shared<std::mutex>();
  }
  entry.used_at =
      e.inventory ? std::max(e.used_at, entry.used_at) : std::chrono::steady_clock::now();
  agents_ -= e.inventory ? e.inventory->agents.size() : 0;
  agents_ += entry.inventory->agents.size();
  bytes_ -= e.inventory ? EntryBytes(*e.inventory) : 0;
  bytes_ += EntryBytes(*entry.inventory);
  old = std::move(e);
  e = std::move(entry);
  e.last_use = ++clock_;
  Evict(key);
}

std::shared_ptr<const CreditColumn> Cache::FindCredits(const std::string& key, uint64_t seq,
                                                       DayNumber from, DayNumber to) {
  std::lock_guard lock(mu_);
  CacheEntry* e = Entry(key, seq);
  if (!e) return nullptr;
  for (const auto& [range, col] : e->credits)
    if (range.first == from && range.second == to) return col;
  return nullptr;
}

void Cache::PutCredits(const std::string& key, uint64_t seq, DayNumber from, DayNumber to,
                       std::shared_ptr<const CreditColumn> col) {
  std::lock_guard lock(mu_);
  CacheEntry* e = Entry(key, seq);
  if (!e) return;
  e->credits.emplace_front(std::make_pair(from, to), std::move(col));
  if (e->credits.size() > kCacheColumnsPerKind) e->credits.pop_back();
}

std::shared_ptr<const ActiveColumn> Cache::FindActive(const std::string& key, uint64_t seq,
                                                      DayNumber today) {
  std::lock_guard lock(mu_);
  CacheEntry* e = Entry(key, seq);
  if (!e) return nullptr;
  for (const auto& [day, col] : e->active)
    if (day == today) return col;
  return nullptr;
}

void Cache::PutActive(const std::string& key, uint64_t seq, DayNumber today,
                      std::shared_ptr<const ActiveColumn> col) {
  std::lock_guard lock(mu_);
  CacheEntry* e = Entry(key, seq);
  if (!e) return;
  e->active.emplace_front(today, std::move(col));
  if (e->active.size() > kCacheColumnsPerKind) e->active.pop_back();
}

std::shared_ptr<const Order> Cache::FindOrder(const std::string& key, uint64_t seq,
                                              const OrderKey& ok) {
  std::lock_guard lock(mu_);
  CacheEntry* e = Entry(key, seq);
  if (!e) return nullptr;
  for (const auto& [k, order] : e->orders)
    if (k == ok) return order;
  return nullptr;
}

void Cache::PutOrder(const std::string& key, uint64_t seq, const OrderKey& ok,
                     std::shared_ptr<const Order> order) {
  std::lock_guard lock(mu_);
  CacheEntry* e = Entry(key, seq);
  if (!e) return;
  e->orders.emplace_front(ok, std::move(order));
  if (e->orders.size() > kCacheOrders) e->orders.pop_back();
}

// The entry of `key` if it describes exactly the store state `seq`.
CacheEntry* Cache::Entry(const std::string& key, uint64_t seq) {
  auto it = entries_.find(key);
  if (it == entries_.end() || !it->second.inventory || it->second.seq != seq) return nullptr;
  it->second.last_use = ++clock_;
  it->second.used_at = std::chrono::steady_clock::now();
  return &it->second;
}

// Changes the bound on bytes and evicts down to it (the most recently used entry stays).
void Cache::SetMaxBytes(size_t max_bytes) {
  std::vector<CacheEntry> evicted;  // destroyed after the lock is released
  std::lock_guard lock(mu_);
  max_bytes_ = max_bytes;
  std::string newest;
  uint64_t newest_use = 0;
  for (const auto& [key, e] : entries_) {
    if (e.last_use >= newest_use) {
      newest_use = e.last_use;
      newest = key;
    }
  }
  Evict(newest, &evicted);
}

SuperagentsCacheStats Cache::Stats() {
  SuperagentsCacheStats stats;
  stats.builds = builds_.load(std::memory_order_relaxed);
  stats.refreshes = refreshes_.load(std::memory_order_relaxed);
  stats.column_scans = column_scans_.load(std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  stats.workspaces = entries_.size();
  stats.bytes = bytes_;
  return stats;
}

// Drops the least recently used entries (never `keep`) beyond the bounds; moves them to
// `evicted` when given (to be destroyed outside the lock).
void Cache::Evict(const std::string& keep, std::vector<CacheEntry>* evicted) {
  while (entries_.size() > kCacheWorkspaces ||
         ((agents_ > kCacheAgents || bytes_ > max_bytes_) && entries_.size() > 1)) {
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first == keep) continue;
      if (victim == entries_.end() || it->second.last_use < victim->second.last_use) victim = it;
    }
    if (victim == entries_.end()) return;
    agents_ -= victim->second.inventory->agents.size();
    bytes_ -= EntryBytes(*victim->second.inventory);
    if (evicted) evicted->push_back(std::move(victim->second));
    entries_.erase(victim);
  }
}

}  // namespace tally::query::internal
