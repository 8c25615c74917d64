#include "store/change_log.h"

#include <algorithm>

#include "store/bitmap.h"

namespace tally::store {

void ChangeLog::Record(uint64_t before, uint64_t after, const WriteNote* note) {
  Entry e;
  e.before = before;
  e.after = after;
  e.known = note != nullptr;
  if (note) {
    auto put = [&](std::string_view s) {
      Ref r{static_cast<uint32_t>(e.text.size()), static_cast<uint32_t>(s.size())};
      e.text.append(s);
      return r;
    };
    // Usage by record, in the order of record_keys.
    std::vector<uint32_t> order(note->usage.size());
    for (uint32_t u = 0; u < order.size(); ++u) order[u] = u;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return note->usage[a].record < note->usage[b].record;
    });
    size_t next_usage = 0;
    Ref workspace;
    std::string_view last_workspace;
    for (uint32_t i = 0; i < note->record_keys.size(); ++i) {
      const RecordKeyRef ref = ParseRecordKey(note->record_keys[i]);
      const size_t usage_begin = next_usage;
      while (next_usage < order.size() && note->usage[order[next_usage]].record == i) {
        ++next_usage;
      }
      if (ref.kind == RecordKeyRef::Kind::kOther) continue;
      const std::span<const NoteField> fields =
          i < note->fields.size() ? note->fields[i] : std::span<const NoteField>();
      // A profile matters to readers only through its fields.
      if (ref.kind == RecordKeyRef::Kind::kProfile && fields.empty()) continue;
      StoredChange c;
      c.kind = ref.kind;
      // Consecutive keys usually share the workspace: its id is stored once for them.
      if (e.changes.empty() || ref.workspace_id != last_workspace) {
        workspace = put(ref.workspace_id);
        last_workspace = ref.workspace_id;
      }
      c.workspace = workspace;
      c.id = put(ref.id);
      c.fields_begin = static_cast<uint32_t>(e.fields.size());
      for (const NoteField& f : fields) e.fields.push_back({f.id, put(f.value)});
      c.fields_end = static_cast<uint32_t>(e.fields.size());
      c.usage_begin = static_cast<uint32_t>(e.usage.size());
      if (ref.kind == RecordKeyRef::Kind::kAgent) {
        for (size_t k = usage_begin; k < next_usage; ++k) {
          const NoteUsage& u = note->usage[order[k]];
          StoredUsage& s = e.usage.emplace_back();
          s.day = u.day;
          if (u.counters) s.counters = *u.counters;
          s.users_begin = static_cast<uint32_t>(e.users.size());
          if (u.users) u.users->ForEach([&](uint32_t id) { e.users.push_back(id); });
          s.users_end = static_cast<uint32_t>(e.users.size());
        }
      }
      c.usage_end = static_cast<uint32_t>(e.usage.size());
      e.changes.push_back(c);
    }
  }
  std::lock_guard lock(mu_);
  changes_ += e.changes.size();
  entries_.push_back(std::move(e));
  while (entries_.size() > max_entries_ || (changes_ > max_changes_ && entries_.size() > 1)) {
    changes_ -= entries_.front().changes.size();
    entries_.pop_front();
  }
}

bool ChangeLog::Collect(std::string_view workspace_id, uint64_t from, uint64_t to,
                        const std::function<void(const Change&)>& fn) const {
  if (from == to) return true;
  if (from > to) return false;
  std::lock_guard lock(mu_);
  // The first entry starting at `from` (entries are in increasing order).
  const auto first = std::lower_bound(entries_.begin(), entries_.end(), from,
                                      [](const Entry& e, uint64_t seq) { return e.before < seq; });
  uint64_t at = from;
  auto end = first;
  for (; end != entries_.end() && at < to; ++end) {
    if (end->before != at || !end->known || end->after > to) return false;
    at = end->after;
  }
  if (at != to) return false;
  std::vector<NoteField> fields;
  std::vector<Usage> usage;
  for (auto it = first; it != end; ++it) {
    const Entry& e = *it;
    auto view = [&](Ref r) { return std::string_view(e.text).substr(r.off, r.len); };
    for (const StoredChange& c : e.changes) {
      if (view(c.workspace) != workspace_id) continue;
      fields.clear();
      for (uint32_t f = c.fields_begin; f < c.fields_end; ++f) {
        fields.push_back({e.fields[f].id, view(e.fields[f].value)});
      }
      usage.clear();
      for (uint32_t u = c.usage_begin; u < c.usage_end; ++u) {
        const StoredUsage& s = e.usage[u];
        usage.push_back({s.day, &s.counters,
                         std::span<const uint32_t>(e.users).subspan(s.users_begin,
                                                                    s.users_end - s.users_begin)});
      }
      fn(Change{c.kind, view(c.id), fields, usage});
    }
  }
  return true;
}

}  // namespace tally::store
