// Tenant isolation as a property (docs/security.md, docs/design.md "Access"). From a seeded RNG
// the test builds random workspaces bound to random organizations (some bindings declared in the
// keys file, one workspace without an organization), events in every workspace (agents and
// workflows created, run, shared, copied, renamed, deleted; users shared between tenants under a
// name and an email of each tenant's own), a few Kafka events naming another organization than
// their workspace's (dead-lettered), and random API keys: subsets of workspaces as owner or
// member, organizations, user ids, and one admin key. Every key then asks every endpoint family
// about every workspace and organization, known or not:
//  - workspace metrics with the response cache on: a key with access asks first (and warms the
//    cache), then every key asks the same thing;
//  - the leaderboard by workspace, by organization and by both;
//  - Super Agents first pages and whole cursor walks; a cursor issued to one key replayed by
//    every other key, on the key's other workspaces, and tampered with;
//  - request analytics with and without organization-id / project-id / agentName;
//  - POST /v1/events into held and unheld workspaces and organizations.
// The property: a key never gets a 2xx outside its scopes (the expected status of each request
// comes from the key's scopes alone); a 2xx equals the independent reference computed from the
// raw events of the scope asked (ReferenceModel, LeaderboardReference, SuperagentsReference,
// RequestsReference); no answer, refused or not, carries a workspace id, organization id, user
// id, name, email, photo, project or agent of a scope the key does not hold, nor anything of a
// write that was refused; forwarding headers (X-Forwarded-For, Forwarded, X-Forwarded-Host,
// X-Original-URL, and tally's own Tally-Forwarded-By and Tally-Requests-Share) added to a random
// fifth of the requests change nothing (in a group, tally's own may only turn an answer into a
// 503, or into the key's own share of request analytics). Phase 1 asks one tallyd; phase 2 asks
// a group of three instances on the same log, each request through a random instance (forwarded
// to the owner of its workspace, or gathered from several owners for request analytics), cursors
// replayed through other instances than the one that issued them.
//
// Every value that marks a tenant's data carries a "tag" ("tg" + 6 hex digits, unique), so a
// response is scanned for foreign data by looking up the tags it contains. The seed is printed;
// TALLY_IT_SEED=<n> replays a run.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "group.h"
#include "harness.h"
#include "leaderboard_reference.h"
#include "metrics_compare.h"
#include "reference.h"
#include "requests_reference.h"
#include "superagents_reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Clock = std::chrono::steady_clock;

// The size of the random part. Every key asks every family about every workspace and
// organization, so requests grow with keys x (workspaces + organizations): about 5,000 checked
// requests per phase, which keeps the whole test well under a minute on two cores.
constexpr int kWorkspaces = 9;  // with events; the last one without an organization
constexpr int kOrganizations = 4;
constexpr int kSharedUsers = 5;               // user ids active in several tenants
constexpr int kRandomKeys = 48;               // besides the admin key
constexpr int kMetricsCallsPerWorkspace = 5;  // each asked by a key with access, then by all
constexpr int kRequestsPerKey = 4;  // request-analytics asks without organization-id, per key
constexpr int kPostsPerKey = 2;     // POST /v1/events batches per key and phase
constexpr double kSpoofRate = 0.2;  // requests sent again with forwarding headers
constexpr double kWalkRate = 0.25;  // first Super Agents pages followed to the last page
constexpr int kCacheTtlS = 300;     // tallyd --cache-ttl (the clock is frozen: nothing expires)
constexpr int kMaxReports = 4;      // detailed failure messages per family and phase
constexpr const char* kGroupName = "tally-isolation-it";
constexpr const char* kBatchType = "application/cloudevents-batch+json";
constexpr int64_t kDaySeconds = 86'400;

const json kForbidden = {{"message", "This action is unauthorized."}};
const json kNotFound = {{"error", "Workspace not found"}};

std::string Truncate(const std::string& s, size_t n = 600) {
  return s.size() <= n ? s : s.substr(0, n) + "...(" + std::to_string(s.size()) + " bytes)";
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t Below(uint64_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<uint64_t>(0, n - 1)(g_);
  }
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo + 1)));
  }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(g_) < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }
  template <typename T>
  void Shuffle(std::vector<T>* v) {
    std::shuffle(v->begin(), v->end(), g_);
  }
  std::string Hex(int n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < n; ++i) out.push_back(kDigits[Below(16)]);
    return out;
  }

 private:
  std::mt19937_64 g_;
};

std::string Rfc3339(int64_t seconds) {
  const time_t t = static_cast<time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// One usage event, built by hand (docs/design.md "The usage event").
struct Ev {
  std::string id, type;
  int64_t time_s = 0;
  std::string ws, org, project;
  std::string user, user_name, email, photo;
  std::string entity, entity_name, visibility, owner;  // data.agent or data.workflow
  int64_t tokens = -1, duration = -1, message = -1, integration = -1;
  double cost = -1;
  bool error = false;

  std::string Line() const {
    json u = {{"id", user}};
    if (!user_name.empty()) u["name"] = user_name;
    if (!email.empty()) u["email"] = email;
    if (!photo.empty()) u["photo"] = photo;
    json e = {{"id", entity}};
    if (!entity_name.empty()) e["name"] = entity_name;
    if (!visibility.empty()) e["visibility"] = visibility;
    if (!owner.empty()) e["owner_user_id"] = owner;
    json data = {{"workspace_id", ws}, {"user", u}};
    data[type.starts_with("agent.") ? "agent" : "workflow"] = e;
    if (!org.empty()) data["organization_id"] = org;
    if (!project.empty()) data["project_id"] = project;
    if (tokens >= 0) data["tokens"] = tokens;
    if (cost >= 0) data["cost_usd"] = cost;
    if (duration >= 0) data["duration_ms"] = duration;
    if (message >= 0) data["message_credits"] = message;
    if (integration >= 0) data["integration_credits"] = integration;
    if (type.ends_with(".executed")) data["status"] = error ? "error" : "ok";
    return json({{"specversion", "1.0"},
                 {"id", id},
                 {"source", "it/isolation"},
                 {"type", type},
                 {"time", Rfc3339(time_s)},
                 {"data", data}})
        .dump();
  }
};

struct Profile {
  std::string name, email, photo;
};

struct Workspace {
  std::string id;
  std::string org;  // "" = its events name no organization
  bool declared = false;
  std::vector<std::string> users;
  std::map<std::string, Profile> profiles;  // this workspace's own name and email of each user
  std::vector<std::string> projects;
  std::vector<std::string> agents;
  std::vector<std::string> agent_names;  // first names (a renamed agent adds " v2")
};

struct Key {
  std::string name, token, user_id;
  std::map<std::string, std::string> workspaces;  // id -> "owner" | "member"
  std::vector<std::string> organizations;
  bool admin = false;

  bool Owner(const std::string& ws) const {
    auto it = workspaces.find(ws);
    return admin || (it != workspaces.end() && it->second == "owner");
  }
  bool Member(const std::string& ws) const { return admin || workspaces.contains(ws); }
  bool Holds(const std::string& org) const {
    return admin ||
           std::find(organizations.begin(), organizations.end(), org) != organizations.end();
  }
  std::string Describe() const {
    if (admin) return name + " (admin)";
    std::string s = name + " {workspaces:";
    for (const auto& [ws, role] : workspaces) s += " " + ws + "=" + role;
    s += "; organizations:";
    for (const std::string& o : organizations) s += " " + o;
    if (!user_id.empty()) s += "; user_id " + user_id;
    return s + "}";
  }
};

// The tenants, their events and keys, and what each key may see.
class World {
 public:
  explicit World(Rng* rng) : rng_(rng), today_(*RefParseDay(Stack::kToday)) {
    for (int i = 0; i < kOrganizations; ++i) orgs.push_back(NewOrg("organization"));
    ghost_org = NewOrg("organization no event names");
    evil_org = NewOrg("organization named only by refused events");
    for (int i = 0; i < kWorkspaces; ++i) {
      Workspace w;
      w.id = Uuid();
      // The first organization has one workspace (the leaderboard resolves it); every other
      // has at least one; the last workspace names none.
      if (i == kWorkspaces - 1) {
        w.org.clear();
      } else if (i < kOrganizations) {
        w.org = orgs[i];
      } else {
        w.org = orgs[1 + rng_->Below(kOrganizations - 1)];
      }
      w.declared = !w.org.empty() && rng_->Chance(0.5);
      workspaces.push_back(std::move(w));
    }
    if (std::none_of(workspaces.begin(), workspaces.end(),
                     [](const Workspace& w) { return w.declared; })) {
      workspaces[1].declared = true;
    }
    for (const Workspace& w : workspaces) {
      if (w.declared) declared[w.id] = w.org;
    }
    ghost_ws = Uuid();
    evil_ws = Uuid();
    unknown_ws = Uuid();
    MakeEvents();
    MakeKeys();
  }

  std::vector<std::string> WorkspaceIds() const {
    std::vector<std::string> out;
    for (const Workspace& w : workspaces) out.push_back(w.id);
    return out;
  }
  const Workspace* Find(const std::string& id) const {
    for (const Workspace& w : workspaces) {
      if (w.id == id) return &w;
    }
    return nullptr;
  }
  int64_t today() const { return today_; }

  // A unique tag, remembered with what it marks.
  std::string NewTag(const std::string& what) {
    for (;;) {
      std::string tag = "tg" + rng_->Hex(6);
      if (tag_what.try_emplace(tag, what).second) return tag;
    }
  }

  // A unique event time (whole seconds) in [lo, hi]: no two events tie on time, so "latest
  // wins" has one meaning everywhere.
  int64_t NewTime(int64_t lo, int64_t hi) {
    for (;;) {
      int64_t t = rng_->Between(lo, hi);
      if (times_.insert(t).second) return t;
    }
  }
  int64_t DayStart(int64_t days_ago) const { return (today_ - days_ago) * kDaySeconds; }
  int64_t EndOfToday() const { return (today_ + 1) * kDaySeconds - 1; }
  std::string NewEventId(const char* prefix) { return prefix + std::to_string(++event_ids_); }

  // An agent.executed event in `ws` naming `org`, with users and agents of its own: POSTed by a
  // key (refused or not) or produced as an intruder.
  Ev ForeignEvent(const std::string& ws, const std::string& org, const std::string& what) {
    Ev e;
    e.id = NewEventId("post-");
    e.type = "agent.executed";
    e.time_s = NewTime(DayStart(20), EndOfToday());
    e.ws = ws;
    e.org = org;
    const std::string u = NewTag(what + " user");
    e.user = "u-" + u;
    e.user_name = "Poster " + u;
    e.email = NewTag(what + " email") + "@post.example";
    e.entity = "agt-" + NewTag(what + " agent");
    e.entity_name = "Posted " + NewTag(what + " agent name");
    e.tokens = rng_->Between(1, 900);
    e.cost = static_cast<double>(e.tokens) * 3 / 1e6;
    e.message = rng_->Between(0, 4);
    e.integration = rng_->Between(0, 2);
    return e;
  }

  // References from every line in log order, and which tags and workspaces each key may see.
  void Rebuild() {
    refs = std::make_unique<References>(lines);
    tag_scopes.clear();
    bound.clear();
    known_ws.clear();
    ReferenceModel verdicts{Stack::kToday};
    for (const std::string& line : lines) {
      if (verdicts.Add(line) != RefVerdict::kAccepted) continue;
      json e = json::parse(line);
      const std::string ws = e["data"]["workspace_id"];
      const std::string org = e["data"].value("organization_id", "");
      known_ws.insert(ws);
      if (!org.empty()) bound.try_emplace(ws, org);
      for (size_t at = line.find("tg"); at != std::string::npos; at = line.find("tg", at + 2)) {
        std::string tag = line.substr(at, 8);
        if (tag_what.contains(tag)) tag_scopes[tag].insert({ws, org});
      }
    }
    known_ws.insert(ghost_ws);  // named by keys: it exists, empty
  }

  // What in `body` the key may not see: tags of scopes it holds none of (or of refused
  // writes), workspace ids of workspaces it neither holds nor reaches through an organization.
  // Values the request itself named are not news to the caller.
  std::vector<std::string> Leaks(const Key& k, const std::string& body,
                                 const std::string& request) const {
    std::set<std::string> out;
    for (size_t at = body.find("tg"); at != std::string::npos; at = body.find("tg", at + 2)) {
      if (at + 8 > body.size()) break;
      const std::string tag = body.substr(at, 8);
      auto what = tag_what.find(tag);
      if (what == tag_what.end() || request.find(tag) != std::string::npos) continue;
      if (!TagVisible(k, tag)) out.insert(tag + " (" + what->second + ")");
    }
    std::vector<std::string> all = WorkspaceIds();
    all.insert(all.end(), {ghost_ws, evil_ws, unknown_ws});
    for (const std::string& ws : all) {
      if (body.find(ws) == std::string::npos || request.find(ws) != std::string::npos) continue;
      if (!WorkspaceVisible(k, ws)) out.insert("workspace " + ws);
    }
    return {out.begin(), out.end()};
  }

  bool TagVisible(const Key& k, const std::string& tag) const {
    for (const std::string& org : k.organizations) {
      if (org.find(tag) != std::string::npos) return true;
    }
    auto it = tag_scopes.find(tag);
    if (it == tag_scopes.end()) return false;  // only in refused events: nobody may see it
    for (const auto& [ws, org] : it->second) {
      if (k.Member(ws) || (!org.empty() && k.Holds(org))) return true;
    }
    return false;
  }
  bool WorkspaceVisible(const Key& k, const std::string& ws) const {
    if (k.admin) return known_ws.contains(ws);
    if (k.Member(ws)) return true;
    auto it = bound.find(ws);
    return it != bound.end() && k.Holds(it->second);
  }

  // A user of `ws` (60%) or of any workspace.
  std::string SomeUser(const std::string& ws) {
    const Workspace* w = Find(ws);
    if (w == nullptr || rng_->Chance(0.4)) w = &rng_->Pick(workspaces);
    return rng_->Pick(w->users);
  }

  std::vector<Workspace> workspaces;
  std::vector<std::string> orgs;
  std::string ghost_org, evil_org;
  std::string ghost_ws;                         // named by keys, no event
  std::string evil_ws;                          // named only by refused POSTs
  std::string unknown_ws;                       // never named
  std::map<std::string, std::string> declared;  // [[workspaces]] of the keys file
  std::vector<Key> keys;                        // random ones, then the admin
  std::vector<std::string> lines, line_keys;    // everything on the topic, in log order
  std::map<std::string, std::string> tag_what;

  std::unique_ptr<References> refs;
  std::map<std::string, std::set<std::pair<std::string, std::string>>> tag_scopes;
  std::map<std::string, std::string> bound;  // workspace -> organization, by accepted events
  std::set<std::string> known_ws;

 private:
  std::string Uuid() {
    const std::string h = rng_->Hex(32);
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-a" + h.substr(17, 3) +
           "-" + h.substr(20, 12);
  }
  std::string NewOrg(const std::string& what) { return "org-" + NewTag(what); }

  void MakeEvents() {
    static const std::vector<std::string> kVisibilities = {
        "private", "workspace", "public_with_login", "public_without_login"};
    std::vector<std::string> shared;
    for (int i = 0; i < kSharedUsers; ++i) shared.push_back("s-" + NewTag("shared user"));
    std::vector<Ev> events;
    for (Workspace& w : workspaces) {
      const std::string what = "of workspace " + w.id;
      for (int64_t i = 0, n = rng_->Between(3, 6); i < n; ++i) {
        w.users.push_back("u-" + NewTag("user " + what));
      }
      for (const std::string& s : shared) {
        if (rng_->Chance(0.35)) w.users.push_back(s);
      }
      for (const std::string& u : w.users) {
        w.profiles[u] = {(u.starts_with("s-") ? "Shared " : "User ") + NewTag("name " + what),
                         NewTag("email " + what) + "@mail.example",
                         "https://example.com/p/" + NewTag("photo " + what) + ".jpg"};
      }
      for (int64_t i = 0, n = rng_->Between(2, 3); i < n; ++i) {
        w.projects.push_back("proj-" + NewTag("project " + what));
      }
      // Who did it, with this workspace's profile (parts left out at times, as producers do).
      auto by = [&](Ev* e, const std::string& user) {
        e->id = NewEventId("iso-");
        e->ws = w.id;
        e->org = rng_->Chance(0.08) ? "" : w.org;
        e->project = rng_->Chance(0.1) ? "" : rng_->Pick(w.projects);
        e->user = user;
        const Profile& p = w.profiles[user];
        if (rng_->Chance(0.9)) e->user_name = p.name;
        if (rng_->Chance(0.85)) e->email = p.email;
        if (rng_->Chance(0.5)) e->photo = p.photo;
      };
      struct Entity {
        std::string id, name, renamed, visibility, owner;
        int64_t created = 0, renamed_at = INT64_MAX;
      };
      auto lifecycle = [&](bool agent, const Entity& x, int64_t runs, bool copy) {
        const std::string kind = agent ? "agent." : "workflow.";
        auto event = [&](const std::string& action, int64_t t, const std::string& user) {
          Ev e;
          e.type = kind + action;
          e.time_s = t;
          by(&e, user);
          e.entity = x.id;
          const bool full = action != "executed" || rng_->Chance(0.5);
          if (full) e.entity_name = t > x.renamed_at ? x.renamed : x.name;
          if (agent && full) {
            e.visibility = x.visibility;
            e.owner = x.owner;
          }
          return e;
        };
        Ev created = event(copy ? "copied" : "created", x.created,
                           rng_->Chance(0.8) ? x.owner : rng_->Pick(w.users));
        created.entity_name = x.name;
        events.push_back(created);
        const int64_t from = x.created + 1;
        for (int64_t i = 0; i < runs; ++i) {
          Ev e = event("executed", NewTime(from, EndOfToday()), rng_->Pick(w.users));
          if (agent) {
            e.tokens = rng_->Between(10, 4000);
            e.cost = std::round(static_cast<double>(e.tokens) * 2.5) / 1e6;
            if (rng_->Chance(0.5)) e.duration = rng_->Between(100, 9000);
            e.message = rng_->Between(0, 6);
            e.integration = rng_->Between(0, 3);
            e.error = rng_->Chance(0.05);
          } else if (rng_->Chance(0.9)) {
            e.duration = rng_->Between(100, 9000);
          }
          events.push_back(e);
        }
        for (int64_t i = 0, n = rng_->Below(3); i < n; ++i) {
          events.push_back(event("shared", NewTime(from, EndOfToday()), rng_->Pick(w.users)));
        }
        if (x.renamed_at != INT64_MAX) {
          Ev e = event("updated", x.renamed_at, rng_->Pick(w.users));
          e.entity_name = x.renamed;
          events.push_back(e);
        }
      };
      auto new_entity = [&](bool agent, int64_t created) {
        Entity x;
        x.id =
            (agent ? "agt-" : "wf-") + NewTag(std::string(agent ? "agent " : "workflow ") + what);
        x.name = (agent ? "Agent " : "Flow ") + NewTag("name of that entity " + what);
        x.visibility = rng_->Pick(kVisibilities);
        x.owner = rng_->Pick(w.users);
        x.created = created;
        if (rng_->Chance(0.3)) {
          x.renamed = x.name + " v2";
          x.renamed_at = NewTime(created + 1, EndOfToday());
        }
        return x;
      };
      for (int64_t i = 0, n = rng_->Between(3, 6); i < n; ++i) {
        Entity a = new_entity(true, NewTime(DayStart(75), DayStart(10)));
        w.agents.push_back(a.id);
        w.agent_names.push_back(a.name);
        lifecycle(true, a, rng_->Between(3, 14), false);
        if (rng_->Chance(0.12)) {
          Ev d;
          d.type = "agent.deleted";
          d.time_s = NewTime(a.created + 1, EndOfToday());
          by(&d, a.owner);
          d.entity = a.id;
          events.push_back(d);
        }
        if (rng_->Chance(0.25)) {  // a copy: a new agent of its own
          Entity c = new_entity(true, NewTime(a.created + 1, DayStart(1)));
          w.agents.push_back(c.id);
          w.agent_names.push_back(c.name);
          lifecycle(true, c, rng_->Between(1, 5), true);
        }
      }
      for (int64_t i = 0, n = rng_->Between(1, 3); i < n; ++i) {
        Entity f = new_entity(false, NewTime(DayStart(75), DayStart(10)));
        lifecycle(false, f, rng_->Between(2, 8), rng_->Chance(0.2));
      }
    }
    std::sort(events.begin(), events.end(),
              [](const Ev& a, const Ev& b) { return a.time_s < b.time_s; });
    for (const Ev& e : events) {
      lines.push_back(e.Line());
      line_keys.push_back(e.ws);
      // Producer retries: a recent event re-sent verbatim counts once.
      if (e.time_s >= DayStart(3) && rng_->Chance(0.1)) {
        lines.push_back(lines.back());
        line_keys.push_back(e.ws);
      }
    }
    // Over Kafka, events naming another organization than their workspace's are dead-lettered:
    // nothing of them may show anywhere.
    for (const Workspace& w : workspaces) {
      if (w.org.empty()) continue;
      std::string other = rng_->Chance(0.5) ? evil_org : rng_->Pick(orgs);
      if (other == w.org) other = evil_org;
      Ev e = ForeignEvent(w.id, other, "refused Kafka event");
      e.id = NewEventId("intruder-");
      if (rng_->Chance(0.5)) {
        e.type = "agent.created";
        e.tokens = e.message = e.integration = -1;
        e.cost = -1;
      }
      lines.push_back(e.Line());
      line_keys.push_back(w.id);
    }
  }

  void MakeKeys() {
    std::vector<std::string> grantable = WorkspaceIds();
    grantable.push_back(ghost_ws);
    std::vector<std::string> holdable = orgs;
    holdable.push_back(ghost_org);
    for (int i = 0; i < kRandomKeys; ++i) {
      Key k;
      k.name = "key-" + std::to_string(i);
      k.token = "iso-" + rng_->Hex(24);
      uint64_t n_ws = rng_->Below(4), n_orgs = rng_->Below(3);
      // The first keys take the shapes that matter most, with random contents: a key holding
      // nothing, organizations only, one workspace as a member only, one workspace and an
      // organization of another tenant.
      if (i == 0) n_ws = n_orgs = 0;
      if (i == 1) n_ws = 0, n_orgs = std::max<uint64_t>(n_orgs, 1);
      if (i == 2 || i == 3) n_ws = 1, n_orgs = i == 3 ? 1 : 0;
      std::vector<std::string> ws = grantable;
      rng_->Shuffle(&ws);
      for (uint64_t j = 0; j < n_ws; ++j) {
        k.workspaces[ws[j]] = i == 2 ? "member" : rng_->Chance(0.6) ? "owner" : "member";
      }
      std::vector<std::string> os = holdable;
      rng_->Shuffle(&os);
      for (const std::string& o : os) {
        if (k.organizations.size() == n_orgs) break;
        const Workspace* own = i == 3 ? Find(ws[0]) : nullptr;
        if (own != nullptr && own->org == o) continue;
        k.organizations.push_back(o);
      }
      // A user id grants nothing; some keys carry one of another tenant's users.
      if (rng_->Chance(0.5)) k.user_id = rng_->Pick(rng_->Pick(workspaces).users);
      keys.push_back(std::move(k));
    }
    Key admin;
    admin.name = "admin";
    admin.token = "iso-admin-" + rng_->Hex(24);
    admin.admin = true;
    keys.push_back(std::move(admin));
  }

  Rng* rng_;
  int64_t today_;
  std::set<int64_t> times_;
  int64_t event_ids_ = 0;
};

std::string Base64UrlEncode(const std::string& data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : data) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

std::optional<std::string> Base64UrlDecode(const std::string& text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '-'             ? 62
            : c == '_'             ? 63
                                   : -1;
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// Asks tallyd (one instance, or a random member of a group) as every key, checks each answer
// against what the key's scopes allow and against the references, and counts.
class Prober {
 public:
  Prober(World* world, Rng* rng, std::vector<HttpClient*> targets, std::string phase, bool group)
      : world_(world),
        rng_(rng),
        targets_(std::move(targets)),
        phase_(std::move(phase)),
        group_(group) {}

  // Workspace metrics: for each workspace a few random requests, asked first by a key with
  // access (the answer is cached), then by every key in random order.
  void Metrics() {
    std::vector<std::string> targets = world_->WorkspaceIds();
    targets.push_back(world_->ghost_ws);
    for (const std::string& ws : targets) {
      const bool ghost = ws == world_->ghost_ws;
      const std::vector<MetricsCall> all = AllCombinations(ws, world_->SomeUser(ws));
      for (int picked = 0; picked < kMetricsCallsPerWorkspace;) {
        MetricsCall c = rng_->Pick(all);
        // The ghost workspace has no first day, so no "all" period to compare.
        if (SeedRejects(c.query) || (ghost && c.query.period == "all")) continue;
        c.form = static_cast<RequestForm>(rng_->Below(4));
        c.limit = static_cast<int>(rng_->Between(1, 20));
        ++picked;
        std::vector<const Key*> owners;
        for (const Key& k : world_->keys) {
          if (k.Owner(ws)) owners.push_back(&k);
        }
        CheckMetrics(*rng_->Pick(owners), c);
        std::vector<const Key*> order;
        for (const Key& k : world_->keys) order.push_back(&k);
        rng_->Shuffle(&order);
        for (const Key* k : order) CheckMetrics(*k, c);
      }
    }
    for (const std::string& ws : {world_->unknown_ws, world_->evil_ws}) {
      const std::vector<MetricsCall> all = AllCombinations(ws, "");
      for (const Key& k : world_->keys) {
        MetricsCall c = all[rng_->Below(20)];  // agent executions: no combination refused
        c.form = static_cast<RequestForm>(rng_->Below(4));
        WireRequest w = BuildRequest(c);
        HttpResponse r = Send(k, "metrics", w.method, w.target, w.body, {});
        ExpectUnknownWorkspace("metrics", k, w.target + " " + w.body, r);
      }
    }
  }

  // The leaderboard of every workspace, of every organization, and with both named.
  void Leaderboard() {
    std::vector<std::string> targets = world_->WorkspaceIds();
    targets.insert(targets.end(), {world_->ghost_ws, world_->unknown_ws, world_->evil_ws});
    std::vector<std::string> orgs = world_->orgs;
    orgs.insert(orgs.end(), {world_->ghost_org, world_->evil_org});
    for (const Key& k : world_->keys) {
      for (const std::string& ws : targets) {
        Range p = LeaderboardRange();
        std::string target = "/api/agents/leaderboard?workspace_uuid=" + UrlEncode(ws) + p.query;
        // Named with a workspace, an organization is ignored (the workspace wins).
        if (rng_->Chance(0.2)) target += "&organization_multiplai_id=" + rng_->Pick(orgs);
        HttpResponse r = Send(k, "leaderboard", "GET", target, "", {});
        if (!world_->known_ws.contains(ws)) {
          ExpectUnknownWorkspace("leaderboard", k, target, r);
        } else if (k.Member(ws)) {
          ExpectLeaderboard("leaderboard", k, target, r, ws, p);
        } else {
          ExpectStatus("leaderboard", k, target, r, 403, kForbidden);
        }
      }
      for (const std::string& org : orgs) {
        Range p = LeaderboardRange();
        const std::string target =
            "/api/agents/leaderboard?organization_multiplai_id=" + UrlEncode(org) + p.query;
        HttpResponse r = Send(k, "leaderboard", "GET", target, "", {});
        // The workspaces an organization resolves to are those its accepted events bound to it:
        // in a group, an event refused for naming another organization than its workspace's
        // must leave no trace in the routing (it would make one workspace "several", 422 or
        // 403, or resolve an organization named only by refused events).
        const std::vector<std::string> of = world_->refs->leaderboard.WorkspacesOf(org);
        if (of.empty()) {
          ExpectStatus("leaderboard by organization", k, target, r, k.admin ? 404 : 403,
                       k.admin ? kNotFound : kForbidden);
        } else if (of.size() == 1) {
          if (k.Member(of[0])) {
            ExpectLeaderboard("leaderboard by organization", k, target, r, of[0], p);
          } else {
            ExpectStatus("leaderboard by organization", k, target, r, 403, kForbidden);
          }
        } else if (k.Holds(org)) {
          ExpectStatus("leaderboard by organization", k, target, r, 422, std::nullopt);
        } else {
          ExpectStatus("leaderboard by organization", k, target, r, 403, kForbidden);
        }
      }
    }
  }

  // First Super Agents pages of every workspace as every key, some walked to the end.
  void Superagents() {
    std::vector<std::string> targets = world_->WorkspaceIds();
    targets.insert(targets.end(), {world_->ghost_ws, world_->unknown_ws, world_->evil_ws});
    for (const Key& k : world_->keys) {
      for (const std::string& ws : targets) {
        Listing l = RandomListing(ws, static_cast<int>(rng_->Between(1, 6)));
        const std::string target = Base(ws) + "?" + l.query;
        HttpResponse r = Send(k, "superagents", "GET", target, "", {});
        if (!world_->known_ws.contains(ws)) {
          ExpectUnknownWorkspace("superagents", k, target, r);
          continue;
        }
        if (!k.Member(ws)) {
          ExpectStatus("superagents", k, target, r, 403, kForbidden);
          continue;
        }
        std::optional<std::string> cursor = ExpectPage(k, target, r, l.want, 0, l.limit);
        if (!rng_->Chance(kWalkRate)) continue;
        size_t offset = static_cast<size_t>(l.limit);
        for (int page = 0; cursor && page < 100; ++page) {
          const int limit = static_cast<int>(rng_->Between(1, 6));
          const std::string next =
              Base(ws) + "?limit=" + std::to_string(limit) + "&cursor=" + UrlEncode(*cursor);
          HttpResponse p = Send(k, "superagents", "GET", next, "", {});
          cursor = ExpectPage(k, next, p, l.want, offset, limit);
          offset += static_cast<size_t>(limit);
        }
      }
    }
  }

  // A cursor issued to a key holding the workspace, replayed by every key: on its workspace
  // (the rows of the next page for members, 403 for others), on the key's other workspaces
  // (400: a cursor is bound to its workspace) and tampered with (400 for members, 403 others).
  void Cursors() {
    for (const std::string& ws : world_->WorkspaceIds()) {
      std::vector<const Key*> members;
      for (const Key& k : world_->keys) {
        if (k.Member(ws)) members.push_back(&k);
      }
      const Key& issuer = *rng_->Pick(members);
      Listing l = RandomListing(ws, 2, /*filters=*/false);
      if (l.want.size() <= 2) continue;  // one page: no cursor
      const std::string first = Base(ws) + "?" + l.query;
      HttpResponse r = Send(issuer, "cursors", "GET", first, "", {}, Spoof::kNever);
      std::optional<std::string> cursor = ExpectPage(issuer, first, r, l.want, 0, 2);
      if (!cursor) continue;
      ++cursors_;
      for (const Key& k : world_->keys) {
        const int limit = static_cast<int>(rng_->Between(1, 4));
        const std::string target =
            Base(ws) + "?limit=" + std::to_string(limit) + "&cursor=" + UrlEncode(*cursor);
        HttpResponse p = Send(k, "cursors", "GET", target, "", {});
        if (k.Member(ws)) {
          ExpectPage(k, target, p, l.want, 2, limit);
        } else {
          ExpectStatus("cursors", k, target, p, 403, kForbidden);
        }
        std::vector<std::string> elsewhere;
        for (const auto& [other, role] : k.workspaces) {
          if (other != ws) elsewhere.push_back(other);
        }
        if (!elsewhere.empty()) {
          const std::string on = Base(rng_->Pick(elsewhere)) + "?cursor=" + UrlEncode(*cursor);
          ExpectBadCursor(k, on, Send(k, "cursors", "GET", on, "", {}));
        }
        const std::string tampered = Base(ws) + "?cursor=" + UrlEncode(Tamper(*cursor));
        HttpResponse t = Send(k, "cursors", "GET", tampered, "", {});
        if (k.Member(ws)) {
          ExpectBadCursor(k, tampered, t);
        } else {
          ExpectStatus("cursors", k, tampered, t, 403, kForbidden);
        }
      }
    }
  }

  // Request analytics as every key: without organization-id (the key's organizations), and
  // narrowed to every organization, held or not, known or not.
  void Requests() {
    std::vector<std::string> orgs = world_->orgs;
    orgs.insert(orgs.end(), {world_->ghost_org, world_->evil_org});
    const std::set<std::string> known = world_->refs->requests.Organizations();
    for (const Key& k : world_->keys) {
      for (int i = 0; i < kRequestsPerKey; ++i) {
        ReqQuery q = RandomReqQuery();
        Headers headers = ProjectHeader(&q);
        if (!k.admin) q.organizations.emplace(k.organizations.begin(), k.organizations.end());
        const std::string target = RequestsTarget(&q);
        HttpResponse r = Send(k, "requests", "GET", target, "", headers);
        if (k.admin || !k.organizations.empty()) {
          ExpectRequests(k, target, headers, r, q);
        } else {
          ExpectStatus("requests", k, target, r, 403, kForbidden);
        }
      }
      for (const std::string& org : orgs) {
        ReqQuery q = RandomReqQuery();
        Headers headers = ProjectHeader(&q);
        headers.emplace_back(rng_->Chance(0.5) ? "organization-id" : "OrganizationId", org);
        // Two spellings naming different organizations: refused whoever asks.
        const bool conflict = rng_->Chance(0.1);
        if (conflict) {
          headers.emplace_back(
              headers.back().first == "organization-id" ? "OrganizationId" : "organization-id",
              rng_->Pick(world_->orgs) + "-x");
        }
        q.organizations = std::set<std::string>{org};
        const std::string target = RequestsTarget(&q);
        HttpResponse r = Send(k, "requests", "GET", target, "", headers);
        const std::string what = target + " " + headers.back().first + ": " + org;
        if (conflict) {
          ExpectStatus("requests", k, what, r, 422, std::nullopt);
        } else if (k.admin && !known.contains(org)) {
          // An organization no accepted event named is unknown, in a group too (see
          // Leaderboard(): refused events leave no trace in the routing).
          ExpectStatus("requests (unknown organization)", k, what, r, 404, std::nullopt);
        } else if (k.Holds(org)) {
          ExpectRequests(k, target, headers, r, q);
        } else {
          ExpectStatus("requests", k, what, r, 403, kForbidden);
        }
      }
    }
  }

  // POST /v1/events as every key, batches of events into random workspaces and organizations.
  // The expected outcome comes from the key's scopes: 403 naming each event the key may not
  // write, 400 naming each event that contradicts a declared binding of a workspace the key
  // holds, else 202. Accepted lines join the log (and the references); refused ones must never
  // show anywhere.
  void Posts(int per_key) {
    std::vector<const Key*> order;
    for (const Key& k : world_->keys) order.push_back(&k);
    rng_->Shuffle(&order);
    for (const Key* k : order) {
      for (int a = 0; a < per_key; ++a) {
        std::vector<Ev> batch;
        for (int64_t i = 0, n = rng_->Between(1, 3); i < n; ++i) batch.push_back(PostEvent(*k));
        Post(*k, batch);
      }
    }
    // The binding of a declared workspace is another tenant's business: a key that does not
    // hold the workspace gets the same 403 whatever organization its event names.
    for (const auto& [ws, org] : world_->declared) {
      for (const Key& k : world_->keys) {
        if (k.Member(ws)) continue;
        Post(k, {world_->ForeignEvent(ws, world_->ghost_org, "refused POST")});
        break;
      }
    }
  }

  // The cache must have answered some of the metrics requests, or the test proved nothing
  // about it.
  double CacheHits() {
    double hits = 0;
    for (HttpClient* http : targets_) {
      auto r = http->Send("GET", "/metrics");
      if (r && r->status == 200) {
        hits +=
            MetricSum(r->body, "tally_http_metrics_cache_total", {"result=\"hit\""}).value_or(0);
      }
    }
    return hits;
  }

  void Report(Clock::time_point since) {
    size_t total = 0;
    std::string by_family;
    for (const auto& [family, n] : counts_) {
      total += n;
      by_family += " " + family + " " + std::to_string(n) + ",";
    }
    const double hits = CacheHits();
    std::fprintf(stderr,
                 "[isolation] %s: %zu requests checked (%s %zu with forwarding headers, %zu "
                 "cursors replayed by every key, %zu share/forwarded answers), %.0f metrics cache "
                 "hits, %d violations, %.1f s\n",
                 phase_.c_str(), total, by_family.c_str(), spoofed_, cursors_, excused_, hits,
                 violations_, Elapsed(since));
    EXPECT_GT(hits, 0) << phase_ << ": the response cache answered nothing";
    std::string summary;
    for (const auto& [family, n] : violations_by_) {
      summary += "  " + family + ": " + std::to_string(n) + "\n";
    }
    EXPECT_EQ(violations_, 0) << phase_ << ": violations by family (the first " << kMaxReports
                              << " of each reported above):\n"
                              << summary;
  }

 private:
  enum class Spoof { kMaybe, kAlways, kNever };

  struct Range {
    std::string query;  // "&date_from=..&date_to=..&limit=..&user_multiplai_ids=.."
    int64_t from = 0, to = 0;
    size_t limit = 10;
    std::optional<std::set<std::string>> users;
  };

  struct Listing {
    std::string query;
    int limit = 15;
    std::vector<json> want;  // every row of the listing, per the reference
  };

  HttpClient& Target() { return *targets_[rng_->Below(targets_.size())]; }

  static std::string Base(const std::string& ws) {
    return "/api/v1/monitoring/" + UrlEncode(ws) + "/superagents";
  }

  // Sends the request as `k` (Bearer, lower-case bearer or api_key), scans the answer for data
  // the key may not see and, now and then, sends it again with forwarding headers: the answer
  // must not change.
  HttpResponse Send(const Key& k, const std::string& family, const std::string& method,
                    const std::string& target, const std::string& body, const Headers& extra,
                    Spoof spoof = Spoof::kMaybe) {
    HttpClient& http = Target();
    Headers headers;
    switch (rng_->Below(4)) {
      case 0:
        headers.emplace_back("api_key", k.token);
        break;
      case 1:
        headers.emplace_back("Authorization", "bearer " + k.token);
        break;
      default:
        headers.emplace_back("Authorization", "Bearer " + k.token);
    }
    headers.insert(headers.end(), extra.begin(), extra.end());
    std::string request_text = target + " " + body;
    for (const auto& [name, value] : extra) request_text += " " + name + ": " + value;
    const std::string described = method + " " + target + (body.empty() ? "" : " body " + body) +
                                  HeadersText(extra) + " through " + http.host_port();
    ++counts_[family];
    Result<HttpResponse> r = http.Send(method, target, headers, body);
    if (!r) {
      Violation(family, k, described, "transport error: " + r.error().message);
      return {};
    }
    CheckLeaks(family, k, described, request_text, *r);
    if (spoof == Spoof::kNever || (spoof == Spoof::kMaybe && !rng_->Chance(kSpoofRate))) {
      return *r;
    }
    Headers forged = SpoofHeaders();
    Headers with = headers;
    with.insert(with.end(), forged.begin(), forged.end());
    for (const auto& [name, value] : forged) request_text += " " + name + ": " + value;
    const std::string forged_text = described + " with" + HeadersText(forged);
    ++counts_[family];
    ++spoofed_;
    Result<HttpResponse> s = http.Send(method, target, with, body);
    if (!s) {
      Violation(family, k, forged_text, "transport error: " + s.error().message);
      return *r;
    }
    CheckLeaks(family, k, forged_text, request_text, *s);
    if (s->status != r->status || Normalized(s->body) != Normalized(r->body)) {
      auto has = [&](const char* name) {
        return std::any_of(forged.begin(), forged.end(),
                           [&](const auto& h) { return h.first == name; });
      };
      // In a group, tally's own headers have a meaning: a request marked as forwarded is not
      // forwarded again (503 while routes change), and a share request of request analytics
      // gets the share of the key's organizations held by that instance (scanned above like
      // every answer), or a 503 when it does not hold the workspaces named.
      const bool internal = has("Tally-Forwarded-By") || has("Tally-Requests-Share");
      if (group_ && internal &&
          (s->status == 503 || (has("Tally-Requests-Share") && family == "requests" &&
                                s->status == 200 && r->status == 200))) {
        ++excused_;
      } else {
        Violation(family + " (forwarding headers)", k, forged_text,
                  "the headers changed the answer: " + std::to_string(r->status) + " " +
                      Truncate(r->body, 300) + "\n  became " + std::to_string(s->status) + " " +
                      Truncate(s->body, 300));
      }
    }
    return *r;
  }

  static std::string HeadersText(const Headers& h) {
    std::string s;
    for (const auto& [name, value] : h) s += " [" + name + ": " + value + "]";
    return s;
  }

  // Headers a client could add to look like a proxy, another instance, or an internal request.
  Headers SpoofHeaders() {
    std::vector<std::string> ws = world_->WorkspaceIds();
    rng_->Shuffle(&ws);
    std::string share = ws[0];
    for (int i = 1, n = static_cast<int>(rng_->Between(1, 3)); i < n; ++i) share += "," + ws[i];
    Headers pool = {
        {"X-Forwarded-For", "127.0.0.1"},
        {"X-Real-IP", "10.0.0.1"},
        {"Forwarded", "for=127.0.0.1;host=localhost;proto=https"},
        {"X-Forwarded-Host", "localhost"},
        {"X-Forwarded-Proto", "https"},
        {"X-Original-URL", Base(ws[1 % ws.size()])},
        {"X-Rewrite-URL", "/api/agents/leaderboard?workspace_uuid=" + ws[2 % ws.size()]},
        {"Tally-Forwarded-By", "node-a"},
        {"Tally-Requests-Share", share},
    };
    rng_->Shuffle(&pool);
    pool.resize(static_cast<size_t>(rng_->Between(1, 3)));
    return pool;
  }

  void Violation(const std::string& family, const Key& k, const std::string& request,
                 const std::string& what) {
    ++violations_;
    if (++violations_by_[family] <= kMaxReports) {
      ADD_FAILURE() << phase_ << ": " << family << ", key " << k.Describe() << "\n  " << request
                    << "\n  " << what;
    }
  }

  void CheckLeaks(const std::string& family, const Key& k, const std::string& described,
                  const std::string& request_text, const HttpResponse& r) {
    std::vector<std::string> leaks = world_->Leaks(k, r.body, request_text);
    if (leaks.empty()) return;
    std::string list;
    for (const std::string& l : leaks) list += "\n    " + l;
    Violation(family + " (foreign data)", k, described,
              "status " + std::to_string(r.status) + " carries what the key may not see:" + list +
                  "\n  body: " + Truncate(r.body));
  }

  // `status` and, when given, exactly `body`.
  void ExpectStatus(const std::string& family, const Key& k, const std::string& request,
                    const HttpResponse& r, int status, const std::optional<json>& body) {
    const json got = json::parse(r.body, nullptr, false);
    if (r.status != status || (body && got != *body)) {
      Violation(family, k, request,
                "expected " + std::to_string(status) + (body ? " " + body->dump() : "") + ", got " +
                    std::to_string(r.status) + " " + Truncate(r.body));
    }
  }

  // A workspace no accepted event named and no key holds: 404 for the admin, 403 for others.
  void ExpectUnknownWorkspace(const std::string& family, const Key& k, const std::string& request,
                              const HttpResponse& r) {
    ExpectStatus(family, k, request, r, k.admin ? 404 : 403, k.admin ? kNotFound : kForbidden);
  }

  Range LeaderboardRange() {
    Range p;
    const int64_t today = world_->today();
    if (rng_->Chance(0.3)) {  // the default: the last 30 days
      p.from = today - 29;
      p.to = today;
    } else {
      p.from = today - rng_->Between(0, 70);
      p.to = p.from + rng_->Between(0, std::min<int64_t>(today - p.from, 45));
      p.query += "&date_from=" + RefDayLabel(p.from) + "&date_to=" + RefDayLabel(p.to);
    }
    if (rng_->Chance(0.7)) {
      p.limit = static_cast<size_t>(rng_->Between(1, 100));
      p.query += "&limit=" + std::to_string(p.limit);
    }
    if (rng_->Chance(0.25)) {
      p.users.emplace();
      std::string list;
      for (int64_t i = 0, n = rng_->Between(1, 3); i < n; ++i) {
        std::string u = world_->SomeUser("");
        p.users->insert(u);
        list += (i ? "," : "") + u;
      }
      p.query += "&user_multiplai_ids=" + UrlEncode(list);
    }
    return p;
  }

  void ExpectLeaderboard(const std::string& family, const Key& k, const std::string& target,
                         const HttpResponse& r, const std::string& ws, const Range& p) {
    if (r.status != 200) {
      Violation(family, k, target,
                "expected 200, got " + std::to_string(r.status) + " " + Truncate(r.body));
      return;
    }
    const json want = world_->refs->leaderboard.Expected(ws, p.from, p.to, p.limit, p.users);
    const json got = json::parse(r.body, nullptr, false);
    if (auto same = SameLeaderboard(got, want); !same) {
      Violation(family, k, target,
                std::string(same.message()) + "\n  got:  " + Truncate(r.body) +
                    "\n  want: " + Truncate(want.dump()));
    }
  }

  // A random first page of `ws`; `filters` adds search and visibility at times.
  Listing RandomListing(const std::string& ws, int limit, bool filters = true) {
    static const std::vector<std::string> kSorts = {"superagent_name",
                                                    "created_at",
                                                    "created_by_email",
                                                    "owner_user_id",
                                                    "active_users_last_30d",
                                                    "message_credits_consumed",
                                                    "integration_credits_consumed",
                                                    "total_credits_consumed"};
    static const std::vector<std::string> kVisibilities = {
        "private", "workspace", "public_with_login", "public_without_login", "public"};
    Listing l;
    l.limit = limit;
    l.query = "limit=" + std::to_string(limit);
    const int64_t today = world_->today();
    int64_t from = today, to = today;  // the default: this month (the 1st is today)
    if (rng_->Chance(0.8)) {
      from = today - rng_->Between(0, 80);
      to = from + rng_->Between(0, today - from);
      l.query += "&from=" + RefDayLabel(from) + "&to=" + RefDayLabel(to);
    }
    std::string sort = "-total_credits_consumed";
    if (rng_->Chance(0.8)) {
      sort = (rng_->Chance(0.5) ? "-" : "") + rng_->Pick(kSorts);
      l.query += "&sort=" + sort;
    }
    std::string search, visibility;
    if (filters && rng_->Chance(0.2)) {
      // The tag of some agent's name or some user's email, this workspace's or another's.
      const Workspace& w = rng_->Pick(world_->workspaces);
      if (rng_->Chance(0.5)) {
        search = w.profiles.at(rng_->Pick(w.users)).email.substr(0, 8);
      } else {
        const std::string& name = rng_->Pick(w.agent_names);
        search = name.substr(name.find("tg"), 8);
      }
      l.query += "&search=" + UrlEncode(search);
    }
    if (filters && rng_->Chance(0.15)) {
      visibility = rng_->Pick(kVisibilities);
      l.query += "&visibility=" + visibility;
    }
    l.want = world_->refs->superagents.Rows(ws, from, to, sort, search, visibility, today);
    return l;
  }

  // One page: rows [offset, offset + limit) of `want`, its total, and a cursor iff more.
  std::optional<std::string> ExpectPage(const Key& k, const std::string& target,
                                        const HttpResponse& r, const std::vector<json>& want,
                                        size_t offset, int limit) {
    const json raw = json::parse(r.body, nullptr, false);
    if (r.status != 200 || !raw.is_object() || !raw.contains("superagents")) {
      Violation("superagents", k, target,
                "expected a 200 page, got " + std::to_string(r.status) + " " + Truncate(r.body));
      return std::nullopt;
    }
    const json body = NormalizeSuperagents(raw);
    const size_t end = std::min(want.size(), offset + static_cast<size_t>(limit));
    const json expected =
        offset < end ? json(std::vector<json>(want.begin() + static_cast<ptrdiff_t>(offset),
                                              want.begin() + static_cast<ptrdiff_t>(end)))
                     : json::array();
    const json& pagination = body["pagination"];
    if (body["superagents"] != expected || pagination["total"] != want.size() ||
        pagination["has_more"] != (end < want.size())) {
      Violation("superagents", k, target,
                "rows [" + std::to_string(offset) + ", " + std::to_string(end) + ") of " +
                    std::to_string(want.size()) + " differ\n  got:  " + Truncate(body.dump()) +
                    "\n  want: " + Truncate(expected.dump()));
      return std::nullopt;
    }
    if (end < want.size() && pagination["next_cursor"].is_string()) {
      return pagination["next_cursor"].get<std::string>();
    }
    return std::nullopt;
  }

  void ExpectBadCursor(const Key& k, const std::string& target, const HttpResponse& r) {
    const json body = json::parse(r.body, nullptr, false);
    if (r.status != 400 || !body.is_object() || !body["errors"].contains("cursor") ||
        body.contains("superagents")) {
      Violation("cursors", k, target,
                "expected 400 naming the cursor, got " + std::to_string(r.status) + " " +
                    Truncate(r.body));
    }
  }

  // A flipped bit of the decoded cursor, a changed character, or a shortened cursor.
  std::string Tamper(const std::string& cursor) {
    switch (rng_->Below(3)) {
      case 0:
        if (std::optional<std::string> raw = Base64UrlDecode(cursor); raw && !raw->empty()) {
          (*raw)[rng_->Below(raw->size())] ^= static_cast<char>(1 << rng_->Below(8));
          return Base64UrlEncode(*raw);
        }
        [[fallthrough]];
      case 1: {
        std::string c = cursor;
        char& ch = c[rng_->Below(c.size())];
        ch = ch == 'A' ? 'B' : 'A';
        return c;
      }
      default:
        return cursor.substr(0, cursor.size() - 4);
    }
  }

  ReqQuery RandomReqQuery() {
    ReqQuery q;
    const int64_t today = world_->today();
    const int64_t from = today - rng_->Between(0, 85);
    q.start_date = RefDayLabel(from);
    q.end_date = RefDayLabel(from + rng_->Between(0, today - from));
    if (rng_->Chance(0.2)) {
      // The current or the former name of an agent of any tenant.
      const Workspace& w = rng_->Pick(world_->workspaces);
      q.agent_name = world_->refs->requests.AgentName(w.id, rng_->Pick(w.agents));
      if (q.agent_name.ends_with(" v2") && rng_->Chance(0.5)) {
        q.agent_name.resize(q.agent_name.size() - 3);
      }
    }
    return q;
  }

  Headers ProjectHeader(ReqQuery* q) {
    if (!rng_->Chance(0.15)) return {};
    q->project_id = rng_->Pick(rng_->Pick(world_->workspaces).projects);
    return {{rng_->Chance(0.5) ? "project-id" : "ProjectId", *q->project_id}};
  }

  // The target of a random endpoint; the endpoint is kept in `endpoint_`.
  std::string RequestsTarget(const ReqQuery* q) {
    endpoint_ = kRequestEndpoints[rng_->Below(kRequestEndpoints.size())];
    std::string t = std::string("/v1/analytics/requests/") + endpoint_ +
                    "?startDate=" + q->start_date + "&endDate=" + q->end_date;
    if (!q->agent_name.empty()) t += "&agentName=" + UrlEncode(q->agent_name);
    return t;
  }

  void ExpectRequests(const Key& k, const std::string& target, const Headers& headers,
                      const HttpResponse& r, const ReqQuery& q) {
    const std::string what = target + HeadersText(headers);
    if (r.status != 200) {
      Violation("requests", k, what,
                "expected 200, got " + std::to_string(r.status) + " " + Truncate(r.body));
      return;
    }
    // A user's label is the latest email the scope's events carried, whichever workspace they
    // came from. A group fails this at times: an instance whose share holds no agent of the
    // query (agentName naming another instance's agent) sends no emails with its share, so the
    // merged answer labels a user with an older email of another workspace of the organization.
    const json want = world_->refs->requests.Answer(endpoint_, q);
    const json got = json::parse(r.body, nullptr, false);
    const std::string diff = got.is_discarded() ? "not JSON" : DiffRequestsJson(got, want);
    if (!diff.empty()) {
      Violation("requests", k, what,
                diff + "\n  got:  " + Truncate(r.body) + "\n  want: " + Truncate(want.dump()));
    }
  }

  // An event a key might try to write: into a workspace it holds (half the time), any
  // workspace with events, or one nobody has; naming no organization, the workspace's own,
  // another one, or one nobody has.
  Ev PostEvent(const Key& k) {
    std::string ws;
    std::vector<std::string> held;
    for (const auto& [id, role] : k.workspaces) {
      if (id != world_->ghost_ws) held.push_back(id);
    }
    if (!held.empty() && rng_->Chance(0.5)) {
      ws = rng_->Pick(held);
    } else if (k.admin || rng_->Chance(0.85)) {  // the admin would create a workspace
      ws = rng_->Pick(world_->workspaces).id;
    } else {
      ws = world_->evil_ws;
    }
    const Workspace* w = world_->Find(ws);
    std::string org;
    const uint64_t pick = rng_->Below(10);
    if (pick < 3) {
      org = "";
    } else if (pick < 7) {
      org = w != nullptr ? w->org : world_->evil_org;
    } else if (pick < 9) {
      std::vector<std::string> any = world_->orgs;
      any.push_back(world_->ghost_org);
      org = rng_->Pick(any);
    } else {
      org = world_->evil_org;
    }
    // The admin could bind the workspace without an organization to a new one; keep the
    // organization nobody holds for refused writes only.
    if (k.admin && org == world_->evil_org) org.clear();
    return world_->ForeignEvent(ws, org, "POST by " + k.name);
  }

  void Post(const Key& k, const std::vector<Ev>& batch) {
    struct Item {
      size_t index;
      std::string field;
    };
    std::vector<Item> mismatched, forbidden;
    bool unheld_declared = false;  // an unheld workspace's declared binding contradicted
    for (size_t i = 0; i < batch.size(); ++i) {
      const Ev& e = batch[i];
      auto declared = world_->declared.find(e.ws);
      if (declared != world_->declared.end() && !e.org.empty() && declared->second != e.org) {
        if (k.Member(e.ws)) {
          mismatched.push_back({i, "data.organization_id"});
        } else {
          unheld_declared = true;
        }
      }
      if (!k.Member(e.ws)) {
        forbidden.push_back({i, "data.workspace_id"});
      } else if (!e.org.empty() && !k.Holds(e.org)) {
        forbidden.push_back({i, "data.organization_id"});
      }
    }
    const int status = !mismatched.empty() ? 400 : !forbidden.empty() ? 403 : 202;
    const std::vector<Item>& items = status == 400 ? mismatched : forbidden;
    std::string body = "[";
    for (size_t i = 0; i < batch.size(); ++i) body += (i ? "," : "") + batch[i].Line();
    body += "]";
    const Headers type = {{"Content-Type", kBatchType}};
    HttpResponse r = Send(k, "events", "POST", "/v1/events", body, type,
                          status == 202 ? Spoof::kNever : Spoof::kMaybe);
    if (r.status == 503 && status == 202) {  // the broker's hold-back: send it again
      std::this_thread::sleep_for(std::chrono::seconds(1));
      r = Send(k, "events", "POST", "/v1/events", body, type, Spoof::kNever);
    }
    const std::string request = "POST /v1/events " + Truncate(body, 1200);
    // Only the key's own workspaces may tell it their declared organization: for a workspace it
    // does not hold, any organization named gets the same 403, and a 400 never names its event
    // (docs/design.md "Access": an unheld workspace is a 403 whether or not it exists), so
    // that trying organizations until the answer changes reveals no declared binding.
    const std::string family =
        unheld_declared ? "events (declared binding of an unheld workspace)" : "events";
    if (r.status != status) {
      Violation(family, k, request,
                "expected " + std::to_string(status) + ", got " + std::to_string(r.status) + " " +
                    Truncate(r.body));
    } else if (status != 202) {
      const json got = json::parse(r.body, nullptr, false);
      json want = json::array();
      for (const Item& item : items) want.push_back({item.index, item.field});
      json named = json::array();
      if (got.is_object() && got["errors"].is_array()) {
        for (const json& e : got["errors"]) {
          named.push_back({e.value("index", -1), e.value("field", "")});
        }
      }
      if (named != want) {
        Violation(family, k, request,
                  "expected errors (index, field) " + want.dump() + ", got " + Truncate(r.body));
      }
    }
    if (r.status == 202) {
      for (const Ev& e : batch) {
        world_->lines.push_back(e.Line());
        world_->line_keys.push_back(e.ws);
      }
    }
  }

  World* world_;
  Rng* rng_;
  std::vector<HttpClient*> targets_;
  std::string phase_;
  bool group_;
  std::string endpoint_;
  std::map<std::string, size_t> counts_;
  std::map<std::string, int> violations_by_;
  int violations_ = 0;
  size_t spoofed_ = 0, cursors_ = 0, excused_ = 0;

  void CheckMetrics(const Key& k, const MetricsCall& c) {
    if (k.Owner(c.query.workspace_id)) {
      ++counts_["metrics"];
      const std::string diff = CheckMetricsCall(Target(), k.token, world_->refs->metrics, c);
      if (!diff.empty()) Violation("metrics", k, "", diff);
      if (!rng_->Chance(kSpoofRate)) return;
    }
    const WireRequest w = BuildRequest(c);
    HttpResponse r = Send(k, "metrics", w.method, w.target, w.body, {},
                          k.Owner(c.query.workspace_id) ? Spoof::kAlways : Spoof::kMaybe);
    if (k.Owner(c.query.workspace_id)) {
      if (r.status != 200) {
        Violation("metrics", k, w.method + " " + w.target + " " + w.body,
                  "expected 200, got " + std::to_string(r.status) + " " + Truncate(r.body));
      }
    } else {
      ExpectStatus("metrics", k, w.method + " " + w.target + " " + w.body, r, 403, kForbidden);
    }
  }
};

void SetKeys(const World& world, Stack* stack) {
  std::vector<KeySpec> specs;
  for (const Key& k : world.keys) {
    KeySpec s;
    s.name = k.name;
    s.token = k.token;
    s.user_id = k.user_id;
    s.workspaces = k.workspaces;
    s.organizations = k.organizations;
    s.admin = k.admin;
    specs.push_back(std::move(s));
  }
  stack->keys() = std::move(specs);
  stack->bindings() = world.declared;
}

void ProbeEverything(Prober& prober) {
  prober.Metrics();
  prober.Leaderboard();
  prober.Superagents();
  prober.Cursors();
  prober.Requests();
}

TEST(IsolationProperty, NoKeySeesOutsideItsScopes) {
  const auto t0 = Clock::now();
  Rng rng(TestSeed("isolation"));
  World world(&rng);

  Stack stack;
  ASSERT_TRUE(stack.StartBroker(kGroupPartitions));
  SetKeys(world, &stack);
  stack.set_cache_ttl(kCacheTtlS);
  ASSERT_TRUE(stack.StartTallyd());
  ASSERT_TRUE(stack.Produce(world.lines, world.line_keys));
  ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));

  // Phase 1: one tallyd. Writes first (accepted ones join the references), then every read.
  {
    const auto t1 = Clock::now();
    Prober prober(&world, &rng, {&stack.http()}, "one tallyd", /*group=*/false);
    prober.Posts(kPostsPerKey);
    ASSERT_TRUE(stack.WaitForCatchUp(Millis(60000)));
    world.Rebuild();
    std::fprintf(stderr, "[isolation] %zu lines on the log, %zu keys\n", world.lines.size(),
                 world.keys.size());
    ProbeEverything(prober);
    prober.Report(t1);
  }
  stack.StopTallyd(SIGTERM);

  // Phase 2: a group of three on the same log; each request through a random instance.
  {
    const auto t2 = Clock::now();
    Group group(&stack, kGroupPartitions, kGroupName);
    group.set_cache_ttl(kCacheTtlS);
    for (const char* id : {"node-a", "node-b", "node-c"}) ASSERT_TRUE(group.Start(id, 0));
    ASSERT_TRUE(group.WaitSettled(Millis(120000)));
    std::fprintf(stderr, "[isolation] three instances settled in %.1f s\n", Elapsed(t2));
    std::vector<HttpClient*> targets;
    for (Instance& in : group.instances()) targets.push_back(in.http.get());
    Prober prober(&world, &rng, targets, "three instances", /*group=*/true);
    prober.Posts(kPostsPerKey);
    ASSERT_TRUE(group.WaitSettled(Millis(60000)));
    world.Rebuild();
    ProbeEverything(prober);
    prober.Report(t2);
  }
  std::fprintf(stderr, "[isolation] total %.1f s\n", Elapsed(t0));
}

}  // namespace
}  // namespace tally::integration
