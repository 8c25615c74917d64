#pragma once
// The "default" column family: consumed offsets, the newest event time, the data layout version,
// the request-scope and partition layouts, the partition index; and the key ranges that hold one
// workspace's or one request scope's rows in every family (for dropping a partition). Pure
// functions, thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tally::store {

// ---------------------------------------------------------------------------------------------
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
