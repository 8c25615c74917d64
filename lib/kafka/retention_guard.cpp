#include "kafka/retention_guard.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "kafka/admin.h"
#include "kafka/internal/rdkafka_util.h"

namespace tally::kafka {
namespace {

// Per message in the log besides its value and key: record framing plus a share of the batch
// header. A guess that errs high only until the partition's own log tells (see Refresh).
constexpr double kRecordOverheadBytes = 80;
// Before anything was admitted or trimmed: a typical usage event.
constexpr double kDefaultBytesPerMessage = 1024;

struct ListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using ListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, ListDeleter>;

std::string Mebibytes(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

Result<std::unique_ptr<RetentionGuard>> RetentionGuard::Create(
    const RetentionGuardOptions& options) {
  if (options.brokers.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "The Kafka broker list is empty.", "brokers");
  }
  if (options.topic.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "The topic is empty.", "topic");
  }
  if (!(options.hold_fraction > 0 && options.hold_fraction <= 1)) {
    return Fail(ErrorCode::kInvalidArgument, "hold_fraction must be in (0, 1].", "hold_fraction");
  }
  internal::ConfPtr conf = internal::NewConf();
  // group.id only so that committed offsets can be read; this handle never subscribes, so it
  // never joins (or disturbs) the group.
  auto st = internal::SetConf(conf.get(), {{"bootstrap.servers", options.brokers},
                                           {"group.id", options.group},
                                           {"enable.auto.commit", "false"},
                                           {"client.id", "tally-retention-guard"}});
  if (!st) return std::unexpected(st.error());
  std::unique_ptr<RetentionGuard> guard(new RetentionGuard(options));
  // The client starts at the first Admit: a guard nobody asks costs nothing.
  guard->conf_ = {conf.release(), &rd_kafka_conf_destroy};
  return guard;
}

RetentionGuard::~RetentionGuard() { StopClient(); }

void RetentionGuard::StopClient() {
  if (rk_ == nullptr) return;
  rd_kafka_consumer_close(rk_);
  rd_kafka_destroy(rk_);
  rk_ = nullptr;
}

bool RetentionGuard::active() const {
  std::lock_guard lock(mu_);
  return mode_ == Mode::kActive;
}

int64_t RetentionGuard::limit_bytes() const {
  return static_cast<int64_t>(options_.hold_fraction * kPartitionRetentionBytes);
}

std::vector<PartitionBacklog> RetentionGuard::Backlog() const {
  std::lock_guard lock(mu_);
  return partitions_;
}

bool RetentionGuard::WouldHold(size_t bytes, PartitionBacklog* worst, bool* unanswered) const {
  *unanswered = false;
  if (mode_ == Mode::kInactive) return false;
  // Bytes admitted lately may not be in the high watermarks yet: each partition gets its share
  // of them as of the last look (all of them when the last look saw nothing arrive).
  const double in_flight =
      static_cast<double>(
          std::max(admitted_bytes_ - admitted_at_prev_refresh_,
                   unacknowledged_at_refresh_ + admitted_bytes_ - admitted_at_refresh_)) +
      static_cast<double>(bytes);
  if (mode_ == Mode::kUnknown && look_failed_) return false;  // unreachable: nothing to trim
  if (mode_ == Mode::kUnknown || partitions_.empty()) {
    // No answer yet from a cluster that may be the embedded broker (the first look is under way,
    // or the embedded broker did not say how far its consumers are). Without this bound, every
    // caller meanwhile would be admitted, and a burst at start-up could fill a partition before
    // the guard knew anything.
    *unanswered = true;
    return in_flight > static_cast<double>(limit_bytes());
  }
  // Per message, usually far below the bound: decide on the largest backlog and share without
  // going through the partitions.
  if (max_unconsumed_ + static_cast<int64_t>(in_flight * max_share_) <= limit_bytes()) return false;
  bool hold = false;
  int64_t worst_estimate = -1;
  for (size_t i = 0; i < partitions_.size(); ++i) {
    const int64_t estimate =
        partitions_[i].unconsumed_bytes + static_cast<int64_t>(in_flight * recent_share_[i]);
    if (estimate > worst_estimate) {
      worst_estimate = estimate;
      *worst = partitions_[i];
      worst->unconsumed_bytes = estimate;
    }
    hold = hold || estimate > limit_bytes();
  }
  return hold;
}

bool RetentionGuard::AwaitingFirstAnswer() const {
  std::lock_guard lock(mu_);
  return mode_ == Mode::kActive ? partitions_.empty() : mode_ == Mode::kUnknown && !look_failed_;
}

Status RetentionGuard::Admit(size_t bytes, size_t messages) {
  // A caller held back for want of a first answer waits for the look under way this many times
  // at most (each wait ends with an answer or a failed look, so one or two suffice).
  constexpr int kMaxWaits = 3;
  int waits = 0;
  for (int attempt = 0;; ++attempt) {
    bool wait_for_answer = false;
    {
      std::lock_guard lock(mu_);
      if (mode_ == Mode::kInactive) return Ok();
      const auto age = Clock::now() - refreshed_;
      PartitionBacklog worst;
      bool unanswered = false;
      const bool hold = WouldHold(bytes, &worst, &unanswered);
      const bool fresh =
          age < std::chrono::milliseconds(hold ? options_.hold_refresh_ms : options_.refresh_ms);
      if (fresh || attempt > 0) {
        if (!hold) {
          admitted_bytes_ += static_cast<int64_t>(bytes);
          admitted_messages_ += static_cast<int64_t>(messages);
          return Ok();
        }
        if (unanswered) {
          if (waits >= kMaxWaits) {
            return Fail(ErrorCode::kUnavailable,
                        "The embedded broker has not yet said how much of " + options_.topic +
                            " consumer group '" + options_.group +
                            "' has consumed, and producing more now could get unread events "
                            "trimmed.");
          }
          ++waits;
          wait_for_answer = true;
        } else {
          std::string committed = worst.committed >= 0
                                      ? "committed offset " + std::to_string(worst.committed)
                                      : "nothing committed yet";
          return Fail(ErrorCode::kUnavailable,
                      "The embedded broker keeps only the newest " +
                          Mebibytes(kPartitionRetentionBytes) + " of each partition, and " +
                          options_.topic + "[" + std::to_string(worst.partition) +
                          "] holds about " +
                          Mebibytes(static_cast<double>(worst.unconsumed_bytes)) +
                          " that consumer group '" + options_.group + "' has not consumed yet (" +
                          committed + ", high watermark " + std::to_string(worst.high) +
                          "); producing waits below " + Mebibytes(limit_bytes()) +
                          " so that nothing unread is trimmed.");
        }
      }
    }
    if (wait_for_answer) {
      // The look under way holds refresh_mu_: wait for it to end, and look ourselves if it
      // ended without an answer for some other reason.
      std::lock_guard refreshing(refresh_mu_);
      if (AwaitingFirstAnswer()) Refresh();
      continue;
    }
    // Stale: look again (one thread at a time; the others decide on the last answer).
    std::unique_lock refreshing(refresh_mu_, std::try_to_lock);
    if (refreshing.owns_lock()) Refresh();
  }
}

bool RetentionGuard::LearnClusterKind(Clock::time_point started) {
  {
    std::lock_guard lock(mu_);
    if (mode_ != Mode::kUnknown) return true;
  }
  if (rk_ == nullptr && conf_) {
    auto handle = internal::NewHandle(RD_KAFKA_CONSUMER, internal::ConfPtr(conf_.release()));
    if (handle) {
      rk_ = handle->release();
    } else {
      spdlog::error("retention guard: cannot start: {}", handle.error().message);
    }
  }
  char* id = rk_ != nullptr ? rd_kafka_clusterid(rk_, options_.timeout_ms) : nullptr;
  std::lock_guard lock(mu_);
  refreshed_ = started;
  if (id == nullptr) {
    // Unreachable for now: admit (the producer itself will wait or fail) and ask again in a
    // while rather than at every call. A future time reads as fresh.
    refreshed_ = Clock::now() + std::chrono::seconds(2);
    look_failed_ = true;
    return false;
  }
  mode_ = IsEmbeddedCluster(id) ? Mode::kActive : Mode::kInactive;
  spdlog::debug("retention guard: cluster {} is {}", id,
                mode_ == Mode::kActive ? "an embedded broker: holding producers back as needed"
                                       : "a real cluster: never holding back");
  rd_kafka_mem_free(rk_, id);
  if (mode_ == Mode::kInactive) {
    StopClient();  // never asked again
    return false;
  }
  return true;
}

void RetentionGuard::Refresh() {
  if (!LearnClusterKind(Clock::now())) return;
  int64_t admitted_now;
  int64_t admitted_messages_now;
  {
    std::lock_guard lock(mu_);
    admitted_now = admitted_bytes_;
    admitted_messages_now = admitted_messages_;
  }
  // Asked before the watermarks: none of these is in them, unless acknowledged meanwhile (then
  // counted twice, which only errs towards holding back).
  const int64_t unacknowledged =
      options_.unacknowledged_messages
          ? std::clamp<int64_t>(options_.unacknowledged_messages(), 0, admitted_messages_now)
          : 0;

  // The embedded broker's topics are created with it and never grow: ask once.
  if (partition_count_ == 0) {
    auto count = PartitionCount(options_.brokers, options_.topic, options_.timeout_ms);
    if (count) partition_count_ = *count;
  }
  const int partition_count = partition_count_;
  auto list_of = [&](int64_t offset) {
    ListPtr list(rd_kafka_topic_partition_list_new(partition_count));
    for (int32_t p = 0; p < partition_count; ++p) {
      rd_kafka_topic_partition_list_add(list.get(), options_.topic.c_str(), p)->offset = offset;
    }
    return list;
  };
  // ListOffsets with the special "timestamps" END and BEGINNING: the watermarks of every
  // partition in one request each.
  ListPtr high = list_of(RD_KAFKA_OFFSET_END);
  ListPtr low = list_of(RD_KAFKA_OFFSET_BEGINNING);
  ListPtr committed = list_of(RD_KAFKA_OFFSET_INVALID);
  bool ok = partition_count > 0 &&
            rd_kafka_offsets_for_times(rk_, high.get(), options_.timeout_ms) == 0 &&
            rd_kafka_offsets_for_times(rk_, low.get(), options_.timeout_ms) == 0 &&
            rd_kafka_committed(rk_, committed.get(), options_.timeout_ms) == 0;
  auto offset_in = [&](const ListPtr& list, int32_t p) -> int64_t {
    const rd_kafka_topic_partition_t* e =
        rd_kafka_topic_partition_list_find(list.get(), options_.topic.c_str(), p);
    return e != nullptr && e->err == 0 && e->offset >= 0 ? e->offset : -1;
  };
  std::vector<PartitionBacklog> looked(ok ? static_cast<size_t>(partition_count) : 0);
  for (int32_t p = 0; p < static_cast<int32_t>(looked.size()); ++p) {
    looked[p] = {.partition = p,
                 .low = offset_in(low, p),
                 .high = offset_in(high, p),
                 .committed = offset_in(committed, p)};
  }

  std::lock_guard lock(mu_);
  refreshed_ = Clock::now();
  if (!ok) {
    // Nothing to go on (no topic yet, or the broker did not answer in time): keep the last
    // answer; without one, WouldHold bounds what is admitted meanwhile.
    look_failed_ = true;
    return;
  }
  look_failed_ = false;
  RecordBacklogs(std::move(looked));
  admitted_at_prev_refresh_ = admitted_at_refresh_;
  admitted_at_refresh_ = admitted_now;
  unacknowledged_at_refresh_ =
      admitted_messages_now > 0 ? static_cast<int64_t>(static_cast<double>(unacknowledged) *
                                                       static_cast<double>(admitted_now) /
                                                       static_cast<double>(admitted_messages_now))
                                : 0;
}

void RetentionGuard::RecordBacklogs(std::vector<PartitionBacklog> looked) {
  const double admitted_average =
      admitted_messages_ > 0
          ? static_cast<double>(admitted_bytes_) / admitted_messages_ + kRecordOverheadBytes
          : kDefaultBytesPerMessage;
  std::vector<PartitionBacklog> previous = std::move(partitions_);
  partitions_ = std::move(looked);
  recent_share_.assign(partitions_.size(), 1.0);
  int64_t arrived = 0;
  for (size_t p = 0; p < partitions_.size(); ++p) {
    PartitionBacklog& b = partitions_[p];
    if (b.high < 0) continue;
    const int64_t low_offset = std::max<int64_t>(b.low, 0);
    const int64_t from = std::max(b.committed, low_offset);
    // A trimmed log holds about the retention's worth of messages: its own size per message.
    double per_message = admitted_average;
    if (b.low > 0 && b.high > b.low) {
      per_message = std::max(per_message, static_cast<double>(kPartitionRetentionBytes) /
                                              static_cast<double>(b.high - b.low));
    }
    b.unconsumed_bytes = static_cast<int64_t>(static_cast<double>(b.high - from) * per_message);
    if (p < previous.size() && previous[p].high >= 0) {
      arrived += std::max<int64_t>(0, b.high - previous[p].high);
    }
  }
  if (arrived > 0) {
    for (size_t p = 0; p < partitions_.size(); ++p) {
      const int64_t before = p < previous.size() ? previous[p].high : -1;
      recent_share_[p] =
          before >= 0 && partitions_[p].high >= before
              ? static_cast<double>(partitions_[p].high - before) / static_cast<double>(arrived)
              : 1.0;
    }
  }
  max_unconsumed_ = 0;
  for (const PartitionBacklog& b : partitions_) {
    max_unconsumed_ = std::max(max_unconsumed_, b.unconsumed_bytes);
  }
  max_share_ = *std::max_element(recent_share_.begin(), recent_share_.end());
}

}  // namespace tally::kafka
