#include "group.h"

#include <cstdio>
#include <optional>

#include "metrics_compare.h"

namespace tally::integration {
namespace {
using nlohmann::json;
using Clock = std::chrono::steady_clock;
}  // namespace

// The same request's body through every instance, with the parts that depend on when it was
// computed blanked.
std::string Normalized(std::string body) {
  // Cursors name a result set cached by the instance that answered the first page.
  for (const char* key : {"\"cached_at\":", "\"generated_at\":", "\"next_cursor\":"}) {
    size_t at = body.find(key);
    while (at != std::string::npos) {
      size_t from = at + std::string_view(key).size();
      size_t to = body.find_first_of(",}", from);
      body.replace(from, to - from, "null");
      at = body.find(key, from);
    }
  }
  return body;
}

void CheckSameEverywhere(Group& group, const std::string& target) {
  std::string first_body, first_id;
  for (Instance& in : group.instances()) {
    auto r = in.http->Send("GET", target,
                           {{"Authorization", std::string("Bearer ") + kGroupAdminToken}});
    ASSERT_TRUE(r) << in.id << " " << target << ": " << r.error().message;
    EXPECT_EQ(r->status, 200) << in.id << " " << target << ": " << r->body.substr(0, 300);
    std::string body = Normalized(r->body);
    if (first_id.empty()) {
      first_id = in.id;
      first_body = std::move(body);
    } else {
      EXPECT_EQ(body, first_body) << target << " differs between " << first_id << " and " << in.id;
    }
  }
}

// Cursor pages: the first page and the page after it, through every instance (the cursor goes
// back to the instance that issued it), hold the same rows everywhere.
void CheckCursorPagesEverywhere(Group& group, const std::string& ws) {
  std::string first_rows, first_id;
  for (Instance& in : group.instances()) {
    const std::pair<std::string, std::string> auth{"Authorization",
                                                   std::string("Bearer ") + kGroupAdminToken};
    const std::string base = "/api/v1/monitoring/" + UrlEncode(ws) + "/superagents";
    auto p1 = in.http->Send("GET", base + "?limit=3&from=2025-12-01&to=2026-03-01", {auth});
    ASSERT_TRUE(p1);
    ASSERT_EQ(p1->status, 200) << p1->body;
    json j1 = json::parse(p1->body);
    ASSERT_TRUE(j1["pagination"]["has_more"].get<bool>()) << p1->body;
    const std::string cursor = j1["pagination"]["next_cursor"];
    auto p2 = in.http->Send("GET", base + "?limit=3&cursor=" + UrlEncode(cursor), {auth});
    ASSERT_TRUE(p2);
    ASSERT_EQ(p2->status, 200) << in.id << ": " << p2->body;
    json j2 = json::parse(p2->body);
    const std::string rows = j1["superagents"].dump() + j2["superagents"].dump();
    EXPECT_EQ(j2["superagents"].size(), 3u) << p2->body;
    if (first_id.empty()) {
      first_id = in.id;
      first_rows = rows;
    } else {
      EXPECT_EQ(rows, first_rows) << "pages through " << in.id << " and " << first_id;
    }
  }
}

// Request analytics through every instance, for the admin key over every organization and
// narrowed to each one (organizations span workspaces owned by different instances: the answer
// merges their shares), against the reference.
void CheckRequestsEverywhere(Group& group, const RequestsReference& ref, const char* phase) {
  std::vector<std::optional<std::string>> orgs = {std::nullopt};
  for (const std::string& org : ref.Organizations()) orgs.push_back(org);
  const std::vector<std::pair<std::string, std::string>> ranges = {
      {"2026-02-01", "2026-03-01"}, {"2026-01-01", "2026-03-01"}, {"2026-02-14", "2026-02-14"}};
  int failures = 0;
  size_t requests = 0;
  for (Instance& in : group.instances()) {
    for (const auto& org : orgs) {
      ReqQuery q;
      std::vector<std::pair<std::string, std::string>> headers = {
          {"Authorization", std::string("Bearer ") + kGroupAdminToken}};
      if (org) {
        q.organizations = std::set<std::string>{*org};
        headers.emplace_back("organization-id", *org);
      }
      for (const auto& [start, end] : ranges) {
        q.start_date = start;
        q.end_date = end;
        const std::map<std::string, json> want = ref.AnswerAll(q);
        for (const char* endpoint : kRequestEndpoints) {
          const std::string target = std::string("/v1/analytics/requests/") + endpoint +
                                     "?startDate=" + start + "&endDate=" + end;
          auto r = in.http->Send("GET", target, headers);
          ++requests;
          std::string diff;
          if (!r) {
            diff = r.error().message;
          } else if (r->status != 200) {
            diff = "status " + std::to_string(r->status) + ": " + r->body.substr(0, 300);
          } else {
            json got = json::parse(r->body, nullptr, false);
            diff = got.is_discarded() ? "not JSON" : DiffRequestsJson(got, want.at(endpoint));
          }
          if (!diff.empty() && ++failures <= 10) {
            ADD_FAILURE() << phase << ": through " << in.id << " GET " << target
                          << (org ? " organization-id: " + *org : std::string()) << "\n    "
                          << diff;
          }
        }
      }
    }
  }
  EXPECT_EQ(failures, 0) << phase;
  std::fprintf(stderr, "[group] %s: %zu request-analytics requests\n", phase, requests);
}

// The leaderboard of every workspace through every instance, against the reference.
void CheckLeaderboardEverywhere(Group& group, const LeaderboardReference& ref,
                                const std::vector<std::string>& workspaces) {
  const int64_t from = *RefParseTimeMillis("2026-01-15T00:00:00Z") / 86'400'000;
  const int64_t to = *RefParseTimeMillis("2026-03-01T00:00:00Z") / 86'400'000;
  for (Instance& in : group.instances()) {
    for (const std::string& ws : workspaces) {
      const std::string target =
          "/api/agents/leaderboard?limit=100&workspace_uuid=" + UrlEncode(ws) +
          "&date_from=2026-01-15&date_to=2026-03-01";
      auto r = in.http->Send("GET", target,
                             {{"Authorization", std::string("Bearer ") + kGroupAdminToken}});
      ASSERT_TRUE(r) << r.error().message;
      ASSERT_EQ(r->status, 200) << in.id << " " << target << ": " << r->body.substr(0, 300);
      EXPECT_TRUE(SameLeaderboard(json::parse(r->body), ref.Expected(ws, from, to, 100, {})))
          << "through " << in.id << ": " << target;
    }
  }
}

// Every instance answers workspace metrics (a sample of the combinations) like the reference,
// and the leaderboard and the Super Agents list like each other.
// Super Agents of every workspace through every instance, every page (7 rows a page, so the
// cursors go back to the owner), in two sorts, against the reference.
void CheckSuperagentsEverywhere(Group& group, const SuperagentsReference& ref,
                                const std::vector<std::string>& workspaces, const char* phase) {
  const int64_t today = *RefParseDay(Stack::kToday);
  const int64_t from = *RefParseDay("2026-01-15");
  const std::pair<std::string, std::string> auth{"Authorization",
                                                 std::string("Bearer ") + kGroupAdminToken};
  size_t rows = 0;
  for (const char* sort : {"-total_credits_consumed", "superagent_name"}) {
    for (const std::string& ws : workspaces) {
      const std::vector<json> want = ref.Rows(ws, from, today, sort, "", "", today);
      rows += want.size();
      for (Instance& in : group.instances()) {
        SCOPED_TRACE(std::string(phase) + ": " + ws + " through " + in.id + ", sort " + sort);
        std::vector<json> got;
        std::string cursor;
        for (int page = 0; page < 100; ++page) {
          std::string target = "/api/v1/monitoring/" + UrlEncode(ws) +
                               "/superagents?limit=7&from=2026-01-15&to=2026-03-01&sort=" + sort;
          if (!cursor.empty()) {
            target = "/api/v1/monitoring/" + UrlEncode(ws) +
                     "/superagents?limit=7&cursor=" + UrlEncode(cursor);
          }
          auto r = in.http->Send("GET", target, {auth});
          ASSERT_TRUE(r);
          ASSERT_EQ(r->status, 200) << r->body;
          json body = NormalizeSuperagents(json::parse(r->body));
          EXPECT_EQ(body["pagination"]["total"], want.size());
          for (json& row : body["superagents"]) got.push_back(std::move(row));
          if (!body["pagination"]["has_more"].get<bool>()) break;
          cursor = body["pagination"]["next_cursor"];
        }
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "row " << i;
      }
    }
  }
  EXPECT_GT(rows, 50u) << "the data should hold agents in every workspace";
}

References::References(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    if (metrics.Add(line) == RefVerdict::kAccepted) {
      leaderboard.Add(line);
      if (auto e = SuperagentsEventOf(line)) superagents.Add(*e);
    }
    requests.Add(line);
  }
}

// Every endpoint family through every instance against `refs`: a sample of workspace metrics,
// leaderboards, Super Agents (cursor pages included) and request analytics.
void CheckEveryInstance(Group& group, const References& refs,
                        const std::vector<std::string>& workspaces, const char* phase) {
  const auto t0 = Clock::now();
  size_t requests = 0;
  for (Instance& in : group.instances()) {
    for (size_t w = 0; w < workspaces.size(); ++w) {
      std::vector<MetricsCall> all = AllCombinations(workspaces[w], "");
      std::vector<MetricsCall> sample;
      // A different slice of the combinations through each instance and workspace.
      for (size_t i = (w * 3 + in.id.size()) % 11; i < all.size(); i += 11) {
        sample.push_back(all[i]);
      }
      requests += sample.size();
      EXPECT_EQ(CheckAll(*in.http, kGroupAdminToken, refs.metrics, sample, 5), 0)
          << phase << ": through " << in.id << ", workspace " << workspaces[w];
    }
  }
  for (const std::string& ws : workspaces) {
    CheckSameEverywhere(group, "/api/agents/leaderboard?workspace_uuid=" + UrlEncode(ws) +
                                   "&date_from=2026-01-01&date_to=2026-03-01");
    CheckSameEverywhere(group, "/api/v1/monitoring/" + UrlEncode(ws) +
                                   "/superagents?limit=5&from=2025-12-01&to=2026-03-01");
  }
  CheckCursorPagesEverywhere(group, workspaces.front());
  CheckLeaderboardEverywhere(group, refs.leaderboard, workspaces);
  CheckSuperagentsEverywhere(group, refs.superagents, workspaces, phase);
  std::fprintf(stderr, "[group] %s: %zu metrics requests through %zu instances in %.1f s\n", phase,
               requests, group.instances().size(), Elapsed(t0));
  CheckRequestsEverywhere(group, refs.requests, phase);
}

}  // namespace tally::integration
