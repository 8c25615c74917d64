#include "store/change_log.h"

#include <algorithm>

#include "store/codec.h"

namespace tally::store {

void ChangeLog::Record(uint64_t before, uint64_t after,
                       const std::vector<std::string_view>* record_keys) {
  Entry e;
  e.before = before;
  e.after = after;
  e.known = record_keys != nullptr;
  if (record_keys) {
    for (std::string_view key : *record_keys) {
      const RecordKeyRef ref = ParseRecordKey(key);
      if (ref.kind == RecordKeyRef::Kind::kOther) continue;
      // One lookup per key of the batch; consecutive keys usually share the workspace.
      Touched& t = e.workspaces[std::string(ref.workspace_id)];
      (ref.kind == RecordKeyRef::Kind::kAgent ? t.agents : t.users).emplace_back(ref.id);
      ++e.ids;
    }
  }
  std::lock_guard lock(mu_);
  ids_ += e.ids;
  entries_.push_back(std::move(e));
  while (entries_.size() > max_entries_ || (ids_ > max_ids_ && entries_.size() > 1)) {
    ids_ -= entries_.front().ids;
    entries_.pop_front();
  }
}

bool ChangeLog::Collect(std::string_view workspace_id, uint64_t from, uint64_t to,
                        Touched* out) const {
  out->agents.clear();
  out->users.clear();
  if (from == to) return true;
  if (from > to) return false;
  const std::string ws(workspace_id);
  {
    std::lock_guard lock(mu_);
    // The first entry starting at `from` (entries are in increasing order).
    auto it = std::lower_bound(entries_.begin(), entries_.end(), from,
                               [](const Entry& e, uint64_t seq) { return e.before < seq; });
    uint64_t at = from;
    for (; it != entries_.end() && at < to; ++it) {
      if (it->before != at || !it->known || it->after > to) return false;
      if (auto w = it->workspaces.find(ws); w != it->workspaces.end()) {
        out->agents.insert(out->agents.end(), w->second.agents.begin(), w->second.agents.end());
        out->users.insert(out->users.end(), w->second.users.begin(), w->second.users.end());
      }
      at = it->after;
    }
    if (at != to) return false;
  }
  for (std::vector<std::string>* v : {&out->agents, &out->users}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  return true;
}

}  // namespace tally::store
