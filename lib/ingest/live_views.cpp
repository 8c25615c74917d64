#include "ingest/live_views.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "ingest/consumer.h"
#include "store/data_dir.h"

namespace tally::ingest {
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

Status LiveViews::Switch(std::string_view name) {
  std::lock_guard lock(admin_mu_);
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
  auto next = OpenViews(root_, name, options_);
  if (!next) return std::unexpected(next.error());
  if (consumer_) {
    Status s = consumer_->SwitchStore((*next)->store.get(), (*next)->directory.get(),
                                      std::chrono::seconds(60));
    if (!s) return s;
  }
  current_.store(*next);
  if (Status s = store::SetCurrentDbName(root_, name); !s) {
    // Serving the new views already; a restart would reopen the old ones. Say so loudly.
    spdlog::error("switched to {} but could not record it in CURRENT: {}", name, s.error().message);
    return s;
  }
  old->retired->store(true);
  spdlog::info("now serving and ingesting into {} (replaced {})", name, old->name);
  return Ok();
}

Status LiveViews::Snapshot(const std::string& path) {
  std::lock_guard lock(admin_mu_);
  if (path.empty() || path.front() != '/') {
    return Fail(ErrorCode::kInvalidArgument, "The path field must be an absolute path.", "path");
  }
  if (std::filesystem::exists(path)) {
    return Fail(ErrorCode::kInvalidArgument, "The path '" + path + "' already exists.", "path");
  }
  return current_.load()->store->Checkpoint(path);
}

}  // namespace tally::ingest
