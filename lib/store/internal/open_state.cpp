#include "store/internal/open_state.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "common/saturating.h"

namespace tally::store::internal {
namespace {

// Rough heap bytes of a btree node entry besides its key and value (node overhead, pointers).
constexpr size_t kRowOverhead = 48;

}  // namespace

void CombineEncoded(Family family, std::string_view base, std::string_view delta,
                    std::string* out) {
  out->clear();
  switch (family) {
    case kCounters: {
      Counters c;
      AddEncodedCounters(base, &c);
      AddEncodedCounters(delta, &c);
      AppendCounters(c, out);
      return;
    }
    case kUserPacks: {
      const std::string_view parts[] = {base, delta};
      MergeUserPacks(parts, 2, out);
      return;
    }
    case kBitmaps: {
      UserBitmap b;
      b.OrEncoded(base);
      b.OrEncoded(delta);
      b.AppendEncoded(out);
      return;
    }
    case kRecords: {
      Record r, update;
      DecodeRecord(base, &r);
      DecodeRecord(delta, &update);
      store::MergeRecord(update, &r);
      AppendRecord(r, out);
      return;
    }
    case kRequests: {
      Slice s;
      AppendEncodedSlice(base, &s);
      AppendEncodedSlice(delta, &s);
      s.Normalize();
      AppendSlice(s, out);
      return;
    }
    case kMeta:
    case kDedupe:
    case kDict:
    case kFamilyCount:
      break;
  }
  out->assign(delta);
}

uint64_t OpenState::MalformedOperands() const { return malformed_.load(std::memory_order_relaxed); }

void OpenState::NoteMalformed() { malformed_.fetch_add(1, std::memory_order_relaxed); }

template <typename V>
std::string_view OpenState::Rows<V>::CopyKey(std::string_view key) {
  constexpr size_t kChunkBytes = 64 << 10;
  if (key.empty()) return {};
  if (key.size() > key_left_) {
    // A key longer than a chunk gets a chunk of its own size.
    const size_t size = std::max(kChunkBytes, key.size());
    key_chunks_.push_back(std::make_unique_for_overwrite<char[]>(size));
    key_next_ = key_chunks_.back().get();
    key_left_ = size;
  }
  std::memcpy(key_next_, key.data(), key.size());
  std::string_view copy(key_next_, key.size());
  key_next_ += key.size();
  key_left_ -= key.size();
  return copy;
}

template <typename V>
std::pair<V*, bool> OpenState::Rows<V>::FindOrAdd(std::string_view key) {
  auto it = index_.find(key);
  if (it != index_.end()) return {it->second, false};
  Node& node = nodes_.emplace_back(Node{CopyKey(key), V{}});
  index_.emplace(node.key, &node.value);
  order_.emplace(node.key, &node.value);
  return {&node.value, true};
}

template <typename V>
V& OpenState::Row(Rows<V>& rows, std::string_view key, size_t value_bytes) {
  auto [row, added] = rows.FindOrAdd(key);
  if (added) {
    ++rows_;
    bytes_ += key.size() + value_bytes + kRowOverhead;
  }
  return *row;
}

void OpenState::AddCounters(std::string_view key, std::string_view encoded) {
  Counters delta;
  if (!AddEncodedCounters(encoded, &delta)) return NoteMalformed();
  Row(counters_, key, sizeof(Counters)).Add(delta);
}

void OpenState::AddUserPack(std::string_view key, std::string_view encoded) {
  Pack& pack = Row(packs_, key, 0);
  const size_t before = pack.size();
  const bool ok = ForEachUserPackEntry(encoded, [&](uint32_t user, std::string_view counters) {
    Counters delta;
    if (AddEncodedCounters(counters, &delta)) pack[user].Add(delta);
  });
  if (!ok) NoteMalformed();
  bytes_ += (pack.size() - before) * (sizeof(Counters) + 16);
}

void OpenState::OrBitmap(std::string_view key, std::string_view encoded) {
  UserBitmap& b = Row(bitmaps_, key, 64);
  if (!b.OrEncoded(encoded)) return NoteMalformed();
  // An upper bound (the ids may be there already) that costs no walk over the bitmap: its
  // serialized form holds each new id in at most the bytes it takes in memory.
  bytes_ += encoded.size();
}

void OpenState::MergeRecord(std::string_view key, std::string_view encoded) {
  Record update;
  if (!DecodeRecord(encoded, &update)) NoteMalformed();
  Record& row = Row(records_, key, 0);
  for (const Field& f : update) {
    bytes_ += f.value.size() + sizeof(Field);  // an upper bound: the field may replace one
    MergeField(f, &row);
  }
}

void OpenState::AddSlice(std::string_view key, std::string_view encoded) {
  SliceView delta;
  if (!delta.Parse(encoded)) return NoteMalformed();
  SliceAcc& acc = Row(slices_, key, sizeof(SliceAcc));
  const SliceTotals& totals = delta.totals();
  SatAddTo(&acc.totals.requests, totals.requests);
  SatAddTo(&acc.totals.errors, totals.errors);
  SatAddTo(&acc.totals.tokens, totals.tokens);
  SatAddTo(&acc.totals.cost_nanos, totals.cost_nanos);
  const size_t before = acc.users.size() + acc.agents.size();
  for (size_t i = 0; i < delta.user_count(); ++i) {
    const SliceUser u = delta.user(i);
    auto [it, inserted] = acc.users.try_emplace(u.user, u);
    if (inserted) continue;
    SatAddTo(&it->second.requests, u.requests);
    SatAddTo(&it->second.tokens, u.tokens);
    SatAddTo(&it->second.cost_nanos, u.cost_nanos);
  }
  for (size_t i = 0; i < delta.agent_count(); ++i) {
    const SliceAgent a = delta.agent(i);
    auto [it, inserted] = acc.agents.try_emplace(a.agent, a);
    if (inserted) continue;
    SatAddTo(&it->second.requests, a.requests);
    SatAddTo(&it->second.tokens, a.tokens);
  }
  bytes_ += (acc.users.size() + acc.agents.size() - before) * sizeof(SliceUser);
}

void OpenState::Put(Family family, std::string_view key, std::string_view value) {
  std::string& v = Row(puts_[PutIndex(family)], key, value.size());
  v.assign(value);
}

void OpenState::SliceAcc::AppendTo(std::string* out) const {
  Slice s;
  s.totals = totals;
  s.users.reserve(users.size());
  for (const auto& [user, u] : users) s.users.push_back(u);
  s.agents.reserve(agents.size());
  for (const auto& [agent, a] : agents) s.agents.push_back(a);
  AppendSlice(s, out);  // entries are sorted and unique: normalized
}

void OpenState::Encode(const Pack& p, std::string* out) {
  std::string value;
  UserPackWriter w(&value);
  for (const auto& [user, c] : p) w.Add(user, c);
  out->append(value);
}

void OpenState::Encode(const UserBitmap& b, std::string* out) { b.AppendEncodedAsIs(out); }

template <typename V>
bool OpenState::GetFrom(const Rows<V>& rows, std::string_view key, std::string* out) {
  const V* row = rows.Find(key);
  if (row == nullptr) return false;
  Encode(*row, out);
  return true;
}

bool OpenState::Get(Family family, std::string_view key, std::string* out) const {
  out->clear();
  return Visit(family, [&](const auto& rows) { return GetFrom(rows, key, out); });
}

bool OpenState::Contains(Family family, std::string_view key) const {
  return Visit(family, [&](const auto& rows) { return rows.Find(key) != nullptr; });
}

template <typename V, typename Fn>
void OpenState::ForEachInRange(const Rows<V>& rows, std::string_view prefix, std::string_view start,
                               Fn&& fn) {
  const auto& order = rows.order();
  for (auto it = order.lower_bound(std::max(prefix, start));
       it != order.end() && it->first.starts_with(prefix); ++it) {
    if (!fn(it->first, *it->second)) return;
  }
}

template <typename V>
void OpenState::ScanFrom(const Rows<V>& rows, std::string_view prefix, std::string_view start,
                         const std::function<bool(std::string_view, std::string_view)>& fn) {
  std::string value;
  ForEachInRange(rows, prefix, start, [&](std::string_view key, const V& row) {
    value.clear();
    Encode(row, &value);
    return fn(key, value);
  });
}

void OpenState::Scan(Family family, std::string_view prefix, std::string_view start,
                     const std::function<bool(std::string_view, std::string_view)>& fn) const {
  Visit(family, [&](const auto& rows) {
    ScanFrom(rows, prefix, start, fn);
    return true;
  });
}

void OpenState::ScanKeys(Family family, std::string_view prefix, std::string_view start,
                         const std::function<bool(std::string_view)>& fn) const {
  Visit(family, [&](const auto& rows) {
    ForEachInRange(rows, prefix, start, [&](std::string_view key, const auto&) { return fn(key); });
    return true;
  });
}

bool OpenState::AddCountersTo(std::string_view key, Counters* c) const {
  const Counters* row = counters_.Find(key);
  if (row == nullptr) return false;
  c->Add(*row);
  return true;
}

bool OpenState::OrBitmapInto(std::string_view key, UserBitmap* b) const {
  const UserBitmap* row = bitmaps_.Find(key);
  if (row == nullptr) return false;
  b->Or(*row);
  return true;
}

bool OpenState::ForEachUserCounters(
    std::string_view key, const std::function<void(uint32_t, const Counters&)>& fn) const {
  const Pack* row = packs_.Find(key);
  if (row == nullptr) return false;
  for (const auto& [user, c] : *row) fn(user, c);
  return true;
}

void OpenState::ForEach(
    const std::function<void(Family, std::string_view, std::string_view)>& fn) const {
  std::string value;
  auto each = [&](Family f, const auto& rows) {
    for (const auto& [key, v] : rows.order()) {
      value.clear();
      Encode(*v, &value);
      fn(f, key, value);
    }
  };
  each(kCounters, counters_);
  each(kUserPacks, packs_);
  each(kBitmaps, bitmaps_);
  each(kRecords, records_);
  each(kRequests, slices_);
  each(kMeta, puts_[0]);
  each(kDedupe, puts_[1]);
  each(kDict, puts_[2]);
}

void OpenState::Clear() {
  counters_.clear();
  packs_.clear();
  bitmaps_.clear();
  records_.clear();
  slices_.clear();
  for (auto& p : puts_) p.clear();
  rows_ = 0;
  bytes_ = 0;
}

}  // namespace tally::store::internal
