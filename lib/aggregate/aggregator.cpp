#include "aggregate/aggregator.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>

namespace tally::aggregate {
namespace {

using event::Action;
using event::EntityKind;
using store::Counters;
using store::Scope;

Counters DeltaOf(const event::UsageEvent& e) {
  Counters c;
  c.i[Counters::CountField(e.kind, e.action)] = 1;
  if (e.action == Action::kExecuted) {
    if (e.kind == EntityKind::kWorkflow) {
      if (e.duration_ms) {
        c.i[Counters::kWorkflowDurationCount] = 1;
        c.d[Counters::kWorkflowDurationSum] = *e.duration_ms;
      }
    } else {
      c.i[Counters::kAgentTokens] = e.tokens.value_or(0);
      c.i[Counters::kAgentErrors] = e.is_error() ? 1 : 0;
      c.d[Counters::kAgentCost] = e.cost_usd.value_or(0);
      c.d[Counters::kAgentMessageCredits] = e.message_credits.value_or(0);
      c.d[Counters::kAgentIntegrationCredits] = e.integration_credits.value_or(0);
    }
  }
  return c;
}

// Pointers to the entries of `map`, in key order.
template <typename Map>
std::vector<typename Map::value_type*> Sorted(Map& map) {
  std::vector<typename Map::value_type*> out;
  out.reserve(map.size());
  for (auto& entry : map) out.push_back(&entry);
  std::sort(out.begin(), out.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  return out;
}

void SetIfPresent(store::Record* r, uint8_t id, int64_t t, const std::string& value) {
  if (!value.empty()) store::MergeField({id, t, value}, r);
}

}  // namespace

Result<std::unique_ptr<Aggregator>> Aggregator::Create(store::Store* store) {
  std::unique_ptr<Aggregator> agg(new Aggregator(store));
  std::string value;
  rocksdb::Status s =
      store->db()->Get(rocksdb::ReadOptions(), store->dict(), store::UserDictNextKey(), &value);
  if (s.ok()) {
    if (!store::DecodeUint32(value, &agg->next_user_index_)) {
      return Fail(ErrorCode::kDataLoss, "user dictionary counter is malformed");
    }
  } else if (!s.IsNotFound()) {
    return Fail(ErrorCode::kUnavailable, "reading user dictionary: " + s.ToString());
  }
  return agg;
}

Result<uint32_t> Aggregator::UserIndex(std::string_view user_id) {
  std::string id(user_id);
  if (auto it = user_index_cache_.find(id); it != user_index_cache_.end()) return it->second;
  std::string key, value;
  store::UserDictKey(user_id, &key);
  rocksdb::Status s = store_->db()->Get(rocksdb::ReadOptions(), store_->dict(), key, &value);
  uint32_t index;
  if (s.ok()) {
    if (!store::DecodeUint32(value, &index)) {
      return Fail(ErrorCode::kDataLoss, "user dictionary entry is malformed");
    }
  } else if (s.IsNotFound()) {
    index = next_user_index_++;
    new_users_.emplace_back(id, index);
  } else {
    return Fail(ErrorCode::kUnavailable, "reading user dictionary: " + s.ToString());
  }
  user_index_cache_.emplace(std::move(id), index);
  return index;
}

void Aggregator::Fold(const event::UsageEvent& e, uint32_t user_index) {
  const DayNumber day = BucketDay(e.time_ms, e.workspace_id);
  const Counters delta = DeltaOf(e);
  const bool active = e.kind == EntityKind::kAgent && e.action == Action::kExecuted;

  // Only day rows are combined per event; week and month rows are rolled up from them once
  // per batch (Flush), which is a third of the hashing on this hot path.
  auto add = [&](Scope scope, std::string_view extra) {
    store::CounterKey(scope, e.workspace_id, Granularity::kDay, day, extra, &key_);
    counters_[key_].Add(delta);
    if (active && scope != Scope::kUser) {
      store::BitmapKey(scope, e.workspace_id, Granularity::kDay, day, extra, &key_);
      bitmaps_[key_].Add(user_index);
    }
  };
  add(Scope::kWorkspace, {});
  store::ScopeIdUser(user_index, &scope_id_);
  add(Scope::kUser, scope_id_);
  store::ScopeIdEntity(e.kind, e.entity_id, &scope_id_);
  add(Scope::kEntity, scope_id_);
  if (!e.project_id.empty()) {
    store::ScopeIdProject(e.project_id, &scope_id_);
    add(Scope::kProject, scope_id_);
  }

  const int64_t t = e.time_ms;
  store::UserProfileKey(e.workspace_id, e.user_id, &key_);
  store::Record& profile = records_[key_];
  SetIfPresent(&profile, store::field::kUserName, t, e.user_name);
  SetIfPresent(&profile, store::field::kUserEmail, t, e.user_email);
  SetIfPresent(&profile, store::field::kUserPhoto, t, e.user_photo);

  store::EntityKey(e.workspace_id, e.kind, e.entity_id, &key_);
  store::Record& entity = records_[key_];
  SetIfPresent(&entity, store::field::kEntityName, t, e.entity_name);
  SetIfPresent(&entity, store::field::kEntityVisibility, t, e.entity_visibility);
  SetIfPresent(&entity, store::field::kEntityOwner, t, e.entity_owner_user_id);
  SetIfPresent(&entity, store::field::kEntityProject, t, e.project_id);
  if (e.action == Action::kCreated || e.action == Action::kCopied) {
    store::MergeField({store::field::kEntityCreated, t, e.user_id}, &entity);
    store::MergeField({store::field::kEntityRevived, t, {}}, &entity);
    if (e.action == Action::kCopied)
      store::MergeField({store::field::kEntityCopied, t, "1"}, &entity);
  } else if (e.action == Action::kDeleted) {
    store::MergeField({store::field::kEntityDeleted, t, {}}, &entity);
  }

  store::WorkspaceKey(e.workspace_id, &key_);
  store::Record& ws = records_[key_];
  SetIfPresent(&ws, store::field::kWorkspaceOrganization, t, e.organization_id);
  store::MergeField({store::field::kWorkspaceFirstEvent, t, {}}, &ws);
  store::MergeField({store::field::kWorkspaceLastEvent, t, {}}, &ws);
}

void Aggregator::RollUp() {
  // Iterating while inserting into the same map would invalidate iteration; collect first.
  rollup_counters_.clear();
  for (const auto& [key, c] : counters_) {
    Granularity g;
    int32_t day;
    if (!store::KeyBucket(key, &g, &day)) continue;
    for (Granularity up : {Granularity::kWeek, Granularity::kMonth}) {
      store::RebucketKey(key, up, BucketOf(day, up), &key_);
      rollup_counters_[key_].Add(c);
    }
  }
  for (auto& [key, c] : rollup_counters_) counters_[key].Add(c);

  rollup_bitmaps_.clear();
  for (const auto& [key, b] : bitmaps_) {
    Granularity g;
    int32_t day;
    if (!store::KeyBucket(key, &g, &day)) continue;
    for (Granularity up : {Granularity::kWeek, Granularity::kMonth}) {
      store::RebucketKey(key, up, BucketOf(day, up), &key_);
      rollup_bitmaps_[key_].Or(b);
    }
  }
  for (auto& [key, b] : rollup_bitmaps_) bitmaps_[key] = std::move(b);
}

Result<ApplyStats> Aggregator::Apply(std::span<const event::UsageEvent* const> events,
                                     std::span<const PartitionOffset> offsets,
                                     std::string_view cluster_id) {
  ApplyStats stats;
  counters_.clear();
  bitmaps_.clear();
  records_.clear();
  new_users_.clear();

  // Dedupe: first within the batch, then against the store with one MultiGet. Working in key
  // order finds in-batch repeats as neighbours, lets MultiGet skip its own sort, and feeds the
  // memtable sorted inserts later.
  dedupe_keys_.resize(std::max(dedupe_keys_.size(), events.size()));
  std::vector<std::string>& dedupe_keys = dedupe_keys_;
  std::vector<size_t> order(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    store::DedupeKey(events[i]->source, events[i]->id, &dedupe_keys[i]);
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return dedupe_keys[a] < dedupe_keys[b]; });
  std::vector<uint8_t> dup(events.size(), 0);
  {
    std::vector<rocksdb::Slice> slices;
    std::vector<size_t> which;
    slices.reserve(events.size());
    which.reserve(events.size());
    for (size_t k = 0; k < order.size(); ++k) {
      // Equal keys are adjacent, first occurrence (in log order) first: it is the one applied.
      if (k > 0 && dedupe_keys[order[k]] == dedupe_keys[order[k - 1]]) {
        dup[order[k]] = 1;
        continue;
      }
      slices.emplace_back(dedupe_keys[order[k]]);
      which.push_back(order[k]);
    }
    std::vector<rocksdb::PinnableSlice> values(slices.size());
    std::vector<rocksdb::Status> statuses(slices.size());
    if (!slices.empty()) {
      store_->db()->MultiGet(rocksdb::ReadOptions(), store_->dedupe(), slices.size(), slices.data(),
                             values.data(), statuses.data(), /*sorted_input=*/true);
    }
    for (size_t k = 0; k < slices.size(); ++k) {
      if (statuses[k].ok()) {
        dup[which[k]] = 1;
      } else if (!statuses[k].IsNotFound()) {
        return Fail(ErrorCode::kUnavailable, "dedupe lookup failed: " + statuses[k].ToString());
      }
    }
  }

  const uint32_t next_before = next_user_index_;
  auto rollback = [&] {
    for (auto& [id, index] : new_users_) user_index_cache_.erase(id);
    next_user_index_ = next_before;
  };

  rocksdb::WriteBatch batch;
  for (size_t i = 0; i < events.size(); ++i) {
    if (dup[i]) {
      ++stats.duplicates;
      continue;
    }
    const event::UsageEvent& e = *events[i];
    auto index = UserIndex(e.user_id);
    if (!index) {
      rollback();
      return std::unexpected(index.error());
    }
    Fold(e, *index);
    store_->ObserveEventTime(e.time_ms);
    ++stats.applied;
  }

  RollUp();
  // Keys go into the batch in sorted order: the memtable skip list then finds each insert
  // position next to the previous one instead of searching from the top.
  for (size_t i : order) {
    if (!dup[i]) {
      batch.Put(store_->dedupe(), dedupe_keys[i], store::EncodeDedupeValue(events[i]->time_ms));
    }
  }
  std::string value;
  for (auto* entry : Sorted(counters_)) {
    value.clear();
    store::AppendCounters(entry->second, &value);
    batch.Merge(store_->counters(), entry->first, value);
  }
  for (auto* entry : Sorted(bitmaps_)) {
    value.clear();
    entry->second.AppendEncoded(&value);
    batch.Merge(store_->bitmaps(), entry->first, value);
  }
  for (auto* entry : Sorted(records_)) {
    if (entry->second.empty()) continue;
    value.clear();
    store::AppendRecord(entry->second, &value);
    batch.Merge(store_->records(), entry->first, value);
  }
  for (auto& [id, index] : new_users_) {
    store::UserDictKey(id, &key_);
    batch.Put(store_->dict(), key_, store::EncodeUint32(index));
    store::UserDictReverseKey(index, &key_);
    batch.Put(store_->dict(), key_, id);
  }
  if (!new_users_.empty()) {
    batch.Put(store_->dict(), store::UserDictNextKey(), store::EncodeUint32(next_user_index_));
  }
  for (const PartitionOffset& o : offsets) {
    store::OffsetKey(o.topic, o.partition, &key_);
    batch.Put(store_->meta(), key_, store::EncodeOffset({std::string(cluster_id), o.next_offset}));
  }
  stats.new_users = new_users_.size();

  if (auto s = store_->Write(&batch); !s) {
    rollback();
    return std::unexpected(s.error());
  }
  return stats;
}

}  // namespace tally::aggregate
