#include "tallyd/live_views.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "ingest/consumer.h"
#include "store/data_dir.h"

namespace tally::tallyd {
namespace {

// Opens one store directory with its label directory. The store is closed (and, once
// the views are retired, its directory removed) when the last reference goes.
Result<std::shared_ptr<LiveViews::Views>> OpenViews(const std::string& root, std::string_view name,
                                                    store::StoreOptions options) {
  auto doomed = std::make_shared<std::atomic<bool>>(false);
  options.path = root + "/" + std::string(name);
  auto opened = store::Store::Open(options);
  if (!opened) return std::unexpected(opened.error());
  std::string path = options.path;
  std::shared_ptr<store::Store> db(opened->release(), [path, doomed](store::Store* s) {
    delete s;
    if (doomed->load()) {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
      if (ec) spdlog::warn("could not delete the replaced store {}: {}", path, ec.message());
    }
  });
  auto dir = store::Directory::Load(*db);
  if (!dir) return std::unexpected(dir.error());
  auto views = std::make_shared<LiveViews::Views>();
  views->store = std::move(db);
  views->directory = std::shared_ptr<store::Directory>(std::move(*dir));
  views->superagents = std::make_shared<query::SuperagentsCache>();
  views->name = std::string(name);
  views->retired = doomed;
  return views;
}

}  // namespace

Result<std::unique_ptr<LiveViews>> LiveViews::Open(const std::string& root,
                                                   const store::StoreOptions& options) {
  std::unique_ptr<LiveViews> live(new LiveViews());
  live->root_ = root;
  live->options_ = options;
  auto views = OpenViews(root, store::CurrentDbName(root), options);
  if (!views) return std::unexpected(views.error());
  live->current_.store(std::move(*views));
  return live;
}

LiveViews::~LiveViews() {
  closing_.store(true);
  if (finisher_.joinable()) finisher_.join();
}

bool LiveViews::CaughtUp(const Views& old, const Views& next) const {
  if (!consumer_) return true;
  auto want = old.store->LoadOffsets();
  auto have = next.store->LoadOffsets();
  if (!want || !have) return false;
  for (const auto& w : *want) {
    bool ok = false;
    for (const auto& h : *have) {
      if (h.topic == w.topic && h.partition == w.partition &&
          h.offset.cluster_id == w.offset.cluster_id &&
          h.offset.next_offset >= w.offset.next_offset) {
        ok = true;
      }
    }
    // An offset of another cluster (an older log) cannot be caught up with: ignore it.
    if (!ok && !consumer_->cluster_id().empty() && w.offset.cluster_id != consumer_->cluster_id())
      ok = true;
    if (!ok) return false;
  }
  return true;
}

Status LiveViews::Publish(std::shared_ptr<const Views> old, std::shared_ptr<const Views> next) {
  current_.store(next);
  if (Status s = store::SetCurrentDbName(root_, next->name); !s) {
    // Serving the new views already; a restart would reopen the old ones. Say so loudly.
    spdlog::error("switched to {} but could not record it in CURRENT: {}", next->name,
                  s.error().message);
    return s;
  }
  old->retired->store(true);
  spdlog::info("now serving and ingesting into {} (replaced {})", next->name, old->name);
  return Ok();
}

Result<bool> LiveViews::Switch(std::string_view name, std::chrono::milliseconds wait) {
  std::lock_guard lock(admin_mu_);
  if (switching_.load()) {
    return Fail(ErrorCode::kFailedPrecondition,
                "A switch is still catching up; try again when it is done.", "db");
  }
  if (finisher_.joinable()) finisher_.join();
  if (!store::ValidDbName(name)) {
    return Fail(ErrorCode::kInvalidArgument,
                "The db field must be a directory name under the data directory.", "db");
  }
  std::shared_ptr<const Views> old = current_.load();
  if (name == old->name) {
    return Fail(ErrorCode::kInvalidArgument, "'" + std::string(name) + "' is already live.", "db");
  }
  const std::string path = root_ + "/" + std::string(name);
  if (!std::filesystem::exists(path + "/CURRENT")) {  // a RocksDB store, not just any directory
    return Fail(ErrorCode::kNotFound,
                "No store directory '" + std::string(name) + "' under the data directory.", "db");
  }
  auto opened = OpenViews(root_, name, options_);
  if (!opened) return std::unexpected(opened.error());
  std::shared_ptr<const Views> next = std::move(*opened);
  if (consumer_) {
    Status s =
        consumer_->SwitchStore(next->store.get(), next->directory.get(), std::chrono::seconds(60));
    if (!s) return std::unexpected(s.error());
  }
  // From here the old store is frozen (complete up to its offsets) and keeps answering queries
  // until the new one has ingested at least as far.
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (!CaughtUp(*old, *next)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      switching_.store(true);
      spdlog::info("switch to {}: catching up with {} before queries move", name, old->name);
      finisher_ = std::thread([this, old, next] {
        while (!closing_.load() && !CaughtUp(*old, *next)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (!closing_.load()) Publish(old, next);
        switching_.store(false);
      });
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (Status s = Publish(old, next); !s) return std::unexpected(s.error());
  return true;
}

Status LiveViews::Snapshot(const std::string& path) {
  std::lock_guard lock(admin_mu_);
  if (path.empty() || path.front() != '/') {
    return Fail(ErrorCode::kInvalidArgument, "The path field must be an absolute path.", "path");
  }
  if (std::filesystem::exists(path)) {
    return Fail(ErrorCode::kInvalidArgument, "The path '" + path + "' already exists.", "path");
  }
  store::Store* store = current_.load()->store.get();
  // Everything applied so far, staged batches included (with their offsets): a replica started
  // from the snapshot continues exactly where this tallyd was.
  if (Status p = store->Persist(); !p) return p;
  return store->Checkpoint(path);
}

}  // namespace tally::tallyd
