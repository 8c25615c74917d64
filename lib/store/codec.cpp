#include "store/codec.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "store/internal/family.h"

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
    const auto id = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    uint64_t t;
    std::string_view v;
    if (!GetVarint64(&in, &t) || !GetLengthPrefixed(&in, &v)) return false;
    MergeField(id, UnZigZag(t), v, r);
  }
  return true;
}

void MergeField(Field f, Record* r) { MergeField(f.id, f.time_ms, f.value, r); }

void MergeField(uint8_t id, int64_t time_ms, std::string_view value, Record* r) {
  auto it = std::lower_bound(r->begin(), r->end(), id,
                             [](const Field& a, uint8_t x) { return a.id < x; });
  if (it == r->end() || it->id != id) {
    r->insert(it, Field{id, time_ms, std::string(value)});
    return;
  }
  if (PolicyOf(id) == kEarliestWins ? time_ms < it->time_ms : time_ms >= it->time_ms) {
    it->time_ms = time_ms;
    it->value.assign(value);
  }
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

RecordKeyRef ParseRecordKey(std::string_view key) {
  RecordKeyRef ref;
  if (key.empty() || (key[0] != kTagProfile && key[0] != kTagEntity)) return ref;
  const char tag = key[0];
  std::string_view rest = key.substr(1), ws, id;
  if (!GetLengthPrefixed(&rest, &ws)) return ref;
  if (tag == kTagEntity) {
    if (rest.empty() || rest[0] != static_cast<char>(event::EntityKind::kAgent)) return ref;
    rest.remove_prefix(1);
  }
  if (!GetLengthPrefixed(&rest, &id) || !rest.empty()) return ref;
  ref.kind = tag == kTagProfile ? RecordKeyRef::Kind::kProfile : RecordKeyRef::Kind::kAgent;
  ref.workspace_id = ws;
  ref.id = id;
  return ref;
}

void WorkspaceKey(std::string_view ws, std::string* out) {
  out->clear();
  out->push_back(kTagWorkspace);
  PutLengthPrefixed(out, ws);
}

std::string WorkspacePrefix() { return std::string(1, kTagWorkspace); }

bool DecodeWorkspaceKey(std::string_view key, std::string_view* workspace_id) {
  if (key.empty() || key[0] != kTagWorkspace) return false;
  key.remove_prefix(1);
  return GetLengthPrefixed(&key, workspace_id) && key.empty();
}

// ---------------------------------------------------------------------------------------------

void DedupeKey(std::string_view source, std::string_view id, std::string* out) {
  out->clear();
  out->push_back(kTagDedupe);
  PutLengthPrefixed(out, source);
  PutLengthPrefixed(out, id);
}

void WorkspaceDedupeKey(std::string_view workspace_id, std::string_view source, std::string_view id,
                        std::string* out) {
  out->clear();
  out->push_back(kTagWorkspaceDedupe);
  PutLengthPrefixed(out, workspace_id);
  PutLengthPrefixed(out, source);
  PutLengthPrefixed(out, id);
}

std::string EncodeDedupeValue(int64_t time_ms, int64_t inserted_ms) {
  std::string out;
  AppendDedupeValue(time_ms, inserted_ms, &out);
  return out;
}

void AppendDedupeValue(int64_t time_ms, int64_t inserted_ms, std::string* out) {
  PutFixed64(out, static_cast<uint64_t>(time_ms));
  PutFixed64(out, static_cast<uint64_t>(inserted_ms));
}

bool DecodeDedupeValue(std::string_view in, int64_t* time_ms, int64_t* inserted_ms) {
  uint64_t v, w = 0;
  if (!GetFixed64(&in, &v)) return false;
  if (!in.empty() && !GetFixed64(&in, &w)) return false;
  *time_ms = static_cast<int64_t>(v);
  *inserted_ms = static_cast<int64_t>(w);
  return true;
}

std::string NewestEventTimeKey() { return std::string(1, kTagNewestEvent); }
std::string SchemaVersionKey() { return std::string(1, kTagSchemaVersion); }
std::string RequestScopesKey() { return std::string(1, kTagRequestScopes); }

std::string WorkspaceRequestScope(std::string_view organization, std::string_view workspace) {
  std::string out;
  out.reserve(organization.size() + workspace.size() + 5);
  PutLengthPrefixed(&out, organization);
  out.append(workspace);
  return out;
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

// ---------------------------------------------------------------------------------------------
// Request analytics.

namespace {

constexpr size_t kSliceTotalsBytes = 32;
constexpr size_t kSliceUserBytes = 28;
constexpr size_t kSliceAgentBytes = 20;

template <typename T>
void PutRaw(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out->append(b, sizeof(T));
}
template <typename T>
T GetRaw(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

void PutBigEndian32(std::string* out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out->append(b, 4);
}

bool GetBigEndian32(std::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(in->data());
  *v = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  in->remove_prefix(4);
  return true;
}

void RequestsKey(char tag, std::string_view org, bool with_agent, uint32_t agent,
                 const std::string_view* project, Granularity g, int32_t bucket, std::string* out) {
  out->clear();
  out->push_back(tag);
  PutLengthPrefixed(out, org);
  if (with_agent && agent != kAllAgents) {
    out->push_back(1);
    PutBigEndian32(out, agent);
  } else if (with_agent) {
    out->push_back(0);
  }
  if (project) {
    out->push_back(1);
    PutLengthPrefixed(out, *project);
  } else {
    out->push_back(0);
  }
  out->push_back(static_cast<char>(g));
  PutOrderedInt32(out, bucket);
}

}  // namespace

int64_t CostNanos(double usd) {
  const double nanos = usd * 1e9;
  if (!(nanos > 0)) return 0;            // also NaN
  if (nanos >= 9223372036854775807.0) {  // 2^63: beyond int64_t
    tally::internal::NoteSaturated();
    return INT64_MAX;
  }
  return std::llround(nanos);
}

void Slice::Clear() {
  totals = SliceTotals{};
  users.clear();
  agents.clear();
}

namespace {

void AddTotals(const SliceTotals& o, SliceTotals* t) {
  SatAddTo(&t->requests, o.requests);
  SatAddTo(&t->errors, o.errors);
  SatAddTo(&t->tokens, o.tokens);
  SatAddTo(&t->cost_nanos, o.cost_nanos);
}

}  // namespace

void Slice::Append(const Slice& o) {
  AddTotals(o.totals, &totals);
  users.insert(users.end(), o.users.begin(), o.users.end());
  agents.insert(agents.end(), o.agents.begin(), o.agents.end());
}

namespace {

// Sorts `v` by `less`. Entries that are several sorted parts one after another (a stored slice
// and its merge operands, a staged slice and the stored one, day slices rolled up into a month)
// are merged part by part, O(n log parts) with few comparisons; anything else is sorted.
template <typename T, typename Less>
void SortParts(std::vector<T>* v, Less less) {
  if (v->size() < 2) return;
  std::vector<size_t> starts = {0};
  for (size_t i = 1; i < v->size(); ++i) {
    if (less((*v)[i], (*v)[i - 1])) {
      starts.push_back(i);
      // Many parts: not a concatenation of sorted parts.
      if (starts.size() > 8 + v->size() / 16) {
        std::sort(v->begin(), v->end(), less);
        return;
      }
    }
  }
  // Merge neighbouring parts pairwise until one remains; the merged parts' starts are kept in
  // place (entry k/2 is written after entry k + 2 was read).
  while (starts.size() > 1) {
    size_t kept = 0;
    for (size_t k = 0; k < starts.size(); k += 2) {
      if (k + 1 < starts.size()) {
        const size_t end = k + 2 < starts.size() ? starts[k + 2] : v->size();
        std::inplace_merge(v->begin() + starts[k], v->begin() + starts[k + 1], v->begin() + end,
                           less);
      }
      starts[kept++] = starts[k];
    }
    starts.resize(kept);
  }
}

}  // namespace

void Slice::Normalize() {
  // Every field is an integer, so the order in which equal indexes combine cannot matter.
  SortParts(&users, [](const SliceUser& a, const SliceUser& b) { return a.user < b.user; });
  SortParts(&agents, [](const SliceAgent& a, const SliceAgent& b) { return a.agent < b.agent; });
  if (users.size() > 1) {
    size_t w = 0;
    for (size_t r = 1; r < users.size(); ++r) {
      if (users[r].user == users[w].user) {
        SatAddTo(&users[w].requests, users[r].requests);
        SatAddTo(&users[w].tokens, users[r].tokens);
        SatAddTo(&users[w].cost_nanos, users[r].cost_nanos);
      } else {
        users[++w] = users[r];
      }
    }
    users.resize(w + 1);
  }
  if (agents.size() > 1) {
    size_t w = 0;
    for (size_t r = 1; r < agents.size(); ++r) {
      if (agents[r].agent == agents[w].agent) {
        SatAddTo(&agents[w].requests, agents[r].requests);
        SatAddTo(&agents[w].tokens, agents[r].tokens);
      } else {
        agents[++w] = agents[r];
      }
    }
    agents.resize(w + 1);
  }
}

void AppendSlice(const Slice& s, std::string* out) {
  out->reserve(out->size() + 1 + kSliceTotalsBytes + 10 + s.users.size() * kSliceUserBytes +
               s.agents.size() * kSliceAgentBytes);
  out->push_back(1);
  PutRaw(out, s.totals.requests);
  PutRaw(out, s.totals.errors);
  PutRaw(out, s.totals.tokens);
  PutRaw(out, s.totals.cost_nanos);
  PutVarint64(out, s.users.size());
  for (const SliceUser& u : s.users) {
    PutRaw(out, u.user);
    PutRaw(out, u.requests);
    PutRaw(out, u.tokens);
    PutRaw(out, u.cost_nanos);
  }
  PutVarint64(out, s.agents.size());
  for (const SliceAgent& a : s.agents) {
    PutRaw(out, a.agent);
    PutRaw(out, a.requests);
    PutRaw(out, a.tokens);
  }
}

bool SliceView::Parse(std::string_view in) {
  *this = SliceView();
  if (in.size() < 1 + kSliceTotalsBytes || in[0] != 1) return false;
  const char* p = in.data() + 1;
  SliceTotals t;
  t.requests = GetRaw<uint64_t>(p);
  t.errors = GetRaw<uint64_t>(p + 8);
  t.tokens = GetRaw<uint64_t>(p + 16);
  t.cost_nanos = GetRaw<int64_t>(p + 24);
  in.remove_prefix(1 + kSliceTotalsBytes);
  uint64_t nu, na;
  if (!GetVarint64(&in, &nu) || nu > in.size() / kSliceUserBytes) return false;
  const char* users = in.data();
  in.remove_prefix(nu * kSliceUserBytes);
  if (!GetVarint64(&in, &na) || na * kSliceAgentBytes != in.size()) return false;
  totals_ = t;
  users_ = users;
  user_count_ = nu;
  agents_ = in.data();
  agent_count_ = na;
  return true;
}

SliceUser SliceView::user(size_t i) const {
  const char* p = users_ + i * kSliceUserBytes;
  return SliceUser{GetRaw<uint32_t>(p), GetRaw<uint64_t>(p + 4), GetRaw<uint64_t>(p + 12),
                   GetRaw<int64_t>(p + 20)};
}

SliceAgent SliceView::agent(size_t i) const {
  const char* p = agents_ + i * kSliceAgentBytes;
  return SliceAgent{GetRaw<uint32_t>(p), GetRaw<uint64_t>(p + 4), GetRaw<uint64_t>(p + 12)};
}

bool AppendEncodedSlice(std::string_view in, Slice* s) {
  SliceView v;
  if (!v.Parse(in)) return false;
  AddTotals(v.totals(), &s->totals);
  s->users.reserve(s->users.size() + v.user_count());
  for (size_t i = 0; i < v.user_count(); ++i) s->users.push_back(v.user(i));
  s->agents.reserve(s->agents.size() + v.agent_count());
  for (size_t i = 0; i < v.agent_count(); ++i) s->agents.push_back(v.agent(i));
  return true;
}

void RequestsSliceKey(std::string_view org, uint32_t agent, const std::string_view* project,
                      Granularity g, int32_t bucket, std::string* out) {
  RequestsKey(kTagSlice, org, true, agent, project, g, bucket, out);
}

void RequestsUsersKey(std::string_view org, uint32_t agent, const std::string_view* project,
                      Granularity g, int32_t bucket, std::string* out) {
  RequestsKey(kTagSliceUsers, org, true, agent, project, g, bucket, out);
}

void RequestsPairsKey(std::string_view org, const std::string_view* project, Granularity g,
                      int32_t bucket, std::string* out) {
  RequestsKey(kTagSlicePairs, org, false, kAllAgents, project, g, bucket, out);
}

bool RequestsUsersKeyOf(std::string_view slice_key, std::string* out) {
  if (slice_key.empty() || slice_key[0] != kTagSlice) return false;
  out->assign(slice_key);
  (*out)[0] = kTagSliceUsers;
  return true;
}

bool RequestsPairsKeyOf(std::string_view slice_key, std::string* out) {
  if (slice_key.empty() || slice_key[0] != kTagSlice) return false;
  std::string_view rest = slice_key.substr(1), org;
  if (!GetLengthPrefixed(&rest, &org) || rest.empty() || rest[0] != 0) return false;
  out->clear();
  out->push_back(kTagSlicePairs);
  PutLengthPrefixed(out, org);
  out->append(rest.substr(1));  // without the all-agents selector
  return true;
}

bool RequestsRebucket(std::string_view key, Granularity g, int32_t bucket, std::string* out) {
  if (key.size() < 8) return false;
  out->assign(key.substr(0, key.size() - 5));
  out->push_back(static_cast<char>(g));
  PutOrderedInt32(out, bucket);
  return true;
}

bool RequestsKeyBucket(std::string_view key, Granularity* g, int32_t* bucket) {
  if (key.size() < 8) return false;
  std::string_view tail = key.substr(key.size() - 5);
  *g = static_cast<Granularity>(tail[0]);
  tail.remove_prefix(1);
  return GetOrderedInt32(&tail, bucket);
}

void RequestsProjectsPrefix(std::string_view org, uint32_t agent, std::string* out) {
  out->clear();
  out->push_back(kTagSlice);
  PutLengthPrefixed(out, org);
  if (agent != kAllAgents) {
    out->push_back(1);
    PutBigEndian32(out, agent);
  } else {
    out->push_back(0);
  }
  out->push_back(1);
}

void RequestsOrgPrefix(std::string_view org, std::string* out) {
  out->clear();
  out->push_back(kTagSlice);
  PutLengthPrefixed(out, org);
}

bool DecodeRequestsProject(std::string_view rest, std::string_view* project, Granularity* g,
                           int32_t* bucket) {
  if (!GetLengthPrefixed(&rest, project) || rest.size() != 5) return false;
  *g = static_cast<Granularity>(rest[0]);
  rest.remove_prefix(1);
  return GetOrderedInt32(&rest, bucket);
}

namespace {
void IndexKey(char tag, uint32_t index, std::string* out) {
  out->clear();
  out->push_back(tag);
  PutBigEndian32(out, index);
}
}  // namespace

void UserLabelKey(std::string_view organization, uint32_t user_index, std::string* out) {
  out->clear();
  out->push_back(kTagUserLabel);
  PutLengthPrefixed(out, organization);
  PutBigEndian32(out, user_index);
}

bool DecodeUserLabelKey(std::string_view key, std::string_view* organization,
                        uint32_t* user_index) {
  if (key.empty() || key[0] != kTagUserLabel) return false;
  key.remove_prefix(1);
  return GetLengthPrefixed(&key, organization) && GetBigEndian32(&key, user_index) && key.empty();
}
void AgentLabelKey(uint32_t agent_index, std::string* out) {
  IndexKey(kTagAgentLabel, agent_index, out);
}
std::string UserLabelPrefix() { return std::string(1, kTagUserLabel); }
std::string AgentLabelPrefix() { return std::string(1, kTagAgentLabel); }

bool DecodeLabelKey(std::string_view key, uint32_t* index) {
  if (key.size() != 5) return false;
  key.remove_prefix(1);
  return GetBigEndian32(&key, index);
}

void AgentDictKey(std::string_view workspace_id, std::string_view agent_id, std::string* out) {
  out->clear();
  out->push_back(kTagAgentDict);
  PutLengthPrefixed(out, workspace_id);
  PutLengthPrefixed(out, agent_id);
}
void AgentDictReverseKey(uint32_t index, std::string* out) {
  IndexKey(kTagAgentReverse, index, out);
}
std::string AgentDictReversePrefix() { return std::string(1, kTagAgentReverse); }
std::string AgentDictNextKey() { return std::string(1, kTagAgentNext); }

std::string EncodeAgentRef(std::string_view workspace_id, std::string_view agent_id) {
  std::string out;
  EncodeAgentRef(workspace_id, agent_id, &out);
  return out;
}

void EncodeAgentRef(std::string_view workspace_id, std::string_view agent_id, std::string* out) {
  out->clear();
  PutLengthPrefixed(out, workspace_id);
  PutLengthPrefixed(out, agent_id);
}

bool DecodeAgentRef(std::string_view in, std::string_view* workspace_id,
                    std::string_view* agent_id) {
  return GetLengthPrefixed(&in, workspace_id) && GetLengthPrefixed(&in, agent_id) && in.empty();
}

void PairDictKey(uint32_t agent_index, uint32_t user_index, std::string* out) {
  out->clear();
  out->push_back(kTagPairDict);
  PutBigEndian32(out, agent_index);
  PutBigEndian32(out, user_index);
}
std::string PairDictNextKey() { return std::string(1, kTagPairNext); }
std::string PairDictPrefix() { return std::string(1, kTagPairDict); }

bool DecodePairDictKey(std::string_view key, uint32_t* agent_index, uint32_t* user_index) {
  if (key.size() != 9 || key[0] != kTagPairDict) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(key.data() + 1);
  auto be32 = [](const unsigned char* b) {
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  };
  *agent_index = be32(p);
  *user_index = be32(p + 4);
  return true;
}

std::string UserDictReversePrefix() { return std::string(1, kTagDictReverse); }

bool DecodeDictReverseKey(std::string_view key, uint32_t* index) {
  if (key.size() != 5) return false;
  key.remove_prefix(1);
  // User reverse keys use PutOrderedInt32(index ^ 0x80000000), which is plain big-endian.
  return GetBigEndian32(&key, index);
}

// ---------------------------------------------------------------------------------------------

void PartitionWorkspaceKey(std::string_view topic, int32_t partition, std::string_view workspace_id,
                           std::string* out) {
  out->clear();
  out->push_back(kTagPartitionIndex);
  PutLengthPrefixed(out, topic);
  PutOrderedInt32(out, partition);
  PutLengthPrefixed(out, workspace_id);
}

std::string PartitionIndexPrefix(std::string_view topic) {
  std::string out(1, kTagPartitionIndex);
  PutLengthPrefixed(&out, topic);
  return out;
}

std::string PartitionIndexPrefix(std::string_view topic, int32_t partition) {
  std::string out = PartitionIndexPrefix(topic);
  PutOrderedInt32(&out, partition);
  return out;
}

bool DecodePartitionWorkspaceKey(std::string_view key, int32_t* partition,
                                 std::string_view* workspace_id) {
  if (key.empty() || key.front() != kTagPartitionIndex) return false;
  key.remove_prefix(1);
  std::string_view topic;
  return GetLengthPrefixed(&key, &topic) && GetOrderedInt32(&key, partition) &&
         GetLengthPrefixed(&key, workspace_id) && key.empty();
}

std::string PartitionLayoutKey() { return std::string(1, kTagPartitionLayout); }

std::string PrefixSuccessor(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
  return end;
}

namespace {

void AddPrefixRange(internal::Family family, char tag, int scope, std::string_view id,
                    std::vector<FamilyRange>* out) {
  std::string prefix(1, tag);
  if (scope >= 0) prefix.push_back(static_cast<char>(scope));
  PutLengthPrefixed(&prefix, id);
  std::string end = PrefixSuccessor(prefix);
  out->push_back({family, std::move(prefix), std::move(end)});
}

}  // namespace

std::vector<FamilyRange> WorkspaceRowRanges(std::string_view workspace_id) {
  std::vector<FamilyRange> out;
  for (int scope = 0; scope <= static_cast<int>(Scope::kProject); ++scope) {
    AddPrefixRange(internal::kCounters, kTagCounter, scope, workspace_id, &out);
    AddPrefixRange(internal::kBitmaps, kTagBitmap, scope, workspace_id, &out);
  }
  AddPrefixRange(internal::kUserPacks, kTagUserPack, -1, workspace_id, &out);
  AddPrefixRange(internal::kRecords, kTagProfile, -1, workspace_id, &out);
  AddPrefixRange(internal::kRecords, kTagEntity, -1, workspace_id, &out);
  AddPrefixRange(internal::kRecords, kTagWorkspace, -1, workspace_id, &out);
  AddPrefixRange(internal::kDedupe, kTagWorkspaceDedupe, -1, workspace_id, &out);
  return out;
}

std::vector<FamilyRange> RequestScopeRanges(std::string_view request_scope) {
  std::vector<FamilyRange> out;
  AddPrefixRange(internal::kRequests, kTagSlice, -1, request_scope, &out);
  AddPrefixRange(internal::kBitmaps, kTagSliceUsers, -1, request_scope, &out);
  AddPrefixRange(internal::kBitmaps, kTagSlicePairs, -1, request_scope, &out);
  AddPrefixRange(internal::kRecords, kTagUserLabel, -1, request_scope, &out);
  return out;
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
