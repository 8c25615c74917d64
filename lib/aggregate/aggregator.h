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
// writes all of them together with the consumed offsets in ONE RocksDB WriteBatch. Either the
// whole batch (views + offsets) is stored or none of it is, which is what makes a crash at any
// instant lose nothing and count nothing twice.
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
// Thread-safety: not thread-safe; one Aggregator is the single writer of a Store.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "event/usage_event.h"
#include "store/directory.h"
#include "store/store.h"

namespace tally::aggregate {

struct PartitionOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t next_offset = 0;  // the offset of the next message to consume
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
};

class Aggregator {
 public:
  // Reads the user dictionary's next free id. kUnavailable/kDataLoss from the store.
  static Result<std::unique_ptr<Aggregator>> Create(store::Store* store);

  // Keeps `directory` (may be null; not owned; must outlive this) current: every stored batch's
  // new users, agents and labels are applied to it after the write succeeded.
  void set_directory(store::Directory* directory) { directory_ = directory; }

  // Marks (*late)[i] = 1 for each event that is late under the window of the store, judged in
  // order against the newest event time so far (the stored one, then earlier events of the
  // batch), exactly as a following Apply would see them. Pure with respect to the store.
  void MarkLate(std::span<const event::UsageEvent* const> events, std::vector<uint8_t>* late) const;

  // Applies one batch atomically with `offsets` (stored under `cluster_id`). On error nothing
  // of the batch is stored and the Aggregator stays consistent with the store.
  Result<ApplyStats> Apply(std::span<const event::UsageEvent* const> events,
                           std::span<const PartitionOffset> offsets, std::string_view cluster_id);

 private:
  explicit Aggregator(store::Store* store) : store_(store) {}
  // Dense id of `user_id`, assigning one (recorded in *batch_dict) if new.
  Result<uint32_t> UserIndex(std::string_view user_id);
  // Dense id of the agent (workspace, agent id), assigning one if new.
  Result<uint32_t> AgentIndex(std::string_view workspace_id, std::string_view agent_id);
  // Dense id of the (agent, user) pair, assigning one if new.
  Result<uint32_t> PairIndex(uint32_t agent_index, uint32_t user_index);
  Status Fold(const event::UsageEvent& e, uint32_t user_index);
  void FoldRequest(const event::UsageEvent& e, uint32_t user_index, uint32_t agent_index,
                   uint32_t pair_index);
  // Adds the week and month rows derived from the batch's day rows.
  void RollUp();

  store::Store* store_;
  store::Directory* directory_ = nullptr;
  uint32_t next_user_index_ = 0;
  uint32_t next_agent_index_ = 0;
  uint32_t next_pair_index_ = 0;
  std::unordered_map<std::string, uint32_t> agent_index_cache_;  // key: EncodeAgentRef
  std::unordered_map<uint64_t, uint32_t> pair_index_cache_;      // key: agent << 32 | user
  std::vector<std::pair<std::string, uint32_t>> new_agents_;     // (EncodeAgentRef, index)
  std::vector<std::pair<uint64_t, uint32_t>> new_pairs_;
  std::vector<store::Directory::Update> directory_updates_;
  // Request slices of the batch, keyed by small integers (organizations and projects interned
  // per batch) so the per-event work hashes no strings; keys are encoded once at write time.
  struct SliceKey {
    uint32_t org = 0;
    uint32_t agent = 0;    // store::kAllAgents or an agent index
    uint32_t project = 0;  // 0 = all projects, else 1 + index into batch_projects_
    Granularity granularity = Granularity::kDay;
    int32_t bucket = 0;
    bool operator==(const SliceKey&) const = default;
  };
  struct SliceKeyHash {
    size_t operator()(const SliceKey& k) const;
  };
  struct SliceAcc {
    store::Slice slice;
    std::vector<uint32_t> pairs;  // (agent, user) pair indexes; all-agents slices only
  };
  uint32_t Intern(std::string_view s, std::vector<std::string>* names,
                  std::unordered_map<std::string, uint32_t>* ids);
  std::unordered_map<SliceKey, SliceAcc, SliceKeyHash> slices_;
  std::vector<std::pair<SliceKey, SliceAcc>> rollup_slices_;
  std::vector<std::string> batch_orgs_, batch_projects_;
  std::unordered_map<std::string, uint32_t> batch_org_ids_, batch_project_ids_;
  std::string agent_ref_;
  // Looked up by std::string_view (no key copy per event).
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> user_index_cache_;
  // Per-batch state, reused across batches to keep allocations down.
  std::vector<std::pair<std::string, uint32_t>> new_users_;
  std::unordered_map<std::string, store::Counters> counters_;
  std::unordered_map<std::string, store::UserBitmap> bitmaps_;
  std::unordered_map<std::string, store::Record> records_;
  std::unordered_map<std::string, store::Counters> rollup_counters_;
  std::unordered_map<std::string, store::UserBitmap> rollup_bitmaps_;
  std::vector<std::string> dedupe_keys_;
  std::vector<std::string_view> touched_records_;  // keys of records_, for Store::Write
  std::string key_, scope_id_;
};

}  // namespace tally::aggregate
