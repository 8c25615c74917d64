#include "query/internal/superagents_table.h"

#include <algorithm>

namespace tally::query::internal {
namespace {

using event::EntityKind;

// The email of a profile record; "" if none.
std::string_view ProfileRecordEmail(const store::Record& profile) {
  const store::Field* e = store::FindField(profile, store::field::kUserEmail);
  return e ? std::string_view(e->value) : std::string_view();
}

// Above this many distinct creators, their emails come from one scan of the workspace's
// profiles instead of one point read each.
constexpr size_t kProfileScanThreshold = 64;

}  // namespace

bool LiveAgentFields(const store::Record& r, AgentFields* f) {
  const store::Field* created = store::FindField(r, store::field::kEntityCreated);
  if (!created) return false;
  const store::Field* deleted = store::FindField(r, store::field::kEntityDeleted);
  const store::Field* revived = store::FindField(r, store::field::kEntityRevived);
  if (deleted && !(revived && revived->time_ms > deleted->time_ms)) return false;
  const store::Field* n = store::FindField(r, store::field::kEntityName);
  f->has_name = n && !n->value.empty();
  f->name = f->has_name ? std::string_view(n->value) : std::string_view();
  const store::Field* vis = store::FindField(r, store::field::kEntityVisibility);
  f->visibility = vis ? ParseVis(vis->value) : kOther;
  const store::Field* owner = store::FindField(r, store::field::kEntityOwner);
  f->owner = owner && !owner->value.empty() ? std::string_view(owner->value)
                                            : std::string_view(created->value);
  f->creator = created->value;
  f->created_at_ms = created->time_ms;
  return true;
}

void FinishInventory(Inventory* inv, const Inventory* prev,
                     const std::vector<uint32_t>* from_prev) {
  const size_t n = inv->agents.size();
  inv->name_end.clear();
  inv->email_of.clear();
  inv->vis_of.clear();
  inv->folded_names.clear();
  inv->name_end.reserve(n);
  inv->email_of.reserve(n);
  inv->vis_of.reserve(n);
  if (prev) inv->folded_names.reserve(prev->folded_names.size() + 64);
  for (size_t i = 0; i < n; ++i) {
    const Agent& a = inv->agents[i];
    inv->email_of.push_back(a.email);
    inv->vis_of.push_back(a.visibility);
    if (const uint32_t j = from_prev ? (*from_prev)[i] : kGone; j != kGone) {
      const size_t begin = j == 0 ? 0 : prev->name_end[j - 1] + 1;
      inv->folded_names.append(prev->folded_names, begin, prev->name_end[j] - begin);
    } else if (a.has_name) {
      for (char c : a.name) inv->folded_names.push_back(Lower(c));
    }
    inv->name_end.push_back(static_cast<uint32_t>(inv->folded_names.size()));
    inv->folded_names.push_back('\0');
  }
  inv->folded_emails.clear();
  inv->email_end.clear();
  inv->email_end.reserve(inv->emails.size());
  for (const std::string& e : inv->emails) {
    for (char c : e) inv->folded_emails.push_back(Lower(c));
    inv->email_end.push_back(static_cast<uint32_t>(inv->folded_emails.size()));
    inv->folded_emails.push_back('\0');
  }
  size_t other_bytes = inv->creator_email.size() * 48 + inv->folded_emails.capacity() +
                       inv->email_end.capacity() * 4;
  for (const std::string& e : inv->emails) other_bytes += e.size() + sizeof(std::string);
  for (const auto& t : inv->texts) other_bytes += t->capacity();
  inv->bytes = sizeof(Inventory) + inv->agents.capacity() * sizeof(Agent) +
               inv->folded_names.capacity() + inv->name_end.capacity() * 4 +
               inv->email_of.capacity() * 4 + inv->vis_of.capacity() + other_bytes +
               inv->key_order.capacity() * 4 + inv->key_ids.capacity() +
               inv->key_off.capacity() * 4;
}

void Repack(Inventory* inv) {
  auto buffer = std::make_shared<std::string>();
  size_t total = 0;
  for (const Agent& a : inv->agents)
    total += a.id.size() + a.name.size() + a.owner.size() + a.creator.size();
  buffer->reserve(total);
  for (const Agent& a : inv->agents) {
    for (std::string_view part : {a.id, a.name, a.owner, a.creator}) buffer->append(part);
  }
  std::unordered_map<std::string_view, uint32_t> creators;
  creators.reserve(inv->creator_email.size());
  size_t at = 0;
  auto view = [&](std::string_view old) {
    const std::string_view v(buffer->data() + at, old.size());
    at += old.size();
    return v;
  };
  for (Agent& a : inv->agents) {
    a.id = view(a.id);
    a.name = view(a.name);
    a.owner = view(a.owner);
    a.creator = view(a.creator);
    creators.emplace(a.creator, a.email);  // an agent's email is its creator's slot
  }
  inv->creator_email = std::move(creators);
  inv->texts.assign(1, std::move(buffer));
}

std::string_view ProfileEmail(const Reader& rd, const std::string& ws, std::string_view user,
                              store::Record* scratch) {
  std::string key;
  store::UserProfileKey(ws, user, &key);
  if (!rd.view->GetRecord(key, scratch)) return {};
  return ProfileRecordEmail(*scratch);
}

std::shared_ptr<Inventory> BuildInventory(const Reader& rd, const std::string& ws) {
  auto inv = std::make_shared<Inventory>();

  // 1. Live agents with their creator.
  std::vector<std::string> created_by;
  struct Span {
    uint32_t id, name, owner, creator, id_len, name_len, owner_len, creator_len;
  };
  std::vector<Span> spans;  // into text, which grows while scanning
  auto text_buffer = std::make_shared<std::string>();
  std::string& text = *text_buffer;
  std::string prefix;
  store::EntityPrefix(ws, EntityKind::kAgent, &prefix);
  store::Record r;
  AgentFields f;
  rd.view->ScanEncodedRecords(prefix, [&](std::string_view k, std::string_view v) {
    store::DecodeRecord(v, &r);
    if (!LiveAgentFields(r, &f)) return true;
    const std::string_view encoded = k.substr(prefix.size());
    std::string_view rest = encoded;
    std::string_view id;
    if (!store::GetLengthPrefixed(&rest, &id) || !rest.empty()) return true;
    inv->key_off.push_back(static_cast<uint32_t>(inv->key_ids.size()));
    inv->key_ids.append(encoded);
    Agent& a = inv->agents.emplace_back();
    auto put = [&text](std::string_view v, uint32_t* off, uint32_t* len) {
      *off = static_cast<uint32_t>(text.size());
      *len = static_cast<uint32_t>(v.size());
      text.append(v);
    };
    Span& sp = spans.emplace_back();
    put(id, &sp.id, &sp.id_len);
    a.has_name = f.has_name;
    put(f.name, &sp.name, &sp.name_len);
    a.visibility = f.visibility;
    put(f.owner, &sp.owner, &sp.owner_len);
    put(f.creator, &sp.creator, &sp.creator_len);
    a.created_at_ms = f.created_at_ms;
    created_by.emplace_back(f.creator);
    return true;
  });

  // 2. Creator emails: the latest profile email of each distinct creator in this workspace.
  std::unordered_map<std::string_view, uint32_t> creators;  // creator -> email index or kNoEmail
  for (const std::string& c : created_by) creators.emplace(c, kNoEmail);
  auto take_email = [&](uint32_t* slot, std::string_view email) {
    if (email.empty()) return;
    *slot = static_cast<uint32_t>(inv->emails.size());
    inv->emails.emplace_back(email);
  };
  if (creators.size() > kProfileScanThreshold) {
    store::UserProfileKey(ws, "", &prefix);
    prefix.pop_back();  // without the empty user id's length prefix
    rd.view->ScanEncodedRecords(prefix, [&](std::string_view k, std::string_view v) {
      std::string_view rest = k.substr(prefix.size()), user;
      if (!store::GetLengthPrefixed(&rest, &user) || !rest.empty()) return true;
      auto it = creators.find(user);
      if (it == creators.end()) return true;
      store::DecodeRecord(v, &r);
      take_email(&it->second, ProfileRecordEmail(r));
      return true;
    });
  } else {
    for (auto& [creator, slot] : creators) take_email(&slot, ProfileEmail(rd, ws, creator, &r));
  }
  for (size_t i = 0; i < inv->agents.size(); ++i) {
    Agent& a = inv->agents[i];
    a.email = creators[created_by[i]];
    const Span& sp = spans[i];
    const std::string_view final_text = text;  // final: the views stay valid
    a.id = final_text.substr(sp.id, sp.id_len);
    a.name = final_text.substr(sp.name, sp.name_len);
    a.owner = final_text.substr(sp.owner, sp.owner_len);
    a.creator = final_text.substr(sp.creator, sp.creator_len);
    inv->creator_email.emplace(a.creator, a.email);
  }
  inv->texts.push_back(std::move(text_buffer));

  // Id order (the scan returned key order: by id length, then id).
  const size_t n = inv->agents.size();
  inv->key_off.push_back(static_cast<uint32_t>(inv->key_ids.size()));
  inv->key_order.resize(n);
  for (uint32_t p = 0; p < n; ++p) inv->key_order[p] = p;
  auto by_id = [&](uint32_t x, uint32_t y) { return inv->agents[x].id < inv->agents[y].id; };
  if (!std::is_sorted(inv->key_order.begin(), inv->key_order.end(), by_id)) {
    std::vector<uint32_t> perm = inv->key_order;  // perm[j] = key position of the j-th by id
    std::sort(perm.begin(), perm.end(), by_id);
    std::vector<Agent> sorted(n);
    for (uint32_t j = 0; j < n; ++j) {
      sorted[j] = inv->agents[perm[j]];
      inv->key_order[perm[j]] = j;
    }
    inv->agents = std::move(sorted);
  }
  FinishInventory(inv.get());
  return inv;
}

}  // namespace tally::query::internal
