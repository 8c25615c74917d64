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

void PutVarint64(std::string* out, uint64_t v);
// Reads a varint from the front of *in and advances it; false on truncation.
bool GetVarint64(std::string_view* in, uint64_t* v);
void PutLengthPrefixed(std::string* out, std::string_view s);
bool GetLengthPrefixed(std::string_view* in, std::string_view* s);
void PutOrderedInt32(std::string* out, int32_t v);  // big-endian, sign flipped
bool GetOrderedInt32(std::string_view* in, int32_t* v);
void PutFixed64(std::string* out, uint64_t v);  // little-endian
bool GetFixed64(std::string_view* in, uint64_t* v);

// A uint32 as a varint (dictionary counters, the schema version), and its decoding: false
// unless `in` is exactly one varint of at most 32 bits.
std::string EncodeUint32(uint32_t v);
bool DecodeUint32(std::string_view in, uint32_t* v);

}  // namespace tally::store
