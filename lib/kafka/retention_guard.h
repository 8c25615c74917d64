#pragma once
// Keeps tally's own producers from outrunning the embedded broker's retention.
//
//   auto guard = tally::kafka::RetentionGuard::Create(
//       {.brokers = bootstrap, .topic = "usage-events", .group = "tally"});
//   if (!guard) return guard.error();
//   for (const std::string& line : lines) {
//     while (auto st = (*guard)->Admit(line.size()); !st) {  // held back: tallyd is behind
//       ShowWaiting(st.error().message);
//       std::this_thread::sleep_for(std::chrono::milliseconds(20));
//     }
//     producer->Produce("usage-events", key, line);
//   }
//
// The embedded broker (librdkafka's mock cluster) keeps only the newest kPartitionRetentionBytes
// of each partition: a producer that runs more than that ahead of the consumer makes the broker
// drop events nobody has read. On such a cluster (recognised by its cluster id) Admit() holds a
// producer back while any partition's unconsumed bytes, counted from the consumer group's
// committed offsets to the high watermark, plus what this guard admitted since its last look,
// would pass `hold_fraction` of the retention. On any other cluster Admit() always admits and
// never talks to the broker again after learning the cluster id.
//
// Unconsumed bytes are estimated: (high watermark - committed offset) messages times the bytes
// per message, taken from the partition's own log once it has been trimmed (a trimmed log holds
// the retention's worth of messages) and otherwise from the sizes admitted here; plus the
// partition's share (by what arrived between the last two looks) of the bytes admitted lately,
// which may not have reached the broker yet: those admitted since the look before the last, or,
// when the producer says how many messages it has not had acknowledged
// (`unacknowledged_messages`), those still queued when the last look started plus those admitted
// since, whichever is more. A group that has committed nothing yet counts the
// whole log as unconsumed, so a producer started before its consumer waits for it once the
// bound is reached. Until the first look has answered, everything admitted counts against every
// partition: callers beyond the bound wait for that look (one broker round of requests) instead
// of being admitted unseen.
//
// Thread-safety: all methods may be called from any thread. The broker is asked again at most
// every `refresh_ms` (every `hold_refresh_ms` while holding back), by the calling thread; the
// other threads meanwhile decide on the last answer. Nothing runs while nobody calls: a quiet
// producer costs nothing.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "kafka/embedded_broker.h"

typedef struct rd_kafka_s rd_kafka_t;
struct rd_kafka_conf_s;

namespace tally::kafka {

// How full a partition may get (of its retention, counted from the committed offsets) before a
// producer is held back. Bulk producers (`tally produce`, backfills) yield at half; interactive
// ones (tallyd's POST /v1/events: small requests a client waits for) only past 80%, so that
// while a bulk stream or a hot tenant fills a partition, the bulk side slows down and the
// requests still pass. The rest is the margin for estimates and bytes still in flight.
inline constexpr double kBulkHoldFraction = 0.5;
inline constexpr double kInteractiveHoldFraction = 0.8;

struct RetentionGuardOptions {
  std::string brokers;  // bootstrap.servers, required
  std::string topic = "usage-events";
  std::string group = "tally";  // the consumer group whose progress bounds the producer
  double hold_fraction = kBulkHoldFraction;  // of a partition's retention; in (0, 1]
  int refresh_ms = 100;                      // staleness accepted while admitting
  int hold_refresh_ms = 20;                  // staleness accepted before refusing
  int timeout_ms = 5000;                     // per broker request
  // Optional: how many of the messages admitted here the broker has not acknowledged yet (for
  // example kafka::Producer::in_flight). With it, the messages still queued in the producer when
  // a look starts count against the partitions too, so that a producer whose queue runs behind
  // (a burst after a hold-back, a slow broker) cannot overshoot the bound. Called by the thread
  // that looks, without the guard's locks held; must be thread-safe.
  std::function<int64_t()> unacknowledged_messages = {};
};

// What the guard last learnt about one partition (for messages and tests).
struct PartitionBacklog {
  int32_t partition = 0;
  int64_t low = -1;        // log start offset
  int64_t high = -1;       // high watermark
  int64_t committed = -1;  // the group's committed offset, -1 when none
  int64_t unconsumed_bytes = 0;
};

class RetentionGuard {
 public:
  // Checks the options; connects lazily (the first Admit() learns the cluster id). Errors:
  // kInvalidArgument for an empty broker list or topic, or a hold_fraction outside (0, 1];
  // kInternal if librdkafka cannot create a client.
  static Result<std::unique_ptr<RetentionGuard>> Create(const RetentionGuardOptions& options);

  ~RetentionGuard();
  RetentionGuard(const RetentionGuard&) = delete;
  RetentionGuard& operator=(const RetentionGuard&) = delete;

  // Ok when `messages` more messages of `bytes` in all (values and keys) may be produced now;
  // they are then counted as produced. kUnavailable, with a message naming the partition, its
  // unconsumed bytes, the bound and the group, when producing now could get unread events trimmed:
  // nothing is counted; call again later. Before the embedded broker has said how far its
  // consumers are, up to limit_bytes() in all are admitted and the callers beyond wait for the
  // look under way (kUnavailable if it brings no answer). Ok while the cluster cannot be reached
  // (nothing can be trimmed that is not there), and always on a real cluster.
  Status Admit(size_t bytes, size_t messages = 1);

  // True once the cluster id showed the embedded broker (the guard is then active).
  bool active() const;
  // Bytes per partition above which producing is held back: hold_fraction * retention.
  int64_t limit_bytes() const;
  // The partitions as of the last look at the broker (empty before it, or on a real cluster).
  std::vector<PartitionBacklog> Backlog() const;

  // The embedded broker's retention per partition (EmbeddedBroker; it also keeps at most 100k
  // message batches, which only matters for messages under ~50 bytes).
  static constexpr int64_t kPartitionRetentionBytes = EmbeddedBroker::kRetentionPerPartitionBytes;

 private:
  using Clock = std::chrono::steady_clock;
  enum class Mode { kUnknown, kActive, kInactive };

  explicit RetentionGuard(const RetentionGuardOptions& options) : options_(options) {}
  // Asks the broker for the cluster id (once), then the watermarks and the group's committed
  // offsets. Called with refresh_mu_ held, not mu_.
  void Refresh();
  // Refresh's first step: learns (once) whether the cluster is an embedded broker, starting the
  // client. False when there is nothing more to ask (unreachable for now, or a real cluster).
  // `started`: when the look began. refresh_mu_ held, not mu_.
  bool LearnClusterKind(Clock::time_point started);
  // Refresh's last step: takes one look's offsets (partition, low, high, committed of every
  // partition) as the new answer: unconsumed bytes, recent shares and their maxima. mu_ held.
  void RecordBacklogs(std::vector<PartitionBacklog> looked);
  // The verdict on the last answer for `bytes` more; `worst` gets the partition with the largest
  // estimate (in its unconsumed_bytes). `unanswered` is set when there is no answer yet to judge
  // by (no look has completed): the verdict then counts everything admitted. mu_ held.
  bool WouldHold(size_t bytes, PartitionBacklog* worst, bool* unanswered) const;
  // True while there is no answer to judge by and the cluster was not found unreachable.
  // mu_ not held.
  bool AwaitingFirstAnswer() const;

  // Closes the client, if started. Called with refresh_mu_ held (or from the destructor).
  void StopClient();

  const RetentionGuardOptions options_;
  // The client's settings until it starts (at the first Refresh), then the client: a consumer
  // with group.id that never joins the group. Both under refresh_mu_.
  std::unique_ptr<rd_kafka_conf_s, void (*)(rd_kafka_conf_s*)> conf_{nullptr, nullptr};
  rd_kafka_t* rk_ = nullptr;  // owned

  std::mutex refresh_mu_;  // one thread asks the broker at a time
  mutable std::mutex mu_;  // guards everything below
  Mode mode_ = Mode::kUnknown;
  // The last look failed: it could not reach the cluster (Admit() then admits while the mode is
  // unknown) or learn the partitions' offsets.
  bool look_failed_ = false;
  Clock::time_point refreshed_{};  // when the last answer was asked for
  std::vector<PartitionBacklog> partitions_;
  // Per partition: its share of the messages that arrived between the last two looks.
  std::vector<double> recent_share_;
  // The largest unconsumed_bytes and recent_share_ of the last answer (WouldHold's fast path).
  int64_t max_unconsumed_ = 0;
  double max_share_ = 1.0;
  int partition_count_ = 0;     // of the topic, once known (only Refresh() touches it)
  int64_t admitted_bytes_ = 0;  // since creation
  int64_t admitted_messages_ = 0;
  // Bytes admitted since the look before the last one: they may not be in the high watermarks
  // yet, so they count against every partition (the guard does not know their partitions).
  int64_t admitted_at_refresh_ = 0;       // admitted_bytes_ when the last look started
  int64_t admitted_at_prev_refresh_ = 0;  // ... and when the one before started
  // Bytes of the messages not yet acknowledged when the last look started (from
  // options_.unacknowledged_messages, at the average admitted size; 0 without it): not in the
  // high watermarks that look saw.
  int64_t unacknowledged_at_refresh_ = 0;
};

}  // namespace tally::kafka
