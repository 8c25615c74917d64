#pragma once
// What the store's codecs share: the one-byte key tags of every column family (one list, so no
// two kinds of row can share a tag) and small byte helpers. Internal to tally::store.

#include <cstdint>
#include <string>
#include <string_view>

namespace tally::store::internal {

// Key tags. Each column family has its own tags so that a key read in the wrong family is
// recognisable in a dump.
constexpr char kTagCounter = 'C';
constexpr char kTagBitmap = 'B';
constexpr char kTagProfile = 'P';
constexpr char kTagEntity = 'E';
constexpr char kTagWorkspace = 'W';
constexpr char kTagDedupe = 'D';
constexpr char kTagDict = 'U';
constexpr char kTagDictReverse = 'R';
constexpr char kTagDictNext = 'N';
constexpr char kTagOffset = 'O';
constexpr char kTagNewestEvent = 'T';      // default
constexpr char kTagSchemaVersion = 'V';    // default
constexpr char kTagRequestScopes = 'v';    // default
constexpr char kTagSlice = 'S';            // requests
constexpr char kTagSliceUsers = 'X';       // bitmaps
constexpr char kTagSlicePairs = 'Y';       // bitmaps
constexpr char kTagUserLabel = 'G';        // records (version 2 had 'L': one label per user)
constexpr char kTagAgentLabel = 'M';       // records
constexpr char kTagAgentDict = 'A';        // dict
constexpr char kTagAgentReverse = 'a';     // dict
constexpr char kTagAgentNext = 'n';        // dict
constexpr char kTagPairDict = 'Q';         // dict
constexpr char kTagPairNext = 'q';         // dict
constexpr char kTagUserPack = 'K';         // userpacks
constexpr char kTagWorkspaceDedupe = 'd';  // dedupe (a partitioned store)
constexpr char kTagPartitionIndex = 'I';   // default
constexpr char kTagPartitionLayout = 'p';  // default

inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

inline void PutBigEndian32(std::string* out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out->append(b, 4);
}

inline bool GetBigEndian32(std::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(in->data());
  *v = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  in->remove_prefix(4);
  return true;
}

// `tag` followed by a big-endian index (dense-index rows: labels, dictionary reverse rows).
inline void IndexKey(char tag, uint32_t index, std::string* out) {
  out->clear();
  out->push_back(tag);
  PutBigEndian32(out, index);
}

}  // namespace tally::store::internal
