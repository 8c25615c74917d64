#pragma once
// An in-memory Bloom filter of byte-string keys (cache-line blocked: one cache miss per probe).
//
//   KeyFilter f(1'000'000);          // sized for about a million keys
//   f.Add("key");
//   f.MayContain("key");             // true; false for most keys never added
//
// No false negatives: MayContain(k) is true for every k given to Add since construction. False
// positives rise with the number of keys added: about 1 % at the sized count, and the owner is
// expected to stop trusting the filter (Saturated()) well before it is useless.
// Not thread-safe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace tally::aggregate::internal {

class KeyFilter {
 public:
  // A filter of about 12 bits per key for `expected_keys` keys (at least one block).
  explicit KeyFilter(size_t expected_keys);

  void Add(std::string_view key) { AddHash(HashOf(key)); }
  bool MayContain(std::string_view key) const { return MayContainHash(HashOf(key)); }

  // The same in steps, for batches: hash each key once, Prefetch a few keys ahead of the probe.
  static uint64_t HashOf(std::string_view key);
  void Prefetch(uint64_t hash) const { __builtin_prefetch(BlockOf(hash)); }
  void AddHash(uint64_t hash);
  bool MayContainHash(uint64_t hash) const;
  size_t added() const { return added_; }
  // True once more than twice the sized number of keys were added (false positives then exceed
  // about 10 %).
  bool Saturated() const { return added_ > 2 * expected_; }

 private:
  static constexpr int kProbes = 6;
  struct alignas(64) Block {
    uint64_t words[8];
  };
  const Block* BlockOf(uint64_t h) const {
    return &data_[static_cast<size_t>((static_cast<unsigned __int128>(h) * blocks_) >> 64)];
  }

  size_t expected_;
  size_t blocks_;
  std::unique_ptr<Block[]> data_;
  size_t added_ = 0;
};

}  // namespace tally::aggregate::internal
