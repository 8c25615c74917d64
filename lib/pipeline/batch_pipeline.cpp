#include "pipeline/batch_pipeline.h"

#include <chrono>
#include <utility>

#include "common/calendar.h"
#include "common/thread.h"

namespace tally::pipeline {

using Clock = std::chrono::steady_clock;

void EventBatch::Clear() {
  events.clear();
  sources.clear();
  refused.clear();
  offsets.clear();
  topic.clear();
  partitions.clear();
  lines = 0;
  persist = false;
}

BatchPipeline::BatchPipeline(aggregate::Aggregator* aggregator, PipelineOptions options)
    : aggregator_(aggregator), options_(std::move(options)) {
  parser_.set_limits(options_.event_limits);
}

BatchPipeline::~BatchPipeline() {
  // The worker uses a batch, the aggregator and the hooks' state: let it finish.
  if (worker_.pending()) worker_.Get();
}

const RefusedLine* BatchPipeline::Add(std::string_view line, const void* source,
                                      const LineOrigin* origin) {
  EventBatch& b = batches_[filling_];
  ++b.lines;
  if (origin != nullptr) {
    // A batch spans few partitions, and consecutive lines mostly share one: a short scan from
    // the back beats a map.
    aggregate::PartitionOffset* at = nullptr;
    for (auto it = b.offsets.rbegin(); it != b.offsets.rend(); ++it) {
      if (it->partition == origin->partition && it->topic == origin->topic) {
        at = &*it;
        break;
      }
    }
    if (at == nullptr) at = &b.offsets.emplace_back(std::string(origin->topic), origin->partition);
    at->next_offset = origin->offset + 1;
  }
  if (b.pool_.size() <= b.events.size()) b.pool_.emplace_back();
  event::UsageEvent* e = &b.pool_[b.events.size()];
  Status s = parser_.ParseInto(line, e);
  if (s) {
    b.events.push_back(e);
    b.sources.push_back(source);
    // Every event's partition, while every line of the batch has an origin in one topic.
    if (origin != nullptr && b.partitions.size() + 1 == b.events.size() &&
        (b.topic.empty() || b.topic == origin->topic)) {
      if (b.topic.empty()) b.topic = origin->topic;
      b.partitions.push_back(origin->partition);
    }
    return nullptr;
  }
  return &b.refused.emplace_back(source, event::ReasonCategory(s.error()), s.error().message);
}

bool BatchPipeline::Submit(const DoneFn& done) {
  EventBatch& b = batches_[filling_];
  if (b.lines == 0) return !stalled_;
  // The other batch is free only once the worker has stored it; batches stay in input order.
  if (!Wait(done)) return false;
  flying_ = &b;
  worker_.Start([this, &b] {
    if (!options_.worker_name.empty()) {
      // Once per worker thread (BackgroundTask keeps one).
      static thread_local const bool named = (NameCurrentThread(options_.worker_name), true);
      (void)named;
    }
    return Store(&b);
  });
  filling_ ^= 1;
  batches_[filling_].Clear();
  return true;
}

bool BatchPipeline::Wait(const DoneFn& done) {
  if (!worker_.pending()) return !stalled_;
  BatchOutcome outcome = worker_.Get();
  EventBatch& b = *flying_;
  flying_ = nullptr;
  if (!outcome.stored) stalled_ = true;
  if (done) done(b, outcome);
  return outcome.stored;
}

template <typename Reason>
size_t BatchPipeline::Refuse(EventBatch* b, std::string_view category, Reason&& reason) {
  size_t w = 0;
  for (size_t i = 0; i < b->events.size(); ++i) {
    if (marks_[i]) {
      b->refused.push_back({b->sources[i], category, reason(*b->events[i])});
      continue;
    }
    b->events[w] = b->events[i];
    if (!b->partitions.empty()) b->partitions[w] = b->partitions[i];
    b->sources[w++] = b->sources[i];
  }
  const size_t refused = b->events.size() - w;
  b->events.resize(w);
  b->sources.resize(w);
  if (!b->partitions.empty()) b->partitions.resize(w);
  return refused;
}

BatchOutcome BatchPipeline::Store(EventBatch* b) {
  const auto t0 = Clock::now();
  BatchOutcome out;
  // Both checks run here rather than while parsing: they must see every earlier batch.
  if (options_.late_policy == aggregate::LatePolicy::kReject && !b->events.empty()) {
    aggregator_->MarkLate(b->events, &marks_);
    out.late = Refuse(b, "late_event", [](const event::UsageEvent& e) {
      return "late event: its time " + FormatRfc3339Seconds(e.time_ms) +
             " is older than the dedupe window before the newest event seen (--late-events "
             "reject)";
    });
  }
  if (options_.refuse_mismatches && !b->events.empty()) {
    aggregator_->MarkOrganizationMismatches(b->events, &marks_);
    out.mismatched = Refuse(b, "organization_mismatch", [this](const event::UsageEvent& e) {
      return "organization mismatch: data.organization_id is not the organization workspace " +
             e.workspace_id + " belongs to (" +
             std::string(aggregator_->OrganizationOf(e.workspace_id)) + ")";
    });
  }
  if (!b->refused.empty() && options_.hooks.deliver_refused &&
      !options_.hooks.deliver_refused(*b)) {
    return out;
  }
  if (options_.hooks.before_apply) options_.hooks.before_apply(*b);
  for (int attempt = 1;; ++attempt) {
    const aggregate::EventOrigins origins = b->partitions.size() == b->events.size()
                                                ? aggregate::EventOrigins{b->topic, b->partitions}
                                                : aggregate::EventOrigins{};
    auto stats = aggregator_->Apply(b->events, b->offsets, b->cluster_id, origins);
    if (stats) {
      out.stats = *stats;
      break;
    }
    if (!options_.hooks.retry || !options_.hooks.retry(stats.error(), attempt)) {
      out.error = std::unexpected(stats.error());
      return out;
    }
  }
  out.stored = true;
  out.mismatched += out.stats.organization_mismatches;
  if (options_.hooks.after_store) options_.hooks.after_store(*b, &out);
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

}  // namespace tally::pipeline
