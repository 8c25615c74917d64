#pragma once
// The agent table of the Super Agents engine (query/superagents.h): the data it caches per
// workspace (the inventory of live agents and the credit and active-user columns aligned with
// it), the store snapshot a request reads, and the build of an inventory from one snapshot.
//
//   const tally::query::internal::Reader rd(store, /*stable=*/true);
//   std::shared_ptr<Inventory> inv = BuildInventory(rd, "ws_1");   // sorted by agent id
//
// Internal to tally_query. Everything here is immutable once built and shared between threads
// (ActiveSets excepted: guarded by its mutex).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/store.h"

namespace tally::query::internal {

inline char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string Folded(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

// Visibility kinds as stored; kOther for anything else (matches only VisibilityFilter::kAny).
enum Vis : uint8_t { kOther, kPrivate, kWorkspace, kPublicWithLogin, kPublicWithoutLogin };

inline Vis ParseVis(std::string_view v) {
  if (v == "private") return kPrivate;
  if (v == "workspace") return kWorkspace;
  if (v == "public_with_login") return kPublicWithLogin;
  if (v == "public_without_login") return kPublicWithoutLogin;
  return kOther;
}

constexpr uint32_t kNoEmail = UINT32_MAX;
constexpr uint32_t kGone = UINT32_MAX;  // an agent index that is not there

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
bool LiveAgentFields(const store::Record& r, AgentFields* f);

// Fills the per-agent filter arrays (folded names, emails, visibility), the folded emails and the
// size estimate of an inventory whose agents, emails and key order are set. With `prev` and
// `from_prev` (the index in `prev` each agent was copied from, or kGone), unchanged agents' folded
// names are copied from `prev` instead of being folded again.
void FinishInventory(Inventory* inv, const Inventory* prev = nullptr,
                     const std::vector<uint32_t>* from_prev = nullptr);

// A refreshed inventory shares the string buffers of its predecessors; beyond this many, Refresh
// repacks them into one so that strings of replaced agents do not accumulate.
constexpr size_t kMaxTextBuffers = 16;

// Copies every agent's strings into one new buffer and re-keys creator_email on it (dropping
// creators without agents), so that the older buffers can be freed.
void Repack(Inventory* inv);

// The latest profile email of `user` in `ws` at the reader's snapshot; "" if none. The view
// points into *scratch.
std::string_view ProfileEmail(const Reader& rd, const std::string& ws, std::string_view user,
                              store::Record* scratch);

// Every live agent of workspace `ws` at the reader's snapshot, with its creator's email: one scan
// of the agent rows, and one scan (or a point read per creator) of the workspace's profiles.
std::shared_ptr<Inventory> BuildInventory(const Reader& rd, const std::string& ws);

}  // namespace tally::query::internal
