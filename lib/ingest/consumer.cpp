#include "ingest/consumer.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <vector>

#include "aggregate/aggregator.h"
#include "ingest/internal/consumer_impl.h"
#include "ingest/internal/ingest_health.h"
#include "kafka/producer.h"
#include "pipeline/batch_pipeline.h"
#include "store/store.h"

// The consumer's steps live in internal/ (see internal/consumer_impl.h for which file holds
// which); this file holds the public methods and the consume loop.

namespace tally::ingest {
namespace {

using Clock = std::chrono::steady_clock;

// The lag gauges and the lagging check (ConsumerOptions::max_lag) are refreshed this often:
// each refresh reads every partition's watermark under the consumer's lock.
constexpr auto kLagUpdateInterval = std::chrono::milliseconds(500);

}  // namespace

void Consumer::Impl::RegisterMetrics(MetricsRegistry* registry) {
  consumed = registry->GetCounter("tally_events_consumed_total",
                                  "Messages consumed from Kafka and stored (any outcome).");
  applied = registry->GetCounter("tally_events_applied_total", "Events folded into the views.");
  duplicates = registry->GetCounter("tally_events_duplicate_total",
                                    "Events skipped as duplicates of an earlier (source, id).");
  dlq_produced = registry->GetCounter("tally_dlq_produced_total",
                                      "Messages written to the dead-letter topic.");
  trimmed = registry->GetCounter("tally_log_trimmed_total",
                                 "Times a partition's log was found trimmed past our offsets.");
  batches = registry->GetCounter("tally_batches_applied_total", "Batches written.");
  apply_seconds = registry->GetHistogram("tally_batch_apply_seconds",
                                         "Time to parse, fold and write one batch.", {},
                                         Histogram::LatencyBuckets());
  persist_seconds = registry->GetHistogram(
      "tally_persist_seconds",
      "Time to persist the staged batches to disk, one observation per persist.", {},
      Histogram::LatencyBuckets());
  store_write_failures = registry->GetCounter(
      "tally_store_write_failures_total",
      "Writes to the store that failed (a full disk, I/O errors); ingest pauses and retries.");
  store_write_failing = registry->GetGauge(
      "tally_store_write_failing",
      "1 while writes to the store fail and ingest is paused (not ready), else 0.");
  partitions_dropped = registry->GetCounter(
      "tally_partitions_dropped_total",
      "Partitions whose views this instance dropped after they were neither owned nor kept as a "
      "standby here for --drop-idle-partitions-after.");
  taken_from_standby = registry->GetCounter(
      "tally_partitions_taken_from_standby_total",
      "Partitions the group assigned here while this instance kept a standby of them: taken "
      "over from the standby's state instead of the whole log.");
  batch_messages = registry->GetHistogram(
      "tally_batch_messages", "Messages per stored batch (batches grow while the store is busy).",
      {}, {1, 10, 100, 1000, 5000, 10000, 20000, 50000, 100000, 200000});
}

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
  impl->RegisterMetrics(metrics);

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
    s.Collect();
    if (!s.Pending().empty()) {
      s.Submit();
    } else {
      s.OnIdle();
    }
    if (Clock::now() - last_lag > kLagUpdateInterval) {
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
