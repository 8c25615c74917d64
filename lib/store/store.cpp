#include "store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <climits>
#include <shared_mutex>

#include "store/internal/merge_operators.h"
#include "store/internal/store_rep.h"

namespace tally::store {
namespace {

using internal::ToSlice;
using internal::View;

Error FromRocks(const rocksdb::Status& s, std::string_view what) {
  ErrorCode code = ErrorCode::kInternal;
  if (s.IsCorruption()) code = ErrorCode::kDataLoss;
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain())
    code = ErrorCode::kUnavailable;
  if (s.IsNoSpace()) code = ErrorCode::kResourceExhausted;
  return Error{code, std::string(what) + ": " + s.ToString(), {}};
}

constexpr const char* kFamilies[] = {"default", "counters", "bitmaps",  "records",
                                     "dedupe",  "dict",     "requests", "userpacks"};

// True if the column family holds no key at all.
bool FamilyEmpty(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekToFirst();
  return !it->Valid();
}

}  // namespace

namespace internal {

// Up to kMaxParts operands are returned unmerged; a key with more (a flush or compaction has
// not caught up) is read merged, as one part. A staged delta comes last, as one more part.
struct PinnedParts {
  static constexpr int kMaxParts = 32;
  rocksdb::PinnableSlice parts[kMaxParts];
  std::string merged;
  std::string open;  // the staged part
  size_t count = 0;  // stored parts (1 when use_merged)
  bool use_merged = false;
  bool has_open = false;
};

// Staged rows of one family under a prefix, copied out of the open state (under its lock) so
// that a scan can run without holding it.
using OpenRows = std::vector<std::pair<std::string, std::string>>;

// Where a MergedCursor finds staged rows: a generation's open state (null: nowhere), read under
// its lock unless the reader holds that lock already (a stable view).
struct OpenSource {
  const Generation* gen = nullptr;
  bool held = false;
};

// A prefix scan over a family that yields stored and staged rows together, in key order; a key
// in both yields the combined value (CombineEncoded).
class MergedCursor {
 public:
  // `it` is borrowed (positioned by Seek). The staged rows come from `open`, a few at a time
  // (each load under the lock on its own): a scan that stops after a row or two (the first slice
  // of a project, say) encodes a few staged rows, not every one under the prefix, and sees rows
  // staged while it runs, as a point read does.
  //
  // `keys_only`: for readers that need keys and not values. Staged rows are not encoded, and a
  // row with a staged part has an empty value() (staged() tells those apart: a staged row is
  // never malformed, while a stored-only row's value() is its stored value, to be checked).
  MergedCursor(rocksdb::Iterator* it, Family family, std::string_view prefix, OpenSource open,
               bool keys_only = false)
      : it_(it), family_(family), prefix_(prefix), source_(open), keys_only_(keys_only) {}
  void Seek(std::string_view target) {
    it_->Seek(ToSlice(target));
    chunk_ = kFirstChunk;
    Load(target);
    Settle();
  }
  bool Valid() const { return db_valid_ || oi_ < open_.size(); }
  std::string_view key() const { return key_; }
  std::string_view value() const { return value_; }
  // True if the current row has a staged part.
  bool staged() const { return from_open_; }
  void Next() {
    if (from_db_) it_->Next();
    if (from_open_ && ++oi_ == open_.size() && !open_done_) {
      // The smallest key after the last one loaded.
      std::string next = std::move(open_.back().first);
      next.push_back('\0');
      Load(next);
    }
    Settle();
  }

 private:
  static constexpr size_t kFirstChunk = 4;
  static constexpr size_t kMaxChunk = 1024;

  // Replaces open_ with the next staged rows from `from` on (at most chunk_ of them).
  void Load(std::string_view from) {
    open_.clear();
    oi_ = 0;
    if (source_.gen != nullptr && source_.gen->staged_rows.load(std::memory_order_acquire) > 0) {
      std::shared_lock<std::shared_mutex> lock;
      if (!source_.held) lock = std::shared_lock(source_.gen->mu);
      if (keys_only_) {
        source_.gen->open.ScanKeys(family_, prefix_, from, [&](std::string_view k) {
          open_.emplace_back(k, std::string());
          return open_.size() < chunk_;
        });
      } else {
        source_.gen->open.Scan(family_, prefix_, from, [&](std::string_view k, std::string_view v) {
          open_.emplace_back(k, v);
          return open_.size() < chunk_;
        });
      }
    }
    open_done_ = open_.size() < chunk_;
    chunk_ = std::min(chunk_ * 4, kMaxChunk);
  }

  void Settle() {
    db_valid_ = it_->Valid() && it_->key().starts_with(ToSlice(prefix_));
    const bool open_valid = oi_ < open_.size();
    if (!db_valid_ && !open_valid) return;
    const std::string_view db_key = db_valid_ ? View(it_->key()) : std::string_view();
    from_db_ = db_valid_ && (!open_valid || db_key <= std::string_view(open_[oi_].first));
    from_open_ = open_valid && (!db_valid_ || std::string_view(open_[oi_].first) <= db_key);
    if (from_db_ && from_open_ && keys_only_) {
      key_ = db_key;
      value_ = {};
    } else if (from_db_ && from_open_) {
      key_ = db_key;
      CombineEncoded(family_, View(it_->value()), open_[oi_].second, &combined_);
      value_ = combined_;
    } else if (from_db_) {
      key_ = db_key;
      value_ = View(it_->value());
    } else {
      key_ = open_[oi_].first;
      value_ = open_[oi_].second;
    }
  }

  rocksdb::Iterator* it_;
  Family family_;
  std::string prefix_;
  OpenSource source_;
  bool keys_only_;
  OpenRows open_;  // the staged rows loaded last
  size_t oi_ = 0;
  size_t chunk_ = kFirstChunk;
  bool open_done_ = true;  // no staged rows after open_
  bool db_valid_ = false, from_db_ = false, from_open_ = false;
  std::string_view key_, value_;
  std::string combined_;
};

}  // namespace internal

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

  auto family = [&](bool bloom, size_t write_buffer) {
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
    if (bloom) {
      // Most point reads miss the memtables (only the open buckets' rows are there): a memtable
      // bloom filter answers those without a walk down each memtable's skip list, which under
      // ingest (several memtables of fresh rows) is most of a read's cost.
      cf.memtable_whole_key_filtering = true;
      cf.memtable_prefix_bloom_size_ratio = 0.05;
    }
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rep.cache;
    if (bloom) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    return cf;
  };

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(kFamilies[0], family(true, 4 << 20));
  auto counters = family(true, 64 << 20);
  counters.merge_operator = internal::NewCounterMergeOperator();
  descriptors.emplace_back(kFamilies[1], counters);
  auto bitmaps = family(true, 32 << 20);
  bitmaps.merge_operator = internal::NewBitmapOrMergeOperator();
  descriptors.emplace_back(kFamilies[2], bitmaps);
  auto records = family(true, 16 << 20);
  records.merge_operator = internal::NewRecordMergeOperator();
  descriptors.emplace_back(kFamilies[3], records);
  auto dedupe = family(true, 32 << 20);
  // Nearly every lookup misses (new events): a larger memtable bloom filter than the others'.
  dedupe.memtable_prefix_bloom_size_ratio = 0.1;
  dedupe.compaction_filter_factory =
      internal::NewDedupeCompactionFilterFactory(store->newest_event_ms_, options.dedupe_window_ms);
  descriptors.emplace_back(kFamilies[4], dedupe);
  descriptors.emplace_back(kFamilies[5], family(true, 8 << 20));
  auto requests = family(true, 32 << 20);
  requests.merge_operator = internal::NewSliceMergeOperator();
  descriptors.emplace_back(kFamilies[6], requests);
  auto packs = family(true, 16 << 20);
  packs.merge_operator = internal::NewUserPackMergeOperator();
  descriptors.emplace_back(kFamilies[7], packs);

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

namespace {

// Folds a write batch's operations into an open state (Store::Stage).
class StageHandler : public rocksdb::WriteBatch::Handler {
 public:
  StageHandler(const internal::StoreRep& rep, internal::OpenState* open, bool roll_up_days)
      : rep_(rep), open_(open), roll_up_days_(roll_up_days) {}
  rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& key,
                        const rocksdb::Slice& value) override {
    const internal::Family f = rep_.FamilyOfId(id);
    if (!internal::IsPutFamily(f)) return rocksdb::Status::InvalidArgument("put to a view");
    open_->Put(f, View(key), View(value));
    return rocksdb::Status::OK();
  }
  rocksdb::Status MergeCF(uint32_t id, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
    const internal::Family f = rep_.FamilyOfId(id);
    if (roll_up_days_ && f != internal::kRecords && RollUpKeys(View(key), &week_, &month_)) {
      Merge(f, week_, View(value));
      Merge(f, month_, View(value));
    }
    return Merge(f, View(key), View(value));
  }
  // Everything else (deletes, ranges) cannot be staged: the base class refuses it.

 private:
  rocksdb::Status Merge(internal::Family f, std::string_view key, std::string_view value) {
    switch (f) {
      case internal::kCounters:
        open_->AddCounters(key, value);
        break;
      case internal::kUserPacks:
        open_->AddUserPack(key, value);
        break;
      case internal::kBitmaps:
        open_->OrBitmap(key, value);
        break;
      case internal::kRecords:
        open_->MergeRecord(key, value);
        break;
      case internal::kRequests:
        open_->AddSlice(key, value);
        break;
      default:
        return rocksdb::Status::InvalidArgument("merge into a put family");
    }
    return rocksdb::Status::OK();
  }

  const internal::StoreRep& rep_;
  internal::OpenState* open_;
  const bool roll_up_days_;
  std::string week_, month_;
};

}  // namespace

Status Store::Write(WriteSet* set, const WriteNote* note) {
  if (!internal::Access::BelongsTo(*set, *this)) {
    return Fail(ErrorCode::kInvalidArgument, "write set of another store", "set");
  }
  Status s = WriteLocked(set, note);
  if (s) RunFollowers();
  return s;
}

Status Store::WriteLocked(WriteSet* set, const WriteNote* note) {
  std::lock_guard lock(write_mu_);
  if (rep_->Current()->staged_rows.load() > 0 || set->rep_->roll_up_days) {
    // After what is staged, never before it: stage this too and persist both. (A set of day rows
    // that roll up is staged too: staging is where they do.)
    if (Status s = StageLocked(set, note); !s) return s;
    return PersistLocked();
  }
  rocksdb::WriteOptions wo;
  wo.sync = false;
  wo.disableWAL = options_.disable_wal;
  rep_->merge_bound.BeginWrite(*rep_);
  rocksdb::WriteBatch folded;
  const bool fold = rep_->merge_bound.Rewrite(*rep_, set->rep_->batch, &folded);
  rocksdb::Status s = rep_->db->Write(wo, fold ? &folded : &set->rep_->batch);
  rep_->merge_bound.EndWrite(*rep_);
  if (!s.ok()) return std::unexpected(FromRocks(s, "store write failed"));
  PublishLocked(note, /*stored=*/true);
  return Ok();
}

void Store::PublishLocked(const WriteNote* note, bool stored) {
  // The log learns of the write before readers can see its version: a reader at that version
  // must find the entry that leads to it.
  const uint64_t v = rep_->version.load() + 1;
  changes_.Record(v - 1, v, note);
  if (stored) {
    // Views take the generation and the version together (NewReadView): swapping them apart
    // would let a view read this write at the version before it, and a cache made from that
    // view would count the write again when it replays the log.
    rep_->NewGeneration(v);
  } else {
    std::lock_guard lock(rep_->gen_mu);
    rep_->version.store(v);
  }
}

Status Store::Stage(WriteSet* set, const WriteNote* note) {
  if (!internal::Access::BelongsTo(*set, *this)) {
    return Fail(ErrorCode::kInvalidArgument, "write set of another store", "set");
  }
  Status s;
  {
    std::lock_guard lock(write_mu_);
    s = StageLocked(set, note);
  }
  if (s) RunFollowers();
  return s;
}

void Store::Follow(const void* tag, std::function<void(const Store&)> fn) const {
  std::lock_guard lock(followers_mu_);
  for (const auto& [t, f] : *followers_)
    if (t == tag) return;
  auto next = std::make_shared<Followers>(*followers_);
  next->emplace_back(tag, std::move(fn));
  followers_ = std::move(next);
}

void Store::RunFollowers() const {
  std::shared_ptr<const Followers> followers;
  {
    std::lock_guard lock(followers_mu_);
    followers = followers_;
  }
  for (const auto& [tag, fn] : *followers) {
    // The write has succeeded and is visible: a follower that fails (out of memory) must not
    // make its writer believe otherwise and write the batch again.
    try {
      fn(*this);
    } catch (...) {
    }
  }
}

Status Store::StageLocked(WriteSet* set, const WriteNote* note) {
  std::shared_ptr<internal::Generation> g = rep_->Current();
  std::unique_lock open_lock(g->mu);
  StageHandler handler(*rep_, &g->open, set->rep_->roll_up_days);
  rocksdb::Status s = set->rep_->batch.Iterate(&handler);
  g->staged_rows.store(g->open.rows());
  if (!s.ok()) {
    // Only a caller's mistake gets here (the aggregator never deletes), and the operations
    // before it are staged already: say so loudly rather than pretend nothing happened.
    return Fail(ErrorCode::kInternal, "cannot stage this write set (" + s.ToString() +
                                          "); the operations before it are staged");
  }
  // Published before the lock is released: a stable view (which holds it shared) then sees
  // every stage of its generation in its version, and none after.
  PublishLocked(note, /*stored=*/false);
  open_lock.unlock();
  rep_->ReapRetired();
  return Ok();
}

Status Store::Persist() {
  std::lock_guard lock(write_mu_);
  return PersistLocked();
}

Status Store::PersistLocked() {
  // A writer that persists when its stream is quiet frees what the last views left behind.
  rep_->ReapRetired();
  std::shared_ptr<internal::Generation> g = rep_->Current();
  if (g->staged_rows.load() == 0) return Ok();
  // Only this thread (holding write_mu_) changes the open state: no need for its lock here.
  rocksdb::WriteBatch batch;
  internal::MergeBound& bound = rep_->merge_bound;
  bound.BeginWrite(*rep_);
  std::string whole;
  g->open.ForEach([&](internal::Family f, std::string_view key, std::string_view value) {
    if (internal::IsPutFamily(f)) {
      batch.Put(rep_->family(f), ToSlice(key), ToSlice(value));
      return;
    }
    // The open state holds one delta per row: the batch has no earlier operation on `key`.
    if (bound.Fold(f, key)) {
      internal::MergeBound::AppendWhole(*rep_, f, key, value, &batch, &whole);
    } else {
      batch.Merge(rep_->family(f), ToSlice(key), ToSlice(value));
    }
  });
  rocksdb::WriteOptions wo;
  wo.sync = false;
  wo.disableWAL = options_.disable_wal;
  rocksdb::Status s = rep_->db->Write(wo, &batch);
  bound.EndWrite(*rep_);
  if (!s.ok()) return std::unexpected(FromRocks(s, "persisting the open state failed"));
  // Views made from now on read the persisted rows from the database; those made before keep
  // the old snapshot with the old open state, which reads the same.
  g.reset();
  rep_->NewGeneration();
  return Ok();
}

Store::Staged Store::staged() const {
  std::shared_ptr<internal::Generation> g = rep_->Current();
  std::shared_lock lock(g->mu);
  return {g->open.rows(), g->open.approximate_bytes()};
}

Result<std::vector<Store::OffsetEntry>> Store::LoadOffsets() const {
  std::vector<OffsetEntry> out;
  bool malformed = false;
  Status s = ScanLatest(
      internal::kMeta, OffsetPrefix(), [&](std::string_view key, std::string_view value) {
        OffsetEntry e;
        malformed =
            !DecodeOffsetKey(key, &e.topic, &e.partition) || !DecodeOffset(value, &e.offset);
        if (!malformed) out.push_back(std::move(e));
        return !malformed;
      });
  if (!s) return std::unexpected(s.error());
  if (malformed) return Fail(ErrorCode::kDataLoss, "stored offset row is malformed");
  return out;
}

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

// ----------------------------------------------------------------------- writer-side reads

namespace {

// The uint32 at `key` of the dictionary family (staged or stored); nullopt if absent.
Result<std::optional<uint32_t>> GetDictIndex(const internal::StoreRep& rep, const std::string& key,
                                             std::string_view what) {
  std::shared_ptr<internal::Generation> g = rep.Current();
  std::string staged;
  bool found;
  {
    std::shared_lock lock(g->mu);
    found = g->open.Get(internal::kDict, key, &staged);
  }
  rocksdb::PinnableSlice value;
  if (!found) {
    rocksdb::ReadOptions ro;
    ro.snapshot = g->snapshot;
    rocksdb::Status s = rep.db->Get(ro, rep.family(internal::kDict), key, &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) {
      return Fail(ErrorCode::kUnavailable,
                  "reading the " + std::string(what) + ": " + s.ToString());
    }
  }
  uint32_t index;
  if (!DecodeUint32(found ? std::string_view(staged) : View(value), &index)) {
    return Fail(ErrorCode::kDataLoss, std::string(what) + " is malformed");
  }
  return index;
}

}  // namespace

Result<bool> Store::PartitionsSeparable() const {
  if (!partitioned()) return false;
  // The latest value: staged (MarkUnindexedEvents), else in the database, which BindRequestScopes
  // writes directly (no generation's snapshot need hold it).
  std::shared_ptr<internal::Generation> g = rep_->Current();
  std::string value;
  bool staged;
  {
    std::shared_lock lock(g->mu);
    staged = g->open.Get(internal::kMeta, PartitionLayoutKey(), &value);
  }
  if (!staged) {
    rocksdb::Status s = rep_->db->Get(rocksdb::ReadOptions(), rep_->family(internal::kMeta),
                                      PartitionLayoutKey(), &value);
    if (!s.ok() && !s.IsNotFound()) {
      return std::unexpected(FromRocks(s, "reading the partition layout"));
    }
  }
  return value == kPartitionedValue;
}

Result<std::vector<std::pair<int32_t, std::string>>> Store::LoadPartitionIndex(
    std::string_view topic) const {
  std::vector<std::pair<int32_t, std::string>> out;
  const std::string prefix = PartitionIndexPrefix(topic);
  auto scanned = ScanLatest(internal::kMeta, prefix, [&](std::string_view key, std::string_view) {
    int32_t partition;
    std::string_view ws;
    if (DecodePartitionWorkspaceKey(key, &partition, &ws)) out.emplace_back(partition, ws);
    return true;
  });
  if (!scanned) return std::unexpected(scanned.error());
  return out;
}

Result<uint64_t> Store::DropPartition(std::string_view topic, int32_t partition,
                                      std::span<const DroppedWorkspace> workspaces) {
  auto separable = PartitionsSeparable();
  if (!separable) return std::unexpected(separable.error());
  if (!*separable) {
    return Fail(ErrorCode::kFailedPrecondition,
                "the store at " + options_.path +
                    " does not keep state per partition: its partitions cannot be dropped");
  }
  auto dropped = [&]() -> Result<uint64_t> {
    std::lock_guard lock(write_mu_);
    if (Status p = PersistLocked(); !p) return std::unexpected(p.error());
    rocksdb::WriteBatch batch;
    // Point deletions of every row in the ranges: range deletions would share the memtable's
    // insert hints (memtable_insert_with_hint_prefix_extractor) between its point and range
    // tables, which RocksDB does not support. Persisted above, so the database holds every row.
    Status read = Ok();
    auto delete_ranges = [&](const std::vector<FamilyRange>& ranges) {
      for (const FamilyRange& r : ranges) {
        rocksdb::ColumnFamilyHandle* cf = rep_->family(static_cast<internal::Family>(r.family));
        rocksdb::Slice upper = ToSlice(r.end);
        rocksdb::ReadOptions ro;
        ro.iterate_upper_bound = &upper;
        ro.fill_cache = false;
        std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(ro, cf));
        for (it->Seek(ToSlice(r.begin)); it->Valid(); it->Next()) batch.Delete(cf, it->key());
        if (!it->status().ok() && read)
          read = std::unexpected(FromRocks(it->status(), "reading rows to drop"));
      }
    };
    std::string key, value;
    Record row;
    for (const DroppedWorkspace& w : workspaces) {
      delete_ranges(WorkspaceRowRanges(w.workspace_id));
      // Request rows under the organization the caller names, and under the stored binding.
      std::string stored_org;
      WorkspaceKey(w.workspace_id, &key);
      rocksdb::Status got =
          rep_->db->Get(rocksdb::ReadOptions(), rep_->family(internal::kRecords), key, &value);
      if (!got.ok() && !got.IsNotFound()) {
        return std::unexpected(FromRocks(got, "reading a workspace row"));
      }
      if (got.ok() && DecodeRecord(value, &row)) {
        const Field* f = FindField(row, field::kWorkspaceOrganization);
        if (f != nullptr) stored_org = f->value;
      }
      if (!w.organization_id.empty()) {
        delete_ranges(RequestScopeRanges(WorkspaceRequestScope(w.organization_id, w.workspace_id)));
      }
      if (!stored_org.empty() && stored_org != w.organization_id) {
        delete_ranges(RequestScopeRanges(WorkspaceRequestScope(stored_org, w.workspace_id)));
      }
    }
    const std::string index = PartitionIndexPrefix(topic, partition);
    delete_ranges({FamilyRange{internal::kMeta, index, PrefixSuccessor(index)}});
    if (!read) return std::unexpected(read.error());
    const uint64_t rows = batch.Count();
    OffsetKey(topic, partition, &key);
    batch.Delete(rep_->family(internal::kMeta), key);
    rocksdb::WriteOptions wo;
    wo.disableWAL = options_.disable_wal;
    rep_->merge_bound.BeginWrite(*rep_);
    rocksdb::Status s = rep_->db->Write(wo, &batch);
    rep_->merge_bound.EndWrite(*rep_);
    if (!s.ok()) return std::unexpected(FromRocks(s, "dropping a partition"));
    PublishLocked(nullptr, /*stored=*/true);
    return rows;
  }();
  // Followers (readers that bring views forward) learn of it like of any write.
  if (dropped) RunFollowers();
  return dropped;
}

Status Store::ScanLatest(int family, std::string_view prefix,
                         const std::function<bool(std::string_view, std::string_view)>& fn) const {
  const auto f = static_cast<internal::Family>(family);
  std::shared_ptr<internal::Generation> g = rep_->Current();
  rocksdb::ReadOptions ro;
  ro.snapshot = g->snapshot;
  std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(ro, rep_->family(f)));
  internal::MergedCursor cur(it.get(), f, prefix, {g.get()});
  for (cur.Seek(prefix); cur.Valid(); cur.Next()) {
    if (!fn(cur.key(), cur.value())) return Ok();
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "reading the store"));
  return Ok();
}

Result<Store::DictionaryNext> Store::LoadDictionaryNext() const {
  DictionaryNext next;
  const std::pair<std::string, uint32_t*> counters[] = {{UserDictNextKey(), &next.user},
                                                        {AgentDictNextKey(), &next.agent},
                                                        {PairDictNextKey(), &next.pair}};
  for (const auto& [key, out] : counters) {
    auto v = GetDictIndex(*rep_, key, "dictionary counter");
    if (!v) return std::unexpected(v.error());
    if (*v) *out = **v;
  }
  return next;
}

Result<std::optional<uint32_t>> Store::LookupUserIndex(std::string_view user_id) const {
  std::string key;
  UserDictKey(user_id, &key);
  return GetDictIndex(*rep_, key, "user dictionary entry");
}

Result<std::optional<uint32_t>> Store::LookupAgentIndex(std::string_view workspace_id,
                                                        std::string_view agent_id) const {
  std::string key;
  AgentDictKey(workspace_id, agent_id, &key);
  return GetDictIndex(*rep_, key, "agent dictionary entry");
}

Result<std::optional<uint32_t>> Store::LookupPairIndex(uint32_t agent_index,
                                                       uint32_t user_index) const {
  std::string key;
  PairDictKey(agent_index, user_index, &key);
  return GetDictIndex(*rep_, key, "pair dictionary entry");
}

Status Store::FindDedupeKeys(std::span<const std::string_view> keys,
                             std::vector<uint8_t>* stored) const {
  stored->assign(keys.size(), 0);
  if (keys.empty()) return Ok();
  std::vector<rocksdb::Slice> slices(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) slices[i] = ToSlice(keys[i]);
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  // Stored and staged keys of one generation: they never overlap and never miss one another.
  std::shared_ptr<internal::Generation> g = rep_->Current();
  rocksdb::ReadOptions ro;
  ro.snapshot = g->snapshot;
  rep_->db->MultiGet(ro, rep_->family(internal::kDedupe), keys.size(), slices.data(), values.data(),
                     statuses.data(), /*sorted_input=*/true);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].ok()) {
      (*stored)[i] = 1;
    } else if (!statuses[i].IsNotFound()) {
      return Fail(ErrorCode::kUnavailable, "dedupe lookup failed: " + statuses[i].ToString());
    }
  }
  if (g->staged_rows.load() > 0) {
    std::shared_lock lock(g->mu);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!(*stored)[i] && g->open.Contains(internal::kDedupe, keys[i])) (*stored)[i] = 1;
    }
  }
  return Ok();
}

uint64_t Store::EstimateDedupeKeys() const {
  uint64_t estimate = 0;
  if (!rep_->db->GetIntProperty(rep_->family(internal::kDedupe), "rocksdb.estimate-num-keys",
                                &estimate)) {
    return 0;
  }
  return estimate;
}

Status Store::ScanDedupeKeys(const std::function<bool(std::string_view key)>& fn) const {
  return ScanLatest(internal::kDedupe, {},
                    [&](std::string_view key, std::string_view) { return fn(key); });
}

Status Store::ScanPairDictionary(const std::function<bool(uint32_t, uint32_t)>& fn) const {
  return ScanLatest(internal::kDict, PairDictPrefix(), [&](std::string_view key, std::string_view) {
    uint32_t agent, user;
    return !DecodePairDictKey(key, &agent, &user) || fn(agent, user);
  });
}

Status Store::ScanWorkspaceRecords(
    const std::function<void(std::string_view workspace_id, const Record& row)>& fn) const {
  Record record;
  return ScanLatest(internal::kRecords, WorkspacePrefix(),
                    [&](std::string_view key, std::string_view value) {
                      std::string_view ws;
                      if (DecodeWorkspaceKey(key, &ws)) {
                        DecodeRecord(value, &record);
                        fn(ws, record);
                      }
                      return true;
                    });
}

void Store::ObserveEventTime(int64_t time_ms) {
  int64_t cur = newest_event_ms_->load(std::memory_order_relaxed);
  while (time_ms > cur && !newest_event_ms_->compare_exchange_weak(cur, time_ms)) {
  }
}

uint64_t Store::MalformedOperands() { return internal::MalformedOperandCount(); }

// ---------------------------------------------------------------------------------------------

using internal::MergedCursor;
using internal::OpenRows;
using internal::PinnedParts;

struct ReadView::Rep {
  Rep(const internal::StoreRep* s, std::shared_ptr<const internal::Generation> g, uint64_t v)
      : store(s), gen(std::move(g)), version(v) {
    read.snapshot = gen->snapshot;
    scan.snapshot = gen->snapshot;
    scan.verify_checksums = false;  // blocks are checksummed when read from disk into the cache
  }
  ~Rep() {
    parts.reset();        // pinned blocks, before the snapshot they were read at
    counters_it.reset();  // iterators, before the snapshot they read from
    slices_it.reset();
  }
  rocksdb::ColumnFamilyHandle* family(internal::Family f) const { return store->family(f); }
  rocksdb::Iterator* NewScanIterator(internal::Family f) const {
    return store->db->NewIterator(scan, family(f));
  }
  // True if anything is staged (else the open state need not be looked at).
  bool HasOpen() const { return gen->staged_rows.load(std::memory_order_acquire) > 0; }
  // The lock a read of the open state takes: none for a stable view, which holds it already.
  std::shared_lock<std::shared_mutex> OpenLock() const {
    return hold.owns_lock() ? std::shared_lock<std::shared_mutex>()
                            : std::shared_lock<std::shared_mutex>(gen->mu);
  }
  // The staged delta at `key` into *out; false if none.
  bool OpenGet(internal::Family f, std::string_view key, std::string* out) const {
    if (!HasOpen()) return false;
    auto lock = OpenLock();
    return gen->open.Get(f, key, out);
  }
  // Where this view's scans find staged rows (MergedCursor).
  internal::OpenSource Open() const { return {gen.get(), hold.owns_lock()}; }
  // Point read of `key`: the stored value with any staged delta applied. *out views *pin or
  // *scratch, which the caller provides. False if the key is neither stored nor staged.
  bool Read(internal::Family f, std::string_view key, rocksdb::PinnableSlice* pin,
            std::string* scratch, std::string_view* out) const {
    pin->Reset();
    const bool stored = store->db->Get(read, family(f), ToSlice(key), pin).ok();
    std::string delta;
    if (OpenGet(f, key, &delta)) {
      CombineEncoded(f, stored ? View(*pin) : std::string_view(), delta, scratch);
      *out = *scratch;
      return true;
    }
    if (stored) *out = View(*pin);
    return stored;
  }

  const internal::StoreRep* store;
  std::shared_ptr<const internal::Generation> gen;
  uint64_t version;
  rocksdb::ReadOptions read;  // point reads
  rocksdb::ReadOptions scan;  // iterators
  // One iterator per family and view, re-seeked for each prefix: a query scans a dozen or more
  // buckets, and creating an iterator over every memtable and level costs more than a seek.
  std::unique_ptr<rocksdb::Iterator> counters_it;  // lazily created by ScanCounters
  std::unique_ptr<rocksdb::Iterator> slices_it;    // lazily created by ScanSlices
  std::unique_ptr<PinnedParts> parts;              // lazily created by PinUserPackParts
  // A stable view's hold on the generation's lock (shared): no stage changes the open state
  // while the view lives. Declared after `gen`, so released before it.
  std::shared_lock<std::shared_mutex> hold;
};

std::unique_ptr<ReadView> Store::NewReadView() const {
  std::shared_ptr<const internal::Generation> g;
  uint64_t version;
  {
    std::lock_guard lock(rep_->gen_mu);
    g = rep_->current;
    version = rep_->version.load();
  }
  return std::unique_ptr<ReadView>(
      new ReadView(std::make_unique<ReadView::Rep>(rep_.get(), std::move(g), version)));
}

std::unique_ptr<ReadView> Store::NewStableReadView() const {
  for (;;) {
    std::shared_ptr<internal::Generation> g = rep_->Current();
    // Stages publish their version while they hold this lock exclusively: holding it shared,
    // every stage of `g` is in the version read below, and no other can start.
    std::shared_lock hold(g->mu);
    uint64_t version;
    {
      std::lock_guard lock(rep_->gen_mu);
      if (rep_->current != g) continue;  // a write or persist made a newer generation: again
      version = rep_->version.load();
    }
    auto rep = std::make_unique<ReadView::Rep>(rep_.get(), std::move(g), version);
    rep->hold = std::move(hold);
    return std::unique_ptr<ReadView>(new ReadView(std::move(rep)));
  }
}

ReadView::ReadView(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

ReadView::~ReadView() = default;

uint64_t ReadView::version() const { return rep_->version; }

bool ReadView::AddCounters(std::string_view key, Counters* c) const {
  rocksdb::PinnableSlice value;
  const bool stored =
      rep_->store->db->Get(rep_->read, rep_->family(internal::kCounters), ToSlice(key), &value)
          .ok();
  if (stored) AddEncodedCounters(View(value), c);
  bool staged = false;
  if (rep_->HasOpen()) {
    auto lock = rep_->OpenLock();
    staged = rep_->gen->open.AddCountersTo(key, c);
  }
  return stored || staged;
}

void ReadView::ScanCounters(
    std::string_view prefix,
    const std::function<void(std::string_view, const Counters&)>& fn) const {
  if (!rep_->counters_it) rep_->counters_it.reset(rep_->NewScanIterator(internal::kCounters));
  MergedCursor cur(rep_->counters_it.get(), internal::kCounters, prefix, rep_->Open());
  Counters c;
  for (cur.Seek(prefix); cur.Valid(); cur.Next()) {
    c = Counters{};
    if (!AddEncodedCounters(cur.value(), &c)) continue;
    fn(cur.key().substr(prefix.size()), c);
  }
}

bool ReadView::OrBitmap(std::string_view key, UserBitmap* b) const {
  rocksdb::PinnableSlice value;
  const bool stored =
      rep_->store->db->Get(rep_->read, rep_->family(internal::kBitmaps), ToSlice(key), &value).ok();
  if (stored) b->OrEncoded(View(value));
  bool staged = false;
  if (rep_->HasOpen()) {
    auto lock = rep_->OpenLock();
    staged = rep_->gen->open.OrBitmapInto(key, b);
  }
  return stored || staged;
}

std::vector<uint64_t> ReadView::UnionCardinalities(
    const std::vector<std::vector<std::string>>& groups) const {
  std::vector<rocksdb::Slice> keys;
  for (const auto& g : groups)
    for (const std::string& k : g) keys.emplace_back(k);
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  if (!keys.empty()) {
    rep_->store->db->MultiGet(rep_->read, rep_->family(internal::kBitmaps), keys.size(),
                              keys.data(), values.data(), statuses.data());
  }
  std::vector<uint64_t> out;
  out.reserve(groups.size());
  size_t at = 0;
  std::vector<std::string_view> parts;
  // A union is an OR: a group's staged deltas are one more part, OR-ed under the generation's
  // lock (briefly: a group's few staged bitmaps), never encoded only to be decoded again.
  for (const auto& g : groups) {
    parts.clear();
    for (size_t i = 0; i < g.size(); ++i) {
      if (statuses[at + i].ok()) parts.push_back(View(values[at + i]));
    }
    at += g.size();
    if (!rep_->HasOpen()) {
      out.push_back(UnionCardinalityOfEncoded(parts));
      continue;
    }
    UserBitmap staged_union;
    bool staged = false;
    {
      auto lock = rep_->OpenLock();
      for (const std::string& key : g) {
        staged = rep_->gen->open.OrBitmapInto(key, &staged_union) || staged;
      }
    }
    const UserBitmap* staged_parts[] = {&staged_union};
    out.push_back(
        UnionCardinalityOfEncoded(parts, staged ? std::span<const UserBitmap* const>(staged_parts)
                                                : std::span<const UserBitmap* const>()));
  }
  return out;
}

bool ReadView::GetUserPack(std::string_view key, std::string* pack) const {
  rocksdb::PinnableSlice pin;
  std::string_view value;
  if (!rep_->Read(internal::kUserPacks, key, &pin, pack, &value)) return false;
  if (value.data() != pack->data()) pack->assign(value);
  return true;
}

bool ReadView::AddUserCounters(std::string_view key, uint32_t user, Counters* c) const {
  return ForEachUserPackPart(key, [&](std::string_view part) {
    std::string_view encoded;
    if (FindUserPackEntry(part, user, &encoded)) AddEncodedCounters(encoded, c);
  });
}

size_t ReadView::PinUserPackParts(std::string_view key) const {
  if (!rep_->parts) rep_->parts = std::make_unique<PinnedParts>();
  PinnedParts& p = *rep_->parts;
  for (size_t i = 0; i < p.count; ++i) p.parts[i].Reset();
  p.count = 0;
  p.use_merged = false;
  p.has_open = rep_->OpenGet(internal::kUserPacks, key, &p.open);
  rocksdb::GetMergeOperandsOptions options;
  options.expected_max_number_of_operands = PinnedParts::kMaxParts;
  int n = 0;
  rocksdb::Status s = rep_->store->db->GetMergeOperands(
      rep_->read, rep_->family(internal::kUserPacks), ToSlice(key), p.parts, &options, &n);
  if (s.ok()) {
    p.count = static_cast<size_t>(n);
  } else if (s.IsIncomplete() &&
             rep_->store->db
                 ->Get(rep_->read, rep_->family(internal::kUserPacks), ToSlice(key), &p.merged)
                 .ok()) {
    p.use_merged = true;
    p.count = 1;
  }
  return p.count + (p.has_open ? 1 : 0);
}

std::string_view ReadView::PinnedPart(size_t i) const {
  const PinnedParts& p = *rep_->parts;
  if (i == p.count) return p.open;  // the staged part comes last
  if (p.use_merged) return p.merged;
  return View(p.parts[i]);
}

bool ReadView::ReadSlice(std::string_view key,
                         const std::function<void(const SliceView&)>& fn) const {
  rocksdb::PinnableSlice pin;
  std::string scratch;
  std::string_view value;
  if (!rep_->Read(internal::kRequests, key, &pin, &scratch, &value)) return false;
  SliceView v;
  if (!v.Parse(value)) return false;
  fn(v);
  return true;
}

bool ReadView::ReadSliceParts(std::string_view key,
                              const std::function<void(const SliceView&)>& fn) const {
  rocksdb::PinnableSlice pin;
  bool found = false;
  SliceView v;
  if (rep_->store->db->Get(rep_->read, rep_->family(internal::kRequests), ToSlice(key), &pin)
          .ok() &&
      v.Parse(View(pin))) {
    fn(v);
    found = true;
  }
  std::string delta;
  if (rep_->OpenGet(internal::kRequests, key, &delta) && v.Parse(delta)) {
    fn(v);
    found = true;
  }
  return found;
}

void ReadView::ScanSlices(std::string_view prefix, std::string_view start,
                          const std::function<bool(std::string_view, const SliceView&)>& fn) const {
  if (!rep_->slices_it) rep_->slices_it.reset(rep_->NewScanIterator(internal::kRequests));
  const std::string_view from = std::max(prefix, start);
  MergedCursor cur(rep_->slices_it.get(), internal::kRequests, prefix, rep_->Open());
  SliceView v;
  for (cur.Seek(from); cur.Valid(); cur.Next()) {
    if (!v.Parse(cur.value())) continue;
    if (!fn(cur.key(), v)) break;
  }
}

void ReadView::ScanSliceKeys(std::string_view prefix, std::string_view start,
                             const std::function<bool(std::string_view)>& fn) const {
  if (!rep_->slices_it) rep_->slices_it.reset(rep_->NewScanIterator(internal::kRequests));
  const std::string_view from = std::max(prefix, start);
  MergedCursor cur(rep_->slices_it.get(), internal::kRequests, prefix, rep_->Open(),
                   /*keys_only=*/true);
  SliceView v;
  for (cur.Seek(from); cur.Valid(); cur.Next()) {
    // The same rows as ScanSlices: a combined row is never malformed (CombineEncoded reads a
    // malformed part as empty), a stored-only one may be.
    if (!cur.staged() && !v.Parse(cur.value())) continue;
    if (!fn(cur.key())) break;
  }
}

bool ReadView::HasSliceWithPrefix(std::string_view prefix) const {
  bool found = false;
  ScanSliceKeys(prefix, {}, [&](std::string_view) {
    found = true;
    return false;
  });
  return found;
}

bool ReadView::GetRecord(std::string_view key, Record* r) const {
  rocksdb::PinnableSlice pin;
  std::string scratch;
  std::string_view value;
  if (!rep_->Read(internal::kRecords, key, &pin, &scratch, &value)) return false;
  DecodeRecord(value, r);
  return true;
}

void ReadView::ScanRecords(std::string_view prefix,
                           const std::function<bool(std::string_view, const Record&)>& fn) const {
  Record r;
  ScanEncodedRecords(prefix, [&](std::string_view key, std::string_view encoded) {
    DecodeRecord(encoded, &r);
    return fn(key, r);
  });
}

void ReadView::ScanEncodedRecords(
    std::string_view prefix,
    const std::function<bool(std::string_view key, std::string_view encoded)>& fn) const {
  std::unique_ptr<rocksdb::Iterator> it(rep_->NewScanIterator(internal::kRecords));
  MergedCursor cur(it.get(), internal::kRecords, prefix, rep_->Open());
  for (cur.Seek(prefix); cur.Valid(); cur.Next()) {
    if (!fn(cur.key(), cur.value())) break;
  }
}

namespace {

// The merge scan of ReadView::MergeScanCounters / MergeScanBitmaps over one family: one cursor
// per prefix, advanced together by suffix.
void MergeScan(const ReadView::Rep& rep, internal::Family family,
               std::span<const std::string> prefixes, const ReadView::MergeScanFn& fn) {
  struct Cursor {
    std::unique_ptr<rocksdb::Iterator> it;
    std::unique_ptr<MergedCursor> cur;
    size_t prefix_size = 0;
    std::string_view suffix() const { return cur->key().substr(prefix_size); }
  };
  std::vector<Cursor> cur(prefixes.size());
  for (size_t k = 0; k < prefixes.size(); ++k) {
    cur[k].it.reset(rep.NewScanIterator(family));
    cur[k].cur = std::make_unique<MergedCursor>(cur[k].it.get(), family, prefixes[k], rep.Open());
    cur[k].prefix_size = prefixes[k].size();
    cur[k].cur->Seek(prefixes[k]);
  }
  std::string min;
  std::vector<ReadView::ScanRow> rows;
  rows.reserve(prefixes.size());
  for (;;) {
    bool any = false;
    for (const Cursor& c : cur) {
      if (!c.cur->Valid()) continue;
      if (!any || c.suffix() < std::string_view(min)) min.assign(c.suffix());
      any = true;
    }
    if (!any) return;
    rows.clear();
    for (size_t k = 0; k < cur.size(); ++k) {
      const Cursor& c = cur[k];
      if (c.cur->Valid() && c.suffix() == std::string_view(min)) {
        rows.push_back({k, c.cur->value()});
      }
    }
    fn(min, rows);
    // Values stay valid until their cursors move: advance only after the call.
    for (const ReadView::ScanRow& row : rows) cur[row.prefix].cur->Next();
  }
}

}  // namespace

void ReadView::MergeScanCounters(std::span<const std::string> prefixes,
                                 const MergeScanFn& fn) const {
  MergeScan(*rep_, internal::kCounters, prefixes, fn);
}

void ReadView::MergeScanBitmaps(std::span<const std::string> prefixes,
                                const MergeScanFn& fn) const {
  MergeScan(*rep_, internal::kBitmaps, prefixes, fn);
}

bool ReadView::LookupUser(std::string_view user_id, uint32_t* index) const {
  std::string key;
  UserDictKey(user_id, &key);
  rocksdb::PinnableSlice pin;
  std::string scratch;
  std::string_view value;
  return rep_->Read(internal::kDict, key, &pin, &scratch, &value) && DecodeUint32(value, index);
}

bool ReadView::UserIdOf(uint32_t index, std::string* user_id) const {
  std::string key;
  UserDictReverseKey(index, &key);
  rocksdb::PinnableSlice pin;
  std::string_view value;
  if (!rep_->Read(internal::kDict, key, &pin, user_id, &value)) return false;
  if (value.data() != user_id->data()) user_id->assign(value);
  return true;
}

}  // namespace tally::store
