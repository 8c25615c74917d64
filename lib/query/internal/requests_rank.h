#pragma once
// Rankings of the request-analytics engine (query/requests.h): per-index accumulators of
// requests, tokens and cost (one per thread, reused across requests), and the top-N and full
// rankings over them (value descending, ties by label then id), plus the same order on rows
// merged from several stores.
//
//   acc.Begin();  acc.At(user).requests += n;  ...
//   std::vector<uint32_t> top = TopIndexes(acc, 10, value, label, id);
//
// Header-only: used by query/requests.cpp and query/requests_merge.cpp alone. Not thread-safe
// (an accumulator per thread).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "query/internal/rank_sort.h"

namespace tally::query::internal {

// Per-index accumulators reused across requests on one thread: a generation stamp marks the
// entries of the current request, so nothing is cleared or reallocated per request.
struct Accumulator {
  struct Entry {
    uint32_t stamp = 0;
    uint64_t requests = 0;
    uint64_t tokens = 0;
    int64_t cost_nanos = 0;
  };
  std::vector<Entry> entries;
  std::vector<uint32_t> touched;
  uint32_t generation = 0;

  void Begin() {
    touched.clear();
    if (++generation == 0) {  // wrapped: old stamps could collide
      for (Entry& e : entries) e.stamp = 0;
      generation = 1;
    }
  }
  Entry& At(uint32_t index) {
    if (index >= entries.size()) entries.resize(std::max<size_t>(index + 1, entries.size() * 2));
    Entry& e = entries[index];
    if (e.stamp != generation) {
      e = Entry{generation, 0, 0, 0};
      touched.push_back(index);
    }
    return e;
  }
};

// A row of a full ranking: its value, label and accumulator index.
struct RankKey {
  uint64_t value;
  uint64_t prefix;  // the label's first 8 bytes, big-endian, zero-padded: orders like the label
  std::string_view label;
  uint32_t index;
};

// The first 8 bytes of `s` as a big-endian number (missing bytes 0): a < b on these implies
// a < b on the strings (byte order), equal prefixes need the full comparison.
inline uint64_t LabelPrefix(std::string_view s) {
  unsigned char b[8] = {};
  if (!s.empty()) std::memcpy(b, s.data(), std::min<size_t>(s.size(), 8));
  uint64_t p = 0;
  for (unsigned char c : b) p = (p << 8) | c;  // compiles to a load and a byte swap
  return p;
}

// Every active entry of `acc` ranked by `value` descending, ties by label then id ascending.
// The sort keys are gathered once into one array, so comparisons cost no accumulator or
// directory lookups; values are ordered by a radix sort (internal/rank_sort.h) and only rows
// with equal values are compared, most of them settled by the 8-byte label prefix
// (agent-usage-per-user ranks thousands of users, many of them tied on small values).
template <typename Value, typename Label, typename Id>
std::vector<RankKey> RankAll(const Accumulator& acc, Value value, Label label, Id id) {
  std::vector<RankKey> keys;
  keys.reserve(acc.touched.size());
  for (uint32_t i : acc.touched) {
    const Accumulator::Entry& e = acc.entries[i];
    if (e.requests == 0) continue;
    const std::string_view l = label(i);
    keys.push_back({value(e), LabelPrefix(l), l, i});
  }
  SortByValueDescending(
      &keys, [](const RankKey& k) { return k.value; },
      [&](const RankKey& a, const RankKey& b) {
        if (a.prefix != b.prefix) return a.prefix < b.prefix;
        if (a.label != b.label) return a.label < b.label;
        return id(a.index) < id(b.index);
      });
  return keys;
}

// The top `limit` entries of `acc` by `value`, ties by label then id.
template <typename Value, typename Label, typename Id>
std::vector<uint32_t> TopIndexes(const Accumulator& acc, size_t limit, Value value, Label label,
                                 Id id) {
  size_t active = 0;
  for (uint32_t i : acc.touched) active += acc.entries[i].requests > 0 ? 1 : 0;
  std::vector<uint32_t> idx;
  if (limit >= active) {
    for (const RankKey& k : RankAll(acc, value, label, id)) idx.push_back(k.index);
    return idx;
  }
  // A few rows out of many: most candidates lose on the value alone, so labels are looked up
  // only on ties.
  idx.reserve(active);
  for (uint32_t i : acc.touched)
    if (acc.entries[i].requests > 0) idx.push_back(i);
  auto less = [&](uint32_t a, uint32_t b) {
    uint64_t va = value(acc.entries[a]), vb = value(acc.entries[b]);
    if (va != vb) return va > vb;
    std::string_view la = label(a), lb = label(b);
    if (la != lb) return la < lb;
    return id(a) < id(b);
  };
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(limit), idx.end(), less);
  idx.resize(limit);
  return idx;
}

// Ranks `rows` (any type with value / label / id views) by value descending, ties by label then
// id ascending: the order of RankAll and TopIndexes.
template <typename Row, typename Value, typename Label, typename Id>
void SortRanked(std::vector<Row>* rows, Value value, Label label, Id id) {
  std::sort(rows->begin(), rows->end(), [&](const Row& a, const Row& b) {
    if (value(a) != value(b)) return value(a) > value(b);
    if (label(a) != label(b)) return label(a) < label(b);
    return id(a) < id(b);
  });
}

}  // namespace tally::query::internal
