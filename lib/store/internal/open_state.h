#pragma once
// The store's open state: every delta staged since the last persist, kept in memory in native
// form so that staging a batch costs O(what the batch changed), not O(size of the rows it
// touches), and persisted as one value per row.
//
//   OpenState s;
//   s.AddCounters(key, encoded_counters);      // writer: fold a batch's deltas in
//   std::string v;
//   if (s.Get(kCounters, key, &v)) AddEncodedCounters(v, &c);   // reader
//   s.ForEach([&](Family f, std::string_view key, std::string_view value) {
//     /* persist: Merge (or Put, for the put families) `value` at `key` */
//   });
//
// Every value a reader gets is encoded exactly like a stored merge operand of its family
// (counters_codec.h, record_codec.h, slice_codec.h), so combining it with the stored value is the
// family's merge rule. Put families (dedupe, dict, meta) keep the last value put.
//
// Thread-safety: none. The store serializes writers against readers (one writer mutates; readers
// read under a shared lock).

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_map.h>
#include <absl/hash/hash.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/bitmap.h"
#include "store/counters_codec.h"
#include "store/internal/family.h"
#include "store/record_codec.h"
#include "store/slice_codec.h"

namespace tally::store::internal {

// The value of a row of `family` whose stored value is `base` after a staged delta `delta` (both
// encoded as the family's values): the family's merge rule, as its merge operator applies it
// (put families: `delta`). Written to *out (cleared first). Never fails: malformed parts count as
// empty.
void CombineEncoded(Family family, std::string_view base, std::string_view delta, std::string* out);

// Hashes std::string_view keys (Debian's Abseil has its own string_view type, so its default
// string hash does not take std::string_view).
struct StringViewHash {
  size_t operator()(std::string_view s) const { return absl::Hash<std::string_view>()(s); }
};

class OpenState {
 public:
  OpenState() = default;
  OpenState(const OpenState&) = delete;
  OpenState& operator=(const OpenState&) = delete;

  // Writer side. Each adds the delta `encoded` (a merge operand of the family, codec.h) to the
  // row at `key`. Malformed operands are skipped and counted (MalformedOperands), as the merge
  // operators do; they never fail.
  void AddCounters(std::string_view key, std::string_view encoded);
  void AddUserPack(std::string_view key, std::string_view encoded);
  void OrBitmap(std::string_view key, std::string_view encoded);
  void MergeRecord(std::string_view key, std::string_view encoded);
  void AddSlice(std::string_view key, std::string_view encoded);
  // Sets the value of a put family (IsPutFamily: dedupe, dict, meta) at `key`.
  void Put(Family family, std::string_view key, std::string_view value);

  // Reader side. The staged delta at `key`, encoded as a merge operand of `family` (the value,
  // for put families), appended to *out (cleared first); false if nothing is staged there.
  bool Get(Family family, std::string_view key, std::string* out) const;
  // True if something is staged at `key`.
  bool Contains(Family family, std::string_view key) const;
  // Calls fn(key, encoded) for each staged row of `family` whose key starts with `prefix`, from
  // the first key >= max(prefix, start), in key order, until fn returns false. `encoded` is
  // valid during the call only.
  void Scan(Family family, std::string_view prefix, std::string_view start,
            const std::function<bool(std::string_view, std::string_view)>& fn) const;
  // As Scan, with the keys only: nothing is encoded (a staged row is never malformed).
  void ScanKeys(Family family, std::string_view prefix, std::string_view start,
                const std::function<bool(std::string_view)>& fn) const;
  // Native access for readers that fold anyway (no encoding). False if nothing is staged.
  bool AddCountersTo(std::string_view key, Counters* c) const;
  bool OrBitmapInto(std::string_view key, UserBitmap* b) const;
  // Calls fn(user, counters) for each user staged in the pack at `key`, in user order.
  bool ForEachUserCounters(std::string_view key,
                           const std::function<void(uint32_t, const Counters&)>& fn) const;

  // Persist side: calls fn(family, key, encoded) for every staged row, family by family, each in
  // key order.
  void ForEach(const std::function<void(Family, std::string_view, std::string_view)>& fn) const;

  // Rows staged, and an estimate of the memory they hold (bytes).
  size_t rows() const { return rows_; }
  size_t approximate_bytes() const { return bytes_; }
  bool empty() const { return rows_ == 0; }
  void Clear();

  // Malformed operands this open state skipped (not reset by Clear). Any thread.
  uint64_t MalformedOperands() const;

 private:
  void NoteMalformed();

  // A slice being accumulated: entries keyed by index, so adding a batch's few entries to a
  // month slice of thousands costs O(batch), not O(slice).
  struct SliceAcc {
    SliceTotals totals;
    absl::btree_map<uint32_t, SliceUser> users;
    absl::btree_map<uint32_t, SliceAgent> agents;
    void AppendTo(std::string* out) const;
  };
  using Pack = absl::btree_map<uint32_t, Counters>;
  // The staged rows of one family. Most rows a batch touches are staged already: those are
  // found by hash, with one key comparison, instead of a descent through a tree of string keys
  // (a cache miss per comparison). Rows never move (a deque), so the hash index and the key
  // order (for scans and persisting) both point at them; only new rows enter the order.
  template <typename V>
  class Rows {
   public:
    using Order = absl::btree_map<std::string_view, V*>;
    V* Find(std::string_view key) const {
      auto it = index_.find(key);
      return it == index_.end() ? nullptr : it->second;
    }
    // The row at `key`, and whether it was created (empty) by this call.
    std::pair<V*, bool> FindOrAdd(std::string_view key);
    size_t size() const { return nodes_.size(); }
    // Rows in key order.
    const Order& order() const { return order_; }
    void clear() {
      index_.clear();
      order_.clear();
      nodes_.clear();
      key_chunks_.clear();
      key_left_ = 0;
    }

   private:
    struct Node {
      std::string_view key;  // in key_chunks_
      V value;
    };
    // A copy of `key` that lives as long as the rows: keys are packed into large chunks, so a
    // new row costs no allocation of its own for its key (most rows a persist writes are new).
    std::string_view CopyKey(std::string_view key);
    std::deque<Node> nodes_;
    std::vector<std::unique_ptr<char[]>> key_chunks_;
    char* key_next_ = nullptr;
    size_t key_left_ = 0;
    absl::flat_hash_map<std::string_view, V*, StringViewHash> index_;
    Order order_;
  };

  // The row at `key` of `rows`, created empty if absent (accounting for it).
  template <typename V>
  V& Row(Rows<V>& rows, std::string_view key, size_t value_bytes);
  static void Encode(const Counters& c, std::string* out) { AppendCounters(c, out); }
  static void Encode(const Pack& p, std::string* out);
  static void Encode(const UserBitmap& b, std::string* out);
  static void Encode(const Record& r, std::string* out) { AppendRecord(r, out); }
  static void Encode(const SliceAcc& s, std::string* out) { s.AppendTo(out); }
  static void Encode(const std::string& v, std::string* out) { out->append(v); }
  // Calls fn(rows) with the rows of `family` and returns its result (false for kFamilyCount).
  template <typename Fn>
  bool Visit(Family family, Fn&& fn) const {
    switch (family) {
      case kCounters:
        return fn(counters_);
      case kUserPacks:
        return fn(packs_);
      case kBitmaps:
        return fn(bitmaps_);
      case kRecords:
        return fn(records_);
      case kRequests:
        return fn(slices_);
      case kMeta:
      case kDedupe:
      case kDict:
        return fn(puts_[PutIndex(family)]);
      case kFamilyCount:
        break;
    }
    return false;
  }
  template <typename V>
  static bool GetFrom(const Rows<V>& rows, std::string_view key, std::string* out);
  // Calls fn(key, row) for each row of `rows` whose key starts with `prefix`, from the first key
  // >= max(prefix, start), in key order, until fn returns false.
  template <typename V, typename Fn>
  static void ForEachInRange(const Rows<V>& rows, std::string_view prefix, std::string_view start,
                             Fn&& fn);
  template <typename V>
  static void ScanFrom(const Rows<V>& rows, std::string_view prefix, std::string_view start,
                       const std::function<bool(std::string_view, std::string_view)>& fn);

  Rows<Counters> counters_;
  Rows<Pack> packs_;
  Rows<UserBitmap> bitmaps_;
  Rows<Record> records_;
  Rows<SliceAcc> slices_;
  Rows<std::string> puts_[3];  // PutIndex: meta, dedupe, dict
  static int PutIndex(Family f) { return f == kMeta ? 0 : f == kDedupe ? 1 : 2; }
  size_t rows_ = 0;
  size_t bytes_ = 0;
  std::atomic<uint64_t> malformed_{0};
};

}  // namespace tally::store::internal
