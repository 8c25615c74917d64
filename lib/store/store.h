#pragma once
// tally's store: the materialized views, the consumed offsets and the dictionaries, with atomic
// typed writes (write_set.h) and consistent read views. Backed by RocksDB, which nothing outside
// lib/store sees; every key and value encoding is in the codecs codec.h includes (one per column
// family).
//
//   auto store = tally::store::Store::Open({.path = "/var/lib/tally/db"});
//   if (!store) die(store.error().message);
//   tally::store::WriteSet set(**store);
//   set.AddCounters(key, encoded_delta);
//   set.PutOffset(topic, partition, {cluster_id, next_offset});  // same set: exactly once
//   (*store)->Write(&set);
//   auto view = (*store)->NewReadView();                          // consistent snapshot
//   tally::store::Counters c;
//   view->AddCounters(key, &c);
//
// What is stored (one RocksDB column family each, `meta` being `default`; all encodings in
// codec.h):
//   counters : Counters, added field-wise
//   bitmaps  : Roaring user (or pair) sets, OR-ed
//   records  : profiles, inventory rows, workspace rows, labels; per-field latest/earliest wins
//   dedupe   : (source, id) -> event time; entries older than the dedupe window (relative to the
//              newest event time seen) are dropped in the background
//   dict     : user id <-> dense uint32, (workspace, agent) <-> dense uint32, pair dictionary
//   requests : request-analytics slices (slice_codec.h), summed entry-wise
//   userpacks: every user's Counters per (workspace, bucket), summed per user
//   meta     : offsets, newest event time, schema version
// Combining writes never fail on stored data: malformed operands are skipped and counted.
//
// Thread-safety: Store is thread-safe. A ReadView is not thread-safe; make one per request.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "store/bitmap.h"
#include "store/change_log.h"
#include "store/codec.h"
#include "store/write_set.h"

namespace tally::store {

struct StoreOptions {
  std::string path;
  // Events whose (source, id) was seen within this window of event time are duplicates.
  int64_t dedupe_window_ms = 7LL * 24 * 3600 * 1000;
  size_t block_cache_bytes = 256u << 20;
  bool create_if_missing = true;
  // Writes skip the write-ahead log, so a crash loses every write since the last flush. Only
  // for a store that is thrown away when its writer dies (a rebuild, which nothing reads until
  // it is complete); call Store::Flush before handing it over.
  bool disable_wal = false;
  // Where the store reads the time: the dedupe expiry keeps entries written less than a dedupe
  // window ago by this clock. Default: the system clock.
  Clock clock{};
};

class ReadView;
namespace internal {
struct StoreRep;
struct Access;
}  // namespace internal

class Store {
 public:
  // Opens (creating if allowed) the database at options.path. kUnavailable if it is locked by
  // another process or cannot be opened, kDataLoss if it is corrupt, kFailedPrecondition if
  // its data layout is not meta_codec.h's kSchemaVersion (the message says how to rebuild it). A
  // new store is stamped with kSchemaVersion.
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Applies every operation of `set` atomically (WAL on, no fsync: survives a process kill, not
  // a power loss); `set` is left as it was (Clear it to reuse it). `note`: what the set
  // touches, for changes() (change_log.h WriteNote says what the writer guarantees); null =
  // unknown, which makes readers of changes() recompute instead of refresh. Writes are serialized.
  // kInvalidArgument if `set` belongs to another store, kUnavailable / kDataLoss / kInternal if the
  // write fails (then nothing of it is stored).
  Status Write(WriteSet* set, const WriteNote* note = nullptr);

  // Stages every operation of `set` in the store's open state, in memory: readers see it at
  // once (views already open too, row by row: a row shows a staged set entirely or not at all),
  // and it lasts only until Persist() writes it to disk. Staging adds each delta to the row's
  // staged value, so the cost follows what the set changes, not the size of the rows, and the
  // disk sees one value per row per Persist. Offsets staged with views are persisted with
  // them: a crash loses them together, never one without the other. Serialized with Write and
  // Persist; `set` is left as it was. kInvalidArgument if `set` belongs to another store,
  // kInternal if it holds an operation that cannot be staged (none of WriteSet's can).
  Status Stage(WriteSet* set, const WriteNote* note = nullptr);
  // Writes the open state to disk in one atomic write and empties it (a no-op when empty).
  // Errors as Write; on error everything stays staged (retry). Write() persists what is staged
  // first, so a written set always lands after the sets staged before it; if that persist fails,
  // the set stays staged with the rest (persisted by the next Persist or Write: do not write it
  // again). Staged double fields are summed before they are stored, so they may differ from
  // one-by-one writes in the last bits.
  Status Persist();
  // What is staged: rows, and an estimate of the memory they hold.
  struct Staged {
    size_t rows = 0;
    size_t bytes = 0;
  };
  Staged staged() const;

  // Persists everything written so far to disk files (all of it or none: atomic). Needed only
  // with StoreOptions::disable_wal. kUnavailable on I/O errors.
  Status Flush();

  // After a write failed (Write, Persist: kResourceExhausted for a full disk, kUnavailable for
  // other I/O errors), the database refuses further writes until it is resumed: this resumes it
  // once the cause is gone (flushing what it holds in memory first). Ok if it accepts writes
  // again (or never stopped); otherwise the error, and nothing changed (call again later).
  // What was staged stays staged either way. Thread-safe.
  Status Resume();

  // How this store keys request-analytics data: by organization (a single instance) or by
  // (organization, workspace) (meta_codec.h WorkspaceRequestScope; a group of instances). A store
  // records the layout its first user asks for; one holding request data without a record is
  // keyed by organization. kFailedPrecondition, saying what to do, when `wanted` differs from
  // the recorded layout; kUnavailable when the store cannot be read or written. Call before
  // ingest starts. Binding kWorkspace on a store without data also makes it partitioned().
  enum class RequestScopes : uint8_t { kOrganization, kWorkspace };
  Status BindRequestScopes(RequestScopes wanted);

  // --- State per partition. A store bound to kWorkspace while empty keeps state per partition
  // ("partitioned", recorded in the store): it keys dedupe entries by workspace
  // (WorkspaceDedupeKey) and keeps an index of which workspaces each partition brought
  // (WriteSet::PutPartitionWorkspace), so that DropPartition can remove one partition's views
  // and its offset, and the partition can later be consumed again from the log, exactly. Other
  // stores (a single instance, and group stores older than the layout) keep every partition's
  // state mixed. Thread-safe.
  bool partitioned() const { return partitioned_.load(std::memory_order_acquire); }
  // True when the partition index covers every applied event, so that DropPartition is safe: the
  // store is partitioned() and no batch without partitions (a replay of files into it) was
  // applied. kUnavailable if the store cannot be read.
  Result<bool> PartitionsSeparable() const;
  // The partition index of `topic`: (partition, workspace) for every workspace each partition
  // brought, stored or staged, in (partition, workspace) order. kUnavailable on read errors.
  Result<std::vector<std::pair<int32_t, std::string>>> LoadPartitionIndex(
      std::string_view topic) const;
  // A workspace whose rows DropPartition deletes, with the organization its request-analytics
  // rows are keyed under ("" when none; the organization stored in the workspace row is
  // dropped too).
  struct DroppedWorkspace {
    std::string workspace_id;
    std::string organization_id;
  };
  // Deletes, in one atomic write after persisting what is staged: every row of `workspaces`
  // (meta_codec.h WorkspaceRowRanges: views, records, dedupe entries; not the shared dictionaries),
  // the partition index entries of (topic, partition) and its stored offset. The caller (the
  // single writer) lists every workspace of the partition's index and makes sure no partition it
  // keeps brought any of them. Readers of changes() recompute. Returns how many rows it
  // deleted. kFailedPrecondition unless PartitionsSeparable(); otherwise errors as Write (then
  // nothing is deleted).
  Result<uint64_t> DropPartition(std::string_view topic, int32_t partition,
                                 std::span<const DroppedWorkspace> workspaces);

  // What recent writes did (those made through Write() and Stage()), by ReadView::version().
  const ChangeLog& changes() const { return changes_; }

  // Registers fn to run after every successful Write and Stage, once the write is visible to
  // readers (and in changes()): on the writing thread, outside the store's locks, so the writer
  // waits for it. For readers that keep views in memory and bring them forward as the store is
  // written (query/superagents.cpp). A second call with the same `tag` changes nothing. fn must
  // not write to this store, and should be quick; an exception it throws is swallowed (the
  // write stands). Thread-safe.
  void Follow(const void* tag, std::function<void(const Store&)> fn) const;

  // A consistent snapshot for reads. The store must outlive it. Stored rows read as of its
  // creation; staged rows as they are at each read (a stage may land between two reads).
  std::unique_ptr<ReadView> NewReadView() const;
  // A view whose staged rows, too, read exactly as of its version: it holds staging off (Stage
  // waits) until it is destroyed. For readers that cache what they compute under the view's
  // version and later bring it forward from changes() (a write must be in one or the other,
  // never both). Keep it short-lived, and never write to this store from a thread holding one
  // (Stage would wait for it forever). Writes to disk (Write, Persist) do not wait.
  std::unique_ptr<ReadView> NewStableReadView() const;

  // All stored Kafka offsets: ((topic, partition), offset). kUnavailable on read errors,
  // kDataLoss if a stored offset is malformed.
  struct OffsetEntry {
    std::string topic;
    int32_t partition;
    StoredOffset offset;
  };
  Result<std::vector<OffsetEntry>> LoadOffsets() const;

  // A consistent, openable copy of the whole persisted store (offsets included; staged sets and
  // their offsets are not in it) at `path`, which must not exist; files are hard-linked where
  // possible. kInvalidArgument if `path` exists, kUnavailable
  // on I/O errors.
  Status Checkpoint(const std::string& path) const;

  // --- Reads for the single writer (the aggregator), at the latest written state (no
  // snapshot). Errors: kUnavailable if reading fails, kDataLoss if a stored value is malformed.

  // The next free index of each dictionary (0 for a dictionary never written).
  struct DictionaryNext {
    uint32_t user = 0;
    uint32_t agent = 0;
    uint32_t pair = 0;
  };
  Result<DictionaryNext> LoadDictionaryNext() const;
  // The dense index of a user, an agent (workspace, agent id) or an (agent, user) pair; nullopt
  // if it has none yet.
  Result<std::optional<uint32_t>> LookupUserIndex(std::string_view user_id) const;
  Result<std::optional<uint32_t>> LookupAgentIndex(std::string_view workspace_id,
                                                   std::string_view agent_id) const;
  Result<std::optional<uint32_t>> LookupPairIndex(uint32_t agent_index, uint32_t user_index) const;
  // Sets (*stored)[i] = 1 if dedupe key `keys[i]` (DedupeKey) is stored, else 0, with one batched
  // lookup. `keys` must be sorted ascending (which spares the lookup its own sort); the views
  // need only live during the call. kUnavailable if any lookup fails.
  Status FindDedupeKeys(std::span<const std::string_view> keys, std::vector<uint8_t>* stored) const;
  // About how many dedupe keys are stored (cheap; may be off either way, 0 if unknown).
  uint64_t EstimateDedupeKeys() const;
  // Calls fn(key) for every stored dedupe key, in key order, until fn returns false. The key is
  // valid during the call only. kUnavailable if reading fails (fn may have seen some keys).
  Status ScanDedupeKeys(const std::function<bool(std::string_view key)>& fn) const;
  // Calls fn(agent_index, user_index) for every (agent, user) pair of the pair dictionary, in
  // key order, until fn returns false. kUnavailable if reading fails (fn may have seen some).
  Status ScanPairDictionary(const std::function<bool(uint32_t, uint32_t)>& fn) const;
  // Calls fn(workspace_id, row) for every stored workspace row (WorkspaceKey), in key order. The
  // arguments are valid during the call only. kUnavailable if reading fails part way.
  Status ScanWorkspaceRecords(
      const std::function<void(std::string_view workspace_id, const Record& row)>& fn) const;

  // Tells the dedupe expiry the newest event time seen so far.
  void ObserveEventTime(int64_t time_ms);
  int64_t dedupe_window_ms() const { return options_.dedupe_window_ms; }
  // The newest event time observed (persisted by the aggregator); INT64_MIN before any event.
  int64_t newest_event_ms() const { return newest_event_ms_->load(std::memory_order_relaxed); }

  // Count of malformed merge operands this store's merge operators skipped so far (should stay
  // 0). Each store counts its own. Thread-safe.
  uint64_t MalformedOperands() const;

  const std::string& path() const { return options_.path; }
  // The database's unique id, made when it was created and kept by its checkpoints (so with
  // path() it tells stores apart within a process); empty if it could not be read.
  const std::string& identity() const;

 private:
  friend struct internal::Access;
  Store();
  Status CheckSchemaVersion();
  // Stage and Persist with write_mu_ held.
  Status WriteLocked(WriteSet* set, const WriteNote* note);
  Status StageLocked(WriteSet* set, const WriteNote* note);
  void RunFollowers() const;
  // Records a write in changes(), then moves the version past it; with `stored` (a write to
  // the database), also makes a new generation whose snapshot includes it, in the same step as
  // the version (under gen_mu), so that a view never reads a write its version does not name.
  void PublishLocked(const WriteNote* note, bool stored);
  Status PersistLocked();
  // Calls fn(key, value) for each row of internal::Family `family` under `prefix`, stored or
  // staged (combined), in key order, until fn returns false. kUnavailable on read errors.
  Status ScanLatest(int family, std::string_view prefix,
                    const std::function<bool(std::string_view, std::string_view)>& fn) const;
  StoreOptions options_;
  std::unique_ptr<internal::StoreRep> rep_;
  std::atomic<bool> partitioned_{false};
  std::shared_ptr<std::atomic<int64_t>> newest_event_ms_;
  std::mutex write_mu_;
  ChangeLog changes_;
  using Followers = std::vector<std::pair<const void*, std::function<void(const Store&)>>>;
  mutable std::mutex followers_mu_;
  mutable std::shared_ptr<const Followers> followers_ = std::make_shared<const Followers>();
};

// A view of the store: every read sees everything written (Write) or staged (Stage) before the
// view was made. What is persisted reads as of that moment; staged rows read as they are at each
// read (each staged set entirely or not at all per row), so a long-lived view may also see sets
// staged after it was made. Values handed to callbacks (std::string_view) are valid during the
// call only.
// Reads of absent keys are not errors; read failures (I/O) read as absent. Not thread-safe;
// cheap to create.
class ReadView {
 public:
  struct Rep;  // opaque (store.cpp)
  ~ReadView();
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;

  // A number that changes whenever the store's content changes: two views of one store have
  // the same version iff nothing was written between them, and a later view has a version at
  // least as large. ChangeLog::Collect takes these versions.
  uint64_t version() const;

  // Adds the counters stored at `key` to *c; false if the key does not exist (a malformed value
  // leaves *c unchanged and returns true).
  bool AddCounters(std::string_view key, Counters* c) const;
  // Calls fn(key_suffix_after_prefix, counters) for each counters row under `prefix`. Reuses
  // one iterator per view: fn must not call ScanCounters on this view.
  void ScanCounters(std::string_view prefix,
                    const std::function<void(std::string_view, const Counters&)>& fn) const;
  // Reads the user pack at `key` (UserPackKey) into *pack; false if the key does not exist.
  bool GetUserPack(std::string_view key, std::string* pack) const;
  // Calls fn(part) for each stored part of the user pack at `key` (its base value and merge
  // operands, unmerged: a user may appear in several parts, and the pack is the per-user sum of
  // all of them). Cheaper than GetUserPack for readers that sum anyway: nothing is re-encoded.
  // Parts are valid during the call only. False if the key does not exist.
  template <typename Fn>
  bool ForEachUserPackPart(std::string_view key, Fn&& fn) const;
  // Calls fn(user, const Counters&) for each entry of each part of the user pack at `key`: a
  // user may come more than once (sum them). Entries whose counters are malformed are skipped.
  template <typename Fn>
  void ForEachUserCounters(std::string_view key, Fn&& fn) const;
  // Adds the counters of `user` in the user pack at `key` to *c; false if the pack is absent.
  bool AddUserCounters(std::string_view key, uint32_t user, Counters* c) const;
  // Unions the bitmap at `key` into *b; false if the key does not exist.
  bool OrBitmap(std::string_view key, UserBitmap* b) const;
  // For each group of bitmap keys: how many distinct ids the union of its bitmaps holds (absent
  // keys and malformed bitmaps count as empty). One batched read for every key of every group.
  std::vector<uint64_t> UnionCardinalities(
      const std::vector<std::vector<std::string>>& groups) const;
  // Calls fn with the slice stored at `key` (valid only during the call); false if absent or
  // malformed.
  bool ReadSlice(std::string_view key, const std::function<void(const SliceView&)>& fn) const;
  // For readers that sum what they read: calls fn with each part of the slice at `key` (its
  // stored value, then its staged delta), each valid only during its call, instead of combining
  // them into one slice first (under ingest, the staged delta of an open bucket's slice changes
  // with every batch, and combining costs a merge of both parts and an encoding). Summing every
  // field of every entry over the parts gives what ReadSlice passes; an index may come in both
  // parts. A malformed stored value is skipped, as ReadSlice's combination reads it as empty.
  // False if no part was passed.
  bool ReadSliceParts(std::string_view key, const std::function<void(const SliceView&)>& fn) const;
  // Calls fn(key, slice) for each slice whose key starts with `prefix`, from the first key >=
  // `start` (empty: from `prefix`), until fn returns false. Malformed slices are skipped.
  // Reuses one iterator per view: fn must not scan slices of this view.
  void ScanSlices(std::string_view prefix, std::string_view start,
                  const std::function<bool(std::string_view, const SliceView&)>& fn) const;
  // As ScanSlices, for readers that need only the keys: calls fn(key) for exactly the rows
  // ScanSlices would pass, without encoding staged slices or combining them with stored ones
  // (what a listing of projects or organizations would otherwise pay per row under ingest).
  // Shares ScanSlices' iterator: fn must not scan slices of this view.
  void ScanSliceKeys(std::string_view prefix, std::string_view start,
                     const std::function<bool(std::string_view)>& fn) const;
  // True if any slice key starts with `prefix`.
  bool HasSliceWithPrefix(std::string_view prefix) const;
  // Reads a record into *r (DecodeRecord); false if absent.
  bool GetRecord(std::string_view key, Record* r) const;
  // Calls fn(key, record) for every record under `prefix`, in key order, until fn returns false.
  void ScanRecords(std::string_view prefix,
                   const std::function<bool(std::string_view, const Record&)>& fn) const;
  // As ScanRecords, with each record as stored (AppendRecord's encoding; DecodeRecord reads it),
  // for readers that decode only some of them.
  void ScanEncodedRecords(
      std::string_view prefix,
      const std::function<bool(std::string_view key, std::string_view encoded)>& fn) const;

  // Merge scans: the rows under several prefixes at once, joined on the part of their keys
  // after the prefix (the suffix). For each distinct suffix, in increasing byte order,
  // fn(suffix, rows) with one row per prefix holding that suffix, in increasing prefix index.
  // Values are as stored: encoded Counters (AddEncodedCounters reads them) or bitmaps
  // (UserBitmap::OrEncoded).
  struct ScanRow {
    size_t prefix;  // index into `prefixes`
    std::string_view value;
  };
  using MergeScanFn = std::function<void(std::string_view suffix, std::span<const ScanRow> rows)>;
  void MergeScanCounters(std::span<const std::string> prefixes, const MergeScanFn& fn) const;
  void MergeScanBitmaps(std::span<const std::string> prefixes, const MergeScanFn& fn) const;

  // Dictionary lookups.
  bool LookupUser(std::string_view user_id, uint32_t* index) const;
  // The user id of a dictionary index; false if unknown.
  bool UserIdOf(uint32_t index, std::string* user_id) const;

 private:
  friend class Store;
  explicit ReadView(std::unique_ptr<Rep> rep);
  // Pins the parts of a user pack (see ForEachUserPackPart); returns their number, 0 if absent.
  // Valid until the next call.
  size_t PinUserPackParts(std::string_view key) const;
  std::string_view PinnedPart(size_t i) const;
  std::unique_ptr<Rep> rep_;
};

template <typename Fn>
bool ReadView::ForEachUserPackPart(std::string_view key, Fn&& fn) const {
  const size_t n = PinUserPackParts(key);
  for (size_t i = 0; i < n; ++i) fn(PinnedPart(i));
  return n > 0;
}

template <typename Fn>
void ReadView::ForEachUserCounters(std::string_view key, Fn&& fn) const {
  ForEachUserPackPart(key, [&](std::string_view part) {
    ForEachUserPackEntry(part, [&](uint32_t user, std::string_view encoded) {
      Counters c;
      if (AddEncodedCounters(encoded, &c)) fn(user, static_cast<const Counters&>(c));
    });
  });
}

}  // namespace tally::store
