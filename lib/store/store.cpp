#include "store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <climits>

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

  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, descriptors, &rep.cf, &rep.db);
  if (!s.ok()) return std::unexpected(FromRocks(s, "cannot open store at " + options.path));
  if (auto v = store->CheckSchemaVersion(); !v) return std::unexpected(v.error());
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

Store::~Store() = default;

const std::string& Store::identity() const { return rep_->identity; }

Status Store::Write(WriteSet* set, const std::vector<std::string_view>* touched_records) {
  if (!internal::Access::BelongsTo(*set, *this)) {
    return Fail(ErrorCode::kInvalidArgument, "write set of another store", "set");
  }
  rocksdb::WriteOptions wo;
  wo.sync = false;
  wo.disableWAL = options_.disable_wal;
  // Serialized so that the sequence numbers read around the write are exactly its own.
  std::lock_guard lock(write_mu_);
  rocksdb::DB* db = rep_->db;
  const uint64_t before = db->GetLatestSequenceNumber();
  rocksdb::Status s = db->Write(wo, &set->rep_->batch);
  if (!s.ok()) return std::unexpected(FromRocks(s, "store write failed"));
  changes_.Record(before, db->GetLatestSequenceNumber(), touched_records);
  return Ok();
}

Result<std::vector<Store::OffsetEntry>> Store::LoadOffsets() const {
  std::vector<OffsetEntry> out;
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->family(internal::kMeta)));
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

// The uint32 stored at `key` of the dictionary family; nullopt if absent.
Result<std::optional<uint32_t>> GetDictIndex(const internal::StoreRep& rep, const std::string& key,
                                             std::string_view what) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s = rep.db->Get(rocksdb::ReadOptions(), rep.family(internal::kDict), key, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) {
    return Fail(ErrorCode::kUnavailable, "reading the " + std::string(what) + ": " + s.ToString());
  }
  uint32_t index;
  if (!DecodeUint32(View(value), &index)) {
    return Fail(ErrorCode::kDataLoss, std::string(what) + " is malformed");
  }
  return index;
}

}  // namespace

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
  rep_->db->MultiGet(rocksdb::ReadOptions(), rep_->family(internal::kDedupe), keys.size(),
                     slices.data(), values.data(), statuses.data(), /*sorted_input=*/true);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].ok()) {
      (*stored)[i] = 1;
    } else if (!statuses[i].IsNotFound()) {
      return Fail(ErrorCode::kUnavailable, "dedupe lookup failed: " + statuses[i].ToString());
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
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->family(internal::kDedupe)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!fn(View(it->key()))) return Ok();
  }
  if (!it->status().ok()) {
    return Fail(ErrorCode::kUnavailable, "reading dedupe keys: " + it->status().ToString());
  }
  return Ok();
}

Status Store::ScanWorkspaceRecords(
    const std::function<void(std::string_view workspace_id, const Record& row)>& fn) const {
  const std::string prefix = WorkspacePrefix();
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->family(internal::kRecords)));
  Record record;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view ws;
    if (!DecodeWorkspaceKey(View(it->key()), &ws)) continue;
    DecodeRecord(View(it->value()), &record);
    fn(ws, record);
  }
  if (!it->status().ok()) {
    return Fail(ErrorCode::kUnavailable, "reading workspace records: " + it->status().ToString());
  }
  return Ok();
}

void Store::ObserveEventTime(int64_t time_ms) {
  int64_t cur = newest_event_ms_->load(std::memory_order_relaxed);
  while (time_ms > cur && !newest_event_ms_->compare_exchange_weak(cur, time_ms)) {
  }
}

uint64_t Store::MalformedOperands() { return internal::MalformedOperandCount(); }

// ---------------------------------------------------------------------------------------------

namespace internal {

// Up to kMaxParts operands are returned unmerged; a key with more (a flush or compaction has
// not caught up) is read merged, as one part.
struct PinnedParts {
  static constexpr int kMaxParts = 32;
  rocksdb::PinnableSlice parts[kMaxParts];
  std::string merged;
  size_t count = 0;
  bool use_merged = false;
};

}  // namespace internal

using internal::PinnedParts;

struct ReadView::Rep {
  Rep(const internal::StoreRep* s, const rocksdb::Snapshot* snap) : store(s), snapshot(snap) {
    read.snapshot = snapshot;
    scan.snapshot = snapshot;
    scan.verify_checksums = false;  // blocks are checksummed when read from disk into the cache
  }
  ~Rep() {
    parts.reset();        // pinned blocks, before the snapshot they were read at
    counters_it.reset();  // iterators, before the snapshot they read from
    slices_it.reset();
    store->db->ReleaseSnapshot(snapshot);
  }
  rocksdb::ColumnFamilyHandle* family(internal::Family f) const { return store->family(f); }
  rocksdb::Iterator* NewScanIterator(internal::Family f) const {
    return store->db->NewIterator(scan, family(f));
  }
  // Point read of `key` into *value (reset first); false if absent or unreadable.
  bool Get(internal::Family f, std::string_view key, rocksdb::PinnableSlice* value) const {
    value->Reset();
    return store->db->Get(read, family(f), ToSlice(key), value).ok();
  }

  const internal::StoreRep* store;
  const rocksdb::Snapshot* snapshot;
  rocksdb::ReadOptions read;  // point reads
  rocksdb::ReadOptions scan;  // iterators
  // One iterator per family and view, re-seeked for each prefix: a query scans a dozen or more
  // buckets, and creating an iterator over every memtable and level costs more than a seek.
  std::unique_ptr<rocksdb::Iterator> counters_it;  // lazily created by ScanCounters
  std::unique_ptr<rocksdb::Iterator> slices_it;    // lazily created by ScanSlices
  std::unique_ptr<PinnedParts> parts;              // lazily created by PinUserPackParts
};

std::unique_ptr<ReadView> Store::NewReadView() const {
  return std::unique_ptr<ReadView>(
      new ReadView(std::make_unique<ReadView::Rep>(rep_.get(), rep_->db->GetSnapshot())));
}

ReadView::ReadView(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

ReadView::~ReadView() = default;

uint64_t ReadView::version() const { return rep_->snapshot->GetSequenceNumber(); }

bool ReadView::AddCounters(std::string_view key, Counters* c) const {
  rocksdb::PinnableSlice value;
  if (!rep_->Get(internal::kCounters, key, &value)) return false;
  AddEncodedCounters(View(value), c);
  return true;
}

void ReadView::ScanCounters(
    std::string_view prefix,
    const std::function<void(std::string_view, const Counters&)>& fn) const {
  if (!rep_->counters_it) rep_->counters_it.reset(rep_->NewScanIterator(internal::kCounters));
  rocksdb::Iterator* it = rep_->counters_it.get();
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
  rocksdb::PinnableSlice value;
  if (!rep_->Get(internal::kBitmaps, key, &value)) return false;
  b->OrEncoded(View(value));
  return true;
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
  for (const auto& g : groups) {
    parts.clear();
    for (size_t i = 0; i < g.size(); ++i, ++at) {
      if (statuses[at].ok()) parts.push_back(View(values[at]));
    }
    out.push_back(UnionCardinalityOfEncoded(parts));
  }
  return out;
}

bool ReadView::GetUserPack(std::string_view key, std::string* pack) const {
  return rep_->store->db->Get(rep_->read, rep_->family(internal::kUserPacks), ToSlice(key), pack)
      .ok();
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
  rocksdb::GetMergeOperandsOptions options;
  options.expected_max_number_of_operands = PinnedParts::kMaxParts;
  int n = 0;
  rocksdb::Status s = rep_->store->db->GetMergeOperands(
      rep_->read, rep_->family(internal::kUserPacks), ToSlice(key), p.parts, &options, &n);
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
  const PinnedParts& p = *rep_->parts;
  if (p.use_merged) return p.merged;
  return View(p.parts[i]);
}

bool ReadView::ReadSlice(std::string_view key,
                         const std::function<void(const SliceView&)>& fn) const {
  rocksdb::PinnableSlice value;
  if (!rep_->Get(internal::kRequests, key, &value)) return false;
  SliceView v;
  if (!v.Parse(View(value))) return false;
  fn(v);
  return true;
}

void ReadView::ScanSlices(std::string_view prefix, std::string_view start,
                          const std::function<bool(std::string_view, const SliceView&)>& fn) const {
  if (!rep_->slices_it) rep_->slices_it.reset(rep_->NewScanIterator(internal::kRequests));
  rocksdb::Iterator* it = rep_->slices_it.get();
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
  rocksdb::PinnableSlice value;
  if (!rep_->Get(internal::kRecords, key, &value)) return false;
  DecodeRecord(View(value), r);
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
  for (it->Seek(ToSlice(prefix)); it->Valid() && it->key().starts_with(ToSlice(prefix));
       it->Next()) {
    if (!fn(View(it->key()), View(it->value()))) break;
  }
}

namespace {

// The merge scan of ReadView::MergeScanCounters / MergeScanBitmaps over one family: one iterator
// per prefix, advanced together by suffix.
void MergeScan(rocksdb::DB* db, const rocksdb::ReadOptions& scan, rocksdb::ColumnFamilyHandle* cf,
               std::span<const std::string> prefixes, const ReadView::MergeScanFn& fn);

}  // namespace

void ReadView::MergeScanCounters(std::span<const std::string> prefixes,
                                 const MergeScanFn& fn) const {
  MergeScan(rep_->store->db, rep_->scan, rep_->family(internal::kCounters), prefixes, fn);
}

void ReadView::MergeScanBitmaps(std::span<const std::string> prefixes,
                                const MergeScanFn& fn) const {
  MergeScan(rep_->store->db, rep_->scan, rep_->family(internal::kBitmaps), prefixes, fn);
}

namespace {

void MergeScan(rocksdb::DB* db, const rocksdb::ReadOptions& scan, rocksdb::ColumnFamilyHandle* cf,
               std::span<const std::string> prefixes, const ReadView::MergeScanFn& fn) {
  struct Cursor {
    std::unique_ptr<rocksdb::Iterator> it;
    rocksdb::Slice prefix;
    bool valid = false;
    std::string_view suffix() const {
      return std::string_view(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    }
    void Check() { valid = it->Valid() && it->key().starts_with(prefix); }
  };
  std::vector<Cursor> cur(prefixes.size());
  for (size_t k = 0; k < prefixes.size(); ++k) {
    cur[k].it.reset(db->NewIterator(scan, cf));
    cur[k].prefix = ToSlice(prefixes[k]);
    cur[k].it->Seek(cur[k].prefix);
    cur[k].Check();
  }
  std::string min;
  std::vector<ReadView::ScanRow> rows;
  rows.reserve(prefixes.size());
  for (;;) {
    bool any = false;
    for (const Cursor& c : cur) {
      if (!c.valid) continue;
      if (!any || c.suffix() < std::string_view(min)) min.assign(c.suffix());
      any = true;
    }
    if (!any) return;
    rows.clear();
    for (size_t k = 0; k < cur.size(); ++k) {
      const Cursor& c = cur[k];
      if (c.valid && c.suffix() == std::string_view(min)) rows.push_back({k, View(c.it->value())});
    }
    fn(min, rows);
    // Values stay valid until their iterators move: advance only after the call.
    for (const ReadView::ScanRow& row : rows) {
      Cursor& c = cur[row.prefix];
      c.it->Next();
      c.Check();
    }
  }
}

}  // namespace

bool ReadView::LookupUser(std::string_view user_id, uint32_t* index) const {
  std::string key;
  UserDictKey(user_id, &key);
  rocksdb::PinnableSlice value;
  return rep_->Get(internal::kDict, key, &value) && DecodeUint32(View(value), index);
}

bool ReadView::UserIdOf(uint32_t index, std::string* user_id) const {
  std::string key;
  UserDictReverseKey(index, &key);
  return rep_->store->db->Get(rep_->read, rep_->family(internal::kDict), key, user_id).ok();
}

}  // namespace tally::store
