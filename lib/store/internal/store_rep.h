#pragma once
// The RocksDB objects behind Store, ReadView and WriteSet. Internal to tally::store: included by
// its .cpp files and its own tests only, never by a public header.

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"
#include "store/write_set.h"

namespace tally::store::internal {

// Column families, in the order Store::Open opens them (index into StoreRep::cf).
enum Family : int {
  kMeta = 0,  // "default": offsets, schema version, newest event time
  kCounters,
  kBitmaps,
  kRecords,
  kDedupe,
  kDict,
  kRequests,
  kUserPacks,
  kFamilyCount,
};

inline rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

struct StoreRep {
  ~StoreRep() {
    for (auto* h : cf) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  rocksdb::ColumnFamilyHandle* family(Family f) const { return cf[f]; }

  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cf;  // by Family
  std::shared_ptr<rocksdb::Cache> cache;
  std::string identity;
};

}  // namespace tally::store::internal

namespace tally::store {

struct WriteSet::Rep {
  explicit Rep(const internal::StoreRep* s) : store(s) {}
  const internal::StoreRep* store;
  rocksdb::WriteBatch batch;
  std::string key, value;  // scratch for the operations that encode
};

}  // namespace tally::store

namespace tally::store::internal {

// Access to the RocksDB objects of a Store, for lib/store's own code and tests.
struct Access {
  static const StoreRep& Rep(const Store& store) { return *store.rep_; }
  static rocksdb::DB* Db(const Store& store) { return store.rep_->db; }
  static rocksdb::ColumnFamilyHandle* Cf(const Store& store, Family f) {
    return store.rep_->family(f);
  }
  static rocksdb::WriteBatch* Batch(WriteSet* set) { return &set->rep_->batch; }
  static bool BelongsTo(const WriteSet& set, const Store& store) {
    return set.rep_->store == store.rep_.get();
  }
};

}  // namespace tally::store::internal
