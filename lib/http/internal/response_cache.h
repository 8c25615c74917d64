#pragma once
// A TTL-expiring cache of rendered response bodies, bounded in bytes. Internal to lib/http.
//
//   ResponseCache cache({.ttl_ms = 300'000, .max_bytes = 64 << 20});
//   if (auto hit = cache.Get(key, now_ms)) return hit->body;
//   cache.Put(key, body, now_ms);
//
// Bounds: the entries' bytes together (EntryBytes: key, body and bookkeeping) stay within
// max_bytes, and there are at most max_entries of them; when a new entry does not fit, the
// oldest insertions go first. An entry larger than max_entry_bytes (default max_bytes / 8) is
// not cached at all, so one huge answer cannot flush everything else.
// Expiry: every Get and Put first drops the expired entries at the old end of the cache (cheap:
// O(expired)), so memory of expired entries is released even when their keys are never asked
// for again. A Get of an expired entry drops it too.
// Thread-safe (one mutex; entries are copied out so no reference outlives the lock). The
// optional gauges are set under that mutex after every change.

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/metrics.h"

namespace tally::http::internal {

struct ResponseCacheOptions {
  int64_t ttl_ms = 300'000;        // <= 0 disables the cache
  size_t max_bytes = 64u << 20;    // 0 disables the cache
  size_t max_entry_bytes = 0;      // 0 = max_bytes / 8
  size_t max_entries = 100'000;    // a second bound, on the count
  Gauge* bytes_gauge = nullptr;    // optional: set to bytes()
  Gauge* entries_gauge = nullptr;  // optional: set to size()
};

class ResponseCache {
 public:
  struct Entry {
    std::string body;
    int64_t computed_at_ms = 0;
  };

  // Memory an entry for `key` and `body` is accounted for: both strings' capacities, the key's
  // second copy (in the eviction order) and a fixed cost for the map and list nodes.
  static size_t EntryBytes(const std::string& key, const std::string& body) {
    return 2 * key.capacity() + body.capacity() + kNodeOverhead;
  }

  explicit ResponseCache(ResponseCacheOptions options) : options_(options) {
    if (options_.max_entry_bytes == 0) options_.max_entry_bytes = options_.max_bytes / 8;
  }

  bool enabled() const {
    return options_.ttl_ms > 0 && options_.max_bytes > 0 && options_.max_entries > 0;
  }

  // The entry for `key` if it was computed less than ttl ago (relative to now_ms).
  std::optional<Entry> Get(const std::string& key, int64_t now_ms) {
    if (!enabled()) return std::nullopt;
    std::lock_guard lock(mu_);
    SweepExpired(now_ms);
    std::optional<Entry> out;
    auto it = map_.find(key);
    if (it != map_.end()) {
      if (Expired(it->second.entry, now_ms)) {
        Erase(it);
      } else {
        out = it->second.entry;
      }
    }
    UpdateGauges();
    return out;
  }

  // Stores `body` for `key` (replacing any previous entry), unless it is larger than
  // max_entry_bytes; evicts the oldest entries as needed to stay within the bounds.
  void Put(const std::string& key, std::string body, int64_t computed_at_ms) {
    if (!enabled()) return;
    std::lock_guard lock(mu_);
    SweepExpired(computed_at_ms);
    if (auto it = map_.find(key); it != map_.end()) Erase(it);
    const size_t cost = EntryBytes(key, body);
    if (cost <= options_.max_entry_bytes && cost <= options_.max_bytes) {
      while (!order_.empty() &&
             (bytes_ + cost > options_.max_bytes || map_.size() >= options_.max_entries)) {
        Erase(map_.find(order_.front()));
      }
      order_.push_back(key);
      Slot slot{Entry{std::move(body), computed_at_ms}, std::prev(order_.end()), cost};
      map_.emplace(key, std::move(slot));
      bytes_ += cost;
    }
    UpdateGauges();
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return map_.size();
  }

  // Accounted bytes of all entries (sum of EntryBytes), <= max_bytes.
  size_t bytes() const {
    std::lock_guard lock(mu_);
    return bytes_;
  }

 private:
  static constexpr size_t kNodeOverhead = 160;

  struct Slot {
    Entry entry;
    std::list<std::string>::iterator order;
    size_t bytes = 0;
  };
  using Map = std::unordered_map<std::string, Slot>;

  bool Expired(const Entry& e, int64_t now_ms) const {
    const int64_t age = now_ms - e.computed_at_ms;
    return age >= options_.ttl_ms || age < 0;
  }

  // Drops expired entries from the old end. Insertion order is computation order, so this stops
  // at the first live entry; one computed "in the future" (clock stepped back) is dropped too.
  void SweepExpired(int64_t now_ms) {
    while (!order_.empty()) {
      auto it = map_.find(order_.front());
      if (!Expired(it->second.entry, now_ms)) break;
      Erase(it);
    }
  }

  void Erase(Map::iterator it) {
    bytes_ -= it->second.bytes;
    order_.erase(it->second.order);
    map_.erase(it);
  }

  void UpdateGauges() {
    if (options_.bytes_gauge) options_.bytes_gauge->Set(static_cast<double>(bytes_));
    if (options_.entries_gauge) options_.entries_gauge->Set(static_cast<double>(map_.size()));
  }

  ResponseCacheOptions options_;
  mutable std::mutex mu_;
  std::list<std::string> order_;  // insertion order, oldest first
  Map map_;
  size_t bytes_ = 0;
};

}  // namespace tally::http::internal
