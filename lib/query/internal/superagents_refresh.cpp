#include "query/internal/superagents_refresh.h"

#include <algorithm>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/saturating.h"
#include "query/internal/superagents_columns.h"
#include "query/internal/superagents_orders.h"
#include "query/range.h"

namespace tally::query::internal {
namespace {

using event::EntityKind;
using store::Counters;

// What one write added to the usage of one agent on one day (Refresh).
struct Delta {
  uint32_t slot = 0;  // the agent
  DayNumber day = 0;
  Credits credits;
  uint32_t users_at = 0, users_len = 0;  // the users it added, in a buffer of Refresh
};

// Whether an agent row listed as `cached` (null: not listed) shows the same after a write merged
// `f` into it: true for a field the listing does not show, or one it shows with the same value
// (whichever of the two values then wins, the listing is unchanged); false otherwise, and for
// the fields that decide whether and since when it is listed (created, deleted, revived).
bool FieldShowsAs(const Agent* cached, const store::NoteField& f) {
  if (f.id == store::field::kEntityProject || f.id == store::field::kEntityCopied) return true;
  if (!cached) return false;
  switch (f.id) {
    case store::field::kEntityName:
      return cached->has_name && cached->name == f.value;
    case store::field::kEntityVisibility:
      return ParseVis(f.value) == cached->visibility;
    case store::field::kEntityOwner:
      return cached->owner == f.value;
    default:
      return false;
  }
}

// An agent the writes since the cached state touched.
struct TouchedAgent {
  uint32_t old = kGone;  // index in prev
  bool row = false;
  std::string id;  // agents not in prev only (the others': prev_agents[old].id)
};

// A re-read row that changed, appeared or went away.
struct Update {
  uint32_t old = kGone;
  uint32_t slot = 0;  // in touched
  bool live = false;
  bool has_name = false;
  Vis visibility = kOther;
  int64_t created_at_ms = 0;
  uint32_t at = 0;  // offset of id, name, owner, creator in `strings`
  uint32_t len[4] = {0, 0, 0, 0};
};

// One run of Refresh: the cached state it starts from (`old`, `prev`), what the writes since did
// (steps 1), the inventory at the new state (2), and the entry it makes (`next`: 3 and 4).
struct RefreshRun {
  RefreshRun(const Reader& reader, const std::string& workspace, CacheEntry cached)
      : rd(reader),
        ws(workspace),
        old(std::move(cached)),
        prev(*old.inventory),
        prev_agents(prev.agents),
        prev_n(prev_agents.size()) {}

  // 1. What the writes since did, from the store's change log. Per touched agent: whether its
  // row may now list it differently (`row`: a field the listing shows got another value, or it
  // was created, deleted or revived: re-read), and what its usage gained (`deltas`, kept for
  // agents listed before). Per creator: whether a write named another email (re-read). False
  // when the log cannot say.
  bool CollectChanges();
  // Re-reads the rows that may list differently and the creators named with another email:
  // `usage`, `updates`, `new_emails`.
  void ReadChangedRows();
  // 2. The inventory at the new state, and where each old agent went.
  void PlaceAgents();
  void MergeInventory();
  // The key order of `ni`: prev's, mapped, with the inserted agents merged in by encoded id.
  void MergeKeyOrder(Inventory* ni) const;
  // 3. Columns: unchanged entries carried over; the moved agents listed before carried over
  // with their deltas added, the others read from the store (point reads over every bucket).
  void CarryColumns();
  void CarryActive();
  // 4. Orders: untouched agents in their old relative order, the moved ones placed back. A sort
  // on a column moves every agent whose usage changed, the others only those whose rows did.
  void CarryOrders();

  uint32_t NewIndex(uint32_t j) const { return old_to_new.empty() ? j : old_to_new[j]; }
  // Carries a per-agent vector over to the new indexes (entries of removed agents dropped).
  template <typename V>
  void Remap(const V& from, V* to) const {
    if (same_indexes) {
      *to = from;
      return;
    }
    to->resize(n);
    for (uint32_t j = 0; j < prev_n; ++j)
      if (const uint32_t i = old_to_new[j]; i != kGone) (*to)[i] = from[j];
  }

  const Reader& rd;
  const std::string& ws;
  const CacheEntry old;
  const Inventory& prev;
  const std::vector<Agent>& prev_agents;
  const size_t prev_n;

  // Step 1.
  std::vector<TouchedAgent> touched;
  std::vector<Delta> deltas;          // each agent's together, in write order
  std::vector<uint32_t> deltas_of;    // slot in touched -> first delta
  std::vector<uint32_t> delta_users;  // Delta::users_* index into it
  std::vector<std::string> reread_creators;
  // `usage`: old indexes whose row is unchanged (and the slot of each); `updates`: rows that
  // changed or appeared or went away (their strings in `strings`).
  std::vector<uint32_t> usage, usage_slot;
  std::vector<Update> updates;
  std::shared_ptr<std::string> strings = std::make_shared<std::string>();
  std::vector<std::pair<std::string_view, std::string>> new_emails;  // (creator, email)

  // Step 2.
  std::shared_ptr<const Inventory> inv;
  std::vector<uint32_t> moved;       // new indexes of the agents whose keys may have changed
  std::vector<uint32_t> inserted;    // those of them with a new or changed row (the others: usage)
  std::vector<uint32_t> old_to_new;  // empty: the identity
  // Parallel to moved: where each agent was in prev and its slot in touched (both kGone for an
  // agent not listed before, whose columns are read from the store).
  std::vector<uint32_t> moved_old, moved_slot;
  size_t n = 0;  // agents of inv

  // Steps 3 and 4.
  CacheEntry next;
  bool same_indexes = true;
  bool unchanged = true;
  size_t fresh = 0;  // moved agents not listed before
};

bool RefreshRun::CollectChanges() {
  std::vector<uint32_t> slot_of_old(prev_n, kGone);          // prev index -> slot in touched
  std::unordered_map<std::string, uint32_t> slot_of_absent;  // agents not in prev
  // An agent's index in prev (kGone if absent). Changes come in key order, which is usually id
  // order too: the search gallops forward from the previous hit before it bisects.
  size_t hint = 0;
  auto index_of = [&](std::string_view id) {
    size_t lo = 0, hi = prev_n;
    if (hint < prev_n && prev_agents[hint].id < id) {
      // Below lo every id is smaller; at hint + step (if there) it is not.
      size_t step = 1;
      lo = hint + 1;
      while (hint + step < prev_n && prev_agents[hint + step].id < id) {
        lo = hint + step + 1;
        step *= 2;
      }
      hi = std::min(prev_n, hint + step + 1);
    }
    auto it = std::lower_bound(prev_agents.begin() + lo, prev_agents.begin() + hi, id,
                               [](const Agent& a, std::string_view x) { return a.id < x; });
    if (it == prev_agents.end() || it->id != id) return kGone;
    hint = static_cast<size_t>(it - prev_agents.begin());
    return static_cast<uint32_t>(hint);
  };
  const bool chained =
      rd.store.changes().Collect(ws, old.seq, rd.version(), [&](const store::ChangeLog::Change& c) {
        if (c.kind == store::RecordKeyRef::Kind::kProfile) {
          auto creator = prev.creator_email.find(c.id);
          if (creator == prev.creator_email.end()) return;  // not shown anywhere
          for (const store::NoteField& f : c.fields) {
            if (f.id == store::field::kUserEmail && f.value != prev.EmailAt(creator->second)) {
              reread_creators.emplace_back(c.id);
            }
          }
          return;
        }
        const uint32_t old_index = index_of(c.id);
        uint32_t* slot_ref;
        if (old_index != kGone) {
          slot_ref = &slot_of_old[old_index];
        } else {
          slot_ref = &slot_of_absent.try_emplace(std::string(c.id), kGone).first->second;
        }
        if (*slot_ref == kGone) {
          *slot_ref = static_cast<uint32_t>(touched.size());
          touched.push_back({old_index, false, old_index == kGone ? std::string(c.id) : ""});
        }
        const uint32_t slot = *slot_ref;
        TouchedAgent& t = touched[slot];
        const Agent* cached = t.old == kGone ? nullptr : &prev_agents[t.old];
        for (const store::NoteField& f : c.fields) {
          if (!FieldShowsAs(cached, f)) t.row = true;
        }
        if (!cached) return;  // listed after this only if its row says so (then re-read)
        for (const store::ChangeLog::Usage& u : c.usage) {
          Delta& d = deltas.emplace_back();
          d.slot = slot;
          d.day = u.day;
          d.credits.message = u.counters->d[Counters::kAgentMessageCredits];
          d.credits.integration = u.counters->d[Counters::kAgentIntegrationCredits];
          d.users_at = static_cast<uint32_t>(delta_users.size());
          d.users_len = static_cast<uint32_t>(u.users.size());
          delta_users.insert(delta_users.end(), u.users.begin(), u.users.end());
        }
      });
  if (!chained) return false;
  // Each agent's deltas together, in write order.
  std::stable_sort(deltas.begin(), deltas.end(),
                   [](const Delta& a, const Delta& b) { return a.slot < b.slot; });
  deltas_of.assign(touched.size() + 1, 0);  // slot -> first delta
  for (const Delta& d : deltas) ++deltas_of[d.slot + 1];
  for (size_t t = 0; t < touched.size(); ++t) deltas_of[t + 1] += deltas_of[t];
  return true;
}

void RefreshRun::ReadChangedRows() {
  std::string k;
  store::Record r;
  AgentFields f;
  for (uint32_t slot = 0; slot < touched.size(); ++slot) {
    const TouchedAgent& t = touched[slot];
    const std::string_view id = t.old == kGone ? std::string_view(t.id) : prev_agents[t.old].id;
    if (!t.row) {
      // Its row shows as it did: listed as before (or still not at all); only usage changed.
      if (t.old != kGone) {
        usage.push_back(t.old);
        usage_slot.push_back(slot);
      }
      continue;
    }
    store::EntityKey(ws, EntityKind::kAgent, id, &k);
    const bool live = rd.view->GetRecord(k, &r) && LiveAgentFields(r, &f);
    if (t.old == kGone && !live) continue;  // not listed before or after
    const Agent* it = t.old == kGone ? nullptr : &prev_agents[t.old];
    if (it && live && f.has_name == it->has_name && f.name == it->name &&
        f.visibility == it->visibility && f.owner == it->owner && f.creator == it->creator &&
        f.created_at_ms == it->created_at_ms) {
      usage.push_back(t.old);
      usage_slot.push_back(slot);
      continue;
    }
    Update& u = updates.emplace_back();
    u.old = t.old;
    u.slot = slot;
    u.live = live;
    if (!live) continue;
    u.has_name = f.has_name;
    u.visibility = f.visibility;
    u.created_at_ms = f.created_at_ms;
    u.at = static_cast<uint32_t>(strings->size());
    const std::string_view parts[4] = {id, f.name, f.owner, f.creator};
    for (int p = 0; p < 4; ++p) {
      u.len[p] = static_cast<uint32_t>(parts[p].size());
      strings->append(parts[p]);
    }
  }
  std::sort(reread_creators.begin(), reread_creators.end());
  reread_creators.erase(std::unique(reread_creators.begin(), reread_creators.end()),
                        reread_creators.end());
  for (const std::string& user : reread_creators) {
    auto c = prev.creator_email.find(user);
    const std::string_view email = ProfileEmail(rd, ws, user, &r);
    if (email != prev.EmailAt(c->second)) new_emails.emplace_back(c->first, std::string(email));
  }
}

void RefreshRun::PlaceAgents() {
  inv = old.inventory;
  if (updates.empty() && new_emails.empty()) {
    moved = usage;
    moved_old = usage;
    moved_slot = usage_slot;
  } else {
    MergeInventory();
  }
  n = inv->agents.size();
}

void RefreshRun::MergeInventory() {
  store::Record r;
  auto next_inv = std::make_shared<Inventory>();
  Inventory& ni = *next_inv;
  ni.texts = prev.texts;
  ni.texts.push_back(strings);  // final: views into it stay valid
  ni.emails = prev.emails;
  ni.creator_email = prev.creator_email;
  std::vector<std::string_view> gained;  // creators that had no email before
  auto set_email = [&](std::string_view creator, std::string_view email) {
    uint32_t& slot = ni.creator_email[creator];
    if (email.empty()) {
      slot = kNoEmail;  // (profiles never lose an email; kept for completeness)
    } else if (slot == kNoEmail) {
      slot = static_cast<uint32_t>(ni.emails.size());
      ni.emails.emplace_back(email);
      gained.push_back(creator);
    } else {
      ni.emails[slot] = email;
    }
  };
  for (const auto& [creator, email] : new_emails) set_email(creator, email);
  struct LiveUpdate {
    Agent agent;
    uint32_t old, slot;
  };
  std::vector<LiveUpdate> live_updates;  // by id
  std::vector<uint8_t> replaced(prev_n, 0);
  for (Update& u : updates) {
    if (u.old != kGone) replaced[u.old] = 1;
    if (!u.live) continue;
    const std::string_view all(*strings);
    size_t at = u.at;
    std::string_view part[4];
    for (int p = 0; p < 4; ++p) {
      part[p] = all.substr(at, u.len[p]);
      at += u.len[p];
    }
    LiveUpdate& lu = live_updates.emplace_back();
    lu.old = u.old;
    lu.slot = u.old == kGone ? kGone : u.slot;
    Agent& a = lu.agent;
    a.id = part[0];
    a.name = part[1];
    a.owner = part[2];
    a.creator = part[3];
    a.has_name = u.has_name;
    a.visibility = u.visibility;
    a.created_at_ms = u.created_at_ms;
    if (!ni.creator_email.contains(a.creator)) {  // a new creator: its profile email
      ni.creator_email.emplace(a.creator, kNoEmail);
      set_email(a.creator, ProfileEmail(rd, ws, a.creator, &r));
    }
    a.email = ni.creator_email[a.creator];
  }
  std::sort(live_updates.begin(), live_updates.end(),
            [](const LiveUpdate& x, const LiveUpdate& y) { return x.agent.id < y.agent.id; });
  // Merge by id: unchanged old agents and the live updates.
  old_to_new.assign(prev_n, kGone);
  ni.agents.reserve(prev_n + live_updates.size());
  size_t u = 0;
  std::vector<uint32_t> from_prev;  // new index -> old index (kGone for the updates)
  from_prev.reserve(prev_n + live_updates.size());
  auto take_update = [&] {
    inserted.push_back(static_cast<uint32_t>(ni.agents.size()));
    moved_old.push_back(live_updates[u].old);
    moved_slot.push_back(live_updates[u].slot);
    from_prev.push_back(kGone);
    ni.agents.push_back(live_updates[u++].agent);
  };
  for (uint32_t j = 0; j < prev_n; ++j) {
    if (replaced[j]) continue;
    while (u < live_updates.size() && live_updates[u].agent.id < prev_agents[j].id) {
      take_update();
    }
    old_to_new[j] = static_cast<uint32_t>(ni.agents.size());
    from_prev.push_back(j);
    Agent& a = ni.agents.emplace_back(prev_agents[j]);
    if (!gained.empty() && std::find(gained.begin(), gained.end(), a.creator) != gained.end())
      a.email = ni.creator_email[a.creator];
  }
  while (u < live_updates.size()) take_update();
  if (ni.texts.size() > kMaxTextBuffers) Repack(&ni);
  moved = inserted;
  for (size_t u = 0; u < usage.size(); ++u) {
    moved.push_back(old_to_new[usage[u]]);
    moved_old.push_back(usage[u]);
    moved_slot.push_back(usage_slot[u]);
  }
  // Key order: the old one mapped, with the live updates merged in by encoded id.
  MergeKeyOrder(&ni);
  FinishInventory(&ni, &prev, &from_prev);
  inv = std::move(next_inv);
}

void RefreshRun::MergeKeyOrder(Inventory* ni_out) const {
  Inventory& ni = *ni_out;
  std::vector<std::pair<std::string, uint32_t>> update_keys;  // (encoded id, new index)
  for (uint32_t i : inserted) {
    std::string enc;
    store::PutLengthPrefixed(&enc, ni.agents[i].id);
    update_keys.emplace_back(std::move(enc), i);
  }
  std::sort(update_keys.begin(), update_keys.end());
  ni.key_order.reserve(ni.agents.size());
  ni.key_ids.reserve(prev.key_ids.size() + update_keys.size() * 24);
  ni.key_off.reserve(ni.agents.size() + 1);
  auto push_key = [&](std::string_view enc, uint32_t index) {
    ni.key_order.push_back(index);
    ni.key_off.push_back(static_cast<uint32_t>(ni.key_ids.size()));
    ni.key_ids.append(enc);
  };
  size_t q = 0;
  for (size_t p = 0; p < prev.key_order.size(); ++p) {
    const uint32_t to = old_to_new[prev.key_order[p]];
    if (to == kGone) continue;
    const std::string_view enc = prev.KeyId(p);
    while (q < update_keys.size() && std::string_view(update_keys[q].first) < enc) {
      push_key(update_keys[q].first, update_keys[q].second);
      ++q;
    }
    push_key(enc, to);
  }
  for (; q < update_keys.size(); ++q) push_key(update_keys[q].first, update_keys[q].second);
  ni.key_off.push_back(static_cast<uint32_t>(ni.key_ids.size()));
}

void RefreshRun::CarryColumns() {
  next.seq = rd.version();
  next.inventory = inv;
  same_indexes = old_to_new.empty();
  unchanged = moved.empty() && same_indexes;
  for (uint32_t slot : moved_slot) fresh += slot == kGone;
  for (const auto& [range, col] : old.credits) {
    if (unchanged) {
      next.credits.emplace_back(range, col);
      continue;
    }
    const std::vector<BucketRef> buckets = DecomposeRange(range.first, range.second);
    if (!PatchColumn(fresh * buckets.size(), n)) continue;  // rescanned when needed
    auto patched = std::make_shared<CreditColumn>();
    Remap(*col, patched.get());
    for (size_t m = 0; m < moved.size(); ++m) {
      const uint32_t i = moved[m], slot = moved_slot[m];
      Credits& c = (*patched)[i];
      if (slot == kGone) {
        c = AgentCredits(rd, ws, inv->agents[i], buckets);
        continue;
      }
      c = (*col)[moved_old[m]];
      for (uint32_t d = deltas_of[slot]; d < deltas_of[slot + 1]; ++d) {
        if (deltas[d].day < range.first || deltas[d].day > range.second) continue;
        SatAddTo(&c.message, deltas[d].credits.message);
        SatAddTo(&c.integration, deltas[d].credits.integration);
      }
    }
    next.credits.emplace_back(range, std::move(patched));
  }
  CarryActive();
}

void RefreshRun::CarryActive() {
  for (const auto& [day, col] : old.active) {
    if (unchanged) {
      // The same column describes the new state too, and so do its sets.
      if (col->sets) {
        std::lock_guard lock(col->sets->mu);
        if (col->sets->seq == old.seq) col->sets->seq = next.seq;
      }
      next.active.emplace_back(day, col);
      continue;
    }
    const std::vector<BucketRef> buckets = DecomposeRange(day - 29, day);
    const std::shared_ptr<ActiveSets>& sets = col->sets;
    if (!sets || !PatchColumn(fresh * buckets.size(), n)) continue;
    std::lock_guard lock(sets->mu);
    // Another refresh moved the sets past this column's state: recompute instead.
    if (sets->seq != old.seq) continue;
    auto patched = std::make_shared<ActiveColumn>();
    Remap(col->count, &patched->count);
    if (!same_indexes) {
      std::vector<std::unique_ptr<store::UserBitmap>> users(n);
      for (uint32_t j = 0; j < prev_n; ++j)
        if (const uint32_t i = old_to_new[j]; i != kGone) users[i] = std::move(sets->users[j]);
      for (size_t m = 0; m < moved.size(); ++m) {  // listed before with another row
        const uint32_t j = moved_old[m];
        if (j != kGone && old_to_new[j] == kGone) users[moved[m]] = std::move(sets->users[j]);
      }
      sets->users = std::move(users);
    }
    for (size_t m = 0; m < moved.size(); ++m) {
      const uint32_t i = moved[m], slot = moved_slot[m];
      std::unique_ptr<store::UserBitmap>& users = sets->users[i];
      if (slot == kGone || !users) users = std::make_unique<store::UserBitmap>();
      if (slot == kGone) {
        OrAgentUsers(rd, ws, inv->agents[i], buckets, users.get());
      } else {
        for (uint32_t d = deltas_of[slot]; d < deltas_of[slot + 1]; ++d) {
          const Delta& delta = deltas[d];
          if (delta.day < day - 29 || delta.day > day || delta.users_len == 0) continue;
          for (uint32_t k = 0; k < delta.users_len; ++k)
            users->Add(delta_users[delta.users_at + k]);
        }
      }
      patched->count[i] = static_cast<int64_t>(users->Cardinality());
    }
    sets->seq = next.seq;
    patched->sets = sets;
    next.active.emplace_back(day, std::move(patched));
  }
}

void RefreshRun::CarryOrders() {
  std::vector<uint8_t> is_moved(n, 0), is_inserted(n, 0);
  for (uint32_t i : moved) is_moved[i] = 1;
  for (uint32_t i : inserted) is_inserted[i] = 1;
  for (auto& [ok, order] : old.orders) {
    // Email orders: a creator's new email moves all of its agents.
    if (ok.field == SuperagentSortField::kCreatedByEmail && !new_emails.empty()) continue;
    const bool by_column = IsColumnSort(ok.field);
    const std::vector<uint32_t>& to_place = by_column ? moved : inserted;
    const std::vector<uint8_t>& placed = by_column ? is_moved : is_inserted;
    if (to_place.empty() && same_indexes) {
      next.orders.emplace_back(ok, order);
      continue;
    }
    SortLess less{inv.get(), ok.field, ok.descending, nullptr, nullptr};
    if (by_column) {
      for (const auto& [range, col] : next.credits)
        if (range.first == ok.from && range.second == ok.to) less.credits = col.get();
      for (const auto& [day, col] : next.active)
        if (day == ok.today) less.active = col.get();
      if (!less.credits || !less.active) continue;  // recomputed with its column when needed
    }
    next.orders.emplace_back(ok,
                             PatchOrder(*order, less, by_column, to_place, placed, old_to_new, n));
  }
}

}  // namespace

bool Refresh(Cache& cache, const std::string& key, const Reader& rd, const std::string& ws) {
  CacheEntry old = cache.Copy(key);
  if (!old.inventory || old.seq >= rd.version()) return false;
  RefreshRun run(rd, ws, std::move(old));
  if (!run.CollectChanges()) return false;
  run.ReadChangedRows();
  run.PlaceAgents();
  run.CarryColumns();
  run.CarryOrders();
  cache.Put(key, std::move(run.next));
  cache.CountRefresh();
  return true;
}

}  // namespace tally::query::internal
