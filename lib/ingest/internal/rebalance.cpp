// Partitions taken and given back: where each assigned partition starts (stored offsets, new or
// trimmed logs), the group's rebalance callback, and what the consumer owns and serves.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "ingest/internal/consumer_impl.h"

namespace tally::ingest {

bool Consumer::Impl::Cooperative() const {
  return std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
}

void Consumer::Impl::SetFatal(std::string message) {
  spdlog::critical("ingest: {}", message);
  std::lock_guard lock(mu);
  if (fatal.empty()) fatal = std::move(message);
  ready->store(false);
}

NewLogPolicy Consumer::Impl::Policy() const {
  if (options.new_log_policy != NewLogPolicy::kAuto) return options.new_log_policy;
  return embedded ? NewLogPolicy::kRestart : NewLogPolicy::kStop;
}

rd_kafka_resp_err_t Consumer::Impl::Assign(rd_kafka_topic_partition_list_t* parts,
                                           bool incremental) {
  // A standby becomes owned: stop reading it as a standby first.
  std::vector<int32_t> warm = PartitionsOf(parts);
  std::erase_if(warm, [&](int32_t p) { return !IsStandby(p); });
  if (!warm.empty()) DropStandby(warm);
  // Start positions come from the stored offsets: store and persist what was consumed first
  // (a standby's staged batches, the batch in flight).
  Flush();
  OnAssign(parts, incremental);
  if (!warm.empty()) {
    taken_from_standby->Add(static_cast<double>(warm.size()));
    spdlog::info("ingest: partitions [{}] taken over from this instance's standbys",
                 JoinPartitions(warm));
  }
  bool fatal_now;
  {
    std::lock_guard lock(mu);
    fatal_now = !fatal.empty();
  }
  rd_kafka_resp_err_t err;
  if (!incremental) {
    err = rd_kafka_assign(rk, fatal_now ? nullptr : parts);
  } else if (fatal_now) {
    err = RD_KAFKA_RESP_ERR_NO_ERROR;  // take nothing more; ingest stops
  } else {
    rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, parts);
    err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e) {
      spdlog::error("ingest: taking partitions failed: {}", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
  }
  if (!fatal_now && err == RD_KAFKA_RESP_ERR_NO_ERROR) ready->store(true);
  ReportOwnership(/*changed=*/true);
  return err;
}

void Consumer::Impl::OnAssign(rd_kafka_topic_partition_list_t* parts, bool incremental) {
  auto stored = store->LoadOffsets();
  if (!stored) {
    SetFatal("cannot read stored offsets: " + stored.error().message);
    return;
  }
  std::lock_guard lock(mu);
  if (!incremental) {
    assigned.clear();
    restore_target.clear();
  }
  for (int i = 0; i < parts->cnt; ++i) {
    rd_kafka_topic_partition_t& tp = parts->elems[i];
    int64_t lo = -1, hi = -1;
    rd_kafka_query_watermark_offsets(rk, tp.topic, tp.partition, &lo, &hi,
                                     internal::kMetadataTimeoutMs);
    const store::StoredOffset* found = nullptr;
    for (const auto& e : *stored) {
      if (e.topic == tp.topic && e.partition == tp.partition) found = &e.offset;
    }
    int64_t start = RD_KAFKA_OFFSET_BEGINNING;
    std::string why;
    incomplete.erase(tp.partition);
    if (gapped.contains(tp.partition)) incomplete.insert(tp.partition);
    if (found && found->cluster_id == cluster_id && (hi < 0 || found->next_offset <= hi)) {
      start = found->next_offset;
      if (lo >= 0 && start < lo) {
        trimmed->Add();
        incomplete.insert(tp.partition);
        spdlog::error(
            "ingest: {}[{}] was trimmed: stored offset {} is below the log start {}; events "
            "{}..{} are gone from Kafka and are NOT in the views. Rebuild from a full source "
            "with `tally replay` if they matter.",
            tp.topic, tp.partition, start, lo, start, lo - 1);
        if (Policy() == NewLogPolicy::kStop) {
          fatal = "log trimmed past stored offsets on a real cluster";
          ready->store(false);
        }
      }
    } else if (found) {
      why = found->cluster_id != cluster_id
                ? "stored offsets belong to cluster '" + found->cluster_id + "'"
                : "stored offset " + std::to_string(found->next_offset) +
                      " is beyond the high watermark " + std::to_string(hi);
      if (Policy() == NewLogPolicy::kStop) {
        fatal = tp.topic + std::string("[") + std::to_string(tp.partition) +
                "]: new log detected (" + why +
                "). Refusing to guess: point tallyd at the original cluster, or rebuild the "
                "views into a fresh --data-dir with `tally replay`.";
        ready->store(false);
        spdlog::critical("ingest: {}", fatal);
      } else {
        spdlog::warn(
            "ingest: {}[{}]: new log ({}); consuming it from the beginning, "
            "dedupe absorbs events already counted",
            tp.topic, tp.partition, why);
      }
    }
    if (!found && lo > 0) {
      trimmed->Add();
      incomplete.insert(tp.partition);
      spdlog::error(
          "ingest: {}[{}]: first start, but the log begins at offset {}: offsets 0..{} were "
          "trimmed or expired before tally read them and are NOT in the views (backfill them "
          "with `tally replay` if they matter)",
          tp.topic, tp.partition, lo, lo - 1);
    }
    tp.offset = start;
    auto& p = progress[tp.partition];
    p.topic = tp.topic;
    p.partition = tp.partition;
    p.next_offset = start >= 0 ? start : (lo >= 0 ? lo : 0);
    p.persisted_offset = p.next_offset;
    p.read_offset = p.next_offset;
    p.high_watermark = hi;
    expected_next[tp.partition] = p.next_offset;
    restore_target[tp.partition] = std::max<int64_t>(hi, 0);
    assigned.push_back(tp.partition);
  }
}

void Consumer::Impl::RebalanceCb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                 rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* self = static_cast<Impl*>(opaque);
  const bool cooperative = self->Cooperative();
  if (self->closing) {
    // The consumer is being destroyed: nothing is left to store (the pipeline is gone) and
    // nobody is to be told; only let the partitions go.
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      if (!cooperative) {
        rd_kafka_assign(rk, nullptr);
      } else if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts)) {
        rd_kafka_error_destroy(e);
      }
    }
    return;
  }
  spdlog::info("ingest: the group {} partitions [{}] ({} rebalance)",
               err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigns" : "revokes",
               JoinPartitions(PartitionsOf(parts)), rd_kafka_rebalance_protocol(rk));
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    self->Assign(parts, cooperative);
    return;
  }
  // Store and persist what was consumed from the revoked partitions (the batch in flight,
  // then the one being collected) before letting them go.
  self->Flush();
  if (cooperative) {
    if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts)) {
      spdlog::error("ingest: giving partitions back failed: {}", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
    std::lock_guard lock(self->mu);
    for (int i = 0; i < parts->cnt; ++i) {
      const int32_t p = parts->elems[i].partition;
      std::erase(self->assigned, p);
      self->restore_target.erase(p);
    }
    if (self->assigned.empty()) self->ready->store(false);
    self->RecheckStandby();
  } else {
    rd_kafka_assign(rk, nullptr);
    std::lock_guard lock(self->mu);
    self->assigned.clear();
    self->restore_target.clear();
    self->ready->store(false);
    self->RecheckStandby();
  }
  self->ReportOwnership(/*changed=*/true);
}

void Consumer::Impl::ReportOwnership(bool changed) {
  if (!options.on_ownership) return;
  std::vector<int32_t> owned, now_serving;
  {
    std::lock_guard lock(mu);
    owned = assigned;
    for (int32_t p : assigned) {
      auto it = progress.find(p);
      auto target = restore_target.find(p);
      if (it != progress.end() && target != restore_target.end() &&
          it->second.next_offset >= target->second && !incomplete.contains(p)) {
        now_serving.push_back(p);
      }
    }
  }
  std::sort(owned.begin(), owned.end());
  if (!changed && now_serving == serving) return;
  for (int32_t p : owned) {
    if (changed && incomplete.contains(p)) {
      spdlog::error(
          "ingest: partition {} is not served: events the log no longer holds are missing "
          "from this instance's views (seed its data directory from a snapshot of an instance "
          "that holds them, or keep the topic's whole history)",
          p);
    }
  }
  serving = now_serving;
  options.on_ownership(owned, serving);
}

}  // namespace tally::ingest
