// Moving ingest to another store between batches (Consumer::SwitchStore).
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "ingest/internal/consumer_impl.h"

namespace tally::ingest {

void Consumer::Impl::MaybeSwitch() {
  std::unique_lock lk(switch_mu);
  if (!switch_store || switch_done) return;
  switch_result = DoSwitch(switch_store, switch_directory);
  switch_done = true;
  lk.unlock();
  switch_cv.notify_all();
}

Status Consumer::Impl::DoSwitch(store::Store* to, store::Directory* directory) {
  // The batches in flight and in progress belong to the old store's offsets.
  if (!Flush()) return Fail(ErrorCode::kUnavailable, "stopping");
  if (Status s = to->BindRequestScopes(RequestScopes()); !s) return s;
  // Standbys continue from the new store's offsets too (MaybeStandby takes them again).
  if (!standby.empty()) {
    DropStandby(std::vector<int32_t>(standby));
    RecheckStandby();
  }
  auto agg = aggregate::Aggregator::Create(to);
  if (!agg) return std::unexpected(agg.error());
  (*agg)->set_stage(Staging());
  (*agg)->set_request_scope_by_workspace(options.request_scope_by_workspace);
  (*agg)->DeclareOrganizations(options.organizations);
  auto stored = to->LoadOffsets();
  if (!stored) return std::unexpected(stored.error());
  std::lock_guard lock(mu);
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(assigned.size()) + 1);
  for (int32_t p : assigned) {
    int64_t lo = -1, hi = -1;
    rd_kafka_query_watermark_offsets(rk, options.topic.c_str(), p, &lo, &hi,
                                     internal::kMetadataTimeoutMs);
    int64_t start = lo >= 0 ? lo : 0;
    for (const auto& e : *stored) {
      if (e.topic == options.topic && e.partition == p && e.offset.cluster_id == cluster_id &&
          (hi < 0 || e.offset.next_offset <= hi)) {
        start = std::max(e.offset.next_offset, start);
      }
    }
    rd_kafka_topic_partition_list_add(list, options.topic.c_str(), p)->offset = start;
    auto& pr = progress[p];
    pr.next_offset = start;
    pr.persisted_offset = start;
    pr.read_offset = start;
    pr.high_watermark = hi;
    expected_next[p] = start;
  }
  // Re-assigning with new offsets drops what was fetched for the old positions (a cooperative
  // group member changes its assignment only incrementally: out, then back in).
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (Cooperative()) {
    rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, list);
    if (e == nullptr) e = rd_kafka_incremental_assign(rk, list);
    if (e != nullptr) {
      err = rd_kafka_error_code(e);
      rd_kafka_error_destroy(e);
    }
  } else {
    err = rd_kafka_assign(rk, list);
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Fail(ErrorCode::kUnavailable,
                std::string("re-assigning partitions failed: ") + rd_kafka_err2str(err));
  }
  aggregator = std::move(*agg);
  aggregator->set_directory(directory);
  pipeline->set_aggregator(aggregator.get());
  store = to;
  spdlog::info("ingest: switched to another store; continuing {} partition(s) from its offsets",
               assigned.size());
  return Ok();
}

}  // namespace tally::ingest
