#include "kafka/partition_reader.h"

#include <librdkafka/rdkafka.h>

#include "kafka/admin.h"
#include "kafka/internal/rdkafka_util.h"

namespace tally::kafka {
namespace {

using SteadyClock = std::chrono::steady_clock;

ErrorCode CodeOfConsumeError(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
      return ErrorCode::kDataLoss;
    default:
      return ErrorCode::kUnavailable;
  }
}

int TimeoutMs(std::chrono::milliseconds timeout) {
  return static_cast<int>(std::max<int64_t>(0, timeout.count()));
}

}  // namespace

// --- Message ------------------------------------------------------------------------------------

Message& Message::operator=(Message&& other) noexcept {
  if (this != &other) {
    if (m_ != nullptr) rd_kafka_message_destroy(m_);
    m_ = std::exchange(other.m_, nullptr);
  }
  return *this;
}

Message::~Message() {
  if (m_ != nullptr) rd_kafka_message_destroy(m_);
}

bool Message::partition_end() const { return m_->err == RD_KAFKA_RESP_ERR__PARTITION_EOF; }

std::string_view Message::topic() const {
  return m_->rkt != nullptr ? rd_kafka_topic_name(m_->rkt) : std::string_view();
}

int32_t Message::partition() const { return m_->partition; }

int64_t Message::offset() const { return m_->offset; }

std::string_view Message::key() const {
  if (partition_end() || m_->key == nullptr) return {};
  return {static_cast<const char*>(m_->key), m_->key_len};
}

std::string_view Message::value() const {
  if (partition_end() || m_->payload == nullptr) return {};
  return {static_cast<const char*>(m_->payload), m_->len};
}

int64_t Message::timestamp_ms() const { return rd_kafka_message_timestamp(m_, nullptr); }

std::optional<std::string_view> Message::Header(std::string_view name) const {
  rd_kafka_headers_t* hdrs = nullptr;
  if (partition_end() || rd_kafka_message_headers(m_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      hdrs == nullptr) {
    return std::nullopt;
  }
  const std::string n(name);
  const void* v = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(hdrs, n.c_str(), &v, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  if (v == nullptr) return std::string_view();
  return std::string_view(static_cast<const char*>(v), size);
}

std::vector<std::pair<std::string, std::string>> Message::Headers() const {
  std::vector<std::pair<std::string, std::string>> out;
  rd_kafka_headers_t* hdrs = nullptr;
  if (partition_end() || rd_kafka_message_headers(m_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      hdrs == nullptr) {
    return out;
  }
  const char* name = nullptr;
  const void* v = nullptr;
  size_t size = 0;
  for (size_t i = 0;
       rd_kafka_header_get_all(hdrs, i, &name, &v, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
    out.emplace_back(name, v != nullptr ? std::string(static_cast<const char*>(v), size) : "");
  }
  return out;
}

Record Message::ToRecord() const {
  return Record{.topic = std::string(topic()),
                .partition = partition(),
                .offset = offset(),
                .key = std::string(key()),
                .value = std::string(value()),
                .headers = Headers(),
                .timestamp_ms = timestamp_ms()};
}

// --- PartitionReader ----------------------------------------------------------------------------

Result<std::unique_ptr<PartitionReader>> PartitionReader::Open(
    const PartitionReaderOptions& options) {
  if (options.brokers.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "The Kafka broker list is empty.", "brokers");
  }
  if (options.topic.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "No topic to read.", "topic");
  }
  internal::ConfPtr conf = internal::NewConf();
  // librdkafka wants a group id for a consumer handle even though assign() never joins it and
  // nothing is committed under it.
  std::vector<std::pair<std::string, std::string>> kv = {
      {"bootstrap.servers", options.brokers},
      {"group.id", "tally-partition-reader"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", options.report_partition_end ? "true" : "false"},
  };
  kv.insert(kv.end(), options.properties.begin(), options.properties.end());
  if (auto st = internal::SetConf(conf.get(), kv); !st) return std::unexpected(st.error());
  auto handle = internal::NewHandle(RD_KAFKA_CONSUMER, std::move(conf));
  if (!handle) return std::unexpected(handle.error());

  std::unique_ptr<PartitionReader> reader(new PartitionReader());
  reader->rk_ = handle->release();
  reader->topic_ = options.topic;
  // The main queue is deliberately not forwarded to the consumer queue
  // (rd_kafka_poll_set_consumer): client-wide errors such as a broker connection dropping are
  // retried by librdkafka and would only make Poll fail where reading recovers by itself.
  if (!options.start.empty()) {
    if (auto st = reader->Assign(options.start); !st) return std::unexpected(st.error());
  }
  return reader;
}

PartitionReader::~PartitionReader() {
  if (rk_ != nullptr) {
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
  }
}

Status PartitionReader::Assign(const std::map<int32_t, int64_t>& start) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(start.size()));
  for (const auto& [partition, offset] : start) {
    if (offset < kBeginningOffset) {
      rd_kafka_topic_partition_list_destroy(list);
      return Fail(ErrorCode::kInvalidArgument,
                  "Invalid start offset " + std::to_string(offset) + " for " + topic_ + "/" +
                      std::to_string(partition) + ".",
                  "start");
    }
    rd_kafka_topic_partition_list_add(list, topic_.c_str(), partition)->offset = offset;
  }
  rd_kafka_resp_err_t err = rd_kafka_assign(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Fail(ErrorCode::kInternal,
                "Cannot assign partitions of " + topic_ + ": " + rd_kafka_err2str(err));
  }
  return Ok();
}

Result<std::optional<Message>> PartitionReader::Poll(std::chrono::milliseconds timeout) {
  rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, TimeoutMs(timeout));
  if (m == nullptr) return std::optional<Message>();
  Message message(m);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    return Fail(CodeOfConsumeError(m->err),
                "reading " + topic_ + ": " + rd_kafka_message_errstr(m));
  }
  return std::optional<Message>(std::move(message));
}

Result<std::pair<int64_t, int64_t>> PartitionReader::Watermarks(int32_t partition,
                                                                std::chrono::milliseconds timeout) {
  int64_t low = -1, high = -1;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk_, topic_.c_str(), partition, &low,
                                                             &high, TimeoutMs(timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const bool unknown = err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                         err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                         err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    return Fail(
        unknown ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
        "watermarks of " + topic_ + "/" + std::to_string(partition) + ": " + rd_kafka_err2str(err));
  }
  return std::pair<int64_t, int64_t>(low, high);
}

Result<std::map<int32_t, int64_t>> PartitionReader::OffsetsForTime(
    const std::vector<int32_t>& partitions, int64_t timestamp_ms,
    std::chrono::milliseconds timeout) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (int32_t p : partitions) {
    // The query takes the time in the offset field and answers with the offset there.
    rd_kafka_topic_partition_list_add(list, topic_.c_str(), p)->offset = timestamp_ms;
  }
  rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk_, list, TimeoutMs(timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_topic_partition_list_destroy(list);
    return Fail(ErrorCode::kUnavailable,
                std::string("cannot look up offsets by time: ") + rd_kafka_err2str(err));
  }
  std::map<int32_t, int64_t> out;
  for (int i = 0; i < list->cnt; ++i) {
    out[list->elems[i].partition] = list->elems[i].offset < 0 ? -1 : list->elems[i].offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  return out;
}

// --- ReadTopicToEnd -----------------------------------------------------------------------------

std::string Record::Header(std::string_view name) const {
  for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
    if (it->first == name) return it->second;
  }
  return "";
}

Result<std::vector<Record>> ReadTopicToEnd(const std::string& brokers, const std::string& topic,
                                           int timeout_ms,
                                           const std::map<std::string, std::string>& properties) {
  std::vector<Record> out;
  Result<int> partitions = PartitionCount(brokers, topic, timeout_ms);
  if (!partitions) {
    if (partitions.error().code == ErrorCode::kNotFound) return out;
    return std::unexpected(partitions.error());
  }
  auto reader =
      PartitionReader::Open({.brokers = brokers, .topic = topic, .properties = properties});
  if (!reader) return std::unexpected(reader.error());

  // Only the non-empty partitions are assigned, each from its low watermark; `high` holds the
  // end still to reach.
  std::map<int32_t, int64_t> start, high;
  for (int32_t p = 0; p < *partitions; ++p) {
    auto wm = (*reader)->Watermarks(p, std::chrono::milliseconds(timeout_ms));
    if (!wm) return std::unexpected(wm.error());
    if (wm->second <= wm->first) continue;
    start[p] = wm->first;
    high[p] = wm->second;
  }
  if (high.empty()) return out;
  if (auto st = (*reader)->Assign(start); !st) return std::unexpected(st.error());

  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  while (!high.empty()) {
    if (SteadyClock::now() > deadline) {
      return Fail(ErrorCode::kUnavailable, "timed out reading " + topic + " (" +
                                               std::to_string(out.size()) + " messages read)");
    }
    auto polled = (*reader)->Poll(std::chrono::milliseconds(100));
    if (!polled) return std::unexpected(polled.error());
    if (!*polled) continue;
    const Message& m = **polled;
    auto it = high.find(m.partition());
    if (it == high.end() || m.offset() >= it->second) continue;
    out.push_back(m.ToRecord());
    if (m.offset() + 1 >= it->second) high.erase(it);
  }
  return out;
}

}  // namespace tally::kafka
