#pragma once
// Reads chosen partitions of one topic from chosen offsets, without a consumer group: no joins,
// no rebalances, no commits. The reader behind `tally dlq`, `tally replay --from-topic`, the
// integration tests' topic reads and the ingest benchmark's baseline consumer.
//
//   tally::kafka::PartitionReaderOptions o{.brokers = "127.0.0.1:9092", .topic = "usage-events"};
//   o.start = {{0, tally::kafka::kBeginningOffset}, {1, 1234}};
//   auto reader = tally::kafka::PartitionReader::Open(o);
//   if (!reader) return std::unexpected(reader.error());
//   auto polled = (*reader)->Poll(std::chrono::milliseconds(100));
//   if (polled && *polled) Use((*polled)->partition(), (*polled)->offset(), (*polled)->value());
//
//   // Or everything a topic holds now, copied:
//   auto records = tally::kafka::ReadTopicToEnd("127.0.0.1:9092", "usage-events.dlq", 30000);
//
// Ownership: a PartitionReader owns its librdkafka handle (closed and destroyed with it); a
// Message owns one librdkafka message and must be destroyed before the reader that returned it.
// Thread-safety: a PartitionReader is not thread-safe: one thread at a time (it may be handed
// from thread to thread with the usual happens-before, e.g. created on one and polled on
// another). Distinct readers are independent.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_message_s rd_kafka_message_t;

namespace tally::kafka {

// Start offsets besides concrete ones (>= 0): the first kept message, or the next one produced.
inline constexpr int64_t kBeginningOffset = -2;  // librdkafka's RD_KAFKA_OFFSET_BEGINNING
inline constexpr int64_t kEndOffset = -1;        // librdkafka's RD_KAFKA_OFFSET_END

struct PartitionReaderOptions {
  std::string brokers = {};  // bootstrap.servers; required
  std::string topic = {};    // required
  // Partition -> first offset to read (>= 0, kBeginningOffset or kEndOffset). A start offset
  // that is no longer in the log (trimmed) continues at the first kept one (auto.offset.reset
  // "earliest"; override in `properties`). Empty: the reader reads nothing.
  std::map<int32_t, int64_t> start = {};
  // When true, Poll returns a partition-end Message each time a partition's reading reaches its
  // current end (librdkafka's enable.partition.eof).
  bool report_partition_end = false;
  // Extra librdkafka consumer properties, applied after the reader's own (bootstrap.servers,
  // a never-joined group.id, no auto commit, auto.offset.reset=earliest), so they can override
  // them (e.g. fetch sizes, "auto.offset.reset" = "error").
  std::map<std::string, std::string> properties = {};
};

// One message read (or one partition-end event). Move-only; owns the librdkafka message. The
// string views point into it and stay valid while it lives.
struct Record;
class Message {
 public:
  explicit Message(rd_kafka_message_t* m) : m_(m) {}  // takes ownership of `m`
  Message(Message&& other) noexcept : m_(std::exchange(other.m_, nullptr)) {}
  Message& operator=(Message&& other) noexcept;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  ~Message();

  // True for a partition-end event (report_partition_end): partition() reached its current end;
  // offset() is that end (the next offset). It carries no key, value or headers.
  bool partition_end() const;
  std::string_view topic() const;
  int32_t partition() const;
  int64_t offset() const;
  std::string_view key() const;    // empty when the message has no key
  std::string_view value() const;  // empty for a null payload
  // Creation (or log append) time in ms since the epoch; -1 when the broker gave none.
  int64_t timestamp_ms() const;
  // Value of the last header named `name`; nullopt when there is no such header.
  std::optional<std::string_view> Header(std::string_view name) const;
  // Every header in order (a null value as "").
  std::vector<std::pair<std::string, std::string>> Headers() const;
  // A copy of the message as a plain value.
  Record ToRecord() const;

 private:
  rd_kafka_message_t* m_;
};

class PartitionReader {
 public:
  // Creates the consumer and assigns options.start (see Assign). kInvalidArgument for an empty
  // broker list or topic, a start offset below kBeginningOffset or a property librdkafka refuses
  // (naming it); kInternal when librdkafka cannot create the client or assign. No broker is
  // contacted here: an unreachable cluster shows up in Poll and Watermarks.
  static Result<std::unique_ptr<PartitionReader>> Open(const PartitionReaderOptions& options);
  ~PartitionReader();  // closes the consumer (nothing is committed)
  PartitionReader(const PartitionReader&) = delete;
  PartitionReader& operator=(const PartitionReader&) = delete;

  // Replaces the assignment: reads `start`'s partitions from their offsets (as
  // PartitionReaderOptions::start), nothing else. kInvalidArgument for an offset below
  // kBeginningOffset, kInternal when librdkafka refuses.
  Status Assign(const std::map<int32_t, int64_t>& start);

  // Waits up to `timeout` for the next message of an assigned partition (0: only what has
  // already arrived). nullopt when none arrived. Consume errors are returned, and reading goes
  // on when Poll is called again: kDataLoss when a start offset was out of range and no reset
  // applies (or messages were trimmed before they could be read), kUnavailable for any other
  // (the message names the topic and librdkafka's reason). Client-wide trouble (brokers down,
  // connections lost) is not reported: librdkafka keeps retrying, and Poll only sees nothing
  // arrive, so callers bound their waits with a deadline of their own.
  Result<std::optional<Message>> Poll(std::chrono::milliseconds timeout);

  // (low, high) watermarks of `partition` as the broker knows them now; high is the offset the
  // next message gets. kNotFound for an unknown partition, kUnavailable without an answer.
  Result<std::pair<int64_t, int64_t>> Watermarks(int32_t partition,
                                                 std::chrono::milliseconds timeout);

  // For each of `partitions`, the offset of its first message with a timestamp at or after
  // `timestamp_ms`, or -1 when it has none. kUnavailable without an answer in time.
  Result<std::map<int32_t, int64_t>> OffsetsForTime(const std::vector<int32_t>& partitions,
                                                    int64_t timestamp_ms,
                                                    std::chrono::milliseconds timeout);

  const std::string& topic() const { return topic_; }

 private:
  PartitionReader() = default;
  rd_kafka_t* rk_ = nullptr;  // owned
  std::string topic_;
};

// A message copied out of the reader: a plain value.
struct Record {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;  // in order
  int64_t timestamp_ms = -1;

  // Value of the last header named `name`, "" when absent.
  std::string Header(std::string_view name) const;
};

// Every message of every partition of `topic` from its low to its high watermark as of the
// call, in the order they arrive (by offset within a partition). An unknown topic yields no
// records. kUnavailable when the cluster does not answer or the read is not done within
// `timeout_ms` ("timed out reading <topic> (N messages read)"); other errors as Poll.
// `properties` as PartitionReaderOptions::properties. Thread-safe (uses its own reader).
Result<std::vector<Record>> ReadTopicToEnd(
    const std::string& brokers, const std::string& topic, int timeout_ms,
    const std::map<std::string, std::string>& properties = {});

}  // namespace tally::kafka
