// Fuzz target for the user-pack decoders and merge (store/codec.h): stored data must never make
// them fail or produce a malformed pack. The input's first byte picks how many parts (1..4) the
// rest is cut into; the parts are merged like RocksDB merge operands.
//
// Checks: the merge's output always parses, with strictly increasing user indexes; every user it
// lists is found by FindUserPackEntry; merging the output alone reproduces it byte for byte.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "store/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t k = 1 + data[0] % 4;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string_view> parts;
  const size_t piece = rest.size() / k;
  for (size_t i = 0; i < k; ++i) {
    parts.push_back(i + 1 == k ? rest.substr(i * piece) : rest.substr(i * piece, piece));
  }
  std::string merged;
  tally::store::MergeUserPacks(parts.data(), parts.size(), &merged);

  std::vector<uint32_t> users;
  const bool ok = tally::store::ForEachUserPackEntry(
      merged, [&](uint32_t user, std::string_view) { users.push_back(user); });
  if (!ok) std::abort();
  for (size_t i = 1; i < users.size(); ++i) {
    if (users[i] <= users[i - 1]) std::abort();
  }
  std::string_view counters;
  for (uint32_t u : users) {
    if (!tally::store::FindUserPackEntry(merged, u, &counters)) std::abort();
  }
  std::string again;
  std::string_view one = merged;
  tally::store::MergeUserPacks(&one, 1, &again);
  if (again != merged) std::abort();
  // Decoding the counters of any entry never fails badly (it may report malformed).
  for (uint32_t u : users) {
    tally::store::FindUserPackEntry(merged, u, &counters);
    tally::store::Counters c;
    tally::store::AddEncodedCounters(counters, &c);
  }
  return 0;
}
