#include "aggregate/aggregator.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstring>

#include "aggregate/internal/key_filter.h"

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

constexpr int kGranularities = 3;
// Keys the dedupe filter is sized for (12 bits each: 24 MiB). A store holding more dedupe
// entries (the dedupe window's worth of events) is deduplicated by store lookups alone.
constexpr size_t kDedupeFilterKeys = size_t{16} << 20;
// Pairs the pair filter is sized for, at least (12 bits each: 6 MiB), and at most: a store with
// more pairs looks each new pair up.
constexpr size_t kPairFilterMinKeys = size_t{4} << 20;
constexpr size_t kPairFilterMaxKeys = size_t{64} << 20;
// Filter probes run this many keys behind their prefetches (each probe is one cache miss).
constexpr size_t kPrefetchAhead = 8;
constexpr Granularity kUp[] = {Granularity::kWeek, Granularity::kMonth};

int G(Granularity g) { return static_cast<int>(g); }

uint64_t PairHash(uint64_t pair) {
  char bytes[sizeof pair];
  std::memcpy(bytes, &pair, sizeof pair);
  return internal::KeyFilter::HashOf(std::string_view(bytes, sizeof bytes));
}

// Sorts `rows` (encoded key, row) by key and adds each row's encoding with `add` (a WriteSet
// operation): in key order, the memtable's skip list finds each insert position next to the
// previous one.
template <typename Row, typename Encode>
void AddInKeyOrder(store::WriteSet* set,
                   void (store::WriteSet::*add)(std::string_view, std::string_view),
                   std::vector<std::pair<std::string_view, Row*>>* rows, std::string* value,
                   Encode&& encode) {
  std::sort(rows->begin(), rows->end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [key, row] : *rows) {
    value->clear();
    encode(row, value);
    (set->*add)(key, *value);
  }
}

}  // namespace

Aggregator::Aggregator(store::Store* store)
    : store_(store), write_set_(*store), async_set_(*store) {}
Aggregator::~Aggregator() = default;

Status Aggregator::Drain() {
  if (writer_.pending()) {
    Status written = writer_.Get();
    if (!written && async_error_) async_error_ = written;
    inflight_order_.clear();  // stored (or failed): the store answers for them now
  }
  return async_error_;
}

Result<std::unique_ptr<Aggregator>> Aggregator::Create(store::Store* store) {
  std::unique_ptr<Aggregator> agg(new Aggregator(store));
  auto next = store->LoadDictionaryNext();
  if (!next) return std::unexpected(next.error());
  agg->next_user_index_ = next->user;
  agg->next_agent_index_ = next->agent;
  agg->next_pair_index_ = next->pair;
  if (auto loaded = agg->LoadOrganizations(); !loaded) return std::unexpected(loaded.error());
  agg->partitioned_ = store->partitioned();
  agg->LoadDedupeFilter();
  agg->LoadPairFilter();
  return agg;
}

Status Aggregator::LoadOrganizations() {
  return store_->ScanWorkspaceRecords([&](std::string_view ws, const store::Record& record) {
    const store::Field* f = store::FindField(record, store::field::kWorkspaceOrganization);
    if (f != nullptr && !f->value.empty()) organizations_.emplace(ws, f->value);
  });
}

void Aggregator::DeclareOrganizations(const OrganizationBindings& bindings) {
  for (const auto& [ws, org] : bindings) {
    organizations_.insert_or_assign(ws, org);
    declared_.insert(ws);
  }
}

void Aggregator::ForgetPartition(std::string_view topic, int32_t partition,
                                 std::span<const std::string> workspaces) {
  std::string key;
  for (const std::string& ws : workspaces) {
    if (!declared_.contains(ws)) organizations_.erase(ws);
    store::PartitionWorkspaceKey(topic, partition, ws, &key);
    known_index_.erase(key);
  }
}

Status Aggregator::IndexPartitions(const EventOrigins& origins, store::WriteSet* set) {
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

std::string_view Aggregator::OrganizationOf(std::string_view workspace_id) const {
  auto it = organizations_.find(workspace_id);
  return it == organizations_.end() ? std::string_view() : std::string_view(it->second);
}

void Aggregator::MarkOrganizationMismatches(std::span<const event::UsageEvent* const> events,
                                            std::vector<uint8_t>* refused) const {
  refused->assign(events.size(), 0);
  // Bindings made by earlier events of `events`.
  absl::flat_hash_map<std::string_view, std::string_view, StringHash, std::equal_to<>> batch;
  for (size_t i = 0; i < events.size(); ++i) {
    const event::UsageEvent& e = *events[i];
    if (e.organization_id.empty()) continue;
    std::string_view bound = OrganizationOf(e.workspace_id);
    if (bound.empty()) bound = batch.try_emplace(e.workspace_id, e.organization_id).first->second;
    (*refused)[i] = bound != e.organization_id ? 1 : 0;
  }
}

void Aggregator::LoadDedupeFilter() {
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

void Aggregator::LoadPairFilter() {
  // The pair dictionary holds exactly the pairs numbered below the next free index.
  if (next_pair_index_ > kPairFilterMaxKeys / 2) return;
  auto filter = std::make_unique<internal::KeyFilter>(
      std::max<size_t>(kPairFilterMinKeys, size_t{2} * next_pair_index_));
  auto scanned = store_->ScanPairDictionary([&](uint32_t agent, uint32_t user) {
    filter->AddHash(PairHash((uint64_t{agent} << 32) | user));
    return true;
  });
  if (scanned) pair_filter_ = std::move(filter);
}

Result<uint32_t> Aggregator::AgentIndex(std::string_view workspace_id, std::string_view agent_id) {
  store::EncodeAgentRef(workspace_id, agent_id, &agent_ref_);
  if (auto it = agent_index_cache_.find(agent_ref_); it != agent_index_cache_.end()) {
    return it->second;
  }
  auto stored = store_->LookupAgentIndex(workspace_id, agent_id);
  if (!stored) return std::unexpected(stored.error());
  uint32_t index;
  if (*stored) {
    index = **stored;
  } else {
    index = next_agent_index_++;
    new_agents_.emplace_back(agent_ref_, index);
    directory_updates_.push_back({store::Directory::Update::Kind::kNewAgent, index, 0,
                                  std::string(workspace_id), std::string(agent_id)});
  }
  agent_index_cache_.emplace(agent_ref_, index);
  return index;
}

Result<uint32_t> Aggregator::PairIndex(uint32_t agent_index, uint32_t user_index) {
  const uint64_t pair = (uint64_t{agent_index} << 32) | user_index;
  if (auto it = pair_index_cache_.find(pair); it != pair_index_cache_.end()) return it->second;
  const uint64_t hash = pair_filter_ ? PairHash(pair) : 0;
  std::optional<uint32_t> stored;
  if (!pair_filter_ || pair_filter_->MayContainHash(hash)) {
    auto found = store_->LookupPairIndex(agent_index, user_index);
    if (!found) return std::unexpected(found.error());
    stored = *found;
  }
  uint32_t index;
  if (stored) {
    index = *stored;
  } else {
    index = next_pair_index_++;
    new_pairs_.emplace_back(pair, index);
    // Added before the batch is stored: a failed batch only leaves false positives.
    if (pair_filter_) {
      pair_filter_->AddHash(hash);
      if (pair_filter_->Saturated()) pair_filter_.reset();
    }
  }
  pair_index_cache_.emplace(pair, index);
  return index;
}

Result<uint32_t> Aggregator::UserIndex(std::string_view user_id) {
  if (auto it = user_index_cache_.find(user_id); it != user_index_cache_.end()) return it->second;
  auto stored = store_->LookupUserIndex(user_id);
  if (!stored) return std::unexpected(stored.error());
  uint32_t index;
  if (*stored) {
    index = **stored;
  } else {
    index = next_user_index_++;
    new_users_.emplace_back(user_id, index);
    directory_updates_.push_back(
        {store::Directory::Update::Kind::kNewUser, index, 0, std::string(user_id), std::string()});
  }
  user_index_cache_.emplace(user_id, index);
  return index;
}

uint32_t Aggregator::Interner::Id(std::string_view s) {
  auto [it, inserted] = ids.try_emplace(s, static_cast<uint32_t>(names.size()));
  if (inserted) names.push_back(s);
  return it->second;
}

uint32_t Aggregator::EntityId(uint32_t ws, event::EntityKind kind, std::string_view id) {
  EntityRef ref{ws, kind, id};
  auto [it, inserted] = entity_ids_.try_emplace(ref, static_cast<uint32_t>(entities_.size()));
  if (inserted) entities_.push_back({ref, -1});
  return it->second;
}

void Aggregator::RecordAcc::Merge(uint8_t id, int64_t time_ms, std::string_view value) {
  // store::MergeField's rules, on views: latest wins (ties to the later event), or earliest
  // wins (ties to the first) for ids 64..127.
  for (uint8_t k = 0; k < size; ++k) {
    FieldAcc& f = fields[k];
    if (f.id != id) continue;
    if (store::PolicyOf(id) == store::kEarliestWins ? time_ms < f.time_ms : time_ms >= f.time_ms) {
      f.time_ms = time_ms;
      f.value = value;
    }
    return;
  }
  assert(size < kMaxFields);
  fields[size++] = FieldAcc{id, time_ms, value};
}

Aggregator::RecordAcc& Aggregator::RecordOf(RecordKind kind, uint32_t a, uint32_t b,
                                            const event::UsageEvent& e) {
  RecordAcc& r = records_[RecordRef{kind, a, b}];
  if (r.origin == nullptr) r.origin = &e;
  return r;
}

uint32_t Aggregator::RequestScopeId(const event::UsageEvent& e, uint32_t ws) {
  if (!scope_by_workspace_) return orgs_.Id(e.organization_id);
  constexpr uint32_t kUnset = UINT32_MAX;
  if (ws >= workspace_scopes_.size()) workspace_scopes_.resize(ws + 1, kUnset);
  uint32_t& id = workspace_scopes_[ws];
  // Every event of a workspace that reaches the fold names its bound organization (or none).
  if (id == kUnset) {
    scope_names_.push_back(store::WorkspaceRequestScope(e.organization_id, e.workspace_id));
    id = orgs_.Id(scope_names_.back());
  }
  return id;
}

void Aggregator::FoldRequest(const event::UsageEvent& e, DayNumber day, uint32_t user_index,
                             uint32_t agent_index, uint32_t pair_index, uint32_t project,
                             uint32_t org) {
  const uint64_t errors = e.is_error() ? 1 : 0;
  const uint64_t tokens = static_cast<uint64_t>(e.tokens.value_or(0));
  const int64_t cost = store::CostNanos(e.cost_usd.value_or(0));
  for (uint32_t p : {0u, project}) {
    for (uint32_t agent : {store::kAllAgents, agent_index}) {
      SliceAcc& acc = slices_[SliceKey{org, agent, p, Granularity::kDay, day}];
      store::SliceTotals& t = acc.slice.totals;
      SatAddTo(&t.requests, uint64_t{1});
      SatAddTo(&t.errors, errors);
      SatAddTo(&t.tokens, tokens);
      SatAddTo(&t.cost_nanos, cost);
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

Status Aggregator::Fold(const event::UsageEvent& e, uint32_t user_index, uint32_t ws) {
  const DayNumber day = BucketDay(e.time_ms, e.workspace_id);
  const Counters delta = DeltaOf(e);
  const bool active = e.kind == EntityKind::kAgent && e.action == Action::kExecuted;
  const uint32_t entity = EntityId(ws, e.kind, e.entity_id);
  // 0 = no project, else 1 + batch project id (the slices' convention).
  const uint32_t project = e.project_id.empty() ? 0 : 1 + projects_.Id(e.project_id);

  // Only day rows are combined per event; week and month rows are rolled up from them once
  // per batch (RollUp), which is a third of the hashing on this hot path.
  auto& day_counters = counters_[G(Granularity::kDay)];
  auto& day_bitmaps = bitmaps_[G(Granularity::kDay)];
  auto add = [&](Scope scope, uint32_t id) {
    const RowKey k{ws, id, day, scope};
    day_counters[k].Add(delta);
    if (active && scope != Scope::kUser) day_bitmaps[k].Add(user_index);
  };
  add(Scope::kWorkspace, 0);
  add(Scope::kUser, user_index);
  add(Scope::kEntity, entity);
  if (project != 0) add(Scope::kProject, project - 1);

  const int64_t t = e.time_ms;
  RecordAcc& profile = RecordOf(RecordKind::kProfile, ws, user_index, e);
  profile.SetIfPresent(store::field::kUserName, t, e.user_name);
  profile.SetIfPresent(store::field::kUserEmail, t, e.user_email);
  profile.SetIfPresent(store::field::kUserPhoto, t, e.user_photo);

  RecordAcc& row = RecordOf(RecordKind::kEntity, entity, 0, e);
  row.SetIfPresent(store::field::kEntityName, t, e.entity_name);
  row.SetIfPresent(store::field::kEntityVisibility, t, e.entity_visibility);
  row.SetIfPresent(store::field::kEntityOwner, t, e.entity_owner_user_id);
  row.SetIfPresent(store::field::kEntityProject, t, e.project_id);
  if (e.action == Action::kCreated || e.action == Action::kCopied) {
    row.Merge(store::field::kEntityCreated, t, e.user_id);
    row.Merge(store::field::kEntityRevived, t, {});
    if (e.action == Action::kCopied) row.Merge(store::field::kEntityCopied, t, "1");
  } else if (e.action == Action::kDeleted) {
    row.Merge(store::field::kEntityDeleted, t, {});
  }

  RecordAcc& wsrow = RecordOf(RecordKind::kWorkspace, ws, 0, e);
  wsrow.SetIfPresent(store::field::kWorkspaceOrganization, t, e.organization_id);
  wsrow.Merge(store::field::kWorkspaceFirstEvent, t, {});
  wsrow.Merge(store::field::kWorkspaceLastEvent, t, {});

  // Request analytics: labels by dense index (a user's email per organization, from that
  // organization's events only), and the slices.
  if (!e.user_email.empty() && !e.organization_id.empty()) {
    RecordOf(RecordKind::kUserLabel, user_index, RequestScopeId(e, ws), e)
        .Merge(store::field::kLabel, t, e.user_email);
  }
  if (e.kind != EntityKind::kAgent) return Ok();
  EntityInfo& info = entities_[entity];
  if (info.agent_index < 0) {
    auto agent_index = AgentIndex(e.workspace_id, e.entity_id);
    if (!agent_index) return std::unexpected(agent_index.error());
    info.agent_index = *agent_index;
  }
  const auto agent_index = static_cast<uint32_t>(info.agent_index);
  if (!e.entity_name.empty()) {
    RecordOf(RecordKind::kAgentLabel, agent_index, 0, e)
        .Merge(store::field::kLabel, t, e.entity_name);
  }
  if (e.action != Action::kExecuted || e.organization_id.empty()) return Ok();
  auto pair_index = PairIndex(agent_index, user_index);
  if (!pair_index) return std::unexpected(pair_index.error());
  FoldRequest(e, day, user_index, agent_index, *pair_index, project, RequestScopeId(e, ws));
  return Ok();
}

void Aggregator::RollUp() {
  for (Granularity up : kUp) {
    auto& counters = counters_[G(up)];
    for (const auto& [k, c] : counters_[G(Granularity::kDay)].rows) {
      counters[RowKey{k.ws, k.id, BucketOf(k.bucket, up), k.scope}].Add(c);
    }
    auto& bitmaps = bitmaps_[G(up)];
    for (const auto& [k, b] : bitmaps_[G(Granularity::kDay)]) {
      bitmaps[RowKey{k.ws, k.id, BucketOf(k.bucket, up), k.scope}].Or(b);
    }
  }

  // Request slices: the same roll-up on their integer keys. Day slices hold one entry per event
  // until combined: combining them first makes the week and month copies small.
  for (auto& [key, acc] : slices_) {
    acc.slice.Normalize();
    std::sort(acc.pairs.begin(), acc.pairs.end());
    acc.pairs.erase(std::unique(acc.pairs.begin(), acc.pairs.end()), acc.pairs.end());
  }
  rollup_slices_.clear();
  for (const auto& [key, acc] : slices_) {
    for (Granularity up : kUp) {
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

std::string* Aggregator::NextKey() {
  if (keys_used_ == key_pool_.size()) key_pool_.emplace_back();
  return &key_pool_[keys_used_++];
}

void Aggregator::EncodeRowKey(bool bitmap, const RowKey& k, Granularity g, std::string* out) {
  switch (k.scope) {
    case Scope::kWorkspace:
      scope_id_.clear();
      break;
    case Scope::kUser:
      store::ScopeIdUser(k.id, &scope_id_);
      break;
    case Scope::kEntity: {
      const EntityRef& ref = entities_[k.id].ref;
      store::ScopeIdEntity(ref.kind, ref.id, &scope_id_);
      break;
    }
    case Scope::kProject:
      store::ScopeIdProject(projects_.names[k.id], &scope_id_);
      break;
  }
  const std::string_view ws = workspaces_.names[k.ws];
  if (bitmap) {
    store::BitmapKey(k.scope, ws, g, k.bucket, scope_id_, out);
  } else {
    store::CounterKey(k.scope, ws, g, k.bucket, scope_id_, out);
  }
}

void Aggregator::WriteRows(store::WriteSet* set) {
  // Keys go into the set in sorted order per kind of row: the memtable skip list then finds each
  // insert position next to the previous one instead of searching from the top.
  std::string value;
  {
    // Counters. User-scope rows become one pack operand per (workspace, bucket), holding the
    // bucket's users in index order (the pack's own order).
    std::vector<std::pair<std::string_view, const Counters*>> rows;
    struct UserRow {
      uint32_t ws;
      Granularity g;
      int32_t bucket;
      uint32_t user;
      const Counters* c;
    };
    std::vector<UserRow> user_rows;
    for (int g = 0; g < kGranularities; ++g) {
      for (const auto& [k, c] : counters_[g].rows) {
        if (k.scope == Scope::kUser) {
          user_rows.push_back({k.ws, static_cast<Granularity>(g), k.bucket, k.id, &c});
          continue;
        }
        std::string* key = NextKey();
        EncodeRowKey(false, k, static_cast<Granularity>(g), key);
        rows.emplace_back(*key, &c);
      }
    }
    AddInKeyOrder(set, &store::WriteSet::AddCounters, &rows, &value,
                  [](const Counters* c, std::string* out) { store::AppendCounters(*c, out); });
    std::sort(user_rows.begin(), user_rows.end(), [](const UserRow& a, const UserRow& b) {
      return std::tie(a.ws, a.g, a.bucket, a.user) < std::tie(b.ws, b.g, b.bucket, b.user);
    });
    std::string pack;
    for (size_t i = 0; i < user_rows.size();) {
      const UserRow& first = user_rows[i];
      store::UserPackWriter writer(&pack);
      size_t j = i;
      for (; j < user_rows.size() && user_rows[j].ws == first.ws && user_rows[j].g == first.g &&
             user_rows[j].bucket == first.bucket;
           ++j) {
        writer.Add(user_rows[j].user, *user_rows[j].c);
      }
      store::UserPackKey(workspaces_.names[first.ws], first.g, first.bucket, &key_);
      set->AddUserPack(key_, pack);
      i = j;
    }
  }
  {
    std::vector<std::pair<std::string_view, store::UserBitmap*>> rows;
    for (int g = 0; g < kGranularities; ++g) {
      for (auto& [k, b] : bitmaps_[g]) {
        std::string* key = NextKey();
        EncodeRowKey(true, k, static_cast<Granularity>(g), key);
        rows.emplace_back(*key, &b);
      }
    }
    AddInKeyOrder(set, &store::WriteSet::OrBitmap, &rows, &value,
                  [](store::UserBitmap* b, std::string* out) { b->AppendEncoded(out); });
  }
  {
    // Slices, their users bitmaps and (all agents) pairs bitmaps, in key order per family.
    std::vector<std::pair<std::string_view, SliceAcc*>> keyed;
    keyed.reserve(slices_.size());
    for (auto& [k, acc] : slices_) {
      std::string_view project = k.project ? projects_.names[k.project - 1] : std::string_view();
      std::string* key = NextKey();
      store::RequestsSliceKey(orgs_.names[k.org], k.agent, k.project ? &project : nullptr,
                              k.granularity, k.bucket, key);
      keyed.emplace_back(*key, &acc);
    }
    AddInKeyOrder(set, &store::WriteSet::AddSlice, &keyed, &value,
                  [](SliceAcc* acc, std::string* out) {
                    acc->slice.Normalize();
                    store::AppendSlice(acc->slice, out);
                  });
    // The bitmap keys differ from the slice keys only in their tag, so the same order holds.
    for (auto& [k, acc] : keyed) {
      store::UserBitmap users;
      for (const store::SliceUser& u : acc->slice.users) users.Add(u.user);
      value.clear();
      users.AppendEncoded(&value);
      if (!store::RequestsUsersKeyOf(k, &key_)) continue;
      set->OrBitmap(key_, value);
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
      set->OrBitmap(key_, value);
    }
  }
  {
    // Records. Every record key of the batch goes to the store's change log: each event touches
    // its agent's row here (even with no field to set) whenever it touches that agent's counters
    // or bitmaps.
    struct Row {
      std::string_view key;
      RecordAcc* acc;
      uint32_t entity;  // batch entity id of an entity row, else UINT32_MAX
    };
    std::vector<Row> rows;
    rows.reserve(records_.rows.size());
    for (auto& [ref, r] : records_.rows) {
      std::string* key = NextKey();
      const event::UsageEvent& e = *r.origin;
      switch (ref.kind) {
        case RecordKind::kProfile:
          store::UserProfileKey(e.workspace_id, e.user_id, key);
          break;
        case RecordKind::kEntity:
          store::EntityKey(e.workspace_id, e.kind, e.entity_id, key);
          break;
        case RecordKind::kWorkspace:
          store::WorkspaceKey(e.workspace_id, key);
          break;
        case RecordKind::kUserLabel:
          store::UserLabelKey(orgs_.names[ref.b], ref.a, key);
          break;
        case RecordKind::kAgentLabel:
          store::AgentLabelKey(ref.a, key);
          break;
      }
      rows.push_back({*key, &r, ref.kind == RecordKind::kEntity ? ref.a : UINT32_MAX});
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.key < b.key; });
    note_.record_keys.clear();
    note_.record_keys.reserve(rows.size());
    note_fields_.clear();
    std::vector<uint32_t> fields_begin;  // per row, into note_fields_
    fields_begin.reserve(rows.size() + 1);
    entity_record_.assign(entities_.size(), UINT32_MAX);
    for (const Row& row : rows) {
      RecordAcc* r = row.acc;
      if (row.entity != UINT32_MAX) {
        entity_record_[row.entity] = static_cast<uint32_t>(note_.record_keys.size());
      }
      note_.record_keys.push_back(row.key);
      fields_begin.push_back(static_cast<uint32_t>(note_fields_.size()));
      if (r->size == 0) continue;
      std::sort(r->fields.begin(), r->fields.begin() + r->size,
                [](const auto& a, const auto& b) { return a.id < b.id; });
      record_scratch_.resize(r->size);
      for (uint8_t k = 0; k < r->size; ++k) {
        record_scratch_[k].id = r->fields[k].id;
        record_scratch_[k].time_ms = r->fields[k].time_ms;
        record_scratch_[k].value.assign(r->fields[k].value);
        note_fields_.push_back({r->fields[k].id, r->fields[k].value});
      }
      value.clear();
      store::AppendRecord(record_scratch_, &value);
      set->MergeRecord(row.key, value);
    }
    fields_begin.push_back(static_cast<uint32_t>(note_fields_.size()));
    note_.fields.clear();
    note_.fields.reserve(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      note_.fields.push_back(std::span<const store::NoteField>(note_fields_)
                                 .subspan(fields_begin[i], fields_begin[i + 1] - fields_begin[i]));
    }
    // Every entity's usage rows: its day rows (the week and month rows are rolled up from them).
    note_.usage.clear();
    const auto& day_bitmaps = bitmaps_[G(Granularity::kDay)];
    for (const auto& [k, c] : counters_[G(Granularity::kDay)].rows) {
      if (k.scope != Scope::kEntity) continue;
      const auto b = day_bitmaps.find(k);
      note_.usage.push_back(
          {entity_record_[k.id], k.bucket, &c, b == day_bitmaps.end() ? nullptr : &b->second});
    }
    // The directory takes the batch's winning label per user / agent: its latest-wins rule
    // (ties to the later) gives the same result as applying every event's label in order.
    for (auto& [ref, r] : records_.rows) {
      if (ref.kind != RecordKind::kUserLabel && ref.kind != RecordKind::kAgentLabel) continue;
      if (r.size == 0) continue;
      const RecordAcc::FieldAcc& f = r.fields[0];  // labels hold one field, kLabel
      const bool user = ref.kind == RecordKind::kUserLabel;
      directory_updates_.push_back({user ? store::Directory::Update::Kind::kUserEmail
                                         : store::Directory::Update::Kind::kAgentName,
                                    ref.a, f.time_ms, std::string(f.value),
                                    user ? std::string(orgs_.names[ref.b]) : std::string()});
    }
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
                                     std::string_view cluster_id, EventOrigins origins) {
  ApplyStats stats;
  const bool index_partitions = partitioned_ && origins.partitions.size() == events.size();
  if (!async_error_) return std::unexpected(async_error_.error());
  for (int g = 0; g < kGranularities; ++g) {
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

  // Dedupe: first within the batch, then against the store with one MultiGet. Working in key
  // order finds in-batch repeats as neighbours, lets MultiGet skip its own sort, and feeds the
  // memtable sorted inserts later.
  dedupe_keys_.resize(std::max(dedupe_keys_.size(), events.size()));
  std::vector<std::string>& dedupe_keys = dedupe_keys_;
  if (dedupe_filter_) dedupe_hashes_.resize(events.size());
  std::vector<size_t> order(events.size());
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
  std::vector<uint8_t> dup(events.size(), 0);
  {
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
        auto it =
            std::lower_bound(inflight_order_.begin(), inflight_order_.end(), lookups[k], less);
        if (it != inflight_order_.end() && inflight_keys_[*it] == lookups[k]) dup[which[k]] = 1;
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

  // The newest time of the events actually applied: the store's newest event time (the late
  // policy's and the dedupe expiry's reference) only advances once they are written.
  int64_t batch_newest = INT64_MIN;
  const bool async = async_write_ && !stage_;
  store::WriteSet& set = async ? *filling_set_ : write_set_;
  set.Clear();
  batch_ws_orgs_.clear();
  new_bindings_.clear();
  batch_ws_partition_.clear();
  other_partitions_.clear();
  new_index_.clear();
  constexpr uint8_t kRefused = 2;  // dup[i]: names another organization than its workspace's
  for (size_t i = 0; i < events.size(); ++i) {
    const event::UsageEvent& e = *events[i];
    // Batch ids are dense in first-seen order: a new workspace gets the next slot.
    const uint32_t ws = workspaces_.Id(e.workspace_id);
    if (ws == batch_ws_orgs_.size()) batch_ws_orgs_.push_back(OrganizationOf(e.workspace_id));
    if (index_partitions) {
      // Each workspace normally comes from one partition; any other is noted as well.
      const int32_t partition = origins.partitions[i];
      if (ws == batch_ws_partition_.size()) {
        batch_ws_partition_.push_back(partition);
      } else if (batch_ws_partition_[ws] != partition) {
        other_partitions_.emplace_back(partition, ws);
      }
    }
    // In log order, duplicates included, exactly as MarkOrganizationMismatches judges them.
    bool binds = false;
    if (!e.organization_id.empty()) {
      std::string_view& bound = batch_ws_orgs_[ws];
      if (bound.empty()) {
        bound = e.organization_id;
        new_bindings_.emplace_back(e.workspace_id, e.organization_id);
        binds = true;
      } else if (bound != e.organization_id) {
        dup[i] = kRefused;
        ++stats.organization_mismatches;
        continue;
      }
    }
    if (dup[i]) {
      // A re-sent event that binds its workspace stores the binding like its first copy did.
      if (binds) {
        RecordOf(RecordKind::kWorkspace, ws, 0, e)
            .Merge(store::field::kWorkspaceOrganization, e.time_ms, e.organization_id);
      }
      ++stats.duplicates;
      continue;
    }
    auto index = UserIndex(e.user_id);
    if (!index) {
      rollback();
      return std::unexpected(index.error());
    }
    if (auto folded = Fold(e, *index, ws); !folded) {
      rollback();
      return std::unexpected(folded.error());
    }
    batch_newest = std::max(batch_newest, e.time_ms);
    ++stats.applied;
  }

  // A staged batch leaves its week and month rows to the store, which adds each day row to them
  // in its open state (WriteSet::set_roll_up_days): cheaper for a stream of small batches than
  // creating, encoding and staging a week and a month copy of every day row of each. A batch
  // written directly rolls up here, where the days of one week or month combine first.
  set.set_roll_up_days(stage_);
  if (!stage_) RollUp();
  // Keys go into the batch in sorted order: the memtable skip list then finds each insert
  // position next to the previous one instead of searching from the top.
  const int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (dedupe_filter_ && k + kPrefetchAhead < order.size()) {
      dedupe_filter_->Prefetch(dedupe_hashes_[order[k + kPrefetchAhead]]);
    }
    if (dup[i]) continue;
    set.PutDedupe(dedupe_keys[i], events[i]->time_ms, wall_ms);
    // Added before the write succeeds: a failed batch only leaves false positives.
    if (dedupe_filter_) dedupe_filter_->AddHash(dedupe_hashes_[i]);
  }
  if (dedupe_filter_ && dedupe_filter_->Saturated()) dedupe_filter_.reset();
  if (batch_newest > newest_before) set.PutNewestEventTime(batch_newest);
  if (index_partitions) {
    if (Status s = IndexPartitions(origins, &set); !s) {
      rollback();
      return std::unexpected(s.error());
    }
  } else if (partitioned_ && !events.empty()) {
    set.MarkUnindexedEvents();
  }
  WriteRows(&set);
  for (auto& [id, index] : new_users_) set.PutUser(id, index);
  if (!new_users_.empty()) set.PutUserNext(next_user_index_);
  for (auto& [ref, index] : new_agents_) {
    std::string_view ws, agent;
    store::DecodeAgentRef(ref, &ws, &agent);
    set.PutAgent(ws, agent, index);
  }
  if (!new_agents_.empty()) set.PutAgentNext(next_agent_index_);
  for (auto& [pair, index] : new_pairs_) {
    set.PutPair(static_cast<uint32_t>(pair >> 32), static_cast<uint32_t>(pair), index);
  }
  if (!new_pairs_.empty()) set.PutPairNext(next_pair_index_);
  for (const PartitionOffset& o : offsets) {
    set.PutOffset(o.topic, o.partition, {std::string(cluster_id), o.next_offset});
  }
  stats.new_users = new_users_.size();

  if (async) {
    // The batch before this one was written while this one was folded; it must land first.
    if (Status s = Drain(); !s) {
      rollback();
      return std::unexpected(s.error());
    }
    writer_.Start([this, to_write = &set] { return store_->Write(to_write, nullptr); });
    filling_set_ = filling_set_ == &write_set_ ? &async_set_ : &write_set_;
    // This batch's dedupe keys, for the next batch's lookups while the write runs.
    dedupe_keys_.swap(inflight_keys_);
    inflight_order_.clear();
    for (size_t i : order) {
      if (!dup[i]) inflight_order_.push_back(static_cast<uint32_t>(i));
    }
  } else if (auto s = stage_ ? store_->Stage(&set, &note_) : store_->Write(&set, &note_); !s) {
    rollback();
    return std::unexpected(s.error());
  }
  if (batch_newest != INT64_MIN) store_->ObserveEventTime(batch_newest);
  for (const auto& [ws, org] : new_bindings_) organizations_.emplace(ws, org);
  for (std::string& key : new_index_) known_index_.insert(std::move(key));
  if (directory_) directory_->Apply(directory_updates_);
  return stats;
}

}  // namespace tally::aggregate
