#include "replay/replayer.h"

namespace tally::replay {

Result<std::unique_ptr<Replayer>> Replayer::Create(store::Store* store, ReplayOptions options) {
  std::unique_ptr<Replayer> r(new Replayer());
  r->options_ = std::move(options);
  if (r->options_.batch_size == 0) r->options_.batch_size = 1;
  auto agg = aggregate::Aggregator::Create(store);
  if (!agg) return std::unexpected(agg.error());
  r->aggregator_ = std::move(*agg);
  // A replay needs no batch on disk before the next: the store writes one batch while the
  // aggregator folds the next (Finish waits for the last).
  r->aggregator_->set_async_write(true);
  r->aggregator_->DeclareOrganizations(r->options_.organizations);
  // Refusals are only counted; an Apply failure ends the replay (no retry hook).
  r->pipeline_ = std::make_unique<pipeline::BatchPipeline>(
      r->aggregator_.get(), pipeline::PipelineOptions{.late_policy = r->options_.late_policy,
                                                      .event_limits = r->options_.event_limits});
  return r;
}

Replayer::~Replayer() = default;

Status Replayer::Add(std::string_view line, const std::optional<LineOrigin>& origin) {
  ++stats_.read;
  const pipeline::RefusedLine* refused = pipeline_->Add(line, nullptr, origin ? &*origin : nullptr);
  if (refused != nullptr) {
    ++stats_.rejected;
    ++stats_.rejected_by_reason[std::string(refused->category)];
  }
  if (pipeline_->filling().events.size() >= options_.batch_size) return Submit();
  return Ok();
}

Status Replayer::Finish() {
  if (Status s = Submit(); !s) return s;
  pipeline_->Wait([this](pipeline::EventBatch&, const pipeline::BatchOutcome& o) { Account(o); });
  if (!failed_) return failed_;
  return aggregator_->Drain();
}

Status Replayer::Submit() {
  pipeline_->filling().cluster_id = options_.cluster_id;
  pipeline_->Submit([this](pipeline::EventBatch&, const pipeline::BatchOutcome& o) { Account(o); });
  return failed_;
}

void Replayer::Account(const pipeline::BatchOutcome& o) {
  if (!o.stored) {
    if (failed_) failed_ = o.error ? Fail(ErrorCode::kInternal, "a batch was not stored") : o.error;
    return;
  }
  stats_.applied += o.stats.applied;
  stats_.duplicates += o.stats.duplicates;
  if (o.late > 0) {
    stats_.rejected += o.late;
    stats_.rejected_by_reason["late_event"] += o.late;
  }
  if (o.mismatched > 0) {
    stats_.rejected += o.mismatched;
    stats_.rejected_by_reason["organization_mismatch"] += o.mismatched;
  }
}

}  // namespace tally::replay
