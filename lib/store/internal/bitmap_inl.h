#pragma once
#include <roaring/roaring.h>

namespace tally::store {

template <typename Fn>
void UserBitmap::ForEach(Fn&& fn) const {
  roaring_iterate(
      r_,
      [](uint32_t value, void* p) -> bool {
        (*static_cast<Fn*>(p))(value);
        return true;
      },
      &fn);
}

}  // namespace tally::store
