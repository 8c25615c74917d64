#pragma once
// One RocksDB snapshot for every read of a query that reads the column families directly
// (bitmap scans and batched reads, which store::ReadView does not offer): point reads, scans and
// the read options they use, all at the snapshot taken at construction.
//
//   tally::query::internal::SnapshotReader rd(store);
//   rocksdb::PinnableSlice v;
//   if (rd.Get(store.records(), key, &v)) { ... }
//   rd.Scan(store.records(), prefix, [](std::string_view k, std::string_view v) { ... });
//
// Not thread-safe (one per request); the store must outlive it.

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/snapshot.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "store/store.h"

namespace tally::query::internal {

class SnapshotReader {
 public:
  explicit SnapshotReader(const store::Store& store)
      : store_(store), db_(store.db()), snapshot_(db_->GetSnapshot()) {
    read_.snapshot = snapshot_;
    scan_.snapshot = snapshot_;
    scan_.verify_checksums = false;  // as ReadView's scans
  }
  ~SnapshotReader() { db_->ReleaseSnapshot(snapshot_); }
  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  // The snapshot's sequence number: equal for two readers iff nothing was written in between.
  uint64_t seq() const { return snapshot_->GetSequenceNumber(); }
  const store::Store& store() const { return store_; }
  rocksdb::DB* db() const { return db_; }
  const rocksdb::ReadOptions& read_options() const { return read_; }  // point reads
  const rocksdb::ReadOptions& scan_options() const { return scan_; }  // iterators

  // The value of `key` into *value; false if absent (or on a read error).
  bool Get(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
           rocksdb::PinnableSlice* value) const {
    value->Reset();
    return db_->Get(read_, cf, key, value).ok();
  }

  // An iterator at the snapshot; it must be destroyed before this reader.
  std::unique_ptr<rocksdb::Iterator> NewScanIterator(rocksdb::ColumnFamilyHandle* cf) const {
    return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(scan_, cf));
  }

  // fn(key, value) for every key under `prefix`, in key order.
  template <typename Fn>
  void Scan(rocksdb::ColumnFamilyHandle* cf, const std::string& prefix, Fn fn) const {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan_, cf));
    const rocksdb::Slice p(prefix);
    for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
      fn(std::string_view(it->key().data(), it->key().size()),
         std::string_view(it->value().data(), it->value().size()));
    }
  }

 private:
  const store::Store& store_;
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
  rocksdb::ReadOptions read_, scan_;
};

}  // namespace tally::query::internal
