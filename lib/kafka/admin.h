#pragma once
// Small metadata queries for tests and tools (each call opens and closes a short-lived client).
//
//   auto id = tally::kafka::ClusterId(bootstrap, 5000);                  // Result<std::string>
//   auto wm = tally::kafka::Watermarks(bootstrap, "usage-events", 0, 5000);
//   if (wm && consumed_next_offset == wm->second) { /* caught up on partition 0 */ }
//
// All functions are thread-safe (no shared state). Errors: kUnavailable when the cluster does
// not answer within timeout_ms, kNotFound for an unknown topic or partition, kInvalidArgument for
// an empty broker list. None of them creates a topic.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace tally::kafka {

// The cluster id reported by the brokers (a new one per embedded broker instance).
Result<std::string> ClusterId(std::string_view brokers, int timeout_ms);

// True for the cluster id of an embedded broker (librdkafka's mock cluster names itself
// "mockCluster<hex>"): a log that keeps little and nothing across restarts.
bool IsEmbeddedCluster(std::string_view cluster_id);

// (low, high) watermark offsets of one partition: high is the offset the next message gets,
// so a consumer is caught up when its next offset equals high.
Result<std::pair<int64_t, int64_t>> Watermarks(std::string_view brokers, std::string_view topic,
                                               int32_t partition, int timeout_ms);

// Number of partitions of `topic`.
Result<int> PartitionCount(std::string_view brokers, std::string_view topic, int timeout_ms);

}  // namespace tally::kafka
