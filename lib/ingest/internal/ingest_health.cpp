#include "ingest/internal/ingest_health.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace tally::ingest::internal {

IngestHealth::IngestHealth(Options options, MetricsRegistry* metrics)
    : options_(options),
      unreachable_gauge_(metrics->GetGauge(
          "tally_kafka_unreachable_partitions",
          "Owned partitions whose leader broker this instance cannot reach right now.")),
      cut_off_gauge_(metrics->GetGauge(
          "tally_kafka_cut_off",
          "1 while an owned partition's leader has been unreachable long enough to make the "
          "instance not ready.")),
      lag_gauge_(metrics->GetGauge(
          "tally_owned_partitions_lag",
          "Messages in the log not yet applied, summed over the owned partitions.")) {}

void IngestHealth::OnStats(std::string_view stats_json, std::string_view topic,
                           const std::vector<int32_t>& assigned, Clock::time_point now) {
  auto links = reader_.LeaderLinks(stats_json, topic);
  if (!links) {
    if (!told_malformed_) {
      spdlog::warn(
          "ingest: cannot read librdkafka's statistics ({}); broker reachability is not "
          "judged from them",
          links.error().message);
      told_malformed_ = true;
    }
    return;
  }
  std::map<int32_t, Clock::time_point> unreachable;
  std::string detail;
  for (const LeaderLink& l : *links) {
    if (!std::binary_search(assigned.begin(), assigned.end(), l.partition) || l.leader_up) {
      continue;
    }
    auto it = unreachable_since_.find(l.partition);
    unreachable[l.partition] = it == unreachable_since_.end() ? now : it->second;
    if (detail.size() < 300) {
      detail += (detail.empty() ? "" : ", ") + std::to_string(l.partition) +
                (l.leader < 0 ? std::string(" (no leader)")
                              : " (broker " + std::to_string(l.leader) + " " +
                                    (l.leader_state.empty() ? "unknown" : l.leader_state) + ")");
    }
  }
  unreachable_since_ = std::move(unreachable);
  unreachable_gauge_->Set(static_cast<double>(unreachable_since_.size()));
  Clock::time_point oldest = now;
  for (const auto& [p, since] : unreachable_since_) oldest = std::min(oldest, since);
  const bool cut_off = !unreachable_since_.empty() && now - oldest >= options_.cut_off_after;
  const bool was = cut_off_.load();
  if (cut_off) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now - oldest).count();
    std::string reason = "cut off from the Kafka cluster for " + std::to_string(seconds) +
                         " s: no reachable leader for owned partition(s) " + detail;
    if (!was) {
      spdlog::warn(
          "ingest: {}; not ready until the brokers answer again (ingest resumes by "
          "itself; check the brokers and the network between them and this instance)",
          reason);
    }
    std::lock_guard lock(mu_);
    cut_off_reason_ = std::move(reason);
  } else if (was) {
    spdlog::info("ingest: every owned partition's leader is reachable again");
  }
  cut_off_.store(cut_off);
  cut_off_gauge_->Set(cut_off ? 1 : 0);
}

void IngestHealth::OnLag(int64_t lag) {
  lag_gauge_->Set(static_cast<double>(std::max<int64_t>(lag, 0)));
  const bool lagging = options_.max_lag > 0 && lag > options_.max_lag;
  const bool was = lagging_.load();
  if (lagging) {
    std::string reason = "the owned partitions' views trail the log by " + std::to_string(lag) +
                         " messages (more than --max-lag " + std::to_string(options_.max_lag) + ")";
    if (!was) spdlog::warn("ingest: {}; not ready until it catches up", reason);
    std::lock_guard lock(mu_);
    lag_reason_ = std::move(reason);
  } else if (was) {
    spdlog::info("ingest: caught up to within --max-lag {} messages", options_.max_lag);
  }
  lagging_.store(lagging);
}

std::string IngestHealth::Reason() const {
  std::lock_guard lock(mu_);
  std::string out;
  if (cut_off_.load()) out = cut_off_reason_;
  if (lagging_.load()) out += (out.empty() ? "" : "; ") + lag_reason_;
  return out;
}

}  // namespace tally::ingest::internal
