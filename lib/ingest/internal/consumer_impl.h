#pragma once
// The consumer's state and steps (Consumer::Impl), shared by the files that implement them:
//
//   consumer.cpp                 Consumer's public methods and the consume loop (Run)
//   internal/kafka_client.cpp    librdkafka clients: settings, start (cluster id, subscribe or
//                                assign), close
//   internal/rebalance.cpp       assignments and revocations, start offsets, ownership reports
//   internal/batching.cpp        polling into batches, continuity, handing over, accounting
//   internal/dead_letters.cpp    refused lines to the dead-letter topic, rejection counters
//   internal/offsets.cpp         staging and persisting with offsets, store write failures,
//                                commits to the group
//   internal/standby.cpp         standby partitions (SetStandby) on the assign-only client
//   internal/idle_partitions.cpp dropping partitions neither owned nor kept as standbys
//   internal/lag.cpp             lag gauges and librdkafka statistics (readiness)
//   internal/store_switch.cpp    moving ingest to another store (SwitchStore)
//
// Threads: the consumer thread runs Run() and every step unless said otherwise; the pipeline's
// worker runs the hooks (Hooks()); `mu` guards what Progress() and the callbacks read.

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/aggregator.h"
#include "common/metrics.h"
#include "common/result.h"
#include "ingest/consumer.h"
#include "ingest/internal/ingest_health.h"
#include "kafka/producer.h"
#include "pipeline/batch_pipeline.h"
#include "store/store.h"

namespace tally::ingest {
namespace internal {

// How long a metadata request (watermarks, partition count) may wait for the cluster.
constexpr int kMetadataTimeoutMs = 10'000;
// A failed store write is retried after this long at first, doubling up to kMaxStoreRetryMs:
// a transient error (a compaction stall) clears within a few retries.
constexpr int kFirstStoreRetryMs = 100;
// The longest pause between store write retries: a full disk takes an operator, and a retry
// every few seconds resumes ingest soon after the space is back without spinning.
constexpr int kMaxStoreRetryMs = 5000;

}  // namespace internal

struct Consumer::Impl {
  using Clock = std::chrono::steady_clock;

  ConsumerOptions options;
  store::Store* store = nullptr;
  rd_kafka_t* rk = nullptr;
  std::unique_ptr<kafka::Producer> dlq;
  std::unique_ptr<aggregate::Aggregator> aggregator;
  std::atomic<bool>* stop = nullptr;
  std::atomic<bool>* ready = nullptr;
  // Set while the store refuses writes (StoreFailed .. StoreWrote); Consumer::NotReadyReason()
  // says so.
  std::atomic<bool>* store_failing = nullptr;
  // Cut off from the cluster or lagging (fed by StatsCb and UpdateLag).
  std::unique_ptr<internal::IngestHealth> health;

  // Metrics.
  MetricsRegistry* metrics = nullptr;
  Counter* consumed = nullptr;
  Counter* applied = nullptr;
  Counter* duplicates = nullptr;
  Counter* dlq_produced = nullptr;
  Counter* trimmed = nullptr;
  Counter* batches = nullptr;
  Histogram* apply_seconds = nullptr;
  Histogram* batch_messages = nullptr;
  Histogram* persist_seconds = nullptr;  // one observation per persist
  Counter* taken_from_standby = nullptr;
  Counter* partitions_dropped = nullptr;
  Counter* store_write_failures = nullptr;
  Gauge* store_write_failing = nullptr;
  // Since when writes fail, and when that was last logged (StoreFailed, StoreWrote; the worker
  // and the consumer thread call them, never at once).
  std::mutex store_failure_mu;
  std::optional<Clock::time_point> store_failing_since;
  Clock::time_point store_failure_logged{};
  std::map<std::string, Counter*> rejected_by_reason;

  // Offsets: the next offset per partition of the topic, as stored in RocksDB.
  mutable std::mutex mu;
  std::string cluster_id;
  bool embedded = false;  // the cluster is an embedded broker (set with cluster_id, before use)
  std::map<int32_t, PartitionProgress> progress;
  std::vector<int32_t> assigned;
  // Per assigned partition: the high watermark at assignment; its views serve once they have
  // applied up to it (ConsumerOptions::on_ownership). Consumer thread.
  std::map<int32_t, int64_t> restore_target;
  std::vector<int32_t> serving;  // sorted, what on_ownership last said
  // Assigned partitions whose views miss events the log no longer holds (trimmed before the
  // stored offset, or `gapped`): never serving. Re-derived at each assignment.
  std::set<int32_t> incomplete;
  std::string fatal;  // non-empty: ingest must stop with this message

  // Standbys (SetStandby): what was asked for, applied by the consumer thread (MaybeStandby).
  std::mutex standby_mu;
  std::vector<int32_t> standby_wanted;  // guarded by standby_mu
  bool standby_dirty = false;           // guarded by standby_mu
  // The assign-only client reading the standbys; created on first use. Consumer thread.
  rd_kafka_t* standby_rk = nullptr;
  // Partitions standby_rk reads, sorted. Written on the consumer thread under mu.
  std::vector<int32_t> standby;
  // Owned partitions whose views here skipped events the log dropped before they were read: no
  // longer served (consumer thread, under mu). Kept in memory only: after a restart such a
  // partition is served again (the embedded broker only; a real cluster stops ingest instead).
  std::set<int32_t> gapped;
  bool poll_standby_first = false;  // alternates (PollNext)
  // Idle partitions (neither assigned nor standby) and since when; those that cannot be
  // dropped (told once). Consumer thread.
  std::map<int32_t, Clock::time_point> idle_since;
  std::set<int32_t> kept_idle;
  // Partitions with stored offsets that this run has not read (views left by an earlier run),
  // learnt once partitions are first assigned; idle too. Consumer thread.
  std::set<int32_t> left_over;
  bool left_over_loaded = false;
  Clock::time_point last_idle_check{};
  bool told_not_separable = false;

  // A requested store switch (SwitchStore), served by the consumer thread between batches.
  std::mutex switch_mu;
  std::condition_variable switch_cv;
  store::Store* switch_store = nullptr;
  store::Directory* switch_directory = nullptr;
  bool switch_done = false;
  Status switch_result = Ok();
  std::atomic<bool> running{false};
  bool closing = false;  // ~Impl runs: rebalances only let partitions go (RebalanceCb)

  // Batches go through pipeline::BatchPipeline, as replay's do: while its worker stores one
  // (late check, dead letters, dedupe, fold, write), this thread polls and parses the next.
  // Batches are still stored one at a time, in consume order, each with its own offsets.
  std::unique_ptr<pipeline::BatchPipeline> pipeline;
  pipeline::BatchPipeline::DoneFn account;  // Account, for the pipeline's Submit and Wait
  // The messages of the batch being collected and of the batch with the worker: owned until
  // their batch is stored (the dead-letter path reads their payloads and keys).
  std::vector<rd_kafka_message_t*> pending_messages;
  std::vector<rd_kafka_message_t*> flying_messages;
  double flying_parse_seconds = 0;
  // A batch was not stored (Stop()): no later batch may be, or its offsets would skip it.
  bool stalled = false;
  // Next offset per partition after the batches handed to the worker (progress lags them by the
  // batch in flight); reset on assignment and store switch. For CheckContinuity.
  std::map<int32_t, int64_t> expected_next;
  Clock::time_point last_commit{};
  std::map<int32_t, int64_t> committed;  // what the last commit said, per partition
  // Since the last persist was requested: when the first batch was handed over, and the bytes
  // of the messages handed over per partition (consumer thread).
  std::optional<Clock::time_point> first_unpersisted;
  std::map<int32_t, int64_t> unpersisted_bytes;
  Clock::time_point last_submit{};  // when the last batch was handed over

  bool Staging() const { return options.persist_interval_ms > 0; }
  store::Store::RequestScopes RequestScopes() const {
    return options.request_scope_by_workspace ? store::Store::RequestScopes::kWorkspace
                                              : store::Store::RequestScopes::kOrganization;
  }
  bool IsStandby(int32_t p) const { return std::binary_search(standby.begin(), standby.end(), p); }
  bool IsAssigned(int32_t p) const {
    return std::find(assigned.begin(), assigned.end(), p) != assigned.end();
  }
  std::vector<rd_kafka_message_t*>& Pending() { return pending_messages; }

  // The partitions of `list`, in its order.
  static std::vector<int32_t> PartitionsOf(const rd_kafka_topic_partition_list_t* list) {
    std::vector<int32_t> out;
    out.reserve(static_cast<size_t>(list->cnt));
    for (int i = 0; i < list->cnt; ++i) out.push_back(list->elems[i].partition);
    return out;
  }

  // "0,1,2" for logs.
  static std::string JoinPartitions(const std::vector<int32_t>& partitions) {
    std::string out;
    for (int32_t p : partitions) out += (out.empty() ? "" : ",") + std::to_string(p);
    return out;
  }

  // Registers the consumer's metrics (Create).
  void RegisterMetrics(MetricsRegistry* registry);

  // --- Clients (kafka_client.cpp) ---

  // Lets the worker finish, drops the messages not stored, then closes both clients.
  ~Impl();

  // Closes and destroys a consumer client within kCloseTimeout. rd_kafka_consumer_close waits
  // for the cluster (the last rebalance, leaving the group) as long as it takes, and an
  // unreachable cluster must not keep tallyd from stopping: the offsets live in the store, so
  // nothing depends on the close. `self` serves the group client's rebalance events (null for
  // the standby client, which only assigns).
  static void Close(rd_kafka_t* client, Impl* self);

  // A librdkafka consumer polled with rd_kafka_consumer_poll: the group's client (with the
  // rebalance callback), or the standby client (assign-only: it never joins the group or
  // commits to it). kInvalidArgument for a setting librdkafka refuses.
  Result<rd_kafka_t*> NewClient(bool for_standby);

  // On the consumer thread, before consuming: learns the cluster id (retrying until the broker
  // answers or Stop()), then reads every partition directly (Membership::kAuto on an embedded
  // broker) or subscribes to the group (which assigns through RebalanceCb). False on Stop();
  // an error when ingest cannot start.
  Result<bool> TakePartitions();

  // --- Assignments (rebalance.cpp) ---

  // The group's rebalancing is incremental (cooperative-sticky): assignments change by
  // incremental_assign / incremental_unassign only.
  bool Cooperative() const;

  // Ingest must stop with `message` (the first one wins): logged, not ready; Run() returns it.
  void SetFatal(std::string message);

  // options.new_log_policy, with kAuto resolved by the cluster (restart on an embedded broker).
  NewLogPolicy Policy() const;

  // Decides where each of `parts` starts (OnAssign), then assigns them, or nothing when that
  // found ingest must stop; ready once assigned. From the rebalance callback, or from
  // TakePartitions() when reading partitions directly; the cluster id is known by then.
  rd_kafka_resp_err_t Assign(rd_kafka_topic_partition_list_t* parts, bool incremental = false);

  // Decides where each newly assigned partition starts (see Assign). `incremental`: `parts` come
  // in addition to those assigned already (cooperative rebalancing), else they replace them.
  void OnAssign(rd_kafka_topic_partition_list_t* parts, bool incremental);

  // The group client's rebalance callback (`opaque`: the Impl), served inside
  // rd_kafka_consumer_poll: assigns (Assign), or stores and persists what was consumed, then
  // lets the revoked partitions go.
  static void RebalanceCb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* parts, void* opaque);

  // Tells options.on_ownership what is assigned and serving when that changed (`changed`: the
  // assignment did). Consumer thread.
  void ReportOwnership(bool changed);

  // --- Batches (batching.cpp) ---

  // Polls messages into the pending batch until it is due (see ConsumerOptions: batch_max_ms,
  // batch_ready_messages, batch_max_messages), Stop(), or nothing arrived while none pends.
  void Collect();

  // The next message of an owned or standby partition (or an error event), alternating between
  // the group's client and the standby client so that neither starves the other; waits up to
  // `timeout_ms` on the group's client when neither has one. Consumer thread.
  rd_kafka_message_t* PollNext(int timeout_ms);

  // A message of a current standby partition, or nullptr (messages of partitions that stopped
  // being standbys, still queued, are dropped: their new reader starts from stored offsets).
  rd_kafka_message_t* PollStandby();

  // On the consumer thread: `m` was taken from the broker (for Progress()).
  void MarkRead(const rd_kafka_message_t* m);

  // Hands the collected batch to the worker. It is checked and parsed here, overlapping the
  // worker's store of the previous batch, which is then waited for: batches are stored one at a
  // time, in consume order. False if the batch was not handed over (ingest must stop, or Stop()
  // interrupted an earlier batch); it then stays pending.
  bool Submit();

  // On the consumer thread: parses the collected messages into the pipeline's batch (rejected
  // ones stay with it, for the worker to dead-letter). Returns the seconds it took.
  double Parse();

  // The usage topic is neither compacted nor transactional, so consecutive messages of a
  // partition have consecutive offsets: a jump means events were trimmed from the log before we
  // read them. An owned partition goes on past the gap (reported loudly, and no longer served
  // in a group) or stops ingest (real cluster: returns false). A standby is dropped instead:
  // its messages from the gap on are discarded, so its stored offset stays before the gap and
  // a later takeover finds the log trimmed past it (never served), even after a restart.
  bool CheckContinuity(std::vector<rd_kafka_message_t*>& messages);

  // On the consumer thread, for a batch the worker finished: metrics, progress, commit; its
  // messages are destroyed once it is stored.
  void Account(const pipeline::EventBatch& b, const pipeline::BatchOutcome& done);

  // The pipeline's hooks: a batch is never half-applied or skipped; store and dead-letter
  // failures are retried until they succeed or Stop() is called.
  pipeline::PipelineHooks Hooks();

  // True while the worker is storing a batch.
  bool WorkerBusy() const { return pipeline->worker_busy(); }

  // Stores the collected batch and waits for it (and for the batch in flight before it).
  // False if something is left unstored (see Submit).
  bool ApplyPending() { return Submit() && Wait(); }

  // Waits for the batch in flight, if any, and accounts for it (Account). False if it (or an
  // earlier batch) was not stored.
  bool Wait() { return pipeline->Wait(account); }

  // An error event from a client: logged (end-of-partition events are not errors).
  void HandleError(rd_kafka_message_t* m);

  // --- Dead letters (dead_letters.cpp) ---

  // On the worker: sends the batch's refused lines to the dead-letter topic and waits for their
  // acknowledgement (they must be acknowledged before the offsets that skip them are stored),
  // retrying until it succeeds. False if Stop() came first.
  bool DeadLetter(const pipeline::EventBatch& b);

  // tally_events_rejected_total{reason}, registered on first use. Consumer thread.
  Counter* RejectedCounter(std::string_view reason);

  // --- Persisting and committing offsets (offsets.cpp) ---

  // Stores and persists everything consumed so far. False if something is left (see Submit).
  bool Flush() { return ApplyPending() && PersistNow(); }

  // Nothing pending: accounts for the batch in flight so that progress and metrics catch up,
  // persists what is staged once the stream has paused (or the interval is up), commits.
  void OnIdle();

  // Whether to persist the open state after staging the batch of `messages` (see
  // ConsumerOptions): accounts for them and, when due, starts counting afresh. Consumer thread.
  bool PersistDue(const std::vector<rd_kafka_message_t*>& messages);

  // The persist interval has passed since the first batch not persisted.
  bool IntervalDue(Clock::time_point now) const;

  // What PersistDue counts starts afresh (a persist covers everything handed over so far).
  void RestartPersistCount();

  // Persists the open state (retrying until it succeeds or Stop()), then marks every applied
  // offset persisted and commits. The worker must be idle. False if Stop() interrupted it.
  bool PersistNow();

  // Store::Persist until it succeeds; false if Stop() came first (nothing is lost: the open
  // state stays, and a restart consumes it again).
  bool PersistRetrying();

  // A write to the store failed: ingest pauses (the caller retries), not ready, counted, and
  // logged with what to do (at once, then once a minute while it lasts); the store is asked to
  // resume so that the next attempt can succeed once the cause is gone.
  void StoreFailed(const Error& error, std::string_view what);

  // A write to the store succeeded: ends a failure episode, if any.
  void StoreWrote();

  // Every applied offset is persisted now.
  void MarkPersisted();

  // Commits the stored offsets to the group when they moved and kCommitInterval has passed. On
  // the consumer thread, after a batch is accounted for and when idle.
  void MaybeCommit();

  // --- Standbys (standby.cpp) ---

  // On the consumer thread, between batches: applies a SetStandby request, if any.
  void MaybeStandby();

  // Asks MaybeStandby to look at the wanted set again (after the assignment changed).
  void RecheckStandby();

  // Stops reading `parts` (all standbys) on the standby client. Consumer thread.
  void DropStandby(const std::vector<int32_t>& parts);

  // Starts reading `parts` on the standby client from their stored offsets. Consumer thread.
  void AddStandby(const std::vector<int32_t>& parts);

  // --- Idle partitions (idle_partitions.cpp) ---

  // On the consumer thread, between batches: drops the views of partitions idle for longer
  // than options.drop_idle_after_ms (checked once a second).
  void MaybeDropIdle();

  // Drops the views and offsets of the idle partitions `due` (see MaybeDropIdle).
  void DropIdle(const std::vector<int32_t>& due);

  // --- Lag and cluster health (lag.cpp) ---

  // Reads the owned and standby partitions' high watermarks into progress and the lag gauges,
  // and the owned partitions' summed lag into `health`.
  void UpdateLag();

  // librdkafka's statistics, served by rd_kafka_consumer_poll on the consumer thread.
  static int StatsCb(rd_kafka_t*, char* json, size_t json_len, void* opaque);

  // --- Store switches (store_switch.cpp) ---

  // On the consumer thread: applies a pending SwitchStore request, if any.
  void MaybeSwitch();

  // Stores and persists what was consumed into the current store, then continues every
  // assigned partition (and, through MaybeStandby, every standby) from `to`'s offsets.
  Status DoSwitch(store::Store* to, store::Directory* directory);
};

}  // namespace tally::ingest
