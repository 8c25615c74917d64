// The fold floor: what parsing and folding events into tally's views costs with nothing else
// around it. Every event of an NDJSON file is parsed with tally's EventParser, then folded into
// in-memory tables that hold the same views the aggregator keeps (counters per workspace, user,
// agent and project; exact distinct users; request-analytics slices with their per-user,
// per-agent and pair entries; latest-wins labels; dedupe marks; the user, agent and pair
// dictionaries), each at day, week and month granularity. No store, no encoding, no
// persistence, no Kafka: what a fold built from hash tables or flat arrays costs before anything
// is stored, against which the write path's cost per event can be read (docs/benchmarks.md).
//
// Usage: fold_floor FILE.ndjson [rounds] [batch | dense | prefetch | sorted |
//                                        dense-no-slice-entries]
//   Reports, per round, the thread CPU time per event of parsing all lines and of folding the
//   parsed events into fresh tables, and their medians; then the tables' row counts. With a
//   batch size, each batch is folded into a table of day rows first, which is then added to the
//   whole at day, week and month granularity (fewer updates of large tables, as the aggregator
//   folds); without, every event updates every row at once. `dense` folds every event at once
//   into the same views over dense ids (DenseViews); `prefetch` does so 32 events at a time,
//   prefetching every cell they update first; `sorted` appends the slices' entries to arrays and
//   sorts and merges them in bulk (DenseViews::FoldSorted); `dense-no-slice-entries` leaves the
//   slices' totals, user, agent and pair entries out (what updating them costs).
#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>
#include <roaring/roaring.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench_util.h"
#include "common/calendar.h"
#include "event/event_parser.h"
#include "store/codec.h"

namespace {

using tally::DayNumber;
using tally::Granularity;
using tally::event::Action;
using tally::event::EntityKind;
using tally::event::UsageEvent;
using tally::store::Counters;

double ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// A string -> dense id dictionary (the aggregator's dictionaries of workspaces, users, agents,
// projects and organizations). New ids are this dictionary's size, or taken from `*next` when
// several dictionaries number one id space.
class Interner {
 public:
  uint32_t Id(const std::string& key, uint32_t* next = nullptr) {
    auto [it, inserted] = ids_.try_emplace(key, next ? *next : static_cast<uint32_t>(ids_.size()));
    if (inserted && next) ++*next;
    return it->second;
  }
  size_t size() const { return ids_.size(); }

 private:
  absl::flat_hash_map<std::string, uint32_t> ids_;
};

struct RowKey {
  uint32_t ws, id, bucket;
  uint8_t scope, granularity;
  bool operator==(const RowKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const RowKey& k) {
    return H::combine(std::move(h), k.ws, k.id, k.bucket, k.scope, k.granularity);
  }
};

// A set of ids, created on its first Add (or Or of a non-empty set).
struct Bitmap {
  roaring_bitmap_t* r = nullptr;
  Bitmap() = default;
  Bitmap(Bitmap&& o) noexcept : r(std::exchange(o.r, nullptr)) {}
  Bitmap& operator=(Bitmap&& o) noexcept {
    std::swap(r, o.r);
    return *this;
  }
  ~Bitmap() {
    if (r) roaring_bitmap_free(r);
  }
  void Add(uint32_t v) {
    if (!r) r = roaring_bitmap_create();
    roaring_bitmap_add(r, v);
  }
  void Or(const Bitmap& o) {
    if (!o.r) return;
    if (!r) r = roaring_bitmap_create();
    roaring_bitmap_or_inplace(r, o.r);
  }
};

struct SliceKey {
  uint32_t org, agent, project, bucket;
  uint8_t granularity;
  bool operator==(const SliceKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const SliceKey& k) {
    return H::combine(std::move(h), k.org, k.agent, k.project, k.bucket, k.granularity);
  }
};

// What one request adds to the request-analytics slices it falls in.
struct Request {
  uint64_t errors, tokens;
  int64_t cost;
  explicit Request(const UsageEvent& e)
      : errors(e.is_error() ? 1 : 0),
        tokens(static_cast<uint64_t>(e.tokens.value_or(0))),
        cost(static_cast<int64_t>(e.cost_usd.value_or(0) * 1e9)) {}
};

struct UserEntry {
  uint64_t requests = 0, tokens = 0;
  int64_t cost = 0;
  void Add(const UserEntry& o) {
    requests += o.requests;
    tokens += o.tokens;
    cost += o.cost;
  }
};
struct AgentEntry {
  uint64_t requests = 0, tokens = 0;
  void Add(const AgentEntry& o) {
    requests += o.requests;
    tokens += o.tokens;
  }
};
struct Slice {
  uint32_t id = 0;  // DenseViews: the slice's number, for entries kept outside it
  uint64_t requests = 0, errors = 0, tokens = 0;
  int64_t cost = 0;
  absl::flat_hash_map<uint32_t, UserEntry> users;
  absl::flat_hash_map<uint32_t, AgentEntry> agents;
  Bitmap pairs;

  void AddTotals(const Request& r) {
    ++requests;
    errors += r.errors;
    tokens += r.tokens;
    cost += r.cost;
  }
  // The request's user entry and, in a slice of all agents, its agent entry and pair.
  void AddEntries(const Request& r, uint32_t user, bool all_agents, uint32_t agent, uint32_t pair) {
    users[user].Add({1, r.tokens, r.cost});
    if (!all_agents) return;
    agents[agent].Add({1, r.tokens});
    pairs.Add(pair);
  }
};

struct Field {
  int64_t time_ms = INT64_MIN;
  std::string value;
  void Latest(int64_t t, const std::string& v) {
    if (v.empty() || t < time_ms) return;
    time_ms = t;
    value = v;
  }
};
struct Record {
  Field f[4];
};

// The latest-wins labels every event sets: the user's profile, the entity's row and the
// workspace's row.
void FoldLabels(const UsageEvent& e, Record* profile, Record* entity, Record* workspace) {
  profile->f[0].Latest(e.time_ms, e.user_name);
  profile->f[1].Latest(e.time_ms, e.user_email);
  profile->f[2].Latest(e.time_ms, e.user_photo);
  entity->f[0].Latest(e.time_ms, e.entity_name);
  entity->f[1].Latest(e.time_ms, e.entity_visibility);
  entity->f[2].Latest(e.time_ms, e.entity_owner_user_id);
  entity->f[3].Latest(e.time_ms, e.project_id);
  workspace->f[0].Latest(e.time_ms, e.organization_id);
}

constexpr uint32_t kAllAgents = UINT32_MAX;
constexpr Granularity kGranularities[] = {Granularity::kDay, Granularity::kWeek,
                                          Granularity::kMonth};

// The views. A table with `days_only` holds day rows only: a batch's table, whose rows are added
// to the whole-stream table at every granularity once per batch (Absorb), as the aggregator does.
class Views {
 public:
  explicit Views(bool days_only = false) : granularities_(days_only ? 1 : 3) {}

  void Fold(const UsageEvent& e) {
    key_.assign(e.source).append(1, '\0').append(e.id);
    if (!dicts_->dedupe_.insert(absl::HashOf(key_)).second) return;
    const uint32_t ws = dicts_->workspaces_.Id(e.workspace_id);
    key_.assign(e.workspace_id).append(1, '\0').append(e.user_id);
    const uint32_t user = dicts_->users_.Id(key_);
    key_.assign(e.workspace_id).append(1, static_cast<char>(e.kind)).append(e.entity_id);
    const uint32_t entity = dicts_->entities_.Id(key_);
    uint32_t project = 0;
    if (!e.project_id.empty()) {
      key_.assign(e.workspace_id).append(1, '\0').append(e.project_id);
      project = 1 + dicts_->projects_.Id(key_);
    }
    const DayNumber day = tally::BucketDay(e.time_ms, e.workspace_id);
    Counters delta;
    delta.i[Counters::CountField(e.kind, e.action)] = 1;
    const bool active = e.kind == EntityKind::kAgent && e.action == Action::kExecuted;
    if (active) {
      delta.i[Counters::kAgentTokens] = e.tokens.value_or(0);
      delta.i[Counters::kAgentErrors] = e.is_error() ? 1 : 0;
      delta.d[Counters::kAgentCost] = e.cost_usd.value_or(0);
      delta.d[Counters::kAgentMessageCredits] = e.message_credits.value_or(0);
      delta.d[Counters::kAgentIntegrationCredits] = e.integration_credits.value_or(0);
    }
    for (int gi = 0; gi < granularities_; ++gi) {
      const Granularity g = kGranularities[gi];
      const auto bucket = static_cast<uint32_t>(tally::BucketOf(day, g));
      auto add = [&](uint8_t scope, uint32_t id) {
        const RowKey k{ws, id, bucket, scope, static_cast<uint8_t>(g)};
        counters_[k].Add(delta);
        if (active && scope != 1) bitmaps_[k].Add(user);
      };
      add(0, 0);
      add(1, user);
      add(2, entity);
      if (project != 0) add(3, project - 1);
    }
    FoldLabels(e, &records_[RowKey{ws, user, 0, 0, 0}], &records_[RowKey{ws, entity, 0, 1, 0}],
               &records_[RowKey{ws, 0, 0, 2, 0}]);
    if (!active || e.organization_id.empty()) return;

    // Request analytics.
    const uint32_t org = dicts_->orgs_.Id(e.organization_id);
    records_[RowKey{org, user, 0, 3, 0}].f[0].Latest(e.time_ms, e.user_email);
    records_[RowKey{0, entity, 0, 4, 0}].f[0].Latest(e.time_ms, e.entity_name);
    const uint32_t agent = entity;
    const uint32_t pair =
        dicts_->pairs_
            .try_emplace(uint64_t{agent} << 32 | user, static_cast<uint32_t>(dicts_->pairs_.size()))
            .first->second;
    const Request request(e);
    for (int gi = 0; gi < granularities_; ++gi) {
      const Granularity g = kGranularities[gi];
      const auto bucket = static_cast<uint32_t>(tally::BucketOf(day, g));
      for (uint32_t p : {0u, project}) {
        for (uint32_t a : {kAllAgents, agent}) {
          Slice& s = slices_[SliceKey{org, a, p, bucket, static_cast<uint8_t>(g)}];
          s.AddTotals(request);
          s.AddEntries(request, user, a == kAllAgents, agent, pair);
        }
        if (project == 0) break;
      }
    }
  }

  // Adds the day rows of `batch` (a days_only table over the same dictionaries) to this table
  // at every granularity, and empties `batch`.
  void Absorb(Views& batch) {
    for (const auto& [k, c] : batch.counters_) {
      for (Granularity g : kGranularities) counters_[Up(k, g)].Add(c);
    }
    for (const auto& [k, b] : batch.bitmaps_) {
      for (Granularity g : kGranularities) bitmaps_[Up(k, g)].Or(b);
    }
    for (const auto& [k, r] : batch.records_) {
      Record& into = records_[k];
      for (int i = 0; i < 4; ++i) into.f[i].Latest(r.f[i].time_ms, r.f[i].value);
    }
    for (const auto& [k, s] : batch.slices_) {
      for (Granularity g : kGranularities) {
        SliceKey up = k;
        up.granularity = static_cast<uint8_t>(g);
        up.bucket = static_cast<uint32_t>(tally::BucketOf(static_cast<DayNumber>(k.bucket), g));
        Slice& into = slices_[up];
        into.requests += s.requests;
        into.errors += s.errors;
        into.tokens += s.tokens;
        into.cost += s.cost;
        for (const auto& [u, e] : s.users) into.users[u].Add(e);
        for (const auto& [a, e] : s.agents) into.agents[a].Add(e);
        into.pairs.Or(s.pairs);
      }
    }
    batch.counters_.clear();
    batch.bitmaps_.clear();
    batch.records_.clear();
    batch.slices_.clear();
  }

  // The dictionaries and dedupe marks of `whole` serve this (batch) table too.
  void ShareDictionaries(Views* whole) { dicts_ = whole; }

  void Print() const {
    size_t slice_users = 0;
    for (const auto& [k, s] : slices_) slice_users += s.users.size();
    std::printf(
        "rows: counters %zu, bitmaps %zu, records %zu, slices %zu (%zu user entries), dedupe "
        "%zu, users %zu, entities %zu, pairs %zu\n",
        counters_.size(), bitmaps_.size(), records_.size(), slices_.size(), slice_users,
        dedupe_.size(), users_.size(), entities_.size(), pairs_.size());
  }

 private:
  static RowKey Up(RowKey k, Granularity g) {
    k.granularity = static_cast<uint8_t>(g);
    k.bucket = static_cast<uint32_t>(tally::BucketOf(static_cast<DayNumber>(k.bucket), g));
    return k;
  }

  int granularities_;
  Views* dicts_ = this;
  std::string key_;
  absl::flat_hash_set<uint64_t> dedupe_;
  Interner workspaces_, users_, entities_, projects_, orgs_;
  absl::flat_hash_map<uint64_t, uint32_t> pairs_;
  absl::flat_hash_map<RowKey, Counters> counters_;
  absl::flat_hash_map<RowKey, Bitmap> bitmaps_;
  absl::flat_hash_map<RowKey, Record> records_;
  absl::flat_hash_map<SliceKey, Slice> slices_;
};

// The same views over dense ids: every dictionary hands out dense ids (users, agents and
// projects numbered within their workspace's tables), and each day, week and month has flat
// arrays indexed by those ids instead of hash tables keyed by whole row keys. Only the rows
// that are sparse in two dimensions stay hashed: a slice's user entries, the agent x project
// slices, and the organization-scoped labels. Every event updates its rows at all three
// granularities at once.
class DenseViews {
 public:
  // Without slice entries, the request-analytics slices are found (created) but not updated:
  // to measure what updating them costs.
  explicit DenseViews(bool with_slice_entries = true, bool sorted_entries = false)
      : with_slice_entries_(with_slice_entries), sorted_entries_(sorted_entries) {}

  // With sorted entries, the slices' user, agent and pair entries are appended to arrays as
  // events are folded, and every `kSortEvery` events sorted, combined and merged into runs of
  // geometrically growing sizes (an in-memory log-structured merge) instead of each probing a
  // hash table. Finish merges everything into one run per kind.
  void FoldSorted(const std::vector<UsageEvent>& events) {
    constexpr size_t kSortEvery = 4096;
    for (size_t i = 0; i < events.size(); ++i) {
      Fold(events[i]);
      if ((i + 1) % kSortEvery == 0) Flush(false);
    }
    Flush(true);
  }

  void Fold(const UsageEvent& e) {
    Cells c;
    if (Resolve(e, &c)) Apply(e, c);
  }

  // Folds `events` a group at a time: finds every cell each event of the group updates (creating
  // missing rows), prefetches them all, then updates them, so that the group's cache misses
  // overlap instead of following one another.
  void FoldPrefetched(const std::vector<UsageEvent>& events, size_t group) {
    std::vector<Cells> cells(group);
    for (size_t i = 0; i < events.size(); i += group) {
      const size_t n = std::min(group, events.size() - i);
      for (size_t k = 0; k < n; ++k) cells[k].ok = Resolve(events[i + k], &cells[k]);
      for (size_t k = 0; k < n; ++k) PrefetchRows(cells[k]);
      for (size_t k = 0; k < n; ++k) PrefetchEntries(cells[k]);
      for (size_t k = 0; k < n; ++k) {
        if (cells[k].ok) Apply(events[i + k], cells[k]);
      }
    }
  }

  void Print() const {
    size_t counters = 0, sets = 0, slices = 0, slice_users = 0;
    for (const auto& [k, b] : buckets_) {
      for (const ScopeRows& sr : b->scopes) {
        counters += sr.rows.size();
        for (const Bitmap& m : sr.sets) sets += m.r != nullptr;
      }
      slices += b->slices.size();
      for (const Slice& sl : b->slices) slice_users += sl.users.size();
    }
    slice_users += user_entries_.size();
    std::printf(
        "rows: counters %zu, bitmaps %zu, slices %zu (%zu user entries), dedupe %zu, users %u, "
        "entities %u, pairs %zu\n",
        counters, sets, slices, slice_users, dedupe_.size(), next_user_, next_entity_,
        pairs_.size());
  }

 private:
  // The cells one event updates: rows by index (rows are created while a group is resolved, so
  // their vectors may move), slices by address (a deque never moves them).
  struct Cells {
    bool ok = false;
    bool active = false;
    bool request = false;
    uint32_t ws = 0, user = 0, entity = 0, org = 0, pair = 0;
    int scopes = 0;  // 3, or 4 with a project
    int slices = 0;  // per granularity: 2, or 4 with a project
    struct Scope {
      void* rows;  // ScopeRows*
      uint32_t row;
    } rows[3][4];
    Slice* slice[3][4];
  };

  bool Resolve(const UsageEvent& e, Cells* c) {
    key_.assign(e.source).append(1, '\0').append(e.id);
    if (!dedupe_.insert(absl::HashOf(key_)).second) return false;
    const uint32_t ws = workspaces_.Id(e.workspace_id);
    if (ws == per_ws_.size()) per_ws_.emplace_back();
    PerWorkspace& w = per_ws_[ws];
    const uint32_t user = w.users.Id(e.user_id, &next_user_);
    const uint32_t entity = w.entities[static_cast<int>(e.kind)].Id(e.entity_id, &next_entity_);
    uint32_t project = 0;  // 0: none, else 1 + the workspace project's dense id
    uint32_t project_name = 0;
    if (!e.project_id.empty()) {
      const uint32_t id = w.projects.Id(e.project_id, &next_project_);
      if (id == project_names_.size()) project_names_.push_back(projects_.Id(e.project_id));
      project = 1 + id;
      project_name = 1 + project_names_[id];
    }
    c->ws = ws;
    c->user = user;
    c->entity = entity;
    c->active = e.kind == EntityKind::kAgent && e.action == Action::kExecuted;
    c->request = c->active && !e.organization_id.empty();
    c->scopes = project != 0 ? 4 : 3;
    const DayNumber day = tally::BucketDay(e.time_ms, e.workspace_id);
    const uint32_t ids[4] = {ws, user, entity, project - 1};
    Bucket* buckets[3];
    for (int g = 0; g < 3; ++g) {
      buckets[g] = &BucketOf(g, tally::BucketOf(day, kGranularities[g]));
      for (int k = 0; k < c->scopes; ++k) {
        ScopeRows& sr = buckets[g]->scopes[k];
        c->rows[g][k] = {&sr, sr.Row(ids[k])};
      }
    }
    Grow(&profiles_, user);
    Grow(&entity_rows_, entity);
    Grow(&ws_rows_, ws);
    if (!c->request) return true;
    const uint32_t org = orgs_.Id(e.organization_id);
    c->org = org;
    Grow(&agent_labels_, entity);
    c->pair =
        pairs_.try_emplace(uint64_t{entity} << 32 | user, static_cast<uint32_t>(pairs_.size()))
            .first->second;
    c->slices = project_name != 0 ? 4 : 2;
    for (int g = 0; g < 3; ++g) {
      Bucket* b = buckets[g];
      c->slice[g][0] = &b->Dense(&b->org_all, org);
      c->slice[g][1] = &b->Dense(&b->agent_all, entity);
      if (project_name != 0) {
        c->slice[g][2] = &b->Sparse(uint64_t{org} << 32 | project_name, 0);
        c->slice[g][3] = &b->Sparse(uint64_t{entity} << 32 | project_name, 1);
      }
    }
    return true;
  }

  void PrefetchRows(const Cells& c) {
    if (!c.ok) return;
    for (int g = 0; g < 3; ++g) {
      for (int k = 0; k < c.scopes; ++k) {
        auto* sr = static_cast<ScopeRows*>(c.rows[g][k].rows);
        const char* row = reinterpret_cast<const char*>(&sr->rows[c.rows[g][k].row]);
        __builtin_prefetch(row);
        __builtin_prefetch(row + 64);
        __builtin_prefetch(row + 128);
        if (c.active && k != 1) __builtin_prefetch(&sr->sets[c.rows[g][k].row]);
      }
      for (int k = 0; k < c.slices; ++k) __builtin_prefetch(c.slice[g][k]);
    }
    __builtin_prefetch(&profiles_[c.user]);
    __builtin_prefetch(&entity_rows_[c.entity]);
  }

  void PrefetchEntries(const Cells& c) {
    if (!c.ok) return;
    for (int g = 0; g < 3; ++g) {
      for (int k = 0; k < c.slices; ++k) {
        c.slice[g][k]->users.prefetch(c.user);
        if (k % 2 == 0) c.slice[g][k]->agents.prefetch(c.entity);
      }
    }
    if (c.request) user_labels_.prefetch(uint64_t{c.org} << 32 | c.user);
  }

  void Apply(const UsageEvent& e, const Cells& c) {
    // The delta's non-zero fields only.
    int ni = 0, nd = 0;
    int fi[4];
    int64_t vi[4];
    int fd[3];
    double vd[3];
    fi[ni] = Counters::CountField(e.kind, e.action);
    vi[ni++] = 1;
    if (c.active) {
      fi[ni] = Counters::kAgentTokens;
      vi[ni++] = e.tokens.value_or(0);
      fi[ni] = Counters::kAgentErrors;
      vi[ni++] = e.is_error() ? 1 : 0;
      fd[nd] = Counters::kAgentCost;
      vd[nd++] = e.cost_usd.value_or(0);
      fd[nd] = Counters::kAgentMessageCredits;
      vd[nd++] = e.message_credits.value_or(0);
      fd[nd] = Counters::kAgentIntegrationCredits;
      vd[nd++] = e.integration_credits.value_or(0);
    }
    for (int g = 0; g < 3; ++g) {
      for (int k = 0; k < c.scopes; ++k) {
        auto* sr = static_cast<ScopeRows*>(c.rows[g][k].rows);
        Counters& row = sr->rows[c.rows[g][k].row];
        for (int f = 0; f < ni; ++f) tally::SatAddTo(&row.i[fi[f]], vi[f]);
        for (int f = 0; f < nd; ++f) tally::SatAddTo(&row.d[fd[f]], vd[f]);
        if (c.active && k != 1) sr->sets[c.rows[g][k].row].Add(c.user);
      }
    }
    FoldLabels(e, &profiles_[c.user], &entity_rows_[c.entity], &ws_rows_[c.ws]);
    if (!c.request) return;

    user_labels_[uint64_t{c.org} << 32 | c.user].Latest(e.time_ms, e.user_email);
    agent_labels_[c.entity].Latest(e.time_ms, e.entity_name);
    const Request request(e);
    if (!with_slice_entries_) return;
    for (int g = 0; g < 3; ++g) {
      for (int k = 0; k < c.slices; ++k) {
        Slice& s = *c.slice[g][k];
        s.AddTotals(request);
        const bool all_agents = k % 2 == 0;
        if (!sorted_entries_) {
          s.AddEntries(request, c.user, all_agents, c.entity, c.pair);
          continue;
        }
        const uint64_t key = uint64_t{s.id} << 32;
        user_entries_.pending.push_back({key | c.user, 1, request.tokens, request.cost});
        if (all_agents) {
          agent_entries_.pending.push_back({key | c.entity, 1, request.tokens, 0});
          pair_entries_.pending.push_back({key | c.pair, 0, 0, 0});
        }
      }
    }
  }

  struct PerWorkspace {
    Interner users, entities[2], projects;  // ids numbered across workspaces
  };
  struct ScopeRows {
    std::vector<uint32_t> row_of;  // dense id -> 1 + row, 0: none
    std::vector<Counters> rows;
    std::vector<Bitmap> sets;
    uint32_t Row(uint32_t id) {
      if (id >= row_of.size()) row_of.resize(std::max<size_t>(id + 1, row_of.size() * 2));
      uint32_t& r = row_of[id];
      if (r == 0) {
        rows.emplace_back();
        sets.emplace_back();
        r = static_cast<uint32_t>(rows.size());
      }
      return r - 1;
    }
  };
  struct Bucket {
    ScopeRows scopes[4];
    std::vector<uint32_t> org_all, agent_all;           // dense id -> 1 + slice, 0: none
    absl::flat_hash_map<uint64_t, uint32_t> sparse[2];  // org x project, agent x project
    std::deque<Slice> slices;
    uint32_t* next_id = nullptr;
    Slice& New(uint32_t* at) {
      slices.emplace_back();
      *at = static_cast<uint32_t>(slices.size());
      slices.back().id = (*next_id)++;
      return slices.back();
    }
    Slice& Dense(std::vector<uint32_t>* index, uint32_t id) {
      if (id >= index->size()) index->resize(std::max<size_t>(id + 1, index->size() * 2));
      uint32_t& at = (*index)[id];
      return at == 0 ? New(&at) : slices[at - 1];
    }
    Slice& Sparse(uint64_t key, int which) {
      uint32_t& at = sparse[which][key];
      return at == 0 ? New(&at) : slices[at - 1];
    }
  };

  template <typename T>
  static void Grow(std::vector<T>* v, uint32_t id) {
    if (id >= v->size()) v->resize(std::max<size_t>(id + 1, v->size() * 2));
  }
  Bucket& BucketOf(int g, int32_t bucket) {
    Last& last = last_[g];
    if (last.bucket != bucket || last.b == nullptr) {
      auto& slot = buckets_[int64_t{g} << 32 | static_cast<uint32_t>(bucket)];
      if (!slot) {
        slot = std::make_unique<Bucket>();
        slot->next_id = &next_slice_;
      }
      last = {bucket, slot.get()};
    }
    return *last.b;
  }

  // Entries of one kind: keyed by slice << 32 | user, agent or pair; pairs carry no values.
  struct Entry {
    uint64_t key, requests, tokens;
    int64_t cost;
  };
  struct Entries {
    std::vector<Entry> pending;
    std::vector<std::vector<Entry>> runs;  // sizes decreasing
    size_t size() const { return runs.empty() ? 0 : runs[0].size(); }
  };
  static void Combine(std::vector<Entry>* v) {
    size_t out = 0;
    for (size_t i = 0; i < v->size(); ++i) {
      if (out > 0 && (*v)[out - 1].key == (*v)[i].key) {
        Entry& e = (*v)[out - 1];
        e.requests += (*v)[i].requests;
        e.tokens += (*v)[i].tokens;
        e.cost += (*v)[i].cost;
      } else {
        (*v)[out++] = (*v)[i];
      }
    }
    v->resize(out);
  }
  static void Flush(Entries* es, bool all) {
    if (!es->pending.empty()) {
      std::sort(es->pending.begin(), es->pending.end(),
                [](const Entry& a, const Entry& b) { return a.key < b.key; });
      Combine(&es->pending);
      es->runs.push_back(std::move(es->pending));
      es->pending = {};
      es->pending.reserve(es->runs.back().size());
    }
    while (es->runs.size() > 1 &&
           (all || es->runs[es->runs.size() - 2].size() <= 2 * es->runs.back().size())) {
      std::vector<Entry> b = std::move(es->runs.back());
      es->runs.pop_back();
      std::vector<Entry>& a = es->runs.back();
      std::vector<Entry> merged(a.size() + b.size());
      std::merge(a.begin(), a.end(), b.begin(), b.end(), merged.begin(),
                 [](const Entry& x, const Entry& y) { return x.key < y.key; });
      Combine(&merged);
      a = std::move(merged);
    }
  }
  void Flush(bool all) {
    Flush(&user_entries_, all);
    Flush(&agent_entries_, all);
    Flush(&pair_entries_, all);
  }

  bool with_slice_entries_;
  bool sorted_entries_;
  uint32_t next_slice_ = 0;
  Entries user_entries_, agent_entries_, pair_entries_;
  std::string key_;
  absl::flat_hash_set<uint64_t> dedupe_;
  Interner workspaces_, projects_, orgs_;
  uint32_t next_user_ = 0, next_entity_ = 0, next_project_ = 0;
  std::vector<PerWorkspace> per_ws_;
  std::vector<uint32_t> project_names_;  // workspace project's dense id -> name id
  absl::flat_hash_map<uint64_t, uint32_t> pairs_;
  absl::flat_hash_map<int64_t, std::unique_ptr<Bucket>> buckets_;
  struct Last {
    int32_t bucket = 0;
    Bucket* b = nullptr;
  } last_[3];
  std::vector<Record> profiles_, entity_rows_, ws_rows_;
  std::vector<Field> agent_labels_;
  absl::flat_hash_map<uint64_t, Field> user_labels_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.ndjson [rounds]\n", argv[0]);
    return 2;
  }
  const int rounds = argc > 2 ? std::stoi(argv[2]) : 3;
  const std::string_view mode = argc > 3 ? argv[3] : "";
  const bool dense =
      mode == "dense" || mode == "prefetch" || mode == "dense-no-slice-entries" || mode == "sorted";
  const size_t batch = argc > 3 && !dense ? std::stoul(argv[3]) : 0;
  std::vector<std::string> lines;
  {
    std::ifstream in(argv[1]);
    for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  }
  if (lines.empty()) return std::fprintf(stderr, "no lines in %s\n", argv[1]), 1;
  tally::event::EventParser parser;
  std::vector<UsageEvent> events(lines.size());
  std::vector<double> parse_ns, fold_ns;
  for (int r = 0; r < rounds; ++r) {
    double t0 = ThreadCpuNs();
    size_t ok = 0;
    for (size_t i = 0; i < lines.size(); ++i) ok += parser.ParseInto(lines[i], &events[i]) ? 1 : 0;
    const double parse = (ThreadCpuNs() - t0) / lines.size();
    if (ok != lines.size()) {
      std::fprintf(stderr, "%zu of %zu lines rejected\n", lines.size() - ok, lines.size());
      return 1;
    }
    double absorb = 0;
    auto views = std::make_unique<Views>();
    auto day_rows = std::make_unique<Views>(/*days_only=*/true);
    day_rows->ShareDictionaries(views.get());
    t0 = ThreadCpuNs();
    auto dense_views =
        std::make_unique<DenseViews>(mode != "dense-no-slice-entries", mode == "sorted");
    if (mode == "prefetch") {
      dense_views->FoldPrefetched(events, 32);
    } else if (mode == "sorted") {
      dense_views->FoldSorted(events);
    } else if (dense) {
      for (const UsageEvent& e : events) dense_views->Fold(e);
    } else if (batch == 0) {
      for (const UsageEvent& e : events) views->Fold(e);
    } else {
      for (size_t i = 0; i < events.size(); i += batch) {
        const size_t end = std::min(events.size(), i + batch);
        for (size_t k = i; k < end; ++k) day_rows->Fold(events[k]);
        const double a0 = ThreadCpuNs();
        views->Absorb(*day_rows);
        absorb += ThreadCpuNs() - a0;
      }
    }
    const double fold = (ThreadCpuNs() - t0) / events.size();
    std::printf(
        "round %d: parse %.0f ns/event, fold %.0f ns/event (of which adding batches to "
        "the whole %.0f)\n",
        r + 1, parse, fold, absorb / events.size());
    parse_ns.push_back(parse);
    fold_ns.push_back(fold);
    if (r + 1 == rounds) dense ? dense_views->Print() : views->Print();
  }
  std::printf("events %zu: parse %.0f ns/event, fold %.0f ns/event (thread CPU, medians of %d)\n",
              lines.size(), tally::bench::Median(parse_ns), tally::bench::Median(fold_ns), rounds);
  return 0;
}
