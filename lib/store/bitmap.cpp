#include "store/bitmap.h"

#include <roaring/roaring.h>

#include <utility>
#include <vector>

namespace tally::store {

UserBitmap::UserBitmap() : r_(roaring_bitmap_create()) {}
UserBitmap::~UserBitmap() {
  if (r_) roaring_bitmap_free(r_);
}
UserBitmap::UserBitmap(UserBitmap&& o) noexcept
    : r_(std::exchange(o.r_, roaring_bitmap_create())) {}
UserBitmap& UserBitmap::operator=(UserBitmap&& o) noexcept {
  std::swap(r_, o.r_);
  return *this;
}

void UserBitmap::Add(uint32_t id) { roaring_bitmap_add(r_, id); }
void UserBitmap::Or(const UserBitmap& o) { roaring_bitmap_or_inplace(r_, o.r_); }

bool UserBitmap::OrEncoded(std::string_view in) {
  if (in.empty()) return true;
  // The _safe variant never reads past `in`; it returns null on anything malformed.
  roaring_bitmap_t* other = roaring_bitmap_portable_deserialize_safe(in.data(), in.size());
  if (!other) return false;
  roaring_bitmap_or_inplace(r_, other);
  roaring_bitmap_free(other);
  return true;
}

uint64_t UnionCardinalityOfEncoded(std::span<const std::string_view> encoded,
                                   std::span<const UserBitmap* const> staged) {
  std::vector<roaring_bitmap_t*> decoded;  // owned
  std::vector<const roaring_bitmap_t*> parts;
  decoded.reserve(encoded.size());
  parts.reserve(encoded.size() + staged.size());
  for (std::string_view in : encoded) {
    if (in.empty()) continue;
    // The _safe variant never reads past `in`; null on anything malformed.
    if (roaring_bitmap_t* b = roaring_bitmap_portable_deserialize_safe(in.data(), in.size())) {
      decoded.push_back(b);
      parts.push_back(b);
    }
  }
  for (const UserBitmap* b : staged) {
    if (b != nullptr) parts.push_back(b->r_);
  }
  uint64_t n = 0;
  if (parts.size() == 1) {
    n = roaring_bitmap_get_cardinality(parts[0]);
  } else if (parts.size() > 1) {
    roaring_bitmap_t* u = roaring_bitmap_lazy_or(parts[0], parts[1], /*bitsetconversion=*/true);
    for (size_t i = 2; i < parts.size(); ++i)
      roaring_bitmap_lazy_or_inplace(u, parts[i], /*bitsetconversion=*/true);
    roaring_bitmap_repair_after_lazy(u);
    n = roaring_bitmap_get_cardinality(u);
    roaring_bitmap_free(u);
  }
  for (roaring_bitmap_t* b : decoded) roaring_bitmap_free(b);
  return n;
}

uint64_t UserBitmap::Cardinality() const { return roaring_bitmap_get_cardinality(r_); }
bool UserBitmap::Contains(uint32_t id) const { return roaring_bitmap_contains(r_, id); }

void UserBitmap::AppendEncoded(std::string* out) {
  roaring_bitmap_run_optimize(r_);
  AppendEncodedAsIs(out);
}

void UserBitmap::AppendEncodedAsIs(std::string* out) const {
  size_t n = roaring_bitmap_portable_size_in_bytes(r_);
  size_t old = out->size();
  out->resize(old + n);
  roaring_bitmap_portable_serialize(r_, out->data() + old);
}

}  // namespace tally::store
