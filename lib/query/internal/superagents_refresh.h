#pragma once
// Bringing a cached Super Agents table forward (query/superagents.h): from the cached state of
// one workspace to a newer store snapshot, by replaying what the store's change log
// (store/change_log.h) says the writes since did, instead of rebuilding it.
//
//   if (!Refresh(cache, key, rd, ws)) { /* rebuild from rd's snapshot */ }
//
// Internal to tally_query. Thread-safe; callers serialise refreshes of one entry with the
// entry's refresh mutex (Cache::RefreshMutex) so that none is repeated.

#include <string>

#include "query/internal/superagents_cache.h"
#include "query/internal/superagents_table.h"

namespace tally::query::internal {

// Brings the cached state of `key` forward to the snapshot of `rd` using the store's change log
// (false, changing nothing, when the log cannot prove what changed since the cached state: too
// far back, or unlogged writes; the caller then rebuilds everything from the snapshot):
//  - an agent's row is re-read only when a write merged a field the listing shows with another
//    value than the cached one, or created, deleted or revived it (FieldShowsAs); a creator's
//    profile only when a write named another email;
//  - if no listed row changed, the inventory is kept as it is; otherwise (agents created,
//    deleted, renamed, re-owned, with a new visibility, creators with a new email) a new
//    inventory is made from the cached one in memory: unchanged agents keep their strings
//    (shared buffers) and move to their new index, changed ones are inserted;
//  - the cached columns are carried over with each touched agent's logged credits added and its
//    logged users ORed into the column's user sets; only agents listed for the first time are
//    read from the store (point reads; a column that would need too many is dropped and
//    rescanned when next needed);
//  - the cached sort orders are patched: the other agents keep their relative order (their keys
//    did not change and indexes keep the id order), the moved ones (usage or row changed, for a
//    sort on a column; row changed, for the others) are sorted and placed back by binary search.
bool Refresh(Cache& cache, const std::string& key, const Reader& rd, const std::string& ws);

}  // namespace tally::query::internal
