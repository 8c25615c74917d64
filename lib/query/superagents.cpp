#include "query/superagents.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "common/parse.h"
#include "common/saturating.h"
#include "query/internal/substring.h"
#include "query/range.h"
#include "store/store.h"

// How a request is answered (see superagents.h for the semantics):
//
//  1. The workspace's agent table ("inventory": every live agent with its name, visibility,
//     owner, creator, created_at and creator email, plus lower-cased search texts) is built from
//     one store snapshot (store::ReadView) by one scan of the agent rows and one scan (or a few
//     point reads) of the workspace's user profiles.
//  2. Credits over [from, to] and active users of the last 30 days are computed either for the
//     whole table (one counter scan / bitmap scan per bucket of the range, when many agents are
//     listed) or for the listed agents only (point reads, when few are).
//  3. Search and visibility filter the table, the listed agents are sorted by index, and only
//     then are the result rows materialized.
//
// The table and the whole-table credit and active-user columns are kept in a small in-process
// cache keyed by (store identity and path, workspace) and tagged with the version of the store
// state they describe (ReadView::version): reused as they are by a request whose snapshot has the
// same version; brought forward by Refresh (below) from what the store's change log says the
// writes since did; rebuilt when the log cannot say. A cached answer equals a recomputed one
// (credits up to the last bits of a double: the same amounts added in another order).
namespace tally::query {
namespace {

using event::EntityKind;
using store::Counters;
using store::Scope;

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Folded(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

// Visibility kinds as stored; kOther for anything else (matches only VisibilityFilter::kAny).
enum Vis : uint8_t { kOther, kPrivate, kWorkspace, kPublicWithLogin, kPublicWithoutLogin };

Vis ParseVis(std::string_view v) {
  if (v == "private") return kPrivate;
  if (v == "workspace") return kWorkspace;
  if (v == "public_with_login") return kPublicWithLogin;
  if (v == "public_without_login") return kPublicWithoutLogin;
  return kOther;
}

bool VisibilityMatches(VisibilityFilter f, Vis v) {
  switch (f) {
    case VisibilityFilter::kAny:
      return true;
    case VisibilityFilter::kPrivate:
      return v == kPrivate;
    case VisibilityFilter::kWorkspace:
      return v == kWorkspace;
    case VisibilityFilter::kPublicWithLogin:
      return v == kPublicWithLogin;
    case VisibilityFilter::kPublicWithoutLogin:
      return v == kPublicWithoutLogin;
    case VisibilityFilter::kPublic:
      return v == kPublicWithLogin || v == kPublicWithoutLogin;
  }
  return false;
}

constexpr uint32_t kNoEmail = UINT32_MAX;
constexpr uint32_t kGone = UINT32_MAX;  // an agent index that is not there

// Sets hit[i] = 1 for every item i of `joined` that contains `needle`: items are each followed
// by '\0', item i's at ends[i]. One FindSubstring pass (internal/substring.h, 16 positions at a
// time: up to 3x faster than glibc's memmem here, itself about 3x faster than
// std::boyer_moore_horspool_searcher); after a hit, the search goes on from the next item. A
// needle holding '\0' could span two items: each item is then searched on its own.
void MarkContaining(std::string_view joined, const std::vector<uint32_t>& ends,
                    std::string_view needle, uint8_t* hit) {
  if (needle.find('\0') != std::string_view::npos) {
    for (size_t i = 0; i < ends.size(); ++i) {
      const size_t begin = i == 0 ? 0 : ends[i - 1] + 1;
      hit[i] = joined.substr(begin, ends[i] - begin).find(needle) != std::string_view::npos;
    }
    return;
  }
  const char* const base = joined.data();
  const char* const end = base + joined.size();
  size_t i = 0;  // hits come in increasing item order
  for (const char* from = base; from < end;) {
    const char* found = internal::FindSubstring(from, end, needle);
    if (!found) break;
    while (ends[i] < static_cast<size_t>(found - base)) ++i;
    hit[i] = 1;
    from = base + ends[i] + 1;
  }
}

// One live agent; its strings live in Inventory::texts (compact rows, few cache misses when the
// listed rows are materialized in sort order).
struct Agent {
  std::string_view id;
  std::string_view name;  // "" unless has_name
  std::string_view owner;
  std::string_view creator;  // created_by (the user whose profile email is shown)
  int64_t created_at_ms = 0;
  uint32_t email = kNoEmail;  // index into Inventory::emails
  bool has_name = false;
  Vis visibility = kOther;
};

// Every live agent of one workspace at one snapshot, sorted by id (so an agent's index is its
// rank by id, the tie-break of every sort).
struct Inventory {
  std::vector<Agent> agents;
  // Every agent's id, name, owner and creator (Agent's views point here); a refreshed inventory
  // shares its predecessor's buffers and adds one for the agents it changed.
  std::vector<std::shared_ptr<const std::string>> texts;
  // Lower-cased names, each followed by '\0', in agent order (unnamed agents: just '\0'), so a
  // search is one pass (MarkContaining); name_end[i] = offset of agent i's terminator.
  std::string folded_names;
  std::vector<uint32_t> name_end;
  // Per agent, for the filter pass without touching the (large) Agent structs.
  std::vector<uint32_t> email_of;   // = agents[i].email
  std::vector<uint8_t> vis_of;      // = agents[i].visibility
  std::vector<std::string> emails;  // distinct creator emails
  // The same, lower-cased and joined like folded_names; email_end[e] = offset of e's terminator.
  std::string folded_emails;
  std::vector<uint32_t> email_end;
  // Each distinct creator's email index (or kNoEmail); keys view into `texts`.
  std::unordered_map<std::string_view, uint32_t> creator_email;
  // The agents in key order (the order of the length-prefixed id in every counter, bitmap and
  // record key), to join scans without lookups: key_order[p] = agent index, and the encoded id
  // (length prefix + id) of position p is key_ids[key_off[p], key_off[p + 1]).
  std::vector<uint32_t> key_order;
  std::string key_ids;
  std::vector<uint32_t> key_off;
  size_t bytes = 0;  // approximate memory held, set once built
  // The email of slot `e` (Agent::email, creator_email); "" for kNoEmail.
  std::string_view EmailAt(uint32_t e) const {
    return e == kNoEmail ? std::string_view() : std::string_view(emails[e]);
  }
  std::string_view KeyId(size_t p) const {
    return std::string_view(key_ids).substr(key_off[p], key_off[p + 1] - key_off[p]);
  }
};

struct Credits {
  double message = 0;
  double integration = 0;
};

// Whole-table columns, aligned with Inventory::agents.

using CreditColumn = std::vector<Credits>;

// The distinct users behind an active-user column, per agent, so that a refresh adds what the
// touched buckets hold (bitmaps only ever gain users) instead of re-reading the whole window.
// Refresh moves it forward in place, so it describes one store state at a time: the one of the
// column it was last moved forward for (`seq`, with that state's agent indexes). Guarded by mu.
struct ActiveSets {
  std::mutex mu;
  uint64_t seq = 0;
  std::vector<std::unique_ptr<store::UserBitmap>> users;  // null: no users
};

// Distinct users over the 30 days ending on a day.
struct ActiveColumn {
  std::vector<int64_t> count;  // per agent
  // The sets behind `count` while nothing moved them past this column's state (null: none).
  std::shared_ptr<ActiveSets> sets;
  int64_t operator[](size_t i) const { return count[i]; }
};

// ---------------------------------------------------------------------------------- the cache

constexpr size_t kCacheWorkspaces = 16;
constexpr size_t kCacheAgents = 1'000'000;  // agents of all cached inventories together
constexpr size_t kCacheColumnsPerKind = 4;  // credit ranges / active-user days per workspace
constexpr size_t kCacheOrders = 16;         // sort orders per workspace
// Besides the counts above, the estimated bytes of all entries (EntryBytes) are bounded by
// SetSuperagentsCacheMaxBytes (default kSuperagentsCacheMaxBytes): agent names and emails of up
// to a few KB each make the agent count alone a weak bound on memory.

// A sort order of the whole inventory.
struct Order {
  std::vector<uint32_t> index;  // agent indexes in listing order
  // For a sort on a column: each agent's sort key (ColumnKey), in listing order, so that a
  // refresh places moved agents without a random read of the columns per comparison. Empty for
  // the other sorts.
  std::vector<double> key;
};
struct OrderKey {
  SuperagentSortField field;
  bool descending;
  DayNumber from, to, today;  // the columns it was computed from
  bool operator==(const OrderKey&) const = default;
};

// The cached state of one workspace: the inventory and the columns and orders computed from
// it, all describing the store at version `seq` (store::ReadView::version; the inventory may have
// been built at an earlier one and carried forward by Refresh when no listed row changed since).
struct CacheEntry {
  uint64_t seq = 0;
  std::shared_ptr<const Inventory> inventory;
  std::list<std::pair<std::pair<DayNumber, DayNumber>, std::shared_ptr<const CreditColumn>>>
      credits;  // most recent first
  std::list<std::pair<DayNumber, std::shared_ptr<const ActiveColumn>>> active;
  std::list<std::pair<OrderKey, std::shared_ptr<const Order>>> orders;
  uint64_t last_use = 0;
  // When a request last found the entry (the follower keeps following it for a while).
  std::chrono::steady_clock::time_point used_at{};
  // Held while the entry is brought forward or rebuilt (shared by every state of the entry), so
  // that a request waits for a refresh in progress instead of repeating it.
  std::shared_ptr<std::mutex> refresh_mu;
};

// Estimated memory of the user set of one agent of an active-user column (a small CRoaring
// bitmap: its header, container arrays and a few dozen ids, with allocator overhead).
constexpr size_t kActiveSetBytes = 256;

// Estimated memory of a cache entry over `inv`: the inventory, and the most columns (with the
// user sets behind active-user columns) and sort orders the entry can hold.
size_t EntryBytes(const Inventory& inv) {
  return inv.bytes +
         inv.agents.size() *
             (kCacheColumnsPerKind * (sizeof(Credits) + sizeof(int64_t) + kActiveSetBytes) +
              kCacheOrders * (sizeof(uint32_t) + sizeof(double)));
}

class Cache {
 public:
  static Cache& Get() {
    static Cache* cache = new Cache();  // never destroyed: used until exit
    return *cache;
  }

  std::shared_ptr<const Inventory> FindInventory(const std::string& key, uint64_t seq) {
    std::lock_guard lock(mu_);
    CacheEntry* e = Entry(key, seq);
    return e ? e->inventory : nullptr;
  }

  // The store state the entry of `key` describes; 0 if none.
  uint64_t Seq(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    return it == entries_.end() || !it->second.inventory ? 0 : it->second.seq;
  }

  // A copy of the entry of `key` (empty inventory if none).
  CacheEntry Copy(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    return it == entries_.end() ? CacheEntry{} : it->second;
  }

  // The mutex held while the entry of `key` is brought forward or rebuilt; null if no entry.
  std::shared_ptr<std::mutex> RefreshMutex(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : it->second.refresh_mu;
  }

  // The keys starting with `prefix` whose entries a request found within `recent`.
  std::vector<std::string> RecentlyUsed(std::string_view prefix,
                                        std::chrono::steady_clock::duration recent) {
    std::vector<std::string> keys;
    const auto since = std::chrono::steady_clock::now() - recent;
    std::lock_guard lock(mu_);
    for (const auto& [key, e] : entries_) {
      if (e.inventory && e.used_at >= since && key.starts_with(prefix)) keys.push_back(key);
    }
    return keys;
  }

  // Replaces the entry of `key` by `entry` unless the cached one describes a later state.
  void Put(const std::string& key, CacheEntry entry) {
    CacheEntry old;  // destroyed after the lock is released
    std::lock_guard lock(mu_);
    CacheEntry& e = entries_[key];
    if (e.inventory && e.seq >= entry.seq) return;  // keep the newer one
    if (!entry.refresh_mu) {
      entry.refresh_mu = e.refresh_mu ? e.refresh_mu : std::make_shared<std::mutex>();
    }
    entry.used_at =
        e.inventory ? std::max(e.used_at, entry.used_at) : std::chrono::steady_clock::now();
    agents_ -= e.inventory ? e.inventory->agents.size() : 0;
    agents_ += entry.inventory->agents.size();
    bytes_ -= e.inventory ? EntryBytes(*e.inventory) : 0;
    bytes_ += EntryBytes(*entry.inventory);
    old = std::move(e);
    e = std::move(entry);
    e.last_use = ++clock_;
    Evict(key);
  }

  std::shared_ptr<const CreditColumn> FindCredits(const std::string& key, uint64_t seq,
                                                  DayNumber from, DayNumber to) {
    std::lock_guard lock(mu_);
    CacheEntry* e = Entry(key, seq);
    if (!e) return nullptr;
    for (const auto& [range, col] : e->credits)
      if (range.first == from && range.second == to) return col;
    return nullptr;
  }

  void PutCredits(const std::string& key, uint64_t seq, DayNumber from, DayNumber to,
                  std::shared_ptr<const CreditColumn> col) {
    std::lock_guard lock(mu_);
    CacheEntry* e = Entry(key, seq);
    if (!e) return;
    e->credits.emplace_front(std::make_pair(from, to), std::move(col));
    if (e->credits.size() > kCacheColumnsPerKind) e->credits.pop_back();
  }

  std::shared_ptr<const ActiveColumn> FindActive(const std::string& key, uint64_t seq,
                                                 DayNumber today) {
    std::lock_guard lock(mu_);
    CacheEntry* e = Entry(key, seq);
    if (!e) return nullptr;
    for (const auto& [day, col] : e->active)
      if (day == today) return col;
    return nullptr;
  }

  void PutActive(const std::string& key, uint64_t seq, DayNumber today,
                 std::shared_ptr<const ActiveColumn> col) {
    std::lock_guard lock(mu_);
    CacheEntry* e = Entry(key, seq);
    if (!e) return;
    e->active.emplace_front(today, std::move(col));
    if (e->active.size() > kCacheColumnsPerKind) e->active.pop_back();
  }

  std::shared_ptr<const Order> FindOrder(const std::string& key, uint64_t seq, const OrderKey& ok) {
    std::lock_guard lock(mu_);
    CacheEntry* e = Entry(key, seq);
    if (!e) return nullptr;
    for (const auto& [k, order] : e->orders)
      if (k == ok) return order;
    return nullptr;
  }

  void PutOrder(const std::string& key, uint64_t seq, const OrderKey& ok,
                std::shared_ptr<const Order> order) {
    std::lock_guard lock(mu_);
    CacheEntry* e = Entry(key, seq);
    if (!e) return;
    e->orders.emplace_front(ok, std::move(order));
    if (e->orders.size() > kCacheOrders) e->orders.pop_back();
  }

 private:
  // The entry of `key` if it describes exactly the store state `seq`.
  CacheEntry* Entry(const std::string& key, uint64_t seq) {
    auto it = entries_.find(key);
    if (it == entries_.end() || !it->second.inventory || it->second.seq != seq) return nullptr;
    it->second.last_use = ++clock_;
    it->second.used_at = std::chrono::steady_clock::now();
    return &it->second;
  }

 public:
  // Changes the bound on bytes and evicts down to it (the most recently used entry stays).
  void SetMaxBytes(size_t max_bytes) {
    std::vector<CacheEntry> evicted;  // destroyed after the lock is released
    std::lock_guard lock(mu_);
    max_bytes_ = max_bytes;
    std::string newest;
    uint64_t newest_use = 0;
    for (const auto& [key, e] : entries_) {
      if (e.last_use >= newest_use) {
        newest_use = e.last_use;
        newest = key;
      }
    }
    Evict(newest, &evicted);
  }

  // Entries and their estimated bytes.
  std::pair<size_t, size_t> Size() {
    std::lock_guard lock(mu_);
    return {entries_.size(), bytes_};
  }

 private:
  // Drops the least recently used entries (never `keep`) beyond the bounds; moves them to
  // `evicted` when given (to be destroyed outside the lock).
  void Evict(const std::string& keep, std::vector<CacheEntry>* evicted = nullptr) {
    while (entries_.size() > kCacheWorkspaces ||
           ((agents_ > kCacheAgents || bytes_ > max_bytes_) && entries_.size() > 1)) {
      auto victim = entries_.end();
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->first == keep) continue;
        if (victim == entries_.end() || it->second.last_use < victim->second.last_use) victim = it;
      }
      if (victim == entries_.end()) return;
      agents_ -= victim->second.inventory->agents.size();
      bytes_ -= EntryBytes(*victim->second.inventory);
      if (evicted) evicted->push_back(std::move(victim->second));
      entries_.erase(victim);
    }
  }

  std::mutex mu_;
  std::unordered_map<std::string, CacheEntry> entries_;  // key: db identity, path, workspace
  size_t agents_ = 0;
  size_t bytes_ = 0;  // EntryBytes of every entry's inventory
  size_t max_bytes_ = kSuperagentsCacheMaxBytes;
  uint64_t clock_ = 0;
};

// ---------------------------------------------------------------------------------- reading

// One snapshot for every read of a request, and the store it was taken from (for its change log).
struct Reader {
  explicit Reader(const store::Store& s) : store(s), view(s.NewReadView()) {}
  // With `stable`, a view whose staged rows also read as of its version (it holds staging off
  // while it lives): what a request thread computes and caches must not include a batch staged
  // after the version it is cached under, or the next refresh would add that batch again.
  // The follower needs none: it runs on the writing thread, between stages.
  Reader(const store::Store& s, bool stable)
      : store(s), view(stable ? s.NewStableReadView() : s.NewReadView()) {}
  uint64_t version() const { return view->version(); }
  const store::Store& store;
  std::unique_ptr<store::ReadView> view;
};

// The inventory fields of one agent row (views into the record).
struct AgentFields {
  std::string_view name;  // "" unless has_name
  bool has_name = false;
  Vis visibility = kOther;
  std::string_view owner;    // the owner field, else the creator
  std::string_view creator;  // created_by
  int64_t created_at_ms = 0;
};

// False if the row is not a live agent (never created or copied, or deleted and not revived).
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

// Fills the per-agent filter arrays (folded names, emails, visibility), the folded emails and the
// size estimate of an inventory whose agents, emails and key order are set. With `prev` and
// `from_prev` (the index in `prev` each agent was copied from, or kGone), unchanged agents' folded
// names are copied from `prev` instead of being folded again.
void FinishInventory(Inventory* inv, const Inventory* prev = nullptr,
                     const std::vector<uint32_t>* from_prev = nullptr) {
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

// A refreshed inventory shares the string buffers of its predecessors; beyond this many, Refresh
// repacks them into one so that strings of replaced agents do not accumulate.
constexpr size_t kMaxTextBuffers = 16;

// Copies every agent's strings into one new buffer and re-keys creator_email on it (dropping
// creators without agents), so that the older buffers can be freed.
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

// The email of a profile record; "" if none.
std::string_view ProfileRecordEmail(const store::Record& profile) {
  const store::Field* e = store::FindField(profile, store::field::kUserEmail);
  return e ? std::string_view(e->value) : std::string_view();
}

// The latest profile email of `user` in `ws` at the reader's snapshot; "" if none. The view
// points into *scratch.
std::string_view ProfileEmail(const Reader& rd, const std::string& ws, std::string_view user,
                              store::Record* scratch) {
  std::string key;
  store::UserProfileKey(ws, user, &key);
  if (!rd.view->GetRecord(key, scratch)) return {};
  return ProfileRecordEmail(*scratch);
}

// Above this many distinct creators, their emails come from one scan of the workspace's
// profiles instead of one point read each.
constexpr size_t kProfileScanThreshold = 64;

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

// Walks the agent rows under every prefix at once (prefix = a counter or bitmap bucket prefix
// plus the agent kind byte), in key order: fn(agent, k, value) for each row of an inventory agent
// under prefixes[k], all rows of one agent together and in increasing k, then done(agent). The
// rows and the inventory share the key order, so they are joined by one forward pass.
template <typename Fn, typename Done>
void MergeScan(const Reader& rd, bool bitmaps, const std::vector<std::string>& prefixes,
               const Inventory& inv, Fn fn, Done done) {
  const size_t n = inv.key_order.size();
  size_t p = 0;  // position in key order
  auto join = [&](std::string_view suffix, std::span<const store::ReadView::ScanRow> rows) {
    while (p < n && inv.KeyId(p) < suffix) ++p;
    if (p >= n || inv.KeyId(p) != suffix) return;
    for (const store::ReadView::ScanRow& row : rows) fn(inv.key_order[p], row.prefix, row.value);
    done(inv.key_order[p]);
  };
  if (bitmaps) {
    rd.view->MergeScanBitmaps(prefixes, join);
  } else {
    rd.view->MergeScanCounters(prefixes, join);
  }
}

// The agent-row prefixes of `buckets`: counter (bitmaps = false) or bitmap bucket prefixes of
// the workspace's entity scope, plus the agent kind byte.
std::vector<std::string> AgentPrefixes(const std::string& ws, const std::vector<BucketRef>& buckets,
                                       bool bitmaps) {
  std::vector<std::string> out(buckets.size());
  for (size_t k = 0; k < buckets.size(); ++k) {
    if (bitmaps) {
      store::BitmapKey(Scope::kEntity, ws, buckets[k].granularity, buckets[k].bucket, "", &out[k]);
    } else {
      store::CounterBucketPrefix(Scope::kEntity, ws, buckets[k].granularity, buckets[k].bucket,
                                 &out[k]);
    }
    out[k].push_back(static_cast<char>(EntityKind::kAgent));
  }
  return out;
}

// Credits of every agent of `inv` over the buckets of [from, to] (added in bucket order).
std::shared_ptr<CreditColumn> AllCredits(const Reader& rd, const std::string& ws,
                                         const Inventory& inv, DayNumber from, DayNumber to) {
  auto col = std::make_shared<CreditColumn>(inv.agents.size());
  Counters c;
  MergeScan(
      rd, /*bitmaps=*/false, AgentPrefixes(ws, DecomposeRange(from, to), false), inv,
      [&](uint32_t agent, size_t, std::string_view v) {
        c = Counters{};
        if (!store::AddEncodedCounters(v, &c)) return;
        Credits& cr = (*col)[agent];
        SatAddTo(&cr.message, c.d[Counters::kAgentMessageCredits]);
        SatAddTo(&cr.integration, c.d[Counters::kAgentIntegrationCredits]);
      },
      [](uint32_t) {});
  return col;
}

// Credits of one agent over `buckets`: point reads.
Credits AgentCredits(const Reader& rd, const std::string& ws, const Agent& a,
                     const std::vector<BucketRef>& buckets) {
  Credits cr;
  std::string extra, key;
  store::ScopeIdEntity(EntityKind::kAgent, a.id, &extra);
  Counters c;
  for (const BucketRef& b : buckets) {
    store::CounterKey(Scope::kEntity, ws, b.granularity, b.bucket, extra, &key);
    // A malformed value adds nothing (c stays zero).
    c = Counters{};
    if (!rd.view->AddCounters(key, &c)) continue;
    SatAddTo(&cr.message, c.d[Counters::kAgentMessageCredits]);
    SatAddTo(&cr.integration, c.d[Counters::kAgentIntegrationCredits]);
  }
  return cr;
}

// Distinct users of every agent of `inv` over `buckets`: the union of its bitmaps, kept per
// agent for refreshes.
std::shared_ptr<ActiveColumn> AllActive(const Reader& rd, const std::string& ws,
                                        const Inventory& inv,
                                        const std::vector<BucketRef>& buckets) {
  auto col = std::make_shared<ActiveColumn>();
  col->count.assign(inv.agents.size(), 0);
  col->sets = std::make_shared<ActiveSets>();
  col->sets->seq = rd.version();
  col->sets->users.resize(inv.agents.size());
  store::UserBitmap users;
  bool dirty = false;
  MergeScan(
      rd, /*bitmaps=*/true, AgentPrefixes(ws, buckets, true), inv,
      [&](uint32_t, size_t, std::string_view v) {
        users.OrEncoded(v);
        dirty = true;
      },
      [&](uint32_t agent) {
        if (!dirty) return;
        col->count[agent] = static_cast<int64_t>(users.Cardinality());
        col->sets->users[agent] = std::make_unique<store::UserBitmap>(std::move(users));
        dirty = false;
      });
  return col;
}

// Adds the users of agent `a` in `buckets` to *users (point reads).
void OrAgentUsers(const Reader& rd, const std::string& ws, const Agent& a,
                  const std::vector<BucketRef>& buckets, store::UserBitmap* users) {
  std::string extra, key;
  store::ScopeIdEntity(EntityKind::kAgent, a.id, &extra);
  for (const BucketRef& b : buckets) {
    store::BitmapKey(Scope::kEntity, ws, b.granularity, b.bucket, extra, &key);
    rd.view->OrBitmap(key, users);
  }
}

int64_t AgentActive(const Reader& rd, const std::string& ws, const Agent& a,
                    const std::vector<BucketRef>& buckets) {
  store::UserBitmap users;
  OrAgentUsers(rd, ws, a, buckets, &users);
  return static_cast<int64_t>(users.Cardinality());
}

// Whether point reads for `listed` agents over `buckets` beat whole-table scans (which are
// cached for the next requests): roughly, a point read costs what scanning ~8 rows does.
bool UsePointReads(size_t listed, size_t buckets, size_t table) {
  return listed <= 32 || listed * std::max<size_t>(buckets, 1) * 8 < table;
}

std::atomic<uint64_t> g_builds{0}, g_refreshes{0}, g_column_scans{0};

bool IsColumnSort(SuperagentSortField f) {
  return f == SuperagentSortField::kActiveUsers || f == SuperagentSortField::kMessageCredits ||
         f == SuperagentSortField::kIntegrationCredits || f == SuperagentSortField::kTotalCredits;
}

// The sort key of agent i for a field that depends on the columns.
double ColumnKey(SuperagentSortField f, const CreditColumn& credits, const ActiveColumn& active,
                 uint32_t i) {
  switch (f) {
    case SuperagentSortField::kActiveUsers:
      return static_cast<double>(active[i]);
    case SuperagentSortField::kMessageCredits:
      return credits[i].message;
    case SuperagentSortField::kIntegrationCredits:
      return credits[i].integration;
    default:
      return credits[i].message + credits[i].integration;
  }
}

// Whether `reads` point reads to bring a column forward beat recomputing it by scans over a
// table of `table` agents (when it is next needed).
bool PatchColumn(size_t reads, size_t table) { return UsePointReads(reads, 1, table); }

// A strict weak order on agent indexes of `inv` for one sort (ties by index, i.e. by id), given
// the columns it needs (null for the fields that need none).
struct SortLess {
  const Inventory* inv;
  SuperagentSortField field;
  bool descending;
  const CreditColumn* credits;
  const ActiveColumn* active;

  std::string_view Text(uint32_t i) const {
    const Agent& a = inv->agents[i];
    switch (field) {
      case SuperagentSortField::kName:
        return a.name;
      case SuperagentSortField::kCreatedByEmail:
        return inv->EmailAt(a.email);
      default:
        return a.owner;
    }
  }
  bool operator()(uint32_t x, uint32_t y) const {
    if (IsColumnSort(field) || field == SuperagentSortField::kCreatedAt) {
      const double kx = field == SuperagentSortField::kCreatedAt
                            ? static_cast<double>(inv->agents[x].created_at_ms)
                            : ColumnKey(field, *credits, *active, x);
      const double ky = field == SuperagentSortField::kCreatedAt
                            ? static_cast<double>(inv->agents[y].created_at_ms)
                            : ColumnKey(field, *credits, *active, y);
      if (kx != ky) return descending ? kx > ky : kx < ky;
    } else {
      const int c = Text(x).compare(Text(y));
      if (c != 0) return descending ? c > 0 : c < 0;
    }
    return x < y;
  }
};

// Merges `count` sorted items into `size` kept ones, also sorted (no item compares equal to a
// kept one): each item's place by binary search from the previous item's place, then block
// copies, so a few items cost a few searches, not a comparison per kept one. before(k, p): item
// k sorts before kept p; copy(from, to): emit kept [from, to); place(k): emit item k.
template <typename Before, typename Copy, typename Place>
void PlaceSorted(size_t count, size_t size, Before before, Copy copy, Place place) {
  size_t from = 0;
  for (size_t k = 0; k < count; ++k) {
    size_t lo = from, hi = size;
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (before(k, mid)) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    copy(from, lo);
    place(k);
    from = lo;
  }
  copy(from, size);
}

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

// Brings the cached state of `key` forward to the snapshot of `rd` using the store's change log
// (false, changing nothing, when the log cannot prove what changed since the cached state: too
// far back, or unlogged writes; the caller then rebuilds everything from the snapshot):
//  - an agent's row is re-read only when a write merged a field the listing shows with another
//    value than the cached one, or created, deleted or revived it (FieldShowsAs); a creator's
//    profile only when a write named another email;
//  - if no listed row changed, the inventory is kept as it is; otherwise (agents created,
//    deleted, renamed, re-owned, with a new visibility, creators with a new email) a new
//    inventory is made from the cached one in memory: unchanged agents keep their strings
//    (shared buffers) and move to their new index, changed ones are inserted;
//  - the cached columns are carried over with each touched agent's logged credits added and its
//    logged users ORed into the column's user sets; only agents listed for the first time are
//    read from the store (point reads; a column that would need too many is dropped and
//    rescanned when next needed);
//  - the cached sort orders are patched: the other agents keep their relative order (their keys
//    did not change and indexes keep the id order), the moved ones (usage or row changed, for a
//    sort on a column; row changed, for the others) are sorted and placed back by binary search.
bool Refresh(Cache& cache, const std::string& key, const Reader& rd, const std::string& ws) {
  CacheEntry old = cache.Copy(key);
  if (!old.inventory || old.seq >= rd.version()) return false;
  const Inventory& prev = *old.inventory;
  const std::vector<Agent>& prev_agents = prev.agents;
  const size_t prev_n = prev_agents.size();

  // 1. What the writes since did, from the store's change log. Per touched agent: whether its
  // row may now list it differently (`row`: a field the listing shows got another value, or it
  // was created, deleted or revived: re-read), and what its usage gained (`deltas`, kept for
  // agents listed before). Per creator: whether a write named another email (re-read).
  struct TouchedAgent {
    uint32_t old = kGone;  // index in prev
    bool row = false;
    std::string id;  // agents not in prev only (the others': prev_agents[old].id)
  };
  std::vector<TouchedAgent> touched;
  std::vector<uint32_t> slot_of_old(prev_n, kGone);          // prev index -> slot in touched
  std::unordered_map<std::string, uint32_t> slot_of_absent;  // agents not in prev
  std::vector<Delta> deltas;
  std::vector<uint32_t> delta_users;  // Delta::users_* index into it
  std::vector<std::string> reread_creators;
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
  std::vector<uint32_t> deltas_of(touched.size() + 1, 0);  // slot -> first delta
  for (const Delta& d : deltas) ++deltas_of[d.slot + 1];
  for (size_t t = 0; t < touched.size(); ++t) deltas_of[t + 1] += deltas_of[t];

  // `usage`: old indexes whose row is unchanged (and the slot of each); `updates`: rows that
  // changed or appeared or went away.
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
  std::vector<uint32_t> usage, usage_slot;
  std::vector<Update> updates;
  auto strings = std::make_shared<std::string>();
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
  std::vector<std::pair<std::string_view, std::string>> new_emails;  // (creator, email)
  for (const std::string& user : reread_creators) {
    auto c = prev.creator_email.find(user);
    const std::string_view email = ProfileEmail(rd, ws, user, &r);
    if (email != prev.EmailAt(c->second)) new_emails.emplace_back(c->first, std::string(email));
  }

  // 2. The inventory at the new state, and where each old agent went.
  std::shared_ptr<const Inventory> inv = old.inventory;
  std::vector<uint32_t> moved;       // new indexes of the agents whose keys may have changed
  std::vector<uint32_t> inserted;    // those of them with a new or changed row (the others: usage)
  std::vector<uint32_t> old_to_new;  // empty: the identity
  // Parallel to moved: where each agent was in prev and its slot in touched (both kGone for an
  // agent not listed before, whose columns are read from the store).
  std::vector<uint32_t> moved_old, moved_slot;
  if (updates.empty() && new_emails.empty()) {
    moved = usage;
    moved_old = usage;
    moved_slot = usage_slot;
  } else {
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
    FinishInventory(&ni, &prev, &from_prev);
    inv = std::move(next_inv);
  }
  const size_t n = inv->agents.size();
  auto new_index = [&](uint32_t j) { return old_to_new.empty() ? j : old_to_new[j]; };

  // 3. Columns: unchanged entries carried over; the moved agents listed before carried over
  // with their deltas added, the others read from the store (point reads over every bucket).
  CacheEntry next;
  next.seq = rd.version();
  next.inventory = inv;
  const bool same_indexes = old_to_new.empty();
  const bool unchanged = moved.empty() && same_indexes;
  size_t fresh = 0;  // moved agents not listed before
  for (uint32_t slot : moved_slot) fresh += slot == kGone;
  // Carries a per-agent vector over to the new indexes (entries of removed agents dropped).
  auto remap = [&](const auto& from, auto* to) {
    if (same_indexes) {
      *to = from;
      return;
    }
    to->resize(n);
    for (uint32_t j = 0; j < prev_n; ++j)
      if (const uint32_t i = old_to_new[j]; i != kGone) (*to)[i] = from[j];
  };
  for (const auto& [range, col] : old.credits) {
    if (unchanged) {
      next.credits.emplace_back(range, col);
      continue;
    }
    const std::vector<BucketRef> buckets = DecomposeRange(range.first, range.second);
    if (!PatchColumn(fresh * buckets.size(), n)) continue;  // rescanned when needed
    auto patched = std::make_shared<CreditColumn>();
    remap(*col, patched.get());
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
    remap(col->count, &patched->count);
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

  // 4. Orders: untouched agents in their old relative order, the moved ones placed back. A sort
  // on a column moves every agent whose usage changed, the others only those whose rows did.
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
    auto patched = std::make_shared<Order>();
    if (by_column) {
      // By (key, index), on the keys kept with the order: sequential reads, except for the moved
      // agents' new keys.
      const bool desc = ok.descending;
      auto before = [desc](double ka, uint32_t ia, double kb, uint32_t ib) {
        if (ka != kb) return desc ? ka > kb : ka < kb;
        return ia < ib;
      };
      std::vector<std::pair<double, uint32_t>> sorted;
      sorted.reserve(to_place.size());
      for (uint32_t i : to_place)
        sorted.emplace_back(ColumnKey(ok.field, *less.credits, *less.active, i), i);
      std::sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) {
        return before(a.first, a.second, b.first, b.second);
      });
      Order kept;
      kept.index.reserve(n);
      kept.key.reserve(n);
      for (size_t p = 0; p < order->index.size(); ++p) {
        const uint32_t i = new_index(order->index[p]);
        if (i == kGone || placed[i]) continue;
        kept.index.push_back(i);
        kept.key.push_back(order->key[p]);
      }
      patched->index.reserve(n);
      patched->key.reserve(n);
      PlaceSorted(
          sorted.size(), kept.index.size(),
          [&](size_t k, size_t p) {
            return before(sorted[k].first, sorted[k].second, kept.key[p], kept.index[p]);
          },
          [&](size_t from, size_t to) {
            patched->index.insert(patched->index.end(), kept.index.begin() + from,
                                  kept.index.begin() + to);
            patched->key.insert(patched->key.end(), kept.key.begin() + from, kept.key.begin() + to);
          },
          [&](size_t k) {
            patched->index.push_back(sorted[k].second);
            patched->key.push_back(sorted[k].first);
          });
      next.orders.emplace_back(ok, std::move(patched));
      continue;
    }
    std::vector<uint32_t> sorted = to_place;
    std::sort(sorted.begin(), sorted.end(), less);
    std::vector<uint32_t> kept;
    kept.reserve(n);
    for (uint32_t j : order->index) {
      const uint32_t i = new_index(j);
      if (i != kGone && !placed[i]) kept.push_back(i);
    }
    patched->index.reserve(n);
    PlaceSorted(
        sorted.size(), kept.size(), [&](size_t k, size_t p) { return less(sorted[k], kept[p]); },
        [&](size_t from, size_t to) {
          patched->index.insert(patched->index.end(), kept.begin() + from, kept.begin() + to);
        },
        [&](size_t k) { patched->index.push_back(sorted[k]); });
    next.orders.emplace_back(ok, std::move(patched));
  }
  cache.Put(key, std::move(next));
  g_refreshes.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// The start of every cache key of `store`: its identity and path (a rebuilt store or a checkpoint
// copy opened in this process has its own history after the copy, so never shares entries); the
// workspace id follows.
std::string StoreKeyPrefix(const store::Store& store) {
  std::string prefix = store.identity();
  prefix.push_back('\0');
  prefix += store.path();
  prefix.push_back('\0');
  return prefix;
}

// How long the store's writes keep bringing a cached table forward after a request last used it.
constexpr auto kFollowFor = std::chrono::minutes(5);

// Brings the store's recently used cached tables forward right after a write (Store::Follow), so
// that requests find them at the store's latest state instead of paying for the refresh. Skips a
// table a request is refreshing or rebuilding at the moment (the writer does not wait for it).
void FollowWrites(const store::Store& store) {
  Cache& cache = Cache::Get();
  const std::string prefix = StoreKeyPrefix(store);
  for (const std::string& key : cache.RecentlyUsed(prefix, kFollowFor)) {
    const std::shared_ptr<std::mutex> mu = cache.RefreshMutex(key);
    if (!mu) continue;
    std::unique_lock lock(*mu, std::try_to_lock);
    if (!lock.owns_lock()) continue;
    const Reader rd(store);
    Refresh(cache, key, rd, key.substr(prefix.size()));
  }
}

// The listing of one request: references to the (shared, immutable) inventory and columns and
// the listed agents in order; rows are built on demand.
class Listing final : public SuperagentsListing {
 public:
  size_t size() const override { return listed.size(); }
  SuperagentRow Row(size_t k) const override {
    SuperagentRow row;
    Fill(k, &row);
    return row;
  }
  void Fill(size_t k, SuperagentRow* row) const {
    const uint32_t i = listed[k];
    const Agent& a = inv->agents[i];
    const Credits c = point_credits.empty() ? (*credits)[i] : point_credits[k];
    row->superagent_id.assign(a.id);
    if (a.has_name) row->superagent_name.emplace(a.name);
    row->active_users_last_30d = point_active.empty() ? (*active)[i] : point_active[k];
    row->message_credits_consumed = c.message;
    row->integration_credits_consumed = c.integration;
    row->total_credits_consumed = SatAdd(c.message, c.integration);
    row->owner_user_id.assign(a.owner);
    if (a.email != kNoEmail) row->created_by_email.emplace(inv->emails[a.email]);
    row->created_at_ms = a.created_at_ms;
  }
  DayNumber from() const override { return from_; }
  DayNumber to() const override { return to_; }
  size_t OwnBytes() const override {
    return sizeof(*this) + listed.capacity() * sizeof(uint32_t) +
           point_credits.capacity() * sizeof(Credits) + point_active.capacity() * sizeof(int64_t);
  }
  const void* SharedTable() const override { return inv.get(); }
  // The table plus its two columns (shared with the listings of the same store state).
  size_t SharedTableBytes() const override {
    return inv ? inv->bytes + inv->agents.size() * (sizeof(Credits) + sizeof(int64_t)) : 0;
  }

  DayNumber from_ = 0, to_ = 0;
  std::shared_ptr<const Inventory> inv;
  std::shared_ptr<const CreditColumn> credits;  // null when point_credits is used
  std::shared_ptr<const ActiveColumn> active;   // null when point_active is used
  std::vector<uint32_t> listed;                 // agent indexes, in listing order
  std::vector<Credits> point_credits;           // by position in `listed`, without a column
  std::vector<int64_t> point_active;
};

}  // namespace

Result<std::shared_ptr<const SuperagentsListing>> OpenSuperagents(const store::Store& store,
                                                                  const Clock& clock,
                                                                  const SuperagentsRequest& req) {
  if (req.from.has_value() != req.to.has_value()) {
    return req.from ? Fail(ErrorCode::kInvalidArgument,
                           "The to field is required when from is present.", "to")
                    : Fail(ErrorCode::kInvalidArgument,
                           "The from field is required when to is present.", "from");
  }
  if (const std::optional<size_t> chars = Utf8Length(req.search); !chars) {
    return Fail(ErrorCode::kInvalidArgument, "The search field must be a valid UTF-8 string.",
                "search");
  } else if (*chars > kSuperagentsMaxSearch) {
    return Fail(ErrorCode::kInvalidArgument,
                "The search field must not be greater than 100 characters.", "search");
  }
  auto out = std::make_shared<Listing>();
  const DayNumber today = clock.Today();
  DayNumber from, to;
  if (req.from) {
    from = *req.from;
    to = *req.to;
  } else {
    const CivilDate c = CivilFromDays(today);
    from = DaysFromCivil(c.year, c.month, 1);
    to = today;
  }
  out->from_ = from;
  out->to_ = to;
  if (from > to) {
    return Fail(ErrorCode::kInvalidArgument, "The to field must be a date after or equal to from.",
                "to");
  }
  if (to - from + 1 > kSuperagentsMaxDays) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "The date range must not be longer than " + std::to_string(kSuperagentsMaxDays) + " days.",
        "from");
  }

  const std::string& ws = req.workspace_id;
  const std::string cache_key = StoreKeyPrefix(store) + ws;
  Cache& cache = Cache::Get();
  // From now on the store's writes bring its cached tables forward as they happen.
  store.Follow(&cache, FollowWrites);
  // A first attempt reads with a plain view and answers from the cache; when something must be
  // computed and cached (a table, a refresh, a column), it starts again with a stable view.
  for (const bool stable : {false, true}) {
    // A refresh in progress (the follower's after a write, or another request's) is waited for
    // rather than repeated, before a stable view holds staging off. The mutex outlives the lock
    // even if the entry is evicted meanwhile.
    std::optional<Reader> reader;
    if (!stable) reader.emplace(store, /*stable=*/false);
    std::shared_ptr<std::mutex> refresh_mu;
    std::unique_lock<std::mutex> refreshing;
    if (stable || cache.Seq(cache_key) < reader->version()) {
      refresh_mu = cache.RefreshMutex(cache_key);
      if (refresh_mu) refreshing = std::unique_lock(*refresh_mu);
    }
    if (stable) reader.emplace(store, /*stable=*/true);
    // The cache may be past this snapshot (brought forward meanwhile): a newer snapshot (any state
    // since the request began is a correct answer) reuses it instead of building an older state.
    if (cache.Seq(cache_key) > reader->version()) {
      reader.emplace(store, stable);  // destroys the old one first (a stable view's hold)
    }
    const Reader& rd = *reader;

    // 1. The inventory at this snapshot.
    std::shared_ptr<const Inventory> inv = cache.FindInventory(cache_key, rd.version());
    if (!inv && !stable) continue;
    if (!inv && Refresh(cache, cache_key, rd, ws))
      inv = cache.FindInventory(cache_key, rd.version());
    if (!inv) {
      std::shared_ptr<const Inventory> built = BuildInventory(rd, ws);
      g_builds.fetch_add(1, std::memory_order_relaxed);
      if (built->agents.empty()) return out;
      CacheEntry entry;
      entry.seq = rd.version();
      entry.inventory = built;
      cache.Put(cache_key, std::move(entry));
      inv = std::move(built);
    }
    if (refreshing.owns_lock()) refreshing.unlock();
    const std::vector<Agent>& agents = inv->agents;
    const size_t n = agents.size();

    // 2. Search and visibility: match[i] for every agent, and how many match. The passes over
    // every agent are branch-free (table lookups and masks): with a search matching a fraction
    // of the agents, a branch per agent would be mispredicted at random.
    std::array<uint8_t, 256> vis_ok{};
    for (int v = 0; v < 256; ++v)
      vis_ok[v] = VisibilityMatches(req.visibility, static_cast<Vis>(v));
    std::vector<uint8_t> match(n, 0);
    size_t listed_count = 0;
    const std::string needle = Folded(req.search);
    if (needle.empty()) {
      for (size_t i = 0; i < n; ++i) match[i] = vis_ok[inv->vis_of[i]];
    } else {
      // Names and creator emails, one pass each. email_hit[e + 1] for email slot e;
      // email_hit[0] for kNoEmail (+ 1 wraps it to 0).
      MarkContaining(inv->folded_names, inv->name_end, needle, match.data());
      std::vector<uint8_t> email_hit(inv->email_end.size() + 1, 0);
      MarkContaining(inv->folded_emails, inv->email_end, needle, email_hit.data() + 1);
      for (size_t i = 0; i < n; ++i) {
        const uint32_t slot = inv->email_of[i] + 1;
        match[i] = (match[i] | email_hit[slot]) & vis_ok[inv->vis_of[i]];
      }
    }
    for (uint8_t m : match) listed_count += m;
    if (listed_count == 0) return out;
    // The matching agents of `indexes` (agent indexes), in their order, into `*into`: a
    // branch-free compaction (each step writes a slot and advances by the match bit) into a
    // per-thread buffer as long as `indexes` plus one, so that it stays in bounds whatever
    // `indexes` holds; then the matches are copied out.
    auto filter = [&](const auto& indexes, std::vector<uint32_t>* into) {
      static thread_local std::vector<uint32_t> scratch;
      scratch.resize(std::ranges::size(indexes) + 1);
      size_t k = 0;
      for (uint32_t i : indexes) {
        scratch[k] = i;
        k += match[i];
      }
      into->assign(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(k));
    };

    // 3. Credits over [from, to] and active users of the last 30 days: whole-table columns (cached
    // or computed by scans), or point reads for a few listed agents.
    const std::vector<BucketRef> range = DecomposeRange(from, to);
    const std::vector<BucketRef> last30 = DecomposeRange(today - 29, today);
    std::shared_ptr<const CreditColumn> credits =
        cache.FindCredits(cache_key, rd.version(), from, to);
    if (!credits && !UsePointReads(listed_count, range.size(), n)) {
      if (!stable) continue;
      std::shared_ptr<const CreditColumn> col = AllCredits(rd, ws, *inv, from, to);
      g_column_scans.fetch_add(1, std::memory_order_relaxed);
      cache.PutCredits(cache_key, rd.version(), from, to, col);
      credits = std::move(col);
    }
    std::shared_ptr<const ActiveColumn> active = cache.FindActive(cache_key, rd.version(), today);
    if (!active && !UsePointReads(listed_count, last30.size(), n)) {
      if (!stable) continue;
      std::shared_ptr<const ActiveColumn> col = AllActive(rd, ws, *inv, last30);
      g_column_scans.fetch_add(1, std::memory_order_relaxed);
      cache.PutActive(cache_key, rd.version(), today, col);
      active = std::move(col);
    }

    // 4. The listing order: a cached order of the whole table filtered by `match`, or the listed
    // agents sorted here.
    const SuperagentSortField field = req.sort.field;
    const bool descending = req.sort.descending;
    const OrderKey order_key{field, descending, from, to, today};
    std::vector<uint32_t> listed;
    listed.reserve(listed_count);
    std::vector<Credits> point_credits;  // by position in `listed`, when no column
    std::vector<int64_t> point_active;
    if (std::shared_ptr<const Order> order = cache.FindOrder(cache_key, rd.version(), order_key);
        order && credits && active) {
      filter(order->index, &listed);
    } else {
      // Sorting the whole table pays when many agents are listed: its order is cached and serves
      // every later search with the same sort. A few listed agents are sorted on their own.
      const bool whole = credits && active && listed_count * 8 >= n;
      if (whole) {
        listed.resize(n);
        for (uint32_t i = 0; i < n; ++i) listed[i] = i;  // sort the whole table, cache its order
      } else {
        filter(std::views::iota(uint32_t{0}, static_cast<uint32_t>(n)), &listed);
        if (!credits || !active) {
          point_credits.resize(listed.size());
          point_active.resize(listed.size());
          for (size_t k = 0; k < listed.size(); ++k) {
            const Agent& a = agents[listed[k]];
            point_credits[k] = credits ? (*credits)[listed[k]] : AgentCredits(rd, ws, a, range);
            point_active[k] = active ? (*active)[listed[k]] : AgentActive(rd, ws, a, last30);
          }
        }
      }
      // Sort keys by agent index (a numeric key for the numeric fields).
      std::vector<double> numeric;
      const bool is_numeric = field == SuperagentSortField::kCreatedAt ||
                              field == SuperagentSortField::kActiveUsers ||
                              field == SuperagentSortField::kMessageCredits ||
                              field == SuperagentSortField::kIntegrationCredits ||
                              field == SuperagentSortField::kTotalCredits;
      if (is_numeric) {
        // Keyed by position in `listed` (which is sorted by index, i.e. by id).
        numeric.resize(listed.size());
        for (size_t k = 0; k < listed.size(); ++k) {
          const uint32_t i = listed[k];
          const Credits c = point_credits.empty() ? (*credits)[i] : point_credits[k];
          switch (field) {
            case SuperagentSortField::kCreatedAt:
              numeric[k] = static_cast<double>(agents[i].created_at_ms);
              break;
            case SuperagentSortField::kActiveUsers:
              numeric[k] =
                  static_cast<double>(point_active.empty() ? (*active)[i] : point_active[k]);
              break;
            case SuperagentSortField::kMessageCredits:
              numeric[k] = c.message;
              break;
            case SuperagentSortField::kIntegrationCredits:
              numeric[k] = c.integration;
              break;
            default:
              numeric[k] = c.message + c.integration;
          }
        }
      }
      // Positions sorted by (key, id); ids order like positions.
      std::vector<uint32_t> pos(listed.size());
      for (uint32_t k = 0; k < pos.size(); ++k) pos[k] = k;
      const SortLess text_of{inv.get(), field, descending, nullptr, nullptr};
      auto str_key = [&](uint32_t k) { return text_of.Text(listed[k]); };
      if (is_numeric) {
        // created_at_ms fits a double exactly (< 2^53).
        std::sort(pos.begin(), pos.end(), [&](uint32_t x, uint32_t y) {
          if (numeric[x] != numeric[y])
            return descending ? numeric[x] > numeric[y] : numeric[x] < numeric[y];
          return x < y;
        });
      } else {
        std::sort(pos.begin(), pos.end(), [&](uint32_t x, uint32_t y) {
          const int c = str_key(x).compare(str_key(y));
          if (c != 0) return descending ? c > 0 : c < 0;
          return x < y;
        });
      }
      std::vector<uint32_t> sorted(listed.size());
      for (size_t k = 0; k < pos.size(); ++k) sorted[k] = listed[pos[k]];
      std::vector<double> sorted_keys;
      if (whole && IsColumnSort(field)) {
        sorted_keys.resize(pos.size());
        for (size_t k = 0; k < pos.size(); ++k) sorted_keys[k] = numeric[pos[k]];
      }
      if (!point_credits.empty()) {
        std::vector<Credits> pc(pos.size());
        std::vector<int64_t> pa(pos.size());
        for (size_t k = 0; k < pos.size(); ++k) {
          pc[k] = point_credits[pos[k]];
          pa[k] = point_active[pos[k]];
        }
        point_credits = std::move(pc);
        point_active = std::move(pa);
      }
      listed = std::move(sorted);
      if (whole) {
        auto order = std::make_shared<const Order>(Order{listed, std::move(sorted_keys)});
        cache.PutOrder(cache_key, rd.version(), order_key, order);
        listed.clear();
        for (uint32_t i : order->index)
          if (match[i]) listed.push_back(i);
      }
    }

    out->inv = std::move(inv);
    out->credits = std::move(credits);
    out->active = std::move(active);
    out->listed = std::move(listed);
    out->point_credits = std::move(point_credits);
    out->point_active = std::move(point_active);
    return out;
  }
  return out;  // not reached: the stable attempt always answers
}

void SetSuperagentsCacheMaxBytes(size_t max_bytes) { Cache::Get().SetMaxBytes(max_bytes); }

SuperagentsCacheStats GetSuperagentsCacheStats() {
  auto [workspaces, bytes] = Cache::Get().Size();
  return {g_builds.load(std::memory_order_relaxed), g_refreshes.load(std::memory_order_relaxed),
          g_column_scans.load(std::memory_order_relaxed), workspaces, bytes};
}

Result<SuperagentsResult> ListSuperagents(const store::Store& store, const Clock& clock,
                                          const SuperagentsRequest& req) {
  Result<std::shared_ptr<const SuperagentsListing>> listing = OpenSuperagents(store, clock, req);
  if (!listing) return std::unexpected(listing.error());
  const auto& l = static_cast<const Listing&>(**listing);
  SuperagentsResult out;
  out.from = l.from();
  out.to = l.to();
  const size_t n = l.size();
  if (n == 0) return out;
  out.rows.resize(n);
  // Fill the rows in agent (memory) order rather than in listing order: the agent table is then
  // read sequentially, and only the writes land at random places.
  std::vector<uint32_t> row_of(l.inv->agents.size(), UINT32_MAX);
  for (size_t k = 0; k < n; ++k) row_of[l.listed[k]] = static_cast<uint32_t>(k);
  for (uint32_t k : row_of)
    if (k != UINT32_MAX) l.Fill(k, &out.rows[k]);
  return out;
}

}  // namespace tally::query
