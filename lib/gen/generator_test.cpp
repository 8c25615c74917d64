#include "gen/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/calendar.h"
#include "common/clock.h"

namespace tally::gen {
namespace {

using nlohmann::json;

std::vector<GeneratedLine> Collect(const GenOptions& opts) {
  Generator gen(opts);
  std::vector<GeneratedLine> lines;
  GeneratedLine line;
  while (gen.Next(&line)) lines.push_back(line);
  return lines;
}

GenOptions Small(int64_t events) {
  GenOptions o;
  o.events = events;
  o.end_day = "2026-01-31";
  o.days = 60;
  return o;
}

bool NonNegNumber(const json& obj, const char* field) {
  if (!obj.contains(field)) return true;
  const json& v = obj[field];
  return v.is_number() && v.get<double>() >= 0;
}

// An independent, simple reading of docs/design.md's acceptance rules. Returns "" when valid.
std::string Reject(const std::string& line) {
  if (line.size() > 64 * 1024) return "oversized";
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "json";
  if (!j.is_object()) return "not object";
  auto str = [&](const json& o, const char* k) { return o.contains(k) && o[k].is_string(); };
  if (!str(j, "specversion") || j["specversion"] != "1.0") return "specversion";
  if (!str(j, "id") || !str(j, "source") || !str(j, "type") || !str(j, "time")) return "envelope";
  if (!ParseRfc3339Millis(j["time"].get<std::string>())) return "time";
  static const std::set<std::string> kActions = {"created",  "updated", "deleted",
                                                 "executed", "copied",  "shared"};
  std::string type = j["type"];
  auto dot = type.find('.');
  if (dot == std::string::npos) return "type";
  std::string kind = type.substr(0, dot);
  if ((kind != "agent" && kind != "workflow") || !kActions.count(type.substr(dot + 1))) {
    return "type";
  }
  if (!j.contains("data") || !j["data"].is_object()) return "data";
  const json& d = j["data"];
  if (!str(d, "workspace_id")) return "workspace";
  if (!d.contains("user") || !str(d["user"], "id")) return "user";
  if (!d.contains(kind) || !str(d[kind], "id")) return "entity";
  if (d.contains("tokens") && !d["tokens"].is_number_integer()) return "tokens type";
  for (const char* f :
       {"tokens", "cost_usd", "duration_ms", "message_credits", "integration_credits"}) {
    if (!NonNegNumber(d, f)) return f;
  }
  return "";
}

// Generates `o` twice and expects the same lines and keys; returns the lines.
std::vector<GeneratedLine> CollectTwiceAlike(const GenOptions& o) {
  auto a = Collect(o);
  auto b = Collect(o);
  EXPECT_EQ(a.size(), static_cast<size_t>(o.events));
  EXPECT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_EQ(a[i].json, b[i].json) << i;
    EXPECT_EQ(a[i].key, b[i].key) << i;
    if (a[i].json != b[i].json) break;
  }
  return a;
}

// How many lines of `a` and `b` are the same at the same position.
int SameLines(const std::vector<GeneratedLine>& a, const std::vector<GeneratedLine>& b) {
  int same = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) same += a[i].json == b[i].json;
  return same;
}

TEST(GeneratorTest, DeterministicForASeed) {
  GenOptions o = Small(5000);
  o.duplicate_fraction = 0.02;
  o.malformed_fraction = 0.02;
  auto a = CollectTwiceAlike(o);
  o.seed = 7;
  EXPECT_LT(SameLines(a, Collect(o)), 10);
}

// A second stream with the same seed and first_id past the first's events: the same
// workspaces, ids that never repeat the first stream's.
TEST(GeneratorTest, FirstIdContinuesTheIdsOfAStream) {
  GenOptions o = Small(2000);
  const auto first = Collect(o);
  o.first_id = 2000;
  const auto second = Collect(o);
  std::set<std::string> ids, workspaces, second_workspaces;
  const std::string marker = R"("id":")";
  auto id_of = [&](const std::string& json) {
    const size_t pos = json.find(marker) + marker.size();
    return json.substr(pos, json.find('"', pos) - pos);
  };
  for (const auto& l : first) {
    ids.insert(id_of(l.json));
    workspaces.insert(l.key);
  }
  EXPECT_EQ(ids.size(), first.size());
  for (const auto& l : second) {
    EXPECT_FALSE(ids.contains(id_of(l.json))) << l.json;
    second_workspaces.insert(l.key);
  }
  EXPECT_EQ(id_of(second.front().json), "evt_42_2000");
  EXPECT_EQ(second_workspaces, workspaces);
  o.first_id = -1;
  EXPECT_FALSE(ValidateGenOptions(o).has_value());
}

// --bare-executions drops the entity's name, visibility and owner from executed events only;
// every other byte of the stream stays as it was.
TEST(GeneratorTest, BareExecutionsNameTheEntityByIdOnly) {
  GenOptions o = Small(3000);
  const auto full = Collect(o);
  o.bare_executions = true;
  const auto bare = Collect(o);
  ASSERT_EQ(full.size(), bare.size());
  int executed = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    const json f = json::parse(full[i].json), b = json::parse(bare[i].json);
    const bool is_executed = f["type"].get<std::string>().ends_with(".executed");
    const char* entity = f["data"].contains("agent") ? "agent" : "workflow";
    if (!is_executed) {
      EXPECT_EQ(full[i].json, bare[i].json);
      continue;
    }
    ++executed;
    json expected = f;
    expected["data"][entity] = json{{"id", f["data"][entity]["id"]}};
    json got = b;
    EXPECT_EQ(got["data"][entity], expected["data"][entity]) << bare[i].json;
    got["data"].erase(entity);
    expected["data"].erase(entity);
    EXPECT_EQ(got, expected);
  }
  EXPECT_GT(executed, 1000);
}

TEST(GeneratorTest, ValidLinesCarryTheRequiredFields) {
  GenOptions o = Small(20000);
  auto lines = Collect(o);
  const int64_t first_ms = static_cast<int64_t>(*ParseDay("2026-01-31") - 59) * 86'400'000;
  const int64_t end_ms = static_cast<int64_t>(*ParseDay("2026-01-31") + 1) * 86'400'000;
  std::set<std::string> types, sources, visibilities, ids;
  std::map<std::string, std::string> org_of_ws;
  std::map<std::string, std::set<std::string>> ws_of_user;
  int64_t executed = 0, agent_executed = 0, errors = 0, with_offset = 0, wf_executed = 0,
          wf_with_duration = 0;
  int64_t prev_ms = 0;
  for (const auto& l : lines) {
    ASSERT_FALSE(l.malformed);
    ASSERT_FALSE(l.duplicate);
    ASSERT_EQ(Reject(l.json), "") << l.json;
    json j = json::parse(l.json);
    const json& d = j["data"];
    EXPECT_EQ(l.key, d["workspace_id"]);
    EXPECT_TRUE(ids.insert(j["id"].get<std::string>()).second) << "duplicate id " << j["id"];
    types.insert(j["type"].get<std::string>());
    sources.insert(j["source"].get<std::string>());
    std::string time = j["time"];
    if (time.back() != 'Z') ++with_offset;
    int64_t ms = *ParseRfc3339Millis(time);
    EXPECT_GE(ms, first_ms);
    EXPECT_LT(ms, end_ms);
    EXPECT_GE(ms, prev_ms) << "time runs forward";
    prev_ms = ms;
    ASSERT_TRUE(d["organization_id"].is_string());
    auto [it, fresh] = org_of_ws.emplace(d["workspace_id"], d["organization_id"]);
    EXPECT_EQ(it->second, d["organization_id"]) << "a workspace belongs to one organization";
    ws_of_user[d["user"]["id"]].insert(d["workspace_id"].get<std::string>());
    std::string kind = j["type"].get<std::string>().starts_with("agent") ? "agent" : "workflow";
    if (d[kind].contains("visibility")) visibilities.insert(d[kind]["visibility"]);
    if (j["type"] == "agent.executed") {
      ++executed;
      ++agent_executed;
      EXPECT_TRUE(d["tokens"].is_number_integer());
      EXPECT_TRUE(d["cost_usd"].is_number());
      EXPECT_TRUE(d["message_credits"].is_number());
      EXPECT_TRUE(d["integration_credits"].is_number());
      EXPECT_TRUE(d["duration_ms"].is_number());
      errors += d["status"] == "error";
    } else if (j["type"] == "workflow.executed") {
      ++executed;
      ++wf_executed;
      wf_with_duration += d.contains("duration_ms");
    }
  }
  EXPECT_EQ(types.size(), 12u);
  EXPECT_GE(sources.size(), 3u);
  EXPECT_EQ(visibilities.size(), 4u);
  EXPECT_LE(org_of_ws.size(), 20u);
  for (const auto& [user, wss] : ws_of_user) EXPECT_LE(wss.size(), 2u) << user;
  double exec_share = static_cast<double>(executed) / lines.size();
  EXPECT_GT(exec_share, 0.78);
  EXPECT_LT(exec_share, 0.92);
  EXPECT_GT(errors, agent_executed / 100);
  EXPECT_LT(errors, agent_executed / 15);
  EXPECT_GT(with_offset, 0);
  EXPECT_LT(with_offset, 20000 / 20);
  EXPECT_GT(wf_with_duration, wf_executed / 2);
  EXPECT_LT(wf_with_duration, wf_executed);
}

TEST(GeneratorTest, MalformedLinesAreRejectedAndCoverEveryKind) {
  GenOptions o = Small(20000);
  o.malformed_fraction = 0.1;
  auto lines = Collect(o);
  std::map<MalformedKind, int> kinds;
  int malformed = 0;
  for (const auto& l : lines) {
    if (!l.malformed) {
      EXPECT_EQ(l.malformed_kind, MalformedKind::kNone);
      EXPECT_EQ(Reject(l.json), "") << l.json;
      continue;
    }
    ++malformed;
    ++kinds[l.malformed_kind];
    EXPECT_NE(Reject(l.json), "") << MalformedKindName(l.malformed_kind) << ": " << l.json;
    EXPECT_EQ(l.json.find('\n'), std::string::npos);
    if (l.malformed_kind == MalformedKind::kOversized) {
      EXPECT_GT(l.json.size(), 64u * 1024);
    }
  }
  EXPECT_GT(malformed, 1700);
  EXPECT_LT(malformed, 2300);
  EXPECT_EQ(kinds.size(), static_cast<size_t>(kMalformedKindCount));
  for (int k = 1; k <= kMalformedKindCount; ++k) {
    EXPECT_GT(kinds[static_cast<MalformedKind>(k)], 100)
        << MalformedKindName(static_cast<MalformedKind>(k));
  }
}

TEST(GeneratorTest, DuplicatesAreVerbatimRepeats) {
  GenOptions o = Small(20000);
  o.duplicate_fraction = 0.05;
  auto lines = Collect(o);
  std::unordered_set<std::string> seen;
  int dups = 0;
  for (const auto& l : lines) {
    if (l.duplicate) {
      ++dups;
      EXPECT_TRUE(seen.count(l.json)) << "not a repeat: " << l.json;
      EXPECT_EQ(Reject(l.json), "");
    } else {
      EXPECT_TRUE(seen.insert(l.json).second) << "unexpected repeat: " << l.json;
    }
  }
  EXPECT_GT(dups, 800);
  EXPECT_LT(dups, 1200);
}

TEST(GeneratorTest, EntitiesAreCreatedBeforeUseAndNotUsedAfterDeletion) {
  GenOptions o = Small(50000);
  auto lines = Collect(o);
  std::set<std::string> born, deleted;
  int created = 0, copied = 0, deletions = 0;
  std::map<std::string, std::string> ws_of_entity;
  for (const auto& l : lines) {
    json j = json::parse(l.json);
    std::string type = j["type"];
    std::string kind = type.substr(0, type.find('.'));
    std::string action = type.substr(type.find('.') + 1);
    std::string id = j["data"][kind]["id"];
    auto [it, fresh] = ws_of_entity.emplace(id, j["data"]["workspace_id"]);
    EXPECT_EQ(it->second, j["data"]["workspace_id"]) << "an entity stays in its workspace";
    if (action == "created" || action == "copied") {
      EXPECT_TRUE(born.insert(id).second) << "born twice: " << id;
      (action == "created" ? created : copied)++;
      continue;
    }
    EXPECT_TRUE(born.count(id)) << type << " before creation: " << id;
    EXPECT_FALSE(deleted.count(id)) << type << " after deletion: " << id;
    if (action == "deleted") {
      deleted.insert(id);
      ++deletions;
    }
  }
  EXPECT_EQ(born.size(), 700u);  // 500 agents + 200 workflows fit in 8% of 50k events
  EXPECT_GT(copied, 20);
  EXPECT_GT(created, copied);
  EXPECT_GT(deletions, 0);
  EXPECT_LT(deletions, 200);
}

TEST(GeneratorTest, SmallStreamsScaleEntitiesDown) {
  auto lines = Collect(Small(100));
  ASSERT_EQ(lines.size(), 100u);
  int lifecycle = 0;
  for (const auto& l : lines) {
    json j = json::parse(l.json);
    std::string type = j["type"];
    lifecycle += type.ends_with(".created") || type.ends_with(".copied");
  }
  EXPECT_LE(lifecycle, 8);
  EXPECT_GE(lifecycle, 1);
}

TEST(GeneratorTest, DefaultEndDayIsTodayAndNeverInTheFuture) {
  GenOptions o;
  o.events = 3000;
  o.days = 3;
  Clock clock;
  int64_t before = clock.NowMillis();
  Generator gen(o);
  EXPECT_EQ(gen.options().end_day, FormatDay(clock.Today()));
  GeneratedLine l;
  int64_t max_ms = 0;
  while (gen.Next(&l)) {
    max_ms = std::max(max_ms, *ParseRfc3339Millis(json::parse(l.json)["time"].get<std::string>()));
  }
  EXPECT_LE(max_ms, clock.NowMillis());
  EXPECT_GE(max_ms, static_cast<int64_t>(DayOfMillis(before) - 2) * 86'400'000);
  EXPECT_EQ(gen.produced(), 3000);
  EXPECT_FALSE(gen.Next(&l));
}

TEST(GeneratorTest, WeekendsAreQuieter) {
  GenOptions o = Small(60000);
  o.days = 28;
  auto lines = Collect(o);
  int64_t weekday = 0, weekend = 0;
  for (const auto& l : lines) {
    int64_t ms = *ParseRfc3339Millis(json::parse(l.json)["time"].get<std::string>());
    int dow = ((DayOfMillis(ms) % 7) + 7 + 3) % 7;  // 0 = Monday
    (dow >= 5 ? weekend : weekday)++;
  }
  // Per day, weekends see well under half the traffic of weekdays.
  EXPECT_LT(static_cast<double>(weekend) / 8, 0.6 * static_cast<double>(weekday) / 20);
}

TEST(GeneratorTest, ValidateRejectsBadOptions) {
  EXPECT_TRUE(ValidateGenOptions(GenOptions{}));
  GenOptions o;
  o.events = -1;
  EXPECT_EQ(ValidateGenOptions(o).error().field, "events");
  o = {};
  o.users = 0;
  EXPECT_EQ(ValidateGenOptions(o).error().field, "users");
  o = {};
  o.end_day = "2026-02-30";
  EXPECT_EQ(ValidateGenOptions(o).error().field, "end_day");
  o = {};
  o.malformed_fraction = 0.7;
  o.duplicate_fraction = 0.7;
  EXPECT_FALSE(ValidateGenOptions(o));
  o = {};
  o.agents = 0;
  o.workflows = 0;
  EXPECT_FALSE(ValidateGenOptions(o));
}

TEST(GeneratorTest, WorkflowOnlyMalformedLinesStillFail) {
  GenOptions o = Small(3000);
  o.agents = 0;
  o.malformed_fraction = 0.2;
  for (const auto& l : Collect(o)) {
    if (l.malformed) {
      EXPECT_NE(Reject(l.json), "") << l.json;
    } else {
      EXPECT_EQ(Reject(l.json), "") << l.json;
      EXPECT_TRUE(l.json.find("\"workflow.") != std::string::npos);
    }
  }
}

GenOptions Executions(int64_t events) {
  GenOptions o = MixDefaults(Mix::kExecutions);
  o.events = events;
  o.end_day = "2026-01-31";
  return o;
}

TEST(GeneratorTest, MixNamesAndDefaults) {
  EXPECT_EQ(ParseMix("default").value(), Mix::kDefault);
  EXPECT_EQ(ParseMix("executions").value(), Mix::kExecutions);
  EXPECT_EQ(ParseMix("all").error().field, "mix");
  GenOptions d = MixDefaults(Mix::kDefault);
  EXPECT_EQ(d.mix, Mix::kDefault);
  EXPECT_EQ(d.users, GenOptions{}.users);
  GenOptions e = MixDefaults(Mix::kExecutions);
  EXPECT_EQ(e.mix, Mix::kExecutions);
  EXPECT_EQ(e.workspaces, 20);
  EXPECT_EQ(e.organizations, 5);
  EXPECT_EQ(e.agents, 1000);
  EXPECT_EQ(e.workflows, 0);
  EXPECT_EQ(e.users, 10000);
  EXPECT_EQ(e.days, 90);
  EXPECT_TRUE(ValidateGenOptions(e));
  e.workflows = 1;
  EXPECT_EQ(ValidateGenOptions(e).error().field, "workflows");
  e.workflows = 0;
  e.agents = 0;
  EXPECT_EQ(ValidateGenOptions(e).error().field, "agents");
}

TEST(GeneratorTest, ExecutionsMixIsAgentExecutedWithEveryField) {
  auto lines = Collect(Executions(30000));
  ASSERT_EQ(lines.size(), 30000u);
  const int64_t first_ms = static_cast<int64_t>(*ParseDay("2026-01-31") - 89) * 86'400'000;
  const int64_t end_ms = static_cast<int64_t>(*ParseDay("2026-01-31") + 1) * 86'400'000;
  std::set<std::string> ids, workspaces, orgs, agents;
  std::map<std::string, std::string> ws_of_agent;
  int64_t prev_ms = 0, errors = 0;
  for (const auto& l : lines) {
    ASSERT_FALSE(l.malformed);
    ASSERT_FALSE(l.duplicate);
    ASSERT_EQ(Reject(l.json), "") << l.json;
    json j = json::parse(l.json);
    ASSERT_EQ(j["type"], "agent.executed") << l.json;
    EXPECT_TRUE(ids.insert(j["id"].get<std::string>()).second);
    int64_t ms = *ParseRfc3339Millis(j["time"].get<std::string>());
    EXPECT_GE(ms, first_ms);
    EXPECT_LT(ms, end_ms);
    EXPECT_GE(ms, prev_ms);
    prev_ms = ms;
    const json& d = j["data"];
    EXPECT_EQ(l.key, d["workspace_id"]);
    for (const char* f : {"organization_id", "workspace_id", "project_id", "status"}) {
      ASSERT_TRUE(d.contains(f) && d[f].is_string()) << f << ": " << l.json;
    }
    for (const char* f : {"id", "name", "email", "photo"}) {
      ASSERT_TRUE(d["user"].contains(f) && d["user"][f].is_string()) << f << ": " << l.json;
    }
    for (const char* f : {"id", "name", "visibility", "owner_user_id"}) {
      ASSERT_TRUE(d["agent"].contains(f) && d["agent"][f].is_string()) << f << ": " << l.json;
    }
    EXPECT_TRUE(d["tokens"].is_number_integer());
    for (const char* f : {"cost_usd", "message_credits", "integration_credits", "duration_ms"}) {
      ASSERT_TRUE(d.contains(f) && d[f].is_number()) << f << ": " << l.json;
    }
    errors += d["status"] == "error";
    workspaces.insert(d["workspace_id"].get<std::string>());
    orgs.insert(d["organization_id"].get<std::string>());
    std::string agent = d["agent"]["id"];
    agents.insert(agent);
    auto [it, fresh] = ws_of_agent.emplace(agent, d["workspace_id"]);
    EXPECT_EQ(it->second, d["workspace_id"]) << "an agent stays in its workspace";
  }
  EXPECT_EQ(orgs.size(), 5u);
  EXPECT_GE(workspaces.size(), 15u);
  EXPECT_LE(workspaces.size(), 20u);
  EXPECT_GT(agents.size(), 500u);  // no scaling down: 1,000 agents, Zipf-skewed
  EXPECT_LE(agents.size(), 1000u);
  EXPECT_GT(errors, 0);
  EXPECT_LT(errors, 30000 / 15);
}

TEST(GeneratorTest, ExecutionsMixSkewsUsersAndAgents) {
  auto lines = Collect(Executions(100000));
  std::map<std::string, int64_t> by_user, by_agent;
  for (const auto& l : lines) {
    json d = json::parse(l.json)["data"];
    ++by_user[d["user"]["id"].get<std::string>()];
    ++by_agent[d["agent"]["id"].get<std::string>()];
  }
  // Share of all events held by the busiest `top` keys.
  auto share = [](const std::map<std::string, int64_t>& counts, size_t top) {
    std::vector<int64_t> v;
    for (const auto& [k, n] : counts) v.push_back(n);
    std::sort(v.rbegin(), v.rend());
    int64_t all = 0, head = 0;
    for (size_t i = 0; i < v.size(); ++i) (i < top ? head : all) += v[i];
    return static_cast<double>(head) / static_cast<double>(head + all);
  };
  EXPECT_GT(by_user.size(), 5000u);
  EXPECT_LE(by_user.size(), 10000u);
  // Pareto (80/20): the busiest 20% of the 10,000 users make most of the executions, and no
  // single user dominates.
  EXPECT_GT(share(by_user, 2000), 0.55);
  EXPECT_LT(share(by_user, 1), 0.05);
  // Zipf over 1,000 agents: the busiest 10% run well over half.
  EXPECT_GT(share(by_agent, 100), 0.5);
}

TEST(GeneratorTest, ExecutionsMixIsReproducible) {
  GenOptions o = Executions(5000);
  o.duplicate_fraction = 0.01;
  o.malformed_fraction = 0.01;
  auto a = CollectTwiceAlike(o);
  for (const GeneratedLine& line : a) {
    if (line.malformed) {
      EXPECT_NE(Reject(line.json), "") << line.json;
    } else {
      EXPECT_EQ(Reject(line.json), "") << line.json;
    }
  }
  o.seed = 7;
  EXPECT_LT(SameLines(a, Collect(o)), 10);
  // Another mix of the same seed is another stream.
  EXPECT_LT(SameLines(a, Collect(Small(5000))), 10);
}

}  // namespace
}  // namespace tally::gen
