#include "ingest/consumer.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <set>
#include <thread>

#include "aggregate/aggregator.h"
#include "ingest/internal/ingest_health.h"
#include "kafka/admin.h"
#include "kafka/producer.h"
#include "pipeline/batch_pipeline.h"
#include "store/store.h"

namespace tally::ingest {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMetadataTimeoutMs = 10'000;

// Kafka commits are informational (lag tools, and producers' hold-back on the embedded broker:
// kafka::RetentionGuard); the truth is in RocksDB. The embedded broker's producers wait for
// them, so there every stored batch is committed (an interval would hold a commit back until the
// next batch is stored, a few hundred ms under load).
constexpr auto kCommitInterval = std::chrono::milliseconds(1000);
constexpr auto kEmbeddedCommitInterval = std::chrono::milliseconds(0);
// The embedded broker keeps the newest 5 MiB of a partition: persist well before a partition's
// consumed-but-unpersisted messages could be trimmed (a crash would then lose them).
constexpr int64_t kEmbeddedPersistPartitionBytes = 1 << 20;
// A stream counts as paused (and what is staged gets persisted) after this long without a batch:
// a steady trickle arrives in bursts a few hundred ms apart, and persisting after each would
// cost as much as not staging at all.
constexpr auto kPersistWhenQuietFor = std::chrono::milliseconds(1000);
// How long a batch holding batch_ready_messages still collects: long enough to take in the rest
// of the fetch response it came in (librdkafka hands a response's messages over partition by
// partition), short enough to keep a busy stream's batches as small as the store's pace allows.
constexpr auto kReadyBatchMinAge = std::chrono::milliseconds(50);
// While a batch short of batch_ready_messages collects, the consumer thread takes what has
// arrived and then sleeps up to this long (never past the batch's due time) instead of waiting
// on librdkafka's queue, which wakes it for every fetch response: a trickle arrives in many small
// responses (one per producer request and partition), and each wake-up costs more than the
// messages it brings.
constexpr auto kCollectNap = std::chrono::milliseconds(50);
// How often ingest looks for idle partitions to drop (ConsumerOptions::drop_idle_after_ms).
constexpr auto kIdleCheckInterval = std::chrono::milliseconds(1000);
// How long stopping waits for the cluster to answer the consumer's close.
constexpr auto kCloseTimeout = std::chrono::seconds(10);
// A failed store write is retried after 100 ms, doubling up to this.
constexpr int kMaxStoreRetryMs = 5000;
// While store writes keep failing, the failure is logged again this often.
constexpr auto kStoreFailureLogInterval = std::chrono::seconds(60);

// The partitions of `list`, in its order.
std::vector<int32_t> PartitionsOf(const rd_kafka_topic_partition_list_t* list) {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(list->cnt));
  for (int i = 0; i < list->cnt; ++i) out.push_back(list->elems[i].partition);
  return out;
}

// "0,1,2" for logs.
std::string JoinPartitions(const std::vector<int32_t>& partitions) {
  std::string out;
  for (int32_t p : partitions) out += (out.empty() ? "" : ",") + std::to_string(p);
  return out;
}

}  // namespace

struct Consumer::Impl {
  ConsumerOptions options;
  store::Store* store = nullptr;
  rd_kafka_t* rk = nullptr;
  std::unique_ptr<kafka::Producer> dlq;
  std::unique_ptr<aggregate::Aggregator> aggregator;
  std::atomic<bool>* stop = nullptr;
  std::atomic<bool>* ready = nullptr;
  // Set while the store refuses writes (StoreFailed .. StoreWrote); Consumer::Ready() is false.
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

  // Closes and destroys a consumer client within kCloseTimeout. rd_kafka_consumer_close waits
  // for the cluster (the last rebalance, leaving the group) as long as it takes, and an
  // unreachable cluster must not keep tallyd from stopping: the offsets live in the store, so
  // nothing depends on the close. `self` serves the group client's rebalance events (null for
  // the standby client, which only assigns).
  static void Close(rd_kafka_t* client, Impl* self) {
    rd_kafka_queue_t* queue = rd_kafka_queue_new(client);
    bool closing = true;
    if (rd_kafka_error_t* e = rd_kafka_consumer_close_queue(client, queue)) {
      spdlog::warn("ingest: closing the Kafka consumer: {}", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      closing = false;
    }
    const auto deadline = Clock::now() + kCloseTimeout;
    while (closing && !rd_kafka_consumer_closed(client) && Clock::now() < deadline) {
      rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 100);
      if (ev == nullptr) continue;
      if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
        rd_kafka_topic_partition_list_t* parts = rd_kafka_event_topic_partition_list(ev);
        if (self != nullptr) {
          RebalanceCb(client, rd_kafka_event_error(ev), parts, self);
        } else if (rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
          rd_kafka_assign(client, nullptr);
        }
      }
      rd_kafka_event_destroy(ev);
    }
    const bool closed = closing && rd_kafka_consumer_closed(client);
    rd_kafka_queue_destroy(queue);
    if (!closed) {
      spdlog::warn(
          "ingest: the Kafka cluster did not answer the consumer's close within {} s; stopping "
          "without it (nothing is lost: the offsets are in the store)",
          std::chrono::duration_cast<std::chrono::seconds>(kCloseTimeout).count());
    }
    rd_kafka_destroy_flags(client, closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  }

  ~Impl() {
    // The worker uses a batch's messages, the aggregator and the producer: let it finish (its
    // result no longer matters), then drop what was not stored before closing, so that the
    // revocation on close has nothing to store.
    pipeline.reset();
    closing = true;
    for (auto* messages : {&pending_messages, &flying_messages}) {
      for (auto* m : *messages) rd_kafka_message_destroy(m);
      messages->clear();
    }
    if (rk) Close(rk, this);
    if (standby_rk) Close(standby_rk, nullptr);
  }

  bool IsStandby(int32_t p) const { return std::binary_search(standby.begin(), standby.end(), p); }
  bool IsAssigned(int32_t p) const {
    return std::find(assigned.begin(), assigned.end(), p) != assigned.end();
  }
  // The group's rebalancing is incremental (cooperative-sticky): assignments change by
  // incremental_assign / incremental_unassign only.
  bool Cooperative() const {
    return std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  }

  // The next message of an owned or standby partition (or an error event), alternating between
  // the group's client and the standby client so that neither starves the other; waits up to
  // `timeout_ms` on the group's client when neither has one. Consumer thread.
  rd_kafka_message_t* PollNext(int timeout_ms) {
    if (standby.empty()) return rd_kafka_consumer_poll(rk, timeout_ms);
    poll_standby_first = !poll_standby_first;
    rd_kafka_message_t* m = poll_standby_first ? PollStandby() : rd_kafka_consumer_poll(rk, 0);
    if (m == nullptr) m = poll_standby_first ? rd_kafka_consumer_poll(rk, 0) : PollStandby();
    if (m == nullptr) m = rd_kafka_consumer_poll(rk, timeout_ms);
    return m;
  }

  // A message of a current standby partition, or nullptr (messages of partitions that stopped
  // being standbys, still queued, are dropped: their new reader starts from stored offsets).
  rd_kafka_message_t* PollStandby() {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(standby_rk, 0);
    if (m != nullptr && !m->err && !IsStandby(m->partition)) {
      rd_kafka_message_destroy(m);
      return nullptr;
    }
    return m;
  }

  // On the consumer thread, between batches: applies a SetStandby request, if any.
  void MaybeStandby() {
    std::vector<int32_t> want;
    {
      std::lock_guard lock(standby_mu);
      if (!standby_dirty) return;
      standby_dirty = false;
      want = standby_wanted;
    }
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end()), want.end());
    std::erase_if(want, [&](int32_t p) { return IsAssigned(p); });
    std::vector<int32_t> drop, add;
    std::set_difference(standby.begin(), standby.end(), want.begin(), want.end(),
                        std::back_inserter(drop));
    std::set_difference(want.begin(), want.end(), standby.begin(), standby.end(),
                        std::back_inserter(add));
    if (!drop.empty()) DropStandby(drop);
    if (!add.empty()) AddStandby(add);
  }

  // Asks MaybeStandby to look at the wanted set again (after the assignment changed).
  void RecheckStandby() {
    std::lock_guard lock(standby_mu);
    standby_dirty = true;
  }

  // Stops reading `parts` (all standbys) on the standby client. Consumer thread.
  void DropStandby(const std::vector<int32_t>& parts) {
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(parts.size()));
    for (int32_t p : parts) rd_kafka_topic_partition_list_add(list, options.topic.c_str(), p);
    if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(standby_rk, list)) {
      spdlog::error("ingest: dropping standbys failed: {}", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(list);
    std::lock_guard lock(mu);
    for (int32_t p : parts) std::erase(standby, p);
    spdlog::info("ingest: no longer keeping standbys of partitions [{}]", JoinPartitions(parts));
  }

  // Starts reading `parts` on the standby client from their stored offsets. Consumer thread.
  void AddStandby(const std::vector<int32_t>& parts) {
    if (standby_rk == nullptr) {
      auto created = NewClient(/*for_standby=*/true);
      if (!created) {
        spdlog::error("ingest: cannot keep standbys: {}", created.error().message);
        return;
      }
      standby_rk = *created;
    }
    // Stored offsets must cover everything applied here (a partition may have been a standby
    // before, with staged state).
    if (!Flush()) return;
    auto stored = store->LoadOffsets();
    if (!stored) {
      spdlog::error("ingest: cannot keep standbys: reading stored offsets: {}",
                    stored.error().message);
      return;
    }
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(parts.size()));
    std::vector<int32_t> taken;
    for (int32_t p : parts) {
      int64_t lo = -1, hi = -1;
      rd_kafka_query_watermark_offsets(standby_rk, options.topic.c_str(), p, &lo, &hi,
                                       kMetadataTimeoutMs);
      const store::StoredOffset* found = nullptr;
      for (const auto& e : *stored) {
        if (e.topic == options.topic && e.partition == p) found = &e.offset;
      }
      int64_t start = 0;
      if (found && found->cluster_id == cluster_id && (hi < 0 || found->next_offset <= hi)) {
        start = found->next_offset;
      } else if (found && Policy() == NewLogPolicy::kStop) {
        spdlog::warn(
            "ingest: not keeping a standby of {}[{}]: its stored offset belongs to "
            "another log",
            options.topic, p);
        continue;
      }
      if (lo > start) {
        trimmed->Add();
        spdlog::error(
            "ingest: not keeping a standby of {}[{}]: the log starts at {}, and events "
            "{}..{} are not here",
            options.topic, p, lo, start, lo - 1);
        continue;
      }
      rd_kafka_topic_partition_list_add(list, options.topic.c_str(), p)->offset = start;
      std::lock_guard lock(mu);
      auto& pr = progress[p];
      pr.topic = options.topic;
      pr.partition = p;
      pr.next_offset = pr.persisted_offset = pr.read_offset = start;
      pr.high_watermark = hi;
      expected_next[p] = start;
      taken.push_back(p);
    }
    if (!taken.empty()) {
      rd_kafka_error_t* e = rd_kafka_incremental_assign(standby_rk, list);
      if (e != nullptr) {
        spdlog::error("ingest: keeping standbys failed: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        taken.clear();
      }
    }
    rd_kafka_topic_partition_list_destroy(list);
    if (taken.empty()) return;
    std::lock_guard lock(mu);
    standby.insert(standby.end(), taken.begin(), taken.end());
    std::sort(standby.begin(), standby.end());
    spdlog::info("ingest: keeping standbys of partitions [{}]", JoinPartitions(taken));
  }

  // On the consumer thread, between batches: drops the views of partitions idle for longer
  // than options.drop_idle_after_ms (checked once a second).
  void MaybeDropIdle() {
    if (options.drop_idle_after_ms < 0) return;
    const auto now = Clock::now();
    if (now - last_idle_check < kIdleCheckInterval) return;
    last_idle_check = now;
    if (!left_over_loaded && ready->load()) {
      auto stored = store->LoadOffsets();
      if (stored) {
        std::lock_guard lock(mu);
        for (const auto& e : *stored) {
          if (e.topic == options.topic && !progress.contains(e.partition)) {
            left_over.insert(e.partition);
          }
        }
        left_over_loaded = true;
      }
    }
    std::vector<int32_t> due;
    {
      std::lock_guard lock(mu);
      std::set<int32_t> seen = left_over;
      for (const auto& [p, pr] : progress) seen.insert(p);
      for (int32_t p : seen) {
        if (IsAssigned(p) || IsStandby(p)) {
          idle_since.erase(p);
          kept_idle.erase(p);
          continue;
        }
        const auto since = idle_since.try_emplace(p, now).first->second;
        if (now - since >= std::chrono::milliseconds(options.drop_idle_after_ms) &&
            !kept_idle.contains(p)) {
          due.push_back(p);
        }
      }
    }
    if (!due.empty()) DropIdle(due);
  }

  // Drops the views and offsets of the idle partitions `due` (see MaybeDropIdle).
  void DropIdle(const std::vector<int32_t>& due) {
    auto separable = store->PartitionsSeparable();
    if (!separable || !*separable) {
      if (!told_not_separable) {
        spdlog::warn(
            "ingest: keeping the views of partitions [{}] that this instance no longer owns or "
            "keeps as standbys: {}",
            JoinPartitions(due),
            !separable ? "reading the store failed: " + separable.error().message
                       : std::string("this data directory mixes every partition's state (it was "
                                     "created before state per partition, by a single instance, "
                                     "or files were replayed into it); start the instance on an "
                                     "empty --data-dir to keep state per partition"));
        told_not_separable = true;
      }
      kept_idle.insert(due.begin(), due.end());
      return;
    }
    // Everything consumed so far is stored first: the index then lists every workspace.
    if (!Flush()) return;
    auto index = store->LoadPartitionIndex(options.topic);
    if (!index) {
      spdlog::error("ingest: cannot drop idle partitions: {}", index.error().message);
      return;
    }
    std::set<std::string_view> kept;  // workspaces of partitions that stay
    for (const auto& [p, ws] : *index) {
      if (IsAssigned(p) || IsStandby(p)) kept.insert(ws);
    }
    for (int32_t p : due) {
      std::vector<std::string> workspaces;
      std::vector<store::Store::DroppedWorkspace> dropped;
      bool shared = false;
      for (const auto& [q, ws] : *index) {
        if (q != p) continue;
        if (kept.contains(ws)) shared = true;
        workspaces.push_back(ws);
        dropped.push_back({ws, std::string(aggregator->OrganizationOf(ws))});
      }
      if (shared) {
        spdlog::warn(
            "ingest: keeping the views of idle partition {}: a partition this instance keeps "
            "brought events of some of its workspaces too",
            p);
        kept_idle.insert(p);
        continue;
      }
      const auto t0 = Clock::now();
      auto rows = store->DropPartition(options.topic, p, dropped);
      if (!rows) {
        spdlog::error("ingest: dropping the views of partition {} failed: {}", p,
                      rows.error().message);
        return;
      }
      aggregator->ForgetPartition(options.topic, p, workspaces);
      {
        std::lock_guard lock(mu);
        progress.erase(p);
        expected_next.erase(p);
        gapped.erase(p);
        incomplete.erase(p);
        committed.erase(p);
        idle_since.erase(p);
        left_over.erase(p);
      }
      unpersisted_bytes.erase(p);
      partitions_dropped->Add();
      spdlog::info(
          "ingest: dropped the views of partition {} ({} workspaces, {} rows, in {:.0f} ms): "
          "neither owned nor kept as a standby here for {} ms; if it comes back it is consumed "
          "again from the log",
          p, workspaces.size(), *rows,
          std::chrono::duration<double, std::milli>(Clock::now() - t0).count(),
          options.drop_idle_after_ms);
    }
  }

  std::vector<rd_kafka_message_t*>& Pending() { return pending_messages; }

  void SetFatal(std::string message) {
    spdlog::critical("ingest: {}", message);
    std::lock_guard lock(mu);
    if (fatal.empty()) fatal = std::move(message);
    ready->store(false);
  }

  Counter* RejectedCounter(std::string_view reason) {
    auto it = rejected_by_reason.find(std::string(reason));
    if (it != rejected_by_reason.end()) return it->second;
    Counter* c = metrics->GetCounter("tally_events_rejected_total",
                                     "Messages rejected by validation and dead-lettered.",
                                     {{"reason", std::string(reason)}});
    rejected_by_reason.emplace(std::string(reason), c);
    return c;
  }

  NewLogPolicy Policy() const {
    if (options.new_log_policy != NewLogPolicy::kAuto) return options.new_log_policy;
    return embedded ? NewLogPolicy::kRestart : NewLogPolicy::kStop;
  }

  // Decides where each of `parts` starts (OnAssign), then assigns them, or nothing when that
  // found ingest must stop; ready once assigned. From the rebalance callback, or from
  // TakePartitions() when reading partitions directly; the cluster id is known by then.
  rd_kafka_resp_err_t Assign(rd_kafka_topic_partition_list_t* parts, bool incremental = false) {
    // A standby becomes owned: stop reading it as a standby first.
    std::vector<int32_t> warm = PartitionsOf(parts);
    std::erase_if(warm, [&](int32_t p) { return !IsStandby(p); });
    if (!warm.empty()) DropStandby(warm);
    // Start positions come from the stored offsets: store and persist what was consumed first
    // (a standby's staged batches, the batch in flight).
    Flush();
    OnAssign(parts, incremental);
    if (!warm.empty()) {
      taken_from_standby->Add(static_cast<double>(warm.size()));
      spdlog::info("ingest: partitions [{}] taken over from this instance's standbys",
                   JoinPartitions(warm));
    }
    bool fatal_now;
    {
      std::lock_guard lock(mu);
      fatal_now = !fatal.empty();
    }
    rd_kafka_resp_err_t err;
    if (!incremental) {
      err = rd_kafka_assign(rk, fatal_now ? nullptr : parts);
    } else if (fatal_now) {
      err = RD_KAFKA_RESP_ERR_NO_ERROR;  // take nothing more; ingest stops
    } else {
      rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, parts);
      err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
      if (e) {
        spdlog::error("ingest: taking partitions failed: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
    }
    if (!fatal_now && err == RD_KAFKA_RESP_ERR_NO_ERROR) ready->store(true);
    ReportOwnership(/*changed=*/true);
    return err;
  }

  // Decides where each newly assigned partition starts (see Assign). `incremental`: `parts` come
  // in addition to those assigned already (cooperative rebalancing), else they replace them.
  void OnAssign(rd_kafka_topic_partition_list_t* parts, bool incremental) {
    auto stored = store->LoadOffsets();
    if (!stored) {
      SetFatal("cannot read stored offsets: " + stored.error().message);
      return;
    }
    std::lock_guard lock(mu);
    if (!incremental) {
      assigned.clear();
      restore_target.clear();
    }
    for (int i = 0; i < parts->cnt; ++i) {
      rd_kafka_topic_partition_t& tp = parts->elems[i];
      int64_t lo = -1, hi = -1;
      rd_kafka_query_watermark_offsets(rk, tp.topic, tp.partition, &lo, &hi, kMetadataTimeoutMs);
      const store::StoredOffset* found = nullptr;
      for (const auto& e : *stored) {
        if (e.topic == tp.topic && e.partition == tp.partition) found = &e.offset;
      }
      int64_t start = RD_KAFKA_OFFSET_BEGINNING;
      std::string why;
      incomplete.erase(tp.partition);
      if (gapped.contains(tp.partition)) incomplete.insert(tp.partition);
      if (found && found->cluster_id == cluster_id && (hi < 0 || found->next_offset <= hi)) {
        start = found->next_offset;
        if (lo >= 0 && start < lo) {
          trimmed->Add();
          incomplete.insert(tp.partition);
          spdlog::error(
              "ingest: {}[{}] was trimmed: stored offset {} is below the log start {}; events "
              "{}..{} are gone from Kafka and are NOT in the views. Rebuild from a full source "
              "with `tally replay` if they matter.",
              tp.topic, tp.partition, start, lo, start, lo - 1);
          if (Policy() == NewLogPolicy::kStop) {
            fatal = "log trimmed past stored offsets on a real cluster";
            ready->store(false);
          }
        }
      } else if (found) {
        why = found->cluster_id != cluster_id
                  ? "stored offsets belong to cluster '" + found->cluster_id + "'"
                  : "stored offset " + std::to_string(found->next_offset) +
                        " is beyond the high watermark " + std::to_string(hi);
        if (Policy() == NewLogPolicy::kStop) {
          fatal = tp.topic + std::string("[") + std::to_string(tp.partition) +
                  "]: new log detected (" + why +
                  "). Refusing to guess: point tallyd at the original cluster, or rebuild the "
                  "views into a fresh --data-dir with `tally replay`.";
          ready->store(false);
          spdlog::critical("ingest: {}", fatal);
        } else {
          spdlog::warn(
              "ingest: {}[{}]: new log ({}); consuming it from the beginning, "
              "dedupe absorbs events already counted",
              tp.topic, tp.partition, why);
        }
      }
      if (!found && lo > 0) {
        trimmed->Add();
        incomplete.insert(tp.partition);
        spdlog::error(
            "ingest: {}[{}]: first start, but the log begins at offset {}: offsets 0..{} were "
            "trimmed or expired before tally read them and are NOT in the views (backfill them "
            "with `tally replay` if they matter)",
            tp.topic, tp.partition, lo, lo - 1);
      }
      tp.offset = start;
      auto& p = progress[tp.partition];
      p.topic = tp.topic;
      p.partition = tp.partition;
      p.next_offset = start >= 0 ? start : (lo >= 0 ? lo : 0);
      p.persisted_offset = p.next_offset;
      p.read_offset = p.next_offset;
      p.high_watermark = hi;
      expected_next[tp.partition] = p.next_offset;
      restore_target[tp.partition] = std::max<int64_t>(hi, 0);
      assigned.push_back(tp.partition);
    }
  }

  // librdkafka's statistics, served by rd_kafka_consumer_poll on the consumer thread.
  static int StatsCb(rd_kafka_t*, char* json, size_t json_len, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    std::vector<int32_t> owned;
    {
      std::lock_guard lock(self->mu);
      owned = self->assigned;
    }
    std::sort(owned.begin(), owned.end());
    self->health->OnStats(std::string_view(json, json_len), self->options.topic, owned,
                          Clock::now());
    return 0;  // librdkafka frees `json`
  }

  static void RebalanceCb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    const bool cooperative = self->Cooperative();
    if (self->closing) {
      // The consumer is being destroyed: nothing is left to store (the pipeline is gone) and
      // nobody is to be told; only let the partitions go.
      if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (!cooperative) {
          rd_kafka_assign(rk, nullptr);
        } else if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts)) {
          rd_kafka_error_destroy(e);
        }
      }
      return;
    }
    spdlog::info("ingest: the group {} partitions [{}] ({} rebalance)",
                 err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigns" : "revokes",
                 JoinPartitions(PartitionsOf(parts)), rd_kafka_rebalance_protocol(rk));
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      self->Assign(parts, cooperative);
      return;
    }
    // Store and persist what was consumed from the revoked partitions (the batch in flight,
    // then the one being collected) before letting them go.
    self->Flush();
    if (cooperative) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts)) {
        spdlog::error("ingest: giving partitions back failed: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
      std::lock_guard lock(self->mu);
      for (int i = 0; i < parts->cnt; ++i) {
        const int32_t p = parts->elems[i].partition;
        std::erase(self->assigned, p);
        self->restore_target.erase(p);
      }
      if (self->assigned.empty()) self->ready->store(false);
      self->RecheckStandby();
    } else {
      rd_kafka_assign(rk, nullptr);
      std::lock_guard lock(self->mu);
      self->assigned.clear();
      self->restore_target.clear();
      self->ready->store(false);
      self->RecheckStandby();
    }
    self->ReportOwnership(/*changed=*/true);
  }

  // Tells options.on_ownership what is assigned and serving when that changed (`changed`: the
  // assignment did). Consumer thread.
  void ReportOwnership(bool changed) {
    if (!options.on_ownership) return;
    std::vector<int32_t> owned, now_serving;
    {
      std::lock_guard lock(mu);
      owned = assigned;
      for (int32_t p : assigned) {
        auto it = progress.find(p);
        auto target = restore_target.find(p);
        if (it != progress.end() && target != restore_target.end() &&
            it->second.next_offset >= target->second && !incomplete.contains(p)) {
          now_serving.push_back(p);
        }
      }
    }
    std::sort(owned.begin(), owned.end());
    if (!changed && now_serving == serving) return;
    for (int32_t p : owned) {
      if (changed && incomplete.contains(p)) {
        spdlog::error(
            "ingest: partition {} is not served: events the log no longer holds are missing "
            "from this instance's views (seed its data directory from a snapshot of an instance "
            "that holds them, or keep the topic's whole history)",
            p);
      }
    }
    serving = now_serving;
    options.on_ownership(owned, serving);
  }

  // Hands the collected batch to the worker. It is checked and parsed here, overlapping the
  // worker's store of the previous batch, which is then waited for: batches are stored one at a
  // time, in consume order. False if the batch was not handed over (ingest must stop, or Stop()
  // interrupted an earlier batch); it then stays pending.
  bool Submit() {
    if (pending_messages.empty()) return true;
    if (stalled || !CheckContinuity(pending_messages)) return false;
    if (pending_messages.empty()) return true;  // only a dropped standby's messages
    const double parse_seconds = Parse();
    pipeline::EventBatch& b = pipeline->filling();
    {
      std::lock_guard lock(mu);
      b.cluster_id = cluster_id;
    }
    b.persist = PersistDue(pending_messages);
    if (!pipeline->Submit(account)) return false;
    flying_messages = std::move(pending_messages);
    pending_messages.clear();
    flying_parse_seconds = parse_seconds;
    last_submit = Clock::now();
    return true;
  }

  // Whether to persist the open state after staging the batch of `messages` (see
  // ConsumerOptions): accounts for them and, when due, starts counting afresh. Consumer thread.
  bool PersistDue(const std::vector<rd_kafka_message_t*>& messages) {
    if (!Staging()) return false;
    const auto now = Clock::now();
    if (!first_unpersisted) first_unpersisted = now;
    bool due = IntervalDue(now);
    for (rd_kafka_message_t* m : messages) {
      int64_t& bytes = unpersisted_bytes[m->partition];
      bytes += static_cast<int64_t>(m->len);
      if (embedded && bytes >= kEmbeddedPersistPartitionBytes) due = true;
    }
    if (!due && store->staged().bytes >= options.persist_max_bytes) due = true;
    if (due) RestartPersistCount();
    return due;
  }

  // The persist interval has passed since the first batch not persisted.
  bool IntervalDue(Clock::time_point now) const {
    return first_unpersisted &&
           now - *first_unpersisted >= std::chrono::milliseconds(options.persist_interval_ms);
  }

  // What PersistDue counts starts afresh (a persist covers everything handed over so far).
  void RestartPersistCount() {
    first_unpersisted.reset();
    unpersisted_bytes.clear();
  }

  // Persists the open state (retrying until it succeeds or Stop()), then marks every applied
  // offset persisted and commits. The worker must be idle. False if Stop() interrupted it.
  bool PersistNow() {
    if (!Staging() || store->staged().rows == 0) return true;
    if (!PersistRetrying()) return false;
    RestartPersistCount();
    MarkPersisted();
    MaybeCommit();
    return true;
  }

  // Store::Persist until it succeeds; false if Stop() came first (nothing is lost: the open
  // state stays, and a restart consumes it again).
  bool PersistRetrying() {
    int backoff_ms = 100;
    while (true) {
      const auto t0 = Clock::now();
      Status p = store->Persist();
      if (p) {
        persist_seconds->Observe(std::chrono::duration<double>(Clock::now() - t0).count());
        StoreWrote();
        return true;
      }
      StoreFailed(p.error(), "persisting staged batches");
      if (stop->load()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, kMaxStoreRetryMs);
    }
  }

  // A write to the store failed: ingest pauses (the caller retries), not ready, counted, and
  // logged with what to do (at once, then once a minute while it lasts); the store is asked to
  // resume so that the next attempt can succeed once the cause is gone.
  void StoreFailed(const Error& error, std::string_view what) {
    store_write_failures->Add();
    store_write_failing->Set(1);
    store_failing->store(true);
    {
      std::lock_guard lock(store_failure_mu);
      const auto now = Clock::now();
      const bool first = !store_failing_since;
      if (first) store_failing_since = now;
      if (first || now - store_failure_logged >= kStoreFailureLogInterval) {
        store_failure_logged = now;
        spdlog::error(
            "ingest: {} failed ({}); ingest is paused and not ready, and retries every few "
            "seconds with nothing lost{}",
            what, error.message,
            error.code == ErrorCode::kResourceExhausted ? ": the disk of " + store->path() +
                                                              " is full; free space or grow it and "
                                                              "ingest resumes by itself"
                                                        : std::string());
      }
    }
    if (Status r = store->Resume(); !r) {
      spdlog::debug("ingest: the store cannot resume writes yet: {}", r.error().message);
    }
  }

  // A write to the store succeeded: ends a failure episode, if any.
  void StoreWrote() {
    if (!store_failing->load()) return;
    std::lock_guard lock(store_failure_mu);
    const double seconds =
        store_failing_since
            ? std::chrono::duration<double>(Clock::now() - *store_failing_since).count()
            : 0;
    store_failing_since.reset();
    store_failing->store(false);
    store_write_failing->Set(0);
    spdlog::info("ingest: the store accepts writes again after {:.1f} s; ingest resumes", seconds);
  }

  // Every applied offset is persisted now.
  void MarkPersisted() {
    std::lock_guard lock(mu);
    for (auto& [p, pr] : progress) pr.persisted_offset = pr.next_offset;
  }

  // Stores and persists everything consumed so far. False if something is left (see Submit).
  bool Flush() { return ApplyPending() && PersistNow(); }

  // True while the worker is storing a batch.
  bool WorkerBusy() const { return pipeline->worker_busy(); }

  // Stores the collected batch and waits for it (and for the batch in flight before it).
  // False if something is left unstored (see Submit).
  bool ApplyPending() { return Submit() && Wait(); }

  // Waits for the batch in flight, if any, and accounts for it (Account). False if it (or an
  // earlier batch) was not stored.
  bool Wait() { return pipeline->Wait(account); }

  // On the consumer thread, for a batch the worker finished: metrics, progress, commit; its
  // messages are destroyed once it is stored.
  void Account(const pipeline::EventBatch& b, const pipeline::BatchOutcome& done) {
    if (done.late > 0) RejectedCounter("late_event")->Add(static_cast<double>(done.late));
    if (done.mismatched > 0) {
      RejectedCounter("organization_mismatch")->Add(static_cast<double>(done.mismatched));
    }
    if (!done.stored) {
      stalled = true;
      return;
    }
    // A stored batch's refused lines were all acknowledged by the dead-letter topic.
    if (!b.refused.empty()) dlq_produced->Add(static_cast<double>(b.refused.size()));
    consumed->Add(static_cast<double>(flying_messages.size()));
    applied->Add(static_cast<double>(done.stats.applied));
    duplicates->Add(static_cast<double>(done.stats.duplicates));
    batches->Add();
    apply_seconds->Observe(flying_parse_seconds + done.seconds);
    batch_messages->Observe(static_cast<double>(flying_messages.size()));
    {
      std::lock_guard lock(mu);
      for (const auto& o : b.offsets) {
        auto& pr = progress[o.partition];
        pr.topic = o.topic;
        pr.partition = o.partition;
        pr.next_offset = o.next_offset;
        if (!Staging()) pr.persisted_offset = o.next_offset;
      }
    }
    if (done.persisted) MarkPersisted();
    if (serving.size() != assigned.size()) ReportOwnership(/*changed=*/false);
    for (auto* m : flying_messages) rd_kafka_message_destroy(m);
    flying_messages.clear();
    MaybeCommit();
  }

  // On the consumer thread: `m` was taken from the broker (for Progress()).
  void MarkRead(const rd_kafka_message_t* m) {
    std::lock_guard lock(mu);
    auto it = progress.find(m->partition);
    if (it != progress.end()) {
      it->second.read_offset = std::max(it->second.read_offset, m->offset + 1);
    }
  }

  // On the consumer thread: parses the collected messages into the pipeline's batch (rejected
  // ones stay with it, for the worker to dead-letter). Returns the seconds it took.
  double Parse() {
    const auto t0 = Clock::now();
    for (rd_kafka_message_t* m : pending_messages) {
      const pipeline::LineOrigin origin{options.topic, m->partition, m->offset};
      const pipeline::RefusedLine* refused =
          pipeline->Add(std::string_view(static_cast<const char*>(m->payload), m->len), m, &origin);
      if (refused != nullptr) RejectedCounter(refused->category)->Add();
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

  // On the worker: sends the batch's refused lines to the dead-letter topic and waits for their
  // acknowledgement (they must be acknowledged before the offsets that skip them are stored),
  // retrying until it succeeds. False if Stop() came first.
  bool DeadLetter(const pipeline::EventBatch& b) {
    for (const pipeline::RefusedLine& r : b.refused) {
      const auto* m = static_cast<const rd_kafka_message_t*>(r.source);
      std::string_view payload(static_cast<const char*>(m->payload), m->len);
      std::string_view key(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
      std::vector<std::pair<std::string, std::string>> headers = {
          {"tally-dlq-reason", r.reason},
          {"tally-source-topic", options.topic},
          {"tally-source-partition", std::to_string(m->partition)},
          {"tally-source-offset", std::to_string(m->offset)},
      };
      while (true) {
        Status p = dlq->Produce(options.dlq_topic, key, payload, headers);
        if (p) break;
        spdlog::error("ingest: dead-letter produce failed ({}); retrying", p.error().message);
        if (stop->load()) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    while (true) {
      Status f = dlq->Flush(10'000);
      if (f) return true;
      spdlog::error("ingest: dead-letter flush failed ({}); retrying", f.error().message);
      if (stop->load()) return false;
    }
  }

  // The pipeline's hooks: a batch is never half-applied or skipped; store and dead-letter
  // failures are retried until they succeed or Stop() is called.
  pipeline::PipelineHooks Hooks() {
    pipeline::PipelineHooks hooks;
    hooks.deliver_refused = [this](const pipeline::EventBatch& b) { return DeadLetter(b); };
    // Before the batch's views can show a workspace, its scope is known (a group routes by it);
    // refused events (dead letters) are not reported, so they leave no trace in the routing.
    if (options.on_event_scope) {
      hooks.before_apply = [this](const pipeline::EventBatch& b) {
        for (size_t i = 0; i < b.events.size(); ++i) {
          const auto* m = static_cast<const rd_kafka_message_t*>(b.sources[i]);
          options.on_event_scope(m->partition, b.events[i]->workspace_id,
                                 b.events[i]->organization_id);
        }
      };
    }
    hooks.retry = [this](const Error& error, int attempt) {
      StoreFailed(error, "applying a batch");
      if (stop->load()) return false;
      const int backoff_ms = std::min(100 << std::min(attempt - 1, 6), kMaxStoreRetryMs);
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      return true;
    };
    // Persisting may be cut short by Stop(): the batch is staged (applied) all the same, and
    // what is not persisted is consumed again after a restart. A batch that dead-lettered
    // messages is persisted at once: a crash would otherwise send its dead letters again when
    // the batch is consumed again.
    hooks.after_store = [this](const pipeline::EventBatch& b, pipeline::BatchOutcome* out) {
      StoreWrote();  // the batch is stored: a write that failed before went through
      if (b.persist || !b.refused.empty()) out->persisted = PersistRetrying();
    };
    return hooks;
  }

  // The usage topic is neither compacted nor transactional, so consecutive messages of a
  // partition have consecutive offsets: a jump means events were trimmed from the log before we
  // read them. An owned partition goes on past the gap (reported loudly, and no longer served
  // in a group) or stops ingest (real cluster: returns false). A standby is dropped instead:
  // its messages from the gap on are discarded, so its stored offset stays before the gap and
  // a later takeover finds the log trimmed past it (never served), even after a restart.
  bool CheckContinuity(std::vector<rd_kafka_message_t*>& messages) {
    std::map<int32_t, int64_t> broken;  // standby partition -> offset of its first gap
    for (rd_kafka_message_t* m : messages) {
      if (broken.contains(m->partition)) continue;
      auto it = expected_next.find(m->partition);
      if (it != expected_next.end() && m->offset > it->second) {
        trimmed->Add();
        const bool standby_copy = IsStandby(m->partition);
        spdlog::error(
            "ingest: {}[{}]: offsets {}..{} were trimmed from the log before tally read them; "
            "{}",
            options.topic, m->partition, it->second, m->offset - 1,
            standby_copy ? "this instance stops keeping a standby of the partition"
                         : "those events are NOT in the views. Use more partitions or a real "
                           "Kafka cluster, and backfill them with `tally replay` if they matter.");
        if (standby_copy) {
          broken[m->partition] = m->offset;
          continue;
        }
        {
          std::lock_guard lock(mu);
          gapped.insert(m->partition);
          incomplete.insert(m->partition);
        }
        if (Policy() == NewLogPolicy::kStop) {
          SetFatal("events were trimmed from the log before they were read");
          return false;
        }
        // Stops being served at once (in a group: 503, not partial answers).
        ReportOwnership(/*changed=*/true);
      }
      expected_next[m->partition] = m->offset + 1;
    }
    if (!broken.empty()) {
      std::erase_if(messages, [&](rd_kafka_message_t* m) {
        auto it = broken.find(m->partition);
        if (it == broken.end() || m->offset < it->second) return false;
        rd_kafka_message_destroy(m);
        return true;
      });
      std::vector<int32_t> drop;
      for (const auto& [p, offset] : broken) drop.push_back(p);
      DropStandby(drop);
    }
    return true;
  }

  // Commits the stored offsets to the group when they moved and kCommitInterval has passed. On
  // the consumer thread, after a batch is accounted for and when idle.
  void MaybeCommit() {
    auto now = Clock::now();
    if (now - last_commit < (embedded ? kEmbeddedCommitInterval : kCommitInterval)) return;
    std::lock_guard lock(mu);
    rd_kafka_topic_partition_list_t* list = nullptr;
    for (const auto& [p, pr] : progress) {
      // Only the owner commits a partition (a standby's or an earlier owner's offsets may trail).
      if (!IsAssigned(p)) continue;
      auto it = committed.find(p);
      if (it != committed.end() && it->second == pr.persisted_offset) continue;
      if (list == nullptr) {
        list = rd_kafka_topic_partition_list_new(static_cast<int>(progress.size()));
      }
      rd_kafka_topic_partition_list_add(list, pr.topic.c_str(), p)->offset = pr.persisted_offset;
      committed[p] = pr.persisted_offset;
    }
    if (list == nullptr) return;
    last_commit = now;
    rd_kafka_commit(rk, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
  }

  void UpdateLag() {
    std::lock_guard lock(mu);
    int64_t owned_lag = -1;  // unknown until some owned partition's high watermark is
    for (const bool standbys : {false, true}) {
      for (int32_t p : standbys ? standby : assigned) {
        auto& pr = progress[p];
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(standbys ? standby_rk : rk, pr.topic.c_str(), p, &lo,
                                           &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            hi >= 0) {
          pr.high_watermark = hi;
        }
        if (pr.high_watermark < 0) continue;
        Gauge* lag =
            standbys
                ? metrics->GetGauge("tally_standby_partition_lag",
                                    "Messages in the log not yet applied to a standby copy.",
                                    {{"topic", pr.topic}, {"partition", std::to_string(p)}})
                : metrics->GetGauge("tally_partition_lag", "Messages in the log not yet applied.",
                                    {{"topic", pr.topic}, {"partition", std::to_string(p)}});
        const int64_t behind = std::max<int64_t>(0, pr.high_watermark - pr.next_offset);
        lag->Set(static_cast<double>(behind));
        if (!standbys) owned_lag = std::max<int64_t>(owned_lag, 0) + behind;
      }
    }
    health->OnLag(owned_lag);
  }

  // On the consumer thread: applies a pending SwitchStore request, if any.
  void MaybeSwitch() {
    std::unique_lock lk(switch_mu);
    if (!switch_store || switch_done) return;
    switch_result = DoSwitch(switch_store, switch_directory);
    switch_done = true;
    lk.unlock();
    switch_cv.notify_all();
  }

  Status DoSwitch(store::Store* to, store::Directory* directory) {
    // The batches in flight and in progress belong to the old store's offsets.
    if (!Flush()) return Fail(ErrorCode::kUnavailable, "stopping");
    if (Status s = to->BindRequestScopes(RequestScopes()); !s) return s;
    // Standbys continue from the new store's offsets too (MaybeStandby takes them again).
    if (!standby.empty()) {
      DropStandby(std::vector<int32_t>(standby));
      RecheckStandby();
    }
    auto agg = aggregate::Aggregator::Create(to);
    if (!agg) return std::unexpected(agg.error());
    (*agg)->set_stage(Staging());
    (*agg)->set_request_scope_by_workspace(options.request_scope_by_workspace);
    (*agg)->DeclareOrganizations(options.organizations);
    auto stored = to->LoadOffsets();
    if (!stored) return std::unexpected(stored.error());
    std::lock_guard lock(mu);
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(assigned.size()) + 1);
    for (int32_t p : assigned) {
      int64_t lo = -1, hi = -1;
      rd_kafka_query_watermark_offsets(rk, options.topic.c_str(), p, &lo, &hi, kMetadataTimeoutMs);
      int64_t start = lo >= 0 ? lo : 0;
      for (const auto& e : *stored) {
        if (e.topic == options.topic && e.partition == p && e.offset.cluster_id == cluster_id &&
            (hi < 0 || e.offset.next_offset <= hi)) {
          start = std::max(e.offset.next_offset, start);
        }
      }
      rd_kafka_topic_partition_list_add(list, options.topic.c_str(), p)->offset = start;
      auto& pr = progress[p];
      pr.next_offset = start;
      pr.persisted_offset = start;
      pr.read_offset = start;
      pr.high_watermark = hi;
      expected_next[p] = start;
    }
    // Re-assigning with new offsets drops what was fetched for the old positions (a cooperative
    // group member changes its assignment only incrementally: out, then back in).
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (Cooperative()) {
      rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, list);
      if (e == nullptr) e = rd_kafka_incremental_assign(rk, list);
      if (e != nullptr) {
        err = rd_kafka_error_code(e);
        rd_kafka_error_destroy(e);
      }
    } else {
      err = rd_kafka_assign(rk, list);
    }
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Fail(ErrorCode::kUnavailable,
                  std::string("re-assigning partitions failed: ") + rd_kafka_err2str(err));
    }
    aggregator = std::move(*agg);
    aggregator->set_directory(directory);
    pipeline->set_aggregator(aggregator.get());
    store = to;
    spdlog::info("ingest: switched to another store; continuing {} partition(s) from its offsets",
                 assigned.size());
    return Ok();
  }

  // On the consumer thread, before consuming: learns the cluster id (retrying until the broker
  // answers or Stop()), then reads every partition directly (Membership::kAuto on an embedded
  // broker) or subscribes to the group (which assigns through RebalanceCb). False on Stop();
  // an error when ingest cannot start.
  Result<bool> TakePartitions() {
    bool logged_wait = false;
    while (!stop->load()) {
      char* id = rd_kafka_clusterid(rk, 1000);
      if (id != nullptr) {
        std::lock_guard lock(mu);
        cluster_id = id;
        embedded = kafka::IsEmbeddedCluster(cluster_id);
        rd_kafka_mem_free(rk, id);
        break;
      }
      if (!logged_wait) {
        spdlog::warn("ingest: waiting for the Kafka cluster at {} to answer", options.brokers);
        logged_wait = true;
      }
    }
    if (stop->load()) return false;
    const bool direct = options.membership == Membership::kAuto && embedded;
    spdlog::info("ingest: cluster id {}{}", cluster_id,
                 direct ? " (embedded broker: reading every partition directly, without a "
                          "group join; offsets are still committed to group '" +
                              options.group + "')"
                        : "");
    if (!direct) {
      rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(topics, options.topic.c_str(), RD_KAFKA_PARTITION_UA);
      rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, topics);
      rd_kafka_topic_partition_list_destroy(topics);
      if (err) {
        return Fail(ErrorCode::kUnavailable, std::string("cannot subscribe to ") + options.topic +
                                                 ": " + rd_kafka_err2str(err));
      }
      return true;
    }
    logged_wait = false;
    while (!stop->load()) {
      auto count = kafka::PartitionCount(options.brokers, options.topic, kMetadataTimeoutMs);
      if (count) {
        rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(*count);
        for (int32_t p = 0; p < *count; ++p) {
          rd_kafka_topic_partition_list_add(parts, options.topic.c_str(), p);
        }
        rd_kafka_resp_err_t err = Assign(parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err) {
          return Fail(ErrorCode::kUnavailable, std::string("cannot assign the partitions of ") +
                                                   options.topic + ": " + rd_kafka_err2str(err));
        }
        return true;
      }
      if (!logged_wait) {
        spdlog::warn("ingest: waiting for topic {} to exist ({})", options.topic,
                     count.error().message);
        logged_wait = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return false;
  }

  // A librdkafka consumer polled with rd_kafka_consumer_poll: the group's client (with the
  // rebalance callback), or the standby client (assign-only: it never joins the group or
  // commits to it). kInvalidArgument for a setting librdkafka refuses.
  Result<rd_kafka_t*> NewClient(bool for_standby) {
    char errstr[512];
    std::map<std::string, std::string> settings = {
        {"bootstrap.servers", options.brokers},
        {"group.id", for_standby ? options.group + ".standby" : options.group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        // A trimmed log shows up as a gap in offsets (see CheckContinuity); resetting to the
        // earliest retained offset keeps the partition moving instead of wedging it in an error
        // state, and the gap is reported loudly.
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        // An idle partition costs one fetch round trip per fetch.wait.max.ms (every partition of
        // a broker in one request). A real broker answers as soon as data arrives, so this adds
        // no delay there; the embedded broker waits it out when a fetch finds nothing, so it
        // bounds the delay of the first event after a pause.
        {"fetch.wait.max.ms", "200"},
        {"queued.max.messages.kbytes", "262144"},
        {"client.id", for_standby ? "tallyd-standby" : "tallyd"},
    };
    if (!for_standby) {
      // Offsets live in RocksDB, so a restarted tallyd only waits for the group to notice the
      // dead member: keep that short.
      settings["session.timeout.ms"] = "6000";
      settings["heartbeat.interval.ms"] = "1000";
      // A rebalance moves only the partitions that change owner: the others keep being
      // consumed and served (a group of instances answers for them throughout).
      settings["partition.assignment.strategy"] = "cooperative-sticky";
      if (!options.instance_id.empty()) settings["group.instance.id"] = options.instance_id;
      // Which brokers the client reaches (IngestHealth): a few KB of JSON a second.
      settings["statistics.interval.ms"] = "1000";
    }
    for (const auto& [k, v] : options.extra_config) {
      if (for_standby && (k == "group.instance.id" || k == "group.id")) continue;
      settings[k] = v;
    }
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [k, v] : settings) {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) !=
          RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return Fail(ErrorCode::kInvalidArgument, "kafka consumer setting " + k + ": " + errstr);
      }
    }
    if (!for_standby) {
      rd_kafka_conf_set_rebalance_cb(conf, &Impl::RebalanceCb);
      rd_kafka_conf_set_stats_cb(conf, &Impl::StatsCb);
      rd_kafka_conf_set_opaque(conf, this);
    }
    rd_kafka_t* client = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!client) {
      rd_kafka_conf_destroy(conf);
      return Fail(ErrorCode::kInvalidArgument,
                  std::string("cannot create kafka consumer: ") + errstr);
    }
    rd_kafka_poll_set_consumer(client);
    return client;
  }

  void HandleError(rd_kafka_message_t* m) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    spdlog::warn("ingest: consumer: {}", rd_kafka_message_errstr(m));
  }
};

Consumer::Consumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->stop = &stop_;
  impl_->ready = &ready_;
  impl_->store_failing = &store_failing_;
}

Consumer::~Consumer() = default;

Result<std::unique_ptr<Consumer>> Consumer::Create(const ConsumerOptions& options,
                                                   store::Store* store, MetricsRegistry* metrics) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.dlq_topic.empty()) impl->options.dlq_topic = options.topic + ".dlq";
  impl->store = store;
  impl->metrics = metrics;
  impl->health = std::make_unique<internal::IngestHealth>(
      internal::IngestHealth::Options{
          .cut_off_after = std::chrono::milliseconds(options.cut_off_after_ms),
          .max_lag = options.max_lag},
      metrics);
  impl->consumed = metrics->GetCounter("tally_events_consumed_total",
                                       "Messages consumed from Kafka and stored (any outcome).");
  impl->applied =
      metrics->GetCounter("tally_events_applied_total", "Events folded into the views.");
  impl->duplicates = metrics->GetCounter(
      "tally_events_duplicate_total", "Events skipped as duplicates of an earlier (source, id).");
  impl->dlq_produced =
      metrics->GetCounter("tally_dlq_produced_total", "Messages written to the dead-letter topic.");
  impl->trimmed = metrics->GetCounter(
      "tally_log_trimmed_total", "Times a partition's log was found trimmed past our offsets.");
  impl->batches = metrics->GetCounter("tally_batches_applied_total", "Batches written.");
  impl->apply_seconds =
      metrics->GetHistogram("tally_batch_apply_seconds", "Time to parse, fold and write one batch.",
                            {}, Histogram::LatencyBuckets());
  impl->persist_seconds = metrics->GetHistogram(
      "tally_persist_seconds",
      "Time to persist the staged batches to disk, one observation per persist.", {},
      Histogram::LatencyBuckets());
  impl->store_write_failures = metrics->GetCounter(
      "tally_store_write_failures_total",
      "Writes to the store that failed (a full disk, I/O errors); ingest pauses and retries.");
  impl->store_write_failing = metrics->GetGauge(
      "tally_store_write_failing",
      "1 while writes to the store fail and ingest is paused (not ready), else 0.");
  impl->partitions_dropped = metrics->GetCounter(
      "tally_partitions_dropped_total",
      "Partitions whose views this instance dropped after they were neither owned nor kept as a "
      "standby here for --drop-idle-partitions-after.");
  impl->taken_from_standby = metrics->GetCounter(
      "tally_partitions_taken_from_standby_total",
      "Partitions the group assigned here while this instance kept a standby of them: taken "
      "over from the standby's state instead of the whole log.");
  impl->batch_messages = metrics->GetHistogram(
      "tally_batch_messages", "Messages per stored batch (batches grow while the store is busy).",
      {}, {1, 10, 100, 1000, 5000, 10000, 20000, 50000, 100000, 200000});

  if (Status s = store->BindRequestScopes(impl->RequestScopes()); !s) {
    return std::unexpected(s.error());
  }
  auto agg = aggregate::Aggregator::Create(store);
  if (!agg) return std::unexpected(agg.error());
  impl->aggregator = std::move(*agg);
  impl->aggregator->set_stage(impl->Staging());
  impl->aggregator->set_request_scope_by_workspace(options.request_scope_by_workspace);
  impl->aggregator->DeclareOrganizations(options.organizations);
  impl->aggregator->set_directory(options.directory);
  impl->pipeline = std::make_unique<pipeline::BatchPipeline>(
      impl->aggregator.get(), pipeline::PipelineOptions{.late_policy = options.late_policy,
                                                        .refuse_mismatches = true,
                                                        .event_limits = options.event_limits,
                                                        .hooks = impl->Hooks()});
  impl->account = [s = impl.get()](pipeline::EventBatch& b, const pipeline::BatchOutcome& done) {
    s->Account(b, done);
  };

  kafka::ProducerOptions dlq_options;
  dlq_options.brokers = options.brokers;
  dlq_options.start_on_first_use = true;  // most streams never dead-letter anything
  auto dlq = kafka::Producer::Create(dlq_options);
  if (!dlq) return std::unexpected(dlq.error());
  impl->dlq = std::move(*dlq);

  auto rk = impl->NewClient(/*for_standby=*/false);
  if (!rk) return std::unexpected(rk.error());
  impl->rk = *rk;
  return std::unique_ptr<Consumer>(new Consumer(std::move(impl)));
}

Status Consumer::SwitchStore(store::Store* store, store::Directory* directory,
                             std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  if (!s.running.load()) return Fail(ErrorCode::kFailedPrecondition, "ingest is not running");
  std::unique_lock lk(s.switch_mu);
  s.switch_store = store;
  s.switch_directory = directory;
  s.switch_done = false;
  if (!s.switch_cv.wait_for(lk, timeout, [&] { return s.switch_done; })) {
    s.switch_store = nullptr;  // withdrawn: the consumer thread will not pick it up any more
    return Fail(ErrorCode::kUnavailable, "ingest did not switch stores in time");
  }
  s.switch_store = nullptr;
  return s.switch_result;
}

Status Consumer::Run() {
  Impl& s = *impl_;
  s.running.store(true);
  struct Running {
    Impl& s;
    ~Running() { s.running.store(false); }
  } running{s};
  auto started = s.TakePartitions();
  if (!started) return std::unexpected(started.error());
  auto last_lag = Clock::now();
  while (!stop_.load()) {
    s.MaybeSwitch();
    s.MaybeStandby();
    s.MaybeDropIdle();
    bool fatal;
    {
      std::lock_guard lock(s.mu);
      fatal = !s.fatal.empty();
    }
    if (fatal) {
      s.Wait();  // the batch in flight was consumed before the fatal condition: store it
      std::lock_guard lock(s.mu);
      return Fail(ErrorCode::kFailedPrecondition, s.fatal);
    }
    // A batch is handed over batch_max_ms after its first message, or once it holds
    // batch_ready_messages, or when full; while the worker is still storing the previous batch
    // it keeps growing instead (Submit would only wait), so batches match the store's pace
    // under load without delaying a quiet stream beyond the window.
    auto deadline = Clock::time_point::max();
    auto batch_started = Clock::now();  // when the batch's first message was taken
    int timeout_ms = 100;
    bool nap = false;  // collecting a batch that is not ready: kCollectNap
    // Pending() is re-read each time: a revocation inside poll stores the batch and flips it.
    while (static_cast<int>(s.Pending().size()) < s.options.batch_max_messages && !stop_.load()) {
      rd_kafka_message_t* m = s.PollNext(s.Pending().empty() ? 100 : (nap ? 0 : timeout_ms));
      if (m) {
        if (m->err) {
          s.HandleError(m);
          rd_kafka_message_destroy(m);
        } else {
          if (s.Pending().empty()) {
            batch_started = Clock::now();
            deadline = batch_started + std::chrono::milliseconds(s.options.batch_max_ms);
            timeout_ms = s.options.batch_max_ms;
          }
          s.Pending().push_back(m);
          s.MarkRead(m);
        }
      }
      if (s.Pending().empty()) {
        if (!m) break;  // idle: go round to check stop/fatal
        continue;
      }
      const auto now = Clock::now();
      const bool ready = static_cast<int>(s.Pending().size()) >= s.options.batch_ready_messages;
      // A ready batch still waits kReadyBatchMinAge: a fetch delivers a burst of messages over
      // a few milliseconds, and cutting it at batch_ready_messages would only make more,
      // smaller batches.
      const auto due = ready ? std::min(deadline, batch_started + kReadyBatchMinAge) : deadline;
      nap = false;
      if (now < due && !ready) {
        nap = true;
        if (!m) std::this_thread::sleep_for(std::min<Clock::duration>(due - now, kCollectNap));
      } else if (now < due) {
        timeout_ms =
            static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(due - now).count());
      } else if (s.WorkerBusy()) {
        timeout_ms = 5;
      } else {
        break;
      }
    }
    if (!s.Pending().empty()) {
      s.Submit();
    } else {
      // Idle: account for the batch in flight so that progress and metrics catch up, and
      // persist what is staged once the stream has paused (or the interval is up).
      s.Wait();
      const auto now = Clock::now();
      if (now - s.last_submit >= kPersistWhenQuietFor || s.IntervalDue(now)) {
        s.PersistNow();
      }
      s.MaybeCommit();
    }
    if (Clock::now() - last_lag > std::chrono::milliseconds(500)) {
      s.UpdateLag();
      last_lag = Clock::now();
    }
  }
  s.Flush();
  s.Wait();  // in case the pending batch could not be handed over
  return Ok();
}

void Consumer::SetStandby(std::vector<int32_t> partitions) {
  std::lock_guard lock(impl_->standby_mu);
  impl_->standby_wanted = std::move(partitions);
  impl_->standby_dirty = true;
}

bool Consumer::Ready() const {
  return ready_.load() && !store_failing_.load() && impl_->health->Healthy();
}

std::string Consumer::NotReadyReason() const {
  if (store_failing_.load()) return "the store refuses writes (a full disk?); ingest is paused";
  if (!ready_.load()) return "ingest has not taken its partitions yet";
  return impl_->health->Reason();
}

std::vector<PartitionProgress> Consumer::Progress() const {
  std::lock_guard lock(impl_->mu);
  std::vector<PartitionProgress> out;
  for (const auto& [p, pr] : impl_->progress) {
    out.push_back(pr);
    out.back().role = impl_->IsAssigned(p)  ? PartitionRole::kOwned
                      : impl_->IsStandby(p) ? PartitionRole::kStandby
                                            : PartitionRole::kIdle;
    out.back().read_offset = std::max(pr.read_offset, pr.next_offset);
  }
  return out;
}

std::string Consumer::cluster_id() const {
  std::lock_guard lock(impl_->mu);
  return impl_->cluster_id;
}

}  // namespace tally::ingest
