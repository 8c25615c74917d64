#pragma once
// A bounded, TTL-expiring cache of rendered response bodies. Internal to lib/http.
//
//   ResponseCache cache(/*ttl_ms=*/300'000, /*max_entries=*/10'000);
//   if (auto hit = cache.Get(key, now_ms)) return hit->body;
//   cache.Put(key, body, now_ms);
//
// Eviction: expired entries are dropped on lookup; when full, the oldest insertion goes first.
// Thread-safe (one mutex; entries are copied out so no reference outlives the lock).

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace tally::http::internal {

class ResponseCache {
 public:
  struct Entry {
    std::string body;
    int64_t computed_at_ms = 0;
  };

  // ttl_ms <= 0 disables the cache (Get never hits, Put stores nothing).
  ResponseCache(int64_t ttl_ms, size_t max_entries) : ttl_ms_(ttl_ms), max_entries_(max_entries) {}

  bool enabled() const { return ttl_ms_ > 0 && max_entries_ > 0; }

  // The entry for `key` if it was computed less than ttl ago (relative to now_ms).
  std::optional<Entry> Get(const std::string& key, int64_t now_ms) {
    if (!enabled()) return std::nullopt;
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    const int64_t age = now_ms - it->second.entry.computed_at_ms;
    if (age >= ttl_ms_ || age < 0) {
      order_.erase(it->second.order);
      map_.erase(it);
      return std::nullopt;
    }
    return it->second.entry;
  }

  void Put(const std::string& key, std::string body, int64_t computed_at_ms) {
    if (!enabled()) return;
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      order_.erase(it->second.order);
      map_.erase(it);
    }
    while (map_.size() >= max_entries_ && !order_.empty()) {
      map_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(key);
    Slot slot{Entry{std::move(body), computed_at_ms}, std::prev(order_.end())};
    map_.emplace(key, std::move(slot));
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return map_.size();
  }

 private:
  struct Slot {
    Entry entry;
    std::list<std::string>::iterator order;
  };
  const int64_t ttl_ms_;
  const size_t max_entries_;
  mutable std::mutex mu_;
  std::list<std::string> order_;  // insertion order, oldest first
  std::unordered_map<std::string, Slot> map_;
};

}  // namespace tally::http::internal
