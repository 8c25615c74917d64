// Request analytics end to end: `tally broker`, `tallyd`, events through Kafka, then every
// GET /v1/analytics/requests/<name> endpoint over real sockets, compared field by field with
// RequestsReference (a brute-force scan of the raw lines, requests_reference.h).
//
// Generated events (gen::Generator: 3 organizations over 6 workspaces, 120 days, duplicates and
// malformed lines, agents renamed and copied) cover volume; hand-built events in a fourth
// organization pin the semantics with answers computed by hand: one user active on many days,
// an agent renamed (agentName matches only the new name, whatever the log order), two agents
// with the same name, an agent that never had a name, requests without project, errors,
// missing tokens and cost, a time offset that moves a request to the previous UTC day.
//
// Scopes: keys holding one organization, both, every one (admin), narrowed by the organization
// and project headers in both spellings; a key's answers must equal the reference restricted to
// its organizations (data never mixes). Each scope is asked every endpoint x {no agentName, the
// current name of a busy agent, a former name} x {one day, a range across a month boundary,
// the 90 days ending at the generator's end day}.

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "harness.h"
#include "metrics_compare.h"
#include "requests_reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kWsHand1 = "aaaaaaaa-0000-4000-8000-000000000001";  // org_hand
constexpr const char* kWsHand2 = "aaaaaaaa-0000-4000-8000-000000000002";  // org_hand
constexpr const char* kEndDay = "2026-02-28";                             // generator end_day
constexpr const char* kPrefix = "/v1/analytics/requests/";

// ---------------------------------------------------------------------------------------------
// Hand-built events.

int g_next_id = 0;

// One event of org_hand (workspace kWsHand1 unless told), agent.executed unless told, built by
// chained setters: Ev("2026-02-01T10:00:00Z", "hu_1", "ag_alpha").Project("p").Line().
class Ev {
 public:
  Ev(std::string time, json user_id, std::string agent_id)
      : time_(std::move(time)), user_id_(std::move(user_id)), agent_id_(std::move(agent_id)) {}
  Ev& Type(std::string v) { return Set(&type_, std::move(v)); }
  Ev& Ws(std::string v) { return Set(&ws_, std::move(v)); }
  Ev& Org(std::string v) { return Set(&org_, std::move(v)); }
  Ev& Project(std::string v) { return Set(&project_, std::move(v)); }
  Ev& Email(std::string v) { return Set(&email_, std::move(v)); }
  Ev& Name(std::string v) { return Set(&agent_name_, std::move(v)); }
  Ev& Status(std::string v) { return Set(&status_, std::move(v)); }
  Ev& Id(std::string v) { return Set(&id_, std::move(v)); }  // default: a fresh one
  Ev& Tokens(int64_t v) {
    tokens_ = v;
    return *this;
  }
  Ev& FloatTokens(double v) {  // a JSON number with a fraction part: 12.0
    tokens_ = v;
    return *this;
  }
  Ev& Cost(double v) {
    cost_ = v;
    return *this;
  }

  std::string Line() const {
    json user = {{"id", user_id_}};
    if (!email_.empty()) user["email"] = email_;
    json data = {{"workspace_id", ws_}, {"user", user}};
    if (!org_.empty()) data["organization_id"] = org_;
    if (!project_.empty()) data["project_id"] = project_;
    if (type_.rfind("agent.", 0) == 0) {
      data["agent"] = {{"id", agent_id_}};
      if (!agent_name_.empty()) data["agent"]["name"] = agent_name_;
    } else {
      data["workflow"] = {{"id", "wf_hand"}};
    }
    if (!tokens_.is_null()) data["tokens"] = tokens_;
    if (cost_) data["cost_usd"] = *cost_;
    if (type_ == "agent.executed") data["status"] = status_;
    json e = {{"specversion", "1.0"}, {"source", "it/requests"}, {"type", type_}};
    e["id"] = id_.empty() ? "req-" + std::to_string(++g_next_id) : id_;
    e["time"] = time_;
    e["data"] = data;
    return e.dump();
  }

 private:
  Ev& Set(std::string* field, std::string v) {
    *field = std::move(v);
    return *this;
  }
  std::string time_;
  json user_id_;
  std::string agent_id_;
  std::string type_ = "agent.executed";
  std::string ws_ = kWsHand1;
  std::string org_ = "org_hand";  // "" = absent
  std::string project_;           // "" = absent
  std::string email_;             // "" = absent
  std::string agent_name_;        // "" = absent
  std::string status_ = "ok";
  std::string id_;
  json tokens_;  // null = absent
  std::optional<double> cost_;
};

std::string Feb(int d) { return std::string("2026-02-") + (d < 10 ? "0" : "") + std::to_string(d); }

// org_hand; the answers for 2026-02-01..2026-02-28 are computed by hand in HandComputedAnswers.
std::vector<std::string> HandEvents() {
  std::vector<std::string> v;
  // Agents: H1/ag_alpha "Alpha"; H2/ag_alpha "Alpha" too (another workspace: another agent);
  // H1/ag_ren "Old Name", renamed "New Name" on 02-20; H2/ag_noname never named.
  v.push_back(Ev("2026-01-10T09:00:00Z", "hu_1", "ag_alpha")
                  .Type("agent.created")
                  .Email("old@hand.example")
                  .Name("Alpha")
                  .Line());
  v.push_back(Ev("2026-01-11T09:00:00Z", 42, "ag_alpha")
                  .Type("agent.created")
                  .Ws(kWsHand2)
                  .Name("Alpha")
                  .Line());
  v.push_back(
      Ev("2026-01-12T09:00:00Z", "hu_2", "ag_ren").Type("agent.created").Name("Old Name").Line());
  // hu_1: one request a day on 02-01..02-10 and one at 2026-03-01T00:30+01:00 (UTC 02-28).
  for (int d = 1; d <= 10; ++d) {
    v.push_back(Ev(Feb(d) + "T10:00:00Z", "hu_1", "ag_alpha")
                    .Project("p_hand_1")
                    .Tokens(10)
                    .Cost(0.01)
                    .Line());
  }
  const std::string dup = v[v.size() - 8];  // 02-03, re-sent below: counts once
  v.push_back(Ev("2026-03-01T00:30:00+01:00", "hu_1", "ag_alpha")
                  .Project("p_hand_1")
                  .Tokens(10)
                  .Cost(0.01)
                  .Line());
  v.push_back(dup);
  // hu_2 (never an email): one request on 2026-01-31 (outside February), three to "Old Name"
  // (one error), one to the nameless agent without project.
  v.push_back(Ev("2026-01-31T23:59:59Z", "hu_2", "ag_alpha").Project("p_hand_1").Tokens(1).Line());
  for (int d = 2; d <= 4; ++d) {
    v.push_back(Ev(Feb(d) + "T12:00:00Z", "hu_2", "ag_ren")
                    .Project("p_hand_1")
                    .Name("Old Name")
                    .Tokens(20)
                    .Status(d == 3 ? "error" : "ok")
                    .Line());
  }
  v.push_back(Ev(Feb(5) + "T08:00:00Z", "hu_2", "ag_noname").Ws(kWsHand2).Tokens(5).Line());
  // 42 (a JSON number): bob.
  v.push_back(Ev(Feb(5) + "T09:00:00Z", 42, "ag_alpha")
                  .Ws(kWsHand2)
                  .Project("p_hand_2")
                  .Email("bob@hand.example")
                  .Tokens(100)
                  .Cost(0.5)
                  .Line());
  v.push_back(Ev(Feb(6) + "T09:00:00Z", 42, "ag_alpha").Ws(kWsHand2).Status("error").Line());
  // The rename, then hu_3 (carol) after it.
  v.push_back(
      Ev("2026-02-20T00:00:00Z", "hu_2", "ag_ren").Type("agent.updated").Name("New Name").Line());
  v.push_back(Ev(Feb(21) + "T15:00:00Z", "hu_3", "ag_ren")
                  .Project("p_hand_1")
                  .Email("carol@hand.example")
                  .Tokens(50)
                  .Cost(0.25)
                  .Line());
  // Later in the log but earlier in event time: "Stale Name" does not become the current name.
  v.push_back(Ev(Feb(10) + "T15:00:00Z", "hu_3", "ag_ren")
                  .Project("p_hand_2")
                  .Name("Stale Name")
                  .Tokens(30)
                  .Cost(0.05)
                  .Line());
  // hu_1's latest email, on a workflow event in the other workspace.
  v.push_back(Ev("2026-02-25T09:00:00Z", "hu_1", "")
                  .Type("workflow.created")
                  .Ws(kWsHand2)
                  .Email("alice@hand.example")
                  .Line());
  // Not requests: a workflow execution, a request without organization, a malformed one.
  v.push_back(Ev(Feb(7) + "T09:00:00Z", "hu_9", "").Type("workflow.executed").Line());
  v.push_back(
      Ev(Feb(7) + "T09:00:00Z", "hu_9", "ag_alpha").Org("").Project("p_hand_1").Tokens(7).Line());
  json bad = json::parse(
      Ev(Feb(8) + "T09:00:00Z", "hu_9", "ag_alpha").Project("p_hand_1").Tokens(1).Line());
  bad["data"]["tokens"] = "many";
  v.push_back(bad.dump());

  // January, HandComputedJanuary: a rename tie in event time (the later line wins), a refused
  // rename by an event naming another organization, a name that needs percent-encoding, tokens
  // written 12.0, an id re-sent with other content (ignored).
  v.push_back(Ev("2026-01-15T10:00:00Z", "hu_5", "ag_tie")
                  .Type("agent.updated")
                  .Ws(kWsHand2)
                  .Name("Tie A")
                  .Line());
  v.push_back(Ev("2026-01-15T10:00:00Z", "hu_5", "ag_tie")
                  .Type("agent.updated")
                  .Ws(kWsHand2)
                  .Name("Tie B")
                  .Line());
  v.push_back(Ev("2026-01-15T11:00:00Z", "hu_5", "ag_amp")
                  .Type("agent.created")
                  .Ws(kWsHand2)
                  .Name("R&D + Ops/\u00fc?#=%")
                  .Line());
  // A rename carried by an event naming another organization than the workspace's is refused
  // (dead letter "organization mismatch"): the agent keeps its name.
  v.push_back(Ev("2026-01-15T09:00:00Z", "hu_7", "ag_org")
                  .Type("agent.created")
                  .Ws(kWsHand2)
                  .Name("Org Agent")
                  .Line());
  v.push_back(Ev("2026-01-16T09:00:00Z", "hu_7", "ag_org")
                  .Type("agent.updated")
                  .Ws(kWsHand2)
                  .Org("org_elsewhere")
                  .Name("Org Agent 2")
                  .Line());
  v.push_back(Ev("2026-01-17T10:00:00Z", "hu_7", "ag_org").Ws(kWsHand2).Tokens(2).Line());
  v.push_back(Ev("2026-01-16T09:00:00Z", "hu_5", "ag_tie").Ws(kWsHand2).FloatTokens(12).Line());
  v.push_back(Ev("2026-01-17T09:00:00Z", "hu_5", "ag_amp").Ws(kWsHand2).Tokens(3).Line());
  v.push_back(
      Ev("2026-01-18T09:00:00Z", "hu_5", "ag_amp").Ws(kWsHand2).Id("req-x").Tokens(4).Line());
  v.push_back(Ev("2026-01-19T09:00:00Z", "hu_6", "ag_amp")
                  .Ws(kWsHand2)
                  .Id("req-x")
                  .Email("mallory@hand.example")
                  .Tokens(1000)
                  .Line());
  return v;
}

// ---------------------------------------------------------------------------------------------

const std::vector<OrgKeySpec>& Keys() {
  static const std::vector<OrgKeySpec> keys = {
      OrgKeySpec::Holding("org1", "tok-org1", {"org_1"}),
      OrgKeySpec::Holding("org2", "tok-org2", {"org_2"}),
      OrgKeySpec::Holding("org12", "tok-org12", {"org_1", "org_2"}),
      OrgKeySpec::Holding("hand", "tok-hand", {"org_hand"}),
      OrgKeySpec::Admin("admin", "tok-admin"),
  };
  return keys;
}

// Who asks: a token, the headers that narrow it, and the reference scope they mean.
struct Scope {
  Scope(std::string w, Headers h, std::optional<std::set<std::string>> orgs,
        std::optional<std::string> p = std::nullopt)
      : what(std::move(w)),
        headers(std::move(h)),
        organizations(std::move(orgs)),
        project(std::move(p)) {}
  std::string what;
  Headers headers;
  std::optional<std::set<std::string>> organizations;
  std::optional<std::string> project;
};

Headers Auth(const std::string& token, bool api_key_header = false) {
  if (api_key_header) return {{"api_key", token}};
  return {{"Authorization", "Bearer " + token}};
}

struct Range {
  std::string start, end;
};

class RequestsE2E : public ::testing::Test {
 protected:
  // Starts the broker and tallyd, produces the hand-built events (and the generated ones when
  // `generated`) and waits for tallyd to catch up.
  static void StartWith(bool generated) {
    ready_ = false;
    checked_ = failures_ = 0;
    stack_ = new Stack();
    tallyd_ = new OrgTallyd(stack_);
    ref_ = new RequestsReference();
    ASSERT_TRUE(stack_->StartBroker(4));
    ASSERT_TRUE(tallyd_->Start(Keys()));

    std::vector<std::string> lines = HandEvents(), keys;
    for (const std::string& l : lines) keys.push_back(json::parse(l)["data"]["workspace_id"]);
    if (generated) {
      gen::GenOptions o;
      o.seed = 33;
      o.events = 60000;
      o.workspaces = 6;  // organization = workspace index % 3: two workspaces each
      o.organizations = 3;
      o.users = 600;
      o.agents = 150;
      o.workflows = 60;
      o.end_day = kEndDay;
      o.days = 120;
      o.duplicate_fraction = 0.02;
      o.malformed_fraction = 0.005;
      Dataset data = GenerateDataset(o);
      lines.insert(lines.end(), data.lines.begin(), data.lines.end());
      keys.insert(keys.end(), data.keys.begin(), data.keys.end());
    }
    for (const std::string& l : lines) ref_->Add(l);
    ASSERT_TRUE(tallyd_->ProducePaced(lines, keys, 6000, Millis(120000)));
    ready_ = true;
  }
  static void Stop() {
    delete tallyd_;
    delete stack_;
    delete ref_;
    tallyd_ = nullptr;
    stack_ = nullptr;
    ref_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(ready_) << "suite setup failed"; }

  static std::string Target(const std::string& name, const Range& r,
                            const std::optional<std::string>& agent_name) {
    std::string t = std::string(kPrefix) + name + "?startDate=" + r.start + "&endDate=" + r.end;
    if (agent_name) t += "&agentName=" + UrlEncode(*agent_name);
    return t;
  }

  // Sends one request; "" when it is a 200 JSON body equal to `want`, else a description.
  static std::string Check(const std::string& target, const Headers& headers, const json& want) {
    Result<HttpResponse> r = stack_->http().Send("GET", target, headers);
    if (!r) return "GET " + target + ": " + r.error().message;
    std::string diff;
    if (r->status != 200) {
      diff = "status " + std::to_string(r->status) + ": " + r->body.substr(0, 400);
    } else if (r->Header("content-type").find("application/json") == std::string::npos) {
      diff = "content-type '" + r->Header("content-type") + "'";
    } else {
      json got = json::parse(r->body, nullptr, false);
      diff =
          got.is_discarded() ? "not JSON: " + r->body.substr(0, 400) : DiffRequestsJson(got, want);
    }
    if (diff.empty()) return "";
    std::string h;
    for (const auto& [k, v] : headers) h += " [" + k + ": " + v + "]";
    return "GET " + target + h + "\n    " + diff;
  }

  // Every endpoint for `scope` x agent names x ranges; the first 25 failures are reported.
  static void CheckScope(const Scope& scope, const std::vector<std::optional<std::string>>& names,
                         const std::vector<Range>& ranges) {
    for (const Range& range : ranges) {
      for (const std::optional<std::string>& name : names) {
        ReqQuery q;
        q.organizations = scope.organizations;
        q.project_id = scope.project;
        q.start_date = range.start;
        q.end_date = range.end;
        q.agent_name = name.value_or("");
        const std::map<std::string, json> want = ref_->AnswerAll(q);
        for (const char* endpoint : kRequestEndpoints) {
          ++checked_;
          std::string diff = Check(Target(endpoint, range, name), scope.headers, want.at(endpoint));
          if (diff.empty()) continue;
          if (++failures_ <= 25) ADD_FAILURE() << scope.what << ": " << diff;
        }
      }
    }
  }

  // The ranges of the generated data: one day, across a month boundary, the last 90 days, and
  // one whose ends cut months and weeks.
  static std::vector<Range> Ranges() {
    return {{"2026-02-17", "2026-02-17"},
            {"2026-01-26", "2026-02-08"},  // two ISO weeks, the first across the month boundary
            {"2025-12-01", kEndDay},
            {"2025-12-17", "2026-02-11"}};  // partial months and weeks at both ends
  }

  // No filter (parameter absent, or `agentName=` when `empty_param`), the busiest agent's
  // current name, a former name of an agent of the scope.
  static std::vector<std::optional<std::string>> AgentNames(const Scope& scope, bool empty_param) {
    ReqQuery q;
    q.organizations = scope.organizations;
    q.project_id = scope.project;
    q.start_date = "2025-12-01";
    q.end_date = kEndDay;
    std::vector<std::string> busy = ref_->BusyAgentNames(q), former = ref_->FormerAgentNames(q);
    std::vector<std::optional<std::string>> out = {empty_param ? std::optional<std::string>("")
                                                               : std::nullopt};
    EXPECT_FALSE(busy.empty()) << scope.what;
    EXPECT_FALSE(former.empty()) << scope.what;
    if (!busy.empty()) out.push_back(busy[0]);
    if (!former.empty()) out.push_back(former[0]);
    return out;
  }

  static void CheckGeneratedScope(const Scope& scope, bool empty_param) {
    CheckScope(scope, AgentNames(scope, empty_param), Ranges());
  }

  static Stack* stack_;
  static OrgTallyd* tallyd_;
  static RequestsReference* ref_;
  static inline bool ready_ = false;
  static inline int checked_ = 0;
  static inline int failures_ = 0;
};

Stack* RequestsE2E::stack_ = nullptr;
OrgTallyd* RequestsE2E::tallyd_ = nullptr;
RequestsReference* RequestsE2E::ref_ = nullptr;

// The hand-built events alone (a fast setup for the semantics).
class HandRequestsE2E : public RequestsE2E {
 protected:
  static void SetUpTestSuite() { StartWith(false); }
  static void TearDownTestSuite() { Stop(); }

  // tallyd answers `want` (computed by hand) for the org_hand key, and so does the reference.
  static void ExpectHand(const std::string& endpoint, const std::optional<std::string>& name,
                         const std::string& want, const Headers& headers, const Range& range) {
    std::string diff = Check(Target(endpoint, range, name), headers, json::parse(want));
    EXPECT_TRUE(diff.empty()) << diff;
    ReqQuery q;
    q.organizations = std::set<std::string>{"org_hand"};
    for (const auto& [k, v] : headers) {
      if (k == "project-id") q.project_id = v;
    }
    q.start_date = range.start;
    q.end_date = range.end;
    q.agent_name = name.value_or("");
    std::string ref_diff = DiffRequestsJson(ref_->Answer(endpoint, q), json::parse(want));
    EXPECT_TRUE(ref_diff.empty()) << "reference: " << endpoint << " " << ref_diff;
  }
};

// Hand-built and generated events. ctest runs each test in its own process (and so repeats the
// suite setup): the generated data has one test.
class GeneratedRequestsE2E : public RequestsE2E {
 protected:
  static void SetUpTestSuite() { StartWith(true); }
  static void TearDownTestSuite() { Stop(); }

  static void ReferenceSeesWhatTheTestNeeds();
  static void SingleOrganizationKeysSeeOnlyTheirOrganization();
  static void MultiOrganizationKeyAndHeaders();
  static void AdminSeesEveryOrganization();
};

void GeneratedRequestsE2E::ReferenceSeesWhatTheTestNeeds() {
  // The data is not degenerate: organizations with hundreds of users, renamed agents, several
  // agents sharing a name (copies), requests without project, errors.
  EXPECT_EQ(ref_->Organizations(), (std::set<std::string>{"org_1", "org_2", "org_3", "org_hand"}));
  EXPECT_GT(ref_->invalid(), 100u);
  EXPECT_GT(ref_->duplicates(), 250u);
  ReqQuery q;
  q.organizations = std::set<std::string>{"org_1"};
  q.start_date = "2025-12-01";
  q.end_date = kEndDay;
  std::map<std::string, json> a = ref_->AnswerAll(q);
  EXPECT_GT(a["total-active-users"]["totalActiveUsers"].get<int64_t>(), 100);
  EXPECT_EQ(a["top-10-agents-by-requests"]["top10Agents"].size(), 10u);
  EXPECT_GT(a["agent-usage-per-user"]["agentUsage"].size(), 100u);
  // Summing per-day distinct users would be wrong here.
  int64_t per_day_sum = 0;
  for (const json& d : a["total-requests-per-day"]["totalRequestsPerDay"]) {
    ReqQuery one = q;
    one.start_date = one.end_date = d["date"].get<std::string>();
    per_day_sum += ref_->Answer("total-active-users", one)["totalActiveUsers"].get<int64_t>();
  }
  EXPECT_GT(per_day_sum, 2 * a["total-active-users"]["totalActiveUsers"].get<int64_t>());
  // A former name's agent has requests, and the old name matches nothing.
  std::vector<std::string> former = ref_->FormerAgentNames(q);
  ASSERT_FALSE(former.empty());
  q.agent_name = former[0];
  EXPECT_EQ(ref_->Answer("total-active-agents", q)["totalActiveAgents"], 0);
}

TEST_F(HandRequestsE2E, HandComputedAnswers) {
  const Headers hand = Auth("tok-hand");
  const Range feb = {"2026-02-01", "2026-02-28"};
  auto expect = &ExpectHand;
  // No filter. 19 requests of 4 users (hu_1 on 11 different days), 2 projects, 4 agents.
  expect("total-active-users", std::nullopt, R"({"totalActiveUsers": 4})", hand, feb);
  expect("total-active-projects", std::nullopt, R"({"totalActiveProjects": 2})", hand, feb);
  expect("total-active-agents", std::nullopt, R"({"totalActiveAgents": 4})", hand, feb);
  expect("average-requests-per-day", std::nullopt, json{{"averageRequests", 19.0 / 28.0}}.dump(),
         hand, feb);
  expect("average-users-per-project", std::nullopt, R"({"averageUsers": 2.5})", hand, feb);
  expect("average-users-per-agent", std::nullopt, R"({"averageUsers": 1.25})", hand, feb);
  expect("top-10-agents-by-requests", std::nullopt, R"({"top10Agents": [
    {"agent": "Alpha", "totalRequests": 11}, {"agent": "New Name", "totalRequests": 5},
    {"agent": "Alpha", "totalRequests": 2}, {"agent": "ag_noname", "totalRequests": 1}]})",
         hand, feb);
  expect("top-10-agents-by-tokens", "", R"({"top10Agents": [
    {"agent": "New Name", "totalTokens": 140}, {"agent": "Alpha", "totalTokens": 110},
    {"agent": "Alpha", "totalTokens": 100}, {"agent": "ag_noname", "totalTokens": 5}]})",
         hand, feb);
  expect("top-10-users-by-requests", std::nullopt, R"({"top10Users": [
    {"totalRequests": 11, "user": "alice@hand.example"}, {"totalRequests": 4, "user": "hu_2"},
    {"totalRequests": 2, "user": "bob@hand.example"},
    {"totalRequests": 2, "user": "carol@hand.example"}]})",
         hand, feb);
  expect("agent-usage-per-user", std::nullopt, R"({"agentUsage": [
    {"totalCost": 0.11, "totalRequests": 11, "totalTokens": 110, "user": "alice@hand.example"},
    {"totalCost": 0.0, "totalRequests": 4, "totalTokens": 65, "user": "hu_2"},
    {"totalCost": 0.5, "totalRequests": 2, "totalTokens": 100, "user": "bob@hand.example"},
    {"totalCost": 0.3, "totalRequests": 2, "totalTokens": 80, "user": "carol@hand.example"}]})",
         hand, feb);
  json per_day = json::array();
  const std::map<int, std::pair<int, int>> busy = {
      {1, {1, 0}}, {2, {2, 0}}, {3, {2, 1}}, {4, {2, 0}},  {5, {3, 0}},  {6, {2, 1}},
      {7, {1, 0}}, {8, {1, 0}}, {9, {1, 0}}, {10, {2, 0}}, {21, {1, 0}}, {28, {1, 0}}};
  for (int d = 1; d <= 28; ++d) {
    auto it = busy.find(d);
    per_day.push_back({{"date", Feb(d)},
                       {"totalRequests", it == busy.end() ? 0 : it->second.first},
                       {"totalRequestsWithError", it == busy.end() ? 0 : it->second.second}});
  }
  expect("total-requests-per-day", std::nullopt, json{{"totalRequestsPerDay", per_day}}.dump(),
         hand, feb);

  // The renamed agent: only its current name matches, and it brings all of its requests.
  expect("total-active-agents", "New Name", R"({"totalActiveAgents": 1})", hand, feb);
  expect("top-10-agents-by-requests", "New Name",
         R"({"top10Agents": [{"agent": "New Name", "totalRequests": 5}]})", hand, feb);
  expect("average-users-per-project", "New Name", R"({"averageUsers": 1.5})", hand, feb);
  expect("average-users-per-agent", "New Name", R"({"averageUsers": 2.0})", hand, feb);
  for (const char* old_name : {"Old Name", "Stale Name", "new name", "New Name "}) {
    expect("total-active-agents", old_name, R"({"totalActiveAgents": 0})", hand, feb);
    expect("total-active-users", old_name, R"({"totalActiveUsers": 0})", hand, feb);
    expect("average-users-per-project", old_name, R"({"averageUsers": 0.0})", hand, feb);
    expect("average-requests-per-day", old_name, R"({"averageRequests": 0.0})", hand, feb);
    expect("top-10-agents-by-tokens", old_name, R"({"top10Agents": []})", hand, feb);
    expect("agent-usage-per-user", old_name, R"({"agentUsage": []})", hand, feb);
  }
  // Two agents named "Alpha"; the nameless agent answers to its id.
  expect("top-10-agents-by-requests", "Alpha", R"({"top10Agents": [
    {"agent": "Alpha", "totalRequests": 11}, {"agent": "Alpha", "totalRequests": 2}]})",
         hand, feb);
  expect("total-active-projects", "Alpha", R"({"totalActiveProjects": 2})", hand, feb);
  expect("total-active-agents", "ag_noname", R"({"totalActiveAgents": 1})", hand, feb);
  // Requests made before the rename carry the current name; ties by name.
  const Range before = {"2026-02-02", "2026-02-04"};
  expect("top-10-agents-by-requests", std::nullopt, R"({"top10Agents": [
    {"agent": "Alpha", "totalRequests": 3}, {"agent": "New Name", "totalRequests": 3}]})",
         hand, before);
  expect("total-active-users", "New Name", R"({"totalActiveUsers": 1})", hand, before);
  expect("total-active-users", "Old Name", R"({"totalActiveUsers": 0})", hand, before);
  // The project header; the day boundary (2026-01-31T23:59:59Z, 2026-02-01T10:00Z).
  Headers proj = hand;
  proj.push_back({"project-id", "p_hand_2"});
  expect("top-10-users-by-requests", std::nullopt, R"({"top10Users": [
    {"totalRequests": 1, "user": "bob@hand.example"},
    {"totalRequests": 1, "user": "carol@hand.example"}]})",
         proj, feb);
  expect("total-active-projects", std::nullopt, R"({"totalActiveProjects": 1})", proj, feb);
  expect("total-requests-per-day", std::nullopt, R"({"totalRequestsPerDay": [
    {"date": "2026-01-31", "totalRequests": 1, "totalRequestsWithError": 0},
    {"date": "2026-02-01", "totalRequests": 1, "totalRequestsWithError": 0}]})",
         hand, {"2026-01-31", "2026-02-01"});
  expect("top-10-users-by-requests", std::nullopt, R"({"top10Users": [
    {"totalRequests": 1, "user": "alice@hand.example"}]})",
         hand, {"2026-02-28", "2026-03-01"});
}

TEST_F(HandRequestsE2E, HandComputedJanuary) {
  const Headers hand = Auth("tok-hand");
  const Range jan = {"2026-01-15", "2026-01-20"};
  const std::string amp = "R&D + Ops/\u00fc?#=%";
  ExpectHand("top-10-agents-by-requests", std::nullopt, R"({"top10Agents": [
    {"agent": "R&D + Ops/\u00fc?#=%", "totalRequests": 2},
    {"agent": "Org Agent", "totalRequests": 1}, {"agent": "Tie B", "totalRequests": 1}]})",
             hand, jan);
  ExpectHand("top-10-agents-by-tokens", "", R"({"top10Agents": [
    {"agent": "Tie B", "totalTokens": 12}, {"agent": "R&D + Ops/\u00fc?#=%", "totalTokens": 7},
    {"agent": "Org Agent", "totalTokens": 2}]})",
             hand, jan);
  ExpectHand("agent-usage-per-user", std::nullopt, R"({"agentUsage": [
    {"totalCost": 0.0, "totalRequests": 3, "totalTokens": 19, "user": "hu_5"},
    {"totalCost": 0.0, "totalRequests": 1, "totalTokens": 2, "user": "hu_7"}]})",
             hand, jan);
  // That organization has no requests at all: an admin naming it gets a 404.
  Result<HttpResponse> r = stack_->http().Send(
      "GET", Target("total-active-users", jan, std::nullopt),
      {{"Authorization", "Bearer tok-admin"}, {"organization-id", "org_elsewhere"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 404) << r->body;
  ExpectHand("total-active-agents", "Org Agent", R"({"totalActiveAgents": 1})", hand, jan);
  ExpectHand("total-active-agents", "Org Agent 2", R"({"totalActiveAgents": 0})", hand, jan);
  ExpectHand("total-active-agents", "Tie B", R"({"totalActiveAgents": 1})", hand, jan);
  ExpectHand("total-active-agents", "Tie A", R"({"totalActiveAgents": 0})", hand, jan);
  ExpectHand("top-10-users-by-requests", amp, R"({"top10Users": [
    {"totalRequests": 2, "user": "hu_5"}]})",
             hand, jan);
  ExpectHand("total-active-agents", "R&D Ops/\u00fc?#=%", R"({"totalActiveAgents": 0})", hand, jan);
}

TEST_F(HandRequestsE2E, MatchesTheReference) {
  const std::vector<std::optional<std::string>> names = {
      std::nullopt, "",         "Alpha",
      "New Name",   "Old Name", "Stale Name",
      "ag_noname",  "Tie B",    "R&D + Ops/\u00fc?#=%"};
  const std::vector<Range> ranges = {{"2026-02-01", "2026-02-28"},
                                     {"2026-01-31", "2026-02-01"},
                                     {"2026-01-15", "2026-01-20"},
                                     {"2026-02-05", "2026-02-05"},
                                     {"2026-01-01", "2026-03-31"}};
  CheckScope({"hand key", Auth("tok-hand"), std::set<std::string>{"org_hand"}, std::nullopt}, names,
             ranges);
  CheckScope({"admin, OrganizationId: org_hand, ProjectId: p_hand_1",
              {{"api_key", "tok-admin"}, {"OrganizationId", "org_hand"}, {"ProjectId", "p_hand_1"}},
              std::set<std::string>{"org_hand"},
              "p_hand_1"},
             names, ranges);
}

void GeneratedRequestsE2E::SingleOrganizationKeysSeeOnlyTheirOrganization() {
  CheckGeneratedScope({"org_1 key", Auth("tok-org1"), std::set<std::string>{"org_1"}}, false);
  CheckGeneratedScope(
      {"org_2 key (api_key)", Auth("tok-org2", true), std::set<std::string>{"org_2"}}, true);
  // The key's own organization named in the header changes nothing.
  Headers h = Auth("tok-org1");
  h.push_back({"organization-id", "org_1"});
  CheckScope({"org_1 key, organization-id: org_1", h, std::set<std::string>{"org_1"}},
             {std::nullopt}, {{"2025-12-01", kEndDay}});
  // Another organization's project narrows to nothing: no data crosses organizations.
  const std::string org1_project = ref_->BusyProjects("org_1").at(0);
  h = Auth("tok-org2");
  h.push_back({"project-id", org1_project});
  CheckScope({"org_2 key, project-id of org_1", h, std::set<std::string>{"org_2"}, org1_project},
             {std::nullopt}, Ranges());
  ReqQuery q;
  q.organizations = std::set<std::string>{"org_2"};
  q.project_id = org1_project;
  q.start_date = "2025-12-01";
  q.end_date = kEndDay;
  EXPECT_EQ(ref_->Answer("total-active-users", q)["totalActiveUsers"], 0);
  // And another organization is forbidden outright.
  for (const char* header : {"organization-id", "OrganizationId"}) {
    Headers other = Auth("tok-org1");
    other.push_back({header, "org_2"});
    Result<HttpResponse> r =
        stack_->http().Send("GET", Target("total-active-users", Ranges()[2], std::nullopt), other);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 403) << header << ": " << r->body;
    EXPECT_EQ(json::parse(r->body, nullptr, false),
              json({{"message", "This action is unauthorized."}}))
        << r->body;
  }
}

void GeneratedRequestsE2E::MultiOrganizationKeyAndHeaders() {
  CheckGeneratedScope(
      {"org_1+org_2 key", Auth("tok-org12"), std::set<std::string>{"org_1", "org_2"}}, false);
  Headers h = Auth("tok-org12");
  h.push_back({"organization-id", "org_2"});
  CheckGeneratedScope(
      {"org_1+org_2 key, organization-id: org_2", h, std::set<std::string>{"org_2"}}, true);
  const std::vector<std::string> projects = ref_->BusyProjects("org_1");
  ASSERT_GE(projects.size(), 2u);
  h = Auth("tok-org12", true);
  h.push_back({"OrganizationId", "org_1"});
  h.push_back({"ProjectId", projects[0]});
  CheckGeneratedScope({"org_1+org_2 key, OrganizationId: org_1, ProjectId: " + projects[0], h,
                       std::set<std::string>{"org_1"}, projects[0]},
                      false);
  h = Auth("tok-org1");
  h.push_back({"project-id", projects[1]});
  CheckGeneratedScope(
      {"org_1 key, project-id: " + projects[1], h, std::set<std::string>{"org_1"}, projects[1]},
      true);
}

void GeneratedRequestsE2E::AdminSeesEveryOrganization() {
  Scope admin = {"admin", Auth("tok-admin"), std::nullopt};
  std::vector<std::optional<std::string>> names = AgentNames(admin, false);
  // A current name several agents share (copies of one agent), when the data has one.
  ReqQuery q;
  q.start_date = "2025-12-01";
  q.end_date = kEndDay;
  std::vector<std::string> busy = ref_->BusyAgentNames(q);
  for (const std::string& name : busy) {
    if (name.rfind("Copy of ", 0) != 0) continue;
    q.agent_name = name;
    if (ref_->Answer("total-active-agents", q)["totalActiveAgents"].get<int64_t>() > 1) {
      names.push_back(name);
      break;
    }
  }
  std::vector<Range> ranges = Ranges();
  ranges.push_back({"2025-10-20", "2025-11-05"});  // starts before the first event
  ranges.push_back({"2025-11-01", kEndDay});       // all 120 days
  CheckScope(admin, names, ranges);
  Headers h = Auth("tok-admin");
  h.push_back({"organization-id", "org_3"});
  CheckGeneratedScope({"admin, organization-id: org_3", h, std::set<std::string>{"org_3"}}, true);
}

TEST_F(GeneratedRequestsE2E, EveryScopeMatchesTheReference) {
  {
    SCOPED_TRACE("reference");
    ReferenceSeesWhatTheTestNeeds();
  }
  {
    SCOPED_TRACE("single-organization keys");
    SingleOrganizationKeysSeeOnlyTheirOrganization();
  }
  {
    SCOPED_TRACE("multi-organization key, headers");
    MultiOrganizationKeyAndHeaders();
  }
  {
    SCOPED_TRACE("admin");
    AdminSeesEveryOrganization();
  }
  // The comparison was not vacuous.
  std::printf("[requests] %d responses compared with the reference, %d mismatches\n", checked_,
              failures_);
  EXPECT_GT(checked_, 1100);
  EXPECT_EQ(failures_, 0);
}

}  // namespace
}  // namespace tally::integration
