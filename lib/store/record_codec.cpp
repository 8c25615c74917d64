#include "store/record_codec.h"

#include <algorithm>

#include "store/internal/codec_common.h"
#include "store/varint.h"

namespace tally::store {

using internal::GetBigEndian32;
using internal::IndexKey;
using internal::kTagAgentLabel;
using internal::kTagEntity;
using internal::kTagProfile;
using internal::kTagUserLabel;
using internal::kTagWorkspace;
using internal::PutBigEndian32;
using internal::UnZigZag;
using internal::ZigZag;

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

}  // namespace tally::store
