#pragma once
// The one write path of live ingest and replay: event lines are parsed into a batch on the
// caller's thread while a worker thread stores the batch before it (late check, organization
// check, the caller's handling of refused lines, then aggregate::Aggregator::Apply with the
// batch's offsets), one batch at a time and in input order.
//
//   tally::pipeline::BatchPipeline pipeline(aggregator.get(), {.hooks = {...}});
//   for (const Line& line : lines) {
//     if (const auto* refused = pipeline.Add(line.text, &line, line.origin)) Count(*refused);
//     if (pipeline.filling().lines >= 20000) {
//       pipeline.Submit([&](pipeline::EventBatch& done, const pipeline::BatchOutcome& o) {
//         Account(o);  // the batch before, now stored (or not: o.stored)
//       });
//     }
//   }
//   pipeline.Submit(account);  // the last batch
//   pipeline.Wait(account);
//
// Refused lines (unparseable, late under LatePolicy::kReject, or naming another organization
// than their workspace's when refuse_mismatches is set) never reach Apply; the hooks see them
// before the batch's offsets are stored, so a dead-letter topic can acknowledge them first.
//
// Thread-safety: one owning thread calls every method; the hooks run on the worker thread, one
// batch at a time. The aggregator and everything the hooks use must outlive the pipeline (the
// destructor waits for the batch in flight).

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/aggregator.h"
#include "common/background_task.h"
#include "common/result.h"
#include "event/event_parser.h"
#include "event/usage_event.h"

namespace tally::pipeline {

// A line refused before Apply.
struct RefusedLine {
  const void* source = nullptr;  // the caller's handle of the line (Add's `source`)
  std::string_view category;     // event::ReasonCategory, "late_event" or "organization_mismatch"
  std::string reason;            // a sentence for logs and dead-letter headers
};

// Where a line came from, for lines read from a Kafka topic: the batch then stores the next
// offset of its partition together with the views the batch produced.
struct LineOrigin {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
};

// One batch, filled by Add on the owning thread and stored by the worker.
struct EventBatch {
  std::vector<const event::UsageEvent*> events;     // parsed, in input order
  std::vector<const void*> sources;                 // the caller's handle of each entry of events
  std::vector<RefusedLine> refused;                 // in the order they were refused
  std::vector<aggregate::PartitionOffset> offsets;  // next offset per partition after the batch
  std::string cluster_id;  // stored with the offsets; set by the owner before Submit
  // The topic and partition of each entry of events, while every line came from one topic
  // (Add's origin); Apply gets them as aggregate::EventOrigins when they cover every event.
  std::string topic;
  std::vector<int32_t> partitions;
  size_t lines = 0;      // lines added (parsed or refused)
  bool persist = false;  // the owner's flag for its after_store hook

 private:
  friend class BatchPipeline;
  void Clear();
  // Parse targets, reused batch after batch (their strings keep their capacity). A deque, so
  // that growing it leaves the events already parsed where they are.
  std::deque<event::UsageEvent> pool_;
};

// What the worker did with a batch.
struct BatchOutcome {
  // All of the batch (views, offsets) is stored. False when a hook gave up: then nothing of it is
  // stored, and `error` says why when an Apply failed.
  bool stored = false;
  Status error = Ok();
  size_t late = 0;        // refused as late (LatePolicy::kReject)
  size_t mismatched = 0;  // organization mismatches, refused or skipped by Apply
  aggregate::ApplyStats stats;
  bool persisted = false;  // the after_store hook persisted the store's open state
  double seconds = 0;      // the worker's time on the batch
};

// The owner's policy, run on the worker thread. Unset hooks take the defaults named below.
struct PipelineHooks {
  // The batch's refused lines, before its offsets are stored (only called when there are
  // some). False: stop, the batch is not stored. Default: true (refusals are only counted).
  std::function<bool(const EventBatch&)> deliver_refused;
  // After the refusals (and their delivery), right before Apply: the batch's events are those
  // Apply is given (without refuse_mismatches, Apply itself skips events naming another
  // organization than their workspace's). Default: nothing.
  std::function<void(const EventBatch&)> before_apply;
  // Apply failed with `error` on its `attempt`-th try (1, 2, ...): true to try again (the hook
  // waits as it sees fit), false to give up (the outcome then carries the error). Default: give
  // up at once.
  std::function<bool(const Error& error, int attempt)> retry;
  // After the batch is stored; may set outcome->persisted. Default: nothing.
  std::function<void(const EventBatch&, BatchOutcome* outcome)> after_store;
};

struct PipelineOptions {
  aggregate::LatePolicy late_policy = aggregate::LatePolicy::kApply;
  // Refuse events that name another organization than their workspace's before Apply, as
  // refused lines (live ingest dead-letters them). Otherwise Apply skips and counts them.
  bool refuse_mismatches = false;
  // Event time bounds for the parser; `event_limits.clock`, if set, must outlive the pipeline.
  event::Limits event_limits = {};
  // The worker thread's name in tools like top and perf ("" keeps the default).
  std::string worker_name = "tally-apply";
  PipelineHooks hooks = {};
};

class BatchPipeline {
 public:
  // Called on the owning thread with a batch the worker finished and what it did; the batch's
  // events and refused lines are valid until the callback returns.
  using DoneFn = std::function<void(EventBatch& batch, const BatchOutcome& outcome)>;

  // `aggregator` must outlive the pipeline (or be replaced by set_aggregator first).
  BatchPipeline(aggregate::Aggregator* aggregator, PipelineOptions options);
  // Waits for the batch in flight; its outcome is dropped.
  ~BatchPipeline();
  BatchPipeline(const BatchPipeline&) = delete;
  BatchPipeline& operator=(const BatchPipeline&) = delete;

  // Parses `line` into the filling batch, or refuses it: then returns the refusal (valid until
  // the next Add or Submit), else nullptr. `source` is the caller's handle of the line, handed
  // back in the batch (sources, refused). With an `origin`, the batch stores origin.offset + 1
  // as its partition's next offset. The line need not outlive the call.
  const RefusedLine* Add(std::string_view line, const void* source,
                         const LineOrigin* origin = nullptr);

  // The batch being filled.
  EventBatch& filling() { return batches_[filling_]; }

  // Waits for the batch in flight (handing it to `done`), then starts the worker on the filling
  // batch and starts a new one. Does nothing for a batch without lines. False when the batch
  // before was not stored (a hook gave up): the filling batch then stays where it is, and no
  // later batch may be stored, or its offsets would skip the unstored one.
  bool Submit(const DoneFn& done);
  // Waits for the batch in flight, if any, and hands it to `done`. False when a batch was not
  // stored (now or before).
  bool Wait(const DoneFn& done);

  // A batch is with the worker and its outcome not taken yet.
  bool in_flight() const { return worker_.pending(); }
  // in_flight() and the worker is still storing it.
  bool worker_busy() const { return worker_.pending() && !worker_.done(); }

  // Replaces the aggregator (for example after a store switch). Precondition: !in_flight().
  void set_aggregator(aggregate::Aggregator* aggregator) { aggregator_ = aggregator; }

 private:
  // Runs on the worker: late check, organization check, hooks, Apply.
  BatchOutcome Store(EventBatch* b);
  // Moves the events marked in marks_ to the refused lines, with reason(event). Worker.
  template <typename Reason>
  size_t Refuse(EventBatch* b, std::string_view category, Reason&& reason);

  aggregate::Aggregator* aggregator_;
  PipelineOptions options_;
  event::EventParser parser_;
  EventBatch batches_[2];
  int filling_ = 0;
  EventBatch* flying_ = nullptr;  // the batch with the worker
  bool stalled_ = false;          // a batch was not stored: nothing after it may be
  std::vector<uint8_t> marks_;    // worker only: late / mismatch marks
  BackgroundTask<BatchOutcome> worker_;
};

}  // namespace tally::pipeline
