// Dropping the views of partitions neither owned nor kept as standbys
// (ConsumerOptions::drop_idle_after_ms).
#include <spdlog/spdlog.h>

#include <chrono>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/internal/consumer_impl.h"

namespace tally::ingest {
namespace {

// How often ingest looks for idle partitions to drop: the idle time is counted in seconds or
// minutes, and each look takes the consumer's lock.
constexpr auto kIdleCheckInterval = std::chrono::milliseconds(1000);

}  // namespace

void Consumer::Impl::MaybeDropIdle() {
  if (options.drop_idle_after_ms < 0) return;
  const auto now = Clock::now();
  if (now - last_idle_check < kIdleCheckInterval) return;
  last_idle_check = now;
  if (!left_over_loaded && ready->load()) {
    auto stored = store->LoadOffsets();
    if (stored) {
      std::lock_guard lock(mu);
      for (const auto& e : *stored) {
        if (e.topic == options.topic && !progress.contains(e.partition)) {
          left_over.insert(e.partition);
        }
      }
      left_over_loaded = true;
    }
  }
  std::vector<int32_t> due;
  {
    std::lock_guard lock(mu);
    std::set<int32_t> seen = left_over;
    for (const auto& [p, pr] : progress) seen.insert(p);
    for (int32_t p : seen) {
      if (IsAssigned(p) || IsStandby(p)) {
        idle_since.erase(p);
        kept_idle.erase(p);
        continue;
      }
      const auto since = idle_since.try_emplace(p, now).first->second;
      if (now - since >= std::chrono::milliseconds(options.drop_idle_after_ms) &&
          !kept_idle.contains(p)) {
        due.push_back(p);
      }
    }
  }
  if (!due.empty()) DropIdle(due);
}

void Consumer::Impl::DropIdle(const std::vector<int32_t>& due) {
  auto separable = store->PartitionsSeparable();
  if (!separable || !*separable) {
    if (!told_not_separable) {
      spdlog::warn(
          "ingest: keeping the views of partitions [{}] that this instance no longer owns or "
          "keeps as standbys: {}",
          JoinPartitions(due),
          !separable ? "reading the store failed: " + separable.error().message
                     : std::string("this data directory mixes every partition's state (it was "
                                   "created before state per partition, by a single instance, "
                                   "or files were replayed into it); start the instance on an "
                                   "empty --data-dir to keep state per partition"));
      told_not_separable = true;
    }
    kept_idle.insert(due.begin(), due.end());
    return;
  }
  // Everything consumed so far is stored first: the index then lists every workspace.
  if (!Flush()) return;
  auto index = store->LoadPartitionIndex(options.topic);
  if (!index) {
    spdlog::error("ingest: cannot drop idle partitions: {}", index.error().message);
    return;
  }
  std::set<std::string_view> kept;  // workspaces of partitions that stay
  for (const auto& [p, ws] : *index) {
    if (IsAssigned(p) || IsStandby(p)) kept.insert(ws);
  }
  for (int32_t p : due) {
    std::vector<std::string> workspaces;
    std::vector<store::Store::DroppedWorkspace> dropped;
    bool shared = false;
    for (const auto& [q, ws] : *index) {
      if (q != p) continue;
      if (kept.contains(ws)) shared = true;
      workspaces.push_back(ws);
      dropped.push_back({ws, std::string(aggregator->OrganizationOf(ws))});
    }
    if (shared) {
      spdlog::warn(
          "ingest: keeping the views of idle partition {}: a partition this instance keeps "
          "brought events of some of its workspaces too",
          p);
      kept_idle.insert(p);
      continue;
    }
    const auto t0 = Clock::now();
    auto rows = store->DropPartition(options.topic, p, dropped);
    if (!rows) {
      spdlog::error("ingest: dropping the views of partition {} failed: {}", p,
                    rows.error().message);
      return;
    }
    aggregator->ForgetPartition(options.topic, p, workspaces);
    {
      std::lock_guard lock(mu);
      progress.erase(p);
      expected_next.erase(p);
      gapped.erase(p);
      incomplete.erase(p);
      committed.erase(p);
      idle_since.erase(p);
      left_over.erase(p);
    }
    unpersisted_bytes.erase(p);
    partitions_dropped->Add();
    spdlog::info(
        "ingest: dropped the views of partition {} ({} workspaces, {} rows, in {:.0f} ms): "
        "neither owned nor kept as a standby here for {} ms; if it comes back it is consumed "
        "again from the log",
        p, workspaces.size(), *rows,
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count(),
        options.drop_idle_after_ms);
  }
}

}  // namespace tally::ingest
