#include "aggregate/aggregator.h"

#include <algorithm>

#include "aggregate/internal/aggregator_impl.h"

namespace tally::aggregate {
namespace {

// Keys the dedupe filter is sized for (12 bits each: 24 MiB). A store holding more dedupe
// entries (the dedupe window's worth of events) is deduplicated by store lookups alone.
constexpr size_t kDedupeFilterKeys = size_t{16} << 20;
// Pairs the pair filter is sized for, at least (12 bits each: 6 MiB), and at most: a store with
// more pairs looks each new pair up.
constexpr size_t kPairFilterMinKeys = size_t{4} << 20;
constexpr size_t kPairFilterMaxKeys = size_t{64} << 20;
// Filter probes run this many keys behind their prefetches (each probe is one cache miss).
constexpr size_t kPrefetchAhead = 8;

}  // namespace

// --- The public API. Calls that Apply also makes go to the state behind impl_; the others work
// on that state here.

Aggregator::Aggregator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Aggregator::~Aggregator() = default;

void Aggregator::set_directory(store::Directory* directory) { impl_->directory_ = directory; }
void Aggregator::set_stage(bool stage) { impl_->stage_ = stage; }
void Aggregator::set_async_write(bool async) { impl_->async_write_ = async; }
void Aggregator::set_request_scope_by_workspace(bool by_workspace) {
  impl_->scope_by_workspace_ = by_workspace;
}
Status Aggregator::Drain() { return impl_->Drain(); }
std::string_view Aggregator::OrganizationOf(std::string_view workspace_id) const {
  return impl_->OrganizationOf(workspace_id);
}
Result<ApplyStats> Aggregator::Apply(std::span<const event::UsageEvent* const> events,
                                     std::span<const PartitionOffset> offsets,
                                     std::string_view cluster_id, EventOrigins origins) {
  return impl_->Apply(events, offsets, cluster_id, origins);
}

// --- The state.

Aggregator::Impl::Impl(store::Store* store, Clock clock)
    : store_(store), clock_(clock), write_set_(*store), async_set_(*store) {}
Aggregator::Impl::~Impl() = default;

Status Aggregator::Impl::Drain() {
  if (writer_.pending()) {
    Status written = writer_.Get();
    if (!written && async_error_) async_error_ = written;
    inflight_order_.clear();  // stored (or failed): the store answers for them now
  }
  return async_error_;
}

Result<std::unique_ptr<Aggregator>> Aggregator::Create(store::Store* store, Clock clock) {
  auto agg = std::make_unique<Impl>(store, clock);
  auto next = store->LoadDictionaryNext();
  if (!next) return std::unexpected(next.error());
  agg->next_user_index_ = next->user;
  agg->next_agent_index_ = next->agent;
  agg->next_pair_index_ = next->pair;
  if (auto loaded = agg->LoadOrganizations(); !loaded) return std::unexpected(loaded.error());
  agg->partitioned_ = store->partitioned();
  agg->LoadDedupeFilter();
  agg->LoadPairFilter();
  return std::unique_ptr<Aggregator>(new Aggregator(std::move(agg)));
}

Status Aggregator::Impl::LoadOrganizations() {
  return store_->ScanWorkspaceRecords([&](std::string_view ws, const store::Record& record) {
    const store::Field* f = store::FindField(record, store::field::kWorkspaceOrganization);
    if (f != nullptr && !f->value.empty()) organizations_.emplace(ws, f->value);
  });
}

void Aggregator::DeclareOrganizations(const OrganizationBindings& bindings) {
  for (const auto& [ws, org] : bindings) {
    impl_->organizations_.insert_or_assign(ws, org);
    impl_->declared_.insert(ws);
  }
}

void Aggregator::ForgetPartition(std::string_view topic, int32_t partition,
                                 std::span<const std::string> workspaces) {
  std::string key;
  for (const std::string& ws : workspaces) {
    if (!impl_->declared_.contains(ws)) impl_->organizations_.erase(ws);
    store::PartitionWorkspaceKey(topic, partition, ws, &key);
    impl_->known_index_.erase(key);
  }
}

Status Aggregator::Impl::IndexPartitions(const EventOrigins& origins, store::WriteSet* set) {
  if (!index_topics_.contains(origins.topic)) {
    auto index = store_->LoadPartitionIndex(origins.topic);
    if (!index) return std::unexpected(index.error());
    std::string key;
    for (const auto& [partition, ws] : *index) {
      store::PartitionWorkspaceKey(origins.topic, partition, ws, &key);
      known_index_.insert(key);
    }
    index_topics_.emplace(origins.topic);
  }
  auto note = [&](int32_t partition, uint32_t ws) {
    store::PartitionWorkspaceKey(origins.topic, partition, workspaces_.names[ws], &key_);
    if (known_index_.contains(key_)) return;
    if (std::find(new_index_.begin(), new_index_.end(), key_) != new_index_.end()) return;
    set->PutPartitionWorkspace(origins.topic, partition, workspaces_.names[ws]);
    new_index_.push_back(key_);
  };
  for (uint32_t ws = 0; ws < batch_ws_partition_.size(); ++ws) note(batch_ws_partition_[ws], ws);
  for (const auto& [partition, ws] : other_partitions_) note(partition, ws);
  return Ok();
}

std::string_view Aggregator::Impl::OrganizationOf(std::string_view workspace_id) const {
  auto it = organizations_.find(workspace_id);
  return it == organizations_.end() ? std::string_view() : std::string_view(it->second);
}

void Aggregator::MarkOrganizationMismatches(std::span<const event::UsageEvent* const> events,
                                            std::vector<uint8_t>* refused) const {
  refused->assign(events.size(), 0);
  // Bindings made by earlier events of `events`.
  absl::flat_hash_map<std::string_view, std::string_view, Impl::StringHash, std::equal_to<>> batch;
  for (size_t i = 0; i < events.size(); ++i) {
    const event::UsageEvent& e = *events[i];
    if (e.organization_id.empty()) continue;
    std::string_view bound = impl_->OrganizationOf(e.workspace_id);
    if (bound.empty()) bound = batch.try_emplace(e.workspace_id, e.organization_id).first->second;
    (*refused)[i] = bound != e.organization_id ? 1 : 0;
  }
}

void Aggregator::Impl::LoadDedupeFilter() {
  if (store_->EstimateDedupeKeys() > kDedupeFilterKeys) return;
  auto filter = std::make_unique<internal::KeyFilter>(kDedupeFilterKeys);
  bool complete = true;
  auto scanned = store_->ScanDedupeKeys([&](std::string_view key) {
    // The estimate can be low: past the filter's size, lookups alone are the better choice.
    if (filter->added() >= kDedupeFilterKeys) {
      complete = false;
      return false;
    }
    filter->Add(key);
    return true;
  });
  // Without every key in it, the filter would call old events new: use lookups alone.
  if (!scanned || !complete) return;
  dedupe_filter_ = std::move(filter);
}

void Aggregator::Impl::LoadPairFilter() {
  // The pair dictionary holds exactly the pairs numbered below the next free index.
  if (next_pair_index_ > kPairFilterMaxKeys / 2) return;
  auto filter = std::make_unique<internal::KeyFilter>(
      std::max<size_t>(kPairFilterMinKeys, size_t{2} * next_pair_index_));
  auto scanned = store_->ScanPairDictionary([&](uint32_t agent, uint32_t user) {
    filter->AddHash(internal::PairHash((uint64_t{agent} << 32) | user));
    return true;
  });
  if (scanned) pair_filter_ = std::move(filter);
}

void Aggregator::MarkLate(std::span<const event::UsageEvent* const> events,
                          std::vector<uint8_t>* late) const {
  late->assign(events.size(), 0);
  int64_t newest = impl_->store_->newest_event_ms();
  const int64_t window = impl_->store_->dedupe_window_ms();
  for (size_t i = 0; i < events.size(); ++i) {
    const int64_t t = events[i]->time_ms;
    if (newest != INT64_MIN && t < newest - window) {
      (*late)[i] = 1;
    } else {
      newest = std::max(newest, t);
    }
  }
}

Result<ApplyStats> Aggregator::Impl::Apply(std::span<const event::UsageEvent* const> events,
                                           std::span<const PartitionOffset> offsets,
                                           std::string_view cluster_id, EventOrigins origins) {
  ApplyStats stats;
  const bool index_partitions = partitioned_ && origins.partitions.size() == events.size();
  if (!async_error_) return std::unexpected(async_error_.error());
  ClearBatch();
  std::vector<size_t> order;
  std::vector<uint8_t> dup;
  if (Status s = FindDuplicates(events, &order, &dup); !s) return std::unexpected(s.error());

  const int64_t newest_before = store_->newest_event_ms();
  const DictionaryMark mark = Mark();
  // The newest time of the events actually applied: the store's newest event time (the late
  // policy's and the dedupe expiry's reference) only advances once they are written.
  int64_t batch_newest = INT64_MIN;
  const bool async = async_write_ && !stage_;
  store::WriteSet& set = async ? *filling_set_ : write_set_;
  set.Clear();
  if (Status s =
          FoldEvents(events, index_partitions ? origins.partitions : std::span<const int32_t>(),
                     &dup, &stats, &batch_newest);
      !s) {
    Rollback(mark);
    return std::unexpected(s.error());
  }

  // A staged batch leaves its week and month rows to the store, which adds each day row to them
  // in its open state (WriteSet::set_roll_up_days): cheaper for a stream of small batches than
  // creating, encoding and staging a week and a month copy of every day row of each. A batch
  // written directly rolls up here, where the days of one week or month combine first.
  set.set_roll_up_days(stage_);
  if (!stage_) RollUp();
  PutDedupeEntries(events, order, dup, &set);
  if (batch_newest > newest_before) set.PutNewestEventTime(batch_newest);
  if (index_partitions) {
    if (Status s = IndexPartitions(origins, &set); !s) {
      Rollback(mark);
      return std::unexpected(s.error());
    }
  } else if (partitioned_ && !events.empty()) {
    set.MarkUnindexedEvents();
  }
  WriteRows(&set);
  PutDictionaryEntries(&set);
  for (const PartitionOffset& o : offsets) {
    set.PutOffset(o.topic, o.partition, {std::string(cluster_id), o.next_offset});
  }
  stats.new_users = new_users_.size();

  if (Status s = Commit(&set, async, order, dup); !s) {
    Rollback(mark);
    return std::unexpected(s.error());
  }
  if (batch_newest != INT64_MIN) store_->ObserveEventTime(batch_newest);
  for (const auto& [ws, org] : new_bindings_) organizations_.emplace(ws, org);
  for (std::string& key : new_index_) known_index_.insert(std::move(key));
  if (directory_) directory_->Apply(directory_updates_);
  return stats;
}

void Aggregator::Impl::ClearBatch() {
  for (int g = 0; g < internal::kGranularities; ++g) {
    counters_[g].clear();
    bitmaps_[g].clear();
  }
  note_.record_keys.clear();
  note_.fields.clear();
  note_.usage.clear();
  records_.clear();
  new_users_.clear();
  new_agents_.clear();
  new_pairs_.clear();
  directory_updates_.clear();
  slices_.clear();
  workspaces_.Clear();
  projects_.Clear();
  orgs_.Clear();
  workspace_scopes_.clear();
  scope_names_.clear();
  entity_ids_.clear();
  entities_.clear();
  keys_used_ = 0;
  batch_ws_orgs_.clear();
  new_bindings_.clear();
  batch_ws_partition_.clear();
  other_partitions_.clear();
  new_index_.clear();
}

Status Aggregator::Impl::FindDuplicates(std::span<const event::UsageEvent* const> events,
                                        std::vector<size_t>* order_out,
                                        std::vector<uint8_t>* dup_out) {
  // Dedupe: first within the batch, then against the store with one MultiGet. Working in key
  // order finds in-batch repeats as neighbours, lets MultiGet skip its own sort, and feeds the
  // memtable sorted inserts later.
  dedupe_keys_.resize(std::max(dedupe_keys_.size(), events.size()));
  std::vector<std::string>& dedupe_keys = dedupe_keys_;
  if (dedupe_filter_) dedupe_hashes_.resize(events.size());
  std::vector<size_t>& order = *order_out;
  order.resize(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    if (partitioned_) {
      store::WorkspaceDedupeKey(events[i]->workspace_id, events[i]->source, events[i]->id,
                                &dedupe_keys[i]);
    } else {
      store::DedupeKey(events[i]->source, events[i]->id, &dedupe_keys[i]);
    }
    if (dedupe_filter_) dedupe_hashes_[i] = internal::KeyFilter::HashOf(dedupe_keys[i]);
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return dedupe_keys[a] < dedupe_keys[b]; });
  std::vector<uint8_t>& dup = *dup_out;
  dup.assign(events.size(), 0);
  std::vector<std::string_view> lookups;
  std::vector<size_t> which;
  lookups.reserve(events.size());
  which.reserve(events.size());
  for (size_t k = 0; k < order.size(); ++k) {
    // Equal keys are adjacent, first occurrence (in log order) first: it is the one applied.
    if (k > 0 && dedupe_keys[order[k]] == dedupe_keys[order[k - 1]]) {
      dup[order[k]] = 1;
      continue;
    }
    // Not in the filter: certainly not in the store either.
    if (dedupe_filter_) {
      if (k + kPrefetchAhead < order.size()) {
        dedupe_filter_->Prefetch(dedupe_hashes_[order[k + kPrefetchAhead]]);
      }
      if (!dedupe_filter_->MayContainHash(dedupe_hashes_[order[k]])) continue;
    }
    lookups.emplace_back(dedupe_keys[order[k]]);
    which.push_back(order[k]);
  }
  std::vector<uint8_t> stored;
  if (auto found = store_->FindDedupeKeys(lookups, &stored); !found) {
    return std::unexpected(found.error());
  }
  for (size_t k = 0; k < lookups.size(); ++k) {
    if (stored[k]) dup[which[k]] = 1;
  }
  // The batch still being written (asynchronous writes) may not show in the store yet.
  if (!inflight_order_.empty()) {
    auto less = [&](uint32_t a, std::string_view key) { return inflight_keys_[a] < key; };
    for (size_t k = 0; k < lookups.size(); ++k) {
      if (stored[k]) continue;
      auto it = std::lower_bound(inflight_order_.begin(), inflight_order_.end(), lookups[k], less);
      if (it != inflight_order_.end() && inflight_keys_[*it] == lookups[k]) dup[which[k]] = 1;
    }
  }
  return Ok();
}

void Aggregator::Impl::PutDedupeEntries(std::span<const event::UsageEvent* const> events,
                                        const std::vector<size_t>& order,
                                        const std::vector<uint8_t>& dup, store::WriteSet* set) {
  // Keys go into the batch in sorted order: the memtable skip list then finds each insert
  // position next to the previous one instead of searching from the top.
  const int64_t wall_ms = clock_.NowMillis();
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (dedupe_filter_ && k + kPrefetchAhead < order.size()) {
      dedupe_filter_->Prefetch(dedupe_hashes_[order[k + kPrefetchAhead]]);
    }
    if (dup[i]) continue;
    set->PutDedupe(dedupe_keys_[i], events[i]->time_ms, wall_ms);
    // Added before the write succeeds: a failed batch only leaves false positives.
    if (dedupe_filter_) dedupe_filter_->AddHash(dedupe_hashes_[i]);
  }
  if (dedupe_filter_ && dedupe_filter_->Saturated()) dedupe_filter_.reset();
}

void Aggregator::Impl::PutDictionaryEntries(store::WriteSet* set) {
  for (auto& [id, index] : new_users_) set->PutUser(id, index);
  if (!new_users_.empty()) set->PutUserNext(next_user_index_);
  for (auto& [ref, index] : new_agents_) {
    std::string_view ws, agent;
    store::DecodeAgentRef(ref, &ws, &agent);
    set->PutAgent(ws, agent, index);
  }
  if (!new_agents_.empty()) set->PutAgentNext(next_agent_index_);
  for (auto& [pair, index] : new_pairs_) {
    set->PutPair(static_cast<uint32_t>(pair >> 32), static_cast<uint32_t>(pair), index);
  }
  if (!new_pairs_.empty()) set->PutPairNext(next_pair_index_);
}

Status Aggregator::Impl::Commit(store::WriteSet* set, bool async, const std::vector<size_t>& order,
                                const std::vector<uint8_t>& dup) {
  if (!async) return stage_ ? store_->Stage(set, &note_) : store_->Write(set, &note_);
  // The batch before this one was written while this one was folded; it must land first.
  if (Status s = Drain(); !s) return s;
  writer_.Start([this, to_write = set] { return store_->Write(to_write, nullptr); });
  filling_set_ = filling_set_ == &write_set_ ? &async_set_ : &write_set_;
  // This batch's dedupe keys, for the next batch's lookups while the write runs.
  dedupe_keys_.swap(inflight_keys_);
  inflight_order_.clear();
  for (size_t i : order) {
    if (!dup[i]) inflight_order_.push_back(static_cast<uint32_t>(i));
  }
  return Ok();
}

void Aggregator::Impl::Rollback(const DictionaryMark& mark) {
  for (auto& [id, index] : new_users_) user_index_cache_.erase(id);
  for (auto& [ref, index] : new_agents_) agent_index_cache_.erase(ref);
  for (auto& [pair, index] : new_pairs_) pair_index_cache_.erase(pair);
  next_user_index_ = mark.user;
  next_agent_index_ = mark.agent;
  next_pair_index_ = mark.pair;
}

}  // namespace tally::aggregate
