#include "store/varint.h"

namespace tally::store {

void PutVarint64(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint64(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && !in->empty(); shift += 7) {
    uint8_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *v = result;
      return true;
    }
  }
  return false;
}

void PutLengthPrefixed(std::string* out, std::string_view s) {
  PutVarint64(out, s.size());
  out->append(s);
}

bool GetLengthPrefixed(std::string_view* in, std::string_view* s) {
  uint64_t n;
  if (!GetVarint64(in, &n) || n > in->size()) return false;
  *s = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

void PutOrderedInt32(std::string* out, int32_t v) {
  uint32_t u = static_cast<uint32_t>(v) ^ 0x80000000u;
  char b[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
               static_cast<char>(u)};
  out->append(b, 4);
}

bool GetOrderedInt32(std::string_view* in, int32_t* v) {
  if (in->size() < 4) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(in->data());
  uint32_t u = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  *v = static_cast<int32_t>(u ^ 0x80000000u);
  in->remove_prefix(4);
  return true;
}

void PutFixed64(std::string* out, uint64_t v) {
  char b[8];
  for (int k = 0; k < 8; ++k) b[k] = static_cast<char>(v >> (8 * k));
  out->append(b, 8);
}

bool GetFixed64(std::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  uint64_t r = 0;
  for (int k = 0; k < 8; ++k) r |= static_cast<uint64_t>(static_cast<uint8_t>((*in)[k])) << (8 * k);
  *v = r;
  in->remove_prefix(8);
  return true;
}

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
