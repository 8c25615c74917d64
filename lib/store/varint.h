#pragma once
// The primitive encodings every key and value of the store is built from: varints,
// length-prefixed strings, order-preserving integers and fixed-width integers.
//
//   std::string key;
//   tally::store::PutLengthPrefixed(&key, "ws1");  // no string can be mistaken for a separator
//   tally::store::PutOrderedInt32(&key, bucket);   // keys sort in numeric order
//
// Getters read from the front of *in and advance it; they return false on truncated input and
// never fail otherwise. Pure functions, thread-safe.

#include <cstdint>
#include <string>
#include <string_view>

namespace tally::store {

// Defined here, inline: every codec decodes and encodes through them, row by row, and they were
// inlined into the codecs when all encodings shared one source file.
inline void PutVarint64(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads a varint from the front of *in and advances it; false on truncation.
inline bool GetVarint64(std::string_view* in, uint64_t* v) {
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

inline void PutLengthPrefixed(std::string* out, std::string_view s) {
  PutVarint64(out, s.size());
  out->append(s);
}

inline bool GetLengthPrefixed(std::string_view* in, std::string_view* s) {
  uint64_t n;
  if (!GetVarint64(in, &n) || n > in->size()) return false;
  *s = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

// Big-endian with the sign bit flipped, so that encoded keys sort in numeric order.
inline void PutOrderedInt32(std::string* out, int32_t v) {
  uint32_t u = static_cast<uint32_t>(v) ^ 0x80000000u;
  char b[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
               static_cast<char>(u)};
  out->append(b, 4);
}

inline bool GetOrderedInt32(std::string_view* in, int32_t* v) {
  if (in->size() < 4) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(in->data());
  uint32_t u = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  *v = static_cast<int32_t>(u ^ 0x80000000u);
  in->remove_prefix(4);
  return true;
}

// Little-endian.
inline void PutFixed64(std::string* out, uint64_t v) {
  char b[8];
  for (int k = 0; k < 8; ++k) b[k] = static_cast<char>(v >> (8 * k));
  out->append(b, 8);
}

inline bool GetFixed64(std::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  uint64_t r = 0;
  for (int k = 0; k < 8; ++k) r |= static_cast<uint64_t>(static_cast<uint8_t>((*in)[k])) << (8 * k);
  *v = r;
  in->remove_prefix(8);
  return true;
}

// A uint32 as a varint (dictionary counters, the schema version), and its decoding: false
// unless `in` is exactly one varint of at most 32 bits.
std::string EncodeUint32(uint32_t v);
bool DecodeUint32(std::string_view in, uint32_t* v);

}  // namespace tally::store
