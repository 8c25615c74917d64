#pragma once
// Every RocksDB key and value encoding of tally lives in this file (and codec.cpp).
//
//   std::string key;
//   tally::store::CounterKey(tally::store::Scope::kUser, "ws1", tally::Granularity::kDay, day,
//                            "user42", &key);
//   tally::store::Counters c;
//   c.i[tally::store::Counters::CountField(kind, action)] += 1;
//   std::string value = tally::store::EncodeCounters(c);
//
// Keys are binary: a one-byte tag, then components. Strings are length-prefixed (varint
// length + bytes), so no user string can ever be confused with a key separator; integers are
// fixed-width big-endian with the sign bit flipped, so keys sort in numeric order and prefix
// scans over (scope, granularity, bucket) work.
//
// Decoders never fail on stored data: malformed input decodes to an empty value and the
// function reports false, so that merge operators can always produce a result.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/calendar.h"
#include "common/saturating.h"
#include "event/usage_event.h"

namespace tally::store {

// ---------------------------------------------------------------------------------------------
// Primitive encoders.

void PutVarint64(std::string* out, uint64_t v);
// Reads a varint from the front of *in and advances it; false on truncation.
bool GetVarint64(std::string_view* in, uint64_t* v);
void PutLengthPrefixed(std::string* out, std::string_view s);
bool GetLengthPrefixed(std::string_view* in, std::string_view* s);
void PutOrderedInt32(std::string* out, int32_t v);  // big-endian, sign flipped
bool GetOrderedInt32(std::string_view* in, int32_t* v);
void PutFixed64(std::string* out, uint64_t v);  // little-endian
bool GetFixed64(std::string_view* in, uint64_t* v);

// ---------------------------------------------------------------------------------------------
// Counters (column family "counters", merge operator "tally.counters": field-wise addition).

// The dimension a counter or bitmap row belongs to.
enum class Scope : uint8_t {
  kWorkspace = 0,  // no extra id
  kUser = 1,       // extra id: the user's dense dictionary index (4 bytes); stored as packs
  kEntity = 2,     // extra id: entity kind byte + entity id
  kProject = 3,    // extra id: project id
};

struct Counters {
  static constexpr int kInts = 16;
  static constexpr int kDoubles = 4;
  // Integer fields 0..11: number of events per (entity kind, action).
  static constexpr int CountField(event::EntityKind kind, event::Action action) {
    return static_cast<int>(kind) * event::kActionCount + static_cast<int>(action);
  }
  static constexpr int kWorkflowDurationCount = 12;  // workflow.executed carrying duration_ms
  static constexpr int kAgentTokens = 13;
  static constexpr int kAgentErrors = 14;  // agent.executed with status "error"
  // Double fields.
  static constexpr int kWorkflowDurationSum = 0;  // sum of duration_ms, workflow.executed
  static constexpr int kAgentCost = 1;            // sum of cost_usd, agent.executed
  static constexpr int kAgentMessageCredits = 2;
  static constexpr int kAgentIntegrationCredits = 3;

  std::array<int64_t, kInts> i{};
  std::array<double, kDoubles> d{};

  // Field-wise saturating addition (common/saturating.h): a field never wraps around or
  // becomes infinite; each clamped field counts in tally::SaturatedSums().
  void Add(const Counters& o) {
    for (int k = 0; k < kInts; ++k) SatAddTo(&i[k], o.i[k]);
    for (int k = 0; k < kDoubles; ++k) SatAddTo(&d[k], o.d[k]);
  }
  bool IsZero() const;
};

// Appends the sparse encoding of `c` (field masks, zigzag varints, raw doubles).
void AppendCounters(const Counters& c, std::string* out);
std::string EncodeCounters(const Counters& c);
// Adds the counters encoded in `in` to *c (saturating, as Counters::Add). False (and *c
// unchanged) if `in` is malformed.
bool AddEncodedCounters(std::string_view in, Counters* c);

// Counter and bitmap keys share one layout:
//   tag | scope | ws | granularity | bucket | extra ids of the scope
// `extra` is the pre-encoded scope id (see ScopeId*), empty for kWorkspace.
void CounterKey(Scope scope, std::string_view workspace_id, Granularity g, int32_t bucket,
                std::string_view extra, std::string* out);
void BitmapKey(Scope scope, std::string_view workspace_id, Granularity g, int32_t bucket,
               std::string_view extra, std::string* out);

// Prefix of every counter key of (scope, ws, g, bucket): scan it to list all ids of a scope.
void CounterBucketPrefix(Scope scope, std::string_view workspace_id, Granularity g, int32_t bucket,
                         std::string* out);

// The day rows of the bucketed views (counters, scoped bitmaps, user packs, and the request
// slices with their users and pairs bitmaps) each add up into one week row and one month row: the
// same key with the (granularity, bucket) of the week and the month that hold the day. For the
// key of such a row at Granularity::kDay, writes those two keys to *week and *month and returns
// true; returns false for any other key (another granularity, a row without buckets, malformed).
bool RollUpKeys(std::string_view day_key, std::string* week, std::string* month);

// Pre-encoded scope ids (the `extra` argument above).
// Users are keyed by their dictionary index: 4 bytes instead of an arbitrary string keeps keys
// short (cheaper memtable inserts and scans) and makes per-user aggregation integer-keyed.
void ScopeIdUser(uint32_t user_index, std::string* out);
void ScopeIdEntity(event::EntityKind kind, std::string_view entity_id, std::string* out);
void ScopeIdProject(std::string_view project_id, std::string* out);
// Decodes the scope id at the end of a key found under CounterBucketPrefix: `rest` is the key
// with the prefix removed.
bool DecodeScopeIdUser(std::string_view rest, uint32_t* user_index);
bool DecodeScopeIdEntity(std::string_view rest, event::EntityKind* kind,
                         std::string_view* entity_id);

// ---------------------------------------------------------------------------------------------
// User packs (column family "userpacks", merge operator "tally.user_counters"): the Counters of
// every user of one (workspace, granularity, bucket) in ONE value, so that listing a workspace's
// users over a range reads a dozen values instead of one row per (user, bucket).
//   key    'K' | ws | granularity | bucket
//   value  entries in strictly increasing user index order, each
//          varint (user index - previous entry's index; the first: the index itself)
//          varint n | n bytes of AppendCounters
// Merging packs adds the Counters of equal user indexes (MergeUserPacks).

void UserPackKey(std::string_view workspace_id, Granularity g, int32_t bucket, std::string* out);

// Builds one pack value. Entries must be added in strictly increasing user order.
class UserPackWriter {
 public:
  // Starts a new value in *out (cleared); `out` must outlive the writer's use.
  explicit UserPackWriter(std::string* out) : out_(out) { out_->clear(); }
  void Add(uint32_t user, const Counters& c);
  // Adds an entry whose counters are already encoded (AppendCounters bytes).
  void AddEncoded(uint32_t user, std::string_view counters);

 private:
  std::string* out_;
  std::string scratch_;  // Add's encoding of one entry's counters
  uint32_t last_ = 0;
  bool first_ = true;
};

// Calls fn(user, encoded_counters) for each entry of `pack`, in user order (decode the counters
// with AddEncodedCounters). False if `pack` is malformed; the entries before the fault were
// delivered.
template <typename Fn>
bool ForEachUserPackEntry(std::string_view pack, Fn&& fn);

// The encoded counters of `user` in `pack`, scanning in user order up to it; false if absent
// (or `pack` is malformed before it).
bool FindUserPackEntry(std::string_view pack, uint32_t user, std::string_view* counters);

// Merges packs into *out (cleared first): one entry per user index present in any input, with
// the Counters of that index added up (saturating). A malformed input contributes the entries
// before its fault. Returns the number of malformed inputs (0 normally). Never fails.
int MergeUserPacks(const std::string_view* packs, size_t n, std::string* out);

// Reads one pack entry from the front of *in: false if malformed. `user` carries the previous
// index in and the entry's index out (start with `first` = true).
bool NextUserPackEntry(std::string_view* in, bool first, uint32_t* user,
                       std::string_view* counters);

template <typename Fn>
bool ForEachUserPackEntry(std::string_view pack, Fn&& fn) {
  uint32_t user = 0;
  std::string_view counters;
  for (bool first = true; !pack.empty(); first = false) {
    if (!NextUserPackEntry(&pack, first, &user, &counters)) return false;
    fn(user, counters);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Bitmaps (column family "bitmaps", merge operator "tally.bitmap_or"): portable-serialized
// Roaring bitmaps of dictionary-encoded user ids, merged with OR.

// ---------------------------------------------------------------------------------------------
// Records (column family "records", merge operator "tally.fields"): small documents whose
// fields carry an event time and merge per field by a policy fixed by the field id:
//   ids   0..63 and 128..255: latest event time wins (ties: the operand applied later wins)
//   ids  64..127: earliest event time wins (created_at; ties: the operand applied first wins)
// So the latest profile snapshot wins for name/email/photo however late events arrive.

struct Field {
  uint8_t id = 0;
  int64_t time_ms = 0;
  std::string value;
};

enum FieldPolicy : uint8_t { kLatestWins = 0, kEarliestWins = 1 };
inline FieldPolicy PolicyOf(uint8_t field_id) {
  return field_id >= 64 && field_id < 128 ? kEarliestWins : kLatestWins;
}

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
}  // namespace field

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

// ---------------------------------------------------------------------------------------------
// Dedupe (column family "dedupe"): key (source, id) -> event time (fixed64) and the wall-clock
// time the entry was written (fixed64; absent in entries of older versions: 0).

void DedupeKey(std::string_view source, std::string_view id, std::string* out);
// The dedupe key of a store that keeps state per partition (Store::partitioned()): (workspace,
// source, id), so that a workspace's entries go with its other rows (WorkspaceRowPrefixes). An
// event is a duplicate of an earlier one of the same workspace only, which is all a group of
// instances can tell anyway: each instance sees its own partitions' events.
void WorkspaceDedupeKey(std::string_view workspace_id, std::string_view source, std::string_view id,
                        std::string* out);
std::string EncodeDedupeValue(int64_t time_ms, int64_t inserted_ms);
void AppendDedupeValue(int64_t time_ms, int64_t inserted_ms, std::string* out);
bool DecodeDedupeValue(std::string_view in, int64_t* time_ms, int64_t* inserted_ms);

// The newest event time applied so far (default column family, fixed64): the reference point of
// the dedupe window and of the late-event policy, kept across restarts.
std::string NewestEventTimeKey();

// The layout version of a store's data (default column family, EncodeUint32). Stores without it
// were written before versions were recorded: version 1, whose per-user counters were one row
// per (user, bucket) instead of user packs. Version 2 kept one request-analytics user label per
// user for every organization. A store is only read at the current version.
inline constexpr uint32_t kSchemaVersion = 3;
std::string SchemaVersionKey();
// How request-analytics data is keyed (default family): absent in stores keyed by organization
// that predate the record; value "organization" or "workspace" (Store::BindRequestScopes).
std::string RequestScopesKey();

// The request-analytics scope of (organization, workspace) in a store that keys request data per
// workspace (a group of instances, where a workspace's partition, and so its data, can move
// between instances on its own): what such a store uses wherever a store keyed by organization
// uses the organization id (slice, users and pairs keys, user label keys, the directory's
// labels). Length-prefixed, so no pair of ids collides with another.
std::string WorkspaceRequestScope(std::string_view organization, std::string_view workspace);

// ---------------------------------------------------------------------------------------------
// Dictionary (column family "dict"): user id -> dense uint32, and the next free id.

void UserDictKey(std::string_view user_id, std::string* out);
void UserDictReverseKey(uint32_t index, std::string* out);
std::string UserDictNextKey();
std::string EncodeUint32(uint32_t v);
bool DecodeUint32(std::string_view in, uint32_t* v);

// ---------------------------------------------------------------------------------------------
// Request analytics (column family "requests", merge operator "tally.slices"; user and pair
// bitmaps in "bitmaps"). Only agent.executed events with an organization_id feed these views.
//
// A *slice* is the stats of the requests of one organization, narrowed to one agent or not and to
// one project or not, in one (granularity, bucket):
//   key   'S' | org | agent selector | project selector | granularity | bucket
//   value totals + per-user stats (sorted by user index) + per-agent stats (sorted by agent index)
// The selectors: 0x00 = all, or 0x01 then the agent's dense index (4 bytes, big-endian) / the
// project id (length-prefixed). Granularity and bucket come last, so the day slices of one
// selection are contiguous (per-day series are one scan) and a key is rebucketed by replacing its
// last 5 bytes.
// The matching bitmaps have the same layout with tags 'X' (users of the slice) and 'Y' (agent x
// user pairs, dictionary-encoded, for slices of all agents only).

// Every field is a non-negative sum; additions saturate at INT64_MAX (common/saturating.h), for
// the uint64_t fields too, so that every field also reads correctly as an int64_t.
struct SliceTotals {
  uint64_t requests = 0;
  uint64_t errors = 0;  // status == "error"
  uint64_t tokens = 0;
  // cost_usd in nano-dollars: integer sums are exact and independent of batching, so a rebuild
  // answers exactly like live ingest did.
  int64_t cost_nanos = 0;
};
struct SliceUser {
  uint32_t user = 0;  // dense user index
  uint64_t requests = 0;
  uint64_t tokens = 0;
  int64_t cost_nanos = 0;
};
struct SliceAgent {
  uint32_t agent = 0;  // dense agent index
  uint64_t requests = 0;
  uint64_t tokens = 0;
};

// A decoded (or in-construction) slice. Normalize() sorts and combines entries by index; the
// encoders require normalized slices.
struct Slice {
  SliceTotals totals;
  std::vector<SliceUser> users;
  std::vector<SliceAgent> agents;

  void Clear();
  // Adds all of `o` (entries appended; call Normalize before encoding). Totals saturate.
  void Append(const Slice& o);
  // Sorts entries and combines those of equal index (saturating sums).
  void Normalize();
};

// Nano-dollars of a cost_usd value (rounded to the nearest). Accepted events carry at most
// event::kMaxCostUsd (10^15 nanos); larger, infinite or NaN inputs give INT64_MAX (counted as a
// saturation), negative ones 0.
int64_t CostNanos(double usd);

// Encoding: version byte 1, totals (3 x u64, i64), varint n + n x 28-byte users, varint m + m x
// 20-byte agents, all little-endian.
void AppendSlice(const Slice& s, std::string* out);
// Appends the decoded entries of `in` to *s (Normalize afterwards; totals added saturating).
// False (s unchanged) if malformed.
bool AppendEncodedSlice(std::string_view in, Slice* s);

// A zero-copy reader of an encoded slice; valid while the bytes it was parsed from live.
class SliceView {
 public:
  // False if `in` is malformed (the view is then empty).
  bool Parse(std::string_view in);
  const SliceTotals& totals() const { return totals_; }
  size_t user_count() const { return user_count_; }
  size_t agent_count() const { return agent_count_; }
  SliceUser user(size_t i) const;
  SliceAgent agent(size_t i) const;

 private:
  SliceTotals totals_;
  const char* users_ = nullptr;
  const char* agents_ = nullptr;
  size_t user_count_ = 0, agent_count_ = 0;
};

inline constexpr uint32_t kAllAgents = UINT32_MAX;  // agent selector "all"

// Key of a slice (tag 'S'), users bitmap ('X') or pairs bitmap ('Y'). `agent` kAllAgents selects
// all agents; `project` null selects all projects.
void RequestsSliceKey(std::string_view org, uint32_t agent, const std::string_view* project,
                      Granularity g, int32_t bucket, std::string* out);
void RequestsUsersKey(std::string_view org, uint32_t agent, const std::string_view* project,
                      Granularity g, int32_t bucket, std::string* out);
void RequestsPairsKey(std::string_view org, const std::string_view* project, Granularity g,
                      int32_t bucket, std::string* out);
// The users bitmap key of a slice key, and the pairs bitmap key of an all-agents slice key (false
// for a malformed key or, for pairs, a per-agent slice key). Same order as the slice keys.
bool RequestsUsersKeyOf(std::string_view slice_key, std::string* out);
bool RequestsPairsKeyOf(std::string_view slice_key, std::string* out);
// The same key at another (granularity, bucket). False if `key` is too short.
bool RequestsRebucket(std::string_view key, Granularity g, int32_t bucket, std::string* out);
// The (granularity, bucket) of a requests key. False if malformed.
bool RequestsKeyBucket(std::string_view key, Granularity* g, int32_t* bucket);
// Prefix of every slice key of (org, agent selector) for a specific project: followed by the
// length-prefixed project id. Used to enumerate the projects of an organization.
void RequestsProjectsPrefix(std::string_view org, uint32_t agent, std::string* out);
// Prefix of every slice key of an organization (does it have any request data?).
void RequestsOrgPrefix(std::string_view org, std::string* out);
// For a slice key under RequestsProjectsPrefix: `rest` is the key with that prefix removed.
bool DecodeRequestsProject(std::string_view rest, std::string_view* project, Granularity* g,
                           int32_t* bucket);

// Labels shown by request analytics (column family "records", merge "tally.fields"): the latest
// email of a user *within one organization* (from that organization's events only, so one
// tenant's events never relabel another tenant's users) and the latest name of an agent, keyed by
// dense index.
//   user label   'G' | organization | user index (4 bytes, big-endian)
//   agent label  'M' | agent index (4 bytes, big-endian)
namespace field {
inline constexpr uint8_t kLabel = 30;  // latest wins
}  // namespace field
void UserLabelKey(std::string_view organization, uint32_t user_index, std::string* out);
void AgentLabelKey(uint32_t agent_index, std::string* out);
std::string UserLabelPrefix();
std::string AgentLabelPrefix();
// The organization and user index of a key under UserLabelPrefix (the view points into `key`).
// False if malformed.
bool DecodeUserLabelKey(std::string_view key, std::string_view* organization, uint32_t* user_index);
// The index of a key under AgentLabelPrefix.
bool DecodeLabelKey(std::string_view key, uint32_t* index);

// Agent dictionary (column family "dict"): (workspace, agent id) <-> dense uint32.
void AgentDictKey(std::string_view workspace_id, std::string_view agent_id, std::string* out);
void AgentDictReverseKey(uint32_t index, std::string* out);
std::string AgentDictReversePrefix();
std::string AgentDictNextKey();
std::string EncodeAgentRef(std::string_view workspace_id, std::string_view agent_id);
void EncodeAgentRef(std::string_view workspace_id, std::string_view agent_id, std::string* out);
bool DecodeAgentRef(std::string_view in, std::string_view* workspace_id,
                    std::string_view* agent_id);
// Pair dictionary: (agent index, user index) <-> dense uint32.
void PairDictKey(uint32_t agent_index, uint32_t user_index, std::string* out);
// Prefix of every PairDictKey, and the decoding of one (false if malformed).
std::string PairDictPrefix();
bool DecodePairDictKey(std::string_view key, uint32_t* agent_index, uint32_t* user_index);
std::string PairDictNextKey();
// User dictionary reverse rows, for loading every user: prefix and index decoding.
std::string UserDictReversePrefix();
// The index of a key under UserDictReversePrefix / AgentDictReversePrefix.
bool DecodeDictReverseKey(std::string_view key, uint32_t* index);

// ---------------------------------------------------------------------------------------------
// State per partition (default column family), in a store that keeps it (Store::partitioned()).

// The partition index: (topic, partition, workspace) -> "" for every workspace whose events a
// partition of the topic brought; written with the first batch that applies one.
void PartitionWorkspaceKey(std::string_view topic, int32_t partition, std::string_view workspace_id,
                           std::string* out);
// Prefix of the index entries of `topic` (every partition), or of one partition.
std::string PartitionIndexPrefix(std::string_view topic);
std::string PartitionIndexPrefix(std::string_view topic, int32_t partition);
// The partition and workspace of a key made by PartitionWorkspaceKey (the view points into
// `key`). False if `key` is not a well-formed index key.
bool DecodePartitionWorkspaceKey(std::string_view key, int32_t* partition,
                                 std::string_view* workspace_id);
// The store's partition layout: absent (every partition's state is mixed in one store),
// kPartitionedValue (dedupe keys per workspace and a complete partition index), or
// kUnpartitionedDataValue (partitioned, but events of unknown partition were applied since:
// partitions can no longer be told apart).
std::string PartitionLayoutKey();
inline constexpr std::string_view kPartitionedValue = "partitioned";
inline constexpr std::string_view kUnpartitionedDataValue = "partitioned+unindexed";

// Key ranges [begin, end) of a column family (an internal::Family index).
struct FamilyRange {
  int family = 0;
  std::string begin;
  std::string end;
};
// The smallest key after every key that begins with `prefix` ("" if there is none).
std::string PrefixSuccessor(std::string_view prefix);
// Every key range holding rows of one workspace: counters, bitmaps, user packs, records
// (profiles, inventory, the workspace row) and WorkspaceDedupeKey entries. Dictionaries and the
// labels kept by dense index (users, agents) are shared by all workspaces and are not in it.
std::vector<FamilyRange> WorkspaceRowRanges(std::string_view workspace_id);
// Every key range holding the request-analytics rows of one request scope
// (WorkspaceRequestScope, or an organization id): slices, their users and pairs bitmaps, and
// the scope's user labels.
std::vector<FamilyRange> RequestScopeRanges(std::string_view request_scope);

// ---------------------------------------------------------------------------------------------
// Offsets (default column family): (topic, partition) -> (cluster id, next offset).

struct StoredOffset {
  std::string cluster_id;
  int64_t next_offset = 0;
};
void OffsetKey(std::string_view topic, int32_t partition, std::string* out);
std::string OffsetPrefix();
bool DecodeOffsetKey(std::string_view key, std::string* topic, int32_t* partition);
std::string EncodeOffset(const StoredOffset& o);
bool DecodeOffset(std::string_view in, StoredOffset* o);

}  // namespace tally::store
