#include "store/counters_codec.h"

#include <bit>
#include <cstring>
#include <vector>

#include "store/internal/codec_common.h"
#include "store/varint.h"

namespace tally::store {

using internal::kTagBitmap;
using internal::kTagCounter;
using internal::kTagSlice;
using internal::kTagSlicePairs;
using internal::kTagSliceUsers;
using internal::kTagUserPack;
using internal::UnZigZag;
using internal::ZigZag;

namespace {

void ScopedKey(char tag, Scope scope, std::string_view ws, Granularity g, int32_t bucket,
               std::string_view extra, std::string* out) {
  out->clear();
  out->push_back(tag);
  out->push_back(static_cast<char>(scope));
  PutLengthPrefixed(out, ws);
  out->push_back(static_cast<char>(g));
  PutOrderedInt32(out, bucket);
  out->append(extra);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

bool Counters::IsZero() const {
  for (int64_t v : i)
    if (v) return false;
  for (double v : d)
    if (v != 0) return false;
  return true;
}

void AppendCounters(const Counters& c, std::string* out) {
  uint64_t mask_i = 0, mask_d = 0;
  for (int k = 0; k < Counters::kInts; ++k)
    if (c.i[k]) mask_i |= uint64_t{1} << k;
  for (int k = 0; k < Counters::kDoubles; ++k)
    if (c.d[k] != 0) mask_d |= uint64_t{1} << k;
  PutVarint64(out, mask_i);
  PutVarint64(out, mask_d);
  for (int k = 0; k < Counters::kInts; ++k)
    if (c.i[k]) PutVarint64(out, ZigZag(c.i[k]));
  for (int k = 0; k < Counters::kDoubles; ++k) {
    if (c.d[k] != 0) {
      uint64_t bits;
      std::memcpy(&bits, &c.d[k], 8);
      PutFixed64(out, bits);
    }
  }
}

std::string EncodeCounters(const Counters& c) {
  std::string out;
  AppendCounters(c, &out);
  return out;
}

bool AddEncodedCounters(std::string_view in, Counters* c) {
  uint64_t mask_i, mask_d;
  if (!GetVarint64(&in, &mask_i) || !GetVarint64(&in, &mask_d)) return false;
  // Fields beyond the known ones come from a newer writer; refuse rather than misread.
  if (mask_i >> Counters::kInts || mask_d >> Counters::kDoubles) return false;
  // Only the (few) present fields are visited; they are added once the whole value decoded, so
  // a malformed value leaves *c unchanged. This runs for every merge operand on every read.
  int64_t ints[Counters::kInts];
  double doubles[Counters::kDoubles];
  int n = 0;
  for (uint64_t m = mask_i; m != 0; m &= m - 1) {
    uint64_t v;
    if (!in.empty() && static_cast<uint8_t>(in[0]) < 0x80) {  // one-byte varint: most counts
      v = static_cast<uint8_t>(in[0]);
      in.remove_prefix(1);
    } else if (!GetVarint64(&in, &v)) {
      return false;
    }
    ints[n++] = UnZigZag(v);
  }
  n = 0;
  for (uint64_t m = mask_d; m != 0; m &= m - 1) {
    uint64_t bits;
    if (!GetFixed64(&in, &bits)) return false;
    std::memcpy(&doubles[n++], &bits, 8);
  }
  if (!in.empty()) return false;
  n = 0;
  for (uint64_t m = mask_i; m != 0; m &= m - 1) SatAddTo(&c->i[std::countr_zero(m)], ints[n++]);
  n = 0;
  for (uint64_t m = mask_d; m != 0; m &= m - 1) {
    SatAddTo(&c->d[std::countr_zero(m)], doubles[n++]);
  }
  return true;
}

void CounterKey(Scope scope, std::string_view ws, Granularity g, int32_t bucket,
                std::string_view extra, std::string* out) {
  ScopedKey(kTagCounter, scope, ws, g, bucket, extra, out);
}

void BitmapKey(Scope scope, std::string_view ws, Granularity g, int32_t bucket,
               std::string_view extra, std::string* out) {
  ScopedKey(kTagBitmap, scope, ws, g, bucket, extra, out);
}

void CounterBucketPrefix(Scope scope, std::string_view ws, Granularity g, int32_t bucket,
                         std::string* out) {
  ScopedKey(kTagCounter, scope, ws, g, bucket, {}, out);
}

bool RollUpKeys(std::string_view day_key, std::string* week, std::string* month) {
  // Where the granularity byte sits: after the workspace for scoped and pack keys, in the last
  // 5 bytes for request keys.
  size_t at = 0;
  std::string_view rest = day_key;
  if (rest.empty()) return false;
  switch (rest[0]) {
    case kTagCounter:
    case kTagBitmap:
    case kTagUserPack: {
      const size_t skip = rest[0] == kTagUserPack ? 1 : 2;  // tag (and scope)
      if (rest.size() < skip) return false;
      rest.remove_prefix(skip);
      std::string_view ws;
      if (!GetLengthPrefixed(&rest, &ws)) return false;
      at = day_key.size() - rest.size();
      break;
    }
    case kTagSlice:
    case kTagSliceUsers:
    case kTagSlicePairs:
      if (day_key.size() < 8) return false;
      at = day_key.size() - 5;
      break;
    default:
      return false;
  }
  std::string_view tail = day_key.substr(at);
  int32_t day = 0;
  if (tail.size() < 5 || tail[0] != static_cast<char>(Granularity::kDay)) return false;
  tail.remove_prefix(1);
  if (!GetOrderedInt32(&tail, &day)) return false;
  for (auto [g, out] :
       {std::pair{Granularity::kWeek, week}, std::pair{Granularity::kMonth, month}}) {
    out->assign(day_key.substr(0, at));
    out->push_back(static_cast<char>(g));
    PutOrderedInt32(out, BucketOf(day, g));
    out->append(tail);
  }
  return true;
}

void UserPackKey(std::string_view ws, Granularity g, int32_t bucket, std::string* out) {
  out->clear();
  out->push_back(kTagUserPack);
  PutLengthPrefixed(out, ws);
  out->push_back(static_cast<char>(g));
  PutOrderedInt32(out, bucket);
}

void UserPackWriter::AddEncoded(uint32_t user, std::string_view counters) {
  PutVarint64(out_, first_ ? user : user - last_);
  PutLengthPrefixed(out_, counters);
  last_ = user;
  first_ = false;
}

void UserPackWriter::Add(uint32_t user, const Counters& c) {
  scratch_.clear();
  AppendCounters(c, &scratch_);
  AddEncoded(user, scratch_);
}

bool NextUserPackEntry(std::string_view* in, bool first, uint32_t* user,
                       std::string_view* counters) {
  uint64_t delta;
  if (!GetVarint64(in, &delta)) return false;
  if (!first && delta == 0) return false;  // indexes must increase strictly
  if (delta > UINT32_MAX) return false;    // (and the sum below must not wrap around)
  const uint64_t u = first ? delta : uint64_t{*user} + delta;
  if (u > UINT32_MAX) return false;
  if (!GetLengthPrefixed(in, counters)) return false;
  *user = static_cast<uint32_t>(u);
  return true;
}

bool FindUserPackEntry(std::string_view pack, uint32_t user, std::string_view* counters) {
  uint32_t at = 0;
  for (bool first = true; !pack.empty(); first = false) {
    if (!NextUserPackEntry(&pack, first, &at, counters)) return false;
    if (at >= user) return at == user;
  }
  return false;
}

int MergeUserPacks(const std::string_view* packs, size_t n, std::string* out) {
  // A k-way merge: k is the number of operands RocksDB hands over (bounded by
  // max_successive_merges and the number of sorted runs), so a linear minimum is cheapest.
  // Entries present in one input only are copied as bytes, without decoding their counters.
  struct Cursor {
    std::string_view rest;
    uint32_t user = 0;
    std::string_view counters;
    bool live = false;
    bool first = true;
  };
  int malformed = 0;
  std::vector<Cursor> cursors(n);
  auto advance = [&](Cursor& c) {
    if (c.rest.empty()) {
      c.live = false;
      return;
    }
    c.live = NextUserPackEntry(&c.rest, c.first, &c.user, &c.counters);
    c.first = false;
    if (!c.live) ++malformed;
  };
  for (size_t k = 0; k < n; ++k) {
    cursors[k].rest = packs[k];
    advance(cursors[k]);
  }
  out->clear();
  UserPackWriter w(out);
  Counters sum;
  while (true) {
    uint32_t min = UINT32_MAX;
    int holders = 0;
    size_t only = 0;
    for (size_t k = 0; k < n; ++k) {
      const Cursor& c = cursors[k];
      if (!c.live) continue;
      if (holders == 0 || c.user < min) {
        min = c.user;
        holders = 1;
        only = k;
      } else if (c.user == min) {
        ++holders;
      }
    }
    if (holders == 0) break;
    if (holders == 1) {
      w.AddEncoded(min, cursors[only].counters);
      advance(cursors[only]);
      continue;
    }
    sum = Counters();
    for (Cursor& c : cursors) {
      if (!c.live || c.user != min) continue;
      if (!AddEncodedCounters(c.counters, &sum)) ++malformed;
      advance(c);
    }
    w.Add(min, sum);
  }
  return malformed;
}

void ScopeIdUser(uint32_t user_index, std::string* out) {
  out->clear();
  PutOrderedInt32(out, static_cast<int32_t>(user_index ^ 0x80000000u));
}

void ScopeIdEntity(event::EntityKind kind, std::string_view entity_id, std::string* out) {
  out->clear();
  out->push_back(static_cast<char>(kind));
  PutLengthPrefixed(out, entity_id);
}

void ScopeIdProject(std::string_view project_id, std::string* out) {
  out->clear();
  PutLengthPrefixed(out, project_id);
}

}  // namespace tally::store
