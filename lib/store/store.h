#pragma once
// tally's RocksDB: the column families, merge operators and consistent read views behind every
// materialized view.
//
//   auto store = tally::store::Store::Open({.path = "/var/lib/tally/db"});
//   if (!store) die(store.error().message);
//   rocksdb::WriteBatch batch;
//   batch.Merge((*store)->counters(), key, encoded_delta);
//   batch.Put((*store)->meta(), offset_key, encoded_offset);   // same batch: exactly once
//   (*store)->Write(&batch);
//   auto view = (*store)->NewReadView();                         // consistent snapshot
//   tally::store::Counters c;
//   view->GetCounters(key, &c);
//
// Column families (all encodings in codec.h):
//   default  : offsets, schema version
//   counters : Counters, merge "tally.counters" (field-wise add)
//   bitmaps  : Roaring user sets, merge "tally.bitmap_or"
//   records  : profiles, inventory rows, workspace rows; merge "tally.fields" (per-field LWW/min)
//   dedupe   : (source, id) -> event time; entries older than the dedupe window (relative to the
//              newest event time seen) are dropped by a compaction filter
//   dict     : user id <-> dense uint32, (workspace, agent) <-> dense uint32, pair dictionary
//   requests : request-analytics slices (codec.h), merge "tally.slices"
//   userpacks: every user's Counters per (workspace, bucket), merge "tally.user_counters"
// Merge operators never fail on stored data: malformed operands are skipped and counted.
//
// Thread-safety: Store is thread-safe. A ReadView is not thread-safe; make one per request.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "store/bitmap.h"
#include "store/change_log.h"
#include "store/codec.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
class Snapshot;
class Cache;
class Iterator;
}  // namespace rocksdb

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
};

class ReadView;

class Store {
 public:
  // Opens (creating if allowed) the database at options.path. kUnavailable if it is locked by
  // another process or cannot be opened, kDataLoss if it is corrupt, kFailedPrecondition if
  // its data layout is not codec.h's kSchemaVersion (the message says how to rebuild it). A new
  // store is stamped with kSchemaVersion.
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* meta() const { return cf_[0]; }
  rocksdb::ColumnFamilyHandle* counters() const { return cf_[1]; }
  rocksdb::ColumnFamilyHandle* bitmaps() const { return cf_[2]; }
  rocksdb::ColumnFamilyHandle* records() const { return cf_[3]; }
  rocksdb::ColumnFamilyHandle* dedupe() const { return cf_[4]; }
  rocksdb::ColumnFamilyHandle* dict() const { return cf_[5]; }
  rocksdb::ColumnFamilyHandle* requests() const { return cf_[6]; }
  rocksdb::ColumnFamilyHandle* userpacks() const { return cf_[7]; }

  // Applies `batch` atomically (WAL on, no fsync: survives a process kill, not a power loss).
  // `touched_records`: every records-CF key the batch writes, for changes() (see
  // ChangeLog::Record for what the writer guarantees); null = unknown, which makes readers of
  // changes() recompute instead of refresh. Writes are serialized.
  Status Write(rocksdb::WriteBatch* batch,
               const std::vector<std::string_view>* touched_records = nullptr);

  // Persists every column family's memtable to SST files (all of them or none: atomic). Needed
  // only with StoreOptions::disable_wal. kUnavailable on I/O errors.
  Status Flush();

  // What recent writes touched (only writes made through Write()).
  const ChangeLog& changes() const { return changes_; }

  // A consistent snapshot for reads.
  std::unique_ptr<ReadView> NewReadView() const;

  // All stored Kafka offsets: ((topic, partition), offset).
  struct OffsetEntry {
    std::string topic;
    int32_t partition;
    StoredOffset offset;
  };
  Result<std::vector<OffsetEntry>> LoadOffsets() const;

  // A consistent, openable copy of the whole store (every column family, offsets included) at
  // `path`, which must not exist; SST files are hard-linked where possible. kInvalidArgument if
  // `path` exists, kUnavailable on I/O errors.
  Status Checkpoint(const std::string& path) const;

  // Tells the dedupe compaction filter the newest event time seen so far.
  void ObserveEventTime(int64_t time_ms);
  int64_t dedupe_window_ms() const { return options_.dedupe_window_ms; }
  // The newest event time observed (persisted by the aggregator); INT64_MIN before any event.
  int64_t newest_event_ms() const { return newest_event_ms_->load(std::memory_order_relaxed); }

  // Count of malformed merge operands skipped so far (should stay 0).
  static uint64_t MalformedOperands();

  const std::string& path() const { return options_.path; }

 private:
  Store() = default;
  Status CheckSchemaVersion();
  StoreOptions options_;
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cf_;
  std::shared_ptr<std::atomic<int64_t>> newest_event_ms_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::mutex write_mu_;
  ChangeLog changes_;
};

// A consistent point-in-time view of the store. Not thread-safe; cheap to create.
class ReadView {
 public:
  ~ReadView();
  // Adds the counters stored at `key` to *c; false if the key does not exist.
  bool AddCounters(std::string_view key, Counters* c) const;
  // Calls fn(key_suffix_after_prefix, counters) for each counters row under `prefix`.
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
  // Calls fn with the slice stored at `key` (valid only during the call); false if absent or
  // malformed.
  bool ReadSlice(std::string_view key, const std::function<void(const SliceView&)>& fn) const;
  // Calls fn(key, slice) for each slice whose key starts with `prefix`, from the first key >=
  // `start` (empty: from `prefix`), until fn returns false. Malformed slices are skipped.
  void ScanSlices(std::string_view prefix, std::string_view start,
                  const std::function<bool(std::string_view, const SliceView&)>& fn) const;
  // True if any slice key starts with `prefix`.
  bool HasSliceWithPrefix(std::string_view prefix) const;
  // Reads a record; false if absent.
  bool GetRecord(std::string_view key, Record* r) const;
  // Calls fn(key, record) for every record under `prefix`, in key order, until fn returns false.
  void ScanRecords(std::string_view prefix,
                   const std::function<bool(std::string_view, const Record&)>& fn) const;
  // Dictionary lookups.
  bool LookupUser(std::string_view user_id, uint32_t* index) const;
  // The user id of a dictionary index; false if unknown.
  bool UserIdOf(uint32_t index, std::string* user_id) const;

 private:
  friend class Store;
  ReadView(const Store* store, const rocksdb::Snapshot* snapshot);
  bool Get(rocksdb::ColumnFamilyHandle* cf, std::string_view key, std::string* value) const;
  // Pins the parts of a user pack (see ForEachUserPackPart); returns their number, 0 if absent.
  // Valid until the next call.
  size_t PinUserPackParts(std::string_view key) const;
  std::string_view PinnedPart(size_t i) const;
  struct PinnedParts;
  mutable std::unique_ptr<PinnedParts> parts_;
  const Store* store_;
  const rocksdb::Snapshot* snapshot_;
  mutable std::unique_ptr<rocksdb::Iterator> counters_it_;  // lazily created by ScanCounters
  mutable std::unique_ptr<rocksdb::Iterator> slices_it_;    // lazily created by ScanSlices
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
