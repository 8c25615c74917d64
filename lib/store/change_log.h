#pragma once
// Which agents and user profiles recent store writes touched, by workspace, so that a reader
// holding in-memory views computed from the store at version S (ReadView::version) can bring them
// to a later version S' by re-reading only what changed (query/superagents.cpp does).
//
//   // writer (Store::Write does this under its write lock):
//   log.Record(before_version, after_version, &touched_record_keys);  // null: "unknown changes"
//   // reader:
//   tally::store::ChangeLog::Touched t;
//   if (store.changes().Collect("ws_1", cached_version, view->version(), &t)) {
//     // t.agents / t.users: everything of ws_1 that may differ between the two states
//   } else {
//     // not provable from the log (too old, or a write without a note): recompute everything
//   }
//
// Exactness: an entry covers the versions (before, after] of one write. Collect succeeds
// only when the recorded entries chain without a gap from S to S', so a write the log did not
// see (or one recorded without its touched keys) makes it fail rather than miss a change.
//
// Thread-safety: thread-safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tally::store {

class ChangeLog {
 public:
  // Bounds: entries kept (oldest dropped first), and ids kept over all entries (about 50 bytes
  // each: the default holds a few dozen large ingest batches in about 13 MB). A reader whose
  // state is older than the oldest entry recomputes.
  explicit ChangeLog(size_t max_entries = 512, size_t max_ids = 256'000)
      : max_entries_(max_entries), max_ids_(max_ids) {}

  // Records one write that moved the store from version `before` to `after`.
  // `record_keys`: every records-CF key the write touched (codec.h ParseRecordKey decides what
  // counts: user profiles and agent rows; the writer guarantees that every change to an agent's
  // counters or bitmaps comes with its agent row key); null when unknown.
  void Record(uint64_t before, uint64_t after, const std::vector<std::string_view>* record_keys);

  struct Touched {
    std::vector<std::string> agents;  // agent ids, sorted, distinct
    std::vector<std::string> users;   // user ids with a profile write, sorted, distinct
  };
  // Fills *out with what writes in (from, to] touched in `workspace_id`. False (and *out
  // unspecified) unless recorded entries with known keys chain exactly from `from` to `to`.
  // from == to is true with nothing touched.
  bool Collect(std::string_view workspace_id, uint64_t from, uint64_t to, Touched* out) const;

 private:
  struct Entry {
    uint64_t before = 0, after = 0;
    bool known = false;
    size_t ids = 0;
    std::unordered_map<std::string, Touched> workspaces;  // unsorted, may repeat
  };

  const size_t max_entries_, max_ids_;
  mutable std::mutex mu_;
  std::deque<Entry> entries_;  // increasing versions
  size_t ids_ = 0;
};

}  // namespace tally::store
