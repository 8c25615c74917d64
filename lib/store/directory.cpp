#include "store/directory.h"

#include <rocksdb/db.h>

#include <algorithm>
#include <mutex>

#include "store/codec.h"
#include "store/internal/store_rep.h"
#include "store/store.h"

namespace tally::store {
namespace {

using internal::View;

// Calls fn(key, value) for every row of `family` under `prefix`; false on an iterator error.
template <typename Fn>
bool Scan(const Store& store, internal::Family family, const std::string& prefix, Fn fn) {
  std::unique_ptr<rocksdb::Iterator> it(internal::Access::Db(store)->NewIterator(
      rocksdb::ReadOptions(), internal::Access::Cf(store, family)));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    fn(View(it->key()), View(it->value()));
  }
  return it->status().ok();
}

}  // namespace

Result<std::unique_ptr<Directory>> Directory::Load(const Store& store) {
  auto dir = std::make_unique<Directory>();
  std::vector<Update> updates;
  auto add = [&](Update::Kind kind, std::string_view key, std::string a, std::string b, int64_t t) {
    uint32_t index;
    if (kind == Update::Kind::kNewUser || kind == Update::Kind::kNewAgent) {
      if (!DecodeDictReverseKey(key, &index)) return;
    } else if (kind == Update::Kind::kUserEmail) {
      std::string_view org;
      if (!DecodeUserLabelKey(key, &org, &index)) return;
      b = std::string(org);
    } else if (!DecodeLabelKey(key, &index)) {
      return;
    }
    updates.push_back(Update{kind, index, t, std::move(a), std::move(b)});
  };
  bool ok = Scan(store, internal::kDict, UserDictReversePrefix(),
                 [&](std::string_view k, std::string_view v) {
                   add(Update::Kind::kNewUser, k, std::string(v), {}, 0);
                 }) &&
            Scan(store, internal::kDict, AgentDictReversePrefix(),
                 [&](std::string_view k, std::string_view v) {
                   std::string_view ws, agent;
                   if (DecodeAgentRef(v, &ws, &agent)) {
                     add(Update::Kind::kNewAgent, k, std::string(ws), std::string(agent), 0);
                   }
                 });
  // Labels after the dictionaries: an update for an index must find its entry.
  Record r;
  ok = ok &&
       Scan(store, internal::kRecords, UserLabelPrefix(),
            [&](std::string_view k, std::string_view v) {
              DecodeRecord(v, &r);
              if (const Field* f = FindField(r, field::kLabel)) {
                add(Update::Kind::kUserEmail, k, f->value, {}, f->time_ms);
              }
            }) &&
       Scan(store, internal::kRecords, AgentLabelPrefix(),
            [&](std::string_view k, std::string_view v) {
              DecodeRecord(v, &r);
              if (const Field* f = FindField(r, field::kLabel)) {
                add(Update::Kind::kAgentName, k, f->value, {}, f->time_ms);
              }
            });
  if (!ok) return Fail(ErrorCode::kUnavailable, "reading the user and agent directory failed");
  dir->Apply(updates);
  return dir;
}

void Directory::Apply(const std::vector<Update>& updates) {
  if (updates.empty()) return;
  std::unique_lock lock(mu_);
  for (const Update& u : updates) ApplyLocked(u);
}

void Directory::ApplyLocked(const Update& u) {
  switch (u.kind) {
    case Update::Kind::kNewUser:
      if (u.index >= users_.size()) users_.resize(u.index + 1);
      users_[u.index].id = u.a;
      break;
    case Update::Kind::kNewAgent:
      if (u.index >= agents_.size()) agents_.resize(u.index + 1);
      if (agents_[u.index].agent_id.empty()) {
        agents_[u.index].workspace_id = u.a;
        agents_[u.index].agent_id = u.b;
        if (!agents_[u.index].name.set) Index(u.index);  // indexed under its id until named
      }
      break;
    case Update::Kind::kUserEmail: {
      if (u.index >= users_.size()) users_.resize(u.index + 1);
      auto [it, inserted] = org_ids_.try_emplace(u.b, static_cast<uint32_t>(org_names_.size()));
      if (inserted) org_names_.push_back(u.b);
      auto& emails = users_[u.index].emails;
      auto e = std::find_if(emails.begin(), emails.end(),
                            [&](const auto& p) { return p.first == it->second; });
      if (e == emails.end()) {
        emails.emplace_back(it->second, Label{u.a, u.time_ms, true});
      } else if (u.time_ms >= e->second.time_ms) {
        e->second = Label{u.a, u.time_ms, true};
      }
      break;
    }
    case Update::Kind::kAgentName:
      SetAgentName(u.index, u.a, u.time_ms);
      break;
  }
}

void Directory::SetAgentName(uint32_t index, std::string_view name, int64_t time_ms) {
  if (index >= agents_.size()) agents_.resize(index + 1);
  Label& l = agents_[index].name;
  if (l.set && time_ms < l.time_ms) return;
  Unindex(index);
  l = Label{std::string(name), time_ms, true};
  Index(index);
}

void Directory::Unindex(uint32_t index) {
  const AgentEntry& a = agents_[index];
  const std::string& key = a.name.set ? a.name.value : a.agent_id;
  auto it = by_name_.find(key);
  if (it == by_name_.end()) return;
  std::erase(it->second, index);
  if (it->second.empty()) by_name_.erase(it);
}

void Directory::Index(uint32_t index) {
  const AgentEntry& a = agents_[index];
  const std::string& key = a.name.set ? a.name.value : a.agent_id;
  if (key.empty()) return;
  std::vector<uint32_t>& v = by_name_[key];
  v.insert(std::lower_bound(v.begin(), v.end(), index), index);
}

std::vector<uint32_t> Directory::Reader::Organizations(
    const std::vector<std::string>& names) const {
  std::vector<uint32_t> out;
  for (const std::string& name : names) {
    if (auto it = d_.org_ids_.find(name); it != d_.org_ids_.end()) out.push_back(it->second);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<Directory::Email> Directory::Reader::UserEmail(const std::vector<uint32_t>& scope,
                                                             uint32_t index) const {
  if (index >= d_.users_.size()) return std::nullopt;
  const UserEntry& u = d_.users_[index];
  const std::pair<uint32_t, Label>* best = nullptr;
  for (const auto& e : u.emails) {
    if (e.second.value.empty() || !std::binary_search(scope.begin(), scope.end(), e.first)) {
      continue;
    }
    if (best == nullptr || e.second.time_ms > best->second.time_ms ||
        (e.second.time_ms == best->second.time_ms &&
         d_.org_names_[e.first] > d_.org_names_[best->first])) {
      best = &e;
    }
  }
  if (best == nullptr) return std::nullopt;
  return Email{best->second.value, best->second.time_ms, d_.org_names_[best->first]};
}

std::string_view Directory::Reader::UserLabel(const std::vector<uint32_t>& scope,
                                              uint32_t index) const {
  if (auto email = UserEmail(scope, index)) return email->email;
  return UserId(index);
}

std::string_view Directory::Reader::UserId(uint32_t index) const {
  return index < d_.users_.size() ? std::string_view(d_.users_[index].id) : std::string_view();
}

std::string_view Directory::Reader::AgentName(uint32_t index) const {
  if (index >= d_.agents_.size()) return {};
  const AgentEntry& a = d_.agents_[index];
  return a.name.set ? std::string_view(a.name.value) : std::string_view(a.agent_id);
}

std::pair<std::string_view, std::string_view> Directory::Reader::AgentRef(uint32_t index) const {
  if (index >= d_.agents_.size()) return {};
  return {d_.agents_[index].workspace_id, d_.agents_[index].agent_id};
}

const std::vector<uint32_t>* Directory::Reader::AgentsNamed(std::string_view name) const {
  auto it = d_.by_name_.find(name);
  return it == d_.by_name_.end() ? nullptr : &it->second;
}

}  // namespace tally::store
