#include "replay/replayer.h"

namespace tally::replay {

Result<std::unique_ptr<Replayer>> Replayer::Create(store::Store* store, ReplayOptions options) {
  std::unique_ptr<Replayer> r(new Replayer());
  r->store_ = store;
  r->options_ = std::move(options);
  if (r->options_.batch_size == 0) r->options_.batch_size = 1;
  auto agg = aggregate::Aggregator::Create(store);
  if (!agg) return std::unexpected(agg.error());
  r->aggregator_ = std::move(*agg);
  r->pool_.resize(r->options_.batch_size);
  r->pending_.reserve(r->options_.batch_size);
  return r;
}

Status Replayer::Add(std::string_view line, const std::optional<LineOrigin>& origin) {
  ++stats_.read;
  if (origin) {
    offsets_[{std::string(origin->topic), origin->partition}] = origin->offset + 1;
    offsets_dirty_ = true;
  }
  event::UsageEvent* e = &pool_[pending_.size()];
  if (Status s = parser_.ParseInto(line, e); !s) {
    ++stats_.rejected;
    ++stats_.rejected_by_reason[std::string(event::ReasonCategory(s.error()))];
  } else {
    pending_.push_back(e);
  }
  if (pending_.size() >= options_.batch_size) return ApplyPending();
  return Ok();
}

Status Replayer::Finish() { return ApplyPending(); }

Status Replayer::ApplyPending() {
  if (pending_.empty() && !offsets_dirty_) return Ok();
  if (options_.late_policy == aggregate::LatePolicy::kReject && !pending_.empty()) {
    aggregator_->MarkLate(pending_, &late_);
    size_t w = 0;
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (late_[i]) {
        ++stats_.rejected;
        ++stats_.rejected_by_reason["late_event"];
      } else {
        pending_[w++] = pending_[i];
      }
    }
    pending_.resize(w);
  }
  std::vector<aggregate::PartitionOffset> offsets;
  for (const auto& [tp, next] : offsets_) offsets.push_back({tp.first, tp.second, next});
  auto applied = aggregator_->Apply(pending_, offsets, options_.cluster_id);
  if (!applied) return std::unexpected(applied.error());
  stats_.applied += applied->applied;
  stats_.duplicates += applied->duplicates;
  pending_.clear();
  offsets_dirty_ = false;
  return Ok();
}

}  // namespace tally::replay
