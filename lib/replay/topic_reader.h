#pragma once
// Reads a Kafka topic from a chosen position up to its end, without a consumer group (no
// commits, no rebalances): the topic source of `tally replay`, on kafka::PartitionReader.
//
//   tally::replay::TopicReaderOptions o{.brokers = "127.0.0.1:9092", .topic = "usage-events"};
//   o.start.kind = tally::replay::TopicStart::Kind::kBeginning;
//   auto reader = tally::replay::TopicReader::Open(o);     // captures the end (high watermarks)
//   tally::replay::TopicMessage m;
//   while ((*reader)->Next(&m)) replayer.Add(m.payload, {{o.topic, m.partition, m.offset}});
//   if (auto s = (*reader)->status(); !s) die(s.error().message);
//
// "The end" is each partition's high watermark when Open (or RefreshEnd) ran, so a live topic
// still yields a finite read; call RefreshEnd() and continue to chase it. Not thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "kafka/partition_reader.h"

namespace tally::replay {

struct TopicStart {
  enum class Kind { kBeginning, kTimestamp, kOffsets } kind = Kind::kBeginning;
  int64_t timestamp_ms = 0;            // kTimestamp: first message at or after this time
  std::map<int32_t, int64_t> offsets;  // kOffsets: partition -> first offset (others: start)
};

struct TopicReaderOptions {
  std::string brokers;
  std::string topic = "usage-events";
  TopicStart start;
  int timeout_ms = 15000;                    // metadata and offset lookups
  std::map<std::string, std::string> extra;  // librdkafka consumer properties
};

struct TopicMessage {
  std::string_view payload;  // valid until the next Next()
  int32_t partition = 0;
  int64_t offset = 0;
};

class TopicReader {
 public:
  // kInvalidArgument (bad options), kNotFound (unknown topic), kUnavailable (no answer).
  static Result<std::unique_ptr<TopicReader>> Open(const TopicReaderOptions& options);
  ~TopicReader();
  TopicReader(const TopicReader&) = delete;
  TopicReader& operator=(const TopicReader&) = delete;

  // The next message before the end; false once every partition reached it or on error.
  // A partition whose messages were trimmed from the log continues at its first kept offset
  // (counted in skipped()).
  bool Next(TopicMessage* m);
  Status status() const { return status_; }
  // Re-reads the high watermarks: Next() then continues up to the new end.
  Status RefreshEnd();
  // Messages left before the end (estimate), for progress and ETA.
  int64_t remaining() const;
  int64_t skipped() const { return skipped_; }
  const std::string& cluster_id() const { return cluster_id_; }
  int partition_count() const { return static_cast<int>(next_.size()); }

 private:
  TopicReader() = default;
  // The reader and the start and end offsets of each partition (from its handle).
  Status Position(int partitions);

  TopicReaderOptions options_;
  std::unique_ptr<kafka::PartitionReader> reader_;
  std::optional<kafka::Message> current_;  // before reader_ in destruction
  std::vector<int64_t> next_;              // per partition: next offset to read
  std::vector<int64_t> end_;               // per partition: stop before this offset
  std::string cluster_id_;
  Status status_ = Ok();
  int64_t skipped_ = 0;
};

}  // namespace tally::replay
