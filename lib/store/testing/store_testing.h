#pragma once
// For tests only: writes that production code never makes, to put a Store into states that
// tests must cover. Nothing outside tests may call these.
//
//   tally::store::WriteSet set(*store);
//   set.PutNewestEventTime(0);
//   tally::store::testing::WriteUnlogged(*store, &set);   // a write changes() did not see
//   tally::store::testing::EraseSchemaVersion(*store);     // as a store of layout version 1

#include <map>
#include <string>
#include <utility>

#include "common/result.h"
#include "store/store.h"
#include "store/write_set.h"

namespace tally::store::testing {

// Applies `set` like Store::Write, but without recording it in Store::changes(): readers of the
// change log then meet a write they cannot account for. Errors as Store::Write. Thread-safe, as
// Store::Write (it takes the writers' lock).
Status WriteUnlogged(Store& store, WriteSet* set);

// Removes the data layout stamp (codec.h SchemaVersionKey), as stores written before layout
// versions existed have none. kUnavailable on write errors.
Status EraseSchemaVersion(Store& store);

// Every persisted row of every column family (Persist first to include what is staged), each
// value as a read combines it, keyed by (family index, key). The dedupe family's values are left
// empty: they hold the wall-clock time of their write. For comparing whole stores.
std::map<std::pair<int, std::string>, std::string> DumpRows(const Store& store);

}  // namespace tally::store::testing
