#pragma once
// Dedupe entries: the keys and values of the "dedupe" column family. Pure functions,
// thread-safe.

#include <cstdint>
#include <string>
#include <string_view>

namespace tally::store {

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

}  // namespace tally::store
