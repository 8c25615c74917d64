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

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
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
  // Reads the user dictionary's next free id. kUnavailable/kDataLoss from the store. `store` is
  // not owned and must outlive the Aggregator. `clock` stamps each dedupe entry with the
  // wall-clock time of its write (store::WriteSet::PutDedupe); the default is the system clock.
  static Result<std::unique_ptr<Aggregator>> Create(store::Store* store, Clock clock = Clock());
  ~Aggregator();

  // Keeps `directory` (may be null; not owned; must outlive this) current: every stored batch's
  // new users, agents and labels are applied to it after the write succeeded.
  void set_directory(store::Directory* directory);

  // Stage (true) or write (false, the default) each batch: with staging, Apply puts the batch
  // and its offsets in the store's open state (store::Store::Stage: visible to queries at
  // once, on disk only after the caller's store::Store::Persist), which costs far less per
  // batch than a write; a crash then loses the batches staged since the last Persist together
  // with their offsets, so they are consumed again. A staged batch carries day rows only: the
  // store adds each to its week and month rows as it stages it (WriteSet::set_roll_up_days).
  void set_stage(bool stage);

  // Write each batch on a worker thread (only without set_stage(true)): Apply returns once the
  // batch is folded and handed over, and the next Apply folds its batch while the store writes
  // this one. Writes stay one at a time and in order, each atomic with its offsets, so a crash
  // still leaves a prefix of the batches; duplicates of events in the batch being written are
  // still found. For a writer that needs no batch on disk before it goes on (replay). Apply's
  // success then means folded and handed over, not stored: a failed write is returned by the
  // next Apply (and every later one: the aggregator is done) or by Drain. These writes carry no
  // store::WriteNote (readers of Store::changes() recompute).
  void set_async_write(bool async);
  // Key request-analytics data (slices, their bitmaps, user labels) by (organization,
  // workspace) (store::WorkspaceRequestScope) instead of by organization: what a group of
  // instances does, so that a workspace's share of an organization's requests stays with the
  // workspace's partition. The store must be bound to the same layout
  // (store::Store::BindRequestScopes). Default: by organization.
  void set_request_scope_by_workspace(bool by_workspace);
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
  // The batch state, dictionaries and filters (internal/aggregator_impl.h): one pointer away,
  // so the per-event path pays a single dereference per Apply, not per event.
  struct Impl;
  explicit Aggregator(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace tally::aggregate
