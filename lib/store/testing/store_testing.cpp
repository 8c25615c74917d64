#include "store/testing/store_testing.h"

#include "store/internal/store_rep.h"

namespace tally::store::testing {

Status WriteUnlogged(Store& store, WriteSet* set) {
  if (!internal::Access::BelongsTo(*set, store)) {
    return Fail(ErrorCode::kInvalidArgument, "write set of another store", "set");
  }
  // One writer at a time, as for Store::Write (other threads may be writing).
  std::lock_guard lock(internal::Access::WriteMutex(store));
  // After what is staged, as Store::Write: persist it first.
  if (Status p = internal::Access::PersistLocked(store); !p) return p;
  rocksdb::Status s =
      internal::Access::Db(store)->Write(rocksdb::WriteOptions(), internal::Access::Batch(set));
  if (!s.ok()) return Fail(ErrorCode::kUnavailable, "unlogged write failed: " + s.ToString());
  // Readers see it, and the version moves, as for any write; only the change log misses it.
  internal::StoreRep& rep = internal::Access::MutableRep(store);
  rep.NewGeneration(rep.version.load() + 1);
  return Ok();
}

Status EraseSchemaVersion(Store& store) {
  if (Status p = store.Persist(); !p) return p;
  rocksdb::Status s = internal::Access::Db(store)->Delete(
      rocksdb::WriteOptions(), internal::Access::Cf(store, internal::kMeta), SchemaVersionKey());
  if (!s.ok()) return Fail(ErrorCode::kUnavailable, "erasing the schema version: " + s.ToString());
  internal::Access::MutableRep(store).NewGeneration();
  return Ok();
}

std::map<std::pair<int, std::string>, std::string> DumpRows(const Store& store) {
  std::map<std::pair<int, std::string>, std::string> out;
  for (int f = 0; f < internal::kFamilyCount; ++f) {
    const auto family = static_cast<internal::Family>(f);
    std::unique_ptr<rocksdb::Iterator> it(internal::Access::Db(store)->NewIterator(
        rocksdb::ReadOptions(), internal::Access::Cf(store, family)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      out[{f, it->key().ToString()}] =
          f == internal::kDedupe ? std::string() : it->value().ToString();
    }
  }
  return out;
}

}  // namespace tally::store::testing
