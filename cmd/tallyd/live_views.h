#pragma once
// The views a running tallyd serves and feeds: the live store of its data directory with its
// label directory, swappable at runtime for a rebuilt store, and snapshots of it.
//
//   auto live = tally::tallyd::LiveViews::Open("/var/lib/tally", store_options);
//   auto v = (*live)->Current();                      // shared: queries keep it alive
//   RunRequests(*v->store, *v->directory, ...);
//   (*live)->AttachConsumer(consumer);                // before Switch is used
//   (*live)->Switch("db.rebuild-20261122T031500Z");   // rebuilt by `tally replay --mode rebuild`
//   (*live)->Snapshot("/backups/tally-2026-11-22");   // RocksDB checkpoint, offsets included
//
// Switch order: open the new store and load its directory (nothing changes if that fails) ->
// the consumer stores its batch in progress into the old store and continues from the new
// store's offsets -> queries keep reading the old (now frozen, complete) store until the new
// one has caught up with the old one's offsets, so no answer ever goes backwards -> queries see
// the new store (one atomic pointer swap: a query sees the old or the new views, never a mix) ->
// CURRENT names the new store (restarts open it) -> the old store is closed when its last query
// ends, and its directory is deleted.
//
// Thread-safety: all methods are thread-safe; Switch and Snapshot are serialised.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.h"
#include "query/superagents.h"
#include "store/directory.h"
#include "store/store.h"

namespace tally::ingest {
class Consumer;
}  // namespace tally::ingest

namespace tally::tallyd {

class LiveViews {
 public:
  struct Views {
    std::shared_ptr<store::Store> store;
    std::shared_ptr<store::Directory> directory;
    // The Super Agents tables of this store (query::OpenSuperagents), freed with these views.
    std::shared_ptr<query::SuperagentsCache> superagents;
    std::string name;  // directory name under the data dir ("db", "db.rebuild-...")
    // Set when these views were replaced: the store's directory is deleted when it closes.
    std::shared_ptr<std::atomic<bool>> retired;
  };

  // Opens <root>/<CurrentDbName(root)> with `options` (its path is ignored) and loads its
  // directory. Errors from Store::Open / Directory::Load.
  static Result<std::unique_ptr<LiveViews>> Open(const std::string& root,
                                                 const store::StoreOptions& options);

  std::shared_ptr<const Views> Current() const { return current_.load(); }
  const std::string& root() const { return root_; }

  // The consumer that must follow switches (may be null: no ingest). Not owned.
  void AttachConsumer(ingest::Consumer* consumer) { consumer_ = consumer; }

  // Makes <root>/<name> the live store (see the order above). Returns true when queries already
  // use it, false when the new store is still catching up after `wait` (the swap then happens
  // in the background as soon as it has). kInvalidArgument for a bad name or the current one,
  // kNotFound if it holds no store, kFailedPrecondition while another switch is catching up,
  // errors of Store::Open (kUnavailable when something else holds it open),
  // Consumer::SwitchStore, SetCurrentDbName.
  Result<bool> Switch(std::string_view name,
                      std::chrono::milliseconds wait = std::chrono::seconds(8));
  ~LiveViews();

  // A consistent checkpoint of the current store at `path` (must not exist; absolute), with
  // everything applied so far: staged batches are persisted first. Errors of Store::Persist and
  // Store::Checkpoint; kInvalidArgument for a relative or existing path.
  Status Snapshot(const std::string& path);

 private:
  LiveViews() = default;
  std::string root_;
  store::StoreOptions options_;
  std::atomic<std::shared_ptr<const Views>> current_;
  // True once `next` has reached `old`'s stored offsets (nothing to catch up without ingest).
  bool CaughtUp(const Views& old, const Views& next) const;
  // Publishes `next` for queries, records it in CURRENT and retires `old`.
  Status Publish(std::shared_ptr<const Views> old, std::shared_ptr<const Views> next);

  ingest::Consumer* consumer_ = nullptr;
  std::mutex admin_mu_;
  std::thread finisher_;  // completes a switch that is catching up
  std::atomic<bool> switching_{false};
  std::atomic<bool> closing_{false};
};

}  // namespace tally::tallyd
