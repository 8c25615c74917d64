#pragma once
// Folds batches of validated usage events into the materialized views, exactly once.
//
//   auto agg = tally::aggregate::Aggregator::Create(store);
//   std::vector<const tally::event::UsageEvent*> events = ...;   // one consumed batch
//   std::vector<tally::aggregate::PartitionOffset> offsets = {{"usage-events", 0, next}};
//   auto stats = (*agg)->Apply(events, offsets, cluster_id);
//   // stats->applied + stats->duplicates == events.size()
//
// Apply deduplicates by (source, id) against the store and within the batch, assigns dense ids
// to new users, pre-combines every counter, bitmap and record delta of the batch in memory, and
// writes all of them together with the consumed offsets in ONE store::WriteSet (one atomic
// Store::Write). Either the whole batch (views + offsets) is stored or none of it is, which is
// what makes a crash at any instant lose nothing and count nothing twice.
//
// Views maintained per event (buckets: UTC day, ISO week, month; see store/codec.h):
//   counters  workspace, workspace x entity, workspace x project
//   userpacks workspace x user: every user of a (workspace, bucket) in one value (codec.h)
//   bitmaps   users with agent.executed, per workspace / entity / project
//   records   user profile (latest name/email/photo), entity inventory row, workspace row,
//             user and agent labels (latest email / name, keyed by dense index)
//   requests  request-analytics slices of agent.executed events with an organization: per
//             organization x (all agents | agent) x (all projects | project) x bucket, with
//             users and (agent, user) pairs bitmaps (store/codec.h)
// Users, agents (workspace, agent id) and (agent, user) pairs get dense dictionary indexes.
//
// Dedupe lookups go to the store only for keys an in-memory filter of the store's dedupe keys
// may hold (loaded by Create when the family has at most 16M keys; otherwise every key is looked
// up). For that, no other writer may add dedupe keys to the store while an Aggregator lives.
//
// Thread-safety: not thread-safe; one Aggregator is the single writer of a Store.

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/background_task.h"
#include "common/result.h"
#include "event/usage_event.h"
#include "store/directory.h"
#include "store/store.h"
#include "store/write_set.h"

namespace tally::aggregate {
namespace internal {
class KeyFilter;
}  // namespace internal

struct PartitionOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t next_offset = 0;  // the offset of the next message to consume
};

// Where a batch's events came from: the topic, and each event's partition (one per event of
// the batch, in order). A store that keeps state per partition (store::Store::partitioned())
// indexes which workspaces each partition brought; events applied without origins make its
// partitions inseparable (store::WriteSet::MarkUnindexedEvents).
struct EventOrigins {
  std::string_view topic;
  std::span<const int32_t> partitions;
};

// What to do with an event older than the dedupe window (event time before the newest event
// time seen minus the window): such events can no longer be told apart from re-sent ones by
// their (source, id) forever, so an operator chooses.
enum class LatePolicy : uint8_t {
  kApply = 0,   // count it (dedupe entries are also kept for a window of wall-clock time)
  kReject = 1,  // refuse it: ingest dead-letters it (reason "late event"), replay counts it
};

struct ApplyStats {
  size_t applied = 0;
  size_t duplicates = 0;
  size_t new_users = 0;
  // Events Apply refused because they name another organization than their workspace's
  // (callers that screen with MarkOrganizationMismatches first never pass any).
  size_t organization_mismatches = 0;
};

// Workspace id -> organization id, declared up front (the keys file's [[workspaces]] table).
using OrganizationBindings = std::map<std::string, std::string, std::less<>>;

class Aggregator {
 public:
  // Reads the user dictionary's next free id. kUnavailable/kDataLoss from the store.
  static Result<std::unique_ptr<Aggregator>> Create(store::Store* store);
  ~Aggregator();

  // Keeps `directory` (may be null; not owned; must outlive this) current: every stored batch's
  // new users, agents and labels are applied to it after the write succeeded.
  void set_directory(store::Directory* directory) { directory_ = directory; }

  // Stage (true) or write (false, the default) each batch: with staging, Apply puts the batch
  // and its offsets in the store's open state (store::Store::Stage: visible to queries at
  // once, on disk only after the caller's store::Store::Persist), which costs far less per
  // batch than a write; a crash then loses the batches staged since the last Persist together
  // with their offsets, so they are consumed again. A staged batch carries day rows only: the
  // store adds each to its week and month rows as it stages it (WriteSet::set_roll_up_days).
  void set_stage(bool stage) { stage_ = stage; }

  // Write each batch on a worker thread (only without set_stage(true)): Apply returns once the
  // batch is folded and handed over, and the next Apply folds its batch while the store writes
  // this one. Writes stay one at a time and in order, each atomic with its offsets, so a crash
  // still leaves a prefix of the batches; duplicates of events in the batch being written are
  // still found. For a writer that needs no batch on disk before it goes on (replay). Apply's
  // success then means folded and handed over, not stored: a failed write is returned by the
  // next Apply (and every later one: the aggregator is done) or by Drain. These writes carry no
  // store::WriteNote (readers of Store::changes() recompute).
  void set_async_write(bool async) { async_write_ = async; }
  // Key request-analytics data (slices, their bitmaps, user labels) by (organization,
  // workspace) (store::WorkspaceRequestScope) instead of by organization: what a group of
  // instances does, so that a workspace's share of an organization's requests stays with the
  // workspace's partition. The store must be bound to the same layout
  // (store::Store::BindRequestScopes). Default: by organization.
  void set_request_scope_by_workspace(bool by_workspace) { scope_by_workspace_ = by_workspace; }
  // Waits for the batch being written, if any: Ok once every batch handed over is stored, else
  // the first failed write's error (as Store::Write: kUnavailable, kDataLoss, kInternal).
  Status Drain();

  // Binds workspaces to organizations up front. A declared binding wins over one stored by
  // earlier events. Call before the first Apply (or MarkOrganizationMismatches).
  void DeclareOrganizations(const OrganizationBindings& bindings);

  // A workspace belongs to one organization: the first accepted event naming both binds them
  // (stored with that event's batch), unless a binding was declared. Marks (*refused)[i] = 1 for
  // each event that names an organization other than its workspace's binding: declared, stored,
  // or made by an earlier unrefused event of `events`, exactly as a following Apply of the
  // unrefused events would judge them. Events without an organization are never refused. Pure
  // with respect to the store.
  void MarkOrganizationMismatches(std::span<const event::UsageEvent* const> events,
                                  std::vector<uint8_t>* refused) const;
  // The organization `workspace_id` is bound to (declared or stored), or "" if unbound.
  std::string_view OrganizationOf(std::string_view workspace_id) const;

  // Marks (*late)[i] = 1 for each event that is late under the window of the store, judged in
  // order against the newest event time so far (the stored one, then earlier events of the
  // batch), exactly as a following Apply would see them. Pure with respect to the store.
  void MarkLate(std::span<const event::UsageEvent* const> events, std::vector<uint8_t>* late) const;

  // Applies one batch atomically with `offsets` (stored under `cluster_id`). On error nothing
  // of the batch is stored and the Aggregator stays consistent with the store. Events that
  // MarkOrganizationMismatches would refuse are skipped (counted in organization_mismatches).
  // `origins`: see EventOrigins (ignored unless the store is partitioned; then, unless empty,
  // its partitions must have one entry per event).
  Result<ApplyStats> Apply(std::span<const event::UsageEvent* const> events,
                           std::span<const PartitionOffset> offsets, std::string_view cluster_id,
                           EventOrigins origins = {});

  // Forgets what it keeps in memory of the workspaces of a partition the caller dropped
  // (store::Store::DropPartition): their stored organization bindings (declared ones stay) and
  // their partition index entries, so that consuming the partition again stores them again.
  void ForgetPartition(std::string_view topic, int32_t partition,
                       std::span<const std::string> workspaces);

 private:
  explicit Aggregator(store::Store* store);

  // --- Batch-local state. Every string_view below points into the batch's events, which
  // outlive Apply; rows are keyed by small integers so the per-event work hashes each of the
  // event's strings once, and row keys are encoded once per row at write time.

  // A counter or bitmap row: scope x workspace x scope id x bucket (the granularity is the
  // index of the map holding the row). `id` is 0 (workspace scope), a user index, a batch
  // entity id or a batch project id.
  struct RowKey {
    uint32_t ws = 0;
    uint32_t id = 0;
    int32_t bucket = 0;
    store::Scope scope = store::Scope::kWorkspace;
    bool operator==(const RowKey&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const RowKey& k) {
      return H::combine(std::move(h), k.ws, k.id, k.bucket, k.scope);
    }
  };
  struct EntityRef {
    uint32_t ws = 0;
    event::EntityKind kind = event::EntityKind::kAgent;
    std::string_view id;
    bool operator==(const EntityRef&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const EntityRef& k) {
      return H::combine(std::move(h), k.ws, k.kind, k.id);
    }
  };
  struct EntityInfo {
    EntityRef ref;
    int64_t agent_index = -1;  // resolved on first use (agents only)
  };
  enum class RecordKind : uint8_t { kProfile, kEntity, kWorkspace, kUserLabel, kAgentLabel };
  struct RecordRef {
    RecordKind kind = RecordKind::kWorkspace;
    uint32_t a = 0;  // workspace / entity / user index / agent index
    uint32_t b = 0;  // user index (profiles)
    bool operator==(const RecordRef&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const RecordRef& k) {
      return H::combine(std::move(h), k.kind, k.a, k.b);
    }
  };
  // A record's fields folded over the batch, under store::MergeField's rules.
  struct RecordAcc {
    struct FieldAcc {
      uint8_t id;
      int64_t time_ms;
      std::string_view value;
    };
    const event::UsageEvent* origin = nullptr;  // names the row (workspace, user, entity ids)
    uint8_t size = 0;
    // The most distinct fields one record kind gets: an entity row's 8 (name, visibility, owner,
    // project, created, revived, copied, deleted). Fold must not set more.
    static constexpr size_t kMaxFields = 8;
    std::array<FieldAcc, kMaxFields> fields;
    void Merge(uint8_t id, int64_t time_ms, std::string_view value);
    void SetIfPresent(uint8_t id, int64_t time_ms, std::string_view value) {
      if (!value.empty()) Merge(id, time_ms, value);
    }
  };
  // Request slices of the batch, keyed by small integers (organization and project ids of the
  // batch).
  struct SliceKey {
    uint32_t org = 0;
    uint32_t agent = 0;    // store::kAllAgents or an agent index
    uint32_t project = 0;  // 0 = all projects, else 1 + batch project id
    Granularity granularity = Granularity::kDay;
    int32_t bucket = 0;
    bool operator==(const SliceKey&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const SliceKey& k) {
      return H::combine(std::move(h), k.org, k.agent, k.project, k.granularity, k.bucket);
    }
  };
  struct SliceAcc {
    store::Slice slice;
    std::vector<uint32_t> pairs;  // (agent, user) pair indexes; all-agents slices only
  };
  // Rows of one kind keyed by K, stored densely in insertion order (the hash map holds only
  // indexes, so probing touches few cache lines). References from operator[] are invalidated by
  // the next insertion.
  template <typename K, typename V>
  struct RowTable {
    absl::flat_hash_map<K, uint32_t> index;
    std::vector<std::pair<K, V>> rows;
    V& operator[](const K& k) {
      auto [it, inserted] = index.try_emplace(k, static_cast<uint32_t>(rows.size()));
      if (inserted) rows.emplace_back(k, V{});
      return rows[it->second].second;
    }
    void clear() {
      index.clear();
      rows.clear();
    }
  };
  // Hashes std::string and std::string_view keys alike (Debian's Abseil has its own
  // string_view type, so its default string hash does not take std::string_view).
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return absl::Hash<std::string_view>()(s); }
  };
  template <typename K>
  using StringMap = absl::flat_hash_map<K, uint32_t, StringHash, std::equal_to<>>;
  // Batch id of a string (one table per kind of string).
  struct Interner {
    StringMap<std::string_view> ids;
    std::vector<std::string_view> names;
    uint32_t Id(std::string_view s);
    void Clear() {
      ids.clear();
      names.clear();
    }
  };

  // Loads every key of the dedupe family into dedupe_filter_ if they fit; leaves it null if
  // not (or if reading fails).
  void LoadDedupeFilter();
  // Loads every stored (agent, user) pair into pair_filter_ if they fit; leaves it null if not
  // (or if reading fails).
  void LoadPairFilter();
  // Loads the stored workspace -> organization bindings (workspace rows). kUnavailable.
  Status LoadOrganizations();
  // Puts the partition index entries the batch's workspaces lack into `set` (new_index_), after
  // loading the index of origins.topic if not yet loaded. kUnavailable.
  Status IndexPartitions(const EventOrigins& origins, store::WriteSet* set);
  // Dense id of `user_id`, assigning one (recorded in new_users_) if new.
  Result<uint32_t> UserIndex(std::string_view user_id);
  // Dense id of the agent (workspace, agent id), assigning one if new.
  Result<uint32_t> AgentIndex(std::string_view workspace_id, std::string_view agent_id);
  // Dense id of the (agent, user) pair, assigning one if new.
  Result<uint32_t> PairIndex(uint32_t agent_index, uint32_t user_index);
  uint32_t EntityId(uint32_t ws, event::EntityKind kind, std::string_view id);
  RecordAcc& RecordOf(RecordKind kind, uint32_t a, uint32_t b, const event::UsageEvent& e);
  // Folds `e` (of batch workspace `ws`) into the batch rows.
  Status Fold(const event::UsageEvent& e, uint32_t user_index, uint32_t ws);
  // Batch id (in orgs_) of the request-analytics scope of `e` (whose organization_id is not
  // empty) from batch workspace `ws`.
  uint32_t RequestScopeId(const event::UsageEvent& e, uint32_t ws);
  void FoldRequest(const event::UsageEvent& e, DayNumber day, uint32_t user_index,
                   uint32_t agent_index, uint32_t pair_index, uint32_t project, uint32_t org);
  // Adds the week and month rows derived from the batch's day rows.
  void RollUp();
  // Appends every row of the batch to `set`, in key order per kind of row.
  void WriteRows(store::WriteSet* set);
  // Encodes the key of a counter/bitmap row of granularity `g`.
  void EncodeRowKey(bool bitmap, const RowKey& k, Granularity g, std::string* out);
  std::string* NextKey();  // a reusable string from key_pool_

  store::Store* store_;
  store::Directory* directory_ = nullptr;
  bool stage_ = false;
  // Workspace -> organization: stored bindings, overridden by declared ones.
  absl::flat_hash_map<std::string, std::string, StringHash, std::equal_to<>> organizations_;
  absl::flat_hash_set<std::string, StringHash, std::equal_to<>> declared_;
  // A partitioned store's partition index (store::PartitionWorkspaceKey of each entry), loaded
  // per topic on first use; a batch's new entries (new_index_) join it once stored.
  bool partitioned_ = false;
  absl::flat_hash_set<std::string, StringHash, std::equal_to<>> known_index_;
  absl::flat_hash_set<std::string, StringHash, std::equal_to<>> index_topics_;
  std::vector<int32_t> batch_ws_partition_;  // per batch workspace: its first event's partition
  std::vector<std::pair<int32_t, uint32_t>> other_partitions_;  // (partition, batch workspace)
  std::vector<std::string> new_index_;
  // Per batch workspace id: its organization (a view into organizations_ or into the batch's
  // events), empty while unbound.
  std::vector<std::string_view> batch_ws_orgs_;
  // Bindings made by the batch being applied (views into its events), committed to
  // organizations_ once the batch is stored.
  std::vector<std::pair<std::string_view, std::string_view>> new_bindings_;
  uint32_t next_user_index_ = 0;
  uint32_t next_agent_index_ = 0;
  uint32_t next_pair_index_ = 0;
  // Dictionary caches (kept across batches; entries of a failed batch are rolled back).
  StringMap<std::string> user_index_cache_;
  StringMap<std::string> agent_index_cache_;                  // key: EncodeAgentRef
  absl::flat_hash_map<uint64_t, uint32_t> pair_index_cache_;  // key: agent << 32 | user
  std::vector<std::pair<std::string, uint32_t>> new_users_;
  std::vector<std::pair<std::string, uint32_t>> new_agents_;  // (EncodeAgentRef, index)
  std::vector<std::pair<uint64_t, uint32_t>> new_pairs_;
  std::vector<store::Directory::Update> directory_updates_;

  Interner workspaces_, projects_, orgs_;  // orgs_: request scopes (RequestScopeId)
  bool scope_by_workspace_ = false;
  std::vector<uint32_t> workspace_scopes_;  // batch workspace -> orgs_ id (by workspace)
  std::deque<std::string> scope_names_;     // orgs_ names made by RequestScopeId
  absl::flat_hash_map<EntityRef, uint32_t> entity_ids_;
  std::vector<EntityInfo> entities_;
  // Rows by granularity (index: Granularity).
  std::array<RowTable<RowKey, store::Counters>, 3> counters_;
  std::array<absl::flat_hash_map<RowKey, store::UserBitmap>, 3> bitmaps_;
  RowTable<RecordRef, RecordAcc> records_;
  absl::flat_hash_map<SliceKey, SliceAcc> slices_;
  std::vector<std::pair<SliceKey, SliceAcc>> rollup_slices_;
  std::vector<std::string> dedupe_keys_;
  // Every key of the store's dedupe family (loaded by Create, then added to by each batch) while
  // that fits its size; null otherwise. A key it does not contain is certainly new, so only the
  // filter's positives are looked up in the store.
  std::unique_ptr<internal::KeyFilter> dedupe_filter_;
  std::vector<uint64_t> dedupe_hashes_;  // KeyFilter::HashOf each dedupe key of the batch
  // Every (agent, user) pair of the store's pair dictionary (loaded by Create, then added to by
  // each new pair) while that fits its size; null otherwise. A pair it does not contain is new
  // and needs no dictionary lookup: a batch meets many pairs for the first time.
  std::unique_ptr<internal::KeyFilter> pair_filter_;
  // The batch's writes; cleared (keeping its buffers) by every Apply. Asynchronous writes
  // alternate between the two: one is written while the next batch fills the other.
  store::WriteSet write_set_;
  store::WriteSet async_set_;
  store::WriteSet* filling_set_ = &write_set_;
  // Encoded keys of the batch's rows; they back the WriteSet calls and note_.
  // A deque: growing it must not move the strings (short keys live inside the string object).
  std::deque<std::string> key_pool_;
  size_t keys_used_ = 0;
  // What the batch does, for the store's change log (Store::Write / Stage): views into the rows
  // above, note_fields_ (the records' fields) and the events.
  store::WriteNote note_;
  std::vector<store::NoteField> note_fields_;
  std::vector<uint32_t> entity_record_;  // batch entity id -> index in note_.record_keys
  // Asynchronous writes: the dedupe keys of the batch being written (inflight_keys_ at the
  // indexes in inflight_order_, in key order; the store may not show them yet), the first
  // failed write, and the writer (last, so that it is destroyed, waiting for its write, first).
  bool async_write_ = false;
  std::vector<std::string> inflight_keys_;
  std::vector<uint32_t> inflight_order_;
  Status async_error_;
  store::Record record_scratch_;
  std::string agent_ref_, key_, scope_id_;
  BackgroundTask<Status> writer_;
};

}  // namespace tally::aggregate
