#pragma once
// An exact set of dictionary-encoded user ids (a CRoaring bitmap), as kept per (scope, bucket).
//
//   tally::store::UserBitmap users;
//   users.Add(17);
//   users.OrEncoded(stored_value);        // union with a stored bitmap; false if malformed
//   uint64_t distinct = users.Cardinality();
//
// Movable, not copyable, not thread-safe. The serialized form is CRoaring's portable format.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

struct roaring_bitmap_s;

namespace tally::store {

class UserBitmap {
 public:
  UserBitmap();
  ~UserBitmap();
  UserBitmap(UserBitmap&& o) noexcept;
  UserBitmap& operator=(UserBitmap&& o) noexcept;
  UserBitmap(const UserBitmap&) = delete;
  UserBitmap& operator=(const UserBitmap&) = delete;

  void Add(uint32_t id);
  void Or(const UserBitmap& o);
  // Unions the portable-serialized bitmap in `in` into this one; false (unchanged) if malformed.
  bool OrEncoded(std::string_view in);
  uint64_t Cardinality() const;
  bool Contains(uint32_t id) const;
  bool IsEmpty() const { return Cardinality() == 0; }
  // Appends the portable serialization (run-optimized).
  void AppendEncoded(std::string* out);
  // Appends the portable serialization as the bitmap is (no run optimization): const, so
  // readers sharing the bitmap may call it concurrently.
  void AppendEncodedAsIs(std::string* out) const;
  // Calls fn(id) for every id in increasing order.
  template <typename Fn>
  void ForEach(Fn&& fn) const;

 private:
  friend uint64_t UnionCardinalityOfEncoded(std::span<const std::string_view>,
                                            std::span<const UserBitmap* const>);
  roaring_bitmap_s* r_;
};

// How many distinct ids the union of the portable-serialized bitmaps in `encoded` holds; empty or
// malformed ones count as empty. Uses CRoaring's lazy OR, so dense unions become bitset
// containers at once instead of growing sorted arrays merge by merge. Pure; thread-safe.
// `staged`, if given, are more parts, unencoded (a reader's staged deltas: not encoded only to be
// decoded again); they must not change during the call.
uint64_t UnionCardinalityOfEncoded(std::span<const std::string_view> encoded,
                                   std::span<const UserBitmap* const> staged = {});

}  // namespace tally::store

#include "store/internal/bitmap_inl.h"
