#pragma once
// A prefix scan that yields a family's stored and staged rows together, in key order. Internal to
// tally::store (the store's scans: ReadView and the writer's reads).

#include <rocksdb/iterator.h>

#include <algorithm>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/internal/family.h"
#include "store/internal/open_state.h"
#include "store/internal/store_rep.h"

namespace tally::store::internal {

// Staged rows of one family under a prefix, copied out of the open state (under its lock) so
// that a scan can run without holding it.
using OpenRows = std::vector<std::pair<std::string, std::string>>;

// Where a MergedCursor finds staged rows: a generation's open state (null: nowhere), read under
// its lock unless the reader holds that lock already (a stable view).
struct OpenSource {
  const Generation* gen = nullptr;
  bool held = false;
};

// A prefix scan over a family that yields stored and staged rows together, in key order; a key
// in both yields the combined value (CombineEncoded).
class MergedCursor {
 public:
  // `it` is borrowed (positioned by Seek). The staged rows come from `open`, a few at a time
  // (each load under the lock on its own): a scan that stops after a row or two (the first slice
  // of a project, say) encodes a few staged rows, not every one under the prefix, and sees rows
  // staged while it runs, as a point read does.
  //
  // `keys_only`: for readers that need keys and not values. Staged rows are not encoded, and a
  // row with a staged part has an empty value() (staged() tells those apart: a staged row is
  // never malformed, while a stored-only row's value() is its stored value, to be checked).
  MergedCursor(rocksdb::Iterator* it, Family family, std::string_view prefix, OpenSource open,
               bool keys_only = false)
      : it_(it), family_(family), prefix_(prefix), source_(open), keys_only_(keys_only) {}
  void Seek(std::string_view target) {
    it_->Seek(ToSlice(target));
    chunk_ = kFirstChunk;
    Load(target);
    Settle();
  }
  bool Valid() const { return db_valid_ || oi_ < open_.size(); }
  std::string_view key() const { return key_; }
  std::string_view value() const { return value_; }
  // True if the current row has a staged part.
  bool staged() const { return from_open_; }
  void Next() {
    if (from_db_) it_->Next();
    if (from_open_ && ++oi_ == open_.size() && !open_done_) {
      // The smallest key after the last one loaded.
      std::string next = std::move(open_.back().first);
      next.push_back('\0');
      Load(next);
    }
    Settle();
  }

 private:
  static constexpr size_t kFirstChunk = 4;
  static constexpr size_t kMaxChunk = 1024;

  // Replaces open_ with the next staged rows from `from` on (at most chunk_ of them).
  void Load(std::string_view from) {
    open_.clear();
    oi_ = 0;
    if (source_.gen != nullptr && source_.gen->staged_rows.load(std::memory_order_acquire) > 0) {
      std::shared_lock<std::shared_mutex> lock;
      if (!source_.held) lock = std::shared_lock(source_.gen->mu);
      if (keys_only_) {
        source_.gen->open.ScanKeys(family_, prefix_, from, [&](std::string_view k) {
          open_.emplace_back(k, std::string());
          return open_.size() < chunk_;
        });
      } else {
        source_.gen->open.Scan(family_, prefix_, from, [&](std::string_view k, std::string_view v) {
          open_.emplace_back(k, v);
          return open_.size() < chunk_;
        });
      }
    }
    open_done_ = open_.size() < chunk_;
    chunk_ = std::min(chunk_ * 4, kMaxChunk);
  }

  void Settle() {
    db_valid_ = it_->Valid() && it_->key().starts_with(ToSlice(prefix_));
    const bool open_valid = oi_ < open_.size();
    if (!db_valid_ && !open_valid) return;
    const std::string_view db_key = db_valid_ ? View(it_->key()) : std::string_view();
    from_db_ = db_valid_ && (!open_valid || db_key <= std::string_view(open_[oi_].first));
    from_open_ = open_valid && (!db_valid_ || std::string_view(open_[oi_].first) <= db_key);
    if (from_db_ && from_open_ && keys_only_) {
      key_ = db_key;
      value_ = {};
    } else if (from_db_ && from_open_) {
      key_ = db_key;
      CombineEncoded(family_, View(it_->value()), open_[oi_].second, &combined_);
      value_ = combined_;
    } else if (from_db_) {
      key_ = db_key;
      value_ = View(it_->value());
    } else {
      key_ = open_[oi_].first;
      value_ = open_[oi_].second;
    }
  }

  rocksdb::Iterator* it_;
  Family family_;
  std::string prefix_;
  OpenSource source_;
  bool keys_only_;
  OpenRows open_;  // the staged rows loaded last
  size_t oi_ = 0;
  size_t chunk_ = kFirstChunk;
  bool open_done_ = true;  // no staged rows after open_
  bool db_valid_ = false, from_db_ = false, from_open_ = false;
  std::string_view key_, value_;
  std::string combined_;
};

}  // namespace tally::store::internal
