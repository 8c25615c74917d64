#include <algorithm>
#include <tuple>

#include "aggregate/internal/aggregator_impl.h"

namespace tally::aggregate {
namespace {

using internal::G;
using internal::kGranularities;
using store::Counters;
using store::Scope;

// Sorts `rows` (encoded key, row) by key and adds each row's encoding with `add` (a WriteSet
// operation): in key order, the memtable's skip list finds each insert position next to the
// previous one.
template <typename Row, typename Encode>
void AddInKeyOrder(store::WriteSet* set,
                   void (store::WriteSet::*add)(std::string_view, std::string_view),
                   std::vector<std::pair<std::string_view, Row*>>* rows, std::string* value,
                   Encode&& encode) {
  std::sort(rows->begin(), rows->end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [key, row] : *rows) {
    value->clear();
    encode(row, value);
    (set->*add)(key, *value);
  }
}

}  // namespace

std::string* Aggregator::Impl::NextKey() {
  if (keys_used_ == key_pool_.size()) key_pool_.emplace_back();
  return &key_pool_[keys_used_++];
}

void Aggregator::Impl::EncodeRowKey(bool bitmap, const RowKey& k, Granularity g, std::string* out) {
  switch (k.scope) {
    case Scope::kWorkspace:
      scope_id_.clear();
      break;
    case Scope::kUser:
      store::ScopeIdUser(k.id, &scope_id_);
      break;
    case Scope::kEntity: {
      const EntityRef& ref = entities_[k.id].ref;
      store::ScopeIdEntity(ref.kind, ref.id, &scope_id_);
      break;
    }
    case Scope::kProject:
      store::ScopeIdProject(projects_.names[k.id], &scope_id_);
      break;
  }
  const std::string_view ws = workspaces_.names[k.ws];
  if (bitmap) {
    store::BitmapKey(k.scope, ws, g, k.bucket, scope_id_, out);
  } else {
    store::CounterKey(k.scope, ws, g, k.bucket, scope_id_, out);
  }
}

void Aggregator::Impl::WriteRows(store::WriteSet* set) {
  // Keys go into the set in sorted order per kind of row: the memtable skip list then finds each
  // insert position next to the previous one instead of searching from the top.
  std::string value;
  WriteCounters(set, &value);
  WriteBitmaps(set, &value);
  WriteSlices(set, &value);
  WriteRecords(set, &value);
  NoteUsage();
  QueueLabelUpdates();
}

void Aggregator::Impl::WriteCounters(store::WriteSet* set, std::string* value) {
  // Counters. User-scope rows become one pack operand per (workspace, bucket), holding the
  // bucket's users in index order (the pack's own order).
  std::vector<std::pair<std::string_view, const Counters*>> rows;
  struct UserRow {
    uint32_t ws;
    Granularity g;
    int32_t bucket;
    uint32_t user;
    const Counters* c;
  };
  std::vector<UserRow> user_rows;
  for (int g = 0; g < kGranularities; ++g) {
    for (const auto& [k, c] : counters_[g].rows) {
      if (k.scope == Scope::kUser) {
        user_rows.push_back({k.ws, static_cast<Granularity>(g), k.bucket, k.id, &c});
        continue;
      }
      std::string* key = NextKey();
      EncodeRowKey(false, k, static_cast<Granularity>(g), key);
      rows.emplace_back(*key, &c);
    }
  }
  AddInKeyOrder(set, &store::WriteSet::AddCounters, &rows, value,
                [](const Counters* c, std::string* out) { store::AppendCounters(*c, out); });
  std::sort(user_rows.begin(), user_rows.end(), [](const UserRow& a, const UserRow& b) {
    return std::tie(a.ws, a.g, a.bucket, a.user) < std::tie(b.ws, b.g, b.bucket, b.user);
  });
  std::string pack;
  for (size_t i = 0; i < user_rows.size();) {
    const UserRow& first = user_rows[i];
    store::UserPackWriter writer(&pack);
    size_t j = i;
    for (; j < user_rows.size() && user_rows[j].ws == first.ws && user_rows[j].g == first.g &&
           user_rows[j].bucket == first.bucket;
         ++j) {
      writer.Add(user_rows[j].user, *user_rows[j].c);
    }
    store::UserPackKey(workspaces_.names[first.ws], first.g, first.bucket, &key_);
    set->AddUserPack(key_, pack);
    i = j;
  }
}

void Aggregator::Impl::WriteBitmaps(store::WriteSet* set, std::string* value) {
  std::vector<std::pair<std::string_view, store::UserBitmap*>> rows;
  for (int g = 0; g < kGranularities; ++g) {
    for (auto& [k, b] : bitmaps_[g]) {
      std::string* key = NextKey();
      EncodeRowKey(true, k, static_cast<Granularity>(g), key);
      rows.emplace_back(*key, &b);
    }
  }
  AddInKeyOrder(set, &store::WriteSet::OrBitmap, &rows, value,
                [](store::UserBitmap* b, std::string* out) { b->AppendEncoded(out); });
}

void Aggregator::Impl::WriteSlices(store::WriteSet* set, std::string* value) {
  // Slices, their users bitmaps and (all agents) pairs bitmaps, in key order per family.
  std::vector<std::pair<std::string_view, SliceAcc*>> keyed;
  keyed.reserve(slices_.size());
  for (auto& [k, acc] : slices_) {
    std::string_view project = k.project ? projects_.names[k.project - 1] : std::string_view();
    std::string* key = NextKey();
    store::RequestsSliceKey(orgs_.names[k.org], k.agent, k.project ? &project : nullptr,
                            k.granularity, k.bucket, key);
    keyed.emplace_back(*key, &acc);
  }
  AddInKeyOrder(set, &store::WriteSet::AddSlice, &keyed, value,
                [](SliceAcc* acc, std::string* out) {
                  acc->slice.Normalize();
                  store::AppendSlice(acc->slice, out);
                });
  // The bitmap keys differ from the slice keys only in their tag, so the same order holds.
  for (auto& [k, acc] : keyed) {
    store::UserBitmap users;
    for (const store::SliceUser& u : acc->slice.users) users.Add(u.user);
    value->clear();
    users.AppendEncoded(value);
    if (!store::RequestsUsersKeyOf(k, &key_)) continue;
    set->OrBitmap(key_, *value);
  }
  for (auto& [k, acc] : keyed) {
    if (acc->pairs.empty()) continue;
    std::sort(acc->pairs.begin(), acc->pairs.end());
    store::UserBitmap pairs;
    uint32_t last = UINT32_MAX;
    for (uint32_t p : acc->pairs) {
      if (p != last) pairs.Add(p);
      last = p;
    }
    value->clear();
    pairs.AppendEncoded(value);
    if (!store::RequestsPairsKeyOf(k, &key_)) continue;
    set->OrBitmap(key_, *value);
  }
}

void Aggregator::Impl::WriteRecords(store::WriteSet* set, std::string* value) {
  // Records. Every record key of the batch goes to the store's change log: each event touches
  // its agent's row here (even with no field to set) whenever it touches that agent's counters
  // or bitmaps.
  struct Row {
    std::string_view key;
    RecordAcc* acc;
    uint32_t entity;  // batch entity id of an entity row, else UINT32_MAX
  };
  std::vector<Row> rows;
  rows.reserve(records_.rows.size());
  for (auto& [ref, r] : records_.rows) {
    std::string* key = NextKey();
    const event::UsageEvent& e = *r.origin;
    switch (ref.kind) {
      case RecordKind::kProfile:
        store::UserProfileKey(e.workspace_id, e.user_id, key);
        break;
      case RecordKind::kEntity:
        store::EntityKey(e.workspace_id, e.kind, e.entity_id, key);
        break;
      case RecordKind::kWorkspace:
        store::WorkspaceKey(e.workspace_id, key);
        break;
      case RecordKind::kUserLabel:
        store::UserLabelKey(orgs_.names[ref.b], ref.a, key);
        break;
      case RecordKind::kAgentLabel:
        store::AgentLabelKey(ref.a, key);
        break;
    }
    rows.push_back({*key, &r, ref.kind == RecordKind::kEntity ? ref.a : UINT32_MAX});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.key < b.key; });
  note_.record_keys.clear();
  note_.record_keys.reserve(rows.size());
  note_fields_.clear();
  std::vector<uint32_t> fields_begin;  // per row, into note_fields_
  fields_begin.reserve(rows.size() + 1);
  entity_record_.assign(entities_.size(), UINT32_MAX);
  for (const Row& row : rows) {
    RecordAcc* r = row.acc;
    if (row.entity != UINT32_MAX) {
      entity_record_[row.entity] = static_cast<uint32_t>(note_.record_keys.size());
    }
    note_.record_keys.push_back(row.key);
    fields_begin.push_back(static_cast<uint32_t>(note_fields_.size()));
    if (r->size == 0) continue;
    std::sort(r->fields.begin(), r->fields.begin() + r->size,
              [](const auto& a, const auto& b) { return a.id < b.id; });
    record_scratch_.resize(r->size);
    for (uint8_t k = 0; k < r->size; ++k) {
      record_scratch_[k].id = r->fields[k].id;
      record_scratch_[k].time_ms = r->fields[k].time_ms;
      record_scratch_[k].value.assign(r->fields[k].value);
      note_fields_.push_back({r->fields[k].id, r->fields[k].value});
    }
    value->clear();
    store::AppendRecord(record_scratch_, value);
    set->MergeRecord(row.key, *value);
  }
  fields_begin.push_back(static_cast<uint32_t>(note_fields_.size()));
  note_.fields.clear();
  note_.fields.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    note_.fields.push_back(std::span<const store::NoteField>(note_fields_)
                               .subspan(fields_begin[i], fields_begin[i + 1] - fields_begin[i]));
  }
}

void Aggregator::Impl::NoteUsage() {
  // Every entity's usage rows: its day rows (the week and month rows are rolled up from them).
  note_.usage.clear();
  const auto& day_bitmaps = bitmaps_[G(Granularity::kDay)];
  for (const auto& [k, c] : counters_[G(Granularity::kDay)].rows) {
    if (k.scope != Scope::kEntity) continue;
    const auto b = day_bitmaps.find(k);
    note_.usage.push_back(
        {entity_record_[k.id], k.bucket, &c, b == day_bitmaps.end() ? nullptr : &b->second});
  }
}

void Aggregator::Impl::QueueLabelUpdates() {
  // The directory takes the batch's winning label per user / agent: its latest-wins rule
  // (ties to the later) gives the same result as applying every event's label in order.
  for (auto& [ref, r] : records_.rows) {
    if (ref.kind != RecordKind::kUserLabel && ref.kind != RecordKind::kAgentLabel) continue;
    if (r.size == 0) continue;
    const RecordAcc::FieldAcc& f = r.fields[0];  // labels hold one field, kLabel
    const bool user = ref.kind == RecordKind::kUserLabel;
    directory_updates_.push_back({user ? store::Directory::Update::Kind::kUserEmail
                                       : store::Directory::Update::Kind::kAgentName,
                                  ref.a, f.time_ms, std::string(f.value),
                                  user ? std::string(orgs_.names[ref.b]) : std::string()});
  }
}

}  // namespace tally::aggregate
