#include "replay/topic_reader.h"

#include <algorithm>
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

  kafka::PartitionReaderOptions ro{.brokers = options.brokers, .topic = options.topic};
  // A group id of its own, never joined: nothing is ever committed under it.
  ro.properties = {{"group.id", "tally-replay-" + RandomHex(6)},
                   {"fetch.max.bytes", "52428800"},
                   {"queued.max.messages.kbytes", "262144"}};
  for (const auto& [k, v] : options.extra) ro.properties[k] = v;
  auto reader = kafka::PartitionReader::Open(ro);
  if (!reader) return std::unexpected(reader.error());
  r->reader_ = std::move(*reader);
  if (auto s = r->Position(*parts); !s) return std::unexpected(s.error());
  return r;
}

Status TopicReader::Position(int n) {
  const auto timeout = std::chrono::milliseconds(options_.timeout_ms);
  next_.assign(n, 0);
  end_.assign(n, 0);
  for (int p = 0; p < n; ++p) {
    auto wm = reader_->Watermarks(p, timeout);
    if (!wm) return std::unexpected(wm.error());
    next_[p] = wm->first;
    end_[p] = wm->second;
  }
  if (options_.start.kind == TopicStart::Kind::kOffsets) {
    for (const auto& [p, off] : options_.start.offsets) {
      if (p < 0 || p >= n) {
        return Fail(ErrorCode::kInvalidArgument,
                    "partition " + std::to_string(p) + " does not exist (the topic has " +
                        std::to_string(n) + ")",
                    "offsets");
      }
      next_[p] = std::max(next_[p], off);
    }
  } else if (options_.start.kind == TopicStart::Kind::kTimestamp) {
    std::vector<int32_t> all(n);
    for (int p = 0; p < n; ++p) all[p] = p;
    auto offsets = reader_->OffsetsForTime(all, options_.start.timestamp_ms, timeout);
    if (!offsets) return std::unexpected(offsets.error());
    for (const auto& [p, offset] : *offsets) {
      // -1: no message at or after the time: the partition is read from its end (nothing).
      next_[p] = offset < 0 ? end_[p] : offset;
    }
  }
  std::map<int32_t, int64_t> start;
  for (int p = 0; p < n; ++p) start[p] = next_[p];
  if (auto s = reader_->Assign(start); !s) {
    return Fail(ErrorCode::kUnavailable, "cannot assign partitions: " + s.error().message);
  }
  return Ok();
}

TopicReader::~TopicReader() = default;

int64_t TopicReader::remaining() const {
  int64_t n = 0;
  for (size_t p = 0; p < next_.size(); ++p) n += std::max<int64_t>(0, end_[p] - next_[p]);
  return n;
}

Status TopicReader::RefreshEnd() {
  for (size_t p = 0; p < end_.size(); ++p) {
    auto wm = reader_->Watermarks(static_cast<int32_t>(p),
                                  std::chrono::milliseconds(options_.timeout_ms));
    if (!wm) return std::unexpected(wm.error());
    end_[p] = wm->second;
  }
  return Ok();
}

bool TopicReader::Next(TopicMessage* m) {
  current_.reset();
  auto idle_since = std::chrono::steady_clock::now();
  while (status_ && remaining() > 0) {
    auto polled = reader_->Poll(std::chrono::milliseconds(200));
    if (!polled) {
      // Trimmed: auto.offset.reset moves to the first kept offset; what was skipped is counted
      // once it shows up.
      if (polled.error().code == ErrorCode::kDataLoss) continue;
      status_ = std::unexpected(polled.error());
      return false;
    }
    if (!*polled) {
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
    const kafka::Message& msg = **polled;
    const int32_t p = msg.partition();
    if (p < 0 || static_cast<size_t>(p) >= next_.size() || msg.offset() >= end_[p]) {
      continue;  // beyond the end captured at Open: not part of this read
    }
    if (msg.offset() > next_[p]) skipped_ += msg.offset() - next_[p];
    next_[p] = msg.offset() + 1;
    m->payload = msg.value();
    m->partition = p;
    m->offset = msg.offset();
    current_ = std::move(*polled);
    return true;
  }
  return false;
}

}  // namespace tally::replay
