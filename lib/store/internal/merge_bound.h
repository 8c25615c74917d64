#pragma once
// Bounds how many merge operands a row collects in a column family's active memtable, without
// the seek RocksDB's own `max_successive_merges` makes for every merge it inserts (that seek was
// about a quarter of a persist's memtable work). Internal to tally::store.
//
//   MergeBound bound({kBitmaps, kRequests, kUserPacks});
//   bound.BeginWrite(rep);                        // under the store's write lock
//   if (bound.Fold(kBitmaps, key)) { /* Get the row, combine the delta, Put the whole value */ }
//   else { /* Merge the delta */ }
//   bound.EndWrite(rep);                          // after the write
//
// Counts are kept per hash of the key: two rows sharing a hash share a count, which only makes
// a row fold early (folding is always correct, it merely costs a read). A family's counts are
// forgotten once its active memtable has been replaced (sealed for a flush), as RocksDB's own
// count only looks at the active memtable. Not thread-safe: the store's single writer owns it.

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "store/internal/family.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace tally::store::internal {

struct StoreRep;

class MergeBound {
 public:
  // Rows of a bounded family are folded into one value at every kMaxOperands-th operand.
  static constexpr uint8_t kMaxOperands = 8;

  // Bounds nothing.
  MergeBound() = default;
  explicit MergeBound(std::initializer_list<Family> bounded);

  // Call at the start of every write to the database that may hold merges: forgets the counts
  // of every family whose active memtable is smaller than at the last EndWrite (it was sealed).
  void BeginWrite(const StoreRep& rep);
  // Call after every such write (successful or not).
  void EndWrite(const StoreRep& rep);

  // Counts one more operand of `key` in family `f`. True if the caller must instead write the
  // row's whole value (the stored value with this delta combined, as a Put): the count then
  // starts again. Always false for a family that is not bounded.
  bool Fold(Family f, std::string_view key);

  // Appends to *out the row `key` of `f` with `delta` combined into its value as stored now (read
  // from rep's database at its latest state: call under the write lock), as a Put of the whole
  // value; a Merge of `delta` if the stored value cannot be read. *scratch is working space. For
  // an operand Fold says to fold, when *out holds no earlier operation on `key`.
  static void AppendWhole(const StoreRep& rep, Family f, std::string_view key,
                          std::string_view delta, rocksdb::WriteBatch* out, std::string* scratch);

  // The batch to write instead of `batch` so that its merges respect the bound: false (use
  // `batch` as it is) when no merge in it must fold, else true with *out holding `batch` with
  // those merges turned into Puts of whole values (read from rep's database at its latest state:
  // call under the write lock). A key that occurs more than once in `batch` never folds (its
  // first operand would not be in the value read). Between BeginWrite and EndWrite.
  bool Rewrite(const StoreRep& rep, const rocksdb::WriteBatch& batch, rocksdb::WriteBatch* out);

  // Whether rows of `f` are bounded (false for kFamilyCount).
  bool bounds(Family f) const { return f < kFamilyCount && families_[f].bounded; }

  // Rows counted so far in `f` (for tests).
  size_t counted(Family f) const { return families_[f].counts.size(); }

 private:
  struct PerFamily {
    bool bounded = false;
    uint64_t active_bytes = 0;  // the active memtable's size at the last EndWrite
    absl::flat_hash_map<uint64_t, uint8_t> counts;
  };
  PerFamily families_[kFamilyCount];
  bool any_bounded_ = false;
};

}  // namespace tally::store::internal
