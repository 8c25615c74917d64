#pragma once
// Whether ingest keeps up with the Kafka cluster, for the consumer's readiness: cut off (an
// owned partition's leader unreachable for a while) or lagging (the owned partitions' views
// trail the log by more than a limit).
//
//   IngestHealth health({.cut_off_after = 2s, .max_lag = 100000}, &registry);
//   health.OnStats(stats_json, "usage-events", assigned, Clock::now());  // librdkafka stats cb
//   health.OnLag(total_lag);                                             // every lag update
//   if (!health.Healthy()) Log(health.Reason());
//
// Thread-safety: OnStats and OnLag on one thread (the consumer's); Healthy and Reason from any.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "ingest/internal/broker_stats.h"

namespace tally::ingest::internal {

class IngestHealth {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    // An owned partition whose leader has been unreachable this long makes ingest cut off.
    // Shorter outages (a leader moving, a reconnect) do not count.
    std::chrono::milliseconds cut_off_after{2000};
    // Lagging: the owned partitions' views trail the log by more than this many messages in
    // all. 0: no limit.
    int64_t max_lag = 0;
  };

  // Registers tally_kafka_unreachable_partitions, tally_kafka_cut_off and
  // tally_owned_partitions_lag in `metrics` (not owned; must outlive this).
  IngestHealth(Options options, MetricsRegistry* metrics);

  // librdkafka's statistics for the consumer that reads `assigned` (the owned partitions of
  // `topic`). Partitions the statistics do not list yet are not judged. Malformed statistics
  // are ignored (logged once).
  void OnStats(std::string_view stats_json, std::string_view topic,
               const std::vector<int32_t>& assigned, Clock::time_point now);
  // The owned partitions' views trail the log by `lag` messages in all (-1: unknown, e.g. no
  // partition's high watermark is known yet; never lagging then).
  void OnLag(int64_t lag);

  // Neither cut off nor lagging.
  bool Healthy() const { return !cut_off_.load() && !lagging_.load(); }
  // Why not Healthy(), in a sentence for /readyz ("" when healthy).
  std::string Reason() const;

 private:
  Options options_;
  BrokerStatsReader reader_;
  bool told_malformed_ = false;
  // Owned partitions whose leader is unreachable, and since when (consumer thread).
  std::map<int32_t, Clock::time_point> unreachable_since_;
  std::atomic<bool> cut_off_{false};
  std::atomic<bool> lagging_{false};
  mutable std::mutex mu_;
  std::string cut_off_reason_;  // guarded by mu_
  std::string lag_reason_;      // guarded by mu_
  Gauge* unreachable_gauge_;
  Gauge* cut_off_gauge_;
  Gauge* lag_gauge_;
};

}  // namespace tally::ingest::internal
