#include "store/varint.h"

namespace tally::store {

std::string EncodeUint32(uint32_t v) {
  std::string out;
  PutVarint64(&out, v);
  return out;
}

bool DecodeUint32(std::string_view in, uint32_t* v) {
  uint64_t x;
  if (!GetVarint64(&in, &x) || x > UINT32_MAX || !in.empty()) return false;
  *v = static_cast<uint32_t>(x);
  return true;
}

}  // namespace tally::store
