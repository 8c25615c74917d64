// Standby partitions (Consumer::SetStandby): read by the assign-only client from their stored
// offsets into the same batches as the owned ones.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <vector>

#include "ingest/internal/consumer_impl.h"

namespace tally::ingest {

void Consumer::Impl::MaybeStandby() {
  std::vector<int32_t> want;
  {
    std::lock_guard lock(standby_mu);
    if (!standby_dirty) return;
    standby_dirty = false;
    want = standby_wanted;
  }
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  std::erase_if(want, [&](int32_t p) { return IsAssigned(p); });
  std::vector<int32_t> drop, add;
  std::set_difference(standby.begin(), standby.end(), want.begin(), want.end(),
                      std::back_inserter(drop));
  std::set_difference(want.begin(), want.end(), standby.begin(), standby.end(),
                      std::back_inserter(add));
  if (!drop.empty()) DropStandby(drop);
  if (!add.empty()) AddStandby(add);
}

void Consumer::Impl::RecheckStandby() {
  std::lock_guard lock(standby_mu);
  standby_dirty = true;
}

void Consumer::Impl::DropStandby(const std::vector<int32_t>& parts) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(parts.size()));
  for (int32_t p : parts) rd_kafka_topic_partition_list_add(list, options.topic.c_str(), p);
  if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(standby_rk, list)) {
    spdlog::error("ingest: dropping standbys failed: {}", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  rd_kafka_topic_partition_list_destroy(list);
  std::lock_guard lock(mu);
  for (int32_t p : parts) std::erase(standby, p);
  spdlog::info("ingest: no longer keeping standbys of partitions [{}]", JoinPartitions(parts));
}

void Consumer::Impl::AddStandby(const std::vector<int32_t>& parts) {
  if (standby_rk == nullptr) {
    auto created = NewClient(/*for_standby=*/true);
    if (!created) {
      spdlog::error("ingest: cannot keep standbys: {}", created.error().message);
      return;
    }
    standby_rk = *created;
  }
  // Stored offsets must cover everything applied here (a partition may have been a standby
  // before, with staged state).
  if (!Flush()) return;
  auto stored = store->LoadOffsets();
  if (!stored) {
    spdlog::error("ingest: cannot keep standbys: reading stored offsets: {}",
                  stored.error().message);
    return;
  }
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(parts.size()));
  std::vector<int32_t> taken;
  for (int32_t p : parts) {
    int64_t lo = -1, hi = -1;
    rd_kafka_query_watermark_offsets(standby_rk, options.topic.c_str(), p, &lo, &hi,
                                     internal::kMetadataTimeoutMs);
    const store::StoredOffset* found = nullptr;
    for (const auto& e : *stored) {
      if (e.topic == options.topic && e.partition == p) found = &e.offset;
    }
    int64_t start = 0;
    if (found && found->cluster_id == cluster_id && (hi < 0 || found->next_offset <= hi)) {
      start = found->next_offset;
    } else if (found && Policy() == NewLogPolicy::kStop) {
      spdlog::warn(
          "ingest: not keeping a standby of {}[{}]: its stored offset belongs to "
          "another log",
          options.topic, p);
      continue;
    }
    if (lo > start) {
      trimmed->Add();
      spdlog::error(
          "ingest: not keeping a standby of {}[{}]: the log starts at {}, and events "
          "{}..{} are not here",
          options.topic, p, lo, start, lo - 1);
      continue;
    }
    rd_kafka_topic_partition_list_add(list, options.topic.c_str(), p)->offset = start;
    std::lock_guard lock(mu);
    auto& pr = progress[p];
    pr.topic = options.topic;
    pr.partition = p;
    pr.next_offset = pr.persisted_offset = pr.read_offset = start;
    pr.high_watermark = hi;
    expected_next[p] = start;
    taken.push_back(p);
  }
  if (!taken.empty()) {
    rd_kafka_error_t* e = rd_kafka_incremental_assign(standby_rk, list);
    if (e != nullptr) {
      spdlog::error("ingest: keeping standbys failed: {}", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      taken.clear();
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (taken.empty()) return;
  std::lock_guard lock(mu);
  standby.insert(standby.end(), taken.begin(), taken.end());
  std::sort(standby.begin(), standby.end());
  spdlog::info("ingest: keeping standbys of partitions [{}]", JoinPartitions(taken));
}

}  // namespace tally::ingest
