// Batches: polling messages into the batch being collected until it is due, checking offsets
// for gaps, parsing and handing it to the pipeline's worker, and accounting for it once stored.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "ingest/internal/consumer_impl.h"

namespace tally::ingest {
namespace {

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
// How long a poll waits while no batch is being collected: short enough that Stop(), a store
// switch or a standby change is noticed soon, long enough not to spin on an idle stream.
constexpr int kIdlePollMs = 100;
// A due batch waits in polls this short while the worker still stores the previous one: it
// takes in what arrives meanwhile and is handed over within a few ms of the worker's end.
constexpr int kWorkerBusyPollMs = 5;
// A store retry's backoff doubles at most this often (kFirstStoreRetryMs << 6 is past
// kMaxStoreRetryMs already; shifting further could only overflow).
constexpr int kMaxRetryDoublings = 6;

}  // namespace

void Consumer::Impl::Collect() {
  // A batch is handed over batch_max_ms after its first message, or once it holds
  // batch_ready_messages, or when full; while the worker is still storing the previous batch
  // it keeps growing instead (Submit would only wait), so batches match the store's pace
  // under load without delaying a quiet stream beyond the window.
  auto deadline = Clock::time_point::max();
  auto batch_started = Clock::now();  // when the batch's first message was taken
  int timeout_ms = kIdlePollMs;
  bool nap = false;  // collecting a batch that is not ready: kCollectNap
  // Pending() is re-read each time: a revocation inside poll stores the batch and flips it.
  while (static_cast<int>(Pending().size()) < options.batch_max_messages && !stop->load()) {
    rd_kafka_message_t* m = PollNext(Pending().empty() ? kIdlePollMs : (nap ? 0 : timeout_ms));
    if (m) {
      if (m->err) {
        HandleError(m);
        rd_kafka_message_destroy(m);
      } else {
        if (Pending().empty()) {
          batch_started = Clock::now();
          deadline = batch_started + std::chrono::milliseconds(options.batch_max_ms);
          timeout_ms = options.batch_max_ms;
        }
        Pending().push_back(m);
        MarkRead(m);
      }
    }
    if (Pending().empty()) {
      if (!m) break;  // idle: go round to check stop/fatal
      continue;
    }
    const auto now = Clock::now();
    const bool ready = static_cast<int>(Pending().size()) >= options.batch_ready_messages;
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
    } else if (WorkerBusy()) {
      timeout_ms = kWorkerBusyPollMs;
    } else {
      break;
    }
  }
}

rd_kafka_message_t* Consumer::Impl::PollNext(int timeout_ms) {
  if (standby.empty()) return rd_kafka_consumer_poll(rk, timeout_ms);
  poll_standby_first = !poll_standby_first;
  rd_kafka_message_t* m = poll_standby_first ? PollStandby() : rd_kafka_consumer_poll(rk, 0);
  if (m == nullptr) m = poll_standby_first ? rd_kafka_consumer_poll(rk, 0) : PollStandby();
  if (m == nullptr) m = rd_kafka_consumer_poll(rk, timeout_ms);
  return m;
}

rd_kafka_message_t* Consumer::Impl::PollStandby() {
  rd_kafka_message_t* m = rd_kafka_consumer_poll(standby_rk, 0);
  if (m != nullptr && !m->err && !IsStandby(m->partition)) {
    rd_kafka_message_destroy(m);
    return nullptr;
  }
  return m;
}

void Consumer::Impl::HandleError(rd_kafka_message_t* m) {
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
  spdlog::warn("ingest: consumer: {}", rd_kafka_message_errstr(m));
}

void Consumer::Impl::MarkRead(const rd_kafka_message_t* m) {
  std::lock_guard lock(mu);
  auto it = progress.find(m->partition);
  if (it != progress.end()) {
    it->second.read_offset = std::max(it->second.read_offset, m->offset + 1);
  }
}

bool Consumer::Impl::Submit() {
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

double Consumer::Impl::Parse() {
  const auto t0 = Clock::now();
  for (rd_kafka_message_t* m : pending_messages) {
    const pipeline::LineOrigin origin{options.topic, m->partition, m->offset};
    const pipeline::RefusedLine* refused =
        pipeline->Add(std::string_view(static_cast<const char*>(m->payload), m->len), m, &origin);
    if (refused != nullptr) RejectedCounter(refused->category)->Add();
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool Consumer::Impl::CheckContinuity(std::vector<rd_kafka_message_t*>& messages) {
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

void Consumer::Impl::Account(const pipeline::EventBatch& b, const pipeline::BatchOutcome& done) {
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

pipeline::PipelineHooks Consumer::Impl::Hooks() {
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
    const int backoff_ms =
        std::min(internal::kFirstStoreRetryMs << std::min(attempt - 1, kMaxRetryDoublings),
                 internal::kMaxStoreRetryMs);
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

}  // namespace tally::ingest
