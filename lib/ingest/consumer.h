#pragma once
// The ingest loop: Kafka (librdkafka consumer) -> parse/validate -> dead letters ->
// aggregate -> one RocksDB WriteBatch with the consumed offsets.
//
//   tally::ingest::ConsumerOptions opts;
//   opts.brokers = "127.0.0.1:9092";
//   auto consumer = tally::ingest::Consumer::Create(opts, store, &registry);
//   std::thread t([&] { auto s = (*consumer)->Run(); if (!s) LOG(s.error().message); });
//   ...
//   (*consumer)->Stop();  t.join();
//
// Exactly once: offsets are staged and persisted together with the aggregates they produced (see
// ConsumerOptions::persist_interval_ms). On partition assignment the consumer seeks to the
// stored offsets; commits to Kafka (of persisted offsets) happen only so that lag tools see
// progress and the embedded broker's producers know what they may overwrite. Stored offsets are
// tied to the cluster id: a new log (another cluster id, or a stored offset beyond the partition's
// high watermark) is started from its beginning on a throwaway embedded broker (dedupe by (source,
// id) absorbs re-sent events) and stops ingest with an alarm on a real cluster. A trimmed log
// (offset out of range) is reported loudly.
//
// Bad input never stops ingest: every rejected message goes to the dead-letter topic with its
// reason in the "tally-dlq-reason" header (plus tally-source-topic/-partition/-offset) before
// the batch's offsets are stored, and is counted in tally_events_rejected_total{reason}.
//
// Standbys (SetStandby): warm copies of partitions another instance of the group owns, read by
// a second, assign-only client into the same store, batches and offsets as the owned ones (but
// not committed to the group). When the group later assigns such a partition here, ingest
// continues it from the standby's stored offset instead of replaying its history.
//
// Thread-safety: Run() on one thread; Stop(), SetStandby(), Progress() and NotReadyReason() from
// any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aggregate/aggregator.h"
#include "common/metrics.h"
#include "common/result.h"
#include "event/event_parser.h"
#include "store/directory.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace tally::store {
class Store;
}

namespace tally::ingest {

enum class NewLogPolicy {
  kAuto,     // restart for librdkafka's mock cluster (cluster id "mockCluster..."), else stop
  kRestart,  // start the new log from its beginning
  kStop,     // alarm and stop ingest
};

// How the consumer gets its partitions.
enum class Membership {
  // On an embedded broker (librdkafka's mock cluster, which ignores static membership and makes
  // every join wait seconds) read every partition directly, without joining the group, so that a
  // (re)start resumes at once; on a real cluster join the group.
  kAuto,
  kGroup,  // always join the consumer group
};

struct ConsumerOptions {
  std::string brokers;  // bootstrap.servers
  std::string topic = "usage-events";
  std::string dlq_topic;  // default: topic + ".dlq"
  // The consumer group. Stored offsets are committed to it while they move (every second; after
  // every stored batch on the embedded broker, whose producers wait for them:
  // kafka::RetentionGuard), so that lag tools see progress, whether or not the group is joined.
  std::string group = "tally";
  Membership membership = Membership::kAuto;
  // Static group membership (group.instance.id): a restarted member with the same id takes its
  // partitions back at once instead of waiting for a rebalance. Empty: dynamic membership.
  std::string instance_id;
  // A batch is stored batch_max_ms after its first message, or once it holds
  // batch_ready_messages (and is at least 50 ms old, to take in the rest of its fetch), unless the
  // previous batch is still being stored (then it keeps collecting up to batch_max_messages); at
  // batch_max_messages it is stored in any case. Each batch costs in proportion to the rows it
  // touches, and a quiet stream's batches touch nearly as many rows as a busy one's: a longer
  // window makes a trickle cheaper per event, at the price of freshness, while a busy stream fills
  // batch_ready_messages long before the window is up, so its batches (and how far committed
  // offsets trail the log) stay small.
  int batch_max_messages = 50000;
  int batch_ready_messages = 2000;
  int batch_max_ms = 250;
  // Stored batches are staged in the store's open state (store::Store::Stage: visible to
  // queries at once) and persisted to disk with their offsets (store::Store::Persist) at most
  // persist_interval_ms after the first of them, as soon as the open state holds
  // persist_max_bytes, whenever the stream pauses, and before partitions are revoked, the store
  // is switched or ingest stops. On the embedded broker, which keeps only the newest 5 MiB of
  // a partition, also once a partition has 1 MiB of consumed messages not persisted. A crash
  // loses what was staged and its offsets together: it is consumed again. 0: every batch is
  // written to disk (slower per event, nothing staged).
  int persist_interval_ms = 5000;
  size_t persist_max_bytes = 256u << 20;
  NewLogPolicy new_log_policy = NewLogPolicy::kAuto;
  // Events older than the dedupe window (aggregator.h): applied, or dead-lettered with the
  // reason "late event: ...".
  aggregate::LatePolicy late_policy = aggregate::LatePolicy::kApply;
  // Workspace -> organization bindings declared up front (Aggregator::DeclareOrganizations).
  // Events naming another organization than their workspace's are dead-lettered with the
  // reason "organization mismatch: ...".
  aggregate::OrganizationBindings organizations;
  // Event time bounds: events outside are dead-lettered with the reason "time: time out of
  // range (...)". `event_limits.clock`, if set, must outlive the consumer.
  event::Limits event_limits;
  std::map<std::string, std::string> extra_config;  // extra librdkafka consumer settings
  // Kept current with every stored batch (Aggregator::set_directory); may be null. Not owned;
  // must outlive the consumer.
  store::Directory* directory = nullptr;
  // For a group of instances (cluster/membership.h), both optional. `on_event_scope`: for every
  // event of a batch that is about to be applied, with the partition it came from, its
  // workspace and its organization ("" when none), on the pipeline's worker thread (always the
  // same thread), before queries can see the batch; events refused as late or for naming
  // another organization than their workspace's (dead letters) are not reported.
  // `on_ownership`, on the consumer thread: whenever the assigned partitions (`owned`) or those of
  // them whose views have caught up with the log (`serving`: applied up to the high watermark the
  // partition had when it was assigned, and not missing events the log no longer holds) change;
  // both sorted.
  std::function<void(int32_t partition, std::string_view workspace, std::string_view organization)>
      on_event_scope;
  std::function<void(const std::vector<int32_t>& owned, const std::vector<int32_t>& serving)>
      on_ownership;
  // Key request-analytics data per (organization, workspace)
  // (aggregate::Aggregator::set_request_scope_by_workspace), as a group of instances does. The
  // store (and any store switched to) is bound to the layout: Create and SwitchStore fail with
  // kFailedPrecondition on a store keyed the other way.
  bool request_scope_by_workspace = false;
  // Drop the views of a partition that has been neither owned nor kept as a standby for this
  // long (store::Store::DropPartition), so that an instance keeps only the state of the
  // partitions it serves or keeps warm; if the partition comes back, it is consumed again from
  // the log (or a standby). Only in a store that keeps state per partition
  // (store::Store::PartitionsSeparable; a group's store started empty), and never for a
  // partition that brought a workspace some kept partition also brought. Negative: never.
  int64_t drop_idle_after_ms = -1;
  // Readiness (Consumer::Ready) also needs the Kafka cluster: ingest is not ready while an owned
  // partition's leader broker has been unreachable for cut_off_after_ms (librdkafka's
  // statistics, every second), nor while the owned partitions' views trail the log by more than
  // max_lag messages in all (0: no limit; checked twice a second). Neither stops ingest.
  int cut_off_after_ms = 2000;
  int64_t max_lag = 0;
};

// What a partition is to this consumer (PartitionProgress::role).
enum class PartitionRole {
  kOwned,    // assigned (by the group, or read directly): its views are served
  kStandby,  // kept warm for another owner (Consumer::SetStandby): not served
  kIdle,     // neither any more: its views stay as they were (not served) until dropped
             // (ConsumerOptions::drop_idle_after_ms)
};

struct PartitionProgress {
  std::string topic;
  PartitionRole role = PartitionRole::kOwned;
  int32_t partition = 0;
  // Next offset after the messages applied to the views (visible to queries).
  int64_t next_offset = 0;
  // Next offset after the messages persisted to disk: a restart resumes here.
  // persisted_offset <= next_offset.
  int64_t persisted_offset = 0;
  // Next offset after the messages already read from the broker: applied, or in a batch being
  // collected or stored. next_offset <= read_offset.
  int64_t read_offset = 0;
  int64_t high_watermark = -1;  // last known high watermark, -1 if unknown
};

class Consumer {
 public:
  // Creates the librdkafka consumer and the dead-letter producer. kInvalidArgument on bad
  // configuration.
  static Result<std::unique_ptr<Consumer>> Create(const ConsumerOptions& options,
                                                  store::Store* store, MetricsRegistry* metrics);
  ~Consumer();

  // Learns the cluster id (waiting for the broker as long as it takes, until Stop()), takes its
  // partitions (options.membership), then consumes until Stop(). Returns an error only when
  // ingest must not go on (a new or trimmed log on a real cluster, an unrecoverable store error,
  // a subscription the client refuses).
  Status Run();
  void Stop() { stop_.store(true); }

  // Moves ingest to another store (a rebuilt data directory) without stopping: the consumer
  // thread stores the batch in progress into the current store, then folds into `store`
  // (keeping `directory` current) and continues every assigned partition from the offsets stored
  // in `store` for this cluster (from the log start where it has none). Blocks until the
  // consumer thread has switched. Thread-safe; the caller keeps both stores alive until this
  // returns, and `store` (and `directory`) as long as the consumer uses them.
  // kUnavailable if the consumer thread does not get to it within `timeout` (then nothing
  // changed), kFailedPrecondition if Run() is not running.
  Status SwitchStore(store::Store* store, store::Directory* directory,
                     std::chrono::milliseconds timeout);

  // Keeps standbys of `partitions` (replacing the previous set): reads them from the offsets
  // stored for them (the log's start when none) into the same store. Partitions the group has
  // assigned here are left out while assigned; one whose log has been trimmed past its stored
  // offset (or past the start, when none is stored) is left out with a warning. Applied on the
  // consumer thread between batches; a partition the group assigns here stops being a standby
  // first (its staged state is persisted, then it continues from there). Thread-safe.
  void SetStandby(std::vector<int32_t> partitions);

  // Every partition this consumer has read since it started (owned, standby or idle).
  std::vector<PartitionProgress> Progress() const;
  // Why this consumer is not ready, in a sentence for /readyz; "" once it is: partitions are
  // assigned, no fatal condition was met, the store accepts writes (while it does not, a full
  // disk for example, ingest pauses and retries: not ready), the owned partitions' leaders are
  // reachable and their views are within ConsumerOptions::max_lag of the log. One reading, so
  // readiness and its reason never disagree.
  std::string NotReadyReason() const;
  // The cluster id offsets are tied to (empty until known).
  std::string cluster_id() const;

 private:
  struct Impl;
  explicit Consumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> store_failing_{false};
};

}  // namespace tally::ingest
