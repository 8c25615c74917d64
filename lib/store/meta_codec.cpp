#include "store/meta_codec.h"

#include "store/counters_codec.h"
#include "store/internal/codec_common.h"
#include "store/internal/family.h"
#include "store/varint.h"

namespace tally::store {

using internal::kTagBitmap;
using internal::kTagCounter;
using internal::kTagEntity;
using internal::kTagNewestEvent;
using internal::kTagOffset;
using internal::kTagPartitionIndex;
using internal::kTagPartitionLayout;
using internal::kTagProfile;
using internal::kTagRequestScopes;
using internal::kTagSchemaVersion;
using internal::kTagSlice;
using internal::kTagSlicePairs;
using internal::kTagSliceUsers;
using internal::kTagUserLabel;
using internal::kTagUserPack;
using internal::kTagWorkspace;
using internal::kTagWorkspaceDedupe;

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
