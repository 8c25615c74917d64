#include "store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <climits>

#include "store/internal/merge_operators.h"
#include "store/internal/store_rep.h"

namespace tally::store {

namespace internal {

Error FromRocks(const rocksdb::Status& s, std::string_view what) {
  ErrorCode code = ErrorCode::kInternal;
  if (s.IsCorruption()) code = ErrorCode::kDataLoss;
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain())
    code = ErrorCode::kUnavailable;
  if (s.IsNoSpace()) code = ErrorCode::kResourceExhausted;
  return Error{code, std::string(what) + ": " + s.ToString(), {}};
}

}  // namespace internal

using internal::FromRocks;
using internal::ToSlice;

namespace {

constexpr const char* kFamilies[] = {"default", "counters", "bitmaps",  "records",
                                     "dedupe",  "dict",     "requests", "userpacks"};

// True if the column family holds no key at all.
bool FamilyEmpty(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekToFirst();
  return !it->Valid();
}

}  // namespace

Store::Store() : rep_(std::make_unique<internal::StoreRep>()) {}

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> store(new Store());
  internal::StoreRep& rep = *store->rep_;
  store->options_ = options;
  store->newest_event_ms_ = std::make_shared<std::atomic<int64_t>>(INT64_MIN);
  rep.cache = rocksdb::NewLRUCache(options.block_cache_bytes);

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  db_options.keep_log_file_num = 5;
  // Without a WAL, column families must flush together to stay consistent with each other.
  db_options.atomic_flush = options.disable_wal;

  auto family = [&](size_t write_buffer) {
    rocksdb::ColumnFamilyOptions cf;
    cf.write_buffer_size = write_buffer;
    cf.max_write_buffer_number = 3;
    cf.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(8));
    // Flushes and the compactions out of level 0 write every byte ingest writes, and compressing
    // them took more of a busy store's CPU than writing them; they are a small part of the data
    // (level 1 holds at most max_bytes_for_level_base), so only the levels below are compressed,
    // with LZ4 (faster than the default Snappy at a similar ratio).
    cf.compression_per_level = {rocksdb::kNoCompression,  rocksdb::kNoCompression,
                                rocksdb::kLZ4Compression, rocksdb::kLZ4Compression,
                                rocksdb::kLZ4Compression, rocksdb::kLZ4Compression,
                                rocksdb::kLZ4Compression};
    // Most point reads miss the memtables (only the open buckets' rows are there): a memtable
    // bloom filter answers those without a walk down each memtable's skip list, which under
    // ingest (several memtables of fresh rows) is most of a read's cost.
    cf.memtable_whole_key_filtering = true;
    cf.memtable_prefix_bloom_size_ratio = 0.05;
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rep.cache;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    return cf;
  };

  // In kFamilies' (and internal::Family's) order: write buffer size and merge operator.
  const std::pair<size_t, std::shared_ptr<rocksdb::MergeOperator>> families[] = {
      {4 << 20, nullptr},
      {64 << 20, internal::NewCounterMergeOperator(rep.malformed)},
      {32 << 20, internal::NewBitmapOrMergeOperator(rep.malformed)},
      {16 << 20, internal::NewRecordMergeOperator(rep.malformed)},
      {32 << 20, nullptr},
      {8 << 20, nullptr},
      {32 << 20, internal::NewSliceMergeOperator(rep.malformed)},
      {16 << 20, internal::NewUserPackMergeOperator(rep.malformed)},
  };
  static_assert(sizeof(families) / sizeof(families[0]) == std::size(kFamilies));
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (size_t i = 0; i < std::size(families); ++i) {
    descriptors.emplace_back(kFamilies[i], family(families[i].first));
    descriptors.back().options.merge_operator = families[i].second;
  }
  rocksdb::ColumnFamilyOptions& dedupe = descriptors[internal::kDedupe].options;
  // Nearly every lookup misses (new events): a larger memtable bloom filter than the others'.
  dedupe.memtable_prefix_bloom_size_ratio = 0.1;
  dedupe.compaction_filter_factory = internal::NewDedupeCompactionFilterFactory(
      store->newest_event_ms_, options.dedupe_window_ms, options.clock);

  // Hot bitmaps (this month's active users, an organization's users per project), slices (month
  // slices of a busy organization) and user packs get an operand per persist: folding them at
  // write time every few operands keeps a read from combining one operand per persist since the
  // last flush. The store counts them itself (internal/merge_bound.h) rather than set RocksDB's
  // max_successive_merges, which seeks the memtable for every merge it inserts. A store without
  // a WAL is a rebuild that nothing reads until it is complete: it folds nothing.
  if (!options.disable_wal) {
    rep.merge_bound =
        internal::MergeBound({internal::kBitmaps, internal::kRequests, internal::kUserPacks});
  }
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, descriptors, &rep.cf, &rep.db);
  if (!s.ok()) return std::unexpected(FromRocks(s, "cannot open store at " + options.path));
  if (auto v = store->CheckSchemaVersion(); !v) return std::unexpected(v.error());
  std::string layout;
  s = rep.db->Get(rocksdb::ReadOptions(), rep.family(internal::kMeta), PartitionLayoutKey(),
                  &layout);
  if (!s.ok() && !s.IsNotFound()) {
    return std::unexpected(FromRocks(s, "reading the partition layout of " + options.path));
  }
  store->partitioned_.store(s.ok());
  rep.NewGeneration();
  // Read once: callers use it as a cache key on every request.
  if (!rep.db->GetDbIdentity(rep.identity).ok()) rep.identity.clear();
  std::string newest;
  if (rep.db
          ->Get(rocksdb::ReadOptions(), rep.family(internal::kMeta), NewestEventTimeKey(), &newest)
          .ok()) {
    std::string_view in = newest;
    uint64_t v;
    if (GetFixed64(&in, &v)) store->newest_event_ms_->store(static_cast<int64_t>(v));
  }
  return store;
}

Status Store::Resume() {
  rocksdb::Status s = rep_->db->Resume();
  if (!s.ok()) return std::unexpected(FromRocks(s, "resuming writes to " + options_.path));
  return Ok();
}

Status Store::Flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  rocksdb::Status s = rep_->db->Flush(fo, rep_->cf);
  if (!s.ok()) return std::unexpected(FromRocks(s, "flushing " + options_.path));
  return Ok();
}

Status Store::CheckSchemaVersion() {
  rocksdb::DB* db = rep_->db;
  rocksdb::ColumnFamilyHandle* meta = rep_->family(internal::kMeta);
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, SchemaVersionKey(), &value);
  uint32_t version = 1;
  if (s.ok()) {
    if (!DecodeUint32(value, &version)) {
      return Fail(ErrorCode::kDataLoss, "store at " + options_.path + ": malformed schema version");
    }
  } else if (!s.IsNotFound()) {
    return std::unexpected(FromRocks(s, "reading the schema version of " + options_.path));
  } else if (FamilyEmpty(db, rep_->family(internal::kRecords)) &&
             FamilyEmpty(db, rep_->family(internal::kCounters))) {
    // A new store (every applied event writes counters and records): this version writes it.
    s = db->Put(rocksdb::WriteOptions(), meta, SchemaVersionKey(), EncodeUint32(kSchemaVersion));
    if (!s.ok()) return std::unexpected(FromRocks(s, "writing the schema version"));
    version = kSchemaVersion;
  }
  if (version != kSchemaVersion) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the store at " + options_.path + " has data layout version " +
                    std::to_string(version) + " and this tally reads version " +
                    std::to_string(kSchemaVersion) +
                    ": rebuild the views from the topic or your archives with `tally replay "
                    "--mode rebuild --data-dir <data-dir> ...` (see `tally replay --help`)");
  }
  return Ok();
}

Status Store::BindRequestScopes(RequestScopes wanted) {
  constexpr std::string_view kNames[] = {"organization", "workspace"};
  rocksdb::DB* db = rep_->db;
  rocksdb::ColumnFamilyHandle* meta = rep_->family(internal::kMeta);
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, RequestScopesKey(), &value);
  if (!s.ok() && !s.IsNotFound()) {
    return std::unexpected(FromRocks(s, "reading the request layout of " + options_.path));
  }
  if (s.IsNotFound()) {
    if (FamilyEmpty(db, rep_->family(internal::kRequests))) {
      value = kNames[static_cast<int>(wanted)];
      rocksdb::WriteBatch batch;
      batch.Put(meta, RequestScopesKey(), value);
      // A group's store that starts empty keeps state per partition (partitioned()).
      const bool empty = FamilyEmpty(db, rep_->family(internal::kCounters)) &&
                         FamilyEmpty(db, rep_->family(internal::kRecords)) &&
                         FamilyEmpty(db, rep_->family(internal::kDedupe));
      const bool partition = wanted == RequestScopes::kWorkspace && empty;
      if (partition) batch.Put(meta, PartitionLayoutKey(), ToSlice(kPartitionedValue));
      s = db->Write(rocksdb::WriteOptions(), &batch);
      if (!s.ok()) return std::unexpected(FromRocks(s, "writing the request layout"));
      if (partition) partitioned_.store(true, std::memory_order_release);
    } else {
      value = kNames[0];  // request data written before the layout was recorded
    }
  }
  if (value != kNames[static_cast<int>(wanted)]) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the store at " + options_.path + " keys request analytics by " + value +
                    ", and this tallyd needs them keyed by " +
                    std::string(kNames[static_cast<int>(wanted)]) +
                    " (a group of instances, --advertise-url, keys them by workspace; a single "
                    "instance by organization): start it with an empty --data-dir, which it "
                    "fills from the log");
  }
  return Ok();
}

Store::~Store() = default;

const std::string& Store::identity() const { return rep_->identity; }

Status Store::Checkpoint(const std::string& path) const {
  rocksdb::Checkpoint* cp = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(rep_->db, &cp);
  if (!s.ok()) return std::unexpected(FromRocks(s, "cannot start a checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> owner(cp);
  // The WAL is flushed into the checkpoint (log_size_for_flush 0), so it opens without replay
  // surprises and holds every acknowledged batch.
  s = cp->CreateCheckpoint(path, /*log_size_for_flush=*/0);
  if (s.IsInvalidArgument()) {
    return Fail(ErrorCode::kInvalidArgument, "checkpoint: " + s.ToString(), "path");
  }
  if (!s.ok()) return std::unexpected(FromRocks(s, "checkpoint to " + path + " failed"));
  return Ok();
}

void Store::ObserveEventTime(int64_t time_ms) {
  int64_t cur = newest_event_ms_->load(std::memory_order_relaxed);
  while (time_ms > cur && !newest_event_ms_->compare_exchange_weak(cur, time_ms)) {
  }
}

uint64_t Store::MalformedOperands() const {
  return rep_->malformed->load(std::memory_order_relaxed);
}

}  // namespace tally::store
