#include "ingest/internal/broker_stats.h"

#include <algorithm>
#include <charconv>
#include <map>

namespace tally::ingest::internal {

Result<std::vector<LeaderLink>> BrokerStatsReader::LeaderLinks(std::string_view stats_json,
                                                               std::string_view topic) {
  auto malformed = [](std::string what) {
    return Fail(ErrorCode::kInvalidArgument, "librdkafka statistics: " + what);
  };
  simdjson::dom::element doc;
  if (parser_.parse(stats_json.data(), stats_json.size()).get(doc) || !doc.is_object()) {
    return malformed("not a JSON object");
  }
  // Broker id -> connection state. The bootstrap and coordinator entries have no id of their
  // own (-1) or repeat a real broker's id; the real broker's entry (source "learned" or
  // "configured") is the one that fetches.
  std::map<int64_t, std::string_view> state_of;
  simdjson::dom::object brokers;
  if (doc["brokers"].get(brokers)) return malformed("no brokers object");
  for (auto [name, broker] : brokers) {
    int64_t id = -1;
    std::string_view state, source;
    if (broker["nodeid"].get_int64().get(id) || broker["state"].get_string().get(state)) {
      return malformed("broker " + std::string(name) + " without nodeid or state");
    }
    if (broker["source"].get_string().get(source)) source = "";
    if (id < 0 || source == "logical" || source == "internal") continue;
    state_of[id] = state;
  }
  std::vector<LeaderLink> out;
  simdjson::dom::object topics, partitions;
  if (doc["topics"].get(topics)) return malformed("no topics object");
  simdjson::dom::element t;
  if (topics[topic].get(t)) return out;
  if (t["partitions"].get(partitions)) return malformed("topic without partitions");
  for (auto [key, p] : partitions) {
    int64_t partition = -1, leader = -1;
    if (p["partition"].get_int64().get(partition) || p["leader"].get_int64().get(leader)) {
      return malformed("partition " + std::string(key) + " without partition or leader");
    }
    if (partition < 0 || partition > INT32_MAX) continue;  // -1: librdkafka's unassigned queue
    LeaderLink link;
    link.partition = static_cast<int32_t>(partition);
    link.leader = leader < 0 || leader > INT32_MAX ? -1 : static_cast<int32_t>(leader);
    if (auto it = state_of.find(leader); link.leader >= 0 && it != state_of.end()) {
      link.leader_state = it->second;
      link.leader_up = it->second == "UP";
    }
    out.push_back(std::move(link));
  }
  std::sort(out.begin(), out.end(),
            [](const LeaderLink& a, const LeaderLink& b) { return a.partition < b.partition; });
  return out;
}

}  // namespace tally::ingest::internal
