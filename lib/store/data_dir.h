#pragma once
// The layout of a tallyd data directory: which store directory is live, and how a rebuilt one
// replaces it atomically.
//
//   <data-dir>/CURRENT   name of the live store directory; absent = "db"
//   <data-dir>/db        the store (RocksDB) tallyd opened first
//   <data-dir>/db.rebuild-20261122T031500Z   a store written by `tally replay --mode rebuild`
//
//   std::string name = tally::store::CurrentDbName(root);          // "db" or what CURRENT says
//   tally::store::SetCurrentDbName(root, "db.rebuild-...");         // write-temp + rename + fsync
//
// All functions are thread-safe with respect to each other only through the filesystem's
// atomic rename; callers serialise switches.

#include <string>
#include <string_view>

#include "common/result.h"

namespace tally::store {

// True for a plain directory name: 1..128 of [A-Za-z0-9._-], not "." or "..".
bool ValidDbName(std::string_view name);
// The live store directory name under `root` ("db" when CURRENT is absent or unreadable).
std::string CurrentDbName(const std::string& root);
// Points CURRENT at `name` atomically (the old or the new name is seen, never a mix).
// kInvalidArgument for a bad name, kUnavailable on I/O errors.
Status SetCurrentDbName(const std::string& root, std::string_view name);
// Reserves a fresh store directory under `root` (which must exist) for a rebuild and returns its
// name: "db.rebuild-<UTC timestamp>", with "-2", "-3", ... appended when that directory already
// exists (two rebuilds in the same second), so a rebuild never opens an existing store. The
// directory is created empty. kUnavailable on I/O errors.
Result<std::string> NewRebuildDbName(const std::string& root);

}  // namespace tally::store
