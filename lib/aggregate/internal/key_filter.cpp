#include "aggregate/internal/key_filter.h"

#include <absl/hash/hash.h>

#include <cstring>

namespace tally::aggregate::internal {

KeyFilter::KeyFilter(size_t expected_keys) : expected_(expected_keys) {
  // 12 bits per key, 512 bits per block.
  blocks_ = expected_keys * 12 / 512 + 1;
  data_.reset(new Block[blocks_]);
  std::memset(data_.get(), 0, blocks_ * sizeof(Block));
}

uint64_t KeyFilter::HashOf(std::string_view key) {
  // absl's hash is seeded per process, which is fine for a filter that never leaves memory; the
  // final multiply spreads it over all 64 bits (the block index uses the high bits).
  return static_cast<uint64_t>(absl::Hash<std::string_view>()(key)) * 0x9E3779B97F4A7C15ULL;
}

void KeyFilter::AddHash(uint64_t h) {
  Block* b = const_cast<Block*>(BlockOf(h));
  for (int i = 0; i < kProbes; ++i) {
    const uint32_t bit = static_cast<uint32_t>(h >> (i * 9)) & 511;
    b->words[bit >> 6] |= uint64_t{1} << (bit & 63);
  }
  ++added_;
}

bool KeyFilter::MayContainHash(uint64_t h) const {
  const Block* b = BlockOf(h);
  for (int i = 0; i < kProbes; ++i) {
    const uint32_t bit = static_cast<uint32_t>(h >> (i * 9)) & 511;
    if ((b->words[bit >> 6] & (uint64_t{1} << (bit & 63))) == 0) return false;
  }
  return true;
}

}  // namespace tally::aggregate::internal
