// Store::Stage and Store::Persist: staged sets read exactly like written ones through every read
// of the store, a crash loses what was staged and nothing else, views stay consistent across a
// persist, and readers may read while the writer stages.
//
// Reads are compared as text lines of decoded values (never raw bytes: equal values may be
// encoded differently), against a second store that only writes and against a reference model
// computed here with plain containers.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/bitmap.h"
#include "store/codec.h"
#include "store/internal/store_rep.h"
#include "store/store.h"
#include "store/testing/store_testing.h"
#include "store/write_set.h"

namespace tally::store {
namespace {

using Lines = std::vector<std::string>;

// ------------------------------------------------------------------------ decoded values as text

std::string Hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char ch : s) {
    out += kDigits[ch >> 4];
    out += kDigits[ch & 15];
  }
  return out;
}

std::string Text(const Counters& c) {
  std::string out;
  char buf[64];
  for (int k = 0; k < Counters::kInts; ++k) {
    if (c.i[k] == 0) continue;
    std::snprintf(buf, sizeof buf, " i%d=%lld", k, static_cast<long long>(c.i[k]));
    out += buf;
  }
  for (int k = 0; k < Counters::kDoubles; ++k) {
    if (c.d[k] == 0) continue;
    std::snprintf(buf, sizeof buf, " d%d=%.17g", k, c.d[k]);
    out += buf;
  }
  return out.empty() ? " zero" : out;
}

// Per-user counters of a pack; `ordered` false if the entries were not in increasing user order.
std::string PackText(const std::map<uint32_t, Counters>& users, bool ordered = true) {
  std::string out = ordered ? "" : " UNORDERED";
  for (const auto& [user, c] : users) out += " u" + std::to_string(user) + ":" + Text(c) + ";";
  return out;
}

std::string BitmapText(const std::vector<uint32_t>& ids) {
  std::string out = " n=" + std::to_string(ids.size()) + ":";
  for (uint32_t id : ids) out += " " + std::to_string(id);
  return out;
}

std::string BitmapText(const UserBitmap& b) {
  std::vector<uint32_t> ids;
  b.ForEach([&](uint32_t id) { ids.push_back(id); });
  return BitmapText(ids);
}

std::string RecordText(const Record& r) {
  std::string out;
  for (const Field& f : r) {
    out += " f" + std::to_string(f.id) + "@" + std::to_string(f.time_ms) + "=" + f.value;
  }
  return out.empty() ? " empty" : out;
}

std::string SliceText(const SliceTotals& t, const std::vector<SliceUser>& users,
                      const std::vector<SliceAgent>& agents) {
  std::string out = " r" + std::to_string(t.requests) + " e" + std::to_string(t.errors) + " t" +
                    std::to_string(t.tokens) + " c" + std::to_string(t.cost_nanos) + " users:";
  for (const SliceUser& u : users) {
    out += " " + std::to_string(u.user) + "/" + std::to_string(u.requests) + "/" +
           std::to_string(u.tokens) + "/" + std::to_string(u.cost_nanos);
  }
  out += " agents:";
  for (const SliceAgent& a : agents) {
    out += " " + std::to_string(a.agent) + "/" + std::to_string(a.requests) + "/" +
           std::to_string(a.tokens);
  }
  return out;
}

std::string SliceText(const SliceView& s) {
  std::vector<SliceUser> users;
  for (size_t i = 0; i < s.user_count(); ++i) users.push_back(s.user(i));
  std::vector<SliceAgent> agents;
  for (size_t i = 0; i < s.agent_count(); ++i) agents.push_back(s.agent(i));
  return SliceText(s.totals(), users, agents);
}

std::string Found(bool found) { return found ? " found" : " absent"; }

std::string LimitText(size_t limit) { return limit == SIZE_MAX ? "all" : std::to_string(limit); }

// Expects `got` to equal `want` (order included), listing the first lines each lacks.
void ExpectSameLines(const Lines& want, const Lines& got, const std::string& what) {
  if (want == got) return;
  const std::multiset<std::string> w(want.begin(), want.end()), g(got.begin(), got.end());
  std::vector<std::string> missing, extra;
  std::set_difference(w.begin(), w.end(), g.begin(), g.end(), std::back_inserter(missing));
  std::set_difference(g.begin(), g.end(), w.begin(), w.end(), std::back_inserter(extra));
  std::string msg = what + ": " + std::to_string(missing.size()) + " lines missing, " +
                    std::to_string(extra.size()) + " unexpected" +
                    (missing.empty() && extra.empty() ? " (same lines, other order)" : "");
  for (size_t i = 0; i < missing.size() && i < 8; ++i) msg += "\n  want: " + missing[i];
  for (size_t i = 0; i < extra.size() && i < 8; ++i) msg += "\n  got:  " + extra[i];
  ADD_FAILURE() << msg;
}

// ------------------------------------------------------------------------------- the key space

// Every key the random write sets touch (and a few they never do), and the scans that read them.
struct Universe {
  std::vector<std::string> counters;          // CounterKey
  std::vector<std::string> counter_prefixes;  // for ScanCounters
  std::vector<std::vector<std::string>> counter_merge_scans;
  std::vector<std::string> bitmaps;  // BitmapKey, RequestsUsersKey, RequestsPairsKey
  std::vector<std::vector<std::string>> bitmap_merge_scans;
  std::vector<std::vector<std::string>> union_groups;
  std::vector<std::string> packs;  // UserPackKey
  uint32_t pack_users = 12;
  std::vector<std::string> records;  // every record key kind
  std::vector<std::string> record_prefixes;
  std::vector<std::string> slices;  // RequestsSliceKey
  struct SliceScan {
    std::string prefix, start;
    size_t limit;  // rows read before fn returns false
  };
  std::vector<SliceScan> slice_scans;
  std::vector<std::string> slice_prefixes;  // for HasSliceWithPrefix
  std::vector<std::string> dedupe;          // DedupeKey, sorted; the last ones never written
  size_t dedupe_written = 0;
  std::vector<std::string> user_ids;  // the last one never written
  uint32_t user_indexes = 10;
  std::vector<std::pair<std::string, std::string>> agents;  // (workspace, agent id)
  uint32_t agent_indexes = 6;
  std::vector<std::string> topics = {"t0", "t1"};
  // Keys the random sets write: the first `*_written` of each list (the rest stay absent).
  size_t counters_written = 0, bitmaps_written = 0, packs_written = 0, records_written = 0;
  size_t slices_written = 0;

  static Universe Make() {
    Universe u;
    const std::vector<std::string> workspaces = {"w0", "w1"};
    auto extras = [](Scope scope) {
      std::vector<std::string> out;
      std::string id;
      switch (scope) {
        case Scope::kWorkspace:
          return std::vector<std::string>{""};
        case Scope::kUser:
          for (uint32_t user : {0u, 1u, 70000u}) {
            ScopeIdUser(user, &id);
            out.push_back(id);
          }
          return out;
        case Scope::kEntity:
          for (const char* agent : {"a0", "a1"}) {
            ScopeIdEntity(event::EntityKind::kAgent, agent, &id);
            out.push_back(id);
          }
          ScopeIdEntity(event::EntityKind::kWorkflow, "a0", &id);
          out.push_back(id);
          return out;
        case Scope::kProject:
          for (const char* project : {"p0", "p1"}) {
            ScopeIdProject(project, &id);
            out.push_back(id);
          }
          return out;
      }
      return out;
    };
    const Scope scopes[] = {Scope::kWorkspace, Scope::kUser, Scope::kEntity, Scope::kProject};
    std::string key;
    for (Scope scope : scopes) {
      for (const std::string& ws : workspaces) {
        for (int32_t bucket = 0; bucket < 3; ++bucket) {
          for (const std::string& extra : extras(scope)) {
            CounterKey(scope, ws, Granularity::kDay, bucket, extra, &key);
            u.counters.push_back(key);
            if (scope != Scope::kUser) {
              BitmapKey(scope, ws, Granularity::kDay, bucket, extra, &key);
              u.bitmaps.push_back(key);
            }
          }
        }
      }
    }
    for (int32_t bucket = 0; bucket < 3; ++bucket) {
      const std::string_view project = "p0";
      RequestsUsersKey("o0", kAllAgents, nullptr, Granularity::kDay, bucket, &key);
      u.bitmaps.push_back(key);
      RequestsUsersKey("o0", 1, &project, Granularity::kDay, bucket, &key);
      u.bitmaps.push_back(key);
      RequestsPairsKey("o0", nullptr, Granularity::kDay, bucket, &key);
      u.bitmaps.push_back(key);
    }
    u.counters_written = u.counters.size();
    u.bitmaps_written = u.bitmaps.size();
    CounterKey(Scope::kProject, "w0", Granularity::kDay, 9, "\x02p9", &key);
    u.counters.push_back(key);
    CounterKey(Scope::kWorkspace, "w9", Granularity::kDay, 0, "", &key);
    u.counters.push_back(key);
    BitmapKey(Scope::kWorkspace, "w9", Granularity::kDay, 0, "", &key);
    u.bitmaps.push_back(key);

    // Counter scans: everything, bucket prefixes, and prefixes cut inside a bucket or a scope.
    u.counter_prefixes.push_back("");
    for (Scope scope : scopes) {
      for (int32_t bucket : {0, 2, 7}) {
        CounterBucketPrefix(scope, "w0", Granularity::kDay, bucket, &key);
        u.counter_prefixes.push_back(key);
      }
      CounterBucketPrefix(scope, "w1", Granularity::kDay, 1, &key);
      u.counter_prefixes.push_back(key.substr(0, key.size() - 1));  // buckets 0..255
      u.counter_prefixes.push_back(key.substr(0, key.size() - 5));  // every bucket of w1
      u.counter_prefixes.push_back(key.substr(0, 2));               // the whole scope
    }
    // Merge scans: one scope of one workspace over buckets (an absent one too), the same bucket
    // of two workspaces, and one prefix twice.
    for (Scope scope : scopes) {
      std::vector<std::string> counters, bitmaps;
      for (int32_t bucket : {0, 1, 2, 5}) {
        CounterBucketPrefix(scope, "w0", Granularity::kDay, bucket, &key);
        counters.push_back(key);
        BitmapKey(scope, "w0", Granularity::kDay, bucket, "", &key);
        bitmaps.push_back(key);
      }
      u.counter_merge_scans.push_back(counters);
      u.bitmap_merge_scans.push_back(bitmaps);
      std::vector<std::string> across;
      for (const char* ws : {"w1", "w0"}) {
        CounterBucketPrefix(scope, ws, Granularity::kDay, 1, &key);
        across.push_back(key);
      }
      across.push_back(across[0]);
      u.counter_merge_scans.push_back(across);
      for (std::string& p : across) p[0] = u.bitmaps[0][0];  // the bitmap tag
      u.bitmap_merge_scans.push_back(across);
    }
    // Union groups: neighbours, a group with an absent key, a key twice, an empty group.
    for (size_t i = 0; i + 2 < u.bitmaps.size(); i += 3) {
      u.union_groups.push_back({u.bitmaps[i], u.bitmaps[i + 1], u.bitmaps[i + 2]});
    }
    u.union_groups.push_back({u.bitmaps.back(), u.bitmaps[0]});
    u.union_groups.push_back({u.bitmaps[1], u.bitmaps[1]});
    u.union_groups.push_back({});

    for (const std::string& ws : workspaces) {
      for (int32_t bucket = 0; bucket < 3; ++bucket) {
        UserPackKey(ws, Granularity::kDay, bucket, &key);
        u.packs.push_back(key);
      }
    }
    u.packs_written = u.packs.size();
    UserPackKey("w0", Granularity::kDay, 9, &key);
    u.packs.push_back(key);

    for (const std::string& ws : workspaces) {
      for (const char* user : {"u0", "u1", "u2"}) {
        UserProfileKey(ws, user, &key);
        u.records.push_back(key);
      }
      for (const char* agent : {"a0", "a1"}) {
        EntityKey(ws, event::EntityKind::kAgent, agent, &key);
        u.records.push_back(key);
      }
    }
    for (const char* ws : {"w0", "w1", "w2"}) {
      WorkspaceKey(ws, &key);
      u.records.push_back(key);
    }
    for (uint32_t index : {0u, 1u}) {
      UserLabelKey("o0", index, &key);
      u.records.push_back(key);
      AgentLabelKey(index, &key);
      u.records.push_back(key);
    }
    u.records_written = u.records.size();
    UserProfileKey("w9", "u9", &key);
    u.records.push_back(key);
    u.record_prefixes = {"", WorkspacePrefix(), UserLabelPrefix(), AgentLabelPrefix()};
    EntityPrefix("w0", event::EntityKind::kAgent, &key);
    u.record_prefixes.push_back(key);
    EntityPrefix("w1", event::EntityKind::kWorkflow, &key);
    u.record_prefixes.push_back(key);
    UserProfileKey("w1", "u0", &key);
    u.record_prefixes.push_back(key.substr(0, key.size() - 3));  // every profile of w1

    for (const char* org : {"o0", "o1"}) {
      for (uint32_t agent : {kAllAgents, 1u}) {
        for (bool per_project : {false, true}) {
          for (int32_t bucket = 0; bucket < 2; ++bucket) {
            const std::string_view project = "p0";
            RequestsSliceKey(org, agent, per_project ? &project : nullptr, Granularity::kDay,
                             bucket, &key);
            u.slices.push_back(key);
          }
        }
      }
    }
    u.slices_written = u.slices.size();
    RequestsSliceKey("o9", kAllAgents, nullptr, Granularity::kDay, 0, &key);
    u.slices.push_back(key);
    std::string org0, projects, absent_org;
    RequestsOrgPrefix("o0", &org0);
    RequestsProjectsPrefix("o0", kAllAgents, &projects);
    RequestsOrgPrefix("o9", &absent_org);
    std::string mid;  // between stored keys of o0: never written
    RequestsSliceKey("o0", kAllAgents, nullptr, Granularity::kDay, 5, &mid);
    constexpr size_t kAll = SIZE_MAX;
    u.slice_scans = {
        {"", "", kAll},       {org0, "", kAll},
        {org0, "", 2},        {org0, u.slices[2], kAll},
        {org0, mid, kAll},    {org0, mid, 1},
        {org0, org0, kAll},   {org0, org0 + "\xff", kAll},  // past every key of the prefix
        {projects, "", kAll}, {projects, u.slices[3], kAll},
        {"", u.slices[9], 3}, {absent_org, "", kAll}};
    u.slice_prefixes = {"", org0, projects, absent_org, u.slices[5], u.slices.back()};

    for (int i = 0; i < 24; ++i) {
      DedupeKey("s", "e" + std::to_string(i), &key);
      u.dedupe.push_back(key);
    }
    u.dedupe_written = u.dedupe.size();
    for (const char* id : {"e100", "e101"}) {
      DedupeKey("s", id, &key);
      u.dedupe.push_back(key);
    }
    for (int i = 0; i < 9; ++i) u.user_ids.push_back("u" + std::to_string(i));
    for (const char* ws : {"w0", "w1"}) {
      for (const char* agent : {"a0", "a1", "a2"}) u.agents.emplace_back(ws, agent);
    }
    return u;
  }
};

// ------------------------------------------------------------------------ the reference model

// What the store must hold after a sequence of write sets, computed with plain containers.
struct Model {
  std::map<std::string, Counters> counters;
  std::map<std::string, std::set<uint32_t>> bitmaps;
  std::map<std::string, std::map<uint32_t, Counters>> packs;
  struct FieldValue {
    int64_t time = 0;
    std::string value;
  };
  std::map<std::string, std::map<uint8_t, FieldValue>> records;
  struct SliceSum {
    SliceTotals totals;
    std::map<uint32_t, SliceUser> users;
    std::map<uint32_t, SliceAgent> agents;
  };
  std::map<std::string, SliceSum> slices;
  std::set<std::string> dedupe;
  std::map<std::string, uint32_t> users;
  std::map<uint32_t, std::string> user_ids;
  std::map<std::pair<std::string, std::string>, uint32_t> agents;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> pairs;
  Store::DictionaryNext next;
  std::map<std::string, StoredOffset> offsets;  // by OffsetKey
  std::optional<int64_t> newest;

  static void Add(const Counters& delta, Counters* c) {
    for (int k = 0; k < Counters::kInts; ++k) c->i[k] += delta.i[k];
    for (int k = 0; k < Counters::kDoubles; ++k) c->d[k] += delta.d[k];
  }
  void MergeField(const std::string& key, uint8_t id, int64_t time, const std::string& value) {
    auto& fields = records[key];
    auto it = fields.find(id);
    const bool earliest_wins = id >= 64 && id < 128;
    // Ties: the later operand wins a latest-wins field, the earlier one an earliest-wins field.
    if (it == fields.end() || (earliest_wins ? time < it->second.time : time >= it->second.time)) {
      fields[id] = {time, value};
    }
  }
  Record RecordOf(const std::map<uint8_t, FieldValue>& fields) const {
    Record r;
    for (const auto& [id, f] : fields) r.push_back({id, f.time, f.value});
    return r;
  }
  std::string SliceTextOf(const SliceSum& s) const {
    std::vector<SliceUser> users;
    for (const auto& [index, user] : s.users) users.push_back(user);
    std::vector<SliceAgent> agents;
    for (const auto& [index, agent] : s.agents) agents.push_back(agent);
    return SliceText(s.totals, users, agents);
  }
};

// Calls fn(key, value) for the rows of `rows` under `prefix` from `start` on, in key order, until
// fn returns false.
template <typename Map, typename Fn>
void ScanModel(const Map& rows, std::string_view prefix, std::string_view start, Fn&& fn) {
  for (auto it = rows.lower_bound(std::string(std::max(prefix, start)));
       it != rows.end() && std::string_view(it->first).starts_with(prefix); ++it) {
    if (!fn(it->first, it->second)) return;
  }
}

// ------------------------------------------------------------------------------ random sets

// One random write set: operations that fill any store's WriteSet identically.
struct Batch {
  std::vector<std::function<void(WriteSet*)>> ops;
  void ApplyTo(WriteSet* set) const {
    for (const auto& op : ops) op(set);
  }
};

class Generator {
 public:
  Generator(const Universe& u, uint64_t seed) : u_(u), rng_(seed) {}

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <typename T>
  const T& Pick(const std::vector<T>& v, size_t n) {
    return v[static_cast<size_t>(Uniform(0, static_cast<int>(n) - 1))];
  }

  // A random set of 1..12 operations, also applied to *model.
  Batch Next(Model* model) {
    Batch b;
    const int n = Uniform(1, 12);
    for (int i = 0; i < n; ++i) AddOp(model, &b);
    return b;
  }

 private:
  // Non-zero counters, with exact sums (small integers, doubles in quarters).
  Counters RandomCounters() {
    Counters c;
    for (int k = Uniform(1, 3); k > 0; --k) c.i[Uniform(0, Counters::kInts - 1)] += Uniform(1, 5);
    if (Chance(0.5)) c.d[Uniform(0, Counters::kDoubles - 1)] += Uniform(1, 8) * 0.25;
    return c;
  }

 public:
  // Random deltas of one view, each added to *m at every key of `keys` and returned encoded.
  std::string CountersOp(Model* m, std::initializer_list<std::string_view> keys) {
    const Counters c = RandomCounters();
    for (std::string_view key : keys) Model::Add(c, &m->counters[std::string(key)]);
    return EncodeCounters(c);
  }
  std::string PackOp(Model* m, std::initializer_list<std::string_view> keys) {
    std::set<uint32_t> users;
    for (int k = Uniform(1, 4); k > 0; --k) {
      users.insert(static_cast<uint32_t>(Uniform(0, u_.pack_users - 1)));
    }
    std::string value;
    UserPackWriter w(&value);
    for (uint32_t user : users) {
      const Counters c = RandomCounters();
      for (std::string_view key : keys) Model::Add(c, &m->packs[std::string(key)][user]);
      w.Add(user, c);
    }
    return value;
  }
  std::string BitmapOp(Model* m, std::initializer_list<std::string_view> keys) {
    UserBitmap bitmap;
    auto add = [&](uint32_t id) {
      bitmap.Add(id);
      for (std::string_view key : keys) m->bitmaps[std::string(key)].insert(id);
    };
    if (Chance(0.2)) {  // a run: the encoding then holds a run container
      const int from = Uniform(0, 5000);
      for (int id = from; id < from + Uniform(20, 300); ++id) add(static_cast<uint32_t>(id));
    } else {
      for (int k = Uniform(1, 6); k > 0; --k) add(static_cast<uint32_t>(Uniform(0, 300)));
    }
    if (Chance(0.05)) add(70000 + static_cast<uint32_t>(Uniform(0, 3)));  // another container
    std::string value;
    bitmap.AppendEncoded(&value);
    return value;
  }
  std::string SliceOp(Model* m, std::initializer_list<std::string_view> keys) {
    Slice s;
    s.totals = {static_cast<uint64_t>(Uniform(1, 3)), static_cast<uint64_t>(Uniform(0, 1)),
                static_cast<uint64_t>(Uniform(0, 100)), Uniform(0, 1000)};
    std::set<uint32_t> users, agents;
    for (int k = Uniform(0, 3); k > 0; --k) users.insert(static_cast<uint32_t>(Uniform(0, 7)));
    for (int k = Uniform(0, 2); k > 0; --k) agents.insert(static_cast<uint32_t>(Uniform(0, 4)));
    for (uint32_t user : users) {
      s.users.push_back({user, static_cast<uint64_t>(Uniform(1, 3)),
                         static_cast<uint64_t>(Uniform(0, 50)), Uniform(0, 500)});
    }
    for (uint32_t agent : agents) {
      s.agents.push_back(
          {agent, static_cast<uint64_t>(Uniform(1, 3)), static_cast<uint64_t>(Uniform(0, 50))});
    }
    for (std::string_view key : keys) {
      Model::SliceSum& sum = m->slices[std::string(key)];
      sum.totals.requests += s.totals.requests;
      sum.totals.errors += s.totals.errors;
      sum.totals.tokens += s.totals.tokens;
      sum.totals.cost_nanos += s.totals.cost_nanos;
      for (const SliceUser& su : s.users) {
        SliceUser& to = sum.users.try_emplace(su.user, SliceUser{su.user, 0, 0, 0}).first->second;
        to.requests += su.requests;
        to.tokens += su.tokens;
        to.cost_nanos += su.cost_nanos;
      }
      for (const SliceAgent& sa : s.agents) {
        SliceAgent& to = sum.agents.try_emplace(sa.agent, SliceAgent{sa.agent, 0, 0}).first->second;
        to.requests += sa.requests;
        to.tokens += sa.tokens;
      }
    }
    std::string value;
    AppendSlice(s, &value);
    return value;
  }

 private:
  void AddOp(Model* m, Batch* b) {
    std::string key, value;
    switch (Uniform(0, 15)) {
      case 0:
      case 1:
      case 2: {
        key = Pick(u_.counters, u_.counters_written);
        value = CountersOp(m, {key});
        b->ops.push_back([=](WriteSet* s) { s->AddCounters(key, value); });
        return;
      }
      case 3:
      case 4: {
        key = Pick(u_.packs, u_.packs_written);
        value = PackOp(m, {key});
        b->ops.push_back([=](WriteSet* s) { s->AddUserPack(key, value); });
        return;
      }
      case 5:
      case 6: {
        key = Pick(u_.bitmaps, u_.bitmaps_written);
        value = BitmapOp(m, {key});
        b->ops.push_back([=](WriteSet* s) { s->OrBitmap(key, value); });
        return;
      }
      case 7:
      case 8:
      case 9: {
        key = Pick(u_.records, u_.records_written);
        static constexpr uint8_t kIds[] = {1, 2, 30, 64, 65};
        Record r;
        std::set<uint8_t> ids;
        for (int k = Uniform(1, 3); k > 0; --k) ids.insert(kIds[Uniform(0, 4)]);
        for (uint8_t id : ids) {               // increasing: r stays sorted
          const int64_t time = Uniform(0, 3);  // few times: many ties
          const std::string v = "v" + std::to_string(Uniform(0, 99));
          r.push_back({id, time, v});
          m->MergeField(key, id, time, v);
        }
        AppendRecord(r, &value);
        b->ops.push_back([=](WriteSet* s) { s->MergeRecord(key, value); });
        return;
      }
      case 10:
      case 11: {
        key = Pick(u_.slices, u_.slices_written);
        value = SliceOp(m, {key});
        b->ops.push_back([=](WriteSet* set) { set->AddSlice(key, value); });
        return;
      }
      case 12: {
        key = Pick(u_.dedupe, u_.dedupe_written);
        m->dedupe.insert(key);
        // Written now: the dedupe expiry never drops it.
        const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        const int64_t time = Uniform(0, 1'000'000);
        b->ops.push_back([=](WriteSet* s) { s->PutDedupe(key, time, now); });
        return;
      }
      case 13: {  // dictionaries
        switch (Uniform(0, 3)) {
          case 0: {
            const std::string id = Pick(u_.user_ids, u_.user_ids.size() - 1);
            const auto index = static_cast<uint32_t>(Uniform(0, u_.user_indexes - 1));
            m->users[id] = index;
            m->user_ids[index] = id;
            b->ops.push_back([=](WriteSet* s) { s->PutUser(id, index); });
            return;
          }
          case 1: {
            const auto agent = Pick(u_.agents, u_.agents.size());
            const auto index = static_cast<uint32_t>(Uniform(0, u_.agent_indexes - 1));
            m->agents[agent] = index;
            b->ops.push_back([=](WriteSet* s) { s->PutAgent(agent.first, agent.second, index); });
            return;
          }
          case 2: {
            const auto agent = static_cast<uint32_t>(Uniform(0, 2));
            const auto user = static_cast<uint32_t>(Uniform(0, 3));
            const auto index = static_cast<uint32_t>(Uniform(0, 20));
            m->pairs[{agent, user}] = index;
            b->ops.push_back([=](WriteSet* s) { s->PutPair(agent, user, index); });
            return;
          }
          default: {
            const auto next = static_cast<uint32_t>(Uniform(0, 100));
            switch (Uniform(0, 2)) {
              case 0:
                m->next.user = next;
                b->ops.push_back([=](WriteSet* s) { s->PutUserNext(next); });
                return;
              case 1:
                m->next.agent = next;
                b->ops.push_back([=](WriteSet* s) { s->PutAgentNext(next); });
                return;
              default:
                m->next.pair = next;
                b->ops.push_back([=](WriteSet* s) { s->PutPairNext(next); });
                return;
            }
          }
        }
        return;
      }
      case 14: {
        const std::string topic = Pick(u_.topics, u_.topics.size());
        const int32_t partition = Uniform(0, 2);
        const StoredOffset offset{"c" + std::to_string(Uniform(0, 1)), Uniform(0, 1'000'000)};
        OffsetKey(topic, partition, &key);
        m->offsets[key] = offset;
        b->ops.push_back([=](WriteSet* s) { s->PutOffset(topic, partition, offset); });
        return;
      }
      default: {
        const int64_t time = Uniform(0, 1'000'000'000);
        m->newest = time;
        b->ops.push_back([=](WriteSet* s) { s->PutNewestEventTime(time); });
        return;
      }
    }
  }

  const Universe& u_;
  std::mt19937_64 rng_;
};

// ------------------------------------------------------------------------------------ reading

// Every ReadView read of every key and scan of `u`, decoded.
Lines ViewLines(const ReadView& v, const Universe& u) {
  Lines out;
  for (const std::string& key : u.counters) {
    Counters c;
    const bool found = v.AddCounters(key, &c);
    out.push_back("AddCounters " + Hex(key) + Found(found) + (found ? Text(c) : ""));
  }
  for (size_t p = 0; p < u.counter_prefixes.size(); ++p) {
    int n = 0;
    v.ScanCounters(u.counter_prefixes[p], [&](std::string_view suffix, const Counters& c) {
      out.push_back("ScanCounters#" + std::to_string(p) + " " + std::to_string(n++) + " " +
                    Hex(suffix) + Text(c));
    });
  }
  for (const std::string& key : u.packs) {
    std::string pack;
    std::map<uint32_t, Counters> users;
    bool ordered = true;
    const bool found = v.GetUserPack(key, &pack);
    int64_t last = -1;
    ForEachUserPackEntry(pack, [&](uint32_t user, std::string_view encoded) {
      ordered = ordered && static_cast<int64_t>(user) > last;
      last = user;
      AddEncodedCounters(encoded, &users[user]);
    });
    out.push_back("GetUserPack " + Hex(key) + Found(found) + PackText(users, ordered));

    users.clear();
    const bool has_parts = v.ForEachUserPackPart(key, [&](std::string_view part) {
      ForEachUserPackEntry(part, [&](uint32_t user, std::string_view encoded) {
        AddEncodedCounters(encoded, &users[user]);
      });
    });
    out.push_back("ForEachUserPackPart " + Hex(key) + Found(has_parts) + PackText(users));

    users.clear();
    v.ForEachUserCounters(key,
                          [&](uint32_t user, const Counters& c) { Model::Add(c, &users[user]); });
    out.push_back("ForEachUserCounters " + Hex(key) + PackText(users));

    for (uint32_t user = 0; user <= u.pack_users; ++user) {
      Counters c;
      const bool pack_found = v.AddUserCounters(key, user, &c);
      out.push_back("AddUserCounters " + Hex(key) + " u" + std::to_string(user) +
                    Found(pack_found) + Text(c));
    }
  }
  for (const std::string& key : u.bitmaps) {
    UserBitmap b;
    const bool found = v.OrBitmap(key, &b);
    out.push_back("OrBitmap " + Hex(key) + Found(found) + BitmapText(b));
  }
  const std::vector<uint64_t> unions = v.UnionCardinalities(u.union_groups);
  for (size_t g = 0; g < unions.size(); ++g) {
    out.push_back("UnionCardinalities#" + std::to_string(g) + " " + std::to_string(unions[g]));
  }
  for (const std::string& key : u.slices) {
    std::string text;
    const bool found = v.ReadSlice(key, [&](const SliceView& s) { text = SliceText(s); });
    out.push_back("ReadSlice " + Hex(key) + Found(found) + text);
  }
  for (const std::string& key : u.slices) {
    // The parts, summed, are the slice.
    Slice sum;
    const bool found = v.ReadSliceParts(key, [&](const SliceView& part) {
      Slice one;
      one.totals = part.totals();
      for (size_t i = 0; i < part.user_count(); ++i) one.users.push_back(part.user(i));
      for (size_t i = 0; i < part.agent_count(); ++i) one.agents.push_back(part.agent(i));
      sum.Append(one);
    });
    sum.Normalize();
    out.push_back("ReadSliceParts " + Hex(key) + Found(found) +
                  (found ? SliceText(sum.totals, sum.users, sum.agents) : ""));
  }
  for (size_t i = 0; i < u.slice_scans.size(); ++i) {
    const Universe::SliceScan& scan = u.slice_scans[i];
    size_t n = 0;
    v.ScanSlices(scan.prefix, scan.start, [&](std::string_view key, const SliceView& s) {
      out.push_back("ScanSlices#" + std::to_string(i) + " " + std::to_string(n) + " " + Hex(key) +
                    SliceText(s));
      return ++n < scan.limit;
    });
    n = 0;
    v.ScanSliceKeys(scan.prefix, scan.start, [&](std::string_view key) {
      out.push_back("ScanSliceKeys#" + std::to_string(i) + " " + std::to_string(n) + " " +
                    Hex(key));
      return ++n < scan.limit;
    });
  }
  for (const std::string& prefix : u.slice_prefixes) {
    out.push_back("HasSliceWithPrefix " + Hex(prefix) + Found(v.HasSliceWithPrefix(prefix)));
  }
  for (const std::string& key : u.records) {
    Record r;
    const bool found = v.GetRecord(key, &r);
    out.push_back("GetRecord " + Hex(key) + Found(found) + (found ? RecordText(r) : ""));
  }
  for (size_t p = 0; p < u.record_prefixes.size(); ++p) {
    for (size_t limit : {size_t{2}, SIZE_MAX}) {
      const std::string scan = "#" + std::to_string(p) + "/" + LimitText(limit) + " ";
      size_t n = 0;
      v.ScanRecords(u.record_prefixes[p], [&](std::string_view key, const Record& r) {
        out.push_back("ScanRecords" + scan + std::to_string(n) + " " + Hex(key) + RecordText(r));
        return ++n < limit;
      });
      n = 0;
      v.ScanEncodedRecords(u.record_prefixes[p], [&](std::string_view key, std::string_view enc) {
        Record r;
        const bool ok = DecodeRecord(enc, &r);
        out.push_back("ScanEncodedRecords" + scan + std::to_string(n) + " " + Hex(key) +
                      (ok ? "" : " MALFORMED") + RecordText(r));
        return ++n < limit;
      });
    }
  }
  for (size_t i = 0; i < u.counter_merge_scans.size(); ++i) {
    v.MergeScanCounters(u.counter_merge_scans[i], [&](std::string_view suffix,
                                                      std::span<const ReadView::ScanRow> rows) {
      std::string line = "MergeScanCounters#" + std::to_string(i) + " " + Hex(suffix);
      for (const ReadView::ScanRow& row : rows) {
        Counters c;
        const bool ok = AddEncodedCounters(row.value, &c);
        line += " [" + std::to_string(row.prefix) + (ok ? "" : " MALFORMED") + Text(c) + "]";
      }
      out.push_back(line);
    });
  }
  for (size_t i = 0; i < u.bitmap_merge_scans.size(); ++i) {
    v.MergeScanBitmaps(u.bitmap_merge_scans[i], [&](std::string_view suffix,
                                                    std::span<const ReadView::ScanRow> rows) {
      std::string line = "MergeScanBitmaps#" + std::to_string(i) + " " + Hex(suffix);
      for (const ReadView::ScanRow& row : rows) {
        UserBitmap b;
        const bool ok = b.OrEncoded(row.value);
        line += " [" + std::to_string(row.prefix) + (ok ? "" : " MALFORMED") + BitmapText(b) + "]";
      }
      out.push_back(line);
    });
  }
  for (const std::string& id : u.user_ids) {
    uint32_t index = 0;
    const bool found = v.LookupUser(id, &index);
    out.push_back("LookupUser " + id + Found(found) + (found ? " " + std::to_string(index) : ""));
  }
  for (uint32_t index = 0; index <= u.user_indexes; ++index) {
    std::string id;
    const bool found = v.UserIdOf(index, &id);
    out.push_back("UserIdOf " + std::to_string(index) + Found(found) + " " + id);
  }
  return out;
}

std::string IndexText(const Result<std::optional<uint32_t>>& r) {
  if (!r) return " ERROR " + r.error().message;
  return *r ? " " + std::to_string(**r) : " absent";
}

// Every read the writer makes (Store's own reads), decoded.
Lines WriterLines(const Store& s, const Universe& u) {
  Lines out;
  for (const std::string& id : u.user_ids) {
    out.push_back("LookupUserIndex " + id + IndexText(s.LookupUserIndex(id)));
  }
  for (const auto& [ws, agent] : u.agents) {
    out.push_back("LookupAgentIndex " + ws + "/" + agent +
                  IndexText(s.LookupAgentIndex(ws, agent)));
  }
  for (uint32_t agent = 0; agent < 4; ++agent) {
    for (uint32_t user = 0; user < 5; ++user) {
      out.push_back("LookupPairIndex " + std::to_string(agent) + "/" + std::to_string(user) +
                    IndexText(s.LookupPairIndex(agent, user)));
    }
  }
  if (auto next = s.LoadDictionaryNext(); next) {
    out.push_back("LoadDictionaryNext " + std::to_string(next->user) + " " +
                  std::to_string(next->agent) + " " + std::to_string(next->pair));
  } else {
    out.push_back("LoadDictionaryNext ERROR " + next.error().message);
  }
  std::vector<std::string_view> keys(u.dedupe.begin(), u.dedupe.end());
  std::sort(keys.begin(), keys.end());
  std::vector<uint8_t> stored;
  if (auto st = s.FindDedupeKeys(keys, &stored); !st) {
    out.push_back("FindDedupeKeys ERROR " + st.error().message);
  }
  for (size_t i = 0; i < keys.size() && i < stored.size(); ++i) {
    out.push_back("FindDedupeKeys " + Hex(keys[i]) + Found(stored[i] != 0));
  }
  int n = 0;
  if (auto st = s.ScanDedupeKeys([&](std::string_view key) {
        out.push_back("ScanDedupeKeys " + std::to_string(n++) + " " + Hex(key));
        return true;
      });
      !st) {
    out.push_back("ScanDedupeKeys ERROR " + st.error().message);
  }
  n = 0;
  if (auto st = s.ScanWorkspaceRecords([&](std::string_view ws, const Record& r) {
        out.push_back("ScanWorkspaceRecords " + std::to_string(n++) + " " + std::string(ws) +
                      RecordText(r));
      });
      !st) {
    out.push_back("ScanWorkspaceRecords ERROR " + st.error().message);
  }
  if (auto offsets = s.LoadOffsets(); offsets) {
    for (const Store::OffsetEntry& e : *offsets) {
      out.push_back("LoadOffsets " + e.topic + "/" + std::to_string(e.partition) + " " +
                    e.offset.cluster_id + " " + std::to_string(e.offset.next_offset));
    }
  } else {
    out.push_back("LoadOffsets ERROR " + offsets.error().message);
  }
  return out;
}

// What ViewLines must read from a store holding `m`.
Lines ModelViewLines(const Model& m, const Universe& u) {
  Lines out;
  for (const std::string& key : u.counters) {
    auto it = m.counters.find(key);
    const bool found = it != m.counters.end();
    out.push_back("AddCounters " + Hex(key) + Found(found) + (found ? Text(it->second) : ""));
  }
  for (size_t p = 0; p < u.counter_prefixes.size(); ++p) {
    const std::string& prefix = u.counter_prefixes[p];
    int n = 0;
    ScanModel(m.counters, prefix, "", [&](const std::string& key, const Counters& c) {
      out.push_back("ScanCounters#" + std::to_string(p) + " " + std::to_string(n++) + " " +
                    Hex(std::string_view(key).substr(prefix.size())) + Text(c));
      return true;
    });
  }
  for (const std::string& key : u.packs) {
    auto it = m.packs.find(key);
    const bool found = it != m.packs.end();
    const std::map<uint32_t, Counters> none;
    const auto& users = found ? it->second : none;
    out.push_back("GetUserPack " + Hex(key) + Found(found) + PackText(users));
    out.push_back("ForEachUserPackPart " + Hex(key) + Found(found) + PackText(users));
    out.push_back("ForEachUserCounters " + Hex(key) + PackText(users));
    for (uint32_t user = 0; user <= u.pack_users; ++user) {
      auto c = users.find(user);
      out.push_back("AddUserCounters " + Hex(key) + " u" + std::to_string(user) + Found(found) +
                    Text(c == users.end() ? Counters{} : c->second));
    }
  }
  auto ids = [&](const std::string& key) {
    auto it = m.bitmaps.find(key);
    return it == m.bitmaps.end() ? std::vector<uint32_t>{}
                                 : std::vector<uint32_t>(it->second.begin(), it->second.end());
  };
  for (const std::string& key : u.bitmaps) {
    out.push_back("OrBitmap " + Hex(key) + Found(m.bitmaps.contains(key)) + BitmapText(ids(key)));
  }
  for (size_t g = 0; g < u.union_groups.size(); ++g) {
    std::set<uint32_t> all;
    for (const std::string& key : u.union_groups[g]) {
      for (uint32_t id : ids(key)) all.insert(id);
    }
    out.push_back("UnionCardinalities#" + std::to_string(g) + " " + std::to_string(all.size()));
  }
  for (const std::string& key : u.slices) {
    auto it = m.slices.find(key);
    const bool found = it != m.slices.end();
    out.push_back("ReadSlice " + Hex(key) + Found(found) +
                  (found ? m.SliceTextOf(it->second) : ""));
  }
  for (const std::string& key : u.slices) {
    auto it = m.slices.find(key);
    const bool found = it != m.slices.end();
    out.push_back("ReadSliceParts " + Hex(key) + Found(found) +
                  (found ? m.SliceTextOf(it->second) : ""));
  }
  for (size_t i = 0; i < u.slice_scans.size(); ++i) {
    const Universe::SliceScan& scan = u.slice_scans[i];
    size_t n = 0;
    ScanModel(m.slices, scan.prefix, scan.start.empty() ? scan.prefix : scan.start,
              [&](const std::string& key, const Model::SliceSum& s) {
                out.push_back("ScanSlices#" + std::to_string(i) + " " + std::to_string(n) + " " +
                              Hex(key) + m.SliceTextOf(s));
                return ++n < scan.limit;
              });
    n = 0;
    ScanModel(m.slices, scan.prefix, scan.start.empty() ? scan.prefix : scan.start,
              [&](const std::string& key, const Model::SliceSum&) {
                out.push_back("ScanSliceKeys#" + std::to_string(i) + " " + std::to_string(n) + " " +
                              Hex(key));
                return ++n < scan.limit;
              });
  }
  for (const std::string& prefix : u.slice_prefixes) {
    bool found = false;
    ScanModel(m.slices, prefix, "", [&](const std::string&, const Model::SliceSum&) {
      found = true;
      return false;
    });
    out.push_back("HasSliceWithPrefix " + Hex(prefix) + Found(found));
  }
  for (const std::string& key : u.records) {
    auto it = m.records.find(key);
    const bool found = it != m.records.end();
    out.push_back("GetRecord " + Hex(key) + Found(found) +
                  (found ? RecordText(m.RecordOf(it->second)) : ""));
  }
  for (size_t p = 0; p < u.record_prefixes.size(); ++p) {
    for (size_t limit : {size_t{2}, SIZE_MAX}) {
      const std::string scan = "#" + std::to_string(p) + "/" + LimitText(limit) + " ";
      for (const char* method : {"ScanRecords", "ScanEncodedRecords"}) {
        size_t n = 0;
        ScanModel(m.records, u.record_prefixes[p], "", [&](const std::string& key, const auto& r) {
          out.push_back(method + scan + std::to_string(n) + " " + Hex(key) +
                        RecordText(m.RecordOf(r)));
          return ++n < limit;
        });
      }
    }
  }
  // Merge scans: for each suffix under any prefix, in order, the rows of the prefixes holding it.
  auto merge_scan = [&](const auto& rows, const std::vector<std::string>& prefixes,
                        const std::string& name, auto&& text) {
    std::set<std::string> suffixes;
    for (const std::string& prefix : prefixes) {
      ScanModel(rows, prefix, "", [&](const std::string& key, const auto&) {
        suffixes.insert(key.substr(prefix.size()));
        return true;
      });
    }
    for (const std::string& suffix : suffixes) {
      std::string line = name + " " + Hex(suffix);
      for (size_t k = 0; k < prefixes.size(); ++k) {
        auto it = rows.find(prefixes[k] + suffix);
        if (it != rows.end()) line += " [" + std::to_string(k) + text(it->first) + "]";
      }
      out.push_back(line);
    }
  };
  for (size_t i = 0; i < u.counter_merge_scans.size(); ++i) {
    merge_scan(m.counters, u.counter_merge_scans[i], "MergeScanCounters#" + std::to_string(i),
               [&](const std::string& key) { return Text(m.counters.at(key)); });
  }
  for (size_t i = 0; i < u.bitmap_merge_scans.size(); ++i) {
    merge_scan(m.bitmaps, u.bitmap_merge_scans[i], "MergeScanBitmaps#" + std::to_string(i),
               [&](const std::string& key) { return BitmapText(ids(key)); });
  }
  for (const std::string& id : u.user_ids) {
    auto it = m.users.find(id);
    const bool found = it != m.users.end();
    out.push_back("LookupUser " + id + Found(found) +
                  (found ? " " + std::to_string(it->second) : ""));
  }
  for (uint32_t index = 0; index <= u.user_indexes; ++index) {
    auto it = m.user_ids.find(index);
    const bool found = it != m.user_ids.end();
    out.push_back("UserIdOf " + std::to_string(index) + Found(found) + " " +
                  (found ? it->second : ""));
  }
  return out;
}

// What WriterLines must read from a store holding `m`.
Lines ModelWriterLines(const Model& m, const Universe& u) {
  Lines out;
  auto index = [](const auto& map, const auto& key) {
    auto it = map.find(key);
    return it == map.end() ? std::string(" absent") : " " + std::to_string(it->second);
  };
  for (const std::string& id : u.user_ids) {
    out.push_back("LookupUserIndex " + id + index(m.users, id));
  }
  for (const auto& agent : u.agents) {
    out.push_back("LookupAgentIndex " + agent.first + "/" + agent.second + index(m.agents, agent));
  }
  for (uint32_t agent = 0; agent < 4; ++agent) {
    for (uint32_t user = 0; user < 5; ++user) {
      out.push_back("LookupPairIndex " + std::to_string(agent) + "/" + std::to_string(user) +
                    index(m.pairs, std::pair{agent, user}));
    }
  }
  out.push_back("LoadDictionaryNext " + std::to_string(m.next.user) + " " +
                std::to_string(m.next.agent) + " " + std::to_string(m.next.pair));
  std::vector<std::string> keys = u.dedupe;
  std::sort(keys.begin(), keys.end());
  for (const std::string& key : keys) {
    out.push_back("FindDedupeKeys " + Hex(key) + Found(m.dedupe.contains(key)));
  }
  int n = 0;
  for (const std::string& key : m.dedupe) {
    out.push_back("ScanDedupeKeys " + std::to_string(n++) + " " + Hex(key));
  }
  n = 0;
  ScanModel(m.records, WorkspacePrefix(), "", [&](const std::string& key, const auto& r) {
    std::string_view ws;
    if (DecodeWorkspaceKey(key, &ws)) {
      out.push_back("ScanWorkspaceRecords " + std::to_string(n++) + " " + std::string(ws) +
                    RecordText(m.RecordOf(r)));
    }
    return true;
  });
  for (const auto& [key, offset] : m.offsets) {
    std::string topic;
    int32_t partition = 0;
    DecodeOffsetKey(key, &topic, &partition);
    out.push_back("LoadOffsets " + topic + "/" + std::to_string(partition) + " " +
                  offset.cluster_id + " " + std::to_string(offset.next_offset));
  }
  return out;
}

// ------------------------------------------------------------------------------------ fixture

class StageTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const auto& dir : dirs_) std::filesystem::remove_all(dir);
  }
  // A new store in a fresh directory named `name`.
  std::unique_ptr<Store> Open(const std::string& name) {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() /
        ("tally_stage_test_" + std::to_string(::getpid()) + "_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" + name);
    std::filesystem::remove_all(dir);
    dirs_.push_back(dir);
    return Reopen(dir.string());
  }
  // Opens the store at `path` (as a restarted process would).
  static std::unique_ptr<Store> Reopen(const std::string& path) {
    auto s = Store::Open({.path = path});
    EXPECT_TRUE(s.has_value()) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }
  static void Reopen(std::unique_ptr<Store>* store) {
    const std::string path = (*store)->path();
    store->reset();
    *store = Reopen(path);
  }
  // Flushes every memtable of `store` to files (stored rows then come from several levels).
  static void FlushAll(const Store& store) {
    const internal::StoreRep& rep = internal::Access::Rep(store);
    ASSERT_TRUE(rep.db->Flush(rocksdb::FlushOptions(), rep.cf).ok());
  }
  static void CompactAll(const Store& store) {
    const internal::StoreRep& rep = internal::Access::Rep(store);
    for (auto* cf : rep.cf) {
      ASSERT_TRUE(rep.db->CompactRange(rocksdb::CompactRangeOptions(), cf, nullptr, nullptr).ok());
    }
  }
  static void Write(Store& store, const Batch& batch) {
    WriteSet set(store);
    batch.ApplyTo(&set);
    auto s = store.Write(&set);
    ASSERT_TRUE(s.has_value()) << s.error().message;
  }
  static void Stage(Store& store, const Batch& batch) {
    WriteSet set(store);
    batch.ApplyTo(&set);
    auto s = store.Stage(&set);
    ASSERT_TRUE(s.has_value()) << s.error().message;
  }
  static void Persist(Store& store) {
    auto s = store.Persist();
    ASSERT_TRUE(s.has_value()) << s.error().message;
    EXPECT_EQ(store.staged().rows, 0u);
  }

  std::vector<std::filesystem::path> dirs_;
};

// The same random write sets, applied to one store with Write only and to another with Stage
// (persisted at random points, with an occasional Write in between), read the same through every
// read of a view and of the writer, and both read as the reference model says, at every point:
// with sets staged, after Persist, after flushes, compactions and reopening.
TEST_F(StageTest, StagedSetsReadLikeWrittenOnes) {
  const Universe u = Universe::Make();
  std::unique_ptr<Store> written = Open("written"), staged = Open("staged");
  ASSERT_TRUE(written && staged);
  Model model;
  Generator gen(u, 20240611);
  auto compare = [&](const std::string& when) {
    const Lines want_view = ModelViewLines(model, u), want_writer = ModelWriterLines(model, u);
    const Lines written_view = ViewLines(*written->NewReadView(), u);
    const Lines staged_view = ViewLines(*staged->NewReadView(), u);
    ExpectSameLines(written_view, staged_view, when + ": views, written store vs staged store");
    ExpectSameLines(want_view, staged_view, when + ": views, model vs staged store");
    ExpectSameLines(want_view, written_view, when + ": views, model vs written store");
    const Lines written_writer = WriterLines(*written, u);
    const Lines staged_writer = WriterLines(*staged, u);
    ExpectSameLines(written_writer, staged_writer, when + ": writer reads, written vs staged");
    ExpectSameLines(want_writer, staged_writer, when + ": writer reads, model vs staged store");
    ExpectSameLines(want_writer, written_writer, when + ": writer reads, model vs written store");
  };

  constexpr int kSets = 320;
  int staged_sets = 0, persists = 0, writes_while_staged = 0;
  for (int i = 0; i < kSets; ++i) {
    const Batch batch = gen.Next(&model);
    Write(*written, batch);
    if (gen.Chance(0.1)) {
      if (staged->staged().rows > 0) ++writes_while_staged;
      Write(*staged, batch);  // persists what was staged, then this set
      EXPECT_EQ(staged->staged().rows, 0u);
    } else {
      Stage(*staged, batch);
      ++staged_sets;
      EXPECT_GT(staged->staged().rows, 0u);
      EXPECT_GT(staged->staged().bytes, 0u);
    }
    if (gen.Chance(0.15)) {
      Persist(*staged);
      ++persists;
    }
    if (gen.Chance(0.04)) {
      FlushAll(*written);
      FlushAll(*staged);  // the database only: what is staged stays staged
    }
    if (gen.Chance(0.02)) {
      CompactAll(*written);
      CompactAll(*staged);
    }
    if (i % 100 == 99) {  // a restart, after persisting (what a crash would lose: see below)
      Persist(*staged);
      Reopen(&written);
      Reopen(&staged);
      ASSERT_TRUE(written && staged);
    }
    if (i % 8 == 7) compare("after set " + std::to_string(i));
    if (HasFailure()) return;
  }
  EXPECT_GT(staged_sets, kSets / 2);
  EXPECT_GT(persists, 10);
  EXPECT_GT(writes_while_staged, 5);

  ASSERT_GT(staged->staged().rows, 0u);  // the last sets are still staged
  compare("at the end, with sets staged");
  Persist(*staged);
  compare("at the end, persisted");
  Reopen(&written);
  Reopen(&staged);
  ASSERT_TRUE(written && staged);
  compare("at the end, reopened");
  ASSERT_TRUE(model.newest.has_value());
  EXPECT_EQ(staged->newest_event_ms(), *model.newest);
  EXPECT_EQ(written->newest_event_ms(), *model.newest);
  EXPECT_EQ(staged->MalformedOperands(), 0u);
  EXPECT_EQ(written->MalformedOperands(), 0u);
}

// Day rows of sets that roll up (WriteSet::set_roll_up_days) read, at their day, week and month
// keys, as the sums of the deltas written to each: for every bucketed view, over days that
// straddle a week and a month boundary, staged, persisted, written and reopened. The keys of the
// weeks and months come from codec.h's key constructors, not from the roll-up.
TEST_F(StageTest, DayRowsOfARollingUpSetAddUpIntoTheirWeeksAndMonths) {
  // Saturday 2023-12-30 to Tuesday 2024-01-02: two ISO weeks and two months.
  const DayNumber first = DaysFromCivil(2023, 12, 30);
  const std::string_view project = "p0";
  enum Kind { kCounter, kBitmap, kPack, kSlice };
  // One key of each bucketed row layout, at (g, bucket).
  auto keys_at = [&](Granularity g, int32_t bucket) {
    std::vector<std::pair<Kind, std::string>> out;
    std::string key, id;
    ScopeIdEntity(event::EntityKind::kAgent, "a0", &id);
    CounterKey(Scope::kEntity, "w0", g, bucket, id, &key);
    out.emplace_back(kCounter, key);
    CounterKey(Scope::kWorkspace, "w1", g, bucket, "", &key);
    out.emplace_back(kCounter, key);
    ScopeIdProject(project, &id);
    BitmapKey(Scope::kProject, "w0", g, bucket, id, &key);
    out.emplace_back(kBitmap, key);
    UserPackKey("w0", g, bucket, &key);
    out.emplace_back(kPack, key);
    RequestsSliceKey("o0", kAllAgents, nullptr, g, bucket, &key);
    out.emplace_back(kSlice, key);
    RequestsSliceKey("o0", 1, &project, g, bucket, &key);
    out.emplace_back(kSlice, key);
    RequestsUsersKey("o0", 1, &project, g, bucket, &key);
    out.emplace_back(kBitmap, key);
    RequestsPairsKey("o0", nullptr, g, bucket, &key);
    out.emplace_back(kBitmap, key);
    return out;
  };
  // rows[d][i]: the day, week and month keys of layout i on day first + d.
  std::vector<std::vector<std::array<std::string, 3>>> rows;
  Universe u;  // every key read back, plus a week and a month nothing rolls into
  u.pack_users = 6;
  const std::array<std::vector<std::string>*, 4> lists = {&u.counters, &u.bitmaps, &u.packs,
                                                          &u.slices};  // by Kind
  auto read_back = [&](Kind kind, const std::string& key) { lists[kind]->push_back(key); };
  std::vector<Kind> kinds;  // by layout
  for (const auto& [kind, key] : keys_at(Granularity::kDay, first)) kinds.push_back(kind);
  for (DayNumber day = first; day < first + 4; ++day) {
    const auto days = keys_at(Granularity::kDay, day);
    const auto weeks = keys_at(Granularity::kWeek, WeekOfDay(day));
    const auto months = keys_at(Granularity::kMonth, MonthOfDay(day));
    rows.emplace_back();
    for (size_t i = 0; i < days.size(); ++i) {
      rows.back().push_back({days[i].second, weeks[i].second, months[i].second});
      for (const auto& keys : {days, weeks, months}) read_back(kinds[i], keys[i].second);
    }
  }
  for (const auto& [kind, key] : keys_at(Granularity::kWeek, WeekOfDay(first + 7))) {
    read_back(kind, key);
  }
  for (const auto& [kind, key] : keys_at(Granularity::kMonth, MonthOfDay(first) - 1)) {
    read_back(kind, key);
  }
  // Scans over a week and a month bucket of counters and bitmaps see the rolled-up rows.
  std::string prefix;
  CounterBucketPrefix(Scope::kEntity, "w0", Granularity::kWeek, WeekOfDay(first + 3), &prefix);
  u.counter_prefixes.push_back(prefix);
  CounterBucketPrefix(Scope::kEntity, "w0", Granularity::kMonth, MonthOfDay(first), &prefix);
  u.counter_prefixes.push_back(prefix);
  BitmapKey(Scope::kProject, "w0", Granularity::kMonth, MonthOfDay(first + 3), "", &prefix);
  u.bitmap_merge_scans.push_back({prefix});
  RequestsProjectsPrefix("o0", 1, &prefix);
  u.slice_scans.push_back({prefix, "", 100});

  std::unique_ptr<Store> store = Open("rollup");
  ASSERT_TRUE(store);
  Model model;
  Generator gen(u, 20261206);
  auto compare = [&](const std::string& when) {
    ExpectSameLines(ModelViewLines(model, u), ViewLines(*store->NewReadView(), u), when);
  };
  int writes = 0, persists = 0;
  for (int i = 0; i < 240; ++i) {
    WriteSet set(*store);
    set.set_roll_up_days(true);
    for (int k = gen.Uniform(1, 6); k > 0; --k) {
      const auto& row = rows[gen.Uniform(0, 3)];
      const size_t at = static_cast<size_t>(gen.Uniform(0, static_cast<int>(row.size()) - 1));
      const auto& [day, week, month] = row[at];
      switch (kinds[at]) {
        case kCounter:
          set.AddCounters(day, gen.CountersOp(&model, {day, week, month}));
          break;
        case kBitmap:
          set.OrBitmap(day, gen.BitmapOp(&model, {day, week, month}));
          break;
        case kPack:
          set.AddUserPack(day, gen.PackOp(&model, {day, week, month}));
          break;
        case kSlice:
          set.AddSlice(day, gen.SliceOp(&model, {day, week, month}));
          break;
      }
    }
    if (gen.Chance(0.1)) {
      auto s = store->Write(&set);  // stages it, then persists everything
      ASSERT_TRUE(s.has_value()) << s.error().message;
      EXPECT_EQ(store->staged().rows, 0u);
      ++writes;
    } else {
      auto s = store->Stage(&set);
      ASSERT_TRUE(s.has_value()) << s.error().message;
    }
    if (gen.Chance(0.1)) {
      Persist(*store);
      ++persists;
    }
    if (i % 10 == 9) compare("after set " + std::to_string(i));
    if (i == 120) {
      Persist(*store);
      Reopen(&store);
      ASSERT_TRUE(store);
      compare("reopened");
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(writes, 5);
  EXPECT_GT(persists, 10);
  Persist(*store);
  Reopen(&store);
  ASSERT_TRUE(store);
  compare("at the end, reopened");
  EXPECT_EQ(store->MalformedOperands(), 0u);
}

// Staged sets live in memory only: a store closed without Persist (as a crash would) reopens with
// nothing of them, offsets included, and a checkpoint never holds them; once persisted (by
// Persist or by a later Write), all of them survive a reopen.
TEST_F(StageTest, ACrashLosesStagedSetsAndOffsetsTogether) {
  const Universe u = Universe::Make();
  std::unique_ptr<Store> store = Open("crash");
  ASSERT_TRUE(store);
  Generator gen(u, 7);
  Model model;
  // A written base, offsets included.
  for (int i = 0; i < 20; ++i) Write(*store, gen.Next(&model));
  WriteSet offsets(*store);
  offsets.PutOffset("t0", 0, {"c0", 100});
  offsets.PutOffset("t0", 1, {"c0", 200});
  ASSERT_TRUE(store->Write(&offsets).has_value());
  std::string key;
  OffsetKey("t0", 0, &key);
  model.offsets[key] = {"c0", 100};
  OffsetKey("t0", 1, &key);
  model.offsets[key] = {"c0", 200};
  const Model base = model;
  const Lines base_view = ModelViewLines(base, u), base_writer = ModelWriterLines(base, u);

  // Staged sets with their offsets (moved on, and a new partition): read at once...
  Model staged_model = base;
  std::vector<Batch> batches;
  for (int i = 0; i < 20; ++i) batches.push_back(gen.Next(&staged_model));
  Batch offsets_on;
  offsets_on.ops.push_back([](WriteSet* s) {
    s->PutOffset("t0", 0, {"c0", 150});
    s->PutOffset("t9", 0, {"c0", 10});
  });
  batches.push_back(offsets_on);
  OffsetKey("t0", 0, &key);
  staged_model.offsets[key] = {"c0", 150};
  OffsetKey("t9", 0, &key);
  staged_model.offsets[key] = {"c0", 10};
  for (const Batch& b : batches) Stage(*store, b);
  ExpectSameLines(ModelViewLines(staged_model, u), ViewLines(*store->NewReadView(), u),
                  "staged, before the crash");
  ExpectSameLines(ModelWriterLines(staged_model, u), WriterLines(*store, u),
                  "writer reads, staged, before the crash");

  // ...but not in a checkpoint...
  const std::filesystem::path checkpoint = std::filesystem::path(store->path()) += "_checkpoint";
  dirs_.push_back(checkpoint);
  ASSERT_TRUE(store->Checkpoint(checkpoint.string()).has_value());
  {
    std::unique_ptr<Store> copy = Reopen(checkpoint.string());
    ASSERT_TRUE(copy);
    ExpectSameLines(base_view, ViewLines(*copy->NewReadView(), u), "checkpoint taken while staged");
    ExpectSameLines(base_writer, WriterLines(*copy, u), "writer reads, checkpoint while staged");
  }

  // ...and gone after a crash: the views and the offsets are those of the last write.
  Reopen(&store);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->staged().rows, 0u);
  ExpectSameLines(base_view, ViewLines(*store->NewReadView(), u), "reopened after a crash");
  ExpectSameLines(base_writer, WriterLines(*store, u), "writer reads, reopened after a crash");
  auto loaded = store->LoadOffsets();
  ASSERT_TRUE(loaded.has_value());
  std::map<std::pair<std::string, int32_t>, int64_t> next;
  for (const Store::OffsetEntry& e : *loaded) next[{e.topic, e.partition}] = e.offset.next_offset;
  EXPECT_EQ((next[{"t0", 0}]), 100);
  EXPECT_EQ((next[{"t0", 1}]), 200);
  EXPECT_FALSE(next.contains({"t9", 0}));  // a partition first seen by the staged sets

  // Staged again and persisted: everything survives.
  for (const Batch& b : batches) Stage(*store, b);
  Persist(*store);
  Reopen(&store);
  ASSERT_TRUE(store);
  ExpectSameLines(ModelViewLines(staged_model, u), ViewLines(*store->NewReadView(), u),
                  "persisted, reopened");
  ExpectSameLines(ModelWriterLines(staged_model, u), WriterLines(*store, u),
                  "writer reads, persisted, reopened");

  // Staged, then a Write: the Write persists the staged sets too, before itself.
  Model written_model = staged_model;
  for (int i = 0; i < 10; ++i) Stage(*store, gen.Next(&written_model));
  Batch last = gen.Next(&written_model);
  last.ops.push_back([](WriteSet* s) { s->PutOffset("t0", 0, {"c1", 300}); });
  OffsetKey("t0", 0, &key);
  written_model.offsets[key] = {"c1", 300};
  Write(*store, last);
  EXPECT_EQ(store->staged().rows, 0u);
  Reopen(&store);
  ASSERT_TRUE(store);
  ExpectSameLines(ModelViewLines(written_model, u), ViewLines(*store->NewReadView(), u),
                  "staged then written, reopened");
  ExpectSameLines(ModelWriterLines(written_model, u), WriterLines(*store, u),
                  "writer reads, staged then written, reopened");
}

// A view reads staged rows as they are at each read: it sees sets staged after it was made, and
// a Persist changes nothing it reads (rows moving from memory to the database are not counted
// twice, nor lost); a view made after the Persist reads the same, with the same version. Views
// keep their generation: sets staged after a Persist are seen by views made after it only.
TEST_F(StageTest, ViewsReadTheSameAcrossAPersist) {
  const Universe u = Universe::Make();
  std::unique_ptr<Store> store = Open("views");
  ASSERT_TRUE(store);
  Generator gen(u, 99);
  Model model;
  for (int i = 0; i < 30; ++i) Write(*store, gen.Next(&model));
  FlushAll(*store);
  for (int i = 0; i < 10; ++i) Write(*store, gen.Next(&model));  // memtable and files
  for (int i = 0; i < 15; ++i) Stage(*store, gen.Next(&model));
  const auto early = store->NewReadView();  // made with sets staged
  for (int i = 0; i < 15; ++i) Stage(*store, gen.Next(&model));
  const Lines first = ModelViewLines(model, u);
  ExpectSameLines(first, ViewLines(*early, u), "a view sees sets staged after it was made");
  const uint64_t version = store->NewReadView()->version();
  EXPECT_GT(version, early->version());

  Persist(*store);
  ExpectSameLines(first, ViewLines(*early, u), "a view made before Persist, read after it");
  const auto late = store->NewReadView();
  ExpectSameLines(first, ViewLines(*late, u), "a view made after Persist");
  EXPECT_EQ(late->version(), version);  // Persist changes no content

  for (int i = 0; i < 15; ++i) Stage(*store, gen.Next(&model));
  const Lines second = ModelViewLines(model, u);
  ExpectSameLines(second, ViewLines(*late, u), "a view sees sets staged after a Persist");
  ExpectSameLines(first, ViewLines(*early, u), "a view of the previous generation");
  Persist(*store);
  ExpectSameLines(second, ViewLines(*late, u), "the same view after a second Persist");
  ExpectSameLines(second, ViewLines(*store->NewReadView(), u), "a view after a second Persist");
  ExpectSameLines(first, ViewLines(*early, u), "a view two generations old");
}

// One thread stages sets (persisting now and then, writing once in a while) while two threads
// make views and read. Each set adds 1 twice to a total row (two operations: a row shows a set
// entirely or not at all, so the total is even), 1 to one of several part rows, and two new ids
// to a bitmap. Every reader sees values that never decrease, within a view and from view to view,
// and never count more sets than were begun; in the end everything adds up.
TEST_F(StageTest, ReadersRaceTheWriterSafely) {
  std::unique_ptr<Store> store = Open("race");
  ASSERT_TRUE(store);
  constexpr int kParts = 8;
  std::string total, prefix, bitmap;
  CounterKey(Scope::kWorkspace, "w", Granularity::kDay, 0, "", &total);
  CounterBucketPrefix(Scope::kProject, "w", Granularity::kDay, 0, &prefix);
  BitmapKey(Scope::kWorkspace, "w", Granularity::kDay, 0, "", &bitmap);
  std::vector<std::string> parts;
  for (int i = 0; i < kParts; ++i) {
    std::string id, key;
    ScopeIdProject("p" + std::to_string(i), &id);
    CounterKey(Scope::kProject, "w", Granularity::kDay, 0, id, &key);
    parts.push_back(key);
  }
  Counters one;
  one.i[0] = 1;
  const std::string encoded_one = EncodeCounters(one);

  std::atomic<int64_t> begun{0};  // sets handed to Stage or Write so far
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    WriteSet set(*store);
    std::string enc;
    for (int64_t n = 0; !stop.load(); ++n) {
      set.Clear();
      set.AddCounters(total, encoded_one);
      set.AddCounters(parts[n % kParts], encoded_one);
      for (uint32_t id : {2 * static_cast<uint32_t>(n), 2 * static_cast<uint32_t>(n) + 1}) {
        UserBitmap b;
        b.Add(id);
        enc.clear();
        b.AppendEncoded(&enc);
        set.OrBitmap(bitmap, enc);
      }
      set.AddCounters(total, encoded_one);
      begun.store(n + 1);
      const Status s = n % 97 == 0 ? store->Write(&set) : store->Stage(&set);
      if (!s) {
        ADD_FAILURE() << "writing set " << n << ": " << s.error().message;
        return;
      }
      if (n % 13 == 12 && !store->Persist()) {
        ADD_FAILURE() << "persisting after set " << n;
        return;
      }
      if (n % 211 == 210 && !store->Flush()) {  // bounds the operands a read merges
        ADD_FAILURE() << "flushing after set " << n;
        return;
      }
    }
  });
  std::atomic<int64_t> reads{0};
  auto reader = [&] {
    int64_t last_total = 0, last_parts = 0;
    uint64_t last_ids = 0, last_version = 0;
    while (!stop.load()) {
      const auto view = store->NewReadView();
      Counters first;
      view->AddCounters(total, &first);
      Counters sum;
      view->ScanCounters(prefix, [&](std::string_view, const Counters& c) { sum.i[0] += c.i[0]; });
      UserBitmap ids;
      view->OrBitmap(bitmap, &ids);
      Counters second;
      view->AddCounters(total, &second);
      const int64_t limit = begun.load();
      const int64_t t1 = first.i[0], t2 = second.i[0], p = sum.i[0];
      const uint64_t n = ids.Cardinality();
      const bool ok = t1 % 2 == 0 && t2 % 2 == 0 && n % 2 == 0 && t1 >= last_total && t2 >= t1 &&
                      t2 <= 2 * limit && p >= last_parts && p <= limit && n >= last_ids &&
                      n <= 2 * static_cast<uint64_t>(limit) && view->version() >= last_version;
      if (!ok) {
        ADD_FAILURE() << "sets begun " << limit << "; total " << t1 << " then " << t2
                      << " (before: " << last_total << "), parts " << p
                      << " (before: " << last_parts << "), ids " << n << " (before: " << last_ids
                      << ")";
        return;
      }
      last_total = t2;
      last_parts = p;
      last_ids = n;
      last_version = view->version();
      reads.fetch_add(1);
    }
  };
  std::thread reader1(reader), reader2(reader);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop.store(true);
  writer.join();
  reader1.join();
  reader2.join();
  EXPECT_GT(reads.load(), 10);
  ASSERT_TRUE(store->Persist().has_value());

  const int64_t sets = begun.load();
  EXPECT_GT(sets, 100);
  const auto view = store->NewReadView();
  Counters t, sum;
  ASSERT_TRUE(view->AddCounters(total, &t));
  view->ScanCounters(prefix, [&](std::string_view, const Counters& c) { sum.i[0] += c.i[0]; });
  UserBitmap ids;
  view->OrBitmap(bitmap, &ids);
  EXPECT_EQ(t.i[0], 2 * sets);
  EXPECT_EQ(sum.i[0], sets);
  EXPECT_EQ(ids.Cardinality(), 2 * static_cast<uint64_t>(sets));
}

// A user pack stored in more parts than a view pins unmerged (read as one merged part) and staged
// too: ForEachUserPackPart hands the staged part after the stored one, and every pack read sums
// both, before and after Persist.
TEST_F(StageTest, UserPackPartsIncludeTheStagedPart) {
  std::unique_ptr<Store> store = Open("packs");
  ASSERT_TRUE(store);
  const internal::StoreRep& rep = internal::Access::Rep(*store);
  ASSERT_TRUE(
      rep.db->SetOptions(rep.family(internal::kUserPacks), {{"disable_auto_compactions", "true"}})
          .ok());
  std::string key;
  UserPackKey("ws", Granularity::kDay, 3, &key);
  std::map<uint32_t, int64_t> want;
  auto add = [&](uint32_t round, bool stage) {
    Counters c;
    c.i[1] = round + 1;
    std::string pack;
    UserPackWriter(&pack).Add(round % 3, c);
    want[round % 3] += round + 1;
    WriteSet set(*store);
    set.AddUserPack(key, pack);
    ASSERT_TRUE((stage ? store->Stage(&set) : store->Write(&set)).has_value());
  };
  auto check = [&](const ReadView& view, size_t want_parts, const std::string& when) {
    SCOPED_TRACE(when);
    std::map<uint32_t, int64_t> got;
    size_t parts = 0;
    EXPECT_TRUE(view.ForEachUserPackPart(key, [&](std::string_view part) {
      ++parts;
      ForEachUserPackEntry(part, [&](uint32_t user, std::string_view c) {
        Counters counters;
        EXPECT_TRUE(AddEncodedCounters(c, &counters));
        got[user] += counters.i[1];
      });
    }));
    EXPECT_EQ(parts, want_parts);
    EXPECT_EQ(got, want);
    got.clear();
    view.ForEachUserCounters(key, [&](uint32_t user, const Counters& c) { got[user] += c.i[1]; });
    EXPECT_EQ(got, want);
    for (uint32_t user = 0; user < 4; ++user) {
      Counters c;
      EXPECT_TRUE(view.AddUserCounters(key, user, &c));
      EXPECT_EQ(c.i[1], want.contains(user) ? want[user] : 0) << "user " << user;
    }
    std::string pack;
    ASSERT_TRUE(view.GetUserPack(key, &pack));
    got.clear();
    ForEachUserPackEntry(pack, [&](uint32_t user, std::string_view c) {
      Counters counters;
      AddEncodedCounters(c, &counters);
      got[user] += counters.i[1];
    });
    EXPECT_EQ(got, want);
  };
  for (uint32_t round = 0; round < 34; ++round) {  // 34 files: more than the 32 parts pinned
    add(round, false);
    ASSERT_TRUE(rep.db->Flush(rocksdb::FlushOptions(), rep.family(internal::kUserPacks)).ok());
  }
  check(*store->NewReadView(), 1, "stored only");
  for (uint32_t round = 34; round < 40; ++round) add(round, true);
  const auto before = store->NewReadView();
  check(*before, 2, "stored and staged");
  Persist(*store);
  check(*before, 2, "a view made before Persist");
  check(*store->NewReadView(), 1, "persisted");

  // A few stored parts, unmerged, and a staged one: the staged part comes last.
  std::string few;
  UserPackKey("ws", Granularity::kDay, 4, &few);
  key = few;
  want.clear();
  add(0, false);
  add(1, false);
  add(2, true);
  check(*store->NewReadView(), 3, "two stored parts and a staged one");
}

// testing::WriteUnlogged applies a set "like Store::Write": after the sets staged before it, which
// it must neither drop from readers nor keep from being persisted.
TEST_F(StageTest, AnUnloggedWriteKeepsWhatIsStaged) {
  std::unique_ptr<Store> store = Open("unlogged");
  ASSERT_TRUE(store);
  std::string key;
  CounterKey(Scope::kWorkspace, "ws", Granularity::kDay, 0, "", &key);
  Counters one;
  one.i[0] = 1;
  WriteSet set(*store);
  set.AddCounters(key, EncodeCounters(one));
  ASSERT_TRUE(store->Stage(&set).has_value());
  ASSERT_TRUE(testing::WriteUnlogged(*store, &set).has_value());
  auto read = [&] {
    Counters c;
    store->NewReadView()->AddCounters(key, &c);
    return c.i[0];
  };
  EXPECT_EQ(read(), 2) << "staged, then written unlogged";
  Persist(*store);
  EXPECT_EQ(read(), 2) << "persisted";
  Reopen(&store);
  ASSERT_TRUE(store);
  EXPECT_EQ(read(), 2) << "reopened";
}

// A scan whose start lies before its prefix reads stored and staged rows alike from the prefix
// on (the stored side used to seek to `start` and stop at the first key outside the prefix).
TEST_F(StageTest, SliceScanFromBeforeThePrefixSeesStoredAndStagedRows) {
  std::unique_ptr<Store> store = Open("slice-start");
  ASSERT_TRUE(store);
  Slice one;
  one.totals.requests = 1;
  std::string value;
  AppendSlice(one, &value);
  std::string a0, b0, b1;
  RequestsSliceKey("a", kAllAgents, nullptr, Granularity::kDay, 0, &a0);
  RequestsSliceKey("b", kAllAgents, nullptr, Granularity::kDay, 0, &b0);
  RequestsSliceKey("b", kAllAgents, nullptr, Granularity::kDay, 1, &b1);
  WriteSet stored(*store);
  stored.AddSlice(a0, value);
  stored.AddSlice(b0, value);
  ASSERT_TRUE(store->Write(&stored).has_value());
  WriteSet staged(*store);
  staged.AddSlice(b1, value);
  ASSERT_TRUE(store->Stage(&staged).has_value());
  const std::string prefix = b0.substr(0, b0.size() - 5);  // org "b", all agents and projects
  auto count = [&] {
    size_t n = 0;
    store->NewReadView()->ScanSlices(prefix, a0, [&](std::string_view, const SliceView&) {
      ++n;
      return true;
    });
    return n;
  };
  EXPECT_EQ(count(), 2u) << "one stored, one staged";
  Persist(*store);
  EXPECT_EQ(count(), 2u) << "both stored";
}

// Scans take staged rows a few at a time: full scans over many staged rows, and scans that stop
// after the first row from every start (how the requests engine lists projects), see exactly
// the stored and staged rows, combined where a key is in both.
TEST_F(StageTest, ScansOverManyStagedRowsSeeEveryRowOnce) {
  std::unique_ptr<Store> store = Open("many-staged");
  ASSERT_TRUE(store);
  constexpr int kProjects = 700;  // several chunks of staged rows
  auto key_of = [](int i) {
    char name[16];
    std::snprintf(name, sizeof name, "p%04d", i);
    const std::string_view project = name;
    std::string key;
    RequestsSliceKey("org", kAllAgents, &project, Granularity::kDay, 0, &key);
    return key;
  };
  auto value_of = [](uint64_t requests) {
    Slice slice;
    slice.totals.requests = requests;
    std::string value;
    AppendSlice(slice, &value);
    return value;
  };
  std::map<std::string, uint64_t> want;  // key -> requests
  WriteSet stored(*store);
  for (int i = 0; i < kProjects; i += 3) {
    stored.AddSlice(key_of(i), value_of(1));
    want[key_of(i)] += 1;
  }
  ASSERT_TRUE(store->Write(&stored).has_value());
  WriteSet staged(*store);
  for (int i = 0; i < kProjects; i += 2) {
    staged.AddSlice(key_of(i), value_of(10));
    want[key_of(i)] += 10;
  }
  ASSERT_TRUE(store->Stage(&staged).has_value());
  const std::string first = key_of(0);
  const std::string prefix = first.substr(0, first.size() - 5 - 6);  // org "org", all agents
  ASSERT_TRUE(want.begin()->first.starts_with(prefix));

  std::unique_ptr<ReadView> view = store->NewReadView();
  std::map<std::string, uint64_t> got;
  size_t rows = 0;
  view->ScanSlices(prefix, {}, [&](std::string_view key, const SliceView& s) {
    got[std::string(key)] += s.totals().requests;
    ++rows;
    return true;
  });
  EXPECT_EQ(rows, want.size()) << "a row was skipped or seen twice";
  EXPECT_EQ(got, want);

  // From each row, the first row read is that row.
  for (const auto& [key, requests] : want) {
    std::string seen;
    uint64_t seen_requests = 0;
    view->ScanSlices(prefix, key, [&](std::string_view k, const SliceView& s) {
      seen = k;
      seen_requests = s.totals().requests;
      return false;
    });
    ASSERT_EQ(seen, key);
    EXPECT_EQ(seen_requests, requests) << "stored and staged parts not combined";
  }

  // The key-only scan lists the same rows, whole and from each row on.
  std::vector<std::string> keys;
  view->ScanSliceKeys(prefix, {}, [&](std::string_view key) {
    keys.emplace_back(key);
    return true;
  });
  std::vector<std::string> want_keys;
  for (const auto& [key, requests] : want) want_keys.push_back(key);
  EXPECT_EQ(keys, want_keys);
  for (const auto& [key, requests] : want) {
    std::string seen;
    view->ScanSliceKeys(prefix, key, [&](std::string_view k) {
      seen = k;
      return false;
    });
    ASSERT_EQ(seen, key);
  }
}

// A persist replaces the generation views read; the replaced one (its open state: every row
// staged since the last persist) is freed by the writer once no view reads it, never by the
// reader that drops the last view of it (a request would pay milliseconds for it).
TEST_F(StageTest, TheWriterFreesReplacedGenerationsNotTheLastReader) {
  std::unique_ptr<Store> store = Open("retired");
  ASSERT_TRUE(store);
  Counters one;
  one.i[0] = 1;
  std::string key;
  CounterKey(Scope::kWorkspace, "w", Granularity::kDay, 0, "", &key);
  WriteSet set(*store);
  set.AddCounters(key, EncodeCounters(one));
  ASSERT_TRUE(store->Stage(&set).has_value());
  const internal::StoreRep& rep = internal::Access::Rep(*store);
  const std::weak_ptr<internal::Generation> first = rep.Current();

  std::unique_ptr<ReadView> view = store->NewReadView();  // reads the first generation
  ASSERT_TRUE(store->Persist().has_value());
  EXPECT_NE(rep.Current(), first.lock()) << "a persist starts a new generation";
  view.reset();  // the last view of the first generation, dropped by this (reader's) thread
  EXPECT_FALSE(first.expired()) << "the reader that dropped the last view freed the generation";

  ASSERT_TRUE(store->Persist().has_value());  // nothing staged: the writer only cleans up
  EXPECT_TRUE(first.expired()) << "the writer kept a generation no view reads";

  // Without views, a persist frees the generation it replaces at once.
  ASSERT_TRUE(store->Stage(&set).has_value());
  const std::weak_ptr<internal::Generation> second = rep.Current();
  ASSERT_TRUE(store->Persist().has_value());
  EXPECT_TRUE(second.expired());
  Counters c;
  store->NewReadView()->AddCounters(key, &c);
  EXPECT_EQ(c.i[0], 2);
}

}  // namespace
}  // namespace tally::store
