#pragma once
// A set of writes to one Store, applied atomically by Store::Write: the only way to change a
// store's contents. Each operation names what it changes; keys and values are encoded with
// codec.h (and bitmap.h), which say which key goes with which operation.
//
//   tally::store::WriteSet set(*store);             // bound to `store`; reuse it for every batch
//   set.AddCounters(counter_key, encoded_counters);  // added to what is stored
//   set.PutOffset("usage-events", 0, {cluster_id, next_offset});
//   if (auto s = store->Write(&set); !s) ...         // all of it or nothing
//   set.Clear();                                     // keeps its buffers for the next batch
//
// Operations are recorded, not applied: nothing is visible to readers before Store::Write, and
// the recorded order is the order they are applied in. Combining operations (Add*, Or*, Merge*)
// never fail on stored data: a malformed operand is skipped when read (Store::MalformedOperands).
//
// Thread-safety: not thread-safe; one writer fills a set. The Store must outlive the set.

#include <cstdint>
#include <memory>
#include <string_view>

#include "store/codec.h"

namespace tally::store {

class Store;
namespace internal {
struct Access;
}  // namespace internal

class WriteSet {
 public:
  explicit WriteSet(const Store& store);
  ~WriteSet();
  WriteSet(const WriteSet&) = delete;
  WriteSet& operator=(const WriteSet&) = delete;

  // --- Views. Each adds a delta to the value at `key` (absent values count as empty).

  // Field-wise saturating addition of Counters (key: CounterKey; value: AppendCounters).
  void AddCounters(std::string_view key, std::string_view encoded_counters);
  // Per-user addition of a user pack (key: UserPackKey; value: UserPackWriter).
  void AddUserPack(std::string_view key, std::string_view encoded_pack);
  // Union of a user (or pair) set (key: BitmapKey, RequestsUsersKey or RequestsPairsKey; value:
  // UserBitmap::AppendEncoded).
  void OrBitmap(std::string_view key, std::string_view encoded_bitmap);
  // Per-field latest / earliest wins (MergeField) into a record (key: UserProfileKey, EntityKey,
  // WorkspaceKey, UserLabelKey or AgentLabelKey; value: AppendRecord).
  void MergeRecord(std::string_view key, std::string_view encoded_record);
  // Entry-wise sums of a request-analytics slice (key: RequestsSliceKey; value: AppendSlice).
  void AddSlice(std::string_view key, std::string_view encoded_slice);

  // --- Dedupe: marks the event with dedupe key `key` (DedupeKey) as seen, at event time
  // `event_time_ms`, written at wall-clock time `written_ms` (both decide when it expires).
  void PutDedupe(std::string_view key, int64_t event_time_ms, int64_t written_ms);

  // --- Dictionaries. Each entry is written both ways (id -> index and index -> id); the
  // caller assigns indexes densely and records the next free one with the Put*Next call.
  void PutUser(std::string_view user_id, uint32_t index);
  void PutAgent(std::string_view workspace_id, std::string_view agent_id, uint32_t index);
  // (agent index, user index) -> pair index; one way only (nothing reads pairs back).
  void PutPair(uint32_t agent_index, uint32_t user_index, uint32_t pair_index);
  void PutUserNext(uint32_t next_index);
  void PutAgentNext(uint32_t next_index);
  void PutPairNext(uint32_t next_index);

  // --- Bookkeeping.
  // The next offset to consume of (topic, partition) and the cluster it belongs to (replaces).
  void PutOffset(std::string_view topic, int32_t partition, const StoredOffset& offset);
  // The newest event time applied so far (replaces; Store::Open reads it back).
  void PutNewestEventTime(int64_t time_ms);
  // In a Store::partitioned() store: the partition index entry saying that (topic, partition)
  // brought events of `workspace_id` (idempotent); and the mark that the set applies events of
  // unknown partition, after which the store's partitions are no longer separable
  // (Store::PartitionsSeparable).
  void PutPartitionWorkspace(std::string_view topic, int32_t partition,
                             std::string_view workspace_id);
  void MarkUnindexedEvents();

  // --- Week and month rows. By default each operation changes the row at its key only. With
  // set_roll_up_days(true), the set's counter, user pack, bitmap and slice operations at
  // Granularity::kDay also change the week and month rows of their day (RollUpKeys,
  // counters_codec.h), by the same delta: the caller writes day rows only. Store::Stage adds each
  // delta to the three rows of the open state, which is cheaper for a stream of small batches than
  // a caller rolling up every batch. Stays set across Clear.
  void set_roll_up_days(bool on);
  bool roll_up_days() const;

  // Forgets every recorded operation; keeps the buffers for the next batch.
  void Clear();
  // True if no operation is recorded.
  bool empty() const;

 private:
  friend class Store;
  friend struct internal::Access;
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

}  // namespace tally::store
