#pragma once
// Records: the per-field merged documents of the "records" column family (user profiles, entity
// inventory rows, workspace rows, request-analytics labels), their field ids with the merge rule
// of each (kFieldTable), and their keys. Pure functions, thread-safe.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "event/usage_event.h"

namespace tally::store {

// ---------------------------------------------------------------------------------------------
// Records (column family "records", merge operator "tally.fields"): small documents whose
// fields carry an event time and merge per field by the rule kFieldTable (below) gives the
// field's id:
//   kLatestWins    latest event time wins (ties: the operand applied later wins)
//   kEarliestWins  earliest event time wins (created_at; ties: the operand applied first wins)
// So the latest profile snapshot wins for name/email/photo however late events arrive.

struct Field {
  uint8_t id = 0;
  int64_t time_ms = 0;
  std::string value;
};

enum FieldPolicy : uint8_t { kLatestWins = 0, kEarliestWins = 1 };

// Field ids.
namespace field {
// User profile (per workspace).
inline constexpr uint8_t kUserName = 1;
inline constexpr uint8_t kUserEmail = 2;
inline constexpr uint8_t kUserPhoto = 3;
// Entity inventory row.
inline constexpr uint8_t kEntityName = 10;
inline constexpr uint8_t kEntityVisibility = 11;
inline constexpr uint8_t kEntityOwner = 12;
inline constexpr uint8_t kEntityProject = 13;
inline constexpr uint8_t kEntityDeleted = 14;  // time of the latest *.deleted
inline constexpr uint8_t kEntityRevived = 15;  // time of the latest *.created / *.copied
inline constexpr uint8_t kEntityCreated = 64;  // earliest created/copied; value = created_by
inline constexpr uint8_t kEntityCopied = 16;   // "1" if the entity came from *.copied
// Workspace row. The organization is the workspace's binding: written by the first accepted
// event naming one, and only ever again with the same value (aggregate::Aggregator refuses events
// naming another organization).
inline constexpr uint8_t kWorkspaceOrganization = 20;
inline constexpr uint8_t kWorkspaceFirstEvent = 65;  // earliest event time (value empty)
inline constexpr uint8_t kWorkspaceLastEvent = 21;   // latest event time (value empty)
// Request-analytics labels (UserLabelKey, AgentLabelKey).
inline constexpr uint8_t kLabel = 30;
}  // namespace field

// The merge rule of every field id: one row per id in `field`, the one place that decides how
// a field combines (record_codec_test checks that every id has exactly one row).
struct FieldSpec {
  uint8_t id;
  std::string_view name;
  FieldPolicy policy;
};
inline constexpr FieldSpec kFieldTable[] = {
    {field::kUserName, "user.name", kLatestWins},
    {field::kUserEmail, "user.email", kLatestWins},
    {field::kUserPhoto, "user.photo", kLatestWins},
    {field::kEntityName, "entity.name", kLatestWins},
    {field::kEntityVisibility, "entity.visibility", kLatestWins},
    {field::kEntityOwner, "entity.owner", kLatestWins},
    {field::kEntityProject, "entity.project", kLatestWins},
    {field::kEntityDeleted, "entity.deleted", kLatestWins},
    {field::kEntityRevived, "entity.revived", kLatestWins},
    {field::kEntityCopied, "entity.copied", kLatestWins},
    {field::kEntityCreated, "entity.created", kEarliestWins},
    {field::kWorkspaceOrganization, "workspace.organization", kLatestWins},
    {field::kWorkspaceLastEvent, "workspace.last_event", kLatestWins},
    {field::kWorkspaceFirstEvent, "workspace.first_event", kEarliestWins},
    {field::kLabel, "label", kLatestWins},
};

namespace internal {
// The rule of each of the 256 ids, from kFieldTable. An id without a row (a field written by a
// newer tally) keeps the rule its id range always had: earliest wins for 64..127, latest
// otherwise, so a store reads the same whichever version wrote it.
constexpr std::array<FieldPolicy, 256> PoliciesById() {
  std::array<FieldPolicy, 256> policies{};
  for (int id = 0; id < 256; ++id)
    policies[id] = id >= 64 && id < 128 ? kEarliestWins : kLatestWins;
  for (const FieldSpec& spec : kFieldTable) policies[spec.id] = spec.policy;
  return policies;
}
inline constexpr std::array<FieldPolicy, 256> kPolicyById = PoliciesById();
}  // namespace internal

// The merge rule of a field id (kFieldTable). Pure; one table load.
inline FieldPolicy PolicyOf(uint8_t field_id) { return internal::kPolicyById[field_id]; }

// A decoded record: fields sorted by id, at most one per id.
using Record = std::vector<Field>;

void AppendRecord(const Record& r, std::string* out);
// Decodes `in` into *r (cleared first). False on malformed input (*r holds what decoded).
bool DecodeRecord(std::string_view in, Record* r);
// Merges `update` into *base per field policy.
void MergeRecord(const Record& update, Record* base);
// Sets or merges one field into *r per policy (keeps r sorted).
void MergeField(Field f, Record* r);
// The same without building a Field: the value is copied only if it wins (into the existing
// field's storage when there is one).
void MergeField(uint8_t id, int64_t time_ms, std::string_view value, Record* r);
const Field* FindField(const Record& r, uint8_t id);

// Record keys.
void UserProfileKey(std::string_view workspace_id, std::string_view user_id, std::string* out);
void EntityKey(std::string_view workspace_id, event::EntityKind kind, std::string_view entity_id,
               std::string* out);
// Prefix of all entity rows of a workspace and kind.
void EntityPrefix(std::string_view workspace_id, event::EntityKind kind, std::string* out);
void WorkspaceKey(std::string_view workspace_id, std::string* out);
// Prefix of all workspace rows.
std::string WorkspacePrefix();
// The workspace id of a key made by WorkspaceKey (the view points into `key`). False if `key` is
// not a well-formed workspace key.
bool DecodeWorkspaceKey(std::string_view key, std::string_view* workspace_id);

// What a records key names, for change tracking (store/change_log.h): a user profile
// (UserProfileKey), an agent's inventory row (EntityKey of kind agent), or anything else. The
// views point into `key`. Pure; never fails (malformed keys are kOther).
struct RecordKeyRef {
  enum class Kind : uint8_t { kOther, kProfile, kAgent } kind = Kind::kOther;
  std::string_view workspace_id;
  std::string_view id;  // user id or agent id
};
RecordKeyRef ParseRecordKey(std::string_view key);

// Labels shown by request analytics (column family "records", merge "tally.fields"): the latest
// email of a user *within one organization* (from that organization's events only, so one
// tenant's events never relabel another tenant's users) and the latest name of an agent, keyed by
// dense index.
//   user label   'G' | organization | user index (4 bytes, big-endian)
//   agent label  'M' | agent index (4 bytes, big-endian)
void UserLabelKey(std::string_view organization, uint32_t user_index, std::string* out);
void AgentLabelKey(uint32_t agent_index, std::string* out);
std::string UserLabelPrefix();
std::string AgentLabelPrefix();
// The organization and user index of a key under UserLabelPrefix (the view points into `key`).
// False if malformed.
bool DecodeUserLabelKey(std::string_view key, std::string_view* organization, uint32_t* user_index);
// The index of a key under AgentLabelPrefix.
bool DecodeLabelKey(std::string_view key, uint32_t* index);

}  // namespace tally::store
