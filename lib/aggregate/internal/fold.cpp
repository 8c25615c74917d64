#include <algorithm>
#include <cassert>

#include "aggregate/internal/aggregator_impl.h"

namespace tally::aggregate {
namespace {

using event::Action;
using event::EntityKind;
using internal::G;
using internal::kUp;
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

}  // namespace

Status Aggregator::Impl::FoldEvents(std::span<const event::UsageEvent* const> events,
                                    std::span<const int32_t> partitions,
                                    std::vector<uint8_t>* dup_out, ApplyStats* stats,
                                    int64_t* batch_newest) {
  std::vector<uint8_t>& dup = *dup_out;
  constexpr uint8_t kRefused = 2;  // dup[i]: names another organization than its workspace's
  for (size_t i = 0; i < events.size(); ++i) {
    const event::UsageEvent& e = *events[i];
    // Batch ids are dense in first-seen order: a new workspace gets the next slot.
    const uint32_t ws = workspaces_.Id(e.workspace_id);
    if (ws == batch_ws_orgs_.size()) batch_ws_orgs_.push_back(OrganizationOf(e.workspace_id));
    if (!partitions.empty()) {
      // Each workspace normally comes from one partition; any other is noted as well.
      const int32_t partition = partitions[i];
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
        ++stats->organization_mismatches;
        continue;
      }
    }
    if (dup[i]) {
      // A re-sent event that binds its workspace stores the binding like its first copy did.
      if (binds) {
        RecordOf(RecordKind::kWorkspace, ws, 0, e)
            .Merge(store::field::kWorkspaceOrganization, e.time_ms, e.organization_id);
      }
      ++stats->duplicates;
      continue;
    }
    auto index = UserIndex(e.user_id);
    if (!index) return std::unexpected(index.error());
    if (auto folded = Fold(e, *index, ws); !folded) return std::unexpected(folded.error());
    *batch_newest = std::max(*batch_newest, e.time_ms);
    ++stats->applied;
  }
  return Ok();
}

Result<uint32_t> Aggregator::Impl::AgentIndex(std::string_view workspace_id,
                                              std::string_view agent_id) {
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

Result<uint32_t> Aggregator::Impl::PairIndex(uint32_t agent_index, uint32_t user_index) {
  const uint64_t pair = (uint64_t{agent_index} << 32) | user_index;
  if (auto it = pair_index_cache_.find(pair); it != pair_index_cache_.end()) return it->second;
  const uint64_t hash = pair_filter_ ? internal::PairHash(pair) : 0;
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

Result<uint32_t> Aggregator::Impl::UserIndex(std::string_view user_id) {
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

uint32_t Aggregator::Impl::Interner::Id(std::string_view s) {
  auto [it, inserted] = ids.try_emplace(s, static_cast<uint32_t>(names.size()));
  if (inserted) names.push_back(s);
  return it->second;
}

uint32_t Aggregator::Impl::EntityId(uint32_t ws, event::EntityKind kind, std::string_view id) {
  EntityRef ref{ws, kind, id};
  auto [it, inserted] = entity_ids_.try_emplace(ref, static_cast<uint32_t>(entities_.size()));
  if (inserted) entities_.push_back({ref, -1});
  return it->second;
}

void Aggregator::Impl::RecordAcc::Merge(uint8_t id, int64_t time_ms, std::string_view value) {
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

Aggregator::Impl::RecordAcc& Aggregator::Impl::RecordOf(RecordKind kind, uint32_t a, uint32_t b,
                                                        const event::UsageEvent& e) {
  RecordAcc& r = records_[RecordRef{kind, a, b}];
  if (r.origin == nullptr) r.origin = &e;
  return r;
}

uint32_t Aggregator::Impl::RequestScopeId(const event::UsageEvent& e, uint32_t ws) {
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

void Aggregator::Impl::FoldRequest(const event::UsageEvent& e, DayNumber day, uint32_t user_index,
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

Status Aggregator::Impl::Fold(const event::UsageEvent& e, uint32_t user_index, uint32_t ws) {
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

void Aggregator::Impl::RollUp() {
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

}  // namespace tally::aggregate
