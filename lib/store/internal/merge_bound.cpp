#include "store/internal/merge_bound.h"

#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <string>
#include <vector>

#include "store/internal/open_state.h"
#include "store/internal/store_rep.h"

namespace tally::store::internal {
namespace {

uint64_t KeyHash(Family f, std::string_view key) {
  return absl::HashOf(static_cast<int>(f), absl::string_view(key.data(), key.size()));
}

uint64_t ActiveMemtableBytes(const StoreRep& rep, Family f) {
  uint64_t bytes = 0;
  // Unreadable means "unknown": 0 forgets the counts at the next write, which is safe.
  if (!rep.db->GetIntProperty(rep.family(f), "rocksdb.cur-size-active-mem-table", &bytes)) return 0;
  return bytes;
}

// Pass 1 of Rewrite: counts the batch's operands and lists the ones that fold.
class CountHandler : public rocksdb::WriteBatch::Handler {
 public:
  CountHandler(const StoreRep& rep, MergeBound* bound) : rep_(rep), bound_(bound) {}
  rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& key, const rocksdb::Slice&) override {
    return NotMerge(id, key);
  }
  rocksdb::Status DeleteCF(uint32_t id, const rocksdb::Slice& key) override {
    return NotMerge(id, key);
  }
  rocksdb::Status MergeCF(uint32_t id, const rocksdb::Slice& key, const rocksdb::Slice&) override {
    const Family f = rep_.FamilyOfId(id);
    // Only the first occurrence of a key may fold: the value read for it would miss the
    // operands before it in this batch.
    if (Seen(f, key) && bound_->Fold(f, View(key))) folds_.push_back(op_);
    ++op_;
    return rocksdb::Status::OK();
  }
  // Anything else (range deletes, single deletes, ...): the set does not write those; refuse
  // rather than guess, and the batch is written as it is.

  const std::vector<size_t>& folds() const { return folds_; }

 private:
  // A Put or Delete: never folds, but a merge of the same key after it must not fold either.
  rocksdb::Status NotMerge(uint32_t id, const rocksdb::Slice& key) {
    Seen(rep_.FamilyOfId(id), key);
    ++op_;
    return rocksdb::Status::OK();
  }
  // True the first time `key` of `f` is met in this batch (only keys of bounded families, the
  // only ones that may fold, are remembered).
  bool Seen(Family f, const rocksdb::Slice& key) {
    if (!bound_->bounds(f)) return false;
    return seen_.insert(KeyHash(f, View(key))).second;
  }

  const StoreRep& rep_;
  MergeBound* bound_;
  size_t op_ = 0;
  absl::flat_hash_set<uint64_t> seen_;
  std::vector<size_t> folds_;
};

// Pass 2 of Rewrite: copies the batch, folding the listed operands into Puts of whole values.
class CopyHandler : public rocksdb::WriteBatch::Handler {
 public:
  CopyHandler(const StoreRep& rep, const std::vector<size_t>& folds, rocksdb::WriteBatch* out)
      : rep_(rep), folds_(folds), out_(out) {}
  rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& key,
                        const rocksdb::Slice& value) override {
    ++op_;
    return out_->Put(rep_.cf[rep_.FamilyOfId(id)], key, value);
  }
  rocksdb::Status DeleteCF(uint32_t id, const rocksdb::Slice& key) override {
    ++op_;
    return out_->Delete(rep_.cf[rep_.FamilyOfId(id)], key);
  }
  rocksdb::Status MergeCF(uint32_t id, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
    const Family f = rep_.FamilyOfId(id);
    const bool fold = next_ < folds_.size() && folds_[next_] == op_;
    ++op_;
    if (!fold) return out_->Merge(rep_.cf[f], key, value);
    ++next_;
    MergeBound::AppendWhole(rep_, f, View(key), View(value), out_, &whole_);
    return rocksdb::Status::OK();
  }

 private:
  const StoreRep& rep_;
  const std::vector<size_t>& folds_;
  rocksdb::WriteBatch* out_;
  size_t op_ = 0;
  size_t next_ = 0;
  std::string whole_;
};

}  // namespace

MergeBound::MergeBound(std::initializer_list<Family> bounded) {
  for (Family f : bounded) families_[f].bounded = true;
  any_bounded_ = bounded.size() > 0;
}

void MergeBound::BeginWrite(const StoreRep& rep) {
  for (int i = 0; i < kFamilyCount; ++i) {
    PerFamily& pf = families_[i];
    if (!pf.bounded || pf.counts.empty()) continue;
    if (ActiveMemtableBytes(rep, static_cast<Family>(i)) < pf.active_bytes) pf.counts.clear();
  }
}

void MergeBound::EndWrite(const StoreRep& rep) {
  for (int i = 0; i < kFamilyCount; ++i) {
    PerFamily& pf = families_[i];
    if (pf.bounded) pf.active_bytes = ActiveMemtableBytes(rep, static_cast<Family>(i));
  }
}

bool MergeBound::Fold(Family f, std::string_view key) {
  if (!bounds(f)) return false;
  uint8_t& n = families_[f].counts[KeyHash(f, key)];
  if (++n < kMaxOperands) return false;
  n = 0;
  return true;
}

void MergeBound::AppendWhole(const StoreRep& rep, Family f, std::string_view key,
                             std::string_view delta, rocksdb::WriteBatch* out,
                             std::string* scratch) {
  rocksdb::PinnableSlice stored;
  rocksdb::Status got = rep.db->Get(rocksdb::ReadOptions(), rep.family(f), ToSlice(key), &stored);
  if (!got.ok() && !got.IsNotFound()) {
    out->Merge(rep.family(f), ToSlice(key), ToSlice(delta));
    return;
  }
  CombineEncoded(f, got.ok() ? View(stored) : std::string_view(), delta, scratch);
  out->Put(rep.family(f), ToSlice(key), ToSlice(*scratch));
}

bool MergeBound::Rewrite(const StoreRep& rep, const rocksdb::WriteBatch& batch,
                         rocksdb::WriteBatch* out) {
  if (!any_bounded_) return false;  // a rebuild: not even a pass over the batch
  CountHandler count(rep, this);
  if (!batch.Iterate(&count).ok() || count.folds().empty()) return false;
  out->Clear();
  CopyHandler copy(rep, count.folds(), out);
  return batch.Iterate(&copy).ok();
}

}  // namespace tally::store::internal
