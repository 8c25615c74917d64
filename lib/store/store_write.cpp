#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <shared_mutex>

#include "store/internal/store_rep.h"
#include "store/store.h"

namespace tally::store {

using internal::FromRocks;
using internal::ToSlice;
using internal::View;

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
}  // namespace tally::store
