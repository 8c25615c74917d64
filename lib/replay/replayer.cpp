#include "replay/replayer.h"

namespace tally::replay {

Result<std::unique_ptr<Replayer>> Replayer::Create(store::Store* store, ReplayOptions options) {
  std::unique_ptr<Replayer> r(new Replayer());
  r->store_ = store;
  r->options_ = std::move(options);
  if (r->options_.batch_size == 0) r->options_.batch_size = 1;
  r->parser_.set_limits(r->options_.event_limits);
  auto agg = aggregate::Aggregator::Create(store);
  if (!agg) return std::unexpected(agg.error());
  r->aggregator_ = std::move(*agg);
  r->aggregator_->DeclareOrganizations(r->options_.organizations);
  for (Batch& b : r->batches_) {
    b.pool.resize(r->options_.batch_size);
    b.pending.reserve(r->options_.batch_size);
  }
  return r;
}

Replayer::~Replayer() {
  // The worker uses the aggregator and the store: let it finish (its result no longer matters).
  if (in_flight_.pending()) in_flight_.Get();
}

Status Replayer::Add(std::string_view line, const std::optional<LineOrigin>& origin) {
  ++stats_.read;
  if (origin) {
    offsets_[{std::string(origin->topic), origin->partition}] = origin->offset + 1;
    offsets_dirty_ = true;
  }
  Batch& b = batches_[filling_];
  event::UsageEvent* e = &b.pool[b.pending.size()];
  if (Status s = parser_.ParseInto(line, e); !s) {
    ++stats_.rejected;
    ++stats_.rejected_by_reason[std::string(event::ReasonCategory(s.error()))];
  } else {
    b.pending.push_back(e);
  }
  if (b.pending.size() >= options_.batch_size) return Submit();
  return Ok();
}

Status Replayer::Finish() {
  if (Status s = Submit(); !s) return s;
  return Wait();
}

Status Replayer::Wait() {
  if (!in_flight_.pending()) return Ok();
  Result<Applied> done = in_flight_.Get();
  if (!done) return std::unexpected(done.error());
  stats_.applied += done->applied;
  stats_.duplicates += done->duplicates;
  if (done->late > 0) {
    stats_.rejected += done->late;
    stats_.rejected_by_reason["late_event"] += done->late;
  }
  if (done->mismatched > 0) {
    stats_.rejected += done->mismatched;
    stats_.rejected_by_reason["organization_mismatch"] += done->mismatched;
  }
  return Ok();
}

Status Replayer::Submit() {
  Batch& b = batches_[filling_];
  if (b.pending.empty() && !offsets_dirty_) return Ok();
  // The other buffer is free only once its batch is applied; batches stay in input order.
  if (Status s = Wait(); !s) return s;
  b.offsets.clear();
  for (const auto& [tp, next] : offsets_) b.offsets.push_back({tp.first, tp.second, next});
  offsets_dirty_ = false;
  in_flight_.Start([this, &b] { return ApplyBatch(&b); });
  filling_ ^= 1;
  batches_[filling_].pending.clear();
  return Ok();
}

Result<Replayer::Applied> Replayer::ApplyBatch(Batch* b) {
  Applied out;
  if (options_.late_policy == aggregate::LatePolicy::kReject && !b->pending.empty()) {
    aggregator_->MarkLate(b->pending, &late_);
    size_t w = 0;
    for (size_t i = 0; i < b->pending.size(); ++i) {
      if (late_[i]) {
        ++out.late;
      } else {
        b->pending[w++] = b->pending[i];
      }
    }
    b->pending.resize(w);
  }
  auto applied = aggregator_->Apply(b->pending, b->offsets, options_.cluster_id);
  if (!applied) return std::unexpected(applied.error());
  out.applied = applied->applied;
  out.duplicates = applied->duplicates;
  // Apply judges bindings in log order itself: its refusals are the mismatches.
  out.mismatched = applied->organization_mismatches;
  return out;
}

}  // namespace tally::replay
