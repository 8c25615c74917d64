#pragma once
// The Aggregator's state (aggregator.h's pimpl): the batch being folded, the dictionaries'
// caches, the dedupe and pair filters and the write sets. Private to tally_aggregate:
//   aggregator.cpp            the public methods, Create, the dictionaries, Apply's steps
//   internal/fold.cpp         the per-event fold into the batch rows, and their roll-up
//   internal/write_rows.cpp   the batch rows' encoding into the WriteSet and the change note
// Not thread-safe (as Aggregator).

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/aggregator.h"
#include "aggregate/internal/key_filter.h"
#include "common/background_task.h"
#include "common/clock.h"
#include "common/result.h"
#include "event/usage_event.h"
#include "store/directory.h"
#include "store/store.h"
#include "store/write_set.h"

namespace tally::aggregate {
namespace internal {

inline constexpr int kGranularities = 3;
// The granularities rolled up from day rows.
inline constexpr Granularity kUp[] = {Granularity::kWeek, Granularity::kMonth};
inline constexpr int G(Granularity g) { return static_cast<int>(g); }
// The pair filter's hash of an (agent << 32 | user) pair.
inline uint64_t PairHash(uint64_t pair) {
  char bytes[sizeof pair];
  std::memcpy(bytes, &pair, sizeof pair);
  return KeyFilter::HashOf(std::string_view(bytes, sizeof bytes));
}
}  // namespace internal

struct Aggregator::Impl {
  Impl(store::Store* store, Clock clock);
  ~Impl();

  // Aggregator's methods of the same names that Apply relies on too (see aggregator.h).
  Status Drain();
  std::string_view OrganizationOf(std::string_view workspace_id) const;
  Result<ApplyStats> Apply(std::span<const event::UsageEvent* const> events,
                           std::span<const PartitionOffset> offsets, std::string_view cluster_id,
                           EventOrigins origins);

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
  // Appends every row of the batch to `set`, in key order per kind of row (WriteCounters,
  // WriteBitmaps, WriteSlices, WriteRecords), and fills note_ and directory_updates_.
  void WriteRows(store::WriteSet* set);
  void WriteCounters(store::WriteSet* set, std::string* value);
  void WriteBitmaps(store::WriteSet* set, std::string* value);
  void WriteSlices(store::WriteSet* set, std::string* value);
  void WriteRecords(store::WriteSet* set, std::string* value);
  // note_.usage: every entity's day rows of the batch.
  void NoteUsage();
  // The batch's winning user and agent labels, for the directory.
  void QueueLabelUpdates();

  // --- Apply's steps, in order.
  // The next free dictionary indexes before a batch: a failed batch goes back to them.
  struct DictionaryMark {
    uint32_t user = 0;
    uint32_t agent = 0;
    uint32_t pair = 0;
  };
  // Empties the batch-local state of the previous batch (keeping buffers).
  void ClearBatch();
  // Dedupe: sets `order` to the events' indexes in dedupe key order and (*dup)[i] = 1 for each
  // event already stored (or being written) or repeated earlier in the batch. kUnavailable.
  Status FindDuplicates(std::span<const event::UsageEvent* const> events,
                        std::vector<size_t>* order, std::vector<uint8_t>* dup);
  // Folds every event that is neither a duplicate nor refused (marked kRefused in *dup) into
  // the batch rows, in log order; `partitions` (one per event, or empty) notes the workspaces'
  // partitions. Raises *batch_newest to the newest applied event time. Errors from the
  // dictionaries; the caller rolls back.
  Status FoldEvents(std::span<const event::UsageEvent* const> events,
                    std::span<const int32_t> partitions, std::vector<uint8_t>* dup,
                    ApplyStats* stats, int64_t* batch_newest);
  // Puts the dedupe entries of the batch's applied events into `set`, in key order.
  void PutDedupeEntries(std::span<const event::UsageEvent* const> events,
                        const std::vector<size_t>& order, const std::vector<uint8_t>& dup,
                        store::WriteSet* set);
  // Puts the batch's new user, agent and pair dictionary entries into `set`.
  void PutDictionaryEntries(store::WriteSet* set);
  // Writes or stages `set`, or hands it to the writer (`async`). Errors as Store::Write.
  Status Commit(store::WriteSet* set, bool async, const std::vector<size_t>& order,
                const std::vector<uint8_t>& dup);
  DictionaryMark Mark() const { return {next_user_index_, next_agent_index_, next_pair_index_}; }
  // Forgets the dictionary entries the failed batch assigned.
  void Rollback(const DictionaryMark& mark);
  // Encodes the key of a counter/bitmap row of granularity `g`.
  void EncodeRowKey(bool bitmap, const RowKey& k, Granularity g, std::string* out);
  std::string* NextKey();  // a reusable string from key_pool_

  store::Store* store_;
  const Clock clock_;  // stamps dedupe entries with their write time
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
