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
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "store/internal/family.h"
#include "store/internal/merge_bound.h"
#include "store/internal/open_state.h"
#include "store/store.h"
#include "store/write_set.h"

namespace tally::store::internal {

// The tally error of a failed RocksDB call: kDataLoss for corruption, kUnavailable for I/O and
// busy errors, kResourceExhausted for a full disk, kInternal otherwise; `what` says what failed.
Error FromRocks(const rocksdb::Status& s, std::string_view what);

inline rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// What readers see: a RocksDB snapshot and the open state staged on top of it. Store::Persist
// writes the open state into the database and starts a new generation (a new snapshot, an empty
// open state); views made before keep the old one, which together still reads the same.
struct Generation {
  explicit Generation(rocksdb::DB* d) : db(d), snapshot(d->GetSnapshot()) {}
  ~Generation() { db->ReleaseSnapshot(snapshot); }
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  rocksdb::DB* db;
  const rocksdb::Snapshot* snapshot;
  // Guards `open`: the writer stages under it exclusively, readers read under it shared.
  mutable std::shared_mutex mu;
  OpenState open;
  // open.rows(), readable without the lock: readers skip the open state while it is 0.
  std::atomic<size_t> staged_rows{0};
};

struct StoreRep {
  ~StoreRep() {
    current.reset();  // its snapshot, before the database
    retired.clear();
    for (auto* h : cf) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  rocksdb::ColumnFamilyHandle* family(Family f) const { return cf[f]; }
  // The family of a column family id (as WriteBatch::Handler reports it).
  Family FamilyOfId(uint32_t id) const {
    for (int f = 0; f < kFamilyCount; ++f) {
      if (cf[f]->GetID() == id) return static_cast<Family>(f);
    }
    return kFamilyCount;
  }
  // The generation new views read.
  std::shared_ptr<Generation> Current() const {
    std::lock_guard lock(gen_mu);
    return current;
  }
  // Starts a new generation at the database's present state (the open state must be empty or
  // persisted); with `version`, also publishes that version in the same step (readers take both
  // under gen_mu). The generation it replaces is retired (below). Writers only.
  void NewGeneration(std::optional<uint64_t> version = std::nullopt) {
    auto g = std::make_shared<Generation>(db);
    {
      std::lock_guard lock(gen_mu);
      std::swap(current, g);
      if (version) this->version.store(*version);
    }
    if (g) retired.push_back(std::move(g));
    ReapRetired();
  }
  // Destroys the retired generations that no view reads any more. Freeing a generation's open
  // state (every row staged between two persists) takes milliseconds: it happens here, on the
  // writer's thread, and never on a reader's thread that happened to drop the last view of it,
  // nor under gen_mu, which every new view takes. Writers only.
  void ReapRetired() {
    // A count of 1 is `retired`'s own reference: no view holds the generation, and none can
    // take it again (it is no longer `current`).
    std::erase_if(retired, [](const std::shared_ptr<Generation>& g) { return g.use_count() == 1; });
  }

  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cf;  // by Family
  std::shared_ptr<rocksdb::Cache> cache;
  std::string identity;
  mutable std::mutex gen_mu;  // guards `current` (the pointer)
  std::shared_ptr<Generation> current;
  // Replaced generations that views may still read (ReapRetired). Writers only.
  std::vector<std::shared_ptr<Generation>> retired;
  // Changes whenever the content changes (every Write and Stage): ReadView::version.
  std::atomic<uint64_t> version{0};
  // The hot views' bound on merge operands (Store::Open sets which families it bounds: none for
  // a store without a WAL, which nothing reads until it is complete). Writers only.
  MergeBound merge_bound{};
  // Malformed merge operands this store's operators skipped (Store::MalformedOperands).
  std::shared_ptr<std::atomic<uint64_t>> malformed = std::make_shared<std::atomic<uint64_t>>(0);
};

}  // namespace tally::store::internal

namespace tally::store {

struct WriteSet::Rep {
  explicit Rep(const internal::StoreRep* s) : store(s) {}
  const internal::StoreRep* store;
  rocksdb::WriteBatch batch;
  std::string key, value;     // scratch for the operations that encode
  bool roll_up_days = false;  // WriteSet::set_roll_up_days
};

}  // namespace tally::store

namespace tally::store::internal {

// Access to the RocksDB objects of a Store, for lib/store's own code and tests.
struct Access {
  static const StoreRep& Rep(const Store& store) { return *store.rep_; }
  static StoreRep& MutableRep(Store& store) { return *store.rep_; }
  static rocksdb::DB* Db(const Store& store) { return store.rep_->db; }
  static rocksdb::ColumnFamilyHandle* Cf(const Store& store, Family f) {
    return store.rep_->family(f);
  }
  static rocksdb::WriteBatch* Batch(WriteSet* set) { return &set->rep_->batch; }
  static bool BelongsTo(const WriteSet& set, const Store& store) {
    return set.rep_->store == store.rep_.get();
  }
  // The writers' lock (Write, Stage, Persist), and a persist for a holder of it.
  static std::mutex& WriteMutex(Store& store) { return store.write_mu_; }
  static Status PersistLocked(Store& store) { return store.PersistLocked(); }
};

}  // namespace tally::store::internal
