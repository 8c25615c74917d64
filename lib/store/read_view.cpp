#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <shared_mutex>

#include "store/internal/merged_cursor.h"
#include "store/internal/store_rep.h"
#include "store/store.h"

namespace tally::store {

using internal::FromRocks;
using internal::ToSlice;
using internal::View;

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

}  // namespace internal

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
