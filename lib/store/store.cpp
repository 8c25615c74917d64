#include "store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <climits>

#include "store/internal/merge_operators.h"

namespace tally::store {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }
std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

Error FromRocks(const rocksdb::Status& s, std::string_view what) {
  ErrorCode code = ErrorCode::kInternal;
  if (s.IsCorruption()) code = ErrorCode::kDataLoss;
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain())
    code = ErrorCode::kUnavailable;
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

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> store(new Store());
  store->options_ = options;
  store->newest_event_ms_ = std::make_shared<std::atomic<int64_t>>(INT64_MIN);
  store->cache_ = rocksdb::NewLRUCache(options.block_cache_bytes);

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
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = store->cache_;
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
  // Nearly every lookup misses (new events): a memtable bloom filter answers those without
  // walking the skip list.
  dedupe.memtable_whole_key_filtering = true;
  dedupe.memtable_prefix_bloom_size_ratio = 0.1;
  dedupe.compaction_filter_factory =
      internal::NewDedupeCompactionFilterFactory(store->newest_event_ms_, options.dedupe_window_ms);
  descriptors.emplace_back(kFamilies[4], dedupe);
  descriptors.emplace_back(kFamilies[5], family(true, 8 << 20));
  auto requests = family(true, 32 << 20);
  requests.merge_operator = internal::NewSliceMergeOperator();
  // Month slices of a busy organization are rewritten by every batch; bounding the operands a
  // read must fold keeps query latency flat between flushes.
  requests.max_successive_merges = 32;
  descriptors.emplace_back(kFamilies[6], requests);
  auto packs = family(true, 16 << 20);
  packs.merge_operator = internal::NewUserPackMergeOperator();
  // Every batch adds an operand to the packs of the buckets it touches; folding them at write
  // time every few operands keeps a read from merging one operand per batch since the flush.
  packs.max_successive_merges = 8;
  descriptors.emplace_back(kFamilies[7], packs);

  rocksdb::Status s =
      rocksdb::DB::Open(db_options, options.path, descriptors, &store->cf_, &store->db_);
  if (!s.ok()) return std::unexpected(FromRocks(s, "cannot open store at " + options.path));
  if (auto v = store->CheckSchemaVersion(); !v) return std::unexpected(v.error());
  std::string newest;
  if (store->db_->Get(rocksdb::ReadOptions(), store->meta(), NewestEventTimeKey(), &newest).ok()) {
    std::string_view in = newest;
    uint64_t v;
    if (GetFixed64(&in, &v)) store->newest_event_ms_->store(static_cast<int64_t>(v));
  }
  return store;
}

Status Store::Flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  rocksdb::Status s = db_->Flush(fo, cf_);
  if (!s.ok()) return std::unexpected(FromRocks(s, "flushing " + options_.path));
  return Ok();
}

Status Store::CheckSchemaVersion() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta(), SchemaVersionKey(), &value);
  uint32_t version = 1;
  if (s.ok()) {
    if (!DecodeUint32(value, &version)) {
      return Fail(ErrorCode::kDataLoss, "store at " + options_.path + ": malformed schema version");
    }
  } else if (!s.IsNotFound()) {
    return std::unexpected(FromRocks(s, "reading the schema version of " + options_.path));
  } else if (FamilyEmpty(db_, records()) && FamilyEmpty(db_, counters())) {
    // A new store (every applied event writes counters and records): this version writes it.
    s = db_->Put(rocksdb::WriteOptions(), meta(), SchemaVersionKey(), EncodeUint32(kSchemaVersion));
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

Store::~Store() {
  for (auto* h : cf_) db_->DestroyColumnFamilyHandle(h);
  delete db_;
}

Status Store::Write(rocksdb::WriteBatch* batch,
                    const std::vector<std::string_view>* touched_records) {
  rocksdb::WriteOptions wo;
  wo.sync = false;
  wo.disableWAL = options_.disable_wal;
  // Serialized so that the sequence numbers read around the write are exactly its own.
  std::lock_guard lock(write_mu_);
  const uint64_t before = db_->GetLatestSequenceNumber();
  rocksdb::Status s = db_->Write(wo, batch);
  if (!s.ok()) return std::unexpected(FromRocks(s, "store write failed"));
  changes_.Record(before, db_->GetLatestSequenceNumber(), touched_records);
  return Ok();
}

std::unique_ptr<ReadView> Store::NewReadView() const {
  return std::unique_ptr<ReadView>(new ReadView(this, db_->GetSnapshot()));
}

Result<std::vector<Store::OffsetEntry>> Store::LoadOffsets() const {
  std::vector<OffsetEntry> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta()));
  std::string prefix = OffsetPrefix();
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    OffsetEntry e;
    if (!DecodeOffsetKey(View(it->key()), &e.topic, &e.partition) ||
        !DecodeOffset(View(it->value()), &e.offset)) {
      return Fail(ErrorCode::kDataLoss, "stored offset row is malformed");
    }
    out.push_back(std::move(e));
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "reading offsets"));
  return out;
}

Status Store::Checkpoint(const std::string& path) const {
  rocksdb::Checkpoint* cp = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_, &cp);
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

uint64_t Store::MalformedOperands() { return internal::MalformedOperandCount(); }

// ---------------------------------------------------------------------------------------------

ReadView::ReadView(const Store* store, const rocksdb::Snapshot* snapshot)
    : store_(store), snapshot_(snapshot) {}

ReadView::~ReadView() {
  parts_.reset();        // pinned blocks, before the snapshot they were read at
  counters_it_.reset();  // before the snapshot it reads from
  slices_it_.reset();
  store_->db()->ReleaseSnapshot(snapshot_);
}

bool ReadView::Get(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
                   std::string* value) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  return store_->db()->Get(ro, cf, ToSlice(key), value).ok();
}

bool ReadView::AddCounters(std::string_view key, Counters* c) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  rocksdb::PinnableSlice value;
  if (!store_->db()->Get(ro, store_->counters(), ToSlice(key), &value).ok()) return false;
  AddEncodedCounters(View(value), c);
  return true;
}

void ReadView::ScanCounters(
    std::string_view prefix,
    const std::function<void(std::string_view, const Counters&)>& fn) const {
  // One iterator per view, re-seeked for each prefix: a query scans a dozen or more buckets,
  // and creating an iterator over every memtable and level costs more than a seek.
  if (!counters_it_) {
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot_;
    ro.verify_checksums = false;  // blocks are checksummed when read from disk into the cache
    counters_it_.reset(store_->db()->NewIterator(ro, store_->counters()));
  }
  rocksdb::Iterator* it = counters_it_.get();
  Counters c;
  for (it->Seek(ToSlice(prefix)); it->Valid() && it->key().starts_with(ToSlice(prefix));
       it->Next()) {
    c = Counters{};
    if (!AddEncodedCounters(View(it->value()), &c)) continue;
    std::string_view key = View(it->key());
    fn(key.substr(prefix.size()), c);
  }
}

bool ReadView::OrBitmap(std::string_view key, UserBitmap* b) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  rocksdb::PinnableSlice value;
  if (!store_->db()->Get(ro, store_->bitmaps(), ToSlice(key), &value).ok()) return false;
  b->OrEncoded(View(value));
  return true;
}

bool ReadView::GetUserPack(std::string_view key, std::string* pack) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  return store_->db()->Get(ro, store_->userpacks(), ToSlice(key), pack).ok();
}

bool ReadView::AddUserCounters(std::string_view key, uint32_t user, Counters* c) const {
  return ForEachUserPackPart(key, [&](std::string_view part) {
    std::string_view encoded;
    if (FindUserPackEntry(part, user, &encoded)) AddEncodedCounters(encoded, c);
  });
}

// Up to kMaxParts operands are returned unmerged; a key with more (a flush or compaction has
// not caught up) is read merged, as one part.
struct ReadView::PinnedParts {
  static constexpr int kMaxParts = 32;
  rocksdb::PinnableSlice parts[kMaxParts];
  std::string merged;
  size_t count = 0;
  bool use_merged = false;
};

size_t ReadView::PinUserPackParts(std::string_view key) const {
  if (!parts_) parts_ = std::make_unique<PinnedParts>();
  PinnedParts& p = *parts_;
  for (size_t i = 0; i < p.count; ++i) p.parts[i].Reset();
  p.count = 0;
  p.use_merged = false;
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  rocksdb::GetMergeOperandsOptions options;
  options.expected_max_number_of_operands = PinnedParts::kMaxParts;
  int n = 0;
  rocksdb::Status s =
      store_->db()->GetMergeOperands(ro, store_->userpacks(), ToSlice(key), p.parts, &options, &n);
  if (s.ok()) {
    p.count = static_cast<size_t>(n);
    return p.count;
  }
  if (s.IsIncomplete() && GetUserPack(key, &p.merged)) {
    p.use_merged = true;
    return 1;
  }
  return 0;
}

std::string_view ReadView::PinnedPart(size_t i) const {
  if (parts_->use_merged) return parts_->merged;
  return View(parts_->parts[i]);
}

bool ReadView::ReadSlice(std::string_view key,
                         const std::function<void(const SliceView&)>& fn) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  rocksdb::PinnableSlice value;
  if (!store_->db()->Get(ro, store_->requests(), ToSlice(key), &value).ok()) return false;
  SliceView v;
  if (!v.Parse(View(value))) return false;
  fn(v);
  return true;
}

void ReadView::ScanSlices(std::string_view prefix, std::string_view start,
                          const std::function<bool(std::string_view, const SliceView&)>& fn) const {
  if (!slices_it_) {
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot_;
    ro.verify_checksums = false;
    slices_it_.reset(store_->db()->NewIterator(ro, store_->requests()));
  }
  rocksdb::Iterator* it = slices_it_.get();
  SliceView v;
  for (it->Seek(ToSlice(start.empty() ? prefix : start));
       it->Valid() && it->key().starts_with(ToSlice(prefix)); it->Next()) {
    if (!v.Parse(View(it->value()))) continue;
    if (!fn(View(it->key()), v)) break;
  }
}

bool ReadView::HasSliceWithPrefix(std::string_view prefix) const {
  bool found = false;
  ScanSlices(prefix, {}, [&](std::string_view, const SliceView&) {
    found = true;
    return false;
  });
  return found;
}

bool ReadView::GetRecord(std::string_view key, Record* r) const {
  std::string value;
  if (!Get(store_->records(), key, &value)) return false;
  DecodeRecord(value, r);
  return true;
}

void ReadView::ScanRecords(std::string_view prefix,
                           const std::function<bool(std::string_view, const Record&)>& fn) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot_;
  std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(ro, store_->records()));
  Record r;
  for (it->Seek(ToSlice(prefix)); it->Valid() && it->key().starts_with(ToSlice(prefix));
       it->Next()) {
    DecodeRecord(View(it->value()), &r);
    if (!fn(View(it->key()), r)) break;
  }
}

bool ReadView::LookupUser(std::string_view user_id, uint32_t* index) const {
  std::string key, value;
  UserDictKey(user_id, &key);
  return Get(store_->dict(), key, &value) && DecodeUint32(value, index);
}

bool ReadView::UserIdOf(uint32_t index, std::string* user_id) const {
  std::string key;
  UserDictReverseKey(index, &key);
  return Get(store_->dict(), key, user_id);
}

}  // namespace tally::store
