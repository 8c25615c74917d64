#include "replay/topic_reader.h"

#include <librdkafka/rdkafka.h>

#include <chrono>

#include "common/sha256.h"
#include "kafka/admin.h"

namespace tally::replay {

Result<std::unique_ptr<TopicReader>> TopicReader::Open(const TopicReaderOptions& options) {
  if (options.brokers.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "The Kafka broker list is empty.", "brokers");
  }
  std::unique_ptr<TopicReader> r(new TopicReader());
  r->options_ = options;
  auto parts = kafka::PartitionCount(options.brokers, options.topic, options.timeout_ms);
  if (!parts) return std::unexpected(parts.error());
  auto cid = kafka::ClusterId(options.brokers, options.timeout_ms);
  if (!cid) return std::unexpected(cid.error());
  r->cluster_id_ = *cid;

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const std::string& k, const std::string& v) -> Status {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      return Fail(ErrorCode::kInvalidArgument, std::string("Kafka property ") + k + ": " + err, k);
    }
    return Ok();
  };
  // A throwaway group id: assign() needs none, but librdkafka wants one for a consumer handle;
  // nothing is ever committed under it.
  for (auto [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"bootstrap.servers", options.brokers},
           {"group.id", "tally-replay-" + RandomHex(6)},
           {"enable.auto.commit", "false"},
           {"enable.auto.offset.store", "false"},
           {"auto.offset.reset", "earliest"},
           {"enable.partition.eof", "false"},
           {"fetch.max.bytes", "52428800"},
           {"queued.max.messages.kbytes", "262144"}}) {
    if (auto s = set(k, v); !s) {
      rd_kafka_conf_destroy(conf);
      return std::unexpected(s.error());
    }
  }
  for (const auto& [k, v] : options.extra) {
    if (auto s = set(k, v); !s) {
      rd_kafka_conf_destroy(conf);
      return std::unexpected(s.error());
    }
  }
  r->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!r->rk_) return Fail(ErrorCode::kInternal, std::string("cannot create a consumer: ") + err);

  const int n = *parts;
  r->next_.assign(n, 0);
  r->end_.assign(n, 0);
  for (int p = 0; p < n; ++p) {
    auto wm = kafka::Watermarks(options.brokers, options.topic, p, options.timeout_ms);
    if (!wm) return std::unexpected(wm.error());
    r->next_[p] = wm->first;
    r->end_[p] = wm->second;
  }
  if (options.start.kind == TopicStart::Kind::kOffsets) {
    for (const auto& [p, off] : options.start.offsets) {
      if (p < 0 || p >= n) {
        return Fail(ErrorCode::kInvalidArgument,
                    "partition " + std::to_string(p) + " does not exist (the topic has " +
                        std::to_string(n) + ")",
                    "offsets");
      }
      r->next_[p] = std::max(r->next_[p], off);
    }
  } else if (options.start.kind == TopicStart::Kind::kTimestamp) {
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; ++p) {
      rd_kafka_topic_partition_list_add(l, options.topic.c_str(), p)->offset =
          options.start.timestamp_ms;
    }
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(r->rk_, l, options.timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(l);
      return Fail(ErrorCode::kUnavailable,
                  std::string("cannot look up offsets by time: ") + rd_kafka_err2str(e));
    }
    for (int i = 0; i < l->cnt; ++i) {
      const auto& tp = l->elems[i];
      // -1: no message at or after the time: the partition is read from its end (nothing).
      r->next_[tp.partition] = tp.offset < 0 ? r->end_[tp.partition] : tp.offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
  }
  rd_kafka_topic_partition_list_t* assign = rd_kafka_topic_partition_list_new(n);
  for (int p = 0; p < n; ++p) {
    rd_kafka_topic_partition_list_add(assign, options.topic.c_str(), p)->offset = r->next_[p];
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(r->rk_, assign);
  rd_kafka_topic_partition_list_destroy(assign);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Fail(ErrorCode::kUnavailable,
                std::string("cannot assign partitions: ") + rd_kafka_err2str(e));
  }
  return r;
}

TopicReader::~TopicReader() {
  if (current_) rd_kafka_message_destroy(current_);
  if (rk_) {
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
  }
}

int64_t TopicReader::remaining() const {
  int64_t n = 0;
  for (size_t p = 0; p < next_.size(); ++p) n += std::max<int64_t>(0, end_[p] - next_[p]);
  return n;
}

Status TopicReader::RefreshEnd() {
  for (size_t p = 0; p < end_.size(); ++p) {
    auto wm = kafka::Watermarks(options_.brokers, options_.topic, static_cast<int32_t>(p),
                                options_.timeout_ms);
    if (!wm) return std::unexpected(wm.error());
    end_[p] = wm->second;
  }
  return Ok();
}

bool TopicReader::Next(TopicMessage* m) {
  if (current_) {
    rd_kafka_message_destroy(current_);
    current_ = nullptr;
  }
  auto idle_since = std::chrono::steady_clock::now();
  while (status_ && remaining() > 0) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk_, 200);
    if (!msg) {
      if (std::chrono::steady_clock::now() - idle_since >
          std::chrono::milliseconds(options_.timeout_ms * 4)) {
        status_ = Fail(ErrorCode::kUnavailable, "no message from the broker for " +
                                                    std::to_string(options_.timeout_ms * 4 / 1000) +
                                                    " s with " + std::to_string(remaining()) +
                                                    " still expected");
      }
      continue;
    }
    idle_since = std::chrono::steady_clock::now();
    if (msg->err) {
      if (msg->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
        // Trimmed: auto.offset.reset moves to the first kept offset; count what was skipped
        // once it shows up.
        rd_kafka_message_destroy(msg);
        continue;
      }
      if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        rd_kafka_message_destroy(msg);
        continue;
      }
      status_ = Fail(ErrorCode::kUnavailable, std::string("reading ") + options_.topic + ": " +
                                                  rd_kafka_message_errstr(msg));
      rd_kafka_message_destroy(msg);
      return false;
    }
    const int32_t p = msg->partition;
    if (p < 0 || static_cast<size_t>(p) >= next_.size() || msg->offset >= end_[p]) {
      rd_kafka_message_destroy(msg);  // beyond the end captured at Open: not part of this read
      continue;
    }
    if (msg->offset > next_[p]) skipped_ += msg->offset - next_[p];
    next_[p] = msg->offset + 1;
    current_ = msg;
    m->payload = std::string_view(static_cast<const char*>(msg->payload), msg->len);
    m->partition = p;
    m->offset = msg->offset;
    return true;
  }
  return false;
}

}  // namespace tally::replay
