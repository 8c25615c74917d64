#include "store/stage_test_model.h"

#include <chrono>

namespace tally::store::stage_test {

namespace {

// Counter and bitmap keys of every scope, and the request-analytics bitmaps.
void AddCounterAndBitmapKeys(Universe* out) {
  Universe& u = *out;
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
}

// Counter scans, merge scans and union groups.
void AddScans(Universe* out) {
  Universe& u = *out;
  const Scope scopes[] = {Scope::kWorkspace, Scope::kUser, Scope::kEntity, Scope::kProject};
  std::string key;
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
}

// User pack keys, record keys and record scans.
void AddPacksAndRecords(Universe* out) {
  Universe& u = *out;
  const std::vector<std::string> workspaces = {"w0", "w1"};
  std::string key;
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
}

// Slice keys and slice scans.
void AddSlices(Universe* out) {
  Universe& u = *out;
  std::string key;
  for (const char* org : {"o0", "o1"}) {
    for (uint32_t agent : {kAllAgents, 1u}) {
      for (bool per_project : {false, true}) {
        for (int32_t bucket = 0; bucket < 2; ++bucket) {
          const std::string_view project = "p0";
          RequestsSliceKey(org, agent, per_project ? &project : nullptr, Granularity::kDay, bucket,
                           &key);
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
}

// Dedupe keys, user ids and agents.
void AddDedupeAndDictionaries(Universe* out) {
  Universe& u = *out;
  std::string key;
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
}

}  // namespace

Universe Universe::Make() {
  Universe u;
  AddCounterAndBitmapKeys(&u);
  AddScans(&u);
  AddPacksAndRecords(&u);
  AddSlices(&u);
  AddDedupeAndDictionaries(&u);
  return u;
}

Counters Generator::RandomCounters() {
  Counters c;
  for (int k = Uniform(1, 3); k > 0; --k) c.i[Uniform(0, Counters::kInts - 1)] += Uniform(1, 5);
  if (Chance(0.5)) c.d[Uniform(0, Counters::kDoubles - 1)] += Uniform(1, 8) * 0.25;
  return c;
}

// Random deltas of one view, each added to *m at every key of `keys` and returned encoded.
std::string Generator::CountersOp(Model* m, std::initializer_list<std::string_view> keys) {
  const Counters c = RandomCounters();
  for (std::string_view key : keys) Model::Add(c, &m->counters[std::string(key)]);
  return EncodeCounters(c);
}
std::string Generator::PackOp(Model* m, std::initializer_list<std::string_view> keys) {
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
std::string Generator::BitmapOp(Model* m, std::initializer_list<std::string_view> keys) {
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
std::string Generator::SliceOp(Model* m, std::initializer_list<std::string_view> keys) {
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

void Generator::AddOp(Model* m, Batch* b) {
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
    case 9:
      AddRecordOp(m, b);
      return;
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
    case 13:
      AddDictionaryOp(m, b);
      return;
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

void Generator::AddRecordOp(Model* m, Batch* b) {
  std::string key, value;
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
}

void Generator::AddDictionaryOp(Model* m, Batch* b) {
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
}

}  // namespace tally::store::stage_test
