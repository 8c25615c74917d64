#include "store/bitmap.h"

#include <roaring/roaring.h>

#include <utility>

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

uint64_t UserBitmap::Cardinality() const { return roaring_bitmap_get_cardinality(r_); }
bool UserBitmap::Contains(uint32_t id) const { return roaring_bitmap_contains(r_, id); }

void UserBitmap::AppendEncoded(std::string* out) {
  roaring_bitmap_run_optimize(r_);
  size_t n = roaring_bitmap_portable_size_in_bytes(r_);
  size_t old = out->size();
  out->resize(old + n);
  roaring_bitmap_portable_serialize(r_, out->data() + old);
}

}  // namespace tally::store
