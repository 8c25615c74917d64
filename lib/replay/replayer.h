#pragma once
// Feeds raw event lines (from files or a topic) through the same parse → validate → dedupe →
// fold → WriteBatch path as live ingest, into a Store that the caller owns: the core of
// `tally replay`.
//
//   auto store = tally::store::Store::Open({.path = dir + "/db"});
//   auto replayer = tally::replay::Replayer::Create(store->get(), {});
//   for (each line) if (auto s = (*replayer)->Add(line); !s) die(s.error().message);
//   (*replayer)->Finish();                                    // applies the last batch
//   const tally::replay::ReplayStats& st = (*replayer)->stats();  // read/applied/dup/rejected
//
// Lines from a Kafka topic carry their (topic, partition, offset): the offsets are stored in the
// same WriteBatch as the views they produced (exactly as live ingest does), so a service started
// on the result continues the topic where the replay stopped.
//
// Batches go through pipeline::BatchPipeline, as live ingest's do: while one batch is applied
// (dedupe, fold) on a worker thread, the caller's thread parses the next one, and the store
// writes the batch before on a third (Aggregator::set_async_write), so reading, decompressing,
// parsing, folding and writing overlap. Batches are still written one at a time, in input
// order, each atomically with its offsets; only Finish says that every batch is stored.
//
// Errors: only store failures (kUnavailable / kDataLoss), reported by the Add or Finish call
// after the failed batch; bad lines are counted by reason, never fatal. Not thread-safe (one
// caller thread; the worker is internal).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/aggregator.h"
#include "common/result.h"
#include "event/event_parser.h"
#include "pipeline/batch_pipeline.h"
#include "store/store.h"

namespace tally::replay {

struct ReplayOptions {
  size_t batch_size = 20000;
  // Cluster id stored with topic offsets (kafka::ClusterId of the source).
  std::string cluster_id = {};
  // Events older than the dedupe window: applied, or counted as rejected ("late_event").
  aggregate::LatePolicy late_policy = aggregate::LatePolicy::kApply;
  // Workspace -> organization bindings declared up front; events naming another organization
  // than their workspace's are counted as rejected ("organization_mismatch").
  aggregate::OrganizationBindings organizations = {};
  // Event time bounds (--min-event-time, --max-future); outside: rejected as time_out_of_range.
  // `event_limits.clock`, if set, must outlive the replayer.
  event::Limits event_limits = {};
};

struct ReplayStats {
  uint64_t read = 0;        // lines seen
  uint64_t applied = 0;     // events that changed the views
  uint64_t duplicates = 0;  // (source, id) already stored or earlier in the input
  uint64_t rejected = 0;    // lines that failed parsing or validation
  std::map<std::string, uint64_t> rejected_by_reason;  // event::ReasonCategory -> count
};

// Where a line came from, for topic sources.
using LineOrigin = pipeline::LineOrigin;

class Replayer {
 public:
  // `store` must outlive the replayer. Errors from Aggregator::Create.
  static Result<std::unique_ptr<Replayer>> Create(store::Store* store, ReplayOptions options);

  // Parses `line` (copied as needed) and applies a batch when batch_size events are pending.
  Status Add(std::string_view line, const std::optional<LineOrigin>& origin = std::nullopt);
  // Applies what is pending and waits until every batch is stored. Call once at the end (Add
  // may still follow: it starts a new batch).
  Status Finish();

  // read and rejected-by-parsing are current; applied, duplicates and late rejections include
  // the batches applied so far (all of them after Finish).
  const ReplayStats& stats() const { return stats_; }

  ~Replayer();

 private:
  Replayer() = default;
  // Hands the filling batch to the pipeline.
  Status Submit();
  // Takes a stored batch's counts (the pipeline's DoneFn).
  void Account(const pipeline::BatchOutcome& outcome);

  ReplayOptions options_;
  std::unique_ptr<aggregate::Aggregator> aggregator_;
  std::unique_ptr<pipeline::BatchPipeline> pipeline_;
  Status failed_ = Ok();  // the error of the batch that could not be stored
  ReplayStats stats_;
};

}  // namespace tally::replay
