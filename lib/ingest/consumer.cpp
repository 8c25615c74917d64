#include "ingest/consumer.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "aggregate/aggregator.h"
#include "common/calendar.h"
#include "event/event_parser.h"
#include "kafka/producer.h"
#include "store/store.h"

namespace tally::ingest {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMetadataTimeoutMs = 10'000;

bool IsMockCluster(const std::string& cluster_id) {
  // librdkafka's mock cluster names itself "mockCluster<hex>" (rdkafka_mock.c).
  return cluster_id.rfind("mockCluster", 0) == 0;
}

}  // namespace

struct Consumer::Impl {
  ConsumerOptions options;
  store::Store* store = nullptr;
  rd_kafka_t* rk = nullptr;
  std::unique_ptr<kafka::Producer> dlq;
  std::unique_ptr<aggregate::Aggregator> aggregator;
  event::EventParser parser;
  std::atomic<bool>* stop = nullptr;
  std::atomic<bool>* ready = nullptr;

  // Metrics.
  MetricsRegistry* metrics = nullptr;
  Counter* consumed = nullptr;
  Counter* applied = nullptr;
  Counter* duplicates = nullptr;
  Counter* dlq_produced = nullptr;
  Counter* trimmed = nullptr;
  Counter* batches = nullptr;
  Histogram* apply_seconds = nullptr;
  std::map<std::string, Counter*> rejected_by_reason;

  // Offsets: the next offset per partition of the topic, as stored in RocksDB.
  mutable std::mutex mu;
  std::string cluster_id;
  std::map<int32_t, PartitionProgress> progress;
  std::vector<int32_t> assigned;
  std::string fatal;  // non-empty: ingest must stop with this message

  // A requested store switch (SwitchStore), served by the consumer thread between batches.
  std::mutex switch_mu;
  std::condition_variable switch_cv;
  store::Store* switch_store = nullptr;
  store::Directory* switch_directory = nullptr;
  bool switch_done = false;
  Status switch_result = Ok();
  std::atomic<bool> running{false};

  // The batch being collected.
  std::vector<rd_kafka_message_t*> pending;
  std::vector<event::UsageEvent> pool;
  std::vector<const event::UsageEvent*> ptrs;
  std::vector<uint8_t> late;
  Clock::time_point last_commit{};

  ~Impl() {
    for (auto* m : pending) rd_kafka_message_destroy(m);
    if (rk) {
      rd_kafka_consumer_close(rk);
      rd_kafka_destroy(rk);
    }
  }

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
    return IsMockCluster(cluster_id) ? NewLogPolicy::kRestart : NewLogPolicy::kStop;
  }

  // Decides where each newly assigned partition starts. Called from the rebalance callback.
  void OnAssign(rd_kafka_topic_partition_list_t* parts) {
    if (cluster_id.empty()) {
      char* id = rd_kafka_clusterid(rk, kMetadataTimeoutMs);
      if (id) {
        std::lock_guard lock(mu);
        cluster_id = id;
        rd_kafka_mem_free(rk, id);
      }
      spdlog::info("ingest: cluster id {}", cluster_id.empty() ? "(unknown)" : cluster_id);
    }
    auto stored = store->LoadOffsets();
    if (!stored) {
      SetFatal("cannot read stored offsets: " + stored.error().message);
      return;
    }
    std::lock_guard lock(mu);
    assigned.clear();
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
      if (found && found->cluster_id == cluster_id && (hi < 0 || found->next_offset <= hi)) {
        start = found->next_offset;
        if (lo >= 0 && start < lo) {
          trimmed->Add();
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
      p.high_watermark = hi;
      assigned.push_back(tp.partition);
    }
  }

  static void RebalanceCb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      self->OnAssign(parts);
      bool fatal;
      {
        std::lock_guard lock(self->mu);
        fatal = !self->fatal.empty();
      }
      rd_kafka_assign(rk, fatal ? nullptr : parts);
      if (!fatal) self->ready->store(true);
    } else {
      // Store what was consumed from the revoked partitions before letting them go.
      self->ApplyPending();
      rd_kafka_assign(rk, nullptr);
      std::lock_guard lock(self->mu);
      self->assigned.clear();
      self->ready->store(false);
    }
  }

  // Parses, dead-letters and applies the pending batch. Retries store and dead-letter failures
  // until they succeed or Stop() is called: a batch is never half-applied or skipped.
  void ApplyPending() {
    if (pending.empty()) return;
    const auto t0 = Clock::now();
    if (pool.size() < pending.size()) pool.resize(pending.size());
    ptrs.clear();
    std::map<int32_t, int64_t> next;
    size_t rejected = 0;
    const std::string& topic = options.topic;
    if (!CheckContinuity()) return;
    std::vector<rd_kafka_message_t*> parsed_from;  // the message of each entry of ptrs
    std::vector<std::pair<rd_kafka_message_t*, std::string>> refused;
    for (rd_kafka_message_t* m : pending) {
      next[m->partition] = m->offset + 1;
      std::string_view payload(static_cast<const char*>(m->payload), m->len);
      event::UsageEvent* e = &pool[ptrs.size()];
      Status s = parser.ParseInto(payload, e);
      if (s) {
        ptrs.push_back(e);
        parsed_from.push_back(m);
        continue;
      }
      RejectedCounter(event::ReasonCategory(s.error()))->Add();
      refused.emplace_back(m, s.error().message);
    }
    if (options.late_policy == aggregate::LatePolicy::kReject && !ptrs.empty()) {
      aggregator->MarkLate(ptrs, &late);
      size_t w = 0;
      for (size_t i = 0; i < ptrs.size(); ++i) {
        if (!late[i]) {
          ptrs[w] = ptrs[i];
          parsed_from[w++] = parsed_from[i];
          continue;
        }
        RejectedCounter("late_event")->Add();
        refused.emplace_back(parsed_from[i],
                             "late event: its time " + FormatRfc3339Seconds(ptrs[i]->time_ms) +
                                 " is older than the dedupe window before the newest event "
                                 "seen (--late-events reject)");
      }
      ptrs.resize(w);
    }
    for (auto& [m, reason] : refused) {
      ++rejected;
      std::string_view payload(static_cast<const char*>(m->payload), m->len);
      std::string_view key(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
      std::vector<std::pair<std::string, std::string>> headers = {
          {"tally-dlq-reason", reason},
          {"tally-source-topic", topic},
          {"tally-source-partition", std::to_string(m->partition)},
          {"tally-source-offset", std::to_string(m->offset)},
      };
      while (true) {
        Status p = dlq->Produce(options.dlq_topic, key, payload, headers);
        if (p) break;
        spdlog::error("ingest: dead-letter produce failed ({}); retrying", p.error().message);
        if (stop->load()) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    if (rejected) {
      // Dead letters must be acknowledged before the offsets that skip them are stored.
      while (true) {
        Status f = dlq->Flush(10'000);
        if (f) break;
        spdlog::error("ingest: dead-letter flush failed ({}); retrying", f.error().message);
        if (stop->load()) return;
      }
      dlq_produced->Add(static_cast<double>(rejected));
    }
    std::vector<aggregate::PartitionOffset> offsets;
    for (auto [p, o] : next) offsets.push_back({topic, p, o});
    std::string cid;
    {
      std::lock_guard lock(mu);
      cid = cluster_id;
    }
    Result<aggregate::ApplyStats> stats;
    int backoff_ms = 100;
    while (true) {
      stats = aggregator->Apply(ptrs, offsets, cid);
      if (stats) break;
      spdlog::error("ingest: applying a batch failed ({}); retrying", stats.error().message);
      if (stop->load()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, 5000);
    }
    consumed->Add(static_cast<double>(pending.size()));
    applied->Add(static_cast<double>(stats->applied));
    duplicates->Add(static_cast<double>(stats->duplicates));
    batches->Add();
    apply_seconds->Observe(std::chrono::duration<double>(Clock::now() - t0).count());
    {
      std::lock_guard lock(mu);
      for (auto [p, o] : next) {
        auto& pr = progress[p];
        pr.topic = topic;
        pr.partition = p;
        pr.next_offset = o;
      }
    }
    for (auto* m : pending) rd_kafka_message_destroy(m);
    pending.clear();
    MaybeCommit(offsets);
  }

  // The usage topic is neither compacted nor transactional, so consecutive messages of a
  // partition have consecutive offsets: a jump means events were trimmed from the log before we
  // read them. Returns false if ingest must stop (real cluster).
  bool CheckContinuity() {
    std::map<int32_t, int64_t> expected;
    {
      std::lock_guard lock(mu);
      for (const auto& [p, pr] : progress) expected[p] = pr.next_offset;
    }
    for (rd_kafka_message_t* m : pending) {
      auto it = expected.find(m->partition);
      if (it != expected.end() && m->offset > it->second) {
        trimmed->Add();
        spdlog::error(
            "ingest: {}[{}]: offsets {}..{} were trimmed from the log before tally read them; "
            "those events are NOT in the views. Use more partitions or a real Kafka cluster, and "
            "backfill them with `tally replay` if they matter.",
            options.topic, m->partition, it->second, m->offset - 1);
        if (Policy() == NewLogPolicy::kStop) {
          SetFatal("events were trimmed from the log before they were read");
          return false;
        }
      }
      expected[m->partition] = m->offset + 1;
    }
    return true;
  }

  // Kafka commits are informational (lag tools); the truth is in RocksDB.
  void MaybeCommit(const std::vector<aggregate::PartitionOffset>& offsets) {
    auto now = Clock::now();
    if (now - last_commit < std::chrono::seconds(1)) return;
    last_commit = now;
    std::lock_guard lock(mu);
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(progress.size()));
    for (const auto& [p, pr] : progress) {
      rd_kafka_topic_partition_list_add(list, pr.topic.c_str(), p)->offset = pr.next_offset;
    }
    rd_kafka_commit(rk, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
  }

  void UpdateLag() {
    std::lock_guard lock(mu);
    for (int32_t p : assigned) {
      auto& pr = progress[p];
      int64_t lo, hi;
      if (rd_kafka_get_watermark_offsets(rk, pr.topic.c_str(), p, &lo, &hi) ==
              RD_KAFKA_RESP_ERR_NO_ERROR &&
          hi >= 0) {
        pr.high_watermark = hi;
      }
      if (pr.high_watermark >= 0) {
        metrics
            ->GetGauge("tally_partition_lag", "Messages in the log not yet applied.",
                       {{"topic", pr.topic}, {"partition", std::to_string(p)}})
            ->Set(static_cast<double>(std::max<int64_t>(0, pr.high_watermark - pr.next_offset)));
      }
    }
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
    ApplyPending();  // the batch in progress belongs to the old store's offsets
    if (!pending.empty()) return Fail(ErrorCode::kUnavailable, "stopping");
    auto agg = aggregate::Aggregator::Create(to);
    if (!agg) return std::unexpected(agg.error());
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
      pr.high_watermark = hi;
    }
    // Re-assigning with new offsets drops what was fetched for the old positions.
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Fail(ErrorCode::kUnavailable,
                  std::string("re-assigning partitions failed: ") + rd_kafka_err2str(err));
    }
    aggregator = std::move(*agg);
    aggregator->set_directory(directory);
    store = to;
    spdlog::info("ingest: switched to another store; continuing {} partition(s) from its offsets",
                 assigned.size());
    return Ok();
  }

  void HandleError(rd_kafka_message_t* m) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    spdlog::warn("ingest: consumer: {}", rd_kafka_message_errstr(m));
  }
};

Consumer::Consumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->stop = &stop_;
  impl_->ready = &ready_;
}

Consumer::~Consumer() = default;

Result<std::unique_ptr<Consumer>> Consumer::Create(const ConsumerOptions& options,
                                                   store::Store* store, MetricsRegistry* metrics) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.dlq_topic.empty()) impl->options.dlq_topic = options.topic + ".dlq";
  impl->store = store;
  impl->metrics = metrics;
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

  auto agg = aggregate::Aggregator::Create(store);
  if (!agg) return std::unexpected(agg.error());
  impl->aggregator = std::move(*agg);
  impl->aggregator->set_directory(options.directory);

  kafka::ProducerOptions dlq_options;
  dlq_options.brokers = options.brokers;
  auto dlq = kafka::Producer::Create(dlq_options);
  if (!dlq) return std::unexpected(dlq.error());
  impl->dlq = std::move(*dlq);

  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::map<std::string, std::string> settings = {
      {"bootstrap.servers", options.brokers},
      {"group.id", options.group},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // A trimmed log shows up as a gap in offsets (see CheckContinuity); resetting to the
      // earliest retained offset keeps the partition moving instead of wedging it in an error
      // state, and the gap is reported loudly.
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      {"fetch.wait.max.ms", "50"},
      {"queued.max.messages.kbytes", "262144"},
      {"client.id", "tallyd"},
      // Offsets live in RocksDB, so a restarted tallyd only waits for the group to notice the
      // dead member: keep that short.
      {"session.timeout.ms", "6000"},
      {"heartbeat.interval.ms", "1000"},
  };
  if (!options.instance_id.empty()) settings["group.instance.id"] = options.instance_id;
  for (const auto& [k, v] : options.extra_config) settings[k] = v;
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Fail(ErrorCode::kInvalidArgument, "kafka consumer setting " + k + ": " + errstr);
    }
  }
  rd_kafka_conf_set_rebalance_cb(conf, &Impl::RebalanceCb);
  rd_kafka_conf_set_opaque(conf, impl.get());
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return Fail(ErrorCode::kInvalidArgument,
                std::string("cannot create kafka consumer: ") + errstr);
  }
  impl->rk = rk;
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, options.topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err) {
    return Fail(ErrorCode::kUnavailable,
                std::string("cannot subscribe to ") + options.topic + ": " + rd_kafka_err2str(err));
  }
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
  auto last_lag = Clock::now();
  while (!stop_.load()) {
    s.MaybeSwitch();
    {
      std::lock_guard lock(s.mu);
      if (!s.fatal.empty()) return Fail(ErrorCode::kFailedPrecondition, s.fatal);
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(s.options.batch_max_ms);
    while (static_cast<int>(s.pending.size()) < s.options.batch_max_messages && !stop_.load()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      int timeout = s.pending.empty() ? 100 : static_cast<int>(std::max<int64_t>(0, left.count()));
      rd_kafka_message_t* m = rd_kafka_consumer_poll(s.rk, timeout);
      if (m) {
        if (m->err) {
          s.HandleError(m);
          rd_kafka_message_destroy(m);
        } else {
          s.pending.push_back(m);
        }
      }
      if (!s.pending.empty() && Clock::now() >= deadline) break;
      if (s.pending.empty() && !m) break;  // idle: go round to check stop/fatal
    }
    s.ApplyPending();
    if (Clock::now() - last_lag > std::chrono::milliseconds(500)) {
      s.UpdateLag();
      last_lag = Clock::now();
    }
  }
  s.ApplyPending();
  return Ok();
}

std::vector<PartitionProgress> Consumer::Progress() const {
  std::lock_guard lock(impl_->mu);
  std::vector<PartitionProgress> out;
  for (const auto& [p, pr] : impl_->progress) out.push_back(pr);
  return out;
}

std::string Consumer::cluster_id() const {
  std::lock_guard lock(impl_->mu);
  return impl_->cluster_id;
}

}  // namespace tally::ingest
