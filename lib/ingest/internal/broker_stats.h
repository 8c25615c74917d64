#pragma once
// Reads librdkafka's statistics (the JSON its stats callback gets every statistics.interval.ms)
// for what the consumer's readiness needs: can each partition of the events topic reach its
// leader right now?
//
//   BrokerStatsReader reader;
//   auto links = reader.LeaderLinks(json, "usage-events");
//   if (links) for (const LeaderLink& l : *links) if (!l.leader_up) ...;
//
// Not thread-safe (the reader reuses its parser's buffers).

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace tally::ingest::internal {

// One partition of the topic as the client sees it.
struct LeaderLink {
  int32_t partition = 0;
  int32_t leader = -1;       // the leader's broker id, -1 when the client knows none
  bool leader_up = false;    // the client's connection to that broker is established ("UP")
  std::string leader_state;  // that connection's state ("UP", "DOWN", "CONNECT", ...; "" if none)
};

class BrokerStatsReader {
 public:
  // The partitions of `topic` listed in `stats_json` (librdkafka's "topics" section, without
  // its internal partition -1), sorted by partition. kInvalidArgument when the text is not
  // librdkafka's statistics object; a topic the client has no partitions of yields an empty
  // list.
  Result<std::vector<LeaderLink>> LeaderLinks(std::string_view stats_json, std::string_view topic);

 private:
  simdjson::dom::parser parser_;
};

}  // namespace tally::ingest::internal
