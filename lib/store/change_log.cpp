#include "store/change_log.h"

#include <algorithm>

#include "store/codec.h"

namespace tally::store {

void ChangeLog::Record(uint64_t before, uint64_t after, const WriteNote* note) {
  Entry e;
  e.before = before;
  e.after = after;
  e.known = note != nullptr;
  if (note) {
    e.first_day = note->first_day;
    e.last_day = note->last_day;
    const bool all_changed = note->fields_changed.size() != note->record_keys.size();
    for (size_t i = 0; i < note->record_keys.size(); ++i) {
      const RecordKeyRef ref = ParseRecordKey(note->record_keys[i]);
      if (ref.kind == RecordKeyRef::Kind::kOther) continue;
      const bool changed = all_changed || note->fields_changed[i] != 0;
      // A profile matters to readers only through its fields (the creator's email).
      if (ref.kind == RecordKeyRef::Kind::kProfile && !changed) continue;
      // One lookup per key of the batch; consecutive keys usually share the workspace.
      Touched& t = e.workspaces[std::string(ref.workspace_id)];
      if (ref.kind == RecordKeyRef::Kind::kProfile) {
        t.users.emplace_back(ref.id);
      } else {
        t.agents.emplace_back(ref.id);
        if (changed) t.agent_rows.emplace_back(ref.id);
      }
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
  out->agent_rows.clear();
  out->users.clear();
  out->first_day = 0;
  out->last_day = -1;
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
        const Touched& t = w->second;
        out->agents.insert(out->agents.end(), t.agents.begin(), t.agents.end());
        out->agent_rows.insert(out->agent_rows.end(), t.agent_rows.begin(), t.agent_rows.end());
        out->users.insert(out->users.end(), t.users.begin(), t.users.end());
        if (it->first_day <= it->last_day) {
          if (out->first_day > out->last_day) {
            out->first_day = it->first_day;
            out->last_day = it->last_day;
          } else {
            out->first_day = std::min(out->first_day, it->first_day);
            out->last_day = std::max(out->last_day, it->last_day);
          }
        }
      }
      at = it->after;
    }
    if (at != to) return false;
  }
  for (std::vector<std::string>* v : {&out->agents, &out->agent_rows, &out->users}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  return true;
}

}  // namespace tally::store
