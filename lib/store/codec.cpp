#include "store/codec.h"

#include <algorithm>
#include <cstring>

namespace tally::store {
namespace {

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

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

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
  Counters parsed;
  uint64_t mask_i, mask_d;
  if (!GetVarint64(&in, &mask_i) || !GetVarint64(&in, &mask_d)) return false;
  // Fields beyond the known ones come from a newer writer; refuse rather than misread.
  if (mask_i >> Counters::kInts || mask_d >> Counters::kDoubles) return false;
  for (int k = 0; k < Counters::kInts; ++k) {
    if (mask_i & (uint64_t{1} << k)) {
      uint64_t v;
      if (!GetVarint64(&in, &v)) return false;
      parsed.i[k] = UnZigZag(v);
    }
  }
  for (int k = 0; k < Counters::kDoubles; ++k) {
    if (mask_d & (uint64_t{1} << k)) {
      uint64_t bits;
      if (!GetFixed64(&in, &bits)) return false;
      std::memcpy(&parsed.d[k], &bits, 8);
    }
  }
  if (!in.empty()) return false;
  c->Add(parsed);
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

namespace {
// Offset of the granularity byte in a counter/bitmap key, or npos.
size_t GranularityOffset(std::string_view key) {
  if (key.size() < 2) return std::string_view::npos;
  std::string_view rest = key.substr(2);
  std::string_view ws;
  if (!GetLengthPrefixed(&rest, &ws) || rest.size() < 5) return std::string_view::npos;
  return key.size() - rest.size();
}
}  // namespace

bool RebucketKey(std::string_view key, Granularity g, int32_t bucket, std::string* out) {
  size_t at = GranularityOffset(key);
  if (at == std::string_view::npos) return false;
  out->assign(key.substr(0, at));
  out->push_back(static_cast<char>(g));
  PutOrderedInt32(out, bucket);
  out->append(key.substr(at + 5));
  return true;
}

bool KeyBucket(std::string_view key, Granularity* g, int32_t* bucket) {
  size_t at = GranularityOffset(key);
  if (at == std::string_view::npos) return false;
  *g = static_cast<Granularity>(key[at]);
  std::string_view rest = key.substr(at + 1);
  return GetOrderedInt32(&rest, bucket);
}

void CounterBucketPrefix(Scope scope, std::string_view ws, Granularity g, int32_t bucket,
                         std::string* out) {
  ScopedKey(kTagCounter, scope, ws, g, bucket, {}, out);
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

bool DecodeScopeIdUser(std::string_view rest, uint32_t* user_index) {
  int32_t v;
  if (!GetOrderedInt32(&rest, &v) || !rest.empty()) return false;
  *user_index = static_cast<uint32_t>(v) ^ 0x80000000u;
  return true;
}

bool DecodeScopeIdEntity(std::string_view rest, event::EntityKind* kind,
                         std::string_view* entity_id) {
  if (rest.empty()) return false;
  uint8_t k = static_cast<uint8_t>(rest.front());
  if (k >= event::kEntityKindCount) return false;
  rest.remove_prefix(1);
  *kind = static_cast<event::EntityKind>(k);
  return GetLengthPrefixed(&rest, entity_id) && rest.empty();
}

// ---------------------------------------------------------------------------------------------

void AppendRecord(const Record& r, std::string* out) {
  for (const Field& f : r) {
    out->push_back(static_cast<char>(f.id));
    PutVarint64(out, ZigZag(f.time_ms));
    PutLengthPrefixed(out, f.value);
  }
}

bool DecodeRecord(std::string_view in, Record* r) {
  r->clear();
  while (!in.empty()) {
    Field f;
    f.id = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    uint64_t t;
    std::string_view v;
    if (!GetVarint64(&in, &t) || !GetLengthPrefixed(&in, &v)) return false;
    f.time_ms = UnZigZag(t);
    f.value.assign(v);
    MergeField(std::move(f), r);
  }
  return true;
}

void MergeField(Field f, Record* r) {
  auto it = std::lower_bound(r->begin(), r->end(), f.id,
                             [](const Field& a, uint8_t id) { return a.id < id; });
  if (it == r->end() || it->id != f.id) {
    r->insert(it, std::move(f));
    return;
  }
  bool replace =
      PolicyOf(f.id) == kEarliestWins ? f.time_ms < it->time_ms : f.time_ms >= it->time_ms;
  if (replace) *it = std::move(f);
}

void MergeRecord(const Record& update, Record* base) {
  for (const Field& f : update) MergeField(f, base);
}

const Field* FindField(const Record& r, uint8_t id) {
  auto it =
      std::lower_bound(r.begin(), r.end(), id, [](const Field& a, uint8_t x) { return a.id < x; });
  return it != r.end() && it->id == id ? &*it : nullptr;
}

void UserProfileKey(std::string_view ws, std::string_view user_id, std::string* out) {
  out->clear();
  out->push_back(kTagProfile);
  PutLengthPrefixed(out, ws);
  PutLengthPrefixed(out, user_id);
}

void EntityKey(std::string_view ws, event::EntityKind kind, std::string_view entity_id,
               std::string* out) {
  EntityPrefix(ws, kind, out);
  PutLengthPrefixed(out, entity_id);
}

void EntityPrefix(std::string_view ws, event::EntityKind kind, std::string* out) {
  out->clear();
  out->push_back(kTagEntity);
  PutLengthPrefixed(out, ws);
  out->push_back(static_cast<char>(kind));
}

void WorkspaceKey(std::string_view ws, std::string* out) {
  out->clear();
  out->push_back(kTagWorkspace);
  PutLengthPrefixed(out, ws);
}

std::string WorkspacePrefix() { return std::string(1, kTagWorkspace); }

// ---------------------------------------------------------------------------------------------

void DedupeKey(std::string_view source, std::string_view id, std::string* out) {
  out->clear();
  out->push_back(kTagDedupe);
  PutLengthPrefixed(out, source);
  PutLengthPrefixed(out, id);
}

std::string EncodeDedupeValue(int64_t time_ms) {
  std::string out;
  PutFixed64(&out, static_cast<uint64_t>(time_ms));
  return out;
}

bool DecodeDedupeValue(std::string_view in, int64_t* time_ms) {
  uint64_t v;
  if (!GetFixed64(&in, &v)) return false;
  *time_ms = static_cast<int64_t>(v);
  return true;
}

void UserDictKey(std::string_view user_id, std::string* out) {
  out->clear();
  out->push_back(kTagDict);
  PutLengthPrefixed(out, user_id);
}

void UserDictReverseKey(uint32_t index, std::string* out) {
  out->clear();
  out->push_back(kTagDictReverse);
  PutOrderedInt32(out, static_cast<int32_t>(index ^ 0x80000000u));
}

std::string UserDictNextKey() { return std::string(1, kTagDictNext); }

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

void OffsetKey(std::string_view topic, int32_t partition, std::string* out) {
  out->clear();
  out->push_back(kTagOffset);
  PutLengthPrefixed(out, topic);
  PutOrderedInt32(out, partition);
}

std::string OffsetPrefix() { return std::string(1, kTagOffset); }

bool DecodeOffsetKey(std::string_view key, std::string* topic, int32_t* partition) {
  if (key.empty() || key.front() != kTagOffset) return false;
  key.remove_prefix(1);
  std::string_view t;
  if (!GetLengthPrefixed(&key, &t) || !GetOrderedInt32(&key, partition) || !key.empty())
    return false;
  topic->assign(t);
  return true;
}

std::string EncodeOffset(const StoredOffset& o) {
  std::string out;
  PutLengthPrefixed(&out, o.cluster_id);
  PutVarint64(&out, static_cast<uint64_t>(o.next_offset));
  return out;
}

bool DecodeOffset(std::string_view in, StoredOffset* o) {
  std::string_view c;
  uint64_t off;
  if (!GetLengthPrefixed(&in, &c) || !GetVarint64(&in, &off) || !in.empty()) return false;
  o->cluster_id.assign(c);
  o->next_offset = static_cast<int64_t>(off);
  return true;
}

}  // namespace tally::store
