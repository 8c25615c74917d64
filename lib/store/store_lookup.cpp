#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <shared_mutex>

#include "store/internal/merged_cursor.h"
#include "store/internal/store_rep.h"
#include "store/store.h"

namespace tally::store {

using internal::FromRocks;
using internal::ToSlice;
using internal::View;

Result<std::vector<Store::OffsetEntry>> Store::LoadOffsets() const {
  std::vector<OffsetEntry> out;
  bool malformed = false;
  Status s = ScanLatest(
      internal::kMeta, OffsetPrefix(), [&](std::string_view key, std::string_view value) {
        OffsetEntry e;
        malformed =
            !DecodeOffsetKey(key, &e.topic, &e.partition) || !DecodeOffset(value, &e.offset);
        if (!malformed) out.push_back(std::move(e));
        return !malformed;
      });
  if (!s) return std::unexpected(s.error());
  if (malformed) return Fail(ErrorCode::kDataLoss, "stored offset row is malformed");
  return out;
}

// ----------------------------------------------------------------------- writer-side reads

namespace {

// The uint32 at `key` of the dictionary family (staged or stored); nullopt if absent.
Result<std::optional<uint32_t>> GetDictIndex(const internal::StoreRep& rep, const std::string& key,
                                             std::string_view what) {
  std::shared_ptr<internal::Generation> g = rep.Current();
  std::string staged;
  bool found;
  {
    std::shared_lock lock(g->mu);
    found = g->open.Get(internal::kDict, key, &staged);
  }
  rocksdb::PinnableSlice value;
  if (!found) {
    rocksdb::ReadOptions ro;
    ro.snapshot = g->snapshot;
    rocksdb::Status s = rep.db->Get(ro, rep.family(internal::kDict), key, &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) {
      return Fail(ErrorCode::kUnavailable,
                  "reading the " + std::string(what) + ": " + s.ToString());
    }
  }
  uint32_t index;
  if (!DecodeUint32(found ? std::string_view(staged) : View(value), &index)) {
    return Fail(ErrorCode::kDataLoss, std::string(what) + " is malformed");
  }
  return index;
}

}  // namespace

Status Store::ScanLatest(int family, std::string_view prefix,
                         const std::function<bool(std::string_view, std::string_view)>& fn) const {
  const auto f = static_cast<internal::Family>(family);
  std::shared_ptr<internal::Generation> g = rep_->Current();
  rocksdb::ReadOptions ro;
  ro.snapshot = g->snapshot;
  std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(ro, rep_->family(f)));
  internal::MergedCursor cur(it.get(), f, prefix, {g.get()});
  for (cur.Seek(prefix); cur.Valid(); cur.Next()) {
    if (!fn(cur.key(), cur.value())) return Ok();
  }
  if (!it->status().ok()) return std::unexpected(FromRocks(it->status(), "reading the store"));
  return Ok();
}

Result<Store::DictionaryNext> Store::LoadDictionaryNext() const {
  DictionaryNext next;
  const std::pair<std::string, uint32_t*> counters[] = {{UserDictNextKey(), &next.user},
                                                        {AgentDictNextKey(), &next.agent},
                                                        {PairDictNextKey(), &next.pair}};
  for (const auto& [key, out] : counters) {
    auto v = GetDictIndex(*rep_, key, "dictionary counter");
    if (!v) return std::unexpected(v.error());
    if (*v) *out = **v;
  }
  return next;
}

Result<std::optional<uint32_t>> Store::LookupUserIndex(std::string_view user_id) const {
  std::string key;
  UserDictKey(user_id, &key);
  return GetDictIndex(*rep_, key, "user dictionary entry");
}

Result<std::optional<uint32_t>> Store::LookupAgentIndex(std::string_view workspace_id,
                                                        std::string_view agent_id) const {
  std::string key;
  AgentDictKey(workspace_id, agent_id, &key);
  return GetDictIndex(*rep_, key, "agent dictionary entry");
}

Result<std::optional<uint32_t>> Store::LookupPairIndex(uint32_t agent_index,
                                                       uint32_t user_index) const {
  std::string key;
  PairDictKey(agent_index, user_index, &key);
  return GetDictIndex(*rep_, key, "pair dictionary entry");
}

Status Store::FindDedupeKeys(std::span<const std::string_view> keys,
                             std::vector<uint8_t>* stored) const {
  stored->assign(keys.size(), 0);
  if (keys.empty()) return Ok();
  std::vector<rocksdb::Slice> slices(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) slices[i] = ToSlice(keys[i]);
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  // Stored and staged keys of one generation: they never overlap and never miss one another.
  std::shared_ptr<internal::Generation> g = rep_->Current();
  rocksdb::ReadOptions ro;
  ro.snapshot = g->snapshot;
  rep_->db->MultiGet(ro, rep_->family(internal::kDedupe), keys.size(), slices.data(), values.data(),
                     statuses.data(), /*sorted_input=*/true);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].ok()) {
      (*stored)[i] = 1;
    } else if (!statuses[i].IsNotFound()) {
      return Fail(ErrorCode::kUnavailable, "dedupe lookup failed: " + statuses[i].ToString());
    }
  }
  if (g->staged_rows.load() > 0) {
    std::shared_lock lock(g->mu);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!(*stored)[i] && g->open.Contains(internal::kDedupe, keys[i])) (*stored)[i] = 1;
    }
  }
  return Ok();
}

uint64_t Store::EstimateDedupeKeys() const {
  uint64_t estimate = 0;
  if (!rep_->db->GetIntProperty(rep_->family(internal::kDedupe), "rocksdb.estimate-num-keys",
                                &estimate)) {
    return 0;
  }
  return estimate;
}

Status Store::ScanDedupeKeys(const std::function<bool(std::string_view key)>& fn) const {
  return ScanLatest(internal::kDedupe, {},
                    [&](std::string_view key, std::string_view) { return fn(key); });
}

Status Store::ScanPairDictionary(const std::function<bool(uint32_t, uint32_t)>& fn) const {
  return ScanLatest(internal::kDict, PairDictPrefix(), [&](std::string_view key, std::string_view) {
    uint32_t agent, user;
    return !DecodePairDictKey(key, &agent, &user) || fn(agent, user);
  });
}

Status Store::ScanWorkspaceRecords(
    const std::function<void(std::string_view workspace_id, const Record& row)>& fn) const {
  Record record;
  return ScanLatest(internal::kRecords, WorkspacePrefix(),
                    [&](std::string_view key, std::string_view value) {
                      std::string_view ws;
                      if (DecodeWorkspaceKey(key, &ws)) {
                        DecodeRecord(value, &record);
                        fn(ws, record);
                      }
                      return true;
                    });
}
}  // namespace tally::store
