#include "aggregate/aggregator.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>

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

void SetIfPresent(store::Record* r, uint8_t id, int64_t t, std::string_view value) {
  if (!value.empty()) store::MergeField(id, t, value, r);
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
  for (auto [key, next] : {std::pair{store::AgentDictNextKey(), &agg->next_agent_index_},
                           std::pair{store::PairDictNextKey(), &agg->next_pair_index_}}) {
    s = store->db()->Get(rocksdb::ReadOptions(), store->dict(), key, &value);
    if (s.ok()) {
      if (!store::DecodeUint32(value, next)) {
        return Fail(ErrorCode::kDataLoss, "agent/pair dictionary counter is malformed");
      }
    } else if (!s.IsNotFound()) {
      return Fail(ErrorCode::kUnavailable, "reading agent dictionary: " + s.ToString());
    }
  }
  return agg;
}

Result<uint32_t> Aggregator::AgentIndex(std::string_view workspace_id, std::string_view agent_id) {
  store::EncodeAgentRef(workspace_id, agent_id, &agent_ref_);
  if (auto it = agent_index_cache_.find(agent_ref_); it != agent_index_cache_.end()) {
    return it->second;
  }
  std::string ref = agent_ref_;
  std::string value;
  store::AgentDictKey(workspace_id, agent_id, &key_);
  rocksdb::Status s = store_->db()->Get(rocksdb::ReadOptions(), store_->dict(), key_, &value);
  uint32_t index;
  if (s.ok()) {
    if (!store::DecodeUint32(value, &index)) {
      return Fail(ErrorCode::kDataLoss, "agent dictionary entry is malformed");
    }
  } else if (s.IsNotFound()) {
    index = next_agent_index_++;
    new_agents_.emplace_back(ref, index);
    directory_updates_.push_back({store::Directory::Update::Kind::kNewAgent, index, 0,
                                  std::string(workspace_id), std::string(agent_id)});
  } else {
    return Fail(ErrorCode::kUnavailable, "reading agent dictionary: " + s.ToString());
  }
  agent_index_cache_.emplace(std::move(ref), index);
  return index;
}

Result<uint32_t> Aggregator::PairIndex(uint32_t agent_index, uint32_t user_index) {
  const uint64_t pair = (uint64_t{agent_index} << 32) | user_index;
  if (auto it = pair_index_cache_.find(pair); it != pair_index_cache_.end()) return it->second;
  std::string value;
  store::PairDictKey(agent_index, user_index, &key_);
  rocksdb::Status s = store_->db()->Get(rocksdb::ReadOptions(), store_->dict(), key_, &value);
  uint32_t index;
  if (s.ok()) {
    if (!store::DecodeUint32(value, &index)) {
      return Fail(ErrorCode::kDataLoss, "pair dictionary entry is malformed");
    }
  } else if (s.IsNotFound()) {
    index = next_pair_index_++;
    new_pairs_.emplace_back(pair, index);
  } else {
    return Fail(ErrorCode::kUnavailable, "reading pair dictionary: " + s.ToString());
  }
  pair_index_cache_.emplace(pair, index);
  return index;
}

Result<uint32_t> Aggregator::UserIndex(std::string_view user_id) {
  if (auto it = user_index_cache_.find(user_id); it != user_index_cache_.end()) return it->second;
  std::string id(user_id);
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
    directory_updates_.push_back(
        {store::Directory::Update::Kind::kNewUser, index, 0, id, std::string()});
  } else {
    return Fail(ErrorCode::kUnavailable, "reading user dictionary: " + s.ToString());
  }
  user_index_cache_.emplace(std::move(id), index);
  return index;
}

size_t Aggregator::SliceKeyHash::operator()(const SliceKey& k) const {
  uint64_t h = (uint64_t{k.org} << 40) ^ (uint64_t{k.project} << 20) ^ k.agent;
  h = h * 0x9E3779B97F4A7C15ULL ^ (static_cast<uint64_t>(static_cast<uint32_t>(k.bucket)) << 2) ^
      static_cast<uint64_t>(k.granularity);
  return static_cast<size_t>(h * 0xBF58476D1CE4E5B9ULL >> 17);
}

uint32_t Aggregator::Intern(std::string_view s, std::vector<std::string>* names,
                            std::unordered_map<std::string, uint32_t>* ids) {
  // Batches hold a handful of organizations and projects: the last one usually matches.
  if (!names->empty() && names->back() == s) return static_cast<uint32_t>(names->size() - 1);
  auto [it, inserted] = ids->try_emplace(std::string(s), static_cast<uint32_t>(names->size()));
  if (inserted) names->emplace_back(s);
  return it->second;
}

void Aggregator::FoldRequest(const event::UsageEvent& e, uint32_t user_index, uint32_t agent_index,
                             uint32_t pair_index) {
  const DayNumber day = BucketDay(e.time_ms, e.workspace_id);
  const uint64_t errors = e.is_error() ? 1 : 0;
  const uint64_t tokens = static_cast<uint64_t>(e.tokens.value_or(0));
  const int64_t cost = store::CostNanos(e.cost_usd.value_or(0));
  const uint32_t org = Intern(e.organization_id, &batch_orgs_, &batch_org_ids_);
  const uint32_t project =
      e.project_id.empty() ? 0 : 1 + Intern(e.project_id, &batch_projects_, &batch_project_ids_);
  for (uint32_t p : {0u, project}) {
    for (uint32_t agent : {store::kAllAgents, agent_index}) {
      SliceAcc& acc = slices_[SliceKey{org, agent, p, Granularity::kDay, day}];
      store::SliceTotals& t = acc.slice.totals;
      t.requests += 1;
      t.errors += errors;
      t.tokens += tokens;
      t.cost_nanos += cost;
      acc.slice.users.push_back({user_index, 1, tokens, cost});
      // An agent's own slices need no per-agent list: it is the totals.
      if (agent == store::kAllAgents) {
        acc.slice.agents.push_back({agent_index, 1, tokens});
        acc.pairs.push_back(pair_index);
      }
    }
    if (project == 0) break;  // no project: only the all-projects slices
  }
}

Status Aggregator::Fold(const event::UsageEvent& e, uint32_t user_index) {
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
    store::MergeField(store::field::kEntityCreated, t, e.user_id, &entity);
    store::MergeField(store::field::kEntityRevived, t, {}, &entity);
    if (e.action == Action::kCopied)
      store::MergeField(store::field::kEntityCopied, t, "1", &entity);
  } else if (e.action == Action::kDeleted) {
    store::MergeField(store::field::kEntityDeleted, t, {}, &entity);
  }

  store::WorkspaceKey(e.workspace_id, &key_);
  store::Record& ws = records_[key_];
  SetIfPresent(&ws, store::field::kWorkspaceOrganization, t, e.organization_id);
  store::MergeField(store::field::kWorkspaceFirstEvent, t, {}, &ws);
  store::MergeField(store::field::kWorkspaceLastEvent, t, {}, &ws);

  // Request analytics: labels by dense index, and the slices.
  if (!e.user_email.empty()) {
    store::UserLabelKey(user_index, &key_);
    store::MergeField(store::field::kLabel, t, e.user_email, &records_[key_]);
  }
  if (e.kind != EntityKind::kAgent) return Ok();
  auto agent_index = AgentIndex(e.workspace_id, e.entity_id);
  if (!agent_index) return std::unexpected(agent_index.error());
  if (!e.entity_name.empty()) {
    store::AgentLabelKey(*agent_index, &key_);
    store::MergeField(store::field::kLabel, t, e.entity_name, &records_[key_]);
  }
  if (e.action != Action::kExecuted || e.organization_id.empty()) return Ok();
  auto pair_index = PairIndex(*agent_index, user_index);
  if (!pair_index) return std::unexpected(pair_index.error());
  FoldRequest(e, user_index, *agent_index, *pair_index);
  return Ok();
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

  // Request slices: the same roll-up on their integer keys. Day slices hold one entry per event
  // until combined: combining them first makes the week and month copies small.
  for (auto& [key, acc] : slices_) {
    acc.slice.Normalize();
    std::sort(acc.pairs.begin(), acc.pairs.end());
    acc.pairs.erase(std::unique(acc.pairs.begin(), acc.pairs.end()), acc.pairs.end());
  }
  rollup_slices_.clear();
  for (const auto& [key, acc] : slices_) {
    for (Granularity up : {Granularity::kWeek, Granularity::kMonth}) {
      SliceKey k = key;
      k.granularity = up;
      k.bucket = BucketOf(key.bucket, up);
      rollup_slices_.emplace_back(k, SliceAcc{});
      rollup_slices_.back().second.slice.Append(acc.slice);
      rollup_slices_.back().second.pairs = acc.pairs;
    }
  }
  for (auto& [key, acc] : rollup_slices_) {
    SliceAcc& into = slices_[key];
    into.slice.Append(acc.slice);
    into.pairs.insert(into.pairs.end(), acc.pairs.begin(), acc.pairs.end());
  }
}

void Aggregator::MarkLate(std::span<const event::UsageEvent* const> events,
                          std::vector<uint8_t>* late) const {
  late->assign(events.size(), 0);
  int64_t newest = store_->newest_event_ms();
  const int64_t window = store_->dedupe_window_ms();
  for (size_t i = 0; i < events.size(); ++i) {
    const int64_t t = events[i]->time_ms;
    if (newest != INT64_MIN && t < newest - window) {
      (*late)[i] = 1;
    } else {
      newest = std::max(newest, t);
    }
  }
}

Result<ApplyStats> Aggregator::Apply(std::span<const event::UsageEvent* const> events,
                                     std::span<const PartitionOffset> offsets,
                                     std::string_view cluster_id) {
  ApplyStats stats;
  counters_.clear();
  bitmaps_.clear();
  records_.clear();
  new_users_.clear();
  new_agents_.clear();
  new_pairs_.clear();
  directory_updates_.clear();
  slices_.clear();
  batch_orgs_.clear();
  batch_projects_.clear();
  batch_org_ids_.clear();
  batch_project_ids_.clear();

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

  const int64_t newest_before = store_->newest_event_ms();
  const uint32_t next_before = next_user_index_;
  const uint32_t next_agent_before = next_agent_index_;
  const uint32_t next_pair_before = next_pair_index_;
  auto rollback = [&] {
    for (auto& [id, index] : new_users_) user_index_cache_.erase(id);
    for (auto& [ref, index] : new_agents_) agent_index_cache_.erase(ref);
    for (auto& [pair, index] : new_pairs_) pair_index_cache_.erase(pair);
    next_user_index_ = next_before;
    next_agent_index_ = next_agent_before;
    next_pair_index_ = next_pair_before;
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
    if (auto folded = Fold(e, *index); !folded) {
      rollback();
      return std::unexpected(folded.error());
    }
    store_->ObserveEventTime(e.time_ms);
    ++stats.applied;
  }

  RollUp();
  // Keys go into the batch in sorted order: the memtable skip list then finds each insert
  // position next to the previous one instead of searching from the top.
  const int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  for (size_t i : order) {
    if (!dup[i]) {
      batch.Put(store_->dedupe(), dedupe_keys[i],
                store::EncodeDedupeValue(events[i]->time_ms, wall_ms));
    }
  }
  if (store_->newest_event_ms() > newest_before) {
    std::string v;
    store::PutFixed64(&v, static_cast<uint64_t>(store_->newest_event_ms()));
    batch.Put(store_->meta(), store::NewestEventTimeKey(), v);
  }
  std::string value;
  {
    // User-scope rows become one pack operand per (workspace, bucket): in key order they are
    // contiguous per bucket and sorted by user index, which is the pack's own order.
    std::string pack_key, open_key, pack;
    store::UserPackWriter pack_writer(&pack);
    for (auto* entry : Sorted(counters_)) {
      uint32_t user;
      if (store::UserPackKeyOf(entry->first, &pack_key, &user)) {
        if (pack_key != open_key) {
          if (!open_key.empty()) batch.Merge(store_->userpacks(), open_key, pack);
          open_key.swap(pack_key);
          pack_writer = store::UserPackWriter(&pack);
        }
        pack_writer.Add(user, entry->second);
        continue;
      }
      value.clear();
      store::AppendCounters(entry->second, &value);
      batch.Merge(store_->counters(), entry->first, value);
    }
    if (!open_key.empty()) batch.Merge(store_->userpacks(), open_key, pack);
  }
  for (auto* entry : Sorted(bitmaps_)) {
    value.clear();
    entry->second.AppendEncoded(&value);
    batch.Merge(store_->bitmaps(), entry->first, value);
  }
  {
    // Slices, their users bitmaps and (all agents) pairs bitmaps, in key order per family.
    std::vector<std::pair<std::string, SliceAcc*>> keyed;
    keyed.reserve(slices_.size());
    for (auto& [k, acc] : slices_) {
      std::string_view project =
          k.project ? std::string_view(batch_projects_[k.project - 1]) : std::string_view();
      store::RequestsSliceKey(batch_orgs_[k.org], k.agent, k.project ? &project : nullptr,
                              k.granularity, k.bucket, &key_);
      keyed.emplace_back(key_, &acc);
    }
    std::sort(keyed.begin(), keyed.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [k, acc] : keyed) {
      acc->slice.Normalize();
      value.clear();
      store::AppendSlice(acc->slice, &value);
      batch.Merge(store_->requests(), k, value);
    }
    // The bitmap keys differ from the slice keys only in their tag, so the same order holds.
    for (auto& [k, acc] : keyed) {
      store::UserBitmap users;
      for (const store::SliceUser& u : acc->slice.users) users.Add(u.user);
      value.clear();
      users.AppendEncoded(&value);
      if (!store::RequestsUsersKeyOf(k, &key_)) continue;
      batch.Merge(store_->bitmaps(), key_, value);
    }
    for (auto& [k, acc] : keyed) {
      if (acc->pairs.empty()) continue;
      std::sort(acc->pairs.begin(), acc->pairs.end());
      store::UserBitmap pairs;
      uint32_t last = UINT32_MAX;
      for (uint32_t p : acc->pairs) {
        if (p != last) pairs.Add(p);
        last = p;
      }
      value.clear();
      pairs.AppendEncoded(&value);
      if (!store::RequestsPairsKeyOf(k, &key_)) continue;
      batch.Merge(store_->bitmaps(), key_, value);
    }
  }
  // Every record key of the batch, for the store's change log: each event touches its agent's
  // row here (even with no field to set) whenever it touches that agent's counters or bitmaps.
  touched_records_.clear();
  touched_records_.reserve(records_.size());
  const std::string user_label_prefix = store::UserLabelPrefix();
  const std::string agent_label_prefix = store::AgentLabelPrefix();
  for (auto* entry : Sorted(records_)) {
    touched_records_.push_back(entry->first);
    if (entry->second.empty()) continue;
    // The directory takes the batch's winning label per user / agent: its latest-wins rule
    // (ties to the later) gives the same result as applying every event's label in order.
    uint32_t index;
    const bool user_label = entry->first.starts_with(user_label_prefix);
    if ((user_label || entry->first.starts_with(agent_label_prefix)) &&
        store::DecodeLabelKey(entry->first, &index)) {
      if (const store::Field* f = store::FindField(entry->second, store::field::kLabel)) {
        directory_updates_.push_back({user_label ? store::Directory::Update::Kind::kUserEmail
                                                 : store::Directory::Update::Kind::kAgentName,
                                      index,
                                      f->time_ms,
                                      f->value,
                                      {}});
      }
    }
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
  for (auto& [ref, index] : new_agents_) {
    std::string_view ws, agent;
    store::DecodeAgentRef(ref, &ws, &agent);
    store::AgentDictKey(ws, agent, &key_);
    batch.Put(store_->dict(), key_, store::EncodeUint32(index));
    store::AgentDictReverseKey(index, &key_);
    batch.Put(store_->dict(), key_, ref);
  }
  if (!new_agents_.empty()) {
    batch.Put(store_->dict(), store::AgentDictNextKey(), store::EncodeUint32(next_agent_index_));
  }
  for (auto& [pair, index] : new_pairs_) {
    store::PairDictKey(static_cast<uint32_t>(pair >> 32), static_cast<uint32_t>(pair), &key_);
    batch.Put(store_->dict(), key_, store::EncodeUint32(index));
  }
  if (!new_pairs_.empty()) {
    batch.Put(store_->dict(), store::PairDictNextKey(), store::EncodeUint32(next_pair_index_));
  }
  for (const PartitionOffset& o : offsets) {
    store::OffsetKey(o.topic, o.partition, &key_);
    batch.Put(store_->meta(), key_, store::EncodeOffset({std::string(cluster_id), o.next_offset}));
  }
  stats.new_users = new_users_.size();

  if (auto s = store_->Write(&batch, &touched_records_); !s) {
    rollback();
    return std::unexpected(s.error());
  }
  if (directory_) directory_->Apply(directory_updates_);
  return stats;
}

}  // namespace tally::aggregate
