#include "requests_reference.h"

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <thread>

#include "common/sha256.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using AgentKey = std::pair<std::string, std::string>;  // (workspace id, agent id)

// A string field, or "" when absent, null or not a string.
std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// An identifier: a string, or an integer JSON number rendered in decimal. "" otherwise.
std::string Id(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  if (it == obj.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_unsigned()) return std::to_string(it->get<uint64_t>());
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  if (it->is_number_float()) return std::to_string(static_cast<int64_t>(it->get<double>()));
  return "";
}

const json& Member(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

int64_t Day(const std::string& date) {
  std::optional<int64_t> d = RefParseDay(date);
  if (!d) ADD_FAILURE() << "RequestsReference: bad date " << date;
  return d.value_or(0);
}

std::string TomlString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string JsonPath(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

}  // namespace

RefVerdict RequestsReference::Add(std::string_view line) {
  RefEvent base;
  if (!RefValidate(line, &base).empty()) {
    ++invalid_;
    return RefVerdict::kInvalid;
  }
  if (bindings_.Refuses(base.workspace_id, base.organization_id)) {
    ++refused_;
    return RefVerdict::kRefused;
  }
  if (!seen_.insert({base.source, base.id}).second) {
    ++duplicates_;
    return RefVerdict::kDuplicate;
  }
  const json doc = json::parse(line);
  const json& data = doc["data"];
  ReqEvent e;
  e.type = base.kind + "." + base.action;
  e.workspace_id = base.workspace_id;
  e.organization_id = Str(data, "organization_id");
  e.project_id = Str(data, "project_id");
  e.user_id = base.user_id;
  e.email = Str(Member(data, "user"), "email");
  e.agent_id = Id(Member(data, "agent"), "id");
  e.agent_name = Str(Member(data, "agent"), "name");
  e.time_ms = base.time_ms;
  e.day = base.day;
  const json& tokens = Member(data, "tokens");
  if (tokens.is_number_unsigned()) {
    e.tokens = static_cast<int64_t>(tokens.get<uint64_t>());
  } else if (tokens.is_number_integer()) {
    e.tokens = tokens.get<int64_t>();
  } else if (tokens.is_number_float()) {
    e.tokens = static_cast<int64_t>(tokens.get<double>());
  }
  const json& cost = Member(data, "cost_usd");
  if (cost.is_number()) e.cost_usd = cost.get<double>();
  e.error = Str(data, "status") == "error";
  events_.push_back(std::move(e));
  return RefVerdict::kAccepted;
}

std::map<AgentKey, std::string> RequestsReference::CurrentNames() const {
  std::map<AgentKey, std::pair<int64_t, std::string>> latest;
  for (const ReqEvent& e : events_) {
    if (e.type.rfind("agent.", 0) != 0 || e.agent_id.empty() || e.agent_name.empty()) continue;
    auto [it, inserted] = latest.try_emplace({e.workspace_id, e.agent_id}, e.time_ms, e.agent_name);
    if (!inserted && e.time_ms >= it->second.first) it->second = {e.time_ms, e.agent_name};
  }
  std::map<AgentKey, std::string> out;
  for (auto& [key, v] : latest) out[key] = v.second;
  return out;
}

std::map<std::string, std::string> RequestsReference::UserLabels(const ReqQuery& q) const {
  // The scope: the query's organizations, or (admin) every organization with requests.
  const std::set<std::string> scope = q.organizations ? *q.organizations : Organizations();
  // Per (user, organization) the latest email (ties: the later event); across the scope's
  // organizations the latest (ties: the greater organization name).
  std::map<std::pair<std::string, std::string>, std::pair<int64_t, std::string>> latest;
  for (const ReqEvent& e : events_) {
    if (e.email.empty() || !scope.contains(e.organization_id)) continue;
    auto [it, inserted] = latest.try_emplace({e.user_id, e.organization_id}, e.time_ms, e.email);
    if (!inserted && e.time_ms >= it->second.first) it->second = {e.time_ms, e.email};
  }
  std::map<std::string, std::pair<int64_t, std::string>> best;
  for (auto& [key, v] : latest) {  // organizations in increasing name order per user
    auto [it, inserted] = best.try_emplace(key.first, v);
    if (!inserted && v.first >= it->second.first) it->second = v;
  }
  std::map<std::string, std::string> out;
  for (auto& [user, v] : best) out[user] = v.second;
  return out;
}

std::string RequestsReference::AgentName(const std::string& workspace_id,
                                         const std::string& agent_id) const {
  std::map<AgentKey, std::string> names = CurrentNames();
  auto it = names.find({workspace_id, agent_id});
  return it == names.end() ? agent_id : it->second;
}

std::string RequestsReference::UserLabel(const std::string& user_id, const ReqQuery& q) const {
  std::map<std::string, std::string> labels = UserLabels(q);
  auto it = labels.find(user_id);
  return it == labels.end() ? user_id : it->second;
}

std::vector<const ReqEvent*> RequestsReference::Select(const ReqQuery& q,
                                                       bool apply_agent_name) const {
  const int64_t from = Day(q.start_date), to = Day(q.end_date);
  std::map<AgentKey, std::string> names;
  const bool filter = apply_agent_name && !q.agent_name.empty();
  if (filter) names = CurrentNames();
  std::vector<const ReqEvent*> out;
  for (const ReqEvent& e : events_) {
    if (e.type != "agent.executed" || e.organization_id.empty()) continue;
    if (q.organizations && !q.organizations->contains(e.organization_id)) continue;
    if (q.project_id && e.project_id != *q.project_id) continue;
    if (e.day < from || e.day > to) continue;
    if (filter) {
      auto it = names.find({e.workspace_id, e.agent_id});
      if ((it == names.end() ? e.agent_id : it->second) != q.agent_name) continue;
    }
    out.push_back(&e);
  }
  return out;
}

std::map<std::string, json> RequestsReference::AnswerAll(const ReqQuery& q) const {
  const std::vector<const ReqEvent*> requests = Select(q, true);
  const std::map<AgentKey, std::string> names = CurrentNames();
  const std::map<std::string, std::string> labels = UserLabels(q);
  auto name_of = [&](const AgentKey& a) {
    auto it = names.find(a);
    return it == names.end() ? a.second : it->second;
  };
  auto label_of = [&](const std::string& user) {
    auto it = labels.find(user);
    return it == labels.end() ? user : it->second;
  };
  const int64_t from = Day(q.start_date), to = Day(q.end_date);

  struct AgentAcc {
    int64_t requests = 0;
    int64_t tokens = 0;
    std::set<std::string> users;
  };
  struct UserAcc {
    int64_t requests = 0;
    int64_t tokens = 0;
    double cost = 0;
  };
  std::set<std::string> users;
  std::map<std::pair<std::string, std::string>, std::set<std::string>> projects;  // (org, proj)
  std::map<AgentKey, AgentAcc> agents;
  std::map<std::string, UserAcc> by_user;
  std::map<int64_t, std::pair<int64_t, int64_t>> by_day;  // day -> (requests, errors)
  for (const ReqEvent* e : requests) {
    users.insert(e->user_id);
    if (!e->project_id.empty()) projects[{e->organization_id, e->project_id}].insert(e->user_id);
    AgentAcc& a = agents[{e->workspace_id, e->agent_id}];
    ++a.requests;
    a.tokens += e->tokens;
    a.users.insert(e->user_id);
    UserAcc& u = by_user[e->user_id];
    ++u.requests;
    u.tokens += e->tokens;
    u.cost += e->cost_usd;
    ++by_day[e->day].first;
    if (e->error) ++by_day[e->day].second;
  }

  std::map<std::string, json> out;
  out["total-active-users"] = {{"totalActiveUsers", static_cast<int64_t>(users.size())}};
  out["total-active-projects"] = {{"totalActiveProjects", static_cast<int64_t>(projects.size())}};
  out["total-active-agents"] = {{"totalActiveAgents", static_cast<int64_t>(agents.size())}};
  out["average-requests-per-day"] = {{"averageRequests", static_cast<double>(requests.size()) /
                                                             static_cast<double>(to - from + 1)}};
  int64_t project_users = 0, agent_users = 0;
  for (const auto& [p, s] : projects) project_users += static_cast<int64_t>(s.size());
  for (const auto& [a, acc] : agents) agent_users += static_cast<int64_t>(acc.users.size());
  out["average-users-per-project"] = {
      {"averageUsers", projects.empty() ? 0.0
                                        : static_cast<double>(project_users) /
                                              static_cast<double>(projects.size())}};
  out["average-users-per-agent"] = {
      {"averageUsers",
       agents.empty() ? 0.0
                      : static_cast<double>(agent_users) / static_cast<double>(agents.size())}};

  // Agents ranked by a value: value desc, current name asc, (workspace, agent id) asc.
  auto top_agents = [&](bool by_tokens) {
    struct Row {
      int64_t value;
      std::string name;
      AgentKey key;
    };
    std::vector<Row> rows;
    for (const auto& [key, acc] : agents) {
      rows.push_back({by_tokens ? acc.tokens : acc.requests, name_of(key), key});
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      if (a.value != b.value) return a.value > b.value;
      if (a.name != b.name) return a.name < b.name;
      return a.key < b.key;
    });
    json list = json::array();
    for (size_t i = 0; i < rows.size() && i < 10; ++i) {
      list.push_back(
          {{"agent", rows[i].name}, {by_tokens ? "totalTokens" : "totalRequests", rows[i].value}});
    }
    return json{{"top10Agents", list}};
  };
  out["top-10-agents-by-requests"] = top_agents(false);
  out["top-10-agents-by-tokens"] = top_agents(true);

  // Users: requests desc, label asc, user id asc.
  struct UserRow {
    std::string label;
    std::string id;
    const UserAcc* acc;
  };
  std::vector<UserRow> user_rows;
  for (const auto& [id, acc] : by_user) user_rows.push_back({label_of(id), id, &acc});
  std::sort(user_rows.begin(), user_rows.end(), [](const UserRow& a, const UserRow& b) {
    if (a.acc->requests != b.acc->requests) return a.acc->requests > b.acc->requests;
    if (a.label != b.label) return a.label < b.label;
    return a.id < b.id;
  });
  json top_users = json::array(), usage = json::array();
  for (size_t i = 0; i < user_rows.size(); ++i) {
    const UserRow& r = user_rows[i];
    if (i < 10) top_users.push_back({{"totalRequests", r.acc->requests}, {"user", r.label}});
    usage.push_back({{"totalCost", r.acc->cost},
                     {"totalRequests", r.acc->requests},
                     {"totalTokens", r.acc->tokens},
                     {"user", r.label}});
  }
  out["top-10-users-by-requests"] = {{"top10Users", top_users}};
  out["agent-usage-per-user"] = {{"agentUsage", usage}};

  json per_day = json::array();
  for (int64_t d = from; d <= to; ++d) {
    auto it = by_day.find(d);
    per_day.push_back({{"date", RefDayLabel(d)},
                       {"totalRequests", it == by_day.end() ? 0 : it->second.first},
                       {"totalRequestsWithError", it == by_day.end() ? 0 : it->second.second}});
  }
  out["total-requests-per-day"] = {{"totalRequestsPerDay", per_day}};
  return out;
}

json RequestsReference::Answer(std::string_view name, const ReqQuery& q) const {
  std::map<std::string, json> all = AnswerAll(q);
  auto it = all.find(std::string(name));
  if (it == all.end()) {
    ADD_FAILURE() << "RequestsReference: unknown endpoint " << name;
    return json();
  }
  return it->second;
}

std::vector<std::string> RequestsReference::BusyAgentNames(const ReqQuery& q) const {
  const std::map<AgentKey, std::string> names = CurrentNames();
  std::map<std::string, int64_t> count;
  for (const ReqEvent* e : Select(q, false)) {
    auto it = names.find({e->workspace_id, e->agent_id});
    ++count[it == names.end() ? e->agent_id : it->second];
  }
  std::vector<std::pair<int64_t, std::string>> v;
  for (const auto& [name, n] : count) v.push_back({-n, name});
  std::sort(v.begin(), v.end());
  std::vector<std::string> out;
  for (const auto& [n, name] : v) out.push_back(name);
  return out;
}

std::vector<std::string> RequestsReference::FormerAgentNames(const ReqQuery& q) const {
  const std::map<AgentKey, std::string> names = CurrentNames();
  std::set<std::string> current;
  for (const auto& [key, name] : names) current.insert(name);
  std::map<AgentKey, int64_t> visible;  // agent -> visible requests
  for (const ReqEvent* e : Select(q, false)) ++visible[{e->workspace_id, e->agent_id}];
  std::map<std::string, int64_t> former;  // name -> most requests of an agent that carried it
  for (const ReqEvent& e : events_) {
    if (e.type.rfind("agent.", 0) != 0 || e.agent_name.empty()) continue;
    auto it = visible.find({e.workspace_id, e.agent_id});
    if (it == visible.end() || current.contains(e.agent_name)) continue;
    former[e.agent_name] = std::max(former[e.agent_name], it->second);
  }
  std::vector<std::pair<int64_t, std::string>> v;
  for (const auto& [name, n] : former) v.push_back({-n, name});
  std::sort(v.begin(), v.end());
  std::vector<std::string> out;
  for (const auto& [n, name] : v) out.push_back(name);
  return out;
}

std::vector<std::string> RequestsReference::BusyProjects(const std::string& organization) const {
  std::map<std::string, int64_t> count;
  for (const ReqEvent& e : events_) {
    if (e.type == "agent.executed" && e.organization_id == organization && !e.project_id.empty()) {
      ++count[e.project_id];
    }
  }
  std::vector<std::pair<int64_t, std::string>> v;
  for (const auto& [p, n] : count) v.push_back({-n, p});
  std::sort(v.begin(), v.end());
  std::vector<std::string> out;
  for (const auto& [n, p] : v) out.push_back(p);
  return out;
}

std::set<std::string> RequestsReference::Organizations() const {
  std::set<std::string> out;
  for (const ReqEvent& e : events_) {
    if (e.type == "agent.executed" && !e.organization_id.empty()) out.insert(e.organization_id);
  }
  return out;
}

std::string DiffRequestsJson(const json& got, const json& want) {
  // Depth-first; `path` names the value compared.
  struct Walker {
    static std::string Diff(const json& g, const json& w, const std::string& path) {
      auto fail = [&](const std::string& what) {
        return (path.empty() ? std::string("body") : path) + ": " + what + " (got " +
               g.dump().substr(0, 300) + ", want " + w.dump().substr(0, 300) + ")";
      };
      if (w.is_object()) {
        if (!g.is_object()) return fail("not an object");
        for (const auto& [k, v] : w.items()) {
          if (!g.contains(k)) return fail("missing key \"" + k + "\"");
        }
        for (const auto& [k, v] : g.items()) {
          if (!w.contains(k)) return fail("unexpected key \"" + k + "\"");
        }
        for (const auto& [k, v] : w.items()) {
          std::string d = Diff(g[k], v, JsonPath(path, k));
          if (!d.empty()) return d;
        }
        return "";
      }
      if (w.is_array()) {
        if (!g.is_array()) return fail("not an array");
        for (size_t i = 0; i < std::min(g.size(), w.size()); ++i) {
          std::string d = Diff(g[i], w[i], path + "[" + std::to_string(i) + "]");
          if (!d.empty()) return d;
        }
        if (g.size() != w.size()) {
          return fail("length " + std::to_string(g.size()) + " != " + std::to_string(w.size()));
        }
        return "";
      }
      if (w.is_number_float()) {
        if (!g.is_number()) return fail("not a number");
        const double a = g.get<double>(), b = w.get<double>();
        if (std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b))) return "";
        return fail("numbers differ");
      }
      if (w.is_number()) {
        if (!g.is_number_integer()) return fail("not an integer");
        return g.get<int64_t>() == w.get<int64_t>() ? "" : fail("integers differ");
      }
      return g == w ? "" : fail("values differ");
    }
  };
  return Walker::Diff(got, want, "");
}

// ---------------------------------------------------------------------------------------------

std::string OrgKeysToml(const std::vector<OrgKeySpec>& keys) {
  std::string text;
  for (const OrgKeySpec& k : keys) {
    text += "[[keys]]\nname = " + TomlString(k.name) +
            "\nsha256 = " + TomlString(Sha256Hex(k.token)) + "\n";
    if (!k.workspaces.empty()) {
      text += "workspaces = {";
      bool first = true;
      for (const auto& [ws, role] : k.workspaces) {
        text += (first ? " " : ", ") + TomlString(ws) + " = " + TomlString(role);
        first = false;
      }
      text += " }\n";
    }
    text += "organizations = [";
    for (size_t i = 0; i < k.organizations.size(); ++i) {
      text += (i ? ", " : "") + TomlString(k.organizations[i]);
    }
    text += "]\n";
    text += std::string("admin = ") + (k.admin ? "true" : "false") + "\n\n";
  }
  return text;
}

OrgTallyd::~OrgTallyd() { tallyd_.Stop(SIGKILL); }

::testing::AssertionResult OrgTallyd::Start(const std::vector<OrgKeySpec>& keys) {
  if (TallydBinary().empty()) return ::testing::AssertionFailure() << "tallyd binary not built";
  if (stack_->bootstrap().empty()) {
    return ::testing::AssertionFailure() << "start the stack's broker first";
  }
  const std::string keys_file = stack_->dir().File("org-keys.toml");
  {
    std::ofstream out(keys_file, std::ios::binary | std::ios::trunc);
    out << OrgKeysToml(keys);
    if (!out) return ::testing::AssertionFailure() << "cannot write " << keys_file;
  }
  const std::string port_file = stack_->dir().File("org-tallyd.port");
  std::remove(port_file.c_str());
  Status s = tallyd_.Start(
      {TallydBinary(), "--brokers", stack_->bootstrap(), "--topic", Stack::kTopic, "--group",
       "tally-it", "--data-dir", stack_->dir().File("data"), "--listen", "127.0.0.1:0",
       "--port-file", port_file, "--keys", keys_file, "--cache-ttl", "0", "--now", Stack::kNow},
      stack_->dir().File("tallyd"));
  if (!s) return ::testing::AssertionFailure() << s.error().message;
  Result<std::string> addr = WaitForFile(port_file, Millis(60000), &tallyd_);
  if (!addr) return ::testing::AssertionFailure() << addr.error().message;
  stack_->http().Reset(*addr);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult OrgTallyd::WaitForCatchUp(Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string state = "no /readyz answer yet";
  for (;;) {
    if (!tallyd_.Running()) {
      return ::testing::AssertionFailure()
             << "tallyd is not running (" << tallyd_.Describe() << ") while waiting for catch-up\n"
             << tallyd_.LogTail();
    }
    Stack::IngestState st = stack_->ReadIngestState();
    if (st.caught_up) return ::testing::AssertionSuccess();
    state = st.description;
    if (std::chrono::steady_clock::now() > deadline) {
      return ::testing::AssertionFailure() << "tallyd did not catch up within " << timeout.count()
                                           << " ms; last state: " << state << "\n"
                                           << tallyd_.LogTail();
    }
    std::this_thread::sleep_for(Millis(50));
  }
}

::testing::AssertionResult OrgTallyd::ProducePaced(const std::vector<std::string>& lines,
                                                   const std::vector<std::string>& keys,
                                                   size_t chunk, Millis catch_up_timeout) {
  for (size_t begin = 0; begin < lines.size(); begin += chunk) {
    const size_t end = std::min(lines.size(), begin + chunk);
    std::vector<std::string> l(lines.begin() + begin, lines.begin() + end);
    std::vector<std::string> k(keys.begin() + std::min(begin, keys.size()),
                               keys.begin() + std::min(end, keys.size()));
    if (auto r = stack_->Produce(l, k); !r) return r;
    if (auto r = WaitForCatchUp(catch_up_timeout); !r) {
      return r << "\n(after producing lines [0, " << end << ") of " << lines.size() << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace tally::integration
