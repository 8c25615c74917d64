#include "kafka/admin.h"

#include <librdkafka/rdkafka.h>

#include "kafka/internal/rdkafka_util.h"

namespace tally::kafka {
namespace {

Result<internal::HandlePtr> Connect(std::string_view brokers) {
  if (brokers.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "The Kafka broker list is empty.", "brokers");
  }
  return internal::NewAdminHandle(brokers);
}

ErrorCode CodeOf(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return ErrorCode::kNotFound;
    default:
      return ErrorCode::kUnavailable;
  }
}

}  // namespace

Result<std::string> ClusterId(std::string_view brokers, int timeout_ms) {
  auto rk = Connect(brokers);
  if (!rk) return std::unexpected(rk.error());
  char* id = rd_kafka_clusterid(rk->get(), timeout_ms);
  if (id == nullptr) {
    return Fail(ErrorCode::kUnavailable, "No cluster id from " + std::string(brokers) + " within " +
                                             std::to_string(timeout_ms) + " ms.");
  }
  std::string out(id);
  rd_kafka_mem_free(rk->get(), id);
  return out;
}

bool IsEmbeddedCluster(std::string_view cluster_id) {
  return cluster_id.starts_with("mockCluster");
}

Result<std::pair<int64_t, int64_t>> Watermarks(std::string_view brokers, std::string_view topic,
                                               int32_t partition, int timeout_ms) {
  auto rk = Connect(brokers);
  if (!rk) return std::unexpected(rk.error());
  int64_t low = -1, high = -1;
  std::string t(topic);
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(rk->get(), t.c_str(), partition, &low, &high, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Fail(CodeOf(err), "Cannot read watermarks of " + t + "[" + std::to_string(partition) +
                                 "]: " + rd_kafka_err2str(err));
  }
  return std::pair<int64_t, int64_t>(low, high);
}

Result<int> PartitionCount(std::string_view brokers, std::string_view topic, int timeout_ms) {
  auto rk = Connect(brokers);
  if (!rk) return std::unexpected(rk.error());
  std::string t(topic);
  // All topics, not just this one: asking for one topic makes some brokers (the embedded one
  // included) create it.
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk->get(), 1, nullptr, &md, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Fail(CodeOf(err), "Cannot read metadata of " + t + ": " + rd_kafka_err2str(err));
  }
  Result<int> out = Fail(ErrorCode::kNotFound, "Unknown topic " + t + ".", "topic");
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& mt = md->topics[i];
    if (t != mt.topic) continue;
    if (mt.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      out = Fail(CodeOf(mt.err), "Cannot read metadata of " + t + ": " + rd_kafka_err2str(mt.err));
    } else {
      out = mt.partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

}  // namespace tally::kafka
